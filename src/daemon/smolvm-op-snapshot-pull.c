/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

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
#include "smolvm-snapshot-receive.h"
#include "smolvm-store.h"

/* Manager.PullSnapshot: GET the manifest and check it is a smolvm
 * snapshot, fetch its config and check this host can take it (backend,
 * free id) before any big transfer, fetch the layers into the pull cache
 * STATE/oci-cache/pull-<manifest hex> (each verified by its sha256 as it
 * is written, renamed into place only then), and hand the layout to
 * smolvm_snapshot_receive_async(), which unpacks, commits and publishes
 * the snapshot or leaves nothing. The cache goes once the snapshot exists,
 * or when its content proved bad (Corrupt, NotASnapshot); after any other
 * failure or a Cancel the verified blobs stay, so the same pull started
 * again fetches only what it lacks. */

typedef struct {
  SmolvmCall call;
  SmolvmOciRef *ref;
  gchar *snapshot_id; /* the option; NULL: the artifact's own */
  gchar *username;
  gchar *password;
  SmolvmOciClient *client;
  GBytes *manifest;
  SmolvmOciArtifact *artifact;
  gchar *layout_dir;
  GPtrArray *blobs; /* of SmolvmOciDescriptor, the artifact's */
  guint next;
  gchar *object_path; /* the new snapshot's */
  GError *error;      /* kept while the cache goes */
} SnapshotPull;

static void
snapshot_pull_clear (SnapshotPull *op)
{
  g_clear_pointer (&op->ref, smolvm_oci_ref_free);
  g_free (op->snapshot_id);
  g_free (op->username);
  g_free (op->password);
  g_clear_object (&op->client);
  g_clear_pointer (&op->manifest, g_bytes_unref);
  g_clear_object (&op->artifact);
  g_free (op->layout_dir);
  g_free (op->object_path);
  g_clear_error (&op->error);
}

/* ---- the end ---- */

static void
reply (SnapshotPull *op)
{
  if (op->error != NULL) {
    smolvm_call_fail (&op->call, g_steal_pointer (&op->error));
    return;
  }
  smolvm_call_return (&op->call, g_variant_new ("(o)", op->object_path));
}

static void
on_cache_removed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotPull *op = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_rm_rf_finish (result, &error))
    g_warning ("Cannot remove %s: %s", op->layout_dir, error->message);
  reply (op);
}

/* Runs @func with @op in a worker thread, then @done on the main thread. */
static void
run_in_thread (SnapshotPull *op, GTaskThreadFunc func, GAsyncReadyCallback done)
{
  g_autoptr(GTask) task = g_task_new (NULL, smolvm_call_get_cancellable (&op->call), done, op);

  g_task_set_task_data (task, op, NULL);
  g_task_run_in_thread (task, func);
}

/* Takes @error (NULL: success). */
static void
finish (SnapshotPull *op, GError *error)
{
  g_autoptr(GError) owned = error;
  gboolean bad_content = FALSE;

  if (owned != NULL) {
    g_autofree gchar *ref = smolvm_oci_ref_to_string (op->ref);
    bad_content = g_error_matches (owned, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT) ||
                  g_error_matches (owned, SMOLVM_ERROR, SMOLVM_ERROR_NOT_A_SNAPSHOT);
    g_prefix_error (&owned, "Cannot pull %s: ", ref);
    smolvm_call_begin_rollback (&op->call);
  }
  op->error = g_steal_pointer (&owned);
  if (op->layout_dir == NULL || (op->error != NULL && !bad_content)) {
    if (op->layout_dir != NULL)
      g_message ("Pull of %s failed; its verified blobs stay in %s for the next try",
                 smolvm_oci_artifact_get_manifest_digest (op->artifact), op->layout_dir);
    reply (op);
    return;
  }
  smolvm_rm_rf_async (op->layout_dir, on_cache_removed, op);
}

/* ---- receiving ---- */

static void
on_received (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotPull *op = user_data;
  g_autoptr(GError) error = NULL;

  op->object_path = smolvm_snapshot_receive_finish (result, &error);
  finish (op, op->object_path == NULL ? g_steal_pointer (&error) : NULL);
}

/* ---- the layers ---- */

static void fetch_next (SnapshotPull *op);

