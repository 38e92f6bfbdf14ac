/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include <errno.h>
#include <sys/stat.h>

#include <json-glib/json-glib.h>

#include "smolvm-error-map.h"
#include "smolvm-error.h"
#include "smolvm-fileutil.h"
#include "smolvm-id.h"
#include "smolvm-info.h"
#include "smolvm-record-writer.h"
#include "smolvm-registry.h"
#include "smolvm-snapshot-dbus.h"
#include "smolvm-snapshot.h"
#include "smolvm-store.h"

struct _SmolvmSnapshot {
  SmolvmDbusSnapshotSkeleton parent_instance;
  SmolvmContext *ctx;
  gchar *object_path;
  gchar *dir;
  SmolvmVmConfig *vm_config;
  gchar *vmstate_sha256;
  /* Built on first use and dropped when a property changes: with 10,000
   * snapshots, rebuilding them on every ListSnapshots and GetManagedObjects
   * was most of those calls' time. Serialized, so threads may share them. */
  GVariant *info;
  GVariant *properties;
};

G_DEFINE_TYPE_WITH_CODE (SmolvmSnapshot, smolvm_snapshot, SMOLVM_DBUS_TYPE_SNAPSHOT_SKELETON,
                         G_IMPLEMENT_INTERFACE (SMOLVM_DBUS_TYPE_SNAPSHOT,
                                                smolvm_snapshot_dbus_iface_init))

static void
smolvm_snapshot_finalize (GObject *object)
{
  SmolvmSnapshot *self = SMOLVM_SNAPSHOT (object);
  g_free (self->object_path);
  g_free (self->dir);
  g_free (self->vmstate_sha256);
  smolvm_vm_config_free (self->vm_config);
  g_clear_pointer (&self->info, g_variant_unref);
  g_clear_pointer (&self->properties, g_variant_unref);
  G_OBJECT_CLASS (smolvm_snapshot_parent_class)->finalize (object);
}

/* Every property change notifies, whoever set it. */
static void
drop_cached (GObject *object, GParamSpec *pspec, gpointer user_data)
{
  SmolvmSnapshot *self = SMOLVM_SNAPSHOT (object);

  /* its PropertiesChanged (emitted from an idle) must follow any
   * ListSnapshots reply that holds the old info */
  if (self->ctx->registry != NULL)
    smolvm_registry_wait_replies (self->ctx->registry);
  g_clear_pointer (&self->info, g_variant_unref);
  g_clear_pointer (&self->properties, g_variant_unref);
}

static GVariant *
serialized (GVariant *value)
{
  g_variant_ref_sink (value);
  /* one flat buffer from now on (its tree is freed): a copy is a
   * reference to its bytes */
  g_variant_get_data (value);
  return value;
}

/* GetManagedObjects asks every object for its properties on every call. */
static GVariant *
get_properties (GDBusInterfaceSkeleton *skeleton)
{
  SmolvmSnapshot *self = SMOLVM_SNAPSHOT (skeleton);
  g_autoptr(GBytes) bytes = NULL;

  if (self->properties == NULL)
    self->properties = serialized (
      G_DBUS_INTERFACE_SKELETON_CLASS (smolvm_snapshot_parent_class)->get_properties (skeleton));
  bytes = g_variant_get_data_as_bytes (self->properties);

  /* the caller wants a floating value of its own: a new one on the same bytes */
  return g_variant_new_from_bytes (G_VARIANT_TYPE_VARDICT, bytes, TRUE);
}

static void
smolvm_snapshot_class_init (SmolvmSnapshotClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = smolvm_snapshot_finalize;
  G_DBUS_INTERFACE_SKELETON_CLASS (klass)->get_properties = get_properties;
}

static void
smolvm_snapshot_init (SmolvmSnapshot *self)
{
}

