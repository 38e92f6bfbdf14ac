/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>
#include <sys/stat.h>

#include "smolvm-progress.h"

G_BEGIN_DECLS

/* Copies a regular file, keeping holes as holes: tries FICLONE (reflink) first,
 * falls back to SEEK_DATA/SEEK_HOLE + copy_file_range (and read/write if
 * copy_file_range fails with EXDEV/ENOSYS/EOPNOTSUPP), then ftruncate to the
 * source size and fsync. @dst must not exist (O_CREAT|O_EXCL, mode 0600).
 * On any failure @dst is removed. Checks @cancellable between chunks
 * (SMOLVM_ERROR_CANCELLED). Adds exactly smolvm_file_data_size(@src) bytes
 * to @progress (may be NULL) by the end, as the data goes. */
gboolean smolvm_copy_file_sparse (const gchar *src, const gchar *dst, SmolvmProgress *progress,
                                  GCancellable *cancellable, GError **error);

/* SMOLVM_COPY_NO_DIR_SYNC: the copy's data is synced, but not its directory
 * entry: for a caller that syncs the directory itself before anything that
 * depends on the file becomes durable (a snapshot's hidden directory before
 * it is published; a restore's VM directory with the vm.json that says the
 * restore completed). */
typedef enum {
  SMOLVM_COPY_NO_DIR_SYNC = 1 << 0,
} SmolvmCopyFlags;

gboolean smolvm_copy_file_sparse_full (const gchar *src, const gchar *dst, SmolvmCopyFlags flags,
                                       SmolvmProgress *progress, GCancellable *cancellable,
                                       GError **error);

/* The same in a GTask worker thread, so the main loop never blocks. */
void smolvm_copy_file_sparse_full_async (const gchar *src, const gchar *dst,
                                         SmolvmCopyFlags flags, SmolvmProgress *progress,
                                         GCancellable *cancellable, GAsyncReadyCallback callback,
                                         gpointer user_data);
void smolvm_copy_file_sparse_async (const gchar *src, const gchar *dst, SmolvmProgress *progress,
                                    GCancellable *cancellable, GAsyncReadyCallback callback,
                                    gpointer user_data);
gboolean smolvm_copy_file_sparse_finish (GAsyncResult *result, GError **error);

/* The same from a source already open (a caller's descriptor, or a file
 * opened with a caller's rights); @src_name names it in messages. The
 * async form takes @src_fd over and closes it; finish with
 * smolvm_copy_file_sparse_finish(). Reads with explicit offsets where it
 * can, but SEEK_DATA moves the offset of a shared file description. */
gboolean smolvm_copy_fd_sparse (int src_fd, const gchar *src_name, const gchar *dst,
                                SmolvmProgress *progress, GCancellable *cancellable,
                                GError **error);
void smolvm_copy_fd_sparse_async (int src_fd, const gchar *src_name, const gchar *dst,
                                  SmolvmProgress *progress, GCancellable *cancellable,
                                  GAsyncReadyCallback callback, gpointer user_data);

/* Writes @contents to @path atomically: a temp file in the same directory,
 * write, fsync, rename over @path, fsync the directory. Mode 0644.
 * On failure the temp file is removed and @path is untouched. */
gboolean smolvm_write_file_atomic (const gchar *path, const gchar *contents, gssize length,
                                   GError **error);
/* The same up to the rename: @path holds either the old or the new contents
 * after a crash, but which one is only sure once the caller has synced the
 * directory. */
gboolean smolvm_write_file_replace (const gchar *path, const gchar *contents, gssize length,
                                    GError **error);

/* Creates @path (which must not exist) with @contents, mode 0644, and syncs
 * it, but not its directory entry: for a file in a directory that nobody
 * reads until it is complete and synced (a snapshot's hidden .tmp-
 * directory), where a temp file and a rename would only add syncs. On
 * failure @path is removed. */
gboolean smolvm_write_file_new (const gchar *path, const gchar *contents, gssize length,
                                GError **error);

/* fsync() a directory, so a rename or unlink in it is durable. */
gboolean smolvm_fsync_dir (const gchar *path, GError **error);

/* Removes a file or a directory tree; a missing @path is success. Never
 * follows symlinks (uses unlinkat/openat with O_NOFOLLOW/AT_SYMLINK_NOFOLLOW). */
gboolean smolvm_rm_rf (const gchar *path, GError **error);

/* Takes @path out of the way at once and durably: one rename into a new
 * .trash-XXXXXX directory (a mkdtemp template) below @trash_parent, which
 * must be on the same filesystem. Returns that directory, for the caller to
 * remove off the main loop. A missing @path is moved trivially. */
gchar *smolvm_move_to_trash (const gchar *trash_parent, const gchar *path, GError **error);
/* The same without syncing @path's old directory: for a caller that syncs it
 * later off the main loop, and for which @path coming back after a crash is
 * harmless (start-up removes it). */
gchar *smolvm_move_to_trash_unsynced (const gchar *trash_parent, const gchar *path,
                                      GError **error);

/* rm_rf in a GTask worker thread. */
void smolvm_rm_rf_async (const gchar *path, GAsyncReadyCallback callback, gpointer user_data);
gboolean smolvm_rm_rf_finish (GAsyncResult *result, GError **error);

/* mkdir -p with @mode, SMOLVM_ERROR on failure. */
gboolean smolvm_mkdir_p (const gchar *path, int mode, GError **error);

/* The bytes of data a sparse copy of a file moves: its allocated size,
 * capped at its length. */
guint64 smolvm_stat_data_size (const struct stat *st);
gboolean smolvm_file_data_size (const gchar *path, guint64 *size, GError **error);

/* NoSpace unless the filesystem of @dir has @needed bytes free (for an
 * unprivileged user: root's reserve does not count). @what names them. */
gboolean smolvm_check_free_space (const gchar *dir, guint64 needed, const gchar *what,
                                  GError **error);

/* The SHA-256 of a file as lowercase hex; adds the bytes read to @progress.
 * Never follows a final symlink. Cancelled is SMOLVM_ERROR_CANCELLED. */
gchar *smolvm_file_sha256 (const gchar *path, SmolvmProgress *progress, GCancellable *cancellable,
                           GError **error);
/* The same in a GTask worker thread. */
void smolvm_file_sha256_async (const gchar *path, SmolvmProgress *progress,
                               GCancellable *cancellable, GAsyncReadyCallback callback,
                               gpointer user_data);
gchar *smolvm_file_sha256_finish (GAsyncResult *result, GError **error);

G_END_DECLS
