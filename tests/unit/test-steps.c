/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <unistd.h>

#include <gio/gio.h>
#include <gio/gunixinputstream.h>
#include <glib-unix.h>

#include "smolvm-error.h"
#include "smolvm-steps.h"

/* What the steps of one run did, in order. */
typedef struct {
  GString *trace;
  GCancellable *cancellable;
  gboolean done;
  gboolean success;
  GError *error;
  guint data_freed;
  guint rollback_delay_ms; /* 0: the rollback ends at once */
} Run;

static void
run_clear (Run *run)
{
  g_string_free (run->trace, TRUE);
  g_clear_object (&run->cancellable);
  g_clear_error (&run->error);
}

static void
on_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Run *run = user_data;
  run->success = smolvm_steps_finish (result, &run->error);
  g_string_append (run->trace, "done;");
  run->done = TRUE;
}

static void
on_data_freed (gpointer data)
{
  ((Run *) data)->data_freed++;
}

/* step_data: a name; appends it to the trace and goes on at once */
static void
step_sync (SmolvmSteps *steps, gpointer step_data)
{
  Run *run = smolvm_steps_get_data (steps);
  g_string_append_printf (run->trace, "%s;", (const gchar *) step_data);
  smolvm_steps_next (steps);
}

static gboolean
on_later (gpointer user_data)
{
  SmolvmSteps *steps = user_data;
  Run *run = smolvm_steps_get_data (steps);
  g_string_append (run->trace, "later;");
  smolvm_steps_next (steps);
  return G_SOURCE_REMOVE;
}

/* goes on from the main loop, as a real step would */
static void
step_async (SmolvmSteps *steps, gpointer step_data)
{
  g_timeout_add (10, on_later, steps);
}

static void
step_fail (SmolvmSteps *steps, gpointer step_data)
{
  Run *run = smolvm_steps_get_data (steps);
  g_string_append (run->trace, "fail;");
  smolvm_steps_fail (steps, g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_BACKEND, "it broke"));
}

static void
step_cancel (SmolvmSteps *steps, gpointer step_data)
{
  Run *run = smolvm_steps_get_data (steps);
  g_string_append (run->trace, "cancel;");
  g_cancellable_cancel (run->cancellable);
  smolvm_steps_next (steps);
}

static void
step_add_more (SmolvmSteps *steps, gpointer step_data)
{
  smolvm_steps_add (steps, step_sync, (gpointer) "added", NULL);
  smolvm_steps_next (steps);
}

static void
on_io_cancelled (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmolvmSteps *steps = user_data;
  GError *error = NULL;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);

  g_assert_cmpint (n, <, 0);
  smolvm_steps_fail (steps, error); /* a G_IO_ERROR_CANCELLED */
}

/* a GIO call that only the cancellable ends: a read on a pipe nobody
 * writes to */
static void
step_blocking_read (SmolvmSteps *steps, gpointer step_data)
{
  GInputStream *stream = step_data;
  static gchar buffer[16];
  g_input_stream_read_async (stream, buffer, sizeof buffer, G_PRIORITY_DEFAULT,
                             smolvm_steps_get_cancellable (steps), on_io_cancelled, steps);
}

static gboolean
on_rollback_over (gpointer user_data)
{
  SmolvmSteps *steps = user_data;
  Run *run = smolvm_steps_get_data (steps);
  g_string_append (run->trace, "rolled-back;");
  smolvm_steps_rollback_done (steps);
  return G_SOURCE_REMOVE;
}

static void
rollback (SmolvmSteps *steps, const GError *error)
{
  Run *run = smolvm_steps_get_data (steps);
  g_string_append_printf (run->trace, "rollback(%s);", error->message);
  if (run->rollback_delay_ms > 0)
    g_timeout_add (run->rollback_delay_ms, on_rollback_over, steps);
  else
    on_rollback_over (steps);
}

