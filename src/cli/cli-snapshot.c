/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* smolvm snapshot create|restore|clone|delete|list|export|import|push|pull */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <unistd.h>

#include "smolvm-id.h"
#include "smolvm-info.h"
#include "smolvm-oci-ref.h"

#include "cli-job-watch.h"
#include "cli-output.h"
#include "cli-verbs.h"

typedef struct {
  gchar *snapshot_id;     /* create, import, pull */
  gboolean resume_source; /* create */
  gboolean resume;        /* restore, clone */
  gboolean force;         /* restore */
  gboolean no_progress;   /* create, restore, clone, export, import, push, pull */
  gchar *vm_id;           /* list */
  gchar *count;           /* clone */
  gchar **vm_ids;         /* clone */
} CliSnapshotOptions;

gpointer
cli_snapshot_options_new (void)
{
  return g_new0 (CliSnapshotOptions, 1);
}

void
cli_snapshot_options_free (gpointer options)
{
  CliSnapshotOptions *opts = options;

  g_free (opts->snapshot_id);
  g_free (opts->vm_id);
  g_free (opts->count);
  g_strfreev (opts->vm_ids);
  g_free (opts);
}

void
cli_snapshot_create_options (gpointer options, GOptionContext *context)
{
  CliSnapshotOptions *opts = options;
  const GOptionEntry entries[] = {
    { "snapshot-id", 0, 0, G_OPTION_ARG_STRING, &opts->snapshot_id,
      "Id of the new snapshot (lowercase letters, digits and hyphens); generated if omitted "
      "or empty",
      "ID" },
    { "resume-source", 0, 0, G_OPTION_ARG_NONE, &opts->resume_source,
      "Resume the source VM afterwards; without it the VM stays paused", NULL },
    CLI_NO_PROGRESS_ENTRY (&opts->no_progress),
    G_OPTION_ENTRY_NULL
  };
  g_option_context_add_main_entries (context, entries, NULL);
}

void
cli_snapshot_restore_options (gpointer options, GOptionContext *context)
{
  CliSnapshotOptions *opts = options;
  const GOptionEntry entries[] = {
    { "resume", 0, 0, G_OPTION_ARG_NONE, &opts->resume,
      "Resume the restored VM; without it the VM is restored paused", NULL },
    { "force", 0, 0, G_OPTION_ARG_NONE, &opts->force,
      "Restore a snapshot that was already restored before", NULL },
    CLI_NO_PROGRESS_ENTRY (&opts->no_progress),
    G_OPTION_ENTRY_NULL
  };
  g_option_context_add_main_entries (context, entries, NULL);
}

void
cli_snapshot_clone_options (gpointer options, GOptionContext *context)
{
  CliSnapshotOptions *opts = options;
  const GOptionEntry entries[] = {
    { "count", 0, 0, G_OPTION_ARG_STRING, &opts->count,
      "Number of clones, 1 to 64 (default: one per --vm-id, or one)", "N" },
    { "vm-id", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opts->vm_ids,
      "Id of a new VM, once per clone; generated if omitted", "ID" },
    { "resume", 0, 0, G_OPTION_ARG_NONE, &opts->resume,
      "Resume the clones; without it they stay paused", NULL },
    CLI_NO_PROGRESS_ENTRY (&opts->no_progress),
    G_OPTION_ENTRY_NULL
  };
  g_option_context_add_main_entries (context, entries, NULL);
}

/* --no-progress, and --snapshot-id described by @id_help unless it is NULL:
 * the options of export, import, push and pull. */
static void
add_transfer_options (CliSnapshotOptions *opts, GOptionContext *context, const gchar *id_help)
{
  const GOptionEntry entries[] = {
    { "snapshot-id", 0, 0, G_OPTION_ARG_STRING, &opts->snapshot_id, id_help, "ID" },
    CLI_NO_PROGRESS_ENTRY (&opts->no_progress),
    G_OPTION_ENTRY_NULL
  };
  /* without a help text, the entries from the one after --snapshot-id */
  g_option_context_add_main_entries (context, id_help != NULL ? entries : entries + 1, NULL);
}

