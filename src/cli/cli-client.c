/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <glib-unix.h>

#include "smolvm-error.h"
#include "smolvm-id.h"
#include "smolvm-info.h"

#include "cli-client.h"
#include "cli-output.h"

/* Properties and signals are of no use to a one-shot client. Without
 * DO_NOT_AUTO_START the bus activates smolvmd if needed. */
#define CLI_PROXY_FLAGS \
  (G_DBUS_PROXY_FLAGS_DO_NOT_LOAD_PROPERTIES | G_DBUS_PROXY_FLAGS_DO_NOT_CONNECT_SIGNALS)

struct _CliClient {
  gboolean session;
  gboolean no_ask_password;
  GDBusConnection *bus;
  SmolvmDbusManager *manager;
  GSubprocess *agent; /* pkttyagent, while we may need a password */
};

const gchar *
cli_bus_label (gboolean session)
{
  return session ? "session" : "system";
}

/* Neither running nor activatable: on the system bus, where `meson install`
 * makes smolvmd activatable, that means that it is not installed. */
void
cli_set_not_installed (gboolean session, GError **error)
{
  if (session) {
    cli_set_not_running (session, error);
    return;
  }
  g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_SERVICE_UNKNOWN,
               "smolvmd is not installed: %s is neither running nor activatable on the system "
               "bus (see smolvmd(8))",
               SMOLVM_BUS_NAME);
}

void
cli_set_not_running (gboolean session, GError **error)
{
  g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_SERVICE_UNKNOWN,
               "smolvmd is not running on the %s bus (%s)", cli_bus_label (session),
               SMOLVM_BUS_NAME);
}

void
cli_client_stop_agent (CliClient *self)
{
  if (self == NULL || self->agent == NULL)
    return;
  g_subprocess_send_signal (self->agent, SIGTERM);
  g_subprocess_wait (self->agent, NULL, NULL);
  g_clear_object (&self->agent);
}

void
cli_client_free (CliClient *self)
{
  if (self == NULL)
    return;
  g_clear_object (&self->manager);
  g_clear_object (&self->bus);
  cli_client_stop_agent (self);
  g_free (self);
}

/* Like systemctl: on a terminal, a text agent answers polkit's password
 * questions. Started before the first call, and the call waits until the
 * agent has registered (it closes --notify-fd then), so that polkit finds
 * it. Without pkttyagent the call simply fails with NotAuthorized. */
static void
cli_client_start_agent (CliClient *self)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree gchar *pkttyagent = NULL;
  int notify[2];
  gchar byte;

  if (self->session || self->no_ask_password || !isatty (STDIN_FILENO) ||
      (pkttyagent = g_find_program_in_path ("pkttyagent")) == NULL)
    return;
  if (!g_unix_open_pipe (notify, FD_CLOEXEC, NULL))
    return;
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_INHERIT);
  g_subprocess_launcher_take_fd (launcher, notify[1], 3);
  self->agent = g_subprocess_launcher_spawn (launcher, &error, pkttyagent, "--notify-fd", "3",
                                             "--fallback", NULL);
  g_clear_object (&launcher); /* closes our copy of the write end */
  if (self->agent == NULL) {
    g_debug ("cannot start pkttyagent: %s", error->message);
    close (notify[0]);
    return;
  }
  /* EOF once the agent is registered, or has died */
  while (read (notify[0], &byte, 1) < 0 && errno == EINTR)
    ;
  close (notify[0]);
}

CliClient *
cli_client_new (gboolean session, gboolean no_ask_password, gboolean may_prompt, GError **error)
{
  g_autoptr(CliClient) self = g_new0 (CliClient, 1);
  g_autoptr(GError) local_error = NULL;
  g_autofree gchar *owner = NULL;

  self->session = session;
  self->no_ask_password = no_ask_password;
  self->bus = g_bus_get_sync (session ? G_BUS_TYPE_SESSION : G_BUS_TYPE_SYSTEM, NULL,
                              &local_error);
  if (self->bus == NULL) {
    g_propagate_prefixed_error (error, g_steal_pointer (&local_error),
                                "Cannot connect to the %s bus: ", cli_bus_label (session));
    return NULL;
  }

  self->manager = smolvm_dbus_manager_proxy_new_sync (self->bus, CLI_PROXY_FLAGS, SMOLVM_BUS_NAME,
                                                      SMOLVM_MANAGER_PATH, NULL, error);
  if (self->manager == NULL)
    return NULL;

  /* the proxy asked the bus to start smolvmd; no owner now means that the
   * bus cannot */
  owner = g_dbus_proxy_get_name_owner (G_DBUS_PROXY (self->manager));
  if (owner == NULL) {
    cli_set_not_installed (session, error);
    return NULL;
  }
  /* reads need no authorization */
  if (may_prompt)
    cli_client_start_agent (self);
  return g_steal_pointer (&self);
}

