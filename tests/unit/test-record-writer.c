/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The record writer alone: order, coalescing, flush, failures. */
#include "config.h"

#include <string.h>

#include <glib/gstdio.h>

#include "smolvm-fileutil.h"
#include "smolvm-record-writer.h"

typedef struct {
  gchar *root;
  SmolvmRecordWriter *writer;
  GMainLoop *loop;
} Fixture;

static void
setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  f->root = g_dir_make_tmp ("smolvm-records-XXXXXX", &error);
  g_assert_no_error (error);
  f->writer = smolvm_record_writer_new ();
  f->loop = g_main_loop_new (NULL, FALSE);
}

static void
teardown (Fixture *f, gconstpointer data)
{
  g_clear_object (&f->writer);
  g_assert_true (smolvm_rm_rf (f->root, NULL));
  g_free (f->root);
  g_main_loop_unref (f->loop);
}

static gchar *
read_file (const gchar *path)
{
  gchar *contents = NULL;
  if (!g_file_get_contents (path, &contents, NULL, NULL))
    return NULL;
  return contents;
}

static void
on_flushed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Fixture *f = user_data;
  smolvm_record_writer_flush_finish (SMOLVM_RECORD_WRITER (source), result);
  g_main_loop_quit (f->loop);
}

static void
flush (Fixture *f)
{
  smolvm_record_writer_flush_async (f->writer, on_flushed, f);
  g_main_loop_run (f->loop);
}

/* Many writes of one record, flushed: the last one is on disk, and no
 * temporary file is left beside it. */
static void
test_last_write_wins (Fixture *f, gconstpointer data)
{
  g_autofree gchar *path = g_build_filename (f->root, "vm.json", NULL);
  g_autofree gchar *contents = NULL;
  g_autoptr(GDir) dir = NULL;
  guint entries = 0;

  for (guint i = 0; i < 200; i++) {
    g_autofree gchar *text = g_strdup_printf ("{\"n\": %u}", i);
    smolvm_record_writer_write (f->writer, path, text);
  }
  flush (f);
  g_assert_false (smolvm_record_writer_is_busy (f->writer));
  contents = read_file (path);
  g_assert_cmpstr (contents, ==, "{\"n\": 199}");
  dir = g_dir_open (f->root, 0, NULL);
  while (g_dir_read_name (dir) != NULL)
    entries++;
  g_assert_cmpuint (entries, ==, 1);
}

/* Writes of several records in turn, flushed: each holds its last state. */
static void
test_several_records (Fixture *f, gconstpointer data)
{
  for (guint i = 0; i < 30; i++) {
    g_autofree gchar *path = g_strdup_printf ("%s/r%u.json", f->root, i % 3);
    g_autofree gchar *text = g_strdup_printf ("%u", i);
    smolvm_record_writer_write (f->writer, path, text);
  }
  flush (f);
  for (guint r = 0; r < 3; r++) {
    g_autofree gchar *path = g_strdup_printf ("%s/r%u.json", f->root, r);
    g_autofree gchar *contents = read_file (path);
    g_autofree gchar *expected = g_strdup_printf ("%u", 27 + r);
    g_assert_cmpstr (contents, ==, expected);
  }
}

typedef struct {
  Fixture *f;
  gboolean ok;
  GError *error;
  gchar *seen; /* the file when the callback ran */
  gchar *path;
} WriteResult;

static void
on_written (GObject *source, GAsyncResult *result, gpointer user_data)
{
  WriteResult *r = user_data;
  r->ok = smolvm_record_writer_write_finish (SMOLVM_RECORD_WRITER (source), result, &r->error);
  r->seen = read_file (r->path);
  g_main_loop_quit (r->f->loop);
}

/* A write the caller waits for: done (and on disk) when it completes, and
 * a queued plain write of the same record before it does not land after. */
static void
test_write_async (Fixture *f, gconstpointer data)
{
  g_autofree gchar *path = g_build_filename (f->root, "snapshot.json", NULL);
  WriteResult r = { .f = f, .path = path };
  g_autofree gchar *contents = NULL;

  smolvm_record_writer_write (f->writer, path, "old");
  smolvm_record_writer_write_async (f->writer, path, "new", on_written, &r);
  g_main_loop_run (f->loop);
  g_assert_no_error (r.error);
  g_assert_true (r.ok);
  g_assert_cmpstr (r.seen, ==, "new");
  /* a plain write after it is not merged into the older one */
  smolvm_record_writer_write (f->writer, path, "newer");
  flush (f);
  contents = read_file (path);
  g_assert_cmpstr (contents, ==, "newer");
  g_free (r.seen);
}

/* A record whose directory does not exist: the caller that waits hears. */
/* A write the caller waits for only until the record is in place: the file
 * holds it when the callback runs; a write that cannot happen still fails;
 * and the writer is busy until it has synced the directory, so a flush
 * (which a reply waits for) comes after that sync. */