void
cli_snapshot_export_options (gpointer options, GOptionContext *context)
{
  add_transfer_options (options, context, NULL);
}

void
cli_snapshot_import_options (gpointer options, GOptionContext *context)
{
  add_transfer_options (options, context,
                        "Store the snapshot under this id instead of the archive's own");
}

void
cli_snapshot_push_options (gpointer options, GOptionContext *context)
{
  add_transfer_options (options, context, NULL);
}

void
cli_snapshot_pull_options (gpointer options, GOptionContext *context)
{
  add_transfer_options (options, context,
                        "Store the snapshot under this id instead of the one it was pushed with");
}

void
cli_snapshot_list_options (gpointer options, GOptionContext *context)
{
  CliSnapshotOptions *opts = options;
  const GOptionEntry entries[] = {
    { "vm-id", 0, 0, G_OPTION_ARG_STRING, &opts->vm_id,
      "Only list snapshots created from this VM", "VM_ID" },
    G_OPTION_ENTRY_NULL
  };
  g_option_context_add_main_entries (context, entries, NULL);
}

/* ---- snapshot info ---- */

static gchar *
snapshot_info_created_at (SmolvmSnapshotInfo *info, gboolean with_offset)
{
  GDateTime *created_at = smolvm_snapshot_info_get_created_at (info);

  return smolvm_format_utc (g_date_time_to_unix (created_at) * G_USEC_PER_SEC +
                              g_date_time_get_microsecond (created_at),
                            with_offset);
}

/* A snapshot as the CLI's JSON snapshot object. */
static JsonObject *
snapshot_info_to_json (gpointer snapshot)
{
  SmolvmSnapshotInfo *info = snapshot;
  JsonObject *object = json_object_new ();
  const gchar *restored_vm_id = smolvm_snapshot_info_get_restored_vm_id (info);
  g_autofree gchar *created_at = snapshot_info_created_at (info, TRUE);

  json_object_set_string_member (object, SMOLVM_INFO_SNAPSHOT_ID,
                                 smolvm_snapshot_info_get_snapshot_id (info));
  json_object_set_string_member (object, SMOLVM_INFO_VM_ID, smolvm_snapshot_info_get_vm_id (info));
  json_object_set_boolean_member (object, SMOLVM_INFO_RESTORED,
                                  smolvm_snapshot_info_get_restored (info));
  if (restored_vm_id != NULL)
    json_object_set_string_member (object, SMOLVM_INFO_RESTORED_VM_ID, restored_vm_id);
  else
    json_object_set_null_member (object, SMOLVM_INFO_RESTORED_VM_ID);
  json_object_set_string_member (object, SMOLVM_INFO_CREATED_AT, created_at);
  json_object_set_string_member (object, SMOLVM_INFO_SNAPSHOT_PATH,
                                 smolvm_snapshot_info_get_snapshot_path (info));
  json_object_set_string_member (object, SMOLVM_INFO_MEM_FILE_PATH,
                                 smolvm_snapshot_info_get_mem_file_path (info));
  json_object_set_string_member (object, SMOLVM_INFO_DISK_PATH,
                                 smolvm_snapshot_info_get_disk_path (info));
  return object;
}

static gchar **
snapshot_info_row (gpointer snapshot)
{
  SmolvmSnapshotInfo *info = snapshot;
  gchar **row = g_new0 (gchar *, 5);

  row[0] = g_strdup (smolvm_snapshot_info_get_snapshot_id (info));
  row[1] = g_strdup (smolvm_snapshot_info_get_vm_id (info));
  row[2] = g_strdup (smolvm_snapshot_info_get_restored (info) ? "Yes" : "No");
  row[3] = snapshot_info_created_at (info, FALSE);
  return row;
}

