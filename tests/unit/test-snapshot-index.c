/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The start-up cache of snapshot records: what is written is found again,
 * only under its own stamp, and a damaged or foreign file is an empty
 * index, never a crash or a wrong record. */
#define _GNU_SOURCE
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smolvm-snapshot-index.h"

typedef struct {
  gchar *dir;
  gchar *path;
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  f->dir = g_dir_make_tmp ("smolvm-index-XXXXXX", &error);
  g_assert_no_error (error);
  f->path = g_build_filename (f->dir, SMOLVM_SNAPSHOT_INDEX_NAME, NULL);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_autoptr(GDir) dir = g_dir_open (f->dir, 0, NULL);
  const gchar *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL) {
    g_autofree gchar *path = g_build_filename (f->dir, name, NULL);
    g_assert_cmpint (g_unlink (path), ==, 0);
  }
  g_assert_cmpint (g_rmdir (f->dir), ==, 0);
  g_free (f->path);
  g_free (f->dir);
}

static const gchar *const ids[] = { "snap-a", "snap-b", "snap-c" };

static SmolvmRecordStamp
stamp_of (guint i)
{
  return (SmolvmRecordStamp){ .dev = 1, .ino = 100 + i, .size = 10 * i, .mtime_ns = 1000 + i,
                              .ctime_ns = 2000 + i };
}

static GVariant *original (guint i);

/* Three records of different types and sizes, as any record may be */
static void
write_three (Fixture *f)
{
  SmolvmRecordStamp stamps[3] = { stamp_of (0), stamp_of (1), stamp_of (2) };
  g_autoptr(GVariant) a = original (0);
  g_autoptr(GVariant) b = original (1);
  g_autoptr(GVariant) c = original (2);
  GVariant *records[3] = { a, b, c };
  g_autoptr(GError) error = NULL;

  g_assert_true (smolvm_snapshot_index_write (f->path, 3, ids, stamps, records, &error));
  g_assert_no_error (error);
}

static void
test_round_trip (Fixture *f, gconstpointer data)
{
  g_autoptr(SmolvmSnapshotIndex) index = NULL;
  g_autoptr(GVariant) a = NULL;
  g_autoptr(GVariant) b = NULL;
  g_autoptr(GVariant) c = NULL;
  const gchar *s;
  gint64 x;
  guint64 t;

  write_three (f);
  index = smolvm_snapshot_index_read (f->path);
  g_assert_cmpuint (smolvm_snapshot_index_get_size (index), ==, 3);

  a = smolvm_snapshot_index_lookup (index, 0, "snap-a", &(SmolvmRecordStamp){ 1, 100, 0, 1000, 2000 });
  g_assert_nonnull (a);
  g_assert_cmpstr (g_variant_get_type_string (a), ==, "(sx)");
  g_variant_get (a, "(&sx)", &s, &x);
  g_assert_cmpstr (s, ==, "first");
  g_assert_cmpint (x, ==, -1);

  /* a hint that is wrong, or out of range, still finds the entry */
  b = smolvm_snapshot_index_lookup (index, 2, "snap-b", &(SmolvmRecordStamp){ 1, 101, 10, 1001, 2001 });
  g_assert_nonnull (b);
  g_assert_cmpstr (g_variant_get_string (b, NULL), ==, "b");
  c = smolvm_snapshot_index_lookup (index, 99, "snap-c", &(SmolvmRecordStamp){ 1, 102, 20, 1002, 2002 });
  g_assert_nonnull (c);
  g_variant_get (c, "(t@a{sv})", &t, NULL);
  g_assert_cmpuint (t, ==, 7);
}

/* Any change of the record file (another inode, size, times, device)
 * means the entry is not its record any more. */
