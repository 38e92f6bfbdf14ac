/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* A VM's network identity, typed. On D-Bus and on disk it is the a{sv} of
 * strings NetworkConfig; these convert between the two. A field is NULL
 * when the dictionary lacks it; an empty dictionary is "no network". */
typedef struct {
  gchar *guest_ip;   /* dotted IPv4 */
  gchar *gateway_ip; /* dotted IPv4, the host end of the TAP device */
  gchar *netmask;    /* dotted IPv4 */
  gchar *tap_device; /* a Linux interface name */
  gchar *guest_mac;  /* aa:bb:cc:dd:ee:ff */
  /* a clone only: it runs in a network namespace of its own, since its
   * guest keeps the snapshot's address (see smolvm-network.h) */
  gchar *host_ip;        /* dotted IPv4, where the host reaches the guest */
  gchar *host_mac;       /* the MAC of host_ip's interface: the clone's own */
  gchar *namespace;      /* the name of the namespace, under /run/netns */
  gchar *host_veth;      /* the veth end in the host's namespace */
  gchar *namespace_veth; /* its peer, in the clone's namespace */
} SmolvmNetConfig;

SmolvmNetConfig *smolvm_net_config_new (void);
void smolvm_net_config_free (SmolvmNetConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmolvmNetConfig, smolvm_net_config_free)

/* Parses and checks @asv (NULL is the empty config). Unknown keys are
 * ignored; a known key that is not a string, or whose value is not a
 * valid address, interface name or MAC, is InvalidArgument: the values end
 * up in kernel arguments and QEMU option strings. */
SmolvmNetConfig *smolvm_net_config_new_from_variant (GVariant *asv, GError **error);
/* The a{sv}, holding only the fields that are set (floating reference). */
GVariant *smolvm_net_config_to_variant (const SmolvmNetConfig *config);

/* Whether @name is a network namespace name "ip netns" takes. */
gboolean smolvm_net_config_is_namespace_name (const gchar *name);

/* Whether the guest gets an address (guest_ip, gateway_ip and netmask). */
gboolean smolvm_net_config_has_address (const SmolvmNetConfig *config);

/* The kernel's "ip=" autoconfiguration argument for eth0, or NULL without
 * an address: "ip=GUEST::GATEWAY:NETMASK::eth0:off". */
gchar *smolvm_net_config_kernel_ip_arg (const SmolvmNetConfig *config);
/* @boot_args followed by the ip= argument when @config (may be NULL) has
 * an address; else a copy of @boot_args. */
gchar *smolvm_net_config_boot_args (const SmolvmNetConfig *config, const gchar *boot_args);

G_END_DECLS
