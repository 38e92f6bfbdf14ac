/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include <json-glib/json-glib.h>

#include "smolvm-error.h"
#include "smolvm-fileutil.h"
#include "smolvm-firecracker.h"
#include "smolvm-qemu.h"
#include "smolvm-id.h"
#include "smolvm-json.h"
#include "smolvm-record-writer.h"
#include "smolvm-store.h"
#include "smolvm-vm-dbus.h"
#include "smolvm-vm.h"

struct _SmolvmVm {
  SmolvmDbusVmSkeleton parent_instance;
  SmolvmContext *ctx;
  gchar *object_path;
  SmolvmVmConfig *config;
  gchar *dir;
  gchar *runtime_dir;
  SmolvmNetwork *network;
  GHashTable *binaries;
  SmolvmVmm *vmm;
  gchar *busy_with;  /* the operation under way, or NULL */
  GPid saved_pid;    /* from vm.json, until reattached */
  gboolean paused_by_snapshot; /* in vm.json: a snapshot paused it, and resumes it */
  gboolean exit_missed;       /* the VMM exited while an operation was under way */
  gboolean exit_missed_clean; /* ... and how */
  gchar *mapped_snapshot;     /* whose mem.bin the guest maps (restored or cloned from it) */
  gchar *record_key; /* the last vm.json queued, running and paused alike (see save_or_warn) */
};

enum { SIGNAL_MAPPING_CHANGED, N_SIGNALS };
static guint signals[N_SIGNALS];

G_DEFINE_TYPE_WITH_CODE (SmolvmVm, smolvm_vm, SMOLVM_DBUS_TYPE_VM_SKELETON,
                         G_IMPLEMENT_INTERFACE (SMOLVM_DBUS_TYPE_VM, smolvm_vm_dbus_iface_init))

static void
drop_vmm (SmolvmVm *self)
{
  if (self->vmm == NULL)
    return;
  g_signal_handlers_disconnect_by_data (self->vmm, self);
  g_clear_object (&self->vmm);
  self->exit_missed = FALSE;
  smolvm_dbus_vm_set_pid (SMOLVM_DBUS_VM (self), 0);
}

static void handle_vmm_exit (SmolvmVm *self, gboolean clean);

static void
smolvm_vm_finalize (GObject *object)
{
  SmolvmVm *self = SMOLVM_VM (object);
  /* no property setters here: a notify would revive the object */
  if (self->vmm != NULL)
    g_signal_handlers_disconnect_by_data (self->vmm, self);
  g_clear_object (&self->vmm);
  smolvm_vm_config_free (self->config);
  g_free (self->object_path);
  g_free (self->dir);
  g_free (self->runtime_dir);
  g_clear_object (&self->network);
  g_clear_pointer (&self->binaries, g_hash_table_unref);
  g_free (self->busy_with);
  g_free (self->mapped_snapshot);
  g_free (self->record_key);
  G_OBJECT_CLASS (smolvm_vm_parent_class)->finalize (object);
}

static void
smolvm_vm_class_init (SmolvmVmClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = smolvm_vm_finalize;
  /* whether the VM maps a snapshot's mem.bin may have changed (its state,
   * or the snapshot it maps): a snapshot's Clones follows it */
  signals[SIGNAL_MAPPING_CHANGED] = g_signal_new ("mapping-changed", G_TYPE_FROM_CLASS (klass),
                                                  G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                                                  G_TYPE_NONE, 0);
}

static void
smolvm_vm_init (SmolvmVm *self)
{
}

SmolvmVm *
smolvm_vm_new (SmolvmContext *ctx, const SmolvmVmConfig *config, GVariant *network_config)
{
  SmolvmVm *self = g_object_new (SMOLVM_TYPE_VM, NULL);
  SmolvmDbusVm *iface = SMOLVM_DBUS_VM (self);
  g_autofree gchar *disk = NULL;
  g_autofree gchar *console = NULL;

  self->ctx = ctx;
  self->object_path = smolvm_id_object_path ("vm", config->vm_id);
  self->config = smolvm_vm_config_copy (config);
  self->dir = smolvm_store_vm_dir (ctx->store, config->vm_id);
  self->runtime_dir = smolvm_store_vm_runtime_dir (ctx->store, config->vm_id);
  self->network = g_object_ref (ctx->network);
  self->binaries = g_hash_table_ref (ctx->binaries);
  disk = smolvm_store_vm_file (ctx->store, config->vm_id, SMOLVM_VM_DISK);
  console = smolvm_store_vm_runtime_file (ctx->store, config->vm_id, SMOLVM_VM_CONSOLE_LOG);

  smolvm_dbus_vm_set_id (iface, config->vm_id);
  smolvm_dbus_vm_set_state (iface, SMOLVM_VM_STATE_CREATED);
  smolvm_dbus_vm_set_backend (iface, config->backend);
  smolvm_dbus_vm_set_pid (iface, 0);
  smolvm_dbus_vm_set_vcpu_count (iface, config->vcpu_count);
  smolvm_dbus_vm_set_mem_size_mib (iface, config->mem_size_mib);
  smolvm_dbus_vm_set_kernel_path (iface, config->kernel_path);
  smolvm_dbus_vm_set_initrd_path (iface, config->initrd_path);
  smolvm_dbus_vm_set_rootfs_path (iface, config->rootfs_path);
  smolvm_dbus_vm_set_boot_args (iface, config->boot_args);
  smolvm_dbus_vm_set_accel (iface, config->accel);
  smolvm_dbus_vm_set_machine (iface, config->machine);
  smolvm_dbus_vm_set_disk_path (iface, disk);
  smolvm_dbus_vm_set_console_log_path (iface, console);
  smolvm_dbus_vm_set_network_enabled (iface, config->network);
  smolvm_dbus_vm_set_network_config (
    iface, network_config != NULL ? network_config : g_variant_new ("a{sv}", NULL));
  smolvm_dbus_vm_set_restored_from (iface, "");
  smolvm_dbus_vm_set_cloned_from (iface, "");
  return self;
}

