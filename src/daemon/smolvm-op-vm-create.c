/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <unistd.h>

#include "smolvm-authority.h"
#include "smolvm-call.h"
#include "smolvm-error.h"
#include "smolvm-fileutil.h"
#include "smolvm-id.h"
#include "smolvm-network.h"
#include "smolvm-open-as.h"
#include "smolvm-ops.h"
#include "smolvm-record-writer.h"
#include "smolvm-registry.h"
#include "smolvm-store.h"

/* CreateVM: open the images with the caller's rights (or take the
 * caller's descriptors), reserve the id, claim a network, copy the rootfs
 * into the VM's own disk and the kernel and initrd beside it, then record
 * and publish the VM. Rollback: the directory and the network claim go,
 * the id is free again. */

enum { IMAGE_KERNEL, IMAGE_INITRD, IMAGE_ROOTFS, N_IMAGES };

static const struct {
  const gchar *fd_key;
  const gchar *path_key;
  goffset path_offset; /* of the path in SmolvmVmConfig */
  const gchar *file;   /* the VM's copy */
} images[N_IMAGES] = {
  [IMAGE_KERNEL] = { "kernel-fd", "kernel_path", G_STRUCT_OFFSET (SmolvmVmConfig, kernel_path),
                     SMOLVM_VM_KERNEL },
  [IMAGE_INITRD] = { "initrd-fd", "initrd_path", G_STRUCT_OFFSET (SmolvmVmConfig, initrd_path),
                     SMOLVM_VM_INITRD },
  [IMAGE_ROOTFS] = { "rootfs-fd", "rootfs_path", G_STRUCT_OFFSET (SmolvmVmConfig, rootfs_path),
                     SMOLVM_VM_DISK },
};

typedef struct {
  SmolvmCall call;
  SmolvmVmConfig *config;
  gchar *vm_id;
  gboolean holds_vm_id;
  GVariant *network_config;
  gchar *dir;
  int fds[N_IMAGES]; /* the caller's, or opened with its rights; -1 */
  guint64 sizes[N_IMAGES];
  gboolean is_default[N_IMAGES]; /* the daemon's default image: opened as the daemon */
  gboolean defaults_opened;
  guint copying; /* the image being copied */
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
  for (guint i = 0; i < N_IMAGES; i++)
    if (op->fds[i] >= 0)
      close (op->fds[i]);
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
  op->error = g_steal_pointer (&error);
  smolvm_call_begin_rollback (&op->call);
  smolvm_call_discard_record_dir (&op->call, op->dir, on_rollback_removed, op);
}

static void
on_vm_saved (GObject *source, GAsyncResult *result, gpointer user_data)
{
  VmCreate *op = user_data;
  g_autoptr(SmolvmVm) vm = SMOLVM_VM (source);
  g_autoptr(GError) error = NULL;

  if (!smolvm_vm_save_finish (vm, result, &error)) {
    vm_create_rollback (op, g_steal_pointer (&error));
    return;
  }
  smolvm_registry_add_vm (op->call.ctx->registry, vm);
  smolvm_call_return (&op->call, g_variant_new ("(o)", smolvm_vm_get_object_path (vm)));
}

/* Published once its record is on disk: a VM a caller sees is one a
 * restarted daemon knows. */
static void
commit (VmCreate *op)
{
  SmolvmVm *vm;

  smolvm_job_set_cancelable (op->call.job, FALSE);
  smolvm_call_set_phase (&op->call, "committing");
  vm = smolvm_vm_new (op->call.ctx, op->config, op->network_config);
  /* the callback takes this reference */
  smolvm_vm_save_async (vm, on_vm_saved, op);
}

static void copy_next (VmCreate *op);

static void
on_image_copied (GObject *source, GAsyncResult *result, gpointer user_data)
{
  VmCreate *op = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_copy_file_sparse_finish (result, &error) ||
      !smolvm_call_check_cancelled (&op->call, &error)) {
    vm_create_rollback (op, g_steal_pointer (&error));
    return;
  }
  op->copying++;
  copy_next (op);
}

/* One image after the other into the VM's directory; the copy takes the
 * descriptor over. */
static void
copy_next (VmCreate *op)
{
  SmolvmContext *ctx = op->call.ctx;
  g_autofree gchar *dst = NULL;
  guint i = op->copying;
  int fd;

  while (i < N_IMAGES && op->fds[i] < 0)
    i++;
  op->copying = i;
  if (i == N_IMAGES) {
    commit (op);
    return;
  }
  fd = op->fds[i];
  op->fds[i] = -1;
  dst = smolvm_store_vm_file (ctx->store, op->vm_id, images[i].file);
  smolvm_copy_fd_sparse_async (fd, images[i].path_key, dst, smolvm_call_get_progress (&op->call),
                               smolvm_call_get_cancellable (&op->call), on_image_copied, op);
}

