/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smolvm: command line client of smolvmd.
 *
 *   smolvm [--session] [--no-ask-password] COMMAND [ARGS…] [--json]
 *   smolvm [--session] [--no-ask-password] snapshot COMMAND [ARGS…] [--json]
 *
 * Exit status: 0 on success, 1 when the operation failed, 2 on a usage error.
 * Usage errors are carried in the G_OPTION_ERROR domain, everything else is a
 * failure.
 */
#include "config.h"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib-unix.h>
#include <json-glib/json-glib.h>

#include "smolvm-error.h"
#include "smolvm-generated.h"
#include "smolvm-id.h"
#include "smolvm-info.h"

#include "cli-format.h"

#define CLI_EXIT_FAILURE 1
#define CLI_EXIT_USAGE 2

/* Snapshots of many GiB take long; never give up waiting on smolvmd. */
#define CLI_CALL_TIMEOUT G_MAXINT

/* Properties and signals are of no use to a one-shot client. Without
 * DO_NOT_AUTO_START the bus activates smolvmd if needed. */
#define CLI_PROXY_FLAGS \
  (G_DBUS_PROXY_FLAGS_DO_NOT_LOAD_PROPERTIES | G_DBUS_PROXY_FLAGS_DO_NOT_CONNECT_SIGNALS)

typedef struct _CliVerb CliVerb;

typedef struct {
  const gchar *name;
  const gchar *summary;
} CliGroup;

typedef struct {
  /* Options every command takes, before or after the command words. */
  gboolean session;
  gboolean no_ask_password;
  gboolean version;
  gboolean json;

  /* Command options; each command registers the ones it takes. */
  gchar *snapshot_id;
  gchar *vm_id;
  gboolean resume_source;
  gboolean resume;
  gboolean force;
  gchar *kernel;
  gchar *rootfs;
  gchar *initrd;
  gchar *boot_args;
  gchar *backend;
  gchar *accel;
  gboolean path_only;
  gchar *vcpus;
  gchar *mem;
  gboolean no_network;
  gboolean start;

  /* Positional arguments after the command words. */
  gchar **args;

  const CliGroup *group; /* set once "snapshot" is seen, even without a command */
  const CliVerb *verb;

  GDBusConnection *bus;
  SmolvmDbusManager *manager;
  GSubprocess *agent; /* pkttyagent, while we may need a password */
} Cli;

typedef gboolean (*CliRunFunc) (Cli *cli, GError **error);
typedef void (*CliOptionsFunc) (Cli *cli, GOptionContext *context);

struct _CliVerb {
  const gchar *group;   /* "snapshot" for "smolvm snapshot NAME", NULL for top-level */
  const gchar *name;
  const gchar *command; /* the JSON envelope's "command" */
  const gchar *params;  /* positional arguments, for --help and error messages */
  guint n_args;
  const gchar *summary;
  CliOptionsFunc add_options;
  CliRunFunc run;
  gint action; /* VmAction of the VM state commands */
};

static const CliGroup cli_groups[] = {
  { "snapshot", "Manage VM snapshots (Firecracker and QEMU): create, restore, delete, list." },
};

static void
cli_clear (Cli *cli)
{
  g_free (cli->snapshot_id);
  g_free (cli->vm_id);
  g_free (cli->kernel);
  g_free (cli->rootfs);
  g_free (cli->initrd);
  g_free (cli->boot_args);
  g_free (cli->backend);
  g_free (cli->accel);
  g_free (cli->vcpus);
  g_free (cli->mem);
  g_strfreev (cli->args);
  g_clear_object (&cli->manager);
  g_clear_object (&cli->bus);
  if (cli->agent != NULL) {
    g_subprocess_send_signal (cli->agent, SIGTERM);
    g_subprocess_wait (cli->agent, NULL, NULL);
    g_clear_object (&cli->agent);
  }
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Cli, cli_clear)

/* ---- output ---- */

static void
cli_print_envelope (const gchar *command, gint exit_code, const gchar *member, JsonObject *payload)
{
  g_autoptr(JsonObject) envelope = json_object_new ();
  g_autoptr(GString) text = g_string_new (NULL);

  if (command != NULL)
    json_object_set_string_member (envelope, "command", command);
  else
    json_object_set_null_member (envelope, "command");
  json_object_set_int_member (envelope, "exit_code", exit_code);
  json_object_set_object_member (envelope, member, json_object_ref (payload));

  cli_format_json (text, envelope);
  /* JSON is UTF-8 whatever the locale; g_print() would convert it. */
  fwrite (text->str, 1, text->len, stdout);
}

/* Prints the result of a successful command: @data with --json, else @text. */
static void
cli_finish (Cli *cli, JsonObject *data, const gchar *text)
{
  if (cli->json)
    cli_print_envelope (cli->verb->command, 0, "data", data);
  else
    g_print ("%s", text);
}

static const gchar *
cli_bus_label (Cli *cli)
{
  return cli->session ? "session" : "system";
}

static void
cli_set_not_running (Cli *cli, GError **error)
{
  g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_SERVICE_UNKNOWN,
               "smolvmd is not running on the %s bus (%s)", cli_bus_label (cli), SMOLVM_BUS_NAME);
}

/* The D-Bus error name behind @error, or NULL for a local, non-D-Bus error. */
static gchar *
cli_error_dbus_name (const GError *error)
{
  if (g_dbus_error_is_remote_error (error))
    return g_dbus_error_get_remote_error (error);
  if (error->domain == SMOLVM_ERROR || error->domain == G_DBUS_ERROR)
    return g_dbus_error_encode_gerror (error);
  return NULL;
}

static gchar *
cli_help_command (Cli *cli)
{
  if (cli->verb != NULL && cli->verb->group != NULL)
    return g_strdup_printf ("smolvm %s %s --help", cli->verb->group, cli->verb->name);
  if (cli->verb != NULL)
    return g_strdup_printf ("smolvm %s --help", cli->verb->name);
  if (cli->group != NULL)
    return g_strdup_printf ("smolvm %s --help", cli->group->name);
  return g_strdup ("smolvm --help");
}

