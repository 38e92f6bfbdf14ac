/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "smolvm-error.h"
#include "smolvm-id.h"
#include "smolvm-registry.h"

struct _SmolvmRegistry {
  GObject parent_instance;
  GDBusObjectManagerServer *object_manager;
  GHashTable *vms;            /* id -> SmolvmVm */
  GHashTable *snapshots;      /* id -> SmolvmSnapshot */
  /* vm_id -> set of its SmolvmSnapshots: a filtered ListSnapshots costs in
   * proportion to the VM's snapshots, not to all of them */
  GHashTable *snapshots_by_vm;
  GHashTable *jobs;           /* SmolvmJob set */
  GHashTable *reserved_vm_ids;
  GHashTable *busy_snapshots; /* id -> what is under way */
  guint last_job;
  /* ListSnapshots replies being sent from workers */
  GMutex replies_lock;
  GCond replies_done;
  guint replies_in_flight;
  GDBusConnection *connection; /* where the fallbacks are registered */
  struct FallbackSite {
    SmolvmRegistry *registry;
    const struct Fallback *fallback;
    guint id;
  } fallback_sites[3];
};

G_DEFINE_TYPE (SmolvmRegistry, smolvm_registry, G_TYPE_OBJECT)

static void
smolvm_registry_dispose (GObject *object)
{
  SmolvmRegistry *self = SMOLVM_REGISTRY (object);
  g_hash_table_remove_all (self->jobs);
  g_hash_table_remove_all (self->vms);
  g_hash_table_remove_all (self->snapshots_by_vm);
  g_hash_table_remove_all (self->snapshots);
  for (gsize i = 0; i < G_N_ELEMENTS (self->fallback_sites); i++)
    if (self->fallback_sites[i].id != 0)
      g_dbus_connection_unregister_subtree (self->connection, self->fallback_sites[i].id);
  memset (self->fallback_sites, 0, sizeof self->fallback_sites);
  g_clear_object (&self->connection);
  g_clear_object (&self->object_manager);
  G_OBJECT_CLASS (smolvm_registry_parent_class)->dispose (object);
}

static void
smolvm_registry_finalize (GObject *object)
{
  SmolvmRegistry *self = SMOLVM_REGISTRY (object);
  g_hash_table_unref (self->vms);
  g_hash_table_unref (self->snapshots);
  g_hash_table_unref (self->snapshots_by_vm);
  g_hash_table_unref (self->jobs);
  g_hash_table_unref (self->reserved_vm_ids);
  g_hash_table_unref (self->busy_snapshots);
  g_mutex_clear (&self->replies_lock);
  g_cond_clear (&self->replies_done);
  G_OBJECT_CLASS (smolvm_registry_parent_class)->finalize (object);
}

static void
smolvm_registry_class_init (SmolvmRegistryClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = smolvm_registry_dispose;
  G_OBJECT_CLASS (klass)->finalize = smolvm_registry_finalize;
}

static void
smolvm_registry_init (SmolvmRegistry *self)
{
  self->vms = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  self->snapshots = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  self->snapshots_by_vm = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                                 (GDestroyNotify) g_hash_table_unref);
  self->jobs = g_hash_table_new_full (g_direct_hash, g_direct_equal, g_object_unref, NULL);
  self->reserved_vm_ids = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->busy_snapshots = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_mutex_init (&self->replies_lock);
  g_cond_init (&self->replies_done);
}

SmolvmRegistry *
smolvm_registry_new (const gchar *root_path)
{
  SmolvmRegistry *self = g_object_new (SMOLVM_TYPE_REGISTRY, NULL);
  self->object_manager = g_dbus_object_manager_server_new (root_path);
  return self;
}

GDBusObjectManagerServer *
smolvm_registry_get_object_manager (SmolvmRegistry *self)
{
  return self->object_manager;
}

static void
export (SmolvmRegistry *self, const gchar *path, GDBusInterfaceSkeleton *iface)
{
  g_autoptr(GDBusObjectSkeleton) object = g_dbus_object_skeleton_new (path);
  g_dbus_object_skeleton_add_interface (object, iface);
  g_dbus_object_manager_server_export (self->object_manager, object);
}

/* ---- objects that are gone ---- */

/* The ObjectManager routes calls to exported objects only: a call on a VM,
 * snapshot or job that was just removed would get GDBus's UnknownMethod. A
 * subtree under each kind's path catches those calls and answers NotFound,
 * which is what a client racing a Delete must see. Exported objects are
 * found first; the subtree gets only what no object took. */
