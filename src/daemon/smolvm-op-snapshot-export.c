/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <unistd.h>

#include "smolvm-authority.h"
#include "smolvm-call.h"
#include "smolvm-error-map.h"
#include "smolvm-error.h"
#include "smolvm-fileutil.h"
#include "smolvm-id.h"
#include "smolvm-oci-archive.h"
#include "smolvm-oci-artifact.h"
#include "smolvm-ops.h"
#include "smolvm-registry.h"
#include "smolvm-store.h"

/* Snapshot.Export: build the artifact's blobs into a hidden layout dir of
 * the state directory (worker), then stream them as an OCI archive to the
 * caller's descriptor (worker); the layout dir goes however it ends. The
 * snapshot is held meanwhile, so it is neither deleted nor restored under
 * the export. */
typedef struct {
  SmolvmCall call;
  gchar *snapshot_id;
  int fd;
  SmolvmSnapshot *snapshot;
  gboolean holds_snapshot;
  gchar *layout_dir;
  GError *error; /* the failure reported once the layout dir is gone */
} SnapshotExport;

static void
snapshot_export_clear (SnapshotExport *op)
{
  if (op->holds_snapshot)
    smolvm_registry_release_snapshot (op->call.ctx->registry, op->snapshot_id);
  if (op->fd >= 0)
    close (op->fd);
  g_free (op->snapshot_id);
  g_clear_object (&op->snapshot);
  g_free (op->layout_dir);
  g_clear_error (&op->error);
}

static void
export_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  SnapshotExport *op = task_data;
  SmolvmProgress *progress = smolvm_call_get_progress (&op->call);
  g_autoptr(SmolvmOciArtifact) artifact = NULL;
  g_autoptr(GError) error = NULL;

  artifact = smolvm_oci_artifact_build (smolvm_snapshot_get_dir (op->snapshot), op->layout_dir,
                                        progress, cancellable, &error);
  if (artifact == NULL || !smolvm_oci_artifact_write_index (artifact, op->layout_dir, &error)) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  /* now that the blobs' sizes are known: their bytes written */
  smolvm_progress_expect (progress, smolvm_oci_artifact_get_blobs_size (artifact) +
                                      g_bytes_get_size (smolvm_oci_artifact_get_manifest (artifact)));
  if (!smolvm_oci_archive_write (artifact, op->layout_dir, op->fd, progress, cancellable,
                                 &error)) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  g_task_return_boolean (task, TRUE);
}

static void
on_layout_removed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotExport *op = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_rm_rf_finish (result, &error))
    g_warning ("Cannot remove %s: %s", op->layout_dir, error->message);
  if (op->error != NULL) {
    g_prefix_error (&op->error, "Cannot export snapshot '%s': ", op->snapshot_id);
    smolvm_call_fail (&op->call, g_steal_pointer (&op->error));
    return;
  }
  smolvm_call_return (&op->call, g_variant_new ("()"));
}

static void
on_exported (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotExport *op = user_data;

  if (!g_task_propagate_boolean (G_TASK (result), &op->error))
    smolvm_call_begin_rollback (&op->call);
  else
    smolvm_job_set_cancelable (op->call.job, FALSE);
  /* the caller sees the end of the archive now, not after the cleanup */
  close (op->fd);
  op->fd = -1;
  smolvm_rm_rf_async (op->layout_dir, on_layout_removed, op);
}

static void
snapshot_export_run (SmolvmCall *call)
{
  SnapshotExport *op = (SnapshotExport *) call;
  SmolvmContext *ctx = call->ctx;
  guint64 sizes[SMOLVM_SNAPSHOT_N_FILES] = { 0 };
  g_autoptr(GTask) task = NULL;
  const gchar *snapshots_dir = smolvm_store_get_snapshots_dir (ctx->store);
  g_autoptr(GError) error = NULL;
  guint64 data_size = 0;

  op->snapshot = smolvm_registry_get_snapshot (ctx->registry, op->snapshot_id, &error);
  if (op->snapshot == NULL) {
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  g_object_ref (op->snapshot);
  if (!smolvm_snapshot_check_files (op->snapshot, sizes, &error)) {
    g_prefix_error (&error, "Cannot export snapshot '%s': ", op->snapshot_id);
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  for (guint i = 0; i < SMOLVM_SNAPSHOT_N_FILES; i++)
    data_size += sizes[i];
  /* the blobs are at most about the data (zstd of random data grows by
   * little), and are removed again at the end */
  if (!smolvm_check_free_space (snapshots_dir, data_size, "The snapshot's blobs", &error) ||
      !smolvm_registry_hold_snapshot (ctx->registry, op->snapshot_id, "export", &error)) {
    g_prefix_error (&error, "Cannot export snapshot '%s': ", op->snapshot_id);
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  op->holds_snapshot = TRUE;
  /* a dot-entry: start-up removes it if the daemon dies meanwhile */
  op->layout_dir = g_build_filename (snapshots_dir, ".tmp-export-XXXXXX", NULL);
  if (g_mkdtemp_full (op->layout_dir, 0700) == NULL) {
    smolvm_error_set_errno (&error, errno, "Cannot export snapshot '%s': cannot create %s",
                            op->snapshot_id, op->layout_dir);
    g_clear_pointer (&op->layout_dir, g_free);
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }

  smolvm_call_start_job (call, SMOLVM_JOB_SNAPSHOT_EXPORT, SMOLVM_ACTION_SNAPSHOT_PUSH, TRUE,
                         smolvm_snapshot_get_object_path (op->snapshot), NULL);
  call->cancelled_summary =
    g_strdup_printf ("snapshot '%s' was not exported completely", op->snapshot_id);
  smolvm_progress_expect (smolvm_call_get_progress (call), data_size);
  smolvm_progress_set_phase (smolvm_call_get_progress (call), "exporting", TRUE);
  task = g_task_new (NULL, smolvm_call_get_cancellable (call), on_exported, op);
  g_task_set_task_data (task, op, NULL);
  g_task_set_check_cancellable (task, FALSE);
  g_task_run_in_thread (task, export_thread);
}

void
smolvm_op_snapshot_export (SmolvmContext *ctx, GDBusMethodInvocation *invocation,
                           const gchar *snapshot_id, GUnixFDList *fd_list, GVariant *fd,
                           GVariant *options)
{
  SnapshotExport *op =
    smolvm_call_new0 (SnapshotExport, ctx, invocation, snapshot_export_clear);
  SmolvmSnapshot *snapshot;
  g_autoptr(GError) error = NULL;

  op->fd = -1;
  op->snapshot_id = g_strdup (snapshot_id);
  if (!smolvm_call_check_options (options, (const gchar *[]){ NULL }, &error) ||
      (op->fd = smolvm_call_take_fd (fd_list, fd, "fd", &error)) < 0) {
    smolvm_call_fail (&op->call, g_steal_pointer (&error));
    return;
  }
  /* polkit hears of the snapshot's VM too, as for a restore or a delete */
  snapshot = smolvm_registry_get_snapshot (ctx->registry, op->snapshot_id, NULL);
  smolvm_call_authorize (&op->call, SMOLVM_ACTION_SNAPSHOT_PUSH,
                         snapshot != NULL ? smolvm_snapshot_get_vm_id (snapshot) : NULL,
                         op->snapshot_id, "export", snapshot_export_run);
}
