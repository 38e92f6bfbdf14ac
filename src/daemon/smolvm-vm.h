/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "smolvm-context.h"
#include "smolvm-generated.h"
#include "smolvm-network.h"
#include "smolvm-vm-config.h"
#include "smolvm-vmm.h"

G_BEGIN_DECLS

#define SMOLVM_TYPE_VM (smolvm_vm_get_type ())
G_DECLARE_FINAL_TYPE (SmolvmVm, smolvm_vm, SMOLVM, VM, SmolvmDbusVmSkeleton)

#define SMOLVM_VM_STATE_CREATED "created"
#define SMOLVM_VM_STATE_RUNNING "running"
#define SMOLVM_VM_STATE_PAUSED "paused"
#define SMOLVM_VM_STATE_STOPPED "stopped"
#define SMOLVM_VM_STATE_ERROR "error"


/* A VM record: its config and network identity, its own disk in its
 * directory of the store and its runtime files. */
SmolvmVm *smolvm_vm_new (SmolvmContext *ctx, const SmolvmVmConfig *config,
                         GVariant *network_config);

/* Reads DIR/vm.json. The State is as saved; call smolvm_vm_reattach_async()
 * to reconcile it with the process, if any. */
SmolvmVm *smolvm_vm_load (SmolvmContext *ctx, const gchar *dir, GError **error);
/* Writes DIR/vm.json through the record writer, after any write of it
 * queued before; completes once it is on disk. */
void smolvm_vm_save_async (SmolvmVm *self, GAsyncReadyCallback callback, gpointer user_data);
gboolean smolvm_vm_save_finish (SmolvmVm *self, GAsyncResult *result, GError **error);

const gchar *smolvm_vm_get_id (SmolvmVm *self);
const gchar *smolvm_vm_get_object_path (SmolvmVm *self);
SmolvmContext *smolvm_vm_get_context (SmolvmVm *self);
const gchar *smolvm_vm_get_disk_path (SmolvmVm *self);
const gchar *smolvm_vm_get_dir (SmolvmVm *self);
const gchar *smolvm_vm_get_runtime_dir (SmolvmVm *self);
const gchar *smolvm_vm_get_state (SmolvmVm *self);
const gchar *smolvm_vm_get_restored_from (SmolvmVm *self);
const SmolvmVmConfig *smolvm_vm_get_config (SmolvmVm *self);
GVariant *smolvm_vm_get_network_config (SmolvmVm *self);
SmolvmVmm *smolvm_vm_get_vmm (SmolvmVm *self);
/* running or paused: a VMM process holds the guest */
gboolean smolvm_vm_is_active (SmolvmVm *self);

/* Serializes operations: FALSE and InvalidState when one is under way. */
gboolean smolvm_vm_begin_op (SmolvmVm *self, const gchar *what, GError **error);
void smolvm_vm_end_op (SmolvmVm *self);
gboolean smolvm_vm_is_busy (SmolvmVm *self);

/* Sets State (and persists it); records the snapshot a restore came from. */
void smolvm_vm_set_state (SmolvmVm *self, const gchar *state);
/* Records durably (in vm.json, off the main loop) that a snapshot pauses
 * the VM only for the time it takes: a daemon that dies before clearing it
 * finds the VM paused at start-up and resumes it. A failed write leaves the
 * mark unset. */
void smolvm_vm_mark_paused_by_snapshot_async (SmolvmVm *self, GAsyncReadyCallback callback,
                                              gpointer user_data);
gboolean smolvm_vm_mark_paused_by_snapshot_finish (SmolvmVm *self, GAsyncResult *result,
                                                   GError **error);
/* Clears the mark; queued to the record writer (a reply flushes it). A
 * resume clears it too, in the write of the VM's new state. */
void smolvm_vm_clear_paused_by_snapshot (SmolvmVm *self);
/* A restore (@snapshot_id) or a fresh boot (NULL): RestoredFrom, and the
 * snapshot whose mem.bin the guest maps. */
void smolvm_vm_set_restored_from (SmolvmVm *self, const gchar *snapshot_id);
/* A clone: ClonedFrom (for good) and the snapshot the guest maps (until it
 * boots afresh). Not saved: a clone has no record before, and its maker
 * saves it (smolvm_vm_save_async) before the clone counts. */
void smolvm_vm_set_cloned_from (SmolvmVm *self, const gchar *snapshot_id);
const gchar *smolvm_vm_get_cloned_from (SmolvmVm *self);
/* "" when the guest maps no snapshot's memory */
const gchar *smolvm_vm_get_mapped_snapshot (SmolvmVm *self);
/* active, and mapping that snapshot's mem.bin */
gboolean smolvm_vm_maps_snapshot (SmolvmVm *self, const gchar *snapshot_id);

/* The properties of org.smolvm.Manager.ListVMs. */
GVariant *smolvm_vm_to_info (SmolvmVm *self);

/* Lifecycle; the caller holds the op (begin_op) around each. All complete
 * with smolvm_vm_op_finish(). */
void smolvm_vm_start_async (SmolvmVm *self, GAsyncReadyCallback callback, gpointer user_data);
void smolvm_vm_set_paused_async (SmolvmVm *self, gboolean paused, GAsyncReadyCallback callback,
                                 gpointer user_data);
/* Ends the VMM, if any; always ends "stopped". Never fails. */
void smolvm_vm_stop_async (SmolvmVm *self, GAsyncReadyCallback callback, gpointer user_data);
/* A fresh VMM loads the snapshot files; ends paused or, with @resume, running.
 * On failure the VMM is gone and the VM is stopped. */
void smolvm_vm_load_snapshot_async (SmolvmVm *self, const gchar *vmstate_path,
                                    const gchar *mem_path, gboolean resume,
                                    SmolvmProgress *progress, GCancellable *cancellable,
                                    GAsyncReadyCallback callback, gpointer user_data);
/* Writes vmstate and memory of a paused VM. A cancelled save leaves the VM
 * paused; the files are the caller's to remove. */
void smolvm_vm_save_snapshot_async (SmolvmVm *self, const gchar *vmstate_path,
                                    const gchar *mem_path, SmolvmProgress *progress,
                                    GCancellable *cancellable, GAsyncReadyCallback callback,
                                    gpointer user_data);
gboolean smolvm_vm_op_finish (SmolvmVm *self, GAsyncResult *result, GError **error);

/* After a daemon restart: takes over a VMM that still runs, else marks the
 * VM stopped. Never fails. */
void smolvm_vm_reattach_async (SmolvmVm *self, GAsyncReadyCallback callback, gpointer user_data);

G_END_DECLS
