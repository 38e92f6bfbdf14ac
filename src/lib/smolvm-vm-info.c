/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "smolvm-record.h"
#include "smolvm-vm-info.h"

/**
 * SmolvmVmInfo:
 *
 * One VM, as smolvmd describes it in an entry of org.smolvm.Manager.ListVMs:
 * its VMConfig and its state. An immutable value: it does not follow the
 * VM's later changes; ask the #SmolvmClient again for those.
 */
struct _SmolvmVmInfo {
  GObject parent_instance;

  GVariant *info; /* the dictionary it was made from */
  gchar *vm_id;
  gchar *status;
  gchar *backend;
  guint pid;
  guint vcpu_count;
  guint mem_size_mib;
  gchar *kernel_path;
  gchar *initrd_path;
  gchar *rootfs_path;
  gchar *boot_args;
  gboolean network;
  gchar *accel;
  gchar *machine;
  gchar *disk_path;
  gchar *console_log_path;
  gchar *restored_from;
  gchar *cloned_from;
  gchar *ip_address;
  GVariant *vm_config;
  GVariant *network_config;
};

G_DEFINE_FINAL_TYPE (SmolvmVmInfo, smolvm_vm_info, G_TYPE_OBJECT)

#define F(name) G_STRUCT_OFFSET (SmolvmVmInfo, name)

/**
 * SmolvmVmInfo:vm-id:
 *
 * The VM's id.
 */
/**
 * SmolvmVmInfo:status:
 *
 * The VM's state: created, running, paused, stopped or error (the key "state" of the dictionary).
 */
/**
 * SmolvmVmInfo:backend:
 *
 * The VMM that runs it: "firecracker" or "qemu".
 */
/**
 * SmolvmVmInfo:pid:
 *
 * The VMM's process id, 0 when none runs.
 */
/**
 * SmolvmVmInfo:vcpu-count:
 *
 * The number of vCPUs.
 */
/**
 * SmolvmVmInfo:mem-size-mib:
 *
 * The guest's memory in MiB.
 */
/**
 * SmolvmVmInfo:kernel-path:
 *
 * Where the kernel image came from: the path given to CreateVM, or the one smolvmd saw for a
 * descriptor.
 */
/**
 * SmolvmVmInfo:initrd-path:
 *
 * Where the initrd image came from; empty for none.
 */
/**
 * SmolvmVmInfo:rootfs-path:
 *
 * Where the root filesystem image that the VM's disk was copied from came from.
 */
/**
 * SmolvmVmInfo:boot-args:
 *
 * The kernel command line.
 */
/**
 * SmolvmVmInfo:network:
 *
 * Whether the VM has a network interface.
 */
/**
 * SmolvmVmInfo:accel:
 *
 * QEMU's accelerator: kvm, tcg or auto.
 */
/**
 * SmolvmVmInfo:machine:
 *
 * QEMU's versioned machine type, e.g. pc-q35-7.2; empty for Firecracker.
 */
/**
 * SmolvmVmInfo:disk-path:
 *
 * The VM's own disk, a copy of the rootfs image.
 */
/**
 * SmolvmVmInfo:console-log-path:
 *
 * The file that receives the guest's serial console (smolvmd's; read it with
 * smolvm_client_open_console_log()).
 */
/**
 * SmolvmVmInfo:restored-from:
 *
 * The snapshot the VM was last restored from; %NULL if it never was, or if it has booted afresh
 * since.
 */
/**
 * SmolvmVmInfo:cloned-from:
 *
 * The snapshot the VM was cloned from (smolvm_client_clone_snapshot()); %NULL for a VM made
 * otherwise, and from a smolvmd older than clones. It stays when the VM boots afresh.
 */
/**
 * SmolvmVmInfo:ip-address:
 *
 * The address the host reaches the guest at: guest_ip of #SmolvmVmInfo:network-config, or for
 * a networked clone its host_ip (its guest_ip is the snapshot's, inside the clone's network
 * namespace); %NULL without networking.
 */
/**
 * SmolvmVmInfo:vm-config:
 *
 * The VM's VMConfig dictionary (a{sv}): only the VMConfig keys of org.smolvm.Manager.xml (vm_id,
 * backend, vcpu_count, mem_size_mib, kernel_path, initrd_path, rootfs_path, boot_args, network,
 * accel, machine).
 */
/**
 * SmolvmVmInfo:network-config:
 *
 * The VM's NetworkConfig dictionary (a{sv}): guest_ip, gateway_ip, netmask, tap_device and
 * guest_mac; empty without networking.
 */
