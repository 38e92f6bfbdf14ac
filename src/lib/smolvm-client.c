/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "smolvm-client.h"
#include "smolvm-enum-types.h"
#include "smolvm-error.h"
#include "smolvm-generated.h"
#include "smolvm-id.h"

/**
 * SmolvmClient:
 *
 * A connection to smolvmd, the smolvm daemon: its org.smolvm.Manager and
 * the VMs, snapshots and jobs it publishes.
 *
 * Make one with smolvm_client_new_sync() or smolvm_client_new(). It finds
 * smolvmd on the bus (which starts it if it is activatable) and from then
 * on talks to that one daemon only, by its unique name: if smolvmd restarts,
 * calls fail (with a #G_DBUS_ERROR) instead of reaching the new daemon,
 * and a new client is needed.
 *
 * Each call exists three times: smolvm_client_X_sync(), and
 * smolvm_client_X() with smolvm_client_X_finish(). The sync calls block the
 * calling thread and dispatch none of its other sources meanwhile; the
 * async ones run in the thread-default main context of the caller.
 *
 * Errors of smolvmd come in the %SMOLVM_ERROR domain, their message without
 * the "GDBus.Error:org.smolvm.Error.X: " prefix. Errors of the bus keep
 * theirs (a #G_DBUS_ERROR, e.g. %G_DBUS_ERROR_SERVICE_UNKNOWN when smolvmd
 * is neither running nor activatable), and a cancelled #GCancellable gives
 * %G_IO_ERROR_CANCELLED.
 *
 * Calls never time out: a snapshot of many GiB takes as long as its copy
 * does, and an interactive authorization as long as the user. Cancelling
 * the #GCancellable only stops the waiting; the operation goes on in
 * smolvmd. To stop it, cancel its job (smolvm_client_cancel_job_sync()),
 * which smolvmd publishes below /org/smolvm/Manager/job/ while it runs.
 */

/* See above: never give up waiting on smolvmd. */
#define CALL_TIMEOUT G_MAXINT

/* The proxies only call methods: no property cache, no signals. Without
 * DO_NOT_AUTO_START the bus activates smolvmd for the first one. */
#define PROXY_FLAGS \
  (G_DBUS_PROXY_FLAGS_DO_NOT_LOAD_PROPERTIES | G_DBUS_PROXY_FLAGS_DO_NOT_CONNECT_SIGNALS)

struct _SmolvmClient {
  GObject parent_instance;

  SmolvmBusType bus_type;
  gboolean interactive;
  GDBusConnection *connection;
  gchar *name_owner;          /* smolvmd's unique name */
  SmolvmDbusManager *manager; /* bound to name_owner; NULL until initialized */
  gchar *daemon_version;
  GStrv backends;
};

static void smolvm_client_initable_iface_init (GInitableIface *iface);
static void smolvm_client_async_initable_iface_init (GAsyncInitableIface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (SmolvmClient, smolvm_client, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE,
                                                      smolvm_client_initable_iface_init)
                               G_IMPLEMENT_INTERFACE (G_TYPE_ASYNC_INITABLE,
                                                      smolvm_client_async_initable_iface_init))

enum {
  PROP_0,
  PROP_BUS_TYPE,
  PROP_CONNECTION,
  PROP_NAME_OWNER,
  PROP_INTERACTIVE,
  PROP_DAEMON_VERSION,
  PROP_BACKENDS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static const struct {
  GBusType bus_type;
  const gchar *label;
} buses[] = {
  [SMOLVM_BUS_TYPE_SYSTEM] = { G_BUS_TYPE_SYSTEM, "system" },
  [SMOLVM_BUS_TYPE_SESSION] = { G_BUS_TYPE_SESSION, "session" },
};

/* ---- sync calls ---- */

/* A sync call runs its async twin to the end on a private main context, as
 * GDBus's own sync calls do: each operation is written once, and the
 * caller's sources do not run meanwhile. */
typedef struct {
  GMainContext *context;
  GAsyncResult *result;
} SyncCall;

static void
sync_call_begin (SyncCall *call)
{
  call->context = g_main_context_new ();
  g_main_context_push_thread_default (call->context);
}

static void
sync_call_ready (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SyncCall *call = user_data;

  call->result = g_object_ref (result);
}

static GAsyncResult *
sync_call_wait (SyncCall *call)
{
  while (call->result == NULL)
    g_main_context_iteration (call->context, TRUE);
  return call->result;
}

static void
sync_call_clear (SyncCall *call)
{
  if (call->context != NULL) {
    /* what is left: GDBus frees the signal subscriptions of the call's
     * proxies here, in the context they were made in */
    while (g_main_context_iteration (call->context, FALSE))
      ;
    g_main_context_pop_thread_default (call->context);
    g_clear_pointer (&call->context, g_main_context_unref);
  }
  g_clear_object (&call->result);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (SyncCall, sync_call_clear)

/* ---- the state every call carries ---- */

typedef gboolean (*PathFinishFunc) (SmolvmDbusManager *manager, gchar **out_path,
                                    GAsyncResult *result, GError **error);
typedef void (*ListCallFunc) (SmolvmDbusManager *manager, const gchar *vm_filter,
                              GDBusCallFlags flags, GCancellable *cancellable,
                              GAsyncReadyCallback callback, gpointer user_data);
typedef gboolean (*ListFinishFunc) (SmolvmDbusManager *manager, GVariant **out_list,
                                    GAsyncResult *result, GError **error);
typedef void (*VmCallFunc) (SmolvmDbusVm *vm, GVariant *options, GDBusCallFlags flags,
                            GCancellable *cancellable, GAsyncReadyCallback callback,
                            gpointer user_data);
typedef gboolean (*VmFinishFunc) (SmolvmDbusVm *vm, GAsyncResult *result, GError **error);

/* One of smolvmd's two lists, ListVMs and ListSnapshots. */
typedef struct {
  const gchar *noun; /* of an entry, for messages */
  ListCallFunc call;
  ListFinishFunc finish;
  GObject *(*info_new) (GVariant *info, GError **error);
} ListKind;

/* A method of org.smolvm.VM. */
typedef struct {
  VmCallFunc call;
  GAsyncReadyCallback done; /* takes the reply and returns the task's result */
  VmFinishFunc finish;      /* for on_vm_method_done(): the methods without results */
} VmMethod;

typedef struct {
  PathFinishFunc path_finish; /* of a Manager method that returns an object path */
  const ListKind *list;       /* where the entries of the paths are found */
  gchar *vm_filter;           /* ListSnapshots' argument */
  GStrv paths;                /* NULL: the task returns the whole list */
  gboolean one;               /* the task returns paths[0]'s entry, not an array */
  const VmMethod *vm_method;
  GVariant *options; /* of the method, not floating */
} CallData;

static void
call_data_free (CallData *data)
{
  g_free (data->vm_filter);
  g_strfreev (data->paths);
  g_clear_pointer (&data->options, g_variant_unref);
  g_free (data);
}

static GDBusCallFlags
call_flags (SmolvmClient *self)
{
  return self->interactive ? G_DBUS_CALL_FLAGS_ALLOW_INTERACTIVE_AUTHORIZATION
                           : G_DBUS_CALL_FLAGS_NONE;
}

/* The task of one call, with an empty CallData; NULL (and the error given
 * to @callback) if @self was never initialized. */
static GTask *
client_task_new (SmolvmClient *self, GCancellable *cancellable, GAsyncReadyCallback callback,
                 gpointer user_data, gpointer source_tag)
{
  g_autoptr(GTask) task = g_task_new (self, cancellable, callback, user_data);

  /* the function, not the macro, which would name every task "source_tag" */
  (g_task_set_source_tag) (task, source_tag);
  g_task_set_task_data (task, g_new0 (CallData, 1), (GDestroyNotify) call_data_free);
  if (self->manager == NULL) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_FAILED,
                             "The SmolvmClient was not initialized (g_initable_init())");
    return NULL;
  }
  return g_steal_pointer (&task);
}

static CallData *
task_data (GTask *task)
{
  return g_task_get_task_data (task);
}

/* smolvmd's errors are SMOLVM_ERROR codes already (the domain is
 * registered); only the "GDBus.Error:NAME: " in front of the message
 * goes. */
static void
task_return_error (GTask *task, GError *error)
{
  g_dbus_error_strip_remote_error (error);
  g_task_return_error (task, error);
}

static gboolean
client_propagate_boolean (SmolvmClient *self, GAsyncResult *result, gpointer source_tag,
                          GError **error)
{
  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, source_tag), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

static gpointer
client_propagate_pointer (SmolvmClient *self, GAsyncResult *result, gpointer source_tag,
                          GError **error)
{
  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, source_tag), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* ---- options ---- */

typedef struct {
  guint flag;
  const gchar *key; /* the boolean option it sets */
} FlagOption;

static const FlagOption snapshot_create_options[] = {
  { SMOLVM_SNAPSHOT_CREATE_FLAGS_RESUME_SOURCE, "resume-source" },
};

static const FlagOption snapshot_restore_options[] = {
  { SMOLVM_SNAPSHOT_RESTORE_FLAGS_RESUME, "resume" },
  { SMOLVM_SNAPSHOT_RESTORE_FLAGS_FORCE, "force" },
};

static const FlagOption snapshot_clone_options[] = {
  { SMOLVM_SNAPSHOT_CLONE_FLAGS_RESUME, "resume" },
};

static const FlagOption vm_delete_options[] = {
  { SMOLVM_VM_DELETE_FLAGS_FORCE, "force" },
};

/* Adds the boolean options of @flags to @options; fails for flags this
 * version does not know, which smolvmd could not be told. */
static gboolean
options_add_flags (GVariantDict *options, guint flags, const FlagOption *table, gsize n_table,
                   GError **error)
{
  guint known = 0;

  for (gsize i = 0; i < n_table; i++) {
    known |= table[i].flag;
    if (flags & table[i].flag)
      g_variant_dict_insert (options, table[i].key, "b", TRUE);
  }
  if (flags & ~known) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT, "Unknown flags 0x%x",
                 flags & ~known);
    return FALSE;
  }
  return TRUE;
}

/* The options dictionary of @flags, not floating; NULL on error. */
static GVariant *
options_from_flags (guint flags, const FlagOption *table, gsize n_table, GError **error)
{
  g_auto(GVariantDict) options = G_VARIANT_DICT_INIT (NULL);

  if (!options_add_flags (&options, flags, table, n_table, error))
    return NULL;
  return g_variant_ref_sink (g_variant_dict_end (&options));
}

static GVariant *
options_empty (void)
{
  return g_variant_ref_sink (g_variant_new_array (G_VARIANT_TYPE ("{sv}"), NULL, 0));
}

/* ---- lists: ListVMs, ListSnapshots ---- */

static void
list_vms_call (SmolvmDbusManager *manager, const gchar *vm_filter, GDBusCallFlags flags,
               GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  smolvm_dbus_manager_call_list_vms (manager, flags, CALL_TIMEOUT, cancellable, callback,
                                     user_data);
}

static void
list_snapshots_call (SmolvmDbusManager *manager, const gchar *vm_filter, GDBusCallFlags flags,
                     GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  smolvm_dbus_manager_call_list_snapshots (manager, vm_filter != NULL ? vm_filter : "", flags,
                                           CALL_TIMEOUT, cancellable, callback, user_data);
}

static GObject *
vm_info_new (GVariant *info, GError **error)
{
  return G_OBJECT (smolvm_vm_info_new_from_variant (info, error));
}

static GObject *
snapshot_info_new (GVariant *info, GError **error)
{
  return G_OBJECT (smolvm_snapshot_info_new_from_variant (info, error));
}

