/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* copy_file_range, SEEK_DATA/SEEK_HOLE */
#endif
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h> /* rename */
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/fs.h> /* FICLONE */
#endif

#include "smolvm-error-map.h"
#include "smolvm-fileutil.h"
#include "smolvm-progress.h"

/* Cancellation is checked between chunks of this size, so a cancel takes
 * effect within one chunk's worth of I/O. */
#define COPY_CHUNK_SIZE ((gsize) 8 * 1024 * 1024)
#define RW_BUF_SIZE ((gsize) 1024 * 1024)

/* glib 2.74 has no g_autofd: close on scope exit, keeping errno intact so
 * it can still be reported after the early return. */
static void
smolvm_close_fdp (int *fdp)
{
  int errsv = errno;

  if (*fdp >= 0)
    close (*fdp);
  *fdp = -1;
  errno = errsv;
}
#define smolvm_autofd __attribute__ ((cleanup (smolvm_close_fdp)))

/* Closes *@fdp and returns 0 or the errno of close(); for files we wrote,
 * where close() can be the first to report a write error (e.g. NFS). */
static int
smolvm_close_checked (int *fdp)
{
  int fd = *fdp;

  *fdp = -1;
  /* On Linux the fd is released even when close() fails with EINTR. */
  if (close (fd) < 0 && errno != EINTR)
    return errno;
  return 0;
}

static gboolean
write_all (int fd, const guint8 *buf, gsize len, off_t off, gboolean positional, int *errsv)
{
  while (len > 0) {
    ssize_t n = positional ? pwrite (fd, buf, len, off) : write (fd, buf, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      *errsv = errno;
      return FALSE;
    }
    buf += n;
    off += n;
    len -= (gsize) n;
  }
  return TRUE;
}

/* ---- sparse copy ---- */

typedef struct {
  const gchar *src;
  const gchar *dst;
  int src_fd;
  int dst_fd;
  GCancellable *cancellable;
  SmolvmProgress *progress;
  guint64 reported; /* bytes told to @progress, at most @expected */
  guint64 expected; /* smolvm_file_data_size() of the source */
  gboolean use_read_write; /* copy_file_range can't do these two files */
  guint8 *buf;             /* read/write fallback buffer, allocated lazily */
} CopyState;

static gboolean
copy_set_errno (CopyState *cs, GError **error, int errsv, const gchar *what)
{
  if (what == NULL)
    return smolvm_error_set_errno (error, errsv, "Cannot copy %s to %s", cs->src, cs->dst);
  return smolvm_error_set_errno (error, errsv, "Cannot copy %s to %s: %s", cs->src, cs->dst, what);
}

static gboolean
copy_check_cancelled (CopyState *cs, GError **error)
{
  if (!g_cancellable_is_cancelled (cs->cancellable))
    return TRUE;
  g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED,
               "Cannot copy %s to %s: Operation was cancelled", cs->src, cs->dst);
  return FALSE;
}

static void
copy_report (CopyState *cs, guint64 bytes)
{
  bytes = MIN (bytes, cs->expected - cs->reported);
  cs->reported += bytes;
  smolvm_progress_add (cs->progress, bytes);
}

static gboolean
copy_range_read_write (CopyState *cs, off_t off, gsize len, GError **error)
{
  if (cs->buf == NULL)
    cs->buf = g_malloc (RW_BUF_SIZE);

  while (len > 0) {
    ssize_t n = pread (cs->src_fd, cs->buf, MIN (len, RW_BUF_SIZE), off);
    int errsv = 0;

    if (n < 0) {
      if (errno == EINTR)
        continue;
      return copy_set_errno (cs, error, errno, "cannot read the source");
    }
    if (n == 0) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED,
                   "Cannot copy %s to %s: the source was truncated during the copy", cs->src,
                   cs->dst);
      return FALSE;
    }
    if (!write_all (cs->dst_fd, cs->buf, (gsize) n, off, TRUE, &errsv))
      return copy_set_errno (cs, error, errsv, NULL);
    off += n;
    len -= (gsize) n;
  }
  return TRUE;
}