/* Reports @error on stderr, or with --json as an envelope on stdout, and
 * returns the exit status. */
static gint
cli_report_error (Cli *cli, const GError *error)
{
  gboolean usage = error->domain == G_OPTION_ERROR;
  g_autoptr(GError) shown = g_error_copy (error);
  g_autofree gchar *dbus_name = cli_error_dbus_name (error);
  const gchar *command = cli->verb != NULL ? cli->verb->command
                        : cli->group != NULL ? cli->group->name
                                             : NULL;
  gint exit_code = usage ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE;

  g_dbus_error_strip_remote_error (shown);
  /* The bus says this when smolvmd is neither running nor activatable. */
  if (g_error_matches (shown, G_DBUS_ERROR, G_DBUS_ERROR_SERVICE_UNKNOWN) ||
      g_error_matches (shown, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER)) {
    g_clear_error (&shown);
    cli_set_not_running (cli, &shown);
  }

  if (cli->json) {
    g_autoptr(JsonObject) payload = json_object_new ();
    const gchar *name = usage ? "Usage" : smolvm_error_short_name (shown);

    json_object_set_string_member (payload, "name", name != NULL ? name : "Failed");
    if (dbus_name != NULL)
      json_object_set_string_member (payload, "dbus_name", dbus_name);
    else
      json_object_set_null_member (payload, "dbus_name");
    json_object_set_string_member (payload, "message", shown->message);
    cli_print_envelope (command, exit_code, "error", payload);
  } else {
    g_printerr ("Error: %s\n", shown->message);
    if (usage) {
      g_autofree gchar *help = cli_help_command (cli);
      g_printerr ("Try '%s' for more information.\n", help);
    }
  }
  return exit_code;
}

/* ---- info dictionaries ---- */

static const gchar *
info_get_string (GVariant *info, const gchar *key)
{
  const gchar *value = NULL;

  if (!g_variant_lookup (info, key, "&s", &value))
    return "";
  return value;
}

static gboolean
info_get_boolean (GVariant *info, const gchar *key)
{
  gboolean value = FALSE;

  g_variant_lookup (info, key, "b", &value);
  return value;
}

static guint
info_get_uint (GVariant *info, const gchar *key)
{
  guint32 value = 0;

  g_variant_lookup (info, key, "u", &value);
  return value;
}

static gchar *
snapshot_info_created_at (GVariant *info, gboolean with_offset)
{
  guint64 created_at = 0;

  g_variant_lookup (info, SMOLVM_INFO_CREATED_AT, "t", &created_at);
  return smolvm_format_utc ((gint64) created_at, with_offset);
}

/* A SnapshotInfo dictionary as the CLI's JSON snapshot object. */
static JsonObject *
snapshot_info_to_json (GVariant *info)
{
  JsonObject *object = json_object_new ();
  const gchar *restored_vm_id = info_get_string (info, SMOLVM_INFO_RESTORED_VM_ID);
  g_autofree gchar *created_at = snapshot_info_created_at (info, TRUE);

  json_object_set_string_member (object, SMOLVM_INFO_SNAPSHOT_ID,
                                 info_get_string (info, SMOLVM_INFO_SNAPSHOT_ID));
  json_object_set_string_member (object, SMOLVM_INFO_VM_ID,
                                 info_get_string (info, SMOLVM_INFO_VM_ID));
  json_object_set_boolean_member (object, SMOLVM_INFO_RESTORED,
                                  info_get_boolean (info, SMOLVM_INFO_RESTORED));
  if (restored_vm_id[0] != '\0')
    json_object_set_string_member (object, SMOLVM_INFO_RESTORED_VM_ID, restored_vm_id);
  else
    json_object_set_null_member (object, SMOLVM_INFO_RESTORED_VM_ID);
  json_object_set_string_member (object, SMOLVM_INFO_CREATED_AT, created_at);
  json_object_set_string_member (object, SMOLVM_INFO_SNAPSHOT_PATH,
                                 info_get_string (info, SMOLVM_INFO_SNAPSHOT_PATH));
  json_object_set_string_member (object, SMOLVM_INFO_MEM_FILE_PATH,
                                 info_get_string (info, SMOLVM_INFO_MEM_FILE_PATH));
  json_object_set_string_member (object, SMOLVM_INFO_DISK_PATH,
                                 info_get_string (info, SMOLVM_INFO_DISK_PATH));
  return object;
}

static gchar **
snapshot_info_row (GVariant *info)
{
  gchar **row = g_new0 (gchar *, 5);

  row[0] = g_strdup (info_get_string (info, SMOLVM_INFO_SNAPSHOT_ID));
  row[1] = g_strdup (info_get_string (info, SMOLVM_INFO_VM_ID));
  row[2] = g_strdup (info_get_boolean (info, SMOLVM_INFO_RESTORED) ? "Yes" : "No");
  row[3] = snapshot_info_created_at (info, FALSE);
  return row;
}

typedef struct {
  const gchar *member; /* of the JSON data, an array */
  const gchar *noun;   /* for "Total: N noun." */
  const CliColumn *columns;
  guint n_columns;
  JsonObject *(*to_json) (GVariant *info);
  gchar **(*to_row) (GVariant *info);
} CliListing;

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

/* Members of the VM JSON object come in this order; keys a newer daemon adds
 * follow. */
static const gchar *const vm_info_keys[] = {
  "vm_id", "state", "backend", "pid", "vcpu_count", "mem_size_mib", "kernel_path",
  "initrd_path", "rootfs_path", "boot_args", "network", "accel", "machine", "disk_path",
  "console_log_path", "network_config", "restored_from",
};

