/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "smolvm-error-map.h"

#include "cli-output.h"

/* The envelope: "command", "exit_code" (the keys of the CLI reference, in
 * its order), then "ok", "data" and "error" as SmolVM's CLI prints them: one
 * of @data and @error, the other null. */
static void
cli_print_envelope (const gchar *command, gint exit_code, JsonObject *data, JsonObject *error)
{
  g_autoptr(JsonObject) envelope = json_object_new ();
  g_autoptr(GString) text = g_string_new (NULL);

  if (command != NULL)
    json_object_set_string_member (envelope, "command", command);
  else
    json_object_set_null_member (envelope, "command");
  json_object_set_int_member (envelope, "exit_code", exit_code);
  json_object_set_boolean_member (envelope, "ok", exit_code == 0);
  if (data != NULL)
    json_object_set_object_member (envelope, "data", json_object_ref (data));
  else
    json_object_set_null_member (envelope, "data");
  if (error != NULL)
    json_object_set_object_member (envelope, "error", json_object_ref (error));
  else
    json_object_set_null_member (envelope, "error");

  cli_format_json (text, envelope);
  /* JSON is UTF-8 whatever the locale; g_print() would convert it. */
  fwrite (text->str, 1, text->len, stdout);
}

void
cli_finish (Cli *cli, JsonObject *data, const gchar *text)
{
  if (cli->json)
    cli_print_envelope (cli->verb->command, 0, data, NULL);
  else
    g_print ("%s", text);
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

/* The bus's answers when activating smolvmd failed or timed out. */
static gboolean
is_activation_failure (const GError *error)
{
  if (error->domain != G_DBUS_ERROR)
    return FALSE;
  switch (error->code) {
  case G_DBUS_ERROR_TIMED_OUT:
  case G_DBUS_ERROR_SPAWN_EXEC_FAILED:
  case G_DBUS_ERROR_SPAWN_FORK_FAILED:
  case G_DBUS_ERROR_SPAWN_CHILD_EXITED:
  case G_DBUS_ERROR_SPAWN_CHILD_SIGNALED:
  case G_DBUS_ERROR_SPAWN_FAILED:
  case G_DBUS_ERROR_SPAWN_SETUP_FAILED:
  case G_DBUS_ERROR_SPAWN_SERVICE_INVALID:
  case G_DBUS_ERROR_SPAWN_SERVICE_NOT_FOUND:
  case G_DBUS_ERROR_SPAWN_FILE_INVALID:
    return TRUE;
  default:
    return FALSE;
  }
}

/* The "type" of an error envelope, in SmolVM's three words. SmolVM calls
 * invalid_input what its CLI raises as ValueError (a bad id or option),
 * missing_dependency a FileNotFoundError or ImportError (something to
 * install), and runtime_error everything else, its NotFound, AlreadyExists
 * and already-restored errors included. */
typedef struct {
  GQuark (*domain) (void);
  gint code; /* -1: every code of the domain */
  const gchar *type;
} CliErrorType;

static const CliErrorType cli_error_types[] = {
  { g_option_error_quark, -1, "invalid_input" }, /* usage errors */
  { smolvm_error_quark, SMOLVM_ERROR_INVALID_ARGUMENT, "invalid_input" },
  { smolvm_error_quark, SMOLVM_ERROR_FAILED, "runtime_error" },
  { smolvm_error_quark, SMOLVM_ERROR_NOT_FOUND, "runtime_error" },
  { smolvm_error_quark, SMOLVM_ERROR_ALREADY_EXISTS, "runtime_error" },
  { smolvm_error_quark, SMOLVM_ERROR_INVALID_STATE, "runtime_error" },
  { smolvm_error_quark, SMOLVM_ERROR_ALREADY_RESTORED, "runtime_error" },
  { smolvm_error_quark, SMOLVM_ERROR_IN_USE, "runtime_error" },
  { smolvm_error_quark, SMOLVM_ERROR_NOT_AUTHORIZED, "runtime_error" },
  { smolvm_error_quark, SMOLVM_ERROR_UNSUPPORTED, "runtime_error" },
  { smolvm_error_quark, SMOLVM_ERROR_BACKEND, "runtime_error" },
  { smolvm_error_quark, SMOLVM_ERROR_NO_SPACE, "runtime_error" },
  { smolvm_error_quark, SMOLVM_ERROR_CANCELLED, "runtime_error" },
  { smolvm_error_quark, SMOLVM_ERROR_AUTHORIZATION_DISMISSED, "runtime_error" },
  { smolvm_error_quark, SMOLVM_ERROR_CORRUPT, "runtime_error" },
  { smolvm_error_quark, SMOLVM_ERROR_NOT_A_SNAPSHOT, "runtime_error" },
  { smolvm_error_quark, SMOLVM_ERROR_REGISTRY_UNAVAILABLE, "runtime_error" },
  { smolvm_error_quark, SMOLVM_ERROR_REGISTRY_AUTH_FAILED, "runtime_error" },
  /* smolvmd not installed or not running (cli_report_error() turns
   * NameHasNoOwner into this), or its service file or binary missing */
  { g_dbus_error_quark, G_DBUS_ERROR_SERVICE_UNKNOWN, "missing_dependency" },
  { g_dbus_error_quark, G_DBUS_ERROR_SPAWN_SERVICE_NOT_FOUND, "missing_dependency" },
  { g_dbus_error_quark, G_DBUS_ERROR_SPAWN_EXEC_FAILED, "missing_dependency" },
  /* no bus socket: the bus itself is missing (SmolVM's FileNotFoundError) */
  { g_io_error_quark, G_IO_ERROR_NOT_FOUND, "missing_dependency" },
};

static const gchar *
cli_error_type (const GError *error)
{
  for (gsize i = 0; i < G_N_ELEMENTS (cli_error_types); i++)
    if (error->domain == cli_error_types[i].domain () &&
        (cli_error_types[i].code == -1 || error->code == cli_error_types[i].code))
      return cli_error_types[i].type;
  return "runtime_error";
}

gint
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
  if (g_error_matches (shown, G_DBUS_ERROR, G_DBUS_ERROR_SERVICE_UNKNOWN)) {
    g_clear_error (&shown);
    cli_set_not_installed (cli->session, &shown);
  } else if (g_error_matches (shown, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER)) {
    g_clear_error (&shown);
    cli_set_not_running (cli->session, &shown);
  } else if (is_activation_failure (shown)) {
    /* the bus could not start it: why is in smolvmd's log */
    g_prefix_error (&shown, "smolvmd could not be started (see journalctl -u smolvmd): ");
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
    json_object_set_string_member (payload, "type", cli_error_type (shown));
    if (cli->error_details != NULL)
      json_object_set_object_member (payload, "details", json_object_ref (cli->error_details));
    cli_print_envelope (command, exit_code, NULL, payload);
  } else {
    g_printerr ("Error: %s\n", shown->message);
    if (usage) {
      g_autofree gchar *help = cli_help_command (cli);
      g_printerr ("Try '%s' for more information.\n", help);
    }
  }
  return exit_code;
}