static void
on_layer_fetched (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotPull *op = user_data;
  SmolvmOciDescriptor *desc = g_ptr_array_index (op->blobs, op->next - 1);
  g_autoptr(GError) error = NULL;
  gboolean fetched = FALSE;

  if (!smolvm_oci_client_blob_fetch_finish (SMOLVM_OCI_CLIENT (source), result, &fetched,
                                            &error)) {
    finish (op, g_steal_pointer (&error));
    return;
  }
  if (!fetched) {
    g_debug ("Blob %s was in the pull cache already", desc->digest);
    smolvm_progress_add (smolvm_call_get_progress (&op->call), desc->size);
  }
  fetch_next (op);
}

static void
fetch_next (SnapshotPull *op)
{
  SmolvmOciDescriptor *desc;
  g_autoptr(GError) error = NULL;

  if (!smolvm_call_check_cancelled (&op->call, &error)) {
    finish (op, g_steal_pointer (&error));
    return;
  }
  if (op->next == op->blobs->len) {
    smolvm_call_set_phase (&op->call, "unpacking");
    smolvm_snapshot_receive_async (op->call.ctx, op->call.job, op->artifact, op->layout_dir,
                                   op->snapshot_id, on_received, op);
    return;
  }
  desc = g_ptr_array_index (op->blobs, op->next++);
  smolvm_oci_client_blob_fetch_async (op->client, desc->digest, desc->size, op->layout_dir,
                                      smolvm_call_get_progress (&op->call),
                                      smolvm_call_get_cancellable (&op->call), on_layer_fetched,
                                      op);
}

/* ---- the config: can this host take it? ---- */

static void
load_config_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  SnapshotPull *op = task_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_oci_artifact_load_config (op->artifact, op->layout_dir, &error)) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  g_task_return_boolean (task, TRUE);
}

static void
on_config_loaded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotPull *op = user_data;
  SmolvmContext *ctx = op->call.ctx;
  g_autoptr(GError) error = NULL;
  const gchar *backend;
  const gchar *target;
  guint64 layers = 0;

  if (!g_task_propagate_boolean (G_TASK (result), &error)) {
    finish (op, g_steal_pointer (&error));
    return;
  }
  backend = smolvm_oci_artifact_get_backend (op->artifact);
  target = op->snapshot_id != NULL ? op->snapshot_id
                                   : smolvm_oci_artifact_get_snapshot_id (op->artifact);
  /* the receive checks both again; here they spare a useless download */
  if (!g_hash_table_contains (ctx->binaries, backend)) {
    finish (op, g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_UNSUPPORTED,
                             "the snapshot is of the %s backend, which this smolvmd lacks",
                             backend));
    return;
  }
  if (smolvm_registry_lookup_snapshot (ctx->registry, target) != NULL) {
    finish (op, g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_ALREADY_EXISTS,
                             "snapshot '%s' exists already (pull it with another snapshot-id)",
                             target));
    return;
  }
  for (guint i = 1; i < op->blobs->len; i++)
    layers += ((SmolvmOciDescriptor *) g_ptr_array_index (op->blobs, i))->size;
  smolvm_progress_expect (smolvm_call_get_progress (&op->call), layers);
  smolvm_progress_set_phase (smolvm_call_get_progress (&op->call), "downloading", TRUE);
  fetch_next (op);
}

static void
on_config_fetched (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotPull *op = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_oci_client_blob_fetch_finish (SMOLVM_OCI_CLIENT (source), result, NULL, &error)) {
    finish (op, g_steal_pointer (&error));
    return;
  }
  op->next = 1; /* the layers follow the config */
  run_in_thread (op, load_config_thread, on_config_loaded);
}

/* ---- the manifest ---- */

/* Worker thread: parses the manifest and prepares its pull cache. */
static void
manifest_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  SnapshotPull *op = task_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(SmolvmOciArtifact) artifact = smolvm_oci_artifact_new_from_manifest (op->manifest,
                                                                                 &error);
  g_autofree gchar *name = NULL;
  g_autofree gchar *layout_dir = NULL;

  if (artifact == NULL) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  name = g_strconcat ("pull-",
                      smolvm_oci_artifact_get_manifest_digest (artifact) + strlen ("sha256:"),
                      NULL);
  layout_dir = smolvm_store_oci_cache_dir (op->call.ctx->store, name);
  if (!smolvm_oci_layout_prepare (layout_dir, &error)) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  /* the cache is in use again: start-up removes only pull caches
   * untouched for a week (smolvm_store_clean_oci_cache) */
  if (utimensat (AT_FDCWD, layout_dir, NULL, AT_SYMLINK_NOFOLLOW) != 0)
    g_warning ("Cannot touch %s: %s", layout_dir, g_strerror (errno));
  op->layout_dir = g_steal_pointer (&layout_dir);
  g_task_return_pointer (task, g_steal_pointer (&artifact), g_object_unref);
}