/* A ListVMs dictionary as the CLI's JSON VM object. */
static JsonObject *
vm_info_to_json (GVariant *info)
{
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
vm_info_row (GVariant *info)
{
  gchar **row = g_new0 (gchar *, 7);
  g_autoptr(GVariant) network = g_variant_lookup_value (info, SMOLVM_INFO_NETWORK_CONFIG,
                                                        G_VARIANT_TYPE_VARDICT);
  const gchar *guest_ip = network != NULL ? info_get_string (network, "guest_ip") : "";

  row[0] = g_strdup (info_get_string (info, "vm_id"));
  row[1] = g_strdup (info_get_string (info, "state"));
  row[2] = g_strdup (info_get_string (info, "backend"));
  row[3] = g_strdup_printf ("%u", info_get_uint (info, "vcpu_count"));
  row[4] = g_strdup_printf ("%u MiB", info_get_uint (info, "mem_size_mib"));
  row[5] = g_strdup (guest_ip[0] != '\0' ? guest_ip : "-");
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

/* Prints an a(oa{sv}) list from smolvmd as a table and a total, or with
 * --json as an array and a total. */
static void
cli_finish_list (Cli *cli, GVariant *list, const CliListing *listing)
{
  g_autoptr(JsonObject) data = json_object_new ();
  g_autoptr(JsonArray) array = json_array_new ();
  g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func ((GDestroyNotify) g_strfreev);
  g_autoptr(GString) text = g_string_new (NULL);
  GVariantIter iter;
  GVariant *info;

  g_variant_iter_init (&iter, list);
  while (g_variant_iter_loop (&iter, "(&o@a{sv})", NULL, &info)) {
    json_array_add_object_element (array, listing->to_json (info));
    g_ptr_array_add (rows, listing->to_row (info));
  }

  json_object_set_array_member (data, listing->member, g_steal_pointer (&array));
  json_object_set_int_member (data, "total", rows->len);
  cli_format_table (text, listing->columns, listing->n_columns, rows);
  g_string_append_printf (text, "\nTotal: %u %s.\n", rows->len, listing->noun);
  cli_finish (cli, data, text->str);
}

/* The dictionary of the a(oa{sv}) entry at object path @path, or else of the
 * one whose @key is @id. */
static GVariant *
info_list_find (GVariant *list, const gchar *path, const gchar *key, const gchar *id)
{
  GVariantIter iter;
  const gchar *entry_path;
  GVariant *info;

  g_variant_iter_init (&iter, list);
  while (g_variant_iter_next (&iter, "(&o@a{sv})", &entry_path, &info)) {
    gboolean match = path != NULL ? g_str_equal (entry_path, path)
                                  : g_str_equal (info_get_string (info, key), id);
    if (match)
      return info;
    g_variant_unref (info);
  }
  return NULL;
}

/* ---- D-Bus ---- */

static GDBusCallFlags
cli_call_flags (Cli *cli)
{
  return cli->no_ask_password ? G_DBUS_CALL_FLAGS_NONE
                              : G_DBUS_CALL_FLAGS_ALLOW_INTERACTIVE_AUTHORIZATION;
}

/* Like systemctl: on a terminal, a text agent answers polkit's password
 * questions. Started before the first call, and the call waits until the
 * agent has registered (it closes --notify-fd then), so that polkit finds
 * it. Without pkttyagent the call simply fails with NotAuthorized. */
static void
cli_start_agent (Cli *cli)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree gchar *pkttyagent = NULL;
  int notify[2];
  gchar byte;

  /* reads need no authorization */
  if (cli->session || cli->no_ask_password || !isatty (STDIN_FILENO) ||
      (cli->verb != NULL && (g_str_equal (cli->verb->name, "list") ||
                             g_str_equal (cli->verb->name, "console-log"))) ||
      (pkttyagent = g_find_program_in_path ("pkttyagent")) == NULL)
    return;
  if (!g_unix_open_pipe (notify, FD_CLOEXEC, NULL))
    return;
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_INHERIT);
  g_subprocess_launcher_take_fd (launcher, notify[1], 3);
  cli->agent = g_subprocess_launcher_spawn (launcher, &error, pkttyagent, "--notify-fd", "3",
                                            "--fallback", NULL);
  g_clear_object (&launcher); /* closes our copy of the write end */
  if (cli->agent == NULL) {
    g_debug ("cannot start pkttyagent: %s", error->message);
    close (notify[0]);
    return;
  }
  /* EOF once the agent is registered, or has died */
  while (read (notify[0], &byte, 1) < 0 && errno == EINTR)
    ;
  close (notify[0]);
}

static gboolean
cli_connect (Cli *cli, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autofree gchar *owner = NULL;

  cli->bus = g_bus_get_sync (cli->session ? G_BUS_TYPE_SESSION : G_BUS_TYPE_SYSTEM, NULL,
                             &local_error);
  if (cli->bus == NULL) {
    g_propagate_prefixed_error (error, g_steal_pointer (&local_error),
                                "Cannot connect to the %s bus: ", cli_bus_label (cli));
    return FALSE;
  }

  cli->manager = smolvm_dbus_manager_proxy_new_sync (cli->bus, CLI_PROXY_FLAGS, SMOLVM_BUS_NAME,
                                                     SMOLVM_MANAGER_PATH, NULL, error);
  if (cli->manager == NULL)
    return FALSE;

  owner = g_dbus_proxy_get_name_owner (G_DBUS_PROXY (cli->manager));
  if (owner == NULL) {
    cli_set_not_running (cli, error);
    return FALSE;
  }
  cli_start_agent (cli);
  return TRUE;
}

static SmolvmDbusVm *
cli_vm_proxy_new (Cli *cli, const gchar *path, GError **error)
{
  /* The manager's unique name, so every call reaches the same daemon. */
  g_autofree gchar *owner = g_dbus_proxy_get_name_owner (G_DBUS_PROXY (cli->manager));

  if (owner == NULL) {
    cli_set_not_running (cli, error);
    return NULL;
  }
  return smolvm_dbus_vm_proxy_new_sync (cli->bus, CLI_PROXY_FLAGS, owner, path, NULL, error);
}