typedef struct Fallback {
  const gchar *node;
  const gchar *what;
  GDBusInterfaceInfo *(*info) (void);
} Fallback;

typedef struct FallbackSite FallbackSite;

static const Fallback fallbacks[] = {
  { "vm", "VM", smolvm_dbus_vm_interface_info },
  { "snapshot", "Snapshot", smolvm_dbus_snapshot_interface_info },
  { "job", "Job", smolvm_dbus_job_interface_info },
};

static void
gone_method_call (GDBusConnection *connection, const gchar *sender, const gchar *object_path,
                  const gchar *interface_name, const gchar *method_name, GVariant *parameters,
                  GDBusMethodInvocation *invocation, gpointer user_data)
{
  const Fallback *fallback = user_data;
  g_autofree gchar *node = g_path_get_basename (object_path);
  g_autofree gchar *id = (gchar *) g_dbus_unescape_object_path (node);

  /* jobs are numbers, named like the CLI names them */
  if (g_str_equal (fallback->node, "job"))
    g_dbus_method_invocation_return_error (invocation, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND,
                                           "Job %s not found", node);
  else
    g_dbus_method_invocation_return_error (invocation, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND,
                                           "%s '%s' not found", fallback->what,
                                           id != NULL ? id : node);
}

static const GDBusInterfaceVTable gone_vtable = { gone_method_call, NULL, NULL, { 0 } };

static gchar **
fallback_enumerate (GDBusConnection *connection, const gchar *sender, const gchar *object_path,
                    gpointer user_data)
{
  SmolvmRegistry *self = ((FallbackSite *) user_data)->registry;
  g_autoptr(GPtrArray) nodes = g_ptr_array_new ();
  g_autolist(GDBusObject) objects = NULL;
  g_autofree gchar *prefix = g_strconcat (object_path, "/", NULL);

  /* introspection of the kind's path lists the objects that exist */
  objects = g_dbus_object_manager_get_objects (G_DBUS_OBJECT_MANAGER (self->object_manager));
  for (GList *l = objects; l != NULL; l = l->next) {
    const gchar *path = g_dbus_object_get_object_path (l->data);
    if (g_str_has_prefix (path, prefix) && strchr (path + strlen (prefix), '/') == NULL)
      g_ptr_array_add (nodes, g_strdup (path + strlen (prefix)));
  }
  g_ptr_array_add (nodes, NULL);
  return (gchar **) g_ptr_array_free (g_steal_pointer (&nodes), FALSE);
}

static GDBusInterfaceInfo **
fallback_introspect (GDBusConnection *connection, const gchar *sender, const gchar *object_path,
                     const gchar *node, gpointer user_data)
{
  const Fallback *fallback = ((FallbackSite *) user_data)->fallback;
  GDBusInterfaceInfo **infos;

  if (node == NULL)
    return NULL;
  infos = g_new0 (GDBusInterfaceInfo *, 2);
  infos[0] = g_dbus_interface_info_ref (fallback->info ());
  return infos;
}

static const GDBusInterfaceVTable *
fallback_dispatch (GDBusConnection *connection, const gchar *sender, const gchar *object_path,
                   const gchar *interface_name, const gchar *node, gpointer *out_user_data,
                   gpointer user_data)
{
  *out_user_data = (gpointer) ((FallbackSite *) user_data)->fallback;
  return &gone_vtable;
}

static const GDBusSubtreeVTable fallback_vtable = {
  fallback_enumerate, fallback_introspect, fallback_dispatch, { 0 }
};

gboolean
smolvm_registry_export (SmolvmRegistry *self, GDBusConnection *connection, GError **error)
{
  const gchar *root = g_dbus_object_manager_get_object_path (
    G_DBUS_OBJECT_MANAGER (self->object_manager));

  g_return_val_if_fail (self->connection == NULL, FALSE);
  self->connection = g_object_ref (connection);
  G_STATIC_ASSERT (G_N_ELEMENTS (fallbacks) == G_N_ELEMENTS (self->fallback_sites));
  for (gsize i = 0; i < G_N_ELEMENTS (fallbacks); i++) {
    FallbackSite *site = &self->fallback_sites[i];
    g_autofree gchar *path = g_build_path ("/", root, fallbacks[i].node, NULL);
    site->registry = self;
    site->fallback = &fallbacks[i];
    site->id = g_dbus_connection_register_subtree (
      connection, path, &fallback_vtable, G_DBUS_SUBTREE_FLAGS_DISPATCH_TO_UNENUMERATED_NODES,
      site, NULL, error);
    if (site->id == 0)
      return FALSE;
  }
  g_dbus_object_manager_server_set_connection (self->object_manager, connection);
  return TRUE;
}

