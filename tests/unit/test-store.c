/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The on-disk layout module alone: paths, move-aside, publishing a snapshot,
 * start-up recovery. */
#include "config.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <glib/gstdio.h>

#include "smolvm-error.h"
#include "smolvm-fileutil.h"
#include "smolvm-store.h"

typedef struct {
  gchar *root;
  gchar *state;
  gchar *runtime;
  SmolvmStore *store;
} Fixture;

static void
setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  f->root = g_dir_make_tmp ("smolvm-store-XXXXXX", &error);
  g_assert_no_error (error);
  f->state = g_build_filename (f->root, "state", NULL);
  f->runtime = g_build_filename (f->root, "run", NULL);
  f->store = smolvm_store_new (f->state, f->runtime);
  g_assert_true (smolvm_store_prepare (f->store, &error));
  g_assert_no_error (error);
}

static void
teardown (Fixture *f, gconstpointer data)
{
  g_assert_true (smolvm_rm_rf (f->root, NULL));
  g_clear_object (&f->store);
  g_free (f->root);
  g_free (f->state);
  g_free (f->runtime);
}

static void
write_file (const gchar *path, const gchar *contents)
{
  g_autoptr(GError) error = NULL;
  g_autofree gchar *dir = g_path_get_dirname (path);
  g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);
  g_assert_true (g_file_set_contents (path, contents, -1, &error));
}

static gchar *
read_file (const gchar *path)
{
  gchar *contents = NULL;
  if (!g_file_get_contents (path, &contents, NULL, NULL))
    return NULL;
  return contents;
}

static gint
compare_names (gconstpointer a, gconstpointer b)
{
  /* g_ptr_array_sort hands over pointers to the elements */
  return g_strcmp0 (*(const gchar *const *) a, *(const gchar *const *) b);
}

/* Entries of @dir, sorted, joined with spaces. */
static gchar *
listing (const gchar *dir)
{
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const gchar *name;

  while (d != NULL && (name = g_dir_read_name (d)) != NULL)
    g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, compare_names);
  g_ptr_array_add (names, NULL);
  return g_strjoinv (" ", (gchar **) names->pdata);
}

/* Lets the worker threads' removals finish. */
static void
drain (const gchar *dir, const gchar *expected)
{
  for (guint i = 0; i < 2000; i++) {
    g_autofree gchar *now = listing (dir);
    while (g_main_context_iteration (NULL, FALSE))
      ;
    if (g_strcmp0 (now, expected) == 0)
      return;
    g_usleep (1000);
  }
  g_assert_cmpstr (listing (dir), ==, expected);
}

static void
test_paths (Fixture *f, gconstpointer data)
{
  g_autofree gchar *vm = smolvm_store_vm_dir (f->store, "a");
  g_autofree gchar *vm_run = smolvm_store_vm_runtime_dir (f->store, "a");
  g_autofree gchar *snap = smolvm_store_snapshot_dir (f->store, "s");
  g_autofree gchar *tmp = smolvm_store_snapshot_tmp_dir (f->store, "s");
  g_autofree gchar *pre = smolvm_store_pre_restore_path ("/x/disk.ext4");
  g_autofree gchar *want_vm = g_build_filename (f->state, "vms", "a", NULL);
  g_autofree gchar *want_run = g_build_filename (f->runtime, "vms", "a", NULL);
  g_autofree gchar *want_snap = g_build_filename (f->state, "snapshots", "s", NULL);
  g_autofree gchar *want_tmp = g_build_filename (f->state, "snapshots", ".tmp-s", NULL);

  g_assert_cmpstr (vm, ==, want_vm);
  g_assert_cmpstr (vm_run, ==, want_run);
  g_assert_cmpstr (snap, ==, want_snap);
  g_assert_cmpstr (tmp, ==, want_tmp);
  g_assert_cmpstr (pre, ==, "/x/disk.ext4.pre-restore");
  {
    g_autofree gchar *disk = smolvm_store_vm_file (f->store, "a", SMOLVM_VM_DISK);
    g_autofree gchar *console = smolvm_store_vm_runtime_file (f->store, "a", "console.log");
    g_autofree gchar *mem = smolvm_store_snapshot_file (f->store, "s", SMOLVM_SNAPSHOT_MEM);
    g_autofree gchar *tmp_mem = smolvm_store_snapshot_tmp_file (f->store, "s", "mem.bin");
    g_autofree gchar *want_disk = g_build_filename (want_vm, "disk.ext4", NULL);
    g_autofree gchar *want_console = g_build_filename (want_run, "console.log", NULL);
    g_autofree gchar *want_mem = g_build_filename (want_snap, "mem.bin", NULL);
    g_autofree gchar *want_tmp_mem = g_build_filename (want_tmp, "mem.bin", NULL);
    g_assert_cmpstr (disk, ==, want_disk);
    g_assert_cmpstr (console, ==, want_console);
    g_assert_cmpstr (mem, ==, want_mem);
    g_assert_cmpstr (tmp_mem, ==, want_tmp_mem);
  }
  g_assert_true (g_file_test (smolvm_store_get_vms_dir (f->store), G_FILE_TEST_IS_DIR));
  g_assert_true (g_file_test (smolvm_store_get_snapshots_dir (f->store), G_FILE_TEST_IS_DIR));
}

