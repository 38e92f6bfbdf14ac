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

/* DeleteSnapshot: refused while a VM maps its mem.bin; one rename takes
 * the snapshot away atomically, then its files are removed. The rename is
 * the only step that can be undone by not doing it, so its Job cannot be
 * cancelled. */
typedef struct {
  SmolvmCall call;
  gchar *snapshot_id;
  gchar *vm_id;
  gboolean holds_snapshot;
} SnapshotDelete;

static void
snapshot_delete_clear (SnapshotDelete *op)
{
  if (op->holds_snapshot)
    smolvm_registry_release_snapshot (op->call.ctx->registry, op->snapshot_id);
  g_free (op->snapshot_id);
  g_free (op->vm_id);
}

static void
on_files_removed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotDelete *op = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_store_remove_finish (SMOLVM_STORE (source), result, &error)) {
    g_prefix_error (&error, "Snapshot '%s' was deleted, but its files were not all removed: ",
                    op->snapshot_id);
    smolvm_call_fail (&op->call, g_steal_pointer (&error));
    return;
  }
  smolvm_call_return (&op->call, NULL);
}

static void
snapshot_delete_run (SmolvmCall *call)
{
  SnapshotDelete *op = (SnapshotDelete *) call;
  SmolvmContext *ctx = call->ctx;
  g_autoptr(GError) error = NULL;
  SmolvmSnapshot *snapshot = smolvm_registry_get_snapshot (ctx->registry, op->snapshot_id, &error);

  if (snapshot == NULL) {
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  if (!smolvm_registry_check_snapshot_unmapped (ctx->registry, op->snapshot_id, &error) ||
      !smolvm_registry_hold_snapshot (ctx->registry, op->snapshot_id, "delete", &error)) {
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  op->holds_snapshot = TRUE;
  smolvm_call_start_job (call, SMOLVM_JOB_SNAPSHOT_DELETE, SMOLVM_ACTION_SNAPSHOT_DELETE, FALSE,
                         smolvm_snapshot_get_object_path (snapshot), NULL);
  smolvm_call_set_phase (call, "removing");
  /* the reply (from on_files_removed) waits until the move is durable */
  if (!smolvm_store_remove_async (ctx->store, smolvm_snapshot_get_dir (snapshot),
                                  on_files_removed, op, &error)) {
    g_prefix_error (&error, "Cannot delete snapshot '%s': ", op->snapshot_id);
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  smolvm_registry_remove_snapshot (ctx->registry, snapshot);
}

void
smolvm_op_snapshot_delete (SmolvmContext *ctx, GDBusMethodInvocation *invocation,
                           const gchar *snapshot_id, GVariant *options)
{
  SnapshotDelete *op = smolvm_call_new0 (SnapshotDelete, ctx, invocation, snapshot_delete_clear);
  g_autoptr(GError) error = NULL;
  SmolvmSnapshot *snapshot;

  op->snapshot_id = g_strdup (snapshot_id);
  if (!smolvm_id_validate (snapshot_id, "snapshot id", &error) ||
      !smolvm_call_check_options (options, (const gchar *[]){ NULL }, &error)) {
    smolvm_call_fail (&op->call, g_steal_pointer (&error));
    return;
  }
  /* polkit rules may want the VM of a snapshot-wide action */
  snapshot = smolvm_registry_lookup_snapshot (ctx->registry, snapshot_id);
  op->vm_id = snapshot != NULL ? g_strdup (smolvm_snapshot_get_vm_id (snapshot)) : NULL;
  smolvm_call_authorize (&op->call, SMOLVM_ACTION_SNAPSHOT_DELETE, op->vm_id, op->snapshot_id,
                         "delete", snapshot_delete_run);
}