/* ---- VMs ---- */

static void on_vm_mapping_changed (SmolvmVm *vm, gpointer user_data);

void
smolvm_registry_add_vm (SmolvmRegistry *self, SmolvmVm *vm)
{
  g_hash_table_insert (self->vms, g_strdup (smolvm_vm_get_id (vm)), g_object_ref (vm));
  export (self, smolvm_vm_get_object_path (vm), G_DBUS_INTERFACE_SKELETON (vm));
  g_signal_connect (vm, "mapping-changed", G_CALLBACK (on_vm_mapping_changed), self);
  on_vm_mapping_changed (vm, self);
}

void
smolvm_registry_remove_vm (SmolvmRegistry *self, SmolvmVm *vm)
{
  const gchar *id = smolvm_vm_get_id (vm);
  if (g_hash_table_lookup (self->vms, id) != vm)
    return;
  g_autofree gchar *cloned_from = g_strdup (smolvm_vm_get_cloned_from (vm));

  g_signal_handlers_disconnect_by_func (vm, on_vm_mapping_changed, self);
  g_dbus_object_manager_server_unexport (self->object_manager, smolvm_vm_get_object_path (vm));
  g_hash_table_remove (self->vms, id);
  if (cloned_from[0] != '\0')
    smolvm_registry_update_clones (self, cloned_from);
}

SmolvmVm *
smolvm_registry_lookup_vm (SmolvmRegistry *self, const gchar *vm_id)
{
  return g_hash_table_lookup (self->vms, vm_id);
}

SmolvmVm *
smolvm_registry_get_vm (SmolvmRegistry *self, const gchar *vm_id, GError **error)
{
  SmolvmVm *vm = g_hash_table_lookup (self->vms, vm_id);
  if (vm == NULL)
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND, "VM '%s' not found", vm_id);
  return vm;
}

static gint
compare_vms (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (smolvm_vm_get_id (*(SmolvmVm **) a), smolvm_vm_get_id (*(SmolvmVm **) b));
}

GPtrArray *
smolvm_registry_list_vms (SmolvmRegistry *self)
{
  GPtrArray *list = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, self->vms);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (list, value);
  g_ptr_array_sort (list, compare_vms);
  return list;
}

/* ---- snapshots ---- */

void
smolvm_registry_reply_begin (SmolvmRegistry *self)
{
  g_mutex_lock (&self->replies_lock);
  self->replies_in_flight++;
  g_mutex_unlock (&self->replies_lock);
}

void
smolvm_registry_reply_end (SmolvmRegistry *self)
{
  g_mutex_lock (&self->replies_lock);
  g_assert (self->replies_in_flight > 0);
  if (--self->replies_in_flight == 0)
    g_cond_broadcast (&self->replies_done);
  g_mutex_unlock (&self->replies_lock);
}

void
smolvm_registry_wait_replies (SmolvmRegistry *self)
{
  g_mutex_lock (&self->replies_lock);
  while (self->replies_in_flight > 0)
    g_cond_wait (&self->replies_done, &self->replies_lock);
  g_mutex_unlock (&self->replies_lock);
}

void
smolvm_registry_add_snapshot (SmolvmRegistry *self, SmolvmSnapshot *snapshot)
{
  const gchar *vm_id = smolvm_snapshot_get_vm_id (snapshot);
  GHashTable *of_vm = g_hash_table_lookup (self->snapshots_by_vm, vm_id);
  SmolvmSnapshot *old = g_hash_table_lookup (self->snapshots, smolvm_snapshot_get_id (snapshot));

  /* a replaced record must not stay in its VM's set */
  if (old != NULL && old != snapshot) {
    GHashTable *old_set =
      g_hash_table_lookup (self->snapshots_by_vm, smolvm_snapshot_get_vm_id (old));
    if (old_set != NULL)
      g_hash_table_remove (old_set, old);
    of_vm = g_hash_table_lookup (self->snapshots_by_vm, vm_id);
  }
  g_hash_table_insert (self->snapshots, g_strdup (smolvm_snapshot_get_id (snapshot)),
                       g_object_ref (snapshot));
  if (of_vm == NULL) {
    of_vm = g_hash_table_new (g_direct_hash, g_direct_equal);
    g_hash_table_insert (self->snapshots_by_vm, g_strdup (vm_id), of_vm);
  }
  g_hash_table_add (of_vm, snapshot);
  smolvm_registry_wait_replies (self); /* before InterfacesAdded */
  export (self, smolvm_snapshot_get_object_path (snapshot), G_DBUS_INTERFACE_SKELETON (snapshot));
  smolvm_registry_update_clones (self, smolvm_snapshot_get_id (snapshot));
}