static const CliColumn snapshot_columns[] = {
  { "Snapshot ID", 18 },
  { "VM ID", 9 },
  { "Restored", 10 },
  { "Created At", 0 },
};

static const CliListing snapshot_listing = {
  "snapshots", "snapshot(s)", snapshot_columns, G_N_ELEMENTS (snapshot_columns),
  snapshot_info_to_json, snapshot_info_row,
};

/* A VM a snapshot was restored or cloned into, as SmolVM's "snapshot
 * restore" shows it: its id as "name" (and "vm_id"), its state as "status",
 * the address the host reaches it at (a clone's host_ip) or null without
 * networking, and "ssh_port", always null: smolvmd forwards no host port to
 * the guest. */
static JsonObject *
vm_summary_to_json (SmolvmVmInfo *vm_info)
{
  JsonObject *object = json_object_new ();
  const gchar *address = smolvm_vm_info_get_ip_address (vm_info);
  const gchar *vm_id = smolvm_vm_info_get_vm_id (vm_info);

  json_object_set_string_member (object, "name", vm_id);
  json_object_set_string_member (object, "vm_id", vm_id);
  json_object_set_string_member (object, "status", smolvm_vm_info_get_status (vm_info));
  if (address != NULL)
    json_object_set_string_member (object, "ip_address", address);
  else
    json_object_set_null_member (object, "ip_address");
  json_object_set_null_member (object, "ssh_port");
  return object;
}

/* ---- verbs ---- */

gboolean
cli_snapshot_create (Cli *cli, GError **error)
{
  CliSnapshotOptions *opts = cli->options;
  const gchar *vm_id = cli->args[0];
  const gchar *snapshot_id = opts->snapshot_id != NULL ? opts->snapshot_id : "";
  SmolvmSnapshotCreateFlags flags = SMOLVM_SNAPSHOT_CREATE_FLAGS_NONE;
  g_autoptr(CliJobWatch) watch = NULL;
  g_autofree gchar *vm_path = NULL;
  g_autoptr(SmolvmSnapshotInfo) info = NULL;
  g_autoptr(JsonObject) data = json_object_new ();
  g_autofree gchar *text = NULL;
  SmolvmClient *smolvm;

  /* "" asks for a generated id, as omitting it does (smolvmd and SmolVM
   * read it so). smolvmd checks any other id too; failing here saves a
   * round trip and a prompt. */
  if (snapshot_id[0] != '\0' && !smolvm_id_validate (snapshot_id, "snapshot id", error))
    return FALSE;
  if (!cli_connect (cli, error))
    return FALSE;
  smolvm = cli_client_get_smolvm (cli->client);

  if (opts->resume_source)
    flags |= SMOLVM_SNAPSHOT_CREATE_FLAGS_RESUME_SOURCE;
  vm_path = smolvm_id_object_path ("vm", vm_id);
  watch = cli_job_watch_new (cli->client, "snapshot-create", vm_path,
                             !cli->json && !opts->no_progress);
  smolvm_client_create_snapshot (smolvm, vm_id, snapshot_id, flags, NULL, cli_job_watch_reply,
                                 watch);
  info = smolvm_client_create_snapshot_finish (smolvm, cli_job_watch_wait (watch), error);
  if (info == NULL)
    return cli_job_failed (error);

  json_object_set_object_member (data, "snapshot", snapshot_info_to_json (info));
  text = g_strdup_printf ("Created snapshot '%s' from VM '%s'.\n",
                          smolvm_snapshot_info_get_snapshot_id (info),
                          smolvm_snapshot_info_get_vm_id (info));
  cli_finish (cli, data, text);
  return TRUE;
}