static const SmolvmRecordField fields[] = {
  { "vm-id", "vm_id", SMOLVM_RECORD_STRING, F (vm_id), "The VM id" },
  { "status", "state", SMOLVM_RECORD_STRING, F (status), "The VM's state" },
  { "backend", "backend", SMOLVM_RECORD_STRING, F (backend), "Its VMM" },
  { "pid", "pid", SMOLVM_RECORD_UINT, F (pid), "The VMM's process id" },
  { "vcpu-count", "vcpu_count", SMOLVM_RECORD_UINT, F (vcpu_count), "Number of vCPUs" },
  { "mem-size-mib", "mem_size_mib", SMOLVM_RECORD_UINT, F (mem_size_mib), "Guest memory in MiB" },
  { "kernel-path", "kernel_path", SMOLVM_RECORD_STRING, F (kernel_path),
    "Where the kernel came from" },
  { "initrd-path", "initrd_path", SMOLVM_RECORD_STRING, F (initrd_path),
    "Where the initrd came from" },
  { "rootfs-path", "rootfs_path", SMOLVM_RECORD_STRING, F (rootfs_path),
    "Where the rootfs came from" },
  { "boot-args", "boot_args", SMOLVM_RECORD_STRING, F (boot_args), "The kernel command line" },
  { "network", "network", SMOLVM_RECORD_BOOLEAN, F (network),
    "Whether it has a network interface" },
  { "accel", "accel", SMOLVM_RECORD_STRING, F (accel), "QEMU's accelerator" },
  { "machine", "machine", SMOLVM_RECORD_STRING, F (machine), "QEMU's machine type" },
  { "disk-path", "disk_path", SMOLVM_RECORD_STRING, F (disk_path), "The VM's own disk" },
  { "console-log-path", "console_log_path", SMOLVM_RECORD_STRING, F (console_log_path),
    "The console log" },
  { "restored-from", "restored_from", SMOLVM_RECORD_STRING_OR_NULL, F (restored_from),
    "The snapshot it was restored from" },
  { "cloned-from", "cloned_from", SMOLVM_RECORD_OPTIONAL_STRING, F (cloned_from),
    "The snapshot it was cloned from" },
  { "ip-address", NULL, SMOLVM_RECORD_STRING_OR_NULL, F (ip_address), "The guest's IP address" },
  { "vm-config", NULL, SMOLVM_RECORD_VARDICT, F (vm_config), "The VM's configuration" },
  { "network-config", "network_config", SMOLVM_RECORD_VARDICT, F (network_config),
    "The VM's network configuration" },
};

/* The keys of a VMConfig dictionary, which #SmolvmVmInfo:vm-config holds. */
static const gchar *const vm_config_keys[] = {
  "vm_id", "backend", "vcpu_count", "mem_size_mib", "kernel_path", "initrd_path", "rootfs_path",
  "boot_args", "network", "accel", "machine",
};

/* property ids: 1 + the field's index */
static GParamSpec *properties[G_N_ELEMENTS (fields) + 1];

static void
smolvm_vm_info_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  if (prop_id == 0 || prop_id > G_N_ELEMENTS (fields)) {
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    return;
  }
  smolvm_record_get_value (&fields[prop_id - 1], object, value);
}

static void
smolvm_vm_info_finalize (GObject *object)
{
  SmolvmVmInfo *self = SMOLVM_VM_INFO (object);

  smolvm_record_clear (fields, G_N_ELEMENTS (fields), self);
  g_clear_pointer (&self->info, g_variant_unref);
  G_OBJECT_CLASS (smolvm_vm_info_parent_class)->finalize (object);
}

static void
smolvm_vm_info_class_init (SmolvmVmInfoClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->get_property = smolvm_vm_info_get_property;
  object_class->finalize = smolvm_vm_info_finalize;
  for (gsize i = 0; i < G_N_ELEMENTS (fields); i++)
    properties[i + 1] = smolvm_record_field_pspec (&fields[i]);
  g_object_class_install_properties (object_class, G_N_ELEMENTS (properties), properties);
}

static void
smolvm_vm_info_init (SmolvmVmInfo *self)
{
}

/* The fields without a key of their own. */
static void
vm_info_derive (SmolvmVmInfo *self)
{
  g_auto(GVariantBuilder) config = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE_VARDICT);
  const gchar *guest_ip = NULL;
  const gchar *host_ip = NULL;

  /* parsed already: every key is there */
  for (gsize i = 0; i < G_N_ELEMENTS (vm_config_keys); i++) {
    g_autoptr(GVariant) value = g_variant_lookup_value (self->info, vm_config_keys[i], NULL);
    g_variant_builder_add (&config, "{sv}", vm_config_keys[i], value);
  }
  self->vm_config = g_variant_ref_sink (g_variant_builder_end (&config));

  /* a networked clone is reached at its own host_ip, its guest_ip is its
   * snapshot's (inside the clone's network namespace) */
  if (g_variant_lookup (self->network_config, "host_ip", "&s", &host_ip) && host_ip[0] != '\0')
    self->ip_address = g_strdup (host_ip);
  else if (g_variant_lookup (self->network_config, "guest_ip", "&s", &guest_ip) &&
           guest_ip[0] != '\0')
    self->ip_address = g_strdup (guest_ip);
}