/* Copies [off, off+len), which the caller found to be data in the source. */
static gboolean
copy_range (CopyState *cs, off_t off, gsize len, GError **error)
{
  while (len > 0 && !cs->use_read_write) {
    loff_t in_off = off;
    loff_t out_off = off;
    ssize_t n = copy_file_range (cs->src_fd, &in_off, cs->dst_fd, &out_off, len, 0);

    if (n < 0) {
      int errsv = errno;
      if (errsv == EINTR)
        continue;
      /* EINVAL too: some filesystems (older NFS, FUSE) use it to say
       * "unsupported", and read/write still reports any real error. */
      if (errsv == EXDEV || errsv == ENOSYS || errsv == EOPNOTSUPP || errsv == EINVAL) {
        g_debug ("copy_file_range %s -> %s: %s; using read/write", cs->src, cs->dst,
                 g_strerror (errsv));
        cs->use_read_write = TRUE;
        break;
      }
      return copy_set_errno (cs, error, errsv, NULL);
    }
    if (n == 0)
      /* Early EOF, or a filesystem that silently copies nothing; read/write
       * tells the two apart. */
      break;
    off += n;
    len -= (gsize) n;
  }
  if (len == 0)
    return TRUE;
  return copy_range_read_write (cs, off, len, error);
}

/* Walks the data extents of the source and copies only them; the holes
 * between them stay unallocated in the destination. */
static gboolean
copy_data_extents (CopyState *cs, off_t size, GError **error)
{
  off_t off = 0;

  while (off < size) {
    off_t data = lseek (cs->src_fd, off, SEEK_DATA);
    off_t hole;

    if (data < 0) {
      int errsv = errno;
      if (errsv == ENXIO)
        break; /* only a hole is left: the final ftruncate creates it */
      if (errsv != EINVAL && errsv != EOPNOTSUPP)
        return copy_set_errno (cs, error, errsv, "cannot read the source");
      /* No SEEK_DATA support: treat the rest as data. */
      data = off;
      hole = size;
    } else {
      hole = lseek (cs->src_fd, data, SEEK_HOLE);
      if (hole < 0 || hole <= data)
        hole = size;
    }
    if (data >= size)
      break;
    hole = MIN (hole, size);

    off = data;
    while (off < hole) {
      gsize chunk = MIN ((gsize) (hole - off), COPY_CHUNK_SIZE);
      if (!copy_check_cancelled (cs, error))
        return FALSE;
      if (!copy_range (cs, off, chunk, error))
        return FALSE;
      copy_report (cs, chunk);
      off += (off_t) chunk;
    }
  }
  return TRUE;
}

static gboolean
copy_contents (CopyState *cs, off_t size, GError **error)
{
  gboolean cloned = FALSE;

  /* Checked after @dst exists, so a cancelled copy always goes through the
   * same clean-up path. */
  if (!copy_check_cancelled (cs, error))
    return FALSE;

#ifdef FICLONE
  /* Any failure (EOPNOTSUPP on ext4/tmpfs, EXDEV across filesystems, EINVAL
   * for unaligned sizes on some filesystems) just means copying the bytes. */
  if (ioctl (cs->dst_fd, FICLONE, cs->src_fd) == 0) {
    g_debug ("Reflinked %s to %s", cs->src, cs->dst);
    cloned = TRUE;
  }
#endif

  if (!cloned && !copy_data_extents (cs, size, error))
    return FALSE;
  /* a reflink, or extents that came out smaller than the blocks counted */
  copy_report (cs, cs->expected);

  /* Extends the destination over a trailing hole, which no extent covers;
   * a clone has the source's size already (and a truncate would only give
   * the fsync below one more change to log). */
  if (!cloned && ftruncate (cs->dst_fd, size) < 0)
    return copy_set_errno (cs, error, errno, "cannot set the size of the destination");
  /* Delayed allocation can make fsync the first to report ENOSPC. */
  if (fsync (cs->dst_fd) < 0)
    return copy_set_errno (cs, error, errno, NULL);
  return TRUE;
}

