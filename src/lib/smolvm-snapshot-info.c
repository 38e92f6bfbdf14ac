/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "smolvm-info.h"
#include "smolvm-record.h"
#include "smolvm-snapshot-info.h"

/**
 * SmolvmSnapshotInfo:
 *
 * One snapshot, as smolvmd describes it in a SnapshotInfo dictionary
 * (see org.smolvm.Manager.ListSnapshots). An immutable value: it does not
 * follow the snapshot's later changes; ask the #SmolvmClient again for
 * those.
 */
struct _SmolvmSnapshotInfo {
  GObject parent_instance;

  GVariant *info; /* the dictionary it was made from */
  gchar *snapshot_id;
  gchar *vm_id;
  gchar *snapshot_path;
  gchar *mem_file_path;
  gchar *disk_path;
  GVariant *vm_config;
  GVariant *network_config;
  GDateTime *created_at;
  gboolean restored;
  gchar *restored_vm_id;
  gchar *backend;
};

G_DEFINE_FINAL_TYPE (SmolvmSnapshotInfo, smolvm_snapshot_info, G_TYPE_OBJECT)

#define F(name) G_STRUCT_OFFSET (SmolvmSnapshotInfo, name)

/**
 * SmolvmSnapshotInfo:snapshot-id:
 *
 * The snapshot's id.
 */
/**
 * SmolvmSnapshotInfo:vm-id:
 *
 * The id of the VM it was taken from.
 */
/**
 * SmolvmSnapshotInfo:snapshot-path:
 *
 * The saved VM state, vmstate.bin.
 */
/**
 * SmolvmSnapshotInfo:mem-file-path:
 *
 * The saved guest memory, mem.bin.
 */
/**
 * SmolvmSnapshotInfo:disk-path:
 *
 * The saved copy of the VM's disk, disk.ext4.
 */
/**
 * SmolvmSnapshotInfo:vm-config:
 *
 * The VM's VMConfig dictionary (a{sv}) at the time of the snapshot.
 */
/**
 * SmolvmSnapshotInfo:network-config:
 *
 * The VM's NetworkConfig dictionary (a{sv}) at the time of the snapshot;
 * empty without networking.
 */
/**
 * SmolvmSnapshotInfo:created-at:
 *
 * When the snapshot was made, in UTC.
 */
/**
 * SmolvmSnapshotInfo:restored:
 *
 * Whether the snapshot has been restored at least once.
 */
/**
 * SmolvmSnapshotInfo:restored-vm-id:
 *
 * The VM of the most recent restore, %NULL if it was never restored.
 */
/**
 * SmolvmSnapshotInfo:backend:
 *
 * The backend that made it: "firecracker" or "qemu".
 */
static const SmolvmRecordField fields[] = {
  { "snapshot-id", SMOLVM_INFO_SNAPSHOT_ID, SMOLVM_RECORD_STRING, F (snapshot_id),
    "The snapshot id" },
  { "vm-id", SMOLVM_INFO_VM_ID, SMOLVM_RECORD_STRING, F (vm_id), "The VM it was taken from" },
  { "snapshot-path", SMOLVM_INFO_SNAPSHOT_PATH, SMOLVM_RECORD_STRING, F (snapshot_path),
    "The saved VM state" },
  { "mem-file-path", SMOLVM_INFO_MEM_FILE_PATH, SMOLVM_RECORD_STRING, F (mem_file_path),
    "The saved guest memory" },
  { "disk-path", SMOLVM_INFO_DISK_PATH, SMOLVM_RECORD_STRING, F (disk_path), "The saved disk" },
  { "vm-config", SMOLVM_INFO_VM_CONFIG, SMOLVM_RECORD_VARDICT, F (vm_config),
    "The VM's configuration" },
  { "network-config", SMOLVM_INFO_NETWORK_CONFIG, SMOLVM_RECORD_VARDICT, F (network_config),
    "The VM's network configuration" },
  { "created-at", SMOLVM_INFO_CREATED_AT, SMOLVM_RECORD_TIME, F (created_at),
    "When it was made (UTC)" },
  { "restored", SMOLVM_INFO_RESTORED, SMOLVM_RECORD_BOOLEAN, F (restored),
    "Whether it was restored" },
  { "restored-vm-id", SMOLVM_INFO_RESTORED_VM_ID, SMOLVM_RECORD_STRING_OR_NULL, F (restored_vm_id),
    "The VM of the most recent restore" },
  { "backend", SMOLVM_INFO_BACKEND, SMOLVM_RECORD_STRING, F (backend), "The backend that made it" },
};

