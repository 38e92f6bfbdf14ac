/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "smolvm-vmm.h"

G_BEGIN_DECLS

#define SMOLVM_TYPE_FIRECRACKER (smolvm_firecracker_get_type ())
G_DECLARE_FINAL_TYPE (SmolvmFirecracker, smolvm_firecracker, SMOLVM, FIRECRACKER, SmolvmVmm)

/* Drives one firecracker process through its HTTP API on a Unix socket. */
SmolvmVmm *smolvm_firecracker_new (const gchar *vm_id, const SmolvmVmConfig *config,
                                   GVariant *network_config, const gchar *disk_path,
                                   const gchar *runtime_dir, const gchar *console_log_path,
                                   const gchar *binary);

const gchar *smolvm_firecracker_get_api_socket (SmolvmFirecracker *self);

G_END_DECLS
