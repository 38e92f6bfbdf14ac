/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <arpa/inet.h>
#include <string.h>

#include "smolvm-error.h"
#include "smolvm-net-config.h"
#include "smolvm-network.h"
#include "smolvm-steps.h"

#define SLOT_SIZE 4 /* a /30 per VM */

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

GVariant *
smolvm_network_allocate (SmolvmNetwork *self, const gchar *vm_id, GError **error)
{
  /* slot 0 holds the pool's network address */
  for (guint slot = 1; slot < self->n_slots; slot++) {
    if (g_hash_table_contains (self->slot_owner, GUINT_TO_POINTER (slot)))
      continue;
    g_autoptr(SmolvmNetConfig) config = slot_config (self, slot);
    g_hash_table_insert (self->slot_owner, GUINT_TO_POINTER (slot), g_strdup (vm_id));
    return g_variant_ref_sink (smolvm_net_config_to_variant (config));
  }
  g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NO_SPACE,
               "The network pool is exhausted (%u VMs have an address); delete a VM or "
               "create this one without networking",
               self->n_slots - 1);
  return NULL;
}

/* The slot of @config, or 0 when it is empty, invalid or not from this
 * pool. */
static guint
config_slot (SmolvmNetwork *self, GVariant *config, gboolean *empty)
{
  g_autoptr(SmolvmNetConfig) net = smolvm_net_config_new_from_variant (config, NULL);
  struct in_addr addr;
  guint32 ip;

  *empty = net != NULL && net->guest_ip == NULL;
  if (net == NULL || *empty || inet_pton (AF_INET, net->guest_ip, &addr) != 1)
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
                 "The network identity %s of VM '%s' now belongs to VM '%s'", taken->guest_ip,
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

/* Decides what to run only now: the device may just have gone. */
static void
step_plan_tap (SmolvmSteps *steps, gpointer step_data)
{
  SmolvmNetConfig *net = smolvm_steps_get_data (steps);
  g_autofree gchar *cidr = NULL;
  g_autofree gchar *sys_path = NULL;

  if (net->tap_device == NULL || net->gateway_ip == NULL) {
    smolvm_steps_next (steps);
    return;
  }
  cidr = g_strdup_printf ("%s/30", net->gateway_ip);
  sys_path = g_build_filename ("/sys/class/net", net->tap_device, NULL);
  if (!g_file_test (sys_path, G_FILE_TEST_EXISTS)) {
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
  GSubprocess *removal =
    net->tap_device != NULL ? g_hash_table_lookup (self->removing, net->tap_device) : NULL;

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
  const gchar *tap = g_object_get_data (source, "tap");
  g_autoptr(GError) error = NULL;

  if (!g_subprocess_wait_check_finish (G_SUBPROCESS (source), result, &error))
    g_message ("Removing TAP device %s failed: %s", tap, error->message);
  if (g_hash_table_lookup (self->removing, tap) == (gpointer) source)
    g_hash_table_remove (self->removing, tap);
}

void
smolvm_network_tap_down (SmolvmNetwork *self, GVariant *config)
{
  g_autoptr(SmolvmNetConfig) net = smolvm_net_config_new_from_variant (config, NULL);
  const gchar *tap = net != NULL ? net->tap_device : NULL;
  g_autoptr(GSubprocess) proc = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree gchar *sys_path = NULL;

  if (tap == NULL)
    return;
  sys_path = g_build_filename ("/sys/class/net", tap, NULL);
  if (!g_file_test (sys_path, G_FILE_TEST_EXISTS))
    return;
  proc = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE,
                           &error, "ip", "link", "del", tap, NULL);
  if (proc == NULL) {
    g_message ("Cannot remove TAP device %s: %s", tap, error->message);
    return;
  }
  g_object_set_data_full (G_OBJECT (proc), "tap", g_strdup (tap), g_free);
  g_hash_table_replace (self->removing, g_strdup (tap), g_object_ref (proc));
  g_subprocess_wait_check_async (proc, NULL, on_tap_down_done, g_object_ref (self));
}