static SmolvmDbusVm *
cli_get_vm (Cli *cli, const gchar *vm_id, GError **error)
{
  g_autofree gchar *path = NULL;

  if (!smolvm_dbus_manager_call_get_vm_sync (cli->manager, vm_id, cli_call_flags (cli),
                                             CLI_CALL_TIMEOUT, &path, NULL, error))
    return NULL;
  return cli_vm_proxy_new (cli, path, error);
}

/* The ListVMs entry of the VM at @path. */
static GVariant *
cli_find_vm (Cli *cli, const gchar *path, GError **error)
{
  g_autoptr(GVariant) list = NULL;
  GVariant *info;

  if (!smolvm_dbus_manager_call_list_vms_sync (cli->manager, cli_call_flags (cli), CLI_CALL_TIMEOUT,
                                               &list, NULL, error))
    return NULL;
  info = info_list_find (list, path, NULL, NULL);
  if (info == NULL)
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND, "VM %s is gone", path);
  return info;
}

/* The SnapshotInfo of the snapshot at @path, or else of @snapshot_id. */
static GVariant *
cli_find_snapshot (Cli *cli, const gchar *vm_filter, const gchar *path, const gchar *snapshot_id,
                   GError **error)
{
  g_autoptr(GVariant) list = NULL;
  GVariant *info;

  if (!smolvm_dbus_manager_call_list_snapshots_sync (cli->manager,
                                                     vm_filter != NULL ? vm_filter : "",
                                                     cli_call_flags (cli), CLI_CALL_TIMEOUT, &list,
                                                     NULL, error))
    return NULL;
  info = info_list_find (list, path, SMOLVM_INFO_SNAPSHOT_ID, snapshot_id);
  if (info == NULL)
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND, "Snapshot '%s' not found",
                 snapshot_id != NULL ? snapshot_id : path);
  return info;
}

/* Options dictionaries carry a flag only when it is set. */
static void
options_add_flag (GVariantDict *options, const gchar *key, gboolean value)
{
  if (value)
    g_variant_dict_insert (options, key, "b", TRUE);
}

/* ---- snapshot commands ---- */

static gboolean
run_snapshot_create (Cli *cli, GError **error)
{
  const gchar *vm_id = cli->args[0];
  g_auto(GVariantDict) options = G_VARIANT_DICT_INIT (NULL);
  g_autofree gchar *path = NULL;
  g_autoptr(GVariant) info = NULL;
  g_autoptr(JsonObject) data = json_object_new ();
  g_autofree gchar *text = NULL;

  /* smolvmd checks it too; failing here saves a round trip and a prompt. */
  if (cli->snapshot_id != NULL && !smolvm_id_validate (cli->snapshot_id, "snapshot id", error))
    return FALSE;
  if (!cli_connect (cli, error))
    return FALSE;

  options_add_flag (&options, "resume-source", cli->resume_source);
  if (!smolvm_dbus_manager_call_create_snapshot_sync (
          cli->manager, vm_id, cli->snapshot_id != NULL ? cli->snapshot_id : "",
          g_variant_dict_end (&options), cli_call_flags (cli), CLI_CALL_TIMEOUT, &path, NULL,
          error))
    return FALSE;

  /* The object path alone does not tell a generated id back. */
  info = cli_find_snapshot (cli, vm_id, path, NULL, error);
  if (info == NULL)
    return FALSE;

  json_object_set_object_member (data, "snapshot", snapshot_info_to_json (info));
  text = g_strdup_printf ("Created snapshot '%s' from VM '%s'.\n",
                          info_get_string (info, SMOLVM_INFO_SNAPSHOT_ID),
                          info_get_string (info, SMOLVM_INFO_VM_ID));
  cli_finish (cli, data, text);
  return TRUE;
}

static gboolean
run_snapshot_restore (Cli *cli, GError **error)
{
  const gchar *snapshot_id = cli->args[0];
  g_auto(GVariantDict) options = G_VARIANT_DICT_INIT (NULL);
  g_autofree gchar *vm_path = NULL;
  g_autoptr(GVariant) info = NULL;
  g_autoptr(GVariant) vm_info = NULL;
  g_autoptr(JsonObject) data = json_object_new ();
  g_autofree gchar *text = NULL;
  const gchar *vm_id;

  if (!cli_connect (cli, error))
    return FALSE;

  options_add_flag (&options, "resume", cli->resume);
  options_add_flag (&options, "force", cli->force);
  if (!smolvm_dbus_manager_call_restore_snapshot_sync (cli->manager, snapshot_id,
                                                       g_variant_dict_end (&options),
                                                       cli_call_flags (cli), CLI_CALL_TIMEOUT,
                                                       &vm_path, NULL, error))
    return FALSE;

  info = cli_find_snapshot (cli, NULL, NULL, snapshot_id, error);
  if (info == NULL)
    return FALSE;
  vm_info = cli_find_vm (cli, vm_path, error);
  if (vm_info == NULL)
    return FALSE;
  vm_id = info_get_string (vm_info, SMOLVM_INFO_VM_ID);

  json_object_set_object_member (data, "snapshot", snapshot_info_to_json (info));
  json_object_set_string_member (data, "vm_id", vm_id);
  json_object_set_string_member (data, "vm_state", info_get_string (vm_info, "state"));
  text = g_strdup_printf ("Restored snapshot '%s' into VM '%s'.\n", snapshot_id, vm_id);
  cli_finish (cli, data, text);
  return TRUE;
}

static gboolean
run_snapshot_delete (Cli *cli, GError **error)
{
  const gchar *snapshot_id = cli->args[0];
  g_auto(GVariantDict) options = G_VARIANT_DICT_INIT (NULL);
  g_autoptr(JsonObject) data = json_object_new ();
  g_autofree gchar *text = NULL;

  if (!cli_connect (cli, error))
    return FALSE;
  if (!smolvm_dbus_manager_call_delete_snapshot_sync (cli->manager, snapshot_id,
                                                      g_variant_dict_end (&options),
                                                      cli_call_flags (cli), CLI_CALL_TIMEOUT, NULL,
                                                      error))
    return FALSE;

  json_object_set_string_member (data, "snapshot_id", snapshot_id);
  json_object_set_boolean_member (data, "deleted", TRUE);
  text = g_strdup_printf ("Deleted snapshot '%s'.\n", snapshot_id);
  cli_finish (cli, data, text);
  return TRUE;
}

