/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>
#include <gio/gunixfdlist.h>

#include "smolvm-context.h"
#include "smolvm-vm.h"

G_BEGIN_DECLS

/* The operations, one file each (smolvm-op-*.c): each checks its
 * arguments, authorizes, runs its steps and, on failure or cancel, its
 * rollback, and replies to @invocation (whose reference it takes). */

/* smolvm-op-vm-create.c */
void smolvm_op_vm_create (SmolvmContext *ctx, GDBusMethodInvocation *invocation,
                          GUnixFDList *fd_list, GVariant *config);

/* smolvm-op-vm-lifecycle.c: "start", "pause", "resume", "stop" */
void smolvm_op_vm_lifecycle (SmolvmVm *vm, GDBusMethodInvocation *invocation, const gchar *verb,
                             GVariant *options);

/* smolvm-op-vm-console.c: OpenConsoleLog */
void smolvm_op_vm_console (SmolvmVm *vm, GDBusMethodInvocation *invocation, GVariant *options);

/* smolvm-op-vm-delete.c */
void smolvm_op_vm_delete (SmolvmVm *vm, GDBusMethodInvocation *invocation, GVariant *options);

/* smolvm-op-snapshot-create.c. @vm: the VM whose CreateSnapshot was
 * called, which must still be the record of @vm_id after authorization;
 * NULL for Manager.CreateSnapshot. @snapshot_id "" makes one up. */
void smolvm_op_snapshot_create (SmolvmContext *ctx, GDBusMethodInvocation *invocation,
                                const gchar *vm_id, SmolvmVm *vm, const gchar *snapshot_id,
                                GVariant *options);

/* smolvm-op-snapshot-restore.c */
void smolvm_op_snapshot_clone (SmolvmContext *ctx, GDBusMethodInvocation *invocation,
                               const gchar *snapshot_id, GVariant *options);
void smolvm_op_snapshot_restore (SmolvmContext *ctx, GDBusMethodInvocation *invocation,
                                 const gchar *snapshot_id, GVariant *options);

/* smolvm-op-snapshot-delete.c */
void smolvm_op_snapshot_delete (SmolvmContext *ctx, GDBusMethodInvocation *invocation,
                                const gchar *snapshot_id, GVariant *options);

/* smolvm-op-snapshot-push.c: Snapshot.Push */
void smolvm_op_snapshot_push (SmolvmContext *ctx, GDBusMethodInvocation *invocation,
                              const gchar *snapshot_id, const gchar *reference, GVariant *options);

/* smolvm-op-snapshot-pull.c: Manager.PullSnapshot */
void smolvm_op_snapshot_pull (SmolvmContext *ctx, GDBusMethodInvocation *invocation,
                              const gchar *reference, GVariant *options);

/* smolvm-op-snapshot-export.c: Snapshot.Export; @fd the handle (h) */
void smolvm_op_snapshot_export (SmolvmContext *ctx, GDBusMethodInvocation *invocation,
                                const gchar *snapshot_id, GUnixFDList *fd_list, GVariant *fd,
                                GVariant *options);

/* smolvm-op-snapshot-import.c: Manager.ImportSnapshot */
void smolvm_op_snapshot_import (SmolvmContext *ctx, GDBusMethodInvocation *invocation,
                                GUnixFDList *fd_list, GVariant *fd, GVariant *options);

G_END_DECLS
