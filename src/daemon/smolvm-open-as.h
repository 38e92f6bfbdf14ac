/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* Files a caller names are read with the caller's rights, never with the
 * daemon's: a root daemon would otherwise copy /etc/shadow for anyone
 * allowed to create a VM. */

/* Checks a descriptor that stands for a caller's image: a regular file
 * (not a FIFO, device or directory), open for reading (not O_PATH, not
 * write-only). @what names it in the message. Sets *@data_size to the bytes
 * a sparse copy moves. InvalidArgument otherwise. */
gboolean smolvm_check_image_fd (int fd, const gchar *what, guint64 *data_size, GError **error);

/* Opens each of the @n_paths absolute @paths for reading as user @uid (its
 * uid, primary gid and supplementary groups from the user database) and
 * checks it with smolvm_check_image_fd(); @whats name them in messages. A
 * NULL or empty path gives -1. The daemon's own uid opens as itself; for
 * another uid a root daemon switches the filesystem ids and groups of a
 * short-lived thread of its own (never the process, never a pool thread);
 * a daemon not running as root refuses with NotAuthorized. Opening uses
 * O_NONBLOCK, so that a FIFO swapped in never blocks the thread. A file
 * the user may not read is NotAuthorized; nothing stays open on failure. */
void smolvm_open_as_async (guint32 uid, const gchar *const *paths, const gchar *const *whats,
                           guint n_paths, GAsyncReadyCallback callback, gpointer user_data);
/* On success fills @fds (n_paths of them; the caller closes them) and
 * @data_sizes (may be NULL). */
gboolean smolvm_open_as_finish (GAsyncResult *result, int *fds, guint64 *data_sizes,
                                GError **error);

G_END_DECLS
