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
#include "smolvm-json.h"
#include "smolvm-record-writer.h"
#include "smolvm-registry.h"
#include "smolvm-snapshot-dbus.h"
#include "smolvm-snapshot.h"
#include "smolvm-store.h"

/* A VM's config, shared by the snapshots loaded with it: a copy for each of
 * 10,000 snapshots was 2 MB. Immutable; the last snapshot (any thread)
 * frees it. */
typedef struct {
  SmolvmVmConfig *config;
  GVariant *variant; /* its VmConfig value, serialized */
} SharedConfig;

struct _SmolvmSnapshot {
  SmolvmDbusSnapshotSkeleton parent_instance;
  SmolvmContext *ctx;
  gchar *object_path;
  gchar *dir;
  SharedConfig *config;
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
shared_config_clear (SharedConfig *shared)
{
  smolvm_vm_config_free (shared->config);
  g_variant_unref (shared->variant);
}

static void
shared_config_release (SharedConfig *shared)
{
  g_atomic_rc_box_release_full (shared, (GDestroyNotify) shared_config_clear);
}

static void
smolvm_snapshot_finalize (GObject *object)
{
  SmolvmSnapshot *self = SMOLVM_SNAPSHOT (object);
  g_free (self->object_path);
  g_free (self->dir);
  g_free (self->vmstate_sha256);
  g_clear_pointer (&self->config, shared_config_release);
  g_clear_pointer (&self->info, g_variant_unref);
  g_clear_pointer (&self->properties, g_variant_unref);
  G_OBJECT_CLASS (smolvm_snapshot_parent_class)->finalize (object);
}

/* Every property change notifies, whoever set it. The class handler, not a
 * "notify" handler on each of 10,000 instances (175 bytes each). */
static void
smolvm_snapshot_notify (GObject *object, GParamSpec *pspec)
{
  SmolvmSnapshot *self = SMOLVM_SNAPSHOT (object);

  /* ctx is set after g_object_new, whose values had nothing cached to drop */
  if (self->ctx != NULL) {
    /* its PropertiesChanged (emitted from an idle) must follow any
     * ListSnapshots reply that holds the old info */
    if (self->ctx->registry != NULL)
      smolvm_registry_wait_replies (self->ctx->registry);
    g_clear_pointer (&self->info, g_variant_unref);
    g_clear_pointer (&self->properties, g_variant_unref);
  }
  G_OBJECT_CLASS (smolvm_snapshot_parent_class)->notify (object, pspec);
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

/* Most snapshots have no network: one empty NetworkConfig serves them all
 * (one each was 110 bytes). */
static GVariant *
empty_network_config (void)
{
  static GVariant *empty;

  if (g_once_init_enter (&empty))
    g_once_init_leave (&empty, serialized (g_variant_new ("a{sv}", NULL)));
  return empty;
}

/* GetManagedObjects asks every object for its properties on every call. */
static GVariant *
get_properties (GDBusInterfaceSkeleton *skeleton)
{
  SmolvmSnapshot *self = SMOLVM_SNAPSHOT (skeleton);

  if (self->properties == NULL)
    self->properties = serialized (
      G_DBUS_INTERFACE_SKELETON_CLASS (smolvm_snapshot_parent_class)->get_properties (skeleton));
  /* g_dbus_interface_skeleton_get_properties() takes a full reference as it
   * is (g_variant_take_ref), and its callers unref it: the cached value
   * itself, not a new one per object on every call */
  return g_variant_ref (self->properties);
}

static void
smolvm_snapshot_class_init (SmolvmSnapshotClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = smolvm_snapshot_finalize;
  G_OBJECT_CLASS (klass)->notify = smolvm_snapshot_notify;
  G_DBUS_INTERFACE_SKELETON_CLASS (klass)->get_properties = get_properties;
}

static void
smolvm_snapshot_init (SmolvmSnapshot *self)
{
}

/* @config: transfer full */
static SmolvmSnapshot *
snapshot_new (SmolvmContext *ctx, const gchar *id, const gchar *vm_id, SharedConfig *config,
              GVariant *network_config, gint64 created_at, const gchar *backend, gboolean restored,
              const gchar *restored_vm_id)
{
  g_autofree gchar *dir = smolvm_store_snapshot_dir (ctx->store, id);
  g_autofree gchar *vmstate = smolvm_store_snapshot_file (ctx->store, id, SMOLVM_SNAPSHOT_VMSTATE);
  g_autofree gchar *mem = smolvm_store_snapshot_file (ctx->store, id, SMOLVM_SNAPSHOT_MEM);
  g_autofree gchar *disk = smolvm_store_snapshot_file (ctx->store, id, SMOLVM_SNAPSHOT_DISK);
  g_autoptr(GVariant) given = network_config != NULL ? g_variant_ref_sink (network_config) : NULL;
  /* serialized() of a value already held takes a reference of its own */
  g_autoptr(GVariant) network = given != NULL && g_variant_n_children (given) > 0
                                  ? serialized (given)
                                  : g_variant_ref (empty_network_config ());
  static const gchar *const names[] = {
    "id",           "vm-id",      "snapshot-path", "mem-file-path",  "disk-path", "vm-config",
    "network-config", "created-at", "restored",    "restored-vm-id", "backend",   "clones"
  };
  const gchar *const strings[] = { id, vm_id, vmstate, mem, disk };
  GValue values[G_N_ELEMENTS (names)] = { G_VALUE_INIT };
  gsize n = 0;
  SmolvmSnapshot *self;

  /* borrowed here: the object makes its own copies */
  for (; n < G_N_ELEMENTS (strings); n++)
    g_value_set_static_string (g_value_init (&values[n], G_TYPE_STRING), strings[n]);
  g_value_set_variant (g_value_init (&values[n++], G_TYPE_VARIANT), config->variant);
  g_value_set_variant (g_value_init (&values[n++], G_TYPE_VARIANT), network);
  g_value_set_uint64 (g_value_init (&values[n++], G_TYPE_UINT64), (guint64) created_at);
  g_value_set_boolean (g_value_init (&values[n++], G_TYPE_BOOLEAN), restored);
  /* Interned strings are kept, not copied: the same few values (the
   * backends its config allows) in 10,000 objects. */
  if (restored_vm_id == NULL || restored_vm_id[0] == '\0')
    g_value_set_interned_string (g_value_init (&values[n++], G_TYPE_STRING),
                                 g_intern_static_string (""));
  else
    g_value_set_static_string (g_value_init (&values[n++], G_TYPE_STRING), restored_vm_id);
  if (g_str_equal (backend, config->config->backend))
    g_value_set_interned_string (g_value_init (&values[n++], G_TYPE_STRING),
                                 g_intern_string (backend));
  else
    g_value_set_static_string (g_value_init (&values[n++], G_TYPE_STRING), backend);
  g_value_set_boxed (g_value_init (&values[n++], G_TYPE_STRV), (const gchar *const[]){ NULL });
  g_assert (n == G_N_ELEMENTS (names));
  /* every property in one construction: one set at a time was a sixth of
   * the start-up */
  self = (SmolvmSnapshot *) g_object_new_with_properties (SMOLVM_TYPE_SNAPSHOT, n,
                                                          (const gchar **) names, values);
  for (gsize i = 0; i < n; i++)
    g_value_unset (&values[i]);

  self->ctx = ctx;
  self->object_path = smolvm_id_object_path ("snapshot", id);
  /* its own size: the builder's buffer was twice that */
  self->dir = g_strdup (dir);
  self->config = config;
  return self;
}

/* Flat, not a tree of one GVariant (and GBytes) per value: with 10,000
 * snapshots the trees of the two dictionaries were most of the daemon's
 * memory. The info and the properties copy their bytes. */
static SharedConfig *
shared_config_new (const SmolvmVmConfig *vm_config)
{
  SharedConfig *shared = g_atomic_rc_box_new0 (SharedConfig);

  shared->config = smolvm_vm_config_copy (vm_config);
  shared->variant = serialized (smolvm_vm_config_to_variant (vm_config));
  return shared;
}

SmolvmSnapshot *
smolvm_snapshot_new (SmolvmContext *ctx, const gchar *id, const gchar *vm_id,
                     const SmolvmVmConfig *vm_config, GVariant *network_config, gint64 created_at,
                     const gchar *backend)
{
  return snapshot_new (ctx, id, vm_id, shared_config_new (vm_config), network_config, created_at,
                       backend, FALSE, NULL);
}

struct _SmolvmSnapshotConfigs {
  GHashTable *shared; /* SmolvmVmConfig (the value's own) -> SharedConfig */
  GHashTable *parsed; /* a serialized VmConfig value's bytes (GBytes) -> SharedConfig */
};

SmolvmSnapshotConfigs *
smolvm_snapshot_configs_new (void)
{
  SmolvmSnapshotConfigs *self = g_new0 (SmolvmSnapshotConfigs, 1);
  self->shared = g_hash_table_new_full (smolvm_vm_config_hash, smolvm_vm_config_equal, NULL,
                                        (GDestroyNotify) shared_config_release);
  self->parsed = g_hash_table_new_full (g_bytes_hash, g_bytes_equal,
                                        (GDestroyNotify) g_bytes_unref,
                                        (GDestroyNotify) shared_config_release);
  return self;
}

void
smolvm_snapshot_configs_free (SmolvmSnapshotConfigs *self)
{
  g_hash_table_unref (self->shared);
  g_hash_table_unref (self->parsed);
  g_free (self);
}

/* Building and serializing a VmConfig was a quarter of a record's load */
static SharedConfig *
share_config (SmolvmSnapshotConfigs *configs, const SmolvmVmConfig *vm_config)
{
  SharedConfig *shared = configs != NULL ? g_hash_table_lookup (configs->shared, vm_config) : NULL;

  if (shared != NULL)
    return g_atomic_rc_box_acquire (shared);
  shared = shared_config_new (vm_config);
  if (configs != NULL)
    g_hash_table_insert (configs->shared, shared->config, g_atomic_rc_box_acquire (shared));
  return shared;
}

/* and parsing one read from the index, a quarter of that */
static SharedConfig *
share_parsed_config (SmolvmSnapshotConfigs *configs, GVariant *value, GError **error)
{
  g_autoptr(GBytes) bytes = g_variant_get_data_as_bytes (value);
  g_autoptr(SmolvmVmConfig) vm_config = NULL;
  SharedConfig *shared = configs != NULL ? g_hash_table_lookup (configs->parsed, bytes) : NULL;

  if (shared != NULL)
    return g_atomic_rc_box_acquire (shared);
  vm_config = smolvm_vm_config_new_from_variant (value, FALSE, error);
  if (vm_config == NULL)
    return NULL;
  shared = share_config (configs, vm_config);
  if (configs != NULL)
    g_hash_table_insert (configs->parsed,
                         g_bytes_new (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes)),
                         g_atomic_rc_box_acquire (shared));
  return shared;
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

const SmolvmVmConfig *smolvm_snapshot_get_vm_config (SmolvmSnapshot *self) { return self->config->config; }

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
  json_builder_add_value (b, smolvm_vm_config_to_json (self->config->config));
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
  g_autoptr(GError) error = NULL;

  if (!smolvm_record_writer_write_finish (SMOLVM_RECORD_WRITER (source), result, &error)) {
    g_prefix_error (&error, "Cannot save snapshot '%s': ", smolvm_snapshot_get_id (self));
    g_task_return_error (task, g_steal_pointer (&error));
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
  SharedConfig *config;
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
  if (!smolvm_id_is_valid (r->vm_id) || g_strcmp0 (r->config->config->vm_id, r->vm_id) != 0) {
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
  self = snapshot_new (ctx, r->id, r->vm_id, g_atomic_rc_box_acquire (r->config), r->network,
                       r->created_at, r->backend, r->restored, r->restored_vm_id);
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
  g_autoptr(GError) local_error = NULL;
  g_autofree gchar *data = NULL;
  g_autoptr(JsonNode) root = NULL;
  gsize length = 0;
  g_autoptr(SmolvmVmConfig) vm_config = NULL;
  g_autoptr(GVariant) network = NULL;
  g_autoptr(GDateTime) created = NULL;
  SnapshotRecord r = { 0 };
  SmolvmSnapshot *self;
  JsonObject *o;
  const gchar *created_str;
  JsonNode *config_node;

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
  r.config = share_config (configs, vm_config);
  r.network = network;
  r.created_at = g_date_time_to_unix (created) * G_USEC_PER_SEC +
                 g_date_time_get_microsecond (created);
  r.backend = json_object_get_string_member_with_default (o, SMOLVM_INFO_BACKEND, "firecracker");
  r.vmstate_sha256 = json_object_get_string_member_with_default (o, "vmstate_sha256", NULL);
  r.restored = json_object_get_boolean_member_with_default (o, SMOLVM_INFO_RESTORED, FALSE);
  r.restored_vm_id =
    json_object_get_string_member_with_default (o, SMOLVM_INFO_RESTORED_VM_ID, NULL);
  self = snapshot_from_record (ctx, dirname, path, &r, error);
  shared_config_release (r.config);
  return self;
}

GVariant *
smolvm_snapshot_to_record (SmolvmSnapshot *self)
{
  SmolvmDbusSnapshot *iface = SMOLVM_DBUS_SNAPSHOT (self);

  /* kept until the index is written: one buffer, not a tree of values */
  return serialized (g_variant_new (
    SMOLVM_SNAPSHOT_RECORD_TYPE_FORMAT, smolvm_snapshot_get_vm_id (self),
    smolvm_dbus_snapshot_get_vm_config (iface), smolvm_snapshot_get_network_config (self),
    smolvm_snapshot_get_created_at (self), smolvm_dbus_snapshot_get_backend (iface),
    self->vmstate_sha256, smolvm_dbus_snapshot_get_restored (iface),
    smolvm_dbus_snapshot_get_restored_vm_id (iface)));
}

/* Only string values under distinct names, as a record's JSON object can
 * hold */
static gboolean
is_string_dict (GVariant *asv)
{
  g_autoptr(GHashTable) names = g_hash_table_new (g_str_hash, g_str_equal);
  GVariantIter iter;
  const gchar *name;
  GVariant *value;

  g_variant_iter_init (&iter, asv);
  while (g_variant_iter_next (&iter, "{&sv}", &name, &value)) {
    g_autoptr(GVariant) owned = value;
    if (!g_variant_is_of_type (owned, G_VARIANT_TYPE_STRING) ||
        !g_hash_table_add (names, (gpointer) name))
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
  g_autoptr(GVariant) normal = NULL;
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GVariant) network = NULL;
  SnapshotRecord r = { .id = dirname };
  SmolvmSnapshot *self;

  if (!g_variant_is_of_type (record, G_VARIANT_TYPE (SMOLVM_SNAPSHOT_RECORD_TYPE))) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "The record of %s has type '%s'", path,
                 g_variant_get_type_string (record));
    return NULL;
  }
  g_variant_get (record, "(&s@a{sv}@a{sv}x&sm&sb&s)", &r.vm_id, &config_value, &network_value,
                 &r.created_at, &r.backend, &r.vmstate_sha256, &r.restored, &r.restored_vm_id);
  if (!is_string_dict (network_value)) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED,
                 "Invalid %s: network_config holds more than strings, or a name twice", path);
    return NULL;
  }
  r.config = share_parsed_config (configs, config_value, &local_error);
  if (r.config == NULL) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "Invalid vm_config in %s: %s", path,
                 local_error->message);
    return NULL;
  }
  /* its own copy: the record's bytes are the index's mapped file, which
   * must not stay mapped for as long as the snapshot lives */
  normal = g_variant_get_normal_form (network_value);
  bytes = g_bytes_new (g_variant_get_data (normal), g_variant_get_size (normal));
  network = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE_VARDICT, bytes, TRUE));
  r.network = network;
  self = snapshot_from_record (ctx, dirname, path, &r, error);
  shared_config_release (r.config);
  return self;
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
smolvm_snapshot_to_list_entry (SmolvmSnapshot *self)
{
  /* with its path: a reply of 10,000 then holds no value of its own per
   * snapshot, only references */
  if (self->info == NULL)
    self->info = serialized (g_variant_new ("(o@a{sv})", self->object_path, build_info (self)));
  return self->info;
}
