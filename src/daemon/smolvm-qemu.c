/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2, F_SETPIPE_SZ */
#endif
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smolvm-error-map.h"
#include "smolvm-fileutil.h"
#include "smolvm-qemu.h"
#include "smolvm-qemu-stream.h"
#include "smolvm-net-config.h"
#include "smolvm-qmp.h"
#include "smolvm-steps.h"

#define SOCKET_WAIT_MS 30000
/* how often an outgoing migration is asked how far it got */
#define MIGRATION_POLL_MS 100
/* how long QEMU may stay in finish-migrate after a migration ends */
#define SETTLE_RETRY_MS 10
#define SETTLE_TRIES 500
#define MIB (1024 * 1024)
/* a name QEMU knows the migration stream's descriptor by */
#define VMSTATE_FDNAME "smolvm-vmstate"
/* the guest RAM's backend id: also the RAM block's name in the stream, so
 * it must be the same in every process that saves or loads a snapshot */
#define RAM_ID "ram0"
/* what the migration stream of a privately mapped VM goes through */
#define SPLIT_PIPE_SIZE (1024 * 1024)

struct _SmolvmQemu {
  SmolvmVmm parent_instance;
  gchar *qmp_socket;
  gchar *ram_path;
  gchar *log_path; /* QEMU's own stderr; the guest console has the console log */
  gchar *pid_path;
  gboolean runtime_files_cleared;
  SmolvmQmp *qmp;
  GTask *migration; /* waiting for the MIGRATION event to settle */
};

G_DEFINE_TYPE (SmolvmQemu, smolvm_qemu, SMOLVM_TYPE_VMM)

/* binaries whose memory-backend-file has "rom" (smolvm_qemu_probe_readonly_ram) */
static GHashTable *readonly_ram_binaries;

static gboolean
binary_maps_readonly (SmolvmQemu *self)
{
  return readonly_ram_binaries != NULL &&
         g_hash_table_contains (readonly_ram_binaries, smolvm_vmm_get_binary (SMOLVM_VMM (self)));
}

/* mem.bin files whose owner write permission is lent to QEMUs starting on
 * them (step_check_mem), by path: clones of one snapshot load at once and
 * share one loan, which ends when the last of them is up (or has failed).
 * Main thread only. */
typedef struct {
  guint holders;
  mode_t mode; /* the mode before the loan */
} MemLoan;
static GHashTable *mem_loans;

static void
smolvm_qemu_finalize (GObject *object)
{
  SmolvmQemu *self = SMOLVM_QEMU (object);
  if (self->qmp != NULL) {
    g_signal_handlers_disconnect_by_data (self->qmp, self);
    smolvm_qmp_close (self->qmp);
  }
  g_clear_object (&self->qmp);
  g_free (self->qmp_socket);
  g_free (self->ram_path);
  g_free (self->log_path);
  g_free (self->pid_path);
  G_OBJECT_CLASS (smolvm_qemu_parent_class)->finalize (object);
}

/* Once the process is gone: guest RAM went with it, so its file is ours to
 * remove, and so are the monitor socket and pid file that a QEMU which
 * exit()s on an error (a failed incoming migration) or is killed leaves
 * behind. An object runs one process, so this happens once: a late exit
 * notification must not remove the files of the VM's next process. */
static void
on_ram_removed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GError) error = NULL;
  if (!smolvm_rm_rf_finish (result, &error))
    g_warning ("%s", error->message);
}

/* Freeing GiBs of guest RAM can take a while: the file is renamed into a
 * .trash- directory of the runtime root at once (smolvmd's start-up clears
 * what a crash leaves there) and removed in a worker. */
static void
discard_ram_file (SmolvmQemu *self)
{
  g_autofree gchar *root = g_path_get_dirname (smolvm_vmm_get_runtime_dir (SMOLVM_VMM (self)));
  g_autoptr(GError) error = NULL;
  g_autofree gchar *trash = NULL;
  struct stat st;

  /* a restored VM maps its snapshot's mem.bin instead */
  if (lstat (self->ram_path, &st) != 0 && errno == ENOENT)
    return;
  trash = smolvm_move_to_trash (root, self->ram_path, &error);
  if (trash == NULL) {
    g_warning ("%s; removing it here", error->message);
    if (unlink (self->ram_path) != 0 && errno != ENOENT)
      g_warning ("Cannot remove %s: %s", self->ram_path, g_strerror (errno));
    return;
  }
  smolvm_rm_rf_async (trash, on_ram_removed, NULL);
}

static void
clear_runtime_files (SmolvmQemu *self)
{
  if (self->runtime_files_cleared)
    return;
  self->runtime_files_cleared = TRUE;
  discard_ram_file (self);
  unlink (self->qmp_socket);
  unlink (self->pid_path);
}

static void settle_migration (SmolvmQemu *self, GError *error);
static GError *qemu_error (SmolvmQemu *self, const gchar *what, const GError *cause);

static void
on_exited (SmolvmVmm *vmm, gboolean clean, gpointer user_data)
{
  SmolvmQemu *self = SMOLVM_QEMU (vmm);
  clear_runtime_files (self);
  /* the exit may be handled before the monitor's last event and EOF are
   * read, and no MIGRATION event or "closed" signal comes after this */
  if (self->migration != NULL)
    settle_migration (self, qemu_error (self, "Migration failed", NULL));
  if (self->qmp != NULL) {
    g_signal_handlers_disconnect_by_data (self->qmp, self);
    smolvm_qmp_close (self->qmp);
    g_clear_object (&self->qmp);
  }
}

static void
smolvm_qemu_constructed (GObject *object)
{
  SmolvmQemu *self = SMOLVM_QEMU (object);
  const gchar *runtime_dir = smolvm_vmm_get_runtime_dir (SMOLVM_VMM (self));

  G_OBJECT_CLASS (smolvm_qemu_parent_class)->constructed (object);
  self->qmp_socket = g_build_filename (runtime_dir, "qmp.sock", NULL);
  self->ram_path = g_build_filename (runtime_dir, "ram", NULL);
  self->log_path = g_build_filename (runtime_dir, "qemu.log", NULL);
  self->pid_path = g_build_filename (runtime_dir, "qemu.pid", NULL);
  smolvm_vmm_set_process_log_path (SMOLVM_VMM (self), self->log_path);
  g_signal_connect (self, "exited", G_CALLBACK (on_exited), NULL);
}

/* QEMU says why it failed only on stderr: quote its last line. */
static gchar *
last_log_line (SmolvmQemu *self)
{
  g_autofree gchar *contents = NULL;
  g_auto(GStrv) lines = NULL;

  if (!g_file_get_contents (self->log_path, &contents, NULL, NULL))
    return g_strdup ("no output");
  lines = g_strsplit (g_strstrip (contents), "\n", -1);
  if (lines[0] == NULL || lines[0][0] == '\0')
    return g_strdup ("no output");
  return g_strdup (lines[g_strv_length (lines) - 1]);
}

