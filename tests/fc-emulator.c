/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fc-emulator: a strict stand-in for the Firecracker v1.16.1 HTTP API.
 *
 * Real Firecracker needs KVM, which the test machines do not have.  This
 * program speaks the same API on a Unix socket, validates every body against
 * the Swagger definitions it implements, enforces the same pre-/post-boot
 * gates, and simulates a guest as a counter printed on stdout ("tick N") so
 * tests can tell a restored guest (counter continues) from a rebooted one.
 * A restored guest's memory is the snapshot's memory file, opened read-only
 * and mapped privately as Firecracker's File backend does: the counter
 * goes on in that copy-on-write mapping, so one memory file serves many
 * clones at once and never changes.
 *
 * Contract: /work/shared/reference/firecracker-v1.16.1-swagger.yaml
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <glib-unix.h>
#include <glib.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#include "smolvm-json.h"

#define EMU_VMM_VERSION "1.16.1"
#define EMU_DEFAULT_ID "anonymous-instance"
#define EMU_VMSTATE_MAGIC "FCEMU-VMSTATE-1\n"
#define EMU_MEM_MAGIC "FCEMU-MEM-1\n"
#define EMU_PAGE_SIZE 4096
#define EMU_MIB ((guint64) 1024 * 1024)
/* Same limit as Firecracker's default --http-api-max-payload-size. */
#define EMU_MAX_PAYLOAD 51200
#define EMU_MAX_ID_LEN 64
#define EMU_MAX_MEM_MIB ((gint64) 1024 * 1024)

/* ------------------------------------------------------------------------ */
/* Body schemas, transcribed from the Swagger "definitions" section.         */

typedef enum {
  FIELD_STRING,
  FIELD_INTEGER,
  FIELD_BOOLEAN,
  FIELD_OBJECT,
  FIELD_ARRAY,
} FieldType;

typedef struct _Field Field;
typedef struct _Schema Schema;

struct _Field {
  const gchar *name;
  FieldType type;
  gboolean required;
  const gchar *const *enum_values; /* NULL-terminated; strings only */
  gboolean has_minimum;
  gint64 minimum;
  gboolean has_maximum;
  gint64 maximum;
  const Schema *object; /* FIELD_OBJECT */
  const Field *items;   /* FIELD_ARRAY */
};

struct _Schema {
  const gchar *name;
  const Field *fields; /* terminated by a NULL name */
};

static const gchar *const cache_type_enum[] = { "Unsafe", "Writeback", NULL };
static const gchar *const io_engine_enum[] = { "Sync", "Async", NULL };
static const gchar *const cpu_template_enum[] = { "C3", "T2", "T2S", "T2CL", "T2A", "V1N1", "None", NULL };
static const gchar *const huge_pages_enum[] = { "None", "2M", NULL };
static const gchar *const action_type_enum[] = { "FlushMetrics", "InstanceStart", "SendCtrlAltDel", NULL };
static const gchar *const vm_state_enum[] = { "Paused", "Resumed", NULL };
static const gchar *const snapshot_type_enum[] = { "Full", "Diff", NULL };
static const gchar *const backend_type_enum[] = { "File", "Uffd", NULL };
static const gchar *const log_level_enum[] = { "Error", "Warning", "Info", "Debug", "Trace", "Off", NULL };

static const Field token_bucket_fields[] = {
  { .name = "one_time_burst", .type = FIELD_INTEGER, .has_minimum = TRUE, .minimum = 0 },
  { .name = "refill_time", .type = FIELD_INTEGER, .required = TRUE, .has_minimum = TRUE, .minimum = 0 },
  { .name = "size", .type = FIELD_INTEGER, .required = TRUE, .has_minimum = TRUE, .minimum = 0 },
  { NULL },
};
static const Schema token_bucket_schema = { "TokenBucket", token_bucket_fields };

static const Field rate_limiter_fields[] = {
  { .name = "bandwidth", .type = FIELD_OBJECT, .object = &token_bucket_schema },
  { .name = "ops", .type = FIELD_OBJECT, .object = &token_bucket_schema },
  { NULL },
};
static const Schema rate_limiter_schema = { "RateLimiter", rate_limiter_fields };

static const Field boot_source_fields[] = {
  { .name = "boot_args", .type = FIELD_STRING },
  { .name = "initrd_path", .type = FIELD_STRING },
  { .name = "kernel_image_path", .type = FIELD_STRING, .required = TRUE },
  { NULL },
};
static const Schema boot_source_schema = { "BootSource", boot_source_fields };

static const Field drive_fields[] = {
  { .name = "drive_id", .type = FIELD_STRING, .required = TRUE },
  { .name = "partuuid", .type = FIELD_STRING },
  { .name = "is_root_device", .type = FIELD_BOOLEAN, .required = TRUE },
  { .name = "cache_type", .type = FIELD_STRING, .enum_values = cache_type_enum },
  { .name = "is_read_only", .type = FIELD_BOOLEAN },
  { .name = "path_on_host", .type = FIELD_STRING },
  { .name = "rate_limiter", .type = FIELD_OBJECT, .object = &rate_limiter_schema },
  { .name = "io_engine", .type = FIELD_STRING, .enum_values = io_engine_enum },
  { .name = "socket", .type = FIELD_STRING },
  { NULL },
};
static const Schema drive_schema = { "Drive", drive_fields };

static const Field partial_drive_fields[] = {
  { .name = "drive_id", .type = FIELD_STRING, .required = TRUE },
  { .name = "path_on_host", .type = FIELD_STRING },
  { .name = "rate_limiter", .type = FIELD_OBJECT, .object = &rate_limiter_schema },
  { NULL },
};
static const Schema partial_drive_schema = { "PartialDrive", partial_drive_fields };

static const Field network_interface_fields[] = {
  { .name = "guest_mac", .type = FIELD_STRING },
  { .name = "host_dev_name", .type = FIELD_STRING, .required = TRUE },
  { .name = "iface_id", .type = FIELD_STRING, .required = TRUE },
  { .name = "mtu", .type = FIELD_INTEGER, .has_minimum = TRUE, .minimum = 68, .has_maximum = TRUE,
    .maximum = 65535 },
  { .name = "rx_rate_limiter", .type = FIELD_OBJECT, .object = &rate_limiter_schema },
  { .name = "tx_rate_limiter", .type = FIELD_OBJECT, .object = &rate_limiter_schema },
  { NULL },
};
static const Schema network_interface_schema = { "NetworkInterface", network_interface_fields };

static const Field partial_network_interface_fields[] = {
  { .name = "iface_id", .type = FIELD_STRING, .required = TRUE },
  { .name = "rx_rate_limiter", .type = FIELD_OBJECT, .object = &rate_limiter_schema },
  { .name = "tx_rate_limiter", .type = FIELD_OBJECT, .object = &rate_limiter_schema },
  { NULL },
};
static const Schema partial_network_interface_schema = { "PartialNetworkInterface",
                                                         partial_network_interface_fields };

static const Field machine_config_fields[] = {
  { .name = "cpu_template", .type = FIELD_STRING, .enum_values = cpu_template_enum },
  { .name = "smt", .type = FIELD_BOOLEAN },
  { .name = "mem_size_mib", .type = FIELD_INTEGER, .required = TRUE },
  { .name = "track_dirty_pages", .type = FIELD_BOOLEAN },
  { .name = "vcpu_count", .type = FIELD_INTEGER, .required = TRUE, .has_minimum = TRUE, .minimum = 1,
    .has_maximum = TRUE, .maximum = 32 },
  { .name = "huge_pages", .type = FIELD_STRING, .enum_values = huge_pages_enum },
  { NULL },
};
static const Schema machine_config_schema = { "MachineConfiguration", machine_config_fields };

static const Field action_fields[] = {
  { .name = "action_type", .type = FIELD_STRING, .required = TRUE, .enum_values = action_type_enum },
  { NULL },
};
static const Schema action_schema = { "InstanceActionInfo", action_fields };

static const Field vm_fields[] = {
  { .name = "state", .type = FIELD_STRING, .required = TRUE, .enum_values = vm_state_enum },
  { NULL },
};
static const Schema vm_schema = { "Vm", vm_fields };

static const Field snapshot_create_fields[] = {
  { .name = "mem_file_path", .type = FIELD_STRING, .required = TRUE },
  { .name = "snapshot_path", .type = FIELD_STRING, .required = TRUE },
  { .name = "snapshot_type", .type = FIELD_STRING, .enum_values = snapshot_type_enum },
  { NULL },
};
static const Schema snapshot_create_schema = { "SnapshotCreateParams", snapshot_create_fields };

static const Field memory_backend_fields[] = {
  { .name = "backend_type", .type = FIELD_STRING, .required = TRUE, .enum_values = backend_type_enum },
  { .name = "backend_path", .type = FIELD_STRING, .required = TRUE },
  { NULL },
};
static const Schema memory_backend_schema = { "MemoryBackend", memory_backend_fields };

static const Field network_override_fields[] = {
  { .name = "iface_id", .type = FIELD_STRING, .required = TRUE },
  { .name = "host_dev_name", .type = FIELD_STRING, .required = TRUE },
  { NULL },
};
static const Schema network_override_schema = { "NetworkOverride", network_override_fields };
static const Field network_override_item = { .name = "network_overrides[]", .type = FIELD_OBJECT,
                                             .object = &network_override_schema };

static const Field vsock_override_fields[] = {
  { .name = "uds_path", .type = FIELD_STRING, .required = TRUE },
  { NULL },
};
static const Schema vsock_override_schema = { "VsockOverride", vsock_override_fields };

static const Field snapshot_load_fields[] = {
  { .name = "enable_diff_snapshots", .type = FIELD_BOOLEAN },
  { .name = "track_dirty_pages", .type = FIELD_BOOLEAN },
  { .name = "mem_file_path", .type = FIELD_STRING },
  { .name = "mem_backend", .type = FIELD_OBJECT, .object = &memory_backend_schema },
  { .name = "snapshot_path", .type = FIELD_STRING, .required = TRUE },
  { .name = "resume_vm", .type = FIELD_BOOLEAN },
  { .name = "network_overrides", .type = FIELD_ARRAY, .items = &network_override_item },
  { .name = "vsock_override", .type = FIELD_OBJECT, .object = &vsock_override_schema },
  { .name = "clock_realtime", .type = FIELD_BOOLEAN },
  { NULL },
};
static const Schema snapshot_load_schema = { "SnapshotLoadParams", snapshot_load_fields };

static const Field logger_fields[] = {
  { .name = "level", .type = FIELD_STRING, .enum_values = log_level_enum },
  { .name = "log_path", .type = FIELD_STRING },
  { .name = "show_level", .type = FIELD_BOOLEAN },
  { .name = "show_log_origin", .type = FIELD_BOOLEAN },
  { .name = "module", .type = FIELD_STRING },
  { NULL },
};
static const Schema logger_schema = { "Logger", logger_fields };

