/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "smolvm-authority.h"
#include "smolvm-error.h"
#include "smolvm-fileutil.h"
#include "smolvm-id.h"
#include "smolvm-manager.h"
#include "smolvm-network.h"
#include "smolvm-snapshot.h"
#include "smolvm-vm.h"

struct _SmolvmManager {
  SmolvmDbusManagerSkeleton parent_instance;
  gboolean session;
  gchar *state_dir;
  gchar *vms_dir;
  gchar *snapshots_dir;
  gchar *vm_runtime_root;
  GHashTable *binaries; /* backend -> binary */
  gchar *qemu_machine;  /* the versioned q35 of the QEMU binary */
  SmolvmAuthority *authority;
  SmolvmNetwork *network;
  GDBusObjectManagerServer *object_manager;
  GHashTable *vms;            /* id -> SmolvmVm */
  GHashTable *snapshots;      /* id -> SmolvmSnapshot */
  GHashTable *busy_snapshots; /* id -> what is under way (also ids being created) */
  GHashTable *reserved_vm_ids;
};

static void smolvm_manager_iface_init (SmolvmDbusManagerIface *iface);

G_DEFINE_TYPE_WITH_CODE (SmolvmManager, smolvm_manager, SMOLVM_DBUS_TYPE_MANAGER_SKELETON,
                         G_IMPLEMENT_INTERFACE (SMOLVM_DBUS_TYPE_MANAGER,
                                                smolvm_manager_iface_init))

static void
smolvm_manager_finalize (GObject *object)
{
  SmolvmManager *self = SMOLVM_MANAGER (object);
  g_free (self->state_dir);
  g_free (self->vms_dir);
  g_free (self->snapshots_dir);
  g_free (self->vm_runtime_root);
  g_free (self->qemu_machine);
  g_hash_table_unref (self->binaries);
  g_clear_object (&self->authority);
  g_clear_object (&self->network);
  g_clear_object (&self->object_manager);
  g_hash_table_unref (self->vms);
  g_hash_table_unref (self->snapshots);
  g_hash_table_unref (self->busy_snapshots);
  g_hash_table_unref (self->reserved_vm_ids);
  G_OBJECT_CLASS (smolvm_manager_parent_class)->finalize (object);
}

static void
smolvm_manager_class_init (SmolvmManagerClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = smolvm_manager_finalize;
}

static void
smolvm_manager_init (SmolvmManager *self)
{
  self->binaries = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  self->vms = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  self->snapshots = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  self->busy_snapshots = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  self->reserved_vm_ids = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
}

/* ---- one D-Bus call in flight ---- */

typedef struct _Op Op;
typedef void (*OpStep) (Op *op);

struct _Op {
  SmolvmManager *self;
  GDBusMethodInvocation *invocation;
  OpStep run; /* after authorization */
  gchar *vm_id;
  gchar *snapshot_id;
  gboolean resume;
  gboolean force;
  SmolvmVmConfig *config;
  SmolvmVm *vm;
  SmolvmSnapshot *snapshot;
  gboolean holds_vm;       /* we own the VM's op slot */
  gboolean holds_snapshot; /* we put snapshot_id into busy_snapshots */
  gboolean holds_vm_id;    /* we put vm_id into reserved_vm_ids */
  gboolean was_running;
  gboolean vm_is_new;
  gchar *tmp_dir;
  gchar *backup_disk;
  GVariant *network_config;
  GError *error; /* the failure a rollback reports at its end */
};

static Op *
op_new (SmolvmManager *self, GDBusMethodInvocation *invocation)
{
  Op *op = g_new0 (Op, 1);
  op->self = g_object_ref (self);
  /* the handler's reference, which the return consumes */
  op->invocation = invocation;
  return op;
}

static void
op_free (Op *op)
{
  if (op->holds_vm)
    smolvm_vm_end_op (op->vm);
  if (op->holds_snapshot)
    g_hash_table_remove (op->self->busy_snapshots, op->snapshot_id);
  if (op->holds_vm_id)
    g_hash_table_remove (op->self->reserved_vm_ids, op->vm_id);
  g_clear_object (&op->self);
  g_clear_object (&op->invocation);
  g_free (op->vm_id);
  g_free (op->snapshot_id);
  smolvm_vm_config_free (op->config);
  g_clear_object (&op->vm);
  g_clear_object (&op->snapshot);
  g_free (op->tmp_dir);
  g_free (op->backup_disk);
  g_clear_pointer (&op->network_config, g_variant_unref);
  g_clear_error (&op->error);
  g_free (op);
}

/* Every error leaves as org.smolvm.Error.*, never as UnmappedGError. */
static void
op_fail (Op *op, GError *error)
{
  g_autoptr(GError) mapped = smolvm_error_normalize (error);
  g_debug ("%s failed: %s", g_dbus_method_invocation_get_method_name (op->invocation),
           mapped->message);
  g_dbus_method_invocation_return_gerror (g_steal_pointer (&op->invocation), mapped);
  g_error_free (error);
  op_free (op);
}

static void
op_fail_literal (Op *op, SmolvmError code, const gchar *format, ...) G_GNUC_PRINTF (3, 4);

static void
op_fail_literal (Op *op, SmolvmError code, const gchar *format, ...)
{
  va_list args;
  g_autofree gchar *msg = NULL;
  va_start (args, format);
  msg = g_strdup_vprintf (format, args);
  va_end (args);
  op_fail (op, g_error_new_literal (SMOLVM_ERROR, code, msg));
}

static void
op_return (Op *op, GVariant *value)
{
  g_dbus_method_invocation_return_value (g_steal_pointer (&op->invocation), value);
  op_free (op);
}

static void
on_authorized (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Op *op = user_data;
  GError *error = NULL;

  if (!smolvm_authority_check_finish (SMOLVM_AUTHORITY (source), result, &error)) {
    op_fail (op, error);
    return;
  }
  op->run (op);
}

/* polkit rules may want the VM of a snapshot-wide action. */
static void
op_set_snapshot_vm_id (Op *op)
{
  SmolvmSnapshot *snapshot = g_hash_table_lookup (op->self->snapshots, op->snapshot_id);
  g_free (op->vm_id);
  op->vm_id = snapshot != NULL ? g_strdup (smolvm_snapshot_get_vm_id (snapshot)) : NULL;
}

/* The single authorization point of every state-changing call. */
static void
op_authorize (Op *op, const gchar *action_id, const gchar *verb, OpStep run)
{
  op->run = run;
  smolvm_authority_check_async (op->self->authority, op->invocation, action_id, op->vm_id,
                                op->snapshot_id, verb, on_authorized, op);
}

static gboolean
option_bool (GVariant *options, const gchar *key)
{
  gboolean value = FALSE;
  g_variant_lookup (options, key, "b", &value);
  return value;
}

/* Unknown or mistyped options are refused rather than silently ignored. */
static gboolean
check_options (GVariant *options, const gchar *const *known, GError **error)
{
  GVariantIter iter;
  const gchar *key;
  GVariant *value;

  g_variant_iter_init (&iter, options);
  while (g_variant_iter_next (&iter, "{&sv}", &key, &value)) {
    g_autoptr(GVariant) owned = value;
    if (!g_strv_contains (known, key)) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT, "Unknown option '%s'", key);
      return FALSE;
    }
    if (!g_variant_is_of_type (owned, G_VARIANT_TYPE_BOOLEAN)) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                   "Option '%s' must be a boolean (b)", key);
      return FALSE;
    }
  }
  return TRUE;
}

/* ---- object publishing ---- */

static void
export_object (SmolvmManager *self, const gchar *kind, const gchar *id,
               GDBusInterfaceSkeleton *iface)
{
  g_autofree gchar *path = smolvm_id_object_path (kind, id);
  g_autoptr(GDBusObjectSkeleton) object = g_dbus_object_skeleton_new (path);
  g_dbus_object_skeleton_add_interface (object, iface);
  g_dbus_object_manager_server_export (self->object_manager, object);
}

static void
unexport_object (SmolvmManager *self, const gchar *kind, const gchar *id)
{
  g_autofree gchar *path = smolvm_id_object_path (kind, id);
  g_dbus_object_manager_server_unexport (self->object_manager, path);
}

