/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "smolvm-error.h"
#include "smolvm-id.h"
#include "smolvm-vm-config.h"

G_DEFINE_BOXED_TYPE (SmolvmVmConfig, smolvm_vm_config, smolvm_vm_config_copy, smolvm_vm_config_free)

typedef enum { FIELD_STRING, FIELD_UINT, FIELD_BOOL } FieldKind;

typedef struct {
  const gchar *key;
  FieldKind kind;
  gsize offset;
} Field;

/* One table drives D-Bus parsing, JSON and serialization alike. */
static const Field fields[] = {
  { "vm_id", FIELD_STRING, G_STRUCT_OFFSET (SmolvmVmConfig, vm_id) },
  { "backend", FIELD_STRING, G_STRUCT_OFFSET (SmolvmVmConfig, backend) },
  { "vcpu_count", FIELD_UINT, G_STRUCT_OFFSET (SmolvmVmConfig, vcpu_count) },
  { "mem_size_mib", FIELD_UINT, G_STRUCT_OFFSET (SmolvmVmConfig, mem_size_mib) },
  { "kernel_path", FIELD_STRING, G_STRUCT_OFFSET (SmolvmVmConfig, kernel_path) },
  { "initrd_path", FIELD_STRING, G_STRUCT_OFFSET (SmolvmVmConfig, initrd_path) },
  { "rootfs_path", FIELD_STRING, G_STRUCT_OFFSET (SmolvmVmConfig, rootfs_path) },
  { "boot_args", FIELD_STRING, G_STRUCT_OFFSET (SmolvmVmConfig, boot_args) },
  { "network", FIELD_BOOL, G_STRUCT_OFFSET (SmolvmVmConfig, network) },
  { "accel", FIELD_STRING, G_STRUCT_OFFSET (SmolvmVmConfig, accel) },
  { "machine", FIELD_STRING, G_STRUCT_OFFSET (SmolvmVmConfig, machine) },
};

static gboolean node_is_text (JsonNode *node);

#define FIELD_STR(c, f) G_STRUCT_MEMBER (gchar *, c, (f)->offset)
#define FIELD_UINT(c, f) G_STRUCT_MEMBER (guint, c, (f)->offset)
#define FIELD_BOOL(c, f) G_STRUCT_MEMBER (gboolean, c, (f)->offset)

static const GVariantType *
field_variant_type (const Field *f)
{
  switch (f->kind) {
  case FIELD_STRING:
    return G_VARIANT_TYPE_STRING;
  case FIELD_UINT:
    return G_VARIANT_TYPE_UINT32;
  case FIELD_BOOL:
  default:
    return G_VARIANT_TYPE_BOOLEAN;
  }
}

static const Field *
field_lookup (const gchar *key)
{
  for (gsize i = 0; i < G_N_ELEMENTS (fields); i++)
    if (g_strcmp0 (fields[i].key, key) == 0)
      return &fields[i];
  return NULL;
}

void
smolvm_vm_config_free (SmolvmVmConfig *config)
{
  if (config == NULL)
    return;
  for (gsize i = 0; i < G_N_ELEMENTS (fields); i++)
    if (fields[i].kind == FIELD_STRING)
      g_free (FIELD_STR (config, &fields[i]));
  g_free (config);
}

SmolvmVmConfig *
smolvm_vm_config_copy (const SmolvmVmConfig *config)
{
  SmolvmVmConfig *copy = g_memdup2 (config, sizeof (*config));
  for (gsize i = 0; i < G_N_ELEMENTS (fields); i++)
    if (fields[i].kind == FIELD_STRING)
      FIELD_STR (copy, &fields[i]) = g_strdup (FIELD_STR (config, &fields[i]));
  return copy;
}

