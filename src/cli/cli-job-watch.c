/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <glib-unix.h>

#include "cli-job-watch.h"
#include "cli-progress.h"
#include "cli.h"
#include "smolvm-generated.h"

struct _CliJobWatch {
  CliClient *client; /* not owned */
  gchar *operation;
  gchar *object_path; /* NULL: any */
  GDBusObjectManager *objects; /* NULL if smolvmd has no ObjectManager for us */
  GHashTable *before;          /* paths of the jobs that ran before our call */
  SmolvmDbusJob *job;          /* ours, once found */
  gboolean job_gone;
  CliProgress *bar; /* NULL: no bar */
  GCancellable *cancellable; /* of our own calls, cancelled when the watch goes */
  GMainLoop *loop;
  GAsyncResult *result;
  guint sigint_source;
  guint interrupts;
  gboolean cancel_sent;
};

static void
watch_redraw (CliJobWatch *self)
{
  CliProgressState state = { 0 };

  if (self->bar == NULL)
    return;
  if (self->job == NULL || self->job_gone) {
    cli_progress_clear (self->bar);
    return;
  }
  state.phase = smolvm_dbus_job_get_phase (self->job);
  /* A password prompt of pkttyagent may be on the terminal. */
  if (state.phase == NULL || state.phase[0] == '\0' || g_str_equal (state.phase, "authorizing")) {
    cli_progress_clear (self->bar);
    return;
  }
  state.progress = smolvm_dbus_job_get_progress (self->job);
  state.progress_valid = smolvm_dbus_job_get_progress_valid (self->job);
  state.bytes_done = smolvm_dbus_job_get_bytes_done (self->job);
  state.bytes_total = smolvm_dbus_job_get_bytes_total (self->job);
  state.rate = smolvm_dbus_job_get_rate (self->job);
  state.expected_end_us = smolvm_dbus_job_get_expected_end_time (self->job);
  cli_progress_draw (self->bar, &state);
}

static void
on_cancel_reply (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GError) error = NULL;
  CliJobWatch *self;

  if (smolvm_client_cancel_job_finish (SMOLVM_CLIENT (source), result, &error) ||
      g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  self = user_data;
  /* It ended meanwhile; its method's reply tells how. */
  if (self->job_gone || g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_OBJECT) ||
      g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD) ||
      g_error_matches (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND))
    return;
  if (self->bar != NULL)
    cli_progress_clear (self->bar);
  g_printerr ("Cannot cancel %s: %s\n",
              g_dbus_proxy_get_object_path (G_DBUS_PROXY (self->job)), error->message);
}

/* Through libsmolvm-1's async call: the reply comes while we wait for the
 * method's. */
static void
watch_cancel_job (CliJobWatch *self)
{
  if (self->job == NULL || self->cancel_sent)
    return;
  self->cancel_sent = TRUE;
  smolvm_client_cancel_job (cli_client_get_smolvm (self->client),
                            g_dbus_proxy_get_object_path (G_DBUS_PROXY (self->job)),
                            self->cancellable, on_cancel_reply, self);
}

static gboolean
job_is_ours (CliJobWatch *self, SmolvmDbusJob *job)
{
  const gchar *path = g_dbus_proxy_get_object_path (G_DBUS_PROXY (job));
  const gchar *const *objects;

  if (g_hash_table_contains (self->before, path))
    return FALSE;
  if (g_strcmp0 (smolvm_dbus_job_get_operation (job), self->operation) != 0)
    return FALSE;
  if (smolvm_dbus_job_get_started_by_uid (job) != (guint) getuid ())
    return FALSE;
  if (self->object_path == NULL)
    return TRUE;
  objects = smolvm_dbus_job_get_objects (job);
  return objects != NULL && g_strv_contains (objects, self->object_path);
}

static void
watch_consider (CliJobWatch *self, SmolvmDbusJob *job)
{
  if (self->job != NULL || !job_is_ours (self, job))
    return;
  self->job = g_object_ref (job);
  g_debug ("our job: %s", g_dbus_proxy_get_object_path (G_DBUS_PROXY (job)));
  /* Ctrl-C came before the job did */
  if (self->interrupts > 0)
    watch_cancel_job (self);
  watch_redraw (self);
}

static void
on_object_added (GDBusObjectManager *manager, GDBusObject *object, gpointer user_data)
{
  CliJobWatch *self = user_data;
  SmolvmDbusJob *job = smolvm_dbus_object_peek_job (SMOLVM_DBUS_OBJECT (object));

  if (job != NULL)
    watch_consider (self, job);
}

