/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* smolvm create|list|start|pause|resume|stop|delete|console-log */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <gio/gunixfdlist.h>

#include "smolvm-id.h"

#include "cli-job-watch.h"
#include "cli-output.h"
#include "cli-verbs.h"

typedef struct {
  /* create */
  gchar *vm_id;
  gchar *kernel;
  gchar *rootfs;
  gchar *initrd;
  gchar *boot_args;
  gchar *backend;
  gchar *accel;
  gchar *vcpus;
  gchar *mem;
  gboolean no_network;
  gboolean start;
  /* delete */
  gboolean force;
  /* create, delete */
  gboolean no_progress;
  /* console-log */
  gboolean path_only;
} CliVmOptions;

gpointer
cli_vm_options_new (void)
{
  return g_new0 (CliVmOptions, 1);
}

void
cli_vm_options_free (gpointer options)
{
  CliVmOptions *opts = options;

  g_free (opts->vm_id);
  g_free (opts->kernel);
  g_free (opts->rootfs);
  g_free (opts->initrd);
  g_free (opts->boot_args);
  g_free (opts->backend);
  g_free (opts->accel);
  g_free (opts->vcpus);
  g_free (opts->mem);
  g_free (opts);
}

void
cli_vm_create_options (gpointer options, GOptionContext *context)
{
  CliVmOptions *opts = options;
  const GOptionEntry entries[] = {
    { "kernel", 0, 0, G_OPTION_ARG_FILENAME, &opts->kernel, "Guest kernel image (required)",
      "PATH" },
    { "rootfs", 0, 0, G_OPTION_ARG_FILENAME, &opts->rootfs,
      "Root filesystem image, copied into the VM's own disk (required)", "PATH" },
    { "vm-id", 0, 0, G_OPTION_ARG_STRING, &opts->vm_id, "Id of the new VM; generated if omitted",
      "ID" },
    { "vcpus", 0, 0, G_OPTION_ARG_STRING, &opts->vcpus, "Number of vCPUs (default 2)", "N" },
    { "mem", 0, 0, G_OPTION_ARG_STRING, &opts->mem, "Guest memory in MiB (default 512)", "MIB" },
    { "boot-args", 0, 0, G_OPTION_ARG_STRING, &opts->boot_args, "Kernel command line", "ARGS" },
    { "initrd", 0, 0, G_OPTION_ARG_FILENAME, &opts->initrd, "Initrd image", "PATH" },
    { "backend", 0, 0, G_OPTION_ARG_STRING, &opts->backend,
      "VM backend: firecracker (default) or qemu", "NAME" },
    { "accel", 0, 0, G_OPTION_ARG_STRING, &opts->accel,
      "QEMU accelerator: kvm, tcg or auto (default: KVM, else TCG)", "ACCEL" },
    { "no-network", 0, 0, G_OPTION_ARG_NONE, &opts->no_network,
      "Give the VM no network interface", NULL },
    { "start", 0, 0, G_OPTION_ARG_NONE, &opts->start, "Boot the VM once created", NULL },
    CLI_NO_PROGRESS_ENTRY (&opts->no_progress),
    G_OPTION_ENTRY_NULL
  };
  g_option_context_add_main_entries (context, entries, NULL);
}

void
cli_vm_delete_options (gpointer options, GOptionContext *context)
{
  CliVmOptions *opts = options;
  const GOptionEntry entries[] = {
    { "force", 0, 0, G_OPTION_ARG_NONE, &opts->force,
      "Stop the VM first if it is running or paused", NULL },
    CLI_NO_PROGRESS_ENTRY (&opts->no_progress),
    G_OPTION_ENTRY_NULL
  };
  g_option_context_add_main_entries (context, entries, NULL);
}

void
cli_vm_console_log_options (gpointer options, GOptionContext *context)
{
  CliVmOptions *opts = options;
  const GOptionEntry entries[] = {
    { "path", 0, 0, G_OPTION_ARG_NONE, &opts->path_only, "Print the log file's path only", NULL },
    G_OPTION_ENTRY_NULL
  };
  g_option_context_add_main_entries (context, entries, NULL);
}

/* ---- VM info ---- */

/* Members of the VM JSON object come in this order; keys a newer daemon adds
 * follow. */
static const gchar *const vm_info_keys[] = {
  "vm_id", "state", "backend", "pid", "vcpu_count", "mem_size_mib", "kernel_path",
  "initrd_path", "rootfs_path", "boot_args", "network", "accel", "machine", "disk_path",
  "console_log_path", "network_config", "restored_from", "cloned_from",
};