static void
test_move_aside (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree gchar *dir = smolvm_store_snapshot_dir (f->store, "s");
  g_autofree gchar *file = g_build_filename (dir, "mem.bin", NULL);
  g_autofree gchar *trash = NULL;
  g_autofree gchar *moved = NULL;
  g_autofree gchar *base = NULL;
  g_autofree gchar *contents = NULL;

  write_file (file, "memory");
  trash = smolvm_store_move_aside (f->store, dir, &error);
  g_assert_no_error (error);
  g_assert_nonnull (trash);
  /* beside the records, hidden, and holding the tree as it was */
  base = g_path_get_basename (trash);
  g_assert_true (g_str_has_prefix (base, ".trash-"));
  g_assert_false (g_file_test (dir, G_FILE_TEST_EXISTS));
  moved = g_build_filename (trash, "s", "mem.bin", NULL);
  contents = read_file (moved);
  g_assert_cmpstr (contents, ==, "memory");
  g_assert_true (g_str_has_prefix (trash, smolvm_store_get_snapshots_dir (f->store)));

  /* a missing path moves trivially */
  g_clear_pointer (&trash, g_free);
  trash = smolvm_store_move_aside (f->store, dir, &error);
  g_assert_no_error (error);
  g_assert_nonnull (trash);
}

static void
on_discarded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  gboolean *done = user_data;
  g_autoptr(GError) error = NULL;
  g_assert_true (smolvm_store_discard_finish (SMOLVM_STORE (source), result, &error));
  g_assert_no_error (error);
  *done = TRUE;
}

static void
test_discard_async (Fixture *f, gconstpointer data)
{
  g_autofree gchar *dir = smolvm_store_vm_dir (f->store, "a");
  g_autofree gchar *disk = g_build_filename (dir, "disk.ext4", NULL);
  gboolean done = FALSE;

  write_file (disk, "disk");
  smolvm_store_discard_async (f->store, dir, on_discarded, &done);
  /* gone from its place at once, before the removal completes */
  g_assert_false (g_file_test (dir, G_FILE_TEST_EXISTS));
  while (!done)
    g_main_context_iteration (NULL, TRUE);
  /* and nothing at all is left once it has */
  {
    g_autofree gchar *left = listing (smolvm_store_get_vms_dir (f->store));
    g_assert_cmpstr (left, ==, "");
  }
}

/* A restore's old disk: out of its place at once, then removed (its old
 * directory synced first) by a worker; nothing else of the VM is touched. */
