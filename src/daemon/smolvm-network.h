/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define SMOLVM_TYPE_NETWORK (smolvm_network_get_type ())
G_DECLARE_FINAL_TYPE (SmolvmNetwork, smolvm_network, SMOLVM, NETWORK, GObject)

/* Hands out network identities from a pool (default 172.16.0.0/16), one /30
 * per VM: gateway .1 on the host's TAP device, guest .2. A NetworkConfig is
 * an a{sv} of strings: guest_ip, gateway_ip, netmask, tap_device, guest_mac. */
SmolvmNetwork *smolvm_network_new (const gchar *pool_cidr, GError **error);

/* A new identity for @vm_id. NoSpace when the pool is exhausted. */
GVariant *smolvm_network_allocate (SmolvmNetwork *self, const gchar *vm_id, GError **error);

/* Marks @config as held by @vm_id (loading records, restoring). InUse if
 * another VM holds the same identity; InvalidArgument if it is not from
 * this pool. An empty @config is accepted and claims nothing. */
gboolean smolvm_network_claim (SmolvmNetwork *self, const gchar *vm_id, GVariant *config,
                               GError **error);
void smolvm_network_release (SmolvmNetwork *self, const gchar *vm_id, GVariant *config);

/* Creates the TAP device with the gateway address and brings it up (needs
 * CAP_NET_ADMIN); an existing device is reused. Nothing for an empty config. */
void smolvm_network_tap_up_async (SmolvmNetwork *self, GVariant *config,
                                  GAsyncReadyCallback callback, gpointer user_data);
gboolean smolvm_network_tap_up_finish (SmolvmNetwork *self, GAsyncResult *result,
                                       GError **error);
/* Removes the TAP device; best effort, failures are logged. */
void smolvm_network_tap_down (SmolvmNetwork *self, GVariant *config);

G_END_DECLS
