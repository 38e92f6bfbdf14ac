/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* The one JSON value that @data holds (@length -1: up to its NUL), transfer
 * full. json-glib 1.6 takes a text of several values, keeps the last and
 * leaks the others: such a text, an empty one, or anything but whitespace
 * after the value is a JSON_PARSER_ERROR here, as json-glib's own errors
 * are. */
JsonNode *smolvm_json_parse (const gchar *data, gssize length, GError **error);

/* The same, for a text that must hold an object. */
JsonNode *smolvm_json_parse_object (const gchar *data, gssize length, GError **error);

G_END_DECLS
