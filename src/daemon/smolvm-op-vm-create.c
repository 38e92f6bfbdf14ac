/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <unistd.h>

#include "smolvm-authority.h"
#include "smolvm-call.h"
#include "smolvm-error.h"
#include "smolvm-fileutil.h"
#include "smolvm-id.h"
#include "smolvm-network.h"
#include "smolvm-ops.h"
#include "smolvm-registry.h"
#include "smolvm-store.h"

/* CreateVM: reserve the id, claim a network, copy the rootfs into the VM's
 * own disk, then record and publish the VM. Rollback: the directory and
 * the network claim go, the id is free again. */
typedef struct {
  SmolvmCall call;
  SmolvmVmConfig *config;
  gchar *vm_id;
  gboolean holds_vm_id;
  GVariant *network_config;
  gchar *dir;
  GError *error; /* the failure a rollback reports at its end */
} VmCreate;

static void
vm_create_clear (VmCreate *op)
{
  SmolvmContext *ctx = op->call.ctx;
  if (op->holds_vm_id)
    smolvm_registry_release_vm_id (ctx->registry, op->vm_id);
  smolvm_vm_config_free (op->config);
  g_free (op->vm_id);
  g_clear_pointer (&op->network_config, g_variant_unref);
  g_free (op->dir);
  g_clear_error (&op->error);
}

static void
on_rollback_removed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  VmCreate *op = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_store_discard_finish (SMOLVM_STORE (source), result, &error))
    g_warning ("Cannot remove %s: %s", op->dir, error->message);
  smolvm_call_fail (&op->call, g_steal_pointer (&op->error));
}

/* The directory (with the partial disk) is gone before the caller hears of
 * the failure; the network claim goes and the id is free again. */
static void
vm_create_rollback (VmCreate *op, GError *error)
{
  SmolvmContext *ctx = op->call.ctx;

  smolvm_network_release (ctx->network, op->vm_id, op->network_config);
  g_prefix_error (&error, "Cannot create VM '%s': ", op->vm_id);
  op->error = error;
  smolvm_call_begin_rollback (&op->call);
  smolvm_store_discard_async (ctx->store, op->dir, on_rollback_removed, op);
}

static void
on_disk_copied (GObject *source, GAsyncResult *result, gpointer user_data)
{
  VmCreate *op = user_data;
  SmolvmContext *ctx = op->call.ctx;
  GError *error = NULL;
  g_autoptr(SmolvmVm) vm = NULL;

  if (!smolvm_copy_file_sparse_finish (result, &error) ||
      !smolvm_call_check_cancelled (&op->call, &error)) {
    vm_create_rollback (op, error);
    return;
  }
  smolvm_job_set_cancelable (op->call.job, FALSE);
  smolvm_call_set_phase (&op->call, "committing");
  vm = smolvm_vm_new (ctx, op->config, op->network_config);
  if (!smolvm_vm_save (vm, &error)) {
    vm_create_rollback (op, error);
    return;
  }
  smolvm_registry_add_vm (ctx->registry, vm);
  smolvm_call_return (&op->call, g_variant_new ("(o)", smolvm_vm_get_object_path (vm)));
}

static void
vm_create_run (SmolvmCall *call)
{
  VmCreate *op = (VmCreate *) call;
  SmolvmContext *ctx = call->ctx;
  GError *error = NULL;
  g_autofree gchar *disk = NULL;
  g_autofree gchar *path = NULL;
  guint64 size = 0;

  /* after authorization: the answer tells what exists on the host */
  if (!smolvm_vm_config_check_files (op->config, &error) ||
      !smolvm_file_data_size (op->config->rootfs_path, &size, &error)) {
    smolvm_call_fail (call, error);
    return;
  }
  if (op->vm_id == NULL)
    op->vm_id = smolvm_id_make_vm (smolvm_registry_vm_id_taken, ctx->registry);
  if (!smolvm_registry_reserve_vm_id (ctx->registry, op->vm_id, &error)) {
    /* an id being created is as taken as one that exists */
    if (g_error_matches (error, SMOLVM_ERROR, SMOLVM_ERROR_IN_USE))
      error->code = SMOLVM_ERROR_ALREADY_EXISTS;
    smolvm_call_fail (call, error);
    return;
  }
  op->holds_vm_id = TRUE;
  g_free (op->config->vm_id);
  op->config->vm_id = g_strdup (op->vm_id);

  if (op->config->network) {
    op->network_config = smolvm_network_allocate (ctx->network, op->vm_id, &error);
    if (op->network_config == NULL) {
      smolvm_call_fail (call, error);
      return;
    }
  } else {
    op->network_config = g_variant_ref_sink (g_variant_new ("a{sv}", NULL));
  }
  op->dir = smolvm_store_vm_dir (ctx->store, op->vm_id);
  if (!smolvm_store_make_record_dir (ctx->store, op->dir, &error)) {
    smolvm_network_release (ctx->network, op->vm_id, op->network_config);
    smolvm_call_fail (call, error);
    return;
  }
  path = smolvm_id_object_path ("vm", op->vm_id);
  smolvm_call_start_job (call, SMOLVM_JOB_VM_CREATE, SMOLVM_ACTION_VM_MANAGE, TRUE, path, NULL);
  call->cancelled_summary = g_strdup_printf ("VM '%s' was not created", op->vm_id);
  smolvm_progress_expect (smolvm_call_get_progress (call), size);
  smolvm_progress_set_phase (smolvm_call_get_progress (call), "copying-disk", TRUE);
  disk = smolvm_store_vm_file (ctx->store, op->vm_id, SMOLVM_VM_DISK);
  smolvm_copy_file_sparse_async (op->config->rootfs_path, disk, smolvm_call_get_progress (call),
                                 smolvm_call_get_cancellable (call), on_disk_copied, op);
}

void
smolvm_op_vm_create (SmolvmContext *ctx, GDBusMethodInvocation *invocation, GVariant *config)
{
  VmCreate *op = smolvm_call_new0 (VmCreate, ctx, invocation, vm_create_clear);
  GError *error = NULL;

  op->config = smolvm_vm_config_new_from_variant (config, ctx->network_default, &error);
  if (op->config == NULL) {
    smolvm_call_fail (&op->call, error);
    return;
  }
  if (!g_hash_table_contains (ctx->binaries, op->config->backend)) {
    smolvm_call_fail_literal (&op->call, SMOLVM_ERROR_UNSUPPORTED,
                              "Backend '%s' is not available (no binary found; see smolvmd --help)",
                              op->config->backend);
    return;
  }
  /* pinned now, so that the VM's snapshots keep loading under this QEMU */
  if (g_str_equal (op->config->backend, "qemu") && op->config->machine[0] == '\0') {
    g_free (op->config->machine);
    op->config->machine = g_strdup (ctx->qemu_machine);
  }
  if (op->config->network && geteuid () != 0) {
    smolvm_call_fail_literal (&op->call, SMOLVM_ERROR_UNSUPPORTED,
                              "Networking needs a daemon running as root to create TAP devices; "
                              "create the VM with network=false");
    return;
  }
  if (op->config->vm_id != NULL && op->config->vm_id[0] != '\0')
    op->vm_id = g_strdup (op->config->vm_id);
  smolvm_call_authorize (&op->call, SMOLVM_ACTION_VM_MANAGE, op->vm_id, NULL, "create",
                         vm_create_run);
}
