/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Private to libsmolvm-1: the value types that smolvmd describes with an
 * a{sv} dictionary (SmolvmSnapshotInfo, SmolvmVmInfo) are each a table of
 * fields. A field is a GObject property, read-only and set at construction;
 * most come from one key of the dictionary, the others the type derives. */

#include <glib-object.h>

G_BEGIN_DECLS

typedef enum {
  SMOLVM_RECORD_STRING,         /* s: gchar * */
  SMOLVM_RECORD_STRING_OR_NULL, /* s: gchar *, NULL for "" */
  /* s: gchar *, NULL for "" or a missing key: a key newer than some smolvmd */
  SMOLVM_RECORD_OPTIONAL_STRING,
  SMOLVM_RECORD_UINT,           /* u: guint */
  SMOLVM_RECORD_BOOLEAN,        /* b: gboolean */
  SMOLVM_RECORD_VARDICT,        /* a{sv}: GVariant * */
  SMOLVM_RECORD_TIME,           /* t, µs since the epoch: GDateTime *, UTC */
} SmolvmRecordKind;

typedef struct {
  const gchar *property; /* the GObject property */
  const gchar *key;      /* the dictionary's key; NULL: derived by the type */
  SmolvmRecordKind kind;
  gsize offset; /* of the field in the instance */
  const gchar *blurb;
} SmolvmRecordField;

/* The read-only property of @field. */
G_GNUC_INTERNAL
GParamSpec *smolvm_record_field_pspec (const SmolvmRecordField *field);

/* Fills the fields with keys from @dict; other keys are ignored. Fails
 * with SMOLVM_ERROR_INVALID_ARGUMENT if a key is missing (unless its kind
 * is optional) or of another type; the fields set so far are then left for
 * smolvm_record_clear(). */
G_GNUC_INTERNAL
gboolean smolvm_record_parse (const SmolvmRecordField *fields, gsize n_fields, GVariant *dict,
                              gpointer instance, GError **error);

G_GNUC_INTERNAL
void smolvm_record_get_value (const SmolvmRecordField *field, gpointer instance, GValue *value);

/* Frees every field. */
G_GNUC_INTERNAL
void smolvm_record_clear (const SmolvmRecordField *fields, gsize n_fields, gpointer instance);

G_END_DECLS
