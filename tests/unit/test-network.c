/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "smolvm-error.h"
#include "smolvm-network.h"

static gchar *
lookup (GVariant *config, const gchar *key)
{
  const gchar *value = NULL;
  g_assert_true (g_variant_lookup (config, key, "&s", &value));
  return g_strdup (value);
}

static void
test_allocation (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmolvmNetwork) net = smolvm_network_new ("172.16.0.0/16", &error);
  g_autoptr(GVariant) a = NULL;
  g_autoptr(GVariant) b = NULL;
  g_autofree gchar *guest = NULL, *gateway = NULL, *mask = NULL, *tap = NULL, *mac = NULL;
  g_autofree gchar *guest_b = NULL;

  g_assert_no_error (error);
  a = smolvm_network_allocate (net, "a", &error);
  g_assert_no_error (error);
  /* slot 0 holds the pool's network address: the first /30 is .4 */
  guest = lookup (a, "guest_ip");
  gateway = lookup (a, "gateway_ip");
  mask = lookup (a, "netmask");
  tap = lookup (a, "tap_device");
  mac = lookup (a, "guest_mac");
  g_assert_cmpstr (guest, ==, "172.16.0.6");
  g_assert_cmpstr (gateway, ==, "172.16.0.5");
  g_assert_cmpstr (mask, ==, "255.255.255.252");
  g_assert_cmpstr (tap, ==, "smolvm1");
  g_assert_cmpstr (mac, ==, "06:00:AC:10:00:06");
  b = smolvm_network_allocate (net, "b", &error);
  guest_b = lookup (b, "guest_ip");
  g_assert_cmpstr (guest_b, ==, "172.16.0.10");
}

static void
test_exhaustion_and_release (void)
{
  g_autoptr(GError) error = NULL;
  /* a /28 has 4 slots; the first is the network's own */
  g_autoptr(SmolvmNetwork) net = smolvm_network_new ("10.9.8.0/28", &error);
  g_autoptr(GVariant) v1 = smolvm_network_allocate (net, "v1", NULL);
  g_autoptr(GVariant) v2 = smolvm_network_allocate (net, "v2", NULL);
  g_autoptr(GVariant) v3 = smolvm_network_allocate (net, "v3", NULL);
  g_autoptr(GVariant) none = smolvm_network_allocate (net, "v4", &error);
  g_autoptr(GVariant) again = NULL;
  g_autofree gchar *ip2 = lookup (v2, "guest_ip");
  g_autofree gchar *ip_again = NULL;

  g_assert_nonnull (v1);
  g_assert_nonnull (v3);
  g_assert_null (none);
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NO_SPACE);
  g_clear_error (&error);

  /* only its owner releases a slot */
  smolvm_network_release (net, "v1", v2);
  g_assert_null (smolvm_network_allocate (net, "v4", NULL));
  smolvm_network_release (net, "v2", v2);
  again = smolvm_network_allocate (net, "v4", &error);
  g_assert_no_error (error);
  ip_again = lookup (again, "guest_ip");
  g_assert_cmpstr (ip_again, ==, ip2);
}

