/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "smolvm-vmm.h"

G_BEGIN_DECLS

#define SMOLVM_TYPE_QEMU (smolvm_qemu_get_type ())
G_DECLARE_FINAL_TYPE (SmolvmQemu, smolvm_qemu, SMOLVM, QEMU, SmolvmVmm)

/* Drives one qemu-system-x86_64 process through QMP. Guest RAM lives in a
 * file the VM owns (memory-backend-file, share=on), so that a snapshot's
 * migration stream holds device state only (x-ignore-shared) and mem.bin is
 * a copy of that file. Made with smolvm_vmm_new (SMOLVM_TYPE_QEMU, ...). */

/* The versioned alias of "q35" that @binary provides (e.g. "pc-q35-7.2"), so
 * that a VM keeps one machine type across snapshots; NULL if unknown. Runs
 * the binary once; meant for daemon start-up. */
gchar *smolvm_qemu_probe_machine (const gchar *binary, GError **error);

G_END_DECLS
