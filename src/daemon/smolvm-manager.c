/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#if HAVE_GLIBC_MALLOC
#include <malloc.h>
#endif

#include "smolvm-authority.h"
#include "smolvm-error.h"
#include "smolvm-id.h"
#include "smolvm-manager.h"
#include "smolvm-network.h"
#include "smolvm-ops.h"
#include "smolvm-record-writer.h"
#include "smolvm-registry.h"
#include "smolvm-snapshot-index.h"
#include "smolvm-snapshot.h"
#include "smolvm-store.h"

/* org.smolvm.Manager: the reads, the entry points of the operations that
 * start here, and the start-up wiring of the daemon's parts. */
struct _SmolvmManager {
  SmolvmDbusManagerSkeleton parent_instance;
  SmolvmContext ctx;
  /* writing the snapshot index; a daemon stopped right after its start
   * waits for it, or the next start would find no index again */
  GThread *index_writer;
};

static void smolvm_manager_iface_init (SmolvmDbusManagerIface *iface);

G_DEFINE_TYPE_WITH_CODE (SmolvmManager, smolvm_manager, SMOLVM_DBUS_TYPE_MANAGER_SKELETON,
                         G_IMPLEMENT_INTERFACE (SMOLVM_DBUS_TYPE_MANAGER,
                                                smolvm_manager_iface_init))

static void
smolvm_manager_finalize (GObject *object)
{
  SmolvmManager *self = SMOLVM_MANAGER (object);
  if (self->index_writer != NULL)
    g_thread_join (g_steal_pointer (&self->index_writer));
  /* the registry first: its objects point at the context */
  if (self->ctx.registry != NULL)
    g_object_run_dispose (G_OBJECT (self->ctx.registry));
  g_clear_object (&self->ctx.registry);
  /* after the registry, whose objects may still queue a write: waits for them */
  g_clear_object (&self->ctx.records);
  g_clear_object (&self->ctx.store);
  g_clear_object (&self->ctx.authority);
  g_clear_object (&self->ctx.network);
  g_clear_pointer (&self->ctx.binaries, g_hash_table_unref);
  g_free (self->ctx.qemu_machine);
  g_free (self->ctx.default_kernel);
  g_free (self->ctx.default_initrd);
  g_free (self->ctx.default_rootfs);
  g_free (self->ctx.default_backend);
  g_free (self->ctx.default_accel);
  g_free (self->ctx.registry_auth_file);
  g_strfreev (self->ctx.insecure_registries);
  G_OBJECT_CLASS (smolvm_manager_parent_class)->finalize (object);
}

static void
smolvm_manager_class_init (SmolvmManagerClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = smolvm_manager_finalize;
}

static void
smolvm_manager_init (SmolvmManager *self)
{
  self->ctx.binaries = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
}

/* ---- operations ---- */

