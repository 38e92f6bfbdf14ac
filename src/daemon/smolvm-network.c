/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>

#include "smolvm-error-map.h"
#include "smolvm-error.h"
#include "smolvm-net-config.h"
#include "smolvm-network.h"
#include "smolvm-steps.h"

#define SLOT_SIZE 4 /* a /30 per VM */
#define SMOLVM_NETNS_DIR "/run/netns" /* where "ip netns" keeps them */

struct _SmolvmNetwork {
  GObject parent_instance;
  guint32 base; /* host order */
  guint n_slots;
  GHashTable *slot_owner; /* slot number -> vm id */
  GHashTable *removing;   /* TAP name -> GSubprocess of its "ip link del" */
  gchar *netns_records;   /* a file per namespace this daemon made, or NULL */
};

G_DEFINE_TYPE (SmolvmNetwork, smolvm_network, G_TYPE_OBJECT)

static void
smolvm_network_finalize (GObject *object)
{
  SmolvmNetwork *self = SMOLVM_NETWORK (object);
  g_hash_table_unref (self->slot_owner);
  g_hash_table_unref (self->removing);
  g_free (self->netns_records);
  G_OBJECT_CLASS (smolvm_network_parent_class)->finalize (object);
}

static void
smolvm_network_class_init (SmolvmNetworkClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = smolvm_network_finalize;
}

static void
smolvm_network_init (SmolvmNetwork *self)
{
  self->slot_owner = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL, g_free);
  self->removing = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
}

static gchar *
ip_to_string (guint32 addr)
{
  return g_strdup_printf ("%u.%u.%u.%u", addr >> 24, (addr >> 16) & 0xff, (addr >> 8) & 0xff,
                          addr & 0xff);
}

/* Locally administered (06:00), then the four bytes of @addr: every
 * address of the pool gives its own MAC, the same on every run. */
static gchar *
mac_for_ip (guint32 addr)
{
  return g_strdup_printf ("06:00:%02X:%02X:%02X:%02X", addr >> 24, (addr >> 16) & 0xff,
                          (addr >> 8) & 0xff, addr & 0xff);
}

static guint32
ip_from_string (const gchar *text)
{
  struct in_addr addr;

  if (text == NULL || inet_pton (AF_INET, text, &addr) != 1)
    return 0;
  return ntohl (addr.s_addr);
}

SmolvmNetwork *
smolvm_network_new (const gchar *pool_cidr, GError **error)
{
  g_autoptr(SmolvmNetwork) self = g_object_new (SMOLVM_TYPE_NETWORK, NULL);
  g_auto(GStrv) parts = g_strsplit (pool_cidr, "/", 2);
  struct in_addr addr;
  guint64 prefix = 0;

  if (g_strv_length (parts) != 2 || inet_pton (AF_INET, parts[0], &addr) != 1 ||
      !g_ascii_string_to_unsigned (parts[1], 10, 8, 28, &prefix, NULL)) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                 "Invalid network pool '%s': expected an IPv4 CIDR with a prefix of 8 to 28, "
                 "e.g. 172.16.0.0/16",
                 pool_cidr);
    return NULL;
  }
  self->base = ntohl (addr.s_addr) & ~((1u << (32 - prefix)) - 1);
  self->n_slots = (1u << (32 - prefix)) / SLOT_SIZE;
  return g_steal_pointer (&self);
}

static SmolvmNetConfig *
slot_config (SmolvmNetwork *self, guint slot)
{
  guint32 net = self->base + slot * SLOT_SIZE;
  SmolvmNetConfig *config = smolvm_net_config_new ();

  config->guest_ip = ip_to_string (net + 2);
  config->gateway_ip = ip_to_string (net + 1);
  config->netmask = g_strdup ("255.255.255.252");
  config->tap_device = g_strdup_printf ("smolvm%u", slot);
  /* derived from the guest address like Firecracker's examples, so that
   * it is stable across restores */
  config->guest_mac = mac_for_ip (net + 2);
  return config;
}

