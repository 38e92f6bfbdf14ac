/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "smolvm-authority.h"
#include "smolvm-error-map.h"
#include "smolvm-job.h"
#include "smolvm-registry.h"

/* Progress is sampled this often: it caps the PropertiesChanged rate. */
#define SAMPLE_INTERVAL_MS 100
/* The rate is measured over the last this many samples (3 s). */
#define RATE_WINDOW 30

typedef struct {
  gint64 time;
  guint64 done;
} Sample;

struct _SmolvmJob {
  SmolvmDbusJobSkeleton parent_instance;
  SmolvmContext *ctx;
  gchar *object_path;
  gchar *action_id;
  SmolvmProgress *progress;
  GCancellable *cancellable;
  GPtrArray *objects;
  guint sample_source;
  Sample samples[RATE_WINDOW];
  guint n_samples;
  guint next_sample;
  gboolean completed;
};

static void smolvm_job_iface_init (SmolvmDbusJobIface *iface);

G_DEFINE_TYPE_WITH_CODE (SmolvmJob, smolvm_job, SMOLVM_DBUS_TYPE_JOB_SKELETON,
                         G_IMPLEMENT_INTERFACE (SMOLVM_DBUS_TYPE_JOB, smolvm_job_iface_init))

static void
smolvm_job_finalize (GObject *object)
{
  SmolvmJob *self = SMOLVM_JOB (object);
  g_clear_handle_id (&self->sample_source, g_source_remove);
  if (self->progress != NULL)
    g_signal_handlers_disconnect_by_data (self->progress, self);
  g_clear_object (&self->progress);
  g_clear_object (&self->cancellable);
  g_ptr_array_unref (self->objects);
  g_free (self->object_path);
  g_free (self->action_id);
  G_OBJECT_CLASS (smolvm_job_parent_class)->finalize (object);
}

static void
smolvm_job_class_init (SmolvmJobClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = smolvm_job_finalize;
}

static void
smolvm_job_init (SmolvmJob *self)
{
  self->objects = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (self->objects, NULL);
}

/* ---- progress ---- */

static void
publish_progress (SmolvmJob *self)
{
  SmolvmDbusJob *iface = SMOLVM_DBUS_JOB (self);
  guint64 done = smolvm_progress_get_done (self->progress);
  guint64 total = smolvm_progress_get_total (self->progress);
  gint64 now = g_get_real_time ();
  gboolean valid = smolvm_progress_get_measurable (self->progress) && total > 0;
  guint64 rate = 0;
  Sample *oldest;

  self->samples[self->next_sample] = (Sample){ now, done };
  self->next_sample = (self->next_sample + 1) % RATE_WINDOW;
  self->n_samples = MIN (self->n_samples + 1, RATE_WINDOW);
  oldest = &self->samples[self->n_samples < RATE_WINDOW ? 0 : self->next_sample];
  if (now > oldest->time && done >= oldest->done)
    rate = (guint64) ((gdouble) (done - oldest->done) * G_USEC_PER_SEC /
                      (gdouble) (now - oldest->time));

  smolvm_dbus_job_set_bytes_done (iface, done);
  smolvm_dbus_job_set_bytes_total (iface, total);
  smolvm_dbus_job_set_rate (iface, rate);
  smolvm_dbus_job_set_progress_valid (iface, valid);
  /* a phase that learns its size late grows the total: Progress holds
   * still then rather than going back */
  if (total > 0)
    smolvm_dbus_job_set_progress (
      iface, MAX (smolvm_dbus_job_get_progress (iface), MIN ((gdouble) done / (gdouble) total, 1.0)));
  smolvm_dbus_job_set_expected_end_time (
    iface, valid && rate > 0 && done < total
             ? (guint64) now + (total - done) * G_USEC_PER_SEC / rate
             : 0);
}

static gboolean
on_sample (gpointer user_data)
{
  publish_progress (user_data);
  return G_SOURCE_CONTINUE;
}

static void
on_phase_changed (SmolvmProgress *progress, gpointer user_data)
{
  SmolvmJob *self = user_data;
  smolvm_dbus_job_set_phase (SMOLVM_DBUS_JOB (self), smolvm_progress_get_phase (progress));
  publish_progress (self);
}

SmolvmJob *
smolvm_job_new (SmolvmContext *ctx, const gchar *operation, const gchar *action_id, guint32 uid)
{
  SmolvmJob *self = g_object_new (SMOLVM_TYPE_JOB, NULL);
  SmolvmDbusJob *iface = SMOLVM_DBUS_JOB (self);

  self->ctx = ctx;
  self->object_path = g_strdup_printf ("/org/smolvm/Manager/job/%u",
                                       smolvm_registry_next_job_number (ctx->registry));
  self->action_id = g_strdup (action_id);
  self->progress = smolvm_progress_new ();
  self->cancellable = g_cancellable_new ();
  g_signal_connect (self->progress, "phase-changed", G_CALLBACK (on_phase_changed), self);
  smolvm_dbus_job_set_operation (iface, operation);
  smolvm_dbus_job_set_objects (iface, (const gchar *const *) self->objects->pdata);
  smolvm_dbus_job_set_phase (iface, "");
  smolvm_dbus_job_set_start_time (iface, (guint64) g_get_real_time ());
  smolvm_dbus_job_set_started_by_uid (iface, uid);
  smolvm_dbus_job_set_cancelable (iface, TRUE);
  self->sample_source = g_timeout_add (SAMPLE_INTERVAL_MS, on_sample, self);
  return self;
}