gboolean
cli_snapshot_restore (Cli *cli, GError **error)
{
  CliSnapshotOptions *opts = cli->options;
  const gchar *snapshot_id = cli->args[0];
  SmolvmSnapshotRestoreFlags flags = SMOLVM_SNAPSHOT_RESTORE_FLAGS_NONE;
  g_autoptr(CliJobWatch) watch = NULL;
  g_autofree gchar *snapshot_path = NULL;
  g_autoptr(SmolvmSnapshotInfo) info = NULL;
  g_autoptr(SmolvmVmInfo) vm_info = NULL;
  g_autoptr(JsonObject) data = json_object_new ();
  g_autofree gchar *text = NULL;
  SmolvmClient *smolvm;

  if (!cli_connect (cli, error))
    return FALSE;
  smolvm = cli_client_get_smolvm (cli->client);

  if (opts->resume)
    flags |= SMOLVM_SNAPSHOT_RESTORE_FLAGS_RESUME;
  if (opts->force)
    flags |= SMOLVM_SNAPSHOT_RESTORE_FLAGS_FORCE;
  snapshot_path = smolvm_id_object_path ("snapshot", snapshot_id);
  watch = cli_job_watch_new (cli->client, "snapshot-restore", snapshot_path,
                             !cli->json && !opts->no_progress);
  smolvm_client_restore_snapshot (smolvm, snapshot_id, flags, NULL, cli_job_watch_reply, watch);
  vm_info = smolvm_client_restore_snapshot_finish (smolvm, cli_job_watch_wait (watch), error);
  if (vm_info == NULL)
    return cli_job_failed (error);
  /* now marked restored */
  info = smolvm_client_get_snapshot_sync (smolvm, snapshot_id, NULL, error);
  if (info == NULL)
    return FALSE;

  json_object_set_object_member (data, "snapshot", snapshot_info_to_json (info));
  json_object_set_string_member (data, "vm_id", smolvm_vm_info_get_vm_id (vm_info));
  json_object_set_string_member (data, "vm_state", smolvm_vm_info_get_status (vm_info));
  json_object_set_object_member (data, "vm", vm_summary_to_json (vm_info));
  text = g_strdup_printf ("Restored snapshot '%s' into VM '%s'.\n", snapshot_id,
                          smolvm_vm_info_get_vm_id (vm_info));
  cli_finish (cli, data, text);
  return TRUE;
}

static gchar *
clone_text (const gchar *snapshot_id, GPtrArray *vms)
{
  g_autoptr(GString) text = g_string_new (NULL);

  for (guint i = 0; i < vms->len; i++)
    g_string_append_printf (text, "Cloned snapshot '%s' into VM '%s'.\n", snapshot_id,
                            smolvm_vm_info_get_vm_id (g_ptr_array_index (vms, i)));
  return g_string_free (g_steal_pointer (&text), FALSE);
}

static JsonArray *
clone_vms_to_json (GPtrArray *vms)
{
  g_autoptr(JsonArray) array = json_array_new ();

  for (guint i = 0; i < vms->len; i++)
    json_array_add_object_element (array, vm_summary_to_json (g_ptr_array_index (vms, i)));
  return g_steal_pointer (&array);
}

/* A clone that failed (Failed, or Cancelled after a Cancel) keeps the clones
 * it made; smolvmd's message names them, but only as text: as objects they
 * are the VMs cloned from @snapshot_id that were not there before (@before). smolvmd
 * clones a snapshot once at a time (a second clone of it is InUse), so they
 * are ours. Shown as on success (text on standard output, before the error),
 * or with --json in the error's details, since data stays null on failure.
 * Nothing is shown when the VMs cannot be listed. */
