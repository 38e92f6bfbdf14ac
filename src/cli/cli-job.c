/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* smolvm job list|cancel */
#include "config.h"

#include <stdlib.h>

#include "smolvm-generated.h"
#include "smolvm-id.h"

#include "cli-output.h"
#include "cli-verbs.h"

#define JOB_PATH_PREFIX SMOLVM_MANAGER_PATH "/job/"

/* N of /org/smolvm/Manager/job/N, or 0 if @path is no job's path. */
static guint64
job_number (const gchar *path)
{
  guint64 number = 0;

  if (!g_str_has_prefix (path, JOB_PATH_PREFIX) ||
      !g_ascii_string_to_unsigned (path + strlen (JOB_PATH_PREFIX), 10, 1, G_MAXUINT64, &number,
                                   NULL))
    return 0;
  return number;
}

/* "vm/my-vm" for /org/smolvm/Manager/vm/my_2dvm; other paths as they are. */
static gchar *
object_label (const gchar *path)
{
  static const gchar *const kinds[] = { "vm", "snapshot", "job" };

  for (gsize i = 0; i < G_N_ELEMENTS (kinds); i++) {
    g_autofree gchar *prefix = g_strdup_printf ("%s/%s/", SMOLVM_MANAGER_PATH, kinds[i]);
    g_autofree guint8 *id = NULL;

    if (!g_str_has_prefix (path, prefix))
      continue;
    id = g_dbus_unescape_object_path (path + strlen (prefix));
    if (id != NULL && g_utf8_validate ((const gchar *) id, -1, NULL))
      return g_strdup_printf ("%s/%s", kinds[i], (const gchar *) id);
  }
  return g_strdup (path);
}

static JsonObject *
job_to_json (SmolvmDbusJob *job)
{
  JsonObject *object = json_object_new ();
  const gchar *path = g_dbus_proxy_get_object_path (G_DBUS_PROXY (job));
  const gchar *const *objects = smolvm_dbus_job_get_objects (job);
  g_autoptr(JsonArray) array = json_array_new ();

  for (gsize i = 0; objects != NULL && objects[i] != NULL; i++)
    json_array_add_string_element (array, objects[i]);

  json_object_set_int_member (object, "job", (gint64) job_number (path));
  json_object_set_string_member (object, "path", path);
  json_object_set_string_member (object, "operation", smolvm_dbus_job_get_operation (job));
  json_object_set_array_member (object, "objects", g_steal_pointer (&array));
  json_object_set_string_member (object, "phase", smolvm_dbus_job_get_phase (job));
  json_object_set_double_member (object, "progress", smolvm_dbus_job_get_progress (job));
  json_object_set_boolean_member (object, "progress_valid",
                                  smolvm_dbus_job_get_progress_valid (job));
  json_object_set_int_member (object, "bytes_done", (gint64) smolvm_dbus_job_get_bytes_done (job));
  json_object_set_int_member (object, "bytes_total",
                              (gint64) smolvm_dbus_job_get_bytes_total (job));
  json_object_set_int_member (object, "rate", (gint64) smolvm_dbus_job_get_rate (job));
  json_object_set_int_member (object, "start_time", (gint64) smolvm_dbus_job_get_start_time (job));
  json_object_set_int_member (object, "expected_end_time",
                              (gint64) smolvm_dbus_job_get_expected_end_time (job));
  json_object_set_int_member (object, "started_by_uid", smolvm_dbus_job_get_started_by_uid (job));
  json_object_set_boolean_member (object, "cancelable", smolvm_dbus_job_get_cancelable (job));
  return object;
}

static gchar **
job_to_row (SmolvmDbusJob *job)
{
  gchar **row = g_new0 (gchar *, 7);
  const gchar *path = g_dbus_proxy_get_object_path (G_DBUS_PROXY (job));
  const gchar *const *objects = smolvm_dbus_job_get_objects (job);
  g_autoptr(GPtrArray) labels = g_ptr_array_new_with_free_func (g_free);
  const gchar *phase = smolvm_dbus_job_get_phase (job);
  guint64 number = job_number (path);

  for (gsize i = 0; objects != NULL && objects[i] != NULL; i++)
    g_ptr_array_add (labels, object_label (objects[i]));
  g_ptr_array_add (labels, NULL);

  row[0] = number > 0 ? g_strdup_printf ("%" G_GUINT64_FORMAT, number) : g_strdup (path);
  row[1] = g_strdup (smolvm_dbus_job_get_operation (job));
  row[2] = g_strdup (phase != NULL && phase[0] != '\0' ? phase : "-");
  row[3] = smolvm_dbus_job_get_progress_valid (job)
               ? g_strdup_printf ("%u%%",
                                  (guint) (CLAMP (smolvm_dbus_job_get_progress (job), 0.0, 1.0) *
                                           100.0))
               : g_strdup ("-");
  row[4] = g_strdup_printf ("%u", smolvm_dbus_job_get_started_by_uid (job));
  row[5] = labels->len > 1 ? g_strjoinv (", ", (gchar **) labels->pdata) : g_strdup ("-");
  return row;
}

