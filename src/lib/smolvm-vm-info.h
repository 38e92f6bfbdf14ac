/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define SMOLVM_TYPE_VM_INFO (smolvm_vm_info_get_type ())
G_DECLARE_FINAL_TYPE (SmolvmVmInfo, smolvm_vm_info, SMOLVM, VM_INFO, GObject)

SmolvmVmInfo *smolvm_vm_info_new_from_variant (GVariant *info, GError **error);
GVariant *smolvm_vm_info_to_variant (SmolvmVmInfo *self);

const gchar *smolvm_vm_info_get_vm_id (SmolvmVmInfo *self);
const gchar *smolvm_vm_info_get_status (SmolvmVmInfo *self);
const gchar *smolvm_vm_info_get_backend (SmolvmVmInfo *self);
guint smolvm_vm_info_get_pid (SmolvmVmInfo *self);
guint smolvm_vm_info_get_vcpu_count (SmolvmVmInfo *self);
guint smolvm_vm_info_get_mem_size_mib (SmolvmVmInfo *self);
const gchar *smolvm_vm_info_get_kernel_path (SmolvmVmInfo *self);
const gchar *smolvm_vm_info_get_initrd_path (SmolvmVmInfo *self);
const gchar *smolvm_vm_info_get_rootfs_path (SmolvmVmInfo *self);
const gchar *smolvm_vm_info_get_boot_args (SmolvmVmInfo *self);
gboolean smolvm_vm_info_get_network (SmolvmVmInfo *self);
const gchar *smolvm_vm_info_get_accel (SmolvmVmInfo *self);
const gchar *smolvm_vm_info_get_machine (SmolvmVmInfo *self);
const gchar *smolvm_vm_info_get_disk_path (SmolvmVmInfo *self);
const gchar *smolvm_vm_info_get_console_log_path (SmolvmVmInfo *self);
const gchar *smolvm_vm_info_get_restored_from (SmolvmVmInfo *self);
const gchar *smolvm_vm_info_get_cloned_from (SmolvmVmInfo *self);
const gchar *smolvm_vm_info_get_ip_address (SmolvmVmInfo *self);
GVariant *smolvm_vm_info_get_vm_config (SmolvmVmInfo *self);
GVariant *smolvm_vm_info_get_network_config (SmolvmVmInfo *self);

G_END_DECLS