GDBusConnection *
cli_client_get_bus (CliClient *self)
{
  return self->bus;
}

SmolvmDbusManager *
cli_client_get_manager (CliClient *self)
{
  return self->manager;
}

GDBusCallFlags
cli_client_call_flags (CliClient *self)
{
  return self->no_ask_password ? G_DBUS_CALL_FLAGS_NONE
                               : G_DBUS_CALL_FLAGS_ALLOW_INTERACTIVE_AUTHORIZATION;
}

gchar *
cli_client_dup_owner (CliClient *self, GError **error)
{
  gchar *owner = g_dbus_proxy_get_name_owner (G_DBUS_PROXY (self->manager));

  if (owner == NULL)
    cli_set_not_running (self->session, error);
  return owner;
}

SmolvmDbusVm *
cli_client_vm_proxy_new (CliClient *self, const gchar *path, GError **error)
{
  g_autofree gchar *owner = cli_client_dup_owner (self, error);

  if (owner == NULL)
    return NULL;
  return smolvm_dbus_vm_proxy_new_sync (self->bus, CLI_PROXY_FLAGS, owner, path, NULL, error);
}

SmolvmDbusJob *
cli_client_job_proxy_new (CliClient *self, const gchar *path, GError **error)
{
  g_autofree gchar *owner = cli_client_dup_owner (self, error);

  if (owner == NULL)
    return NULL;
  return smolvm_dbus_job_proxy_new_sync (self->bus, CLI_PROXY_FLAGS, owner, path, NULL, error);
}

SmolvmDbusVm *
cli_client_get_vm (CliClient *self, const gchar *vm_id, GError **error)
{
  g_autofree gchar *path = NULL;

  if (!smolvm_dbus_manager_call_get_vm_sync (self->manager, vm_id, cli_client_call_flags (self),
                                             CLI_CALL_TIMEOUT, &path, NULL, error))
    return NULL;
  return cli_client_vm_proxy_new (self, path, error);
}

/* The dictionary of the a(oa{sv}) entry at object path @path, or else of the
 * one whose @key is @id. */
static GVariant *
info_list_find (GVariant *list, const gchar *path, const gchar *key, const gchar *id)
{
  GVariantIter iter;
  const gchar *entry_path;
  GVariant *info;

  g_variant_iter_init (&iter, list);
  while (g_variant_iter_next (&iter, "(&o@a{sv})", &entry_path, &info)) {
    gboolean match = path != NULL ? g_str_equal (entry_path, path)
                                  : g_str_equal (cli_info_get_string (info, key), id);
    if (match)
      return info;
    g_variant_unref (info);
  }
  return NULL;
}

GVariant *
cli_client_find_vm (CliClient *self, const gchar *path, GError **error)
{
  g_autoptr(GVariant) list = NULL;
  GVariant *info;

  if (!smolvm_dbus_manager_call_list_vms_sync (self->manager, cli_client_call_flags (self),
                                               CLI_CALL_TIMEOUT, &list, NULL, error))
    return NULL;
  info = info_list_find (list, path, NULL, NULL);
  if (info == NULL)
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND, "VM %s is gone", path);
  return info;
}

GVariant *
cli_client_find_snapshot (CliClient *self, const gchar *vm_filter, const gchar *path,
                          const gchar *snapshot_id, GError **error)
{
  g_autoptr(GVariant) list = NULL;
  GVariant *info;

  if (!smolvm_dbus_manager_call_list_snapshots_sync (self->manager,
                                                     vm_filter != NULL ? vm_filter : "",
                                                     cli_client_call_flags (self),
                                                     CLI_CALL_TIMEOUT, &list, NULL, error))
    return NULL;
  info = info_list_find (list, path, SMOLVM_INFO_SNAPSHOT_ID, snapshot_id);
  if (info == NULL)
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND, "Snapshot '%s' not found",
                 snapshot_id != NULL ? snapshot_id : path);
  return info;
}

GDBusObjectManager *
cli_client_object_manager_new (CliClient *self, GError **error)
{
  g_autofree gchar *owner = cli_client_dup_owner (self, error);

  if (owner == NULL)
    return NULL;
  return smolvm_dbus_object_manager_client_new_sync (
      self->bus, G_DBUS_OBJECT_MANAGER_CLIENT_FLAGS_DO_NOT_AUTO_START, owner, SMOLVM_MANAGER_PATH,
      NULL, error);
}
