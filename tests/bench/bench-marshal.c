/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench-marshal [--runs N] list|objects BODY: what GDBus itself costs for one
 * big reply, with no bus and no daemon: the floor under ListSnapshots and
 * GetManagedObjects at 10,000 snapshots.
 *
 * BODY holds a reply body's GVariant bytes as a client received them
 * (bench.py saves the daemon's replies): (a(oa{sv})) for "list",
 * (a{oa{sa{sv}}}) for "objects". The body is rebuilt in the form the daemon
 * hands to GDBus -- for ListSnapshots, list_reply_thread() builds a tree of
 * (o, info) tuples whose infos are each one flat, serialized a{sv} (the
 * snapshot's cached info); for GetManagedObjects, GLib's object manager
 * builds a tree of {o, {s, properties}} entries whose properties are each one
 * flat a{sv} (smolvm-snapshot.c's cached properties) -- and then, timed
 * apart:
 *   build:     building that tree from the leaves (the daemon's own part);
 *   serialize: g_dbus_message_new_method_reply() + g_dbus_message_set_body()
 *              + g_dbus_message_to_blob(), what g_dbus_method_invocation_return_value()
 *              does in the daemon (with the connection's lock held, in GLib 2.74);
 *   parse:     g_dbus_message_new_from_blob() of those bytes, what every
 *              GDBus client's worker thread does before the call returns;
 *   serialize_flat: the same serialization of the body as one flat value
 *              (as read from BODY), for comparison: the form is not the cost.
 * Prints one JSON object: medians of the thread's CPU time (ms) over N runs
 * (default 5) after one warm-up, and the message's size in bytes. */
#include "config.h"

#include <gio/gio.h>
#include <stdlib.h>
#include <time.h>

typedef struct {
  gchar *path;
  GPtrArray *names;  /* interface names ("objects" only) */
  GPtrArray *leaves; /* flat a{sv} values, each with its own bytes */
} Entry;

static void
entry_free (Entry *entry)
{
  g_free (entry->path);
  g_ptr_array_unref (entry->names);
  g_ptr_array_unref (entry->leaves);
  g_free (entry);
}

static gdouble
thread_cpu_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static gint
compare_doubles (gconstpointer a, gconstpointer b)
{
  gdouble x = *(const gdouble *) a, y = *(const gdouble *) b;
  return (x > y) - (x < y);
}

static gdouble
median (GArray *values)
{
  g_array_sort (values, compare_doubles);
  if (values->len % 2 == 1)
    return g_array_index (values, gdouble, values->len / 2);
  return (g_array_index (values, gdouble, values->len / 2 - 1) +
          g_array_index (values, gdouble, values->len / 2)) / 2;
}

/* A flat copy of @value in a buffer of its own, as the daemon caches it
 * (smolvm-snapshot.c's serialized()): not a view into the whole body. */
static GVariant *
own_copy (GVariant *value)
{
  g_autoptr(GBytes) bytes = g_bytes_new (g_variant_get_data (value), g_variant_get_size (value));
  return g_variant_ref_sink (g_variant_new_from_bytes (g_variant_get_type (value), bytes, TRUE));
}

static GPtrArray *
entries_of (GVariant *body, gboolean objects)
{
  g_autoptr(GVariant) array = g_variant_get_child_value (body, 0);
  GPtrArray *entries = g_ptr_array_new_with_free_func ((GDestroyNotify) entry_free);
  gsize n = g_variant_n_children (array);

  for (gsize i = 0; i < n; i++) {
    g_autoptr(GVariant) item = g_variant_get_child_value (array, i);
    g_autoptr(GVariant) path = g_variant_get_child_value (item, 0);
    g_autoptr(GVariant) value = g_variant_get_child_value (item, 1);
    Entry *entry = g_new0 (Entry, 1);

    entry->path = g_variant_dup_string (path, NULL);
    entry->names = g_ptr_array_new_with_free_func (g_free);
    entry->leaves = g_ptr_array_new_with_free_func ((GDestroyNotify) g_variant_unref);
    if (objects) {
      gsize m = g_variant_n_children (value);
      for (gsize j = 0; j < m; j++) {
        g_autoptr(GVariant) iface = g_variant_get_child_value (value, j);
        g_autoptr(GVariant) name = g_variant_get_child_value (iface, 0);
        g_autoptr(GVariant) props = g_variant_get_child_value (iface, 1);
        g_ptr_array_add (entry->names, g_variant_dup_string (name, NULL));
        g_ptr_array_add (entry->leaves, own_copy (props));
      }
    } else {
      g_ptr_array_add (entry->leaves, own_copy (value));
    }
    g_ptr_array_add (entries, entry);
  }
  return entries;
}

/* The body as the daemon gives it to GDBus (see the top of this file). */
static GVariant *
build_body (GPtrArray *entries, gboolean objects)
{
  if (objects) {
    g_auto(GVariantBuilder) b = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE ("a{oa{sa{sv}}}"));
    for (guint i = 0; i < entries->len; i++) {
      Entry *entry = g_ptr_array_index (entries, i);
      GVariantBuilder ifaces;
      g_variant_builder_init (&ifaces, G_VARIANT_TYPE ("a{sa{sv}}"));
      for (guint j = 0; j < entry->leaves->len; j++) {
        /* smolvm-snapshot.c's get_properties(): a new value on the cached bytes */
        g_autoptr(GBytes) bytes =
          g_variant_get_data_as_bytes (g_ptr_array_index (entry->leaves, j));
        g_variant_builder_add (&ifaces, "{s@a{sv}}",
                               (const gchar *) g_ptr_array_index (entry->names, j),
                               g_variant_new_from_bytes (G_VARIANT_TYPE_VARDICT, bytes, TRUE));
      }
      g_variant_builder_add (&b, "{oa{sa{sv}}}", entry->path, &ifaces);
    }
    return g_variant_ref_sink (g_variant_new ("(a{oa{sa{sv}}})", &b));
  } else {
    g_auto(GVariantBuilder) b = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE ("a(oa{sv})"));
    for (guint i = 0; i < entries->len; i++) {
      Entry *entry = g_ptr_array_index (entries, i);
      g_variant_builder_add (&b, "(o@a{sv})", entry->path,
                             (GVariant *) g_ptr_array_index (entry->leaves, 0));
    }
    /* what smolvm_dbus_manager_complete_list_snapshots() wraps it in */
    return g_variant_ref_sink (g_variant_new ("(@a(oa{sv}))", g_variant_builder_end (&b)));
  }
}

/* What g_dbus_method_invocation_return_value() makes of @body: a reply to
 * @call, serialized. */
static guchar *
serialize (GDBusMessage *call, GVariant *body, gsize *size, GError **error)
{
  g_autoptr(GDBusMessage) reply = g_dbus_message_new_method_reply (call);

  g_dbus_message_set_body (reply, body);
  return g_dbus_message_to_blob (reply, size, G_DBUS_CAPABILITY_FLAGS_NONE, error);
}

int
main (int argc, char **argv)
{
  gint runs = 5;
  const GOptionEntry options[] = {
    { "runs", 'n', 0, G_OPTION_ARG_INT, &runs, "Timed runs (after one warm-up)", "N" },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new ("list|objects BODY");
  g_autoptr(GError) error = NULL;
  g_autofree gchar *contents = NULL;
  gsize length;
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GVariant) flat = NULL;
  g_autoptr(GPtrArray) entries = NULL;
  g_autoptr(GDBusMessage) call = NULL;
  g_autoptr(GArray) build_ms = g_array_new (FALSE, FALSE, sizeof (gdouble));
  g_autoptr(GArray) serialize_ms = g_array_new (FALSE, FALSE, sizeof (gdouble));
  g_autoptr(GArray) parse_ms = g_array_new (FALSE, FALSE, sizeof (gdouble));
  g_autoptr(GArray) flat_ms = g_array_new (FALSE, FALSE, sizeof (gdouble));
  gboolean objects;
  gsize blob_size = 0;

  g_option_context_set_summary (context,
                                "Times GDBus's serialization and parsing of a saved reply body.");
  g_option_context_add_main_entries (context, options, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error)) {
    g_printerr ("bench-marshal: %s\n", error->message);
    return 2;
  }
  if (argc != 3 || (g_strcmp0 (argv[1], "list") != 0 && g_strcmp0 (argv[1], "objects") != 0) ||
      runs < 1) {
    g_printerr ("usage: bench-marshal [--runs N] list|objects BODY\n");
    return 2;
  }
  objects = g_str_equal (argv[1], "objects");
  if (!g_file_get_contents (argv[2], &contents, &length, &error)) {
    g_printerr ("bench-marshal: %s\n", error->message);
    return EXIT_FAILURE;
  }
  bytes = g_bytes_new_take (g_steal_pointer (&contents), length);
  flat = g_variant_ref_sink (g_variant_new_from_bytes (
    G_VARIANT_TYPE (objects ? "(a{oa{sa{sv}}})" : "(a(oa{sv}))"), bytes, FALSE));
  if (!g_variant_is_normal_form (flat)) {
    g_printerr ("bench-marshal: %s is not a %s reply body\n", argv[2],
                objects ? "GetManagedObjects" : "ListSnapshots");
    return EXIT_FAILURE;
  }
  entries = entries_of (flat, objects);

  call = g_dbus_message_new_method_call ("org.smolvm.Manager", "/org/smolvm/Manager",
                                         objects ? "org.freedesktop.DBus.ObjectManager"
                                                 : "org.smolvm.Manager",
                                         objects ? "GetManagedObjects" : "ListSnapshots");
  g_dbus_message_set_serial (call, 1);
  g_dbus_message_set_sender (call, ":1.1");

  for (gint run = 0; run <= runs; run++) {
    g_autoptr(GVariant) body = NULL;
    g_autofree guchar *blob = NULL;
    g_autofree guchar *flat_blob = NULL;
    g_autoptr(GDBusMessage) parsed = NULL;
    gsize flat_size;
    gdouble t0, t1, t2, t3, t4;

    t0 = thread_cpu_ms ();
    body = build_body (entries, objects);
    t1 = thread_cpu_ms ();
    blob = serialize (call, body, &blob_size, &error);
    t2 = thread_cpu_ms ();
    if (blob == NULL) {
      g_printerr ("bench-marshal: serializing: %s\n", error->message);
      return EXIT_FAILURE;
    }
    parsed = g_dbus_message_new_from_blob (blob, blob_size, G_DBUS_CAPABILITY_FLAGS_NONE, &error);
    t3 = thread_cpu_ms ();
    if (parsed == NULL) {
      g_printerr ("bench-marshal: parsing: %s\n", error->message);
      return EXIT_FAILURE;
    }
    flat_blob = serialize (call, flat, &flat_size, &error);
    t4 = thread_cpu_ms ();
    if (flat_blob == NULL) {
      g_printerr ("bench-marshal: serializing: %s\n", error->message);
      return EXIT_FAILURE;
    }
    if (run == 0) {
      /* the warm-up also checks that the round trip gives back the body */
      if (!g_variant_equal (g_dbus_message_get_body (parsed), flat) || flat_size != blob_size) {
        g_printerr ("bench-marshal: the parsed reply differs from %s\n", argv[2]);
        return EXIT_FAILURE;
      }
      continue;
    }
    g_array_append_vals (build_ms, &(gdouble){ t1 - t0 }, 1);
    g_array_append_vals (serialize_ms, &(gdouble){ t2 - t1 }, 1);
    g_array_append_vals (parse_ms, &(gdouble){ t3 - t2 }, 1);
    g_array_append_vals (flat_ms, &(gdouble){ t4 - t3 }, 1);
  }
  g_print ("{\"kind\": \"%s\", \"entries\": %u, \"message_bytes\": %" G_GSIZE_FORMAT
           ", \"runs\": %d, \"clock\": \"thread CPU time\", \"build_ms\": %.3f, "
           "\"serialize_ms\": %.3f, \"parse_ms\": %.3f, \"serialize_flat_ms\": %.3f}\n",
           argv[1], entries->len, blob_size, runs, median (build_ms), median (serialize_ms),
           median (parse_ms), median (flat_ms));
  return EXIT_SUCCESS;
}
