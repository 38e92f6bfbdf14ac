/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define SMOLVM_ACTION_SNAPSHOT_CREATE "org.smolvm.snapshot.create"
#define SMOLVM_ACTION_SNAPSHOT_RESTORE "org.smolvm.snapshot.restore"
#define SMOLVM_ACTION_SNAPSHOT_DELETE "org.smolvm.snapshot.delete"
#define SMOLVM_ACTION_SNAPSHOT_CLONE "org.smolvm.snapshot.clone"
/* Export and Push; Import and Pull */
#define SMOLVM_ACTION_SNAPSHOT_PUSH "org.smolvm.snapshot.push"
#define SMOLVM_ACTION_SNAPSHOT_PULL "org.smolvm.snapshot.pull"
#define SMOLVM_ACTION_VM_MANAGE "org.smolvm.vm.manage"
#define SMOLVM_ACTION_VM_CONSOLE "org.smolvm.vm.console"

#define SMOLVM_TYPE_AUTHORITY (smolvm_authority_get_type ())
G_DECLARE_FINAL_TYPE (SmolvmAuthority, smolvm_authority, SMOLVM, AUTHORITY, GObject)

/* The single point every state-changing call passes through.
 *
 * With @allow_all (the per-user --session daemon, whose bus only its own
 * user can reach) every caller is allowed. Otherwise polkit decides, asked
 * asynchronously about the caller's bus name; when polkit cannot be reached
 * (not running, masked, activation failing or timing out, or smolvmd built
 * without it) only uid 0 is allowed, with one warning per outage. */
SmolvmAuthority *smolvm_authority_new (gboolean allow_all);

/* @vm_id, @snapshot_id and @verb are passed to polkit as details, for
 * fine-grained rules; NULL or "" ones are left out. User interaction is
 * allowed only if the caller's message allows interactive authorization.
 * Fails with SMOLVM_ERROR_NOT_AUTHORIZED naming @action_id, or
 * SMOLVM_ERROR_AUTHORIZATION_DISMISSED when the user dismissed the dialog. */
void smolvm_authority_check_async (SmolvmAuthority *self, GDBusMethodInvocation *invocation,
                                   const gchar *action_id, const gchar *vm_id,
                                   const gchar *snapshot_id, const gchar *verb,
                                   GAsyncReadyCallback callback, gpointer user_data);
gboolean smolvm_authority_check_finish (SmolvmAuthority *self, GAsyncResult *result,
                                        GError **error);

/* The uid of the caller of @invocation, asked of the bus. */
void smolvm_authority_get_caller_uid_async (GDBusMethodInvocation *invocation,
                                            GAsyncReadyCallback callback, gpointer user_data);
gboolean smolvm_authority_get_caller_uid_finish (GAsyncResult *result, guint32 *uid,
                                                 GError **error);

G_END_DECLS