guint64
smolvm_stat_data_size (const struct stat *st)
{
  return MIN ((guint64) st->st_blocks * 512, (guint64) st->st_size);
}

gboolean
smolvm_file_data_size (const gchar *path, guint64 *size, GError **error)
{
  struct stat st;

  if (stat (path, &st) < 0)
    return smolvm_error_set_errno (error, errno, "Cannot read %s", path);
  *size = smolvm_stat_data_size (&st);
  return TRUE;
}

/* The copy from an open source; @src names it in messages. */
static gboolean
copy_from_fd (int src_fd, const gchar *src, const gchar *dst, SmolvmCopyFlags flags,
              SmolvmProgress *progress, GCancellable *cancellable, GError **error)
{
  smolvm_autofd int dst_fd = -1;
  CopyState cs = { .src = src, .dst = dst, .cancellable = cancellable, .progress = progress };
  struct stat st;
  gboolean ok;
  int errsv;

  if (fstat (src_fd, &st) < 0)
    return copy_set_errno (&cs, error, errno, "cannot read the source");
  if (!S_ISREG (st.st_mode)) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                 "Cannot copy %s to %s: the source is not a regular file", src, dst);
    return FALSE;
  }

  /* O_EXCL: never clobber, and never remove, a file we did not create. */
  dst_fd = open (dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
  if (dst_fd < 0)
    return copy_set_errno (&cs, error, errno, "cannot create the destination");

  cs.src_fd = src_fd;
  cs.dst_fd = dst_fd;
  cs.expected = smolvm_stat_data_size (&st);
  ok = copy_contents (&cs, st.st_size, error);
  g_free (cs.buf);

  errsv = smolvm_close_checked (&dst_fd);
  if (ok && errsv != 0)
    ok = copy_set_errno (&cs, error, errsv, NULL);

  if (ok && !(flags & SMOLVM_COPY_NO_DIR_SYNC)) {
    /* Makes the new directory entry durable too, so that metadata written
     * after the copy never points to a file a crash has lost. */
    g_autofree gchar *dir = g_path_get_dirname (dst);
    ok = smolvm_fsync_dir (dir, error);
    if (!ok)
      g_prefix_error (error, "Cannot copy %s to %s: ", src, dst);
  }

  if (!ok)
    (void) unlink (dst);
  return ok;
}

