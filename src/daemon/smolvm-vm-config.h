/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define SMOLVM_VCPU_MIN 1
#define SMOLVM_VCPU_MAX 32
#define SMOLVM_VCPU_DEFAULT 2
#define SMOLVM_MEM_MIN 128
#define SMOLVM_MEM_MAX 16384
#define SMOLVM_MEM_DEFAULT 512
#define SMOLVM_BOOT_ARGS_DEFAULT "console=ttyS0 reboot=k panic=1 pci=off"

/* SmolVM's VMConfig. Immutable once a VM exists. */
typedef struct {
  gchar *vm_id;
  gchar *backend;
  guint vcpu_count;
  guint mem_size_mib;
  gchar *kernel_path;
  gchar *initrd_path;
  gchar *rootfs_path;
  gchar *boot_args;
  gboolean network;
  gchar *accel;   /* QEMU: kvm, tcg or auto (KVM, else TCG) */
  gchar *machine; /* QEMU: a versioned machine type, fixed at creation */
} SmolvmVmConfig;

GType smolvm_vm_config_get_type (void) G_GNUC_CONST;
#define SMOLVM_TYPE_VM_CONFIG (smolvm_vm_config_get_type ())

void smolvm_vm_config_free (SmolvmVmConfig *config);
SmolvmVmConfig *smolvm_vm_config_copy (const SmolvmVmConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmolvmVmConfig, smolvm_vm_config_free)

/* Every field, for tables keyed by configs (GHashFunc, GEqualFunc). */
guint smolvm_vm_config_hash (gconstpointer config);
gboolean smolvm_vm_config_equal (gconstpointer a, gconstpointer b);

/* Parses and validates a VMConfig a{sv}. Missing keys take their defaults;
 * unknown keys, wrongly typed values and relative image paths are
 * InvalidArgument. The host files are not looked at (CreateVM opens them
 * with the caller's rights). @network_default is used when the "network"
 * key is absent. */
SmolvmVmConfig *smolvm_vm_config_new_from_variant (GVariant *asv, gboolean network_default,
                                                   GError **error);

/* The same for a JSON object (persisted records); files are not checked. */
SmolvmVmConfig *smolvm_vm_config_new_from_json (JsonObject *object, GError **error);

GVariant *smolvm_vm_config_to_variant (const SmolvmVmConfig *config);
JsonNode *smolvm_vm_config_to_json (const SmolvmVmConfig *config);

/* NetworkConfig dictionaries hold only strings; these convert them. */
JsonNode *smolvm_string_dict_to_json (GVariant *asv);
GVariant *smolvm_string_dict_from_json (JsonObject *object);
/* The same for member @key of a record: absent or null is an empty dict;
 * anything but an object of strings is an error. */
GVariant *smolvm_string_dict_from_json_member (JsonObject *record, const gchar *key,
                                               GError **error);

/* Member @key of a record is absent, null, or a value of @type
 * (G_TYPE_STRING, G_TYPE_INT64, G_TYPE_BOOLEAN): a record that a loader
 * accepts never makes json-glib (or a property setter) complain. */
gboolean smolvm_json_member_is (JsonObject *record, const gchar *key, GType type);

G_END_DECLS