static void
test_stamp_mismatch (Fixture *f, gconstpointer data)
{
  g_autoptr(SmolvmSnapshotIndex) index = NULL;

  write_three (f);
  index = smolvm_snapshot_index_read (f->path);
  for (guint field = 0; field < 5; field++) {
    SmolvmRecordStamp stamp = stamp_of (1);
    guint64 *fields = (guint64 *) &stamp;
    g_autoptr(GVariant) record = NULL;
    fields[field]++;
    record = smolvm_snapshot_index_lookup (index, 1, "snap-b", &stamp);
    g_assert_null (record);
  }
  /* and an id it does not hold, or a stamp of another entry */
  g_assert_null (smolvm_snapshot_index_lookup (index, 0, "snap-d", &(SmolvmRecordStamp){ 0 }));
  {
    SmolvmRecordStamp other = stamp_of (0);
    g_assert_null (smolvm_snapshot_index_lookup (index, 1, "snap-b", &other));
  }
}

static void
test_missing (Fixture *f, gconstpointer data)
{
  g_autoptr(SmolvmSnapshotIndex) index = smolvm_snapshot_index_read (f->path);
  SmolvmRecordStamp stamp = stamp_of (0);

  g_assert_cmpuint (smolvm_snapshot_index_get_size (index), ==, 0);
  g_assert_null (smolvm_snapshot_index_lookup (index, 0, "snap-a", &stamp));
}

/* The records write_three() writes, in the same order */
static GVariant *
original (guint i)
{
  switch (i) {
  case 0:
    return g_variant_ref_sink (g_variant_new ("(sx)", "first", (gint64) -1));
  case 1:
    return g_variant_ref_sink (g_variant_new_string ("b"));
  default:
    return g_variant_ref_sink (g_variant_new ("(ta{sv})", (guint64) 7, NULL));
  }
}

/* What a damaged index gives for each id is nothing or the very record
 * that was written: stamps and ids are compared, and each record has its
 * digest. */
static void
check_damaged (const gchar *path)
{
  g_autoptr(SmolvmSnapshotIndex) index = smolvm_snapshot_index_read (path);

  for (guint i = 0; i < 3; i++) {
    SmolvmRecordStamp stamp = stamp_of (i);
    g_autoptr(GVariant) record = smolvm_snapshot_index_lookup (index, i, ids[i], &stamp);
    g_autoptr(GVariant) expected = original (i);
    if (record != NULL)
      g_assert_true (g_variant_equal (record, expected));
  }
}

/* Every prefix of a valid index, and every byte of it flipped */
static void
test_damaged (Fixture *f, gconstpointer data)
{
  g_autofree gchar *good = NULL;
  gsize length = 0;
  g_autoptr(GError) error = NULL;
  guint found = 0;

  write_three (f);
  g_assert_true (g_file_get_contents (f->path, &good, &length, &error));
  for (gsize cut = 0; cut < length; cut++) {
    g_assert_true (g_file_set_contents (f->path, good, (gssize) cut, &error));
    check_damaged (f->path);
  }
  for (gsize at = 0; at < length; at++) {
    g_autofree gchar *bad = g_memdup2 (good, length);
    bad[at] ^= 0x5a;
    g_assert_true (g_file_set_contents (f->path, bad, (gssize) length, &error));
    check_damaged (f->path);
  }
  /* and the digest is what refuses a record whose own bytes changed */
  {
    gchar *at = memmem (good, length, "first", 5);
    g_autoptr(SmolvmSnapshotIndex) index = NULL;
    SmolvmRecordStamp stamp = stamp_of (0), other = stamp_of (1);
    g_autoptr(GVariant) none = NULL;
    g_autoptr(GVariant) still = NULL;

    g_assert_nonnull (at);
    at[0] = 'F';
    g_assert_true (g_file_set_contents (f->path, good, (gssize) length, &error));
    index = smolvm_snapshot_index_read (f->path);
    none = smolvm_snapshot_index_lookup (index, 0, ids[0], &stamp);
    still = smolvm_snapshot_index_lookup (index, 1, ids[1], &other);
    g_assert_null (none);
    g_assert_nonnull (still);
    found++;
  }
  g_assert_cmpuint (found, ==, 1);
}