static const Field metrics_fields[] = {
  { .name = "metrics_path", .type = FIELD_STRING, .required = TRUE },
  { NULL },
};
static const Schema metrics_schema = { "Metrics", metrics_fields };

static const gchar *
field_type_name (FieldType type)
{
  switch (type) {
  case FIELD_STRING:
    return "string";
  case FIELD_INTEGER:
    return "integer";
  case FIELD_BOOLEAN:
    return "boolean";
  case FIELD_OBJECT:
    return "object";
  case FIELD_ARRAY:
    return "array";
  default:
    g_assert_not_reached ();
  }
}

static gboolean
node_holds_value_type (JsonNode *node, GType type)
{
  return JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == type;
}

static gboolean validate_object (JsonNode *node, const Schema *schema, gboolean enforce_required,
                                 const gchar *where, GError **error);

static gboolean
validate_field (JsonNode *value, const Field *field, const gchar *where, GError **error)
{
  gboolean ok;

  switch (field->type) {
  case FIELD_STRING:
    ok = node_holds_value_type (value, G_TYPE_STRING);
    break;
  case FIELD_INTEGER:
    /* json-glib stores JSON integers as gint64 and anything with a fraction
     * or exponent as double; serde's integer types reject the latter. */
    ok = node_holds_value_type (value, G_TYPE_INT64);
    break;
  case FIELD_BOOLEAN:
    ok = node_holds_value_type (value, G_TYPE_BOOLEAN);
    break;
  case FIELD_OBJECT:
    ok = JSON_NODE_HOLDS_OBJECT (value);
    break;
  case FIELD_ARRAY:
    ok = JSON_NODE_HOLDS_ARRAY (value);
    break;
  default:
    g_assert_not_reached ();
  }
  if (!ok) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "An error occurred when deserializing the json body of a request: "
                 "invalid type for `%s`: expected %s",
                 where, field_type_name (field->type));
    return FALSE;
  }

  if (field->type == FIELD_STRING && field->enum_values != NULL) {
    const gchar *s = json_node_get_string (value);
    g_autofree gchar *expected = g_strjoinv ("`, `", (gchar **) field->enum_values);

    if (!g_strv_contains (field->enum_values, s)) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "An error occurred when deserializing the json body of a request: "
                   "unknown variant `%s` for `%s`, expected one of `%s`",
                   s, where, expected);
      return FALSE;
    }
  }

  if (field->type == FIELD_INTEGER) {
    gint64 v = json_node_get_int (value);

    if ((field->has_minimum && v < field->minimum) || (field->has_maximum && v > field->maximum)) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "An error occurred when deserializing the json body of a request: "
                   "`%s` = %" G_GINT64_FORMAT " is out of range",
                   where, v);
      return FALSE;
    }
  }

  if (field->type == FIELD_OBJECT)
    return validate_object (value, field->object, TRUE, where, error);

  if (field->type == FIELD_ARRAY) {
    JsonArray *array = json_node_get_array (value);

    for (guint i = 0; i < json_array_get_length (array); i++) {
      g_autofree gchar *item_where = g_strdup_printf ("%s[%u]", where, i);

      if (!validate_field (json_array_get_element (array, i), field->items, item_where, error))
        return FALSE;
    }
  }

  return TRUE;
}

static const Field *
schema_find_field (const Schema *schema, const gchar *name)
{
  for (const Field *f = schema->fields; f->name != NULL; f++) {
    if (g_str_equal (f->name, name))
      return f;
  }
  return NULL;
}

/* Every object is closed (serde deny_unknown_fields); @enforce_required is
 * only FALSE for PATCH /machine-config, which Firecracker accepts partially. */
static gboolean
validate_object (JsonNode *node, const Schema *schema, gboolean enforce_required, const gchar *where,
                 GError **error)
{
  JsonObject *obj;
  g_autoptr(GList) members = NULL;

  if (!JSON_NODE_HOLDS_OBJECT (node)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "An error occurred when deserializing the json body of a request: "
                 "`%s` must be a JSON object (%s)",
                 where, schema->name);
    return FALSE;
  }
  obj = json_node_get_object (node);
  members = json_object_get_members (obj);

  for (GList *l = members; l != NULL; l = l->next) {
    const gchar *name = l->data;
    const Field *field = schema_find_field (schema, name);
    g_autofree gchar *member_where = NULL;

    if (field == NULL) {
      g_autoptr(GString) expected = g_string_new (NULL);

      for (const Field *f = schema->fields; f->name != NULL; f++)
        g_string_append_printf (expected, "%s`%s`", expected->len > 0 ? ", " : "", f->name);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "An error occurred when deserializing the json body of a request: "
                   "unknown field `%s` in %s, expected one of %s",
                   name, schema->name, expected->str);
      return FALSE;
    }
    member_where = g_str_equal (where, "") ? g_strdup (name) : g_strdup_printf ("%s.%s", where, name);
    if (!validate_field (json_object_get_member (obj, name), field, member_where, error))
      return FALSE;
  }

  if (enforce_required) {
    for (const Field *f = schema->fields; f->name != NULL; f++) {
      if (f->required && !json_object_has_member (obj, f->name)) {
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                     "An error occurred when deserializing the json body of a request: "
                     "missing field `%s` in %s",
                     f->name, schema->name);
        return FALSE;
      }
    }
  }

  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Emulator state.                                                           */

typedef enum {
  VM_NOT_STARTED,
  VM_RUNNING,
  VM_PAUSED,
} VmState;

typedef struct {
  gchar *id;
  gchar *socket_path;
  GMainLoop *loop;
  SoupServer *server;
  int exit_code;
  FILE *request_log;
  FILE *timing_log; /* FC_EMULATOR_TIMING_LOG: the emulator's own time, per request */
  gint64 main_started; /* monotonic, at main()'s start */
  gint64 exec_cpu_us;  /* CPU time of the process before main(): exec and dynamic linking */
  guint tick_ms;
  guint tick_source;
  guint snapshot_delay_ms; /* FC_EMULATOR_SNAPSHOT_DELAY_MS: hold snapshot/create answers */

  VmState state;
  gboolean started;         /* InstanceStart succeeded */
  gboolean loaded;          /* a snapshot was loaded */
  gboolean boot_configured; /* a boot-specific resource was configured */
  gboolean dying;           /* exiting after a failed snapshot load */
  gboolean fatal;           /* set by a handler: exit(1) once the answer is sent */
  gboolean exit_scheduled;
  gboolean shutdown_pending;
  guint64 counter;

  /* A restored guest's memory: the memory file, open read-only and mapped
   * privately (copy-on-write) for the guest's lifetime, as Firecracker does
   * for a File backend, so that several VMs can share one snapshot. The
   * counter lives in its first page too. A booted guest has none. */
  int mem_fd;
  guint8 *mem_map;
  gsize mem_map_size;

  /* Stored resources are never mutated in place; updates build new objects. */
  JsonObject *machine_config;
  JsonObject *boot_source;
  GPtrArray *drives; /* of JsonObject, in creation order */
  GPtrArray *ifaces; /* of JsonObject */
  JsonObject *logger;
  JsonObject *metrics;
  gchar *metrics_path;
} Emulator;

static gboolean
emu_post_boot (Emulator *emu)
{
  return emu->started || emu->loaded;
}

static const gchar *
vm_state_name (VmState state)
{
  switch (state) {
  case VM_NOT_STARTED:
    return "Not started";
  case VM_RUNNING:
    return "Running";
  case VM_PAUSED:
    return "Paused";
  default:
    g_assert_not_reached ();
  }
}

static JsonObject *
default_machine_config (void)
{
  JsonObject *mc = json_object_new ();

  json_object_set_int_member (mc, "vcpu_count", 1);
  json_object_set_int_member (mc, "mem_size_mib", 128);
  json_object_set_boolean_member (mc, "smt", FALSE);
  json_object_set_boolean_member (mc, "track_dirty_pages", FALSE);
  json_object_set_string_member (mc, "huge_pages", "None");
  return mc;
}

/* Shallow copy of the members of @src into a new object, then overlay
 * @overlay (may be NULL).  Nested values are shared, which is fine because
 * nothing is ever mutated in place. */
static JsonObject *
object_merge (JsonObject *src, JsonObject *overlay)
{
  JsonObject *dst = json_object_new ();
  JsonObject *sources[2] = { src, overlay };

  for (guint s = 0; s < G_N_ELEMENTS (sources); s++) {
    g_autoptr(GList) members = NULL;

    if (sources[s] == NULL)
      continue;
    members = json_object_get_members (sources[s]);
    for (GList *l = members; l != NULL; l = l->next)
      json_object_set_member (dst, l->data, json_node_copy (json_object_get_member (sources[s], l->data)));
  }
  return dst;
}

static JsonObject *
find_by_id (GPtrArray *array, const gchar *key, const gchar *id, guint *index_out)
{
  for (guint i = 0; i < array->len; i++) {
    JsonObject *o = g_ptr_array_index (array, i);

    if (g_strcmp0 (json_object_get_string_member_with_default (o, key, NULL), id) == 0) {
      if (index_out != NULL)
        *index_out = i;
      return o;
    }
  }
  return NULL;
}

static void
put_by_id (GPtrArray *array, const gchar *key, const gchar *id, JsonObject *obj)
{
  guint index;

  if (find_by_id (array, key, id, &index) != NULL) {
    json_object_unref (g_ptr_array_index (array, index));
    g_ptr_array_index (array, index) = obj;
  } else {
    g_ptr_array_add (array, obj);
  }
}

static JsonNode *
node_from_object (JsonObject *obj)
{
  JsonNode *node = json_node_new (JSON_NODE_OBJECT);

  if (obj != NULL)
    json_node_set_object (node, obj);
  else
    json_node_init_null (node);
  return node;
}

static JsonNode *
node_from_object_array (GPtrArray *objects)
{
  JsonArray *array = json_array_new ();
  JsonNode *node = json_node_new (JSON_NODE_ARRAY);

  for (guint i = 0; i < objects->len; i++)
    json_array_add_object_element (array, json_object_ref (g_ptr_array_index (objects, i)));
  json_node_take_array (node, array);
  return node;
}

static void
emit_line (const gchar *line)
{
  fputs (line, stdout);
  fputc ('\n', stdout);
  fflush (stdout);
}

static void
emu_quit (Emulator *emu, int exit_code)
{
  emu->exit_code = exit_code;
  g_main_loop_quit (emu->loop);
}

