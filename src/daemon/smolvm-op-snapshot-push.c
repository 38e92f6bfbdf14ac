/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <glib/gstdio.h>

#include "smolvm-authority.h"
#include "smolvm-call.h"
#include "smolvm-error-map.h"
#include "smolvm-error.h"
#include "smolvm-fileutil.h"
#include "smolvm-id.h"
#include "smolvm-oci-artifact.h"
#include "smolvm-oci-client.h"
#include "smolvm-oci-ref.h"
#include "smolvm-ops.h"
#include "smolvm-registry.h"
#include "smolvm-snapshot.h"
#include "smolvm-store.h"

/* Snapshot.Push: build the snapshot's OCI artifact into a layout dir of
 * its own under STATE/oci-cache (a worker thread), ask the registry (HEAD)
 * which of its blobs it lacks and upload only those, then PUT the
 * manifest under the reference's tag (or digest). The layout dir goes
 * whatever happens. Nothing on the registry names the artifact before the
 * manifest PUT, so a push cancelled or failed before it leaves at most
 * unreferenced blobs there (the registry's garbage collection takes them),
 * and nothing changes locally. */

typedef struct {
  SmolvmCall call;
  gchar *snapshot_id;
  gchar *vm_id;
  SmolvmOciRef *ref;
  gboolean holds_snapshot;
  gchar *snapshot_dir;
  gchar *cache_dir;  /* STATE/oci-cache */
  gchar *layout_dir; /* made in it by the build thread */
  gchar *username;
  gchar *password;
  SmolvmOciArtifact *artifact;
  SmolvmOciClient *client;
  GPtrArray *blobs; /* of SmolvmOciDescriptor, borrowed from the artifact */
  guint next;
  GPtrArray *missing; /* the same, the registry lacks them */
  GError *error;      /* kept while the layout dir goes */
} SnapshotPush;

static void
snapshot_push_clear (SnapshotPush *op)
{
  if (op->holds_snapshot)
    smolvm_registry_release_snapshot (op->call.ctx->registry, op->snapshot_id);
  g_free (op->snapshot_id);
  g_free (op->vm_id);
  g_clear_pointer (&op->ref, smolvm_oci_ref_free);
  g_free (op->snapshot_dir);
  g_free (op->cache_dir);
  g_free (op->layout_dir);
  g_free (op->username);
  g_free (op->password);
  g_clear_object (&op->artifact);
  g_clear_object (&op->client);
  g_clear_pointer (&op->missing, g_ptr_array_unref);
  g_clear_error (&op->error);
}

/* ---- the end: the layout dir goes, then the reply ---- */

static void
reply (SnapshotPush *op)
{
  if (op->error != NULL) {
    smolvm_call_fail (&op->call, g_steal_pointer (&op->error));
    return;
  }
  smolvm_call_return (&op->call, NULL);
}

static void
on_layout_removed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotPush *op = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_rm_rf_finish (result, &error))
    g_warning ("Cannot remove %s: %s", op->layout_dir, error->message);
  reply (op);
}

/* Takes @error (NULL: success). */
static void
finish (SnapshotPush *op, GError *error)
{
  g_autoptr(GError) owned = error;

  if (owned != NULL) {
    g_autofree gchar *ref = smolvm_oci_ref_to_string (op->ref);
    g_prefix_error (&owned, "Cannot push snapshot '%s' to %s: ", op->snapshot_id, ref);
    smolvm_call_begin_rollback (&op->call);
  }
  op->error = g_steal_pointer (&owned);
  if (op->layout_dir == NULL) {
    reply (op);
    return;
  }
  smolvm_call_set_phase (&op->call, op->error != NULL ? "rolling-back" : "cleaning-up");
  smolvm_rm_rf_async (op->layout_dir, on_layout_removed, op);
}

/* ---- the manifest ---- */

static void
on_manifest_put (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotPush *op = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_oci_client_manifest_put_finish (SMOLVM_OCI_CLIENT (source), result, &error)) {
    finish (op, g_steal_pointer (&error));
    return;
  }
  finish (op, NULL);
}

static void
put_manifest (SnapshotPush *op)
{
  g_autoptr(GError) error = NULL;

  if (!smolvm_call_check_cancelled (&op->call, &error)) {
    finish (op, g_steal_pointer (&error));
    return;
  }
  /* the point of no return: the reference names the artifact now */
  smolvm_call_set_phase (&op->call, "publishing");
  smolvm_oci_client_manifest_put_async (op->client, smolvm_oci_ref_get_reference (op->ref),
                                        smolvm_oci_artifact_get_manifest (op->artifact),
                                        SMOLVM_OCI_MEDIA_TYPE_MANIFEST,
                                        smolvm_call_get_cancellable (&op->call), on_manifest_put,
                                        op);
}

