/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>
#include <unistd.h>

#include "smolvm-authority.h"
#include "smolvm-call.h"
#include "smolvm-error-map.h"
#include "smolvm-error.h"
#include "smolvm-fileutil.h"
#include "smolvm-id.h"
#include "smolvm-network.h"
#include "smolvm-ops.h"
#include "smolvm-record-writer.h"
#include "smolvm-registry.h"
#include "smolvm-store.h"

/* CloneSnapshot: check the snapshot's files and vmstate.bin's checksum
 * once, reserve every new id, then make the clones together: each gets a
 * directory with the snapshot's kernel and initrd (hard links), a copy of
 * its disk (in a worker thread; at most CLONE_COPIES_MAX copies at once,
 * the others wait their turn), and, as soon as its disk is there, a fresh
 * VMM that loads its state mapping mem.bin privately (every clone's VMM
 * and, for networked ones, its namespace set-up are in flight at once);
 * then the VM is recorded and published. A clone that fails is undone
 * alone (its directory, namespace and id); the clones made stay, and the
 * call fails naming them and each failure.
 *
 * A Cancel stops every clone still copying or loading, and each of them is
 * undone as a failure is; clones not yet begun are not begun. A clone whose
 * VMM had loaded the snapshot before the Cancel is a VM already, and stays:
 * the reply names it with the clones kept. */

#define CLONE_COUNT_MAX 64
/* Disk copies in flight at once: they share one disk and the daemon's
 * GTask threads; more would only contend (a reflink is instant anyway). */
#define CLONE_COPIES_MAX 4

typedef struct _SnapshotClone SnapshotClone;

typedef struct {
  SnapshotClone *op;
  gchar *vm_id;
  SmolvmVm *vm;
  gchar *dir;
  GVariant *net;  /* its NetworkConfig, claimed from the pool; or NULL */
  gchar *failure; /* why it failed, or NULL */
} Clone;

struct _SnapshotClone {
  SmolvmCall call;
  gchar *snapshot_id;
  SmolvmSnapshot *snapshot;
  gboolean holds_snapshot;
  gboolean resume;
  gboolean has_network_option;
  gboolean network; /* the option, then what the clones get */
  guint count;
  gchar **requested_ids;
  GPtrArray *clones; /* of Clone, in the order of their ids */
  guint next;        /* the first clone not begun */
  guint copying;     /* clones copying their disk */
  guint ended;       /* clones made, or failed and undone */
  gboolean pumping;  /* in pump(): clones ending meanwhile only count */
  guint64 sizes[SMOLVM_SNAPSHOT_N_FILES];
  gboolean cancelled;
};

static void
clone_free (Clone *clone)
{
  g_free (clone->vm_id);
  g_clear_object (&clone->vm);
  g_free (clone->dir);
  g_clear_pointer (&clone->net, g_variant_unref);
  g_free (clone->failure);
  g_free (clone);
}

static void
snapshot_clone_clear (SnapshotClone *op)
{
  SmolvmContext *ctx = op->call.ctx;

  for (guint i = 0; op->clones != NULL && i < op->clones->len; i++) {
    Clone *clone = g_ptr_array_index (op->clones, i);
    smolvm_registry_release_vm_id (ctx->registry, clone->vm_id);
  }
  if (op->holds_snapshot)
    smolvm_registry_release_snapshot (ctx->registry, op->snapshot_id);
  g_free (op->snapshot_id);
  g_clear_object (&op->snapshot);
  g_strfreev (op->requested_ids);
  g_clear_pointer (&op->clones, g_ptr_array_unref);
}

static SmolvmDbusSnapshot *
snapshot_iface (SnapshotClone *op)
{
  return SMOLVM_DBUS_SNAPSHOT (op->snapshot);
}

/* ---- the end ---- */