static void
clone_show_kept (Cli *cli, const gchar *snapshot_id, GPtrArray *before, const GError *error)
{
  g_autoptr(GHashTable) old_ids = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(GPtrArray) vms = NULL;
  g_autoptr(GPtrArray) kept = g_ptr_array_new ();
  g_autoptr(GError) list_error = NULL;
  g_autofree gchar *text = NULL;

  if (!g_error_matches (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED) &&
      !g_error_matches (error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED))
    return;
  vms = smolvm_client_list_vms_sync (cli_client_get_smolvm (cli->client), NULL, &list_error);
  if (vms == NULL) {
    g_debug ("cannot list the clones kept: %s", list_error->message);
    return;
  }
  for (guint i = 0; i < before->len; i++)
    g_hash_table_add (old_ids,
                      (gpointer) smolvm_vm_info_get_vm_id (g_ptr_array_index (before, i)));
  for (guint i = 0; i < vms->len; i++) {
    SmolvmVmInfo *vm = g_ptr_array_index (vms, i);

    if (g_strcmp0 (smolvm_vm_info_get_cloned_from (vm), snapshot_id) == 0 &&
        !g_hash_table_contains (old_ids, smolvm_vm_info_get_vm_id (vm)))
      g_ptr_array_add (kept, vm);
  }
  if (!cli->json) {
    text = clone_text (snapshot_id, kept);
    g_print ("%s", text);
    return;
  }
  cli->error_details = json_object_new ();
  json_object_set_string_member (cli->error_details, "snapshot_id", snapshot_id);
  json_object_set_array_member (cli->error_details, "vms", clone_vms_to_json (kept));
}

gboolean
cli_snapshot_clone (Cli *cli, GError **error)
{
  CliSnapshotOptions *opts = cli->options;
  const gchar *snapshot_id = cli->args[0];
  SmolvmSnapshotCloneFlags flags = SMOLVM_SNAPSHOT_CLONE_FLAGS_NONE;
  guint32 count = 0;
  g_autoptr(GPtrArray) before = NULL;
  g_autoptr(CliJobWatch) watch = NULL;
  g_autofree gchar *snapshot_path = NULL;
  g_autoptr(GPtrArray) clones = NULL;
  g_autoptr(SmolvmSnapshotInfo) info = NULL;
  g_autoptr(JsonObject) data = json_object_new ();
  g_autofree gchar *text = NULL;
  SmolvmClient *smolvm;

  if (opts->count != NULL && !cli_parse_count ("--count", opts->count, &count, error))
    return FALSE;
  /* smolvmd checks them too; failing here saves a round trip and a prompt */
  for (gsize i = 0; opts->vm_ids != NULL && opts->vm_ids[i] != NULL; i++)
    if (!smolvm_id_validate (opts->vm_ids[i], "VM id", error))
      return FALSE;
  if (!cli_connect (cli, error))
    return FALSE;
  smolvm = cli_client_get_smolvm (cli->client);
  /* what the clones kept by a failure are told apart from */
  before = smolvm_client_list_vms_sync (smolvm, NULL, error);
  if (before == NULL)
    return FALSE;

  if (opts->resume)
    flags |= SMOLVM_SNAPSHOT_CLONE_FLAGS_RESUME;
  /* the Job's Objects are the snapshot and the new VMs */
  snapshot_path = smolvm_id_object_path ("snapshot", snapshot_id);
  watch = cli_job_watch_new (cli->client, "snapshot-clone", snapshot_path,
                             !cli->json && !opts->no_progress);
  smolvm_client_clone_snapshot (smolvm, snapshot_id, count, (const gchar *const *) opts->vm_ids,
                                flags, NULL, cli_job_watch_reply, watch);
  clones = smolvm_client_clone_snapshot_finish (smolvm, cli_job_watch_wait (watch), error);
  if (clones == NULL) {
    if (error != NULL && *error != NULL) {
      cli_error_mark_cancelled (*error);
      clone_show_kept (cli, snapshot_id, before, *error);
    }
    return FALSE;
  }
  info = smolvm_client_get_snapshot_sync (smolvm, snapshot_id, NULL, error);
  if (info == NULL)
    return FALSE;

  json_object_set_object_member (data, "snapshot", snapshot_info_to_json (info));
  json_object_set_array_member (data, "vms", clone_vms_to_json (clones));
  text = clone_text (snapshot_id, clones);
  cli_finish (cli, data, text);
  return TRUE;
}

