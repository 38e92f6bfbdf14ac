/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libsmolvm-1's value types from smolvmd's dictionaries: SmolvmSnapshotInfo
 * (a SnapshotInfo) and SmolvmVmInfo (a ListVMs entry). */
#include "config.h"

#include <string.h>

#include "smolvm.h"

/* 2023-11-14T22:13:20.123456Z */
#define CREATED_AT G_GUINT64_CONSTANT (1700000000123456)

static GVariant *
network_config (gboolean enabled)
{
  g_auto(GVariantDict) dict = G_VARIANT_DICT_INIT (NULL);

  if (enabled) {
    g_variant_dict_insert (&dict, "guest_ip", "s", "172.30.0.2");
    g_variant_dict_insert (&dict, "gateway_ip", "s", "172.30.0.1");
    g_variant_dict_insert (&dict, "netmask", "s", "255.255.255.252");
    g_variant_dict_insert (&dict, "tap_device", "s", "smolvm-tap0");
    g_variant_dict_insert (&dict, "guest_mac", "s", "06:00:ac:1e:00:02");
  }
  return g_variant_dict_end (&dict);
}

/* The keys of a VMConfig dictionary. */
static void
add_vm_config (GVariantDict *dict)
{
  g_variant_dict_insert (dict, "vm_id", "s", "web-1");
  g_variant_dict_insert (dict, "backend", "s", "firecracker");
  g_variant_dict_insert (dict, "vcpu_count", "u", 2);
  g_variant_dict_insert (dict, "mem_size_mib", "u", 512);
  g_variant_dict_insert (dict, "kernel_path", "s", "/images/vmlinux");
  g_variant_dict_insert (dict, "initrd_path", "s", "");
  g_variant_dict_insert (dict, "rootfs_path", "s", "/images/rootfs.ext4");
  g_variant_dict_insert (dict, "boot_args", "s", "console=ttyS0 reboot=k panic=1 pci=off");
  g_variant_dict_insert (dict, "network", "b", TRUE);
  g_variant_dict_insert (dict, "accel", "s", "auto");
  g_variant_dict_insert (dict, "machine", "s", "");
}

static GVariant *
snapshot_dict (const gchar *restored_vm_id)
{
  g_auto(GVariantDict) dict = G_VARIANT_DICT_INIT (NULL);
  g_auto(GVariantDict) config = G_VARIANT_DICT_INIT (NULL);

  add_vm_config (&config);
  g_variant_dict_insert (&dict, "snapshot_id", "s", "before-deploy");
  g_variant_dict_insert (&dict, "vm_id", "s", "web-1");
  g_variant_dict_insert (&dict, "snapshot_path", "s", "/var/lib/smolvm/s/vmstate.bin");
  g_variant_dict_insert (&dict, "mem_file_path", "s", "/var/lib/smolvm/s/mem.bin");
  g_variant_dict_insert (&dict, "disk_path", "s", "/var/lib/smolvm/s/disk.ext4");
  g_variant_dict_insert_value (&dict, "vm_config", g_variant_dict_end (&config));
  g_variant_dict_insert_value (&dict, "network_config", network_config (TRUE));
  g_variant_dict_insert (&dict, "created_at", "t", CREATED_AT);
  g_variant_dict_insert (&dict, "restored", "b", restored_vm_id[0] != '\0');
  g_variant_dict_insert (&dict, "restored_vm_id", "s", restored_vm_id);
  g_variant_dict_insert (&dict, "backend", "s", "firecracker");
  /* what a newer smolvmd might add */
  g_variant_dict_insert (&dict, "future_key", "u", 42);
  return g_variant_dict_end (&dict);
}

static GVariant *
vm_dict (gboolean network, const gchar *restored_from)
{
  g_auto(GVariantDict) dict = G_VARIANT_DICT_INIT (NULL);

  add_vm_config (&dict);
  g_variant_dict_insert (&dict, "network", "b", network);
  g_variant_dict_insert (&dict, "state", "s", "running");
  g_variant_dict_insert (&dict, "pid", "u", 4242);
  g_variant_dict_insert (&dict, "disk_path", "s", "/var/lib/smolvm/vms/web-1/disk.ext4");
  g_variant_dict_insert (&dict, "console_log_path", "s", "/run/smolvm/vms/web-1/console.log");
  g_variant_dict_insert_value (&dict, "network_config", network_config (network));
  g_variant_dict_insert (&dict, "restored_from", "s", restored_from);
  g_variant_dict_insert (&dict, "cloned_from", "s", "");
  g_variant_dict_insert (&dict, "future_key", "s", "ignored");
  return g_variant_dict_end (&dict);
}