static void
finish (SnapshotClone *op)
{
  g_autoptr(GString) made = g_string_new (NULL);
  g_autoptr(GString) failed = g_string_new (NULL);
  g_auto(GVariantBuilder) paths = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE ("ao"));
  g_autofree gchar *message = NULL;
  guint n_made = 0;

  for (guint i = 0; i < op->clones->len; i++) {
    Clone *clone = g_ptr_array_index (op->clones, i);
    if (clone->failure != NULL) {
      g_string_append_printf (failed, "; VM '%s': %s", clone->vm_id, clone->failure);
      continue;
    }
    g_variant_builder_add (&paths, "o", smolvm_vm_get_object_path (clone->vm));
    g_string_append_printf (made, "%s'%s'", n_made > 0 ? ", " : "", clone->vm_id);
    n_made++;
  }
  if (failed->len == 0) {
    smolvm_call_return (&op->call, g_variant_new ("(ao)", &paths));
    return;
  }
  message = g_strdup_printf ("Cloned snapshot '%s' into %u of %u VMs%s%s%s%s", op->snapshot_id,
                             n_made, op->clones->len, n_made > 0 ? " (" : "",
                             n_made > 0 ? made->str : "", n_made > 0 ? ", kept)" : "",
                             failed->str);
  /* a Cancel's answer names the clones kept too */
  g_free (op->call.cancelled_summary);
  op->call.cancelled_summary = g_strdup (message);
  smolvm_call_fail_literal (&op->call, op->cancelled ? SMOLVM_ERROR_CANCELLED : SMOLVM_ERROR_FAILED,
                            "%s", message);
}

/* What the Job shows while clones run together: the bytes of all their
 * disk copies (measurable) while one copies or waits to, then their loads
 * (not measurable: each VMM loads on its own). A Cancel's phase stays. */
static void
update_phase (SnapshotClone *op)
{
  SmolvmProgress *progress = smolvm_call_get_progress (&op->call);
  gboolean copying = op->copying > 0 || op->next < op->clones->len;
  const gchar *phase = copying ? "copying-disk" : "loading-state";

  if (g_cancellable_is_cancelled (smolvm_call_get_cancellable (&op->call)) ||
      g_str_equal (smolvm_progress_get_phase (progress), phase))
    return;
  smolvm_progress_set_phase (progress, phase, copying);
}

static void clone_begin (SnapshotClone *op, Clone *clone);

/* Begins the clones waiting while there is room for their disk copies,
 * and ends the call once every clone has ended. Clones that end while it
 * runs (a failure found at once) only count: it looks again. */
static void
pump (SnapshotClone *op)
{
  if (op->pumping)
    return;
  op->pumping = TRUE;
  while (op->next < op->clones->len && op->copying < CLONE_COPIES_MAX)
    clone_begin (op, g_ptr_array_index (op->clones, op->next++));
  op->pumping = FALSE;
  if (op->ended == op->clones->len) {
    finish (op);
    return;
  }
  update_phase (op);
}

static void
clone_ended (Clone *clone)
{
  SnapshotClone *op = clone->op;

  op->ended++;
  pump (op);
}

static void
on_failed_clone_removed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Clone *clone = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_store_discard_finish (SMOLVM_STORE (source), result, &error))
    g_warning ("%s", error->message);
  clone_ended (clone);
}

/* @clone failed: its directory goes (its id is released at the end); the
 * other clones go on. */
static void
clone_failed (Clone *clone, GError *error)
{
  SnapshotClone *op = clone->op;
  g_autoptr(GError) owned = error;

  if (g_error_matches (owned, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED))
    op->cancelled = TRUE;
  clone->failure = g_strdup (owned->message);
  g_clear_object (&clone->vm);
  /* its namespace went with its failed launch */
  if (clone->net != NULL)
    smolvm_network_release (op->call.ctx->network, clone->vm_id, clone->net);
  if (clone->dir == NULL) {
    clone_ended (clone);
    return;
  }
  smolvm_call_discard_record_dir (&op->call, clone->dir, on_failed_clone_removed, clone);
}

/* ---- one clone ---- */

static void
on_clone_saved (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Clone *clone = user_data;
  g_autoptr(GError) error = NULL;

  if (!smolvm_vm_save_finish (SMOLVM_VM (source), result, &error)) {
    /* never a VM without its record: it goes */
    smolvm_vm_stop_async (clone->vm, NULL, NULL);
    clone_failed (clone, g_steal_pointer (&error));
    return;
  }
  smolvm_registry_add_vm (clone->op->call.ctx->registry, clone->vm);
  clone_ended (clone);
}

static void
on_clone_loaded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Clone *clone = user_data;
  g_autoptr(GError) error = NULL;

  smolvm_vm_end_op (clone->vm);
  if (!smolvm_vm_op_finish (SMOLVM_VM (source), result, &error)) {
    clone_failed (clone, g_steal_pointer (&error));
    return;
  }
  /* a clone has no record before: it counts once this one is on disk */
  smolvm_vm_set_cloned_from (clone->vm, clone->op->snapshot_id);
  smolvm_vm_save_async (clone->vm, on_clone_saved, clone);
}

