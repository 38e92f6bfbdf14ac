/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "smolvm-vmm.h"

G_BEGIN_DECLS

#define SMOLVM_TYPE_QEMU (smolvm_qemu_get_type ())
G_DECLARE_FINAL_TYPE (SmolvmQemu, smolvm_qemu, SMOLVM, QEMU, SmolvmVmm)

/* Drives one qemu-system-x86_64 process through QMP. A booted guest's RAM
 * lives in a file the VM owns (memory-backend-file, share=on), so that a
 * snapshot's migration stream holds device state only (x-ignore-shared)
 * and mem.bin is a copy of that file. A restored guest maps the snapshot's
 * mem.bin privately (share=off, copy-on-write) instead of copying it; its
 * snapshots take all of RAM out of the stream into a fresh mem.bin. Made
 * with smolvm_vmm_new (SMOLVM_TYPE_QEMU, ...). */

/* The versioned alias of "q35" that @binary provides (e.g. "pc-q35-7.2"), so
 * that a VM keeps one machine type across snapshots; NULL if unknown. Runs
 * the binary once; meant for daemon start-up. */
gchar *smolvm_qemu_probe_machine (const gchar *binary, GError **error);

/* Whether @binary's memory-backend-file can open its file read-only and
 * still map it writable and private (its "rom" option, QEMU 8.1 and
 * later), which restores of VMMs of that binary then use for mem.bin.
 * QEMU 7.2 opens the file read-write (readonly=on maps guest RAM
 * read-only there: the guest stops). The answer is kept for the process.
 * Runs the binary once; meant for daemon start-up. */
gboolean smolvm_qemu_probe_readonly_ram (const gchar *binary);

G_END_DECLS