/* @dict without @key, or with @key of the wrong type (@replacement). */
static GVariant *
dict_edit (GVariant *dict, const gchar *key, GVariant *replacement)
{
  g_auto(GVariantDict) edited = G_VARIANT_DICT_INIT (dict);

  if (replacement != NULL)
    g_variant_dict_insert_value (&edited, key, replacement);
  else
    g_variant_dict_remove (&edited, key);
  return g_variant_dict_end (&edited);
}

static void
test_snapshot_info (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmolvmSnapshotInfo) info = NULL;
  g_autoptr(GVariant) again = NULL;
  g_autoptr(GDateTime) created_at = NULL;
  g_autofree gchar *restored_vm_id = NULL;
  g_autofree gchar *created = NULL;
  GVariant *config;
  guint32 vcpus = 0;

  /* the floating dictionary is consumed (the leak checker would see it) */
  info = smolvm_snapshot_info_new_from_variant (snapshot_dict ("web-1"), &error);
  g_assert_no_error (error);
  g_assert_cmpstr (smolvm_snapshot_info_get_snapshot_id (info), ==, "before-deploy");
  g_assert_cmpstr (smolvm_snapshot_info_get_vm_id (info), ==, "web-1");
  g_assert_cmpstr (smolvm_snapshot_info_get_snapshot_path (info), ==,
                   "/var/lib/smolvm/s/vmstate.bin");
  g_assert_cmpstr (smolvm_snapshot_info_get_mem_file_path (info), ==,
                   "/var/lib/smolvm/s/mem.bin");
  g_assert_cmpstr (smolvm_snapshot_info_get_disk_path (info), ==, "/var/lib/smolvm/s/disk.ext4");
  g_assert_true (smolvm_snapshot_info_get_restored (info));
  g_assert_cmpstr (smolvm_snapshot_info_get_restored_vm_id (info), ==, "web-1");
  g_assert_cmpstr (smolvm_snapshot_info_get_backend (info), ==, "firecracker");

  config = smolvm_snapshot_info_get_vm_config (info);
  g_assert_true (g_variant_lookup (config, "vcpu_count", "u", &vcpus));
  g_assert_cmpuint (vcpus, ==, 2);
  g_assert_cmpuint (g_variant_n_children (smolvm_snapshot_info_get_network_config (info)), ==, 5);

  /* UTC, to the microsecond */
  created = g_date_time_format_iso8601 (smolvm_snapshot_info_get_created_at (info));
  g_assert_cmpstr (created, ==, "2023-11-14T22:13:20.123456Z");
  g_assert_cmpint (g_date_time_get_utc_offset (smolvm_snapshot_info_get_created_at (info)), ==, 0);

  /* the properties are the getters' values */
  g_object_get (info, "created-at", &created_at, "restored-vm-id", &restored_vm_id, NULL);
  g_assert_true (g_date_time_equal (created_at, smolvm_snapshot_info_get_created_at (info)));
  g_assert_cmpstr (restored_vm_id, ==, "web-1");

  /* the dictionary comes back whole, with the key this version ignores */
  again = smolvm_snapshot_info_to_variant (info);
  g_assert_false (g_variant_is_floating (again));
  g_assert_true (g_variant_lookup (again, "future_key", "u", NULL));
}

static void
test_snapshot_info_never_restored (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) dict = g_variant_ref_sink (snapshot_dict (""));
  g_autoptr(SmolvmSnapshotInfo) info = smolvm_snapshot_info_new_from_variant (dict, &error);
  g_autofree gchar *restored_vm_id = g_strdup ("not set");

  g_assert_no_error (error);
  g_assert_false (smolvm_snapshot_info_get_restored (info));
  /* the daemon's "" is NULL */
  g_assert_null (smolvm_snapshot_info_get_restored_vm_id (info));
  g_clear_pointer (&restored_vm_id, g_free);
  g_object_get (info, "restored-vm-id", &restored_vm_id, NULL);
  g_assert_null (restored_vm_id);
  /* a non-floating dictionary stays the caller's */
  g_assert_false (g_variant_is_floating (dict));
}

static const gchar *const snapshot_keys[] = {
  "snapshot_id", "vm_id", "snapshot_path", "mem_file_path", "disk_path", "vm_config",
  "network_config", "created_at", "restored", "restored_vm_id", "backend",
};