static void
on_clone_disk_copied (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Clone *clone = user_data;
  SnapshotClone *op = clone->op;
  SmolvmDbusSnapshot *iface = snapshot_iface (op);
  g_autoptr(GError) error = NULL;

  /* its turn to copy is over: the next clone may begin (before this one
   * can end, so that this call is not over yet) */
  op->copying--;
  pump (op);
  if (!smolvm_copy_file_sparse_finish (result, &error) ||
      !smolvm_call_check_cancelled (&op->call, &error)) {
    clone_failed (clone, g_steal_pointer (&error));
    return;
  }
  /* the VM's own: nothing else knows it yet; held so that an exit of its
   * VMM during the load is the load's to handle */
  if (!smolvm_vm_begin_op (clone->vm, "clone", &error)) {
    clone_failed (clone, g_steal_pointer (&error));
    return;
  }
  /* no progress for the load: the Job's phase is that of all clones
   * (update_phase), not of the VMM that happens to start last */
  smolvm_vm_load_snapshot_async (clone->vm, smolvm_dbus_snapshot_get_snapshot_path (iface),
                                 smolvm_dbus_snapshot_get_mem_file_path (iface), op->resume, NULL,
                                 smolvm_call_get_cancellable (&op->call), on_clone_loaded, clone);
}

static void
clone_begin (SnapshotClone *op, Clone *clone)
{
  SmolvmContext *ctx = op->call.ctx;
  g_autoptr(SmolvmVmConfig) config = NULL;
  g_autofree gchar *disk = NULL;
  g_autoptr(GError) error = NULL;

  if (op->cancelled || !smolvm_call_check_cancelled (&op->call, &error)) {
    if (error == NULL)
      error = g_error_new_literal (SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED, "cancelled");
    clone_failed (clone, g_steal_pointer (&error));
    return;
  }
  clone->dir = smolvm_store_vm_dir (ctx->store, clone->vm_id);
  if (!smolvm_store_make_record_dir (ctx->store, clone->dir, &error)) {
    g_clear_pointer (&clone->dir, g_free);
    clone_failed (clone, g_steal_pointer (&error));
    return;
  }
  if (!smolvm_store_link_images (smolvm_snapshot_get_dir (op->snapshot), clone->dir, &error)) {
    clone_failed (clone, g_steal_pointer (&error));
    return;
  }
  if (op->network)
    clone->net = smolvm_network_allocate_clone (
      ctx->network, clone->vm_id, smolvm_snapshot_get_network_config (op->snapshot), &error);
  else
    clone->net = g_variant_ref_sink (g_variant_new ("a{sv}", NULL));
  if (clone->net == NULL) {
    clone_failed (clone, g_steal_pointer (&error));
    return;
  }
  config = smolvm_vm_config_copy (smolvm_snapshot_get_vm_config (op->snapshot));
  g_free (config->vm_id);
  config->vm_id = g_strdup (clone->vm_id);
  clone->vm = smolvm_vm_new (ctx, config, clone->net);
  op->copying++;
  disk = smolvm_store_vm_file (ctx->store, clone->vm_id, SMOLVM_VM_DISK);
  smolvm_copy_file_sparse_async (smolvm_dbus_snapshot_get_disk_path (snapshot_iface (op)), disk,
                                 smolvm_call_get_progress (&op->call),
                                 smolvm_call_get_cancellable (&op->call), on_clone_disk_copied,
                                 clone);
}

/* ---- before the first clone ---- */

static void
on_vmstate_hashed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SnapshotClone *op = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree gchar *sha256 = smolvm_file_sha256_finish (result, &error);

  if (sha256 == NULL) {
    g_prefix_error (&error, "Cannot clone snapshot '%s': ", op->snapshot_id);
    smolvm_call_fail (&op->call, g_steal_pointer (&error));
    return;
  }
  if (g_strcmp0 (sha256, smolvm_snapshot_get_vmstate_sha256 (op->snapshot)) != 0) {
    smolvm_call_fail_literal (&op->call, SMOLVM_ERROR_FAILED,
                              "Cannot clone snapshot '%s': its vmstate.bin is damaged "
                              "(checksum mismatch)",
                              op->snapshot_id);
    return;
  }
  pump (op);
}

/* The ids of the clones: as asked, or <vm_id>-<n> for the first free n,
 * the VM id shortened so that the id stays valid. */