static const ListKind vm_list = {
  "VM", list_vms_call, smolvm_dbus_manager_call_list_vms_finish, vm_info_new,
};

static const ListKind snapshot_list = {
  "snapshot", list_snapshots_call, smolvm_dbus_manager_call_list_snapshots_finish,
  snapshot_info_new,
};

/* The dictionary of @path's entry of an a(oa{sv}) list, or NULL. */
static GVariant *
list_lookup (GVariant *list, const gchar *path)
{
  gsize n = g_variant_n_children (list);

  for (gsize i = 0; i < n; i++) {
    g_autoptr(GVariant) dict = NULL;
    const gchar *entry_path;

    g_variant_get_child (list, i, "(&o@a{sv})", &entry_path, &dict);
    if (g_str_equal (entry_path, path))
      return g_steal_pointer (&dict);
  }
  return NULL;
}

static gboolean
infos_add (GPtrArray *infos, const ListKind *kind, const gchar *path, GVariant *dict,
           GError **error)
{
  GObject *info = kind->info_new (dict, error);

  if (info == NULL) {
    g_prefix_error (error, "The %s at %s: ", kind->noun, path);
    return FALSE;
  }
  g_ptr_array_add (infos, info);
  return TRUE;
}

/* The objects of the entries of an a(oa{sv}) list; or with @paths, those
 * of these entries, in the order of @paths. */
static GPtrArray *
list_to_infos (GVariant *list, const ListKind *kind, const gchar *const *paths, GError **error)
{
  g_autoptr(GPtrArray) infos = g_ptr_array_new_with_free_func (g_object_unref);
  gsize n = g_variant_n_children (list);

  if (paths == NULL) {
    for (gsize i = 0; i < n; i++) {
      g_autoptr(GVariant) dict = NULL;
      const gchar *entry_path;

      g_variant_get_child (list, i, "(&o@a{sv})", &entry_path, &dict);
      if (!infos_add (infos, kind, entry_path, dict, error))
        return NULL;
    }
    return g_steal_pointer (&infos);
  }
  for (gsize i = 0; paths[i] != NULL; i++) {
    g_autoptr(GVariant) dict = list_lookup (list, paths[i]);

    if (dict == NULL) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND, "The %s at %s is gone",
                   kind->noun, paths[i]);
      return NULL;
    }
    if (!infos_add (infos, kind, paths[i], dict, error))
      return NULL;
  }
  return g_steal_pointer (&infos);
}

static void
on_listed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  CallData *data = task_data (task);
  g_autoptr(GVariant) list = NULL;
  g_autoptr(GPtrArray) infos = NULL;
  g_autoptr(GError) error = NULL;

  if (!data->list->finish (SMOLVM_DBUS_MANAGER (source), &list, result, &error)) {
    task_return_error (task, g_steal_pointer (&error));
    return;
  }
  infos = list_to_infos (list, data->list, (const gchar *const *) data->paths, &error);
  if (infos == NULL)
    g_task_return_error (task, g_steal_pointer (&error));
  else if (data->one)
    g_task_return_pointer (task, g_object_ref (g_ptr_array_index (infos, 0)), g_object_unref);
  else
    g_task_return_pointer (task, g_steal_pointer (&infos), (GDestroyNotify) g_ptr_array_unref);
}

/* Lists @kind's objects; the task returns them all, those at data->paths,
 * or with data->one the one at data->paths[0]. */
static void
task_list (GTask *task_owned, const ListKind *kind)
{
  g_autoptr(GTask) task = task_owned;
  SmolvmClient *self = g_task_get_source_object (task);
  GCancellable *cancellable = g_task_get_cancellable (task);
  CallData *data = task_data (task);

  data->list = kind;
  kind->call (self->manager, data->vm_filter, call_flags (self), cancellable, on_listed,
              g_steal_pointer (&task));
}

/* A Manager method gave an object path: the task returns its entry of
 * data->list, as smolvmd lists it after the call. */
static void
on_path_returned (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  CallData *data = task_data (task);
  g_autofree gchar *path = NULL;
  g_autoptr(GError) error = NULL;

  if (!data->path_finish (SMOLVM_DBUS_MANAGER (source), &path, result, &error)) {
    task_return_error (task, g_steal_pointer (&error));
    return;
  }
  data->paths = g_new0 (gchar *, 2);
  data->paths[0] = g_steal_pointer (&path);
  data->one = TRUE;
  task_list (g_steal_pointer (&task), data->list);
}

/* CloneSnapshot gave the new VMs' paths: the task returns their ListVMs
 * entries, in the order of the reply. */
static void
on_paths_returned (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  CallData *data = task_data (task);
  g_autoptr(GError) error = NULL;

  if (!smolvm_dbus_manager_call_clone_snapshot_finish (SMOLVM_DBUS_MANAGER (source),
                                                       &data->paths, result, &error)) {
    task_return_error (task, g_steal_pointer (&error));
    return;
  }
  task_list (g_steal_pointer (&task), data->list);
}

/* CreateVM's finish with the signature of the others. */
static gboolean
create_vm_finish (SmolvmDbusManager *manager, gchar **out_path, GAsyncResult *result,
                  GError **error)
{
  return smolvm_dbus_manager_call_create_vm_finish (manager, out_path, NULL, result, error);
}

/* ---- org.smolvm.VM methods ---- */

static void
vm_call_start (SmolvmDbusVm *vm, GVariant *options, GDBusCallFlags flags,
               GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  smolvm_dbus_vm_call_start (vm, flags, CALL_TIMEOUT, cancellable, callback, user_data);
}

static void
vm_call_pause (SmolvmDbusVm *vm, GVariant *options, GDBusCallFlags flags,
               GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  smolvm_dbus_vm_call_pause (vm, flags, CALL_TIMEOUT, cancellable, callback, user_data);
}

static void
vm_call_resume (SmolvmDbusVm *vm, GVariant *options, GDBusCallFlags flags,
                GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  smolvm_dbus_vm_call_resume (vm, flags, CALL_TIMEOUT, cancellable, callback, user_data);
}

static void
vm_call_stop (SmolvmDbusVm *vm, GVariant *options, GDBusCallFlags flags,
              GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  smolvm_dbus_vm_call_stop (vm, options, flags, CALL_TIMEOUT, cancellable, callback, user_data);
}

static void
vm_call_delete (SmolvmDbusVm *vm, GVariant *options, GDBusCallFlags flags,
                GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  smolvm_dbus_vm_call_delete (vm, options, flags, CALL_TIMEOUT, cancellable, callback,
                              user_data);
}

static void
vm_call_open_console_log (SmolvmDbusVm *vm, GVariant *options, GDBusCallFlags flags,
                          GCancellable *cancellable, GAsyncReadyCallback callback,
                          gpointer user_data)
{
  smolvm_dbus_vm_call_open_console_log (vm, options, flags, CALL_TIMEOUT, NULL, cancellable,
                                        callback, user_data);
}

static void
on_vm_method_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  g_autoptr(GError) error = NULL;

  if (!task_data (task)->vm_method->finish (SMOLVM_DBUS_VM (source), result, &error)) {
    task_return_error (task, g_steal_pointer (&error));
    return;
  }
  g_task_return_boolean (task, TRUE);
}

/* The task returns a GUnixFDList holding the log's descriptor only: it
 * closes the descriptor if the result is never taken. */
static void
on_console_log_opened (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  g_autoptr(GVariant) handle = NULL;
  g_autoptr(GUnixFDList) fds = NULL;
  g_autoptr(GError) error = NULL;
  gint fd;

  if (!smolvm_dbus_vm_call_open_console_log_finish (SMOLVM_DBUS_VM (source), &handle, &fds,
                                                    result, &error)) {
    task_return_error (task, g_steal_pointer (&error));
    return;
  }
  if (fds == NULL) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_FAILED,
                             "smolvmd sent no descriptor for the console log");
    return;
  }
  fd = g_unix_fd_list_get (fds, g_variant_get_handle (handle), &error);
  if (fd < 0) {
    g_prefix_error (&error, "The console log's descriptor: ");
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  g_task_return_pointer (task, g_unix_fd_list_new_from_array (&fd, 1), g_object_unref);
}

enum {
  VM_START,
  VM_PAUSE,
  VM_RESUME,
  VM_STOP,
  VM_DELETE,
  VM_OPEN_CONSOLE_LOG,
};

static const VmMethod vm_methods[] = {
  [VM_START] = { vm_call_start, on_vm_method_done, smolvm_dbus_vm_call_start_finish },
  [VM_PAUSE] = { vm_call_pause, on_vm_method_done, smolvm_dbus_vm_call_pause_finish },
  [VM_RESUME] = { vm_call_resume, on_vm_method_done, smolvm_dbus_vm_call_resume_finish },
  [VM_STOP] = { vm_call_stop, on_vm_method_done, smolvm_dbus_vm_call_stop_finish },
  [VM_DELETE] = { vm_call_delete, on_vm_method_done, smolvm_dbus_vm_call_delete_finish },
  [VM_OPEN_CONSOLE_LOG] = { vm_call_open_console_log, on_console_log_opened, NULL },
};

static void
on_vm_proxy (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  SmolvmClient *self = g_task_get_source_object (task);
  GCancellable *cancellable = g_task_get_cancellable (task);
  CallData *data = task_data (task);
  g_autoptr(SmolvmDbusVm) vm = NULL;
  g_autoptr(GError) error = NULL;

  vm = smolvm_dbus_vm_proxy_new_finish (result, &error);
  if (vm == NULL) {
    task_return_error (task, g_steal_pointer (&error));
    return;
  }
  data->vm_method->call (vm, data->options, call_flags (self), cancellable,
                         data->vm_method->done, g_steal_pointer (&task));
}

static void
on_vm_path (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  SmolvmClient *self = g_task_get_source_object (task);
  GCancellable *cancellable = g_task_get_cancellable (task);
  g_autofree gchar *path = NULL;
  g_autoptr(GError) error = NULL;

  if (!smolvm_dbus_manager_call_get_vm_finish (SMOLVM_DBUS_MANAGER (source), &path, result,
                                               &error)) {
    task_return_error (task, g_steal_pointer (&error));
    return;
  }
  smolvm_dbus_vm_proxy_new (self->connection, PROXY_FLAGS, self->name_owner, path, cancellable,
                            on_vm_proxy, g_steal_pointer (&task));
}

/* Calls @method (with @options, taken) on the VM @vm_id: GetVM, then a proxy
 * of that VM on our smolvmd. */
static void
client_call_vm (SmolvmClient *self, const gchar *vm_id, guint method, GVariant *options,
                GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data,
                gpointer source_tag)
{
  g_autoptr(GVariant) owned_options = options;
  g_autoptr(GTask) task = client_task_new (self, cancellable, callback, user_data, source_tag);
  CallData *data;

  if (task == NULL)
    return;
  data = task_data (task);
  data->vm_method = &vm_methods[method];
  data->options = owned_options != NULL ? g_steal_pointer (&owned_options) : options_empty ();
  smolvm_dbus_manager_call_get_vm (self->manager, vm_id, call_flags (self), CALL_TIMEOUT,
                                   cancellable, on_vm_path, g_steal_pointer (&task));
}

/* ---- construction ----
 *
 * Connect, find smolvmd by its well-known name (the bus starts it if it can),
 * pin its unique name, read Version and Backends. Both ways of doing it share
 * the steps below. The sync one is written out with sync calls rather than
 * run on a private main context like the other sync calls: the pinned proxy
 * lives as long as the client, and GDBus frees its signal subscription in the
 * main context it was made in, which must outlive it. */