/* @config: the VmConfig value of @vm_config, serialized */
static SmolvmSnapshot *
snapshot_new (SmolvmContext *ctx, const gchar *id, const gchar *vm_id,
              const SmolvmVmConfig *vm_config, GVariant *config, GVariant *network_config,
              gint64 created_at, const gchar *backend, gboolean restored,
              const gchar *restored_vm_id)
{
  g_autofree gchar *dir = smolvm_store_snapshot_dir (ctx->store, id);
  g_autofree gchar *vmstate = smolvm_store_snapshot_file (ctx->store, id, SMOLVM_SNAPSHOT_VMSTATE);
  g_autofree gchar *mem = smolvm_store_snapshot_file (ctx->store, id, SMOLVM_SNAPSHOT_MEM);
  g_autofree gchar *disk = smolvm_store_snapshot_file (ctx->store, id, SMOLVM_SNAPSHOT_DISK);
  g_autoptr(GVariant) network =
    serialized (network_config != NULL ? network_config : g_variant_new ("a{sv}", NULL));
  /* every property in one construction: one set at a time was a sixth of
   * the start-up */
  SmolvmSnapshot *self = g_object_new (
    SMOLVM_TYPE_SNAPSHOT, "id", id, "vm-id", vm_id, "snapshot-path", vmstate, "mem-file-path", mem,
    "disk-path", disk, "vm-config", config, "network-config", network, "created-at",
    (guint64) created_at, "restored", restored, "restored-vm-id",
    restored_vm_id != NULL ? restored_vm_id : "", "backend", backend, "clones",
    (const gchar *const[]){ NULL }, NULL);

  self->ctx = ctx;
  self->object_path = smolvm_id_object_path ("snapshot", id);
  self->dir = g_steal_pointer (&dir);
  self->vm_config = smolvm_vm_config_copy (vm_config);
  /* only now: the sets above had nothing cached to drop */
  g_signal_connect (self, "notify", G_CALLBACK (drop_cached), NULL);
  return self;
}

/* Flat, not a tree of one GVariant (and GBytes) per value: with 10,000
 * snapshots the trees of the two dictionaries were most of the daemon's
 * memory. The info and the properties copy their bytes. */
static GVariant *
config_variant (const SmolvmVmConfig *vm_config)
{
  return serialized (smolvm_vm_config_to_variant (vm_config));
}

SmolvmSnapshot *
smolvm_snapshot_new (SmolvmContext *ctx, const gchar *id, const gchar *vm_id,
                     const SmolvmVmConfig *vm_config, GVariant *network_config, gint64 created_at,
                     const gchar *backend)
{
  g_autoptr(GVariant) config = config_variant (vm_config);
  return snapshot_new (ctx, id, vm_id, vm_config, config, network_config, created_at, backend,
                       FALSE, NULL);
}

struct _SmolvmSnapshotConfigs {
  GHashTable *values; /* SmolvmVmConfig -> its VmConfig value, serialized */
  GHashTable *parsed; /* such a value's bytes (GBytes) -> SmolvmVmConfig */
};

SmolvmSnapshotConfigs *
smolvm_snapshot_configs_new (void)
{
  SmolvmSnapshotConfigs *self = g_new0 (SmolvmSnapshotConfigs, 1);
  self->values = g_hash_table_new_full (smolvm_vm_config_hash, smolvm_vm_config_equal,
                                        (GDestroyNotify) smolvm_vm_config_free,
                                        (GDestroyNotify) g_variant_unref);
  self->parsed = g_hash_table_new_full (g_bytes_hash, g_bytes_equal,
                                        (GDestroyNotify) g_bytes_unref,
                                        (GDestroyNotify) smolvm_vm_config_free);
  return self;
}

void
smolvm_snapshot_configs_free (SmolvmSnapshotConfigs *self)
{
  g_hash_table_unref (self->values);
  g_hash_table_unref (self->parsed);
  g_free (self);
}

/* Building and serializing a VmConfig was a quarter of a record's load */
static GVariant *
shared_config_variant (SmolvmSnapshotConfigs *configs, const SmolvmVmConfig *vm_config)
{
  GVariant *config = configs != NULL ? g_hash_table_lookup (configs->values, vm_config) : NULL;

  if (config != NULL)
    return g_variant_ref (config);
  config = config_variant (vm_config);
  if (configs != NULL)
    g_hash_table_insert (configs->values, smolvm_vm_config_copy (vm_config),
                         g_variant_ref (config));
  return config;
}