/* The first page of guest memory as the memory file stores it. */
static void
format_mem_page (gchar page[EMU_PAGE_SIZE], guint64 counter)
{
  memset (page, 0, EMU_PAGE_SIZE);
  g_snprintf (page, EMU_PAGE_SIZE, "%scounter %" G_GUINT64_FORMAT "\n", EMU_MEM_MAGIC, counter);
}

/* The simulated guest: one line per tick while running. */
static gboolean
on_tick (gpointer user_data)
{
  Emulator *emu = user_data;
  g_autofree gchar *line = NULL;

  if (emu->state != VM_RUNNING)
    return G_SOURCE_CONTINUE;

  if (emu->shutdown_pending) {
    /* The guest reacts to Ctrl+Alt+Del by rebooting, which makes
     * Firecracker exit (it does not support reboots). */
    emit_line ("fc-emulator: guest shut down after SendCtrlAltDel");
    emu->tick_source = 0;
    emu_quit (emu, 0);
    return G_SOURCE_REMOVE;
  }

  emu->counter++;
  /* The guest writes its memory: with a private mapping the write stays in
   * this process, never reaching the snapshot's memory file. */
  if (emu->mem_map != NULL)
    format_mem_page ((gchar *) emu->mem_map, emu->counter);
  line = g_strdup_printf ("tick %" G_GUINT64_FORMAT, emu->counter);
  emit_line (line);
  return G_SOURCE_CONTINUE;
}

static void
emu_start_guest (Emulator *emu)
{
  if (emu->tick_source == 0)
    emu->tick_source = g_timeout_add (emu->tick_ms, on_tick, emu);
}

/* ------------------------------------------------------------------------ */
/* Helpers for handlers.                                                     */

static gboolean
fail (GError **error, const gchar *message)
{
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, message);
  return FALSE;
}

/* Firecracker's device ids: alphanumeric and '_' only, at most 64 bytes. */
static gboolean
check_device_id (const gchar *id, GError **error)
{
  gsize len = strlen (id);

  if (len == 0 || len > EMU_MAX_ID_LEN) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "Invalid ID: the ID '%s' must be between 1 and %d characters long", id, EMU_MAX_ID_LEN);
    return FALSE;
  }
  for (gsize i = 0; i < len; i++) {
    if (!g_ascii_isalnum (id[i]) && id[i] != '_') {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "Invalid ID: the ID '%s' contains the invalid character '%c'; only alphanumeric "
                   "characters and underscores are allowed",
                   id, id[i]);
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean
check_path_id (const gchar *path_id, JsonObject *body, const gchar *key, GError **error)
{
  const gchar *body_id = json_object_get_string_member (body, key);

  if (!check_device_id (path_id, error))
    return FALSE;
  if (!g_str_equal (path_id, body_id)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "The id from the path [%s] does not match the id from the body [%s]!", path_id, body_id);
    return FALSE;
  }
  return TRUE;
}

static gboolean
check_regular_file (const gchar *path, const gchar *what, GError **error)
{
  struct stat st;

  if (stat (path, &st) != 0) {
    int saved_errno = errno;

    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno), "Cannot open %s '%s': %s", what,
                 path, g_strerror (saved_errno));
    return FALSE;
  }
  if (!S_ISREG (st.st_mode)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "The %s '%s' is not a regular file", what,
                 path);
    return FALSE;
  }
  return TRUE;
}

static gboolean
check_parent_dir (const gchar *path, const gchar *what, GError **error)
{
  g_autofree gchar *dir = g_path_get_dirname (path);

  if (!g_file_test (dir, G_FILE_TEST_IS_DIR)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                 "Cannot create %s '%s': No such file or directory (os error 2)", what, path);
    return FALSE;
  }
  return TRUE;
}

/* Opens like Firecracker's logger/metrics (O_NONBLOCK, read-write so a FIFO
 * without a reader does not fail). */
static gboolean
check_output_path (const gchar *path, const gchar *what, GError **error)
{
  int fd = open (path, O_RDWR | O_NONBLOCK | O_APPEND | O_CREAT | O_CLOEXEC, 0600);

  if (fd < 0) {
    int saved_errno = errno;

    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno), "Cannot open the %s '%s': %s",
                 what, path, g_strerror (saved_errno));
    return FALSE;
  }
  close (fd);
  return TRUE;
}

static gboolean
check_mac (const gchar *mac)
{
  if (strlen (mac) != 17)
    return FALSE;
  for (guint i = 0; i < 17; i++) {
    if (i % 3 == 2 ? mac[i] != ':' : !g_ascii_isxdigit (mac[i]))
      return FALSE;
  }
  return TRUE;
}

/* Semantic checks Firecracker applies on top of the schema. */
static gboolean
check_machine_config (JsonObject *mc, GError **error)
{
  gint64 vcpus = json_object_get_int_member (mc, "vcpu_count");
  gint64 mem = json_object_get_int_member (mc, "mem_size_mib");
  gboolean smt = json_object_get_boolean_member_with_default (mc, "smt", FALSE);
  const gchar *huge = json_object_get_string_member_with_default (mc, "huge_pages", "None");

  if (vcpus < 1 || vcpus > 32)
    return fail (error, "The vCPU number is invalid! The vCPU number must be between 1 and 32.");
  if (smt && vcpus > 1 && vcpus % 2 != 0)
    return fail (error, "The vCPU number is invalid! The vCPU number can only be 1 or an even number "
                        "when SMT is enabled.");
  if (mem <= 0 || (g_str_equal (huge, "2M") && mem % 2 != 0))
    return fail (error, "The memory size (MiB) is either 0, or not a multiple of the configured page size.");
  return TRUE;
}

static gboolean
check_drive (Emulator *emu, JsonObject *drive, GError **error)
{
  const gchar *id = json_object_get_string_member (drive, "drive_id");
  const gchar *path = json_object_get_string_member_with_default (drive, "path_on_host", NULL);

  if (json_object_has_member (drive, "socket"))
    return fail (error, "vhost-user-block drives (`socket`) are not supported by the emulator");
  if (path == NULL)
    return fail (error, "Unable to create the virtio block device: `path_on_host` is required");
  if (!check_regular_file (path, "block device backing file", error))
    return FALSE;

  if (json_object_get_boolean_member (drive, "is_root_device")) {
    for (guint i = 0; i < emu->drives->len; i++) {
      JsonObject *other = g_ptr_array_index (emu->drives, i);

      if (!g_str_equal (json_object_get_string_member (other, "drive_id"), id) &&
          json_object_get_boolean_member (other, "is_root_device"))
        return fail (error, "A root block device already exists!");
    }
  }
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Handlers.  Return FALSE + error for a 400; set req->out for a 200 JSON    */
/* body, leave it NULL for a 204.                                            */

typedef struct {
  Emulator *emu;
  const gchar *path_id; /* the {drive_id}/{iface_id} path segment, or NULL */
  JsonObject *body;     /* validated body, or NULL for GET */
  JsonNode *out;        /* set by GET handlers: the 200 body */
} Request;

typedef gboolean (*Handler) (Request *req, GError **error);

static gboolean
get_instance_info (Request *req, G_GNUC_UNUSED GError **error)
{
  Emulator *emu = req->emu;
  JsonObject *info = json_object_new ();

  json_object_set_string_member (info, "app_name", "Firecracker");
  json_object_set_string_member (info, "id", emu->id);
  json_object_set_string_member (info, "state", vm_state_name (emu->state));
  json_object_set_string_member (info, "vmm_version", EMU_VMM_VERSION);
  req->out = json_node_init_object (json_node_alloc (), info);
  json_object_unref (info);
  return TRUE;
}

static gboolean
get_version (Request *req, G_GNUC_UNUSED GError **error)
{
  JsonObject *v = json_object_new ();

  json_object_set_string_member (v, "firecracker_version", EMU_VMM_VERSION);
  req->out = json_node_init_object (json_node_alloc (), v);
  json_object_unref (v);
  return TRUE;
}

static gboolean
get_machine_config (Request *req, G_GNUC_UNUSED GError **error)
{
  Emulator *emu = req->emu;

  req->out = node_from_object (emu->machine_config);
  return TRUE;
}

static gboolean
put_machine_config (Request *req, GError **error)
{
  Emulator *emu = req->emu;
  JsonObject *body = req->body;
  /* PUT resets unspecified optional fields to their defaults. */
  g_autoptr(JsonObject) defaults = default_machine_config ();
  g_autoptr(JsonObject) mc = object_merge (defaults, body);

  if (!check_machine_config (mc, error))
    return FALSE;
  g_clear_pointer (&emu->machine_config, json_object_unref);
  emu->machine_config = g_steal_pointer (&mc);
  return TRUE;
}

static gboolean
patch_machine_config (Request *req, GError **error)
{
  Emulator *emu = req->emu;
  JsonObject *body = req->body;
  g_autoptr(JsonObject) mc = object_merge (emu->machine_config, body);

  if (json_object_get_size (body) == 0)
    return fail (error, "Empty PATCH request.");
  if (!check_machine_config (mc, error))
    return FALSE;
  g_clear_pointer (&emu->machine_config, json_object_unref);
  emu->machine_config = g_steal_pointer (&mc);
  return TRUE;
}

static gboolean
put_boot_source (Request *req, GError **error)
{
  Emulator *emu = req->emu;
  JsonObject *body = req->body;
  const gchar *initrd = json_object_get_string_member_with_default (body, "initrd_path", NULL);

  if (!check_regular_file (json_object_get_string_member (body, "kernel_image_path"), "kernel file", error))
    return FALSE;
  if (initrd != NULL && !check_regular_file (initrd, "initrd file", error))
    return FALSE;
  g_clear_pointer (&emu->boot_source, json_object_unref);
  emu->boot_source = json_object_ref (body);
  return TRUE;
}

static gboolean
put_drive (Request *req, GError **error)
{
  Emulator *emu = req->emu;
  const gchar *path_id = req->path_id;
  JsonObject *body = req->body;

  if (!check_path_id (path_id, body, "drive_id", error))
    return FALSE;
  if (!check_drive (emu, body, error))
    return FALSE;
  put_by_id (emu->drives, "drive_id", path_id, json_object_ref (body));
  return TRUE;
}

static gboolean
patch_drive (Request *req, GError **error)
{
  Emulator *emu = req->emu;
  const gchar *path_id = req->path_id;
  JsonObject *body = req->body;
  JsonObject *old;
  const gchar *path;

  if (!check_path_id (path_id, body, "drive_id", error))
    return FALSE;
  old = find_by_id (emu->drives, "drive_id", path_id, NULL);
  if (old == NULL) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "Invalid block device ID: %s", path_id);
    return FALSE;
  }
  path = json_object_get_string_member_with_default (body, "path_on_host", NULL);
  /* Firecracker treats a PATCH with neither field as a vhost-user-block
   * config refresh, which fails on a virtio-block drive. */
  if (path == NULL && !json_object_has_member (body, "rate_limiter"))
    return fail (error, "Unable to patch the block device: the device is not a vhost-user block device "
                        "(give `path_on_host` and/or `rate_limiter`).");
  if (path != NULL && !check_regular_file (path, "block device backing file", error))
    return FALSE;
  put_by_id (emu->drives, "drive_id", path_id, object_merge (old, body));
  return TRUE;
}

