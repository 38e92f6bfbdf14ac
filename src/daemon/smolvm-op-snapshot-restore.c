/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <stdio.h>

#include "smolvm-authority.h"
#include "smolvm-call.h"
#include "smolvm-error-map.h"
#include "smolvm-fileutil.h"
#include "smolvm-id.h"
#include "smolvm-network.h"
#include "smolvm-ops.h"
#include "smolvm-record-writer.h"
#include "smolvm-registry.h"
#include "smolvm-store.h"

/* RestoreSnapshot: check vmstate.bin's checksum and copy the snapshot's
 * disk beside the VM's while the VM of the snapshot's id still runs (or is
 * recreated from the snapshot); only then stop the VM, swap the disks and
 * have a fresh VMM load the state. The VM's own disk is dropped only once
 * the snapshot runs. A failure or Cancel up to the copy leaves the VM as it
 * was; after the stop, rollback leaves it stopped with its own disk back. A
 * recreated VM is gone again either way. */
typedef struct {
  SmolvmCall call;
  gchar *snapshot_id;
  gchar *vm_id;
  gboolean resume;
  gboolean force;
  SmolvmSnapshot *snapshot;
  SmolvmVm *vm;
  gboolean vm_is_new;
  gboolean holds_vm;
  gboolean holds_vm_id;
  gboolean holds_snapshot;
  guint64 sizes[3];     /* data bytes of vmstate.bin, mem.bin, disk.ext4, as checked */
  gchar *incoming_disk; /* the snapshot's disk, copied beside the VM's */
  gchar *backup_disk;
  GError *error; /* the failure a rollback reports at its end */
  gboolean was_restored; /* the snapshot's Restored and RestoredVmId before */
  gchar *was_vm;
  gchar *was_restored_from; /* the VM's RestoredFrom before */
} SnapshotRestore;

static void
snapshot_restore_clear (SnapshotRestore *op)
{
  SmolvmContext *ctx = op->call.ctx;
  if (op->holds_vm)
    smolvm_vm_end_op (op->vm);
  if (op->holds_snapshot)
    smolvm_registry_release_snapshot (ctx->registry, op->snapshot_id);
  if (op->holds_vm_id)
    smolvm_registry_release_vm_id (ctx->registry, op->vm_id);
  g_free (op->snapshot_id);
  g_free (op->vm_id);
  g_clear_object (&op->snapshot);
  g_clear_object (&op->vm);
  g_free (op->incoming_disk);
  g_free (op->backup_disk);
  g_free (op->was_vm);
  g_free (op->was_restored_from);
  g_clear_error (&op->error);
}

static SmolvmDbusSnapshot *
snapshot_iface (SnapshotRestore *op)
{
  return SMOLVM_DBUS_SNAPSHOT (op->snapshot);
}

/* ---- rollback ---- */

/* A VM the restore made is gone again: the caller hears why. */
static void
on_rollback_vm_removed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotRestore *op = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_store_discard_finish (SMOLVM_STORE (source), result, &error))
    g_warning ("%s", error->message);
  smolvm_call_fail (&op->call, g_steal_pointer (&op->error));
}

static void
abandon_finish (SnapshotRestore *op)
{
  if (op->vm_is_new) {
    smolvm_network_release (op->call.ctx->network, op->vm_id,
                            smolvm_vm_get_network_config (op->vm));
    /* empty again (the incoming disk is gone): the directory goes too */
    smolvm_call_discard_record_dir (&op->call, smolvm_vm_get_dir (op->vm),
                                    on_rollback_vm_removed, op);
    return;
  }
  smolvm_call_fail (&op->call, g_steal_pointer (&op->error));
}

static void
on_abandon_incoming_removed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotRestore *op = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_store_discard_finish (SMOLVM_STORE (source), result, &error))
    g_warning ("%s", error->message);
  abandon_finish (op);
}

/* Before the VM was touched: the incoming disk, and a recreated VM's
 * directory and network claim, are undone. */
static void
abandon (SnapshotRestore *op, GError *error)
{
  g_prefix_error (&error, "Cannot restore snapshot '%s': ", op->snapshot_id);
  op->error = g_steal_pointer (&error);
  smolvm_call_begin_rollback (&op->call);
  if (op->incoming_disk != NULL && g_file_test (op->incoming_disk, G_FILE_TEST_EXISTS)) {
    smolvm_store_discard_async (op->call.ctx->store, op->incoming_disk,
                                on_abandon_incoming_removed, op);
    return;
  }
  abandon_finish (op);
}