static void
test_claim (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmolvmNetwork) net = smolvm_network_new ("172.16.0.0/16", NULL);
  g_autoptr(SmolvmNetwork) other = smolvm_network_new ("10.0.0.0/24", NULL);
  g_autoptr(GVariant) config = smolvm_network_allocate (other, "x", NULL);
  g_autoptr(GVariant) ours = NULL;
  g_autoptr(GVariant) empty = g_variant_ref_sink (g_variant_new_parsed ("@a{sv} {}"));
  g_autoptr(GVariant) next = NULL;
  g_autofree gchar *ip = NULL;

  /* a record restored from disk claims its identity */
  ours = g_variant_ref_sink (g_variant_new_parsed (
    "{'guest_ip': <'172.16.0.10'>, 'gateway_ip': <'172.16.0.9'>, 'netmask': <'255.255.255.252'>,"
    " 'tap_device': <'smolvm2'>, 'guest_mac': <'06:00:AC:10:00:0A'>}"));
  g_assert_true (smolvm_network_claim (net, "vm-a", ours, &error));
  g_assert_no_error (error);
  /* again by the same VM: fine; by another: InUse */
  g_assert_true (smolvm_network_claim (net, "vm-a", ours, &error));
  g_assert_false (smolvm_network_claim (net, "vm-b", ours, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_IN_USE);
  g_clear_error (&error);
  /* from another pool */
  g_assert_false (smolvm_network_claim (net, "vm-c", config, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  /* a record from elsewhere (an imported snapshot) that names a host
   * device not of its slot: a restore would bring it up, a stop delete it */
  {
    const gchar *crafted[] = {
      "{'guest_ip': <'172.16.0.22'>, 'gateway_ip': <'172.16.0.21'>, 'tap_device': <'eth0'>}",
      "{'guest_ip': <'172.16.0.22'>, 'gateway_ip': <'172.16.0.21'>, 'tap_device': <'smolvm2'>}",
      /* the slot's TAP, with another network's address on the host */
      "{'guest_ip': <'172.16.0.22'>, 'gateway_ip': <'10.0.0.1'>, 'tap_device': <'smolvm5'>}",
      "{'guest_ip': <'10.0.0.2'>, 'gateway_ip': <'172.16.0.21'>, 'tap_device': <'smolvm5'>,"
      " 'host_ip': <'172.16.0.22'>}",
      "{'guest_ip': <'172.16.0.10'>, 'gateway_ip': <'172.16.0.9'>, 'tap_device': <'smolvm2'>,"
      " 'host_ip': <'172.16.0.22'>, 'namespace': <'smolvm-vm-g'>, 'host_veth': <'eth0'>}",
      "{'guest_ip': <'172.16.0.10'>, 'gateway_ip': <'172.16.0.9'>, 'tap_device': <'smolvm2'>,"
      " 'host_ip': <'172.16.0.22'>, 'namespace': <'smolvm-vm-a'>, 'host_veth': <'smolvmv5'>}",
    };
    for (gsize i = 0; i < G_N_ELEMENTS (crafted); i++) {
      g_autoptr(GVariant) v = g_variant_ref_sink (g_variant_new_parsed (crafted[i]));
      g_test_message ("%s", crafted[i]);
      g_assert_false (smolvm_network_claim (net, "vm-g", v, &error));
      g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
      g_clear_error (&error);
    }
    /* the slot of 172.16.0.22 stays free */
    {
      g_autoptr(GVariant) right = g_variant_ref_sink (g_variant_new_parsed (
        "{'guest_ip': <'172.16.0.10'>, 'gateway_ip': <'172.16.0.9'>, 'tap_device': <'smolvm2'>,"
        " 'host_ip': <'172.16.0.22'>, 'namespace': <'smolvm-vm-g'>, 'host_veth': <'smolvmv5'>}"));
      g_assert_true (smolvm_network_claim (net, "vm-g", right, &error));
      g_assert_no_error (error);
      smolvm_network_release (net, "vm-g", right);
    }
  }
  /* nothing to claim */
  g_assert_true (smolvm_network_claim (net, "vm-d", empty, &error));
  g_assert_true (smolvm_network_claim (net, "vm-d", NULL, &error));
  g_assert_no_error (error);
  /* allocation skips the claimed slot */
  {
    g_autoptr(GVariant) first = smolvm_network_allocate (net, "vm-e", NULL);

    g_assert_nonnull (first);
    next = smolvm_network_allocate (net, "vm-f", NULL);
    ip = lookup (next, "guest_ip");
    g_assert_cmpstr (ip, ==, "172.16.0.14");
  }
}

static void
test_bad_pools (void)
{
  const gchar *pools[] = { "172.16.0.0", "172.16.0.0/7", "172.16.0.0/29", "nonsense/16",
                           "172.16.0.0/abc", "::1/64" };

  for (gsize i = 0; i < G_N_ELEMENTS (pools); i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(SmolvmNetwork) net = smolvm_network_new (pools[i], &error);
    g_test_message ("%s", pools[i]);
    g_assert_null (net);
    g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
  }
  /* host bits are ignored */
  {
    g_autoptr(SmolvmNetwork) net = smolvm_network_new ("192.168.7.77/24", NULL);
    g_autoptr(GVariant) v = smolvm_network_allocate (net, "v", NULL);
    g_autofree gchar *ip = lookup (v, "guest_ip");
    g_assert_cmpstr (ip, ==, "192.168.7.6");
  }
}

/* A clone keeps the guest's side and gets its own host side; its slot
 * is its host_ip's, so that clones of one snapshot never collide, and a
 * daemon that loads its record again claims the same. */
static void
test_clone (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmolvmNetwork) net = smolvm_network_new ("172.16.0.0/16", &error);
  g_autoptr(SmolvmNetwork) restarted = smolvm_network_new ("172.16.0.0/16", &error);
  g_autoptr(GVariant) src = smolvm_network_allocate (net, "src", &error);
  g_autoptr(GVariant) c1 = smolvm_network_allocate_clone (net, "c1", src, &error);
  g_autoptr(GVariant) c2 = smolvm_network_allocate_clone (net, "c2", src, &error);
  g_autoptr(GVariant) none = g_variant_ref_sink (g_variant_new ("a{sv}", NULL));
  g_autoptr(GVariant) bad = NULL;
  g_autoptr(GVariant) next = NULL;
  g_autofree gchar *guest = lookup (src, "guest_ip");
  g_autofree gchar *guest1 = lookup (c1, "guest_ip");
  g_autofree gchar *mac = lookup (src, "guest_mac");
  g_autofree gchar *mac1 = lookup (c1, "guest_mac");
  g_autofree gchar *host1 = lookup (c1, "host_ip");
  g_autofree gchar *host2 = lookup (c2, "host_ip");
  g_autofree gchar *host_mac1 = lookup (c1, "host_mac");
  g_autofree gchar *host_mac2 = lookup (c2, "host_mac");
  g_autofree gchar *ns1 = lookup (c1, "namespace");
  g_autofree gchar *veth1 = lookup (c1, "host_veth");
  g_autofree gchar *nsveth1 = lookup (c1, "namespace_veth");
  g_autofree gchar *next_ip = NULL;

  g_assert_no_error (error);
  g_assert_cmpstr (guest1, ==, guest);
  g_assert_cmpstr (mac1, ==, mac);
  g_assert_cmpstr (host1, ==, "172.16.0.10");
  g_assert_cmpstr (host2, ==, "172.16.0.14");
  /* the guest's MAC is the snapshot's; what the host sees is the clone's */
  g_assert_cmpstr (host_mac1, ==, "06:00:AC:10:00:0A");
  g_assert_cmpstr (host_mac2, ==, "06:00:AC:10:00:0E");
  g_assert_false (g_variant_lookup (src, "host_mac", "&s", NULL));
  g_assert_cmpstr (ns1, ==, "smolvm-c1");
  g_assert_cmpstr (veth1, ==, "smolvmv2");
  g_assert_cmpstr (nsveth1, ==, "veth0");
  /* a fresh VM takes the next free slot, not a clone's */
  next = smolvm_network_allocate (net, "fresh", &error);
  next_ip = lookup (next, "guest_ip");
  g_assert_cmpstr (next_ip, ==, "172.16.0.18");

  /* after a restart: the source and both clones claim, though their
   * guest_ip is the same */
  g_assert_true (smolvm_network_claim (restarted, "src", src, &error));
  g_assert_true (smolvm_network_claim (restarted, "c1", c1, &error));
  g_assert_true (smolvm_network_claim (restarted, "c2", c2, &error));
  g_assert_no_error (error);
  /* and a clone's host_ip taken by another is InUse */
  g_assert_false (smolvm_network_claim (restarted, "c9", c1, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_IN_USE);
  g_clear_error (&error);
  smolvm_network_release (restarted, "c1", c1);
  /* free now, but its namespace is c1's: not c9's to claim */
  g_assert_false (smolvm_network_claim (restarted, "c9", c1, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_true (smolvm_network_claim (restarted, "c1", c1, &error));
  g_assert_no_error (error);

  /* nothing to clone without a NIC */
  bad = smolvm_network_allocate_clone (net, "c3", none, &error);
  g_assert_null (bad);
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
}

/* At start-up only the namespaces this daemon recorded are its own: a
 * record whose namespace is gone is dropped, one of a live VM stays, and
 * without a record directory nothing is looked at. */
static void
test_stale_records (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmolvmNetwork) net = smolvm_network_new ("172.16.0.0/16", &error);
  g_autoptr(SmolvmNetwork) unrecorded = smolvm_network_new ("172.16.0.0/16", &error);
  g_autofree gchar *dir = g_dir_make_tmp ("smolvm-netns-XXXXXX", &error);
  g_autofree gchar *records = g_build_filename (dir, "netns", NULL);
  g_autofree gchar *gone = g_build_filename (records, "smolvm-test-gone-0xe", NULL);
  g_autofree gchar *kept = g_build_filename (records, "smolvm-test-kept-0xe", NULL);
  g_autoptr(GHashTable) in_use = g_hash_table_new (g_str_hash, g_str_equal);

  g_assert_no_error (error);
  smolvm_network_remove_stale_namespaces (unrecorded, in_use);
  g_assert_true (smolvm_network_set_record_dir (net, records, &error));
  g_assert_no_error (error);
  g_assert_true (g_file_test (records, G_FILE_TEST_IS_DIR));
  g_assert_true (g_file_set_contents (gone, "", 0, NULL));
  g_assert_true (g_file_set_contents (kept, "", 0, NULL));
  g_hash_table_add (in_use, (gpointer) "smolvm-test-kept-0xe");
  /* neither is in /run/netns here: no "ip" runs */
  smolvm_network_remove_stale_namespaces (net, in_use);
  g_assert_false (g_file_test (gone, G_FILE_TEST_EXISTS));
  g_assert_true (g_file_test (kept, G_FILE_TEST_EXISTS));
  g_assert_cmpint (g_unlink (kept), ==, 0);
  g_assert_cmpint (g_rmdir (records), ==, 0);
  g_assert_cmpint (g_rmdir (dir), ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  smolvm_error_quark ();
  g_test_add_func ("/network/allocation", test_allocation);
  g_test_add_func ("/network/exhaustion-and-release", test_exhaustion_and_release);
  g_test_add_func ("/network/claim", test_claim);
  g_test_add_func ("/network/bad-pools", test_bad_pools);
  g_test_add_func ("/network/clone", test_clone);
  g_test_add_func ("/network/stale-records", test_stale_records);
  return g_test_run ();
}
