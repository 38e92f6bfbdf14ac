/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "smolvm-authority.h"
#include "smolvm-call.h"
#include "smolvm-error.h"
#include "smolvm-fileutil.h"
#include "smolvm-id.h"
#include "smolvm-ops.h"
#include "smolvm-registry.h"
#include "smolvm-store.h"

/* CreateSnapshot: pause the VM, have the VMM write its state and memory
 * into a hidden .tmp- directory, copy the disk, checksum the state, then
 * one rename publishes the snapshot. Rollback (a failure or Cancel before
 * the commit): the directory goes and the VM is resumed if it was running. */
typedef struct {
  SmolvmCall call;
  gchar *vm_id;
  SmolvmVm *expected_vm; /* VM.CreateSnapshot: the object that was called */
  gchar *snapshot_id;
  gboolean resume;
  SmolvmVm *vm;
  gboolean holds_vm;
  gboolean holds_snapshot;
  gboolean was_running;
  gboolean marked_paused; /* vm.json says this snapshot paused the VM */
  gchar *tmp_dir;
  SmolvmSnapshot *snapshot;
  GError *error; /* the failure a rollback reports at its end */
} SnapshotCreate;

static void
snapshot_create_clear (SnapshotCreate *op)
{
  SmolvmContext *ctx = op->call.ctx;

  /* however it ended, the pause is no longer this snapshot's to undo */
  if (op->marked_paused)
    smolvm_vm_clear_paused_by_snapshot (op->vm);
  if (op->holds_vm)
    smolvm_vm_end_op (op->vm);
  if (op->holds_snapshot)
    smolvm_registry_release_snapshot (ctx->registry, op->snapshot_id);
  g_free (op->vm_id);
  g_clear_object (&op->expected_vm);
  g_free (op->snapshot_id);
  g_clear_object (&op->vm);
  g_free (op->tmp_dir);
  g_clear_object (&op->snapshot);
  g_clear_error (&op->error);
}

static gchar *
tmp_file (SnapshotCreate *op, const gchar *name)
{
  return smolvm_store_snapshot_tmp_file (op->call.ctx->store, op->snapshot_id, name);
}

/* ---- rollback ---- */

static void
on_rollback_resumed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotCreate *op = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_vm_op_finish (SMOLVM_VM (source), result, &error))
    g_warning ("VM '%s' could not be resumed after a failed snapshot: %s", op->vm_id,
               error->message);
  smolvm_call_fail (&op->call, g_steal_pointer (&op->error));
}

static void
on_rollback_removed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotCreate *op = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_store_discard_finish (SMOLVM_STORE (source), result, &error))
    g_warning ("Cannot remove %s: %s", op->tmp_dir, error->message);
  if (op->was_running && g_str_equal (smolvm_vm_get_state (op->vm), SMOLVM_VM_STATE_PAUSED)) {
    smolvm_vm_set_paused_async (op->vm, FALSE, on_rollback_resumed, op);
    return;
  }
  smolvm_call_fail (&op->call, g_steal_pointer (&op->error));
}

/* Leaves no directory behind and the VM as it was. */
static void
rollback (SnapshotCreate *op, GError *error)
{
  g_prefix_error (&error, "Cannot create snapshot '%s' of VM '%s': ", op->snapshot_id, op->vm_id);
  op->error = g_steal_pointer (&error);
  smolvm_call_begin_rollback (&op->call);
  smolvm_store_discard_async (op->call.ctx->store, op->tmp_dir, on_rollback_removed, op);
}

/* ---- steps ---- */

static void
on_resumed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotCreate *op = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_vm_op_finish (SMOLVM_VM (source), result, &error)) {
    g_prefix_error (&error, "Snapshot '%s' was created, but the VM did not resume: ",
                    op->snapshot_id);
    smolvm_call_fail (&op->call, g_steal_pointer (&error));
    return;
  }
  smolvm_call_return (&op->call,
                      g_variant_new ("(o)", smolvm_snapshot_get_object_path (op->snapshot)));
}

static void
on_committed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotCreate *op = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_store_commit_snapshot_finish (SMOLVM_STORE (source), result, &error)) {
    rollback (op, g_steal_pointer (&error));
    return;
  }
  smolvm_registry_add_snapshot (op->call.ctx->registry, op->snapshot);
  if (op->resume) {
    smolvm_call_set_phase (&op->call, "resuming");
    smolvm_vm_set_paused_async (op->vm, FALSE, on_resumed, op);
    return;
  }
  smolvm_call_return (&op->call,
                      g_variant_new ("(o)", smolvm_snapshot_get_object_path (op->snapshot)));
}