gboolean
cli_job_failed (GError **error)
{
  cli_error_mark_cancelled (error != NULL ? *error : NULL);
  return FALSE;
}

void
cli_error_mark_cancelled (GError *error)
{
  g_autofree gchar *message = NULL;
  g_autofree gchar *remote = NULL;
  const gchar *text;

  if (error == NULL || !g_error_matches (error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED))
    return;
  /* A remote error's message starts with "GDBus.Error:NAME: ". */
  text = error->message;
  if (g_dbus_error_is_remote_error (error)) {
    remote = g_dbus_error_get_remote_error (error);
    if (remote != NULL && g_str_has_prefix (text, "GDBus.Error:") &&
        g_str_has_prefix (text + strlen ("GDBus.Error:"), remote) &&
        g_str_has_prefix (text + strlen ("GDBus.Error:") + strlen (remote), ": "))
      text += strlen ("GDBus.Error:") + strlen (remote) + 2;
  }
  if (g_str_has_prefix (text, "Cancelled"))
    return;
  message = g_strdup_printf ("%.*sCancelled: %s", (int) (text - error->message), error->message,
                             text);
  g_free (error->message);
  error->message = g_steal_pointer (&message);
}

void
cli_finish_rows (Cli *cli, const CliListing *listing, GPtrArray *rows, JsonArray *array,
                 JsonObject *extra, const gchar *empty)
{
  g_autoptr(JsonObject) data = json_object_new ();
  g_autoptr(GString) text = g_string_new (NULL);

  json_object_set_array_member (data, listing->member, json_array_ref (array));
  json_object_set_int_member (data, "total", rows->len);
  if (extra != NULL) {
    JsonObjectIter iter;
    const gchar *name;
    JsonNode *member;

    json_object_iter_init_ordered (&iter, extra);
    while (json_object_iter_next_ordered (&iter, &name, &member))
      json_object_set_member (data, name, json_node_copy (member));
  }
  if (rows->len == 0 && empty != NULL) {
    g_string_append_printf (text, "%s\n", empty);
  } else {
    cli_format_table (text, listing->columns, listing->n_columns, rows);
    g_string_append_printf (text, "\nTotal: %u %s.\n", rows->len, listing->noun);
  }
  cli_finish (cli, data, text->str);
}

void
cli_finish_list (Cli *cli, GPtrArray *infos, const CliListing *listing, JsonObject *extra,
                 const gchar *empty)
{
  g_autoptr(JsonArray) array = json_array_new ();
  g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func ((GDestroyNotify) g_strfreev);

  for (guint i = 0; i < infos->len; i++) {
    json_array_add_object_element (array, listing->to_json (g_ptr_array_index (infos, i)));
    g_ptr_array_add (rows, listing->to_row (g_ptr_array_index (infos, i)));
  }
  cli_finish_rows (cli, listing, rows, array, extra, empty);
}