static SmolvmSteps *
new_run (Run *run, gboolean with_rollback)
{
  GObject *source = g_object_new (G_TYPE_OBJECT, NULL);
  SmolvmSteps *steps;

  run->trace = g_string_new ("");
  run->cancellable = g_cancellable_new ();
  steps = smolvm_steps_new (source, "testing", run->cancellable, on_done, run);
  g_object_unref (source); /* the run holds it */
  smolvm_steps_set_data (steps, run, on_data_freed);
  if (with_rollback)
    smolvm_steps_set_rollback (steps, rollback);
  return steps;
}

static void
wait_done (Run *run)
{
  while (!run->done)
    g_main_context_iteration (NULL, TRUE);
  /* the run's last reference goes once the callback has returned */
  while (g_main_context_pending (NULL))
    g_main_context_iteration (NULL, FALSE);
}

static void
test_order (void)
{
  Run run = { 0 };
  SmolvmSteps *steps = new_run (&run, TRUE);

  smolvm_steps_add (steps, step_sync, (gpointer) "a", NULL);
  smolvm_steps_add (steps, step_async, NULL, NULL);
  smolvm_steps_add (steps, step_sync, (gpointer) "b", NULL);
  smolvm_steps_add (steps, step_add_more, NULL, NULL);
  smolvm_steps_add (steps, step_sync, (gpointer) "c", NULL);
  g_assert_cmpstr (smolvm_steps_get_name (steps), ==, "testing");
  smolvm_steps_run (steps);
  wait_done (&run);
  g_assert_no_error (run.error);
  g_assert_true (run.success);
  /* a step added while running goes last */
  g_assert_cmpstr (run.trace->str, ==, "a;later;b;c;added;done;");
  g_assert_cmpuint (run.data_freed, ==, 1);
  run_clear (&run);
}

static void
test_empty (void)
{
  Run run = { 0 };
  smolvm_steps_run (new_run (&run, FALSE));
  wait_done (&run);
  g_assert_true (run.success);
  g_assert_cmpuint (run.data_freed, ==, 1);
  run_clear (&run);
}

static void
test_failure_hook (void)
{
  Run run = { 0 };
  SmolvmSteps *steps = new_run (&run, TRUE);

  run.rollback_delay_ms = 20; /* the caller hears of it only afterwards */
  smolvm_steps_add (steps, step_sync, (gpointer) "a", NULL);
  smolvm_steps_add (steps, step_fail, NULL, NULL);
  smolvm_steps_add (steps, step_sync, (gpointer) "never", NULL);
  smolvm_steps_run (steps);
  wait_done (&run);
  g_assert_false (run.success);
  g_assert_error (run.error, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND);
  g_assert_cmpstr (run.error->message, ==, "it broke");
  g_assert_cmpstr (run.trace->str, ==, "a;fail;rollback(it broke);rolled-back;done;");
  g_assert_cmpuint (run.data_freed, ==, 1);
  run_clear (&run);
}

static void
test_failure_without_hook (void)
{
  Run run = { 0 };
  SmolvmSteps *steps = new_run (&run, FALSE);

  smolvm_steps_add (steps, step_fail, NULL, NULL);
  smolvm_steps_run (steps);
  wait_done (&run);
  g_assert_error (run.error, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND);
  g_assert_cmpstr (run.trace->str, ==, "fail;done;");
  run_clear (&run);
}

static void
test_cancel_between_steps (void)
{
  Run run = { 0 };
  SmolvmSteps *steps = new_run (&run, TRUE);

  smolvm_steps_add (steps, step_sync, (gpointer) "a", NULL);
  smolvm_steps_add (steps, step_cancel, NULL, NULL);
  smolvm_steps_add (steps, step_sync, (gpointer) "never", NULL);
  smolvm_steps_run (steps);
  wait_done (&run);
  g_assert_error (run.error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED);
  g_assert_true (g_str_has_prefix (run.error->message, "Cancelled"));
  g_assert_cmpstr (run.trace->str, ==, "a;cancel;rollback(Cancelled: testing);rolled-back;done;");
  run_clear (&run);
}