static const CliColumn job_columns[] = {
  { "Job", 4 },
  { "Operation", 17 },
  { "Phase", 15 },
  { "Progress", 9 },
  { "UID", 6 },
  { "Objects", 0 },
};

static const CliListing job_listing = {
  "jobs", "job(s)", job_columns, G_N_ELEMENTS (job_columns), NULL, NULL,
};

static gint
compare_jobs (gconstpointer a, gconstpointer b)
{
  const gchar *path_a = g_dbus_proxy_get_object_path (*(GDBusProxy **) a);
  const gchar *path_b = g_dbus_proxy_get_object_path (*(GDBusProxy **) b);
  guint64 na = job_number (path_a);
  guint64 nb = job_number (path_b);

  if (na != nb)
    return na < nb ? -1 : 1;
  return g_strcmp0 (path_a, path_b);
}

gboolean
cli_job_list (Cli *cli, GError **error)
{
  g_autoptr(GDBusObjectManager) manager = NULL;
  g_autolist(GDBusObject) objects = NULL;
  g_autoptr(GPtrArray) jobs = g_ptr_array_new ();
  g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func ((GDestroyNotify) g_strfreev);
  g_autoptr(JsonArray) array = json_array_new ();

  if (!cli_connect (cli, error))
    return FALSE;
  manager = cli_client_object_manager_new (cli->client, error);
  if (manager == NULL)
    return FALSE;

  objects = g_dbus_object_manager_get_objects (manager);
  for (GList *l = objects; l != NULL; l = l->next) {
    SmolvmDbusJob *job = smolvm_dbus_object_peek_job (SMOLVM_DBUS_OBJECT (l->data));
    if (job != NULL)
      g_ptr_array_add (jobs, job);
  }
  g_ptr_array_sort (jobs, compare_jobs);
  for (guint i = 0; i < jobs->len; i++) {
    json_array_add_object_element (array, job_to_json (g_ptr_array_index (jobs, i)));
    g_ptr_array_add (rows, job_to_row (g_ptr_array_index (jobs, i)));
  }
  cli_finish_rows (cli, &job_listing, rows, array, NULL, NULL);
  return TRUE;
}

/* @arg is N or /org/smolvm/Manager/job/N. */
static gchar *
job_path_parse (const gchar *arg, GError **error)
{
  guint64 number;

  if (g_ascii_string_to_unsigned (arg, 10, 1, G_MAXUINT64, &number, NULL))
    return g_strdup_printf ("%s%" G_GUINT64_FORMAT, JOB_PATH_PREFIX, number);
  if (job_number (arg) > 0)
    return g_strdup (arg);
  g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
               "Invalid job '%s': give its number N or its path " JOB_PATH_PREFIX "N", arg);
  return NULL;
}

gboolean
cli_job_cancel (Cli *cli, GError **error)
{
  g_autofree gchar *path = NULL;
  g_autoptr(GError) local_error = NULL;
  g_autoptr(JsonObject) data = json_object_new ();
  g_autofree gchar *text = NULL;
  guint64 number;

  path = job_path_parse (cli->args[0], error);
  if (path == NULL || !cli_connect (cli, error))
    return FALSE;
  number = job_number (path);
  if (!smolvm_client_cancel_job_sync (cli_client_get_smolvm (cli->client), path, NULL,
                                      &local_error)) {
    /* no such object, or it is no job */
    if (g_error_matches (local_error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_OBJECT) ||
        g_error_matches (local_error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD) ||
        g_error_matches (local_error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_INTERFACE)) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND,
                   "Job %" G_GUINT64_FORMAT " not found", number);
      return FALSE;
    }
    g_propagate_error (error, g_steal_pointer (&local_error));
    return FALSE;
  }

  json_object_set_int_member (data, "job", (gint64) number);
  json_object_set_string_member (data, "path", path);
  json_object_set_boolean_member (data, "cancelled", TRUE);
  text = g_strdup_printf ("Cancelled job %" G_GUINT64_FORMAT ".\n", number);
  cli_finish (cli, data, text);
  return TRUE;
}
