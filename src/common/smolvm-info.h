/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Keys of the SnapshotInfo a{sv} dictionary (see org.smolvm.Manager.xml). */
#define SMOLVM_INFO_SNAPSHOT_ID "snapshot_id"
#define SMOLVM_INFO_VM_ID "vm_id"
#define SMOLVM_INFO_SNAPSHOT_PATH "snapshot_path"
#define SMOLVM_INFO_MEM_FILE_PATH "mem_file_path"
#define SMOLVM_INFO_DISK_PATH "disk_path"
#define SMOLVM_INFO_VM_CONFIG "vm_config"
#define SMOLVM_INFO_NETWORK_CONFIG "network_config"
#define SMOLVM_INFO_CREATED_AT "created_at"
#define SMOLVM_INFO_RESTORED "restored"
#define SMOLVM_INFO_RESTORED_VM_ID "restored_vm_id"
#define SMOLVM_INFO_BACKEND "backend"

/* UTC time from microseconds since the epoch: "2026-04-03T12:30:00", or with
 * @with_offset "2026-04-03T12:30:00+00:00". */
gchar *smolvm_format_utc (gint64 usec, gboolean with_offset);

G_END_DECLS
