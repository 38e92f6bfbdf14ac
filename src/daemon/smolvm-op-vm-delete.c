/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "smolvm-authority.h"
#include "smolvm-call.h"
#include "smolvm-error.h"
#include "smolvm-fileutil.h"
#include "smolvm-network.h"
#include "smolvm-ops.h"
#include "smolvm-record-writer.h"
#include "smolvm-registry.h"
#include "smolvm-store.h"

/* Delete: stop the VMM, take the record away with one rename, withdraw the
 * object, then remove the files. Once the VMM is stopping there is nothing
 * to go back to, so its Job cannot be cancelled. */
typedef struct {
  SmolvmCall call;
  SmolvmVm *vm;
  gboolean force;
  gboolean holds_vm;
} VmDelete;

static void
vm_delete_clear (VmDelete *op)
{
  if (op->holds_vm)
    smolvm_vm_end_op (op->vm);
  g_clear_object (&op->vm);
}

static void
on_files_removed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  VmDelete *op = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_store_remove_finish (SMOLVM_STORE (source), result, &error)) {
    g_prefix_error (&error, "VM '%s' was deleted, but its files were not all removed: ",
                    smolvm_vm_get_id (op->vm));
    smolvm_call_fail (&op->call, g_steal_pointer (&error));
    return;
  }
  smolvm_call_return (&op->call, NULL);
}

/* Every write of its vm.json queued before is done: none lands in the
 * trash while the directory goes. */
static void
on_records_flushed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  VmDelete *op = user_data;
  SmolvmContext *ctx = op->call.ctx;
  const gchar *id = smolvm_vm_get_id (op->vm);
  g_autoptr(GError) error = NULL;

  smolvm_record_writer_flush_finish (SMOLVM_RECORD_WRITER (source), result);
  /* moved first, so that the record is gone at once and atomically; the
   * reply (from on_files_removed) waits until the move is durable */
  if (!smolvm_store_remove_async (ctx->store, smolvm_vm_get_dir (op->vm), on_files_removed, op,
                                  &error)) {
    g_prefix_error (&error, "Cannot delete VM '%s': ", id);
    smolvm_call_fail (&op->call, g_steal_pointer (&error));
    return;
  }
  smolvm_call_set_phase (&op->call, "removing");
  /* a stopped VM has none left, unless a daemon died before removing it */
  smolvm_network_tap_down (ctx->network, smolvm_vm_get_network_config (op->vm));
  smolvm_network_release (ctx->network, id, smolvm_vm_get_network_config (op->vm));
  smolvm_registry_remove_vm (ctx->registry, op->vm);
  smolvm_store_remove_runtime (ctx->store, id);
}

static void
on_stopped (GObject *source, GAsyncResult *result, gpointer user_data)
{
  VmDelete *op = user_data;

  smolvm_vm_op_finish (op->vm, result, NULL);
  smolvm_record_writer_flush_async (op->call.ctx->records, on_records_flushed, op);
}

static void
vm_delete_run (SmolvmCall *call)
{
  VmDelete *op = (VmDelete *) call;
  const gchar *id = smolvm_vm_get_id (op->vm);
  g_autoptr(GError) error = NULL;

  if (smolvm_registry_lookup_vm (call->ctx->registry, id) != op->vm) {
    smolvm_call_fail_literal (call, SMOLVM_ERROR_NOT_FOUND, "VM '%s' not found", id);
    return;
  }
  if (smolvm_vm_is_active (op->vm) && !op->force) {
    smolvm_call_fail_literal (call, SMOLVM_ERROR_INVALID_STATE,
                              "VM '%s' is %s; stop it first or delete with force", id,
                              smolvm_vm_get_state (op->vm));
    return;
  }
  if (!smolvm_vm_begin_op (op->vm, "delete", &error)) {
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  op->holds_vm = TRUE;
  smolvm_call_start_job (call, SMOLVM_JOB_VM_DELETE, SMOLVM_ACTION_VM_MANAGE, FALSE,
                         smolvm_vm_get_object_path (op->vm), NULL);
  smolvm_call_set_phase (call, "stopping");
  smolvm_vm_stop_async (op->vm, on_stopped, op);
}

void
smolvm_op_vm_delete (SmolvmVm *vm, GDBusMethodInvocation *invocation, GVariant *options)
{
  VmDelete *op = smolvm_call_new0 (VmDelete, smolvm_vm_get_context (vm), invocation,
                                   vm_delete_clear);
  g_autoptr(GError) error = NULL;

  op->vm = g_object_ref (vm);
  if (!smolvm_call_check_options (options, (const gchar *[]){ "force", NULL }, &error)) {
    smolvm_call_fail (&op->call, g_steal_pointer (&error));
    return;
  }
  op->force = smolvm_call_option_bool (options, "force");
  smolvm_call_authorize (&op->call, SMOLVM_ACTION_VM_MANAGE, smolvm_vm_get_id (vm), NULL,
                         "delete", vm_delete_run);
}