static void
test_write_visible_async (Fixture *f, gconstpointer data)
{
  g_autofree gchar *path = g_build_filename (f->root, "vm.json", NULL);
  g_autofree gchar *missing = g_build_filename (f->root, "gone", "vm.json", NULL);
  WriteResult r = { .f = f, .path = path };
  WriteResult bad = { .f = f, .path = missing };

  smolvm_record_writer_write (f->writer, path, "old");
  smolvm_record_writer_write_visible_async (f->writer, path, "marked", on_written, &r);
  g_main_loop_run (f->loop);
  g_assert_no_error (r.error);
  g_assert_true (r.ok);
  g_assert_cmpstr (r.seen, ==, "marked");
  flush (f);
  g_assert_false (smolvm_record_writer_is_busy (f->writer));

  smolvm_record_writer_write_visible_async (f->writer, missing, "x", on_written, &bad);
  g_main_loop_run (f->loop);
  g_assert_false (bad.ok);
  g_assert_nonnull (bad.error);
  g_assert_null (bad.seen);
  g_clear_error (&bad.error);
  g_free (r.seen);
}

static void
test_write_async_fails (Fixture *f, gconstpointer data)
{
  g_autofree gchar *path = g_build_filename (f->root, "gone", "vm.json", NULL);
  WriteResult r = { .f = f, .path = path };

  smolvm_record_writer_write_async (f->writer, path, "x", on_written, &r);
  g_main_loop_run (f->loop);
  g_assert_false (r.ok);
  g_assert_nonnull (r.error);
  g_assert_null (r.seen);
  g_clear_error (&r.error);
}

/* g_test_expect_message() misses structured logging: count by hand (the
 * worker logs; the main thread reads the count after a flush) */
static gint failure_warnings;

static GLogWriterOutput
log_writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer user_data)
{
  for (gsize i = 0; i < n_fields; i++) {
    if ((level & G_LOG_LEVEL_WARNING) && g_str_equal (fields[i].key, "MESSAGE") &&
        fields[i].length < 0 && strstr (fields[i].value, "Cannot write") != NULL) {
      g_atomic_int_inc (&failure_warnings);
      return G_LOG_WRITER_HANDLED;
    }
  }
  return g_log_writer_default (level, fields, n_fields, user_data);
}

/* A plain write that fails is logged, and a flush still completes. */
static void
test_failure_logged (Fixture *f, gconstpointer data)
{
  g_autofree gchar *path = g_build_filename (f->root, "gone", "vm.json", NULL);

  g_atomic_int_set (&failure_warnings, 0);
  smolvm_record_writer_write (f->writer, path, "x");
  flush (f);
  g_assert_cmpint (g_atomic_int_get (&failure_warnings), ==, 1);
}

/* A flush asked for in the same main-loop iteration as plain writes (which
 * wait for the iteration's end before they go to the worker) still comes
 * after them: a directory removed after the flush gets no write later. */
static void
test_flush_after_deferred (Fixture *f, gconstpointer data)
{
  g_autofree gchar *path = g_build_filename (f->root, "vm.json", NULL);
  g_autofree gchar *other = g_build_filename (f->root, "other.json", NULL);
  g_autofree gchar *contents = NULL;
  g_autofree gchar *other_contents = NULL;

  for (guint i = 0; i < 50; i++)
    smolvm_record_writer_write (f->writer, path, i < 49 ? "queued" : "last");
  smolvm_record_writer_write (f->writer, other, "other");
  flush (f);
  g_assert_false (smolvm_record_writer_is_busy (f->writer));
  contents = read_file (path);
  g_assert_cmpstr (contents, ==, "last");
  other_contents = read_file (other);
  g_assert_cmpstr (other_contents, ==, "other");
}

/* Writes queued when the writer goes are still made. */
static void
test_finalize_writes (Fixture *f, gconstpointer data)
{
  g_autofree gchar *path = g_build_filename (f->root, "vm.json", NULL);
  g_autofree gchar *contents = NULL;

  smolvm_record_writer_write (f->writer, path, "last");
  g_clear_object (&f->writer);
  contents = read_file (path);
  g_assert_cmpstr (contents, ==, "last");
}

/* An idle writer's flush completes without a trip through the worker. */
static void
test_flush_idle (Fixture *f, gconstpointer data)
{
  g_assert_false (smolvm_record_writer_is_busy (f->writer));
  flush (f);
  g_assert_false (smolvm_record_writer_is_busy (f->writer));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_log_set_writer_func (log_writer, NULL, NULL);
#define ADD(name, fn) g_test_add (name, Fixture, NULL, setup, fn, teardown)
  ADD ("/record-writer/last-write-wins", test_last_write_wins);
  ADD ("/record-writer/several-records", test_several_records);
  ADD ("/record-writer/write-async", test_write_async);
  ADD ("/record-writer/write-async-fails", test_write_async_fails);
  ADD ("/record-writer/write-visible-async", test_write_visible_async);
  ADD ("/record-writer/failure-logged", test_failure_logged);
  ADD ("/record-writer/flush-after-deferred", test_flush_after_deferred);
  ADD ("/record-writer/finalize-writes", test_finalize_writes);
  ADD ("/record-writer/flush-idle", test_flush_idle);
#undef ADD
  return g_test_run ();
}
