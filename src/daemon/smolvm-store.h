/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define SMOLVM_TYPE_STORE (smolvm_store_get_type ())
G_DECLARE_FINAL_TYPE (SmolvmStore, smolvm_store, SMOLVM, STORE, GObject)

/* The on-disk layout, and the only place that builds a path in it:
 *
 *   STATE/vms/ID/{vm.json,disk.ext4[,disk.ext4.pre-restore]}
 *   STATE/snapshots/ID/{vmstate.bin,mem.bin,disk.ext4,snapshot.json}
 *   STATE/{vms,snapshots}/.tmp-ID     a snapshot (or VM) being built
 *   STATE/{vms,snapshots}/.trash-XXXXXX  something being removed
 *   STATE/oci-cache/{push-XXXXXX,pull-HEX}  OCI layouts of pushes and pulls
 *   RUNTIME/vms/ID/                   a VM's runtime files (console, sockets)
 *
 * Dot-entries are never records; start-up removes what a crash left. */
SmolvmStore *smolvm_store_new (const gchar *state_dir, const gchar *runtime_dir);

/* The files of a record. */
#define SMOLVM_VM_METADATA "vm.json"
#define SMOLVM_VM_DISK "disk.ext4"
/* the VM's own copies of the boot images (in a snapshot too, as hard links
 * of the VM's); a VM created before they existed boots from kernel_path */
#define SMOLVM_VM_KERNEL "kernel"
#define SMOLVM_VM_INITRD "initrd"
#define SMOLVM_SNAPSHOT_METADATA "snapshot.json"
#define SMOLVM_SNAPSHOT_VMSTATE "vmstate.bin"
#define SMOLVM_SNAPSHOT_MEM "mem.bin"
#define SMOLVM_SNAPSHOT_DISK "disk.ext4"
#define SMOLVM_VM_CONSOLE_LOG "console.log"


/* Creates the top directories. */
gboolean smolvm_store_prepare (SmolvmStore *self, GError **error);

const gchar *smolvm_store_get_vms_dir (SmolvmStore *self);
const gchar *smolvm_store_get_snapshots_dir (SmolvmStore *self);

gchar *smolvm_store_vm_dir (SmolvmStore *self, const gchar *vm_id);
gchar *smolvm_store_vm_runtime_dir (SmolvmStore *self, const gchar *vm_id);
gchar *smolvm_store_snapshot_dir (SmolvmStore *self, const gchar *snapshot_id);
gchar *smolvm_store_snapshot_tmp_dir (SmolvmStore *self, const gchar *snapshot_id);
/* STATE/oci-cache/@name: OCI image layouts of transfers. A push builds its
 * artifact in push-XXXXXX (removed after); a pull fetches blobs into
 * pull-<manifest hex> and keeps them until it succeeds, so that a pull
 * started again fetches only what it lacks. */
gchar *smolvm_store_oci_cache_dir (SmolvmStore *self, const gchar *name);
/* A file @name (one of the names above) of a record, of a snapshot being
 * built, or in a VM's runtime directory. */
gchar *smolvm_store_vm_file (SmolvmStore *self, const gchar *vm_id, const gchar *name);
gchar *smolvm_store_vm_runtime_file (SmolvmStore *self, const gchar *vm_id, const gchar *name);
gchar *smolvm_store_snapshot_file (SmolvmStore *self, const gchar *snapshot_id, const gchar *name);
gchar *smolvm_store_snapshot_tmp_file (SmolvmStore *self, const gchar *snapshot_id,
                                       const gchar *name);
/* Where a restore keeps a VM's own disk until the snapshot runs. */
gchar *smolvm_store_pre_restore_path (const gchar *disk_path);
/* Where a restore copies the snapshot's disk while the VM still runs. */
gchar *smolvm_store_incoming_disk_path (const gchar *disk_path);

/* Takes @path (a VM's or snapshot's file or directory) out of the way at
 * once and durably: one rename into a new .trash- directory beside it.
 * Returns that directory, for the caller to remove off the main loop. A
 * missing @path is moved trivially. */
gchar *smolvm_store_move_aside (SmolvmStore *self, const gchar *path, GError **error);
/* move_aside(), then removal in a worker thread; failures are logged. */
gboolean smolvm_store_discard (SmolvmStore *self, const gchar *path, GError **error);
/* The same without a sync on the calling thread: the worker that removes
 * @path syncs its old directory first. Only for a path whose return after
 * a crash start-up undoes (a restore's .pre-restore disk once vm.json says
 * the restore completed: smolvm_store_recover_restore() drops it). */
gboolean smolvm_store_discard_lazily (SmolvmStore *self, const gchar *path, GError **error);
/* The same, completing once the removal is done, so that a reply sent
 * after it finds the state directory as it will stay. */