/* A free slot, now held by @vm_id; 0 when the pool is exhausted. */
static guint
take_slot (SmolvmNetwork *self, const gchar *vm_id, GError **error)
{
  /* slot 0 holds the pool's network address */
  for (guint slot = 1; slot < self->n_slots; slot++) {
    if (g_hash_table_contains (self->slot_owner, GUINT_TO_POINTER (slot)))
      continue;
    g_hash_table_insert (self->slot_owner, GUINT_TO_POINTER (slot), g_strdup (vm_id));
    return slot;
  }
  g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NO_SPACE,
               "The network pool is exhausted (%u VMs have an address); delete a VM or "
               "create this one without networking",
               self->n_slots - 1);
  return 0;
}

GVariant *
smolvm_network_allocate (SmolvmNetwork *self, const gchar *vm_id, GError **error)
{
  guint slot = take_slot (self, vm_id, error);
  g_autoptr(SmolvmNetConfig) config = NULL;

  if (slot == 0)
    return NULL;
  config = slot_config (self, slot);
  return g_variant_ref_sink (smolvm_net_config_to_variant (config));
}

GVariant *
smolvm_network_allocate_clone (SmolvmNetwork *self, const gchar *vm_id, GVariant *snapshot_config,
                               GError **error)
{
  g_autoptr(SmolvmNetConfig) config = smolvm_net_config_new_from_variant (snapshot_config, error);
  guint32 net;
  guint slot;

  if (config == NULL)
    return NULL;
  if (!smolvm_net_config_has_address (config) || config->tap_device == NULL) {
    g_set_error_literal (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                         "The snapshot's VM has no network interface to clone");
    return NULL;
  }
  slot = take_slot (self, vm_id, error);
  if (slot == 0)
    return NULL;
  /* the guest's side (address, gateway, TAP name, MAC) is in its memory
   * and stays; the host's side is the slot's: .1 on the host's veth end,
   * .2 on the namespace's, which NAT maps to the guest */
  net = self->base + slot * SLOT_SIZE;
  g_free (config->host_ip);
  config->host_ip = ip_to_string (net + 2);
  g_free (config->namespace);
  config->namespace = g_strconcat ("smolvm-", vm_id, NULL);
  g_free (config->host_veth);
  config->host_veth = g_strdup_printf ("smolvmv%u", slot);
  g_free (config->namespace_veth);
  config->namespace_veth = g_strdup ("veth0");
  /* the guest's MAC is in its memory, as is its gateway's (the TAP's, in
   * its ARP cache): both stay, harmless in a namespace of its own; what
   * the host sees of the clone, namespace_veth, has a MAC of its own */
  g_free (config->host_mac);
  config->host_mac = mac_for_ip (net + 2);
  return g_variant_ref_sink (smolvm_net_config_to_variant (config));
}

/* The slot of @config, or 0 when it is empty, invalid or not from this
 * pool. A clone's is that of its host_ip: its guest_ip is the one of the
 * VM it was cloned from, and of its other clones. */
static guint
config_slot (SmolvmNetwork *self, GVariant *config, gboolean *empty)
{
  g_autoptr(SmolvmNetConfig) net = smolvm_net_config_new_from_variant (config, NULL);
  const gchar *own_ip = net == NULL ? NULL : net->host_ip != NULL ? net->host_ip : net->guest_ip;
  struct in_addr addr;
  guint32 ip;

  *empty = net != NULL && own_ip == NULL;
  if (net == NULL || *empty || inet_pton (AF_INET, own_ip, &addr) != 1)
    return 0;
  ip = ntohl (addr.s_addr);
  if (ip < self->base || (ip - self->base) / SLOT_SIZE >= self->n_slots)
    return 0;
  return (ip - self->base) / SLOT_SIZE;
}

/* The host's devices (and a TAP's address) that @config names are those
 * of @slot and @vm_id, what allocate() and allocate_clone() give: a record that came from
 * elsewhere (an imported or pulled snapshot) could otherwise have a
 * restore bring up, and a stop delete, a host interface or another VM's
 * namespace or veth. A clone's TAP is in its own namespace: any name. */