static GError *
qemu_error (SmolvmQemu *self, const gchar *what, const GError *cause)
{
  g_autofree gchar *line = last_log_line (self);
  if (!smolvm_vmm_is_running (SMOLVM_VMM (self)))
    return g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_BACKEND, "%s: QEMU exited: %s", what, line);
  return g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_BACKEND, "%s: %s", what,
                      cause != NULL ? cause->message : line);
}

/* ---- QMP events drive the VM's state ---- */

static void
settle_migration (SmolvmQemu *self, GError *error)
{
  g_autoptr(GError) owned = error;
  GTask *task = g_steal_pointer (&self->migration);

  if (task == NULL)
    return;
  if (owned != NULL)
    g_task_return_error (task, g_steal_pointer (&owned));
  else
    g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static void
on_qmp_event (SmolvmQmp *qmp, const gchar *name, JsonNode *data, gpointer user_data)
{
  SmolvmQemu *self = user_data;
  JsonObject *o = data != NULL && JSON_NODE_HOLDS_OBJECT (data) ? json_node_get_object (data) : NULL;

  if (g_str_equal (name, "STOP")) {
    smolvm_vmm_emit_guest_state (SMOLVM_VMM (self), TRUE);
  } else if (g_str_equal (name, "RESUME")) {
    smolvm_vmm_emit_guest_state (SMOLVM_VMM (self), FALSE);
  } else if (g_str_equal (name, "SHUTDOWN") && o != NULL &&
             json_object_get_boolean_member_with_default (o, "guest", FALSE)) {
    /* -no-reboot: QEMU exits next, and that is the guest's own doing */
    smolvm_vmm_note_guest_shutdown (SMOLVM_VMM (self));
  } else if (g_str_equal (name, "MIGRATION") && o != NULL) {
    const gchar *status = json_object_get_string_member_with_default (o, "status", "");
    if (g_str_equal (status, "completed"))
      settle_migration (self, NULL);
    else if (g_str_equal (status, "failed") || g_str_equal (status, "cancelled"))
      settle_migration (self, qemu_error (self, "Migration failed", NULL));
  }
}

static void
on_qmp_closed (SmolvmQmp *qmp, gpointer user_data)
{
  SmolvmQemu *self = user_data;
  settle_migration (self, qemu_error (self, "The QEMU monitor closed during migration", NULL));
}

static void
take_qmp (SmolvmQemu *self, SmolvmQmp *qmp)
{
  self->qmp = qmp;
  smolvm_qmp_set_timeout (qmp, smolvm_vmm_get_call_timeout (SMOLVM_VMM (self)));
  g_signal_connect (qmp, "event", G_CALLBACK (on_qmp_event), self);
  g_signal_connect (qmp, "closed", G_CALLBACK (on_qmp_closed), self);
}

/* ---- operations: QMP steps run by SmolvmSteps ---- */

/* What one operation keeps along its steps. */
typedef struct {
  const gchar *what;   /* the prefix of its errors: "Cannot save the VM state" */
  gboolean incoming;   /* start with -incoming defer */
  gboolean resume;     /* cont at the end */
  gchar *vmstate_path;
  gchar *mem_path;
  int fd;
  SmolvmProgress *progress;
  /* the migration step */
  guint migration_parts;
  GError *migration_error;
  GSource *cancel_watch;  /* fires when the caller cancels mid-migration */
  guint poll;             /* query-migrate timer of an outgoing migration */
  gboolean query_in_flight;
  guint64 seen_total;     /* what QEMU reported, already fed to the progress */
  guint64 seen_done;
  /* waiting for QEMU to leave finish-migrate */
  guint settle_tries;
  void (*settled) (SmolvmSteps *steps);
  /* a load: holds a share of mem.bin's loan (mem_loans) */
  gboolean mem_mode_lent;
  /* a save of privately mapped RAM: the stream is split as it comes */
  GCancellable *split_cancellable; /* stops the split of a failed save */
  gboolean split_running;
  GError *split_error;
  void (*split_waiter) (SmolvmSteps *steps); /* called once it ends */
} QemuOp;

static void
stop_migration_watch (QemuOp *op)
{
  g_clear_handle_id (&op->poll, g_source_remove);
  if (op->cancel_watch != NULL) {
    g_source_destroy (op->cancel_watch);
    g_clear_pointer (&op->cancel_watch, g_source_unref);
  }
}

static void
qemu_op_free (QemuOp *op)
{
  stop_migration_watch (op);
  g_free (op->vmstate_path);
  g_free (op->mem_path);
  if (op->fd >= 0)
    close (op->fd);
  g_clear_error (&op->migration_error);
  g_clear_object (&op->progress);
  g_clear_object (&op->split_cancellable);
  g_clear_error (&op->split_error);
  g_free (op);
}

static void
return_mem_mode (QemuOp *op)
{
  MemLoan *loan;

  if (!op->mem_mode_lent)
    return;
  op->mem_mode_lent = FALSE;
  loan = g_hash_table_lookup (mem_loans, op->mem_path);
  if (--loan->holders > 0)
    return;
  if (chmod (op->mem_path, loan->mode) != 0)
    g_warning ("Cannot make %s read-only again: %s", op->mem_path, g_strerror (errno));
  g_hash_table_remove (mem_loans, op->mem_path);
}

static void
on_failed_launch_terminated (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmolvmQemu *self = SMOLVM_QEMU (source);

  smolvm_vmm_terminate_finish (SMOLVM_VMM (self), result);
  clear_runtime_files (self);
  return_mem_mode (smolvm_steps_get_data (user_data));
  smolvm_steps_rollback_done (user_data);
}

/* A failed or cancelled launch ends only once its process is gone and its
 * runtime files (a partly copied RAM file among them) are removed: the
 * exit notification may come after the caller has moved on. */
static void
rollback_launch (SmolvmSteps *steps, const GError *error)
{
  smolvm_vmm_terminate_async (smolvm_steps_get_source_object (steps), on_failed_launch_terminated,
                              steps);
}

static SmolvmSteps *
qemu_op_new (SmolvmQemu *self, const gchar *name, const gchar *what, gboolean launch,
             SmolvmProgress *progress, GCancellable *cancellable, GAsyncReadyCallback callback,
             gpointer user_data)
{
  SmolvmSteps *steps = smolvm_steps_new (self, name, cancellable, callback, user_data);
  QemuOp *op = g_new0 (QemuOp, 1);

  op->what = what;
  op->fd = -1;
  op->progress = progress != NULL ? g_object_ref (progress) : NULL;
  smolvm_steps_set_data (steps, op, (GDestroyNotify) qemu_op_free);
  if (launch)
    smolvm_steps_set_rollback (steps, rollback_launch);
  return steps;
}

static void
add_steps (SmolvmSteps *steps, ...)
{
  va_list args;
  SmolvmStepFunc step;

  va_start (args, steps);
  while ((step = va_arg (args, SmolvmStepFunc)) != NULL)
    smolvm_steps_add (steps, step, NULL, NULL);
  va_end (args);
}

static void
fail_step (SmolvmSteps *steps, const GError *cause)
{
  QemuOp *op = smolvm_steps_get_data (steps);
  smolvm_steps_fail (steps, qemu_error (smolvm_steps_get_source_object (steps), op->what, cause));
}

static void
on_qmp_step_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmolvmSteps *steps = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply G_GNUC_UNUSED =
    smolvm_qmp_execute_finish (SMOLVM_QMP (source), result, &error);

  if (error != NULL) {
    fail_step (steps, error);
    return;
  }
  smolvm_steps_next (steps);
}