static gboolean
run_snapshot_list (Cli *cli, GError **error)
{
  g_autoptr(GVariant) list = NULL;

  if (!cli_connect (cli, error))
    return FALSE;
  if (!smolvm_dbus_manager_call_list_snapshots_sync (cli->manager,
                                                     cli->vm_id != NULL ? cli->vm_id : "",
                                                     cli_call_flags (cli), CLI_CALL_TIMEOUT, &list,
                                                     NULL, error))
    return FALSE;
  cli_finish_list (cli, list, &snapshot_listing);
  return TRUE;
}

/* ---- VM commands ---- */

typedef enum {
  VM_ACTION_START,
  VM_ACTION_PAUSE,
  VM_ACTION_RESUME,
  VM_ACTION_STOP,
} VmAction;

static const gchar *const vm_action_done[] = {
  [VM_ACTION_START] = "Started",
  [VM_ACTION_PAUSE] = "Paused",
  [VM_ACTION_RESUME] = "Resumed",
  [VM_ACTION_STOP] = "Stopped",
};

static gboolean
vm_call_action (Cli *cli, SmolvmDbusVm *vm, VmAction action, GError **error)
{
  GDBusCallFlags flags = cli_call_flags (cli);

  switch (action) {
  case VM_ACTION_START:
    return smolvm_dbus_vm_call_start_sync (vm, flags, CLI_CALL_TIMEOUT, NULL, error);
  case VM_ACTION_PAUSE:
    return smolvm_dbus_vm_call_pause_sync (vm, flags, CLI_CALL_TIMEOUT, NULL, error);
  case VM_ACTION_RESUME:
    return smolvm_dbus_vm_call_resume_sync (vm, flags, CLI_CALL_TIMEOUT, NULL, error);
  case VM_ACTION_STOP:
    return smolvm_dbus_vm_call_stop_sync (vm, g_variant_new ("a{sv}", NULL), flags,
                                          CLI_CALL_TIMEOUT, NULL, error);
  default:
    g_assert_not_reached ();
  }
}

/* Reports success of a command on the VM at @path: @text, or with --json
 * the VM as smolvmd now lists it. */
static gboolean
cli_finish_vm (Cli *cli, const gchar *path, const gchar *text, GError **error)
{
  g_autoptr(GVariant) info = cli_find_vm (cli, path, error);
  g_autoptr(JsonObject) data = json_object_new ();

  if (info == NULL)
    return FALSE;
  json_object_set_object_member (data, "vm", vm_info_to_json (info));
  cli_finish (cli, data, text);
  return TRUE;
}

static gboolean
run_vm_action (Cli *cli, GError **error)
{
  const gchar *vm_id = cli->args[0];
  VmAction action = cli->verb->action;
  g_autoptr(SmolvmDbusVm) vm = NULL;
  g_autofree gchar *text = NULL;

  if (!cli_connect (cli, error))
    return FALSE;
  vm = cli_get_vm (cli, vm_id, error);
  if (vm == NULL || !vm_call_action (cli, vm, action, error))
    return FALSE;

  text = g_strdup_printf ("%s VM '%s'.\n", vm_action_done[action], vm_id);
  return cli_finish_vm (cli, g_dbus_proxy_get_object_path (G_DBUS_PROXY (vm)), text, error);
}

static gboolean
run_vm_delete (Cli *cli, GError **error)
{
  const gchar *vm_id = cli->args[0];
  g_auto(GVariantDict) options = G_VARIANT_DICT_INIT (NULL);
  g_autoptr(SmolvmDbusVm) vm = NULL;
  g_autoptr(JsonObject) data = json_object_new ();
  g_autofree gchar *text = NULL;

  if (!cli_connect (cli, error))
    return FALSE;
  vm = cli_get_vm (cli, vm_id, error);
  if (vm == NULL)
    return FALSE;
  options_add_flag (&options, "force", cli->force);
  if (!smolvm_dbus_vm_call_delete_sync (vm, g_variant_dict_end (&options), cli_call_flags (cli),
                                        CLI_CALL_TIMEOUT, NULL, error))
    return FALSE;

  json_object_set_string_member (data, "vm_id", vm_id);
  json_object_set_boolean_member (data, "deleted", TRUE);
  text = g_strdup_printf ("Deleted VM '%s'.\n", vm_id);
  cli_finish (cli, data, text);
  return TRUE;
}

/* The guest's console output. The file belongs to smolvmd, so reading it
 * may need the same privileges as the daemon's files. */
static gboolean
run_vm_console_log (Cli *cli, GError **error)
{
  const gchar *vm_id = cli->args[0];
  g_autoptr(SmolvmDbusVm) vm = NULL;
  g_autoptr(GVariant) info = NULL;
  g_autoptr(JsonObject) data = json_object_new ();
  g_autofree gchar *contents = NULL;
  g_autoptr(GError) local_error = NULL;
  const gchar *path = NULL;

  if (!cli_connect (cli, error))
    return FALSE;
  vm = cli_get_vm (cli, vm_id, error);
  if (vm == NULL)
    return FALSE;
  info = cli_find_vm (cli, g_dbus_proxy_get_object_path (G_DBUS_PROXY (vm)), error);
  if (info == NULL)
    return FALSE;
  if (!g_variant_lookup (info, "console_log_path", "&s", &path) || path[0] == '\0') {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_UNSUPPORTED, "VM '%s' has no console log",
                 vm_id);
    return FALSE;
  }
  json_object_set_string_member (data, "vm_id", vm_id);
  json_object_set_string_member (data, "console_log_path", path);
  if (cli->path_only) {
    g_autofree gchar *text = g_strdup_printf ("%s\n", path);
    cli_finish (cli, data, text);
    return TRUE;
  }
  if (!g_file_get_contents (path, &contents, NULL, &local_error)) {
    /* not started yet: nothing was printed */
    if (!g_error_matches (local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "Cannot read the console log: %s",
                   local_error->message);
      return FALSE;
    }
    contents = g_strdup ("");
  }
  json_object_set_string_member (data, "content", contents);
  cli_finish (cli, data, contents);
  return TRUE;
}

