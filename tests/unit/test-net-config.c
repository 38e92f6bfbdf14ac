/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <gio/gio.h>

#include "smolvm-error.h"
#include "smolvm-net-config.h"

static GVariant *
dict (const gchar *text)
{
  return g_variant_ref_sink (g_variant_new_parsed (text));
}

static void
test_ip_arg (void)
{
  g_autoptr(GVariant) v = dict ("{'guest_ip': <'172.16.0.6'>, 'gateway_ip': <'172.16.0.5'>,"
                                " 'netmask': <'255.255.255.252'>, 'tap_device': <'smolvm1'>,"
                                " 'guest_mac': <'06:00:AC:10:00:06'>}");
  g_autoptr(GError) error = NULL;
  g_autoptr(SmolvmNetConfig) net = smolvm_net_config_new_from_variant (v, &error);
  g_autofree gchar *ip = NULL;
  g_autofree gchar *args = NULL;
  g_autofree gchar *only = NULL;

  g_assert_no_error (error);
  g_assert_true (smolvm_net_config_has_address (net));
  ip = smolvm_net_config_kernel_ip_arg (net);
  g_assert_cmpstr (ip, ==, "ip=172.16.0.6::172.16.0.5:255.255.255.252::eth0:off");
  args = smolvm_net_config_boot_args (net, "console=ttyS0 reboot=k");
  g_assert_cmpstr (args, ==,
                   "console=ttyS0 reboot=k ip=172.16.0.6::172.16.0.5:255.255.255.252::eth0:off");
  only = smolvm_net_config_boot_args (net, "");
  g_assert_cmpstr (only, ==, "ip=172.16.0.6::172.16.0.5:255.255.255.252::eth0:off");
}

static void
test_no_address (void)
{
  const gchar *cases[] = {
    "@a{sv} {}",
    "{'tap_device': <'smolvm1'>}",
    /* all three are needed */
    "{'guest_ip': <'172.16.0.6'>, 'gateway_ip': <'172.16.0.5'>}",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr(GVariant) v = dict (cases[i]);
    g_autoptr(SmolvmNetConfig) net = smolvm_net_config_new_from_variant (v, NULL);
    g_autofree gchar *ip = NULL;
    g_autofree gchar *args = NULL;

    g_assert_nonnull (net);
    g_assert_false (smolvm_net_config_has_address (net));
    ip = smolvm_net_config_kernel_ip_arg (net);
    g_assert_null (ip);
    args = smolvm_net_config_boot_args (net, "console=ttyS0");
    g_assert_cmpstr (args, ==, "console=ttyS0");
  }
  {
    g_autoptr(SmolvmNetConfig) none = smolvm_net_config_new_from_variant (NULL, NULL);
    g_autofree gchar *args = smolvm_net_config_boot_args (NULL, "quiet");
    g_assert_nonnull (none);
    g_assert_null (none->guest_ip);
    g_assert_cmpstr (args, ==, "quiet");
  }
}

/* The values end up in kernel arguments and QEMU option strings. */
static void
test_invalid (void)
{
  const gchar *cases[] = {
    "{'guest_ip': <'172.16.0.6 init=/bin/sh'>}",
    "{'guest_ip': <'172.16.0'>}",
    "{'guest_ip': <'::1'>}",
    "{'gateway_ip': <'172.16.0.5:1'>}",
    "{'netmask': <'255.255.255.252,x'>}",
    "{'tap_device': <'tap,script=/bin/evil'>}",
    "{'tap_device': <'../x'>}",
    "{'tap_device': <'averyveryverylongname'>}",
    "{'tap_device': <''>}",
    "{'guest_mac': <'06:00:AC:10:00'>}",
    "{'guest_mac': <'06:00:AC:10:00:0G'>}",
    "{'guest_ip': <uint32 1>}",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr(GVariant) v = dict (cases[i]);
    g_autoptr(GError) error = NULL;
    g_autoptr(SmolvmNetConfig) net = NULL;

    g_test_message ("%s", cases[i]);
    net = smolvm_net_config_new_from_variant (v, &error);
    g_assert_null (net);
    g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
  }
}

static void
test_round_trip (void)
{
  g_autoptr(GVariant) v = dict ("{'guest_ip': <'10.0.0.2'>, 'gateway_ip': <'10.0.0.1'>,"
                                " 'netmask': <'255.255.255.252'>, 'tap_device': <'smolvm0'>,"
                                " 'guest_mac': <'06:00:0A:00:00:02'>, 'future_key': <'kept?'>}");
  g_autoptr(SmolvmNetConfig) net = smolvm_net_config_new_from_variant (v, NULL);
  g_autoptr(GVariant) back = g_variant_ref_sink (smolvm_net_config_to_variant (net));
  g_autoptr(SmolvmNetConfig) again = smolvm_net_config_new_from_variant (back, NULL);
  g_autoptr(GVariant) empty = g_variant_ref_sink (smolvm_net_config_to_variant (NULL));
  const gchar *s = NULL;

  g_assert_cmpstr (net->tap_device, ==, "smolvm0");
  g_assert_cmpstr (net->guest_mac, ==, "06:00:0A:00:00:02");
  g_assert_true (g_variant_is_of_type (back, G_VARIANT_TYPE_VARDICT));
  g_assert_cmpuint (g_variant_n_children (back), ==, 5); /* unknown keys are not carried */
  g_assert_true (g_variant_lookup (back, "netmask", "&s", &s));
  g_assert_cmpstr (s, ==, "255.255.255.252");
  g_assert_cmpstr (again->guest_ip, ==, "10.0.0.2");
  g_assert_cmpstr (again->gateway_ip, ==, "10.0.0.1");
  g_assert_cmpuint (g_variant_n_children (empty), ==, 0);

  /* only the fields that are set */
  {
    g_autoptr(SmolvmNetConfig) part = smolvm_net_config_new ();
    g_autoptr(GVariant) pv = NULL;
    part->tap_device = g_strdup ("smolvm9");
    pv = g_variant_ref_sink (smolvm_net_config_to_variant (part));
    g_assert_cmpuint (g_variant_n_children (pv), ==, 1);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  smolvm_error_quark ();
  g_test_add_func ("/net-config/ip-arg", test_ip_arg);
  g_test_add_func ("/net-config/no-address", test_no_address);
  g_test_add_func ("/net-config/invalid", test_invalid);
  g_test_add_func ("/net-config/round-trip", test_round_trip);
  return g_test_run ();
}