static gchar *
next_generated_id (SnapshotClone *op, guint *n)
{
  SmolvmRegistry *registry = op->call.ctx->registry;
  const gchar *base = smolvm_snapshot_get_vm_id (op->snapshot);

  for (;; (*n)++) {
    g_autofree gchar *suffix = g_strdup_printf ("-%u", *n);
    gsize keep = MIN (strlen (base), SMOLVM_ID_MAX_LEN - strlen (suffix));
    g_autofree gchar *stem = g_strndup (base, keep);
    g_autofree gchar *id = NULL;

    while (keep > 0 && stem[keep - 1] == '-')
      stem[--keep] = '\0';
    id = g_strconcat (stem, suffix, NULL);
    if (smolvm_id_is_valid (id) && !smolvm_registry_vm_id_taken (id, registry)) {
      (*n)++;
      return g_steal_pointer (&id);
    }
  }
}

static gboolean
reserve_ids (SnapshotClone *op, GError **error)
{
  SmolvmRegistry *registry = op->call.ctx->registry;
  guint n = 1;

  for (guint i = 0; i < op->count; i++) {
    g_autofree gchar *id = op->requested_ids != NULL ? g_strdup (op->requested_ids[i])
                                                     : next_generated_id (op, &n);
    Clone *clone;

    if (!smolvm_registry_reserve_vm_id (registry, id, error)) {
      /* an id being created is as taken as one that exists */
      if (g_error_matches (*error, SMOLVM_ERROR, SMOLVM_ERROR_IN_USE))
        (*error)->code = SMOLVM_ERROR_ALREADY_EXISTS;
      return FALSE;
    }
    clone = g_new0 (Clone, 1);
    clone->op = op;
    clone->vm_id = g_steal_pointer (&id);
    g_ptr_array_add (op->clones, clone);
  }
  return TRUE;
}

/* Whether the clones get networking: as the snapshot's VM had unless the
 * call says. The guest's memory has its NIC or none, so the answer must
 * match; and only a root system daemon makes namespaces. */
static gboolean
check_network (SnapshotClone *op, GError **error)
{
  SmolvmContext *ctx = op->call.ctx;
  gboolean has_nic = g_variant_n_children (smolvm_snapshot_get_network_config (op->snapshot)) > 0;

  if (!op->has_network_option)
    op->network = has_nic;
  if (op->network && !has_nic) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                 "Cannot clone snapshot '%s' with networking: its VM has no network interface",
                 op->snapshot_id);
    return FALSE;
  }
  if (!op->network && has_nic) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_UNSUPPORTED,
                 "Cannot clone snapshot '%s' without networking: its guest has a network "
                 "interface",
                 op->snapshot_id);
    return FALSE;
  }
  if (op->network && (ctx->session || geteuid () != 0)) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_UNSUPPORTED,
                 "Cannot clone snapshot '%s' with networking: %s", op->snapshot_id,
                 ctx->session ? "a --session smolvmd makes clones without network"
                              : "only a smolvmd running as root makes their network namespaces");
    return FALSE;
  }
  return TRUE;
}