/* Takes @error, the reason for no @connection. */
static gboolean
client_take_connection (SmolvmClient *self, GDBusConnection *connection, GError *error,
                        GError **out_error)
{
  if (connection == NULL) {
    g_propagate_prefixed_error (out_error, error, "Cannot connect to the %s bus: ",
                                buses[self->bus_type].label);
    return FALSE;
  }
  g_set_object (&self->connection, connection);
  return TRUE;
}

/* @proxy: of the well-known name, which has tried to start smolvmd. */
static gboolean
client_take_owner (SmolvmClient *self, SmolvmDbusManager *proxy, GError **error)
{
  g_clear_pointer (&self->name_owner, g_free);
  self->name_owner = g_dbus_proxy_get_name_owner (G_DBUS_PROXY (proxy));
  if (self->name_owner == NULL) {
    g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_SERVICE_UNKNOWN,
                 "smolvmd (%s) is neither running nor activatable on the %s bus",
                 SMOLVM_BUS_NAME, buses[self->bus_type].label);
    return FALSE;
  }
  return TRUE;
}

/* @reply: of Properties.GetAll, or NULL and @error (taken). Version and
 * Backends do not change: read once, rather than cached and kept up to
 * date by signals. */
static gboolean
client_take_properties (SmolvmClient *self, GVariant *reply, GError *error, GError **out_error)
{
  g_autoptr(GVariant) values = NULL;

  if (reply == NULL) {
    g_clear_object (&self->manager);
    g_dbus_error_strip_remote_error (error);
    g_propagate_prefixed_error (out_error, error, "Cannot read smolvmd's properties: ");
    return FALSE;
  }
  g_variant_get (reply, "(@a{sv})", &values);
  g_clear_pointer (&self->daemon_version, g_free);
  g_clear_pointer (&self->backends, g_strfreev);
  g_variant_lookup (values, "Version", "s", &self->daemon_version);
  g_variant_lookup (values, "Backends", "^as", &self->backends);
  if (self->backends == NULL)
    self->backends = g_new0 (gchar *, 1);
  return TRUE;
}

#define GET_ALL "org.freedesktop.DBus.Properties.GetAll"
#define GET_ALL_ARGS() g_variant_new ("(s)", smolvm_dbus_manager_interface_info ()->name)

static void
on_properties (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) out_error = NULL;

  reply = g_dbus_proxy_call_finish (G_DBUS_PROXY (source), result, &error);
  if (!client_take_properties (g_task_get_source_object (task), reply, g_steal_pointer (&error),
                               &out_error)) {
    g_task_return_error (task, g_steal_pointer (&out_error));
    return;
  }
  g_task_return_boolean (task, TRUE);
}

static void
on_manager_proxy (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  SmolvmClient *self = g_task_get_source_object (task);
  GCancellable *cancellable = g_task_get_cancellable (task);
  g_autoptr(GError) error = NULL;

  self->manager = smolvm_dbus_manager_proxy_new_finish (result, &error);
  if (self->manager == NULL) {
    task_return_error (task, g_steal_pointer (&error));
    return;
  }
  g_dbus_proxy_call (G_DBUS_PROXY (self->manager), GET_ALL, GET_ALL_ARGS (),
                     G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT, cancellable, on_properties,
                     g_steal_pointer (&task));
}

static void
on_name_proxy (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  SmolvmClient *self = g_task_get_source_object (task);
  GCancellable *cancellable = g_task_get_cancellable (task);
  g_autoptr(SmolvmDbusManager) proxy = NULL;
  g_autoptr(GError) error = NULL;

  proxy = smolvm_dbus_manager_proxy_new_finish (result, &error);
  if (proxy == NULL) {
    task_return_error (task, g_steal_pointer (&error));
    return;
  }
  if (!client_take_owner (self, proxy, &error)) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  /* Pinned: every later call reaches this smolvmd or fails, never another
   * one that took the name over. */
  smolvm_dbus_manager_proxy_new (self->connection, PROXY_FLAGS, self->name_owner,
                                 SMOLVM_MANAGER_PATH, cancellable, on_manager_proxy,
                                 g_steal_pointer (&task));
}

static void
on_bus (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  SmolvmClient *self = g_task_get_source_object (task);
  GCancellable *cancellable = g_task_get_cancellable (task);
  g_autoptr(GDBusConnection) connection = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) out_error = NULL;

  connection = g_bus_get_finish (result, &error);
  if (!client_take_connection (self, connection, g_steal_pointer (&error), &out_error)) {
    g_task_return_error (task, g_steal_pointer (&out_error));
    return;
  }
  smolvm_dbus_manager_proxy_new (connection, PROXY_FLAGS, SMOLVM_BUS_NAME, SMOLVM_MANAGER_PATH,
                                 cancellable, on_name_proxy, g_steal_pointer (&task));
}

static void
smolvm_client_init_async (GAsyncInitable *initable, int io_priority, GCancellable *cancellable,
                          GAsyncReadyCallback callback, gpointer user_data)
{
  SmolvmClient *self = SMOLVM_CLIENT (initable);
  g_autoptr(GTask) task = g_task_new (self, cancellable, callback, user_data);

  g_task_set_source_tag (task, smolvm_client_init_async);
  g_task_set_priority (task, io_priority);
  if (self->manager != NULL) {
    g_task_return_boolean (task, TRUE);
    return;
  }
  g_bus_get (buses[self->bus_type].bus_type, cancellable, on_bus, g_steal_pointer (&task));
}

static gboolean
smolvm_client_init_finish (GAsyncInitable *initable, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, initable), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

static gboolean
smolvm_client_init_sync (GInitable *initable, GCancellable *cancellable, GError **error)
{
  SmolvmClient *self = SMOLVM_CLIENT (initable);
  g_autoptr(GDBusConnection) connection = NULL;
  g_autoptr(SmolvmDbusManager) proxy = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) local_error = NULL;

  if (self->manager != NULL)
    return TRUE;
  connection = g_bus_get_sync (buses[self->bus_type].bus_type, cancellable, &local_error);
  if (!client_take_connection (self, connection, g_steal_pointer (&local_error), error))
    return FALSE;
  proxy = smolvm_dbus_manager_proxy_new_sync (connection, PROXY_FLAGS, SMOLVM_BUS_NAME,
                                              SMOLVM_MANAGER_PATH, cancellable, error);
  if (proxy == NULL || !client_take_owner (self, proxy, error)) {
    if (error != NULL && *error != NULL)
      g_dbus_error_strip_remote_error (*error);
    return FALSE;
  }
  self->manager = smolvm_dbus_manager_proxy_new_sync (connection, PROXY_FLAGS, self->name_owner,
                                                      SMOLVM_MANAGER_PATH, cancellable, error);
  if (self->manager == NULL)
    return FALSE;
  reply = g_dbus_proxy_call_sync (G_DBUS_PROXY (self->manager), GET_ALL, GET_ALL_ARGS (),
                                  G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT, cancellable,
                                  &local_error);
  return client_take_properties (self, reply, g_steal_pointer (&local_error), error);
}

static void
smolvm_client_initable_iface_init (GInitableIface *iface)
{
  iface->init = smolvm_client_init_sync;
}

static void
smolvm_client_async_initable_iface_init (GAsyncInitableIface *iface)
{
  iface->init_async = smolvm_client_init_async;
  iface->init_finish = smolvm_client_init_finish;
}

static void
smolvm_client_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  SmolvmClient *self = SMOLVM_CLIENT (object);

  switch (prop_id) {
  case PROP_BUS_TYPE:
    g_value_set_enum (value, self->bus_type);
    break;
  case PROP_CONNECTION:
    g_value_set_object (value, self->connection);
    break;
  case PROP_NAME_OWNER:
    g_value_set_string (value, self->name_owner);
    break;
  case PROP_INTERACTIVE:
    g_value_set_boolean (value, self->interactive);
    break;
  case PROP_DAEMON_VERSION:
    g_value_set_string (value, self->daemon_version);
    break;
  case PROP_BACKENDS:
    g_value_set_boxed (value, self->backends);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
}

static void
smolvm_client_set_property (GObject *object, guint prop_id, const GValue *value,
                            GParamSpec *pspec)
{
  SmolvmClient *self = SMOLVM_CLIENT (object);

  switch (prop_id) {
  case PROP_BUS_TYPE:
    self->bus_type = g_value_get_enum (value);
    break;
  case PROP_INTERACTIVE:
    smolvm_client_set_interactive (self, g_value_get_boolean (value));
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
}

static void
smolvm_client_finalize (GObject *object)
{
  SmolvmClient *self = SMOLVM_CLIENT (object);

  g_clear_object (&self->manager);
  g_clear_object (&self->connection);
  g_free (self->name_owner);
  g_free (self->daemon_version);
  g_strfreev (self->backends);
  G_OBJECT_CLASS (smolvm_client_parent_class)->finalize (object);
}

static void
smolvm_client_class_init (SmolvmClientClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->get_property = smolvm_client_get_property;
  object_class->set_property = smolvm_client_set_property;
  object_class->finalize = smolvm_client_finalize;

  /**
   * SmolvmClient:bus-type:
   *
   * The bus smolvmd is found on.
   */
  properties[PROP_BUS_TYPE] =
    g_param_spec_enum ("bus-type", NULL, "The bus smolvmd is on", SMOLVM_TYPE_BUS_TYPE,
                       SMOLVM_BUS_TYPE_SYSTEM,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  /**
   * SmolvmClient:connection:
   *
   * The bus connection; %NULL until the client is initialized.
   */
  properties[PROP_CONNECTION] =
    g_param_spec_object ("connection", NULL, "The bus connection", G_TYPE_DBUS_CONNECTION,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  /**
   * SmolvmClient:name-owner:
   *
   * The unique bus name of the smolvmd that every call goes to, e.g. for
   * watching its jobs with a #GDBusObjectManagerClient; %NULL until the
   * client is initialized.
   */
  properties[PROP_NAME_OWNER] =
    g_param_spec_string ("name-owner", NULL, "smolvmd's unique bus name", NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  /**
   * SmolvmClient:interactive:
   *
   * Whether calls allow interactive authorization
   * (%G_DBUS_CALL_FLAGS_ALLOW_INTERACTIVE_AUTHORIZATION): polkit may then
   * ask the user for a password through an authentication agent, instead
   * of failing with %SMOLVM_ERROR_NOT_AUTHORIZED.
   */
  properties[PROP_INTERACTIVE] =
    g_param_spec_boolean ("interactive", NULL, "Allow interactive authorization", FALSE,
                          G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  /**
   * SmolvmClient:daemon-version:
   *
   * smolvmd's version (org.smolvm.Manager's Version), as read at
   * initialization.
   */
  properties[PROP_DAEMON_VERSION] =
    g_param_spec_string ("daemon-version", NULL, "smolvmd's version", NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  /**
   * SmolvmClient:backends:
   *
   * The VM backends smolvmd can drive, "firecracker" and/or "qemu"
   * (org.smolvm.Manager's Backends), as read at initialization.
   */
  properties[PROP_BACKENDS] =
    g_param_spec_boxed ("backends", NULL, "The VM backends smolvmd can drive", G_TYPE_STRV,
                        G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /* so that smolvmd's errors arrive as SMOLVM_ERROR codes */
  smolvm_error_quark ();
}

static void
smolvm_client_init (SmolvmClient *self)
{
}

/**
 * smolvm_client_new_sync:
 * @bus_type: the bus smolvmd is on
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Connects to smolvmd on @bus_type, starting it if it is activatable, and
 * reads its version and backends.
 *
 * Returns: (transfer full): a client bound to that smolvmd, or %NULL
 */
SmolvmClient *
smolvm_client_new_sync (SmolvmBusType bus_type, GCancellable *cancellable, GError **error)
{
  return g_initable_new (SMOLVM_TYPE_CLIENT, cancellable, error, "bus-type", bus_type, NULL);
}

/**
 * smolvm_client_new:
 * @bus_type: the bus smolvmd is on
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called when the client is ready
 * @user_data: data for @callback
 *
 * The asynchronous version of smolvm_client_new_sync(): @callback gets the
 * client from smolvm_client_new_finish().
 */
void
smolvm_client_new (SmolvmBusType bus_type, GCancellable *cancellable,
                   GAsyncReadyCallback callback, gpointer user_data)
{
  g_async_initable_new_async (SMOLVM_TYPE_CLIENT, G_PRIORITY_DEFAULT, cancellable, callback,
                              user_data, "bus-type", bus_type, NULL);
}

/**
 * smolvm_client_new_finish:
 * @result: the #GAsyncResult given to the callback of smolvm_client_new()
 * @error: return location for a #GError
 *
 * Returns: (transfer full): a client bound to smolvmd, or %NULL
 */
SmolvmClient *
smolvm_client_new_finish (GAsyncResult *result, GError **error)
{
  g_autoptr(GObject) source = g_async_result_get_source_object (result);
  GObject *client = g_async_initable_new_finish (G_ASYNC_INITABLE (source), result, error);

  return client != NULL ? SMOLVM_CLIENT (client) : NULL;
}

/**
 * smolvm_client_get_bus_type:
 * @self: a #SmolvmClient
 *
 * Returns: the #SmolvmClient:bus-type
 */
SmolvmBusType
smolvm_client_get_bus_type (SmolvmClient *self)
{
  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), SMOLVM_BUS_TYPE_SYSTEM);
  return self->bus_type;
}

/**
 * smolvm_client_get_connection:
 * @self: a #SmolvmClient
 *
 * Returns: (transfer none) (nullable): the #SmolvmClient:connection
 */
GDBusConnection *
smolvm_client_get_connection (SmolvmClient *self)
{
  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), NULL);
  return self->connection;
}

/**
 * smolvm_client_get_name_owner:
 * @self: a #SmolvmClient
 *
 * Returns: (transfer none) (nullable): the #SmolvmClient:name-owner
 */
const gchar *
smolvm_client_get_name_owner (SmolvmClient *self)
{
  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), NULL);
  return self->name_owner;
}

/**
 * smolvm_client_set_interactive:
 * @self: a #SmolvmClient
 * @interactive: whether calls allow interactive authorization
 *
 * Sets #SmolvmClient:interactive, for the calls made from now on.
 */
void
smolvm_client_set_interactive (SmolvmClient *self, gboolean interactive)
{
  g_return_if_fail (SMOLVM_IS_CLIENT (self));
  interactive = !!interactive;
  if (self->interactive == interactive)
    return;
  self->interactive = interactive;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_INTERACTIVE]);
}