/* Firecracker opens the TAP device by name (TUNSETIFF): the kernel takes
 * 1 to IFNAMSIZ - 1 bytes. The emulator opens no device: it only checks. */
static gboolean
check_tap_name (const gchar *dev, GError **error)
{
  if (strlen (dev) == 0 || strlen (dev) >= 16) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "Could not create the network device: Open tap device failed: invalid interface name '%s'",
                 dev);
    return FALSE;
  }
  return TRUE;
}

/* One TAP device serves one interface: a second open of it fails. */
static gboolean
check_tap_free (JsonObject *other_iface, const gchar *dev, GError **error)
{
  if (g_str_equal (json_object_get_string_member (other_iface, "host_dev_name"), dev)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS, "The host device name %s is already in use.",
                 dev);
    return FALSE;
  }
  return TRUE;
}

static gboolean
put_network_interface (Request *req, GError **error)
{
  Emulator *emu = req->emu;
  const gchar *path_id = req->path_id;
  JsonObject *body = req->body;
  const gchar *mac = json_object_get_string_member_with_default (body, "guest_mac", NULL);
  const gchar *dev = json_object_get_string_member (body, "host_dev_name");

  if (!check_path_id (path_id, body, "iface_id", error))
    return FALSE;
  if (mac != NULL && !check_mac (mac)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "An error occurred when deserializing the json body of a request: invalid MAC address "
                 "'%s'",
                 mac);
    return FALSE;
  }
  if (!check_tap_name (dev, error))
    return FALSE;
  for (guint i = 0; i < emu->ifaces->len; i++) {
    JsonObject *other = g_ptr_array_index (emu->ifaces, i);
    const gchar *other_mac = json_object_get_string_member_with_default (other, "guest_mac", NULL);

    if (g_str_equal (json_object_get_string_member (other, "iface_id"), path_id))
      continue;
    if (!check_tap_free (other, dev, error))
      return FALSE;
    if (mac != NULL && other_mac != NULL && g_ascii_strcasecmp (mac, other_mac) == 0) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS, "The MAC address %s is already in use.", mac);
      return FALSE;
    }
  }
  put_by_id (emu->ifaces, "iface_id", path_id, json_object_ref (body));
  return TRUE;
}

static gboolean
patch_network_interface (Request *req, GError **error)
{
  Emulator *emu = req->emu;
  const gchar *path_id = req->path_id;
  JsonObject *body = req->body;
  JsonObject *old;

  if (!check_path_id (path_id, body, "iface_id", error))
    return FALSE;
  old = find_by_id (emu->ifaces, "iface_id", path_id, NULL);
  if (old == NULL) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "Invalid network interface ID: %s", path_id);
    return FALSE;
  }
  put_by_id (emu->ifaces, "iface_id", path_id, object_merge (old, body));
  return TRUE;
}

static gboolean
flush_metrics (Emulator *emu, GError **error)
{
  g_autofree gchar *line = NULL;
  int fd;

  if (emu->metrics_path == NULL)
    return fail (error, "The metrics system is not initialized.");
  fd = open (emu->metrics_path, O_RDWR | O_NONBLOCK | O_APPEND | O_CLOEXEC);
  if (fd < 0) {
    int saved_errno = errno;

    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno), "Cannot flush metrics: %s",
                 g_strerror (saved_errno));
    return FALSE;
  }
  line = g_strdup_printf ("{\"utc_timestamp_ms\":%" G_GINT64_FORMAT ",\"fc_emulator\":{\"ticks\":%"
                          G_GUINT64_FORMAT "}}\n",
                          g_get_real_time () / 1000, emu->counter);
  /* A full FIFO only loses a metrics line, as with real Firecracker. */
  if (write (fd, line, strlen (line)) < 0)
    g_debug ("metrics write failed: %s", g_strerror (errno));
  close (fd);
  return TRUE;
}

static gboolean
has_root_drive (Emulator *emu)
{
  for (guint i = 0; i < emu->drives->len; i++) {
    if (json_object_get_boolean_member (g_ptr_array_index (emu->drives, i), "is_root_device"))
      return TRUE;
  }
  return FALSE;
}

static gboolean
put_action (Request *req, GError **error)
{
  Emulator *emu = req->emu;
  JsonObject *body = req->body;
  const gchar *action = json_object_get_string_member (body, "action_type");
  g_autofree gchar *banner = NULL;

  if (g_str_equal (action, "FlushMetrics")) {
    if (!emu_post_boot (emu))
      return fail (error, "The requested operation is not supported before starting the microVM.");
    return flush_metrics (emu, error);
  }

  if (g_str_equal (action, "SendCtrlAltDel")) {
    if (!emu_post_boot (emu))
      return fail (error, "The requested operation is not supported before starting the microVM.");
    emu->shutdown_pending = TRUE;
    return TRUE;
  }

  /* InstanceStart */
  if (emu_post_boot (emu))
    return fail (error, "The requested operation is not supported after starting the microVM.");
  if (emu->boot_source == NULL)
    return fail (error, "Cannot start microvm without kernel configuration.");
  if (!has_root_drive (emu))
    return fail (error, "Cannot start microvm without a root block device (required by the emulator).");
  /* Real Firecracker fails to allocate absurd sizes here; the cap also keeps
   * the sparse snapshot memory file within what file systems allow. */
  if (json_object_get_int_member (emu->machine_config, "mem_size_mib") > EMU_MAX_MEM_MIB)
    return fail (error, "Cannot create the microVM: failed to allocate guest memory (the emulator "
                        "supports at most 1 TiB).");
  /* The kernel may have vanished since PUT /boot-source. */
  if (!check_regular_file (json_object_get_string_member (emu->boot_source, "kernel_image_path"),
                           "kernel file", error))
    return FALSE;

  banner = g_strdup_printf ("fc-emulator: booting kernel %s",
                            json_object_get_string_member (emu->boot_source, "kernel_image_path"));
  emit_line (banner);
  emu->started = TRUE;
  emu->state = VM_RUNNING;
  emu_start_guest (emu);
  return TRUE;
}

static gboolean
patch_vm (Request *req, G_GNUC_UNUSED GError **error)
{
  Emulator *emu = req->emu;
  JsonObject *body = req->body;
  const gchar *state = json_object_get_string_member (body, "state");

  emu->state = g_str_equal (state, "Paused") ? VM_PAUSED : VM_RUNNING;
  return TRUE;
}

static gboolean
get_vm_config (Request *req, G_GNUC_UNUSED GError **error)
{
  Emulator *emu = req->emu;
  JsonObject *cfg = json_object_new ();
  /* Firecracker does not report the boot source of a restored VM. */
  JsonObject *boot_source = emu->loaded ? NULL : emu->boot_source;

  json_object_set_null_member (cfg, "balloon");
  json_object_set_member (cfg, "drives", node_from_object_array (emu->drives));
  json_object_set_member (cfg, "boot-source", node_from_object (boot_source));
  json_object_set_null_member (cfg, "cpu-config");
  json_object_set_member (cfg, "logger", node_from_object (emu->logger));
  json_object_set_member (cfg, "machine-config", node_from_object (emu->machine_config));
  json_object_set_member (cfg, "metrics", node_from_object (emu->metrics));
  json_object_set_null_member (cfg, "memory-hotplug");
  json_object_set_null_member (cfg, "mmds-config");
  json_object_set_member (cfg, "network-interfaces", node_from_object_array (emu->ifaces));
  json_object_set_array_member (cfg, "pmem", json_array_new ());
  json_object_set_null_member (cfg, "vsock");
  json_object_set_null_member (cfg, "entropy");
  req->out = json_node_init_object (json_node_alloc (), cfg);
  json_object_unref (cfg);
  return TRUE;
}

static gboolean
put_logger (Request *req, GError **error)
{
  Emulator *emu = req->emu;
  JsonObject *body = req->body;
  const gchar *log_path = json_object_get_string_member_with_default (body, "log_path", NULL);

  if (log_path != NULL && !check_output_path (log_path, "log file", error))
    return FALSE;
  g_clear_pointer (&emu->logger, json_object_unref);
  emu->logger = json_object_ref (body);
  return TRUE;
}

static gboolean
put_metrics (Request *req, GError **error)
{
  Emulator *emu = req->emu;
  JsonObject *body = req->body;
  const gchar *path = json_object_get_string_member (body, "metrics_path");

  if (emu->metrics != NULL)
    return fail (error, "Reinitialization of metrics not allowed.");
  if (!check_output_path (path, "metrics file", error))
    return FALSE;
  emu->metrics = json_object_ref (body);
  emu->metrics_path = g_strdup (path);
  return TRUE;
}

/* --- snapshots --- */

static JsonNode *
build_vmstate (Emulator *emu, const gchar *snapshot_type)
{
  JsonObject *st = json_object_new ();
  JsonNode *node;

  json_object_set_string_member (st, "format", "fc-emulator-vmstate");
  json_object_set_string_member (st, "vmm_version", EMU_VMM_VERSION);
  json_object_set_string_member (st, "instance_id", emu->id);
  json_object_set_string_member (st, "snapshot_type", snapshot_type);
  json_object_set_int_member (st, "mem_size_mib",
                              json_object_get_int_member (emu->machine_config, "mem_size_mib"));
  json_object_set_int_member (st, "counter", (gint64) emu->counter);
  json_object_set_member (st, "machine_config", node_from_object (emu->machine_config));
  json_object_set_member (st, "boot_source", node_from_object (emu->boot_source));
  json_object_set_member (st, "drives", node_from_object_array (emu->drives));
  json_object_set_member (st, "network_interfaces", node_from_object_array (emu->ifaces));
  /* the node takes the one reference: json_node_init_object() would add one */
  node = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (node, st);
  return node;
}

static gboolean
write_mem_file (const gchar *path, guint64 size, guint64 counter, GError **error)
{
  gchar page[EMU_PAGE_SIZE];
  int fd;
  int saved_errno = 0;

  format_mem_page (page, counter);
  fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    saved_errno = errno;
  } else {
    /* Sparse: the right size, but only the first page is ever written. */
    if (ftruncate (fd, (off_t) size) != 0 || pwrite (fd, page, sizeof page, 0) != (ssize_t) sizeof page)
      saved_errno = errno != 0 ? errno : EIO;
    if (close (fd) != 0 && saved_errno == 0)
      saved_errno = errno;
  }
  if (saved_errno != 0) {
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                 "Cannot write the memory file '%s': %s", path, g_strerror (saved_errno));
    return FALSE;
  }
  return TRUE;
}