static void
test_foreign (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) other = g_variant_ref_sink (g_variant_new (
    "(sua(ttttttttttt)ay)", "smolvm-snapshot-index", (guint32) 2, NULL, NULL));
  g_autoptr(SmolvmSnapshotIndex) index = NULL;

  /* another version of the layout is an empty index */
  g_assert_true (g_file_set_contents (f->path, g_variant_get_data (other),
                                      (gssize) g_variant_get_size (other), &error));
  index = smolvm_snapshot_index_read (f->path);
  g_assert_cmpuint (smolvm_snapshot_index_get_size (index), ==, 0);
  g_clear_pointer (&index, smolvm_snapshot_index_free);

  g_assert_true (g_file_set_contents (f->path, "{\"not\": \"an index\"}", -1, &error));
  index = smolvm_snapshot_index_read (f->path);
  g_assert_cmpuint (smolvm_snapshot_index_get_size (index), ==, 0);
}

/* A write cut short (a crash) leaves a temporary file: the next write
 * removes it, and only it. */
static void
test_leftovers (Fixture *f, gconstpointer data)
{
  g_autofree gchar *leftover = g_build_filename (f->dir, "..index.Ab12Cd", NULL);
  g_autofree gchar *other = g_build_filename (f->dir, "..index.keep-me", NULL);
  g_autoptr(GError) error = NULL;

  g_assert_true (g_file_set_contents (leftover, "x", -1, &error));
  g_assert_true (g_file_set_contents (other, "x", -1, &error));
  write_three (f);
  g_assert_false (g_file_test (leftover, G_FILE_TEST_EXISTS));
  g_assert_true (g_file_test (other, G_FILE_TEST_EXISTS));
  g_assert_true (g_file_test (f->path, G_FILE_TEST_IS_REGULAR));
}

static void
test_stamp_read (Fixture *f, gconstpointer data)
{
  g_autofree gchar *file = g_build_filename (f->dir, "record", NULL);
  g_autofree gchar *link = g_build_filename (f->dir, "link", NULL);
  g_autoptr(GError) error = NULL;
  SmolvmRecordStamp stamp, again, replaced;
  struct stat st;

  g_assert_true (g_file_set_contents (file, "{}", -1, &error));
  g_assert_cmpint (stat (file, &st), ==, 0);
  g_assert_true (smolvm_record_stamp_read (AT_FDCWD, file, &stamp));
  g_assert_cmpuint (stamp.ino, ==, st.st_ino);
  g_assert_cmpuint (stamp.size, ==, 2);
  g_assert_true (smolvm_record_stamp_read (AT_FDCWD, file, &again));
  g_assert_cmpmem (&stamp, sizeof (stamp), &again, sizeof (again));

  /* relative to a directory, as start-up reads them */
  {
    int dir_fd = open (f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    g_assert_cmpint (dir_fd, >=, 0);
    g_assert_true (smolvm_record_stamp_read (dir_fd, "record", &again));
    g_assert_cmpmem (&stamp, sizeof (stamp), &again, sizeof (again));
    close (dir_fd);
  }

  /* replaced as records are (a rename): another stamp */
  g_assert_true (g_file_set_contents (file, "{}", -1, &error));
  g_assert_true (smolvm_record_stamp_read (AT_FDCWD, file, &replaced));
  g_assert_true (memcmp (&stamp, &replaced, sizeof (stamp)) != 0);

  /* not a regular file: no stamp, and the record is read (and refused) */
  g_assert_cmpint (symlink (file, link), ==, 0);
  g_assert_false (smolvm_record_stamp_read (AT_FDCWD, link, &stamp));
  g_assert_false (smolvm_record_stamp_read (AT_FDCWD, f->dir, &stamp));
  g_assert_false (smolvm_record_stamp_read (AT_FDCWD, "/nonexistent/record", &stamp));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(name, fn) g_test_add (name, Fixture, NULL, fixture_setup, fn, fixture_teardown)
  ADD ("/snapshot-index/round-trip", test_round_trip);
  ADD ("/snapshot-index/stamp-mismatch", test_stamp_mismatch);
  ADD ("/snapshot-index/missing", test_missing);
  ADD ("/snapshot-index/damaged", test_damaged);
  ADD ("/snapshot-index/foreign", test_foreign);
  ADD ("/snapshot-index/leftovers", test_leftovers);
  ADD ("/snapshot-index/stamp-read", test_stamp_read);
  return g_test_run ();
}
