/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smolvm-error-map.h"
#include "smolvm-fileutil.h"
#include "smolvm-store.h"

struct _SmolvmStore {
  GObject parent_instance;
  gchar *state_dir;
  gchar *vms_dir;
  gchar *snapshots_dir;
  gchar *vm_runtime_root;
};

G_DEFINE_TYPE (SmolvmStore, smolvm_store, G_TYPE_OBJECT)

#define TMP_PREFIX ".tmp-"
#define TRASH_PREFIX ".trash-"
#define PRE_RESTORE_SUFFIX ".pre-restore"
#define INCOMING_SUFFIX ".restoring"

static void
smolvm_store_finalize (GObject *object)
{
  SmolvmStore *self = SMOLVM_STORE (object);
  g_free (self->state_dir);
  g_free (self->vms_dir);
  g_free (self->snapshots_dir);
  g_free (self->vm_runtime_root);
  G_OBJECT_CLASS (smolvm_store_parent_class)->finalize (object);
}

static void
smolvm_store_class_init (SmolvmStoreClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = smolvm_store_finalize;
}

static void
smolvm_store_init (SmolvmStore *self)
{
}

SmolvmStore *
smolvm_store_new (const gchar *state_dir, const gchar *runtime_dir)
{
  SmolvmStore *self = g_object_new (SMOLVM_TYPE_STORE, NULL);
  self->state_dir = g_strdup (state_dir);
  self->vms_dir = g_build_filename (state_dir, "vms", NULL);
  self->snapshots_dir = g_build_filename (state_dir, "snapshots", NULL);
  self->vm_runtime_root = g_build_filename (runtime_dir, "vms", NULL);
  return self;
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (DIR, closedir)

static void remove_leftovers (const gchar *top, GPtrArray *records);

gboolean
smolvm_store_prepare (SmolvmStore *self, GError **error)
{
  /* private: disks, guest memory, sockets and console logs are the
   * daemon's alone, whatever its umask */
  if (!smolvm_mkdir_p (self->vms_dir, 0700, error) ||
      !smolvm_mkdir_p (self->snapshots_dir, 0700, error) ||
      !smolvm_mkdir_p (self->vm_runtime_root, 0700, error))
    return FALSE;
  remove_leftovers (self->vm_runtime_root, NULL);
  return TRUE;
}

const gchar *smolvm_store_get_vms_dir (SmolvmStore *self) { return self->vms_dir; }
const gchar *smolvm_store_get_snapshots_dir (SmolvmStore *self) { return self->snapshots_dir; }

gchar *
smolvm_store_vm_dir (SmolvmStore *self, const gchar *vm_id)
{
  return g_build_filename (self->vms_dir, vm_id, NULL);
}

gchar *
smolvm_store_vm_runtime_dir (SmolvmStore *self, const gchar *vm_id)
{
  return g_build_filename (self->vm_runtime_root, vm_id, NULL);
}

gchar *
smolvm_store_snapshot_dir (SmolvmStore *self, const gchar *snapshot_id)
{
  return g_build_filename (self->snapshots_dir, snapshot_id, NULL);
}

gchar *
smolvm_store_snapshot_tmp_dir (SmolvmStore *self, const gchar *snapshot_id)
{
  g_autofree gchar *name = g_strconcat (TMP_PREFIX, snapshot_id, NULL);
  return g_build_filename (self->snapshots_dir, name, NULL);
}

gchar *
smolvm_store_oci_cache_dir (SmolvmStore *self, const gchar *name)
{
  return g_build_filename (self->state_dir, "oci-cache", name, NULL);
}

gchar *
smolvm_store_vm_file (SmolvmStore *self, const gchar *vm_id, const gchar *name)
{
  return g_build_filename (self->vms_dir, vm_id, name, NULL);
}

gchar *
smolvm_store_vm_runtime_file (SmolvmStore *self, const gchar *vm_id, const gchar *name)
{
  return g_build_filename (self->vm_runtime_root, vm_id, name, NULL);
}

gchar *
smolvm_store_snapshot_file (SmolvmStore *self, const gchar *snapshot_id, const gchar *name)
{
  return g_build_filename (self->snapshots_dir, snapshot_id, name, NULL);
}

gchar *
smolvm_store_snapshot_tmp_file (SmolvmStore *self, const gchar *snapshot_id, const gchar *name)
{
  g_autofree gchar *dir = smolvm_store_snapshot_tmp_dir (self, snapshot_id);
  return g_build_filename (dir, name, NULL);
}

gchar *
smolvm_store_pre_restore_path (const gchar *disk_path)
{
  return g_strconcat (disk_path, PRE_RESTORE_SUFFIX, NULL);
}

gchar *
smolvm_store_incoming_disk_path (const gchar *disk_path)
{
  return g_strconcat (disk_path, INCOMING_SUFFIX, NULL);
}

static const gchar *
trash_parent (SmolvmStore *self, const gchar *path)
{
  return g_str_has_prefix (path, self->snapshots_dir) ? self->snapshots_dir : self->vms_dir;
}

gchar *
smolvm_store_move_aside (SmolvmStore *self, const gchar *path, GError **error)
{
  return smolvm_move_to_trash (trash_parent (self, path), path, error);
}

/* move_to_trash into @trash_parent, then removal in a worker; failures are
 * logged (start-up and clean-up paths, where nobody waits for an answer).
 * Not synced: what a crash brings back (a leftover, a runtime directory) is
 * cleared again at the next start-up. */
static void
discard_into (const gchar *trash_parent, const gchar *path)
{
  g_autoptr(GError) error = NULL;
  g_autofree gchar *trash = smolvm_move_to_trash_unsynced (trash_parent, path, &error);

  if (trash == NULL)
    g_warning ("%s", error->message);
  else
    smolvm_store_remove_later (trash);
}

/* The end of a removal nobody waits for (smolvm_rm_rf_async() or
 * smolvm_store_remove_async()): a failure is logged. */
static void
on_removed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GError) error = NULL;
  if (!g_task_propagate_boolean (G_TASK (result), &error))
    g_warning ("%s", error->message);
}