static gboolean
check_devices (SmolvmNetwork *self, guint slot, const gchar *vm_id, GVariant *config,
               GError **error)
{
  g_autoptr(SmolvmNetConfig) net = smolvm_net_config_new_from_variant (config, NULL);
  g_autofree gchar *tap = g_strdup_printf ("smolvm%u", slot);
  g_autofree gchar *veth = g_strdup_printf ("smolvmv%u", slot);
  g_autofree gchar *ns = g_strconcat ("smolvm-", vm_id, NULL);
  g_autofree gchar *gateway = ip_to_string (self->base + slot * SLOT_SIZE + 1);
  gboolean ok;

  if (net->namespace != NULL)
    ok = g_strcmp0 (net->namespace, ns) == 0 && g_strcmp0 (net->host_veth, veth) == 0;
  else
    /* the TAP and its address are on the host: both the slot's */
    ok = net->host_ip == NULL && (net->tap_device == NULL || g_str_equal (net->tap_device, tap)) &&
         (net->gateway_ip == NULL || g_str_equal (net->gateway_ip, gateway));
  if (!ok)
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                 "The network identity of VM '%s' names host devices or addresses (%s, %s, %s, "
                 "%s) other than its slot's (%s, %s)", vm_id,
                 net->tap_device != NULL ? net->tap_device : "-",
                 net->gateway_ip != NULL ? net->gateway_ip : "-",
                 net->namespace != NULL ? net->namespace : "-",
                 net->host_veth != NULL ? net->host_veth : "-",
                 net->namespace != NULL ? veth : tap, net->namespace != NULL ? ns : gateway);
  return ok;
}

gboolean
smolvm_network_claim (SmolvmNetwork *self, const gchar *vm_id, GVariant *config, GError **error)
{
  gboolean empty;
  guint slot = config_slot (self, config, &empty);
  const gchar *owner;

  if (empty)
    return TRUE;
  if (slot == 0) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                 "The network identity of VM '%s' is outside the configured pool", vm_id);
    return FALSE;
  }
  owner = g_hash_table_lookup (self->slot_owner, GUINT_TO_POINTER (slot));
  if (owner != NULL && g_strcmp0 (owner, vm_id) != 0) {
    g_autoptr(SmolvmNetConfig) taken = slot_config (self, slot);
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_IN_USE,
                 "The network address %s of VM '%s' now belongs to VM '%s'", taken->guest_ip,
                 vm_id, owner);
    return FALSE;
  }
  if (!check_devices (self, slot, vm_id, config, error))
    return FALSE;
  g_hash_table_insert (self->slot_owner, GUINT_TO_POINTER (slot), g_strdup (vm_id));
  return TRUE;
}

void
smolvm_network_release (SmolvmNetwork *self, const gchar *vm_id, GVariant *config)
{
  gboolean empty;
  guint slot = config_slot (self, config, &empty);

  if (slot != 0 &&
      g_strcmp0 (g_hash_table_lookup (self->slot_owner, GUINT_TO_POINTER (slot)), vm_id) == 0)
    g_hash_table_remove (self->slot_owner, GUINT_TO_POINTER (slot));
}

/* ---- TAP devices, through iproute2 ---- */

static void
on_ip_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmolvmSteps *steps = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree gchar *err_out = NULL;

  if (!g_subprocess_communicate_utf8_finish (G_SUBPROCESS (source), result, NULL, &err_out,
                                             &error)) {
    smolvm_steps_fail (steps, g_steal_pointer (&error));
    return;
  }
  if (!g_subprocess_get_successful (G_SUBPROCESS (source))) {
    smolvm_steps_fail (steps, g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_BACKEND,
                                           "Cannot set up the VM's TAP device: ip: %s",
                                           err_out != NULL ? g_strstrip (err_out) : "failed"));
    return;
  }
  smolvm_steps_next (steps);
}