static void connect_vm (SmolvmManager *self, SmolvmVm *vm);
static void connect_snapshot (SmolvmManager *self, SmolvmSnapshot *snapshot);

/* Records, wires up and publishes (now, or once the bus connection is set). */
static void
add_vm (SmolvmManager *self, SmolvmVm *vm)
{
  const gchar *id = smolvm_vm_get_id (vm);
  g_hash_table_insert (self->vms, g_strdup (id), g_object_ref (vm));
  connect_vm (self, vm);
  export_object (self, "vm", id, G_DBUS_INTERFACE_SKELETON (vm));
}

static void
add_snapshot (SmolvmManager *self, SmolvmSnapshot *snapshot)
{
  const gchar *id = smolvm_snapshot_get_id (snapshot);
  g_hash_table_insert (self->snapshots, g_strdup (id), g_object_ref (snapshot));
  connect_snapshot (self, snapshot);
  export_object (self, "snapshot", id, G_DBUS_INTERFACE_SKELETON (snapshot));
}

static SmolvmVm *
lookup_vm (SmolvmManager *self, const gchar *vm_id, GError **error)
{
  SmolvmVm *vm = g_hash_table_lookup (self->vms, vm_id);
  if (vm == NULL)
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND, "VM '%s' not found", vm_id);
  return vm;
}

static SmolvmSnapshot *
lookup_snapshot (SmolvmManager *self, const gchar *snapshot_id, GError **error)
{
  SmolvmSnapshot *snapshot = g_hash_table_lookup (self->snapshots, snapshot_id);
  if (snapshot == NULL)
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND, "Snapshot '%s' not found",
                 snapshot_id);
  return snapshot;
}

static gboolean
op_hold_snapshot (Op *op, const gchar *what, GError **error)
{
  const gchar *busy = g_hash_table_lookup (op->self->busy_snapshots, op->snapshot_id);
  if (busy != NULL) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_IN_USE,
                 "Snapshot '%s' is busy (%s in progress); try again when it is done",
                 op->snapshot_id, busy);
    return FALSE;
  }
  g_hash_table_insert (op->self->busy_snapshots, g_strdup (op->snapshot_id), g_strdup (what));
  op->holds_snapshot = TRUE;
  return TRUE;
}

static gboolean
op_hold_vm (Op *op, const gchar *what, GError **error)
{
  if (!smolvm_vm_begin_op (op->vm, what, error))
    return FALSE;
  op->holds_vm = TRUE;
  return TRUE;
}

/* The running VM, if any, that maps this snapshot's mem.bin. */
static SmolvmVm *
vm_using_snapshot (SmolvmManager *self, const gchar *snapshot_id)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, self->vms);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    if (smolvm_vm_is_active (value) &&
        g_strcmp0 (smolvm_vm_get_restored_from (value), snapshot_id) == 0)
      return value;
  return NULL;
}

static void
on_discarded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GError) error = NULL;
  if (!smolvm_rm_rf_finish (result, &error))
    g_warning ("%s", error->message);
}

/* Takes @path out of the way at once and durably: one rename into a new
 * .trash- directory below @trash_parent (same filesystem; start-up clears
 * what a crash left there). Returns that directory, for the caller to remove
 * in a worker thread: freeing a disk image of many GiB must not hold up the
 * main loop. A missing @path is moved trivially. */
static gchar *
move_aside (const gchar *trash_parent, const gchar *path, GError **error)
{
  g_autofree gchar *trash = g_build_filename (trash_parent, ".trash-XXXXXX", NULL);
  g_autofree gchar *base = g_path_get_basename (path);
  g_autofree gchar *parent = g_path_get_dirname (path);
  g_autofree gchar *target = NULL;

  if (g_mkdtemp (trash) == NULL) {
    smolvm_error_set_errno (error, errno, "Cannot make %s", trash);
    return NULL;
  }
  target = g_build_filename (trash, base, NULL);
  if (rename (path, target) != 0 && errno != ENOENT) {
    smolvm_error_set_errno (error, errno, "Cannot move %s aside", path);
    rmdir (trash);
    return NULL;
  }
  smolvm_fsync_dir (parent, NULL);
  return g_steal_pointer (&trash);
}

/* move_aside(), then removal in the background. */
static gboolean
discard (SmolvmManager *self, const gchar *path, GError **error)
{
  g_autofree gchar *trash = move_aside (self->vms_dir, path, error);

  if (trash == NULL)
    return FALSE;
  smolvm_rm_rf_async (trash, on_discarded, NULL);
  return TRUE;
}

/* ==== CreateVM ==== */

static gboolean
vm_id_taken (const gchar *id, gpointer user_data)
{
  SmolvmManager *self = user_data;
  return g_hash_table_contains (self->vms, id) || g_hash_table_contains (self->reserved_vm_ids, id);
}

static void
on_create_vm_disk_copied (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Op *op = user_data;
  SmolvmManager *self = op->self;
  GError *error = NULL;
  g_autofree gchar *dir = g_build_filename (self->vms_dir, op->vm_id, NULL);
  g_autofree gchar *runtime_dir = g_build_filename (self->vm_runtime_root, op->vm_id, NULL);
  g_autoptr(SmolvmVm) vm = NULL;
  g_autofree gchar *path = NULL;

  if (!smolvm_copy_file_sparse_finish (result, &error) ||
      !(vm = smolvm_vm_new (op->config, op->network_config, dir, runtime_dir, self->network,
                            self->binaries),
        smolvm_vm_save (vm, &error))) {
    smolvm_rm_rf (dir, NULL);
    smolvm_network_release (self->network, op->vm_id, op->network_config);
    g_prefix_error (&error, "Cannot create VM '%s': ", op->vm_id);
    op_fail (op, error);
    return;
  }
  add_vm (self, vm);
  path = smolvm_id_object_path ("vm", op->vm_id);
  op_return (op, g_variant_new ("(o)", path));
}

static void
run_create_vm (Op *op)
{
  SmolvmManager *self = op->self;
  GError *error = NULL;
  g_autofree gchar *dir = NULL;
  g_autofree gchar *disk = NULL;

  /* after authorization: the answer tells what exists on the host */
  if (!smolvm_vm_config_check_files (op->config, &error)) {
    op_fail (op, error);
    return;
  }
  if (op->vm_id == NULL)
    op->vm_id = smolvm_id_make_vm (vm_id_taken, self);
  else if (vm_id_taken (op->vm_id, self)) {
    op_fail_literal (op, SMOLVM_ERROR_ALREADY_EXISTS, "VM '%s' already exists", op->vm_id);
    return;
  }
  g_free (op->config->vm_id);
  op->config->vm_id = g_strdup (op->vm_id);
  g_hash_table_add (self->reserved_vm_ids, g_strdup (op->vm_id));
  op->holds_vm_id = TRUE;

  if (op->config->network) {
    op->network_config = smolvm_network_allocate (self->network, op->vm_id, &error);
    if (op->network_config == NULL) {
      op_fail (op, error);
      return;
    }
  } else {
    op->network_config = g_variant_ref_sink (g_variant_new ("a{sv}", NULL));
  }
  dir = g_build_filename (self->vms_dir, op->vm_id, NULL);
  /* a directory without a record is a leftover of a crash mid-create */
  if (!smolvm_rm_rf (dir, &error) || !smolvm_mkdir_p (dir, 0750, &error)) {
    smolvm_network_release (self->network, op->vm_id, op->network_config);
    op_fail (op, error);
    return;
  }
  disk = g_build_filename (dir, SMOLVM_VM_DISK, NULL);
  smolvm_copy_file_sparse_async (op->config->rootfs_path, disk, NULL, NULL, on_create_vm_disk_copied, op);
}

