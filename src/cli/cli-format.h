/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* Appends @object and a newline, laid out like the JSON of the CLI reference
 * (Python's json.dumps with indent=2): two spaces per level, "key": value,
 * [] and {} when empty. json-glib's pretty printer writes "key" : value. */
void cli_format_json (GString *out, JsonObject *object);

typedef struct {
  const gchar *title;
  guint width; /* minimum; a longer title or value widens the column */
} CliColumn;

/* Appends a table: a header of the column titles, then one line per row, each
 * cell left-aligned and indented by two spaces. @rows holds one string vector
 * of @n_columns cells per row. */
void cli_format_table (GString *out, const CliColumn *columns, guint n_columns, GPtrArray *rows);

G_END_DECLS
