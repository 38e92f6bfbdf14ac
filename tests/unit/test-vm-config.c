/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "smolvm-error.h"
#include "smolvm-vm-config.h"

static GVariant *
dict (const gchar *text)
{
  return g_variant_ref_sink (g_variant_new_parsed (text));
}

static void
test_defaults (void)
{
  g_autoptr(GVariant) v =
    dict ("{'kernel_path': <'/k'>, 'rootfs_path': <'/r'>}");
  g_autoptr(GError) error = NULL;
  g_autoptr(SmolvmVmConfig) c = smolvm_vm_config_new_from_variant (v, TRUE, &error);
  g_autoptr(SmolvmVmConfig) off = smolvm_vm_config_new_from_variant (v, FALSE, NULL);

  g_assert_no_error (error);
  g_assert_cmpstr (c->backend, ==, "firecracker");
  g_assert_cmpuint (c->vcpu_count, ==, SMOLVM_VCPU_DEFAULT);
  g_assert_cmpuint (c->mem_size_mib, ==, SMOLVM_MEM_DEFAULT);
  g_assert_cmpstr (c->boot_args, ==, SMOLVM_BOOT_ARGS_DEFAULT);
  g_assert_cmpstr (c->initrd_path, ==, "");
  g_assert_cmpstr (c->accel, ==, "auto");
  g_assert_cmpstr (c->machine, ==, "");
  g_assert_true (c->network);
  g_assert_false (off->network);
}

static void
test_parse (void)
{
  g_autoptr(GVariant) v = dict (
    "{'vm_id': <'my-vm'>, 'backend': <'qemu'>, 'vcpu_count': <uint32 4>,"
    " 'mem_size_mib': <uint32 1024>, 'kernel_path': <'/k'>, 'initrd_path': <'/i'>,"
    " 'rootfs_path': <'/r'>, 'boot_args': <''>, 'network': <false>, 'accel': <'tcg'>,"
    " 'machine': <'pc-q35-7.2'>}");
  g_autoptr(GError) error = NULL;
  g_autoptr(SmolvmVmConfig) c = smolvm_vm_config_new_from_variant (v, TRUE, &error);

  g_assert_no_error (error);
  g_assert_cmpstr (c->vm_id, ==, "my-vm");
  g_assert_cmpstr (c->backend, ==, "qemu");
  g_assert_cmpuint (c->vcpu_count, ==, 4);
  g_assert_cmpuint (c->mem_size_mib, ==, 1024);
  g_assert_cmpstr (c->initrd_path, ==, "/i");
  g_assert_cmpstr (c->boot_args, ==, ""); /* empty is a choice, not a default */
  g_assert_false (c->network);
  g_assert_cmpstr (c->accel, ==, "tcg");
  g_assert_cmpstr (c->machine, ==, "pc-q35-7.2");
}

static void
test_invalid (void)
{
  const gchar *base = "'kernel_path': <'/k'>, 'rootfs_path': <'/r'>";
  const gchar *cases[] = {
    "'colour': <'blue'>",                 /* unknown key */
    "'vcpu_count': <'2'>",                /* wrong type */
    "'mem_size_mib': <int32 256>",
    "'network': <'no'>",
    "'vcpu_count': <uint32 0>",
    "'vcpu_count': <uint32 33>",
    "'mem_size_mib': <uint32 127>",
    "'mem_size_mib': <uint32 16385>",
    "'backend': <'xen'>",
    "'accel': <'hvf'>",
    "'machine': <'q35,accel=kvm'>",       /* would break out of a QEMU option */
    "'vm_id': <'Bad_Id'>",
    "'kernel_path': <''>",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree gchar *text = g_strdup_printf ("{%s, %s}", cases[i], base);
    g_autoptr(GVariant) v = NULL;
    g_autoptr(GError) error = NULL;
    g_autoptr(SmolvmVmConfig) c = NULL;

    g_test_message ("%s", cases[i]);
    /* a later key wins in the parsed text: put the case last for the
     * duplicate kernel_path */
    if (g_str_has_prefix (cases[i], "'kernel_path'"))
      text = (g_free (text), g_strdup_printf ("{'rootfs_path': <'/r'>, %s}", cases[i]));
    v = dict (text);
    c = smolvm_vm_config_new_from_variant (v, FALSE, &error);
    g_assert_null (c);
    g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
  }
  {
    g_autoptr(GVariant) v = dict ("{'kernel_path': <'/k'>}");
    g_autoptr(GError) error = NULL;
    g_autoptr(SmolvmVmConfig) c = smolvm_vm_config_new_from_variant (v, FALSE, &error);
    g_assert_null (c);
    g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
    g_assert_nonnull (strstr (error->message, "rootfs_path"));
  }
}