static gboolean
handle_create_vm (SmolvmDbusManager *object, GDBusMethodInvocation *invocation, GVariant *config)
{
  SmolvmManager *self = SMOLVM_MANAGER (object);
  Op *op = op_new (self, invocation);
  GError *error = NULL;

  op->config = smolvm_vm_config_new_from_variant (config, !self->session && geteuid () == 0,
                                                  &error);
  if (op->config == NULL) {
    op_fail (op, error);
    return G_DBUS_METHOD_INVOCATION_HANDLED;
  }
  if (!g_hash_table_contains (self->binaries, op->config->backend)) {
    op_fail_literal (op, SMOLVM_ERROR_UNSUPPORTED,
                     "Backend '%s' is not available (no binary found; see smolvmd --help)",
                     op->config->backend);
    return G_DBUS_METHOD_INVOCATION_HANDLED;
  }
  /* pinned now, so that the VM's snapshots keep loading under this QEMU */
  if (g_str_equal (op->config->backend, "qemu") && op->config->machine[0] == '\0') {
    g_free (op->config->machine);
    op->config->machine = g_strdup (self->qemu_machine);
  }
  if (op->config->network && geteuid () != 0) {
    op_fail_literal (op, SMOLVM_ERROR_UNSUPPORTED,
                     "Networking needs a daemon running as root to create TAP devices; "
                     "create the VM with network=false");
    return G_DBUS_METHOD_INVOCATION_HANDLED;
  }
  if (op->config->vm_id != NULL && op->config->vm_id[0] != '\0')
    op->vm_id = g_strdup (op->config->vm_id);
  op_authorize (op, SMOLVM_ACTION_VM_MANAGE, "create", run_create_vm);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* ==== VM lifecycle: Start, Pause, Resume, Stop, Delete ==== */

static void
on_vm_op_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Op *op = user_data;
  GError *error = NULL;

  if (!smolvm_vm_op_finish (SMOLVM_VM (source), result, &error)) {
    op_fail (op, error);
    return;
  }
  op_return (op, NULL);
}

static void
on_vm_started (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Op *op = user_data;
  GError *error = NULL;

  if (!smolvm_vm_op_finish (SMOLVM_VM (source), result, &error)) {
    op_fail (op, error);
    return;
  }
  /* a fresh boot no longer maps any snapshot's memory */
  smolvm_vm_set_restored_from (op->vm, NULL);
  op_return (op, NULL);
}

static gboolean
op_begin_vm_verb (Op *op, const gchar *verb)
{
  GError *error = NULL;
  /* The VM may have been deleted, and even recreated under its id, while
   * the caller was being authorized: never act on a record that is gone. */
  if (g_hash_table_lookup (op->self->vms, op->vm_id) != op->vm) {
    op_fail_literal (op, SMOLVM_ERROR_NOT_FOUND, "VM '%s' not found", op->vm_id);
    return FALSE;
  }
  if (!op_hold_vm (op, verb, &error)) {
    op_fail (op, error);
    return FALSE;
  }
  return TRUE;
}

static void
run_vm_start (Op *op)
{
  if (op_begin_vm_verb (op, "start"))
    smolvm_vm_start_async (op->vm, on_vm_started, op);
}

static void
run_vm_pause (Op *op)
{
  if (op_begin_vm_verb (op, "pause"))
    smolvm_vm_set_paused_async (op->vm, TRUE, on_vm_op_done, op);
}

static void
run_vm_resume (Op *op)
{
  if (op_begin_vm_verb (op, "resume"))
    smolvm_vm_set_paused_async (op->vm, FALSE, on_vm_op_done, op);
}

static void
run_vm_stop (Op *op)
{
  const gchar *state = smolvm_vm_get_state (op->vm);
  if (g_str_equal (state, SMOLVM_VM_STATE_CREATED) || g_str_equal (state, SMOLVM_VM_STATE_STOPPED)) {
    op_fail_literal (op, SMOLVM_ERROR_INVALID_STATE, "VM '%s' is %s; there is nothing to stop",
                     op->vm_id, state);
    return;
  }
  if (op_begin_vm_verb (op, "stop"))
    smolvm_vm_stop_async (op->vm, on_vm_op_done, op);
}

static void
on_vm_dir_removed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Op *op = user_data;
  GError *error = NULL;

  if (!smolvm_rm_rf_finish (result, &error)) {
    g_prefix_error (&error, "VM '%s' was deleted, but its files were not all removed: ", op->vm_id);
    op_fail (op, error);
    return;
  }
  op_return (op, NULL);
}

/* The runtime dir lives in /run, i.e. in memory: a RAM file left by a VMM
 * that died while smolvmd was down would hold a guest's RAM for good. The
 * console log stays: a restore of the VM's snapshot writes on in it. */
static void
remove_runtime_leftovers (const gchar *runtime_dir)
{
  g_autoptr(GDir) dir = g_dir_open (runtime_dir, 0, NULL);
  const gchar *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL) {
    g_autofree gchar *path = g_build_filename (runtime_dir, name, NULL);
    g_autoptr(GError) error = NULL;
    if (g_str_equal (name, "console.log"))
      continue;
    if (!smolvm_rm_rf (path, &error))
      g_warning ("%s", error->message);
  }
}

static void
on_vm_delete_stopped (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Op *op = user_data;
  SmolvmManager *self = op->self;
  g_autofree gchar *trash = NULL;
  GError *error = NULL;

  smolvm_vm_op_finish (op->vm, result, NULL);
  /* moved first, so that the record is gone at once and atomically */
  trash = move_aside (self->vms_dir, smolvm_vm_get_dir (op->vm), &error);
  if (trash == NULL) {
    g_prefix_error (&error, "Cannot delete VM '%s': ", op->vm_id);
    op_fail (op, error);
    return;
  }
  unexport_object (self, "vm", op->vm_id);
  smolvm_network_release (self->network, op->vm_id, smolvm_vm_get_network_config (op->vm));
  g_hash_table_remove (self->vms, op->vm_id);
  remove_runtime_leftovers (smolvm_vm_get_runtime_dir (op->vm));
  smolvm_rm_rf_async (trash, on_vm_dir_removed, op);
}

static void
run_vm_delete (Op *op)
{
  if (smolvm_vm_is_active (op->vm) && !op->force) {
    op_fail_literal (op, SMOLVM_ERROR_INVALID_STATE,
                     "VM '%s' is %s; stop it first or delete with force", op->vm_id,
                     smolvm_vm_get_state (op->vm));
    return;
  }
  if (op_begin_vm_verb (op, "delete"))
    smolvm_vm_stop_async (op->vm, on_vm_delete_stopped, op);
}

static Op *
vm_op_new (SmolvmManager *self, SmolvmVm *vm, GDBusMethodInvocation *invocation)
{
  Op *op = op_new (self, invocation);
  op->vm = g_object_ref (vm);
  op->vm_id = g_strdup (smolvm_vm_get_id (vm));
  return op;
}

