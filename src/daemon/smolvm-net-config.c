/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <net/if.h>
#include <string.h>

#include "smolvm-error.h"
#include "smolvm-net-config.h"

typedef gboolean (*CheckFunc) (const gchar *value);

typedef struct {
  const gchar *key;
  gsize offset;
  CheckFunc check;
  const gchar *what; /* for the error message */
} Field;

static gboolean
is_ipv4 (const gchar *value)
{
  g_autoptr(GInetAddress) address = g_inet_address_new_from_string (value);
  return address != NULL && g_inet_address_get_family (address) == G_SOCKET_FAMILY_IPV4;
}

/* A name "ip link" accepts, and that is safe inside a QEMU option string
 * (no commas) and a path under /sys/class/net (no slashes). */
static gboolean
is_ifname (const gchar *value)
{
  gsize len = strlen (value);
  if (len == 0 || len >= IFNAMSIZ || g_str_equal (value, ".") || g_str_equal (value, ".."))
    return FALSE;
  for (const gchar *p = value; *p != '\0'; p++)
    if (!g_ascii_isalnum (*p) && *p != '-' && *p != '_' && *p != '.')
      return FALSE;
  return TRUE;
}

/* A file name under /run/netns that "ip netns" accepts. */
static gboolean
is_netns_name (const gchar *value)
{
  gsize len = strlen (value);
  if (len == 0 || len > 128 || value[0] == '.')
    return FALSE;
  for (const gchar *p = value; *p != '\0'; p++)
    if (!g_ascii_isalnum (*p) && *p != '-' && *p != '_' && *p != '.')
      return FALSE;
  return TRUE;
}

static gboolean
is_mac (const gchar *value)
{
  if (strlen (value) != 17)
    return FALSE;
  for (guint i = 0; i < 17; i++) {
    if (i % 3 == 2 ? value[i] != ':' : !g_ascii_isxdigit (value[i]))
      return FALSE;
  }
  return TRUE;
}

static const Field fields[] = {
  { "guest_ip", G_STRUCT_OFFSET (SmolvmNetConfig, guest_ip), is_ipv4, "an IPv4 address" },
  { "gateway_ip", G_STRUCT_OFFSET (SmolvmNetConfig, gateway_ip), is_ipv4, "an IPv4 address" },
  { "netmask", G_STRUCT_OFFSET (SmolvmNetConfig, netmask), is_ipv4, "an IPv4 netmask" },
  { "tap_device", G_STRUCT_OFFSET (SmolvmNetConfig, tap_device), is_ifname,
    "an interface name" },
  { "guest_mac", G_STRUCT_OFFSET (SmolvmNetConfig, guest_mac), is_mac, "a MAC address" },
  { "host_ip", G_STRUCT_OFFSET (SmolvmNetConfig, host_ip), is_ipv4, "an IPv4 address" },
  { "host_mac", G_STRUCT_OFFSET (SmolvmNetConfig, host_mac), is_mac, "a MAC address" },
  { "namespace", G_STRUCT_OFFSET (SmolvmNetConfig, namespace), is_netns_name,
    "a network namespace name" },
  { "host_veth", G_STRUCT_OFFSET (SmolvmNetConfig, host_veth), is_ifname, "an interface name" },
  { "namespace_veth", G_STRUCT_OFFSET (SmolvmNetConfig, namespace_veth), is_ifname,
    "an interface name" },
};

#define FIELD(c, f) G_STRUCT_MEMBER (gchar *, c, (f)->offset)

SmolvmNetConfig *
smolvm_net_config_new (void)
{
  return g_new0 (SmolvmNetConfig, 1);
}

void
smolvm_net_config_free (SmolvmNetConfig *config)
{
  if (config == NULL)
    return;
  for (gsize i = 0; i < G_N_ELEMENTS (fields); i++)
    g_free (FIELD (config, &fields[i]));
  g_free (config);
}

SmolvmNetConfig *
smolvm_net_config_new_from_variant (GVariant *asv, GError **error)
{
  g_autoptr(SmolvmNetConfig) config = smolvm_net_config_new ();

  if (asv == NULL)
    return g_steal_pointer (&config);
  for (gsize i = 0; i < G_N_ELEMENTS (fields); i++) {
    const Field *f = &fields[i];
    g_autoptr(GVariant) value = g_variant_lookup_value (asv, f->key, NULL);
    const gchar *text;

    if (value == NULL)
      continue;
    if (!g_variant_is_of_type (value, G_VARIANT_TYPE_STRING)) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                   "Network config key '%s' must be a string, not '%s'", f->key,
                   g_variant_get_type_string (value));
      return NULL;
    }
    text = g_variant_get_string (value, NULL);
    if (!f->check (text)) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                   "Network config key '%s' must be %s, not '%s'", f->key, f->what, text);
      return NULL;
    }
    FIELD (config, f) = g_strdup (text);
  }
  return g_steal_pointer (&config);
}

GVariant *
smolvm_net_config_to_variant (const SmolvmNetConfig *config)
{
  g_auto(GVariantBuilder) b = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE_VARDICT);

  for (gsize i = 0; config != NULL && i < G_N_ELEMENTS (fields); i++) {
    const gchar *value = FIELD (config, &fields[i]);
    if (value != NULL)
      g_variant_builder_add (&b, "{sv}", fields[i].key, g_variant_new_string (value));
  }
  return g_variant_builder_end (&b);
}

gboolean
smolvm_net_config_is_namespace_name (const gchar *name)
{
  return is_netns_name (name);
}

gboolean
smolvm_net_config_has_address (const SmolvmNetConfig *config)
{
  return config != NULL && config->guest_ip != NULL && config->gateway_ip != NULL &&
         config->netmask != NULL;
}

gchar *
smolvm_net_config_kernel_ip_arg (const SmolvmNetConfig *config)
{
  if (!smolvm_net_config_has_address (config))
    return NULL;
  /* client:server:gateway:netmask:hostname:device:autoconf, see the
   * kernel's nfsroot.rst; no server, no hostname, no DHCP */
  return g_strdup_printf ("ip=%s::%s:%s::eth0:off", config->guest_ip, config->gateway_ip,
                          config->netmask);
}

gchar *
smolvm_net_config_boot_args (const SmolvmNetConfig *config, const gchar *boot_args)
{
  g_autofree gchar *ip = smolvm_net_config_kernel_ip_arg (config);

  if (ip == NULL)
    return g_strdup (boot_args);
  if (boot_args == NULL || boot_args[0] == '\0')
    return g_steal_pointer (&ip);
  return g_strconcat (boot_args, " ", ip, NULL);
}