gboolean
cli_snapshot_delete (Cli *cli, GError **error)
{
  const gchar *snapshot_id = cli->args[0];
  g_autoptr(SmolvmSnapshotInfo) info = NULL;
  g_autoptr(JsonObject) data = json_object_new ();
  g_autofree gchar *text = NULL;

  if (!cli_connect (cli, error))
    return FALSE;
  /* the record is gone afterwards, and the JSON shows it */
  info = smolvm_client_get_snapshot_sync (cli_client_get_smolvm (cli->client), snapshot_id, NULL,
                                          error);
  if (info == NULL)
    return FALSE;
  if (!smolvm_client_delete_snapshot_sync (cli_client_get_smolvm (cli->client), snapshot_id, NULL,
                                           error))
    return FALSE;

  json_object_set_string_member (data, "snapshot_id", snapshot_id);
  json_object_set_boolean_member (data, "deleted", TRUE);
  json_object_set_object_member (data, "snapshot", snapshot_info_to_json (info));
  text = g_strdup_printf ("Deleted snapshot '%s'.\n", snapshot_id);
  cli_finish (cli, data, text);
  return TRUE;
}

gboolean
cli_snapshot_list (Cli *cli, GError **error)
{
  CliSnapshotOptions *opts = cli->options;
  /* "" filters nothing, for smolvmd as for SmolVM */
  const gchar *vm_id = opts->vm_id != NULL && opts->vm_id[0] != '\0' ? opts->vm_id : NULL;
  g_autoptr(GPtrArray) snapshots = NULL;
  g_autoptr(JsonObject) filters = json_object_new ();
  g_autoptr(JsonObject) extra = json_object_new ();
  g_autofree gchar *empty = NULL;

  if (!cli_connect (cli, error))
    return FALSE;
  snapshots = smolvm_client_list_snapshots_sync (cli_client_get_smolvm (cli->client), vm_id, NULL,
                                                 error);
  if (snapshots == NULL)
    return FALSE;

  if (vm_id != NULL)
    json_object_set_string_member (filters, "vm_id", vm_id);
  else
    json_object_set_null_member (filters, "vm_id");
  json_object_set_object_member (extra, "filters", g_steal_pointer (&filters));
  empty = vm_id != NULL ? g_strdup_printf ("No snapshots found for VM '%s'.", vm_id)
                        : g_strdup ("No snapshots found.");
  cli_finish_list (cli, snapshots, &snapshot_listing, extra, empty);
  return TRUE;
}

/* The archive goes to a descriptor the CLI opens with the user's rights
 * (smolvmd never opens a caller's path): FILE, created or truncated, or
 * for "-" standard output, which then carries nothing else: the messages,
 * --json's envelope and errors go to standard error. */