static gboolean
handle_vm_start (SmolvmDbusVm *vm, GDBusMethodInvocation *invocation, gpointer user_data)
{
  Op *op = vm_op_new (user_data, SMOLVM_VM (vm), invocation);
  op_authorize (op, SMOLVM_ACTION_VM_MANAGE, "start", run_vm_start);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_vm_pause (SmolvmDbusVm *vm, GDBusMethodInvocation *invocation, gpointer user_data)
{
  Op *op = vm_op_new (user_data, SMOLVM_VM (vm), invocation);
  op_authorize (op, SMOLVM_ACTION_VM_MANAGE, "pause", run_vm_pause);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_vm_resume (SmolvmDbusVm *vm, GDBusMethodInvocation *invocation, gpointer user_data)
{
  Op *op = vm_op_new (user_data, SMOLVM_VM (vm), invocation);
  op_authorize (op, SMOLVM_ACTION_VM_MANAGE, "resume", run_vm_resume);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_vm_stop (SmolvmDbusVm *vm, GDBusMethodInvocation *invocation, GVariant *options,
                gpointer user_data)
{
  Op *op = vm_op_new (user_data, SMOLVM_VM (vm), invocation);
  GError *error = NULL;
  if (!check_options (options, (const gchar *[]){ NULL }, &error)) {
    op_fail (op, error);
    return G_DBUS_METHOD_INVOCATION_HANDLED;
  }
  op_authorize (op, SMOLVM_ACTION_VM_MANAGE, "stop", run_vm_stop);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_vm_delete (SmolvmDbusVm *vm, GDBusMethodInvocation *invocation, GVariant *options,
                  gpointer user_data)
{
  Op *op = vm_op_new (user_data, SMOLVM_VM (vm), invocation);
  GError *error = NULL;
  if (!check_options (options, (const gchar *[]){ "force", NULL }, &error)) {
    op_fail (op, error);
    return G_DBUS_METHOD_INVOCATION_HANDLED;
  }
  op->force = option_bool (options, "force");
  op_authorize (op, SMOLVM_ACTION_VM_MANAGE, "delete", run_vm_delete);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* ==== CreateSnapshot ==== */

static gboolean
snapshot_id_taken (const gchar *id, gpointer user_data)
{
  SmolvmManager *self = user_data;
  return g_hash_table_contains (self->snapshots, id) ||
         g_hash_table_contains (self->busy_snapshots, id);
}

static void create_snapshot_rollback (Op *op, GError *error);

static void
on_create_snapshot_resumed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Op *op = user_data;
  GError *error = NULL;
  g_autofree gchar *path = smolvm_id_object_path ("snapshot", op->snapshot_id);

  if (!smolvm_vm_op_finish (SMOLVM_VM (source), result, &error)) {
    g_prefix_error (&error, "Snapshot '%s' was created, but the VM did not resume: ",
                    op->snapshot_id);
    op_fail (op, error);
    return;
  }
  op_return (op, g_variant_new ("(o)", path));
}

static void
create_snapshot_publish (Op *op)
{
  SmolvmManager *self = op->self;
  g_autofree gchar *path = smolvm_id_object_path ("snapshot", op->snapshot_id);

  add_snapshot (self, op->snapshot);
  if (op->resume) {
    smolvm_vm_set_paused_async (op->vm, FALSE, on_create_snapshot_resumed, op);
    return;
  }
  op_return (op, g_variant_new ("(o)", path));
}

typedef struct {
  gchar *tmp_dir;
  gchar *final_dir;
  gchar *parent_dir;
  gchar *metadata;
} CommitData;

static void
commit_data_free (CommitData *data)
{
  g_free (data->tmp_dir);
  g_free (data->final_dir);
  g_free (data->parent_dir);
  g_free (data->metadata);
  g_free (data);
}

/* The VMM wrote these without syncing them (QEMU's migration stream never
 * does); the metadata must not become durable before them. */
static gboolean
sync_file (const gchar *path, GError **error)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  int errsv;

  if (fd < 0)
    return smolvm_error_set_errno (error, errno, "Cannot open %s", path);
  errsv = fsync (fd) < 0 ? errno : 0;
  close (fd);
  if (errsv != 0)
    return smolvm_error_set_errno (error, errsv, "Cannot sync %s", path);
  return TRUE;
}

/* Worker thread: the metadata goes in last, then one rename makes the whole
 * snapshot appear at once. */
static void
commit_snapshot_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  CommitData *data = task_data;
  g_autofree gchar *metadata_path =
    g_build_filename (data->tmp_dir, SMOLVM_SNAPSHOT_METADATA, NULL);
  g_autofree gchar *vmstate_path = g_build_filename (data->tmp_dir, SMOLVM_SNAPSHOT_VMSTATE, NULL);
  g_autofree gchar *mem_path = g_build_filename (data->tmp_dir, SMOLVM_SNAPSHOT_MEM, NULL);
  GError *error = NULL;

  if (!sync_file (vmstate_path, &error) || !sync_file (mem_path, &error) ||
      !smolvm_write_file_atomic (metadata_path, data->metadata, -1, &error) ||
      !smolvm_fsync_dir (data->tmp_dir, &error)) {
    g_task_return_error (task, error);
    return;
  }
  if (rename (data->tmp_dir, data->final_dir) != 0) {
    smolvm_error_set_errno (&error, errno, "Cannot move %s into place", data->tmp_dir);
    g_task_return_error (task, error);
    return;
  }
  if (!smolvm_fsync_dir (data->parent_dir, &error)) {
    g_task_return_error (task, error);
    return;
  }
  g_task_return_boolean (task, TRUE);
}

static void
on_snapshot_committed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Op *op = user_data;
  GError *error = NULL;

  if (!g_task_propagate_boolean (G_TASK (result), &error)) {
    create_snapshot_rollback (op, error);
    return;
  }
  g_clear_pointer (&op->tmp_dir, g_free); /* nothing to clean up any more */
  create_snapshot_publish (op);
}

static void
on_vmstate_hashed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Op *op = user_data;
  SmolvmManager *self = op->self;
  GError *error = NULL;
  g_autoptr(GTask) task = NULL;
  g_autofree gchar *sha256 = smolvm_file_sha256_finish (result, &error);
  g_autofree gchar *final_dir = NULL;
  CommitData *data;

  if (sha256 == NULL) {
    create_snapshot_rollback (op, error);
    return;
  }
  final_dir = g_build_filename (self->snapshots_dir, op->snapshot_id, NULL);
  op->snapshot = smolvm_snapshot_new (op->snapshot_id, final_dir, op->vm_id,
                                      smolvm_vm_get_config (op->vm),
                                      smolvm_vm_get_network_config (op->vm), g_get_real_time (),
                                      smolvm_vm_get_config (op->vm)->backend);
  smolvm_snapshot_set_vmstate_sha256 (op->snapshot, sha256);
  data = g_new0 (CommitData, 1);
  data->tmp_dir = g_strdup (op->tmp_dir);
  data->final_dir = g_steal_pointer (&final_dir);
  data->parent_dir = g_strdup (self->snapshots_dir);
  data->metadata = smolvm_snapshot_to_json (op->snapshot);
  task = g_task_new (NULL, NULL, on_snapshot_committed, op);
  g_task_set_task_data (task, data, (GDestroyNotify) commit_data_free);
  g_task_run_in_thread (task, commit_snapshot_thread);
}

static void
on_snapshot_disk_copied (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Op *op = user_data;
  GError *error = NULL;
  g_autofree gchar *vmstate = NULL;

  if (!smolvm_copy_file_sparse_finish (result, &error)) {
    create_snapshot_rollback (op, error);
    return;
  }
  vmstate = g_build_filename (op->tmp_dir, SMOLVM_SNAPSHOT_VMSTATE, NULL);
  smolvm_file_sha256_async (vmstate, NULL, NULL, on_vmstate_hashed, op);
}

static void
on_snapshot_state_saved (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Op *op = user_data;
  GError *error = NULL;
  g_autofree gchar *disk = NULL;

  if (!smolvm_vm_op_finish (SMOLVM_VM (source), result, &error)) {
    create_snapshot_rollback (op, error);
    return;
  }
  /* the guest is paused, so its disk holds still while it is copied */
  disk = g_build_filename (op->tmp_dir, SMOLVM_SNAPSHOT_DISK, NULL);
  smolvm_copy_file_sparse_async (smolvm_dbus_vm_get_disk_path (SMOLVM_DBUS_VM (op->vm)), disk,
                                 NULL, NULL, on_snapshot_disk_copied, op);
}

static void
save_snapshot_state (Op *op)
{
  g_autofree gchar *vmstate = g_build_filename (op->tmp_dir, SMOLVM_SNAPSHOT_VMSTATE, NULL);
  g_autofree gchar *mem = g_build_filename (op->tmp_dir, SMOLVM_SNAPSHOT_MEM, NULL);
  smolvm_vm_save_snapshot_async (op->vm, vmstate, mem, NULL, NULL, on_snapshot_state_saved, op);
}

static void
on_snapshot_vm_paused (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Op *op = user_data;
  GError *error = NULL;

  if (!smolvm_vm_op_finish (SMOLVM_VM (source), result, &error)) {
    op->was_running = FALSE; /* it did not pause: nothing to resume */
    create_snapshot_rollback (op, error);
    return;
  }
  save_snapshot_state (op);
}

static void
on_create_rollback_resumed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Op *op = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_vm_op_finish (SMOLVM_VM (source), result, &error))
    g_warning ("VM '%s' could not be resumed after a failed snapshot: %s", op->vm_id,
               error->message);
  op_fail (op, g_steal_pointer (&op->error));
}

