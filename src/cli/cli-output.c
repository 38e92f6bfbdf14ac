/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "smolvm-error-map.h"

#include "cli-output.h"

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

void
cli_finish (Cli *cli, JsonObject *data, const gchar *text)
{
  if (cli->json)
    cli_print_envelope (cli->verb->command, 0, "data", data);
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
cli_finish_rows (Cli *cli, const CliListing *listing, GPtrArray *rows, JsonArray *array)
{
  g_autoptr(JsonObject) data = json_object_new ();
  g_autoptr(GString) text = g_string_new (NULL);

  json_object_set_array_member (data, listing->member, json_array_ref (array));
  json_object_set_int_member (data, "total", rows->len);
  cli_format_table (text, listing->columns, listing->n_columns, rows);
  g_string_append_printf (text, "\nTotal: %u %s.\n", rows->len, listing->noun);
  cli_finish (cli, data, text->str);
}

void
cli_finish_list (Cli *cli, GPtrArray *infos, const CliListing *listing)
{
  g_autoptr(JsonArray) array = json_array_new ();
  g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func ((GDestroyNotify) g_strfreev);

  for (guint i = 0; i < infos->len; i++) {
    json_array_add_object_element (array, listing->to_json (g_ptr_array_index (infos, i)));
    g_ptr_array_add (rows, listing->to_row (g_ptr_array_index (infos, i)));
  }
  cli_finish_rows (cli, listing, rows, array);
}