/**
 * smolvm_client_get_interactive:
 * @self: a #SmolvmClient
 *
 * Returns: the #SmolvmClient:interactive flag
 */
gboolean
smolvm_client_get_interactive (SmolvmClient *self)
{
  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), FALSE);
  return self->interactive;
}

/**
 * smolvm_client_get_daemon_version:
 * @self: a #SmolvmClient
 *
 * Returns: (transfer none) (nullable): the #SmolvmClient:daemon-version
 */
const gchar *
smolvm_client_get_daemon_version (SmolvmClient *self)
{
  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), NULL);
  return self->daemon_version;
}

/**
 * smolvm_client_get_backends:
 * @self: a #SmolvmClient
 *
 * Returns: (transfer none) (array zero-terminated=1) (nullable): the
 *   #SmolvmClient:backends
 */
const gchar *const *
smolvm_client_get_backends (SmolvmClient *self)
{
  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), NULL);
  return (const gchar *const *) self->backends;
}

/* ---- snapshots ---- */

/**
 * smolvm_client_list_snapshots_sync:
 * @self: a #SmolvmClient
 * @vm_id: (nullable): list only the snapshots of this VM; %NULL for all
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * The snapshots smolvmd has (ListSnapshots), oldest first.
 *
 * Returns: (transfer container) (element-type SmolvmSnapshotInfo): the
 *   snapshots, or %NULL on error; free with g_ptr_array_unref()
 */
GPtrArray *
smolvm_client_list_snapshots_sync (SmolvmClient *self, const gchar *vm_id,
                                   GCancellable *cancellable, GError **error)
{
  g_auto(SyncCall) call = { 0 };

  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), NULL);
  sync_call_begin (&call);
  smolvm_client_list_snapshots (self, vm_id, cancellable, sync_call_ready, &call);
  return smolvm_client_list_snapshots_finish (self, sync_call_wait (&call), error);
}

/**
 * smolvm_client_list_snapshots:
 * @self: a #SmolvmClient
 * @vm_id: (nullable): list only the snapshots of this VM; %NULL for all
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the result
 * @user_data: data for @callback
 *
 * The asynchronous version of smolvm_client_list_snapshots_sync().
 */
void
smolvm_client_list_snapshots (SmolvmClient *self, const gchar *vm_id,
                              GCancellable *cancellable, GAsyncReadyCallback callback,
                              gpointer user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (SMOLVM_IS_CLIENT (self));
  task = client_task_new (self, cancellable, callback, user_data, smolvm_client_list_snapshots);
  if (task == NULL)
    return;
  task_data (task)->vm_filter = g_strdup (vm_id);
  task_list (g_steal_pointer (&task), &snapshot_list);
}

/**
 * smolvm_client_list_snapshots_finish:
 * @self: a #SmolvmClient
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer container) (element-type SmolvmSnapshotInfo): the
 *   snapshots, or %NULL on error; free with g_ptr_array_unref()
 */
GPtrArray *
smolvm_client_list_snapshots_finish (SmolvmClient *self, GAsyncResult *result, GError **error)
{
  return client_propagate_pointer (self, result, smolvm_client_list_snapshots, error);
}

/**
 * smolvm_client_get_snapshot_sync:
 * @self: a #SmolvmClient
 * @snapshot_id: a snapshot id
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * The snapshot @snapshot_id (GetSnapshot, then its ListSnapshots entry).
 *
 * Returns: (transfer full): the snapshot, or %NULL with
 *   %SMOLVM_ERROR_NOT_FOUND if there is none
 */
SmolvmSnapshotInfo *
smolvm_client_get_snapshot_sync (SmolvmClient *self, const gchar *snapshot_id,
                                 GCancellable *cancellable, GError **error)
{
  g_auto(SyncCall) call = { 0 };

  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), NULL);
  g_return_val_if_fail (snapshot_id != NULL, NULL);
  sync_call_begin (&call);
  smolvm_client_get_snapshot (self, snapshot_id, cancellable, sync_call_ready, &call);
  return smolvm_client_get_snapshot_finish (self, sync_call_wait (&call), error);
}

/**
 * smolvm_client_get_snapshot:
 * @self: a #SmolvmClient
 * @snapshot_id: a snapshot id
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the result
 * @user_data: data for @callback
 *
 * The asynchronous version of smolvm_client_get_snapshot_sync().
 */
void
smolvm_client_get_snapshot (SmolvmClient *self, const gchar *snapshot_id,
                            GCancellable *cancellable, GAsyncReadyCallback callback,
                            gpointer user_data)
{
  g_autoptr(GTask) task = NULL;
  CallData *data;

  g_return_if_fail (SMOLVM_IS_CLIENT (self));
  g_return_if_fail (snapshot_id != NULL);
  task = client_task_new (self, cancellable, callback, user_data, smolvm_client_get_snapshot);
  if (task == NULL)
    return;
  data = task_data (task);
  data->path_finish = smolvm_dbus_manager_call_get_snapshot_finish;
  data->list = &snapshot_list;
  smolvm_dbus_manager_call_get_snapshot (self->manager, snapshot_id, call_flags (self),
                                         CALL_TIMEOUT, cancellable, on_path_returned,
                                         g_steal_pointer (&task));
}

/**
 * smolvm_client_get_snapshot_finish:
 * @self: a #SmolvmClient
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the snapshot, or %NULL
 */
SmolvmSnapshotInfo *
smolvm_client_get_snapshot_finish (SmolvmClient *self, GAsyncResult *result, GError **error)
{
  return client_propagate_pointer (self, result, smolvm_client_get_snapshot, error);
}

/**
 * smolvm_client_create_snapshot_sync:
 * @self: a #SmolvmClient
 * @vm_id: the VM to snapshot, running or paused
 * @snapshot_id: (nullable): the new snapshot's id; %NULL or "" to have one
 *   generated
 * @flags: options
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Saves the complete state of a VM (CreateSnapshot). Without
 * %SMOLVM_SNAPSHOT_CREATE_FLAGS_RESUME_SOURCE the VM stays paused. This
 * takes as long as copying the VM's memory and disk; smolvmd publishes
 * the work as a job meanwhile.
 *
 * Returns: (transfer full): the new snapshot, or %NULL
 */
SmolvmSnapshotInfo *
smolvm_client_create_snapshot_sync (SmolvmClient *self, const gchar *vm_id,
                                    const gchar *snapshot_id, SmolvmSnapshotCreateFlags flags,
                                    GCancellable *cancellable, GError **error)
{
  g_auto(SyncCall) call = { 0 };

  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), NULL);
  g_return_val_if_fail (vm_id != NULL, NULL);
  sync_call_begin (&call);
  smolvm_client_create_snapshot (self, vm_id, snapshot_id, flags, cancellable, sync_call_ready,
                                 &call);
  return smolvm_client_create_snapshot_finish (self, sync_call_wait (&call), error);
}

/**
 * smolvm_client_create_snapshot:
 * @self: a #SmolvmClient
 * @vm_id: the VM to snapshot, running or paused
 * @snapshot_id: (nullable): the new snapshot's id; %NULL or "" to have one
 *   generated
 * @flags: options
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the result
 * @user_data: data for @callback
 *
 * The asynchronous version of smolvm_client_create_snapshot_sync().
 */
void
smolvm_client_create_snapshot (SmolvmClient *self, const gchar *vm_id,
                               const gchar *snapshot_id, SmolvmSnapshotCreateFlags flags,
                               GCancellable *cancellable, GAsyncReadyCallback callback,
                               gpointer user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autoptr(GError) error = NULL;
  CallData *data;

  g_return_if_fail (SMOLVM_IS_CLIENT (self));
  g_return_if_fail (vm_id != NULL);
  task = client_task_new (self, cancellable, callback, user_data, smolvm_client_create_snapshot);
  if (task == NULL)
    return;
  data = task_data (task);
  data->options = options_from_flags (flags, snapshot_create_options,
                                      G_N_ELEMENTS (snapshot_create_options), &error);
  if (data->options == NULL) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  data->path_finish = smolvm_dbus_manager_call_create_snapshot_finish;
  data->list = &snapshot_list;
  data->vm_filter = g_strdup (vm_id);
  smolvm_dbus_manager_call_create_snapshot (self->manager, vm_id,
                                            snapshot_id != NULL ? snapshot_id : "", data->options,
                                            call_flags (self), CALL_TIMEOUT, cancellable,
                                            on_path_returned, g_steal_pointer (&task));
}

/**
 * smolvm_client_create_snapshot_finish:
 * @self: a #SmolvmClient
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the new snapshot, or %NULL
 */
SmolvmSnapshotInfo *
smolvm_client_create_snapshot_finish (SmolvmClient *self, GAsyncResult *result, GError **error)
{
  return client_propagate_pointer (self, result, smolvm_client_create_snapshot, error);
}

/**
 * smolvm_client_restore_snapshot_sync:
 * @self: a #SmolvmClient
 * @snapshot_id: the snapshot to restore
 * @flags: options
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Brings a snapshot back into its original VM (RestoreSnapshot): the same
 * id, VM config and network config. A running VM of that id is stopped
 * first; a deleted one is recreated. Without
 * %SMOLVM_SNAPSHOT_RESTORE_FLAGS_RESUME the VM ends paused.
 *
 * Returns: (transfer full): the restored VM, or %NULL
 */