static void
test_discard_lazily (Fixture *f, gconstpointer data)
{
  g_autofree gchar *dir = smolvm_store_vm_dir (f->store, "a");
  g_autofree gchar *record = g_build_filename (dir, "vm.json", NULL);
  g_autofree gchar *disk = g_build_filename (dir, "disk.ext4", NULL);
  g_autofree gchar *backup = smolvm_store_pre_restore_path (disk);
  g_autoptr(GError) error = NULL;

  write_file (record, "{}");
  write_file (disk, "new disk");
  write_file (backup, "old disk");
  g_assert_true (smolvm_store_discard_lazily (f->store, backup, &error));
  g_assert_no_error (error);
  g_assert_false (g_file_test (backup, G_FILE_TEST_EXISTS));
  {
    g_autofree gchar *left = listing (dir);
    g_assert_cmpstr (left, ==, "disk.ext4 vm.json");
  }
  /* the .trash- directory beside the VM goes too */
  drain (smolvm_store_get_vms_dir (f->store), "a");
}

static void
on_committed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GError **out = user_data;
  if (!smolvm_store_commit_snapshot_finish (SMOLVM_STORE (source), result, out))
    g_assert_nonnull (*out);
  else
    *out = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_NONE, "ok");
}

static GError *
commit (Fixture *f, const gchar *tmp, const gchar *id)
{
  GError *result = NULL;
  smolvm_store_commit_snapshot_async (f->store, tmp, id, "{\"snapshot_id\": \"s\"}",
                                      on_committed, &result);
  while (result == NULL)
    g_main_context_iteration (NULL, TRUE);
  return result;
}

static void
test_commit (Fixture *f, gconstpointer data)
{
  g_autofree gchar *tmp = smolvm_store_snapshot_tmp_dir (f->store, "s");
  g_autofree gchar *vmstate = g_build_filename (tmp, "vmstate.bin", NULL);
  g_autofree gchar *mem = g_build_filename (tmp, "mem.bin", NULL);
  g_autofree gchar *final = smolvm_store_snapshot_dir (f->store, "s");
  g_autofree gchar *metadata = g_build_filename (final, "snapshot.json", NULL);
  g_autofree gchar *contents = NULL;
  g_autoptr(GError) error = NULL;

  /* without its state files, nothing is published */
  g_assert_cmpint (g_mkdir_with_parents (tmp, 0700), ==, 0);
  error = commit (f, tmp, "s");
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND);
  g_assert_false (g_file_test (final, G_FILE_TEST_EXISTS));
  g_assert_true (g_file_test (tmp, G_FILE_TEST_IS_DIR));
  g_clear_error (&error);

  write_file (vmstate, "state");
  write_file (mem, "memory");
  g_assert_cmpint (chmod (vmstate, 0644), ==, 0);
  g_assert_cmpint (chmod (mem, 0644), ==, 0);
  error = commit (f, tmp, "s");
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NONE);
  g_assert_false (g_file_test (tmp, G_FILE_TEST_EXISTS));
  contents = read_file (metadata);
  g_assert_cmpstr (contents, ==, "{\"snapshot_id\": \"s\"}");
  /* snapshot.json was written in place: no temp file is left beside it */
  {
    g_autofree gchar *files = listing (final);
    g_assert_cmpstr (files, ==, "mem.bin snapshot.json vmstate.bin");
  }
  /* the state files are read-only once published (restored VMs and clones map mem.bin) */
  for (guint i = 0; i < 2; i++) {
    const gchar *name = i == 0 ? "vmstate.bin" : "mem.bin";
    g_autofree gchar *path = g_build_filename (final, name, NULL);
    struct stat st;

    g_assert_cmpint (g_stat (path, &st), ==, 0);
    g_assert_cmpint (st.st_mode & 07777, ==, 0400);
  }
}