static void
on_create_rollback_removed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Op *op = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_rm_rf_finish (result, &error))
    g_warning ("Cannot remove %s: %s", op->tmp_dir, error->message);
  if (op->was_running && g_str_equal (smolvm_vm_get_state (op->vm), SMOLVM_VM_STATE_PAUSED)) {
    smolvm_vm_set_paused_async (op->vm, FALSE, on_create_rollback_resumed, op);
    return;
  }
  op_fail (op, g_steal_pointer (&op->error));
}

/* Leaves no directory behind and the VM as it was. */
static void
create_snapshot_rollback (Op *op, GError *error)
{
  g_prefix_error (&error, "Cannot create snapshot '%s' of VM '%s': ", op->snapshot_id, op->vm_id);
  op->error = error;
  smolvm_rm_rf_async (op->tmp_dir, on_create_rollback_removed, op);
}

static void
run_create_snapshot (Op *op)
{
  SmolvmManager *self = op->self;
  GError *error = NULL;
  g_autofree gchar *tmp_name = NULL;
  const gchar *state;

  op->vm = lookup_vm (self, op->vm_id, &error);
  if (op->vm == NULL) {
    op_fail (op, error);
    return;
  }
  g_object_ref (op->vm);
  state = smolvm_vm_get_state (op->vm);
  if (!smolvm_vm_is_active (op->vm)) {
    op_fail_literal (op, SMOLVM_ERROR_INVALID_STATE,
                     "VM '%s' is %s; only a running or paused VM can be snapshotted", op->vm_id,
                     state);
    return;
  }
  if (op->snapshot_id == NULL) {
    op->snapshot_id =
      smolvm_id_make_snapshot (op->vm_id, g_get_real_time () / G_USEC_PER_SEC, snapshot_id_taken,
                               self);
  } else if (snapshot_id_taken (op->snapshot_id, self)) {
    op_fail_literal (op, SMOLVM_ERROR_ALREADY_EXISTS, "Snapshot '%s' already exists",
                     op->snapshot_id);
    return;
  }
  if (!op_hold_vm (op, "snapshot", &error) || !op_hold_snapshot (op, "create", &error)) {
    op_fail (op, error);
    return;
  }
  /* hidden until complete: list and load skip dot-directories */
  tmp_name = g_strdup_printf (".tmp-%s", op->snapshot_id);
  op->tmp_dir = g_build_filename (self->snapshots_dir, tmp_name, NULL);
  if (!smolvm_rm_rf (op->tmp_dir, &error) || !smolvm_mkdir_p (op->tmp_dir, 0750, &error)) {
    g_clear_pointer (&op->tmp_dir, g_free);
    op_fail (op, error);
    return;
  }
  op->was_running = g_str_equal (state, SMOLVM_VM_STATE_RUNNING);
  if (op->was_running)
    smolvm_vm_set_paused_async (op->vm, TRUE, on_snapshot_vm_paused, op);
  else
    save_snapshot_state (op);
}

static gboolean
start_create_snapshot (SmolvmManager *self, GDBusMethodInvocation *invocation, const gchar *vm_id,
                       const gchar *snapshot_id, GVariant *options)
{
  Op *op = op_new (self, invocation);
  GError *error = NULL;

  op->vm_id = g_strdup (vm_id);
  if (!smolvm_id_validate (vm_id, "VM id", &error) ||
      (snapshot_id[0] != '\0' && !smolvm_id_validate (snapshot_id, "snapshot id", &error)) ||
      !check_options (options, (const gchar *[]){ "resume-source", NULL }, &error)) {
    op_fail (op, error);
    return G_DBUS_METHOD_INVOCATION_HANDLED;
  }
  op->snapshot_id = snapshot_id[0] != '\0' ? g_strdup (snapshot_id) : NULL;
  op->resume = option_bool (options, "resume-source");
  op_authorize (op, SMOLVM_ACTION_SNAPSHOT_CREATE, "create", run_create_snapshot);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_create_snapshot (SmolvmDbusManager *object, GDBusMethodInvocation *invocation,
                        const gchar *vm_id, const gchar *snapshot_id, GVariant *options)
{
  return start_create_snapshot (SMOLVM_MANAGER (object), invocation, vm_id, snapshot_id, options);
}

static gboolean
handle_vm_create_snapshot (SmolvmDbusVm *vm, GDBusMethodInvocation *invocation,
                           const gchar *snapshot_id, GVariant *options, gpointer user_data)
{
  return start_create_snapshot (user_data, invocation, smolvm_vm_get_id (SMOLVM_VM (vm)),
                                snapshot_id, options);
}

/* ==== RestoreSnapshot ==== */

static void restore_rollback (Op *op, GError *error);
static void restore_abandon (Op *op, GError *error);
static void restore_stop_vm (Op *op);
static void on_restore_vmstate_hashed (GObject *source, GAsyncResult *result, gpointer user_data);

static void
on_restore_loaded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Op *op = user_data;
  SmolvmManager *self = op->self;
  GError *error = NULL;
  g_autofree gchar *path = NULL;

  if (!smolvm_vm_op_finish (SMOLVM_VM (source), result, &error)) {
    restore_rollback (op, error);
    return;
  }
  {
    SmolvmDbusSnapshot *iface = SMOLVM_DBUS_SNAPSHOT (op->snapshot);
    gboolean was_restored = smolvm_dbus_snapshot_get_restored (iface);
    g_autofree gchar *was_vm = g_strdup (smolvm_dbus_snapshot_get_restored_vm_id (iface));

    smolvm_snapshot_mark_restored (op->snapshot, TRUE, op->vm_id);
    if (!smolvm_snapshot_save (op->snapshot, NULL, &error)) {
      /* what is on disk still says the old values; so must the object */
      smolvm_snapshot_mark_restored (op->snapshot, was_restored, was_vm);
      restore_rollback (op, error);
      return;
    }
  }
  smolvm_vm_set_restored_from (op->vm, op->snapshot_id);
  if (op->backup_disk != NULL) {
    g_autoptr(GError) discard_error = NULL;
    if (!discard (self, op->backup_disk, &discard_error))
      g_warning ("%s", discard_error->message);
  }
  if (op->vm_is_new)
    add_vm (self, op->vm);
  path = smolvm_id_object_path ("vm", op->vm_id);
  op_return (op, g_variant_new ("(o)", path));
}

static void
on_restore_disk_copied (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Op *op = user_data;
  GError *error = NULL;

  if (!smolvm_copy_file_sparse_finish (result, &error)) {
    restore_rollback (op, error);
    return;
  }
  smolvm_vm_load_snapshot_async (
    op->vm, smolvm_dbus_snapshot_get_snapshot_path (SMOLVM_DBUS_SNAPSHOT (op->snapshot)),
    smolvm_dbus_snapshot_get_mem_file_path (SMOLVM_DBUS_SNAPSHOT (op->snapshot)), op->resume,
    NULL, NULL, on_restore_loaded, op);
}

static void
restore_copy_disk (Op *op)
{
  const gchar *disk = smolvm_dbus_vm_get_disk_path (SMOLVM_DBUS_VM (op->vm));
  GError *error = NULL;

  /* keep the VM's disk aside, so that a failed restore can put it back */
  if (g_file_test (disk, G_FILE_TEST_EXISTS)) {
    op->backup_disk = g_strconcat (disk, ".pre-restore", NULL);
    if (!smolvm_rm_rf (op->backup_disk, &error)) {
      g_clear_pointer (&op->backup_disk, g_free);
      restore_rollback (op, error);
      return;
    }
    if (rename (disk, op->backup_disk) != 0) {
      smolvm_error_set_errno (&error, errno, "Cannot set aside the disk of VM '%s'", op->vm_id);
      g_clear_pointer (&op->backup_disk, g_free);
      restore_rollback (op, error);
      return;
    }
  }
  smolvm_copy_file_sparse_async (
    smolvm_dbus_snapshot_get_disk_path (SMOLVM_DBUS_SNAPSHOT (op->snapshot)), disk, NULL, NULL,
    on_restore_disk_copied, op);
}

