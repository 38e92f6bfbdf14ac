/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* Splits a QEMU (7.2 and later) precopy migration stream read from @in_fd
 * into the stream without the pages of RAM block @block, written to
 * @out_fd, and those pages, written at their offsets into @mem_fd (a file
 * of @block_size bytes that holds nothing yet: zero pages stay holes).
 *
 * A snapshot of a VM whose RAM is a private mapping gets the same layout
 * as any other this way: x-ignore-shared leaves only shared RAM out of the
 * stream, and the pages taken out here make mem.bin; what is left is the
 * device state plus the RAM block list, which loads with @block mapped
 * from mem.bin.
 *
 * Fails (SMOLVM_ERROR_BACKEND) on anything it cannot read exactly: a
 * stream that ends before its RAM section does, an iterable section other
 * than "ram", a page encoding other than plain or zero pages (XBZRLE,
 * compression, multifd), @block missing, of another size or not sent
 * completely. Reads until end of file; @cancellable (may be NULL) stops a
 * read that waits (SMOLVM_ERROR_CANCELLED). Blocks: call it in a worker. */
gboolean smolvm_qemu_stream_split (int in_fd, int out_fd, int mem_fd, const gchar *block,
                                   guint64 block_size, GCancellable *cancellable,
                                   GError **error);

/* smolvm_qemu_stream_split() in a GTask worker, from @in_fd (taken over and
 * closed) into @out_path and @mem_path, which it creates (0600, O_EXCL) and
 * removes again on failure. */
void smolvm_qemu_stream_split_async (int in_fd, const gchar *out_path, const gchar *mem_path,
                                     const gchar *block, guint64 block_size,
                                     GCancellable *cancellable, GAsyncReadyCallback callback,
                                     gpointer user_data);
gboolean smolvm_qemu_stream_split_finish (GAsyncResult *result, GError **error);

G_END_DECLS