static void
test_cancel_before_run (void)
{
  Run run = { 0 };
  SmolvmSteps *steps = new_run (&run, FALSE);

  smolvm_steps_add (steps, step_sync, (gpointer) "never", NULL);
  g_cancellable_cancel (run.cancellable);
  smolvm_steps_run (steps);
  wait_done (&run);
  g_assert_error (run.error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED);
  g_assert_cmpstr (run.trace->str, ==, "done;");
  run_clear (&run);
}

static gboolean
on_cancel_timer (gpointer user_data)
{
  g_cancellable_cancel (user_data);
  return G_SOURCE_REMOVE;
}

/* A step stopped by the cancellable fails with whatever its API says; the
 * caller must hear Cancelled all the same. */
static void
test_cancel_during_step (void)
{
  Run run = { 0 };
  SmolvmSteps *steps = new_run (&run, TRUE);
  g_autoptr(GError) error = NULL;
  g_autoptr(GInputStream) stream = NULL;
  int fds[2];

  g_assert_true (g_unix_open_pipe (fds, FD_CLOEXEC, &error));
  g_assert_no_error (error);
  stream = g_unix_input_stream_new (fds[0], TRUE);
  smolvm_steps_add (steps, step_sync, (gpointer) "a", NULL);
  smolvm_steps_add (steps, step_blocking_read, stream, NULL);
  smolvm_steps_add (steps, step_sync, (gpointer) "never", NULL);
  g_timeout_add (30, on_cancel_timer, run.cancellable);
  smolvm_steps_run (steps);
  wait_done (&run);
  g_assert_error (run.error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED);
  g_assert_true (g_str_has_prefix (run.error->message, "Cancelled: testing ("));
  g_assert_true (g_str_has_prefix (run.trace->str, "a;rollback(Cancelled: testing"));
  g_assert_true (g_str_has_suffix (run.trace->str, ";rolled-back;done;"));
  close (fds[1]);
  run_clear (&run);
}

/* A cancel after the last step has ended changes nothing: the work is done. */
static void
test_cancel_after_last_step (void)
{
  Run run = { 0 };
  SmolvmSteps *steps = new_run (&run, TRUE);

  smolvm_steps_add (steps, step_sync, (gpointer) "a", NULL);
  smolvm_steps_add (steps, step_cancel, NULL, NULL);
  smolvm_steps_run (steps);
  wait_done (&run);
  g_assert_no_error (run.error);
  g_assert_true (run.success);
  g_assert_cmpstr (run.trace->str, ==, "a;cancel;done;");
  run_clear (&run);
}

static void
free_counted (gpointer data)
{
  (*(guint *) data)++;
}

static void
test_step_data_freed (void)
{
  Run run = { 0 };
  SmolvmSteps *steps = new_run (&run, FALSE);
  guint freed = 0;

  smolvm_steps_add (steps, step_fail, NULL, NULL);
  /* the steps that never run are freed too */
  smolvm_steps_add (steps, step_sync, &freed, free_counted);
  smolvm_steps_add (steps, step_sync, &freed, free_counted);
  smolvm_steps_run (steps);
  wait_done (&run);
  g_assert_cmpuint (freed, ==, 2);
  g_assert_cmpuint (run.data_freed, ==, 1);
  run_clear (&run);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  smolvm_error_quark ();
  g_test_add_func ("/steps/order", test_order);
  g_test_add_func ("/steps/empty", test_empty);
  g_test_add_func ("/steps/failure-hook", test_failure_hook);
  g_test_add_func ("/steps/failure-without-hook", test_failure_without_hook);
  g_test_add_func ("/steps/cancel-between-steps", test_cancel_between_steps);
  g_test_add_func ("/steps/cancel-before-run", test_cancel_before_run);
  g_test_add_func ("/steps/cancel-during-step", test_cancel_during_step);
  g_test_add_func ("/steps/cancel-after-last-step", test_cancel_after_last_step);
  g_test_add_func ("/steps/step-data-freed", test_step_data_freed);
  return g_test_run ();
}