/* Runs one QMP command as a step; @arguments_json may be NULL. Commands
 * are quick: a cancel is seen before the next step. */
static void
qmp_step (SmolvmSteps *steps, const gchar *command, const gchar *arguments_json, int fd)
{
  SmolvmQemu *self = smolvm_steps_get_source_object (steps);
  g_autoptr(JsonNode) arguments = NULL;

  if (self->qmp == NULL) {
    fail_step (steps, NULL);
    return;
  }
  if (arguments_json != NULL)
    arguments = json_from_string (arguments_json, NULL);
  smolvm_qmp_execute_async (self->qmp, command, arguments, fd, NULL, on_qmp_step_done, steps);
}

static void
step_stop (SmolvmSteps *steps, gpointer step_data)
{
  qmp_step (steps, "stop", NULL, -1);
}

static void
step_cont (SmolvmSteps *steps, gpointer step_data)
{
  QemuOp *op = smolvm_steps_get_data (steps);
  if (op->incoming && !op->resume) {
    smolvm_steps_next (steps);
    return;
  }
  qmp_step (steps, "cont", NULL, -1);
}

static void
step_migrate_capabilities (SmolvmSteps *steps, gpointer step_data)
{
  /* both sides must agree on x-ignore-shared; events report progress */
  qmp_step (steps, "migrate-set-capabilities",
            "{\"capabilities\": [{\"capability\": \"x-ignore-shared\", \"state\": true},"
            " {\"capability\": \"events\", \"state\": true}]}",
            -1);
}

static void
step_migrate_parameters (SmolvmSteps *steps, gpointer step_data)
{
  /* the default cap of 128 MiB/s is meant for live migration, not saves */
  qmp_step (steps, "migrate-set-parameters", "{\"max-bandwidth\": 0}", -1);
}

static void
step_getfd (SmolvmSteps *steps, gpointer step_data)
{
  QemuOp *op = smolvm_steps_get_data (steps);
  int fd = op->fd;

  /* taken first: a failing step may complete the run, and free @op */
  op->fd = -1;
  qmp_step (steps, "getfd", "{\"fdname\": \"" VMSTATE_FDNAME "\"}", fd);
  close (fd); /* QEMU has its own copy now */
}

/* A migration ends with two answers, in either order: the command's reply
 * and the MIGRATION event. The step ends when both are in. */
static void
migration_part_done (SmolvmSteps *steps, GError *error)
{
  QemuOp *op = smolvm_steps_get_data (steps);
  g_autoptr(GError) owned = error;

  /* the first error is the cause; a second one goes */
  if (owned != NULL && op->migration_error == NULL)
    op->migration_error = g_steal_pointer (&owned);
  if (--op->migration_parts > 0)
    return;
  stop_migration_watch (op);
  if (op->migration_error != NULL) {
    smolvm_steps_fail (steps, g_steal_pointer (&op->migration_error));
    return;
  }
  /* QEMU sent all it counted, whether or not a poll saw the end */
  smolvm_progress_add (op->progress, op->seen_total - MIN (op->seen_done, op->seen_total));
  op->seen_done = op->seen_total;
  smolvm_steps_next (steps);
}

static void
on_migration_settled (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GError) error = NULL;
  g_task_propagate_boolean (G_TASK (result), &error);
  migration_part_done (user_data, g_steal_pointer (&error));
}

static void
on_migrate_reply (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmolvmSteps *steps = user_data;
  QemuOp *op = smolvm_steps_get_data (steps);
  SmolvmQemu *self = smolvm_steps_get_source_object (steps);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply G_GNUC_UNUSED =
    smolvm_qmp_execute_finish (SMOLVM_QMP (source), result, &error);

  if (error != NULL) {
    /* refused outright: no MIGRATION event will settle it */
    migration_part_done (steps, qemu_error (self, op->what, error));
    settle_migration (self, NULL);
    return;
  }
  migration_part_done (steps, NULL);
}

/* Feeds what query-migrate says into the progress. With x-ignore-shared
 * shared guest RAM is not in the stream: QEMU's "ram" figures count only
 * the RAM it does send (firmware and ROMs, well under a MiB; all of a
 * privately mapped guest's RAM too), and the device state is not counted
 * at all. So this phase is measured only when QEMU gives a total, and then
 * only for that part of the stream; the bulk of a booted VM's snapshot is
 * the RAM file copy (copying-memory). */
static void
account_migration (QemuOp *op, JsonNode *reply)
{
  JsonObject *info = reply != NULL && JSON_NODE_HOLDS_OBJECT (reply) ? json_node_get_object (reply)
                                                                    : NULL;
  JsonObject *ram = info != NULL && json_object_has_member (info, "ram")
                      ? json_object_get_object_member (info, "ram")
                      : NULL;
  gint64 total, done;

  if (ram == NULL)
    return;
  total = json_object_get_int_member_with_default (ram, "total", 0);
  done = json_object_get_int_member_with_default (ram, "transferred", 0);
  if (total <= 0)
    return;
  if (op->seen_total == 0)
    smolvm_progress_set_phase (op->progress, "saving-state", TRUE);
  if ((guint64) total > op->seen_total) {
    smolvm_progress_expect (op->progress, (guint64) total - op->seen_total);
    op->seen_total = (guint64) total;
  }
  /* transferred may pass total when pages are sent again */
  done = MIN (done, total);
  if ((guint64) done > op->seen_done) {
    smolvm_progress_add (op->progress, (guint64) done - op->seen_done);
    op->seen_done = (guint64) done;
  }
}

static void
on_query_migrate (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(SmolvmSteps) steps = user_data;
  QemuOp *op = smolvm_steps_get_data (steps);
  g_autoptr(JsonNode) reply = smolvm_qmp_execute_finish (SMOLVM_QMP (source), result, NULL);

  op->query_in_flight = FALSE;
  /* the migration may have ended meanwhile: its figures are final then */
  if (op->migration_parts > 0)
    account_migration (op, reply);
}