/* A VM as the CLI's JSON VM object: every key of its ListVMs dictionary. */
static JsonObject *
vm_info_to_json (gpointer vm)
{
  g_autoptr(GVariant) info = smolvm_vm_info_to_variant (vm);
  JsonObject *object = json_object_new ();
  GVariantIter iter;
  const gchar *key;
  GVariant *value;

  for (gsize i = 0; i < G_N_ELEMENTS (vm_info_keys); i++) {
    g_autoptr(GVariant) known = g_variant_lookup_value (info, vm_info_keys[i], NULL);
    if (known != NULL)
      json_object_set_member (object, vm_info_keys[i], json_gvariant_serialize (known));
  }
  g_variant_iter_init (&iter, info);
  while (g_variant_iter_loop (&iter, "{&sv}", &key, &value))
    if (!json_object_has_member (object, key))
      json_object_set_member (object, key, json_gvariant_serialize (value));
  return object;
}

static gchar **
vm_info_row (gpointer vm)
{
  SmolvmVmInfo *info = vm;
  gchar **row = g_new0 (gchar *, 7);
  const gchar *guest_ip = smolvm_vm_info_get_ip_address (info);

  row[0] = g_strdup (smolvm_vm_info_get_vm_id (info));
  row[1] = g_strdup (smolvm_vm_info_get_status (info));
  row[2] = g_strdup (smolvm_vm_info_get_backend (info));
  row[3] = g_strdup_printf ("%u", smolvm_vm_info_get_vcpu_count (info));
  row[4] = g_strdup_printf ("%u MiB", smolvm_vm_info_get_mem_size_mib (info));
  row[5] = g_strdup (guest_ip != NULL ? guest_ip : "-");
  return row;
}

static const CliColumn vm_columns[] = {
  { "VM ID", 8 },
  { "State", 8 },
  { "Backend", 10 },
  { "vCPUs", 7 },
  { "Memory", 8 },
  { "Guest IP", 0 },
};

static const CliListing vm_listing = {
  "vms", "VM(s)", vm_columns, G_N_ELEMENTS (vm_columns), vm_info_to_json, vm_info_row,
};

/* Reports success of a command on VM @vm_id: @text, or with --json the VM
 * as smolvmd now lists it. */
static gboolean
cli_finish_vm (Cli *cli, const gchar *vm_id, const gchar *text, GError **error)
{
  g_autoptr(SmolvmVmInfo) info = NULL;
  g_autoptr(JsonObject) data = json_object_new ();

  info = smolvm_client_get_vm_sync (cli_client_get_smolvm (cli->client), vm_id, NULL, error);
  if (info == NULL)
    return FALSE;
  json_object_set_object_member (data, "vm", vm_info_to_json (info));
  cli_finish (cli, data, text);
  return TRUE;
}

/* ---- start, pause, resume, stop ---- */

typedef struct {
  const gchar *done; /* "Started" in "Started VM 'x'." */
  gboolean (*call) (SmolvmClient *client, const gchar *vm_id, GCancellable *cancellable,
                    GError **error);
} VmAction;

static const VmAction vm_start = { "Started", smolvm_client_start_vm_sync };
static const VmAction vm_pause = { "Paused", smolvm_client_pause_vm_sync };
static const VmAction vm_resume = { "Resumed", smolvm_client_resume_vm_sync };
static const VmAction vm_stop = { "Stopped", smolvm_client_stop_vm_sync };

static gboolean
vm_run_action (Cli *cli, const VmAction *action, GError **error)
{
  const gchar *vm_id = cli->args[0];
  g_autofree gchar *text = NULL;

  if (!cli_connect (cli, error) ||
      !action->call (cli_client_get_smolvm (cli->client), vm_id, NULL, error))
    return FALSE;
  text = g_strdup_printf ("%s VM '%s'.\n", action->done, vm_id);
  return cli_finish_vm (cli, vm_id, text, error);
}

gboolean
cli_vm_start (Cli *cli, GError **error)
{
  return vm_run_action (cli, &vm_start, error);
}

gboolean
cli_vm_pause (Cli *cli, GError **error)
{
  return vm_run_action (cli, &vm_pause, error);
}

gboolean
cli_vm_resume (Cli *cli, GError **error)
{
  return vm_run_action (cli, &vm_resume, error);
}

gboolean
cli_vm_stop (Cli *cli, GError **error)
{
  return vm_run_action (cli, &vm_stop, error);
}

