/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "smolvm-job.h"
#include "smolvm-snapshot.h"
#include "smolvm-vm.h"

G_BEGIN_DECLS

#define SMOLVM_TYPE_REGISTRY (smolvm_registry_get_type ())
G_DECLARE_FINAL_TYPE (SmolvmRegistry, smolvm_registry, SMOLVM, REGISTRY, GObject)

/* Ids to objects, and what is reserved or busy. Adding an object publishes
 * it under the ObjectManager at @root_path; removing it withdraws it. */
SmolvmRegistry *smolvm_registry_new (const gchar *root_path);
GDBusObjectManagerServer *smolvm_registry_get_object_manager (SmolvmRegistry *self);
/* Publishes the ObjectManager on @connection, and answers NotFound for calls
 * on VMs, snapshots and jobs that are not (or no longer) there. */
gboolean smolvm_registry_export (SmolvmRegistry *self, GDBusConnection *connection,
                                 GError **error);

void smolvm_registry_add_vm (SmolvmRegistry *self, SmolvmVm *vm);
void smolvm_registry_remove_vm (SmolvmRegistry *self, SmolvmVm *vm);
SmolvmVm *smolvm_registry_lookup_vm (SmolvmRegistry *self, const gchar *vm_id);
/* NotFound when there is none. */
SmolvmVm *smolvm_registry_get_vm (SmolvmRegistry *self, const gchar *vm_id, GError **error);
/* The VMs, sorted by id; the registry keeps the references. */
GPtrArray *smolvm_registry_list_vms (SmolvmRegistry *self);

void smolvm_registry_add_snapshot (SmolvmRegistry *self, SmolvmSnapshot *snapshot);
void smolvm_registry_remove_snapshot (SmolvmRegistry *self, SmolvmSnapshot *snapshot);
SmolvmSnapshot *smolvm_registry_lookup_snapshot (SmolvmRegistry *self, const gchar *snapshot_id);
SmolvmSnapshot *smolvm_registry_get_snapshot (SmolvmRegistry *self, const gchar *snapshot_id,
                                              GError **error);
/* Those of @vm_id (all when NULL or ""), by creation time then id. */
GPtrArray *smolvm_registry_list_snapshots (SmolvmRegistry *self, const gchar *vm_id);

/* ListSnapshots replies are built and sent in a worker. A snapshot's
 * signals must not overtake a reply taken before them: a client that
 * mirrors the list (list, then apply the signals that follow) would keep a
 * deleted snapshot or a stale Restored. So whatever adds, removes or changes
 * a snapshot first waits for the replies in flight (at most one reply's
 * marshalling, and only when the two meet). begin and wait on the main
 * thread, end from any. */
void smolvm_registry_reply_begin (SmolvmRegistry *self);
void smolvm_registry_reply_end (SmolvmRegistry *self);
void smolvm_registry_wait_replies (SmolvmRegistry *self);

/* Jobs are numbered from 1 for the daemon's lifetime. */
guint smolvm_registry_next_job_number (SmolvmRegistry *self);
void smolvm_registry_add_job (SmolvmRegistry *self, SmolvmJob *job);
void smolvm_registry_remove_job (SmolvmRegistry *self, SmolvmJob *job);

/* An id is taken while a record has it or an operation reserved it. */
gboolean smolvm_registry_vm_id_taken (const gchar *vm_id, gpointer self);
gboolean smolvm_registry_snapshot_id_taken (const gchar *snapshot_id, gpointer self);

/* Reserves a VM id that has no record yet (a create or a restore that
 * recreates it). FALSE with AlreadyExists or InUse when it is taken. */
gboolean smolvm_registry_reserve_vm_id (SmolvmRegistry *self, const gchar *vm_id, GError **error);
void smolvm_registry_release_vm_id (SmolvmRegistry *self, const gchar *vm_id);

/* The busy slot of a snapshot id (also of one being created): one
 * operation at a time. FALSE and InUse naming what is under way. */
gboolean smolvm_registry_hold_snapshot (SmolvmRegistry *self, const gchar *snapshot_id,
                                        const gchar *what, GError **error);
void smolvm_registry_release_snapshot (SmolvmRegistry *self, const gchar *snapshot_id);

/* The running or paused VM, if any, that maps this snapshot's mem.bin. */
SmolvmVm *smolvm_registry_vm_using_snapshot (SmolvmRegistry *self, const gchar *snapshot_id);
/* InUse when such a VM exists; @why ends the message. */
gboolean smolvm_registry_check_snapshot_unused (SmolvmRegistry *self, const gchar *snapshot_id,
                                                const gchar *why, GError **error);
/* InUse while any VM (restored or cloned from it) maps its mem.bin. */
gboolean smolvm_registry_check_snapshot_unmapped (SmolvmRegistry *self, const gchar *snapshot_id,
                                                  GError **error);
/* Sets the snapshot's Clones: its clones that map it now. */
void smolvm_registry_update_clones (SmolvmRegistry *self, const gchar *snapshot_id);

G_END_DECLS