gboolean
smolvm_copy_file_sparse_full (const gchar *src, const gchar *dst, SmolvmCopyFlags flags,
                              SmolvmProgress *progress, GCancellable *cancellable,
                              GError **error)
{
  smolvm_autofd int src_fd = -1;

  g_return_val_if_fail (src != NULL, FALSE);
  g_return_val_if_fail (dst != NULL, FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  /* O_NONBLOCK: a FIFO put in the source's place opens at once, and is then
   * refused as not a regular file, instead of blocking for a writer */
  src_fd = open (src, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (src_fd < 0)
    return smolvm_error_set_errno (error, errno, "Cannot copy %s to %s: cannot open the source",
                                   src, dst);
  return copy_from_fd (src_fd, src, dst, flags, progress, cancellable, error);
}

gboolean
smolvm_copy_file_sparse (const gchar *src, const gchar *dst, SmolvmProgress *progress,
                         GCancellable *cancellable, GError **error)
{
  return smolvm_copy_file_sparse_full (src, dst, 0, progress, cancellable, error);
}

gboolean
smolvm_copy_fd_sparse (int src_fd, const gchar *src_name, const gchar *dst,
                       SmolvmProgress *progress, GCancellable *cancellable, GError **error)
{
  g_return_val_if_fail (src_fd >= 0, FALSE);
  g_return_val_if_fail (dst != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return copy_from_fd (src_fd, src_name, dst, 0, progress, cancellable, error);
}

typedef struct {
  gchar *src;
  int src_fd; /* -1: open @src */
  gchar *dst;
  SmolvmCopyFlags flags;
  SmolvmProgress *progress;
} CopyTaskData;

static void
copy_task_data_free (gpointer data)
{
  CopyTaskData *d = data;

  g_free (d->src);
  if (d->src_fd >= 0)
    close (d->src_fd);
  g_free (d->dst);
  g_clear_object (&d->progress);
  g_free (d);
}

static void
copy_file_sparse_thread (GTask *task, gpointer source_object, gpointer task_data,
                         GCancellable *cancellable)
{
  CopyTaskData *d = task_data;
  g_autoptr(GError) error = NULL;
  gboolean ok = d->src_fd >= 0
                  ? smolvm_copy_fd_sparse (d->src_fd, d->src, d->dst, d->progress, cancellable,
                                           &error)
                  : smolvm_copy_file_sparse_full (d->src, d->dst, d->flags, d->progress,
                                                  cancellable, &error);

  if (ok)
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, g_steal_pointer (&error));
}

static void
copy_sparse_async (const gchar *src, int src_fd, const gchar *dst, SmolvmCopyFlags flags,
                   SmolvmProgress *progress, GCancellable *cancellable,
                   GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = NULL;
  CopyTaskData *d;

  task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, smolvm_copy_file_sparse_async);
  g_task_set_name (task, "smolvm_copy_file_sparse_async");
  /* The worker reports SMOLVM_ERROR_CANCELLED once @dst is removed; GTask's
   * own check would replace that with a G_IO_ERROR, or report a
   * cancellation for a copy that actually completed. */
  g_task_set_check_cancellable (task, FALSE);
  d = g_new0 (CopyTaskData, 1);
  d->src = g_strdup (src);
  d->src_fd = src_fd;
  d->dst = g_strdup (dst);
  d->flags = flags;
  d->progress = progress != NULL ? g_object_ref (progress) : NULL;
  g_task_set_task_data (task, d, copy_task_data_free);
  g_task_run_in_thread (task, copy_file_sparse_thread);
}

void
smolvm_copy_file_sparse_async (const gchar *src, const gchar *dst, SmolvmProgress *progress,
                               GCancellable *cancellable, GAsyncReadyCallback callback,
                               gpointer user_data)
{
  smolvm_copy_file_sparse_full_async (src, dst, 0, progress, cancellable, callback, user_data);
}

void
smolvm_copy_file_sparse_full_async (const gchar *src, const gchar *dst, SmolvmCopyFlags flags,
                                    SmolvmProgress *progress, GCancellable *cancellable,
                                    GAsyncReadyCallback callback, gpointer user_data)
{
  g_return_if_fail (src != NULL);
  g_return_if_fail (dst != NULL);
  copy_sparse_async (src, -1, dst, flags, progress, cancellable, callback, user_data);
}

void
smolvm_copy_fd_sparse_async (int src_fd, const gchar *src_name, const gchar *dst,
                             SmolvmProgress *progress, GCancellable *cancellable,
                             GAsyncReadyCallback callback, gpointer user_data)
{
  g_return_if_fail (src_fd >= 0);
  g_return_if_fail (dst != NULL);
  copy_sparse_async (src_name, src_fd, dst, 0, progress, cancellable, callback, user_data);
}

gboolean
smolvm_copy_file_sparse_finish (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, smolvm_copy_file_sparse_async), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/* ---- atomic write ---- */

gboolean
smolvm_fsync_dir (const gchar *path, GError **error)
{
  smolvm_autofd int fd = -1;

  g_return_val_if_fail (path != NULL, FALSE);

  fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return smolvm_error_set_errno (error, errno, "Cannot open directory %s", path);
  /* EINVAL: the filesystem can't sync directories; nothing more to do. */
  if (fsync (fd) < 0 && errno != EINVAL)
    return smolvm_error_set_errno (error, errno, "Cannot sync directory %s", path);
  return TRUE;
}

static gboolean
write_and_sync (int *fdp, const gchar *path, const gchar *contents, gsize length, GError **error)
{
  int errsv = 0;

  if (!write_all (*fdp, (const guint8 *) contents, length, 0, FALSE, &errsv))
    return smolvm_error_set_errno (error, errsv, "Cannot write %s", path);
  /* Exact mode regardless of umask. */
  if (fchmod (*fdp, 0644) < 0)
    return smolvm_error_set_errno (error, errno, "Cannot write %s: cannot set its mode", path);
  if (fsync (*fdp) < 0)
    return smolvm_error_set_errno (error, errno, "Cannot write %s", path);
  errsv = smolvm_close_checked (fdp);
  if (errsv != 0)
    return smolvm_error_set_errno (error, errsv, "Cannot write %s", path);
  return TRUE;
}

gboolean
smolvm_write_file_atomic (const gchar *path, const gchar *contents, gssize length, GError **error)
{
  g_autofree gchar *dir = NULL;

  if (!smolvm_write_file_replace (path, contents, length, error))
    return FALSE;
  /* @path is already replaced here; a failure only means the rename may not
   * survive a crash, which the caller still needs to hear about. */
  dir = g_path_get_dirname (path);
  if (!smolvm_fsync_dir (dir, error)) {
    g_prefix_error (error, "Cannot write %s: ", path);
    return FALSE;
  }
  return TRUE;
}

gboolean
smolvm_write_file_replace (const gchar *path, const gchar *contents, gssize length,
                           GError **error)
{
  smolvm_autofd int fd = -1;
  g_autofree gchar *dir = NULL;
  g_autofree gchar *base = NULL;
  g_autofree gchar *tmp = NULL;

  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (contents != NULL || length == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (length < 0)
    length = (gssize) strlen (contents);

  dir = g_path_get_dirname (path);
  base = g_path_get_basename (path);
  /* Hidden, and named after its target so that a leftover from a crash is
   * recognisable; the name is capped to stay below NAME_MAX. */
  tmp = g_strdup_printf ("%s/.%.200s.XXXXXX", dir, base);
  fd = g_mkstemp_full (tmp, O_WRONLY | O_CLOEXEC | O_NOCTTY, 0644);
  if (fd < 0)
    return smolvm_error_set_errno (error, errno, "Cannot write %s: cannot create a file in %s",
                                   path, dir);

  if (!write_and_sync (&fd, path, contents, (gsize) length, error)) {
    (void) unlink (tmp);
    return FALSE;
  }

  if (rename (tmp, path) < 0) {
    int errsv = errno;
    (void) unlink (tmp);
    return smolvm_error_set_errno (error, errsv, "Cannot write %s", path);
  }
  return TRUE;
}

gboolean
smolvm_write_file_new (const gchar *path, const gchar *contents, gssize length, GError **error)
{
  smolvm_autofd int fd = -1;

  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (contents != NULL || length == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (length < 0)
    length = (gssize) strlen (contents);
  /* O_EXCL: never write into a file someone else put there */
  fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0644);
  if (fd < 0)
    return smolvm_error_set_errno (error, errno, "Cannot write %s", path);
  if (!write_and_sync (&fd, path, contents, (gsize) length, error)) {
    (void) unlink (path);
    return FALSE;
  }
  return TRUE;
}

/* ---- rm -rf ---- */

static gboolean rm_rf_at (int dfd, const gchar *name, const gchar *path, GError **error);

/* Removes everything in @dir; the caller closes it. */
static gboolean
rm_rf_children (DIR *dir, const gchar *path, GError **error)
{
  for (;;) {
    struct dirent *de;
    g_autofree gchar *child_path = NULL;

    errno = 0;
    de = readdir (dir);
    if (de == NULL) {
      if (errno != 0)
        return smolvm_error_set_errno (error, errno, "Cannot remove %s: cannot list it", path);
      return TRUE;
    }
    if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
      continue;
    child_path = g_build_filename (path, de->d_name, NULL);
    if (!rm_rf_at (dirfd (dir), de->d_name, child_path, error))
      return FALSE;
  }
}

/* Removes @name in @dfd; @path is only for messages. Never follows a
 * symlink: lstat semantics to choose, O_NOFOLLOW to descend, so a symlink
 * swapped in for a directory makes openat() fail rather than escape. */
static gboolean
rm_rf_at (int dfd, const gchar *name, const gchar *path, GError **error)
{
  struct stat st;
  smolvm_autofd int fd = -1;
  DIR *dir;
  gboolean ok;

  if (fstatat (dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno == ENOENT)
      return TRUE;
    return smolvm_error_set_errno (error, errno, "Cannot remove %s", path);
  }

  if (!S_ISDIR (st.st_mode)) {
    if (unlinkat (dfd, name, 0) < 0 && errno != ENOENT)
      return smolvm_error_set_errno (error, errno, "Cannot remove %s", path);
    return TRUE;
  }

  fd = openat (dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    if (errno == ENOENT)
      return TRUE;
    return smolvm_error_set_errno (error, errno, "Cannot remove %s", path);
  }
  dir = fdopendir (fd);
  if (dir == NULL)
    return smolvm_error_set_errno (error, errno, "Cannot remove %s", path);
  fd = -1; /* owned by @dir now */
  ok = rm_rf_children (dir, path, error);
  closedir (dir);
  if (!ok)
    return FALSE;

  if (unlinkat (dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
    return smolvm_error_set_errno (error, errno, "Cannot remove %s", path);
  return TRUE;
}

gboolean
smolvm_rm_rf (const gchar *path, GError **error)
{
  g_autofree gchar *trimmed = NULL;
  g_autofree gchar *base = NULL;
  gsize len;

  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  /* A trailing slash makes the kernel resolve a final symlink, which would
   * defeat AT_SYMLINK_NOFOLLOW/O_NOFOLLOW: strip it. */
  trimmed = g_strdup (path);
  len = strlen (trimmed);
  while (len > 1 && trimmed[len - 1] == '/')
    trimmed[--len] = '\0';

  base = g_path_get_basename (trimmed);
  if (*trimmed == '\0' || strcmp (trimmed, "/") == 0 || strcmp (base, ".") == 0 ||
      strcmp (base, "..") == 0) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                 "Refusing to remove '%s'", path);
    return FALSE;
  }

  return rm_rf_at (AT_FDCWD, trimmed, trimmed, error);
}

gchar *
smolvm_move_to_trash (const gchar *trash_parent, const gchar *path, GError **error)
{
  g_autofree gchar *trash = smolvm_move_to_trash_unsynced (trash_parent, path, error);
  g_autofree gchar *parent = g_path_get_dirname (path);

  if (trash != NULL)
    smolvm_fsync_dir (parent, NULL);
  return g_steal_pointer (&trash);
}

gchar *
smolvm_move_to_trash_unsynced (const gchar *trash_parent, const gchar *path, GError **error)
{
  g_autofree gchar *trash = g_build_filename (trash_parent, ".trash-XXXXXX", NULL);
  g_autofree gchar *base = g_path_get_basename (path);
  g_autofree gchar *target = NULL;

  if (g_mkdtemp (trash) == NULL) {
    smolvm_error_set_errno (error, errno, "Cannot make %s", trash);
    return NULL;
  }
  target = g_build_filename (trash, base, NULL);
  if (rename (path, target) != 0 && errno != ENOENT) {
    smolvm_error_set_errno (error, errno, "Cannot move %s aside", path);
    rmdir (trash);
    return NULL;
  }
  return g_steal_pointer (&trash);
}

static void
rm_rf_thread (GTask *task, gpointer source_object, gpointer task_data, GCancellable *cancellable)
{
  g_autoptr(GError) error = NULL;

  if (smolvm_rm_rf (task_data, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, g_steal_pointer (&error));
}

void
smolvm_rm_rf_async (const gchar *path, GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (path != NULL);

  task = g_task_new (NULL, NULL, callback, user_data);
  g_task_set_source_tag (task, smolvm_rm_rf_async);
  g_task_set_name (task, "smolvm_rm_rf_async");
  g_task_set_task_data (task, g_strdup (path), g_free);
  g_task_run_in_thread (task, rm_rf_thread);
}

gboolean
smolvm_rm_rf_finish (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, smolvm_rm_rf_async), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/* ---- mkdir -p ---- */

gboolean
smolvm_mkdir_p (const gchar *path, int mode, GError **error)
{
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  /* Tolerates concurrent creators (EEXIST) and fails with ENOTDIR when a
   * component exists as something other than a directory. */
  if (g_mkdir_with_parents (path, mode) < 0)
    return smolvm_error_set_errno (error, errno, "Cannot create directory %s", path);
  return TRUE;
}

gboolean
smolvm_check_free_space (const gchar *dir, guint64 needed, const gchar *what, GError **error)
{
  struct statvfs sv;
  guint64 free_bytes;

  if (statvfs (dir, &sv) < 0)
    return smolvm_error_set_errno (error, errno, "Cannot read the free space of %s", dir);
  free_bytes = (guint64) sv.f_bavail * sv.f_frsize;
  if (free_bytes >= needed)
    return TRUE;
  g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NO_SPACE,
               "%s needs %" G_GUINT64_FORMAT " bytes, but only %" G_GUINT64_FORMAT
               " are free on the filesystem of %s",
               what, needed, free_bytes, dir);
  return FALSE;
}

typedef struct {
  gchar *path;
  SmolvmProgress *progress;
} Sha256Data;

static void
sha256_data_free (Sha256Data *data)
{
  g_free (data->path);
  g_clear_object (&data->progress);
  g_free (data);
}

gchar *
smolvm_file_sha256 (const gchar *path, SmolvmProgress *progress, GCancellable *cancellable,
                    GError **error)
{
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree guchar *buffer = g_malloc (RW_BUF_SIZE);
  smolvm_autofd int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
  ssize_t n;

  if (fd < 0) {
    smolvm_error_set_errno (error, errno, "Cannot read %s", path);
    return NULL;
  }
  for (;;) {
    if (g_cancellable_is_cancelled (cancellable)) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED,
                   "Cannot read %s: Operation was cancelled", path);
      return NULL;
    }
    n = read (fd, buffer, RW_BUF_SIZE);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      smolvm_error_set_errno (error, errno, "Cannot read %s", path);
      return NULL;
    }
    if (n == 0)
      break;
    g_checksum_update (checksum, buffer, (gsize) n);
    smolvm_progress_add (progress, (guint64) n);
  }
  return g_strdup (g_checksum_get_string (checksum));
}

static void
sha256_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  Sha256Data *data = task_data;
  g_autoptr(GError) error = NULL;
  g_autofree gchar *sha256 =
    smolvm_file_sha256 (data->path, data->progress, cancellable, &error);

  if (sha256 == NULL)
    g_task_return_error (task, g_steal_pointer (&error));
  else
    g_task_return_pointer (task, g_steal_pointer (&sha256), g_free);
}

void
smolvm_file_sha256_async (const gchar *path, SmolvmProgress *progress, GCancellable *cancellable,
                          GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = g_task_new (NULL, cancellable, callback, user_data);
  Sha256Data *data = g_new0 (Sha256Data, 1);

  data->path = g_strdup (path);
  data->progress = progress != NULL ? g_object_ref (progress) : NULL;
  /* the worker's own Cancelled error, in our domain */
  g_task_set_check_cancellable (task, FALSE);
  g_task_set_task_data (task, data, (GDestroyNotify) sha256_data_free);
  g_task_run_in_thread (task, sha256_thread);
}

gchar *
smolvm_file_sha256_finish (GAsyncResult *result, GError **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}