static void
on_vmstate_hashed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotCreate *op = user_data;
  SmolvmContext *ctx = op->call.ctx;
  g_autoptr(GError) error = NULL;
  g_autofree gchar *sha256 = smolvm_file_sha256_finish (result, &error);
  g_autofree gchar *metadata = NULL;
  const SmolvmVmConfig *config = smolvm_vm_get_config (op->vm);

  if (sha256 == NULL || !smolvm_call_check_cancelled (&op->call, &error)) {
    rollback (op, g_steal_pointer (&error));
    return;
  }
  /* from here the result is being made final */
  smolvm_job_set_cancelable (op->call.job, FALSE);
  smolvm_call_set_phase (&op->call, "committing");
  op->snapshot = smolvm_snapshot_new (ctx, op->snapshot_id, op->vm_id, config,
                                      smolvm_vm_get_network_config (op->vm), g_get_real_time (),
                                      config->backend);
  smolvm_snapshot_set_vmstate_sha256 (op->snapshot, sha256);
  metadata = smolvm_snapshot_to_json (op->snapshot);
  smolvm_store_commit_snapshot_async (ctx->store, op->tmp_dir, op->snapshot_id, metadata,
                                      on_committed, op);
}

static void
on_disk_copied (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotCreate *op = user_data;
  SmolvmProgress *progress = smolvm_call_get_progress (&op->call);
  g_autoptr(GError) error = NULL;
  g_autofree gchar *vmstate = tmp_file (op, SMOLVM_SNAPSHOT_VMSTATE);

  if (!smolvm_copy_file_sparse_finish (result, &error) ||
      !smolvm_call_check_cancelled (&op->call, &error)) {
    rollback (op, g_steal_pointer (&error));
    return;
  }
  smolvm_progress_set_phase (progress, "checksumming", TRUE);
  smolvm_file_sha256_async (vmstate, progress, smolvm_call_get_cancellable (&op->call),
                            on_vmstate_hashed, op);
}

static void
on_state_saved (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotCreate *op = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree gchar *disk = tmp_file (op, SMOLVM_SNAPSHOT_DISK);
  g_autofree gchar *vmstate = tmp_file (op, SMOLVM_SNAPSHOT_VMSTATE);
  guint64 vmstate_size = 0;

  if (!smolvm_vm_op_finish (SMOLVM_VM (source), result, &error) ||
      !smolvm_call_check_cancelled (&op->call, &error) ||
      !smolvm_file_data_size (vmstate, &vmstate_size, &error)) {
    rollback (op, g_steal_pointer (&error));
    return;
  }
  /* expected now, before the disk's bytes count, so Progress never drops */
  smolvm_progress_expect (smolvm_call_get_progress (&op->call), vmstate_size);
  /* the guest is paused, so its disk holds still while it is copied */
  smolvm_progress_set_phase (smolvm_call_get_progress (&op->call), "copying-disk", TRUE);
  /* the commit syncs the hidden directory before it publishes it */
  smolvm_copy_file_sparse_full_async (smolvm_vm_get_disk_path (op->vm), disk,
                                      SMOLVM_COPY_NO_DIR_SYNC,
                                      smolvm_call_get_progress (&op->call),
                                      smolvm_call_get_cancellable (&op->call), on_disk_copied,
                                      op);
}

static void
save_state (SnapshotCreate *op)
{
  g_autoptr(GError) error = NULL;
  g_autofree gchar *vmstate = tmp_file (op, SMOLVM_SNAPSHOT_VMSTATE);
  g_autofree gchar *mem = tmp_file (op, SMOLVM_SNAPSHOT_MEM);

  if (!smolvm_call_check_cancelled (&op->call, &error)) {
    rollback (op, g_steal_pointer (&error));
    return;
  }
  smolvm_vm_save_snapshot_async (op->vm, vmstate, mem, smolvm_call_get_progress (&op->call),
                                 smolvm_call_get_cancellable (&op->call), on_state_saved, op);
}

static void
on_paused (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotCreate *op = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_vm_op_finish (SMOLVM_VM (source), result, &error)) {
    op->was_running = FALSE; /* it did not pause: nothing to resume */
    rollback (op, g_steal_pointer (&error));
    return;
  }
  save_state (op);
}

static void
on_marked (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotCreate *op = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_vm_mark_paused_by_snapshot_finish (SMOLVM_VM (source), result, &error)) {
    op->was_running = FALSE; /* not paused: nothing to resume */
    rollback (op, g_steal_pointer (&error));
    return;
  }
  op->marked_paused = TRUE;
  if (!smolvm_call_check_cancelled (&op->call, &error)) {
    op->was_running = FALSE;
    rollback (op, g_steal_pointer (&error));
    return;
  }
  smolvm_vm_set_paused_async (op->vm, TRUE, on_paused, op);
}