static void
test_snapshot_info_bad (void)
{
  g_autoptr(GVariant) good = g_variant_ref_sink (snapshot_dict (""));

  for (gsize i = 0; i < G_N_ELEMENTS (snapshot_keys); i++) {
    g_autoptr(GError) missing_error = NULL;
    g_autoptr(GError) mistyped_error = NULL;
    g_autoptr(SmolvmSnapshotInfo) missing = NULL;
    g_autoptr(SmolvmSnapshotInfo) mistyped = NULL;

    g_test_message ("key %s", snapshot_keys[i]);
    missing = smolvm_snapshot_info_new_from_variant (dict_edit (good, snapshot_keys[i], NULL),
                                                     &missing_error);
    g_assert_null (missing);
    g_assert_error (missing_error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
    g_assert_nonnull (strstr (missing_error->message, snapshot_keys[i]));

    /* no key is a double */
    mistyped = smolvm_snapshot_info_new_from_variant (
        dict_edit (good, snapshot_keys[i], g_variant_new_double (1.5)), &mistyped_error);
    g_assert_null (mistyped);
    g_assert_error (mistyped_error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
    g_assert_nonnull (strstr (mistyped_error->message, snapshot_keys[i]));
  }
}

static void
test_snapshot_info_bad_time_and_type (void)
{
  g_autoptr(GVariant) good = g_variant_ref_sink (snapshot_dict (""));
  g_autoptr(GError) error = NULL;
  g_autoptr(SmolvmSnapshotInfo) info = NULL;

  /* beyond what GDateTime holds (year 9999) */
  info = smolvm_snapshot_info_new_from_variant (
      dict_edit (good, "created_at", g_variant_new_uint64 (G_MAXUINT64)), &error);
  g_assert_null (info);
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  info = smolvm_snapshot_info_new_from_variant (g_variant_new_string ("x"), &error);
  g_assert_null (info);
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
}

static void
test_vm_info (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmolvmVmInfo) info = smolvm_vm_info_new_from_variant (vm_dict (TRUE, "before-deploy"),
                                                                  &error);
  g_autoptr(GVariant) again = NULL;
  g_autofree gchar *status = NULL;
  guint pid = 0;
  GVariant *config;

  g_assert_no_error (error);
  g_assert_cmpstr (smolvm_vm_info_get_vm_id (info), ==, "web-1");
  /* the daemon's key "state" */
  g_assert_cmpstr (smolvm_vm_info_get_status (info), ==, "running");
  g_assert_cmpstr (smolvm_vm_info_get_backend (info), ==, "firecracker");
  g_assert_cmpuint (smolvm_vm_info_get_pid (info), ==, 4242);
  g_assert_cmpuint (smolvm_vm_info_get_vcpu_count (info), ==, 2);
  g_assert_cmpuint (smolvm_vm_info_get_mem_size_mib (info), ==, 512);
  g_assert_cmpstr (smolvm_vm_info_get_kernel_path (info), ==, "/images/vmlinux");
  g_assert_cmpstr (smolvm_vm_info_get_initrd_path (info), ==, "");
  g_assert_cmpstr (smolvm_vm_info_get_rootfs_path (info), ==, "/images/rootfs.ext4");
  g_assert_cmpstr (smolvm_vm_info_get_boot_args (info), ==,
                   "console=ttyS0 reboot=k panic=1 pci=off");
  g_assert_true (smolvm_vm_info_get_network (info));
  g_assert_cmpstr (smolvm_vm_info_get_accel (info), ==, "auto");
  g_assert_cmpstr (smolvm_vm_info_get_machine (info), ==, "");
  g_assert_cmpstr (smolvm_vm_info_get_disk_path (info), ==, "/var/lib/smolvm/vms/web-1/disk.ext4");
  g_assert_cmpstr (smolvm_vm_info_get_console_log_path (info), ==,
                   "/run/smolvm/vms/web-1/console.log");
  g_assert_cmpstr (smolvm_vm_info_get_restored_from (info), ==, "before-deploy");
  g_assert_null (smolvm_vm_info_get_cloned_from (info));
  g_assert_cmpstr (smolvm_vm_info_get_ip_address (info), ==, "172.30.0.2");
  g_assert_cmpuint (g_variant_n_children (smolvm_vm_info_get_network_config (info)), ==, 5);

  /* vm-config: the eleven VMConfig keys, nothing of the state */
  config = smolvm_vm_info_get_vm_config (info);
  g_assert_true (g_variant_is_of_type (config, G_VARIANT_TYPE_VARDICT));
  g_assert_cmpuint (g_variant_n_children (config), ==, 11);
  g_assert_true (g_variant_lookup (config, "mem_size_mib", "u", NULL));
  g_assert_false (g_variant_lookup (config, "state", "s", NULL));
  g_assert_false (g_variant_lookup (config, "future_key", "s", NULL));

  g_object_get (info, "status", &status, "pid", &pid, NULL);
  g_assert_cmpstr (status, ==, "running");
  g_assert_cmpuint (pid, ==, 4242);

  again = smolvm_vm_info_to_variant (info);
  g_assert_true (g_variant_lookup (again, "future_key", "s", NULL));
}

static void
test_vm_info_no_network (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmolvmVmInfo) info = smolvm_vm_info_new_from_variant (vm_dict (FALSE, ""), &error);

  g_assert_no_error (error);
  g_assert_false (smolvm_vm_info_get_network (info));
  g_assert_null (smolvm_vm_info_get_ip_address (info));
  g_assert_null (smolvm_vm_info_get_restored_from (info));
  g_assert_cmpuint (g_variant_n_children (smolvm_vm_info_get_network_config (info)), ==, 0);
}