/* One "ip" command; @step_data is its argv. */
static void
step_ip (SmolvmSteps *steps, gpointer step_data)
{
  g_autoptr(GSubprocess) proc = NULL;
  g_autoptr(GError) error = NULL;

  proc = g_subprocess_newv (step_data,
                            G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_PIPE,
                            &error);
  if (proc == NULL) {
    smolvm_steps_fail (steps, g_error_new (SMOLVM_ERROR, SMOLVM_ERROR_UNSUPPORTED,
                                           "Cannot run ip (iproute2) to set up networking: %s",
                                           error->message));
    return;
  }
  g_subprocess_communicate_utf8_async (proc, NULL, NULL, on_ip_done, steps);
}

static void
add_ip (SmolvmSteps *steps, const gchar *const *argv)
{
  smolvm_steps_add (steps, step_ip, g_strdupv ((gchar **) argv), (GDestroyNotify) g_strfreev);
}

/* What a removal is tracked by: a clone's namespace, else its TAP device. */
static const gchar *
removal_key (const SmolvmNetConfig *net)
{
  return net->namespace != NULL ? net->namespace : net->tap_device;
}

static gboolean
netns_exists (const gchar *name)
{
  g_autofree gchar *path = g_build_filename (SMOLVM_NETNS_DIR, name, NULL);
  return g_file_test (path, G_FILE_TEST_EXISTS);
}

static gboolean
link_exists (const gchar *name)
{
  g_autofree gchar *path = g_build_filename ("/sys/class/net", name, NULL);
  return g_file_test (path, G_FILE_TEST_EXISTS);
}

/* The file that records @name as made by this daemon, or NULL when
 * nothing is recorded (no record directory). */
static gchar *
netns_record (SmolvmNetwork *self, const gchar *name)
{
  return self->netns_records != NULL ? g_build_filename (self->netns_records, name, NULL) : NULL;
}

static gboolean
netns_is_ours (SmolvmNetwork *self, const gchar *name)
{
  g_autofree gchar *record = netns_record (self, name);
  return record != NULL && g_file_test (record, G_FILE_TEST_EXISTS);
}

static void
on_record_written (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SmolvmSteps *steps = user_data;
  g_autoptr(GError) error = NULL;

  if (!g_file_replace_contents_finish (G_FILE (source), result, NULL, &error)) {
    g_prefix_error (&error, "Cannot record the network namespace: ");
    smolvm_steps_fail (steps, g_steal_pointer (&error));
    return;
  }
  smolvm_steps_next (steps);
}

/* Records the namespace @step_data before it is made: a daemon that
 * crashes after "ip netns add" still knows it as its own at start-up. */
static void
step_record_namespace (SmolvmSteps *steps, gpointer step_data)
{
  SmolvmNetwork *self = smolvm_steps_get_source_object (steps);
  g_autofree gchar *record = netns_record (self, step_data);
  g_autoptr(GFile) file = NULL;

  if (record == NULL) {
    smolvm_steps_next (steps);
    return;
  }
  file = g_file_new_for_path (record);
  g_file_replace_contents_async (file, "", 0, NULL, FALSE, G_FILE_CREATE_PRIVATE, NULL,
                                 on_record_written, steps);
}

static void
on_record_deleted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_file_delete_finish (G_FILE (source), result, NULL); /* it may not be there */
}

static void
forget_namespace (SmolvmNetwork *self, const gchar *name)
{
  g_autofree gchar *record = netns_record (self, name);
  g_autoptr(GFile) file = NULL;

  if (record == NULL)
    return;
  file = g_file_new_for_path (record);
  g_file_delete_async (file, G_PRIORITY_DEFAULT, NULL, on_record_deleted, NULL);
}

/* A clone's namespace, after Firecracker's network-for-clones guide: the
 * guest's TAP (same name, gateway address and MAC as in the snapshot) sits
 * in a namespace of the clone's own, joined to the host by a veth pair
 * whose namespace end has host_ip (and host_mac); NAT there maps host_ip
 * to the guest's address and back. Leftovers of an earlier run go first;
 * a namespace of that name that this daemon did not make is another
 * program's, and stays: InUse. Its NAT rules live in the namespace, so
 * they go with it. */
