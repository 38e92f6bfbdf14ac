/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "smolvm-context.h"
#include "smolvm-generated.h"
#include "smolvm-vm-config.h"

G_BEGIN_DECLS

#define SMOLVM_TYPE_SNAPSHOT (smolvm_snapshot_get_type ())
G_DECLARE_FINAL_TYPE (SmolvmSnapshot, smolvm_snapshot, SMOLVM, SNAPSHOT, SmolvmDbusSnapshotSkeleton)


/* A SnapshotInfo whose files live in its directory of the store. */
SmolvmSnapshot *smolvm_snapshot_new (SmolvmContext *ctx, const gchar *id, const gchar *vm_id,
                                     const SmolvmVmConfig *vm_config, GVariant *network_config,
                                     gint64 created_at, const gchar *backend);

/* Shared by records read one after another (not thread-safe): those with
 * the same vm_config share one VmConfig value (the snapshots of a VM, at
 * start-up), and parse it once. */
typedef struct _SmolvmSnapshotConfigs SmolvmSnapshotConfigs;
SmolvmSnapshotConfigs *smolvm_snapshot_configs_new (void);
void smolvm_snapshot_configs_free (SmolvmSnapshotConfigs *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmolvmSnapshotConfigs, smolvm_snapshot_configs_free)

/* Reads DIR/snapshot.json. @configs: nullable. */
SmolvmSnapshot *smolvm_snapshot_load (SmolvmContext *ctx, const gchar *dir,
                                      SmolvmSnapshotConfigs *configs, GError **error);

/* What smolvm_snapshot_load() read, as one value for the snapshot index
 * (smolvm-snapshot-index.h): vm_id, vm_config, network_config, created_at
 * (microseconds), backend, vmstate_sha256, restored, restored_vm_id. */
#define SMOLVM_SNAPSHOT_RECORD_TYPE "(sa{sv}a{sv}xsmsbs)"
#define SMOLVM_SNAPSHOT_RECORD_TYPE_FORMAT "(s@a{sv}@a{sv}xsmsbs)"
GVariant *smolvm_snapshot_to_record (SmolvmSnapshot *self);
/* The snapshot of DIR from such a value, checked as its JSON would be. */
SmolvmSnapshot *smolvm_snapshot_new_from_record (SmolvmContext *ctx, const gchar *dir,
                                                 GVariant *record, SmolvmSnapshotConfigs *configs,
                                                 GError **error);

/* The snapshot.json text. */
gchar *smolvm_snapshot_to_json (SmolvmSnapshot *self);

/* Writes its snapshot.json atomically and durably, off the main loop
 * (through the context's record writer, in order with other records). */
void smolvm_snapshot_save_async (SmolvmSnapshot *self, GAsyncReadyCallback callback,
                                 gpointer user_data);
gboolean smolvm_snapshot_save_finish (SmolvmSnapshot *self, GAsyncResult *result,
                                      GError **error);

/* Its entry in org.smolvm.Manager.ListSnapshots: (object path,
 * SnapshotInfo), built once and kept until a property changes (transfer
 * none; take a reference to keep it). */
GVariant *smolvm_snapshot_to_list_entry (SmolvmSnapshot *self);

const gchar *smolvm_snapshot_get_id (SmolvmSnapshot *self);
const gchar *smolvm_snapshot_get_dir (SmolvmSnapshot *self);
const gchar *smolvm_snapshot_get_object_path (SmolvmSnapshot *self);
SmolvmContext *smolvm_snapshot_get_context (SmolvmSnapshot *self);
const gchar *smolvm_snapshot_get_vm_id (SmolvmSnapshot *self);
const SmolvmVmConfig *smolvm_snapshot_get_vm_config (SmolvmSnapshot *self);
GVariant *smolvm_snapshot_get_network_config (SmolvmSnapshot *self);
gint64 smolvm_snapshot_get_created_at (SmolvmSnapshot *self);

/* SHA-256 of vmstate.bin, recorded at creation and checked before a
 * restore: a VMM may load a damaged state without noticing. NULL when a
 * record predates it. */
const gchar *smolvm_snapshot_get_vmstate_sha256 (SmolvmSnapshot *self);
void smolvm_snapshot_set_vmstate_sha256 (SmolvmSnapshot *self, const gchar *sha256);

/* Sets Restored and RestoredVmId (PropertiesChanged follows). */
/* The snapshot's files, in this order */
enum {
  SMOLVM_SNAPSHOT_FILE_VMSTATE,
  SMOLVM_SNAPSHOT_FILE_MEM,
  SMOLVM_SNAPSHOT_FILE_DISK,
  SMOLVM_SNAPSHOT_N_FILES
};
/* Everything a restore or clone can know to fail on before it touches a
 * VM: each file present and regular, mem.bin exactly the VM's memory.
 * Sets the data bytes of each. */
gboolean smolvm_snapshot_check_files (SmolvmSnapshot *self,
                                      guint64 sizes[SMOLVM_SNAPSHOT_N_FILES], GError **error);
/* Clones: the VMs cloned from it that map its mem.bin (object paths). */
void smolvm_snapshot_set_clones (SmolvmSnapshot *self, const gchar *const *vm_paths);
void smolvm_snapshot_mark_restored (SmolvmSnapshot *self, gboolean restored,
                                    const gchar *restored_vm_id);

G_END_DECLS