static void
on_restore_vm_stopped (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Op *op = user_data;
  smolvm_vm_op_finish (SMOLVM_VM (source), result, NULL);
  restore_copy_disk (op);
}

/* A running VM of this id goes first; then its disk is replaced. */
static void
restore_stop_vm (Op *op)
{
  if (smolvm_vm_get_vmm (op->vm) != NULL)
    smolvm_vm_stop_async (op->vm, on_restore_vm_stopped, op);
  else
    restore_copy_disk (op);
}

static void
on_restore_vmstate_hashed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Op *op = user_data;
  GError *error = NULL;
  g_autofree gchar *sha256 = smolvm_file_sha256_finish (result, &error);

  if (sha256 == NULL) {
    g_prefix_error (&error, "Cannot restore snapshot '%s': ", op->snapshot_id);
    restore_abandon (op, error);
    return;
  }
  if (g_strcmp0 (sha256, smolvm_snapshot_get_vmstate_sha256 (op->snapshot)) != 0) {
    restore_abandon (op, g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_FAILED,
                                      "Cannot restore snapshot '%s': its vmstate.bin is damaged "
                                      "(checksum mismatch)",
                                      op->snapshot_id));
    return;
  }
  restore_stop_vm (op);
}

static void
on_restore_rollback_stopped (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Op *op = user_data;
  SmolvmManager *self = op->self;
  const gchar *disk = smolvm_dbus_vm_get_disk_path (SMOLVM_DBUS_VM (op->vm));
  g_autoptr(GError) error = NULL;

  smolvm_vm_op_finish (SMOLVM_VM (source), result, NULL);
  if (op->backup_disk != NULL) {
    if (!discard (self, disk, &error) || rename (op->backup_disk, disk) != 0)
      g_warning ("Cannot put back the disk of VM '%s' (it is at %s): %s", op->vm_id,
                 op->backup_disk, error != NULL ? error->message : g_strerror (errno));
  }
  if (op->vm_is_new) {
    smolvm_network_release (self->network, op->vm_id, smolvm_vm_get_network_config (op->vm));
    if (!discard (self, smolvm_vm_get_dir (op->vm), &error))
      g_warning ("%s", error->message);
  }
  op_fail (op, g_steal_pointer (&op->error));
}

/* Before anything changed: only a recreated VM's directory and network
 * claim need undoing. */
static void
restore_abandon (Op *op, GError *error)
{
  if (op->vm_is_new) {
    g_autoptr(GError) local_error = NULL;
    smolvm_network_release (op->self->network, op->vm_id, smolvm_vm_get_network_config (op->vm));
    if (!smolvm_rm_rf (smolvm_vm_get_dir (op->vm), &local_error))
      g_warning ("%s", local_error->message);
  }
  op_fail (op, error);
}

/* The VM ends stopped with its previous disk; a recreated VM is gone. */
static void
restore_rollback (Op *op, GError *error)
{
  g_prefix_error (&error, "Cannot restore snapshot '%s': ", op->snapshot_id);
  op->error = error;
  smolvm_vm_stop_async (op->vm, on_restore_rollback_stopped, op);
}

static gboolean
vm_matches_snapshot (SmolvmVm *vm, SmolvmSnapshot *snapshot, GError **error)
{
  g_autoptr(GVariant) vm_config =
    g_variant_ref_sink (smolvm_vm_config_to_variant (smolvm_vm_get_config (vm)));
  g_autoptr(GVariant) snapshot_config =
    g_variant_ref_sink (smolvm_vm_config_to_variant (smolvm_snapshot_get_vm_config (snapshot)));

  if (g_variant_equal (vm_config, snapshot_config) &&
      g_variant_equal (smolvm_vm_get_network_config (vm),
                       smolvm_snapshot_get_network_config (snapshot)))
    return TRUE;
  g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_STATE,
               "VM '%s' now has another configuration or network identity than when snapshot "
               "'%s' was taken; delete the VM, and the restore recreates it as it was",
               smolvm_vm_get_id (vm), smolvm_snapshot_get_id (snapshot));
  return FALSE;
}

static void
run_restore_snapshot (Op *op)
{
  SmolvmManager *self = op->self;
  GError *error = NULL;
  SmolvmVm *user;
  SmolvmSnapshot *snapshot = lookup_snapshot (self, op->snapshot_id, &error);

  if (snapshot == NULL) {
    op_fail (op, error);
    return;
  }
  op->snapshot = g_object_ref (snapshot);
  g_free (op->vm_id);
  op->vm_id = g_strdup (smolvm_snapshot_get_vm_id (snapshot));
  user = vm_using_snapshot (self, op->snapshot_id);
  if (user != NULL) {
    op_fail_literal (op, SMOLVM_ERROR_IN_USE,
                     "Snapshot '%s' is in use: VM '%s' was restored from it and is %s; stop it "
                     "first",
                     op->snapshot_id, smolvm_vm_get_id (user), smolvm_vm_get_state (user));
    return;
  }
  if (smolvm_dbus_snapshot_get_restored (SMOLVM_DBUS_SNAPSHOT (snapshot)) && !op->force) {
    op_fail_literal (op, SMOLVM_ERROR_ALREADY_RESTORED,
                     "Snapshot '%s' was already restored into VM '%s'; use force to restore it "
                     "again",
                     op->snapshot_id,
                     smolvm_dbus_snapshot_get_restored_vm_id (SMOLVM_DBUS_SNAPSHOT (snapshot)));
    return;
  }
  if (!op_hold_snapshot (op, "restore", &error)) {
    op_fail (op, error);
    return;
  }

  op->vm = g_hash_table_lookup (self->vms, op->vm_id);
  if (op->vm != NULL) {
    g_object_ref (op->vm);
    /* the snapshot's identity or nothing: a VM re-created under the same id
     * with other settings would run the old guest under false properties */
    if (!vm_matches_snapshot (op->vm, snapshot, &error)) {
      op_fail (op, error);
      return;
    }
  } else {
    /* the VM was deleted: bring back its identity from the snapshot */
    g_autofree gchar *dir = g_build_filename (self->vms_dir, op->vm_id, NULL);
    g_autofree gchar *runtime_dir = g_build_filename (self->vm_runtime_root, op->vm_id, NULL);
    GVariant *net = smolvm_snapshot_get_network_config (snapshot);

    if (g_hash_table_contains (self->reserved_vm_ids, op->vm_id)) {
      op_fail_literal (op, SMOLVM_ERROR_IN_USE, "VM '%s' is being created", op->vm_id);
      return;
    }
    if (!smolvm_network_claim (self->network, op->vm_id, net, &error)) {
      op_fail (op, error);
      return;
    }
    if (!smolvm_rm_rf (dir, &error) || !smolvm_mkdir_p (dir, 0750, &error)) {
      smolvm_network_release (self->network, op->vm_id, net);
      op_fail (op, error);
      return;
    }
    op->vm = smolvm_vm_new (smolvm_snapshot_get_vm_config (snapshot), net, dir, runtime_dir,
                            self->network, self->binaries);
    op->vm_is_new = TRUE;
    g_hash_table_add (self->reserved_vm_ids, g_strdup (op->vm_id));
    op->holds_vm_id = TRUE;
  }
  if (!op_hold_vm (op, "restore", &error)) {
    op_fail (op, error);
    return;
  }
  if (smolvm_snapshot_get_vmstate_sha256 (snapshot) != NULL)
    smolvm_file_sha256_async (
      smolvm_dbus_snapshot_get_snapshot_path (SMOLVM_DBUS_SNAPSHOT (snapshot)), NULL, NULL,
      on_restore_vmstate_hashed, op);
  else
    restore_stop_vm (op);
}