static gboolean
put_snapshot_create (Request *req, GError **error)
{
  Emulator *emu = req->emu;
  JsonObject *body = req->body;
  const gchar *mem_path = json_object_get_string_member (body, "mem_file_path");
  const gchar *state_path = json_object_get_string_member (body, "snapshot_path");
  const gchar *type = json_object_get_string_member_with_default (body, "snapshot_type", "Full");
  guint64 mem_size = (guint64) json_object_get_int_member (emu->machine_config, "mem_size_mib") * EMU_MIB;
  g_autoptr(JsonNode) state = NULL;
  g_autofree gchar *json = NULL;
  g_autofree gchar *contents = NULL;

  if (emu->state != VM_PAUSED)
    return fail (error, "Create snapshot error: Cannot save the microVM state: the microVM must be paused "
                        "first.");
  if (g_str_equal (type, "Diff") &&
      !json_object_get_boolean_member_with_default (emu->machine_config, "track_dirty_pages", FALSE))
    return fail (error, "Diff snapshots are not allowed on uVMs with dirty page tracking disabled.");
  if (!check_parent_dir (state_path, "the snapshot file", error) ||
      !check_parent_dir (mem_path, "the memory file", error))
    return FALSE;

  state = build_vmstate (emu, type);
  json = json_to_string (state, TRUE);
  contents = g_strconcat (EMU_VMSTATE_MAGIC, json, "\n", NULL);
  if (!g_file_set_contents (state_path, contents, -1, error))
    return FALSE;
  return write_mem_file (mem_path, mem_size, emu->counter, error);
}

/* Reads and checks everything a load needs, without touching @emu. */
typedef struct {
  JsonObject *machine_config;
  JsonObject *boot_source;
  GPtrArray *drives;
  GPtrArray *ifaces;
  guint64 counter;
  int mem_fd; /* -1 until mapped */
  guint8 *mem_map;
  gsize mem_map_size;
} LoadedState;

static LoadedState *
loaded_state_new (void)
{
  LoadedState *ls = g_new0 (LoadedState, 1);

  ls->mem_fd = -1;
  ls->drives = g_ptr_array_new_with_free_func ((GDestroyNotify) json_object_unref);
  ls->ifaces = g_ptr_array_new_with_free_func ((GDestroyNotify) json_object_unref);
  return ls;
}

static void
loaded_state_free (LoadedState *ls)
{
  if (ls->mem_map != NULL)
    munmap (ls->mem_map, ls->mem_map_size);
  if (ls->mem_fd >= 0)
    close (ls->mem_fd);
  g_clear_pointer (&ls->machine_config, json_object_unref);
  g_clear_pointer (&ls->boot_source, json_object_unref);
  g_clear_pointer (&ls->drives, g_ptr_array_unref);
  g_clear_pointer (&ls->ifaces, g_ptr_array_unref);
  g_free (ls);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LoadedState, loaded_state_free)

static gboolean
read_object_array (JsonObject *st, const gchar *key, const Schema *schema, GPtrArray *into, GError **error)
{
  JsonNode *node = json_object_get_member (st, key);
  JsonArray *array;

  if (node == NULL || !JSON_NODE_HOLDS_ARRAY (node)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "Invalid snapshot state: `%s` is not an array",
                 key);
    return FALSE;
  }
  array = json_node_get_array (node);
  for (guint i = 0; i < json_array_get_length (array); i++) {
    JsonNode *el = json_array_get_element (array, i);

    if (!validate_object (el, schema, TRUE, key, error))
      return FALSE;
    g_ptr_array_add (into, json_object_ref (json_node_get_object (el)));
  }
  return TRUE;
}

static gboolean
read_vmstate (const gchar *path, LoadedState *ls, gint64 *mem_size_mib, GError **error)
{
  g_autofree gchar *contents = NULL;
  gsize length;
  g_autoptr(JsonNode) root = NULL;
  JsonObject *st;
  JsonNode *node;
  const gsize magic_len = strlen (EMU_VMSTATE_MAGIC);

  if (!g_file_get_contents (path, &contents, &length, error)) {
    g_prefix_error (error, "Load snapshot error: Cannot read the snapshot state file: ");
    return FALSE;
  }
  if (length < magic_len || memcmp (contents, EMU_VMSTATE_MAGIC, magic_len) != 0)
    return fail (error, "Load snapshot error: Invalid snapshot state file: bad magic.");
  root = smolvm_json_parse_object (contents + magic_len, (gssize) (length - magic_len), error);
  if (root == NULL) {
    g_prefix_error (error, "Load snapshot error: Invalid snapshot state file: ");
    return FALSE;
  }
  st = json_node_get_object (root);

  node = json_object_get_member (st, "mem_size_mib");
  if (node == NULL || !node_holds_value_type (node, G_TYPE_INT64) || json_node_get_int (node) <= 0 ||
      json_node_get_int (node) > EMU_MAX_MEM_MIB)
    return fail (error, "Load snapshot error: Invalid snapshot state file: bad `mem_size_mib`.");
  *mem_size_mib = json_node_get_int (node);

  node = json_object_get_member (st, "machine_config");
  if (node == NULL)
    return fail (error, "Load snapshot error: Invalid snapshot state file: no `machine_config`.");
  if (!validate_object (node, &machine_config_schema, TRUE, "machine_config", error)) {
    g_prefix_error (error, "Load snapshot error: Invalid snapshot state file: ");
    return FALSE;
  }
  ls->machine_config = json_object_ref (json_node_get_object (node));
  if (json_object_get_int_member (ls->machine_config, "mem_size_mib") != *mem_size_mib)
    return fail (error, "Load snapshot error: Invalid snapshot state file: inconsistent memory size.");

  node = json_object_get_member (st, "boot_source");
  if (node != NULL && !JSON_NODE_HOLDS_NULL (node)) {
    if (!validate_object (node, &boot_source_schema, TRUE, "boot_source", error)) {
      g_prefix_error (error, "Load snapshot error: Invalid snapshot state file: ");
      return FALSE;
    }
    ls->boot_source = json_object_ref (json_node_get_object (node));
  }

  if (!read_object_array (st, "drives", &drive_schema, ls->drives, error) ||
      !read_object_array (st, "network_interfaces", &network_interface_schema, ls->ifaces, error)) {
    g_prefix_error (error, "Load snapshot error: Invalid snapshot state file: ");
    return FALSE;
  }
  return TRUE;
}

/* Like Firecracker's File backend: open(O_RDONLY), then one private,
 * writable mapping (MAP_PRIVATE | MAP_NORESERVE) of the whole file, both
 * kept for the guest's lifetime. The file needs no write permission and is
 * never written, however many VMs map it at once. */
static gboolean
map_mem_file (const gchar *path, gint64 mem_size_mib, LoadedState *ls, GError **error)
{
  struct stat st;
  gchar page[EMU_PAGE_SIZE + 1] = { 0 };
  const gsize magic_len = strlen (EMU_MEM_MAGIC);
  const gchar *p;
  gchar *end = NULL;
  void *map;

  ls->mem_fd = open (path, O_RDONLY | O_CLOEXEC);
  if (ls->mem_fd < 0) {
    int saved_errno = errno;

    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                 "Load snapshot error: Cannot open the memory file '%s': %s", path, g_strerror (saved_errno));
    return FALSE;
  }
  if (fstat (ls->mem_fd, &st) != 0 || !S_ISREG (st.st_mode))
    return fail (error, "Load snapshot error: The memory file is not a regular file.");
  if ((guint64) st.st_size != (guint64) mem_size_mib * EMU_MIB) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                 "Load snapshot error: Failed to restore from snapshot: the memory file '%s' has "
                 "%" G_GINT64_FORMAT " bytes, the snapshot expects %" G_GUINT64_FORMAT " bytes",
                 path, (gint64) st.st_size, (guint64) mem_size_mib * EMU_MIB);
    return FALSE;
  }
  map = mmap (NULL, (gsize) st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE,
              ls->mem_fd, 0);
  if (map == MAP_FAILED) {
    int saved_errno = errno;

    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                 "Load snapshot error: Failed to restore guest memory: cannot map '%s': %s", path,
                 g_strerror (saved_errno));
    return FALSE;
  }
  ls->mem_map = map;
  ls->mem_map_size = (gsize) st.st_size;

  memcpy (page, ls->mem_map, EMU_PAGE_SIZE);
  if (memcmp (page, EMU_MEM_MAGIC, magic_len) != 0)
    return fail (error, "Load snapshot error: The memory file does not hold an emulator guest memory image.");
  p = page + magic_len;
  if (!g_str_has_prefix (p, "counter "))
    return fail (error, "Load snapshot error: The memory file has no guest counter.");
  p += strlen ("counter ");
  errno = 0;
  ls->counter = g_ascii_strtoull (p, &end, 10);
  if (errno != 0 || end == p || *end != '\n')
    return fail (error, "Load snapshot error: The memory file has a corrupt guest counter.");
  return TRUE;
}

/* network_overrides put a saved interface on another TAP device (what a
 * clone of a snapshot needs: the original's TAP is taken). Like
 * Firecracker, an override naming no interface of the snapshot fails the
 * restore; the restored devices then open their TAPs, which the checks
 * stand for. Overrides apply in order: a later one for the same interface
 * wins. */
static gboolean
apply_network_overrides (GPtrArray *ifaces, JsonArray *overrides, GError **error)
{
  for (guint i = 0; i < json_array_get_length (overrides); i++) {
    JsonObject *o = json_array_get_object_element (overrides, i);
    const gchar *iface_id = json_object_get_string_member (o, "iface_id");
    g_autoptr(JsonObject) host_dev = json_object_new ();
    JsonObject *saved = find_by_id (ifaces, "iface_id", iface_id, NULL);

    if (saved == NULL) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   "Load snapshot error: Failed to get snapshot state from file: Unknown Network "
                   "Device (network_overrides[%u]: the snapshot has no network interface '%s').",
                   i, iface_id);
      return FALSE;
    }
    json_object_set_string_member (host_dev, "host_dev_name",
                                   json_object_get_string_member (o, "host_dev_name"));
    put_by_id (ifaces, "iface_id", iface_id, object_merge (saved, host_dev));
  }
  for (guint i = 0; i < ifaces->len; i++) {
    JsonObject *iface = g_ptr_array_index (ifaces, i);
    const gchar *dev = json_object_get_string_member (iface, "host_dev_name");

    if (!check_tap_name (dev, error))
      goto failed;
    for (guint j = 0; j < i; j++) {
      if (!check_tap_free (g_ptr_array_index (ifaces, j), dev, error))
        goto failed;
    }
  }
  return TRUE;