const gchar *smolvm_vm_get_id (SmolvmVm *self) { return self->config->vm_id; }
const gchar *smolvm_vm_get_object_path (SmolvmVm *self) { return self->object_path; }
SmolvmContext *smolvm_vm_get_context (SmolvmVm *self) { return self->ctx; }
const gchar *smolvm_vm_get_disk_path (SmolvmVm *self)
{
  return smolvm_dbus_vm_get_disk_path (SMOLVM_DBUS_VM (self));
}
const gchar *smolvm_vm_get_dir (SmolvmVm *self) { return self->dir; }
const gchar *smolvm_vm_get_runtime_dir (SmolvmVm *self) { return self->runtime_dir; }
const SmolvmVmConfig *smolvm_vm_get_config (SmolvmVm *self) { return self->config; }
SmolvmVmm *smolvm_vm_get_vmm (SmolvmVm *self) { return self->vmm; }

const gchar *
smolvm_vm_get_state (SmolvmVm *self)
{
  return smolvm_dbus_vm_get_state (SMOLVM_DBUS_VM (self));
}

const gchar *
smolvm_vm_get_restored_from (SmolvmVm *self)
{
  return smolvm_dbus_vm_get_restored_from (SMOLVM_DBUS_VM (self));
}

GVariant *
smolvm_vm_get_network_config (SmolvmVm *self)
{
  return smolvm_dbus_vm_get_network_config (SMOLVM_DBUS_VM (self));
}

gboolean
smolvm_vm_is_active (SmolvmVm *self)
{
  const gchar *state = smolvm_vm_get_state (self);
  return g_str_equal (state, SMOLVM_VM_STATE_RUNNING) || g_str_equal (state, SMOLVM_VM_STATE_PAUSED);
}

gboolean
smolvm_vm_begin_op (SmolvmVm *self, const gchar *what, GError **error)
{
  if (self->busy_with != NULL) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_STATE,
                 "VM '%s' is busy (%s in progress); try again when it is done",
                 smolvm_vm_get_id (self), self->busy_with);
    return FALSE;
  }
  self->busy_with = g_strdup (what);
  return TRUE;
}

void
smolvm_vm_end_op (SmolvmVm *self)
{
  g_clear_pointer (&self->busy_with, g_free);
  /* The VMM exited during the operation, which did not deal with it (a
   * pause or a snapshot that failed): the VM must not stay running or
   * paused with no process behind it. */
  if (self->exit_missed && self->vmm != NULL)
    handle_vmm_exit (self, self->exit_missed_clean);
}

gboolean
smolvm_vm_is_busy (SmolvmVm *self)
{
  return self->busy_with != NULL;
}

/* @state: what the record says the state is */
static gchar *
vm_to_json_as (SmolvmVm *self, const gchar *state)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "vm_id");
  json_builder_add_string_value (b, smolvm_vm_get_id (self));
  json_builder_set_member_name (b, "config");
  json_builder_add_value (b, smolvm_vm_config_to_json (self->config));
  json_builder_set_member_name (b, "network_config");
  json_builder_add_value (b, smolvm_string_dict_to_json (smolvm_vm_get_network_config (self)));
  json_builder_set_member_name (b, "state");
  json_builder_add_string_value (b, state);
  json_builder_set_member_name (b, "pid");
  json_builder_add_int_value (b, smolvm_dbus_vm_get_pid (SMOLVM_DBUS_VM (self)));
  json_builder_set_member_name (b, "restored_from");
  json_builder_add_string_value (b, smolvm_vm_get_restored_from (self));
  json_builder_set_member_name (b, "cloned_from");
  json_builder_add_string_value (b, smolvm_vm_get_cloned_from (self));
  json_builder_set_member_name (b, "mapped_snapshot");
  json_builder_add_string_value (b, smolvm_vm_get_mapped_snapshot (self));
  json_builder_set_member_name (b, "paused_by_snapshot");
  json_builder_add_boolean_value (b, self->paused_by_snapshot);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  json_generator_set_pretty (gen, TRUE);
  return json_generator_to_data (gen, NULL);
}

/* The record as a restarted daemon uses it: whether a VMM ran, not whether
 * it was paused, which it asks the VMM (smolvm_vm_reattach_async). */