static void
test_relative_paths (void)
{
  const gchar *cases[] = {
    "{'kernel_path': <'vmlinux'>, 'rootfs_path': <'/r'>}",
    "{'kernel_path': <'/k'>, 'rootfs_path': <'r.ext4'>}",
    "{'kernel_path': <'/k'>, 'rootfs_path': <'/r'>, 'initrd_path': <'relative/initrd'>}",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) v = dict (cases[i]);
    g_autoptr(SmolvmVmConfig) c = smolvm_vm_config_new_from_variant (v, FALSE, &error);
    g_assert_null (c);
    g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
    g_assert_nonnull (strstr (error->message, "absolute"));
  }
}

static void
test_round_trips (void)
{
  g_autoptr(GVariant) v = dict (
    "{'vm_id': <'rt'>, 'backend': <'qemu'>, 'vcpu_count': <uint32 3>, 'kernel_path': <'/k'>,"
    " 'rootfs_path': <'/r'>, 'boot_args': <'quiet'>, 'network': <true>, 'accel': <'kvm'>}");
  g_autoptr(SmolvmVmConfig) c = smolvm_vm_config_new_from_variant (v, FALSE, NULL);
  g_autoptr(JsonNode) json = smolvm_vm_config_to_json (c);
  g_autofree gchar *text = json_to_string (json, FALSE);
  g_autoptr(JsonNode) parsed = json_from_string (text, NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(SmolvmVmConfig) back = smolvm_vm_config_new_from_json (json_node_get_object (parsed),
                                                                   &error);
  g_autoptr(GVariant) out = g_variant_ref_sink (smolvm_vm_config_to_variant (back));
  g_autoptr(SmolvmVmConfig) again = smolvm_vm_config_new_from_variant (out, FALSE, &error);
  g_autoptr(SmolvmVmConfig) copy = smolvm_vm_config_copy (again);
  g_autoptr(GVariant) first = g_variant_ref_sink (smolvm_vm_config_to_variant (c));
  g_autoptr(GVariant) last = g_variant_ref_sink (smolvm_vm_config_to_variant (copy));

  g_assert_no_error (error);
  g_assert_cmpuint (back->vcpu_count, ==, 3);
  g_assert_cmpstr (back->accel, ==, "kvm");
  g_assert_true (back->network);
  g_assert_true (g_variant_equal (first, last));
  g_assert_true (copy->kernel_path != again->kernel_path); /* a deep copy */

  /* a record from an older daemon lacks keys: they take defaults */
  {
    g_autoptr(JsonNode) old = json_from_string ("{\"kernel_path\": \"/k\", \"rootfs_path\": "
                                                "\"/r\", \"vcpu_count\": 1}", NULL);
    g_autoptr(SmolvmVmConfig) o = smolvm_vm_config_new_from_json (json_node_get_object (old),
                                                                  &error);
    g_assert_no_error (error);
    g_assert_cmpstr (o->backend, ==, "firecracker");
    g_assert_cmpuint (o->mem_size_mib, ==, SMOLVM_MEM_DEFAULT);
  }
  /* and a bad one is refused */
  {
    g_autoptr(JsonNode) bad = json_from_string ("{\"kernel_path\": \"/k\", \"rootfs_path\": "
                                                "\"/r\", \"vcpu_count\": 99}", NULL);
    g_autoptr(SmolvmVmConfig) b = smolvm_vm_config_new_from_json (json_node_get_object (bad),
                                                                  &error);
    g_assert_null (b);
    g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
  }
}

static void
test_string_dicts (void)
{
  g_autoptr(GVariant) v = dict ("{'guest_ip': <'10.0.0.2'>, 'n': <uint32 3>}");
  g_autoptr(JsonNode) json = smolvm_string_dict_to_json (v);
  g_autoptr(GVariant) back = g_variant_ref_sink (
    smolvm_string_dict_from_json (json_node_get_object (json)));
  const gchar *ip = NULL;

  /* only strings are carried */
  g_assert_cmpuint (json_object_get_size (json_node_get_object (json)), ==, 1);
  g_assert_true (g_variant_lookup (back, "guest_ip", "&s", &ip));
  g_assert_cmpstr (ip, ==, "10.0.0.2");
  {
    g_autoptr(JsonNode) empty = smolvm_string_dict_to_json (NULL);
    g_autoptr(GVariant) none = g_variant_ref_sink (smolvm_string_dict_from_json (NULL));
    g_assert_cmpuint (json_object_get_size (json_node_get_object (empty)), ==, 0);
    g_assert_cmpuint (g_variant_n_children (none), ==, 0);
  }
}

/* json-glib takes escapes such as \255 that make bytes which are not
 * UTF-8: a record holding one is refused (or the entry left out), never
 * handed to g_variant_new_string (found by fuzz-snapshot-json). */
static void
test_not_utf8 (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) record = json_from_string (
    "{\"network_config\": {\"netmask\": \"255.\\255.0.0\", \"ok\": \"x\"}}", &error);
  g_autoptr(JsonNode) config = json_from_string (
    "{\"kernel_path\": \"/k\\377\", \"rootfs_path\": \"/r\"}", NULL);
  g_autoptr(GVariant) dict_ = NULL;
  g_autoptr(SmolvmVmConfig) c = NULL;
  JsonObject *network;

  if (record == NULL) {
    /* a json-glib that refuses the escape itself is as good */
    g_test_skip ("json-glib refuses \\255");
    return;
  }
  network = json_node_get_object (
    json_object_get_member (json_node_get_object (record), "network_config"));
  g_assert_false (smolvm_json_member_is (network, "netmask", G_TYPE_STRING));
  g_assert_null (smolvm_string_dict_from_json_member (json_node_get_object (record),
                                                      "network_config", &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED);
  dict_ = g_variant_ref_sink (smolvm_string_dict_from_json (network));
  g_assert_cmpuint (g_variant_n_children (dict_), ==, 1);
  g_clear_error (&error);
  g_assert_nonnull (config);
  c = smolvm_vm_config_new_from_json (json_node_get_object (config), &error);
  g_assert_null (c);
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
}

/* Records share one VmConfig value by these: every field must count. */
static void
test_hash_equal (void)
{
  g_autoptr(GVariant) v = dict (
    "{'vm_id': <'my-vm'>, 'backend': <'qemu'>, 'vcpu_count': <uint32 4>,"
    " 'mem_size_mib': <uint32 1024>, 'kernel_path': <'/k'>, 'initrd_path': <'/i'>,"
    " 'rootfs_path': <'/r'>, 'boot_args': <''>, 'network': <false>, 'accel': <'tcg'>,"
    " 'machine': <'pc-q35-7.2'>}");
  g_autoptr(SmolvmVmConfig) a = smolvm_vm_config_new_from_variant (v, TRUE, NULL);
  g_autoptr(SmolvmVmConfig) b = smolvm_vm_config_copy (a);
  g_autoptr(GHashTable) table = g_hash_table_new (smolvm_vm_config_hash, smolvm_vm_config_equal);

  g_assert_true (smolvm_vm_config_equal (a, b));
  g_assert_cmpuint (smolvm_vm_config_hash (a), ==, smolvm_vm_config_hash (b));
  g_hash_table_add (table, a);
  g_assert_true (g_hash_table_contains (table, b));

  /* a change in any one field makes another config */
  b->mem_size_mib = 2048;
  g_assert_false (smolvm_vm_config_equal (a, b));
  b->mem_size_mib = a->mem_size_mib;
  b->network = TRUE;
  g_assert_false (smolvm_vm_config_equal (a, b));
  b->network = FALSE;
  g_free (b->machine);
  b->machine = g_strdup ("pc-q35-8.0");
  g_assert_false (smolvm_vm_config_equal (a, b));
  g_assert_false (g_hash_table_contains (table, b));
  g_free (b->machine);
  b->machine = g_strdup (a->machine);
  g_free (b->initrd_path);
  b->initrd_path = NULL; /* unset is not "" */
  g_assert_false (smolvm_vm_config_equal (a, b));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  smolvm_error_quark ();
  g_test_add_func ("/vm-config/defaults", test_defaults);
  g_test_add_func ("/vm-config/parse", test_parse);
  g_test_add_func ("/vm-config/invalid", test_invalid);
  g_test_add_func ("/vm-config/relative-paths", test_relative_paths);
  g_test_add_func ("/vm-config/round-trips", test_round_trips);
  g_test_add_func ("/vm-config/string-dicts", test_string_dicts);
  g_test_add_func ("/vm-config/not-utf8", test_not_utf8);
  g_test_add_func ("/vm-config/hash-equal", test_hash_equal);
  return g_test_run ();
}