static gboolean
parse_count (const gchar *option, const gchar *value, guint32 *out, GError **error)
{
  guint64 number;

  if (!g_ascii_string_to_unsigned (value, 10, 1, G_MAXUINT32, &number, NULL)) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "%s needs a positive whole number, not '%s'", option, value);
    return FALSE;
  }
  *out = (guint32) number;
  return TRUE;
}

/* Adds @path to the VM config, absolute, since smolvmd does not share our
 * working directory. */
static gboolean
config_add_path (GVariantDict *config, const gchar *key, const gchar *path, GError **error)
{
  g_autofree gchar *absolute = NULL;

  if (path == NULL)
    return TRUE;
  absolute = g_canonicalize_filename (path, NULL);
  if (!g_utf8_validate (absolute, -1, NULL)) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                 "Path is not valid UTF-8: %s", absolute);
    return FALSE;
  }
  g_variant_dict_insert (config, key, "s", absolute);
  return TRUE;
}

static gboolean
vm_config_build (Cli *cli, GVariantDict *config, GError **error)
{
  guint32 count;

  if (cli->kernel == NULL || cli->rootfs == NULL) {
    g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                         "--kernel and --rootfs are required");
    return FALSE;
  }
  if (cli->vcpus != NULL) {
    if (!parse_count ("--vcpus", cli->vcpus, &count, error))
      return FALSE;
    g_variant_dict_insert (config, "vcpu_count", "u", count);
  }
  if (cli->mem != NULL) {
    if (!parse_count ("--mem", cli->mem, &count, error))
      return FALSE;
    g_variant_dict_insert (config, "mem_size_mib", "u", count);
  }
  if (cli->vm_id != NULL) {
    if (!smolvm_id_validate (cli->vm_id, "VM id", error))
      return FALSE;
    g_variant_dict_insert (config, "vm_id", "s", cli->vm_id);
  }
  if (!config_add_path (config, "kernel_path", cli->kernel, error) ||
      !config_add_path (config, "rootfs_path", cli->rootfs, error) ||
      !config_add_path (config, "initrd_path", cli->initrd, error))
    return FALSE;
  if (cli->boot_args != NULL)
    g_variant_dict_insert (config, "boot_args", "s", cli->boot_args);
  if (cli->backend != NULL)
    g_variant_dict_insert (config, "backend", "s", cli->backend);
  if (cli->accel != NULL)
    g_variant_dict_insert (config, "accel", "s", cli->accel);
  if (cli->no_network)
    g_variant_dict_insert (config, "network", "b", FALSE);
  return TRUE;
}

static gboolean
run_vm_create (Cli *cli, GError **error)
{
  g_auto(GVariantDict) config = G_VARIANT_DICT_INIT (NULL);
  g_autofree gchar *path = NULL;
  g_autoptr(GVariant) info = NULL;
  g_autoptr(GString) text = g_string_new (NULL);
  const gchar *vm_id;

  if (!vm_config_build (cli, &config, error) || !cli_connect (cli, error))
    return FALSE;
  if (!smolvm_dbus_manager_call_create_vm_sync (cli->manager, g_variant_dict_end (&config),
                                                cli_call_flags (cli), CLI_CALL_TIMEOUT, &path, NULL,
                                                error))
    return FALSE;

  /* The id may have been generated. */
  info = cli_find_vm (cli, path, error);
  if (info == NULL)
    return FALSE;
  vm_id = info_get_string (info, SMOLVM_INFO_VM_ID);
  g_string_append_printf (text, "Created VM '%s'.\n", vm_id);

  if (cli->start) {
    g_autoptr(SmolvmDbusVm) vm = cli_vm_proxy_new (cli, path, error);

    if (vm == NULL || !vm_call_action (cli, vm, VM_ACTION_START, error)) {
      /* the prefix goes in front of the daemon's own words */
      if (error != NULL && *error != NULL)
        g_dbus_error_strip_remote_error (*error);
      g_prefix_error (error, "VM '%s' was created but not started: ", vm_id);
      return FALSE;
    }
    g_string_append_printf (text, "Started VM '%s'.\n", vm_id);
  }
  return cli_finish_vm (cli, path, text->str, error);
}

static gboolean
run_vm_list (Cli *cli, GError **error)
{
  g_autoptr(GVariant) list = NULL;

  if (!cli_connect (cli, error))
    return FALSE;
  if (!smolvm_dbus_manager_call_list_vms_sync (cli->manager, cli_call_flags (cli), CLI_CALL_TIMEOUT,
                                               &list, NULL, error))
    return FALSE;
  cli_finish_list (cli, list, &vm_listing);
  return TRUE;
}

/* ---- command line ---- */

static void
options_snapshot_create (Cli *cli, GOptionContext *context)
{
  const GOptionEntry entries[] = {
    { "snapshot-id", 0, 0, G_OPTION_ARG_STRING, &cli->snapshot_id,
      "Id of the new snapshot (lowercase letters, digits and hyphens); generated if omitted",
      "ID" },
    { "resume-source", 0, 0, G_OPTION_ARG_NONE, &cli->resume_source,
      "Resume the source VM afterwards; without it the VM stays paused", NULL },
    G_OPTION_ENTRY_NULL
  };
  g_option_context_add_main_entries (context, entries, NULL);
}

static void
options_snapshot_restore (Cli *cli, GOptionContext *context)
{
  const GOptionEntry entries[] = {
    { "resume", 0, 0, G_OPTION_ARG_NONE, &cli->resume,
      "Resume the restored VM; without it the VM is restored paused", NULL },
    { "force", 0, 0, G_OPTION_ARG_NONE, &cli->force,
      "Restore a snapshot that was already restored before", NULL },
    G_OPTION_ENTRY_NULL
  };
  g_option_context_add_main_entries (context, entries, NULL);
}