static gchar *
vm_record_key (SmolvmVm *self)
{
  const gchar *state = smolvm_vm_get_state (self);
  return vm_to_json_as (self, g_str_equal (state, SMOLVM_VM_STATE_PAUSED)
                                ? SMOLVM_VM_STATE_RUNNING
                                : state);
}

/* The record to write, noted as the last one queued. */
static gchar *
vm_to_json (SmolvmVm *self)
{
  g_free (self->record_key);
  self->record_key = vm_record_key (self);
  return vm_to_json_as (self, smolvm_vm_get_state (self));
}

static void
on_vm_saved (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  SmolvmVm *self = g_task_get_source_object (task);
  g_autoptr(GError) error = NULL;

  if (!smolvm_record_writer_write_finish (SMOLVM_RECORD_WRITER (source), result, &error)) {
    g_prefix_error (&error, "Cannot save VM '%s': ", smolvm_vm_get_id (self));
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  g_task_return_boolean (task, TRUE);
}

void
smolvm_vm_save_async (SmolvmVm *self, GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = g_task_new (self, NULL, callback, user_data);
  g_autofree gchar *json = vm_to_json (self);
  g_autofree gchar *path =
    smolvm_store_vm_file (self->ctx->store, smolvm_vm_get_id (self), SMOLVM_VM_METADATA);

  g_task_set_source_tag (task, smolvm_vm_save_async);
  smolvm_record_writer_write_async (self->ctx->records, path, json, on_vm_saved,
                                    g_steal_pointer (&task));
}

gboolean
smolvm_vm_save_finish (SmolvmVm *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* State changes are persisted at once so that a restarted daemon knows
 * which VMs had a VMM (running or paused: vm.json's state may say either
 * while a VMM runs): queued to the record writer, which a reply flushes
 * first (smolvm-call.c). A failed write is logged: the live state is right,
 * and the next change writes again. */
static void
save_or_warn (SmolvmVm *self)
{
  g_autofree gchar *key = vm_record_key (self);
  g_autofree gchar *json = NULL;
  g_autofree gchar *path = NULL;

  /* A pause or a resume of the same VMM, and nothing else: a restarted
   * daemon reads the same from either record (it asks the VMM whether it
   * is paused), so no write, and no reply waits for one. A snapshot's
   * pause costs one write fewer; its mark (paused_by_snapshot) is a change
   * and is written. */
  if (g_strcmp0 (key, self->record_key) == 0)
    return;
  json = vm_to_json (self);
  path = smolvm_store_vm_file (self->ctx->store, smolvm_vm_get_id (self), SMOLVM_VM_METADATA);
  smolvm_record_writer_write (self->ctx->records, path, json);
}

void
smolvm_vm_set_state (SmolvmVm *self, const gchar *state)
{
  SmolvmDbusVm *iface = SMOLVM_DBUS_VM (self);
  smolvm_dbus_vm_set_state (iface, state);
  smolvm_dbus_vm_set_pid (iface, self->vmm != NULL ? (guint) smolvm_vmm_get_pid (self->vmm) : 0);
  save_or_warn (self);
  g_signal_emit (self, signals[SIGNAL_MAPPING_CHANGED], 0);
}

static void
on_mark_written (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  SmolvmVm *self = g_task_get_source_object (task);
  g_autoptr(GError) error = NULL;

  if (!smolvm_record_writer_write_finish (SMOLVM_RECORD_WRITER (source), result, &error)) {
    self->paused_by_snapshot = FALSE;
    g_prefix_error (&error, "Cannot save VM '%s': ", smolvm_vm_get_id (self));
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  g_task_return_boolean (task, TRUE);
}

void
smolvm_vm_mark_paused_by_snapshot_async (SmolvmVm *self, GAsyncReadyCallback callback,
                                         gpointer user_data)
{
  GTask *task = g_task_new (self, NULL, callback, user_data);
  g_autofree gchar *json = NULL;
  g_autofree gchar *path =
    smolvm_store_vm_file (self->ctx->store, smolvm_vm_get_id (self), SMOLVM_VM_METADATA);

  self->paused_by_snapshot = TRUE;
  json = vm_to_json (self);
  /* in the record writer's worker: in place before the pause it announces.
   * Only a daemon killed while the VMM runs on needs it (a machine that
   * crashes takes the VMM along, and start-up then finds the VM stopped),
   * so the pause need not wait for the rename to be synced as well. */
  smolvm_record_writer_write_visible_async (self->ctx->records, path, json, on_mark_written,
                                            task);
}

gboolean
smolvm_vm_mark_paused_by_snapshot_finish (SmolvmVm *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

void
smolvm_vm_clear_paused_by_snapshot (SmolvmVm *self)
{
  /* cleared already with a resume's state: nothing to write */
  if (!self->paused_by_snapshot)
    return;
  self->paused_by_snapshot = FALSE;
  /* goes with the next reply's flush: at worst a crash keeps the mark, and
   * start-up resumes a VM that the snapshot had paused */
  save_or_warn (self);
}

static void
set_mapped_snapshot (SmolvmVm *self, const gchar *snapshot_id)
{
  g_free (self->mapped_snapshot);
  self->mapped_snapshot = g_strdup (snapshot_id != NULL ? snapshot_id : "");
}

void
smolvm_vm_set_restored_from (SmolvmVm *self, const gchar *snapshot_id)
{
  smolvm_dbus_vm_set_restored_from (SMOLVM_DBUS_VM (self), snapshot_id != NULL ? snapshot_id : "");
  set_mapped_snapshot (self, snapshot_id);
  save_or_warn (self);
  g_signal_emit (self, signals[SIGNAL_MAPPING_CHANGED], 0);
}

void
smolvm_vm_set_cloned_from (SmolvmVm *self, const gchar *snapshot_id)
{
  smolvm_dbus_vm_set_cloned_from (SMOLVM_DBUS_VM (self), snapshot_id);
  set_mapped_snapshot (self, snapshot_id);
  g_signal_emit (self, signals[SIGNAL_MAPPING_CHANGED], 0);
}

const gchar *
smolvm_vm_get_cloned_from (SmolvmVm *self)
{
  return smolvm_dbus_vm_get_cloned_from (SMOLVM_DBUS_VM (self));
}

const gchar *
smolvm_vm_get_mapped_snapshot (SmolvmVm *self)
{
  return self->mapped_snapshot != NULL ? self->mapped_snapshot : "";
}

gboolean
smolvm_vm_maps_snapshot (SmolvmVm *self, const gchar *snapshot_id)
{
  return smolvm_vm_is_active (self) && g_strcmp0 (smolvm_vm_get_mapped_snapshot (self),
                                                  snapshot_id) == 0;
}

static const gchar *const known_states[] = {
  SMOLVM_VM_STATE_CREATED, SMOLVM_VM_STATE_RUNNING, SMOLVM_VM_STATE_PAUSED,
  SMOLVM_VM_STATE_STOPPED, SMOLVM_VM_STATE_ERROR, NULL
};

SmolvmVm *
smolvm_vm_load (SmolvmContext *ctx, const gchar *dir, GError **error)
{
  g_autofree gchar *dirname = g_path_get_basename (dir);
  g_autofree gchar *path = smolvm_store_vm_file (ctx->store, dirname, SMOLVM_VM_METADATA);
  g_autoptr(GError) local_error = NULL;
  g_autofree gchar *data = NULL;
  g_autoptr(JsonNode) root = NULL;
  gsize length = 0;
  g_autoptr(SmolvmVmConfig) config = NULL;
  g_autoptr(GVariant) net = NULL;
  SmolvmVm *self;
  JsonObject *o;
  JsonNode *config_node;
  const gchar *state, *restored_from, *cloned_from, *mapped;
  gint64 pid;

  data = smolvm_store_read_record (path, &length, error);
  if (data == NULL)
    return NULL;
  root = smolvm_json_parse_object (data, (gssize) length, &local_error);
  if (root == NULL) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "Cannot read %s: %s", path,
                 local_error->message);
    return NULL;
  }
  o = json_node_get_object (root);
  /* everything is checked before anything is used: a record that does not
   * validate is skipped whole, never half-loaded */
  config_node = json_object_get_member (o, "config");
  if (config_node == NULL || !JSON_NODE_HOLDS_OBJECT (config_node) ||
      (config = smolvm_vm_config_new_from_json (json_node_get_object (config_node),
                                                &local_error)) == NULL) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "Invalid config in %s: %s", path,
                 local_error != NULL ? local_error->message : "missing or not an object");
    return NULL;
  }
  if (g_strcmp0 (config->vm_id, dirname) != 0 || !smolvm_id_is_valid (config->vm_id)) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED,
                 "Invalid %s: VM id '%s' does not match its directory", path, config->vm_id);
    return NULL;
  }
  net = smolvm_string_dict_from_json_member (o, "network_config", &local_error);
  if (net == NULL) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "Invalid %s: %s", path,
                 local_error->message);
    return NULL;
  }
  g_variant_ref_sink (net);
  if (!smolvm_json_member_is (o, "state", G_TYPE_STRING) ||
      !smolvm_json_member_is (o, "restored_from", G_TYPE_STRING) ||
      !smolvm_json_member_is (o, "cloned_from", G_TYPE_STRING) ||
      !smolvm_json_member_is (o, "mapped_snapshot", G_TYPE_STRING) ||
      !smolvm_json_member_is (o, "pid", G_TYPE_INT64) ||
      !smolvm_json_member_is (o, "paused_by_snapshot", G_TYPE_BOOLEAN)) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED,
                 "Invalid %s: state, restored_from, cloned_from, mapped_snapshot, pid or "
                 "paused_by_snapshot has the wrong type",
                 path);
    return NULL;
  }
  state = json_object_get_string_member_with_default (o, "state", SMOLVM_VM_STATE_STOPPED);
  if (!g_strv_contains (known_states, state)) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "Invalid %s: unknown state '%s'",
                 path, state);
    return NULL;
  }
  restored_from = json_object_get_string_member_with_default (o, "restored_from", "");
  /* before clones, only a restore mapped a snapshot */
  cloned_from = json_object_get_string_member_with_default (o, "cloned_from", "");
  mapped = json_object_get_string_member_with_default (o, "mapped_snapshot", restored_from);
  {
    const gchar **ids[] = { &restored_from, &cloned_from, &mapped };
    for (gsize i = 0; i < G_N_ELEMENTS (ids); i++)
      if (*ids[i] == NULL) /* a JSON null */
        *ids[i] = "";
  }
  {
    const gchar *ids[] = { restored_from, cloned_from, mapped };
    for (gsize i = 0; i < G_N_ELEMENTS (ids); i++) {
      if (ids[i][0] != '\0' && !smolvm_id_is_valid (ids[i])) {
        g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED,
                     "Invalid %s: restored_from, cloned_from or mapped_snapshot is not a "
                     "snapshot id",
                     path);
        return NULL;
      }
    }
  }
  pid = json_object_get_int_member_with_default (o, "pid", 0);
  if (pid < 0 || pid > G_MAXINT) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "Invalid %s: pid out of range", path);
    return NULL;
  }
  self = smolvm_vm_new (ctx, config, net);
  smolvm_dbus_vm_set_state (SMOLVM_DBUS_VM (self), state);
  smolvm_dbus_vm_set_restored_from (SMOLVM_DBUS_VM (self), restored_from);
  smolvm_dbus_vm_set_cloned_from (SMOLVM_DBUS_VM (self), cloned_from);
  set_mapped_snapshot (self, mapped);
  self->saved_pid = (GPid) pid;
  self->paused_by_snapshot = json_object_get_boolean_member_with_default (o, "paused_by_snapshot",
                                                                          FALSE);
  return self;
}

