/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "cli-format.h"

static void json_write_node (GString *out, JsonNode *node, guint depth);

static void
json_write_string (GString *out, const gchar *str)
{
  g_string_append_c (out, '"');
  for (const gchar *p = str; *p != '\0'; p++) {
    switch (*p) {
    case '"':
      g_string_append (out, "\\\"");
      break;
    case '\\':
      g_string_append (out, "\\\\");
      break;
    case '\n':
      g_string_append (out, "\\n");
      break;
    case '\r':
      g_string_append (out, "\\r");
      break;
    case '\t':
      g_string_append (out, "\\t");
      break;
    default:
      if ((guchar) *p < 0x20)
        g_string_append_printf (out, "\\u%04x", (guint) (guchar) *p);
      else
        g_string_append_c (out, *p);
      break;
    }
  }
  g_string_append_c (out, '"');
}

static void
json_write_newline (GString *out, guint depth)
{
  g_string_append_c (out, '\n');
  for (guint i = 0; i < depth; i++)
    g_string_append (out, "  ");
}

static void
json_write_object (GString *out, JsonObject *object, guint depth)
{
  JsonObjectIter iter;
  const gchar *name;
  JsonNode *member;
  gboolean empty = TRUE;

  g_string_append_c (out, '{');
  json_object_iter_init_ordered (&iter, object);
  while (json_object_iter_next_ordered (&iter, &name, &member)) {
    if (!empty)
      g_string_append_c (out, ',');
    json_write_newline (out, depth + 1);
    json_write_string (out, name);
    g_string_append (out, ": ");
    json_write_node (out, member, depth + 1);
    empty = FALSE;
  }
  if (!empty)
    json_write_newline (out, depth);
  g_string_append_c (out, '}');
}

static void
json_write_array (GString *out, JsonArray *array, guint depth)
{
  guint length = json_array_get_length (array);

  g_string_append_c (out, '[');
  for (guint i = 0; i < length; i++) {
    if (i > 0)
      g_string_append_c (out, ',');
    json_write_newline (out, depth + 1);
    json_write_node (out, json_array_get_element (array, i), depth + 1);
  }
  if (length > 0)
    json_write_newline (out, depth);
  g_string_append_c (out, ']');
}

static void
json_write_node (GString *out, JsonNode *node, guint depth)
{
  switch (JSON_NODE_TYPE (node)) {
  case JSON_NODE_OBJECT:
    json_write_object (out, json_node_get_object (node), depth);
    break;
  case JSON_NODE_ARRAY:
    json_write_array (out, json_node_get_array (node), depth);
    break;
  case JSON_NODE_NULL:
    g_string_append (out, "null");
    break;
  case JSON_NODE_VALUE:
    if (json_node_get_value_type (node) == G_TYPE_STRING)
      json_write_string (out, json_node_get_string (node));
    else if (json_node_get_value_type (node) == G_TYPE_BOOLEAN)
      g_string_append (out, json_node_get_boolean (node) ? "true" : "false");
    else if (json_node_get_value_type (node) == G_TYPE_INT64)
      g_string_append_printf (out, "%" G_GINT64_FORMAT, json_node_get_int (node));
    else {
      gchar buffer[G_ASCII_DTOSTR_BUF_SIZE];
      g_string_append (out, g_ascii_dtostr (buffer, sizeof buffer, json_node_get_double (node)));
    }
    break;
  default:
    g_assert_not_reached ();
  }
}

void
cli_format_json (GString *out, JsonObject *object)
{
  json_write_object (out, object, 0);
  g_string_append_c (out, '\n');
}

static void
table_append_row (GString *out, const gchar *const *cells, const guint *widths, guint n_columns)
{
  g_string_append_c (out, ' ');
  for (guint c = 0; c + 1 < n_columns; c++)
    g_string_append_printf (out, " %-*s", (int) widths[c], cells[c]);
  g_string_append_printf (out, " %s\n", cells[n_columns - 1]);
}

void
cli_format_table (GString *out, const CliColumn *columns, guint n_columns, GPtrArray *rows)
{
  g_autofree guint *widths = g_new0 (guint, n_columns);
  g_autofree const gchar **titles = g_new0 (const gchar *, n_columns);

  for (guint c = 0; c < n_columns; c++) {
    titles[c] = columns[c].title;
    widths[c] = MAX (columns[c].width, strlen (columns[c].title));
    for (guint r = 0; r < rows->len; r++) {
      const gchar *const *cells = g_ptr_array_index (rows, r);
      widths[c] = MAX (widths[c], strlen (cells[c]));
    }
  }
  table_append_row (out, titles, widths, n_columns);
  for (guint r = 0; r < rows->len; r++)
    table_append_row (out, g_ptr_array_index (rows, r), widths, n_columns);
}