/* a networked clone: reached at its host_ip, not at the guest_ip it shares */
static void
test_vm_info_clone_address (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) base = g_variant_ref_sink (vm_dict (TRUE, ""));
  g_auto(GVariantDict) dict = G_VARIANT_DICT_INIT (base);
  g_auto(GVariantDict) net = G_VARIANT_DICT_INIT (NULL);
  g_autoptr(SmolvmVmInfo) info = NULL;

  g_variant_dict_insert (&net, "guest_ip", "s", "172.16.0.2");
  g_variant_dict_insert (&net, "host_ip", "s", "172.16.0.6");
  g_variant_dict_insert_value (&dict, "network_config", g_variant_dict_end (&net));
  info = smolvm_vm_info_new_from_variant (g_variant_dict_end (&dict), &error);
  g_assert_no_error (error);
  g_assert_cmpstr (smolvm_vm_info_get_ip_address (info), ==, "172.16.0.6");
}

static const gchar *const vm_keys[] = {
  "vm_id", "backend", "vcpu_count", "mem_size_mib", "kernel_path", "initrd_path", "rootfs_path",
  "boot_args", "network", "accel", "machine", "state", "pid", "disk_path", "console_log_path",
  "network_config", "restored_from",
};

static void
test_vm_info_bad (void)
{
  g_autoptr(GVariant) good = g_variant_ref_sink (vm_dict (TRUE, ""));

  for (gsize i = 0; i < G_N_ELEMENTS (vm_keys); i++) {
    g_autoptr(GError) missing_error = NULL;
    g_autoptr(GError) mistyped_error = NULL;
    g_autoptr(SmolvmVmInfo) missing = NULL;
    g_autoptr(SmolvmVmInfo) mistyped = NULL;

    g_test_message ("key %s", vm_keys[i]);
    missing = smolvm_vm_info_new_from_variant (dict_edit (good, vm_keys[i], NULL),
                                               &missing_error);
    g_assert_null (missing);
    g_assert_error (missing_error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
    g_assert_nonnull (strstr (missing_error->message, vm_keys[i]));

    mistyped = smolvm_vm_info_new_from_variant (
        dict_edit (good, vm_keys[i], g_variant_new_int64 (-1)), &mistyped_error);
    g_assert_null (mistyped);
    g_assert_error (mistyped_error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
    g_assert_nonnull (strstr (mistyped_error->message, vm_keys[i]));
  }
}

/* cloned_from: the snapshot, NULL for "", and optional, unlike the other
 * keys: a smolvmd older than clones does not send it. */
static void
test_vm_info_cloned_from (void)
{
  g_autoptr(GVariant) good = g_variant_ref_sink (vm_dict (FALSE, ""));
  g_autoptr(GError) error = NULL;
  g_autoptr(SmolvmVmInfo) cloned = NULL;
  g_autoptr(SmolvmVmInfo) older = NULL;
  g_autoptr(SmolvmVmInfo) mistyped = NULL;
  g_autofree gchar *cloned_from = NULL;

  cloned = smolvm_vm_info_new_from_variant (
      dict_edit (good, "cloned_from", g_variant_new_string ("before-deploy")), &error);
  g_assert_no_error (error);
  g_assert_cmpstr (smolvm_vm_info_get_cloned_from (cloned), ==, "before-deploy");
  g_object_get (cloned, "cloned-from", &cloned_from, NULL);
  g_assert_cmpstr (cloned_from, ==, "before-deploy");
  /* not a restore */
  g_assert_null (smolvm_vm_info_get_restored_from (cloned));

  older = smolvm_vm_info_new_from_variant (dict_edit (good, "cloned_from", NULL), &error);
  g_assert_no_error (error);
  g_assert_null (smolvm_vm_info_get_cloned_from (older));
  g_assert_cmpstr (smolvm_vm_info_get_vm_id (older), ==, "web-1");

  /* optional, but never of another type */
  mistyped = smolvm_vm_info_new_from_variant (
      dict_edit (good, "cloned_from", g_variant_new_int64 (-1)), &error);
  g_assert_null (mistyped);
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "cloned_from"));
}

