/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define SMOLVM_TYPE_SNAPSHOT_INFO (smolvm_snapshot_info_get_type ())
G_DECLARE_FINAL_TYPE (SmolvmSnapshotInfo, smolvm_snapshot_info, SMOLVM, SNAPSHOT_INFO, GObject)

SmolvmSnapshotInfo *smolvm_snapshot_info_new_from_variant (GVariant *info, GError **error);
GVariant *smolvm_snapshot_info_to_variant (SmolvmSnapshotInfo *self);

const gchar *smolvm_snapshot_info_get_snapshot_id (SmolvmSnapshotInfo *self);
const gchar *smolvm_snapshot_info_get_vm_id (SmolvmSnapshotInfo *self);
const gchar *smolvm_snapshot_info_get_snapshot_path (SmolvmSnapshotInfo *self);
const gchar *smolvm_snapshot_info_get_mem_file_path (SmolvmSnapshotInfo *self);
const gchar *smolvm_snapshot_info_get_disk_path (SmolvmSnapshotInfo *self);
GVariant *smolvm_snapshot_info_get_vm_config (SmolvmSnapshotInfo *self);
GVariant *smolvm_snapshot_info_get_network_config (SmolvmSnapshotInfo *self);
GDateTime *smolvm_snapshot_info_get_created_at (SmolvmSnapshotInfo *self);
gboolean smolvm_snapshot_info_get_restored (SmolvmSnapshotInfo *self);
const gchar *smolvm_snapshot_info_get_restored_vm_id (SmolvmSnapshotInfo *self);
const gchar *smolvm_snapshot_info_get_backend (SmolvmSnapshotInfo *self);

G_END_DECLS