static gboolean
start_restore_snapshot (SmolvmManager *self, GDBusMethodInvocation *invocation,
                        const gchar *snapshot_id, GVariant *options)
{
  Op *op = op_new (self, invocation);
  GError *error = NULL;

  op->snapshot_id = g_strdup (snapshot_id);
  if (!smolvm_id_validate (snapshot_id, "snapshot id", &error) ||
      !check_options (options, (const gchar *[]){ "resume", "force", NULL }, &error)) {
    op_fail (op, error);
    return G_DBUS_METHOD_INVOCATION_HANDLED;
  }
  op->resume = option_bool (options, "resume");
  op->force = option_bool (options, "force");
  op_set_snapshot_vm_id (op);
  op_authorize (op, SMOLVM_ACTION_SNAPSHOT_RESTORE, "restore", run_restore_snapshot);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_restore_snapshot (SmolvmDbusManager *object, GDBusMethodInvocation *invocation,
                         const gchar *snapshot_id, GVariant *options)
{
  return start_restore_snapshot (SMOLVM_MANAGER (object), invocation, snapshot_id, options);
}

static gboolean
handle_snapshot_restore (SmolvmDbusSnapshot *snapshot, GDBusMethodInvocation *invocation,
                         GVariant *options, gpointer user_data)
{
  return start_restore_snapshot (user_data, invocation,
                                 smolvm_snapshot_get_id (SMOLVM_SNAPSHOT (snapshot)), options);
}

/* ==== DeleteSnapshot ==== */

static void
on_snapshot_files_removed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Op *op = user_data;
  GError *error = NULL;

  if (!smolvm_rm_rf_finish (result, &error)) {
    g_prefix_error (&error, "Snapshot '%s' was deleted, but its files were not all removed: ",
                    op->snapshot_id);
    op_fail (op, error);
    return;
  }
  op_return (op, NULL);
}

static void
run_delete_snapshot (Op *op)
{
  SmolvmManager *self = op->self;
  GError *error = NULL;
  SmolvmVm *user;
  g_autofree gchar *trash = NULL;
  SmolvmSnapshot *snapshot = lookup_snapshot (self, op->snapshot_id, &error);

  if (snapshot == NULL) {
    op_fail (op, error);
    return;
  }
  g_free (op->vm_id);
  op->vm_id = g_strdup (smolvm_snapshot_get_vm_id (snapshot));
  user = vm_using_snapshot (self, op->snapshot_id);
  if (user != NULL) {
    op_fail_literal (op, SMOLVM_ERROR_IN_USE,
                     "Snapshot '%s' is in use: VM '%s' was restored from it and is %s, mapping "
                     "its mem.bin; stop it first",
                     op->snapshot_id, smolvm_vm_get_id (user), smolvm_vm_get_state (user));
    return;
  }
  if (!op_hold_snapshot (op, "delete", &error)) {
    op_fail (op, error);
    return;
  }
  /* one rename takes the snapshot away atomically; removal follows */
  trash = move_aside (self->snapshots_dir, smolvm_snapshot_get_dir (snapshot), &error);
  if (trash == NULL) {
    g_prefix_error (&error, "Cannot delete snapshot '%s': ", op->snapshot_id);
    op_fail (op, error);
    return;
  }
  unexport_object (self, "snapshot", op->snapshot_id);
  g_hash_table_remove (self->snapshots, op->snapshot_id);
  smolvm_rm_rf_async (trash, on_snapshot_files_removed, op);
}