void
smolvm_registry_remove_snapshot (SmolvmRegistry *self, SmolvmSnapshot *snapshot)
{
  const gchar *id = smolvm_snapshot_get_id (snapshot);
  const gchar *vm_id = smolvm_snapshot_get_vm_id (snapshot);
  GHashTable *of_vm = g_hash_table_lookup (self->snapshots_by_vm, vm_id);

  if (g_hash_table_lookup (self->snapshots, id) != snapshot)
    return;
  smolvm_registry_wait_replies (self); /* before InterfacesRemoved */
  g_dbus_object_manager_server_unexport (self->object_manager,
                                         smolvm_snapshot_get_object_path (snapshot));
  if (of_vm != NULL && g_hash_table_remove (of_vm, snapshot) && g_hash_table_size (of_vm) == 0)
    g_hash_table_remove (self->snapshots_by_vm, vm_id);
  g_hash_table_remove (self->snapshots, id);
}

SmolvmSnapshot *
smolvm_registry_lookup_snapshot (SmolvmRegistry *self, const gchar *snapshot_id)
{
  return g_hash_table_lookup (self->snapshots, snapshot_id);
}

SmolvmSnapshot *
smolvm_registry_get_snapshot (SmolvmRegistry *self, const gchar *snapshot_id, GError **error)
{
  SmolvmSnapshot *snapshot = g_hash_table_lookup (self->snapshots, snapshot_id);
  if (snapshot == NULL)
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND, "Snapshot '%s' not found",
                 snapshot_id);
  return snapshot;
}

static gint
compare_snapshots (gconstpointer a, gconstpointer b)
{
  SmolvmSnapshot *sa = *(SmolvmSnapshot **) a;
  SmolvmSnapshot *sb = *(SmolvmSnapshot **) b;
  gint64 ta = smolvm_snapshot_get_created_at (sa);
  gint64 tb = smolvm_snapshot_get_created_at (sb);
  if (ta != tb)
    return ta < tb ? -1 : 1;
  return g_strcmp0 (smolvm_snapshot_get_id (sa), smolvm_snapshot_get_id (sb));
}

GPtrArray *
smolvm_registry_list_snapshots (SmolvmRegistry *self, const gchar *vm_id)
{
  gboolean all = vm_id == NULL || vm_id[0] == '\0';
  GHashTable *set = all ? self->snapshots : g_hash_table_lookup (self->snapshots_by_vm, vm_id);
  GPtrArray *list = g_ptr_array_sized_new (set != NULL ? g_hash_table_size (set) : 0);
  GHashTableIter iter;
  gpointer key, value;

  if (set != NULL) {
    g_hash_table_iter_init (&iter, set);
    /* the by-VM sets hold the snapshots as keys */
    while (g_hash_table_iter_next (&iter, &key, &value))
      g_ptr_array_add (list, all ? value : key);
  }
  g_ptr_array_sort (list, compare_snapshots);
  return list;
}

/* ---- jobs ---- */

guint
smolvm_registry_next_job_number (SmolvmRegistry *self)
{
  return ++self->last_job;
}

void
smolvm_registry_add_job (SmolvmRegistry *self, SmolvmJob *job)
{
  g_hash_table_add (self->jobs, g_object_ref (job));
  export (self, smolvm_job_get_object_path (job), G_DBUS_INTERFACE_SKELETON (job));
}

void
smolvm_registry_remove_job (SmolvmRegistry *self, SmolvmJob *job)
{
  if (!g_hash_table_contains (self->jobs, job))
    return;
  g_dbus_object_manager_server_unexport (self->object_manager, smolvm_job_get_object_path (job));
  g_hash_table_remove (self->jobs, job);
}

/* ---- reservations ---- */

gboolean
smolvm_registry_vm_id_taken (const gchar *vm_id, gpointer user_data)
{
  SmolvmRegistry *self = user_data;
  return g_hash_table_contains (self->vms, vm_id) ||
         g_hash_table_contains (self->reserved_vm_ids, vm_id);
}

gboolean
smolvm_registry_snapshot_id_taken (const gchar *snapshot_id, gpointer user_data)
{
  SmolvmRegistry *self = user_data;
  return g_hash_table_contains (self->snapshots, snapshot_id) ||
         g_hash_table_contains (self->busy_snapshots, snapshot_id);
}

