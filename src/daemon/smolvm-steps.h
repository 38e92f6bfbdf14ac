/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define SMOLVM_TYPE_STEPS (smolvm_steps_get_type ())
G_DECLARE_FINAL_TYPE (SmolvmSteps, smolvm_steps, SMOLVM, STEPS, GObject)

/* Runs asynchronous steps one after the other for one operation of a VMM
 * or of the network code, and completes it once, as a GTask of its source
 * object would.
 *
 * A step starts work and ends it, now or later, with exactly one call of
 * smolvm_steps_next() or smolvm_steps_fail(). A run keeps itself alive
 * until it completes, so a step's async callback may take the SmolvmSteps
 * as a borrowed user_data pointer.
 *
 * Before each step the cancellable is checked; a run that is cancelled, or
 * whose step fails while it is cancelled, fails with SMOLVM_ERROR_CANCELLED
 * ("Cancelled: NAME"). A cancel that comes after the last step has ended
 * changes nothing: the work is done.
 *
 * On failure the rollback hook, if any, runs first (e.g. a failed launch
 * terminates its process) and calls smolvm_steps_rollback_done() when it
 * is over; only then does the caller hear of the error. */

typedef void (*SmolvmStepFunc) (SmolvmSteps *steps, gpointer step_data);
typedef void (*SmolvmStepsRollbackFunc) (SmolvmSteps *steps, const GError *error);

/* @name says what the run does, for messages ("saving the VM state"). */
SmolvmSteps *smolvm_steps_new (gpointer source_object, const gchar *name,
                               GCancellable *cancellable, GAsyncReadyCallback callback,
                               gpointer user_data);

/* The operation's own state, freed with the run. */
void smolvm_steps_set_data (SmolvmSteps *self, gpointer data, GDestroyNotify destroy);
gpointer smolvm_steps_get_data (SmolvmSteps *self);
gpointer smolvm_steps_get_source_object (SmolvmSteps *self);
GCancellable *smolvm_steps_get_cancellable (SmolvmSteps *self);
const gchar *smolvm_steps_get_name (SmolvmSteps *self);

/* Appends a step; also allowed while the run is under way (a step may
 * decide what follows). @step_data is freed with the run. */
void smolvm_steps_add (SmolvmSteps *self, SmolvmStepFunc step, gpointer step_data,
                       GDestroyNotify destroy);
void smolvm_steps_set_rollback (SmolvmSteps *self, SmolvmStepsRollbackFunc rollback);

/* Starts the run; consumes the caller's reference. */
void smolvm_steps_run (SmolvmSteps *self);

/* From a step: it succeeded; the next one starts (or the run completes). */
void smolvm_steps_next (SmolvmSteps *self);
/* From a step: it failed with @error (taken). */
void smolvm_steps_fail (SmolvmSteps *self, GError *error);
/* From the rollback hook: it is over. */
void smolvm_steps_rollback_done (SmolvmSteps *self);

gboolean smolvm_steps_finish (GAsyncResult *result, GError **error);

G_END_DECLS
