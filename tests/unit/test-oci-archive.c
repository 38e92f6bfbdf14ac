/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* OCI archives alone: an artifact written to a descriptor and read back
 * into another layout, a damaged archive, a Cancel while the reader waits
 * for data. */
#define _GNU_SOURCE /* memmem */
#include "config.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "smolvm-error.h"
#include "smolvm-fileutil.h"
#include "smolvm-oci-archive.h"

typedef struct {
  gchar *root;
  gchar *snapshot;
  gchar *layout;
  gchar *received;
  gchar *archive;
  SmolvmOciArtifact *artifact;
} Fixture;

static const gchar record[] =
  "{\"snapshot_id\": \"snap-a\", \"vm_id\": \"vm-a\", \"vm_config\": {\"vm_id\": \"vm-a\"}, "
  "\"network_config\": {}, \"created_at\": \"2026-12-01T10:00:00.000000+00:00\", "
  "\"restored\": false, \"restored_vm_id\": null, \"backend\": \"firecracker\"}";

static void
write_file (const gchar *dir, const gchar *name, const gchar *contents, gsize length,
            goffset size)
{
  g_autofree gchar *path = g_build_filename (dir, name, NULL);
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (write (fd, contents, length), ==, (gssize) length);
  g_assert_cmpint (ftruncate (fd, size), ==, 0);
  close (fd);
}

static void
setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  f->root = g_dir_make_tmp ("smolvm-ociarc-XXXXXX", &error);
  g_assert_no_error (error);
  f->snapshot = g_build_filename (f->root, "snap", NULL);
  f->layout = g_build_filename (f->root, "layout", NULL);
  f->received = g_build_filename (f->root, "received", NULL);
  f->archive = g_build_filename (f->root, "snap.tar", NULL);
  g_assert_cmpint (g_mkdir (f->snapshot, 0700), ==, 0);
  write_file (f->snapshot, "snapshot.json", record, strlen (record), strlen (record));
  write_file (f->snapshot, "vmstate.bin", "state", 5, 5);
  write_file (f->snapshot, "mem.bin", "memory", 6, 8 * 1024 * 1024);
  write_file (f->snapshot, "disk.ext4", "disk", 4, 64 * 1024 * 1024);
  f->artifact = smolvm_oci_artifact_build (f->snapshot, f->layout, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (smolvm_oci_artifact_write_index (f->artifact, f->layout, &error));
  g_assert_no_error (error);
  g_assert_true (smolvm_oci_layout_prepare (f->received, &error));
}

static void
teardown (Fixture *f, gconstpointer data)
{
  g_assert_true (smolvm_rm_rf (f->root, NULL));
  g_clear_object (&f->artifact);
  g_free (f->root);
  g_free (f->snapshot);
  g_free (f->layout);
  g_free (f->received);
  g_free (f->archive);
}

static void
write_archive (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmolvmProgress) progress = smolvm_progress_new ();
  int fd = open (f->archive, O_WRONLY | O_CREAT | O_TRUNC, 0600);

  g_assert_cmpint (fd, >=, 0);
  g_assert_true (smolvm_oci_archive_write (f->artifact, f->layout, fd, progress, NULL, &error));
  g_assert_no_error (error);
  /* every byte written was counted */
  g_assert_cmpuint (smolvm_progress_get_done (progress), ==, lseek (fd, 0, SEEK_CUR));
  close (fd);
}

static SmolvmOciArtifact *
read_archive (Fixture *f, GError **error)
{
  int fd = open (f->archive, O_RDONLY);
  SmolvmOciArtifact *artifact;

  g_assert_cmpint (fd, >=, 0);
  artifact = smolvm_oci_archive_read (fd, f->received, NULL, NULL, error);
  close (fd);
  return artifact;
}

static void
test_round_trip (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmolvmOciArtifact) read = NULL;
  g_autofree gchar *first = NULL;
  g_autofree gchar *second = NULL;
  GPtrArray *blobs;

  write_archive (f);
  g_assert_true (g_file_get_contents (f->archive, &first, NULL, NULL));
  read = read_archive (f, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (smolvm_oci_artifact_get_manifest_digest (read), ==,
                   smolvm_oci_artifact_get_manifest_digest (f->artifact));
  blobs = smolvm_oci_artifact_get_blobs (read);
  for (guint i = 0; i < blobs->len; i++) {
    g_assert_true (smolvm_oci_layout_blob_verify (f->received, g_ptr_array_index (blobs, i),
                                                  NULL, NULL, &error));
    g_assert_no_error (error);
  }
  g_assert_true (smolvm_oci_artifact_load_config (read, f->received, &error));
  g_assert_cmpstr (smolvm_oci_artifact_get_snapshot_id (read), ==, "snap-a");
  /* the same artifact, the same archive */
  write_archive (f);
  g_assert_true (g_file_get_contents (f->archive, &second, NULL, NULL));
  g_assert_cmpstr (first, ==, second);
}

static void
test_damaged (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree gchar *contents = NULL;
  const SmolvmOciDescriptor *disk = g_ptr_array_index (smolvm_oci_artifact_get_blobs (f->artifact), 3);
  g_autofree gchar *blob = smolvm_oci_layout_blob_path (f->layout, disk->digest, NULL);
  g_autofree gchar *blob_data = NULL;
  gsize length = 0, blob_length = 0;
  gchar *at;

  write_archive (f);
  g_assert_true (g_file_get_contents (f->archive, &contents, &length, NULL));
  g_assert_true (g_file_get_contents (blob, &blob_data, &blob_length, NULL));
  /* the disk blob's bytes inside the tar, one of them flipped */
  at = memmem (contents, length, blob_data, blob_length);
  g_assert_nonnull (at);
  at[blob_length / 2] ^= 1;
  g_assert_true (g_file_set_contents (f->archive, contents, length, NULL));
  g_assert_null (read_archive (f, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, disk->digest));
  /* it was not kept */
  g_assert_false (smolvm_oci_layout_has_blob (f->received, disk));
  g_clear_error (&error);

  /* not a tar at all */
  g_assert_true (g_file_set_contents (f->archive, "garbage garbage", -1, NULL));
  g_assert_null (read_archive (f, &error));
  g_assert_true (g_error_matches (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT) ||
                 g_error_matches (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_A_SNAPSHOT));
}

static gpointer
cancel_soon (gpointer cancellable)
{
  g_usleep (100 * 1000);
  g_cancellable_cancel (cancellable);
  return NULL;
}

static void
test_cancel_while_waiting (Fixture *f, gconstpointer data)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GThread) thread = NULL;
  int fds[2];

  /* a writer that never writes: only the Cancel ends the wait */
  g_assert_cmpint (pipe (fds), ==, 0);
  thread = g_thread_new ("cancel", cancel_soon, cancellable);
  g_assert_null (smolvm_oci_archive_read (fds[0], f->received, NULL, cancellable, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED);
  g_thread_join (g_steal_pointer (&thread));
  close (fds[0]);
  close (fds[1]);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/oci-archive/round-trip", Fixture, NULL, setup, test_round_trip, teardown);
  g_test_add ("/oci-archive/damaged", Fixture, NULL, setup, test_damaged, teardown);
  g_test_add ("/oci-archive/cancel-while-waiting", Fixture, NULL, setup,
              test_cancel_while_waiting, teardown);
  return g_test_run ();
}
