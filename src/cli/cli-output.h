/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the CLI prints: the JSON envelope of --json, the text of a result,
 * errors (text on stderr or an error envelope) and tables of VMs, snapshots
 * and jobs. */

#include <json-glib/json-glib.h>

#include "cli-format.h"
#include "cli.h"

G_BEGIN_DECLS

/* Prints the result of a successful command: @data with --json, else @text. */
void cli_finish (Cli *cli, JsonObject *data, const gchar *text);

/* Reports @error on stderr, or with --json as an envelope on stdout (its
 * error: name, dbus_name, message and SmolVM's type, then the verb's
 * cli->error_details as "details" if it set any), and returns the exit
 * status. */
gint cli_report_error (Cli *cli, const GError *error);

/* An org.smolvm.Error.Cancelled whose message does not say so gets
 * "Cancelled: " in front, so that "Error: Cancelled..." is what the user
 * reads. */
void cli_error_mark_cancelled (GError *error);
/* The end of a verb whose call failed: marks @error as above and returns
 * FALSE. */
gboolean cli_job_failed (GError **error);

typedef struct {
  const gchar *member; /* of the JSON data, an array */
  const gchar *noun;   /* for "Total: N noun." */
  const CliColumn *columns;
  guint n_columns;
  /* of one element of the list (a SmolvmVmInfo, a SmolvmSnapshotInfo) */
  JsonObject *(*to_json) (gpointer info);
  gchar **(*to_row) (gpointer info);
} CliListing;

/* Prints @infos (a list of libsmolvm-1, e.g. of SmolvmVmInfo) as a table
 * and a total, or with --json as an array and a total, followed by the
 * members of @extra (may be NULL). Without rows, @empty (a line, without
 * its newline) stands for the table, unless it is NULL. */
void cli_finish_list (Cli *cli, GPtrArray *infos, const CliListing *listing, JsonObject *extra,
                      const gchar *empty);

/* Prints @rows (string vectors of @listing's columns) and @array (the same
 * as JSON objects) as cli_finish_list() does. */
void cli_finish_rows (Cli *cli, const CliListing *listing, GPtrArray *rows, JsonArray *array,
                      JsonObject *extra, const gchar *empty);

G_END_DECLS
