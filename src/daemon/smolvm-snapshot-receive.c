/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <json-glib/json-glib.h>
#include <unistd.h>

#include "smolvm-error.h"
#include "smolvm-fileutil.h"
#include "smolvm-id.h"
#include "smolvm-json.h"
#include "smolvm-open-as.h"
#include "smolvm-registry.h"
#include "smolvm-snapshot-receive.h"
#include "smolvm-snapshot.h"
#include "smolvm-store.h"

/* Steps: read the config (worker), check backend and id and hold the id,
 * unpack into STATE/snapshots/.tmp-ID (worker), copy the kernel and initrd
 * the record names, opened with the caller's rights (worker), commit (one
 * rename), load and publish. Before the commit, the rollback removes the
 * staging dir; after it, a snapshot that cannot be loaded goes as a whole.
 *
 * The artifact carries no kernel or initrd: the record names them by their
 * paths on the host that made it. Those paths come from elsewhere, so the
 * daemon must never boot them with its own rights: they are read here as
 * the caller, like CreateVM's paths, into the snapshot's own copies, which
 * is what a restore or clone of it boots. */

static const gchar *const image_keys[] = { "kernel_path", "initrd_path" };
static const gchar *const image_names[] = { SMOLVM_VM_KERNEL, SMOLVM_VM_INITRD };
#define N_IMAGES G_N_ELEMENTS (image_keys)

typedef struct _Receive {
  SmolvmContext *ctx;
  SmolvmJob *job;
  SmolvmOciArtifact *artifact;
  gchar *layout_dir;
  gchar *snapshot_id; /* asked for, then the one used */
  gboolean holds_snapshot;
  gchar *tmp_dir;
  gchar *final_dir;
  GError *error; /* the failure a rollback reports at its end */
  gchar *metadata;              /* the unpacked snapshot.json */
  gchar *image_paths[N_IMAGES]; /* as the record names them; NULL: none */
  int image_fds[N_IMAGES];      /* opened as the caller; -1: none */
  /* the step running in a worker thread, and the one after it */
  gboolean (*work) (struct _Receive *r, GCancellable *cancellable, GError **error);
  void (*then) (GTask *task);
} Receive;

static void
receive_free (Receive *r)
{
  if (r->holds_snapshot)
    smolvm_registry_release_snapshot (r->ctx->registry, r->snapshot_id);
  g_clear_object (&r->job);
  g_clear_object (&r->artifact);
  g_free (r->layout_dir);
  g_free (r->snapshot_id);
  g_free (r->tmp_dir);
  g_free (r->final_dir);
  g_clear_error (&r->error);
  g_free (r->metadata);
  for (gsize i = 0; i < N_IMAGES; i++) {
    g_free (r->image_paths[i]);
    if (r->image_fds[i] >= 0)
      close (r->image_fds[i]);
  }
  g_free (r);
}

static gboolean
check_cancelled (Receive *r, GError **error)
{
  if (!g_cancellable_is_cancelled (smolvm_job_get_cancellable (r->job)))
    return TRUE;
  g_set_error_literal (error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED, "Cancelled");
  return FALSE;
}

/* ---- rollback ---- */

static void
on_rollback_removed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  Receive *r = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;

  if (!smolvm_store_discard_finish (SMOLVM_STORE (source), result, &error))
    g_warning ("%s", error->message);
  g_task_return_error (task, g_steal_pointer (&r->error));
}

/* Takes @task and @error. */
static void
rollback (GTask *task, GError *error)
{
  Receive *r = g_task_get_task_data (task);
  const gchar *dir = r->final_dir != NULL ? r->final_dir : r->tmp_dir;

  r->error = g_steal_pointer (&error);
  if (dir == NULL) {
    g_task_return_error (task, g_steal_pointer (&r->error));
    g_object_unref (task);
    return;
  }
  smolvm_store_discard_async (r->ctx->store, dir, on_rollback_removed, task);
}

/* ---- steps ---- */

static void
work_thread (GTask *worker, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  Receive *r = task_data;
  g_autoptr(GError) error = NULL;

  if (!r->work (r, cancellable, &error)) {
    g_task_return_error (worker, g_steal_pointer (&error));
    return;
  }
  g_task_return_boolean (worker, TRUE);
}

static void
on_work_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Receive *r = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;

  if (!g_task_propagate_boolean (G_TASK (result), &error) || !check_cancelled (r, &error)) {
    rollback (task, g_steal_pointer (&error));
    return;
  }
  r->then (task);
}

/* Runs @work in a worker thread, then on the main thread @then with @task
 * (whose reference it takes), or a rollback if @work failed or the job
 * was cancelled meanwhile. */