static void
on_manifest_parsed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotPull *op = user_data;
  g_autoptr(GError) error = NULL;
  SmolvmOciDescriptor *config;

  op->artifact = g_task_propagate_pointer (G_TASK (result), &error);
  if (op->artifact == NULL) {
    finish (op, g_steal_pointer (&error));
    return;
  }
  op->blobs = smolvm_oci_artifact_get_blobs (op->artifact);
  config = g_ptr_array_index (op->blobs, 0);
  smolvm_call_set_phase (&op->call, "checking");
  smolvm_oci_client_blob_fetch_async (op->client, config->digest, config->size, op->layout_dir,
                                      NULL, smolvm_call_get_cancellable (&op->call),
                                      on_config_fetched, op);
}

static void
on_manifest (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotPull *op = user_data;
  g_autoptr(GError) error = NULL;

  op->manifest = smolvm_oci_client_manifest_get_finish (SMOLVM_OCI_CLIENT (source), result, NULL,
                                                        &error);
  if (op->manifest == NULL) {
    finish (op, g_steal_pointer (&error));
    return;
  }
  run_in_thread (op, manifest_thread, on_manifest_parsed);
}

/* ---- credentials ---- */

static void
credentials_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  SnapshotPull *op = task_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_oci_credentials_lookup (op->call.ctx->registry_auth_file, op->ref->registry,
                                      &op->username, &op->password, &error)) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  g_task_return_boolean (task, TRUE);
}

static void
on_credentials (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotPull *op = user_data;
  SmolvmContext *ctx = op->call.ctx;
  g_autoptr(GError) error = NULL;

  if (!g_task_propagate_boolean (G_TASK (result), &error)) {
    finish (op, g_steal_pointer (&error));
    return;
  }
  op->client = smolvm_oci_client_new (
    op->ref->registry, op->ref->repository,
    smolvm_oci_registry_is_insecure ((const gchar *const *) ctx->insecure_registries,
                                     op->ref->registry),
    FALSE);
  if (op->username != NULL)
    smolvm_oci_client_set_credentials (op->client, op->username, op->password);
  smolvm_oci_client_manifest_get_async (op->client, smolvm_oci_ref_get_reference (op->ref),
                                        SMOLVM_OCI_MEDIA_TYPE_MANIFEST,
                                        smolvm_call_get_cancellable (&op->call), on_manifest, op);
}

static void
snapshot_pull_run (SmolvmCall *call)
{
  SnapshotPull *op = (SnapshotPull *) call;
  g_autofree gchar *ref = smolvm_oci_ref_to_string (op->ref);

  smolvm_call_start_job (call, SMOLVM_JOB_SNAPSHOT_PULL, SMOLVM_ACTION_SNAPSHOT_PULL, TRUE, NULL);
  call->cancelled_summary = g_strdup_printf ("%s was not pulled", ref);
  smolvm_call_set_phase (call, "connecting");
  run_in_thread (op, credentials_thread, on_credentials);
}

void
smolvm_op_snapshot_pull (SmolvmContext *ctx, GDBusMethodInvocation *invocation,
                         const gchar *reference, GVariant *options)
{
  SnapshotPull *op = smolvm_call_new0 (SnapshotPull, ctx, invocation, snapshot_pull_clear);
  static const SmolvmCallOption known[] = { { "snapshot-id", "s" }, { NULL, NULL } };
  g_autoptr(GError) error = NULL;

  if (!smolvm_call_check_typed_options (options, known, &error) ||
      (g_variant_lookup (options, "snapshot-id", "s", &op->snapshot_id) &&
       !smolvm_id_validate (op->snapshot_id, "snapshot id", &error)) ||
      (op->ref = smolvm_oci_ref_parse (reference, &error)) == NULL) {
    smolvm_call_fail (&op->call, g_steal_pointer (&error));
    return;
  }
  smolvm_call_authorize (&op->call, SMOLVM_ACTION_SNAPSHOT_PULL, NULL, op->snapshot_id, "pull",
                         snapshot_pull_run);
}