static void
rollback_forget_new_vm (SnapshotRestore *op)
{
  SmolvmContext *ctx = op->call.ctx;

  if (!op->vm_is_new) {
    smolvm_call_fail (&op->call, g_steal_pointer (&op->error));
    return;
  }
  smolvm_network_release (ctx->network, op->vm_id, smolvm_vm_get_network_config (op->vm));
  smolvm_store_remove_runtime (ctx->store, op->vm_id);
  smolvm_call_discard_record_dir (&op->call, smolvm_vm_get_dir (op->vm), on_rollback_vm_removed, op);
}

static void
on_rollback_disk_removed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotRestore *op = user_data;
  const gchar *disk = smolvm_vm_get_disk_path (op->vm);
  g_autoptr(GError) error = NULL;

  if (!smolvm_store_discard_finish (SMOLVM_STORE (source), result, &error) ||
      rename (op->backup_disk, disk) != 0)
    g_warning ("Cannot put back the disk of VM '%s' (it is at %s): %s", op->vm_id,
               op->backup_disk, error != NULL ? error->message : g_strerror (errno));
  rollback_forget_new_vm (op);
}

static void
on_rollback_stopped (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotRestore *op = user_data;

  smolvm_vm_op_finish (SMOLVM_VM (source), result, NULL);
  if (op->backup_disk == NULL) {
    rollback_forget_new_vm (op);
    return;
  }
  smolvm_store_discard_async (op->call.ctx->store, smolvm_vm_get_disk_path (op->vm),
                              on_rollback_disk_removed, op);
}

/* The VM ends stopped with its previous disk; a recreated VM is gone. */
static void
rollback (SnapshotRestore *op, GError *error)
{
  g_prefix_error (&error, "Cannot restore snapshot '%s': ", op->snapshot_id);
  op->error = g_steal_pointer (&error);
  smolvm_call_begin_rollback (&op->call);
  smolvm_vm_stop_async (op->vm, on_rollback_stopped, op);
}

/* ---- steps ---- */

static void
on_snapshot_saved (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotRestore *op = user_data;
  SmolvmContext *ctx = op->call.ctx;
  g_autoptr(GError) error = NULL;

  if (!smolvm_snapshot_save_finish (SMOLVM_SNAPSHOT (source), result, &error)) {
    /* what is on disk still says the old values; so must the objects */
    smolvm_snapshot_mark_restored (op->snapshot, op->was_restored, op->was_vm);
    smolvm_vm_set_restored_from (op->vm, op->was_restored_from);
    rollback (op, g_steal_pointer (&error));
    return;
  }
  /* vm.json, which says the restore completed, was made durable before
   * snapshot.json (one writer, in order): a crash that brings the old disk
   * back has start-up drop it, so its move need not be synced here */
  if (op->backup_disk != NULL) {
    g_autoptr(GError) discard_error = NULL;
    if (!smolvm_store_discard_lazily (ctx->store, op->backup_disk, &discard_error))
      g_warning ("%s", discard_error->message);
  }
  if (op->vm_is_new)
    smolvm_registry_add_vm (ctx->registry, op->vm);
  smolvm_call_return (&op->call, g_variant_new ("(o)", smolvm_vm_get_object_path (op->vm)));
}

static void
on_loaded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotRestore *op = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_vm_op_finish (SMOLVM_VM (source), result, &error) ||
      !smolvm_call_check_cancelled (&op->call, &error)) {
    rollback (op, g_steal_pointer (&error));
    return;
  }
  smolvm_job_set_cancelable (op->call.job, FALSE);
  smolvm_call_set_phase (&op->call, "committing");
  op->was_restored = smolvm_dbus_snapshot_get_restored (snapshot_iface (op));
  op->was_vm = g_strdup (smolvm_dbus_snapshot_get_restored_vm_id (snapshot_iface (op)));
  op->was_restored_from = g_strdup (smolvm_vm_get_restored_from (op->vm));
  smolvm_snapshot_mark_restored (op->snapshot, TRUE, op->vm_id);
  /* the guest maps mem.bin from now on; recorded in the same vm.json write
   * as its new state (the record writer merges the two), undone if the
   * snapshot's record cannot be written */
  smolvm_vm_set_restored_from (op->vm, op->snapshot_id);
  smolvm_snapshot_save_async (op->snapshot, on_snapshot_saved, op);
}