static void
snapshot_clone_run (SmolvmCall *call)
{
  SnapshotClone *op = (SnapshotClone *) call;
  SmolvmContext *ctx = call->ctx;
  g_autoptr(GPtrArray) objects = g_ptr_array_new_with_free_func (g_free);
  SmolvmProgress *progress;
  g_autoptr(GError) error = NULL;

  op->snapshot = smolvm_registry_get_snapshot (ctx->registry, op->snapshot_id, &error);
  if (op->snapshot == NULL) {
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  g_object_ref (op->snapshot);
  if (!check_network (op, &error)) {
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  if (!smolvm_snapshot_check_files (op->snapshot, op->sizes, &error) ||
      !smolvm_check_free_space (smolvm_store_get_vms_dir (ctx->store),
                                op->sizes[SMOLVM_SNAPSHOT_FILE_DISK] * op->count,
                                "The copies of the snapshot's disk", &error)) {
    g_prefix_error (&error, "Cannot clone snapshot '%s': ", op->snapshot_id);
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  if (!smolvm_registry_hold_snapshot (ctx->registry, op->snapshot_id, "clone", &error)) {
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }
  op->holds_snapshot = TRUE;
  if (!reserve_ids (op, &error)) {
    smolvm_call_fail (call, g_steal_pointer (&error));
    return;
  }

  g_ptr_array_add (objects, g_strdup (smolvm_snapshot_get_object_path (op->snapshot)));
  for (guint i = 0; i < op->clones->len; i++) {
    Clone *clone = g_ptr_array_index (op->clones, i);
    g_ptr_array_add (objects, smolvm_id_object_path ("vm", clone->vm_id));
  }
  g_ptr_array_add (objects, NULL);
  smolvm_call_start_job_on (call, SMOLVM_JOB_SNAPSHOT_CLONE, SMOLVM_ACTION_SNAPSHOT_CLONE, TRUE,
                            (const gchar *const *) objects->pdata);
  call->cancelled_summary = g_strdup_printf ("the clones of snapshot '%s' not yet made were not "
                                             "made",
                                             op->snapshot_id);
  progress = smolvm_call_get_progress (call);
  smolvm_progress_expect (progress, op->sizes[SMOLVM_SNAPSHOT_FILE_DISK] * op->count);
  if (smolvm_snapshot_get_vmstate_sha256 (op->snapshot) == NULL) {
    pump (op);
    return;
  }
  smolvm_progress_expect (progress, op->sizes[SMOLVM_SNAPSHOT_FILE_VMSTATE]);
  smolvm_progress_set_phase (progress, "checksumming", TRUE);
  smolvm_file_sha256_async (smolvm_dbus_snapshot_get_snapshot_path (snapshot_iface (op)), progress,
                            smolvm_call_get_cancellable (call), on_vmstate_hashed, op);
}

static const SmolvmCallOption clone_options[] = {
  { "count", "u" }, { "vm-ids", "as" }, { "resume", "b" }, { "network", "b" }, { NULL, NULL }
};

/* The options as the call gives them: count and vm-ids agree, ids are
 * valid and distinct. */
static gboolean
parse_options (SnapshotClone *op, GVariant *options, GError **error)
{
  guint32 count = 0;
  gboolean has_count = g_variant_lookup (options, "count", "u", &count);

  if (!smolvm_call_check_typed_options (options, clone_options, error))
    return FALSE;
  op->resume = smolvm_call_option_bool (options, "resume");
  g_variant_lookup (options, "vm-ids", "^as", &op->requested_ids);
  if (op->requested_ids != NULL) {
    guint n = g_strv_length (op->requested_ids);
    for (guint i = 0; i < n; i++) {
      if (!smolvm_id_validate (op->requested_ids[i], "VM id", error))
        return FALSE;
      for (guint j = 0; j < i; j++) {
        if (g_str_equal (op->requested_ids[i], op->requested_ids[j])) {
          g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                       "VM id '%s' is asked for twice", op->requested_ids[i]);
          return FALSE;
        }
      }
    }
    if (has_count && count != n) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                   "count is %u, but vm-ids names %u VMs", count, n);
      return FALSE;
    }
    count = n;
  } else if (!has_count) {
    count = 1;
  }
  if (count < 1 || count > CLONE_COUNT_MAX) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                 "count must be between 1 and %d, not %u", CLONE_COUNT_MAX, count);
    return FALSE;
  }
  op->count = count;
  /* a --session daemon says so at once, snapshot or not */
  op->has_network_option = g_variant_lookup (options, "network", "b", &op->network);
  if (op->network && op->call.ctx->session) {
    g_set_error_literal (error, SMOLVM_ERROR, SMOLVM_ERROR_UNSUPPORTED,
                         "A --session smolvmd makes clones without network");
    return FALSE;
  }
  return TRUE;
}

void
smolvm_op_snapshot_clone (SmolvmContext *ctx, GDBusMethodInvocation *invocation,
                          const gchar *snapshot_id, GVariant *options)
{
  SnapshotClone *op = smolvm_call_new0 (SnapshotClone, ctx, invocation, snapshot_clone_clear);
  g_autoptr(GError) error = NULL;
  SmolvmSnapshot *snapshot;

  op->snapshot_id = g_strdup (snapshot_id);
  op->clones = g_ptr_array_new_with_free_func ((GDestroyNotify) clone_free);
  if (!smolvm_id_validate (snapshot_id, "snapshot id", &error) ||
      !parse_options (op, options, &error)) {
    smolvm_call_fail (&op->call, g_steal_pointer (&error));
    return;
  }
  /* polkit rules may want the VM of a snapshot-wide action */
  snapshot = smolvm_registry_lookup_snapshot (ctx->registry, snapshot_id);
  smolvm_call_authorize (&op->call, SMOLVM_ACTION_SNAPSHOT_CLONE,
                         snapshot != NULL ? smolvm_snapshot_get_vm_id (snapshot) : NULL,
                         op->snapshot_id, "clone", snapshot_clone_run);
}