/* ---- delete ---- */

gboolean
cli_vm_delete (Cli *cli, GError **error)
{
  CliVmOptions *opts = cli->options;
  const gchar *vm_id = cli->args[0];
  g_autofree gchar *vm_path = NULL;
  g_autoptr(CliJobWatch) watch = NULL;
  g_autoptr(JsonObject) data = json_object_new ();
  g_autofree gchar *text = NULL;
  SmolvmClient *smolvm;

  if (!cli_connect (cli, error))
    return FALSE;
  smolvm = cli_client_get_smolvm (cli->client);
  vm_path = smolvm_id_object_path ("vm", vm_id);
  watch = cli_job_watch_new (cli->client, "vm-delete", vm_path,
                             !cli->json && !opts->no_progress);
  smolvm_client_delete_vm (smolvm, vm_id,
                           opts->force ? SMOLVM_VM_DELETE_FLAGS_FORCE : SMOLVM_VM_DELETE_FLAGS_NONE,
                           NULL, cli_job_watch_reply, watch);
  if (!smolvm_client_delete_vm_finish (smolvm, cli_job_watch_wait (watch), error))
    return cli_job_failed (error);

  json_object_set_string_member (data, "vm_id", vm_id);
  json_object_set_boolean_member (data, "deleted", TRUE);
  text = g_strdup_printf ("Deleted VM '%s'.\n", vm_id);
  cli_finish (cli, data, text);
  return TRUE;
}

/* ---- console-log ---- */

/* Reads all of @fd (not closed). */
static gchar *
read_all (int fd, GError **error)
{
  g_autoptr(GString) text = g_string_new (NULL);
  gchar buffer[65536];

  for (;;) {
    gssize n = read (fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int errsv = errno;
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "Cannot read the console log: %s",
                   g_strerror (errsv));
      return NULL;
    }
    if (n == 0)
      return g_string_free (g_steal_pointer (&text), FALSE);
    g_string_append_len (text, buffer, n);
  }
}

/* The console log, opened by smolvmd (OpenConsoleLog, polkit action
 * org.smolvm.vm.console): the file is smolvmd's, private to it. */
static gchar *
read_console_log (Cli *cli, const gchar *vm_id, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  gchar *contents;
  int fd;

  fd = smolvm_client_open_console_log_sync (cli_client_get_smolvm (cli->client), vm_id, NULL,
                                            &local_error);
  if (fd < 0) {
    /* not started yet: nothing was printed */
    if (g_error_matches (local_error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND))
      return g_strdup ("");
    g_propagate_error (error, g_steal_pointer (&local_error));
    return NULL;
  }
  contents = read_all (fd, error);
  close (fd);
  return contents;
}

/* The guest's console output. */
gboolean
cli_vm_console_log (Cli *cli, GError **error)
{
  CliVmOptions *opts = cli->options;
  const gchar *vm_id = cli->args[0];
  g_autoptr(SmolvmVmInfo) info = NULL;
  g_autoptr(JsonObject) data = json_object_new ();
  g_autofree gchar *contents = NULL;
  const gchar *path;

  if (!cli_connect (cli, error))
    return FALSE;
  info = smolvm_client_get_vm_sync (cli_client_get_smolvm (cli->client), vm_id, NULL, error);
  if (info == NULL)
    return FALSE;
  path = smolvm_vm_info_get_console_log_path (info);
  if (path[0] == '\0') {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_UNSUPPORTED, "VM '%s' has no console log",
                 vm_id);
    return FALSE;
  }
  json_object_set_string_member (data, "vm_id", vm_id);
  json_object_set_string_member (data, "console_log_path", path);
  if (opts->path_only) {
    g_autofree gchar *text = g_strdup_printf ("%s\n", path);
    cli_finish (cli, data, text);
    return TRUE;
  }
  contents = read_console_log (cli, vm_id, error);
  if (contents == NULL)
    return FALSE;
  json_object_set_string_member (data, "content", contents);
  cli_finish (cli, data, contents);
  return TRUE;
}

/* ---- create ---- */

/* Opens @path as the user running us and adds it to the VM config as a
 * descriptor: smolvmd reads our files with our rights, not its own. */
