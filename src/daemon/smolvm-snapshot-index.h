/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* The index's name in the snapshots directory: a dot-entry, so it is never
 * taken for a snapshot. */
#define SMOLVM_SNAPSHOT_INDEX_NAME ".index"

/* What identifies one version of a record file: a record is replaced by a
 * rename (a new inode) and ctime cannot be set back, so equal stamps mean
 * the same bytes. */
typedef struct {
  guint64 dev, ino, size, mtime_ns, ctime_ns;
} SmolvmRecordStamp;

/* The stamp of the regular file @path (relative to @dir_fd, or AT_FDCWD;
 * not followed if a symlink); FALSE when there is none. */
gboolean smolvm_record_stamp_read (int dir_fd, const gchar *path, SmolvmRecordStamp *stamp);

/* A start-up cache of the snapshot records: for each, its id, the stamp of
 * its snapshot.json and what was read from it (a value the snapshot module
 * defines). The records stay the truth: an entry is used only while its
 * record has the same stamp, and a missing, damaged or foreign index is an
 * empty one. With 10,000 snapshots, parsing the JSON records was most of
 * the start-up. */
typedef struct _SmolvmSnapshotIndex SmolvmSnapshotIndex;

/* Maps the index at @path; never fails (g_debug says why it is empty). */
SmolvmSnapshotIndex *smolvm_snapshot_index_read (const gchar *path);
void smolvm_snapshot_index_free (SmolvmSnapshotIndex *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmolvmSnapshotIndex, smolvm_snapshot_index_free)

guint smolvm_snapshot_index_get_size (SmolvmSnapshotIndex *self);

/* The record of @id if its stamp is @stamp, else NULL. @hint: where the
 * entry is likely to be (its place in the last listing); any place works.
 * Safe to call from several threads at once. */
GVariant *smolvm_snapshot_index_lookup (SmolvmSnapshotIndex *self, guint hint, const gchar *id,
                                        const SmolvmRecordStamp *stamp);

/* Writes an index of the @n records @records, with their ids and stamps,
 * at @path, atomically, and removes what an earlier write cut short left. */
gboolean smolvm_snapshot_index_write (const gchar *path, guint n, const gchar *const *ids,
                                      const SmolvmRecordStamp *stamps, GVariant *const *records,
                                      GError **error);

G_END_DECLS