/* and parsing one read from the index, a quarter of that */
static SmolvmVmConfig *
shared_parsed_config (SmolvmSnapshotConfigs *configs, GVariant *value, GError **error)
{
  g_autoptr(GBytes) bytes = g_variant_get_data_as_bytes (value);
  SmolvmVmConfig *vm_config = configs != NULL ? g_hash_table_lookup (configs->parsed, bytes) : NULL;

  if (vm_config != NULL)
    return smolvm_vm_config_copy (vm_config);
  vm_config = smolvm_vm_config_new_from_variant (value, FALSE, error);
  if (vm_config != NULL && configs != NULL)
    g_hash_table_insert (configs->parsed, g_bytes_new (g_bytes_get_data (bytes, NULL),
                                                       g_bytes_get_size (bytes)),
                         smolvm_vm_config_copy (vm_config));
  return vm_config;
}

const gchar *smolvm_snapshot_get_id (SmolvmSnapshot *self)
{
  return smolvm_dbus_snapshot_get_id (SMOLVM_DBUS_SNAPSHOT (self));
}

const gchar *smolvm_snapshot_get_dir (SmolvmSnapshot *self) { return self->dir; }
const gchar *smolvm_snapshot_get_object_path (SmolvmSnapshot *self) { return self->object_path; }
SmolvmContext *smolvm_snapshot_get_context (SmolvmSnapshot *self) { return self->ctx; }

const gchar *
smolvm_snapshot_get_vm_id (SmolvmSnapshot *self)
{
  return smolvm_dbus_snapshot_get_vm_id (SMOLVM_DBUS_SNAPSHOT (self));
}

const SmolvmVmConfig *smolvm_snapshot_get_vm_config (SmolvmSnapshot *self) { return self->vm_config; }

GVariant *
smolvm_snapshot_get_network_config (SmolvmSnapshot *self)
{
  return smolvm_dbus_snapshot_get_network_config (SMOLVM_DBUS_SNAPSHOT (self));
}

gint64
smolvm_snapshot_get_created_at (SmolvmSnapshot *self)
{
  return (gint64) smolvm_dbus_snapshot_get_created_at (SMOLVM_DBUS_SNAPSHOT (self));
}

const gchar *
smolvm_snapshot_get_vmstate_sha256 (SmolvmSnapshot *self)
{
  return self->vmstate_sha256;
}

void
smolvm_snapshot_set_vmstate_sha256 (SmolvmSnapshot *self, const gchar *sha256)
{
  g_free (self->vmstate_sha256);
  self->vmstate_sha256 = g_strdup (sha256);
}

gboolean
smolvm_snapshot_check_files (SmolvmSnapshot *self, guint64 sizes[SMOLVM_SNAPSHOT_N_FILES],
                             GError **error)
{
  SmolvmDbusSnapshot *iface = SMOLVM_DBUS_SNAPSHOT (self);
  const SmolvmVmConfig *config = smolvm_snapshot_get_vm_config (self);
  const gchar *files[SMOLVM_SNAPSHOT_N_FILES] = { smolvm_dbus_snapshot_get_snapshot_path (iface),
                                                  smolvm_dbus_snapshot_get_mem_file_path (iface),
                                                  smolvm_dbus_snapshot_get_disk_path (iface) };
  guint64 expected_mem = (guint64) config->mem_size_mib * 1024 * 1024;
  struct stat st;

  for (gsize i = 0; i < G_N_ELEMENTS (files); i++) {
    if (lstat (files[i], &st) < 0)
      return smolvm_error_set_errno (error, errno, "Cannot read %s", files[i]);
    if (!S_ISREG (st.st_mode)) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "%s is not a regular file",
                   files[i]);
      return FALSE;
    }
    if (i == SMOLVM_SNAPSHOT_FILE_MEM && (guint64) st.st_size != expected_mem) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED,
                   "%s is %" G_GINT64_FORMAT " bytes, but the VM has %u MiB of memory (%"
                   G_GUINT64_FORMAT " bytes)",
                   files[i], (gint64) st.st_size, config->mem_size_mib, expected_mem);
      return FALSE;
    }
    sizes[i] = smolvm_stat_data_size (&st);
  }
  return TRUE;
}

void
smolvm_snapshot_set_clones (SmolvmSnapshot *self, const gchar *const *vm_paths)
{
  const gchar *const *now = smolvm_dbus_snapshot_get_clones (SMOLVM_DBUS_SNAPSHOT (self));

  /* no PropertiesChanged when nothing changed */
  if (now != NULL && g_strv_equal (now, vm_paths))
    return;
  smolvm_dbus_snapshot_set_clones (SMOLVM_DBUS_SNAPSHOT (self), vm_paths);
}