static gboolean
plan_namespace (SmolvmSteps *steps, const SmolvmNetConfig *net, GError **error)
{
  SmolvmNetwork *self = smolvm_steps_get_source_object (steps);
  const gchar *ns = net->namespace;
  guint32 host_ip = ip_from_string (net->host_ip);
  g_autofree gchar *host_end = ip_to_string ((host_ip & ~3u) + 1);
  g_autofree gchar *host_cidr = g_strdup_printf ("%s/30", host_end);
  g_autofree gchar *host_end_mac = mac_for_ip ((host_ip & ~3u) + 1);
  g_autofree gchar *ns_mac = net->host_mac != NULL ? g_strdup (net->host_mac)
                                                   : mac_for_ip (host_ip);
  g_autofree gchar *gateway_mac = mac_for_ip (ip_from_string (net->gateway_ip));
  g_autofree gchar *ns_cidr = g_strdup_printf ("%s/30", net->host_ip);
  g_autofree gchar *tap_cidr = g_strdup_printf ("%s/30", net->gateway_ip);
  g_autofree gchar *nat = g_strdup_printf (
    "add table ip smolvm; "
    "add chain ip smolvm prerouting { type nat hook prerouting priority -100; }; "
    "add chain ip smolvm postrouting { type nat hook postrouting priority 100; }; "
    "add rule ip smolvm prerouting iifname \"%s\" ip daddr %s dnat to %s; "
    "add rule ip smolvm postrouting oifname \"%s\" ip saddr %s snat to %s",
    net->namespace_veth, net->host_ip, net->guest_ip, net->namespace_veth, net->guest_ip,
    net->host_ip);

  if (netns_exists (ns)) {
    if (!netns_is_ours (self, ns)) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_IN_USE,
                   "The network namespace %s exists and was not made by smolvmd", ns);
      return FALSE;
    }
    add_ip (steps, (const gchar *[]){ "ip", "netns", "del", ns, NULL });
  }
  if (link_exists (net->host_veth))
    add_ip (steps, (const gchar *[]){ "ip", "link", "del", net->host_veth, NULL });
  smolvm_steps_add (steps, step_record_namespace, g_strdup (ns), g_free);
  add_ip (steps, (const gchar *[]){ "ip", "netns", "add", ns, NULL });
  add_ip (steps, (const gchar *[]){ "ip", "link", "add", net->host_veth, "address", host_end_mac,
                                    "type", "veth", "peer", "name", net->namespace_veth,
                                    "address", ns_mac, "netns", ns, NULL });
  add_ip (steps, (const gchar *[]){ "ip", "addr", "add", host_cidr, "dev", net->host_veth, NULL });
  add_ip (steps, (const gchar *[]){ "ip", "link", "set", net->host_veth, "up", NULL });
  add_ip (steps, (const gchar *[]){ "ip", "-n", ns, "link", "set", "lo", "up", NULL });
  add_ip (steps, (const gchar *[]){ "ip", "-n", ns, "addr", "add", ns_cidr, "dev",
                                    net->namespace_veth, NULL });
  add_ip (steps, (const gchar *[]){ "ip", "-n", ns, "link", "set", net->namespace_veth, "up",
                                    NULL });
  add_ip (steps, (const gchar *[]){ "ip", "-n", ns, "tuntap", "add", "dev", net->tap_device,
                                    "mode", "tap", NULL });
  add_ip (steps, (const gchar *[]){ "ip", "-n", ns, "addr", "add", tap_cidr, "dev",
                                    net->tap_device, NULL });
  /* the gateway's MAC the source's guest knew: its ARP cache stays right */
  add_ip (steps, (const gchar *[]){ "ip", "-n", ns, "link", "set", net->tap_device, "address",
                                    gateway_mac, "up", NULL });
  /* per namespace, off in a new one */
  add_ip (steps, (const gchar *[]){ "ip", "netns", "exec", ns, "sysctl", "-qw",
                                    "net.ipv4.ip_forward=1", NULL });
  add_ip (steps, (const gchar *[]){ "ip", "netns", "exec", ns, "nft", nat, NULL });
  return TRUE;
}

