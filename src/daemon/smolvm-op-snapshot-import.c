/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <sys/stat.h>
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
#include "smolvm-snapshot-receive.h"
#include "smolvm-store.h"

/* Manager.ImportSnapshot: read the caller's OCI archive into a hidden
 * layout dir of the state directory, each blob checked against its digest
 * as it arrives (worker); then the receive steps shared with a pull
 * (smolvm-snapshot-receive.c) verify, unpack and publish. The layout dir
 * goes however it ends; the receive leaves nothing of a failed snapshot. */
typedef struct {
  SmolvmCall call;
  int fd;
  gchar *snapshot_id; /* the option, or NULL */
  gchar *layout_dir;
  gchar *object_path; /* the new snapshot's */
  GError *error;      /* the failure reported once the layout dir is gone */
} SnapshotImport;

static void
snapshot_import_clear (SnapshotImport *op)
{
  if (op->fd >= 0)
    close (op->fd);
  g_free (op->snapshot_id);
  g_free (op->layout_dir);
  g_free (op->object_path);
  g_clear_error (&op->error);
}

static void
on_layout_removed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotImport *op = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_rm_rf_finish (result, &error))
    g_warning ("Cannot remove %s: %s", op->layout_dir, error->message);
  if (op->error != NULL) {
    g_prefix_error (&op->error, "Cannot import the snapshot: ");
    smolvm_call_fail (&op->call, g_steal_pointer (&op->error));
    return;
  }
  smolvm_call_return (&op->call, g_variant_new ("(o)", op->object_path));
}

static void
finish (SnapshotImport *op)
{
  if (op->error != NULL)
    smolvm_call_begin_rollback (&op->call);
  smolvm_rm_rf_async (op->layout_dir, on_layout_removed, op);
}

static void
on_received (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotImport *op = user_data;

  op->object_path = smolvm_snapshot_receive_finish (result, &op->error);
  finish (op);
}

static void
read_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  SnapshotImport *op = task_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(SmolvmOciArtifact) artifact = smolvm_oci_archive_read (
    op->fd, op->layout_dir, smolvm_call_get_progress (&op->call), cancellable, &error);

  if (artifact == NULL) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  g_task_return_pointer (task, g_steal_pointer (&artifact), g_object_unref);
}

static void
on_read (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotImport *op = user_data;
  g_autoptr(SmolvmOciArtifact) artifact = g_task_propagate_pointer (G_TASK (result), &op->error);

  close (op->fd);
  op->fd = -1;
  if (artifact == NULL || !smolvm_call_check_cancelled (&op->call, &op->error)) {
    finish (op);
    return;
  }
  smolvm_snapshot_receive_async (op->call.ctx, op->call.job, artifact, op->layout_dir,
                                 op->snapshot_id, on_received, op);
}

static void
snapshot_import_run (SmolvmCall *call)
{
  SnapshotImport *op = (SnapshotImport *) call;
  SmolvmContext *ctx = call->ctx;
  g_autofree gchar *snapshot_path = NULL;
  g_autoptr(GTask) task = NULL;
  g_autoptr(GError) error = NULL;
  struct stat st;

  /* known now: no need to read the archive to refuse it */
  if (op->snapshot_id != NULL &&
      smolvm_registry_snapshot_id_taken (op->snapshot_id, ctx->registry)) {
    smolvm_call_fail_literal (call, SMOLVM_ERROR_ALREADY_EXISTS, "Snapshot '%s' already exists",
                              op->snapshot_id);
    return;
  }
  /* a dot-entry: start-up removes it if the daemon dies meanwhile */
  op->layout_dir = g_build_filename (smolvm_store_get_snapshots_dir (ctx->store),
                                     ".tmp-import-XXXXXX", NULL);
  if (g_mkdtemp_full (op->layout_dir, 0700) == NULL ||
      !smolvm_oci_layout_prepare (op->layout_dir, &error)) {
    if (error == NULL)
      smolvm_error_set_errno (&error, errno, "Cannot create %s", op->layout_dir);
    smolvm_rm_rf (op->layout_dir, NULL);
    g_clear_pointer (&op->layout_dir, g_free);
    g_prefix_error (&error, "Cannot import the snapshot: ");
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }

  if (op->snapshot_id != NULL)
    snapshot_path = smolvm_id_object_path ("snapshot", op->snapshot_id);
  smolvm_call_start_job (call, SMOLVM_JOB_SNAPSHOT_IMPORT, SMOLVM_ACTION_SNAPSHOT_PULL, TRUE,
                         snapshot_path, NULL);
  call->cancelled_summary = g_strdup ("the snapshot was not imported");
  /* a file: its size is what is read; a pipe: unknown until the end */
  if (fstat (op->fd, &st) == 0 && S_ISREG (st.st_mode)) {
    off_t pos = lseek (op->fd, 0, SEEK_CUR);
    smolvm_progress_expect (smolvm_call_get_progress (call),
                            (guint64) (st.st_size - MAX (pos, 0)));
  }
  smolvm_progress_set_phase (smolvm_call_get_progress (call), "receiving", TRUE);
  task = g_task_new (NULL, smolvm_call_get_cancellable (call), on_read, op);
  g_task_set_task_data (task, op, NULL);
  g_task_set_check_cancellable (task, FALSE);
  g_task_run_in_thread (task, read_thread);
}

static const SmolvmCallOption import_options[] = {
  { "snapshot-id", "s" },
  { NULL, NULL },
};

void
smolvm_op_snapshot_import (SmolvmContext *ctx, GDBusMethodInvocation *invocation,
                           GUnixFDList *fd_list, GVariant *fd, GVariant *options)
{
  SnapshotImport *op =
    smolvm_call_new0 (SnapshotImport, ctx, invocation, snapshot_import_clear);
  const gchar *snapshot_id = NULL;
  g_autoptr(GError) error = NULL;

  op->fd = -1;
  if (!smolvm_call_check_typed_options (options, import_options, &error) ||
      (g_variant_lookup (options, "snapshot-id", "&s", &snapshot_id) && snapshot_id[0] != '\0' &&
       !smolvm_id_validate (snapshot_id, "snapshot id", &error)) ||
      (op->fd = smolvm_call_take_fd (fd_list, fd, "fd", &error)) < 0) {
    smolvm_call_fail (&op->call, g_steal_pointer (&error));
    return;
  }
  if (snapshot_id != NULL && snapshot_id[0] != '\0')
    op->snapshot_id = g_strdup (snapshot_id);
  smolvm_call_authorize (&op->call, SMOLVM_ACTION_SNAPSHOT_PULL, NULL, op->snapshot_id,
                         "import", snapshot_import_run);
}