GVariant *
smolvm_vm_to_info (SmolvmVm *self)
{
  SmolvmDbusVm *iface = SMOLVM_DBUS_VM (self);
  g_auto(GVariantBuilder) b = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE_VARDICT);
  g_autoptr(GVariant) config = g_variant_ref_sink (smolvm_vm_config_to_variant (self->config));
  GVariantIter iter;
  const gchar *key;
  GVariant *value;

  g_variant_iter_init (&iter, config);
  while (g_variant_iter_next (&iter, "{&sv}", &key, &value)) {
    g_variant_builder_add (&b, "{sv}", key, value);
    g_variant_unref (value);
  }
  g_variant_builder_add (&b, "{sv}", "state", g_variant_new_string (smolvm_vm_get_state (self)));
  g_variant_builder_add (&b, "{sv}", "pid", g_variant_new_uint32 (smolvm_dbus_vm_get_pid (iface)));
  g_variant_builder_add (&b, "{sv}", "disk_path",
                         g_variant_new_string (smolvm_dbus_vm_get_disk_path (iface)));
  g_variant_builder_add (&b, "{sv}", "console_log_path",
                         g_variant_new_string (smolvm_dbus_vm_get_console_log_path (iface)));
  g_variant_builder_add (&b, "{sv}", "network_config", smolvm_vm_get_network_config (self));
  g_variant_builder_add (&b, "{sv}", "restored_from",
                         g_variant_new_string (smolvm_vm_get_restored_from (self)));
  g_variant_builder_add (&b, "{sv}", "cloned_from",
                         g_variant_new_string (smolvm_vm_get_cloned_from (self)));
  return g_variant_builder_end (&b);
}