/* property ids: 1 + the field's index */
static GParamSpec *properties[G_N_ELEMENTS (fields) + 1];

static void
smolvm_snapshot_info_get_property (GObject *object, guint prop_id, GValue *value,
                                   GParamSpec *pspec)
{
  if (prop_id == 0 || prop_id > G_N_ELEMENTS (fields)) {
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    return;
  }
  smolvm_record_get_value (&fields[prop_id - 1], object, value);
}

static void
smolvm_snapshot_info_finalize (GObject *object)
{
  SmolvmSnapshotInfo *self = SMOLVM_SNAPSHOT_INFO (object);

  smolvm_record_clear (fields, G_N_ELEMENTS (fields), self);
  g_clear_pointer (&self->info, g_variant_unref);
  G_OBJECT_CLASS (smolvm_snapshot_info_parent_class)->finalize (object);
}

static void
smolvm_snapshot_info_class_init (SmolvmSnapshotInfoClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->get_property = smolvm_snapshot_info_get_property;
  object_class->finalize = smolvm_snapshot_info_finalize;
  for (gsize i = 0; i < G_N_ELEMENTS (fields); i++)
    properties[i + 1] = smolvm_record_field_pspec (&fields[i]);
  g_object_class_install_properties (object_class, G_N_ELEMENTS (properties), properties);
}

static void
smolvm_snapshot_info_init (SmolvmSnapshotInfo *self)
{
}

/**
 * smolvm_snapshot_info_new_from_variant:
 * @info: a SnapshotInfo dictionary (a{sv}), as in ListSnapshots' reply; a
 *   floating reference is consumed
 * @error: return location for a #GError
 *
 * Reads the keys documented for SnapshotInfo in org.smolvm.Manager.xml;
 * keys that a newer smolvmd adds are ignored.
 *
 * Returns: (transfer full): the snapshot, or %NULL with
 *   %SMOLVM_ERROR_INVALID_ARGUMENT if a key is missing or of the wrong type
 */
SmolvmSnapshotInfo *
smolvm_snapshot_info_new_from_variant (GVariant *info, GError **error)
{
  g_autoptr(GVariant) owned = NULL;
  g_autoptr(SmolvmSnapshotInfo) self = NULL;

  g_return_val_if_fail (info != NULL, NULL);
  owned = g_variant_ref_sink (info);
  self = g_object_new (SMOLVM_TYPE_SNAPSHOT_INFO, NULL);

  if (!smolvm_record_parse (fields, G_N_ELEMENTS (fields), owned, self, error)) {
    g_prefix_error (error, "Bad SnapshotInfo: ");
    return NULL;
  }
  self->info = g_steal_pointer (&owned);
  return g_steal_pointer (&self);
}

/**
 * smolvm_snapshot_info_to_variant:
 * @self: a #SmolvmSnapshotInfo
 *
 * The SnapshotInfo dictionary that @self was made from, with any keys it
 * ignored; an empty dictionary for a #SmolvmSnapshotInfo made with
 * g_object_new().
 *
 * Returns: (transfer full): the dictionary (a{sv}), not floating
 */
GVariant *
smolvm_snapshot_info_to_variant (SmolvmSnapshotInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_SNAPSHOT_INFO (self), NULL);
  if (self->info == NULL)
    return g_variant_ref_sink (g_variant_new_array (G_VARIANT_TYPE ("{sv}"), NULL, 0));
  return g_variant_ref (self->info);
}

/**
 * smolvm_snapshot_info_get_snapshot_id:
 * @self: a #SmolvmSnapshotInfo
 *
 * Returns: (transfer none): the #SmolvmSnapshotInfo:snapshot-id
 */