SmolvmVmInfo *
smolvm_client_restore_snapshot_sync (SmolvmClient *self, const gchar *snapshot_id,
                                     SmolvmSnapshotRestoreFlags flags, GCancellable *cancellable,
                                     GError **error)
{
  g_auto(SyncCall) call = { 0 };

  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), NULL);
  g_return_val_if_fail (snapshot_id != NULL, NULL);
  sync_call_begin (&call);
  smolvm_client_restore_snapshot (self, snapshot_id, flags, cancellable, sync_call_ready, &call);
  return smolvm_client_restore_snapshot_finish (self, sync_call_wait (&call), error);
}

/**
 * smolvm_client_restore_snapshot:
 * @self: a #SmolvmClient
 * @snapshot_id: the snapshot to restore
 * @flags: options
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the result
 * @user_data: data for @callback
 *
 * The asynchronous version of smolvm_client_restore_snapshot_sync().
 */
void
smolvm_client_restore_snapshot (SmolvmClient *self, const gchar *snapshot_id,
                                SmolvmSnapshotRestoreFlags flags, GCancellable *cancellable,
                                GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autoptr(GError) error = NULL;
  CallData *data;

  g_return_if_fail (SMOLVM_IS_CLIENT (self));
  g_return_if_fail (snapshot_id != NULL);
  task = client_task_new (self, cancellable, callback, user_data, smolvm_client_restore_snapshot);
  if (task == NULL)
    return;
  data = task_data (task);
  data->options = options_from_flags (flags, snapshot_restore_options,
                                      G_N_ELEMENTS (snapshot_restore_options), &error);
  if (data->options == NULL) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  data->path_finish = smolvm_dbus_manager_call_restore_snapshot_finish;
  data->list = &vm_list;
  smolvm_dbus_manager_call_restore_snapshot (self->manager, snapshot_id, data->options,
                                             call_flags (self), CALL_TIMEOUT, cancellable,
                                             on_path_returned, g_steal_pointer (&task));
}

/**
 * smolvm_client_restore_snapshot_finish:
 * @self: a #SmolvmClient
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the restored VM, or %NULL
 */
SmolvmVmInfo *
smolvm_client_restore_snapshot_finish (SmolvmClient *self, GAsyncResult *result,
                                       GError **error)
{
  return client_propagate_pointer (self, result, smolvm_client_restore_snapshot, error);
}

/* CloneSnapshot's options: count and vm-ids only when given, so that
 * smolvmd's own defaults apply (one clone per id, or one). */
static GVariant *
clone_options (guint count, const gchar *const *vm_ids, SmolvmSnapshotCloneFlags flags,
               GError **error)
{
  g_auto(GVariantDict) options = G_VARIANT_DICT_INIT (NULL);

  if (!options_add_flags (&options, flags, snapshot_clone_options,
                          G_N_ELEMENTS (snapshot_clone_options), error))
    return NULL;
  if (count > 0)
    g_variant_dict_insert (&options, "count", "u", count);
  if (vm_ids != NULL && vm_ids[0] != NULL)
    g_variant_dict_insert_value (&options, "vm-ids", g_variant_new_strv (vm_ids, -1));
  return g_variant_ref_sink (g_variant_dict_end (&options));
}

/**
 * smolvm_client_clone_snapshot_sync:
 * @self: a #SmolvmClient
 * @snapshot_id: the snapshot to clone
 * @count: how many clones to make, 1 to 64; 0 for one per id of @vm_ids,
 *   or one without ids
 * @vm_ids: (nullable) (array zero-terminated=1): the new VMs' ids; %NULL or
 *   empty to have them generated (VMID-N for the snapshot's VM id and the
 *   first free N)
 * @flags: options
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Makes new VMs of a snapshot (CloneSnapshot), each continuing where the
 * snapshot's guest stopped, with its own copy of the disk. A clone is an
 * ordinary VM afterwards, with #SmolvmVmInfo:cloned-from set; the snapshot's
 * restored state does not change. Without
 * %SMOLVM_SNAPSHOT_CLONE_FLAGS_RESUME the clones stay paused. smolvmd makes
 * them one after the other in one job (operation "snapshot-clone").
 *
 * If a clone fails, the clones made are kept and the call fails with
 * %SMOLVM_ERROR_FAILED (%SMOLVM_ERROR_CANCELLED after the job was
 * cancelled), whose message names the clones kept and why each other
 * failed; their #SmolvmVmInfo:cloned-from tells them apart. A snapshot
 * whose VM has networking gives %SMOLVM_ERROR_UNSUPPORTED for now.
 *
 * Returns: (transfer container) (element-type SmolvmVmInfo): the new VMs,
 *   in the order smolvmd gave them (that of their ids), or %NULL on error;
 *   free with g_ptr_array_unref()
 */
GPtrArray *
smolvm_client_clone_snapshot_sync (SmolvmClient *self, const gchar *snapshot_id, guint count,
                                   const gchar *const *vm_ids, SmolvmSnapshotCloneFlags flags,
                                   GCancellable *cancellable, GError **error)
{
  g_auto(SyncCall) call = { 0 };

  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), NULL);
  g_return_val_if_fail (snapshot_id != NULL, NULL);
  sync_call_begin (&call);
  smolvm_client_clone_snapshot (self, snapshot_id, count, vm_ids, flags, cancellable,
                                sync_call_ready, &call);
  return smolvm_client_clone_snapshot_finish (self, sync_call_wait (&call), error);
}

/**
 * smolvm_client_clone_snapshot:
 * @self: a #SmolvmClient
 * @snapshot_id: the snapshot to clone
 * @count: how many clones to make, 1 to 64; 0 for one per id of @vm_ids,
 *   or one without ids
 * @vm_ids: (nullable) (array zero-terminated=1): the new VMs' ids; %NULL or
 *   empty to have them generated
 * @flags: options
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the result
 * @user_data: data for @callback
 *
 * The asynchronous version of smolvm_client_clone_snapshot_sync().
 */
void
smolvm_client_clone_snapshot (SmolvmClient *self, const gchar *snapshot_id, guint count,
                              const gchar *const *vm_ids, SmolvmSnapshotCloneFlags flags,
                              GCancellable *cancellable, GAsyncReadyCallback callback,
                              gpointer user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autoptr(GError) error = NULL;
  CallData *data;

  g_return_if_fail (SMOLVM_IS_CLIENT (self));
  g_return_if_fail (snapshot_id != NULL);
  task = client_task_new (self, cancellable, callback, user_data, smolvm_client_clone_snapshot);
  if (task == NULL)
    return;
  data = task_data (task);
  data->options = clone_options (count, vm_ids, flags, &error);
  if (data->options == NULL) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  data->list = &vm_list;
  smolvm_dbus_manager_call_clone_snapshot (self->manager, snapshot_id, data->options,
                                           call_flags (self), CALL_TIMEOUT, cancellable,
                                           on_paths_returned, g_steal_pointer (&task));
}

/**
 * smolvm_client_clone_snapshot_finish:
 * @self: a #SmolvmClient
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer container) (element-type SmolvmVmInfo): the new VMs,
 *   in the order smolvmd gave them, or %NULL on error; free with
 *   g_ptr_array_unref()
 */
GPtrArray *
smolvm_client_clone_snapshot_finish (SmolvmClient *self, GAsyncResult *result, GError **error)
{
  return client_propagate_pointer (self, result, smolvm_client_clone_snapshot, error);
}

static void
on_snapshot_deleted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_dbus_manager_call_delete_snapshot_finish (SMOLVM_DBUS_MANAGER (source), result,
                                                        &error)) {
    task_return_error (task, g_steal_pointer (&error));
    return;
  }
  g_task_return_boolean (task, TRUE);
}

/**
 * smolvm_client_delete_snapshot_sync:
 * @self: a #SmolvmClient
 * @snapshot_id: the snapshot to delete
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Deletes a snapshot's files and metadata, permanently (DeleteSnapshot).
 * Fails with %SMOLVM_ERROR_IN_USE while a VM restored from it runs.
 *
 * Returns: %TRUE if the snapshot is gone
 */
gboolean
smolvm_client_delete_snapshot_sync (SmolvmClient *self, const gchar *snapshot_id,
                                    GCancellable *cancellable, GError **error)
{
  g_auto(SyncCall) call = { 0 };

  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), FALSE);
  g_return_val_if_fail (snapshot_id != NULL, FALSE);
  sync_call_begin (&call);
  smolvm_client_delete_snapshot (self, snapshot_id, cancellable, sync_call_ready, &call);
  return smolvm_client_delete_snapshot_finish (self, sync_call_wait (&call), error);
}

/**
 * smolvm_client_delete_snapshot:
 * @self: a #SmolvmClient
 * @snapshot_id: the snapshot to delete
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the result
 * @user_data: data for @callback
 *
 * The asynchronous version of smolvm_client_delete_snapshot_sync().
 */
void
smolvm_client_delete_snapshot (SmolvmClient *self, const gchar *snapshot_id,
                               GCancellable *cancellable, GAsyncReadyCallback callback,
                               gpointer user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autoptr(GVariant) options = options_empty ();

  g_return_if_fail (SMOLVM_IS_CLIENT (self));
  g_return_if_fail (snapshot_id != NULL);
  task = client_task_new (self, cancellable, callback, user_data, smolvm_client_delete_snapshot);
  if (task == NULL)
    return;
  smolvm_dbus_manager_call_delete_snapshot (self->manager, snapshot_id, options,
                                            call_flags (self), CALL_TIMEOUT, cancellable,
                                            on_snapshot_deleted, g_steal_pointer (&task));
}

/**
 * smolvm_client_delete_snapshot_finish:
 * @self: a #SmolvmClient
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE if the snapshot is gone
 */
gboolean
smolvm_client_delete_snapshot_finish (SmolvmClient *self, GAsyncResult *result, GError **error)
{
  return client_propagate_boolean (self, result, smolvm_client_delete_snapshot, error);
}

/* ImportSnapshot's finish with the signature of the others. */
static gboolean
import_snapshot_finish (SmolvmDbusManager *manager, gchar **out_path, GAsyncResult *result,
                        GError **error)
{
  return smolvm_dbus_manager_call_import_snapshot_finish (manager, out_path, NULL, result, error);
}

/* A GUnixFDList holding a copy of @fd (the caller keeps @fd). */
static GUnixFDList *
fd_list_of (gint fd, GError **error)
{
  g_autoptr(GUnixFDList) list = g_unix_fd_list_new ();

  if (g_unix_fd_list_append (list, fd, error) < 0)
    return NULL;
  return g_steal_pointer (&list);
}

static void
on_snapshot_exported (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = g_dbus_connection_call_with_unix_fd_list_finish (
    G_DBUS_CONNECTION (source), NULL, result, &error);

  if (reply == NULL) {
    task_return_error (task, g_steal_pointer (&error));
    return;
  }
  g_task_return_boolean (task, TRUE);
}

/**
 * smolvm_client_export_snapshot_sync:
 * @self: a #SmolvmClient
 * @snapshot_id: the snapshot to export
 * @fd: a descriptor open for writing (a file, a pipe, a socket); the
 *   caller keeps it and closes it
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Writes the snapshot as an OCI archive (skopeo's oci-archive: an OCI
 * image layout in a tar, the snapshot as an artifact of type
 * application/vnd.smolvm.snapshot.v1) to @fd (Snapshot.Export). smolvmd
 * writes to the descriptor itself; it never opens a path of the caller's.
 *
 * Returns: %TRUE once the whole archive was written
 */