gboolean
cli_snapshot_export (Cli *cli, GError **error)
{
  CliSnapshotOptions *opts = cli->options;
  const gchar *snapshot_id = cli->args[0];
  const gchar *target = cli->args[1];
  gboolean to_stdout = g_str_equal (target, "-");
  g_autoptr(CliJobWatch) watch = NULL;
  g_autofree gchar *snapshot_path = NULL;
  g_autoptr(SmolvmSnapshotInfo) info = NULL;
  g_autoptr(JsonObject) data = json_object_new ();
  g_autofree gchar *text = NULL;
  SmolvmClient *smolvm;
  gboolean ok;
  int fd;

  if (!smolvm_id_validate (snapshot_id, "snapshot id", error))
    return FALSE;
  if (to_stdout) {
    if (isatty (STDOUT_FILENO)) {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                           "Standard output is a terminal; redirect it or name a file");
      return FALSE;
    }
    fd = dup (STDOUT_FILENO);
    if (fd < 0 || dup2 (STDERR_FILENO, STDOUT_FILENO) < 0) {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                   "Cannot use standard output: %s", g_strerror (errno));
      return FALSE;
    }
  } else {
    fd = open (target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
    if (fd < 0) {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "Cannot open %s: %s",
                   target, g_strerror (errno));
      return FALSE;
    }
  }
  if (!cli_connect (cli, error)) {
    close (fd);
    return FALSE;
  }
  smolvm = cli_client_get_smolvm (cli->client);

  snapshot_path = smolvm_id_object_path ("snapshot", snapshot_id);
  watch = cli_job_watch_new (cli->client, "snapshot-export", snapshot_path,
                             !cli->json && !opts->no_progress);
  smolvm_client_export_snapshot (smolvm, snapshot_id, fd, NULL, cli_job_watch_reply, watch);
  ok = smolvm_client_export_snapshot_finish (smolvm, cli_job_watch_wait (watch), error);
  close (fd);
  if (!ok) {
    /* half an archive is no archive */
    if (!to_stdout)
      g_unlink (target);
    return cli_job_failed (error);
  }
  info = smolvm_client_get_snapshot_sync (smolvm, snapshot_id, NULL, error);
  if (info == NULL)
    return FALSE;

  json_object_set_object_member (data, "snapshot", snapshot_info_to_json (info));
  json_object_set_string_member (data, "file", target);
  text = g_strdup_printf ("Exported snapshot '%s' to %s.\n", snapshot_id,
                          to_stdout ? "standard output" : target);
  cli_finish (cli, data, text);
  return TRUE;
}

/* The archive comes from FILE, or for "-" from standard input. */
gboolean
cli_snapshot_import (Cli *cli, GError **error)
{
  CliSnapshotOptions *opts = cli->options;
  const gchar *source = cli->args[0];
  gboolean from_stdin = g_str_equal (source, "-");
  const gchar *snapshot_id =
    opts->snapshot_id != NULL && opts->snapshot_id[0] != '\0' ? opts->snapshot_id : NULL;
  g_autoptr(CliJobWatch) watch = NULL;
  g_autofree gchar *snapshot_path = NULL;
  g_autoptr(SmolvmSnapshotInfo) info = NULL;
  g_autoptr(JsonObject) data = json_object_new ();
  g_autofree gchar *text = NULL;
  SmolvmClient *smolvm;
  int fd;

  if (snapshot_id != NULL && !smolvm_id_validate (snapshot_id, "snapshot id", error))
    return FALSE;
  if (from_stdin) {
    if (isatty (STDIN_FILENO)) {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                           "Standard input is a terminal; redirect it or name a file");
      return FALSE;
    }
    fd = STDIN_FILENO;
  } else {
    fd = open (source, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "Cannot open %s: %s",
                   source, g_strerror (errno));
      return FALSE;
    }
  }
  if (!cli_connect (cli, error)) {
    if (!from_stdin)
      close (fd);
    return FALSE;
  }
  smolvm = cli_client_get_smolvm (cli->client);

  /* the archive's own id is known only once smolvmd has read it */
  if (snapshot_id != NULL)
    snapshot_path = smolvm_id_object_path ("snapshot", snapshot_id);
  watch = cli_job_watch_new (cli->client, "snapshot-import", snapshot_path,
                             !cli->json && !opts->no_progress);
  smolvm_client_import_snapshot (smolvm, fd, snapshot_id, NULL, cli_job_watch_reply, watch);
  info = smolvm_client_import_snapshot_finish (smolvm, cli_job_watch_wait (watch), error);
  if (!from_stdin)
    close (fd);
  if (info == NULL)
    return cli_job_failed (error);

  json_object_set_object_member (data, "snapshot", snapshot_info_to_json (info));
  text = g_strdup_printf ("Imported snapshot '%s' of VM '%s'.\n",
                          smolvm_snapshot_info_get_snapshot_id (info),
                          smolvm_snapshot_info_get_vm_id (info));
  cli_finish (cli, data, text);
  return TRUE;
}

