/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "smolvm-authority.h"
#include "smolvm-call.h"
#include "smolvm-error-map.h"
#include "smolvm-record-writer.h"
#include "smolvm-registry.h"
#include "smolvm-store.h"

gpointer
smolvm_call_new (gsize size, SmolvmContext *ctx, GDBusMethodInvocation *invocation,
                 SmolvmCallFunc clear)
{
  SmolvmCall *call = g_malloc0 (size);
  call->ctx = ctx;
  call->invocation = invocation;
  call->clear = clear;
  return call;
}

/* The operation lets go of what it holds (and writes what it must) before
 * anyone hears that it ended: a client that reacts to the reply or to
 * Completed finds the VM free and its files settled. */
static void
call_release (SmolvmCall *call)
{
  SmolvmCallFunc clear = g_steal_pointer (&call->clear);
  if (clear != NULL)
    clear (call);
}

static void
call_free (SmolvmCall *call)
{
  call_release (call);
  g_clear_object (&call->invocation);
  g_clear_object (&call->job);
  g_free (call->cancelled_summary);
  g_clear_pointer (&call->reply, g_variant_unref);
  g_clear_error (&call->reply_error);
  g_free (call);
}

/* The job completes and the caller hears (a reply, or an error, or nothing
 * for a call that answered early) once the writes queued so far are on
 * disk: what a reply reports survives a crash that follows it. */
static void
call_end_now (SmolvmCall *call)
{
  if (call->job != NULL)
    smolvm_job_complete (call->job, call->reply_error);
  if (call->reply_error != NULL)
    g_dbus_method_invocation_return_gerror (g_steal_pointer (&call->invocation),
                                            call->reply_error);
  else if (call->invocation != NULL)
    g_dbus_method_invocation_return_value (g_steal_pointer (&call->invocation), call->reply);
  call_free (call);
}

static void
on_records_flushed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  smolvm_record_writer_flush_finish (SMOLVM_RECORD_WRITER (source), result);
  call_end_now (user_data);
}

static void
call_end (SmolvmCall *call)
{
  call_release (call);
  if (smolvm_record_writer_is_busy (call->ctx->records)) {
    smolvm_record_writer_flush_async (call->ctx->records, on_records_flushed, call);
    return;
  }
  call_end_now (call);
}

gboolean
smolvm_call_option_bool (GVariant *options, const gchar *key)
{
  gboolean value = FALSE;
  g_variant_lookup (options, key, "b", &value);
  return value;
}

gboolean
smolvm_call_check_typed_options (GVariant *options, const SmolvmCallOption *known,
                                 GError **error)
{
  GVariantIter iter;
  const gchar *key;
  GVariant *value;

  g_variant_iter_init (&iter, options);
  while (g_variant_iter_next (&iter, "{&sv}", &key, &value)) {
    g_autoptr(GVariant) owned = value;
    const SmolvmCallOption *option = known;

    while (option->key != NULL && !g_str_equal (option->key, key))
      option++;
    if (option->key == NULL) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT, "Unknown option '%s'", key);
      return FALSE;
    }
    if (!g_variant_is_of_type (owned, G_VARIANT_TYPE (option->type))) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                   "Option '%s' must be of type %s, not %s", key, option->type,
                   g_variant_get_type_string (owned));
      return FALSE;
    }
  }
  return TRUE;
}

gboolean
smolvm_call_check_options (GVariant *options, const gchar *const *known, GError **error)
{
  SmolvmCallOption typed[16];
  guint n = 0;

  for (; known[n] != NULL; n++) {
    g_assert (n < G_N_ELEMENTS (typed) - 1);
    typed[n] = (SmolvmCallOption){ known[n], "b" };
  }
  typed[n] = (SmolvmCallOption){ NULL, NULL };
  return smolvm_call_check_typed_options (options, typed, error);
}

/* ---- authorization ---- */

static void
on_caller_uid (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmolvmCall *call = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_authority_get_caller_uid_finish (result, &call->uid, &error)) {
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  call->run (call);
}

static void
on_authorized (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmolvmCall *call = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_authority_check_finish (SMOLVM_AUTHORITY (source), result, &error)) {
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  smolvm_authority_get_caller_uid_async (call->invocation, on_caller_uid, call);
}

void
smolvm_call_authorize (SmolvmCall *call, const gchar *action_id, const gchar *vm_id,
                       const gchar *snapshot_id, const gchar *verb, SmolvmCallFunc run)
{
  call->run = run;
  smolvm_authority_check_async (call->ctx->authority, call->invocation, action_id, vm_id,
                                snapshot_id, verb, on_authorized, call);
}

/* ---- the job ---- */

SmolvmJob *
smolvm_call_start_job (SmolvmCall *call, const gchar *operation, const gchar *action_id,
                       gboolean cancelable, ...)
{
  g_autoptr(GPtrArray) paths = g_ptr_array_new ();
  va_list args;
  const gchar *path;

  va_start (args, cancelable);
  while ((path = va_arg (args, const gchar *)) != NULL)
    g_ptr_array_add (paths, (gpointer) path);
  va_end (args);
  g_ptr_array_add (paths, NULL);
  return smolvm_call_start_job_on (call, operation, action_id, cancelable,
                                   (const gchar *const *) paths->pdata);
}