gboolean
smolvm_client_export_snapshot_sync (SmolvmClient *self, const gchar *snapshot_id, gint fd,
                                    GCancellable *cancellable, GError **error)
{
  g_auto(SyncCall) call = { 0 };

  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), FALSE);
  g_return_val_if_fail (snapshot_id != NULL, FALSE);
  sync_call_begin (&call);
  smolvm_client_export_snapshot (self, snapshot_id, fd, cancellable, sync_call_ready, &call);
  return smolvm_client_export_snapshot_finish (self, sync_call_wait (&call), error);
}

/**
 * smolvm_client_export_snapshot:
 * @self: a #SmolvmClient
 * @snapshot_id: the snapshot to export
 * @fd: a descriptor open for writing; the caller keeps it
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the result
 * @user_data: data for @callback
 *
 * The asynchronous version of smolvm_client_export_snapshot_sync().
 */
void
smolvm_client_export_snapshot (SmolvmClient *self, const gchar *snapshot_id, gint fd,
                               GCancellable *cancellable, GAsyncReadyCallback callback,
                               gpointer user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autoptr(GUnixFDList) fd_list = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree gchar *escaped = NULL;
  g_autofree gchar *path = NULL;

  g_return_if_fail (SMOLVM_IS_CLIENT (self));
  g_return_if_fail (snapshot_id != NULL);
  task = client_task_new (self, cancellable, callback, user_data, smolvm_client_export_snapshot);
  if (task == NULL)
    return;
  fd_list = fd_list_of (fd, &error);
  if (fd_list == NULL) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  escaped = g_dbus_escape_object_path (snapshot_id);
  path = g_strconcat ("/org/smolvm/Manager/snapshot/", escaped, NULL);
  g_dbus_connection_call_with_unix_fd_list (
    self->connection, self->name_owner, path, "org.smolvm.Snapshot", "Export",
    g_variant_new ("(h@a{sv})", 0, g_variant_new ("a{sv}", NULL)), G_VARIANT_TYPE ("()"),
    call_flags (self), CALL_TIMEOUT, fd_list, cancellable, on_snapshot_exported,
    g_steal_pointer (&task));
}

/**
 * smolvm_client_export_snapshot_finish:
 * @self: a #SmolvmClient
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE once the whole archive was written
 */
gboolean
smolvm_client_export_snapshot_finish (SmolvmClient *self, GAsyncResult *result, GError **error)
{
  return client_propagate_boolean (self, result, smolvm_client_export_snapshot, error);
}

/**
 * smolvm_client_import_snapshot_sync:
 * @self: a #SmolvmClient
 * @fd: a descriptor open for reading at the start of an OCI archive; the
 *   caller keeps it
 * @snapshot_id: (nullable): the id to store it under; %NULL or "" for the
 *   archive's own
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Reads an OCI archive of a snapshot from @fd (Manager.ImportSnapshot),
 * verifies every blob and publishes the snapshot. Fails with
 * %SMOLVM_ERROR_CORRUPT for a damaged archive, %SMOLVM_ERROR_NOT_A_SNAPSHOT
 * for an archive of something else, %SMOLVM_ERROR_ALREADY_EXISTS when the
 * id is taken.
 *
 * Returns: (transfer full): the new snapshot, or %NULL
 */
SmolvmSnapshotInfo *
smolvm_client_import_snapshot_sync (SmolvmClient *self, gint fd, const gchar *snapshot_id,
                                    GCancellable *cancellable, GError **error)
{
  g_auto(SyncCall) call = { 0 };

  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), NULL);
  sync_call_begin (&call);
  smolvm_client_import_snapshot (self, fd, snapshot_id, cancellable, sync_call_ready, &call);
  return smolvm_client_import_snapshot_finish (self, sync_call_wait (&call), error);
}

/**
 * smolvm_client_import_snapshot:
 * @self: a #SmolvmClient
 * @fd: a descriptor open for reading; the caller keeps it
 * @snapshot_id: (nullable): the id to store it under, or %NULL
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the result
 * @user_data: data for @callback
 *
 * The asynchronous version of smolvm_client_import_snapshot_sync().
 */
void
smolvm_client_import_snapshot (SmolvmClient *self, gint fd, const gchar *snapshot_id,
                               GCancellable *cancellable, GAsyncReadyCallback callback,
                               gpointer user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autoptr(GUnixFDList) fd_list = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GVariantBuilder) options = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE_VARDICT);
  CallData *data;

  g_return_if_fail (SMOLVM_IS_CLIENT (self));
  task = client_task_new (self, cancellable, callback, user_data, smolvm_client_import_snapshot);
  if (task == NULL)
    return;
  fd_list = fd_list_of (fd, &error);
  if (fd_list == NULL) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  data = task_data (task);
  if (snapshot_id != NULL && snapshot_id[0] != '\0')
    g_variant_builder_add (&options, "{sv}", "snapshot-id", g_variant_new_string (snapshot_id));
  data->options = g_variant_ref_sink (g_variant_builder_end (&options));
  data->path_finish = import_snapshot_finish;
  data->list = &snapshot_list;
  smolvm_dbus_manager_call_import_snapshot (self->manager, g_variant_new_handle (0),
                                            data->options, call_flags (self), CALL_TIMEOUT,
                                            fd_list, cancellable, on_path_returned,
                                            g_steal_pointer (&task));
}

/**
 * smolvm_client_import_snapshot_finish:
 * @self: a #SmolvmClient
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the new snapshot, or %NULL
 */
SmolvmSnapshotInfo *
smolvm_client_import_snapshot_finish (SmolvmClient *self, GAsyncResult *result, GError **error)
{
  return client_propagate_pointer (self, result, smolvm_client_import_snapshot, error);
}

static void
on_snapshot_pushed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result,
                                                             &error);

  if (reply == NULL) {
    task_return_error (task, g_steal_pointer (&error));
    return;
  }
  g_task_return_boolean (task, TRUE);
}

/**
 * smolvm_client_push_snapshot_sync:
 * @self: a #SmolvmClient
 * @snapshot_id: the snapshot to push
 * @reference: where to: REGISTRY/REPOSITORY[:TAG] or
 *   REGISTRY/REPOSITORY@sha256:HEX, REGISTRY being HOST or HOST:PORT
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Uploads the snapshot to an OCI registry as an artifact of type
 * application/vnd.smolvm.snapshot.v1 (Snapshot.Push), sending only the
 * blobs the registry lacks. smolvmd uses the credentials its
 * administrator configured for the registry, never the caller's. Fails
 * with %SMOLVM_ERROR_REGISTRY_UNAVAILABLE, %SMOLVM_ERROR_REGISTRY_AUTH_FAILED
 * or %SMOLVM_ERROR_INVALID_ARGUMENT (a malformed reference).
 *
 * Returns: %TRUE once the manifest is in the registry
 */
gboolean
smolvm_client_push_snapshot_sync (SmolvmClient *self, const gchar *snapshot_id,
                                  const gchar *reference, GCancellable *cancellable,
                                  GError **error)
{
  g_auto(SyncCall) call = { 0 };

  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), FALSE);
  g_return_val_if_fail (snapshot_id != NULL, FALSE);
  g_return_val_if_fail (reference != NULL, FALSE);
  sync_call_begin (&call);
  smolvm_client_push_snapshot (self, snapshot_id, reference, cancellable, sync_call_ready, &call);
  return smolvm_client_push_snapshot_finish (self, sync_call_wait (&call), error);
}

/**
 * smolvm_client_push_snapshot:
 * @self: a #SmolvmClient
 * @snapshot_id: the snapshot to push
 * @reference: where to
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the result
 * @user_data: data for @callback
 *
 * The asynchronous version of smolvm_client_push_snapshot_sync().
 */
void
smolvm_client_push_snapshot (SmolvmClient *self, const gchar *snapshot_id,
                             const gchar *reference, GCancellable *cancellable,
                             GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autofree gchar *escaped = NULL;
  g_autofree gchar *path = NULL;

  g_return_if_fail (SMOLVM_IS_CLIENT (self));
  g_return_if_fail (snapshot_id != NULL);
  g_return_if_fail (reference != NULL);
  task = client_task_new (self, cancellable, callback, user_data, smolvm_client_push_snapshot);
  if (task == NULL)
    return;
  escaped = g_dbus_escape_object_path (snapshot_id);
  path = g_strconcat ("/org/smolvm/Manager/snapshot/", escaped, NULL);
  g_dbus_connection_call (self->connection, self->name_owner, path, "org.smolvm.Snapshot", "Push",
                          g_variant_new ("(s@a{sv})", reference, g_variant_new ("a{sv}", NULL)),
                          G_VARIANT_TYPE ("()"), call_flags (self), CALL_TIMEOUT, cancellable,
                          on_snapshot_pushed, g_steal_pointer (&task));
}

/**
 * smolvm_client_push_snapshot_finish:
 * @self: a #SmolvmClient
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE once the manifest is in the registry
 */
gboolean
smolvm_client_push_snapshot_finish (SmolvmClient *self, GAsyncResult *result, GError **error)
{
  return client_propagate_boolean (self, result, smolvm_client_push_snapshot, error);
}

/**
 * smolvm_client_pull_snapshot_sync:
 * @self: a #SmolvmClient
 * @reference: what to pull: REGISTRY/REPOSITORY[:TAG] or
 *   REGISTRY/REPOSITORY@sha256:HEX
 * @snapshot_id: (nullable): the id to store it under; %NULL or "" for the
 *   id it was pushed with
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Downloads a snapshot from an OCI registry (Manager.PullSnapshot),
 * verifying every blob, and publishes it. Fails with
 * %SMOLVM_ERROR_NOT_FOUND (no such repository or tag),
 * %SMOLVM_ERROR_NOT_A_SNAPSHOT, %SMOLVM_ERROR_CORRUPT,
 * %SMOLVM_ERROR_UNSUPPORTED (a backend this smolvmd lacks),
 * %SMOLVM_ERROR_ALREADY_EXISTS, %SMOLVM_ERROR_REGISTRY_UNAVAILABLE or
 * %SMOLVM_ERROR_REGISTRY_AUTH_FAILED.
 *
 * Returns: (transfer full): the new snapshot, or %NULL
 */
SmolvmSnapshotInfo *
smolvm_client_pull_snapshot_sync (SmolvmClient *self, const gchar *reference,
                                  const gchar *snapshot_id, GCancellable *cancellable,
                                  GError **error)
{
  g_auto(SyncCall) call = { 0 };

  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), NULL);
  g_return_val_if_fail (reference != NULL, NULL);
  sync_call_begin (&call);
  smolvm_client_pull_snapshot (self, reference, snapshot_id, cancellable, sync_call_ready, &call);
  return smolvm_client_pull_snapshot_finish (self, sync_call_wait (&call), error);
}

/**
 * smolvm_client_pull_snapshot:
 * @self: a #SmolvmClient
 * @reference: what to pull
 * @snapshot_id: (nullable): the id to store it under, or %NULL
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the result
 * @user_data: data for @callback
 *
 * The asynchronous version of smolvm_client_pull_snapshot_sync().
 */
void
smolvm_client_pull_snapshot (SmolvmClient *self, const gchar *reference,
                             const gchar *snapshot_id, GCancellable *cancellable,
                             GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = NULL;
  g_auto(GVariantBuilder) options = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE_VARDICT);
  CallData *data;

  g_return_if_fail (SMOLVM_IS_CLIENT (self));
  g_return_if_fail (reference != NULL);
  task = client_task_new (self, cancellable, callback, user_data, smolvm_client_pull_snapshot);
  if (task == NULL)
    return;
  data = task_data (task);
  if (snapshot_id != NULL && snapshot_id[0] != '\0')
    g_variant_builder_add (&options, "{sv}", "snapshot-id", g_variant_new_string (snapshot_id));
  data->options = g_variant_ref_sink (g_variant_builder_end (&options));
  data->path_finish = smolvm_dbus_manager_call_pull_snapshot_finish;
  data->list = &snapshot_list;
  smolvm_dbus_manager_call_pull_snapshot (self->manager, reference, data->options,
                                          call_flags (self), CALL_TIMEOUT, cancellable,
                                          on_path_returned, g_steal_pointer (&task));
}