static void
on_final_figures (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmolvmSteps *steps = user_data;
  QemuOp *op = smolvm_steps_get_data (steps);
  g_autoptr(JsonNode) reply = smolvm_qmp_execute_finish (SMOLVM_QMP (source), result, NULL);

  account_migration (op, reply);
  smolvm_progress_add (op->progress, op->seen_total - MIN (op->seen_done, op->seen_total));
  op->seen_done = op->seen_total;
  smolvm_steps_next (steps);
}

/* A migration may end before the first poll (all of a privately mapped
 * guest's RAM takes a few hundred ms): what QEMU says once it is over
 * counts too. Only the progress depends on it. */
static void
step_count_migration (SmolvmSteps *steps, gpointer step_data)
{
  SmolvmQemu *self = smolvm_steps_get_source_object (steps);

  if (self->qmp == NULL) {
    smolvm_steps_next (steps);
    return;
  }
  smolvm_qmp_execute_async (self->qmp, "query-migrate", NULL, -1, NULL, on_final_figures, steps);
}

static gboolean
on_poll_migration (gpointer user_data)
{
  SmolvmSteps *steps = user_data;
  QemuOp *op = smolvm_steps_get_data (steps);
  SmolvmQemu *self = smolvm_steps_get_source_object (steps);

  if (self->qmp != NULL && !op->query_in_flight) {
    op->query_in_flight = TRUE;
    /* the reply may come after the step: it holds the run */
    smolvm_qmp_execute_async (self->qmp, "query-migrate", NULL, -1, NULL, on_query_migrate,
                              g_object_ref (steps));
  }
  return G_SOURCE_CONTINUE;
}

static void
on_migrate_cancel_reply (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply G_GNUC_UNUSED =
    smolvm_qmp_execute_finish (SMOLVM_QMP (source), result, &error);

  /* the MIGRATION event settles the step either way */
  if (error != NULL)
    g_message ("migrate_cancel: %s", error->message);
}

/* The caller cancelled during a migration. Outgoing: QEMU stops it and
 * the guest stays paused in a healthy VMM (the step ends on the
 * "cancelled" event). Incoming: the half-loaded process is of no use, and
 * its end settles the step. */
static gboolean
on_migration_cancelled (GCancellable *cancellable, gpointer user_data)
{
  SmolvmSteps *steps = user_data;
  QemuOp *op = smolvm_steps_get_data (steps);
  SmolvmQemu *self = smolvm_steps_get_source_object (steps);

  g_clear_pointer (&op->cancel_watch, g_source_unref);
  if (op->incoming)
    smolvm_vmm_terminate_async (SMOLVM_VMM (self), NULL, NULL);
  else if (self->qmp != NULL)
    smolvm_qmp_execute_async (self->qmp, "migrate_cancel", NULL, -1, NULL,
                              on_migrate_cancel_reply, NULL);
  return G_SOURCE_REMOVE;
}

/* migrate / migrate-incoming on the stream passed with getfd. */
static void
migrate_step (SmolvmSteps *steps, const gchar *command)
{
  SmolvmQemu *self = smolvm_steps_get_source_object (steps);
  QemuOp *op = smolvm_steps_get_data (steps);
  GCancellable *cancellable = smolvm_steps_get_cancellable (steps);
  g_autoptr(JsonNode) arguments = json_from_string ("{\"uri\": \"fd:" VMSTATE_FDNAME "\"}", NULL);

  if (self->qmp == NULL) {
    fail_step (steps, NULL);
    return;
  }
  g_assert (self->migration == NULL);
  op->migration_parts = 2;
  self->migration = g_task_new (self, NULL, on_migration_settled, steps);
  smolvm_qmp_execute_async (self->qmp, command, arguments, -1, NULL, on_migrate_reply, steps);
  if (cancellable != NULL) {
    /* a source, not a handler: it runs in our main context, where the
     * QMP client lives, and is simply destroyed when the step ends */
    op->cancel_watch = g_cancellable_source_new (cancellable);
    g_source_set_callback (op->cancel_watch, G_SOURCE_FUNC (on_migration_cancelled), steps, NULL);
    g_source_attach (op->cancel_watch, NULL);
  }
  if (!op->incoming)
    op->poll = g_timeout_add (MIGRATION_POLL_MS, on_poll_migration, steps);
}

static void
step_migrate_out (SmolvmSteps *steps, gpointer step_data)
{
  migrate_step (steps, "migrate");
}

static void
step_migrate_in (SmolvmSteps *steps, gpointer step_data)
{
  migrate_step (steps, "migrate-incoming");
}

/* QEMU announces a completed migration before it leaves the run state
 * finish-migrate, in which "cont" is refused ("Migration is not finalized
 * yet"): ask until it has, so that a caller may resume the guest at once. */
static void query_until_settled (SmolvmSteps *steps);

static gboolean
on_settle_retry (gpointer user_data)
{
  query_until_settled (user_data);
  return G_SOURCE_REMOVE;
}

static void
on_settle_status (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmolvmSteps *steps = user_data;
  QemuOp *op = smolvm_steps_get_data (steps);
  g_autoptr(JsonNode) reply = smolvm_qmp_execute_finish (SMOLVM_QMP (source), result, NULL);
  const gchar *status = NULL;

  if (reply != NULL && JSON_NODE_HOLDS_OBJECT (reply))
    status = json_object_get_string_member_with_default (json_node_get_object (reply), "status",
                                                         NULL);
  if (g_strcmp0 (status, "finish-migrate") == 0 && op->settle_tries++ < SETTLE_TRIES) {
    g_timeout_add (SETTLE_RETRY_MS, on_settle_retry, steps);
    return;
  }
  /* settled, or QEMU cannot say: whoever comes next hears of it */
  op->settled (steps);
}

static void
query_until_settled (SmolvmSteps *steps)
{
  SmolvmQemu *self = smolvm_steps_get_source_object (steps);
  QemuOp *op = smolvm_steps_get_data (steps);

  if (self->qmp == NULL) {
    op->settled (steps);
    return;
  }
  smolvm_qmp_execute_async (self->qmp, "query-status", NULL, -1, NULL, on_settle_status, steps);
}

static void
step_settle (SmolvmSteps *steps, gpointer step_data)
{
  QemuOp *op = smolvm_steps_get_data (steps);
  op->settle_tries = 0;
  op->settled = smolvm_steps_next;
  query_until_settled (steps);
}