void
smolvm_store_remove_later (const gchar *path)
{
  smolvm_rm_rf_async (path, on_removed, NULL);
}

gboolean
smolvm_store_discard (SmolvmStore *self, const gchar *path, GError **error)
{
  g_autofree gchar *trash = smolvm_store_move_aside (self, path, error);

  if (trash == NULL)
    return FALSE;
  smolvm_store_remove_later (trash);
  return TRUE;
}

typedef struct {
  gchar *parent; /* the directory the path left: synced first */
  gchar *trash;
} LazyDiscard;

static void
lazy_discard_free (LazyDiscard *lazy)
{
  g_free (lazy->parent);
  g_free (lazy->trash);
  g_free (lazy);
}

static void
lazy_discard_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  LazyDiscard *lazy = task_data;
  g_autoptr(GError) error = NULL;

  /* the move becomes durable here, off the main loop; until then a crash
   * brings the file back (a caller that replies from the task's completion
   * has not said it was gone) */
  if (!smolvm_fsync_dir (lazy->parent, &error) || !smolvm_rm_rf (lazy->trash, &error))
    g_task_return_error (task, g_steal_pointer (&error));
  else
    g_task_return_boolean (task, TRUE);
}

gboolean
smolvm_store_remove_async (SmolvmStore *self, const gchar *path, GAsyncReadyCallback callback,
                           gpointer user_data, GError **error)
{
  g_autoptr(GTask) task = NULL;
  g_autofree gchar *trash =
    smolvm_move_to_trash_unsynced (trash_parent (self, path), path, error);
  LazyDiscard *lazy;

  if (trash == NULL)
    return FALSE;
  task = g_task_new (self, NULL, callback, user_data);
  g_task_set_source_tag (task, smolvm_store_remove_async);
  lazy = g_new0 (LazyDiscard, 1);
  lazy->parent = g_path_get_dirname (path);
  lazy->trash = g_steal_pointer (&trash);
  g_task_set_task_data (task, lazy, (GDestroyNotify) lazy_discard_free);
  g_task_run_in_thread (task, lazy_discard_thread);
  return TRUE;
}

