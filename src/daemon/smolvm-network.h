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
/* The identity of a clone @vm_id of a snapshot whose VM had
 * @snapshot_config: the guest keeps its address, gateway, TAP name and MAC
 * (they are in its memory) inside a network namespace "smolvm-VM_ID" of
 * its own; a slot of the pool gives it the host's side: host_ip (.2, the
 * namespace's end of the veth pair namespace_veth, where NAT maps it to
 * the guest) with host_mac, the clone's own MAC, and host_veth (.1, in the
 * host). The slot is claimed through host_ip. InvalidArgument if the
 * snapshot has no network, NoSpace.
 *
 * MACs: every address of the pool gives one (06:00 and its four bytes).
 * A TAP device has its gateway address's, so a clone's TAP shows the
 * guest the gateway MAC it knew (its ARP cache is in the snapshot); the
 * veth ends have their addresses', unique to the clone. */
GVariant *smolvm_network_allocate_clone (SmolvmNetwork *self, const gchar *vm_id,
                                         GVariant *snapshot_config, GError **error);

/* Marks @config as held by @vm_id (loading records, restoring). InUse if
 * another VM holds the same identity; InvalidArgument if it is not from
 * this pool, or names host devices (TAP; namespace and host veth of a
 * clone) other than the ones its slot and @vm_id have. An empty @config
 * is accepted and claims nothing. */
gboolean smolvm_network_claim (SmolvmNetwork *self, const gchar *vm_id, GVariant *config,
                               GError **error);
void smolvm_network_release (SmolvmNetwork *self, const gchar *vm_id, GVariant *config);

/* Creates the TAP device with the gateway address and brings it up (needs
 * CAP_NET_ADMIN); an existing device is reused. Nothing for an empty config.
 * A clone's config (with namespace): makes its namespace afresh, with the
 * veth pair, the TAP device and the NAT rules (needs nft and sysctl). */
void smolvm_network_tap_up_async (SmolvmNetwork *self, GVariant *config,
                                  GAsyncReadyCallback callback, gpointer user_data);
gboolean smolvm_network_tap_up_finish (SmolvmNetwork *self, GAsyncResult *result,
                                       GError **error);
/* Removes the TAP device, or a clone's veth pair and namespace; best
 * effort, failures are logged. Nothing when they are not there. */
void smolvm_network_tap_down (SmolvmNetwork *self, GVariant *config);
/* Where the namespaces this daemon makes are recorded, a file each (a
 * runtime directory: the namespaces too go at reboot); made if missing.
 * Without it, none is recorded, and none is ever removed but a VM's own. */
gboolean smolvm_network_set_record_dir (SmolvmNetwork *self, const gchar *dir, GError **error);
/* Removes, in the background, every namespace recorded as made by this
 * daemon whose name is not a key of @in_use: those of VMs gone while no
 * daemon ran. Another program's namespace is never touched, whatever its
 * name. */
void smolvm_network_remove_stale_namespaces (SmolvmNetwork *self, GHashTable *in_use);

G_END_DECLS