static void
test_list_records_and_leftovers (Fixture *f, gconstpointer data)
{
  const gchar *snapshots = smolvm_store_get_snapshots_dir (f->store);
  g_autofree gchar *a = g_build_filename (snapshots, "a", "snapshot.json", NULL);
  g_autofree gchar *tmp = g_build_filename (snapshots, ".tmp-b", "mem.bin", NULL);
  g_autofree gchar *trash = g_build_filename (snapshots, ".trash-xyz", "c", "mem.bin", NULL);
  g_autofree gchar *other = g_build_filename (snapshots, ".hidden", "keep", NULL);
  g_autoptr(GPtrArray) records = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree gchar *want = g_build_filename (snapshots, "a", NULL);

  write_file (a, "{}");
  write_file (tmp, "partial");
  write_file (trash, "removal cut short");
  write_file (other, "not ours");
  records = smolvm_store_list_records (f->store, "snapshots", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (records->len, ==, 1);
  g_assert_cmpstr (g_ptr_array_index (records, 0), ==, want);
  /* what a crash left goes; a dot-entry not ours stays */
  drain (snapshots, ".hidden a");
}

static void
test_recover_restore (Fixture *f, gconstpointer data)
{
  g_autofree gchar *dir = smolvm_store_vm_dir (f->store, "a");
  g_autofree gchar *disk = g_build_filename (dir, "disk.ext4", NULL);
  g_autofree gchar *backup = smolvm_store_pre_restore_path (disk);
  g_autofree gchar *contents = NULL;

  /* died before the snapshot ran: the VM's own disk comes back */
  write_file (disk, "snapshot's disk");
  write_file (backup, "own disk");
  smolvm_store_recover_restore (f->store, "a", disk, FALSE);
  contents = read_file (disk);
  g_assert_cmpstr (contents, ==, "own disk");
  g_assert_false (g_file_test (backup, G_FILE_TEST_EXISTS));
  drain (smolvm_store_get_vms_dir (f->store), "a");
  g_clear_pointer (&contents, g_free);

  /* died after it ran: the snapshot's disk stays */
  write_file (backup, "own disk");
  write_file (disk, "snapshot's disk");
  smolvm_store_recover_restore (f->store, "a", disk, TRUE);
  contents = read_file (disk);
  g_assert_cmpstr (contents, ==, "snapshot's disk");
  g_assert_false (g_file_test (backup, G_FILE_TEST_EXISTS));
  drain (smolvm_store_get_vms_dir (f->store), "a");

  /* a half-copied incoming disk goes, whatever else */
  {
    g_autofree gchar *incoming = smolvm_store_incoming_disk_path (disk);
    g_autofree gchar *want = g_strconcat (disk, ".restoring", NULL);
    g_assert_cmpstr (incoming, ==, want);
    write_file (incoming, "half a copy");
    smolvm_store_recover_restore (f->store, "a", disk, TRUE);
    g_assert_false (g_file_test (incoming, G_FILE_TEST_EXISTS));
    drain (smolvm_store_get_vms_dir (f->store), "a");
  }

  /* nothing to do without a backup */
  smolvm_store_recover_restore (f->store, "a", disk, FALSE);
  g_clear_pointer (&contents, g_free);
  contents = read_file (disk);
  g_assert_cmpstr (contents, ==, "snapshot's disk");
}

static void
test_remove_runtime (Fixture *f, gconstpointer data)
{
  g_autofree gchar *dir = smolvm_store_vm_runtime_dir (f->store, "a");
  g_autofree gchar *console = g_build_filename (dir, "console.log", NULL);
  g_autofree gchar *ram = g_build_filename (dir, "ram", NULL);
  g_autofree gchar *sock = g_build_filename (dir, "qmp.sock", NULL);
  g_autofree gchar *root = g_path_get_dirname (dir);

  write_file (console, "tick 1\n");
  write_file (ram, "guest memory");
  write_file (sock, "");
  smolvm_store_remove_runtime (f->store, "a");
  /* moved away at once: a VM started now under the id finds no old file */
  g_assert_false (g_file_test (dir, G_FILE_TEST_EXISTS));
  drain (root, "");
}

static void
test_make_record_dir (Fixture *f, gconstpointer data)
{
  g_autofree gchar *dir = smolvm_store_vm_dir (f->store, "a");
  g_autofree gchar *stale = g_build_filename (dir, "disk.ext4", NULL);
  g_autoptr(GError) error = NULL;

  write_file (stale, "a crash's leftover");
  g_assert_true (smolvm_store_make_record_dir (f->store, dir, &error));
  g_assert_no_error (error);
  g_assert_true (g_file_test (dir, G_FILE_TEST_IS_DIR));
  g_assert_false (g_file_test (stale, G_FILE_TEST_EXISTS));
  drain (smolvm_store_get_vms_dir (f->store), "a");
}

/* Sets the modification time of @path to @when (seconds since the epoch). */
static void
set_mtime (const gchar *path, gint64 when)
{
  struct timespec times[2] = { { .tv_sec = when }, { .tv_sec = when } };
  g_assert_cmpint (utimensat (AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW), ==, 0);
}

static void
test_clean_oci_cache (Fixture *f, gconstpointer data)
{
  const gint64 now = 2000000000;
  const gint64 day = 24 * 3600;
  const gint64 week = SMOLVM_STORE_PULL_CACHE_MAX_AGE;
  g_autofree gchar *top = smolvm_store_oci_cache_dir (f->store, NULL);
  const gchar *pulls[] = { "pull-old", "pull-recent", "pull-old-blob", "pull-week" };
  const gint64 dir_times[] = { now - week - day, now - day, now - week - day, now - week };
  const gint64 blob_times[] = { now - week - day, now - week - day, now - 1, now - week };
  g_autofree gchar *push = g_build_filename (top, "push-Ab12Cd", "blobs", "sha256", "x", NULL);
  g_autofree gchar *trash = g_build_filename (top, ".trash-Zz99Yy", "blobs", "sha256", "x", NULL);
  g_autofree gchar *other = g_build_filename (top, "not-ours", "keep", NULL);
  g_autofree gchar *file = g_build_filename (top, "pull-file", NULL);

  for (gsize i = 0; i < G_N_ELEMENTS (pulls); i++) {
    g_autofree gchar *dir = g_build_filename (top, pulls[i], NULL);
    g_autofree gchar *blobs = g_build_filename (dir, "blobs", "sha256", NULL);
    g_autofree gchar *blob = g_build_filename (blobs, "abc", NULL);
    write_file (blob, "a verified blob");
    set_mtime (blobs, blob_times[i]);
    set_mtime (dir, dir_times[i]);
  }
  write_file (push, "a push's blob");
  write_file (trash, "a removal cut short");
  write_file (other, "not a transfer's");
  write_file (file, "not a directory");

  smolvm_store_clean_oci_cache (f->store, now, week);
  /* a push dir and a pull untouched for more than a week go at once (they
   * are renamed before the removal); a recent pull cache, one whose blobs
   * changed lately, one exactly a week old, and what is not a transfer's
   * stay */
  {
    g_autofree gchar *old = g_build_filename (top, "pull-old", NULL);
    g_autofree gchar *push_dir = g_build_filename (top, "push-Ab12Cd", NULL);
    g_assert_false (g_file_test (old, G_FILE_TEST_EXISTS));
    g_assert_false (g_file_test (push_dir, G_FILE_TEST_EXISTS));
  }
  drain (top, "not-ours pull-file pull-old-blob pull-recent pull-week");

  /* a later start: what was recent is old now, but for the blob received
   * a second before the first start, a week ago less a second */
  smolvm_store_clean_oci_cache (f->store, now + week - 2, week);
  drain (top, "not-ours pull-file pull-old-blob");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(name, fn) g_test_add (name, Fixture, NULL, setup, fn, teardown)
  ADD ("/store/paths", test_paths);
  ADD ("/store/move-aside", test_move_aside);
  ADD ("/store/discard-async", test_discard_async);
  ADD ("/store/discard-lazily", test_discard_lazily);
  ADD ("/store/commit", test_commit);
  ADD ("/store/list-records-and-leftovers", test_list_records_and_leftovers);
  ADD ("/store/recover-restore", test_recover_restore);
  ADD ("/store/remove-runtime", test_remove_runtime);
  ADD ("/store/make-record-dir", test_make_record_dir);
  ADD ("/store/clean-oci-cache", test_clean_oci_cache);
  return g_test_run ();
}