static void
snapshot_create_run (SmolvmCall *call)
{
  SnapshotCreate *op = (SnapshotCreate *) call;
  SmolvmContext *ctx = call->ctx;
  g_autoptr(GError) error = NULL;
  g_autofree gchar *snapshot_path = NULL;
  const gchar *state;
  guint64 disk_size = 0;

  op->vm = smolvm_registry_get_vm (ctx->registry, op->vm_id, &error);
  /* VM.CreateSnapshot: the VM may have been deleted, and even recreated
   * under its id, while the caller was being authorized */
  if (op->vm != NULL && op->expected_vm != NULL && op->vm != op->expected_vm) {
    op->vm = NULL;
    g_set_error (&error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND, "VM '%s' not found", op->vm_id);
  }
  if (op->vm == NULL) {
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  g_object_ref (op->vm);
  state = smolvm_vm_get_state (op->vm);
  if (!smolvm_vm_is_active (op->vm)) {
    smolvm_call_fail_literal (call, SMOLVM_ERROR_INVALID_STATE,
                              "VM '%s' is %s; only a running or paused VM can be snapshotted",
                              op->vm_id, state);
    return;
  }
  if (op->snapshot_id == NULL) {
    op->snapshot_id = smolvm_id_make_snapshot (op->vm_id, g_get_real_time () / G_USEC_PER_SEC,
                                               smolvm_registry_snapshot_id_taken, ctx->registry);
  } else if (smolvm_registry_snapshot_id_taken (op->snapshot_id, ctx->registry)) {
    smolvm_call_fail_literal (call, SMOLVM_ERROR_ALREADY_EXISTS, "Snapshot '%s' already exists",
                              op->snapshot_id);
    return;
  }
  if (!smolvm_vm_begin_op (op->vm, "snapshot", &error)) {
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  op->holds_vm = TRUE;
  if (!smolvm_registry_hold_snapshot (ctx->registry, op->snapshot_id, "create", &error)) {
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  op->holds_snapshot = TRUE;
  /* hidden until complete: list and load skip dot-directories */
  op->tmp_dir = smolvm_store_snapshot_tmp_dir (ctx->store, op->snapshot_id);
  if (!smolvm_file_data_size (smolvm_vm_get_disk_path (op->vm), &disk_size, &error) ||
      !smolvm_store_make_record_dir (ctx->store, op->tmp_dir, &error) ||
      !smolvm_store_link_images (smolvm_vm_get_dir (op->vm), op->tmp_dir, &error)) {
    g_clear_pointer (&op->tmp_dir, g_free);
    g_prefix_error (&error, "Cannot create snapshot '%s' of VM '%s': ", op->snapshot_id,
                    op->vm_id);
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }

  snapshot_path = smolvm_id_object_path ("snapshot", op->snapshot_id);
  smolvm_call_start_job (call, SMOLVM_JOB_SNAPSHOT_CREATE, SMOLVM_ACTION_SNAPSHOT_CREATE, TRUE,
                         smolvm_vm_get_object_path (op->vm), snapshot_path, NULL);
  call->cancelled_summary = g_strdup_printf ("snapshot '%s' of VM '%s' was not created",
                                             op->snapshot_id, op->vm_id);
  smolvm_progress_expect (smolvm_call_get_progress (call), disk_size);

  op->was_running = g_str_equal (state, SMOLVM_VM_STATE_RUNNING);
  if (op->was_running) {
    /* before the pause: a daemon killed while the VM is paused must find
     * out at start-up that the pause was only ours */
    smolvm_call_set_phase (call, "pausing");
    smolvm_vm_mark_paused_by_snapshot_async (op->vm, on_marked, op);
  } else {
    save_state (op);
  }
}

void
smolvm_op_snapshot_create (SmolvmContext *ctx, GDBusMethodInvocation *invocation,
                           const gchar *vm_id, SmolvmVm *vm, const gchar *snapshot_id,
                           GVariant *options)
{
  SnapshotCreate *op = smolvm_call_new0 (SnapshotCreate, ctx, invocation, snapshot_create_clear);
  g_autoptr(GError) error = NULL;

  op->vm_id = g_strdup (vm_id);
  op->expected_vm = vm != NULL ? g_object_ref (vm) : NULL;
  if (!smolvm_id_validate (vm_id, "VM id", &error) ||
      (snapshot_id[0] != '\0' && !smolvm_id_validate (snapshot_id, "snapshot id", &error)) ||
      !smolvm_call_check_options (options, (const gchar *[]){ "resume-source", NULL }, &error)) {
    smolvm_call_fail (&op->call, g_steal_pointer (&error));
    return;
  }
  op->snapshot_id = snapshot_id[0] != '\0' ? g_strdup (snapshot_id) : NULL;
  op->resume = smolvm_call_option_bool (options, "resume-source");
  smolvm_call_authorize (&op->call, SMOLVM_ACTION_SNAPSHOT_CREATE, op->vm_id, op->snapshot_id,
                         "create", snapshot_create_run);
}