static void
vm_create_start (VmCreate *op)
{
  SmolvmCall *call = &op->call;
  SmolvmContext *ctx = call->ctx;
  g_autoptr(GError) error = NULL;
  g_autofree gchar *path = NULL;
  guint64 total = 0;

  if (op->vm_id == NULL)
    op->vm_id = smolvm_id_make_vm (smolvm_registry_vm_id_taken, ctx->registry);
  if (!smolvm_registry_reserve_vm_id (ctx->registry, op->vm_id, &error)) {
    /* an id being created is as taken as one that exists */
    if (g_error_matches (error, SMOLVM_ERROR, SMOLVM_ERROR_IN_USE))
      error->code = SMOLVM_ERROR_ALREADY_EXISTS;
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  op->holds_vm_id = TRUE;
  g_free (op->config->vm_id);
  op->config->vm_id = g_strdup (op->vm_id);

  if (op->config->network) {
    op->network_config = smolvm_network_allocate (ctx->network, op->vm_id, &error);
    if (op->network_config == NULL) {
      smolvm_call_fail (call, g_steal_pointer (&error));
      return;
    }
  } else {
    op->network_config = g_variant_ref_sink (g_variant_new ("a{sv}", NULL));
  }
  op->dir = smolvm_store_vm_dir (ctx->store, op->vm_id);
  if (!smolvm_store_make_record_dir (ctx->store, op->dir, &error)) {
    smolvm_network_release (ctx->network, op->vm_id, op->network_config);
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  path = smolvm_id_object_path ("vm", op->vm_id);
  smolvm_call_start_job (call, SMOLVM_JOB_VM_CREATE, SMOLVM_ACTION_VM_MANAGE, TRUE, path, NULL);
  call->cancelled_summary = g_strdup_printf ("VM '%s' was not created", op->vm_id);
  for (guint i = 0; i < N_IMAGES; i++)
    total += op->sizes[i];
  smolvm_progress_expect (smolvm_call_get_progress (call), total);
  smolvm_progress_set_phase (smolvm_call_get_progress (call), "copying-disk", TRUE);
  copy_next (op);
}

static void open_images (VmCreate *op, gboolean defaults);

static void
on_images_opened (GObject *source, GAsyncResult *result, gpointer user_data)
{
  VmCreate *op = user_data;
  g_autoptr(GError) error = NULL;
  int opened[N_IMAGES];
  guint64 sizes[N_IMAGES];

  if (!smolvm_open_as_finish (result, opened, sizes, &error)) {
    smolvm_call_fail (&op->call, g_steal_pointer (&error));
    return;
  }
  for (guint i = 0; i < N_IMAGES; i++) {
    if (opened[i] < 0)
      continue;
    op->fds[i] = opened[i];
    op->sizes[i] = sizes[i];
  }
  for (guint i = 0; !op->defaults_opened && i < N_IMAGES; i++) {
    if (op->is_default[i]) {
      open_images (op, TRUE);
      return;
    }
  }
  vm_create_start (op);
}

/* The caller's paths with the caller's rights first, then the daemon's
 * default images with its own. */
static void
open_images (VmCreate *op, gboolean defaults)
{
  const gchar *paths[N_IMAGES] = { NULL };
  const gchar *whats[N_IMAGES];

  for (guint i = 0; i < N_IMAGES; i++) {
    whats[i] = images[i].path_key;
    if (op->fds[i] < 0 && op->is_default[i] == defaults)
      paths[i] = G_STRUCT_MEMBER (const gchar *, op->config, images[i].path_offset);
  }
  op->defaults_opened = defaults;
  smolvm_open_as_async (defaults ? (guint32) geteuid () : op->call.uid, paths, whats, N_IMAGES,
                        on_images_opened, op);
}

static void
vm_create_run (SmolvmCall *call)
{
  VmCreate *op = (VmCreate *) call;
  g_autoptr(GError) error = NULL;

  /* after authorization: the answers tell what exists on the host */
  for (guint i = 0; i < N_IMAGES; i++) {
    if (op->fds[i] >= 0 &&
        !smolvm_check_image_fd (op->fds[i], images[i].fd_key, &op->sizes[i], &error)) {
      smolvm_call_fail (call, g_steal_pointer (&error));
      return;
    }
  }
  open_images (op, FALSE);
}

/* Images and backend the caller left out come from the daemon's defaults;
 * an initrd only with the default kernel, since it belongs to a kernel. */
static gboolean
fill_defaults (VmCreate *op, GVariantDict *dict, GError **error)
{
  SmolvmContext *ctx = op->call.ctx;
  const gchar *defaults[N_IMAGES] = {
    [IMAGE_KERNEL] = ctx->default_kernel,
    [IMAGE_INITRD] = ctx->default_initrd,
    [IMAGE_ROOTFS] = ctx->default_rootfs,
  };

  for (guint i = 0; i < N_IMAGES; i++) {
    if (op->fds[i] >= 0 || g_variant_dict_contains (dict, images[i].path_key))
      continue;
    if (i == IMAGE_INITRD && !op->is_default[IMAGE_KERNEL])
      continue;
    if (defaults[i] == NULL) {
      if (i == IMAGE_INITRD)
        continue;
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                   "%s (or %s) is required: smolvmd has no default-%s configured",
                   images[i].path_key, images[i].fd_key, i == IMAGE_KERNEL ? "kernel" : "rootfs");
      return FALSE;
    }
    g_variant_dict_insert (dict, images[i].path_key, "s", defaults[i]);
    op->is_default[i] = TRUE;
  }
  if (ctx->default_backend != NULL && !g_variant_dict_contains (dict, "backend"))
    g_variant_dict_insert (dict, "backend", "s", ctx->default_backend);
  if (ctx->default_accel != NULL && !g_variant_dict_contains (dict, "accel"))
    g_variant_dict_insert (dict, "accel", "s", ctx->default_accel);
  return TRUE;
}

/* Takes the descriptors of @config's *-fd keys into op->fds and returns
 * the rest as a VMConfig, with the path the daemon sees for each
 * descriptor as its *_path (a record of where the image came from), and
 * the daemon's defaults for what the caller left out. */
static GVariant *
take_image_fds (VmCreate *op, GVariant *config, GUnixFDList *fd_list, GError **error)
{
  g_auto(GVariantDict) dict = G_VARIANT_DICT_INIT (config);

  for (guint i = 0; i < N_IMAGES; i++) {
    g_autoptr(GVariant) handle = g_variant_dict_lookup_value (&dict, images[i].fd_key, NULL);
    g_autofree gchar *proc = NULL;
    g_autofree gchar *origin = NULL;
    gint32 index;

    if (handle == NULL)
      continue;
    if (!g_variant_is_of_type (handle, G_VARIANT_TYPE_HANDLE)) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                   "%s must be a descriptor (h), not %s", images[i].fd_key,
                   g_variant_get_type_string (handle));
      return NULL;
    }
    if (g_variant_dict_contains (&dict, images[i].path_key)) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                   "Give %s or %s, not both", images[i].fd_key, images[i].path_key);
      return NULL;
    }
    index = g_variant_get_handle (handle);
    if (fd_list == NULL || index < 0 || index >= g_unix_fd_list_get_length (fd_list)) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                   "%s: the message has no descriptor %d", images[i].fd_key, index);
      return NULL;
    }
    op->fds[i] = g_unix_fd_list_get (fd_list, index, error);
    if (op->fds[i] < 0)
      return NULL;
    proc = g_strdup_printf ("/proc/self/fd/%d", op->fds[i]);
    origin = g_file_read_link (proc, NULL);
    if (origin == NULL || !g_path_is_absolute (origin)) {
      g_free (origin);
      origin = g_strdup_printf ("/dev/fd/%d", index); /* all that is known of it */
    }
    g_variant_dict_remove (&dict, images[i].fd_key);
    g_variant_dict_insert (&dict, images[i].path_key, "s", origin);
  }
  if (!fill_defaults (op, &dict, error))
    return NULL;
  return g_variant_dict_end (&dict);
}

void
smolvm_op_vm_create (SmolvmContext *ctx, GDBusMethodInvocation *invocation,
                     GUnixFDList *fd_list, GVariant *config)
{
  VmCreate *op = smolvm_call_new0 (VmCreate, ctx, invocation, vm_create_clear);
  g_autoptr(GVariant) paths_config = NULL;
  g_autoptr(GError) error = NULL;

  for (guint i = 0; i < N_IMAGES; i++)
    op->fds[i] = -1;
  paths_config = take_image_fds (op, config, fd_list, &error);
  if (paths_config != NULL)
    op->config = smolvm_vm_config_new_from_variant (g_variant_ref_sink (paths_config),
                                                    ctx->network_default, &error);
  if (op->config == NULL) {
    smolvm_call_fail (&op->call, g_steal_pointer (&error));
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
