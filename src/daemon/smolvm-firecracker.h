/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "smolvm-vmm.h"

G_BEGIN_DECLS

#define SMOLVM_TYPE_FIRECRACKER (smolvm_firecracker_get_type ())
G_DECLARE_FINAL_TYPE (SmolvmFirecracker, smolvm_firecracker, SMOLVM, FIRECRACKER, SmolvmVmm)

/* Drives one firecracker process through its HTTP API on a Unix socket;
 * made with smolvm_vmm_new (SMOLVM_TYPE_FIRECRACKER, ...). */

G_END_DECLS