void
smolvm_snapshot_mark_restored (SmolvmSnapshot *self, gboolean restored,
                               const gchar *restored_vm_id)
{
  SmolvmDbusSnapshot *iface = SMOLVM_DBUS_SNAPSHOT (self);
  smolvm_dbus_snapshot_set_restored (iface, restored);
  smolvm_dbus_snapshot_set_restored_vm_id (iface, restored_vm_id != NULL ? restored_vm_id : "");
}

/* ISO 8601 with microseconds, so a reload gives back the same CreatedAt. */
static gchar *
format_created_at (gint64 usec)
{
  g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc (usec / G_USEC_PER_SEC);
  g_autoptr(GDateTime) exact = g_date_time_add (dt, usec % G_USEC_PER_SEC);
  return g_date_time_format (exact, "%Y-%m-%dT%H:%M:%S.%f+00:00");
}

gchar *
smolvm_snapshot_to_json (SmolvmSnapshot *self)
{
  SmolvmDbusSnapshot *iface = SMOLVM_DBUS_SNAPSHOT (self);
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  g_autofree gchar *created = format_created_at (smolvm_snapshot_get_created_at (self));
  const gchar *restored_vm = smolvm_dbus_snapshot_get_restored_vm_id (iface);

  json_builder_begin_object (b);
  json_builder_set_member_name (b, SMOLVM_INFO_SNAPSHOT_ID);
  json_builder_add_string_value (b, smolvm_snapshot_get_id (self));
  json_builder_set_member_name (b, SMOLVM_INFO_VM_ID);
  json_builder_add_string_value (b, smolvm_snapshot_get_vm_id (self));
  json_builder_set_member_name (b, SMOLVM_INFO_SNAPSHOT_PATH);
  json_builder_add_string_value (b, smolvm_dbus_snapshot_get_snapshot_path (iface));
  json_builder_set_member_name (b, SMOLVM_INFO_MEM_FILE_PATH);
  json_builder_add_string_value (b, smolvm_dbus_snapshot_get_mem_file_path (iface));
  json_builder_set_member_name (b, SMOLVM_INFO_DISK_PATH);
  json_builder_add_string_value (b, smolvm_dbus_snapshot_get_disk_path (iface));
  json_builder_set_member_name (b, SMOLVM_INFO_VM_CONFIG);
  json_builder_add_value (b, smolvm_vm_config_to_json (self->vm_config));
  json_builder_set_member_name (b, SMOLVM_INFO_NETWORK_CONFIG);
  json_builder_add_value (b, smolvm_string_dict_to_json (smolvm_snapshot_get_network_config (self)));
  json_builder_set_member_name (b, SMOLVM_INFO_CREATED_AT);
  json_builder_add_string_value (b, created);
  json_builder_set_member_name (b, SMOLVM_INFO_RESTORED);
  json_builder_add_boolean_value (b, smolvm_dbus_snapshot_get_restored (iface));
  json_builder_set_member_name (b, SMOLVM_INFO_RESTORED_VM_ID);
  if (restored_vm != NULL && restored_vm[0] != '\0')
    json_builder_add_string_value (b, restored_vm);
  else
    json_builder_add_null_value (b);
  json_builder_set_member_name (b, SMOLVM_INFO_BACKEND);
  json_builder_add_string_value (b, smolvm_dbus_snapshot_get_backend (iface));
  if (self->vmstate_sha256 != NULL) {
    json_builder_set_member_name (b, "vmstate_sha256");
    json_builder_add_string_value (b, self->vmstate_sha256);
  }
  json_builder_end_object (b);

  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  json_generator_set_pretty (gen, TRUE);
  return json_generator_to_data (gen, NULL);
}

static void
on_snapshot_saved (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  SmolvmSnapshot *self = g_task_get_source_object (task);
  GError *error = NULL;

  if (!smolvm_record_writer_write_finish (SMOLVM_RECORD_WRITER (source), result, &error)) {
    g_prefix_error (&error, "Cannot save snapshot '%s': ", smolvm_snapshot_get_id (self));
    g_task_return_error (task, error);
    return;
  }
  g_task_return_boolean (task, TRUE);
}