static gboolean
config_add_image (GVariantDict *config, GUnixFDList *fds, const gchar *key, const gchar *option,
                  const gchar *path, GError **error)
{
  int fd;
  gint index;

  if (path == NULL)
    return TRUE;
  /* O_NONBLOCK: a FIFO opens at once, and smolvmd refuses it */
  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    int errsv = errno;
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT, "Cannot open %s %s: %s",
                 option, path, g_strerror (errsv));
    return FALSE;
  }
  index = g_unix_fd_list_append (fds, fd, error);
  close (fd);
  if (index < 0)
    return FALSE;
  g_variant_dict_insert (config, key, "h", index);
  return TRUE;
}

static gboolean
vm_config_build (CliVmOptions *opts, GVariantDict *config, GUnixFDList *fds, GError **error)
{
  guint32 count;

  if (opts->kernel == NULL || opts->rootfs == NULL) {
    g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                         "--kernel and --rootfs are required");
    return FALSE;
  }
  if (opts->vcpus != NULL) {
    if (!cli_parse_count ("--vcpus", opts->vcpus, &count, error))
      return FALSE;
    g_variant_dict_insert (config, "vcpu_count", "u", count);
  }
  if (opts->mem != NULL) {
    if (!cli_parse_count ("--mem", opts->mem, &count, error))
      return FALSE;
    g_variant_dict_insert (config, "mem_size_mib", "u", count);
  }
  if (opts->vm_id != NULL) {
    if (!smolvm_id_validate (opts->vm_id, "VM id", error))
      return FALSE;
    g_variant_dict_insert (config, "vm_id", "s", opts->vm_id);
  }
  if (!config_add_image (config, fds, "kernel-fd", "--kernel", opts->kernel, error) ||
      !config_add_image (config, fds, "rootfs-fd", "--rootfs", opts->rootfs, error) ||
      !config_add_image (config, fds, "initrd-fd", "--initrd", opts->initrd, error))
    return FALSE;
  if (opts->boot_args != NULL)
    g_variant_dict_insert (config, "boot_args", "s", opts->boot_args);
  if (opts->backend != NULL)
    g_variant_dict_insert (config, "backend", "s", opts->backend);
  if (opts->accel != NULL)
    g_variant_dict_insert (config, "accel", "s", opts->accel);
  if (opts->no_network)
    g_variant_dict_insert (config, "network", "b", FALSE);
  return TRUE;
}

gboolean
cli_vm_create (Cli *cli, GError **error)
{
  CliVmOptions *opts = cli->options;
  g_auto(GVariantDict) config = G_VARIANT_DICT_INIT (NULL);
  g_autoptr(GUnixFDList) fds = g_unix_fd_list_new ();
  g_autoptr(CliJobWatch) watch = NULL;
  g_autofree gchar *vm_path = NULL;
  g_autoptr(SmolvmVmInfo) info = NULL;
  g_autoptr(GString) text = g_string_new (NULL);
  SmolvmClient *smolvm;
  const gchar *vm_id;

  if (!vm_config_build (opts, &config, fds, error) || !cli_connect (cli, error))
    return FALSE;
  smolvm = cli_client_get_smolvm (cli->client);

  /* Without an id, ours is the vm-create job of our uid that comes next. */
  if (opts->vm_id != NULL)
    vm_path = smolvm_id_object_path ("vm", opts->vm_id);
  watch = cli_job_watch_new (cli->client, "vm-create", vm_path,
                             !cli->json && !opts->no_progress);
  smolvm_client_create_vm (smolvm, g_variant_dict_end (&config), fds, NULL, cli_job_watch_reply,
                           watch);
  info = smolvm_client_create_vm_finish (smolvm, cli_job_watch_wait (watch), error);
  if (info == NULL)
    return cli_job_failed (error);

  /* The id may have been generated. */
  vm_id = smolvm_vm_info_get_vm_id (info);
  g_string_append_printf (text, "Created VM '%s'.\n", vm_id);

  if (opts->start) {
    if (!smolvm_client_start_vm_sync (smolvm, vm_id, NULL, error)) {
      g_prefix_error (error, "VM '%s' was created but not started: ", vm_id);
      return FALSE;
    }
    g_string_append_printf (text, "Started VM '%s'.\n", vm_id);
  }
  return cli_finish_vm (cli, vm_id, text->str, error);
}

/* ---- list ---- */

gboolean
cli_vm_list (Cli *cli, GError **error)
{
  g_autoptr(GPtrArray) vms = NULL;

  if (!cli_connect (cli, error))
    return FALSE;
  vms = smolvm_client_list_vms_sync (cli_client_get_smolvm (cli->client), NULL, error);
  if (vms == NULL)
    return FALSE;
  cli_finish_list (cli, vms, &vm_listing, NULL, NULL);
  return TRUE;
}