void smolvm_store_discard_async (SmolvmStore *self, const gchar *path,
                                 GAsyncReadyCallback callback, gpointer user_data);
gboolean smolvm_store_discard_finish (SmolvmStore *self, GAsyncResult *result, GError **error);
/* Takes @path out of the way at once (the rename of move_aside(), not yet
 * synced: nothing on the calling thread waits for the disk); FALSE and
 * @error when that fails. Then, in a worker, syncs the directory @path left
 * (the move is durable from there: until then a crash brings @path back)
 * and removes the files, and completes. For a caller whose reply reports
 * @path gone: it replies from @callback. */
gboolean smolvm_store_remove_async (SmolvmStore *self, const gchar *path,
                                    GAsyncReadyCallback callback, gpointer user_data,
                                    GError **error);
gboolean smolvm_store_remove_finish (SmolvmStore *self, GAsyncResult *result, GError **error);
/* Removal of a tree in a worker thread, failures logged. */
void smolvm_store_remove_later (const gchar *path);

/* Start-up, before any call is served (so no transfer uses the cache):
 * clears STATE/oci-cache of what no transfer will use. A push-* directory
 * never outlives its push, so any found now goes; a pull-* directory goes
 * when neither it (a pull touches it when it starts) nor its blobs changed
 * for more than @max_age seconds before @now (seconds since the epoch),
 * as the pull that left it was given up on. Each is renamed into a .trash-
 * directory at once and removed in a worker thread, like .trash- leftovers. */
#define SMOLVM_STORE_PULL_CACHE_MAX_AGE (7 * 24 * 3600)
void smolvm_store_clean_oci_cache (SmolvmStore *self, gint64 now, gint64 max_age);

/* Makes the directory of a new record: removes a leftover of a crash at
 * @path first. */
gboolean smolvm_store_make_record_dir (SmolvmStore *self, const gchar *path, GError **error);

/* Worker thread: makes vmstate.bin and mem.bin in @tmp_dir read-only
 * (0400: no load writes them, and clones share them) and syncs them, writes
 * snapshot.json (@metadata) and syncs it, syncs @tmp_dir (which makes the
 * entries of these and of the disk's copy, made with
 * SMOLVM_COPY_NO_DIR_SYNC, durable), then one rename publishes the
 * directory as the snapshot @snapshot_id. Once the rename is durable the
 * snapshot exists; if it cannot be made durable it is undone, and @tmp_dir
 * is again what the caller must remove. */
void smolvm_store_commit_snapshot_async (SmolvmStore *self, const gchar *tmp_dir,
                                         const gchar *snapshot_id, const gchar *metadata,
                                         GAsyncReadyCallback callback, gpointer user_data);
gboolean smolvm_store_commit_snapshot_finish (SmolvmStore *self, GAsyncResult *result,
                                              GError **error);

/* Reads a record file (vm.json, snapshot.json) into memory, NUL-terminated:
 * never through a symlink, only a regular file of sane size. */
gchar *smolvm_store_read_record (const gchar *path, gsize *length, GError **error);

/* Start-up: lists the record directories of @kind ("vms", "snapshots"),
 * sending leftovers (.tmp-*, .trash-*) to be removed in a worker. */
GPtrArray *smolvm_store_list_records (SmolvmStore *self, const gchar *kind, GError **error);

/* Start-up: a restore copies the snapshot's disk beside the VM's, then
 * sets the VM's disk aside and removes it once the VM runs the snapshot.
 * Found now, the daemon died in between: a half-copied incoming disk goes;
 * a VM that got as far as running or paused (@completed) keeps the
 * snapshot's disk; otherwise its own disk is put back. */
void smolvm_store_recover_restore (SmolvmStore *self, const gchar *vm_id, const gchar *disk_path,
                                   gboolean completed);

/* All of a deleted VM's runtime dir (it lives in memory, /run), its console
 * log too: a later restore of one of its snapshots recreates the VM, which
 * starts a fresh log. Renamed away at once, removed in a worker. */
void smolvm_store_remove_runtime (SmolvmStore *self, const gchar *vm_id);

/* Hard-links the boot images (SMOLVM_VM_KERNEL, SMOLVM_VM_INITRD) that
 * @from_dir has into @to_dir, which has none: a snapshot keeps its VM's,
 * and a VM recreated from a snapshot gets the snapshot's. */
gboolean smolvm_store_link_images (const gchar *from_dir, const gchar *to_dir, GError **error);
/* Whether both directories hold the very same boot images (the same files,
 * not only the same bytes), or both none. */
gboolean smolvm_store_images_match (const gchar *dir_a, const gchar *dir_b);

G_END_DECLS