const gchar *smolvm_job_get_object_path (SmolvmJob *self) { return self->object_path; }
SmolvmProgress *smolvm_job_get_progress (SmolvmJob *self) { return self->progress; }
GCancellable *smolvm_job_get_cancellable (SmolvmJob *self) { return self->cancellable; }

void
smolvm_job_add_object (SmolvmJob *self, const gchar *object_path)
{
  g_ptr_array_insert (self->objects, (gint) self->objects->len - 1, g_strdup (object_path));
  smolvm_dbus_job_set_objects (SMOLVM_DBUS_JOB (self),
                               (const gchar *const *) self->objects->pdata);
}

void
smolvm_job_set_phase (SmolvmJob *self, const gchar *phase)
{
  smolvm_progress_set_phase (self->progress, phase, FALSE);
}

void
smolvm_job_set_cancelable (SmolvmJob *self, gboolean cancelable)
{
  smolvm_dbus_job_set_cancelable (SMOLVM_DBUS_JOB (self), cancelable && !self->completed);
}

void
smolvm_job_complete (SmolvmJob *self, const GError *error)
{
  if (self->completed)
    return;
  self->completed = TRUE;
  g_clear_handle_id (&self->sample_source, g_source_remove);
  publish_progress (self);
  smolvm_dbus_job_set_cancelable (SMOLVM_DBUS_JOB (self), FALSE);
  /* one sender's messages arrive in order: the last PropertiesChanged, then
   * Completed, then InterfacesRemoved, then the reply of the method that
   * started the work */
  g_dbus_interface_skeleton_flush (G_DBUS_INTERFACE_SKELETON (self));
  smolvm_dbus_job_emit_completed (SMOLVM_DBUS_JOB (self), error == NULL,
                                  error != NULL ? error->message : "");
  smolvm_registry_remove_job (self->ctx->registry, self);
}

/* ---- Cancel ---- */

typedef struct {
  SmolvmJob *job;
  GDBusMethodInvocation *invocation;
} CancelCall;

static void
cancel_call_free (CancelCall *call)
{
  g_object_unref (call->job);
  g_clear_object (&call->invocation);
  g_free (call);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CancelCall, cancel_call_free)

static void
cancel_call_return (CancelCall *call, GError *error)
{
  SmolvmJob *self = call->job;
  g_autoptr(GError) owned = error;

  if (owned == NULL && !smolvm_dbus_job_get_cancelable (SMOLVM_DBUS_JOB (self)))
    owned = g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_INVALID_STATE,
                         "Job %s can no longer be cancelled (%s)", self->object_path,
                         self->completed ? "it is over" : "its result is being committed");
  if (owned != NULL) {
    g_autoptr(GError) mapped = smolvm_error_normalize (owned);
    g_dbus_method_invocation_return_gerror (g_steal_pointer (&call->invocation), mapped);
    return;
  }
  g_message ("Cancelling job %s (%s)", self->object_path,
             smolvm_dbus_job_get_operation (SMOLVM_DBUS_JOB (self)));
  smolvm_progress_set_phase (self->progress, "cancelling", FALSE);
  g_cancellable_cancel (self->cancellable);
  g_dbus_method_invocation_return_value (g_steal_pointer (&call->invocation), NULL);
}

static void
on_cancel_authorized (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(CancelCall) call = user_data;
  g_autoptr(GError) error = NULL;

  smolvm_authority_check_finish (SMOLVM_AUTHORITY (source), result, &error);
  cancel_call_return (call, g_steal_pointer (&error));
}

static void
on_cancel_caller_uid (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(CancelCall) call = user_data;
  SmolvmJob *self = call->job;
  /* read before the call is stolen: arguments are evaluated in no set order */
  GDBusMethodInvocation *invocation = call->invocation;
  g_autoptr(GError) error = NULL;
  guint32 uid;

  if (!smolvm_authority_get_caller_uid_finish (result, &uid, &error)) {
    cancel_call_return (call, g_steal_pointer (&error));
    return;
  }
  /* its starter may always stop it; anyone else needs the operation's right */
  if (uid == smolvm_dbus_job_get_started_by_uid (SMOLVM_DBUS_JOB (self))) {
    cancel_call_return (call, NULL);
    return;
  }
  smolvm_authority_check_async (self->ctx->authority, invocation, self->action_id, NULL, NULL,
                                "cancel", on_cancel_authorized, g_steal_pointer (&call));
}

static gboolean
handle_cancel (SmolvmDbusJob *object, GDBusMethodInvocation *invocation, GVariant *options)
{
  SmolvmJob *self = SMOLVM_JOB (object);
  CancelCall *call = g_new0 (CancelCall, 1);

  call->job = g_object_ref (self);
  /* the handler's reference, which the return consumes */
  call->invocation = invocation;
  if (g_variant_n_children (options) > 0) {
    GVariantIter iter;
    const gchar *key = NULL;
    g_variant_iter_init (&iter, options);
    g_variant_iter_next (&iter, "{&sv}", &key, NULL);
    cancel_call_return (call, g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                                           "Unknown option '%s'", key));
    cancel_call_free (call);
    return G_DBUS_METHOD_INVOCATION_HANDLED;
  }
  smolvm_authority_get_caller_uid_async (invocation, on_cancel_caller_uid, call);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static void
smolvm_job_iface_init (SmolvmDbusJobIface *iface)
{
  iface->handle_cancel = handle_cancel;
}