failed:
  g_prefix_error (error, "Load snapshot error: Failed to build microVM from snapshot: ");
  return FALSE;
}

static gboolean
put_snapshot_load (Request *req, GError **error)
{
  Emulator *emu = req->emu;
  JsonObject *body = req->body;
  gboolean has_backend = json_object_has_member (body, "mem_backend");
  gboolean has_file = json_object_has_member (body, "mem_file_path");
  const gchar *mem_path;
  g_autoptr(LoadedState) ls = loaded_state_new ();
  gint64 mem_size_mib = 0;
  gboolean track_dirty;
  JsonNode *overrides;
  g_autoptr(JsonObject) track_dirty_override = json_object_new ();

  /* These are API-level rejections: Firecracker answers 400 and lives on. */
  if (has_backend && has_file)
    return fail (error, "An error occurred when deserializing the json body of a request: too many fields: "
                        "either `mem_backend` or `mem_file_path` exclusively is required.");
  if (!has_backend && !has_file)
    return fail (error, "An error occurred when deserializing the json body of a request: missing field: "
                        "either `mem_backend` or `mem_file_path` is required.");
  if (emu->boot_configured)
    return fail (error, "Loading a microVM snapshot not allowed after configuring boot-specific resources.");

  /* From here on a failure leaves Firecracker unusable: it exits. */
  emu->fatal = TRUE;

  if (has_backend) {
    JsonObject *backend = json_object_get_object_member (body, "mem_backend");

    if (g_str_equal (json_object_get_string_member (backend, "backend_type"), "Uffd"))
      return fail (error, "Load snapshot error: the Uffd memory backend is not supported by the emulator.");
    mem_path = json_object_get_string_member (backend, "backend_path");
  } else {
    mem_path = json_object_get_string_member (body, "mem_file_path");
  }

  if (!read_vmstate (json_object_get_string_member (body, "snapshot_path"), ls, &mem_size_mib, error))
    return FALSE;
  /* Firecracker edits the saved device state first, then loads memory. */
  overrides = json_object_get_member (body, "network_overrides");
  if (overrides != NULL &&
      !apply_network_overrides (ls->ifaces, json_node_get_array (overrides), error))
    return FALSE;
  if (!map_mem_file (mem_path, mem_size_mib, ls, error))
    return FALSE;

  for (guint i = 0; i < ls->drives->len; i++) {
    JsonObject *d = g_ptr_array_index (ls->drives, i);
    const gchar *p = json_object_get_string_member_with_default (d, "path_on_host", NULL);

    if (p == NULL)
      return fail (error, "Load snapshot error: a saved block device has no backing file.");
    if (!check_regular_file (p, "block device backing file", error)) {
      g_prefix_error (error, "Load snapshot error: Failed to restore block device '%s': ",
                      json_object_get_string_member (d, "drive_id"));
      return FALSE;
    }
  }

  if (json_object_has_member (body, "vsock_override"))
    return fail (error, "Load snapshot error: vsock_override given but the snapshot has no vsock device.");

  /* Success: adopt the restored state. */
  emu->fatal = FALSE;
  track_dirty = json_object_get_boolean_member_with_default (body, "track_dirty_pages", FALSE) ||
                json_object_get_boolean_member_with_default (body, "enable_diff_snapshots", FALSE);
  /* Dirty page tracking is chosen at load time, not taken from the snapshot. */
  json_object_set_boolean_member (track_dirty_override, "track_dirty_pages", track_dirty);
  g_clear_pointer (&emu->machine_config, json_object_unref);
  emu->machine_config = object_merge (ls->machine_config, track_dirty_override);
  g_clear_pointer (&emu->boot_source, json_object_unref);
  emu->boot_source = g_steal_pointer (&ls->boot_source);
  g_ptr_array_unref (emu->drives);
  emu->drives = g_steal_pointer (&ls->drives);
  g_ptr_array_unref (emu->ifaces);
  emu->ifaces = g_steal_pointer (&ls->ifaces);
  emu->counter = ls->counter;
  emu->mem_fd = g_steal_fd (&ls->mem_fd);
  emu->mem_map = g_steal_pointer (&ls->mem_map);
  emu->mem_map_size = ls->mem_map_size;
  emu->loaded = TRUE;
  emu->state =
      json_object_get_boolean_member_with_default (body, "resume_vm", FALSE) ? VM_RUNNING : VM_PAUSED;
  emit_line ("fc-emulator: snapshot loaded");
  /* on the console too, for tests that only see that: which TAP each
   * restored interface opened (network_overrides change it) */
  for (guint i = 0; i < emu->ifaces->len; i++) {
    JsonObject *iface = g_ptr_array_index (emu->ifaces, i);
    g_autofree gchar *line =
      g_strdup_printf ("fc-emulator: network interface %s on host device %s",
                       json_object_get_string_member (iface, "iface_id"),
                       json_object_get_string_member (iface, "host_dev_name"));

    emit_line (line);
  }
  emu_start_guest (emu);
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Routing.                                                                  */

typedef enum {
  GATE_ANY,
  GATE_PRE_BOOT,
  GATE_POST_BOOT,
} Gate;

typedef struct {
  const gchar *method;
  const gchar *path;    /* exact path, or prefix ending in '/' when has_id */
  gboolean has_id;      /* one more path segment: the device id */
  const Schema *schema; /* body schema; NULL: no body allowed */
  Gate gate;
  gboolean boot_specific; /* counts as configuring a boot resource */
  gboolean partial;       /* schema's required fields not enforced */
  Handler handler;        /* NULL: in the Swagger but not emulated */
} Route;

static const Route routes[] = {
  { "GET", "/", FALSE, NULL, GATE_ANY, FALSE, FALSE, get_instance_info },
  { "GET", "/version", FALSE, NULL, GATE_ANY, FALSE, FALSE, get_version },
  { "GET", "/machine-config", FALSE, NULL, GATE_ANY, FALSE, FALSE, get_machine_config },
  { "PUT", "/machine-config", FALSE, &machine_config_schema, GATE_PRE_BOOT, TRUE, FALSE, put_machine_config },
  /* The Swagger calls the PATCH body "a subset" and Firecracker deserializes
   * it into an all-optional struct. */
  { "PATCH", "/machine-config", FALSE, &machine_config_schema, GATE_PRE_BOOT, TRUE, TRUE,
    patch_machine_config },
  { "PUT", "/boot-source", FALSE, &boot_source_schema, GATE_PRE_BOOT, TRUE, FALSE, put_boot_source },
  { "PUT", "/drives/", TRUE, &drive_schema, GATE_PRE_BOOT, TRUE, FALSE, put_drive },
  { "PATCH", "/drives/", TRUE, &partial_drive_schema, GATE_POST_BOOT, FALSE, FALSE, patch_drive },
  { "PUT", "/network-interfaces/", TRUE, &network_interface_schema, GATE_PRE_BOOT, TRUE, FALSE,
    put_network_interface },
  { "PATCH", "/network-interfaces/", TRUE, &partial_network_interface_schema, GATE_POST_BOOT, FALSE, FALSE,
    patch_network_interface },
  { "PUT", "/actions", FALSE, &action_schema, GATE_ANY, FALSE, FALSE, put_action },
  { "PATCH", "/vm", FALSE, &vm_schema, GATE_POST_BOOT, FALSE, FALSE, patch_vm },
  { "GET", "/vm/config", FALSE, NULL, GATE_ANY, FALSE, FALSE, get_vm_config },
  { "PUT", "/snapshot/create", FALSE, &snapshot_create_schema, GATE_POST_BOOT, FALSE, FALSE,
    put_snapshot_create },
  { "PUT", "/snapshot/load", FALSE, &snapshot_load_schema, GATE_PRE_BOOT, FALSE, FALSE, put_snapshot_load },
  { "PUT", "/logger", FALSE, &logger_schema, GATE_PRE_BOOT, FALSE, FALSE, put_logger },
  { "PUT", "/metrics", FALSE, &metrics_schema, GATE_PRE_BOOT, FALSE, FALSE, put_metrics },

  /* In the Swagger, not emulated. */
  { "GET", "/balloon", FALSE, NULL, GATE_ANY, FALSE, FALSE, NULL },
  { "PUT", "/balloon", FALSE, NULL, GATE_ANY, FALSE, FALSE, NULL },
  { "PATCH", "/balloon", FALSE, NULL, GATE_ANY, FALSE, FALSE, NULL },
  { "GET", "/balloon/statistics", FALSE, NULL, GATE_ANY, FALSE, FALSE, NULL },
  { "PATCH", "/balloon/statistics", FALSE, NULL, GATE_ANY, FALSE, FALSE, NULL },
  { "PATCH", "/balloon/hinting/start", FALSE, NULL, GATE_ANY, FALSE, FALSE, NULL },
  { "GET", "/balloon/hinting/status", FALSE, NULL, GATE_ANY, FALSE, FALSE, NULL },
  { "PATCH", "/balloon/hinting/stop", FALSE, NULL, GATE_ANY, FALSE, FALSE, NULL },
  { "PUT", "/cpu-config", FALSE, NULL, GATE_ANY, FALSE, FALSE, NULL },
  { "PUT", "/pmem/", TRUE, NULL, GATE_ANY, FALSE, FALSE, NULL },
  { "PATCH", "/pmem/", TRUE, NULL, GATE_ANY, FALSE, FALSE, NULL },
  { "GET", "/mmds", FALSE, NULL, GATE_ANY, FALSE, FALSE, NULL },
  { "PUT", "/mmds", FALSE, NULL, GATE_ANY, FALSE, FALSE, NULL },
  { "PATCH", "/mmds", FALSE, NULL, GATE_ANY, FALSE, FALSE, NULL },
  { "PUT", "/mmds/config", FALSE, NULL, GATE_ANY, FALSE, FALSE, NULL },
  { "PUT", "/entropy", FALSE, NULL, GATE_ANY, FALSE, FALSE, NULL },
  { "PUT", "/serial", FALSE, NULL, GATE_ANY, FALSE, FALSE, NULL },
  { "GET", "/hotplug/memory", FALSE, NULL, GATE_ANY, FALSE, FALSE, NULL },
  { "PUT", "/hotplug/memory", FALSE, NULL, GATE_ANY, FALSE, FALSE, NULL },
  { "PATCH", "/hotplug/memory", FALSE, NULL, GATE_ANY, FALSE, FALSE, NULL },
  { "PUT", "/vsock", FALSE, NULL, GATE_ANY, FALSE, FALSE, NULL },
};

static const Route *
find_route (const gchar *method, const gchar *path, const gchar **id_out)
{
  *id_out = NULL;
  for (guint i = 0; i < G_N_ELEMENTS (routes); i++) {
    const Route *r = &routes[i];

    if (!g_str_equal (r->method, method))
      continue;
    if (!r->has_id && g_str_equal (r->path, path))
      return r;
    if (r->has_id && g_str_has_prefix (path, r->path)) {
      const gchar *id = path + strlen (r->path);

      if (*id != '\0' && strchr (id, '/') == NULL) {
        *id_out = id;
        return r;
      }
    }
  }
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* HTTP plumbing.                                                            */

static void
respond_json (SoupServerMessage *msg, guint status, JsonNode *node)
{
  gsize length = 0;
  gchar *text = json_to_string (node, FALSE);

  length = strlen (text);
  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_TAKE, text, length);
}

static void
respond_fault (SoupServerMessage *msg, const gchar *message)
{
  g_autoptr(JsonNode) node = NULL;
  JsonObject *obj = json_object_new ();

  json_object_set_string_member (obj, "fault_message", message);
  node = json_node_init_object (json_node_alloc (), obj);
  json_object_unref (obj);
  respond_json (msg, SOUP_STATUS_BAD_REQUEST, node);
}

static void
log_request (Emulator *emu, const gchar *method, const gchar *path, JsonNode *body, gboolean body_invalid)
{
  g_autoptr(JsonNode) node = NULL;
  g_autofree gchar *line = NULL;
  JsonObject *obj;

  if (emu->request_log == NULL)
    return;
  obj = json_object_new ();
  json_object_set_string_member (obj, "method", method);
  json_object_set_string_member (obj, "path", path);
  if (body != NULL)
    json_object_set_member (obj, "body", json_node_copy (body));
  else
    json_object_set_null_member (obj, "body");
  if (body_invalid)
    json_object_set_boolean_member (obj, "body_invalid_json", TRUE);
  node = json_node_init_object (json_node_alloc (), obj);
  json_object_unref (obj);
  line = json_to_string (node, FALSE);
  fprintf (emu->request_log, "%s\n", line);
  fflush (emu->request_log);
}

static gboolean
on_fatal_exit (gpointer user_data)
{
  Emulator *emu = user_data;

  if (emu->exit_scheduled)
    return G_SOURCE_REMOVE;
  emu->exit_scheduled = TRUE;
  emu_quit (emu, 1);
  return G_SOURCE_REMOVE;
}

static void
on_fatal_message_finished (G_GNUC_UNUSED SoupServerMessage *msg, gpointer user_data)
{
  g_idle_add (on_fatal_exit, user_data);
}

/* Firecracker keeps the connection open after a 204 (which carries no
 * Content-Length, per RFC 9110).  libsoup 3.2 strips Content-Length from a 204
 * and then reads the missing length as "body terminated by EOF", so it closes
 * the connection; clients reusing it would hit EPIPE.  Once the headers are on
 * the wire, declaring the (empty) body as having no encoding keeps it alive. */
static void
on_204_wrote_headers (SoupServerMessage *msg, G_GNUC_UNUSED gpointer user_data)
{
  soup_message_headers_set_encoding (soup_server_message_get_response_headers (msg), SOUP_ENCODING_NONE);
}

/* Lets a held PUT /snapshot/create answer go out. */
static gboolean
on_snapshot_delay_over (gpointer user_data)
{
  soup_server_message_unpause (user_data);
  return G_SOURCE_REMOVE;
}

static void
handle_request (Emulator *emu, SoupServerMessage *msg, const gchar *method, const gchar *path,
                JsonNode *body, gboolean body_invalid, gsize body_length)
{
  const gchar *id = NULL;
  const Route *route = find_route (method, path, &id);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) out = NULL;
  Request req = { .emu = emu };
  gboolean ok;

  if (emu->dying) {
    respond_fault (msg, "Firecracker is exiting after a failed snapshot load.");
    return;
  }
  if (route == NULL) {
    g_autofree gchar *m = g_strdup_printf ("Invalid request method and/or path: %s %s.", method, path);

    respond_fault (msg, m);
    return;
  }
  if (route->handler == NULL) {
    g_autofree gchar *m = g_strdup_printf ("%s %s is not supported by the emulator.", method, path);

    respond_fault (msg, m);
    return;
  }
  if (body_length > EMU_MAX_PAYLOAD) {
    g_autofree gchar *m = g_strdup_printf ("Request payload with size %" G_GSIZE_FORMAT
                                           " is larger than the limit of %d allowed by server.",
                                           body_length, EMU_MAX_PAYLOAD);
    respond_fault (msg, m);
    return;
  }

  if (route->schema == NULL) {
    if (body_length > 0) {
      g_autofree gchar *m = g_strdup_printf ("%s request cannot have a body.", method);

      respond_fault (msg, m);
      return;
    }
  } else {
    if (body_length == 0 || (body == NULL && !body_invalid)) {
      g_autofree gchar *m = g_strdup_printf ("Empty %s request.", method);

      respond_fault (msg, m);
      return;
    }
    if (body_invalid) {
      respond_fault (msg, "An error occurred when deserializing the json body of a request: invalid JSON.");
      return;
    }
    if (!validate_object (body, route->schema, !route->partial, "", &error)) {
      respond_fault (msg, error->message);
      return;
    }
    req.body = json_node_get_object (body);
  }

  if (route->gate == GATE_PRE_BOOT && emu_post_boot (emu)) {
    respond_fault (msg, "The requested operation is not supported after starting the microVM.");
    return;
  }
  if (route->gate == GATE_POST_BOOT && !emu_post_boot (emu)) {
    respond_fault (msg, "The requested operation is not supported before starting the microVM.");
    return;
  }

  emu->fatal = FALSE;
  req.path_id = id;
  ok = route->handler (&req, &error);
  out = g_steal_pointer (&req.out);
  if (!ok) {
    /* said before the answer goes out: the client may kill us right after */
    if (emu->fatal)
      emit_line ("fc-emulator: exiting after a failed snapshot load");
    respond_fault (msg, error->message);
    if (emu->fatal) {
      /* Like Firecracker after a failed restore: answer, then exit(1). */
      emu->dying = TRUE;
      g_signal_connect (msg, "finished", G_CALLBACK (on_fatal_message_finished), emu);
      /* Fallback in case the client vanishes before the answer is written. */
      g_timeout_add (2000, on_fatal_exit, emu);
    }
    return;
  }
  if (route->boot_specific)
    emu->boot_configured = TRUE;

  if (out != NULL) {
    respond_json (msg, SOUP_STATUS_OK, out);
  } else {
    soup_server_message_set_status (msg, SOUP_STATUS_NO_CONTENT, NULL);
    g_signal_connect (msg, "wrote-headers", G_CALLBACK (on_204_wrote_headers), NULL);
  }
  /* A slow snapshot, for tests of what clients see while one is under way:
   * the files are written, the answer waits without blocking the loop. */
  if (route->handler == put_snapshot_create && emu->snapshot_delay_ms > 0) {
    soup_server_message_pause (msg);
    g_timeout_add_full (G_PRIORITY_DEFAULT, emu->snapshot_delay_ms, on_snapshot_delay_over,
                        g_object_ref (msg), g_object_unref);
  }
}