void
smolvm_snapshot_save_async (SmolvmSnapshot *self, GAsyncReadyCallback callback,
                            gpointer user_data)
{
  GTask *task = g_task_new (self, NULL, callback, user_data);
  g_autofree gchar *json = smolvm_snapshot_to_json (self);
  g_autofree gchar *path = smolvm_store_snapshot_file (
    self->ctx->store, smolvm_snapshot_get_id (self), SMOLVM_SNAPSHOT_METADATA);

  smolvm_record_writer_write_async (self->ctx->records, path, json, on_snapshot_saved, task);
}

gboolean
smolvm_snapshot_save_finish (SmolvmSnapshot *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

static const gchar *
get_string (JsonObject *o, const gchar *key, GError **error)
{
  /* a member of another type is as missing as an absent one */
  const gchar *value = smolvm_json_member_is (o, key, G_TYPE_STRING)
                         ? json_object_get_string_member_with_default (o, key, NULL)
                         : NULL;
  if (value == NULL)
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "missing or invalid '%s'", key);
  return value;
}

/* 9999-12-31T23:59:59Z, the last second a GDateTime holds */
#define CREATED_AT_MAX G_GINT64_CONSTANT (253402300799)

/* What a snapshot record holds, however it was read (strings borrowed). */
typedef struct {
  const gchar *id, *vm_id, *backend, *vmstate_sha256, *restored_vm_id;
  const SmolvmVmConfig *vm_config;
  GVariant *config; /* the VmConfig value of vm_config, serialized */
  GVariant *network;
  gint64 created_at;
  gboolean restored;
} SnapshotRecord;

/* The checks every record passes, read from its JSON or from the index. */
static SmolvmSnapshot *
snapshot_from_record (SmolvmContext *ctx, const gchar *dirname, const gchar *path,
                      const SnapshotRecord *r, GError **error)
{
  SmolvmSnapshot *self;

  /* the directory name is what makes paths safe; the two must agree */
  if (!smolvm_id_is_valid (r->id) || g_strcmp0 (r->id, dirname) != 0) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED,
                 "Invalid %s: snapshot id '%s' does not match its directory", path, r->id);
    return NULL;
  }
  /* a restore builds vms/<vm_id> from it and names the VM after the config */
  if (!smolvm_id_is_valid (r->vm_id) || g_strcmp0 (r->vm_config->vm_id, r->vm_id) != 0) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED,
                 "Invalid %s: VM id '%s' is not valid or does not match its vm_config", path,
                 r->vm_id);
    return NULL;
  }
  /* before the epoch, or after 9999, it could not be written back as read */
  if (r->created_at < 0 || r->created_at / G_USEC_PER_SEC > CREATED_AT_MAX) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED,
                 "Invalid %s: created_at is not between 1970 and 9999", path);
    return NULL;
  }
  if (r->restored_vm_id != NULL && r->restored_vm_id[0] != '\0' &&
      !smolvm_id_is_valid (r->restored_vm_id)) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED,
                 "Invalid %s: restored_vm_id is not a VM id", path);
    return NULL;
  }
  self = snapshot_new (ctx, r->id, r->vm_id, r->vm_config, r->config, r->network, r->created_at,
                       r->backend, r->restored, r->restored_vm_id);
  smolvm_snapshot_set_vmstate_sha256 (self, r->vmstate_sha256);
  return self;
}