SmolvmJob *
smolvm_call_start_job_on (SmolvmCall *call, const gchar *operation, const gchar *action_id,
                          gboolean cancelable, const gchar *const *object_paths)
{
  g_return_val_if_fail (call->job == NULL, call->job);
  call->job = smolvm_job_new (call->ctx, operation, action_id, call->uid);
  for (gsize i = 0; object_paths[i] != NULL; i++)
    smolvm_job_add_object (call->job, object_paths[i]);
  smolvm_job_set_cancelable (call->job, cancelable);
  /* published complete: a client that sees it appear needs nothing more */
  smolvm_registry_add_job (call->ctx->registry, call->job);
  return call->job;
}

SmolvmProgress *
smolvm_call_get_progress (SmolvmCall *call)
{
  return call->job != NULL ? smolvm_job_get_progress (call->job) : NULL;
}

GCancellable *
smolvm_call_get_cancellable (SmolvmCall *call)
{
  return call->job != NULL ? smolvm_job_get_cancellable (call->job) : NULL;
}

void
smolvm_call_set_phase (SmolvmCall *call, const gchar *phase)
{
  if (call->job != NULL)
    smolvm_job_set_phase (call->job, phase);
}

void
smolvm_call_begin_rollback (SmolvmCall *call)
{
  if (call->job == NULL)
    return;
  smolvm_job_set_cancelable (call->job, FALSE);
  if (!g_cancellable_is_cancelled (smolvm_job_get_cancellable (call->job)))
    smolvm_job_set_phase (call->job, "rolling-back");
}

typedef struct {
  SmolvmStore *store;
  gchar *dir;
  GAsyncReadyCallback callback;
  gpointer user_data;
} RecordDirDiscard;

static void
on_flushed_then_discard (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autofree RecordDirDiscard *d = user_data;
  g_autofree gchar *dir = g_steal_pointer (&d->dir);

  smolvm_record_writer_flush_finish (SMOLVM_RECORD_WRITER (source), result);
  smolvm_store_discard_async (d->store, dir, d->callback, d->user_data);
}

void
smolvm_call_discard_record_dir (SmolvmCall *call, const gchar *dir,
                                GAsyncReadyCallback callback, gpointer user_data)
{
  RecordDirDiscard *d = g_new0 (RecordDirDiscard, 1);

  d->store = call->ctx->store;
  d->dir = g_strdup (dir);
  d->callback = callback;
  d->user_data = user_data;
  smolvm_record_writer_flush_async (call->ctx->records, on_flushed_then_discard, d);
}

gboolean
smolvm_call_check_cancelled (SmolvmCall *call, GError **error)
{
  if (!g_cancellable_is_cancelled (smolvm_call_get_cancellable (call)))
    return TRUE;
  g_set_error_literal (error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED, "Operation was cancelled");
  return FALSE;
}

/* ---- the reply ---- */

void
smolvm_call_fail (SmolvmCall *call, GError *error)
{
  g_autoptr(GError) owned = error;
  g_autoptr(GError) mapped = NULL;

  /* whatever step noticed it first, a cancelled call was cancelled */
  if (g_cancellable_is_cancelled (smolvm_call_get_cancellable (call)))
    mapped = g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED, "Cancelled: %s",
                          call->cancelled_summary != NULL ? call->cancelled_summary
                                                          : "nothing changed");
  else
    mapped = smolvm_error_normalize (owned);
  g_debug ("%s failed: %s", g_dbus_method_invocation_get_method_name (call->invocation),
           mapped->message);
  call->reply_error = g_steal_pointer (&mapped);
  call_end (call);
}

void
smolvm_call_fail_literal (SmolvmCall *call, gint code, const gchar *format, ...)
{
  va_list args;
  g_autofree gchar *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  smolvm_call_fail (call, g_error_new_literal (SMOLVM_ERROR, code, message));
}

GDBusMethodInvocation *
smolvm_call_take_invocation (SmolvmCall *call)
{
  return g_steal_pointer (&call->invocation);
}

void
smolvm_call_done (SmolvmCall *call)
{
  g_return_if_fail (call->invocation == NULL);
  call_end (call);
}

void
smolvm_call_return (SmolvmCall *call, GVariant *value)
{
  /* floating values are sunk here, as return_value() would */
  call->reply = value != NULL ? g_variant_ref_sink (value) : NULL;
  call_end (call);
}

int
smolvm_call_take_fd (GUnixFDList *fd_list, GVariant *handle, const gchar *what, GError **error)
{
  gint32 index = g_variant_get_handle (handle);

  if (fd_list == NULL || index < 0 || index >= g_unix_fd_list_get_length (fd_list)) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                 "%s: the message has no descriptor %d", what, index);
    return -1;
  }
  return g_unix_fd_list_get (fd_list, index, error);
}
