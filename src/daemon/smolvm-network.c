/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <arpa/inet.h>
#include <string.h>

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
};

G_DEFINE_TYPE (SmolvmNetwork, smolvm_network, G_TYPE_OBJECT)

static void
smolvm_network_finalize (GObject *object)
{
  SmolvmNetwork *self = SMOLVM_NETWORK (object);
  g_hash_table_unref (self->slot_owner);
  g_hash_table_unref (self->removing);
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
  /* locally administered, derived from the guest address like
   * Firecracker's examples, so that it is stable across restores */
  config->guest_mac =
    g_strdup_printf ("06:00:%02X:%02X:%02X:%02X", (net + 2) >> 24, ((net + 2) >> 16) & 0xff,
                     ((net + 2) >> 8) & 0xff, (net + 2) & 0xff);
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

/* The host's end of a clone's veth pair: the .1 of host_ip's /30. */
static gchar *
host_veth_cidr (const SmolvmNetConfig *net)
{
  struct in_addr addr;
  g_autofree gchar *ip = NULL;

  inet_pton (AF_INET, net->host_ip, &addr);
  ip = ip_to_string ((ntohl (addr.s_addr) & ~3u) + 1);
  return g_strdup_printf ("%s/30", ip);
}

/* A clone's namespace, after Firecracker's network-for-clones guide: the
 * guest's TAP (same name, gateway address as in the snapshot) sits in a
 * namespace of the clone's own, joined to the host by a veth pair whose
 * namespace end has host_ip; NAT there maps host_ip to the guest's
 * address and back. Leftovers of an earlier run go first. Its NAT rules
 * live in the namespace, so they go with it. */
static void
plan_namespace (SmolvmSteps *steps, const SmolvmNetConfig *net)
{
  const gchar *ns = net->namespace;
  g_autofree gchar *host_cidr = host_veth_cidr (net);
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

  if (link_exists (net->host_veth))
    add_ip (steps, (const gchar *[]){ "ip", "link", "del", net->host_veth, NULL });
  if (netns_exists (ns))
    add_ip (steps, (const gchar *[]){ "ip", "netns", "del", ns, NULL });
  add_ip (steps, (const gchar *[]){ "ip", "netns", "add", ns, NULL });
  add_ip (steps, (const gchar *[]){ "ip", "link", "add", net->host_veth, "type", "veth", "peer",
                                    "name", net->namespace_veth, "netns", ns, NULL });
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
  add_ip (steps, (const gchar *[]){ "ip", "-n", ns, "link", "set", net->tap_device, "up", NULL });
  /* per namespace, off in a new one */
  add_ip (steps, (const gchar *[]){ "ip", "netns", "exec", ns, "sysctl", "-qw",
                                    "net.ipv4.ip_forward=1", NULL });
  add_ip (steps, (const gchar *[]){ "ip", "netns", "exec", ns, "nft", nat, NULL });
}

/* Decides what to run only now: the device may just have gone. */
static void
step_plan_tap (SmolvmSteps *steps, gpointer step_data)
{
  SmolvmNetConfig *net = smolvm_steps_get_data (steps);
  g_autofree gchar *cidr = NULL;

  if (net->tap_device == NULL || net->gateway_ip == NULL) {
    smolvm_steps_next (steps);
    return;
  }
  if (net->namespace != NULL) {
    plan_namespace (steps, net);
    smolvm_steps_next (steps);
    return;
  }
  cidr = g_strdup_printf ("%s/30", net->gateway_ip);
  if (!link_exists (net->tap_device)) {
    add_ip (steps, (const gchar *[]){ "ip", "tuntap", "add", "dev", net->tap_device, "mode", "tap",
                                      NULL });
    add_ip (steps, (const gchar *[]){ "ip", "addr", "add", cidr, "dev", net->tap_device, NULL });
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
  if (g_hash_table_lookup (self->removing, key) == (gpointer) source)
    g_hash_table_remove (self->removing, key);
}

/* One "ip -batch" of @commands, tracked under @key until it is over. */
static void
run_removal (SmolvmNetwork *self, const gchar *key, const gchar *commands)
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
    if (!netns_exists (net->namespace) && !link_exists (net->host_veth))
      return;
    /* the veth pair first: a namespace goes in the background, and its
     * devices with it; the TAP and the NAT rules are in there */
    commands = g_strdup_printf ("link del %s\nnetns del %s\n", net->host_veth, net->namespace);
  } else {
    if (!link_exists (net->tap_device))
      return;
    commands = g_strdup_printf ("link del %s\n", net->tap_device);
  }
  run_removal (self, removal_key (net), commands);
}

void
smolvm_network_remove_stale_namespaces (SmolvmNetwork *self, GHashTable *in_use)
{
  g_autoptr(GDir) dir = g_dir_open (SMOLVM_NETNS_DIR, 0, NULL);
  const gchar *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL) {
    g_autofree gchar *commands = NULL;

    if (!g_str_has_prefix (name, "smolvm-") || g_hash_table_contains (in_use, name))
      continue;
    g_message ("Removing network namespace %s: no VM has it", name);
    commands = g_strdup_printf ("netns del %s\n", name);
    run_removal (self, name, commands);
  }
}