/**
 * smolvm_vm_info_new_from_variant:
 * @info: the dictionary (a{sv}) of a ListVMs entry: the VMConfig keys plus
 *   state, pid, disk_path, console_log_path, network_config,
 *   restored_from and cloned_from; a floating reference is consumed
 * @error: return location for a #GError
 *
 * Reads the keys documented for ListVMs in org.smolvm.Manager.xml; keys that
 * a newer smolvmd adds are ignored. cloned_from may be missing, as from a
 * smolvmd older than clones.
 *
 * Returns: (transfer full): the VM, or %NULL with
 *   %SMOLVM_ERROR_INVALID_ARGUMENT if a key is missing or of the wrong type
 */
SmolvmVmInfo *
smolvm_vm_info_new_from_variant (GVariant *info, GError **error)
{
  g_autoptr(GVariant) owned = NULL;
  g_autoptr(SmolvmVmInfo) self = NULL;

  g_return_val_if_fail (info != NULL, NULL);
  owned = g_variant_ref_sink (info);
  self = g_object_new (SMOLVM_TYPE_VM_INFO, NULL);
  if (!smolvm_record_parse (fields, G_N_ELEMENTS (fields), owned, self, error)) {
    g_prefix_error (error, "Bad VM info: ");
    return NULL;
  }
  self->info = g_steal_pointer (&owned);
  vm_info_derive (self);
  return g_steal_pointer (&self);
}

/**
 * smolvm_vm_info_to_variant:
 * @self: a #SmolvmVmInfo
 *
 * The dictionary that @self was made from, with any keys it ignored; an
 * empty dictionary for a #SmolvmVmInfo made with g_object_new().
 *
 * Returns: (transfer full): the dictionary (a{sv}), not floating
 */
GVariant *
smolvm_vm_info_to_variant (SmolvmVmInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_VM_INFO (self), NULL);
  if (self->info == NULL)
    return g_variant_ref_sink (g_variant_new_array (G_VARIANT_TYPE ("{sv}"), NULL, 0));
  return g_variant_ref (self->info);
}

/**
 * smolvm_vm_info_get_vm_id:
 * @self: a #SmolvmVmInfo
 *
 * Returns: (transfer none): the #SmolvmVmInfo:vm-id
 */
const gchar *
smolvm_vm_info_get_vm_id (SmolvmVmInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_VM_INFO (self), NULL);
  return self->vm_id;
}

/**
 * smolvm_vm_info_get_status:
 * @self: a #SmolvmVmInfo
 *
 * Returns: (transfer none): the #SmolvmVmInfo:status
 */
const gchar *
smolvm_vm_info_get_status (SmolvmVmInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_VM_INFO (self), NULL);
  return self->status;
}

/**
 * smolvm_vm_info_get_backend:
 * @self: a #SmolvmVmInfo
 *
 * Returns: (transfer none): the #SmolvmVmInfo:backend
 */
const gchar *
smolvm_vm_info_get_backend (SmolvmVmInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_VM_INFO (self), NULL);
  return self->backend;
}

/**
 * smolvm_vm_info_get_pid:
 * @self: a #SmolvmVmInfo
 *
 * Returns: the #SmolvmVmInfo:pid
 */
guint
smolvm_vm_info_get_pid (SmolvmVmInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_VM_INFO (self), 0);
  return self->pid;
}

/**
 * smolvm_vm_info_get_vcpu_count:
 * @self: a #SmolvmVmInfo
 *
 * Returns: the #SmolvmVmInfo:vcpu-count
 */
guint
smolvm_vm_info_get_vcpu_count (SmolvmVmInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_VM_INFO (self), 0);
  return self->vcpu_count;
}

/**
 * smolvm_vm_info_get_mem_size_mib:
 * @self: a #SmolvmVmInfo
 *
 * Returns: the #SmolvmVmInfo:mem-size-mib
 */
guint
smolvm_vm_info_get_mem_size_mib (SmolvmVmInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_VM_INFO (self), 0);
  return self->mem_size_mib;
}

/**
 * smolvm_vm_info_get_kernel_path:
 * @self: a #SmolvmVmInfo
 *
 * Returns: (transfer none): the #SmolvmVmInfo:kernel-path
 */