static void
step_open_vmstate (SmolvmSteps *steps, gpointer step_data)
{
  QemuOp *op = smolvm_steps_get_data (steps);
  g_autoptr(GError) error = NULL;

  op->fd = op->incoming ? open (op->vmstate_path, O_RDONLY | O_CLOEXEC)
                        : open (op->vmstate_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (op->fd < 0) {
    smolvm_error_set_errno (&error, errno, "Cannot open %s", op->vmstate_path);
    smolvm_steps_fail (steps, g_steal_pointer (&error));
    return;
  }
  smolvm_steps_next (steps);
}

/* A failed or cancelled save leaves the guest paused in a QEMU that can
 * resume it, and no split still writing into the caller's directory. */
static void
rollback_save_settle (SmolvmSteps *steps)
{
  QemuOp *op = smolvm_steps_get_data (steps);

  /* a split that gave up first made QEMU fail (EPIPE), which the caller
   * hears of: the cause goes to the log (after a Cancel, the split only
   * saw the stream end) */
  if (op->split_error != NULL &&
      !g_error_matches (op->split_error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED) &&
      !g_cancellable_is_cancelled (smolvm_steps_get_cancellable (steps)))
    g_warning ("%s", op->split_error->message);
  g_clear_error (&op->split_error);
  op->settle_tries = 0;
  op->settled = smolvm_steps_rollback_done;
  query_until_settled (steps);
}

static void
rollback_save (SmolvmSteps *steps, const GError *error)
{
  QemuOp *op = smolvm_steps_get_data (steps);

  if (op->split_running) {
    /* QEMU may never close its end (a refused migrate keeps the fd) */
    g_cancellable_cancel (op->split_cancellable);
    op->split_waiter = rollback_save_settle;
    return;
  }
  rollback_save_settle (steps);
}

static void
on_ram_copied (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GError) error = NULL;
  if (!smolvm_copy_file_sparse_finish (result, &error)) {
    smolvm_steps_fail (user_data, g_steal_pointer (&error));
    return;
  }
  smolvm_steps_next (user_data);
}

/* Shared RAM is the runtime dir's RAM file, which the stream left out
 * (x-ignore-shared): copied as it is, while the guest stays stopped. */
static void
step_save_ram (SmolvmSteps *steps, gpointer step_data)
{
  SmolvmQemu *self = smolvm_steps_get_source_object (steps);
  QemuOp *op = smolvm_steps_get_data (steps);
  guint64 size = 0;

  /* the caller cannot know the size of our RAM file */
  if (smolvm_file_data_size (self->ram_path, &size, NULL))
    smolvm_progress_expect (op->progress, size);
  smolvm_progress_set_phase (op->progress, "copying-memory", TRUE);
  smolvm_copy_file_sparse_async (self->ram_path, op->mem_path, op->progress,
                                 smolvm_steps_get_cancellable (steps), on_ram_copied, steps);
}

static void
on_split_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(SmolvmSteps) steps = user_data;
  QemuOp *op = smolvm_steps_get_data (steps);
  void (*waiter) (SmolvmSteps *steps) = op->split_waiter;

  op->split_running = FALSE;
  op->split_waiter = NULL;
  if (!smolvm_qemu_stream_split_finish (result, &op->split_error))
    g_prefix_error (&op->split_error, "%s: ", op->what);
  if (waiter != NULL)
    waiter (steps);
}

/* Private RAM (a restored VM's copy-on-write mapping of its snapshot's
 * mem.bin) is in no file: x-ignore-shared leaves only shared RAM out, so
 * it comes in the stream, which a worker splits on its way through a pipe
 * into vmstate.bin and a fresh mem.bin. The snapshot has the layout of any
 * other, and shares nothing with the one the VM was restored from. */
static void
step_open_split (SmolvmSteps *steps, gpointer step_data)
{
  SmolvmQemu *self = smolvm_steps_get_source_object (steps);
  QemuOp *op = smolvm_steps_get_data (steps);
  const SmolvmVmConfig *config = smolvm_vmm_get_config (SMOLVM_VMM (self));
  g_autoptr(GError) error = NULL;
  int fds[2];

  if (pipe2 (fds, O_CLOEXEC) != 0) {
    smolvm_error_set_errno (&error, errno, "Cannot make a pipe for the VM state");
    smolvm_steps_fail (steps, g_steal_pointer (&error));
    return;
  }
  /* fewer wake-ups; the default size works too */
  fcntl (fds[1], F_SETPIPE_SZ, SPLIT_PIPE_SIZE);
  op->fd = fds[1];
  op->split_cancellable = g_cancellable_new ();
  op->split_running = TRUE;
  smolvm_qemu_stream_split_async (fds[0], op->vmstate_path, op->mem_path, RAM_ID,
                                  (guint64) config->mem_size_mib * MIB, op->split_cancellable,
                                  on_split_done, g_object_ref (steps));
  smolvm_steps_next (steps);
}

static void
split_finished (SmolvmSteps *steps)
{
  QemuOp *op = smolvm_steps_get_data (steps);

  stop_migration_watch (op);
  if (op->split_error != NULL) {
    smolvm_steps_fail (steps, g_steal_pointer (&op->split_error));
    return;
  }
  smolvm_steps_next (steps);
}

static gboolean
on_wait_split_cancelled (GCancellable *cancellable, gpointer user_data)
{
  QemuOp *op = user_data;

  g_clear_pointer (&op->cancel_watch, g_source_unref);
  g_cancellable_cancel (op->split_cancellable);
  return G_SOURCE_REMOVE;
}

/* QEMU closes its end of the pipe once the migration is over: the split
 * ends soon after. */
static void
step_wait_split (SmolvmSteps *steps, gpointer step_data)
{
  QemuOp *op = smolvm_steps_get_data (steps);
  GCancellable *cancellable = smolvm_steps_get_cancellable (steps);

  if (!op->split_running) {
    split_finished (steps);
    return;
  }
  op->split_waiter = split_finished;
  /* a QEMU that kept its end open must not hold a Cancel up */
  if (cancellable != NULL) {
    op->cancel_watch = g_cancellable_source_new (cancellable);
    g_source_set_callback (op->cancel_watch, G_SOURCE_FUNC (on_wait_split_cancelled), op, NULL);
    g_source_attach (op->cancel_watch, NULL);
  }
}

static void
on_ram_share (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmolvmSteps *steps = user_data;
  QemuOp *op = smolvm_steps_get_data (steps);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = smolvm_qmp_execute_finish (SMOLVM_QMP (source), result, &error);

  if (error != NULL) {
    fail_step (steps, error);
    return;
  }
  if (!JSON_NODE_HOLDS_VALUE (reply) || json_node_get_value_type (reply) != G_TYPE_BOOLEAN) {
    smolvm_steps_fail (steps, g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_BACKEND,
                                           "%s: QEMU did not say whether guest RAM is shared",
                                           op->what));
    return;
  }
  if (!json_node_get_boolean (reply))
    add_steps (steps, step_open_split, step_getfd, step_migrate_out, step_count_migration,
               step_settle, step_wait_split, NULL);
  else
    add_steps (steps, step_open_vmstate, step_getfd, step_migrate_out, step_count_migration,
               step_settle, step_save_ram, NULL);
  smolvm_steps_next (steps);
}