static void
options_snapshot_list (Cli *cli, GOptionContext *context)
{
  const GOptionEntry entries[] = {
    { "vm-id", 0, 0, G_OPTION_ARG_STRING, &cli->vm_id,
      "Only list snapshots created from this VM", "VM_ID" },
    G_OPTION_ENTRY_NULL
  };
  g_option_context_add_main_entries (context, entries, NULL);
}

static void
options_vm_create (Cli *cli, GOptionContext *context)
{
  const GOptionEntry entries[] = {
    { "kernel", 0, 0, G_OPTION_ARG_FILENAME, &cli->kernel, "Guest kernel image (required)",
      "PATH" },
    { "rootfs", 0, 0, G_OPTION_ARG_FILENAME, &cli->rootfs,
      "Root filesystem image, copied into the VM's own disk (required)", "PATH" },
    { "vm-id", 0, 0, G_OPTION_ARG_STRING, &cli->vm_id, "Id of the new VM; generated if omitted",
      "ID" },
    { "vcpus", 0, 0, G_OPTION_ARG_STRING, &cli->vcpus, "Number of vCPUs (default 2)", "N" },
    { "mem", 0, 0, G_OPTION_ARG_STRING, &cli->mem, "Guest memory in MiB (default 512)", "MIB" },
    { "boot-args", 0, 0, G_OPTION_ARG_STRING, &cli->boot_args, "Kernel command line", "ARGS" },
    { "initrd", 0, 0, G_OPTION_ARG_FILENAME, &cli->initrd, "Initrd image", "PATH" },
    { "backend", 0, 0, G_OPTION_ARG_STRING, &cli->backend,
      "VM backend: firecracker (default) or qemu", "NAME" },
    { "accel", 0, 0, G_OPTION_ARG_STRING, &cli->accel,
      "QEMU accelerator: kvm, tcg or auto (default: KVM, else TCG)", "ACCEL" },
    { "no-network", 0, 0, G_OPTION_ARG_NONE, &cli->no_network, "Give the VM no network interface",
      NULL },
    { "start", 0, 0, G_OPTION_ARG_NONE, &cli->start, "Boot the VM once created", NULL },
    G_OPTION_ENTRY_NULL
  };
  g_option_context_add_main_entries (context, entries, NULL);
}

static void
options_vm_delete (Cli *cli, GOptionContext *context)
{
  const GOptionEntry entries[] = {
    { "force", 0, 0, G_OPTION_ARG_NONE, &cli->force, "Stop the VM first if it is running or paused",
      NULL },
    G_OPTION_ENTRY_NULL
  };
  g_option_context_add_main_entries (context, entries, NULL);
}

static void
options_vm_console_log (Cli *cli, GOptionContext *context)
{
  const GOptionEntry entries[] = {
    { "path", 0, 0, G_OPTION_ARG_NONE, &cli->path_only, "Print the log file's path only", NULL },
    G_OPTION_ENTRY_NULL
  };
  g_option_context_add_main_entries (context, entries, NULL);
}

static const CliVerb cli_verbs[] = {
  { NULL, "create", "vm.create", "", 0, "Create a VM from a kernel and a root filesystem image.",
    options_vm_create, run_vm_create, 0 },
  { NULL, "list", "vm.list", "", 0, "List VMs.", NULL, run_vm_list, 0 },
  { NULL, "start", "vm.start", "VM_ID", 1, "Boot a created or stopped VM.", NULL, run_vm_action,
    VM_ACTION_START },
  { NULL, "pause", "vm.pause", "VM_ID", 1, "Pause a running VM.", NULL, run_vm_action,
    VM_ACTION_PAUSE },
  { NULL, "resume", "vm.resume", "VM_ID", 1, "Resume a paused VM.", NULL, run_vm_action,
    VM_ACTION_RESUME },
  { NULL, "stop", "vm.stop", "VM_ID", 1, "Stop a VM; its disk is kept.", NULL, run_vm_action,
    VM_ACTION_STOP },
  { NULL, "delete", "vm.delete", "VM_ID", 1, "Delete a VM and its disk.", options_vm_delete,
    run_vm_delete, 0 },
  { NULL, "console-log", "vm.console-log", "VM_ID", 1,
    "Print what the guest wrote on its serial console.", options_vm_console_log,
    run_vm_console_log, 0 },
  { "snapshot", "create", "snapshot.create", "VM_ID", 1,
    "Save the full state of a running or paused VM.", options_snapshot_create,
    run_snapshot_create, 0 },
  { "snapshot", "restore", "snapshot.restore", "SNAPSHOT_ID", 1,
    "Restore a snapshot back into its original VM identity.", options_snapshot_restore,
    run_snapshot_restore, 0 },
  { "snapshot", "delete", "snapshot.delete", "SNAPSHOT_ID", 1,
    "Delete a snapshot and its associated files, permanently.", NULL, run_snapshot_delete, 0 },
  { "snapshot", "list", "snapshot.list", "", 0,
    "List all snapshots, optionally filtered by source VM.", options_snapshot_list,
    run_snapshot_list, 0 },
};

static const CliVerb *
cli_verb_lookup (const gchar *group, const gchar *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS (cli_verbs); i++)
    if (g_strcmp0 (cli_verbs[i].group, group) == 0 && g_str_equal (cli_verbs[i].name, name))
      return &cli_verbs[i];
  return NULL;
}

static const CliGroup *
cli_group_lookup (const gchar *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS (cli_groups); i++)
    if (g_str_equal (cli_groups[i].name, name))
      return &cli_groups[i];
  return NULL;
}