gboolean
smolvm_registry_reserve_vm_id (SmolvmRegistry *self, const gchar *vm_id, GError **error)
{
  if (g_hash_table_contains (self->reserved_vm_ids, vm_id)) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_IN_USE, "VM '%s' is being created", vm_id);
    return FALSE;
  }
  if (g_hash_table_contains (self->vms, vm_id)) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_ALREADY_EXISTS, "VM '%s' already exists",
                 vm_id);
    return FALSE;
  }
  g_hash_table_add (self->reserved_vm_ids, g_strdup (vm_id));
  return TRUE;
}

void
smolvm_registry_release_vm_id (SmolvmRegistry *self, const gchar *vm_id)
{
  g_hash_table_remove (self->reserved_vm_ids, vm_id);
}

gboolean
smolvm_registry_hold_snapshot (SmolvmRegistry *self, const gchar *snapshot_id, const gchar *what,
                               GError **error)
{
  const gchar *busy = g_hash_table_lookup (self->busy_snapshots, snapshot_id);
  if (busy != NULL) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_IN_USE,
                 "Snapshot '%s' is busy (%s in progress); try again when it is done",
                 snapshot_id, busy);
    return FALSE;
  }
  g_hash_table_insert (self->busy_snapshots, g_strdup (snapshot_id), g_strdup (what));
  return TRUE;
}

void
smolvm_registry_release_snapshot (SmolvmRegistry *self, const gchar *snapshot_id)
{
  g_hash_table_remove (self->busy_snapshots, snapshot_id);
}

SmolvmVm *
smolvm_registry_vm_using_snapshot (SmolvmRegistry *self, const gchar *snapshot_id)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, self->vms);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    if (smolvm_vm_is_active (value) &&
        g_strcmp0 (smolvm_vm_get_restored_from (value), snapshot_id) == 0)
      return value;
  return NULL;
}

gboolean
smolvm_registry_check_snapshot_unmapped (SmolvmRegistry *self, const gchar *snapshot_id,
                                         GError **error)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, self->vms);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    if (!smolvm_vm_maps_snapshot (value, snapshot_id))
      continue;
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_IN_USE,
                 "Snapshot '%s' is in use: VM '%s' was %s from it and is %s, mapping its "
                 "mem.bin; stop it first",
                 snapshot_id, smolvm_vm_get_id (value),
                 smolvm_vm_get_cloned_from (value)[0] != '\0' ? "cloned" : "restored",
                 smolvm_vm_get_state (value));
    return FALSE;
  }
  return TRUE;
}

static gint
compare_strings (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (*(const gchar *const *) a, *(const gchar *const *) b);
}

void
smolvm_registry_update_clones (SmolvmRegistry *self, const gchar *snapshot_id)
{
  SmolvmSnapshot *snapshot = g_hash_table_lookup (self->snapshots, snapshot_id);
  g_autoptr(GPtrArray) paths = NULL;
  GHashTableIter iter;
  gpointer value;

  if (snapshot == NULL)
    return;
  paths = g_ptr_array_new ();
  g_hash_table_iter_init (&iter, self->vms);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    if (g_strcmp0 (smolvm_vm_get_cloned_from (value), snapshot_id) == 0 &&
        smolvm_vm_maps_snapshot (value, snapshot_id))
      g_ptr_array_add (paths, (gpointer) smolvm_vm_get_object_path (value));
  g_ptr_array_sort (paths, compare_strings);
  g_ptr_array_add (paths, NULL);
  smolvm_snapshot_set_clones (snapshot, (const gchar *const *) paths->pdata);
}

static void
on_vm_mapping_changed (SmolvmVm *vm, gpointer user_data)
{
  const gchar *cloned_from = smolvm_vm_get_cloned_from (vm);
  if (cloned_from[0] != '\0')
    smolvm_registry_update_clones (user_data, cloned_from);
}

gboolean
smolvm_registry_check_snapshot_unused (SmolvmRegistry *self, const gchar *snapshot_id,
                                       const gchar *why, GError **error)
{
  SmolvmVm *user = smolvm_registry_vm_using_snapshot (self, snapshot_id);
  if (user == NULL)
    return TRUE;
  g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_IN_USE,
               "Snapshot '%s' is in use: VM '%s' was restored from it and is %s%s", snapshot_id,
               smolvm_vm_get_id (user), smolvm_vm_get_state (user), why);
  return FALSE;
}