SmolvmSnapshot *
smolvm_snapshot_load (SmolvmContext *ctx, const gchar *dir, SmolvmSnapshotConfigs *configs,
                      GError **error)
{
  g_autofree gchar *dirname = g_path_get_basename (dir);
  g_autofree gchar *path =
    smolvm_store_snapshot_file (ctx->store, dirname, SMOLVM_SNAPSHOT_METADATA);
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) local_error = NULL;
  g_autofree gchar *data = NULL;
  gsize length = 0;
  g_autoptr(SmolvmVmConfig) vm_config = NULL;
  g_autoptr(GVariant) network = NULL;
  g_autoptr(GVariant) config = NULL;
  g_autoptr(GDateTime) created = NULL;
  SnapshotRecord r = { 0 };
  JsonObject *o;
  const gchar *created_str;
  JsonNode *config_node;

  data = smolvm_store_read_record (path, &length, error);
  if (data == NULL)
    return NULL;
  if (!json_parser_load_from_data (parser, data, (gssize) length, &local_error) ||
      json_parser_get_root (parser) == NULL || /* an empty file */
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser))) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "Cannot read %s: %s", path,
                 local_error != NULL ? local_error->message : "not a JSON object");
    return NULL;
  }
  o = json_node_get_object (json_parser_get_root (parser));
  if ((r.id = get_string (o, SMOLVM_INFO_SNAPSHOT_ID, &local_error)) == NULL ||
      (r.vm_id = get_string (o, SMOLVM_INFO_VM_ID, &local_error)) == NULL ||
      (created_str = get_string (o, SMOLVM_INFO_CREATED_AT, &local_error)) == NULL) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "Invalid %s: %s", path,
                 local_error->message);
    return NULL;
  }
  config_node = json_object_get_member (o, SMOLVM_INFO_VM_CONFIG);
  if (config_node == NULL || !JSON_NODE_HOLDS_OBJECT (config_node) ||
      (vm_config = smolvm_vm_config_new_from_json (json_node_get_object (config_node),
                                                   &local_error)) == NULL) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "Invalid vm_config in %s: %s", path,
                 local_error != NULL ? local_error->message : "missing or not an object");
    return NULL;
  }
  created = g_date_time_new_from_iso8601 (created_str, NULL);
  if (created == NULL || g_date_time_to_unix (created) < 0) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "Invalid created_at '%s' in %s",
                 created_str, path);
    return NULL;
  }
  network = smolvm_string_dict_from_json_member (o, SMOLVM_INFO_NETWORK_CONFIG, &local_error);
  if (network == NULL) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "Invalid %s: %s", path,
                 local_error->message);
    return NULL;
  }
  g_variant_ref_sink (network);
  if (!smolvm_json_member_is (o, SMOLVM_INFO_BACKEND, G_TYPE_STRING) ||
      !smolvm_json_member_is (o, "vmstate_sha256", G_TYPE_STRING) ||
      !smolvm_json_member_is (o, SMOLVM_INFO_RESTORED, G_TYPE_BOOLEAN) ||
      !smolvm_json_member_is (o, SMOLVM_INFO_RESTORED_VM_ID, G_TYPE_STRING)) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED,
                 "Invalid %s: backend, vmstate_sha256, restored or restored_vm_id has the wrong "
                 "type", path);
    return NULL;
  }
  config = shared_config_variant (configs, vm_config);
  r.vm_config = vm_config;
  r.config = config;
  r.network = network;
  r.created_at = g_date_time_to_unix (created) * G_USEC_PER_SEC +
                 g_date_time_get_microsecond (created);
  r.backend = json_object_get_string_member_with_default (o, SMOLVM_INFO_BACKEND, "firecracker");
  r.vmstate_sha256 = json_object_get_string_member_with_default (o, "vmstate_sha256", NULL);
  r.restored = json_object_get_boolean_member_with_default (o, SMOLVM_INFO_RESTORED, FALSE);
  r.restored_vm_id =
    json_object_get_string_member_with_default (o, SMOLVM_INFO_RESTORED_VM_ID, NULL);
  return snapshot_from_record (ctx, dirname, path, &r, error);
}

GVariant *
smolvm_snapshot_to_record (SmolvmSnapshot *self)
{
  SmolvmDbusSnapshot *iface = SMOLVM_DBUS_SNAPSHOT (self);

  return g_variant_ref_sink (g_variant_new (
    SMOLVM_SNAPSHOT_RECORD_TYPE_FORMAT, smolvm_snapshot_get_vm_id (self),
    smolvm_dbus_snapshot_get_vm_config (iface), smolvm_snapshot_get_network_config (self),
    smolvm_snapshot_get_created_at (self), smolvm_dbus_snapshot_get_backend (iface),
    self->vmstate_sha256, smolvm_dbus_snapshot_get_restored (iface),
    smolvm_dbus_snapshot_get_restored_vm_id (iface)));
}

/* Only string values, as in a record's JSON */
static gboolean
is_string_dict (GVariant *asv)
{
  GVariantIter iter;
  GVariant *value;

  g_variant_iter_init (&iter, asv);
  while (g_variant_iter_next (&iter, "{&sv}", NULL, &value)) {
    g_autoptr(GVariant) owned = value;
    if (!g_variant_is_of_type (owned, G_VARIANT_TYPE_STRING))
      return FALSE;
  }
  return TRUE;
}