/* Asked of QEMU rather than remembered: a restarted daemon knows only the
 * process. */
static void
step_query_ram (SmolvmSteps *steps, gpointer step_data)
{
  SmolvmQemu *self = smolvm_steps_get_source_object (steps);
  g_autoptr(JsonNode) arguments =
    json_from_string ("{\"path\": \"/objects/" RAM_ID "\", \"property\": \"share\"}", NULL);

  if (self->qmp == NULL) {
    fail_step (steps, NULL);
    return;
  }
  smolvm_qmp_execute_async (self->qmp, "qom-get", arguments, -1, NULL, on_ram_share, steps);
}

/* The restored VM maps mem.bin itself, privately (build_argv): nothing is
 * copied, and the guest's writes go to its own copy-on-write pages. */
static void
step_check_mem (SmolvmSteps *steps, gpointer step_data)
{
  SmolvmQemu *self = smolvm_steps_get_source_object (steps);
  QemuOp *op = smolvm_steps_get_data (steps);
  const SmolvmVmConfig *config = smolvm_vmm_get_config (SMOLVM_VMM (self));
  goffset expected = (goffset) config->mem_size_mib * MIB;
  g_autoptr(GError) error = NULL;
  MemLoan *loan;
  struct stat st;

  /* QEMU would silently grow a short file, and then fail to load */
  if (stat (op->mem_path, &st) != 0) {
    smolvm_error_set_errno (&error, errno, "Cannot read %s", op->mem_path);
    smolvm_steps_fail (steps, g_steal_pointer (&error));
    return;
  }
  if (st.st_size != expected) {
    smolvm_steps_fail (steps, g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_BACKEND,
                                           "%s is %" G_GOFFSET_FORMAT " bytes, but the VM has %u "
                                           "MiB of memory (%" G_GOFFSET_FORMAT " bytes)",
                                           op->mem_path, (goffset) st.st_size,
                                           config->mem_size_mib, expected));
    return;
  }
  /* A QEMU that cannot open it read-only (7.2) opens it read-write, which
   * a 0400 file refuses unless QEMU runs as root: a daemon that is not
   * (--session) lends the owner write permission until QEMU is up; a
   * loan made for another QEMU still starting on it is shared. */
  if (binary_maps_readonly (self)) {
    smolvm_steps_next (steps);
    return;
  }
  loan = mem_loans != NULL ? g_hash_table_lookup (mem_loans, op->mem_path) : NULL;
  if (loan == NULL && faccessat (AT_FDCWD, op->mem_path, W_OK, AT_EACCESS) != 0) {
    if (chmod (op->mem_path, (st.st_mode & 07777) | S_IWUSR) != 0) {
      smolvm_error_set_errno (&error, errno, "Cannot let QEMU open %s", op->mem_path);
      smolvm_steps_fail (steps, g_steal_pointer (&error));
      return;
    }
    if (mem_loans == NULL)
      mem_loans = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
    loan = g_new0 (MemLoan, 1);
    loan->mode = st.st_mode & 07777;
    g_hash_table_insert (mem_loans, g_strdup (op->mem_path), loan);
  }
  if (loan != NULL) {
    loan->holders++;
    op->mem_mode_lent = TRUE;
  }
  smolvm_steps_next (steps);
}

/* QEMU opens guest RAM files before it greets on QMP (memory backends,
 * then monitors, at start-up): once connected, mem.bin's mode goes back. */
static void
step_return_mem_mode (SmolvmSteps *steps, gpointer step_data)
{
  return_mem_mode (smolvm_steps_get_data (steps));
  smolvm_steps_next (steps);
}

/* ---- the process ---- */

/* QEMU option values end at a comma; a literal one is doubled. */
static gchar *
opt_escape (const gchar *value)
{
  g_auto(GStrv) parts = g_strsplit (value, ",", -1);
  return g_strjoinv (",,", parts);
}

static void
argv_add (GPtrArray *argv, const gchar *format, ...) G_GNUC_PRINTF (2, 3);

static void
argv_add (GPtrArray *argv, const gchar *format, ...)
{
  va_list args;
  va_start (args, format);
  g_ptr_array_add (argv, g_strdup_vprintf (format, args));
  va_end (args);
}

/* @mem_path: the snapshot whose memory a restored guest maps, or NULL
 * for a fresh boot */