static gboolean
handle_create_vm (SmolvmDbusManager *object, GDBusMethodInvocation *invocation,
                  GUnixFDList *fd_list, GVariant *config)
{
  smolvm_op_vm_create (&SMOLVM_MANAGER (object)->ctx, invocation, fd_list, config);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_import_snapshot (SmolvmDbusManager *object, GDBusMethodInvocation *invocation,
                        GUnixFDList *fd_list, GVariant *fd, GVariant *options)
{
  smolvm_op_snapshot_import (&SMOLVM_MANAGER (object)->ctx, invocation, fd_list, fd, options);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_create_snapshot (SmolvmDbusManager *object, GDBusMethodInvocation *invocation,
                        const gchar *vm_id, const gchar *snapshot_id, GVariant *options)
{
  smolvm_op_snapshot_create (&SMOLVM_MANAGER (object)->ctx, invocation, vm_id, NULL, snapshot_id,
                             options);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_restore_snapshot (SmolvmDbusManager *object, GDBusMethodInvocation *invocation,
                         const gchar *snapshot_id, GVariant *options)
{
  smolvm_op_snapshot_restore (&SMOLVM_MANAGER (object)->ctx, invocation, snapshot_id, options);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_clone_snapshot (SmolvmDbusManager *object, GDBusMethodInvocation *invocation,
                       const gchar *snapshot_id, GVariant *options)
{
  smolvm_op_snapshot_clone (&SMOLVM_MANAGER (object)->ctx, invocation, snapshot_id, options);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_delete_snapshot (SmolvmDbusManager *object, GDBusMethodInvocation *invocation,
                        const gchar *snapshot_id, GVariant *options)
{
  smolvm_op_snapshot_delete (&SMOLVM_MANAGER (object)->ctx, invocation, snapshot_id, options);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_pull_snapshot (SmolvmDbusManager *object, GDBusMethodInvocation *invocation,
                      const gchar *reference, GVariant *options)
{
  smolvm_op_snapshot_pull (&SMOLVM_MANAGER (object)->ctx, invocation, reference, options);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* ---- reads ---- */

/* A ListSnapshots answer, taken on the main loop and sent from a worker:
 * with 10,000 snapshots, building and serializing the reply (some 9 MiB)
 * would keep every other client waiting. The entries are immutable. */
typedef struct {
  GDBusMethodInvocation *invocation;
  GPtrArray *entries;
  SmolvmRegistry *registry; /* told when the reply is on its way */
} ListReply;

static void
list_reply_free (ListReply *reply)
{
  g_clear_object (&reply->invocation);
  g_clear_object (&reply->registry);
  g_ptr_array_unref (reply->entries);
  g_free (reply);
}

static void
list_reply_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  ListReply *reply = task_data;
  g_auto(GVariantBuilder) b = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE ("a(oa{sv})"));

  for (guint i = 0; i < reply->entries->len; i++)
    g_variant_builder_add_value (&b, g_ptr_array_index (reply->entries, i));
  /* GDBus sends from any thread; the invocation's reference goes with it */
  smolvm_dbus_manager_complete_list_snapshots (SMOLVM_DBUS_MANAGER (source),
                                               g_steal_pointer (&reply->invocation),
                                               g_variant_builder_end (&b));
  /* queued: signals sent from now on follow it */
  smolvm_registry_reply_end (reply->registry);
  g_task_return_boolean (task, TRUE);
}

static gboolean
handle_list_snapshots (SmolvmDbusManager *object, GDBusMethodInvocation *invocation,
                       const gchar *vm_id)
{
  SmolvmManager *self = SMOLVM_MANAGER (object);
  g_autoptr(GPtrArray) list = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GTask) task = NULL;
  ListReply *reply;

  /* "" means every VM; anything else must be a VM id a snapshot could name */
  if (vm_id[0] != '\0' && !smolvm_id_validate (vm_id, "VM id", &error)) {
    g_dbus_method_invocation_return_gerror (invocation, error);
    return G_DBUS_METHOD_INVOCATION_HANDLED;
  }
  list = smolvm_registry_list_snapshots (self->ctx.registry, vm_id);
  reply = g_new0 (ListReply, 1);
  /* the handler's reference: completing the call consumes it */
  reply->invocation = invocation;
  reply->entries = g_ptr_array_new_full (list->len, (GDestroyNotify) g_variant_unref);
  for (guint i = 0; i < list->len; i++)
    g_ptr_array_add (reply->entries,
                     g_variant_ref (smolvm_snapshot_to_list_entry (g_ptr_array_index (list, i))));
  reply->registry = g_object_ref (self->ctx.registry);
  smolvm_registry_reply_begin (reply->registry);
  task = g_task_new (object, NULL, NULL, NULL);
  g_task_set_task_data (task, g_steal_pointer (&reply), (GDestroyNotify) list_reply_free);
  g_task_run_in_thread (task, list_reply_thread);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_list_vms (SmolvmDbusManager *object, GDBusMethodInvocation *invocation)
{
  SmolvmManager *self = SMOLVM_MANAGER (object);
  g_autoptr(GPtrArray) list = smolvm_registry_list_vms (self->ctx.registry);
  g_auto(GVariantBuilder) b = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE ("a(oa{sv})"));

  for (guint i = 0; i < list->len; i++) {
    SmolvmVm *vm = g_ptr_array_index (list, i);
    g_variant_builder_add (&b, "(o@a{sv})", smolvm_vm_get_object_path (vm),
                           smolvm_vm_to_info (vm));
  }
  smolvm_dbus_manager_complete_list_vms (object, invocation, g_variant_builder_end (&b));
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_get_vm (SmolvmDbusManager *object, GDBusMethodInvocation *invocation, const gchar *vm_id)
{
  g_autoptr(GError) error = NULL;
  SmolvmVm *vm = smolvm_registry_get_vm (SMOLVM_MANAGER (object)->ctx.registry, vm_id, &error);

  if (vm == NULL)
    g_dbus_method_invocation_return_gerror (invocation, error);
  else
    smolvm_dbus_manager_complete_get_vm (object, invocation, smolvm_vm_get_object_path (vm));
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static gboolean
handle_get_snapshot (SmolvmDbusManager *object, GDBusMethodInvocation *invocation,
                     const gchar *snapshot_id)
{
  g_autoptr(GError) error = NULL;
  SmolvmSnapshot *snapshot =
    smolvm_registry_get_snapshot (SMOLVM_MANAGER (object)->ctx.registry, snapshot_id, &error);

  if (snapshot == NULL)
    g_dbus_method_invocation_return_gerror (invocation, error);
  else
    smolvm_dbus_manager_complete_get_snapshot (object, invocation,
                                               smolvm_snapshot_get_object_path (snapshot));
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static void
smolvm_manager_iface_init (SmolvmDbusManagerIface *iface)
{
  iface->handle_create_snapshot = handle_create_snapshot;
  iface->handle_restore_snapshot = handle_restore_snapshot;
  iface->handle_clone_snapshot = handle_clone_snapshot;
  iface->handle_delete_snapshot = handle_delete_snapshot;
  iface->handle_pull_snapshot = handle_pull_snapshot;
  iface->handle_import_snapshot = handle_import_snapshot;
  iface->handle_list_snapshots = handle_list_snapshots;
  iface->handle_get_snapshot = handle_get_snapshot;
  iface->handle_create_vm = handle_create_vm;
  iface->handle_list_vms = handle_list_vms;
  iface->handle_get_vm = handle_get_vm;
}

/* ---- start-up ---- */

/* One snapshot record read at start-up: the snapshot, or why not, and
 * what the next start-up's index keeps of it. */
typedef struct {
  SmolvmSnapshot *snapshot;
  GError *error;
  GVariant *record; /* NULL: not indexed (no stamp) */
  SmolvmRecordStamp stamp;
  gboolean from_index;
} LoadedSnapshot;

static void
loaded_snapshot_clear (LoadedSnapshot *one)
{
  g_clear_object (&one->snapshot);
  g_clear_error (&one->error);
  g_clear_pointer (&one->record, g_variant_unref);
}

/* The records of dirs, each into its own slot of out, read by workers a
 * chunk at a time, in order. */
typedef struct {
  SmolvmContext *ctx;
  SmolvmSnapshotIndex *index;
  int dir_fd; /* the snapshots directory: stamps need no walk of the whole path */
  GPtrArray *dirs;
  GArray *out;
  guint n_chunks;
  gint next_chunk; /* atomic */
  GMutex lock;
  GCond chunk_done;
  gboolean *done; /* per chunk */
} Loader;

#define LOAD_CHUNK 64
/* Below some hundreds of records, threads and the index cost more than
 * they save. */
#define LOAD_MANY 256

static void
load_one (Loader *loader, guint i, SmolvmSnapshotConfigs *configs)
{
  LoadedSnapshot *one = &g_array_index (loader->out, LoadedSnapshot, i);
  const gchar *dir = g_ptr_array_index (loader->dirs, i);
  g_autofree gchar *id = g_path_get_basename (dir);
  g_autofree gchar *path = g_build_filename (id, SMOLVM_SNAPSHOT_METADATA, NULL);
  /* taken before the record is read: if it changes meanwhile, its stamp
   * will not match this record next time */
  gboolean stamped =
    loader->dir_fd >= 0 && smolvm_record_stamp_read (loader->dir_fd, path, &one->stamp);

  if (stamped &&
      (one->record = smolvm_snapshot_index_lookup (loader->index, i, id, &one->stamp)) != NULL) {
    g_autoptr(GError) error = NULL;
    one->snapshot =
      smolvm_snapshot_new_from_record (loader->ctx, dir, one->record, configs, &error);
    if (one->snapshot != NULL) {
      one->from_index = TRUE;
      return;
    }
    g_debug ("Not using the index for %s: %s", dir, error->message);
    g_clear_pointer (&one->record, g_variant_unref);
  }
  one->snapshot = smolvm_snapshot_load (loader->ctx, dir, configs, &one->error);
  if (one->snapshot != NULL && stamped)
    one->record = smolvm_snapshot_to_record (one->snapshot);
}

static gpointer
load_chunks (gpointer data)
{
  Loader *loader = data;
  g_autoptr(SmolvmSnapshotConfigs) configs = smolvm_snapshot_configs_new ();
  guint chunk;

  while ((chunk = (guint) g_atomic_int_add (&loader->next_chunk, 1)) < loader->n_chunks) {
    guint end = MIN ((chunk + 1) * LOAD_CHUNK, loader->dirs->len);
    for (guint i = chunk * LOAD_CHUNK; i < end; i++)
      load_one (loader, i, configs);
    g_mutex_lock (&loader->lock);
    loader->done[chunk] = TRUE;
    g_cond_broadcast (&loader->chunk_done);
    g_mutex_unlock (&loader->lock);
  }
  return NULL;
}

/* Reading the records was most of the start-up with 10,000 snapshots, and
 * each is independent: workers (one per processor) read them while this
 * thread adds those read, in the listing's order. Records unchanged since
 * the index was written are taken from it, unparsed. */
static GArray *
load_snapshots (SmolvmContext *ctx, SmolvmSnapshotIndex *index, GPtrArray *dirs)
{
  guint n_threads = MIN (MIN (g_get_num_processors (), dirs->len / LOAD_MANY), 8);
  g_autofree GThread **threads = g_new0 (GThread *, MAX (n_threads, 1));
  g_autofree gboolean *done = NULL;
  GArray *out = g_array_sized_new (FALSE, TRUE, sizeof (LoadedSnapshot), dirs->len);
  Loader loader = {
    .ctx = ctx,
    .index = index,
    .dir_fd = open (smolvm_store_get_snapshots_dir (ctx->store),
                    O_RDONLY | O_DIRECTORY | O_CLOEXEC),
    .dirs = dirs,
    .out = out,
    .n_chunks = (dirs->len + LOAD_CHUNK - 1) / LOAD_CHUNK,
  };

  g_array_set_size (out, dirs->len);
  g_array_set_clear_func (out, (GDestroyNotify) loaded_snapshot_clear);
  loader.done = done = g_new0 (gboolean, loader.n_chunks);
  g_mutex_init (&loader.lock);
  g_cond_init (&loader.chunk_done);
  for (guint t = 0; t < n_threads; t++)
    threads[t] = g_thread_new ("smolvm-load", load_chunks, &loader);
  if (n_threads == 0)
    load_chunks (&loader);
  for (guint chunk = 0; chunk < loader.n_chunks; chunk++) {
    guint end = MIN ((chunk + 1) * LOAD_CHUNK, dirs->len);
    g_mutex_lock (&loader.lock);
    while (!loader.done[chunk])
      g_cond_wait (&loader.chunk_done, &loader.lock);
    g_mutex_unlock (&loader.lock);
    for (guint i = chunk * LOAD_CHUNK; i < end; i++) {
      LoadedSnapshot *one = &g_array_index (out, LoadedSnapshot, i);
      if (one->snapshot == NULL)
        g_warning ("Skipping snapshot: %s", one->error->message);
      else
        smolvm_registry_add_snapshot (ctx->registry, one->snapshot);
    }
  }
  for (guint t = 0; t < n_threads; t++)
    g_thread_join (threads[t]);
  g_cond_clear (&loader.chunk_done);
  g_mutex_clear (&loader.lock);
  if (loader.dir_fd >= 0)
    close (loader.dir_fd);
  return out;
}

typedef struct {
  gchar *path;
  GPtrArray *ids;
  GArray *stamps;
  GPtrArray *records;
} IndexWrite;

static void
index_write_free (IndexWrite *write)
{
  g_free (write->path);
  g_ptr_array_unref (write->ids);
  g_array_unref (write->stamps);
  g_ptr_array_unref (write->records);
  g_free (write);
}

static gpointer
write_index_thread (gpointer data)
{
  IndexWrite *write = data;
  g_autoptr(GError) error = NULL;

  /* only start-up is slower without it */
  if (!smolvm_snapshot_index_write (write->path, write->ids->len,
                                    (const gchar *const *) write->ids->pdata,
                                    (const SmolvmRecordStamp *) (gpointer) write->stamps->data,
                                    (GVariant *const *) write->records->pdata, &error))
    g_warning ("%s", error->message);
  else
    g_message ("Wrote the snapshot index (%u records)", write->ids->len);
  index_write_free (write);
  return NULL;
}

/* A new index when the records are not those of the last one, written
 * by the thread this returns: nobody waits for a cache. */
static GThread *
update_index (const gchar *path, SmolvmSnapshotIndex *index, GArray *loaded)
{
  IndexWrite *write;
  guint from_index = 0, indexed = 0;

  for (guint i = 0; i < loaded->len; i++) {
    LoadedSnapshot *one = &g_array_index (loaded, LoadedSnapshot, i);
    from_index += one->from_index ? 1 : 0;
    indexed += one->record != NULL ? 1 : 0;
  }
  if (loaded->len > 0)
    g_message ("Read %u snapshot records, %u of them from the index", loaded->len, from_index);
  if (loaded->len < LOAD_MANY) {
    if (unlink (path) != 0 && errno != ENOENT)
      g_warning ("Cannot remove %s: %s", path, g_strerror (errno));
    return NULL;
  }
  if (from_index == indexed && from_index == smolvm_snapshot_index_get_size (index))
    return NULL;
  write = g_new0 (IndexWrite, 1);
  write->path = g_strdup (path);
  write->ids = g_ptr_array_new_full (indexed, g_free);
  write->stamps = g_array_sized_new (FALSE, FALSE, sizeof (SmolvmRecordStamp), indexed);
  write->records = g_ptr_array_new_full (indexed, (GDestroyNotify) g_variant_unref);
  for (guint i = 0; i < loaded->len; i++) {
    LoadedSnapshot *one = &g_array_index (loaded, LoadedSnapshot, i);
    if (one->record == NULL)
      continue;
    g_ptr_array_add (write->ids, g_strdup (smolvm_snapshot_get_id (one->snapshot)));
    g_array_append_val (write->stamps, one->stamp);
    g_ptr_array_add (write->records, g_steal_pointer (&one->record));
  }
  return g_thread_new ("smolvm-index", write_index_thread, write);
}

static void
add_namespace (GHashTable *namespaces, GVariant *network_config)
{
  const gchar *name;

  if (g_variant_lookup (network_config, "namespace", "&s", &name))
    g_hash_table_add (namespaces, g_strdup (name));
}

static gboolean
load_state (SmolvmManager *self, GError **error)
{
  SmolvmContext *ctx = &self->ctx;
  g_autoptr(GPtrArray) snapshots = NULL;
  g_autoptr(GPtrArray) vms = NULL;
  g_autoptr(GArray) loaded = NULL;
  g_autoptr(SmolvmSnapshotIndex) index = NULL;
  g_autofree gchar *index_path = NULL;
  g_autoptr(GHashTable) namespaces = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  if (!smolvm_store_prepare (ctx->store, error) ||
      (snapshots = smolvm_store_list_records (ctx->store, "snapshots", error)) == NULL ||
      (vms = smolvm_store_list_records (ctx->store, "vms", error)) == NULL)
    return FALSE;
  smolvm_store_clean_oci_cache (ctx->store, g_get_real_time () / G_USEC_PER_SEC,
                                SMOLVM_STORE_PULL_CACHE_MAX_AGE);

  index_path =
    g_build_filename (smolvm_store_get_snapshots_dir (ctx->store), SMOLVM_SNAPSHOT_INDEX_NAME, NULL);
  index = smolvm_snapshot_index_read (index_path);
  loaded = load_snapshots (ctx, index, snapshots);
  self->index_writer = update_index (index_path, index, loaded);
  for (guint i = 0; i < vms->len; i++) {
    g_autoptr(GError) local_error = NULL;
    g_autoptr(SmolvmVm) vm = smolvm_vm_load (ctx, g_ptr_array_index (vms, i), &local_error);
    if (vm == NULL ||
        !smolvm_network_claim (ctx->network, smolvm_vm_get_id (vm),
                               smolvm_vm_get_network_config (vm), &local_error)) {
      g_warning ("Skipping VM: %s", local_error->message);
      continue;
    }
    smolvm_store_recover_restore (ctx->store, smolvm_vm_get_id (vm), smolvm_vm_get_disk_path (vm),
                                  smolvm_vm_is_active (vm));
    smolvm_registry_add_vm (ctx->registry, vm);
    smolvm_vm_reattach_async (vm, NULL, NULL);
    add_namespace (namespaces, smolvm_vm_get_network_config (vm));
  }
  /* clones deleted while no daemon ran (a --session daemon records none) */
  smolvm_network_remove_stale_namespaces (ctx->network, namespaces);
  return TRUE;
}

SmolvmManager *
smolvm_manager_new (const SmolvmManagerOptions *options, GError **error)
{
  g_autoptr(SmolvmManager) self = g_object_new (SMOLVM_TYPE_MANAGER, NULL);
  SmolvmContext *ctx = &self->ctx;
  g_autoptr(GPtrArray) backends = g_ptr_array_new ();

  ctx->session = options->session;
  ctx->network_default = !options->session && geteuid () == 0;
  ctx->default_kernel = g_strdup (options->default_kernel);
  ctx->default_initrd = g_strdup (options->default_initrd);
  ctx->default_rootfs = g_strdup (options->default_rootfs);
  ctx->default_backend = g_strdup (options->default_backend);
  ctx->default_accel = g_strdup (options->default_accel);
  ctx->registry_auth_file = g_strdup (options->registry_auth_file);
  ctx->insecure_registries = g_strdupv (options->insecure_registries);
  ctx->store = smolvm_store_new (options->state_dir, options->runtime_dir);
  ctx->records = smolvm_record_writer_new ();
  ctx->registry = smolvm_registry_new (SMOLVM_MANAGER_PATH);
  ctx->authority = smolvm_authority_new (options->session);
  ctx->network = smolvm_network_new (options->network_pool, error);
  if (ctx->network == NULL)
    return NULL;
  /* only a root system daemon makes namespaces (for clones) */
  if (!options->session && geteuid () == 0) {
    g_autofree gchar *records = g_build_filename (options->runtime_dir, "netns", NULL);
    if (!smolvm_network_set_record_dir (ctx->network, records, error))
      return NULL;
  }
  if (options->firecracker_bin != NULL) {
    g_hash_table_insert (ctx->binaries, g_strdup ("firecracker"),
                         g_strdup (options->firecracker_bin));
    g_ptr_array_add (backends, "firecracker");
  }
  if (options->qemu_bin != NULL && options->qemu_machine != NULL) {
    g_hash_table_insert (ctx->binaries, g_strdup ("qemu"), g_strdup (options->qemu_bin));
    ctx->qemu_machine = g_strdup (options->qemu_machine);
    g_ptr_array_add (backends, "qemu");
  }
  g_ptr_array_add (backends, NULL);
  smolvm_dbus_manager_set_version (SMOLVM_DBUS_MANAGER (self), PACKAGE_VERSION);
  smolvm_dbus_manager_set_backends (SMOLVM_DBUS_MANAGER (self),
                                    (const gchar *const *) backends->pdata);
  if (!load_state (self, error)) {
    g_prefix_error (error, "Cannot load state from %s: ", options->state_dir);
    return NULL;
  }
#if HAVE_GLIBC_MALLOC
  /* Parsing every record freed as much as the daemon keeps (some 40 MiB
   * with 10,000 snapshots), in pieces glibc would hold on to for good. */
  malloc_trim (0);
#endif
  return g_steal_pointer (&self);
}

gboolean
smolvm_manager_export (SmolvmManager *self, GDBusConnection *connection, GError **error)
{
  if (!g_dbus_interface_skeleton_export (G_DBUS_INTERFACE_SKELETON (self), connection,
                                         SMOLVM_MANAGER_PATH, error))
    return FALSE;
  return smolvm_registry_export (self->ctx.registry, connection, error);
}