SmolvmSnapshot *
smolvm_snapshot_new_from_record (SmolvmContext *ctx, const gchar *dir, GVariant *record,
                                 SmolvmSnapshotConfigs *configs, GError **error)
{
  g_autofree gchar *dirname = g_path_get_basename (dir);
  g_autofree gchar *path =
    smolvm_store_snapshot_file (ctx->store, dirname, SMOLVM_SNAPSHOT_METADATA);
  g_autoptr(GError) local_error = NULL;
  g_autoptr(GVariant) config_value = NULL;
  g_autoptr(GVariant) network_value = NULL;
  g_autoptr(SmolvmVmConfig) vm_config = NULL;
  g_autoptr(GVariant) config = NULL;
  g_autoptr(GVariant) network = NULL;
  SnapshotRecord r = { .id = dirname };

  if (!g_variant_is_of_type (record, G_VARIANT_TYPE (SMOLVM_SNAPSHOT_RECORD_TYPE))) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "The record of %s has type '%s'", path,
                 g_variant_get_type_string (record));
    return NULL;
  }
  g_variant_get (record, "(&s@a{sv}@a{sv}x&sm&sb&s)", &r.vm_id, &config_value, &network_value,
                 &r.created_at, &r.backend, &r.vmstate_sha256, &r.restored, &r.restored_vm_id);
  vm_config = shared_parsed_config (configs, config_value, &local_error);
  if (vm_config == NULL) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "Invalid vm_config in %s: %s", path,
                 local_error->message);
    return NULL;
  }
  if (!is_string_dict (network_value)) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED,
                 "Invalid %s: network_config holds more than strings", path);
    return NULL;
  }
  /* its own copy: the record's bytes may be a mapped file's */
  network = g_variant_ref_sink (g_variant_get_normal_form (network_value));
  config = shared_config_variant (configs, vm_config);
  r.vm_config = vm_config;
  r.config = config;
  r.network = network;
  return snapshot_from_record (ctx, dirname, path, &r, error);
}

static GVariant *
build_info (SmolvmSnapshot *self)
{
  SmolvmDbusSnapshot *iface = SMOLVM_DBUS_SNAPSHOT (self);
  g_auto(GVariantBuilder) b = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE_VARDICT);

  g_variant_builder_add (&b, "{sv}", SMOLVM_INFO_SNAPSHOT_ID,
                         g_variant_new_string (smolvm_snapshot_get_id (self)));
  g_variant_builder_add (&b, "{sv}", SMOLVM_INFO_VM_ID,
                         g_variant_new_string (smolvm_snapshot_get_vm_id (self)));
  g_variant_builder_add (&b, "{sv}", SMOLVM_INFO_SNAPSHOT_PATH,
                         g_variant_new_string (smolvm_dbus_snapshot_get_snapshot_path (iface)));
  g_variant_builder_add (&b, "{sv}", SMOLVM_INFO_MEM_FILE_PATH,
                         g_variant_new_string (smolvm_dbus_snapshot_get_mem_file_path (iface)));
  g_variant_builder_add (&b, "{sv}", SMOLVM_INFO_DISK_PATH,
                         g_variant_new_string (smolvm_dbus_snapshot_get_disk_path (iface)));
  g_variant_builder_add (&b, "{sv}", SMOLVM_INFO_VM_CONFIG,
                         smolvm_dbus_snapshot_get_vm_config (iface));
  g_variant_builder_add (&b, "{sv}", SMOLVM_INFO_NETWORK_CONFIG,
                         smolvm_dbus_snapshot_get_network_config (iface));
  g_variant_builder_add (&b, "{sv}", SMOLVM_INFO_CREATED_AT,
                         g_variant_new_uint64 (smolvm_dbus_snapshot_get_created_at (iface)));
  g_variant_builder_add (&b, "{sv}", SMOLVM_INFO_RESTORED,
                         g_variant_new_boolean (smolvm_dbus_snapshot_get_restored (iface)));
  g_variant_builder_add (&b, "{sv}", SMOLVM_INFO_RESTORED_VM_ID,
                         g_variant_new_string (smolvm_dbus_snapshot_get_restored_vm_id (iface)));
  g_variant_builder_add (&b, "{sv}", SMOLVM_INFO_BACKEND,
                         g_variant_new_string (smolvm_dbus_snapshot_get_backend (iface)));
  return g_variant_builder_end (&b);
}

GVariant *
smolvm_snapshot_to_info (SmolvmSnapshot *self)
{
  if (self->info == NULL)
    self->info = serialized (build_info (self));
  return self->info;
}