const gchar *
smolvm_vm_info_get_kernel_path (SmolvmVmInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_VM_INFO (self), NULL);
  return self->kernel_path;
}

/**
 * smolvm_vm_info_get_initrd_path:
 * @self: a #SmolvmVmInfo
 *
 * Returns: (transfer none): the #SmolvmVmInfo:initrd-path
 */
const gchar *
smolvm_vm_info_get_initrd_path (SmolvmVmInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_VM_INFO (self), NULL);
  return self->initrd_path;
}

/**
 * smolvm_vm_info_get_rootfs_path:
 * @self: a #SmolvmVmInfo
 *
 * Returns: (transfer none): the #SmolvmVmInfo:rootfs-path
 */
const gchar *
smolvm_vm_info_get_rootfs_path (SmolvmVmInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_VM_INFO (self), NULL);
  return self->rootfs_path;
}

/**
 * smolvm_vm_info_get_boot_args:
 * @self: a #SmolvmVmInfo
 *
 * Returns: (transfer none): the #SmolvmVmInfo:boot-args
 */
const gchar *
smolvm_vm_info_get_boot_args (SmolvmVmInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_VM_INFO (self), NULL);
  return self->boot_args;
}

/**
 * smolvm_vm_info_get_network:
 * @self: a #SmolvmVmInfo
 *
 * Returns: the #SmolvmVmInfo:network
 */
gboolean
smolvm_vm_info_get_network (SmolvmVmInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_VM_INFO (self), FALSE);
  return self->network;
}

/**
 * smolvm_vm_info_get_accel:
 * @self: a #SmolvmVmInfo
 *
 * Returns: (transfer none): the #SmolvmVmInfo:accel
 */
const gchar *
smolvm_vm_info_get_accel (SmolvmVmInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_VM_INFO (self), NULL);
  return self->accel;
}

/**
 * smolvm_vm_info_get_machine:
 * @self: a #SmolvmVmInfo
 *
 * Returns: (transfer none): the #SmolvmVmInfo:machine
 */
const gchar *
smolvm_vm_info_get_machine (SmolvmVmInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_VM_INFO (self), NULL);
  return self->machine;
}

/**
 * smolvm_vm_info_get_disk_path:
 * @self: a #SmolvmVmInfo
 *
 * Returns: (transfer none): the #SmolvmVmInfo:disk-path
 */
const gchar *
smolvm_vm_info_get_disk_path (SmolvmVmInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_VM_INFO (self), NULL);
  return self->disk_path;
}

/**
 * smolvm_vm_info_get_console_log_path:
 * @self: a #SmolvmVmInfo
 *
 * Returns: (transfer none): the #SmolvmVmInfo:console-log-path
 */
const gchar *
smolvm_vm_info_get_console_log_path (SmolvmVmInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_VM_INFO (self), NULL);
  return self->console_log_path;
}

/**
 * smolvm_vm_info_get_restored_from:
 * @self: a #SmolvmVmInfo
 *
 * Returns: (transfer none) (nullable): the #SmolvmVmInfo:restored-from, %NULL if none
 */
const gchar *
smolvm_vm_info_get_restored_from (SmolvmVmInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_VM_INFO (self), NULL);
  return self->restored_from;
}

/**
 * smolvm_vm_info_get_cloned_from:
 * @self: a #SmolvmVmInfo
 *
 * Returns: (transfer none) (nullable): the #SmolvmVmInfo:cloned-from, %NULL if none
 */
const gchar *
smolvm_vm_info_get_cloned_from (SmolvmVmInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_VM_INFO (self), NULL);
  return self->cloned_from;
}

/**
 * smolvm_vm_info_get_ip_address:
 * @self: a #SmolvmVmInfo
 *
 * Returns: (transfer none) (nullable): the #SmolvmVmInfo:ip-address, %NULL if none
 */
const gchar *
smolvm_vm_info_get_ip_address (SmolvmVmInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_VM_INFO (self), NULL);
  return self->ip_address;
}

/**
 * smolvm_vm_info_get_vm_config:
 * @self: a #SmolvmVmInfo
 *
 * Returns: (transfer none): the #SmolvmVmInfo:vm-config (a{sv})
 */
GVariant *
smolvm_vm_info_get_vm_config (SmolvmVmInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_VM_INFO (self), NULL);
  return self->vm_config;
}

/**
 * smolvm_vm_info_get_network_config:
 * @self: a #SmolvmVmInfo
 *
 * Returns: (transfer none): the #SmolvmVmInfo:network-config (a{sv})
 */
GVariant *
smolvm_vm_info_get_network_config (SmolvmVmInfo *self)
{
  g_return_val_if_fail (SMOLVM_IS_VM_INFO (self), NULL);
  return self->network_config;
}