/* ---- the emulator's own time (FC_EMULATOR_TIMING_LOG) ----
 * One JSON line per event in a file of its own, never in an answer: what the
 * VMM itself spends, for the benchmark to subtract from a client's figure.
 * A request counts from its headers read to its answer written. */

static void
timing_write (Emulator *emu, JsonObject *obj)
{
  g_autoptr(JsonNode) node = json_node_init_object (json_node_alloc (), obj);
  g_autofree gchar *line = json_to_string (node, FALSE);

  fprintf (emu->timing_log, "%s\n", line);
  fflush (emu->timing_log);
}

static void
on_timed_got_headers (SoupServerMessage *msg, G_GNUC_UNUSED gpointer user_data)
{
  gint64 *started = g_new (gint64, 1);

  *started = g_get_monotonic_time ();
  g_object_set_data_full (G_OBJECT (msg), "fc-emulator-started", started, g_free);
}

static void
on_timed_finished (SoupServerMessage *msg, gpointer user_data)
{
  Emulator *emu = user_data;
  gint64 *started = g_object_get_data (G_OBJECT (msg), "fc-emulator-started");
  JsonObject *obj;

  if (started == NULL)
    return; /* the connection closed before a request came in */
  obj = json_object_new ();
  json_object_set_string_member (obj, "event", "request");
  json_object_set_string_member (obj, "method", soup_server_message_get_method (msg));
  json_object_set_string_member (obj, "path", g_uri_get_path (soup_server_message_get_uri (msg)));
  json_object_set_int_member (obj, "status", soup_server_message_get_status (msg));
  json_object_set_int_member (obj, "us", g_get_monotonic_time () - *started);
  timing_write (emu, obj);
  json_object_unref (obj);
}

static void
on_request_started (G_GNUC_UNUSED SoupServer *server, SoupServerMessage *msg, gpointer user_data)
{
  g_signal_connect (msg, "got-headers", G_CALLBACK (on_timed_got_headers), NULL);
  g_signal_connect (msg, "finished", G_CALLBACK (on_timed_finished), user_data);
}

static void
timing_log_listening (Emulator *emu)
{
  JsonObject *obj = json_object_new ();

  json_object_set_string_member (obj, "event", "listening");
  json_object_set_int_member (obj, "pid", getpid ());
  json_object_set_int_member (obj, "us", g_get_monotonic_time () - emu->main_started);
  json_object_set_int_member (obj, "exec_cpu_us", emu->exec_cpu_us);
  timing_write (emu, obj);
  json_object_unref (obj);
}

static void
server_callback (G_GNUC_UNUSED SoupServer *server, SoupServerMessage *msg, const char *path,
                 G_GNUC_UNUSED GHashTable *query, gpointer user_data)
{
  Emulator *emu = user_data;
  const gchar *method = soup_server_message_get_method (msg);
  SoupMessageBody *request_body = soup_server_message_get_request_body (msg);
  g_autoptr(JsonNode) body = NULL;
  gboolean body_invalid = FALSE;
  gsize body_length = request_body != NULL ? (gsize) request_body->length : 0;

  if (body_length > 0) {
    body = smolvm_json_parse (request_body->data, (gssize) body_length, NULL);
    body_invalid = body == NULL;
  }

  log_request (emu, method, path, body, body_invalid);
  handle_request (emu, msg, method, path, body, body_invalid, body_length);
}

/* ------------------------------------------------------------------------ */
/* Process setup.                                                            */