gboolean
smolvm_store_remove_finish (SmolvmStore *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

gboolean
smolvm_store_discard_lazily (SmolvmStore *self, const gchar *path, GError **error)
{
  return smolvm_store_remove_async (self, path, on_removed, NULL, error);
}

void
smolvm_store_discard_async (SmolvmStore *self, const gchar *path, GAsyncReadyCallback callback,
                            gpointer user_data)
{
  g_autoptr(GError) error = NULL;

  /* the move's sync in the worker too: a rollback's caller has been told
   * nothing yet, and a crash that brings @path back leaves what start-up
   * clears */
  if (!smolvm_store_remove_async (self, path, callback, user_data, &error)) {
    g_autoptr(GTask) task = g_task_new (self, NULL, callback, user_data);
    g_task_set_source_tag (task, smolvm_store_remove_async);
    g_task_return_error (task, g_steal_pointer (&error));
  }
}

gboolean
smolvm_store_discard_finish (SmolvmStore *self, GAsyncResult *result, GError **error)
{
  return smolvm_store_remove_finish (self, result, error);
}

gboolean
smolvm_store_make_record_dir (SmolvmStore *self, const gchar *path, GError **error)
{
  /* what is there has no record: a leftover of a crash mid-create, maybe
   * with a disk of many GiB, so it is removed off the main loop */
  if (g_file_test (path, G_FILE_TEST_EXISTS) && !smolvm_store_discard (self, path, error))
    return FALSE;
  return smolvm_mkdir_p (path, 0700, error);
}

/* ---- the boot images a VM owns ---- */

static const gchar *const image_names[] = { SMOLVM_VM_KERNEL, SMOLVM_VM_INITRD };

gboolean
smolvm_store_link_images (const gchar *from_dir, const gchar *to_dir, GError **error)
{
  for (gsize i = 0; i < G_N_ELEMENTS (image_names); i++) {
    g_autofree gchar *from = g_build_filename (from_dir, image_names[i], NULL);
    g_autofree gchar *to = g_build_filename (to_dir, image_names[i], NULL);

    /* hard links: the images never change, and each holder keeps them */
    if (link (from, to) < 0 && errno != ENOENT)
      return smolvm_error_set_errno (error, errno, "Cannot link %s to %s", from, to);
  }
  return TRUE;
}

gboolean
smolvm_store_images_match (const gchar *dir_a, const gchar *dir_b)
{
  for (gsize i = 0; i < G_N_ELEMENTS (image_names); i++) {
    g_autofree gchar *a = g_build_filename (dir_a, image_names[i], NULL);
    g_autofree gchar *b = g_build_filename (dir_b, image_names[i], NULL);
    struct stat sa, sb;
    gboolean has_a = lstat (a, &sa) == 0;
    gboolean has_b = lstat (b, &sb) == 0;

    if (has_a != has_b || (has_a && (sa.st_dev != sb.st_dev || sa.st_ino != sb.st_ino)))
      return FALSE;
  }
  return TRUE;
}

/* ---- publishing a snapshot ---- */

typedef struct {
  gchar *tmp_dir;
  gchar *final_dir;
  gchar *parent_dir;
  gchar *metadata;
} Commit;

static void
commit_free (Commit *commit)
{
  g_free (commit->tmp_dir);
  g_free (commit->final_dir);
  g_free (commit->parent_dir);
  g_free (commit->metadata);
  g_free (commit);
}

/* The VMM wrote these without syncing them (QEMU's migration stream never
 * does); the metadata must not become durable before them. Nothing writes
 * them again, and restored VMs and clones map mem.bin privately for as long
 * as they run, so it must never change: both become read-only (0400, which
 * cannot stop root), synced with them, for any number of loads to share. */
static gboolean
seal_file (const gchar *path, GError **error)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
  int errsv;

  if (fd < 0)
    return smolvm_error_set_errno (error, errno, "Cannot open %s", path);
  if (fchmod (fd, 0400) < 0) {
    errsv = errno;
    close (fd);
    return smolvm_error_set_errno (error, errsv, "Cannot make %s read-only", path);
  }
  errsv = fsync (fd) < 0 ? errno : 0;
  close (fd);
  if (errsv != 0)
    return smolvm_error_set_errno (error, errsv, "Cannot sync %s", path);
  return TRUE;
}