/* ---- the blobs the registry lacks ---- */

static void upload_next (SnapshotPush *op);

static void
on_blob_uploaded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotPush *op = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_oci_client_blob_upload_finish (SMOLVM_OCI_CLIENT (source), result, &error)) {
    finish (op, g_steal_pointer (&error));
    return;
  }
  upload_next (op);
}

static void
upload_next (SnapshotPush *op)
{
  SmolvmOciDescriptor *desc;
  g_autoptr(GError) error = NULL;
  g_autofree gchar *path = NULL;

  if (op->next == op->missing->len) {
    put_manifest (op);
    return;
  }
  desc = g_ptr_array_index (op->missing, op->next++);
  path = smolvm_oci_layout_blob_path (op->layout_dir, desc->digest, &error);
  if (path == NULL) {
    finish (op, g_steal_pointer (&error));
    return;
  }
  smolvm_oci_client_blob_upload_async (op->client, desc->digest, desc->size, path,
                                       smolvm_call_get_progress (&op->call),
                                       smolvm_call_get_cancellable (&op->call), on_blob_uploaded,
                                       op);
}

static void check_next (SnapshotPush *op);

static void
on_blob_checked (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotPush *op = user_data;
  g_autoptr(GError) error = NULL;
  gboolean exists = FALSE;

  if (!smolvm_oci_client_blob_exists_finish (SMOLVM_OCI_CLIENT (source), result, &exists,
                                             &error)) {
    finish (op, g_steal_pointer (&error));
    return;
  }
  if (!exists)
    g_ptr_array_add (op->missing, g_ptr_array_index (op->blobs, op->next - 1));
  check_next (op);
}

static void
check_next (SnapshotPush *op)
{
  SmolvmOciDescriptor *desc;

  if (op->next == op->blobs->len) {
    guint64 bytes = 0;
    for (guint i = 0; i < op->missing->len; i++)
      bytes += ((SmolvmOciDescriptor *) g_ptr_array_index (op->missing, i))->size;
    g_debug ("Push of '%s': %u of %u blobs (%" G_GUINT64_FORMAT " bytes) to upload",
             op->snapshot_id, op->missing->len, op->blobs->len, bytes);
    smolvm_progress_expect (smolvm_call_get_progress (&op->call), bytes);
    smolvm_progress_set_phase (smolvm_call_get_progress (&op->call), "uploading", TRUE);
    op->next = 0;
    upload_next (op);
    return;
  }
  desc = g_ptr_array_index (op->blobs, op->next++);
  smolvm_oci_client_blob_exists_async (op->client, desc->digest, desc->size,
                                       smolvm_call_get_cancellable (&op->call), on_blob_checked,
                                       op);
}

static void
on_pinged (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotPush *op = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_oci_client_ping_finish (SMOLVM_OCI_CLIENT (source), result, &error)) {
    finish (op, g_steal_pointer (&error));
    return;
  }
  smolvm_call_set_phase (&op->call, "checking-blobs");
  op->blobs = smolvm_oci_artifact_get_blobs (op->artifact);
  op->missing = g_ptr_array_new ();
  op->next = 0;
  check_next (op);
}

/* ---- building the artifact (a worker thread) ---- */

static void
build_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  SnapshotPush *op = task_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(SmolvmOciArtifact) artifact = NULL;
  guint64 data = 0;
  const gchar *files[] = { SMOLVM_SNAPSHOT_VMSTATE, SMOLVM_SNAPSHOT_MEM, SMOLVM_SNAPSHOT_DISK };
  g_autofree gchar *template = g_build_filename (op->cache_dir, "push-XXXXXX", NULL);

  if (!smolvm_oci_credentials_lookup (op->call.ctx->registry_auth_file, op->ref->registry,
                                      &op->username, &op->password, &error) ||
      !smolvm_mkdir_p (op->cache_dir, 0700, &error)) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  if (g_mkdtemp_full (template, 0700) == NULL) {
    int errsv = errno;
    g_task_return_new_error (task, SMOLVM_ERROR, smolvm_error_code_from_errno (errsv),
                             "Cannot create %s: %s", template, g_strerror (errsv));
    return;
  }
  /* read by the main thread only once this task is done */
  op->layout_dir = g_steal_pointer (&template);
  /* the bytes of data the build reads: holes are never read */
  for (gsize i = 0; i < G_N_ELEMENTS (files); i++) {
    g_autofree gchar *path = g_build_filename (op->snapshot_dir, files[i], NULL);
    guint64 size = 0;
    if (smolvm_file_data_size (path, &size, NULL))
      data += size;
  }
  smolvm_progress_expect (smolvm_call_get_progress (&op->call), data);
  artifact = smolvm_oci_artifact_build (op->snapshot_dir, op->layout_dir,
                                        smolvm_call_get_progress (&op->call), cancellable, &error);
  if (artifact == NULL) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  g_task_return_pointer (task, g_steal_pointer (&artifact), g_object_unref);
}