/* ---- the VMM process ---- */

static void
handle_vmm_exit (SmolvmVm *self, gboolean clean)
{
  if (clean)
    g_message ("The VMM of VM '%s' exited: the guest shut down", smolvm_vm_get_id (self));
  else
    g_warning ("The VMM of VM '%s' exited unexpectedly; see %s", smolvm_vm_get_id (self),
               smolvm_vmm_get_console_log_path (self->vmm));
  smolvm_network_tap_down (self->network, smolvm_vm_get_network_config (self));
  drop_vmm (self);
  smolvm_vm_set_state (self, clean ? SMOLVM_VM_STATE_STOPPED : SMOLVM_VM_STATE_ERROR);
}

static void
on_vmm_exited (SmolvmVmm *vmm, gboolean clean, gpointer user_data)
{
  SmolvmVm *self = user_data;

  /* an operation under way handles the exit itself (a stop, a failed
   * launch), or smolvm_vm_end_op() does once it is over */
  if (self->busy_with != NULL) {
    self->exit_missed = TRUE;
    self->exit_missed_clean = clean;
    return;
  }
  handle_vmm_exit (self, clean);
}

static void
on_vmm_guest_state (SmolvmVmm *vmm, gboolean paused, gpointer user_data)
{
  SmolvmVm *self = user_data;
  const gchar *state = paused ? SMOLVM_VM_STATE_PAUSED : SMOLVM_VM_STATE_RUNNING;

  /* operations set the state they end in themselves */
  if (self->busy_with != NULL || !smolvm_vm_is_active (self) ||
      g_str_equal (smolvm_vm_get_state (self), state))
    return;
  smolvm_vm_set_state (self, state);
}

/* The config a VMM boots: the VM's own copies of its kernel and initrd,
 * which no caller can change, in place of the paths they came from. */