guint
smolvm_vm_config_hash (gconstpointer config)
{
  guint hash = 17;
  for (gsize i = 0; i < G_N_ELEMENTS (fields); i++) {
    const Field *f = &fields[i];
    switch (f->kind) {
    case FIELD_STRING:
      hash = hash * 31 + (FIELD_STR (config, f) != NULL ? g_str_hash (FIELD_STR (config, f)) : 0);
      break;
    case FIELD_UINT:
      hash = hash * 31 + FIELD_UINT (config, f);
      break;
    case FIELD_BOOL:
      hash = hash * 31 + (FIELD_BOOL (config, f) ? 1 : 0);
      break;
    }
  }
  return hash;
}

gboolean
smolvm_vm_config_equal (gconstpointer a, gconstpointer b)
{
  for (gsize i = 0; i < G_N_ELEMENTS (fields); i++) {
    const Field *f = &fields[i];
    gboolean same = FALSE;
    switch (f->kind) {
    case FIELD_STRING:
      same = g_strcmp0 (FIELD_STR (a, f), FIELD_STR (b, f)) == 0;
      break;
    case FIELD_UINT:
      same = FIELD_UINT (a, f) == FIELD_UINT (b, f);
      break;
    case FIELD_BOOL:
      same = !FIELD_BOOL (a, f) == !FIELD_BOOL (b, f);
      break;
    }
    if (!same)
      return FALSE;
  }
  return TRUE;
}

static gboolean
check_absolute (const gchar *key, const gchar *path, GError **error)
{
  if (path[0] == '\0' || g_path_is_absolute (path))
    return TRUE;
  g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
               "%s must be an absolute path, not '%s'", key, path);
  return FALSE;
}

/* Fills defaults and checks values; the host files are not looked at. */
static gboolean
config_finish (SmolvmVmConfig *c, GError **error)
{
  if (c->backend == NULL || c->backend[0] == '\0') {
    g_free (c->backend);
    c->backend = g_strdup ("firecracker");
  }
  if (c->boot_args == NULL) /* "" is a valid, if odd, choice */
    c->boot_args = g_strdup (SMOLVM_BOOT_ARGS_DEFAULT);
  if (c->initrd_path == NULL)
    c->initrd_path = g_strdup ("");
  if (c->accel == NULL || c->accel[0] == '\0') {
    g_free (c->accel);
    c->accel = g_strdup ("auto");
  }
  if (c->machine == NULL)
    c->machine = g_strdup ("");
  if (!g_str_equal (c->backend, "firecracker") && !g_str_equal (c->backend, "qemu")) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                 "Unknown backend '%s': expected firecracker or qemu", c->backend);
    return FALSE;
  }
  if (!g_str_equal (c->accel, "kvm") && !g_str_equal (c->accel, "tcg") &&
      !g_str_equal (c->accel, "auto")) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                 "Unknown accel '%s': expected kvm, tcg or auto", c->accel);
    return FALSE;
  }
  /* it ends up inside a QEMU option string: no commas or '=' */
  for (const gchar *p = c->machine; *p != '\0'; p++) {
    if (!g_ascii_isalnum (*p) && *p != '-' && *p != '.' && *p != '_') {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                   "Invalid machine type '%s'", c->machine);
      return FALSE;
    }
  }
  if (c->vm_id != NULL && c->vm_id[0] != '\0' && !smolvm_id_validate (c->vm_id, "VM id", error))
    return FALSE;
  if (c->vcpu_count < SMOLVM_VCPU_MIN || c->vcpu_count > SMOLVM_VCPU_MAX) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                 "vcpu_count must be between %d and %d, not %u", SMOLVM_VCPU_MIN, SMOLVM_VCPU_MAX,
                 c->vcpu_count);
    return FALSE;
  }
  if (c->mem_size_mib < SMOLVM_MEM_MIN || c->mem_size_mib > SMOLVM_MEM_MAX) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                 "mem_size_mib must be between %d and %d, not %u", SMOLVM_MEM_MIN, SMOLVM_MEM_MAX,
                 c->mem_size_mib);
    return FALSE;
  }
  if (c->kernel_path == NULL || c->kernel_path[0] == '\0' || c->rootfs_path == NULL ||
      c->rootfs_path[0] == '\0') {
    g_set_error_literal (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                         "kernel_path and rootfs_path are required");
    return FALSE;
  }
  return check_absolute ("kernel_path", c->kernel_path, error) &&
         check_absolute ("initrd_path", c->initrd_path, error) &&
         check_absolute ("rootfs_path", c->rootfs_path, error);
}