static gchar **
build_argv (SmolvmQemu *self, const SmolvmNetConfig *net, const gchar *mem_path)
{
  SmolvmVmm *vmm = SMOLVM_VMM (self);
  const SmolvmVmConfig *c = smolvm_vmm_get_config (vmm);
  GPtrArray *argv = g_ptr_array_new ();
  g_autofree gchar *append = smolvm_net_config_boot_args (net, c->boot_args);
  g_autofree gchar *ram = opt_escape (mem_path != NULL ? mem_path : self->ram_path);
  g_autofree gchar *console = opt_escape (smolvm_vmm_get_console_log_path (vmm));
  g_autofree gchar *disk = opt_escape (smolvm_vmm_get_disk_path (vmm));
  g_autofree gchar *qmp = opt_escape (self->qmp_socket);

  argv_add (argv, "%s", smolvm_vmm_get_binary (vmm));
  /* thread names ("CPU 0/TCG") tell a stuck vCPU from a busy I/O thread
   * in top -H or /proc; a VM id needs no option escaping */
  argv_add (argv, "-name");
  argv_add (argv, "guest=%s,debug-threads=on", smolvm_vmm_get_vm_id (vmm));
  /* An argument of its own that starts with the runtime dir: a restarted
   * daemon recognizes its VMM by one (the paths in -object, -chardev and
   * -qmp sit inside option strings). */
  argv_add (argv, "-pidfile");
  argv_add (argv, "%s", self->pid_path);
  argv_add (argv, "-nodefaults");
  argv_add (argv, "-no-user-config");
  argv_add (argv, "-display");
  argv_add (argv, "none");
  argv_add (argv, "-no-reboot");
  argv_add (argv, "-machine");
  argv_add (argv, "%s,memory-backend=" RAM_ID, c->machine);
  if (g_str_equal (c->accel, "auto")) {
    /* QEMU takes the first accelerator that works */
    argv_add (argv, "-accel");
    argv_add (argv, "kvm");
    argv_add (argv, "-accel");
    argv_add (argv, "tcg");
  } else {
    argv_add (argv, "-accel");
    argv_add (argv, "%s", c->accel);
  }
  argv_add (argv, "-m");
  argv_add (argv, "%uM", c->mem_size_mib);
  argv_add (argv, "-smp");
  argv_add (argv, "%u", c->vcpu_count);
  argv_add (argv, "-kernel");
  argv_add (argv, "%s", c->kernel_path);
  argv_add (argv, "-append");
  argv_add (argv, "%s", append);
  if (c->initrd_path != NULL && c->initrd_path[0] != '\0') {
    argv_add (argv, "-initrd");
    argv_add (argv, "%s", c->initrd_path);
  }
  /* A booted guest's RAM is a file of its own, shared so that a snapshot
   * copies it and the stream leaves it out (x-ignore-shared). A restored
   * guest maps the snapshot's mem.bin privately: its pages are read from
   * the file as the guest touches them, its writes stay in the process,
   * and the stream that loads it (which holds no pages of shared RAM)
   * leaves them as the file has them. */
  argv_add (argv, "-object");
  argv_add (argv, "memory-backend-file,id=" RAM_ID ",size=%uM,mem-path=%s,share=%s%s",
            c->mem_size_mib, ram, mem_path != NULL ? "off" : "on",
            /* mem.bin must never change: a QEMU that can, opens it read-only */
            mem_path != NULL && binary_maps_readonly (self) ? ",readonly=on,rom=off" : "");
  argv_add (argv, "-chardev");
  argv_add (argv, "file,id=con0,path=%s,append=on", console);
  argv_add (argv, "-serial");
  argv_add (argv, "chardev:con0");
  argv_add (argv, "-drive");
  argv_add (argv, "file=%s,format=raw,if=virtio", disk);
  /* net config values are checked: no commas to escape */
  if (net->tap_device != NULL) {
    argv_add (argv, "-netdev");
    argv_add (argv, "tap,id=net0,ifname=%s,script=no,downscript=no", net->tap_device);
    argv_add (argv, "-device");
    if (net->guest_mac != NULL)
      argv_add (argv, "virtio-net-pci,netdev=net0,mac=%s", net->guest_mac);
    else
      argv_add (argv, "virtio-net-pci,netdev=net0");
  }
  argv_add (argv, "-qmp");
  argv_add (argv, "unix:%s,server=on,wait=off", qmp);
  if (mem_path != NULL) {
    argv_add (argv, "-incoming");
    argv_add (argv, "defer");
  }
  g_ptr_array_add (argv, NULL);
  return (gchar **) g_ptr_array_free (argv, FALSE);
}

static void
on_qmp_ready (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmolvmSteps *steps = user_data;
  SmolvmQemu *self = smolvm_steps_get_source_object (steps);
  g_autoptr(GError) error = NULL;
  SmolvmQmp *qmp = smolvm_qmp_connect_finish (result, &error);

  if (qmp == NULL) {
    smolvm_steps_fail (steps, qemu_error (self, "Cannot talk to QEMU", error));
    return;
  }
  take_qmp (self, qmp);
  smolvm_steps_next (steps);
}

static void
on_qmp_socket (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmolvmSteps *steps = user_data;
  SmolvmQemu *self = SMOLVM_QEMU (source);
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketConnection) connection =
    smolvm_vmm_wait_socket_finish (SMOLVM_VMM (self), result, &error);

  if (connection == NULL) {
    if (g_error_matches (error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED))
      smolvm_steps_fail (steps, g_steal_pointer (&error));
    else
      smolvm_steps_fail (steps, qemu_error (self, "QEMU did not start", error));
    return;
  }
  smolvm_qmp_new_async (connection, NULL, on_qmp_ready, steps);
}

static void
step_connect (SmolvmSteps *steps, gpointer step_data)
{
  SmolvmQemu *self = smolvm_steps_get_source_object (steps);
  smolvm_vmm_wait_socket_async (SMOLVM_VMM (self), self->qmp_socket, SOCKET_WAIT_MS,
                                smolvm_steps_get_cancellable (steps), on_qmp_socket, steps);
}

static void
step_spawn (SmolvmSteps *steps, gpointer step_data)
{
  SmolvmQemu *self = smolvm_steps_get_source_object (steps);
  QemuOp *op = smolvm_steps_get_data (steps);
  g_autoptr(SmolvmNetConfig) net = NULL;
  g_auto(GStrv) argv = NULL;
  g_autoptr(GError) error = NULL;

  net = smolvm_net_config_new_from_variant (smolvm_vmm_get_network_config (SMOLVM_VMM (self)),
                                            &error);
  if (net == NULL) {
    smolvm_steps_fail (steps, g_steal_pointer (&error));
    return;
  }
  argv = build_argv (self, net, op->incoming ? op->mem_path : NULL);
  /* a RAM file left by a crash would only take space */
  if ((unlink (self->qmp_socket) != 0 && errno != ENOENT) ||
      (unlink (self->ram_path) != 0 && errno != ENOENT)) {
    smolvm_error_set_errno (&error, errno, "Cannot clear the runtime files of VM '%s'",
                            smolvm_vmm_get_vm_id (SMOLVM_VMM (self)));
    smolvm_steps_fail (steps, g_steal_pointer (&error));
    return;
  }
  /* a fresh log per process, so that errors quote this run */
  unlink (self->log_path);
  if (!smolvm_vmm_spawn (SMOLVM_VMM (self), (const gchar *const *) argv, &error)) {
    smolvm_steps_fail (steps, g_steal_pointer (&error));
    return;
  }
  /* QEMU's start-up is part of the load: nothing is copied before it */
  if (op->incoming)
    smolvm_progress_set_phase (op->progress, "loading-state", FALSE);
  smolvm_steps_next (steps);
}

static void
smolvm_qemu_boot_async (SmolvmVmm *vmm, GCancellable *cancellable, GAsyncReadyCallback callback,
                        gpointer user_data)
{
  g_autoptr(SmolvmSteps) steps = qemu_op_new (SMOLVM_QEMU (vmm), "booting", "Cannot boot", TRUE,
                                              NULL, cancellable, callback, user_data);
  add_steps (steps, step_spawn, step_connect, NULL);
  smolvm_steps_run (g_steal_pointer (&steps));
}

static void
smolvm_qemu_set_paused_async (SmolvmVmm *vmm, gboolean paused, GCancellable *cancellable,
                              GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(SmolvmSteps) steps =
    qemu_op_new (SMOLVM_QEMU (vmm), paused ? "pausing" : "resuming",
                 paused ? "Cannot pause" : "Cannot resume", FALSE, NULL, cancellable, callback,
                 user_data);
  QemuOp *op = smolvm_steps_get_data (steps);

  op->resume = TRUE;
  add_steps (steps, paused ? step_stop : step_cont, NULL);
  smolvm_steps_run (g_steal_pointer (&steps));
}