static SmolvmVmConfig *
boot_config (SmolvmVm *self)
{
  SmolvmVmConfig *config = smolvm_vm_config_copy (self->config);
  struct {
    const gchar *name;
    gchar **path;
  } images[] = { { SMOLVM_VM_KERNEL, &config->kernel_path },
                 { SMOLVM_VM_INITRD, &config->initrd_path } };

  for (gsize i = 0; i < G_N_ELEMENTS (images); i++) {
    g_autofree gchar *own = g_build_filename (self->dir, images[i].name, NULL);
    if (g_file_test (own, G_FILE_TEST_IS_REGULAR)) {
      g_free (*images[i].path);
      *images[i].path = g_steal_pointer (&own);
    }
  }
  return config;
}

static gboolean
ensure_vmm (SmolvmVm *self, GError **error)
{
  g_autoptr(SmolvmVmConfig) config = NULL;
  const gchar *binary;
  const gchar *backend = self->config->backend;
  SmolvmDbusVm *iface = SMOLVM_DBUS_VM (self);
  GType type;

  if (self->vmm != NULL)
    return TRUE;
  if (g_str_equal (backend, "firecracker"))
    type = SMOLVM_TYPE_FIRECRACKER;
  else if (g_str_equal (backend, "qemu"))
    type = SMOLVM_TYPE_QEMU;
  else
    type = G_TYPE_INVALID;
  binary = g_hash_table_lookup (self->binaries, backend);
  if (binary == NULL || type == G_TYPE_INVALID) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_UNSUPPORTED,
                 "Backend '%s' is not available in this daemon", backend);
    return FALSE;
  }
  if (!smolvm_mkdir_p (self->runtime_dir, 0700, error))
    return FALSE;
  config = boot_config (self);
  self->vmm = smolvm_vmm_new (type, smolvm_vm_get_id (self), config,
                              smolvm_vm_get_network_config (self),
                              smolvm_dbus_vm_get_disk_path (iface), self->runtime_dir,
                              smolvm_dbus_vm_get_console_log_path (iface), binary);
  g_signal_connect (self->vmm, "exited", G_CALLBACK (on_vmm_exited), self);
  g_signal_connect (self->vmm, "guest-state", G_CALLBACK (on_vmm_guest_state), self);
  return TRUE;
}

/* Common tail of start and restore: a failed launch leaves no process. */
typedef struct {
  gchar *vmstate_path; /* NULL: a fresh boot */
  gchar *mem_path;
  gboolean resume;
  SmolvmProgress *progress;
  GError *error;
} Launch;

static void
launch_free (Launch *launch)
{
  g_free (launch->vmstate_path);
  g_free (launch->mem_path);
  g_clear_error (&launch->error);
  g_clear_object (&launch->progress);
  g_free (launch);
}

static void
on_launch_failed_terminated (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  SmolvmVm *self = g_task_get_source_object (task);
  Launch *launch = g_task_get_task_data (task);

  smolvm_vmm_terminate_finish (SMOLVM_VMM (source), result);
  smolvm_network_tap_down (self->network, smolvm_vm_get_network_config (self));
  drop_vmm (self);
  smolvm_vm_set_state (self, SMOLVM_VM_STATE_STOPPED);
  g_task_return_error (task, g_steal_pointer (&launch->error));
}

static void
on_launch_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  SmolvmVm *self = g_task_get_source_object (task);
  Launch *launch = g_task_get_task_data (task);

  if (!smolvm_vmm_op_finish (SMOLVM_VMM (source), result, &launch->error)) {
    g_prefix_error (&launch->error, "Cannot %s VM '%s': ",
                    launch->vmstate_path != NULL ? "restore" : "start", smolvm_vm_get_id (self));
    smolvm_vmm_terminate_async (self->vmm, on_launch_failed_terminated, g_steal_pointer (&task));
    return;
  }
  smolvm_vm_set_state (self, launch->vmstate_path == NULL || launch->resume
                               ? SMOLVM_VM_STATE_RUNNING
                               : SMOLVM_VM_STATE_PAUSED);
  g_task_return_boolean (task, TRUE);
}