static void
run_work (GTask *task, gboolean (*work) (Receive *, GCancellable *, GError **),
          void (*then) (GTask *task))
{
  Receive *r = g_task_get_task_data (task);
  g_autoptr(GTask) worker =
    g_task_new (NULL, smolvm_job_get_cancellable (r->job), on_work_done, task);

  r->work = work;
  r->then = then;
  g_task_set_task_data (worker, r, NULL);
  /* a Cancel is the work's own error, SMOLVM_ERROR_CANCELLED */
  g_task_set_check_cancellable (worker, FALSE);
  g_task_run_in_thread (worker, work_thread);
}

static void
on_saved (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Receive *r = g_task_get_task_data (task);
  SmolvmSnapshot *snapshot = SMOLVM_SNAPSHOT (source);
  g_autoptr(GError) error = NULL;

  if (!smolvm_snapshot_save_finish (snapshot, result, &error)) {
    g_prefix_error (&error, "The snapshot's record could not be written: ");
    rollback (task, g_steal_pointer (&error));
    return;
  }
  smolvm_registry_add_snapshot (r->ctx->registry, snapshot);
  g_task_return_pointer (task, g_strdup (smolvm_snapshot_get_object_path (snapshot)), g_free);
  g_object_unref (task);
}

static void
on_committed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Receive *r = g_task_get_task_data (task);
  g_autoptr(SmolvmSnapshot) snapshot = NULL;
  g_autoptr(GError) error = NULL;

  if (!smolvm_store_commit_snapshot_finish (SMOLVM_STORE (source), result, &error)) {
    rollback (task, g_steal_pointer (&error));
    return;
  }
  r->final_dir = smolvm_store_snapshot_dir (r->ctx->store, r->snapshot_id);
  snapshot = smolvm_snapshot_load (r->ctx, r->final_dir, NULL, &error);
  if (snapshot == NULL) {
    g_prefix_error (&error, "The snapshot's record is not valid: ");
    rollback (task, g_steal_pointer (&error));
    return;
  }
  /* written again with this host's paths; the callback keeps @snapshot */
  smolvm_snapshot_save_async (snapshot, on_saved, task);
}

/* The boot images the unpacked record names, from its vm_config. */
static gboolean
read_image_paths (Receive *r, GError **error)
{
  g_autoptr(JsonNode) root = smolvm_json_parse (r->metadata, -1, error);
  JsonObject *config;

  if (root == NULL)
    return FALSE;
  config = JSON_NODE_HOLDS_OBJECT (root)
             ? json_object_get_object_member (json_node_get_object (root), "vm_config")
             : NULL;
  for (gsize i = 0; config != NULL && i < N_IMAGES; i++) {
    const gchar *path = json_object_get_string_member_with_default (config, image_keys[i], "");
    if (path != NULL && *path != '\0')
      r->image_paths[i] = g_strdup (path);
  }
  return TRUE;
}

static gboolean
unpack_work (Receive *r, GCancellable *cancellable, GError **error)
{
  g_autofree gchar *record_path = g_build_filename (r->tmp_dir, SMOLVM_SNAPSHOT_METADATA, NULL);

  return smolvm_oci_artifact_unpack (r->artifact, r->layout_dir, r->tmp_dir, r->snapshot_id,
                                     smolvm_job_get_progress (r->job), cancellable, error) &&
         g_file_get_contents (record_path, &r->metadata, NULL, error) &&
         read_image_paths (r, error);
}

static void
commit (GTask *task)
{
  Receive *r = g_task_get_task_data (task);

  /* from here the result is being made final */
  smolvm_job_set_cancelable (r->job, FALSE);
  smolvm_job_set_phase (r->job, "committing");
  smolvm_store_commit_snapshot_async (r->ctx->store, r->tmp_dir, r->snapshot_id, r->metadata,
                                      on_committed, task);
}

static gboolean
images_work (Receive *r, GCancellable *cancellable, GError **error)
{
  for (gsize i = 0; i < N_IMAGES; i++) {
    g_autofree gchar *dst = NULL;
    if (r->image_fds[i] < 0)
      continue;
    dst = g_build_filename (r->tmp_dir, image_names[i], NULL);
    if (!smolvm_copy_fd_sparse (r->image_fds[i], r->image_paths[i], dst, NULL, cancellable,
                                error))
      return FALSE;
  }
  return TRUE;
}

static void
on_images_opened (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Receive *r = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;

  if (!smolvm_open_as_finish (result, r->image_fds, NULL, &error)) {
    g_prefix_error (&error, "The snapshot boots a kernel and initrd that must exist on this host "
                            "and be readable by the caller: ");
    rollback (task, g_steal_pointer (&error));
    return;
  }
  if (!check_cancelled (r, &error)) {
    rollback (task, g_steal_pointer (&error));
    return;
  }
  run_work (task, images_work, commit);
}