static SmolvmVmConfig *
config_new_defaults (gboolean network_default)
{
  SmolvmVmConfig *c = g_new0 (SmolvmVmConfig, 1);
  c->vcpu_count = SMOLVM_VCPU_DEFAULT;
  c->mem_size_mib = SMOLVM_MEM_DEFAULT;
  c->network = network_default;
  return c;
}

static gboolean
config_set_from_variant (SmolvmVmConfig *c, const gchar *key, GVariant *value, GError **error)
{
  const Field *f = field_lookup (key);

  if (f == NULL) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                 "Unknown VM config key '%s'", key);
    return FALSE;
  }
  if (!g_variant_is_of_type (value, field_variant_type (f))) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                 "VM config key '%s' must be of type '%s', not '%s'", key,
                 (const gchar *) field_variant_type (f), g_variant_get_type_string (value));
    return FALSE;
  }
  switch (f->kind) {
  case FIELD_STRING:
    g_free (FIELD_STR (c, f));
    FIELD_STR (c, f) = g_variant_dup_string (value, NULL);
    break;
  case FIELD_UINT:
    FIELD_UINT (c, f) = g_variant_get_uint32 (value);
    break;
  case FIELD_BOOL:
    FIELD_BOOL (c, f) = g_variant_get_boolean (value);
    break;
  }
  return TRUE;
}

SmolvmVmConfig *
smolvm_vm_config_new_from_variant (GVariant *asv, gboolean network_default, GError **error)
{
  g_autoptr(SmolvmVmConfig) c = config_new_defaults (network_default);
  GVariantIter iter;
  const gchar *key;
  GVariant *value;

  g_variant_iter_init (&iter, asv);
  while (g_variant_iter_next (&iter, "{&sv}", &key, &value)) {
    g_autoptr(GVariant) owned = value;
    if (!config_set_from_variant (c, key, owned, error))
      return NULL;
  }
  if (!config_finish (c, error))
    return NULL;
  return g_steal_pointer (&c);
}

SmolvmVmConfig *
smolvm_vm_config_new_from_json (JsonObject *object, GError **error)
{
  g_autoptr(SmolvmVmConfig) c = config_new_defaults (FALSE);

  for (gsize i = 0; i < G_N_ELEMENTS (fields); i++) {
    const Field *f = &fields[i];
    JsonNode *node = json_object_get_member (object, f->key);
    if (node == NULL || !JSON_NODE_HOLDS_VALUE (node))
      continue;
    switch (f->kind) {
    case FIELD_STRING:
      if (json_node_get_value_type (node) == G_TYPE_STRING && !node_is_text (node)) {
        g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                     "VM config key '%s' is not UTF-8 text", f->key);
        return NULL;
      }
      FIELD_STR (c, f) = g_strdup (json_node_get_string (node));
      break;
    case FIELD_UINT:
      FIELD_UINT (c, f) = (guint) json_node_get_int (node);
      break;
    case FIELD_BOOL:
      FIELD_BOOL (c, f) = json_node_get_boolean (node);
      break;
    }
  }
  if (!config_finish (c, error))
    return NULL;
  return g_steal_pointer (&c);
}

GVariant *
smolvm_vm_config_to_variant (const SmolvmVmConfig *c)
{
  /* The entries made directly, not through a builder's format strings:
   * every snapshot builds one at start-up. */
  GVariant *entries[G_N_ELEMENTS (fields)];
  for (gsize i = 0; i < G_N_ELEMENTS (fields); i++) {
    const Field *f = &fields[i];
    GVariant *value = NULL;
    switch (f->kind) {
    case FIELD_STRING:
      value = g_variant_new_string (FIELD_STR (c, f) ? FIELD_STR (c, f) : "");
      break;
    case FIELD_UINT:
      value = g_variant_new_uint32 (FIELD_UINT (c, f));
      break;
    case FIELD_BOOL:
      value = g_variant_new_boolean (FIELD_BOOL (c, f));
      break;
    }
    entries[i] = g_variant_new_dict_entry (g_variant_new_string (f->key),
                                           g_variant_new_variant (value));
  }
  return g_variant_new_array (G_VARIANT_TYPE ("{sv}"), entries, G_N_ELEMENTS (entries));
}