static void
on_launch_tap_up (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  SmolvmVm *self = g_task_get_source_object (task);
  Launch *launch = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;
  GCancellable *cancellable;

  if (!smolvm_network_tap_up_finish (SMOLVM_NETWORK (source), result, &error) ||
      !ensure_vmm (self, &error)) {
    smolvm_network_tap_down (self->network, smolvm_vm_get_network_config (self));
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  /* read before the task is stolen: argument order is unspecified */
  cancellable = g_task_get_cancellable (task);
  if (launch->vmstate_path == NULL)
    smolvm_vmm_boot_async (self->vmm, NULL, on_launch_done, g_steal_pointer (&task));
  else
    /* a restore of this very VM: its TAP device is the one saved */
    smolvm_vmm_snapshot_load_async (self->vmm, launch->vmstate_path, launch->mem_path,
                                    launch->resume, NULL, launch->progress, cancellable,
                                    on_launch_done, g_steal_pointer (&task));
}

static void
launch_async (SmolvmVm *self, const gchar *vmstate_path, const gchar *mem_path, gboolean resume,
              SmolvmProgress *progress, GCancellable *cancellable, GAsyncReadyCallback callback,
              gpointer user_data)
{
  g_autoptr(GTask) task = g_task_new (self, cancellable, callback, user_data);
  Launch *launch = g_new0 (Launch, 1);
  const gchar *state = smolvm_vm_get_state (self);

  launch->vmstate_path = g_strdup (vmstate_path);
  launch->mem_path = g_strdup (mem_path);
  launch->resume = resume;
  launch->progress = progress != NULL ? g_object_ref (progress) : NULL;
  /* a cancelled launch still ends through on_launch_done, process gone */
  g_task_set_check_cancellable (task, FALSE);
  g_task_set_task_data (task, launch, (GDestroyNotify) launch_free);

  if (self->vmm != NULL && smolvm_vmm_is_running (self->vmm)) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_STATE,
                             "VM '%s' is %s; stop it first", smolvm_vm_get_id (self), state);
    return;
  }
  drop_vmm (self);
  smolvm_network_tap_up_async (self->network, smolvm_vm_get_network_config (self),
                               on_launch_tap_up, g_steal_pointer (&task));
}

void
smolvm_vm_start_async (SmolvmVm *self, GAsyncReadyCallback callback, gpointer user_data)
{
  const gchar *state = smolvm_vm_get_state (self);

  /* error: its VMM died; there is no process left to stop first */
  if (!g_str_equal (state, SMOLVM_VM_STATE_CREATED) &&
      !g_str_equal (state, SMOLVM_VM_STATE_STOPPED) &&
      !g_str_equal (state, SMOLVM_VM_STATE_ERROR)) {
    g_autoptr(GTask) task = g_task_new (self, NULL, callback, user_data);
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_STATE,
                             "VM '%s' is %s; only a created, stopped or failed VM can be started",
                             smolvm_vm_get_id (self), state);
    return;
  }
  launch_async (self, NULL, NULL, FALSE, NULL, NULL, callback, user_data);
}

void
smolvm_vm_load_snapshot_async (SmolvmVm *self, const gchar *vmstate_path, const gchar *mem_path,
                               gboolean resume, SmolvmProgress *progress,
                               GCancellable *cancellable, GAsyncReadyCallback callback,
                               gpointer user_data)
{
  launch_async (self, vmstate_path, mem_path, resume, progress, cancellable, callback, user_data);
}

static void
on_set_paused_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  SmolvmVm *self = g_task_get_source_object (task);
  gboolean paused = GPOINTER_TO_INT (g_task_get_task_data (task));
  g_autoptr(GError) error = NULL;

  if (!smolvm_vmm_op_finish (SMOLVM_VMM (source), result, &error)) {
    g_prefix_error (&error, "Cannot %s VM '%s': ", paused ? "pause" : "resume",
                    smolvm_vm_get_id (self));
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  /* running again: a snapshot's pause is over, in the same write */
  if (!paused)
    self->paused_by_snapshot = FALSE;
  smolvm_vm_set_state (self, paused ? SMOLVM_VM_STATE_PAUSED : SMOLVM_VM_STATE_RUNNING);
  g_task_return_boolean (task, TRUE);
}

void
smolvm_vm_set_paused_async (SmolvmVm *self, gboolean paused, GAsyncReadyCallback callback,
                            gpointer user_data)
{
  g_autoptr(GTask) task = g_task_new (self, NULL, callback, user_data);
  const gchar *state = smolvm_vm_get_state (self);
  const gchar *needed = paused ? SMOLVM_VM_STATE_RUNNING : SMOLVM_VM_STATE_PAUSED;

  g_task_set_task_data (task, GINT_TO_POINTER (paused), NULL);
  if (!g_str_equal (state, needed) || self->vmm == NULL) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_STATE,
                             "VM '%s' is %s; only a %s VM can be %s", smolvm_vm_get_id (self),
                             state, needed, paused ? "paused" : "resumed");
    return;
  }
  smolvm_vmm_set_paused_async (self->vmm, paused, NULL, on_set_paused_done,
                               g_steal_pointer (&task));
}

static void
on_stop_terminated (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  SmolvmVm *self = g_task_get_source_object (task);

  smolvm_vmm_terminate_finish (SMOLVM_VMM (source), result);
  smolvm_network_tap_down (self->network, smolvm_vm_get_network_config (self));
  drop_vmm (self);
  smolvm_vm_set_state (self, SMOLVM_VM_STATE_STOPPED);
  g_task_return_boolean (task, TRUE);
}

void
smolvm_vm_stop_async (SmolvmVm *self, GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = g_task_new (self, NULL, callback, user_data);

  if (self->vmm == NULL) {
    if (!g_str_equal (smolvm_vm_get_state (self), SMOLVM_VM_STATE_CREATED))
      smolvm_vm_set_state (self, SMOLVM_VM_STATE_STOPPED);
    g_task_return_boolean (task, TRUE);
    return;
  }
  smolvm_vmm_terminate_async (self->vmm, on_stop_terminated, g_steal_pointer (&task));
}

