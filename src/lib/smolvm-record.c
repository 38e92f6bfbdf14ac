/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "smolvm-error.h"
#include "smolvm-record.h"

#define FIELD(type, instance, field) G_STRUCT_MEMBER (type, instance, (field)->offset)
#define PSPEC_FLAGS (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)

/* ---- what each kind of field does ---- */

static GParamSpec *
string_pspec (const SmolvmRecordField *field)
{
  return g_param_spec_string (field->property, NULL, field->blurb, NULL, PSPEC_FLAGS);
}

static gboolean
string_parse (const SmolvmRecordField *field, GVariant *value, gpointer instance, GError **error)
{
  FIELD (gchar *, instance, field) = g_variant_dup_string (value, NULL);
  return TRUE;
}

static gboolean
string_or_null_parse (const SmolvmRecordField *field, GVariant *value, gpointer instance,
                      GError **error)
{
  const gchar *text = g_variant_get_string (value, NULL);

  FIELD (gchar *, instance, field) = text[0] != '\0' ? g_strdup (text) : NULL;
  return TRUE;
}

static void
string_get (const SmolvmRecordField *field, gpointer instance, GValue *value)
{
  g_value_set_string (value, FIELD (gchar *, instance, field));
}

static void
string_clear (const SmolvmRecordField *field, gpointer instance)
{
  g_clear_pointer (&FIELD (gchar *, instance, field), g_free);
}

static GParamSpec *
uint_pspec (const SmolvmRecordField *field)
{
  return g_param_spec_uint (field->property, NULL, field->blurb, 0, G_MAXUINT, 0, PSPEC_FLAGS);
}

static gboolean
uint_parse (const SmolvmRecordField *field, GVariant *value, gpointer instance, GError **error)
{
  FIELD (guint, instance, field) = g_variant_get_uint32 (value);
  return TRUE;
}

static void
uint_get (const SmolvmRecordField *field, gpointer instance, GValue *value)
{
  g_value_set_uint (value, FIELD (guint, instance, field));
}

static GParamSpec *
boolean_pspec (const SmolvmRecordField *field)
{
  return g_param_spec_boolean (field->property, NULL, field->blurb, FALSE, PSPEC_FLAGS);
}

static gboolean
boolean_parse (const SmolvmRecordField *field, GVariant *value, gpointer instance, GError **error)
{
  FIELD (gboolean, instance, field) = g_variant_get_boolean (value);
  return TRUE;
}

static void
boolean_get (const SmolvmRecordField *field, gpointer instance, GValue *value)
{
  g_value_set_boolean (value, FIELD (gboolean, instance, field));
}

static GParamSpec *
vardict_pspec (const SmolvmRecordField *field)
{
  return g_param_spec_variant (field->property, NULL, field->blurb, G_VARIANT_TYPE_VARDICT, NULL,
                               PSPEC_FLAGS);
}

static gboolean
vardict_parse (const SmolvmRecordField *field, GVariant *value, gpointer instance, GError **error)
{
  FIELD (GVariant *, instance, field) = g_variant_ref (value);
  return TRUE;
}

static void
vardict_get (const SmolvmRecordField *field, gpointer instance, GValue *value)
{
  g_value_set_variant (value, FIELD (GVariant *, instance, field));
}

static void
vardict_clear (const SmolvmRecordField *field, gpointer instance)
{
  g_clear_pointer (&FIELD (GVariant *, instance, field), g_variant_unref);
}

static GParamSpec *
time_pspec (const SmolvmRecordField *field)
{
  return g_param_spec_boxed (field->property, NULL, field->blurb, G_TYPE_DATE_TIME, PSPEC_FLAGS);
}

/* GLib 2.74 has no g_date_time_new_from_unix_utc_usec(). */
static gboolean
time_parse (const SmolvmRecordField *field, GVariant *value, gpointer instance, GError **error)
{
  guint64 usec = g_variant_get_uint64 (value);
  g_autoptr(GDateTime) seconds = NULL;

  if (usec / G_USEC_PER_SEC <= G_MAXINT64)
    seconds = g_date_time_new_from_unix_utc ((gint64) (usec / G_USEC_PER_SEC));
  if (seconds == NULL) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                 "Key '%s' is out of range: %" G_GUINT64_FORMAT, field->key, usec);
    return FALSE;
  }
  FIELD (GDateTime *, instance, field) = g_date_time_add (seconds,
                                                          (GTimeSpan) (usec % G_USEC_PER_SEC));
  return TRUE;
}