/**
 * smolvm_client_pull_snapshot_finish:
 * @self: a #SmolvmClient
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the new snapshot, or %NULL
 */
SmolvmSnapshotInfo *
smolvm_client_pull_snapshot_finish (SmolvmClient *self, GAsyncResult *result, GError **error)
{
  return client_propagate_pointer (self, result, smolvm_client_pull_snapshot, error);
}

/* ---- VMs ---- */

/**
 * smolvm_client_create_vm_sync:
 * @self: a #SmolvmClient
 * @config: (nullable): a VMConfig dictionary (a{sv}) as CreateVM takes it,
 *   with the images as kernel-fd, initrd-fd and rootfs-fd handles (h, an
 *   index into @fd_list) or as kernel_path, initrd_path and rootfs_path; a
 *   floating reference is consumed. %NULL is an empty dictionary.
 * @fd_list: (nullable): the descriptors the handles of @config index
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Creates a VM (CreateVM), in state "created". smolvmd reads the images
 * with the caller's rights: descriptors are the caller's already, and a
 * path is opened with the caller's uid and groups.
 *
 * Returns: (transfer full): the new VM, or %NULL
 */
SmolvmVmInfo *
smolvm_client_create_vm_sync (SmolvmClient *self, GVariant *config, GUnixFDList *fd_list,
                              GCancellable *cancellable, GError **error)
{
  g_auto(SyncCall) call = { 0 };

  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), NULL);
  g_return_val_if_fail (fd_list == NULL || G_IS_UNIX_FD_LIST (fd_list), NULL);
  sync_call_begin (&call);
  smolvm_client_create_vm (self, config, fd_list, cancellable, sync_call_ready, &call);
  return smolvm_client_create_vm_finish (self, sync_call_wait (&call), error);
}

/**
 * smolvm_client_create_vm:
 * @self: a #SmolvmClient
 * @config: (nullable): a VMConfig dictionary (a{sv}), see
 *   smolvm_client_create_vm_sync(); a floating reference is consumed
 * @fd_list: (nullable): the descriptors the handles of @config index
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the result
 * @user_data: data for @callback
 *
 * The asynchronous version of smolvm_client_create_vm_sync().
 */
void
smolvm_client_create_vm (SmolvmClient *self, GVariant *config, GUnixFDList *fd_list,
                         GCancellable *cancellable, GAsyncReadyCallback callback,
                         gpointer user_data)
{
  g_autoptr(GVariant) owned_config = config != NULL ? g_variant_ref_sink (config) : NULL;
  g_autoptr(GTask) task = NULL;
  CallData *data;

  g_return_if_fail (SMOLVM_IS_CLIENT (self));
  g_return_if_fail (fd_list == NULL || G_IS_UNIX_FD_LIST (fd_list));
  task = client_task_new (self, cancellable, callback, user_data, smolvm_client_create_vm);
  if (task == NULL)
    return;
  data = task_data (task);
  if (owned_config != NULL && !g_variant_is_of_type (owned_config, G_VARIANT_TYPE_VARDICT)) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                             "The VM config must be a dictionary (a{sv}), not %s",
                             g_variant_get_type_string (owned_config));
    return;
  }
  data->options = owned_config != NULL ? g_steal_pointer (&owned_config) : options_empty ();
  data->path_finish = create_vm_finish;
  data->list = &vm_list;
  smolvm_dbus_manager_call_create_vm (self->manager, data->options, call_flags (self),
                                      CALL_TIMEOUT, fd_list, cancellable, on_path_returned,
                                      g_steal_pointer (&task));
}

/**
 * smolvm_client_create_vm_finish:
 * @self: a #SmolvmClient
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the new VM, or %NULL
 */
SmolvmVmInfo *
smolvm_client_create_vm_finish (SmolvmClient *self, GAsyncResult *result, GError **error)
{
  return client_propagate_pointer (self, result, smolvm_client_create_vm, error);
}

/**
 * smolvm_client_list_vms_sync:
 * @self: a #SmolvmClient
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * The VMs smolvmd has (ListVMs), ordered by id.
 *
 * Returns: (transfer container) (element-type SmolvmVmInfo): the VMs, or
 *   %NULL on error; free with g_ptr_array_unref()
 */
GPtrArray *
smolvm_client_list_vms_sync (SmolvmClient *self, GCancellable *cancellable, GError **error)
{
  g_auto(SyncCall) call = { 0 };

  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), NULL);
  sync_call_begin (&call);
  smolvm_client_list_vms (self, cancellable, sync_call_ready, &call);
  return smolvm_client_list_vms_finish (self, sync_call_wait (&call), error);
}

/**
 * smolvm_client_list_vms:
 * @self: a #SmolvmClient
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the result
 * @user_data: data for @callback
 *
 * The asynchronous version of smolvm_client_list_vms_sync().
 */
void
smolvm_client_list_vms (SmolvmClient *self, GCancellable *cancellable,
                        GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (SMOLVM_IS_CLIENT (self));
  task = client_task_new (self, cancellable, callback, user_data, smolvm_client_list_vms);
  if (task == NULL)
    return;
  task_list (g_steal_pointer (&task), &vm_list);
}

/**
 * smolvm_client_list_vms_finish:
 * @self: a #SmolvmClient
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer container) (element-type SmolvmVmInfo): the VMs, or
 *   %NULL on error; free with g_ptr_array_unref()
 */
GPtrArray *
smolvm_client_list_vms_finish (SmolvmClient *self, GAsyncResult *result, GError **error)
{
  return client_propagate_pointer (self, result, smolvm_client_list_vms, error);
}

/**
 * smolvm_client_get_vm_sync:
 * @self: a #SmolvmClient
 * @vm_id: a VM id
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * The VM @vm_id (GetVM, then its ListVMs entry).
 *
 * Returns: (transfer full): the VM, or %NULL with %SMOLVM_ERROR_NOT_FOUND
 *   if there is none
 */
SmolvmVmInfo *
smolvm_client_get_vm_sync (SmolvmClient *self, const gchar *vm_id, GCancellable *cancellable,
                           GError **error)
{
  g_auto(SyncCall) call = { 0 };

  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), NULL);
  g_return_val_if_fail (vm_id != NULL, NULL);
  sync_call_begin (&call);
  smolvm_client_get_vm (self, vm_id, cancellable, sync_call_ready, &call);
  return smolvm_client_get_vm_finish (self, sync_call_wait (&call), error);
}

/**
 * smolvm_client_get_vm:
 * @self: a #SmolvmClient
 * @vm_id: a VM id
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the result
 * @user_data: data for @callback
 *
 * The asynchronous version of smolvm_client_get_vm_sync().
 */
void
smolvm_client_get_vm (SmolvmClient *self, const gchar *vm_id, GCancellable *cancellable,
                      GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = NULL;
  CallData *data;

  g_return_if_fail (SMOLVM_IS_CLIENT (self));
  g_return_if_fail (vm_id != NULL);
  task = client_task_new (self, cancellable, callback, user_data, smolvm_client_get_vm);
  if (task == NULL)
    return;
  data = task_data (task);
  data->path_finish = smolvm_dbus_manager_call_get_vm_finish;
  data->list = &vm_list;
  smolvm_dbus_manager_call_get_vm (self->manager, vm_id, call_flags (self), CALL_TIMEOUT,
                                   cancellable, on_path_returned, g_steal_pointer (&task));
}

/**
 * smolvm_client_get_vm_finish:
 * @self: a #SmolvmClient
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the VM, or %NULL
 */
SmolvmVmInfo *
smolvm_client_get_vm_finish (SmolvmClient *self, GAsyncResult *result, GError **error)
{
  return client_propagate_pointer (self, result, smolvm_client_get_vm, error);
}

/**
 * smolvm_client_start_vm_sync:
 * @self: a #SmolvmClient
 * @vm_id: a VM, "created" or "stopped"
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Boots the VM (org.smolvm.VM.Start).
 *
 * Returns: %TRUE if it runs
 */
gboolean
smolvm_client_start_vm_sync (SmolvmClient *self, const gchar *vm_id, GCancellable *cancellable,
                             GError **error)
{
  g_auto(SyncCall) call = { 0 };

  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), FALSE);
  g_return_val_if_fail (vm_id != NULL, FALSE);
  sync_call_begin (&call);
  smolvm_client_start_vm (self, vm_id, cancellable, sync_call_ready, &call);
  return smolvm_client_start_vm_finish (self, sync_call_wait (&call), error);
}

/**
 * smolvm_client_start_vm:
 * @self: a #SmolvmClient
 * @vm_id: a VM, "created" or "stopped"
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the result
 * @user_data: data for @callback
 *
 * The asynchronous version of smolvm_client_start_vm_sync().
 */
void
smolvm_client_start_vm (SmolvmClient *self, const gchar *vm_id, GCancellable *cancellable,
                        GAsyncReadyCallback callback, gpointer user_data)
{
  g_return_if_fail (SMOLVM_IS_CLIENT (self));
  g_return_if_fail (vm_id != NULL);
  client_call_vm (self, vm_id, VM_START, NULL, cancellable, callback, user_data,
                  smolvm_client_start_vm);
}

/**
 * smolvm_client_start_vm_finish:
 * @self: a #SmolvmClient
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE if the VM runs
 */
gboolean
smolvm_client_start_vm_finish (SmolvmClient *self, GAsyncResult *result, GError **error)
{
  return client_propagate_boolean (self, result, smolvm_client_start_vm, error);
}

/**
 * smolvm_client_pause_vm_sync:
 * @self: a #SmolvmClient
 * @vm_id: a running VM
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Pauses the VM (org.smolvm.VM.Pause).
 *
 * Returns: %TRUE if it is paused
 */
gboolean
smolvm_client_pause_vm_sync (SmolvmClient *self, const gchar *vm_id, GCancellable *cancellable,
                             GError **error)
{
  g_auto(SyncCall) call = { 0 };

  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), FALSE);
  g_return_val_if_fail (vm_id != NULL, FALSE);
  sync_call_begin (&call);
  smolvm_client_pause_vm (self, vm_id, cancellable, sync_call_ready, &call);
  return smolvm_client_pause_vm_finish (self, sync_call_wait (&call), error);
}

/**
 * smolvm_client_pause_vm:
 * @self: a #SmolvmClient
 * @vm_id: a running VM
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the result
 * @user_data: data for @callback
 *
 * The asynchronous version of smolvm_client_pause_vm_sync().
 */
void
smolvm_client_pause_vm (SmolvmClient *self, const gchar *vm_id, GCancellable *cancellable,
                        GAsyncReadyCallback callback, gpointer user_data)
{
  g_return_if_fail (SMOLVM_IS_CLIENT (self));
  g_return_if_fail (vm_id != NULL);
  client_call_vm (self, vm_id, VM_PAUSE, NULL, cancellable, callback, user_data,
                  smolvm_client_pause_vm);
}

/**
 * smolvm_client_pause_vm_finish:
 * @self: a #SmolvmClient
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE if the VM is paused
 */
gboolean
smolvm_client_pause_vm_finish (SmolvmClient *self, GAsyncResult *result, GError **error)
{
  return client_propagate_boolean (self, result, smolvm_client_pause_vm, error);
}