const gchar *
smolvm_snapshot_info_get_snapshot_id (SmolvmSnapshotInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_SNAPSHOT_INFO (self), NULL);
  return self->snapshot_id;
}

/**
 * smolvm_snapshot_info_get_vm_id:
 * @self: a #SmolvmSnapshotInfo
 *
 * Returns: (transfer none): the #SmolvmSnapshotInfo:vm-id
 */
const gchar *
smolvm_snapshot_info_get_vm_id (SmolvmSnapshotInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_SNAPSHOT_INFO (self), NULL);
  return self->vm_id;
}

/**
 * smolvm_snapshot_info_get_snapshot_path:
 * @self: a #SmolvmSnapshotInfo
 *
 * Returns: (transfer none): the #SmolvmSnapshotInfo:snapshot-path
 */
const gchar *
smolvm_snapshot_info_get_snapshot_path (SmolvmSnapshotInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_SNAPSHOT_INFO (self), NULL);
  return self->snapshot_path;
}

/**
 * smolvm_snapshot_info_get_mem_file_path:
 * @self: a #SmolvmSnapshotInfo
 *
 * Returns: (transfer none): the #SmolvmSnapshotInfo:mem-file-path
 */
const gchar *
smolvm_snapshot_info_get_mem_file_path (SmolvmSnapshotInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_SNAPSHOT_INFO (self), NULL);
  return self->mem_file_path;
}

/**
 * smolvm_snapshot_info_get_disk_path:
 * @self: a #SmolvmSnapshotInfo
 *
 * Returns: (transfer none): the #SmolvmSnapshotInfo:disk-path
 */
const gchar *
smolvm_snapshot_info_get_disk_path (SmolvmSnapshotInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_SNAPSHOT_INFO (self), NULL);
  return self->disk_path;
}

/**
 * smolvm_snapshot_info_get_vm_config:
 * @self: a #SmolvmSnapshotInfo
 *
 * Returns: (transfer none): the #SmolvmSnapshotInfo:vm-config (a{sv})
 */
GVariant *
smolvm_snapshot_info_get_vm_config (SmolvmSnapshotInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_SNAPSHOT_INFO (self), NULL);
  return self->vm_config;
}

/**
 * smolvm_snapshot_info_get_network_config:
 * @self: a #SmolvmSnapshotInfo
 *
 * Returns: (transfer none): the #SmolvmSnapshotInfo:network-config (a{sv})
 */
GVariant *
smolvm_snapshot_info_get_network_config (SmolvmSnapshotInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_SNAPSHOT_INFO (self), NULL);
  return self->network_config;
}

/**
 * smolvm_snapshot_info_get_created_at:
 * @self: a #SmolvmSnapshotInfo
 *
 * Returns: (transfer none): the #SmolvmSnapshotInfo:created-at, in UTC
 */
GDateTime *
smolvm_snapshot_info_get_created_at (SmolvmSnapshotInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_SNAPSHOT_INFO (self), NULL);
  return self->created_at;
}

/**
 * smolvm_snapshot_info_get_restored:
 * @self: a #SmolvmSnapshotInfo
 *
 * Returns: the #SmolvmSnapshotInfo:restored flag
 */
gboolean
smolvm_snapshot_info_get_restored (SmolvmSnapshotInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_SNAPSHOT_INFO (self), FALSE);
  return self->restored;
}

/**
 * smolvm_snapshot_info_get_restored_vm_id:
 * @self: a #SmolvmSnapshotInfo
 *
 * Returns: (transfer none) (nullable): the #SmolvmSnapshotInfo:restored-vm-id,
 *   %NULL if the snapshot was never restored
 */
const gchar *
smolvm_snapshot_info_get_restored_vm_id (SmolvmSnapshotInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_SNAPSHOT_INFO (self), NULL);
  return self->restored_vm_id;
}

/**
 * smolvm_snapshot_info_get_backend:
 * @self: a #SmolvmSnapshotInfo
 *
 * Returns: (transfer none): the #SmolvmSnapshotInfo:backend
 */
const gchar *
smolvm_snapshot_info_get_backend (SmolvmSnapshotInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_SNAPSHOT_INFO (self), NULL);
  return self->backend;
}
