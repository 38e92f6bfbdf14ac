/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* unshare */
#endif
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "smolvm-error.h"
#include "smolvm-fileutil.h"

#define KiB ((goffset) 1024)
#define MiB (1024 * KiB)

typedef struct {
  gchar *dir;  /* fresh temp dir per test */
  gchar *mnt;  /* tmpfs mounted by the test, if any */
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  GError *error = NULL;

  f->dir = g_dir_make_tmp ("smolvm-fileutil-XXXXXX", &error);
  g_assert_no_error (error);
}

static void
unmount_tmpfs (Fixture *f)
{
  if (f->mnt == NULL)
    return;
  g_assert_cmpint (umount2 (f->mnt, MNT_DETACH), ==, 0);
  g_clear_pointer (&f->mnt, g_free);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  unmount_tmpfs (f);
  g_assert_true (smolvm_rm_rf (f->dir, &error));
  g_assert_no_error (error);
  g_assert_false (g_file_test (f->dir, G_FILE_TEST_EXISTS));
  g_free (f->dir);
}

/* Mounts a small tmpfs under the fixture dir; skips the test (returns NULL)
 * when not root or when mounting is not permitted here. */
static const gchar *
mount_tmpfs (Fixture *f, const gchar *size)
{
  g_autofree gchar *mnt = NULL;
  g_autofree gchar *opts = NULL;
  g_autofree gchar *msg = NULL;

  if (geteuid () != 0) {
    g_test_skip ("mounting a tmpfs needs root");
    return NULL;
  }
  mnt = g_build_filename (f->dir, "mnt", NULL);
  g_assert_cmpint (g_mkdir (mnt, 0700), ==, 0);
  opts = g_strdup_printf ("size=%s,mode=0700", size);
  if (mount ("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0) {
    msg = g_strdup_printf ("cannot mount a tmpfs: %s", g_strerror (errno));
    g_test_skip (msg);
    return NULL;
  }
  f->mnt = g_steal_pointer (&mnt);
  return f->mnt;
}

static const gchar *
fs_name (const gchar *path)
{
  struct statfs sfs;

  if (statfs (path, &sfs) < 0)
    return "unknown";
  switch ((unsigned long) sfs.f_type) {
  case 0xEF53UL:
    return "ext2/3/4";
  case 0x01021994UL:
    return "tmpfs";
  case 0x794C7630UL:
    return "overlayfs";
  case 0x9123683EUL:
    return "btrfs";
  case 0x58465342UL:
    return "xfs";
  default:
    return "other";
  }
}

static goffset
allocated_bytes (const gchar *path)
{
  struct stat st;

  g_assert_cmpint (lstat (path, &st), ==, 0);
  return (goffset) st.st_blocks * 512;
}

static goffset
file_size (const gchar *path)
{
  struct stat st;

  g_assert_cmpint (lstat (path, &st), ==, 0);
  return st.st_size;
}

/* Deterministic, non-zero-heavy bytes, so that a missing or misplaced
 * extent cannot compare equal by accident. */
static void
write_extent (int fd, goffset off, gsize len, guint32 seed)
{
  g_autoptr(GRand) rng = g_rand_new_with_seed (seed);
  g_autofree guint32 *buf = g_new (guint32, (len + 3) / 4);

  for (gsize i = 0; i < (len + 3) / 4; i++)
    buf[i] = g_rand_int (rng) | 0x01010101;
  g_assert_cmpint (pwrite (fd, buf, len, off), ==, (gssize) len);
}

static gchar *
make_file (Fixture *f, const gchar *name, goffset size, const goffset *extents, gsize n_extents,
           gsize extent_len)
{
  gchar *path = g_build_filename (f->dir, name, NULL);
  int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (ftruncate (fd, size), ==, 0);
  for (gsize i = 0; i < n_extents; i++)
    write_extent (fd, extents[i], extent_len, (guint32) i + 1);
  g_assert_cmpint (fsync (fd), ==, 0);
  g_assert_cmpint (close (fd), ==, 0);
  return path;
}

static void
assert_same_content (const gchar *a, const gchar *b)
{
  g_autofree guint8 *buf_a = g_malloc (MiB);
  g_autofree guint8 *buf_b = g_malloc (MiB);
  int fd_a = open (a, O_RDONLY | O_CLOEXEC);
  int fd_b = open (b, O_RDONLY | O_CLOEXEC);
  goffset off = 0;

  g_assert_cmpint (fd_a, >=, 0);
  g_assert_cmpint (fd_b, >=, 0);
  g_assert_cmpint (file_size (a), ==, file_size (b));
  for (;;) {
    gssize n_a = read (fd_a, buf_a, MiB);
    gssize n_b = read (fd_b, buf_b, MiB);

    g_assert_cmpint (n_a, >=, 0);
    g_assert_cmpint (n_a, ==, n_b);
    if (n_a == 0)
      break;
    if (memcmp (buf_a, buf_b, n_a) != 0)
      g_error ("%s and %s differ in the MiB at offset %" G_GOFFSET_FORMAT, a, b, off);
    off += n_a;
  }
  close (fd_a);
  close (fd_b);
}

static gchar *
read_file (const gchar *path)
{
  g_autoptr(GError) error = NULL;
  gchar *contents = NULL;

  g_assert_true (g_file_get_contents (path, &contents, NULL, &error));
  g_assert_no_error (error);
  return contents;
}

static guint
count_entries (const gchar *dir_path)
{
  g_autoptr(GDir) dir = g_dir_open (dir_path, 0, NULL);
  guint n = 0;

  g_assert_nonnull (dir);
  while (g_dir_read_name (dir) != NULL)
    n++;
  return n;
}

/* Copies a 64 MiB image with data at its start, middle and end, and checks
 * that the holes between stay holes. */
static void
check_sparse_copy (const gchar *src, const gchar *dst)
{
  g_autoptr(GError) error = NULL;
  goffset src_alloc, dst_alloc;
  g_autofree gchar *msg = NULL;

  g_assert_true (smolvm_copy_file_sparse (src, dst, NULL, NULL, &error));
  g_assert_no_error (error);
  assert_same_content (src, dst);
  g_assert_cmpint (file_size (dst), ==, 64 * MiB);

  src_alloc = allocated_bytes (src);
  dst_alloc = allocated_bytes (dst);
  g_test_message ("source on %s allocates %" G_GOFFSET_FORMAT " KiB, destination on %s allocates "
                  "%" G_GOFFSET_FORMAT " KiB (apparent size 64 MiB)",
                  fs_name (src), src_alloc / KiB, fs_name (dst), dst_alloc / KiB);
  if (src_alloc >= 4 * MiB) {
    msg = g_strdup_printf ("the source is not sparse on %s (%" G_GOFFSET_FORMAT " KiB allocated); "
                           "hole preservation not checked",
                           fs_name (src), src_alloc / KiB);
    g_test_skip (msg);
    return;
  }
  g_assert_cmpint (dst_alloc, <, 4 * MiB);
}

static void
test_copy_sparse (Fixture *f, gconstpointer data)
{
  const goffset extents[] = { 0, 32 * MiB, 64 * MiB - 256 * KiB };
  g_autofree gchar *src = make_file (f, "sparse.img", 64 * MiB, extents, 3, 256 * KiB);
  g_autofree gchar *dst = g_build_filename (f->dir, "copy.img", NULL);

  check_sparse_copy (src, dst);
}

/* Across filesystems copy_file_range gives EXDEV, so this runs the
 * read/write fallback, which must keep the holes too. */
static void
test_copy_sparse_cross_fs (Fixture *f, gconstpointer data)
{
  const goffset extents[] = { 0, 32 * MiB, 64 * MiB - 256 * KiB };
  g_autofree gchar *src = make_file (f, "sparse.img", 64 * MiB, extents, 3, 256 * KiB);
  g_autofree gchar *dst = NULL;
  const gchar *mnt = mount_tmpfs (f, "128m");

  if (mnt == NULL)
    return;
  dst = g_build_filename (mnt, "copy.img", NULL);
  check_sparse_copy (src, dst);
  unmount_tmpfs (f);
}

/* Leading and trailing holes: only the final ftruncate can create the
 * trailing one. */
static void
test_copy_holes_at_ends (Fixture *f, gconstpointer data)
{
  const goffset extents[] = { 4 * MiB };
  g_autofree gchar *src = make_file (f, "holes.img", 16 * MiB, extents, 1, 64 * KiB);
  g_autofree gchar *dst = g_build_filename (f->dir, "copy.img", NULL);
  g_autoptr(GError) error = NULL;

  g_assert_true (smolvm_copy_file_sparse (src, dst, NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (file_size (dst), ==, 16 * MiB);
  assert_same_content (src, dst);
  if (allocated_bytes (src) < MiB)
    g_assert_cmpint (allocated_bytes (dst), <, MiB);
}

static void
test_copy_empty (Fixture *f, gconstpointer data)
{
  g_autofree gchar *src = make_file (f, "empty", 0, NULL, 0, 0);
  g_autofree gchar *dst = g_build_filename (f->dir, "copy", NULL);
  g_autoptr(GError) error = NULL;
  struct stat st;

  g_assert_true (smolvm_copy_file_sparse (src, dst, NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (lstat (dst, &st), ==, 0);
  g_assert_true (S_ISREG (st.st_mode));
  g_assert_cmpint (st.st_size, ==, 0);
  g_assert_cmpint (st.st_mode & 07777, ==, 0600);
}

static void
test_copy_dense (Fixture *f, gconstpointer data)
{
  /* Not a multiple of any block size, to catch an off-by-one at the end. */
  const goffset extents[] = { 0 };
  const gsize size = 3 * MiB + 123;
  g_autofree gchar *src = make_file (f, "dense", size, extents, 1, size);
  g_autofree gchar *dst = g_build_filename (f->dir, "copy", NULL);
  g_autoptr(GError) error = NULL;

  g_assert_true (smolvm_copy_file_sparse (src, dst, NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (file_size (dst), ==, size);
  assert_same_content (src, dst);
}

static void
test_copy_dst_exists (Fixture *f, gconstpointer data)
{
  const goffset extents[] = { 0 };
  g_autofree gchar *src = make_file (f, "src", 4096, extents, 1, 4096);
  g_autofree gchar *dst = g_build_filename (f->dir, "dst", NULL);
  g_autofree gchar *after = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_true (g_file_set_contents (dst, "keep me", -1, NULL));
  g_assert_false (smolvm_copy_file_sparse (src, dst, NULL, NULL, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_ALREADY_EXISTS);
  g_test_message ("%s", error->message);
  after = read_file (dst);
  g_assert_cmpstr (after, ==, "keep me");
}

static void
test_copy_missing_src (Fixture *f, gconstpointer data)
{
  g_autofree gchar *src = g_build_filename (f->dir, "nope", NULL);
  g_autofree gchar *dst = g_build_filename (f->dir, "dst", NULL);
  g_autoptr(GError) error = NULL;

  g_assert_false (smolvm_copy_file_sparse (src, dst, NULL, NULL, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND);
  g_test_message ("%s", error->message);
  g_assert_true (g_str_has_prefix (error->message, "Cannot copy "));
  g_assert_nonnull (strstr (error->message, "No such file or directory"));
  g_assert_false (g_file_test (dst, G_FILE_TEST_EXISTS));
}

static void
test_copy_not_regular (Fixture *f, gconstpointer data)
{
  g_autofree gchar *dst = g_build_filename (f->dir, "dst", NULL);
  g_autoptr(GError) error = NULL;

  g_assert_false (smolvm_copy_file_sparse (f->dir, dst, NULL, NULL, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
  g_assert_false (g_file_test (dst, G_FILE_TEST_EXISTS));
}

/* A FIFO swapped in for the source must not hang the copy in open():
 * nobody would ever write to it. */
static void
test_copy_fifo (Fixture *f, gconstpointer data)
{
  g_autofree gchar *src = g_build_filename (f->dir, "fifo", NULL);
  g_autofree gchar *dst = g_build_filename (f->dir, "dst", NULL);
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (mkfifo (src, 0600), ==, 0);
  g_assert_false (smolvm_copy_file_sparse (src, dst, NULL, NULL, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
  g_assert_false (g_file_test (dst, G_FILE_TEST_EXISTS));
}

static void
test_copy_cancelled (Fixture *f, gconstpointer data)
{
  const goffset extents[] = { 0 };
  g_autofree gchar *src = make_file (f, "src", MiB, extents, 1, MiB);
  g_autofree gchar *dst = g_build_filename (f->dir, "dst", NULL);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GError) error = NULL;

  g_cancellable_cancel (cancellable);
  g_assert_false (smolvm_copy_file_sparse (src, dst, NULL, cancellable, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED);
  g_assert_false (g_file_test (dst, G_FILE_TEST_EXISTS));
  g_assert_cmpuint (count_entries (f->dir), ==, 1);
}

typedef struct {
  GMainLoop *loop;
  GAsyncResult *result;
} AsyncData;

static void
on_async_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  AsyncData *d = user_data;

  /* Delivered in the caller's main context, not in the worker thread. */
  g_assert_true (g_main_context_is_owner (g_main_context_default ()));
  d->result = g_object_ref (result);
  g_main_loop_quit (d->loop);
}

static GAsyncResult *
run_until_done (AsyncData *d)
{
  g_main_loop_run (d->loop);
  g_main_loop_unref (d->loop);
  return d->result;
}

static void
test_copy_async (Fixture *f, gconstpointer data)
{
  const goffset extents[] = { 0, 8 * MiB };
  g_autofree gchar *src = make_file (f, "src", 16 * MiB, extents, 2, 128 * KiB);
  g_autofree gchar *dst = g_build_filename (f->dir, "dst", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  AsyncData d = { g_main_loop_new (NULL, FALSE), NULL };

  smolvm_copy_file_sparse_async (src, dst, NULL, NULL, on_async_done, &d);
  result = run_until_done (&d);
  g_assert_true (smolvm_copy_file_sparse_finish (result, &error));
  g_assert_no_error (error);
  assert_same_content (src, dst);
}

static void
test_copy_async_cancelled (Fixture *f, gconstpointer data)
{
  const goffset extents[] = { 0 };
  g_autofree gchar *src = make_file (f, "src", MiB, extents, 1, MiB);
  g_autofree gchar *dst = g_build_filename (f->dir, "dst", NULL);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  AsyncData d = { g_main_loop_new (NULL, FALSE), NULL };

  g_cancellable_cancel (cancellable);
  smolvm_copy_file_sparse_async (src, dst, NULL, cancellable, on_async_done, &d);
  result = run_until_done (&d);
  g_assert_false (smolvm_copy_file_sparse_finish (result, &error));
  /* Our domain, not GTask's G_IO_ERROR_CANCELLED. */
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED);
  g_assert_false (g_file_test (dst, G_FILE_TEST_EXISTS));
}

static void
test_copy_no_space (Fixture *f, gconstpointer data)
{
  const goffset extents[] = { 0 };
  g_autofree gchar *src = make_file (f, "dense", 4 * MiB, extents, 1, 4 * MiB);
  g_autofree gchar *dst = NULL;
  g_autoptr(GError) error = NULL;
  const gchar *mnt = mount_tmpfs (f, "1m");

  if (mnt == NULL)
    return;
  dst = g_build_filename (mnt, "copy", NULL);
  g_assert_false (smolvm_copy_file_sparse (src, dst, NULL, NULL, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NO_SPACE);
  g_test_message ("%s", error->message);
  g_assert_true (g_str_has_prefix (error->message, "Cannot copy "));
  g_assert_true (g_str_has_suffix (error->message, "No space left on device"));
  g_assert_false (g_file_test (dst, G_FILE_TEST_EXISTS));
  g_assert_cmpuint (count_entries (mnt), ==, 0);
  unmount_tmpfs (f);
}

static void
test_write_atomic_new (Fixture *f, gconstpointer data)
{
  g_autofree gchar *path = g_build_filename (f->dir, "config.json", NULL);
  g_autofree gchar *got = NULL;
  g_autoptr(GError) error = NULL;
  struct stat st;

  g_assert_true (smolvm_write_file_atomic (path, "{\"a\": 1}\n", -1, &error));
  g_assert_no_error (error);
  got = read_file (path);
  g_assert_cmpstr (got, ==, "{\"a\": 1}\n");
  g_assert_cmpint (lstat (path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 07777, ==, 0644);
  g_assert_cmpuint (count_entries (f->dir), ==, 1);
}

static void
test_write_atomic_replace (Fixture *f, gconstpointer data)
{
  g_autofree gchar *path = g_build_filename (f->dir, "state", NULL);
  g_autofree gchar *got = NULL;
  g_autoptr(GError) error = NULL;
  const gchar bin[] = { 'a', '\0', 'b' };
  gsize len = 0;

  g_assert_true (g_file_set_contents (path, "old contents, longer than the new", -1, NULL));
  g_assert_true (smolvm_write_file_atomic (path, "new", -1, &error));
  g_assert_no_error (error);
  got = read_file (path);
  g_assert_cmpstr (got, ==, "new");
  g_clear_pointer (&got, g_free);

  /* An explicit length writes embedded NULs too. */
  g_assert_true (smolvm_write_file_atomic (path, bin, sizeof bin, &error));
  g_assert_no_error (error);
  g_assert_true (g_file_get_contents (path, &got, &len, NULL));
  g_assert_cmpmem (got, len, bin, sizeof bin);

  g_assert_true (smolvm_write_file_atomic (path, NULL, 0, &error));
  g_assert_no_error (error);
  g_assert_cmpint (file_size (path), ==, 0);
  g_assert_cmpuint (count_entries (f->dir), ==, 1);
}

static void
test_write_atomic_missing_dir (Fixture *f, gconstpointer data)
{
  g_autofree gchar *missing = g_build_filename (f->dir, "missing", NULL);
  g_autofree gchar *path = g_build_filename (missing, "file", NULL);
  g_autoptr(GError) error = NULL;

  g_assert_false (smolvm_write_file_atomic (path, "x", -1, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND);
  g_test_message ("%s", error->message);
  g_assert_false (g_file_test (missing, G_FILE_TEST_EXISTS));
  g_assert_cmpuint (count_entries (f->dir), ==, 0);
}

/* rename() over a directory fails after the temp file is written: the temp
 * file must go and the target must stay as it was. */
static void
test_write_atomic_rename_fails (Fixture *f, gconstpointer data)
{
  g_autofree gchar *path = g_build_filename (f->dir, "target", NULL);
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (g_mkdir (path, 0755), ==, 0);
  g_assert_false (smolvm_write_file_atomic (path, "x", -1, &error));
  g_assert_nonnull (error);
  g_assert_true (error->domain == SMOLVM_ERROR);
  g_test_message ("%s", error->message);
  g_assert_true (g_file_test (path, G_FILE_TEST_IS_DIR));
  g_assert_cmpuint (count_entries (f->dir), ==, 1);
}

static void
write_small (const gchar *dir, const gchar *name)
{
  g_autofree gchar *path = g_build_filename (dir, name, NULL);

  g_assert_true (g_file_set_contents (path, name, -1, NULL));
}

static void
test_rm_rf_tree (Fixture *f, gconstpointer data)
{
  g_autofree gchar *outside = g_build_filename (f->dir, "outside", NULL);
  g_autofree gchar *outside_file = g_build_filename (outside, "precious", NULL);
  g_autofree gchar *tree = g_build_filename (f->dir, "tree", NULL);
  g_autofree gchar *deep = g_build_filename (tree, "a", "b", "c", NULL);
  g_autofree gchar *empty = g_build_filename (tree, "a", "empty", NULL);
  g_autofree gchar *link_file = g_build_filename (tree, "a", "link-to-file", NULL);
  g_autofree gchar *link_dir = g_build_filename (tree, "a", "b", "link-to-dir", NULL);
  g_autofree gchar *dangling = g_build_filename (tree, "dangling", NULL);
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (g_mkdir_with_parents (outside, 0755), ==, 0);
  write_small (outside, "precious");
  g_assert_cmpint (g_mkdir_with_parents (deep, 0755), ==, 0);
  g_assert_cmpint (g_mkdir_with_parents (empty, 0700), ==, 0);
  write_small (tree, "top");
  write_small (deep, "leaf");
  g_assert_cmpint (symlink (outside_file, link_file), ==, 0);
  g_assert_cmpint (symlink (outside, link_dir), ==, 0);
  g_assert_cmpint (symlink ("/nonexistent/x", dangling), ==, 0);

  g_assert_true (smolvm_rm_rf (tree, &error));
  g_assert_no_error (error);
  g_assert_false (g_file_test (tree, G_FILE_TEST_EXISTS));
  g_assert_true (g_file_test (outside_file, G_FILE_TEST_IS_REGULAR));
  g_assert_cmpuint (count_entries (outside), ==, 1);

  /* Missing is success, and a plain file works too. */
  g_assert_true (smolvm_rm_rf (tree, &error));
  g_assert_no_error (error);
  g_assert_true (smolvm_rm_rf (outside_file, &error));
  g_assert_no_error (error);
  g_assert_false (g_file_test (outside_file, G_FILE_TEST_EXISTS));
}

/* @path itself a symlink to a directory, with and without a trailing
 * slash: only the link goes. */
static void
test_rm_rf_symlink_arg (Fixture *f, gconstpointer data)
{
  g_autofree gchar *target = g_build_filename (f->dir, "target", NULL);
  g_autofree gchar *link_path = g_build_filename (f->dir, "link", NULL);
  g_autofree gchar *link_slash = g_strconcat (link_path, "/", NULL);
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (g_mkdir (target, 0755), ==, 0);
  write_small (target, "keep");

  g_assert_cmpint (symlink (target, link_path), ==, 0);
  g_assert_true (smolvm_rm_rf (link_slash, &error));
  g_assert_no_error (error);
  g_assert_false (g_file_test (link_path, G_FILE_TEST_EXISTS | G_FILE_TEST_IS_SYMLINK));
  g_assert_cmpuint (count_entries (target), ==, 1);

  g_assert_cmpint (symlink (target, link_path), ==, 0);
  g_assert_true (smolvm_rm_rf (link_path, &error));
  g_assert_no_error (error);
  g_assert_false (g_file_test (link_path, G_FILE_TEST_IS_SYMLINK));
  g_assert_cmpuint (count_entries (target), ==, 1);
}

static void
test_rm_rf_refuses (Fixture *f, gconstpointer data)
{
  g_autofree gchar *sub = g_build_filename (f->dir, "sub", NULL);
  g_autofree gchar *dotdot = g_build_filename (sub, "..", NULL);
  g_autofree gchar *dot = g_strconcat (sub, "/./", NULL);
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (g_mkdir (sub, 0755), ==, 0);
  write_small (sub, "keep");
  g_assert_false (smolvm_rm_rf (dotdot, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (smolvm_rm_rf (dot, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
  g_assert_cmpuint (count_entries (sub), ==, 1);
}

static void
test_rm_rf_async (Fixture *f, gconstpointer data)
{
  g_autofree gchar *tree = g_build_filename (f->dir, "tree", NULL);
  g_autofree gchar *deep = g_build_filename (tree, "x", "y", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  AsyncData d = { g_main_loop_new (NULL, FALSE), NULL };

  g_assert_cmpint (g_mkdir_with_parents (deep, 0755), ==, 0);
  write_small (deep, "f");
  smolvm_rm_rf_async (tree, on_async_done, &d);
  result = run_until_done (&d);
  g_assert_true (smolvm_rm_rf_finish (result, &error));
  g_assert_no_error (error);
  g_assert_false (g_file_test (tree, G_FILE_TEST_EXISTS));
}

static void
test_mkdir_p (Fixture *f, gconstpointer data)
{
  g_autofree gchar *deep = g_build_filename (f->dir, "a", "b", "c", NULL);
  g_autofree gchar *file = g_build_filename (f->dir, "file", NULL);
  g_autofree gchar *under_file = g_build_filename (file, "sub", NULL);
  g_autoptr(GError) error = NULL;
  struct stat st;

  g_assert_true (smolvm_mkdir_p (deep, 0700, &error));
  g_assert_no_error (error);
  g_assert_cmpint (lstat (deep, &st), ==, 0);
  g_assert_true (S_ISDIR (st.st_mode));
  g_assert_cmpint (st.st_mode & 0777, ==, 0700);
  /* Existing is fine. */
  g_assert_true (smolvm_mkdir_p (deep, 0700, &error));
  g_assert_no_error (error);

  write_small (f->dir, "file");
  g_assert_false (smolvm_mkdir_p (under_file, 0700, &error));
  g_assert_nonnull (error);
  g_assert_true (error->domain == SMOLVM_ERROR);
  g_test_message ("%s", error->message);
}

static void
test_fsync_dir (Fixture *f, gconstpointer data)
{
  g_autofree gchar *missing = g_build_filename (f->dir, "missing", NULL);
  g_autoptr(GError) error = NULL;

  g_assert_true (smolvm_fsync_dir (f->dir, &error));
  g_assert_no_error (error);
  g_assert_false (smolvm_fsync_dir (missing, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND);
}

/* A new file in a directory nobody reads yet: contents and mode as asked,
 * never over an existing file, nothing left when it fails. */
static void
test_write_new (Fixture *f, gconstpointer data)
{
  g_autofree gchar *path = g_build_filename (f->dir, "snapshot.json", NULL);
  g_autofree gchar *missing = g_build_filename (f->dir, "gone", "snapshot.json", NULL);
  g_autofree gchar *got = NULL;
  g_autoptr(GError) error = NULL;
  struct stat st;

  g_assert_true (smolvm_write_file_new (path, "{}\n", -1, &error));
  g_assert_no_error (error);
  got = read_file (path);
  g_assert_cmpstr (got, ==, "{}\n");
  g_assert_cmpint (lstat (path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 07777, ==, 0644);
  /* no temp file beside it */
  g_assert_cmpuint (count_entries (f->dir), ==, 1);

  g_assert_false (smolvm_write_file_new (path, "other", -1, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  g_clear_pointer (&got, g_free);
  got = read_file (path);
  g_assert_cmpstr (got, ==, "{}\n");

  g_assert_false (smolvm_write_file_new (missing, "x", -1, &error));
  g_assert_nonnull (error);
}

/* Without its directory's sync the copy is the same copy. */
static void
test_copy_no_dir_sync (Fixture *f, gconstpointer data)
{
  const goffset extents[] = { 0, 8 * MiB };
  g_autofree gchar *src = make_file (f, "src.img", 16 * MiB, extents, 2, 64 * KiB);
  g_autofree gchar *dst = g_build_filename (f->dir, "dst.img", NULL);
  g_autoptr(GError) error = NULL;

  g_assert_true (smolvm_copy_file_sparse_full (src, dst, SMOLVM_COPY_NO_DIR_SYNC, NULL, NULL,
                                               &error));
  g_assert_no_error (error);
  g_assert_cmpint (file_size (dst), ==, 16 * MiB);
  assert_same_content (src, dst);
}

/* Moved into a new .trash- directory at once, synced or not. */
static void
test_move_to_trash_unsynced (Fixture *f, gconstpointer data)
{
  g_autofree gchar *path = g_build_filename (f->dir, "disk.ext4.pre-restore", NULL);
  g_autofree gchar *trash = NULL;
  g_autofree gchar *moved = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_true (g_file_set_contents (path, "old disk", -1, NULL));
  trash = smolvm_move_to_trash_unsynced (f->dir, path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (trash);
  g_assert_true (g_str_has_prefix (trash, f->dir));
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
  moved = g_build_filename (trash, "disk.ext4.pre-restore", NULL);
  g_assert_true (g_file_test (moved, G_FILE_TEST_IS_REGULAR));
}

#define ADD(name, func) g_test_add (name, Fixture, NULL, fixture_setup, func, fixture_teardown)

int
main (int argc, char **argv)
{
  /* As root, a private mount namespace makes the tmpfs mounts of the
   * no-space and cross-fs tests vanish with this process even if an
   * assertion aborts it. Done before any thread exists, as unshare needs. */
  if (geteuid () == 0 && unshare (CLONE_NEWNS) == 0)
    (void) mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);

  g_test_init (&argc, &argv, NULL);

  ADD ("/fileutil/copy/sparse", test_copy_sparse);
  ADD ("/fileutil/copy/sparse-cross-fs", test_copy_sparse_cross_fs);
  ADD ("/fileutil/copy/holes-at-ends", test_copy_holes_at_ends);
  ADD ("/fileutil/copy/empty", test_copy_empty);
  ADD ("/fileutil/copy/dense", test_copy_dense);
  ADD ("/fileutil/copy/dst-exists", test_copy_dst_exists);
  ADD ("/fileutil/copy/missing-src", test_copy_missing_src);
  ADD ("/fileutil/copy/not-regular", test_copy_not_regular);
  ADD ("/fileutil/copy/fifo", test_copy_fifo);
  ADD ("/fileutil/copy/cancelled", test_copy_cancelled);
  ADD ("/fileutil/copy/async", test_copy_async);
  ADD ("/fileutil/copy/async-cancelled", test_copy_async_cancelled);
  ADD ("/fileutil/copy/no-space", test_copy_no_space);
  ADD ("/fileutil/write-atomic/new", test_write_atomic_new);
  ADD ("/fileutil/write-atomic/replace", test_write_atomic_replace);
  ADD ("/fileutil/write-atomic/missing-dir", test_write_atomic_missing_dir);
  ADD ("/fileutil/write-atomic/rename-fails", test_write_atomic_rename_fails);
  ADD ("/fileutil/write-new", test_write_new);
  ADD ("/fileutil/copy/no-dir-sync", test_copy_no_dir_sync);
  ADD ("/fileutil/move-to-trash-unsynced", test_move_to_trash_unsynced);
  ADD ("/fileutil/rm-rf/tree", test_rm_rf_tree);
  ADD ("/fileutil/rm-rf/symlink-arg", test_rm_rf_symlink_arg);
  ADD ("/fileutil/rm-rf/refuses", test_rm_rf_refuses);
  ADD ("/fileutil/rm-rf/async", test_rm_rf_async);
  ADD ("/fileutil/mkdir-p", test_mkdir_p);
  ADD ("/fileutil/fsync-dir", test_fsync_dir);

  return g_test_run ();
}