static void
on_built (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotPush *op = user_data;
  g_autoptr(GError) error = NULL;
  SmolvmContext *ctx = op->call.ctx;

  op->artifact = g_task_propagate_pointer (G_TASK (result), &error);
  if (op->artifact == NULL || !smolvm_call_check_cancelled (&op->call, &error)) {
    finish (op, error != NULL ? smolvm_error_normalize (error) : NULL);
    return;
  }
  if (op->ref->digest != NULL &&
      !g_str_equal (op->ref->digest, smolvm_oci_artifact_get_manifest_digest (op->artifact))) {
    finish (op, g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                             "the snapshot's manifest is %s, not %s: push it by tag",
                             smolvm_oci_artifact_get_manifest_digest (op->artifact),
                             op->ref->digest));
    return;
  }
  op->client = smolvm_oci_client_new (
    op->ref->registry, op->ref->repository,
    smolvm_oci_registry_is_insecure ((const gchar *const *) ctx->insecure_registries,
                                     op->ref->registry),
    TRUE);
  if (op->username != NULL)
    smolvm_oci_client_set_credentials (op->client, op->username, op->password);
  smolvm_call_set_phase (&op->call, "connecting");
  smolvm_oci_client_ping_async (op->client, smolvm_call_get_cancellable (&op->call), on_pinged,
                                op);
}

static void
snapshot_push_run (SmolvmCall *call)
{
  SnapshotPush *op = (SnapshotPush *) call;
  SmolvmContext *ctx = call->ctx;
  g_autoptr(GError) error = NULL;
  g_autoptr(GTask) task = NULL;
  SmolvmSnapshot *snapshot = smolvm_registry_get_snapshot (ctx->registry, op->snapshot_id, &error);

  if (snapshot == NULL ||
      !smolvm_registry_hold_snapshot (ctx->registry, op->snapshot_id, "push", &error)) {
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  op->holds_snapshot = TRUE;
  op->snapshot_dir = g_strdup (smolvm_snapshot_get_dir (snapshot));
  op->cache_dir = smolvm_store_oci_cache_dir (ctx->store, NULL);
  smolvm_call_start_job (call, SMOLVM_JOB_SNAPSHOT_PUSH, SMOLVM_ACTION_SNAPSHOT_PUSH, TRUE,
                         smolvm_snapshot_get_object_path (snapshot), NULL);
  call->cancelled_summary = g_strdup_printf ("snapshot '%s' was not pushed", op->snapshot_id);
  smolvm_progress_set_phase (smolvm_call_get_progress (call), "packing", TRUE);
  task = g_task_new (NULL, smolvm_call_get_cancellable (call), on_built, op);
  g_task_set_task_data (task, op, NULL);
  g_task_run_in_thread (task, build_thread);
}

void
smolvm_op_snapshot_push (SmolvmContext *ctx, GDBusMethodInvocation *invocation,
                         const gchar *snapshot_id, const gchar *reference, GVariant *options)
{
  SnapshotPush *op = smolvm_call_new0 (SnapshotPush, ctx, invocation, snapshot_push_clear);
  g_autoptr(GError) error = NULL;
  SmolvmSnapshot *snapshot;

  op->snapshot_id = g_strdup (snapshot_id);
  if (!smolvm_id_validate (snapshot_id, "snapshot id", &error) ||
      !smolvm_call_check_options (options, (const gchar *[]){ NULL }, &error) ||
      (op->ref = smolvm_oci_ref_parse (reference, &error)) == NULL) {
    smolvm_call_fail (&op->call, g_steal_pointer (&error));
    return;
  }
  snapshot = smolvm_registry_lookup_snapshot (ctx->registry, snapshot_id);
  op->vm_id = snapshot != NULL ? g_strdup (smolvm_snapshot_get_vm_id (snapshot)) : NULL;
  smolvm_call_authorize (&op->call, SMOLVM_ACTION_SNAPSHOT_PUSH, op->vm_id, op->snapshot_id,
                         "push", snapshot_push_run);
}