/* Decides what to run only now: the device may just have gone. */
static void
step_plan_tap (SmolvmSteps *steps, gpointer step_data)
{
  SmolvmNetConfig *net = smolvm_steps_get_data (steps);
  g_autoptr(GError) error = NULL;
  g_autofree gchar *cidr = NULL;
  g_autofree gchar *gateway_mac = NULL;

  if (net->tap_device == NULL || net->gateway_ip == NULL) {
    smolvm_steps_next (steps);
    return;
  }
  if (net->namespace != NULL) {
    if (!plan_namespace (steps, net, &error)) {
      smolvm_steps_fail (steps, g_steal_pointer (&error));
      return;
    }
    smolvm_steps_next (steps);
    return;
  }
  cidr = g_strdup_printf ("%s/30", net->gateway_ip);
  if (!link_exists (net->tap_device)) {
    /* a MAC of the gateway's address: the one a clone's TAP has too */
    gateway_mac = mac_for_ip (ip_from_string (net->gateway_ip));
    add_ip (steps, (const gchar *[]){ "ip", "tuntap", "add", "dev", net->tap_device, "mode", "tap",
                                      NULL });
    add_ip (steps, (const gchar *[]){ "ip", "addr", "add", cidr, "dev", net->tap_device, NULL });
    add_ip (steps, (const gchar *[]){ "ip", "link", "set", net->tap_device, "address",
                                      gateway_mac, NULL });
  }
  add_ip (steps, (const gchar *[]){ "ip", "link", "set", net->tap_device, "up", NULL });
  smolvm_steps_next (steps);
}

static void
on_removal_waited (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_subprocess_wait_finish (G_SUBPROCESS (source), result, NULL);
  smolvm_steps_next (user_data);
}

/* A VM stopped and started again (a restore) must not have its new device
 * taken away by the removal of the old one. */
static void
step_wait_removal (SmolvmSteps *steps, gpointer step_data)
{
  SmolvmNetwork *self = smolvm_steps_get_source_object (steps);
  SmolvmNetConfig *net = smolvm_steps_get_data (steps);
  const gchar *key = removal_key (net);
  GSubprocess *removal = key != NULL ? g_hash_table_lookup (self->removing, key) : NULL;

  if (removal == NULL) {
    smolvm_steps_next (steps);
    return;
  }
  g_subprocess_wait_async (removal, NULL, on_removal_waited, steps);
}

void
smolvm_network_tap_up_async (SmolvmNetwork *self, GVariant *config, GAsyncReadyCallback callback,
                             gpointer user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmolvmNetConfig) net = smolvm_net_config_new_from_variant (config, &error);
  g_autoptr(SmolvmSteps) steps = NULL;

  if (net == NULL) {
    g_autoptr(GTask) task = g_task_new (self, NULL, callback, user_data);
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  steps = smolvm_steps_new (self, "setting up the TAP device", NULL, callback, user_data);
  smolvm_steps_set_data (steps, g_steal_pointer (&net), (GDestroyNotify) smolvm_net_config_free);
  smolvm_steps_add (steps, step_wait_removal, NULL, NULL);
  smolvm_steps_add (steps, step_plan_tap, NULL, NULL);
  smolvm_steps_run (g_steal_pointer (&steps));
}

gboolean
smolvm_network_tap_up_finish (SmolvmNetwork *self, GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
on_tap_down_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(SmolvmNetwork) self = user_data;
  const gchar *key = g_object_get_data (source, "key");
  g_autoptr(GError) error = NULL;

  if (!g_subprocess_communicate_utf8_finish (G_SUBPROCESS (source), result, NULL, NULL, &error) ||
      !g_subprocess_get_successful (G_SUBPROCESS (source)))
    g_message ("Removing the network of %s failed%s%s", key, error != NULL ? ": " : "",
               error != NULL ? error->message : "");
  /* a namespace's record goes once the namespace has */
  if (g_object_get_data (source, "namespace") != NULL && !netns_exists (key))
    forget_namespace (self, key);
  if (g_hash_table_lookup (self->removing, key) == (gpointer) source)
    g_hash_table_remove (self->removing, key);
}