static void
commit_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  Commit *commit = task_data;
  g_autofree gchar *metadata = g_build_filename (commit->tmp_dir, SMOLVM_SNAPSHOT_METADATA, NULL);
  g_autofree gchar *vmstate = g_build_filename (commit->tmp_dir, SMOLVM_SNAPSHOT_VMSTATE, NULL);
  g_autofree gchar *mem = g_build_filename (commit->tmp_dir, SMOLVM_SNAPSHOT_MEM, NULL);
  g_autoptr(GError) error = NULL;

  /* Nobody reads @tmp_dir before it is published: snapshot.json needs no
   * temp file and rename of its own, and one sync of the directory makes
   * every entry in it (these files, the disk's copy) durable before the
   * rename that publishes them. */
  /* an import unpacked the record there already: it is written again,
   * as given */
  if (unlink (metadata) != 0 && errno != ENOENT) {
    smolvm_error_set_errno (&error, errno, "Cannot replace %s", metadata);
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  if (!seal_file (vmstate, &error) || !seal_file (mem, &error) ||
      !smolvm_write_file_new (metadata, commit->metadata, -1, &error) ||
      !smolvm_fsync_dir (commit->tmp_dir, &error)) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  if (rename (commit->tmp_dir, commit->final_dir) != 0) {
    smolvm_error_set_errno (&error, errno, "Cannot move %s into place", commit->tmp_dir);
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  if (!smolvm_fsync_dir (commit->parent_dir, &error)) {
    /* Not durable: a crash could lose it after the caller heard "created".
     * Undo, so that the caller's rollback removes the right directory. */
    if (rename (commit->final_dir, commit->tmp_dir) != 0) {
      g_warning ("Snapshot %s is in place, but its directory could not be synced (%s)",
                 commit->final_dir, error->message);
      g_task_return_boolean (task, TRUE);
      return;
    }
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  g_task_return_boolean (task, TRUE);
}

void
smolvm_store_commit_snapshot_async (SmolvmStore *self, const gchar *tmp_dir,
                                    const gchar *snapshot_id, const gchar *metadata,
                                    GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = g_task_new (self, NULL, callback, user_data);
  Commit *commit = g_new0 (Commit, 1);

  commit->tmp_dir = g_strdup (tmp_dir);
  commit->final_dir = smolvm_store_snapshot_dir (self, snapshot_id);
  commit->parent_dir = g_strdup (self->snapshots_dir);
  commit->metadata = g_strdup (metadata);
  g_task_set_task_data (task, commit, (GDestroyNotify) commit_free);
  g_task_run_in_thread (task, commit_thread);
}

gboolean
smolvm_store_commit_snapshot_finish (SmolvmStore *self, GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* ---- reading a record ---- */

/* A record is small; a bigger file is not one of ours. */
#define RECORD_MAX_SIZE (1024 * 1024)

gchar *
smolvm_store_read_record (const gchar *path, gsize *length, GError **error)
{
  /* O_NOFOLLOW: whoever can plant a symlink in the state directory must not
   * get the daemon to read (and quote in an error) a file of its choosing;
   * O_NONBLOCK: a FIFO planted there must not hang start-up */
  int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
  g_autofree gchar *data = NULL;
  struct stat st;
  gsize done = 0;
  int errsv;

  if (fd < 0) {
    errsv = errno;
    if (errsv == ELOOP)
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED,
                   "Cannot read %s: it is a symbolic link", path);
    else
      smolvm_error_set_errno (error, errsv, "Cannot read %s", path);
    return NULL;
  }
  if (fstat (fd, &st) != 0) {
    errsv = errno;
    close (fd);
    smolvm_error_set_errno (error, errsv, "Cannot read %s", path);
    return NULL;
  }
  if (!S_ISREG (st.st_mode) || st.st_size > RECORD_MAX_SIZE) {
    close (fd);
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED,
                 "Cannot read %s: not a regular file of at most %d bytes", path, RECORD_MAX_SIZE);
    return NULL;
  }
  data = g_malloc ((gsize) st.st_size + 1);
  while (done < (gsize) st.st_size) {
    gssize n = read (fd, data + done, (gsize) st.st_size - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      errsv = n < 0 ? errno : EIO;
      close (fd);
      smolvm_error_set_errno (error, errsv, "Cannot read %s", path);
      return NULL;
    }
    done += (gsize) n;
  }
  close (fd);
  data[done] = '\0';
  *length = done;
  return g_steal_pointer (&data);
}

/* ---- start-up ---- */

/* Sends the dot-entries of @top that are ours to be removed: .tmp-*, a
 * snapshot that never completed, and .trash-*, a removal cut short. Adds
 * the other entries to @records, if given. */
static void
remove_leftovers (const gchar *top, GPtrArray *records)
{
  /* readdir, not GDir: the entry's type saves an lstat per record, a
   * tenth of a 10,000-snapshot start-up */
  g_autoptr(DIR) dir = opendir (top);
  struct dirent *entry;

  while (dir != NULL && (entry = readdir (dir)) != NULL) {
    const gchar *name = entry->d_name;
    g_autofree gchar *path = NULL;

    if (g_str_equal (name, ".") || g_str_equal (name, ".."))
      continue;
    path = g_build_filename (top, name, NULL);
    if (name[0] != '.') {
      struct stat st;
      gboolean is_dir = entry->d_type == DT_DIR;
      if (records == NULL)
        continue;
      /* a symlinked record would have its files read and written elsewhere */
      if (entry->d_type == DT_UNKNOWN)
        is_dir = lstat (path, &st) == 0 && S_ISDIR (st.st_mode);
      if (!is_dir)
        g_warning ("Skipping %s: not a directory", path);
      else
        g_ptr_array_add (records, g_steal_pointer (&path));
      continue;
    }
    if (g_str_has_prefix (name, TRASH_PREFIX)) {
      g_message ("Removing leftover %s", path);
      smolvm_store_remove_later (path);
    } else if (g_str_has_prefix (name, TMP_PREFIX)) {
      /* renamed first: a new .tmp- of the same id must not be removed */
      g_message ("Removing leftover %s", path);
      discard_into (top, path);
    }
  }
}

/* The newest change of a pull cache: its directory (touched by each pull
 * that starts) and the blobs it received; -1 if it is not a directory. */
static gint64
pull_cache_changed (const gchar *path)
{
  g_autofree gchar *blobs = g_build_filename (path, "blobs", "sha256", NULL);
  struct stat st;
  gint64 newest;

  if (lstat (path, &st) != 0 || !S_ISDIR (st.st_mode))
    return -1;
  newest = st.st_mtime;
  if (lstat (blobs, &st) == 0 && S_ISDIR (st.st_mode))
    newest = MAX (newest, (gint64) st.st_mtime);
  return newest;
}

void
smolvm_store_clean_oci_cache (SmolvmStore *self, gint64 now, gint64 max_age)
{
  g_autofree gchar *top = smolvm_store_oci_cache_dir (self, NULL);
  g_autoptr(GDir) dir = g_dir_open (top, 0, NULL);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const gchar *entry;

  /* listed first: the .trash- dirs made below must not be seen again */
  while (dir != NULL && (entry = g_dir_read_name (dir)) != NULL)
    g_ptr_array_add (names, g_strdup (entry));
  for (guint i = 0; i < names->len; i++) {
    const gchar *name = g_ptr_array_index (names, i);
    g_autofree gchar *path = g_build_filename (top, name, NULL);
    gint64 changed;

    if (g_str_has_prefix (name, TRASH_PREFIX)) {
      g_message ("Removing leftover %s", path);
      smolvm_store_remove_later (path);
    } else if (g_str_has_prefix (name, "push-")) {
      g_message ("Removing %s, left by a push that did not end", path);
      discard_into (top, path);
    } else if (g_str_has_prefix (name, "pull-")) {
      changed = pull_cache_changed (path);
      if (changed < 0 || now - changed <= max_age)
        continue;
      g_message ("Removing %s, the blobs of a pull given up on (untouched for %" G_GINT64_FORMAT
                 " days)",
                 path, (now - changed) / (24 * 3600));
      discard_into (top, path);
    }
  }
}

GPtrArray *
smolvm_store_list_records (SmolvmStore *self, const gchar *kind, GError **error)
{
  const gchar *top = g_str_equal (kind, "vms") ? self->vms_dir : self->snapshots_dir;
  g_autoptr(GPtrArray) records = g_ptr_array_new_with_free_func (g_free);

  if (!g_file_test (top, G_FILE_TEST_IS_DIR)) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "%s is not a directory", top);
    return NULL;
  }
  remove_leftovers (top, records);
  return g_steal_pointer (&records);
}