JsonNode *
smolvm_vm_config_to_json (const SmolvmVmConfig *c)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  for (gsize i = 0; i < G_N_ELEMENTS (fields); i++) {
    const Field *f = &fields[i];
    json_builder_set_member_name (b, f->key);
    switch (f->kind) {
    case FIELD_STRING:
      json_builder_add_string_value (b, FIELD_STR (c, f) ? FIELD_STR (c, f) : "");
      break;
    case FIELD_UINT:
      json_builder_add_int_value (b, FIELD_UINT (c, f));
      break;
    case FIELD_BOOL:
      json_builder_add_boolean_value (b, FIELD_BOOL (c, f));
      break;
    }
  }
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

JsonNode *
smolvm_string_dict_to_json (GVariant *asv)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  GVariantIter iter;
  const gchar *key;
  GVariant *value;

  json_builder_begin_object (b);
  if (asv != NULL) {
    g_variant_iter_init (&iter, asv);
    while (g_variant_iter_next (&iter, "{&sv}", &key, &value)) {
      g_autoptr(GVariant) owned = value;
      if (!g_variant_is_of_type (owned, G_VARIANT_TYPE_STRING))
        continue;
      json_builder_set_member_name (b, key);
      json_builder_add_string_value (b, g_variant_get_string (owned, NULL));
    }
  }
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

GVariant *
smolvm_string_dict_from_json (JsonObject *object)
{
  g_auto(GVariantBuilder) b = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE_VARDICT);
  g_autoptr(GList) members = object != NULL ? json_object_get_members (object) : NULL;

  for (GList *l = members; l != NULL; l = l->next) {
    const gchar *value = g_utf8_validate (l->data, -1, NULL) &&
                             smolvm_json_member_is (object, l->data, G_TYPE_STRING)
                           ? json_object_get_string_member_with_default (object, l->data, NULL)
                           : NULL;
    if (value != NULL)
      g_variant_builder_add (&b, "{sv}", (const gchar *) l->data, g_variant_new_string (value));
  }
  return g_variant_builder_end (&b);
}

/* json-glib's parser takes escapes such as "\255" that make bytes which are
 * not UTF-8: such a string reaches no GVariant (g_variant_new_string would
 * refuse it) */
static gboolean
node_is_text (JsonNode *node)
{
  return JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING &&
         g_utf8_validate (json_node_get_string (node), -1, NULL);
}

gboolean
smolvm_json_member_is (JsonObject *record, const gchar *key, GType type)
{
  JsonNode *node = json_object_get_member (record, key);
  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return TRUE;
  if (type == G_TYPE_STRING)
    return node_is_text (node);
  return JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == type;
}

GVariant *
smolvm_string_dict_from_json_member (JsonObject *record, const gchar *key, GError **error)
{
  JsonNode *node = json_object_get_member (record, key);
  JsonObject *object;
  g_autoptr(GList) members = NULL;

  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return smolvm_string_dict_from_json (NULL);
  if (!JSON_NODE_HOLDS_OBJECT (node)) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "'%s' is not an object", key);
    return NULL;
  }
  object = json_node_get_object (node);
  members = json_object_get_members (object);
  for (GList *l = members; l != NULL; l = l->next) {
    JsonNode *value = json_object_get_member (object, l->data);
    /* the name is not quoted: it may not be text */
    if (!g_utf8_validate (l->data, -1, NULL)) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "a name in '%s' is not UTF-8 text",
                   key);
      return NULL;
    }
    if (!node_is_text (value)) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED,
                   "'%s' of '%s' is not a string of UTF-8 text", (const gchar *) l->data, key);
      return NULL;
    }
  }
  return smolvm_string_dict_from_json (object);
}