static void
on_save_snapshot_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_vmm_op_finish (SMOLVM_VMM (source), result, &error))
    g_task_return_error (task, g_steal_pointer (&error));
  else
    g_task_return_boolean (task, TRUE);
}

void
smolvm_vm_save_snapshot_async (SmolvmVm *self, const gchar *vmstate_path, const gchar *mem_path,
                               SmolvmProgress *progress, GCancellable *cancellable,
                               GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = g_task_new (self, cancellable, callback, user_data);

  g_task_set_check_cancellable (task, FALSE);
  if (self->vmm == NULL || !g_str_equal (smolvm_vm_get_state (self), SMOLVM_VM_STATE_PAUSED)) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_STATE,
                             "VM '%s' must be paused to save its state", smolvm_vm_get_id (self));
    return;
  }
  smolvm_vmm_snapshot_create_async (self->vmm, vmstate_path, mem_path, progress, cancellable,
                                    on_save_snapshot_done, g_steal_pointer (&task));
}

gboolean
smolvm_vm_op_finish (SmolvmVm *self, GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* ---- after a daemon restart ---- */

static gboolean
pid_runs_vmm (GPid pid, const gchar *runtime_dir)
{
  g_autofree gchar *path = g_strdup_printf ("/proc/%d/cmdline", pid);
  g_autofree gchar *cmdline = NULL;
  gsize len = 0;

  if (pid <= 0 || !g_file_get_contents (path, &cmdline, &len, NULL))
    return FALSE;
  /* arguments are NUL-separated; our VMMs carry a path inside their
   * runtime dir in one (vms/a must not match vms/ab/...) */
  for (gsize i = 0; i < len; i += strlen (cmdline + i) + 1) {
    const gchar *arg = cmdline + i;
    gsize n = strlen (runtime_dir);
    if (strncmp (arg, runtime_dir, n) == 0 && (arg[n] == '/' || arg[n] == '\0'))
      return TRUE;
  }
  return FALSE;
}

static void
on_resumed_after_crash (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  SmolvmVm *self = g_task_get_source_object (task);
  g_autoptr(GError) error = NULL;

  if (!smolvm_vm_op_finish (self, result, &error))
    g_warning ("%s", error->message);
  smolvm_vm_clear_paused_by_snapshot (self);
  smolvm_vm_end_op (self);
  g_task_return_boolean (task, TRUE);
}

static void
on_reattached (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  SmolvmVm *self = g_task_get_source_object (task);
  g_autoptr(GError) error = NULL;
  gboolean paused = FALSE;

  if (!smolvm_vmm_attach_finish (SMOLVM_VMM (source), result, &paused, &error)) {
    self->paused_by_snapshot = FALSE;
    smolvm_vm_end_op (self);
    g_warning ("Cannot take over the VMM of VM '%s': %s", smolvm_vm_get_id (self), error->message);
    smolvm_vm_stop_async (self, NULL, NULL);
  } else if (paused && self->paused_by_snapshot) {
    /* A snapshot paused it and the daemon died before the snapshot ended:
     * the pause was never the owner's wish. The slot stays held until the
     * VM runs again. */
    g_message ("Took over VM '%s' (pid %u, paused by a snapshot that a crash cut short); "
               "resuming it", smolvm_vm_get_id (self), smolvm_vmm_get_pid (self->vmm));
    smolvm_vm_set_state (self, SMOLVM_VM_STATE_PAUSED);
    smolvm_vm_set_paused_async (self, FALSE, on_resumed_after_crash, g_steal_pointer (&task));
    return;
  } else {
    g_message ("Took over VM '%s' (pid %u, %s)", smolvm_vm_get_id (self),
               smolvm_vmm_get_pid (self->vmm), paused ? "paused" : "running");
    self->paused_by_snapshot = FALSE;
    smolvm_vm_set_state (self, paused ? SMOLVM_VM_STATE_PAUSED : SMOLVM_VM_STATE_RUNNING);
    /* after the state: a process that died meanwhile is handled as an exit */
    smolvm_vm_end_op (self);
  }
  g_task_return_boolean (task, TRUE);
}

void
smolvm_vm_reattach_async (SmolvmVm *self, GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = g_task_new (self, NULL, callback, user_data);
  g_autoptr(GError) error = NULL;

  if (!smolvm_vm_is_active (self)) {
    g_task_return_boolean (task, TRUE);
    return;
  }
  if (!pid_runs_vmm (self->saved_pid, self->runtime_dir) || !ensure_vmm (self, &error)) {
    if (error != NULL)
      g_warning ("VM '%s': %s", smolvm_vm_get_id (self), error->message);
    g_message ("The VMM of VM '%s' is gone; it is now stopped", smolvm_vm_get_id (self));
    self->paused_by_snapshot = FALSE;
    smolvm_vm_set_state (self, SMOLVM_VM_STATE_STOPPED);
    g_task_return_boolean (task, TRUE);
    return;
  }
  /* the exit handler must not see the attach as a crash */
  smolvm_vm_begin_op (self, "reattach", NULL);
  smolvm_vmm_attach_async (self->vmm, self->saved_pid, NULL, on_reattached,
                           g_steal_pointer (&task));
}
