/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "smolvm-json.h"

/* one value, whatever surrounds it in whitespace: json-glib's node */
static void
test_one_value (void)
{
  const struct {
    const gchar *text;
    JsonNodeType type;
  } cases[] = {
    { "{}", JSON_NODE_OBJECT },
    { " \t\r\n[1, 2, {\"a\": [3]}] \n", JSON_NODE_ARRAY },
    { "{\"a\": \"}{][\"}", JSON_NODE_OBJECT },
    { "{\"a\": \"\\\"}\\\\\"}", JSON_NODE_OBJECT },
    { "\"}\"", JSON_NODE_VALUE },
    { "12.5", JSON_NODE_VALUE },
    { "true\n", JSON_NODE_VALUE },
    { "null", JSON_NODE_NULL },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) node = smolvm_json_parse (cases[i].text, -1, &error);

    g_test_message ("%s", cases[i].text);
    g_assert_no_error (error);
    g_assert_nonnull (node);
    g_assert_cmpint (JSON_NODE_TYPE (node), ==, cases[i].type);
  }
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) node = smolvm_json_parse ("{\"a\": \"\\\"}\\\\\"}", -1, &error);
    g_assert_cmpstr (json_object_get_string_member (json_node_get_object (node), "a"), ==,
                     "\"}\\");
  }
}

/* json-glib 1.6 takes each of these as its last value (and leaks the
 * others); here they are all refused, and the offset names the extra */
static void
test_trailing_data (void)
{
  const struct {
    const gchar *text;
    gsize offset;
  } cases[] = {
    { "{} {}", 3 },
    { "1 {\"a\": 1}", 2 },
    { "2{\"a\": 1}", 1 },
    { "{\"a\": 1}x", 8 },
    { "[1]]", 3 },
    { "\"a\" \"b\"", 4 },
    { "{}\f", 2 },
    { "{} /* a comment */", 3 },
    { "{}\n{\"QMP\": {}}\r\n", 3 },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) node = smolvm_json_parse (cases[i].text, -1, &error);
    g_autofree gchar *where = g_strdup_printf ("at byte %" G_GSIZE_FORMAT, cases[i].offset);

    g_test_message ("%s", cases[i].text);
    g_assert_null (node);
    g_assert_error (error, JSON_PARSER_ERROR, JSON_PARSER_ERROR_PARSE);
    g_assert_nonnull (strstr (error->message, where));
  }
}

static void
test_not_a_value (void)
{
  const gchar *empty[] = { "", " ", "\n\r\t " };
  const gchar *broken[] = { "{", "{\"a\": }", "[1, 2", "\"open", "{\"a\" 1}", "{\"a\": \"b\\" };

  for (gsize i = 0; i < G_N_ELEMENTS (empty); i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) node = smolvm_json_parse (empty[i], -1, &error);
    g_assert_null (node);
    g_assert_error (error, JSON_PARSER_ERROR, JSON_PARSER_ERROR_INVALID_DATA);
  }
  for (gsize i = 0; i < G_N_ELEMENTS (broken); i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) node = smolvm_json_parse (broken[i], -1, &error);
    g_test_message ("%s", broken[i]);
    g_assert_null (node);
    g_assert_nonnull (error);
    g_assert_true (error->domain == JSON_PARSER_ERROR);
  }
}

/* @length bounds the text: what follows is not looked at */
static void
test_length (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) node = smolvm_json_parse ("{\"a\": 1}garbage", 8, &error);
  g_autoptr(JsonNode) none = NULL;

  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (node));
  none = smolvm_json_parse ("{\"a\": 1}garbage", 9, &error);
  g_assert_null (none);
  g_assert_error (error, JSON_PARSER_ERROR, JSON_PARSER_ERROR_PARSE);
}

static void
test_object (void)
{
  const gchar *not_objects[] = { "[1]", "\"{}\"", "1", "null" };
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) node = smolvm_json_parse_object (" {\"a\": [1]} ", -1, &error);

  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (node));
  for (gsize i = 0; i < G_N_ELEMENTS (not_objects); i++) {
    g_autoptr(JsonNode) none = smolvm_json_parse_object (not_objects[i], -1, &error);
    g_assert_null (none);
    g_assert_error (error, JSON_PARSER_ERROR, JSON_PARSER_ERROR_INVALID_DATA);
    g_clear_error (&error);
  }
  /* a parse error stays json-glib's */
  g_assert_null (smolvm_json_parse_object ("{} {}", -1, &error));
  g_assert_error (error, JSON_PARSER_ERROR, JSON_PARSER_ERROR_PARSE);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/json/one-value", test_one_value);
  g_test_add_func ("/json/trailing-data", test_trailing_data);
  g_test_add_func ("/json/not-a-value", test_not_a_value);
  g_test_add_func ("/json/length", test_length);
  g_test_add_func ("/json/object", test_object);
  return g_test_run ();
}