/* Made with g_object_new() (as a binding may): empty, but safe. */
static void
test_empty_objects (void)
{
  g_autoptr(SmolvmVmInfo) vm = g_object_new (SMOLVM_TYPE_VM_INFO, NULL);
  g_autoptr(SmolvmSnapshotInfo) snapshot = g_object_new (SMOLVM_TYPE_SNAPSHOT_INFO, NULL);
  g_autoptr(GVariant) vm_dict_empty = smolvm_vm_info_to_variant (vm);
  g_autoptr(GVariant) snapshot_dict_empty = smolvm_snapshot_info_to_variant (snapshot);

  g_assert_null (smolvm_vm_info_get_vm_id (vm));
  g_assert_null (smolvm_snapshot_info_get_created_at (snapshot));
  g_assert_cmpuint (g_variant_n_children (vm_dict_empty), ==, 0);
  g_assert_cmpuint (g_variant_n_children (snapshot_dict_empty), ==, 0);
}

/* The flags and the error domain have GTypes, for bindings. */
static void
test_types (void)
{
  g_autoptr(GFlagsClass) restore = g_type_class_ref (SMOLVM_TYPE_SNAPSHOT_RESTORE_FLAGS);
  g_autoptr(GFlagsClass) clone = g_type_class_ref (SMOLVM_TYPE_SNAPSHOT_CLONE_FLAGS);
  g_autoptr(GEnumClass) errors = g_type_class_ref (SMOLVM_TYPE_ERROR);

  g_assert_true (G_TYPE_IS_FLAGS (SMOLVM_TYPE_SNAPSHOT_CREATE_FLAGS));
  g_assert_true (G_TYPE_IS_FLAGS (SMOLVM_TYPE_VM_DELETE_FLAGS));
  g_assert_true (G_TYPE_IS_ENUM (SMOLVM_TYPE_BUS_TYPE));
  g_assert_cmpstr (g_flags_get_first_value (restore, SMOLVM_SNAPSHOT_RESTORE_FLAGS_FORCE)
                     ->value_nick, ==, "force");
  g_assert_cmpuint (clone->mask, ==, SMOLVM_SNAPSHOT_CLONE_FLAGS_RESUME);
  g_assert_cmpstr (g_flags_get_first_value (clone, SMOLVM_SNAPSHOT_CLONE_FLAGS_RESUME)
                     ->value_nick, ==, "resume");
  g_assert_cmpuint (errors->n_values, ==, SMOLVM_ERROR_REGISTRY_AUTH_FAILED + 1);
  g_assert_cmpstr (smolvm_error_to_dbus_name (SMOLVM_ERROR_IN_USE), ==, "org.smolvm.Error.InUse");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/info/snapshot", test_snapshot_info);
  g_test_add_func ("/info/snapshot-never-restored", test_snapshot_info_never_restored);
  g_test_add_func ("/info/snapshot-bad-keys", test_snapshot_info_bad);
  g_test_add_func ("/info/snapshot-bad-time-and-type", test_snapshot_info_bad_time_and_type);
  g_test_add_func ("/info/vm", test_vm_info);
  g_test_add_func ("/info/vm-no-network", test_vm_info_no_network);
  g_test_add_func ("/info/vm-bad-keys", test_vm_info_bad);
  g_test_add_func ("/info/vm-cloned-from", test_vm_info_cloned_from);
  g_test_add_func ("/info/vm-clone-address", test_vm_info_clone_address);
  g_test_add_func ("/info/empty-objects", test_empty_objects);
  g_test_add_func ("/info/types", test_types);
  return g_test_run ();
}
