/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "smolvm-error-map.h"
#include "smolvm-steps.h"

typedef struct {
  SmolvmStepFunc func;
  gpointer data;
  GDestroyNotify destroy;
} Step;

struct _SmolvmSteps {
  GObject parent_instance;
  GTask *task;
  gchar *name;
  GArray *steps; /* Step */
  guint next;
  gboolean running;  /* between run and completion */
  gboolean in_step;  /* a step has been started and has not ended yet */
  gpointer data;
  GDestroyNotify data_destroy;
  SmolvmStepsRollbackFunc rollback;
  GError *error; /* of a failed run, while it rolls back */
};

G_DEFINE_TYPE (SmolvmSteps, smolvm_steps, G_TYPE_OBJECT)

static void
step_clear (Step *step)
{
  if (step->destroy != NULL && step->data != NULL)
    step->destroy (step->data);
}

static void
smolvm_steps_finalize (GObject *object)
{
  SmolvmSteps *self = SMOLVM_STEPS (object);

  g_array_unref (self->steps);
  if (self->data_destroy != NULL && self->data != NULL)
    self->data_destroy (self->data);
  g_clear_object (&self->task);
  g_clear_error (&self->error);
  g_free (self->name);
  G_OBJECT_CLASS (smolvm_steps_parent_class)->finalize (object);
}

static void
smolvm_steps_class_init (SmolvmStepsClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = smolvm_steps_finalize;
}

static void
smolvm_steps_init (SmolvmSteps *self)
{
  self->steps = g_array_new (FALSE, TRUE, sizeof (Step));
  g_array_set_clear_func (self->steps, (GDestroyNotify) step_clear);
}

SmolvmSteps *
smolvm_steps_new (gpointer source_object, const gchar *name, GCancellable *cancellable,
                  GAsyncReadyCallback callback, gpointer user_data)
{
  SmolvmSteps *self = g_object_new (SMOLVM_TYPE_STEPS, NULL);

  self->name = g_strdup (name);
  self->task = g_task_new (source_object, cancellable, callback, user_data);
  g_task_set_name (self->task, name);
  /* the run decides what a cancel means (a finished run stays finished);
   * GTask would turn even a success into G_IO_ERROR_CANCELLED */
  g_task_set_check_cancellable (self->task, FALSE);
  return self;
}

void
smolvm_steps_set_data (SmolvmSteps *self, gpointer data, GDestroyNotify destroy)
{
  g_return_if_fail (self->data == NULL);
  self->data = data;
  self->data_destroy = destroy;
}

gpointer
smolvm_steps_get_data (SmolvmSteps *self)
{
  return self->data;
}

gpointer
smolvm_steps_get_source_object (SmolvmSteps *self)
{
  return g_task_get_source_object (self->task);
}

GCancellable *
smolvm_steps_get_cancellable (SmolvmSteps *self)
{
  return g_task_get_cancellable (self->task);
}

const gchar *
smolvm_steps_get_name (SmolvmSteps *self)
{
  return self->name;
}

void
smolvm_steps_add (SmolvmSteps *self, SmolvmStepFunc func, gpointer step_data,
                  GDestroyNotify destroy)
{
  Step step = { func, step_data, destroy };
  g_array_append_val (self->steps, step);
}

void
smolvm_steps_set_rollback (SmolvmSteps *self, SmolvmStepsRollbackFunc rollback)
{
  self->rollback = rollback;
}

static gboolean
is_cancelled (SmolvmSteps *self)
{
  return g_cancellable_is_cancelled (smolvm_steps_get_cancellable (self));
}

/* Ends the run: the caller hears of it, and the run's own reference goes
 * (after the callback, if GTask calls it at once). */
static void
complete (SmolvmSteps *self, GError *error)
{
  g_autoptr(SmolvmSteps) owned = self;

  owned->running = FALSE;
  if (error != NULL)
    g_task_return_error (owned->task, error);
  else
    g_task_return_boolean (owned->task, TRUE);
}

static void
run_next (SmolvmSteps *self)
{
  Step *step;

  if (self->next >= self->steps->len) {
    complete (self, NULL);
    return;
  }
  if (is_cancelled (self)) {
    smolvm_steps_fail (self, g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED, "Cancelled: %s",
                                          self->name));
    return;
  }
  step = &g_array_index (self->steps, Step, self->next++);
  self->in_step = TRUE;
  step->func (self, step->data);
}

void
smolvm_steps_run (SmolvmSteps *self)
{
  g_return_if_fail (!self->running && self->next == 0);
  self->running = TRUE; /* the caller's reference is now the run's */
  run_next (self);
}

void
smolvm_steps_next (SmolvmSteps *self)
{
  g_return_if_fail (self->running && self->in_step);
  self->in_step = FALSE;
  run_next (self);
}

void
smolvm_steps_fail (SmolvmSteps *self, GError *error)
{
  g_autoptr(GError) owned = error;

  g_return_if_fail (self->running && self->error == NULL);
  self->in_step = FALSE;
  /* whatever a step says when it was stopped on purpose, the caller must
   * hear Cancelled (cancelled soup requests, copies, migrations...) */
  if ((is_cancelled (self) || g_error_matches (owned, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED) ||
       g_error_matches (owned, G_IO_ERROR, G_IO_ERROR_CANCELLED)) &&
      !(g_error_matches (owned, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED) &&
        g_str_has_prefix (owned->message, "Cancelled")))
    self->error = g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED, "Cancelled: %s (%s)",
                               self->name, owned->message);
  else if (owned->domain != SMOLVM_ERROR)
    self->error = smolvm_error_normalize (owned);
  else
    self->error = g_steal_pointer (&owned);
  if (self->rollback != NULL) {
    self->rollback (self, self->error);
    return;
  }
  smolvm_steps_rollback_done (self);
}

void
smolvm_steps_rollback_done (SmolvmSteps *self)
{
  g_return_if_fail (self->running && self->error != NULL);
  complete (self, g_steal_pointer (&self->error));
}

gboolean
smolvm_steps_finish (GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}