void
smolvm_store_recover_restore (SmolvmStore *self, const gchar *vm_id, const gchar *disk_path,
                              gboolean completed)
{
  g_autofree gchar *backup = smolvm_store_pre_restore_path (disk_path);
  g_autofree gchar *incoming = smolvm_store_incoming_disk_path (disk_path);
  g_autoptr(GError) error = NULL;

  if (g_file_test (incoming, G_FILE_TEST_EXISTS)) {
    g_message ("VM '%s': removing the disk of a restore a crash interrupted", vm_id);
    if (!smolvm_store_discard (self, incoming, &error))
      g_warning ("%s", error->message);
    g_clear_error (&error);
  }
  if (!g_file_test (backup, G_FILE_TEST_EXISTS))
    return;
  if (completed) {
    g_message ("VM '%s': a restore completed before a crash; dropping its old disk", vm_id);
    if (!smolvm_store_discard (self, backup, &error))
      g_warning ("%s", error->message);
    return;
  }
  g_message ("VM '%s': undoing a restore a crash interrupted; its own disk is back", vm_id);
  if (!smolvm_store_discard (self, disk_path, &error) || rename (backup, disk_path) != 0)
    g_warning ("Cannot put back the disk of VM '%s' (it is at %s): %s", vm_id, backup,
               error != NULL ? error->message : g_strerror (errno));
}

void
smolvm_store_remove_runtime (SmolvmStore *self, const gchar *vm_id)
{
  g_autofree gchar *runtime_dir = smolvm_store_vm_runtime_dir (self, vm_id);

  /* renamed away at once: a VM of the same id started meanwhile never
   * loses a file of its own to the removal */
  discard_into (self->vm_runtime_root, runtime_dir);
}