/* One "ip -batch" of @commands, tracked under @key (a namespace's name
 * when @namespace) until it is over. */
static void
run_removal (SmolvmNetwork *self, const gchar *key, gboolean namespace, const gchar *commands)
{
  g_autoptr(GSubprocess) proc = NULL;
  g_autoptr(GError) error = NULL;

  /* -force: on past a device already gone, to the namespace */
  proc = g_subprocess_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_SILENCE |
                             G_SUBPROCESS_FLAGS_STDERR_SILENCE,
                           &error, "ip", "-force", "-batch", "-", NULL);
  if (proc == NULL) {
    g_message ("Cannot remove the network of %s: %s", key, error->message);
    return;
  }
  g_object_set_data_full (G_OBJECT (proc), "key", g_strdup (key), g_free);
  if (namespace)
    g_object_set_data (G_OBJECT (proc), "namespace", GINT_TO_POINTER (TRUE));
  g_hash_table_replace (self->removing, g_strdup (key), g_object_ref (proc));
  g_subprocess_communicate_utf8_async (proc, commands, NULL, on_tap_down_done,
                                       g_object_ref (self));
}

void
smolvm_network_tap_down (SmolvmNetwork *self, GVariant *config)
{
  g_autoptr(SmolvmNetConfig) net = smolvm_net_config_new_from_variant (config, NULL);
  g_autofree gchar *commands = NULL;

  if (net == NULL || net->tap_device == NULL ||
      g_hash_table_contains (self->removing, removal_key (net)))
    return;
  if (net->namespace != NULL) {
    gboolean exists = netns_exists (net->namespace);
    /* a namespace of that name that this daemon did not make (a clone
     * that failed on it) is another program's: it stays */
    gboolean ours = exists && netns_is_ours (self, net->namespace);
    gboolean veth = link_exists (net->host_veth);

    if (!exists)
      forget_namespace (self, net->namespace);
    if (!ours && !veth)
      return;
    /* the veth pair first: a namespace goes in the background, and its
     * devices with it; the TAP and the NAT rules are in there */
    commands = g_strconcat (veth ? "link del " : "", veth ? net->host_veth : "", veth ? "\n" : "",
                            ours ? "netns del " : "", ours ? net->namespace : "",
                            ours ? "\n" : "", NULL);
  } else {
    if (!link_exists (net->tap_device))
      return;
    commands = g_strdup_printf ("link del %s\n", net->tap_device);
  }
  run_removal (self, removal_key (net), net->namespace != NULL, commands);
}

gboolean
smolvm_network_set_record_dir (SmolvmNetwork *self, const gchar *dir, GError **error)
{
  if (g_mkdir_with_parents (dir, 0700) != 0) {
    smolvm_error_set_errno (error, errno, "Cannot create %s", dir);
    return FALSE;
  }
  g_free (self->netns_records);
  self->netns_records = g_strdup (dir);
  return TRUE;
}

void
smolvm_network_remove_stale_namespaces (SmolvmNetwork *self, GHashTable *in_use)
{
  g_autoptr(GDir) dir = NULL;
  const gchar *name;

  if (self->netns_records == NULL)
    return;
  dir = g_dir_open (self->netns_records, 0, NULL);
  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL) {
    g_autofree gchar *commands = NULL;
    g_autofree gchar *record = NULL;

    if (g_hash_table_contains (in_use, name))
      continue;
    /* the name goes into an "ip -batch" line: only what "ip netns" takes */
    if (!smolvm_net_config_is_namespace_name (name)) {
      g_message ("Ignoring %s/%s: not a network namespace name", self->netns_records, name);
      continue;
    }
    if (!netns_exists (name)) {
      record = netns_record (self, name);
      g_unlink (record);
      continue;
    }
    g_message ("Removing network namespace %s: no VM has it", name);
    commands = g_strdup_printf ("netns del %s\n", name);
    run_removal (self, name, TRUE, commands);
  }
}
