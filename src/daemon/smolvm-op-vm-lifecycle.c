/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "smolvm-authority.h"
#include "smolvm-call.h"
#include "smolvm-error.h"
#include "smolvm-ops.h"
#include "smolvm-registry.h"

/* Start, Pause, Resume and Stop: one VMM call each, holding the VM's
 * operation slot. Quick, so no Job; nothing to roll back. */
typedef struct {
  SmolvmCall call;
  SmolvmVm *vm;
  const struct LifecycleVerb *verb;
  gboolean holds_vm;
} VmLifecycle;

typedef void (*LifecycleRun) (VmLifecycle *op);

struct LifecycleVerb {
  const gchar *name;
  const gchar *const *options;
  LifecycleRun run;
};

static void
vm_lifecycle_clear (VmLifecycle *op)
{
  if (op->holds_vm)
    smolvm_vm_end_op (op->vm);
  g_clear_object (&op->vm);
}

static void
on_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  VmLifecycle *op = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_vm_op_finish (SMOLVM_VM (source), result, &error)) {
    smolvm_call_fail (&op->call, g_steal_pointer (&error));
    return;
  }
  /* a fresh boot no longer maps any snapshot's memory */
  if (g_str_equal (op->verb->name, "start"))
    smolvm_vm_set_restored_from (op->vm, NULL);
  smolvm_call_return (&op->call, NULL);
}

static void
run_start (VmLifecycle *op)
{
  smolvm_vm_start_async (op->vm, on_done, op);
}

static void
run_pause (VmLifecycle *op)
{
  smolvm_vm_set_paused_async (op->vm, TRUE, on_done, op);
}

static void
run_resume (VmLifecycle *op)
{
  smolvm_vm_set_paused_async (op->vm, FALSE, on_done, op);
}

static void
run_stop (VmLifecycle *op)
{
  smolvm_vm_stop_async (op->vm, on_done, op);
}

static const gchar *const no_options[] = { NULL };

static const struct LifecycleVerb verbs[] = {
  { "start", no_options, run_start },
  { "pause", no_options, run_pause },
  { "resume", no_options, run_resume },
  { "stop", no_options, run_stop },
};

static void
vm_lifecycle_run (SmolvmCall *call)
{
  VmLifecycle *op = (VmLifecycle *) call;
  const gchar *id = smolvm_vm_get_id (op->vm);
  const gchar *state = smolvm_vm_get_state (op->vm);
  g_autoptr(GError) error = NULL;

  /* The VM may have been deleted, and even recreated under its id, while
   * the caller was being authorized: never act on a record that is gone. */
  if (smolvm_registry_lookup_vm (call->ctx->registry, id) != op->vm) {
    smolvm_call_fail_literal (call, SMOLVM_ERROR_NOT_FOUND, "VM '%s' not found", id);
    return;
  }
  if (op->verb->run == run_stop && (g_str_equal (state, SMOLVM_VM_STATE_CREATED) ||
                                    g_str_equal (state, SMOLVM_VM_STATE_STOPPED))) {
    smolvm_call_fail_literal (call, SMOLVM_ERROR_INVALID_STATE,
                              "VM '%s' is %s; there is nothing to stop", id, state);
    return;
  }
  if (!smolvm_vm_begin_op (op->vm, op->verb->name, &error)) {
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  op->holds_vm = TRUE;
  op->verb->run (op);
}

void
smolvm_op_vm_lifecycle (SmolvmVm *vm, GDBusMethodInvocation *invocation, const gchar *verb,
                        GVariant *options)
{
  SmolvmContext *ctx = smolvm_vm_get_context (vm);
  VmLifecycle *op = smolvm_call_new0 (VmLifecycle, ctx, invocation, vm_lifecycle_clear);
  g_autoptr(GError) error = NULL;

  op->vm = g_object_ref (vm);
  for (gsize i = 0; i < G_N_ELEMENTS (verbs); i++)
    if (g_str_equal (verbs[i].name, verb))
      op->verb = &verbs[i];
  g_assert (op->verb != NULL);
  if (options != NULL && !smolvm_call_check_options (options, op->verb->options, &error)) {
    smolvm_call_fail (&op->call, g_steal_pointer (&error));
    return;
  }
  smolvm_call_authorize (&op->call, SMOLVM_ACTION_VM_MANAGE, smolvm_vm_get_id (vm), NULL, verb,
                         vm_lifecycle_run);
}