/* The command list shown by "smolvm --help" and "smolvm GROUP --help". */
static gchar *
cli_commands_help (const gchar *group)
{
  g_autoptr(GString) help = g_string_new ("Commands:\n");

  for (gsize i = 0; i < G_N_ELEMENTS (cli_verbs); i++)
    if (g_strcmp0 (cli_verbs[i].group, group) == 0)
      g_string_append_printf (help, "  %-12s %s\n", cli_verbs[i].name, cli_verbs[i].summary);
  if (group == NULL)
    for (gsize i = 0; i < G_N_ELEMENTS (cli_groups); i++)
      g_string_append_printf (help, "  %-12s %s\n", cli_groups[i].name, cli_groups[i].summary);
  g_string_append_printf (help, "\nRun 'smolvm %s%sCOMMAND --help' for the options of a command.",
                          group != NULL ? group : "", group != NULL ? " " : "");
  return g_string_free (g_steal_pointer (&help), FALSE);
}

static void
cli_add_common_options (Cli *cli, GOptionContext *context)
{
  const GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &cli->json,
      "Output machine-readable JSON instead of human-friendly text", NULL },
    { "session", 0, 0, G_OPTION_ARG_NONE, &cli->session,
      "Talk to smolvmd on the session bus instead of the system bus", NULL },
    { "no-ask-password", 0, 0, G_OPTION_ARG_NONE, &cli->no_ask_password,
      "Do not ask for a password to authorize the operation", NULL },
    { "version", 0, 0, G_OPTION_ARG_NONE, &cli->version, "Print the version and exit", NULL },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_STRING_ARRAY, &cli->args, NULL, NULL },
    G_OPTION_ENTRY_NULL
  };
  g_option_context_add_main_entries (context, entries, NULL);
}

/* Position of the first argument from @start on that is no option, or
 * @argc. Options before the command words can only be the flags that every
 * command takes, so none of them swallows the next argument. */
static gint
argv_next_word (gint argc, gchar **argv, gint start)
{
  gint i = start;

  while (i < argc && argv[i][0] == '-')
    i++;
  return i;
}

/* A usage error must come as JSON too when --json was given, even if the
 * command line cannot be parsed. */
static gboolean
argv_wants_json (gint argc, gchar **argv)
{
  for (gint i = 1; i < argc && !g_str_equal (argv[i], "--"); i++)
    if (g_str_equal (argv[i], "--json"))
      return TRUE;
  return FALSE;
}

static gboolean
cli_parse (Cli *cli, gint argc, gchar **argv, GError **error)
{
  gint first = argv_next_word (argc, argv, 1);
  gint second = argc;
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();
  g_auto(GStrv) args = NULL;
  g_autofree gchar *params = NULL;
  guint n_args;

  cli->json = argv_wants_json (argc, argv);

  /* Find the command words: VERB, or GROUP VERB. */
  if (first < argc) {
    cli->group = cli_group_lookup (argv[first]);
    if (cli->group != NULL) {
      second = argv_next_word (argc, argv, first + 1);
      if (second < argc) {
        cli->verb = cli_verb_lookup (cli->group->name, argv[second]);
        if (cli->verb == NULL) {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "Unknown %s command '%s'",
                       cli->group->name, argv[second]);
          return FALSE;
        }
      }
    } else {
      cli->verb = cli_verb_lookup (NULL, argv[first]);
      if (cli->verb == NULL) {
        g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "Unknown command '%s'",
                     argv[first]);
        return FALSE;
      }
    }
  }

  if (cli->verb != NULL) {
    params = g_strdup_printf ("%s%s%s%s%s", cli->group != NULL ? cli->group->name : "",
                              cli->group != NULL ? " " : "", cli->verb->name,
                              cli->verb->n_args > 0 ? " " : "", cli->verb->params);
    context = g_option_context_new (params);
    g_option_context_set_summary (context, cli->verb->summary);
    if (cli->verb->add_options != NULL)
      cli->verb->add_options (cli, context);
  } else {
    const gchar *group = cli->group != NULL ? cli->group->name : NULL;
    g_autofree gchar *commands = cli_commands_help (group);

    params = g_strdup_printf ("%s%sCOMMAND [ARGUMENTS…]", group != NULL ? group : "",
                              group != NULL ? " " : "");
    context = g_option_context_new (params);
    g_option_context_set_summary (context, cli->group != NULL
                                               ? cli->group->summary
                                               : "Run and snapshot microVMs through smolvmd.");
    g_option_context_set_description (context, commands);
  }
  cli_add_common_options (cli, context);

  /* The command words are not arguments of the command. */
  for (gint i = 0; i < argc; i++)
    if (i != first && i != second)
      g_strv_builder_add (builder, argv[i]);
  args = g_strv_builder_end (builder);
  if (!g_option_context_parse_strv (context, &args, error)) {
    /* GOption reverts every option when it fails. */
    cli->json = argv_wants_json (argc, argv);
    return FALSE;
  }

  if (cli->version)
    return TRUE;
  if (cli->verb == NULL) {
    if (cli->group != NULL)
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "Missing %s command",
                   cli->group->name);
    else
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "Missing command");
    return FALSE;
  }

  n_args = cli->args != NULL ? g_strv_length (cli->args) : 0;
  if (n_args < cli->verb->n_args) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "Missing argument %s",
                 cli->verb->params);
    return FALSE;
  }
  if (n_args > cli->verb->n_args) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "Unexpected argument '%s'",
                 cli->args[cli->verb->n_args]);
    return FALSE;
  }
  return TRUE;
}

int
main (int argc, char **argv)
{
  g_auto(Cli) cli = { 0 };
  g_autoptr(GError) error = NULL;

  setlocale (LC_ALL, "");
  g_set_prgname ("smolvm");
  /* Registers org.smolvm.Error.* so that remote errors come back as
   * SMOLVM_ERROR codes. */
  smolvm_error_quark ();

  if (!cli_parse (&cli, argc, argv, &error))
    return cli_report_error (&cli, error);
  if (cli.version) {
    g_print ("smolvm %s\n", PACKAGE_VERSION);
    return EXIT_SUCCESS;
  }
  if (!cli.verb->run (&cli, &error))
    return cli_report_error (&cli, error);
  return EXIT_SUCCESS;
}