static void
load (SnapshotRestore *op)
{
  smolvm_vm_load_snapshot_async (op->vm,
                                 smolvm_dbus_snapshot_get_snapshot_path (snapshot_iface (op)),
                                 smolvm_dbus_snapshot_get_mem_file_path (snapshot_iface (op)),
                                 op->resume, smolvm_call_get_progress (&op->call),
                                 smolvm_call_get_cancellable (&op->call), on_loaded, op);
}

/* The VM is stopped: its disk goes aside (so that a failed restore can put
 * it back) and the snapshot's takes its place. */
static void
swap_disks (SnapshotRestore *op)
{
  const gchar *disk = smolvm_vm_get_disk_path (op->vm);
  g_autoptr(GError) error = NULL;

  if (!smolvm_call_check_cancelled (&op->call, &error)) {
    rollback (op, g_steal_pointer (&error));
    return;
  }
  if (g_file_test (disk, G_FILE_TEST_EXISTS)) {
    g_autofree gchar *backup = smolvm_store_pre_restore_path (disk);
    /* a leftover of an earlier restore goes first, off the main loop */
    if (g_file_test (backup, G_FILE_TEST_EXISTS) &&
        !smolvm_store_discard (op->call.ctx->store, backup, &error)) {
      rollback (op, g_steal_pointer (&error));
      return;
    }
    if (rename (disk, backup) != 0) {
      smolvm_error_set_errno (&error, errno, "Cannot set aside the disk of VM '%s'", op->vm_id);
      rollback (op, g_steal_pointer (&error));
      return;
    }
    op->backup_disk = g_steal_pointer (&backup);
  }
  if (rename (op->incoming_disk, disk) != 0) {
    smolvm_error_set_errno (&error, errno, "Cannot put the snapshot's disk in place for VM '%s'",
                            op->vm_id);
    rollback (op, g_steal_pointer (&error));
    return;
  }
  load (op);
}

static void
on_vm_stopped (GObject *source, GAsyncResult *result, gpointer user_data)
{
  smolvm_vm_op_finish (SMOLVM_VM (source), result, NULL);
  swap_disks (user_data);
}

static void
on_disk_copied (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotRestore *op = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_copy_file_sparse_finish (result, &error) ||
      !smolvm_call_check_cancelled (&op->call, &error)) {
    abandon (op, g_steal_pointer (&error));
    return;
  }
  /* only now, with everything in place, does a running VM go */
  if (smolvm_vm_get_vmm (op->vm) == NULL) {
    swap_disks (op);
    return;
  }
  smolvm_call_set_phase (&op->call, "stopping");
  smolvm_vm_stop_async (op->vm, on_vm_stopped, op);
}

static void
copy_disk (SnapshotRestore *op)
{
  g_autoptr(GError) error = NULL;

  if (!smolvm_call_check_cancelled (&op->call, &error)) {
    abandon (op, g_steal_pointer (&error));
    return;
  }
  op->incoming_disk = smolvm_store_incoming_disk_path (smolvm_vm_get_disk_path (op->vm));
  /* a leftover of a restore a crash cut short */
  if (g_file_test (op->incoming_disk, G_FILE_TEST_EXISTS) &&
      !smolvm_store_discard (op->call.ctx->store, op->incoming_disk, &error)) {
    abandon (op, g_steal_pointer (&error));
    return;
  }
  smolvm_progress_set_phase (smolvm_call_get_progress (&op->call), "copying-disk", TRUE);
  /* its data is synced; its name need not be: it is renamed into place
   * before vm.json's write, whose sync of this directory covers both, and
   * start-up removes a .restoring disk, or puts the VM's own back, as long
   * as vm.json does not say the restore completed */
  smolvm_copy_file_sparse_full_async (smolvm_dbus_snapshot_get_disk_path (snapshot_iface (op)),
                                      op->incoming_disk, SMOLVM_COPY_NO_DIR_SYNC,
                                      smolvm_call_get_progress (&op->call),
                                      smolvm_call_get_cancellable (&op->call), on_disk_copied,
                                      op);
}