static gboolean
on_signal (gpointer user_data)
{
  emu_quit (user_data, 0);
  return G_SOURCE_REMOVE;
}

/* Firecracker's instance id rule: alphanumeric and '-', 1 to 64 chars. */
static gboolean
check_instance_id (const gchar *id)
{
  gsize len = strlen (id);

  if (len == 0 || len > EMU_MAX_ID_LEN)
    return FALSE;
  for (gsize i = 0; i < len; i++) {
    if (!g_ascii_isalnum (id[i]) && id[i] != '-')
      return FALSE;
  }
  return TRUE;
}

static void
usage (FILE *out)
{
  fprintf (out, "Usage: fc-emulator --api-sock PATH [--id ID]\n"
                "Emulates the Firecracker v" EMU_VMM_VERSION " HTTP API on a Unix socket.\n"
                "Environment: FC_EMULATOR_REQUEST_LOG=FILE  FC_EMULATOR_TICK_MS=N (default 200)\n"
                "             FC_EMULATOR_TIMING_LOG=FILE (one JSON line per request: its time in us)\n"
                "             FC_EMULATOR_SNAPSHOT_DELAY_MS=N (answer PUT /snapshot/create N ms late)\n");
}

/* Firecracker's own parser: "--name value" pairs, each given at most once. */
static gboolean
parse_args (int argc, char **argv, gchar **api_sock, gchar **id, gboolean *exit_now)
{
  *exit_now = FALSE;
  for (int i = 1; i < argc; i++) {
    const gchar *arg = argv[i];
    gchar **target;

    if (g_str_equal (arg, "--help") || g_str_equal (arg, "-h")) {
      usage (stdout);
      *exit_now = TRUE;
      return TRUE;
    }
    if (g_str_equal (arg, "--version")) {
      printf ("Firecracker v%s (fc-emulator)\n", EMU_VMM_VERSION);
      *exit_now = TRUE;
      return TRUE;
    }
    if (g_str_equal (arg, "--api-sock"))
      target = api_sock;
    else if (g_str_equal (arg, "--id"))
      target = id;
    else {
      fprintf (stderr, "fc-emulator: Found argument '%s' which wasn't expected, or isn't valid in this "
                       "context.\n",
               arg);
      return FALSE;
    }
    if (*target != NULL) {
      fprintf (stderr, "fc-emulator: The argument '%s' was provided more than once.\n", arg);
      return FALSE;
    }
    if (i + 1 >= argc) {
      fprintf (stderr, "fc-emulator: The argument '%s' requires a value but none was supplied.\n", arg);
      return FALSE;
    }
    *target = g_strdup (argv[++i]);
  }
  if (*api_sock == NULL) {
    fprintf (stderr, "fc-emulator: the argument '--api-sock' is required.\n");
    return FALSE;
  }
  if (*id != NULL && !check_instance_id (*id)) {
    fprintf (stderr, "fc-emulator: Invalid instance ID: '%s' (alphanumeric and '-', 1 to %d characters).\n",
             *id, EMU_MAX_ID_LEN);
    return FALSE;
  }
  return TRUE;
}

static GSocket *
listen_unix (const gchar *path, GError **error)
{
  g_autoptr(GSocket) sock = NULL;
  g_autoptr(GSocketAddress) addr = NULL;

  sock = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, error);
  if (sock == NULL)
    return NULL;
  addr = g_unix_socket_address_new (path);
  if (!g_socket_bind (sock, addr, FALSE, error) || !g_socket_listen (sock, error)) {
    unlink (path);
    return NULL;
  }
  return g_steal_pointer (&sock);
}

static gboolean
set_address_in_use (const gchar *path, GError **error)
{
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
               "Failed to open the API socket at %s: Address in use (the path already exists)", path);
  return FALSE;
}

/* The socket file only appears once it accepts connections: it is bound and
 * listening under a temporary name, then hard-linked into place (link(2)
 * never replaces an existing file, like Firecracker's bind).  Clients that
 * wait for the file therefore never see ECONNREFUSED. */
static GSocket *
bind_api_socket (const gchar *path, GError **error)
{
  g_autoptr(GSocket) sock = NULL;
  g_autofree gchar *tmp = g_strdup_printf ("%s.%ld.tmp", path, (long) getpid ());
  struct sockaddr_un sun;
  struct stat st;

  if (lstat (path, &st) == 0) {
    set_address_in_use (path, error);
    return NULL;
  }
  if (strlen (tmp) >= sizeof sun.sun_path)
    return listen_unix (path, error); /* no room for a temporary name */

  sock = listen_unix (tmp, error);
  if (sock == NULL)
    return NULL;
  if (link (tmp, path) != 0) {
    int saved_errno = errno;

    unlink (tmp);
    if (saved_errno == EEXIST) {
      set_address_in_use (path, error);
    } else {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "Failed to open the API socket at %s: %s", path, g_strerror (saved_errno));
    }
    return NULL;
  }
  unlink (tmp);
  return g_steal_pointer (&sock);
}

int
main (int argc, char **argv)
{
  Emulator emu = { 0 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) sock = NULL;
  g_autofree gchar *api_sock = NULL;
  g_autofree gchar *id = NULL;
  gint64 main_started = g_get_monotonic_time ();
  struct rusage ru;
  const gchar *log_path = g_getenv ("FC_EMULATOR_REQUEST_LOG");
  const gchar *timing_path = g_getenv ("FC_EMULATOR_TIMING_LOG");
  const gchar *tick_env = g_getenv ("FC_EMULATOR_TICK_MS");
  const gchar *delay_env = g_getenv ("FC_EMULATOR_SNAPSHOT_DELAY_MS");
  gboolean exit_now;

  /* A reader of stdout going away must not kill the "guest". */
  signal (SIGPIPE, SIG_IGN);

  if (!parse_args (argc, argv, &api_sock, &id, &exit_now)) {
    usage (stderr);
    return 1;
  }
  if (exit_now)
    return 0;

  emu.tick_ms = 200;
  if (tick_env != NULL && *tick_env != '\0') {
    guint64 v = 0;

    if (!g_ascii_string_to_unsigned (tick_env, 10, 1, 60000, &v, &error)) {
      fprintf (stderr, "fc-emulator: invalid FC_EMULATOR_TICK_MS '%s': %s\n", tick_env, error->message);
      return 1;
    }
    emu.tick_ms = (guint) v;
  }
  if (delay_env != NULL && *delay_env != '\0') {
    guint64 v = 0;

    if (!g_ascii_string_to_unsigned (delay_env, 10, 0, 600000, &v, &error)) {
      fprintf (stderr, "fc-emulator: invalid FC_EMULATOR_SNAPSHOT_DELAY_MS '%s': %s\n", delay_env,
               error->message);
      return 1;
    }
    emu.snapshot_delay_ms = (guint) v;
  }
  if (log_path != NULL && *log_path != '\0') {
    emu.request_log = fopen (log_path, "ae");
    if (emu.request_log == NULL) {
      fprintf (stderr, "fc-emulator: cannot open request log '%s': %s\n", log_path, g_strerror (errno));
      return 1;
    }
  }

  if (timing_path != NULL && *timing_path != '\0') {
    emu.timing_log = fopen (timing_path, "ae");
    if (emu.timing_log == NULL) {
      fprintf (stderr, "fc-emulator: cannot open timing log '%s': %s\n", timing_path, g_strerror (errno));
      g_clear_pointer (&emu.request_log, fclose);
      return 1;
    }
  }
  emu.main_started = main_started;
  /* the wall time before main() is out of reach; its CPU time is not */
  if (getrusage (RUSAGE_SELF, &ru) == 0)
    emu.exec_cpu_us = (gint64) ru.ru_utime.tv_sec * G_USEC_PER_SEC + ru.ru_utime.tv_usec +
                      (gint64) ru.ru_stime.tv_sec * G_USEC_PER_SEC + ru.ru_stime.tv_usec;

  sock = bind_api_socket (api_sock, &error);
  if (sock == NULL) {
    fprintf (stderr, "fc-emulator: %s\n", error->message);
    g_clear_pointer (&emu.request_log, fclose);
    g_clear_pointer (&emu.timing_log, fclose);
    return 1;
  }

  emu.id = id != NULL ? g_steal_pointer (&id) : g_strdup (EMU_DEFAULT_ID);
  emu.socket_path = g_strdup (api_sock);
  emu.state = VM_NOT_STARTED;
  emu.mem_fd = -1;
  emu.machine_config = default_machine_config ();
  emu.drives = g_ptr_array_new_with_free_func ((GDestroyNotify) json_object_unref);
  emu.ifaces = g_ptr_array_new_with_free_func ((GDestroyNotify) json_object_unref);
  emu.loop = g_main_loop_new (NULL, FALSE);
  emu.server = soup_server_new ("server-header", "Firecracker API", NULL);
  soup_server_add_handler (emu.server, NULL, server_callback, &emu, NULL);
  if (emu.timing_log != NULL)
    g_signal_connect (emu.server, "request-started", G_CALLBACK (on_request_started), &emu);

  if (!soup_server_listen_socket (emu.server, sock, 0, &error)) {
    fprintf (stderr, "fc-emulator: cannot serve on %s: %s\n", api_sock, error->message);
    unlink (api_sock);
    emu.exit_code = 1;
  } else {
    g_unix_signal_add (SIGTERM, on_signal, &emu);
    g_unix_signal_add (SIGINT, on_signal, &emu);
    if (emu.timing_log != NULL)
      timing_log_listening (&emu);
    g_main_loop_run (emu.loop);
    soup_server_disconnect (emu.server);
    unlink (api_sock);
  }

  g_clear_handle_id (&emu.tick_source, g_source_remove);
  if (emu.mem_map != NULL)
    munmap (emu.mem_map, emu.mem_map_size);
  if (emu.mem_fd >= 0)
    close (emu.mem_fd);
  g_clear_object (&emu.server);
  g_clear_pointer (&emu.loop, g_main_loop_unref);
  g_clear_pointer (&emu.machine_config, json_object_unref);
  g_clear_pointer (&emu.boot_source, json_object_unref);
  g_clear_pointer (&emu.drives, g_ptr_array_unref);
  g_clear_pointer (&emu.ifaces, g_ptr_array_unref);
  g_clear_pointer (&emu.logger, json_object_unref);
  g_clear_pointer (&emu.metrics, json_object_unref);
  g_clear_pointer (&emu.metrics_path, g_free);
  g_clear_pointer (&emu.id, g_free);
  g_clear_pointer (&emu.socket_path, g_free);
  g_clear_pointer (&emu.request_log, fclose);
  g_clear_pointer (&emu.timing_log, fclose);
  return emu.exit_code;
}