gboolean
cli_snapshot_push (Cli *cli, GError **error)
{
  CliSnapshotOptions *opts = cli->options;
  const gchar *snapshot_id = cli->args[0];
  const gchar *reference = cli->args[1];
  g_autoptr(SmolvmOciRef) ref = NULL;
  g_autoptr(CliJobWatch) watch = NULL;
  g_autofree gchar *snapshot_path = NULL;
  g_autofree gchar *canonical = NULL;
  g_autoptr(JsonObject) data = json_object_new ();
  g_autofree gchar *text = NULL;
  SmolvmClient *smolvm;

  /* smolvmd checks both too; failing here saves a round trip */
  if (!smolvm_id_validate (snapshot_id, "snapshot id", error))
    return FALSE;
  ref = smolvm_oci_ref_parse (reference, error);
  if (ref == NULL)
    return FALSE;
  if (!cli_connect (cli, error))
    return FALSE;
  smolvm = cli_client_get_smolvm (cli->client);

  snapshot_path = smolvm_id_object_path ("snapshot", snapshot_id);
  watch = cli_job_watch_new (cli->client, "snapshot-push", snapshot_path,
                             !cli->json && !opts->no_progress);
  smolvm_client_push_snapshot (smolvm, snapshot_id, reference, NULL, cli_job_watch_reply, watch);
  if (!smolvm_client_push_snapshot_finish (smolvm, cli_job_watch_wait (watch), error))
    return cli_job_failed (error);

  canonical = smolvm_oci_ref_to_string (ref);
  json_object_set_string_member (data, "snapshot_id", snapshot_id);
  json_object_set_string_member (data, "reference", canonical);
  text = g_strdup_printf ("Pushed snapshot '%s' to %s.\n", snapshot_id, canonical);
  cli_finish (cli, data, text);
  return TRUE;
}

gboolean
cli_snapshot_pull (Cli *cli, GError **error)
{
  CliSnapshotOptions *opts = cli->options;
  const gchar *reference = cli->args[0];
  const gchar *snapshot_id =
    opts->snapshot_id != NULL && opts->snapshot_id[0] != '\0' ? opts->snapshot_id : NULL;
  g_autoptr(SmolvmOciRef) ref = NULL;
  g_autoptr(CliJobWatch) watch = NULL;
  g_autoptr(SmolvmSnapshotInfo) info = NULL;
  g_autofree gchar *canonical = NULL;
  g_autoptr(JsonObject) data = json_object_new ();
  g_autofree gchar *text = NULL;
  SmolvmClient *smolvm;

  if (snapshot_id != NULL && !smolvm_id_validate (snapshot_id, "snapshot id", error))
    return FALSE;
  ref = smolvm_oci_ref_parse (reference, error);
  if (ref == NULL)
    return FALSE;
  if (!cli_connect (cli, error))
    return FALSE;
  smolvm = cli_client_get_smolvm (cli->client);

  /* the pull's Job works on no object until the snapshot exists */
  watch = cli_job_watch_new (cli->client, "snapshot-pull", NULL,
                             !cli->json && !opts->no_progress);
  smolvm_client_pull_snapshot (smolvm, reference, snapshot_id, NULL, cli_job_watch_reply, watch);
  info = smolvm_client_pull_snapshot_finish (smolvm, cli_job_watch_wait (watch), error);
  if (info == NULL)
    return cli_job_failed (error);

  canonical = smolvm_oci_ref_to_string (ref);
  json_object_set_object_member (data, "snapshot", snapshot_info_to_json (info));
  json_object_set_string_member (data, "reference", canonical);
  text = g_strdup_printf ("Pulled snapshot '%s' of VM '%s' from %s.\n",
                          smolvm_snapshot_info_get_snapshot_id (info),
                          smolvm_snapshot_info_get_vm_id (info), canonical);
  cli_finish (cli, data, text);
  return TRUE;
}