/**
 * smolvm_client_resume_vm_sync:
 * @self: a #SmolvmClient
 * @vm_id: a paused VM
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Resumes the VM (org.smolvm.VM.Resume).
 *
 * Returns: %TRUE if it runs
 */
gboolean
smolvm_client_resume_vm_sync (SmolvmClient *self, const gchar *vm_id, GCancellable *cancellable,
                              GError **error)
{
  g_auto(SyncCall) call = { 0 };

  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), FALSE);
  g_return_val_if_fail (vm_id != NULL, FALSE);
  sync_call_begin (&call);
  smolvm_client_resume_vm (self, vm_id, cancellable, sync_call_ready, &call);
  return smolvm_client_resume_vm_finish (self, sync_call_wait (&call), error);
}

/**
 * smolvm_client_resume_vm:
 * @self: a #SmolvmClient
 * @vm_id: a paused VM
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the result
 * @user_data: data for @callback
 *
 * The asynchronous version of smolvm_client_resume_vm_sync().
 */
void
smolvm_client_resume_vm (SmolvmClient *self, const gchar *vm_id, GCancellable *cancellable,
                         GAsyncReadyCallback callback, gpointer user_data)
{
  g_return_if_fail (SMOLVM_IS_CLIENT (self));
  g_return_if_fail (vm_id != NULL);
  client_call_vm (self, vm_id, VM_RESUME, NULL, cancellable, callback, user_data,
                  smolvm_client_resume_vm);
}

/**
 * smolvm_client_resume_vm_finish:
 * @self: a #SmolvmClient
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE if the VM runs
 */
gboolean
smolvm_client_resume_vm_finish (SmolvmClient *self, GAsyncResult *result, GError **error)
{
  return client_propagate_boolean (self, result, smolvm_client_resume_vm, error);
}

/**
 * smolvm_client_stop_vm_sync:
 * @self: a #SmolvmClient
 * @vm_id: a running, paused or failed VM
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Ends the VM's VMM process (org.smolvm.VM.Stop). The disk is kept; the VM
 * can be started again, a fresh boot.
 *
 * Returns: %TRUE if it is stopped
 */
gboolean
smolvm_client_stop_vm_sync (SmolvmClient *self, const gchar *vm_id, GCancellable *cancellable,
                            GError **error)
{
  g_auto(SyncCall) call = { 0 };

  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), FALSE);
  g_return_val_if_fail (vm_id != NULL, FALSE);
  sync_call_begin (&call);
  smolvm_client_stop_vm (self, vm_id, cancellable, sync_call_ready, &call);
  return smolvm_client_stop_vm_finish (self, sync_call_wait (&call), error);
}

/**
 * smolvm_client_stop_vm:
 * @self: a #SmolvmClient
 * @vm_id: a running, paused or failed VM
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the result
 * @user_data: data for @callback
 *
 * The asynchronous version of smolvm_client_stop_vm_sync().
 */
void
smolvm_client_stop_vm (SmolvmClient *self, const gchar *vm_id, GCancellable *cancellable,
                       GAsyncReadyCallback callback, gpointer user_data)
{
  g_return_if_fail (SMOLVM_IS_CLIENT (self));
  g_return_if_fail (vm_id != NULL);
  client_call_vm (self, vm_id, VM_STOP, NULL, cancellable, callback, user_data,
                  smolvm_client_stop_vm);
}

/**
 * smolvm_client_stop_vm_finish:
 * @self: a #SmolvmClient
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE if the VM is stopped
 */
gboolean
smolvm_client_stop_vm_finish (SmolvmClient *self, GAsyncResult *result, GError **error)
{
  return client_propagate_boolean (self, result, smolvm_client_stop_vm, error);
}

/**
 * smolvm_client_delete_vm_sync:
 * @self: a #SmolvmClient
 * @vm_id: the VM to delete
 * @flags: options
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Removes the VM and its disk (org.smolvm.VM.Delete). Its snapshots are
 * kept; restoring one recreates the VM.
 *
 * Returns: %TRUE if the VM is gone
 */
gboolean
smolvm_client_delete_vm_sync (SmolvmClient *self, const gchar *vm_id, SmolvmVmDeleteFlags flags,
                              GCancellable *cancellable, GError **error)
{
  g_auto(SyncCall) call = { 0 };

  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), FALSE);
  g_return_val_if_fail (vm_id != NULL, FALSE);
  sync_call_begin (&call);
  smolvm_client_delete_vm (self, vm_id, flags, cancellable, sync_call_ready, &call);
  return smolvm_client_delete_vm_finish (self, sync_call_wait (&call), error);
}

/**
 * smolvm_client_delete_vm:
 * @self: a #SmolvmClient
 * @vm_id: the VM to delete
 * @flags: options
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the result
 * @user_data: data for @callback
 *
 * The asynchronous version of smolvm_client_delete_vm_sync().
 */
void
smolvm_client_delete_vm (SmolvmClient *self, const gchar *vm_id, SmolvmVmDeleteFlags flags,
                         GCancellable *cancellable, GAsyncReadyCallback callback,
                         gpointer user_data)
{
  g_autoptr(GVariant) options = NULL;
  g_autoptr(GError) error = NULL;

  g_return_if_fail (SMOLVM_IS_CLIENT (self));
  g_return_if_fail (vm_id != NULL);
  options = options_from_flags (flags, vm_delete_options, G_N_ELEMENTS (vm_delete_options),
                                &error);
  if (options == NULL) {
    g_task_report_error (self, callback, user_data, smolvm_client_delete_vm,
                         g_steal_pointer (&error));
    return;
  }
  client_call_vm (self, vm_id, VM_DELETE, g_steal_pointer (&options), cancellable, callback,
                  user_data, smolvm_client_delete_vm);
}

/**
 * smolvm_client_delete_vm_finish:
 * @self: a #SmolvmClient
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE if the VM is gone
 */
gboolean
smolvm_client_delete_vm_finish (SmolvmClient *self, GAsyncResult *result, GError **error)
{
  return client_propagate_boolean (self, result, smolvm_client_delete_vm, error);
}

/**
 * smolvm_client_open_console_log_sync:
 * @self: a #SmolvmClient
 * @vm_id: a VM
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Opens what the guest wrote on its serial console (OpenConsoleLog):
 * smolvmd opens the file, which is private to it, and hands over the
 * descriptor. Fails with %SMOLVM_ERROR_NOT_FOUND while the VM has written
 * nothing yet.
 *
 * Returns: a descriptor open for reading, which the caller closes; -1 on
 *   error
 */
gint
smolvm_client_open_console_log_sync (SmolvmClient *self, const gchar *vm_id,
                                     GCancellable *cancellable, GError **error)
{
  g_auto(SyncCall) call = { 0 };

  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), -1);
  g_return_val_if_fail (vm_id != NULL, -1);
  sync_call_begin (&call);
  smolvm_client_open_console_log (self, vm_id, cancellable, sync_call_ready, &call);
  return smolvm_client_open_console_log_finish (self, sync_call_wait (&call), error);
}

/**
 * smolvm_client_open_console_log:
 * @self: a #SmolvmClient
 * @vm_id: a VM
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the result
 * @user_data: data for @callback
 *
 * The asynchronous version of smolvm_client_open_console_log_sync().
 */
void
smolvm_client_open_console_log (SmolvmClient *self, const gchar *vm_id,
                                GCancellable *cancellable, GAsyncReadyCallback callback,
                                gpointer user_data)
{
  g_return_if_fail (SMOLVM_IS_CLIENT (self));
  g_return_if_fail (vm_id != NULL);
  client_call_vm (self, vm_id, VM_OPEN_CONSOLE_LOG, NULL, cancellable, callback, user_data,
                  smolvm_client_open_console_log);
}

/**
 * smolvm_client_open_console_log_finish:
 * @self: a #SmolvmClient
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Returns: a descriptor open for reading, which the caller closes; -1 on
 *   error
 */
gint
smolvm_client_open_console_log_finish (SmolvmClient *self, GAsyncResult *result,
                                       GError **error)
{
  g_autoptr(GUnixFDList) fds = NULL;
  g_autofree gint *stolen = NULL;

  fds = client_propagate_pointer (self, result, smolvm_client_open_console_log, error);
  if (fds == NULL)
    return -1;
  stolen = g_unix_fd_list_steal_fds (fds, NULL);
  return stolen[0];
}

/* ---- jobs ---- */

static void
on_job_cancelled (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_dbus_job_call_cancel_finish (SMOLVM_DBUS_JOB (source), result, &error)) {
    task_return_error (task, g_steal_pointer (&error));
    return;
  }
  g_task_return_boolean (task, TRUE);
}

static void
on_job_proxy (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  SmolvmClient *self = g_task_get_source_object (task);
  GCancellable *cancellable = g_task_get_cancellable (task);
  g_autoptr(SmolvmDbusJob) job = NULL;
  g_autoptr(GVariant) options = options_empty ();
  g_autoptr(GError) error = NULL;

  job = smolvm_dbus_job_proxy_new_finish (result, &error);
  if (job == NULL) {
    task_return_error (task, g_steal_pointer (&error));
    return;
  }
  smolvm_dbus_job_call_cancel (job, options, call_flags (self), CALL_TIMEOUT, cancellable,
                               on_job_cancelled, g_steal_pointer (&task));
}

/**
 * smolvm_client_cancel_job_sync:
 * @self: a #SmolvmClient
 * @job_path: the object path of a job, /org/smolvm/Manager/job/N
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Asks a job to stop (org.smolvm.Job.Cancel). It rolls back as a failure
 * does, and the call that started it fails with %SMOLVM_ERROR_CANCELLED.
 * This returns at once; the rollback goes on. A job that can no longer be
 * cancelled gives %SMOLVM_ERROR_INVALID_STATE, and one that is over
 * %SMOLVM_ERROR_NOT_FOUND.
 *
 * Returns: %TRUE if the job was asked to stop
 */
gboolean
smolvm_client_cancel_job_sync (SmolvmClient *self, const gchar *job_path,
                               GCancellable *cancellable, GError **error)
{
  g_auto(SyncCall) call = { 0 };

  g_return_val_if_fail (SMOLVM_IS_CLIENT (self), FALSE);
  g_return_val_if_fail (job_path != NULL, FALSE);
  sync_call_begin (&call);
  smolvm_client_cancel_job (self, job_path, cancellable, sync_call_ready, &call);
  return smolvm_client_cancel_job_finish (self, sync_call_wait (&call), error);
}

/**
 * smolvm_client_cancel_job:
 * @self: a #SmolvmClient
 * @job_path: the object path of a job, /org/smolvm/Manager/job/N
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the result
 * @user_data: data for @callback
 *
 * The asynchronous version of smolvm_client_cancel_job_sync().
 */
void
smolvm_client_cancel_job (SmolvmClient *self, const gchar *job_path, GCancellable *cancellable,
                          GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (SMOLVM_IS_CLIENT (self));
  g_return_if_fail (job_path != NULL);
  task = client_task_new (self, cancellable, callback, user_data, smolvm_client_cancel_job);
  if (task == NULL)
    return;
  if (!g_variant_is_object_path (job_path)) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                             "'%s' is not an object path", job_path);
    return;
  }
  smolvm_dbus_job_proxy_new (self->connection, PROXY_FLAGS, self->name_owner, job_path,
                             cancellable, on_job_proxy, g_steal_pointer (&task));
}

/**
 * smolvm_client_cancel_job_finish:
 * @self: a #SmolvmClient
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE if the job was asked to stop
 */
gboolean
smolvm_client_cancel_job_finish (SmolvmClient *self, GAsyncResult *result, GError **error)
{
  return client_propagate_boolean (self, result, smolvm_client_cancel_job, error);
}