static void
on_object_removed (GDBusObjectManager *manager, GDBusObject *object, gpointer user_data)
{
  CliJobWatch *self = user_data;

  if (self->job != NULL && g_str_equal (g_dbus_object_get_object_path (object),
                                        g_dbus_proxy_get_object_path (G_DBUS_PROXY (self->job)))) {
    self->job_gone = TRUE;
    watch_redraw (self);
  }
}

static void
on_properties_changed (GDBusObjectManagerClient *manager, GDBusObjectProxy *object,
                       GDBusProxy *proxy, GVariant *changed, GStrv invalidated,
                       gpointer user_data)
{
  CliJobWatch *self = user_data;

  if (!SMOLVM_DBUS_IS_JOB (proxy))
    return;
  if (self->job == NULL)
    watch_consider (self, SMOLVM_DBUS_JOB (proxy)); /* its Objects may have come now */
  else if (proxy == G_DBUS_PROXY (self->job))
    watch_redraw (self);
}

static gboolean
on_sigint (gpointer user_data)
{
  CliJobWatch *self = user_data;

  self->interrupts++;
  /* The second one, or nothing we could cancel: leave at once. */
  if (self->interrupts > 1 || self->objects == NULL) {
    if (self->bar != NULL)
      cli_progress_clear (self->bar);
    cli_client_stop_agent (self->client);
    exit (CLI_EXIT_INTERRUPTED);
  }
  /* else the job is cancelled as soon as it is known, and the method's
   * reply, org.smolvm.Error.Cancelled, ends the command */
  watch_cancel_job (self);
  return G_SOURCE_CONTINUE;
}

CliJobWatch *
cli_job_watch_new (CliClient *client, const gchar *operation, const gchar *object_path,
                   gboolean show_progress)
{
  g_autoptr(CliJobWatch) self = g_new0 (CliJobWatch, 1);
  g_autoptr(GError) error = NULL;
  GList *objects;

  self->client = client;
  self->operation = g_strdup (operation);
  self->object_path = g_strdup (object_path);
  self->before = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->cancellable = g_cancellable_new ();
  self->loop = g_main_loop_new (NULL, FALSE);
  /* caught from now on, handled while we wait */
  self->sigint_source = g_unix_signal_add (SIGINT, on_sigint, self);

  self->objects = cli_client_object_manager_new (client, &error);
  if (self->objects == NULL) {
    g_debug ("cannot watch jobs: %s", error->message);
    return g_steal_pointer (&self);
  }
  objects = g_dbus_object_manager_get_objects (self->objects);
  for (GList *l = objects; l != NULL; l = l->next)
    if (smolvm_dbus_object_peek_job (SMOLVM_DBUS_OBJECT (l->data)) != NULL)
      g_hash_table_add (self->before, g_strdup (g_dbus_object_get_object_path (l->data)));
  g_list_free_full (objects, g_object_unref);

  g_signal_connect (self->objects, "object-added", G_CALLBACK (on_object_added), self);
  g_signal_connect (self->objects, "object-removed", G_CALLBACK (on_object_removed), self);
  g_signal_connect (self->objects, "interface-proxy-properties-changed",
                    G_CALLBACK (on_properties_changed), self);
  if (show_progress && isatty (STDOUT_FILENO))
    self->bar = cli_progress_new (STDOUT_FILENO);
  return g_steal_pointer (&self);
}

void
cli_job_watch_free (CliJobWatch *self)
{
  if (self == NULL)
    return;
  g_cancellable_cancel (self->cancellable);
  if (self->sigint_source != 0)
    g_source_remove (self->sigint_source);
  if (self->objects != NULL)
    g_signal_handlers_disconnect_by_data (self->objects, self);
  g_clear_pointer (&self->bar, cli_progress_free);
  g_clear_object (&self->job);
  g_clear_object (&self->objects);
  g_clear_object (&self->result);
  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->loop, g_main_loop_unref);
  g_clear_pointer (&self->before, g_hash_table_unref);
  g_free (self->operation);
  g_free (self->object_path);
  g_free (self);
}

void
cli_job_watch_reply (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CliJobWatch *self = user_data;

  g_set_object (&self->result, result);
  g_main_loop_quit (self->loop);
}

GAsyncResult *
cli_job_watch_wait (CliJobWatch *self)
{
  if (self->result == NULL)
    g_main_loop_run (self->loop);
  /* From here on Ctrl-C ends the command as it always did. */
  g_clear_handle_id (&self->sigint_source, g_source_remove);
  g_clear_pointer (&self->bar, cli_progress_free); /* erases it */
  return self->result;
}