static void
smolvm_qemu_snapshot_create_async (SmolvmVmm *vmm, const gchar *vmstate_path,
                                   const gchar *mem_path, SmolvmProgress *progress,
                                   GCancellable *cancellable, GAsyncReadyCallback callback,
                                   gpointer user_data)
{
  g_autoptr(SmolvmSteps) steps =
    qemu_op_new (SMOLVM_QEMU (vmm), "saving the VM state", "Cannot save the VM state", FALSE,
                 progress, cancellable, callback, user_data);
  QemuOp *op = smolvm_steps_get_data (steps);

  /* measurable once QEMU reports a total (account_migration) */
  smolvm_progress_set_phase (progress, "saving-state", FALSE);
  op->vmstate_path = g_strdup (vmstate_path);
  op->mem_path = g_strdup (mem_path);
  /* step_query_ram adds the steps of shared or of private RAM */
  add_steps (steps, step_migrate_capabilities, step_migrate_parameters, step_query_ram, NULL);
  smolvm_steps_set_rollback (steps, rollback_save);
  smolvm_steps_run (g_steal_pointer (&steps));
}

static void
smolvm_qemu_snapshot_load_async (SmolvmVmm *vmm, const gchar *vmstate_path,
                                 const gchar *mem_path, gboolean resume,
                                 const gchar *tap_override, SmolvmProgress *progress,
                                 GCancellable *cancellable, GAsyncReadyCallback callback,
                                 gpointer user_data)
{
  g_autoptr(SmolvmSteps) steps = NULL;
  QemuOp *op;

  /* clones on QEMU are to come (issue 10): refused before any process runs */
  if (tap_override != NULL) {
    g_autoptr(GTask) task = g_task_new (vmm, cancellable, callback, user_data);
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_UNSUPPORTED,
                             "QEMU cannot load a snapshot onto another TAP device yet");
    return;
  }
  steps = qemu_op_new (SMOLVM_QEMU (vmm), "loading the snapshot", "Cannot load the snapshot", TRUE,
                       progress, cancellable, callback, user_data);
  op = smolvm_steps_get_data (steps);

  op->incoming = TRUE;
  op->resume = resume;
  op->vmstate_path = g_strdup (vmstate_path);
  op->mem_path = g_strdup (mem_path);
  add_steps (steps, step_check_mem, step_spawn, step_connect, step_return_mem_mode,
             step_migrate_capabilities, step_open_vmstate, step_getfd, step_migrate_in, step_cont,
             NULL);
  smolvm_steps_run (g_steal_pointer (&steps));
}

static void
on_attach_status (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = smolvm_qmp_execute_finish (SMOLVM_QMP (source), result, &error);
  const gchar *status = NULL;

  if (reply == NULL) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  if (JSON_NODE_HOLDS_OBJECT (reply))
    status = json_object_get_string_member_with_default (json_node_get_object (reply), "status",
                                                         NULL);
  if (g_strcmp0 (status, "running") == 0)
    g_task_return_int (task, 0);
  else if (status != NULL)
    g_task_return_int (task, 1); /* paused, postmigrate...: not running */
  else
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND,
                             "QEMU did not report its status");
}

static void
on_attach_connected (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  SmolvmQemu *self = g_task_get_source_object (task);
  g_autoptr(GError) error = NULL;
  SmolvmQmp *qmp = smolvm_qmp_connect_finish (result, &error);

  if (qmp == NULL) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  take_qmp (self, qmp);
  smolvm_qmp_execute_async (qmp, "query-status", NULL, -1, NULL, on_attach_status,
                            g_steal_pointer (&task));
}

static void
smolvm_qemu_attach_async (SmolvmVmm *vmm, GPid pid, GCancellable *cancellable,
                          GAsyncReadyCallback callback, gpointer user_data)
{
  SmolvmQemu *self = SMOLVM_QEMU (vmm);
  g_autoptr(GTask) task = g_task_new (vmm, cancellable, callback, user_data);
  g_autoptr(GError) error = NULL;

  if (!smolvm_vmm_adopt (vmm, pid, &error)) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  smolvm_qmp_connect_async (self->qmp_socket, cancellable, on_attach_connected,
                            g_steal_pointer (&task));
}

static void
smolvm_qemu_class_init (SmolvmQemuClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  SmolvmVmmClass *vmm_class = SMOLVM_VMM_CLASS (klass);

  object_class->finalize = smolvm_qemu_finalize;
  object_class->constructed = smolvm_qemu_constructed;
  vmm_class->boot_async = smolvm_qemu_boot_async;
  vmm_class->set_paused_async = smolvm_qemu_set_paused_async;
  vmm_class->snapshot_create_async = smolvm_qemu_snapshot_create_async;
  vmm_class->snapshot_load_async = smolvm_qemu_snapshot_load_async;
  vmm_class->attach_async = smolvm_qemu_attach_async;
}

static void
smolvm_qemu_init (SmolvmQemu *self)
{
}

/* The lines @binary prints for "@option @value" (a help text); only at
 * start-up, since it waits for the process. */
static GStrv
qemu_help_lines (const gchar *binary, const gchar *option, const gchar *value, GError **error)
{
  g_autoptr(GSubprocess) proc = NULL;
  g_autofree gchar *out = NULL;

  proc = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_SILENCE,
                           error, binary, option, value, NULL);
  if (proc == NULL || !g_subprocess_communicate_utf8 (proc, NULL, NULL, &out, NULL, error))
    return NULL;
  return g_strsplit (out != NULL ? out : "", "\n", -1);
}

gchar *
smolvm_qemu_probe_machine (const gchar *binary, GError **error)
{
  g_auto(GStrv) lines = qemu_help_lines (binary, "-machine", "help", error);

  if (lines == NULL)
    return NULL;
  /* "q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-7.2)" */
  for (gsize i = 0; lines[i] != NULL; i++) {
    const gchar *alias;
    if (!g_str_has_prefix (lines[i], "q35 ") || (alias = strstr (lines[i], "(alias of ")) == NULL)
      continue;
    alias += strlen ("(alias of ");
    return g_strndup (alias, strcspn (alias, ")"));
  }
  g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_UNSUPPORTED,
               "%s offers no versioned q35 machine type", binary);
  return NULL;
}

gboolean
smolvm_qemu_probe_readonly_ram (const gchar *binary)
{
  g_auto(GStrv) lines = qemu_help_lines (binary, "-object", "memory-backend-file,help", NULL);

  if (lines == NULL)
    return FALSE;
  /* "  rom=<OnOffAuto>        - Whether to create Read Only Memory (ROM) ..." */
  for (gsize i = 0; lines[i] != NULL; i++) {
    if (!g_str_has_prefix (g_strchug (lines[i]), "rom="))
      continue;
    if (readonly_ram_binaries == NULL)
      readonly_ram_binaries = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
    g_hash_table_add (readonly_ram_binaries, g_strdup (binary));
    return TRUE;
  }
  return FALSE;
}
