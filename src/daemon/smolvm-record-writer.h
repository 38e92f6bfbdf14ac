/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define SMOLVM_TYPE_RECORD_WRITER (smolvm_record_writer_get_type ())
G_DECLARE_FINAL_TYPE (SmolvmRecordWriter, smolvm_record_writer, SMOLVM, RECORD_WRITER, GObject)

/* Writes record files (vm.json, snapshot.json) atomically and durably
 * (smolvm_write_file_atomic) in one worker thread, in the order they were
 * asked for, so that the main loop never waits for an fsync and a later
 * state of a record never loses to an earlier one. A reply that reports a
 * change flushes first: what it reports is then on disk. */
SmolvmRecordWriter *smolvm_record_writer_new (void);

/* Queues a write of @contents to @path; a failure is logged (the live
 * state is right, and the next change writes again). A queued write of the
 * same @path that has not started yet is replaced: only the last state of a
 * record matters. */
void smolvm_record_writer_write (SmolvmRecordWriter *self, const gchar *path,
                                 const gchar *contents);

/* The same, for a caller that must know that the write succeeded. */
void smolvm_record_writer_write_async (SmolvmRecordWriter *self, const gchar *path,
                                       const gchar *contents, GAsyncReadyCallback callback,
                                       gpointer user_data);
gboolean smolvm_record_writer_write_finish (SmolvmRecordWriter *self, GAsyncResult *result,
                                            GError **error);

/* The same, completing once @path is replaced by @contents (a restarted
 * daemon reads them), before the rename is synced: for a record that only
 * a daemon killed while its VMM runs on needs (a machine that crashes
 * takes the VMM along). The writer syncs the directory next, before any
 * other item or flush completes; a failure of that sync is logged. */
void smolvm_record_writer_write_visible_async (SmolvmRecordWriter *self, const gchar *path,
                                               const gchar *contents,
                                               GAsyncReadyCallback callback,
                                               gpointer user_data);

/* Completes once every write queued before it is done. Never fails: a
 * failed write is logged, or reported to its own caller. Before a record's
 * directory is removed: no write of it lands there meanwhile (only writes
 * that came without a reply, from a VMM that exited, can be queued then:
 * a reply flushes). */
void smolvm_record_writer_flush_async (SmolvmRecordWriter *self, GAsyncReadyCallback callback,
                                       gpointer user_data);
void smolvm_record_writer_flush_finish (SmolvmRecordWriter *self, GAsyncResult *result);

/* Whether writes are queued or under way. */
gboolean smolvm_record_writer_is_busy (SmolvmRecordWriter *self);

G_END_DECLS