/* The record is unpacked: its boot images next, if it names any. */
static void
open_images (GTask *task)
{
  Receive *r = g_task_get_task_data (task);
  gboolean has_images = FALSE;

  for (gsize i = 0; i < N_IMAGES; i++)
    has_images |= r->image_paths[i] != NULL;
  if (!has_images) {
    commit (task);
    return;
  }
  smolvm_job_set_phase (r->job, "copying-images");
  smolvm_open_as_async (smolvm_dbus_job_get_started_by_uid (SMOLVM_DBUS_JOB (r->job)),
                        (const gchar *const *) r->image_paths, image_names, N_IMAGES,
                        on_images_opened, task);
}

static void
unpack (GTask *task)
{
  Receive *r = g_task_get_task_data (task);
  SmolvmContext *ctx = r->ctx;
  const gchar *backend = smolvm_oci_artifact_get_backend (r->artifact);
  g_autofree gchar *object_path = NULL;
  g_autoptr(GError) error = NULL;
  guint64 layers_size;

  if (!g_hash_table_contains (ctx->binaries, backend)) {
    g_set_error (&error, SMOLVM_ERROR, SMOLVM_ERROR_UNSUPPORTED,
                 "Snapshot '%s' is of backend '%s', which this smolvmd does not have",
                 smolvm_oci_artifact_get_snapshot_id (r->artifact), backend);
    rollback (task, g_steal_pointer (&error));
    return;
  }
  if (r->snapshot_id == NULL)
    r->snapshot_id = g_strdup (smolvm_oci_artifact_get_snapshot_id (r->artifact));
  if (smolvm_registry_snapshot_id_taken (r->snapshot_id, ctx->registry)) {
    g_set_error (&error, SMOLVM_ERROR, SMOLVM_ERROR_ALREADY_EXISTS,
                 "Snapshot '%s' already exists", r->snapshot_id);
    rollback (task, g_steal_pointer (&error));
    return;
  }
  if (!smolvm_registry_hold_snapshot (ctx->registry, r->snapshot_id, "receive", &error)) {
    rollback (task, g_steal_pointer (&error));
    return;
  }
  r->holds_snapshot = TRUE;
  layers_size = smolvm_oci_artifact_get_blobs_size (r->artifact);
  if (!smolvm_check_free_space (smolvm_store_get_snapshots_dir (ctx->store),
                                smolvm_oci_artifact_get_data_size (r->artifact),
                                "The snapshot's files", &error)) {
    rollback (task, g_steal_pointer (&error));
    return;
  }
  r->tmp_dir = smolvm_store_snapshot_tmp_dir (ctx->store, r->snapshot_id);
  if (!smolvm_store_make_record_dir (ctx->store, r->tmp_dir, &error)) {
    g_clear_pointer (&r->tmp_dir, g_free);
    rollback (task, g_steal_pointer (&error));
    return;
  }
  object_path = smolvm_id_object_path ("snapshot", r->snapshot_id);
  smolvm_job_add_object (r->job, object_path);
  /* the layers are read twice: verified whole, then unpacked */
  smolvm_progress_expect (smolvm_job_get_progress (r->job),
                          layers_size + smolvm_oci_artifact_get_data_size (r->artifact));
  smolvm_progress_set_phase (smolvm_job_get_progress (r->job), "unpacking", TRUE);
  run_work (task, unpack_work, open_images);
}

static gboolean
config_work (Receive *r, GCancellable *cancellable, GError **error)
{
  return smolvm_oci_artifact_load_config (r->artifact, r->layout_dir, error);
}

void
smolvm_snapshot_receive_async (SmolvmContext *ctx, SmolvmJob *job, SmolvmOciArtifact *artifact,
                               const gchar *layout_dir, const gchar *snapshot_id,
                               GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (NULL, NULL, callback, user_data);
  Receive *r = g_new0 (Receive, 1);
  g_autoptr(GError) error = NULL;

  for (gsize i = 0; i < N_IMAGES; i++)
    r->image_fds[i] = -1;
  r->ctx = ctx;
  r->job = g_object_ref (job);
  r->artifact = g_object_ref (artifact);
  r->layout_dir = g_strdup (layout_dir);
  g_task_set_task_data (task, r, (GDestroyNotify) receive_free);
  if (snapshot_id != NULL) {
    if (!smolvm_id_validate (snapshot_id, "snapshot id", &error)) {
      rollback (task, g_steal_pointer (&error));
      return;
    }
    r->snapshot_id = g_strdup (snapshot_id);
  }
  smolvm_job_set_phase (job, "verifying");
  run_work (task, config_work, unpack);
}

gchar *
smolvm_snapshot_receive_finish (GAsyncResult *result, GError **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}