static void
time_get (const SmolvmRecordField *field, gpointer instance, GValue *value)
{
  g_value_set_boxed (value, FIELD (GDateTime *, instance, field));
}

static void
time_clear (const SmolvmRecordField *field, gpointer instance)
{
  g_clear_pointer (&FIELD (GDateTime *, instance, field), g_date_time_unref);
}

typedef struct {
  const gchar *type; /* of the dictionary's value */
  gboolean optional; /* a missing key leaves the field unset */
  GParamSpec *(*pspec) (const SmolvmRecordField *field);
  gboolean (*parse) (const SmolvmRecordField *field, GVariant *value, gpointer instance,
                     GError **error);
  void (*get) (const SmolvmRecordField *field, gpointer instance, GValue *value);
  void (*clear) (const SmolvmRecordField *field, gpointer instance); /* NULL: nothing to free */
} KindOps;

static const KindOps kinds[] = {
  [SMOLVM_RECORD_STRING] = { "s", FALSE, string_pspec, string_parse, string_get, string_clear },
  [SMOLVM_RECORD_STRING_OR_NULL] = { "s", FALSE, string_pspec, string_or_null_parse, string_get,
                                     string_clear },
  [SMOLVM_RECORD_OPTIONAL_STRING] = { "s", TRUE, string_pspec, string_or_null_parse, string_get,
                                      string_clear },
  [SMOLVM_RECORD_UINT] = { "u", FALSE, uint_pspec, uint_parse, uint_get, NULL },
  [SMOLVM_RECORD_BOOLEAN] = { "b", FALSE, boolean_pspec, boolean_parse, boolean_get, NULL },
  [SMOLVM_RECORD_VARDICT] = { "a{sv}", FALSE, vardict_pspec, vardict_parse, vardict_get,
                              vardict_clear },
  [SMOLVM_RECORD_TIME] = { "t", FALSE, time_pspec, time_parse, time_get, time_clear },
};

/* ---- the table of fields ---- */

GParamSpec *
smolvm_record_field_pspec (const SmolvmRecordField *field)
{
  return kinds[field->kind].pspec (field);
}

gboolean
smolvm_record_parse (const SmolvmRecordField *fields, gsize n_fields, GVariant *dict,
                     gpointer instance, GError **error)
{
  if (!g_variant_is_of_type (dict, G_VARIANT_TYPE_VARDICT)) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                 "Expected a dictionary (a{sv}), not %s", g_variant_get_type_string (dict));
    return FALSE;
  }
  for (gsize i = 0; i < n_fields; i++) {
    const SmolvmRecordField *field = &fields[i];
    const KindOps *kind = &kinds[field->kind];
    g_autoptr(GVariant) value = NULL;

    if (field->key == NULL)
      continue;
    value = g_variant_lookup_value (dict, field->key, NULL);
    if (value == NULL && kind->optional)
      continue;
    if (value == NULL) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT, "Key '%s' is missing",
                   field->key);
      return FALSE;
    }
    if (!g_variant_is_of_type (value, G_VARIANT_TYPE (kind->type))) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                   "Key '%s' has type %s instead of %s", field->key,
                   g_variant_get_type_string (value), kind->type);
      return FALSE;
    }
    if (!kind->parse (field, value, instance, error))
      return FALSE;
  }
  return TRUE;
}

void
smolvm_record_get_value (const SmolvmRecordField *field, gpointer instance, GValue *value)
{
  kinds[field->kind].get (field, instance, value);
}

void
smolvm_record_clear (const SmolvmRecordField *fields, gsize n_fields, gpointer instance)
{
  for (gsize i = 0; i < n_fields; i++)
    if (kinds[fields[i].kind].clear != NULL)
      kinds[fields[i].kind].clear (&fields[i], instance);
}
