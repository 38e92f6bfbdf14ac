/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "smolvm-json.h"

/* JSON's whitespace (RFC 8259): not \f or \v */
static gboolean
is_json_space (gchar c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static gboolean
ends_scalar (gchar c)
{
  return is_json_space (c) || strchr ("{}[],:\"", c) != NULL;
}

/* Where the value that starts at @p ends (one past its last byte), or NULL
 * when no complete value is there: json-glib then says what is wrong. Only
 * brackets outside strings count; what is inside is json-glib's to check. */
static const gchar *
value_end (const gchar *p, const gchar *end)
{
  guint depth = 0;
  gboolean in_string = FALSE;

  if (*p != '{' && *p != '[' && *p != '"') {
    /* a number, true, false or null */
    while (p < end && !ends_scalar (*p))
      p++;
    return p;
  }
  for (; p < end; p++) {
    if (in_string) {
      if (*p == '\\' && p + 1 < end)
        p++;
      else if (*p == '"') {
        in_string = FALSE;
        if (depth == 0)
          return p + 1;
      }
    } else if (*p == '"') {
      in_string = TRUE;
    } else if (*p == '{' || *p == '[') {
      depth++;
    } else if ((*p == '}' || *p == ']') && --depth == 0) {
      return p + 1;
    }
  }
  return NULL;
}

JsonNode *
smolvm_json_parse (const gchar *data, gssize length, GError **error)
{
  g_autoptr(JsonParser) parser = NULL;
  const gchar *end, *start, *rest;

  g_return_val_if_fail (data != NULL || length <= 0, NULL);

  if (data == NULL)
    data = "";
  end = data + (length < 0 ? strlen (data) : (gsize) length);
  start = data;
  while (start < end && is_json_space (*start))
    start++;
  if (start == end) {
    g_set_error_literal (error, JSON_PARSER_ERROR, JSON_PARSER_ERROR_INVALID_DATA,
                         "no JSON value (empty text)");
    return NULL;
  }
  rest = value_end (start, end);
  if (rest != NULL) {
    while (rest < end && is_json_space (*rest))
      rest++;
    if (rest < end) {
      g_set_error (error, JSON_PARSER_ERROR, JSON_PARSER_ERROR_PARSE,
                   "unexpected data after the JSON value, at byte %" G_GSIZE_FORMAT,
                   (gsize) (rest - data));
      return NULL;
    }
  }
  parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, data, end - data, error))
    return NULL;
  /* json-glib takes a text the scan above found incomplete only when it
   * found no value in it either */
  if (json_parser_get_root (parser) == NULL) {
    g_set_error_literal (error, JSON_PARSER_ERROR, JSON_PARSER_ERROR_INVALID_DATA,
                         "no JSON value");
    return NULL;
  }
  return json_parser_steal_root (parser);
}

JsonNode *
smolvm_json_parse_object (const gchar *data, gssize length, GError **error)
{
  g_autoptr(JsonNode) root = smolvm_json_parse (data, length, error);

  if (root != NULL && !JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error_literal (error, JSON_PARSER_ERROR, JSON_PARSER_ERROR_INVALID_DATA,
                         "not a JSON object");
    return NULL;
  }
  return g_steal_pointer (&root);
}