static gboolean
start_delete_snapshot (SmolvmManager *self, GDBusMethodInvocation *invocation,
                       const gchar *snapshot_id, GVariant *options)
{
  Op *op = op_new (self, invocation);
  GError *error = NULL;

  op->snapshot_id = g_strdup (snapshot_id);
  if (!smolvm_id_validate (snapshot_id, "snapshot id", &error) ||
      !check_options (options, (const gchar *[]){ NULL }, &error)) {
    op_fail (op, error);
    return G_DBUS_METHOD_INVOCATION_HANDLED;
  }
  op_set_snapshot_vm_id (op);
  op_authorize (op, SMOLVM_ACTION_SNAPSHOT_DELETE, "delete", run_delete_snapshot);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_delete_snapshot (SmolvmDbusManager *object, GDBusMethodInvocation *invocation,
                        const gchar *snapshot_id, GVariant *options)
{
  return start_delete_snapshot (SMOLVM_MANAGER (object), invocation, snapshot_id, options);
}

static gboolean
handle_snapshot_delete (SmolvmDbusSnapshot *snapshot, GDBusMethodInvocation *invocation,
                        GVariant *options, gpointer user_data)
{
  return start_delete_snapshot (user_data, invocation,
                                smolvm_snapshot_get_id (SMOLVM_SNAPSHOT (snapshot)), options);
}

/* ==== reads ==== */

static gint
compare_snapshots (gconstpointer a, gconstpointer b)
{
  SmolvmSnapshot *sa = *(SmolvmSnapshot **) a;
  SmolvmSnapshot *sb = *(SmolvmSnapshot **) b;
  gint64 ta = smolvm_snapshot_get_created_at (sa);
  gint64 tb = smolvm_snapshot_get_created_at (sb);
  if (ta != tb)
    return ta < tb ? -1 : 1;
  return g_strcmp0 (smolvm_snapshot_get_id (sa), smolvm_snapshot_get_id (sb));
}

static gboolean
handle_list_snapshots (SmolvmDbusManager *object, GDBusMethodInvocation *invocation,
                       const gchar *vm_id)
{
  SmolvmManager *self = SMOLVM_MANAGER (object);
  g_autoptr(GPtrArray) list = g_ptr_array_new ();
  g_auto(GVariantBuilder) b = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE ("a(oa{sv})"));
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, self->snapshots);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    if (vm_id[0] == '\0' || g_str_equal (smolvm_snapshot_get_vm_id (value), vm_id))
      g_ptr_array_add (list, value);
  g_ptr_array_sort (list, compare_snapshots);
  for (guint i = 0; i < list->len; i++) {
    SmolvmSnapshot *snapshot = g_ptr_array_index (list, i);
    g_autofree gchar *path = smolvm_id_object_path ("snapshot", smolvm_snapshot_get_id (snapshot));
    g_variant_builder_add (&b, "(o@a{sv})", path, smolvm_snapshot_to_info (snapshot));
  }
  smolvm_dbus_manager_complete_list_snapshots (object, invocation, g_variant_builder_end (&b));
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_list_vms (SmolvmDbusManager *object, GDBusMethodInvocation *invocation)
{
  SmolvmManager *self = SMOLVM_MANAGER (object);
  g_autoptr(GList) ids = g_hash_table_get_keys (self->vms);
  g_auto(GVariantBuilder) b = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE ("a(oa{sv})"));

  ids = g_list_sort (ids, (GCompareFunc) g_strcmp0);
  for (GList *l = ids; l != NULL; l = l->next) {
    g_autofree gchar *path = smolvm_id_object_path ("vm", l->data);
    g_variant_builder_add (&b, "(o@a{sv})", path,
                           smolvm_vm_to_info (g_hash_table_lookup (self->vms, l->data)));
  }
  smolvm_dbus_manager_complete_list_vms (object, invocation, g_variant_builder_end (&b));
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_get_vm (SmolvmDbusManager *object, GDBusMethodInvocation *invocation, const gchar *vm_id)
{
  g_autoptr(GError) error = NULL;
  g_autofree gchar *path = NULL;

  if (lookup_vm (SMOLVM_MANAGER (object), vm_id, &error) == NULL) {
    g_dbus_method_invocation_return_gerror (invocation, error);
    return G_DBUS_METHOD_INVOCATION_HANDLED;
  }
  path = smolvm_id_object_path ("vm", vm_id);
  smolvm_dbus_manager_complete_get_vm (object, invocation, path);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_get_snapshot (SmolvmDbusManager *object, GDBusMethodInvocation *invocation,
                     const gchar *snapshot_id)
{
  g_autoptr(GError) error = NULL;
  g_autofree gchar *path = NULL;

  if (lookup_snapshot (SMOLVM_MANAGER (object), snapshot_id, &error) == NULL) {
    g_dbus_method_invocation_return_gerror (invocation, error);
    return G_DBUS_METHOD_INVOCATION_HANDLED;
  }
  path = smolvm_id_object_path ("snapshot", snapshot_id);
  smolvm_dbus_manager_complete_get_snapshot (object, invocation, path);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static void
smolvm_manager_iface_init (SmolvmDbusManagerIface *iface)
{
  iface->handle_create_snapshot = handle_create_snapshot;
  iface->handle_restore_snapshot = handle_restore_snapshot;
  iface->handle_delete_snapshot = handle_delete_snapshot;
  iface->handle_list_snapshots = handle_list_snapshots;
  iface->handle_get_snapshot = handle_get_snapshot;
  iface->handle_create_vm = handle_create_vm;
  iface->handle_list_vms = handle_list_vms;
  iface->handle_get_vm = handle_get_vm;
}

/* ---- start-up ---- */

static void
connect_vm (SmolvmManager *self, SmolvmVm *vm)
{
  g_signal_connect_object (vm, "handle-start", G_CALLBACK (handle_vm_start), self, 0);
  g_signal_connect_object (vm, "handle-pause", G_CALLBACK (handle_vm_pause), self, 0);
  g_signal_connect_object (vm, "handle-resume", G_CALLBACK (handle_vm_resume), self, 0);
  g_signal_connect_object (vm, "handle-stop", G_CALLBACK (handle_vm_stop), self, 0);
  g_signal_connect_object (vm, "handle-delete", G_CALLBACK (handle_vm_delete), self, 0);
  g_signal_connect_object (vm, "handle-create-snapshot", G_CALLBACK (handle_vm_create_snapshot),
                           self, 0);
}

static void
connect_snapshot (SmolvmManager *self, SmolvmSnapshot *snapshot)
{
  g_signal_connect_object (snapshot, "handle-restore", G_CALLBACK (handle_snapshot_restore), self,
                           0);
  g_signal_connect_object (snapshot, "handle-delete", G_CALLBACK (handle_snapshot_delete), self,
                           0);
}

/* Dot-entries are ours: .tmp-* is a snapshot that never completed, .trash-*
 * one whose removal was cut short. Neither is a record. */
static gboolean
remove_leftover (const gchar *dir, const gchar *name)
{
  g_autofree gchar *path = NULL;
  g_autoptr(GError) error = NULL;

  if (name[0] != '.')
    return FALSE;
  path = g_build_filename (dir, name, NULL);
  if (g_str_has_prefix (name, ".tmp-") || g_str_has_prefix (name, ".trash-")) {
    g_message ("Removing leftover %s", path);
    if (!smolvm_rm_rf (path, &error))
      g_warning ("%s", error->message);
  }
  return TRUE;
}

/* A restore sets the VM's disk aside as disk.ext4.pre-restore and removes
 * it once the VM runs the snapshot. Found at start-up, it means the daemon
 * died in between: a VM that got as far as running or paused keeps the
 * snapshot's disk; otherwise its own disk is put back. */
static void
recover_interrupted_restore (SmolvmManager *self, SmolvmVm *vm)
{
  const gchar *disk = smolvm_dbus_vm_get_disk_path (SMOLVM_DBUS_VM (vm));
  g_autofree gchar *backup = g_strconcat (disk, ".pre-restore", NULL);
  g_autoptr(GError) error = NULL;

  if (!g_file_test (backup, G_FILE_TEST_EXISTS))
    return;
  if (smolvm_vm_is_active (vm)) {
    g_message ("VM '%s': a restore completed before a crash; dropping its old disk",
               smolvm_vm_get_id (vm));
    if (!discard (self, backup, &error))
      g_warning ("%s", error->message);
    return;
  }
  g_message ("VM '%s': undoing a restore a crash interrupted; its own disk is back",
             smolvm_vm_get_id (vm));
  if (!discard (self, disk, &error) || rename (backup, disk) != 0)
    g_warning ("Cannot put back the disk of VM '%s' (it is at %s): %s", smolvm_vm_get_id (vm),
               backup, error != NULL ? error->message : g_strerror (errno));
}

static gboolean
load_state (SmolvmManager *self, GError **error)
{
  g_autoptr(GDir) vms = NULL;
  g_autoptr(GDir) snapshots = NULL;
  const gchar *name;

  if (!smolvm_mkdir_p (self->vms_dir, 0750, error) ||
      !smolvm_mkdir_p (self->snapshots_dir, 0750, error) ||
      !smolvm_mkdir_p (self->vm_runtime_root, 0750, error))
    return FALSE;

  snapshots = g_dir_open (self->snapshots_dir, 0, error);
  if (snapshots == NULL)
    return FALSE;
  while ((name = g_dir_read_name (snapshots)) != NULL) {
    g_autofree gchar *dir = g_build_filename (self->snapshots_dir, name, NULL);
    g_autoptr(GError) local_error = NULL;
    g_autoptr(SmolvmSnapshot) snapshot = NULL;

    if (remove_leftover (self->snapshots_dir, name))
      continue;
    snapshot = smolvm_snapshot_load (dir, &local_error);
    if (snapshot == NULL) {
      g_warning ("Skipping snapshot: %s", local_error->message);
      continue;
    }
    add_snapshot (self, snapshot);
  }

  vms = g_dir_open (self->vms_dir, 0, error);
  if (vms == NULL)
    return FALSE;
  while ((name = g_dir_read_name (vms)) != NULL) {
    g_autofree gchar *dir = g_build_filename (self->vms_dir, name, NULL);
    g_autoptr(GError) local_error = NULL;
    g_autoptr(SmolvmVm) vm = NULL;

    if (remove_leftover (self->vms_dir, name))
      continue;
    vm = smolvm_vm_load (dir, self->vm_runtime_root, self->network, self->binaries, &local_error);
    if (vm == NULL ||
        !smolvm_network_claim (self->network, name, smolvm_vm_get_network_config (vm),
                               &local_error)) {
      g_warning ("Skipping VM: %s", local_error->message);
      continue;
    }
    recover_interrupted_restore (self, vm);
    add_vm (self, vm);
    smolvm_vm_reattach_async (vm, NULL, NULL);
  }
  return TRUE;
}

SmolvmManager *
smolvm_manager_new (const SmolvmManagerOptions *options, GError **error)
{
  g_autoptr(SmolvmManager) self = g_object_new (SMOLVM_TYPE_MANAGER, NULL);
  g_autoptr(GPtrArray) backends = g_ptr_array_new ();

  self->session = options->session;
  self->state_dir = g_strdup (options->state_dir);
  self->vms_dir = g_build_filename (options->state_dir, "vms", NULL);
  self->snapshots_dir = g_build_filename (options->state_dir, "snapshots", NULL);
  self->vm_runtime_root = g_build_filename (options->runtime_dir, "vms", NULL);
  self->authority = smolvm_authority_new (options->session);
  self->object_manager = g_dbus_object_manager_server_new (SMOLVM_MANAGER_PATH);
  self->network = smolvm_network_new (options->network_pool, error);
  if (self->network == NULL)
    return NULL;
  if (options->firecracker_bin != NULL) {
    g_hash_table_insert (self->binaries, g_strdup ("firecracker"),
                         g_strdup (options->firecracker_bin));
    g_ptr_array_add (backends, "firecracker");
  }
  if (options->qemu_bin != NULL && options->qemu_machine != NULL) {
    g_hash_table_insert (self->binaries, g_strdup ("qemu"), g_strdup (options->qemu_bin));
    self->qemu_machine = g_strdup (options->qemu_machine);
    g_ptr_array_add (backends, "qemu");
  }
  g_ptr_array_add (backends, NULL);
  smolvm_dbus_manager_set_version (SMOLVM_DBUS_MANAGER (self), PACKAGE_VERSION);
  smolvm_dbus_manager_set_backends (SMOLVM_DBUS_MANAGER (self),
                                    (const gchar *const *) backends->pdata);
  if (!load_state (self, error)) {
    g_prefix_error (error, "Cannot load state from %s: ", options->state_dir);
    return NULL;
  }
  return g_steal_pointer (&self);
}

gboolean
smolvm_manager_export (SmolvmManager *self, GDBusConnection *connection, GError **error)
{
  if (!g_dbus_interface_skeleton_export (G_DBUS_INTERFACE_SKELETON (self), connection,
                                         SMOLVM_MANAGER_PATH, error))
    return FALSE;
  g_dbus_object_manager_server_set_connection (self->object_manager, connection);
  return TRUE;
}