static void
on_vmstate_hashed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotRestore *op = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree gchar *sha256 = smolvm_file_sha256_finish (result, &error);

  if (sha256 == NULL) {
    abandon (op, g_steal_pointer (&error));
    return;
  }
  if (g_strcmp0 (sha256, smolvm_snapshot_get_vmstate_sha256 (op->snapshot)) != 0) {
    abandon (op, g_error_new_literal (SMOLVM_ERROR, SMOLVM_ERROR_FAILED,
                                      "its vmstate.bin is damaged (checksum mismatch)"));
    return;
  }
  copy_disk (op);
}

static gboolean
vm_matches_snapshot (SmolvmVm *vm, SmolvmSnapshot *snapshot, GError **error)
{
  g_autoptr(GVariant) vm_config =
    g_variant_ref_sink (smolvm_vm_config_to_variant (smolvm_vm_get_config (vm)));
  g_autoptr(GVariant) snapshot_config =
    g_variant_ref_sink (smolvm_vm_config_to_variant (smolvm_snapshot_get_vm_config (snapshot)));

  if (g_variant_equal (vm_config, snapshot_config) &&
      g_variant_equal (smolvm_vm_get_network_config (vm),
                       smolvm_snapshot_get_network_config (snapshot)) &&
      smolvm_store_images_match (smolvm_vm_get_dir (vm), smolvm_snapshot_get_dir (snapshot)))
    return TRUE;
  g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_STATE,
               "VM '%s' now has another configuration, network identity or kernel than when "
               "snapshot '%s' was taken; delete the VM, and the restore recreates it as it was",
               smolvm_vm_get_id (vm), smolvm_snapshot_get_id (snapshot));
  return FALSE;
}

/* Everything a restore can know to fail on is checked before any VM is
 * touched: the snapshot's files, mem.bin's size, and the room for the
 * disk's copy. (The checksum of vmstate.bin follows, also before.) */
static gboolean
check_snapshot_files (SnapshotRestore *op, GError **error)
{
  SmolvmContext *ctx = op->call.ctx;

  if (!smolvm_snapshot_check_files (op->snapshot, op->sizes, error))
    return FALSE;
  /* mem.bin is mapped, not copied (both backends): only the disk is */
  return smolvm_check_free_space (smolvm_store_get_vms_dir (ctx->store), op->sizes[2],
                                  "The copy of the snapshot's disk", error);
}

/* The VM was deleted: its identity comes back from the snapshot. */
static gboolean
recreate_vm (SnapshotRestore *op, GError **error)
{
  SmolvmContext *ctx = op->call.ctx;
  GVariant *net = smolvm_snapshot_get_network_config (op->snapshot);
  g_autofree gchar *dir = smolvm_store_vm_dir (ctx->store, op->vm_id);

  if (!smolvm_registry_reserve_vm_id (ctx->registry, op->vm_id, error))
    return FALSE;
  op->holds_vm_id = TRUE;
  if (!smolvm_network_claim (ctx->network, op->vm_id, net, error))
    return FALSE;
  if (!smolvm_store_make_record_dir (ctx->store, dir, error)) {
    smolvm_network_release (ctx->network, op->vm_id, net);
    return FALSE;
  }
  /* the kernel and initrd the snapshot's guest booted */
  if (!smolvm_store_link_images (smolvm_snapshot_get_dir (op->snapshot), dir, error)) {
    smolvm_network_release (ctx->network, op->vm_id, net);
    if (!smolvm_store_discard (ctx->store, dir, NULL))
      g_warning ("Cannot remove %s", dir);
    return FALSE;
  }
  op->vm = smolvm_vm_new (ctx, smolvm_snapshot_get_vm_config (op->snapshot), net);
  op->vm_is_new = TRUE;
  return TRUE;
}

static void
snapshot_restore_run (SmolvmCall *call)
{
  SnapshotRestore *op = (SnapshotRestore *) call;
  SmolvmContext *ctx = call->ctx;
  SmolvmProgress *progress;
  g_autoptr(GError) error = NULL;
  const gchar *vmstate;

  op->snapshot = smolvm_registry_get_snapshot (ctx->registry, op->snapshot_id, &error);
  if (op->snapshot == NULL) {
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  g_object_ref (op->snapshot);
  g_free (op->vm_id);
  op->vm_id = g_strdup (smolvm_snapshot_get_vm_id (op->snapshot));
  /* Without force, a restored snapshot is AlreadyRestored whatever its VM
   * does (SmolVM checks in this order too); InUse answers force while the
   * restored VM still maps the snapshot's memory. */
  if (smolvm_dbus_snapshot_get_restored (snapshot_iface (op)) && !op->force) {
    smolvm_call_fail_literal (call, SMOLVM_ERROR_ALREADY_RESTORED,
                              "Snapshot '%s' was already restored into VM '%s'; use force to "
                              "restore it again",
                              op->snapshot_id,
                              smolvm_dbus_snapshot_get_restored_vm_id (snapshot_iface (op)));
    return;
  }
  if (!smolvm_registry_check_snapshot_unused (ctx->registry, op->snapshot_id, "; stop it first",
                                              &error)) {
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  if (!check_snapshot_files (op, &error)) {
    g_prefix_error (&error, "Cannot restore snapshot '%s': ", op->snapshot_id);
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  if (!smolvm_registry_hold_snapshot (ctx->registry, op->snapshot_id, "restore", &error)) {
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  op->holds_snapshot = TRUE;

  op->vm = smolvm_registry_lookup_vm (ctx->registry, op->vm_id);
  if (op->vm != NULL) {
    g_object_ref (op->vm);
    /* the snapshot's identity or nothing: a VM re-created under the same id
     * with other settings would run the old guest under false properties */
    if (!vm_matches_snapshot (op->vm, op->snapshot, &error)) {
      smolvm_call_fail (call, g_steal_pointer (&error));
      return;
    }
  } else if (!recreate_vm (op, &error)) {
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  if (!smolvm_vm_begin_op (op->vm, "restore", &error)) {
    abandon (op, g_steal_pointer (&error));
    return;
  }
  op->holds_vm = TRUE;

  smolvm_call_start_job (call, SMOLVM_JOB_SNAPSHOT_RESTORE, SMOLVM_ACTION_SNAPSHOT_RESTORE, TRUE,
                         smolvm_snapshot_get_object_path (op->snapshot),
                         smolvm_vm_get_object_path (op->vm), NULL);
  call->cancelled_summary = g_strdup_printf ("snapshot '%s' was not restored", op->snapshot_id);
  progress = smolvm_call_get_progress (call);
  vmstate = smolvm_dbus_snapshot_get_snapshot_path (snapshot_iface (op));
  /* the sizes check_snapshot_files() found: no second stat */
  smolvm_progress_expect (progress, op->sizes[2]);
  if (smolvm_snapshot_get_vmstate_sha256 (op->snapshot) == NULL) {
    copy_disk (op);
    return;
  }
  smolvm_progress_expect (progress, op->sizes[0]);
  smolvm_progress_set_phase (progress, "checksumming", TRUE);
  smolvm_file_sha256_async (vmstate, progress, smolvm_call_get_cancellable (call),
                            on_vmstate_hashed, op);
}

void
smolvm_op_snapshot_restore (SmolvmContext *ctx, GDBusMethodInvocation *invocation,
                            const gchar *snapshot_id, GVariant *options)
{
  SnapshotRestore *op =
    smolvm_call_new0 (SnapshotRestore, ctx, invocation, snapshot_restore_clear);
  g_autoptr(GError) error = NULL;
  SmolvmSnapshot *snapshot;

  op->snapshot_id = g_strdup (snapshot_id);
  if (!smolvm_id_validate (snapshot_id, "snapshot id", &error) ||
      !smolvm_call_check_options (options, (const gchar *[]){ "resume", "force", NULL }, &error)) {
    smolvm_call_fail (&op->call, g_steal_pointer (&error));
    return;
  }
  op->resume = smolvm_call_option_bool (options, "resume");
  op->force = smolvm_call_option_bool (options, "force");
  /* polkit rules may want the VM of a snapshot-wide action */
  snapshot = smolvm_registry_lookup_snapshot (ctx->registry, snapshot_id);
  op->vm_id = snapshot != NULL ? g_strdup (smolvm_snapshot_get_vm_id (snapshot)) : NULL;
  smolvm_call_authorize (&op->call, SMOLVM_ACTION_SNAPSHOT_RESTORE, op->vm_id, op->snapshot_id,
                         "restore", snapshot_restore_run);
}
