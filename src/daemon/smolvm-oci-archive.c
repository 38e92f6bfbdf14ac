/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "smolvm-error-map.h"
#include "smolvm-fileutil.h"
#include "smolvm-error.h"
#include "smolvm-oci-archive.h"
#include "smolvm-oci-ref.h"

#define CHUNK_SIZE (256 * 1024)
/* More blobs than a snapshot's artifact could ever need (it has five). */
#define ARCHIVE_BLOBS_MAX 16

/* The caller's descriptor, watched together with the cancellable, so a
 * Cancel ends a wait for a reader or writer that is stalled. */
typedef struct {
  int fd;
  GCancellable *cancellable;
  SmolvmProgress *progress;
  guchar *buffer;
  GError *error;
} Stream;

static gboolean
stream_wait (Stream *stream, short events)
{
  GPollFD fds[2] = { { stream->fd, events, 0 } };
  int n = 1;

  if (g_cancellable_make_pollfd (stream->cancellable, &fds[1]))
    n = 2;
  while (g_poll (fds, n, -1) < 0 && errno == EINTR)
    ;
  if (n == 2)
    g_cancellable_release_fd (stream->cancellable);
  if (g_cancellable_is_cancelled (stream->cancellable)) {
    g_set_error_literal (&stream->error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED, "Cancelled");
    return FALSE;
  }
  return TRUE;
}

static la_ssize_t
stream_write_cb (struct archive *a, void *user_data, const void *buffer, size_t length)
{
  Stream *stream = user_data;
  const guchar *data = buffer;
  size_t done = 0;

  /* libarchive flushes again on close: the first failure stands */
  if (stream->error != NULL)
    return -1;
  while (done < length) {
    ssize_t n;

    if (!stream_wait (stream, G_IO_OUT))
      return -1;
    n = write (stream->fd, data + done, MIN (length - done, CHUNK_SIZE));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n < 0) {
      smolvm_error_set_errno (&stream->error, errno, "Cannot write the archive");
      return -1;
    }
    done += n;
    smolvm_progress_add (stream->progress, n);
  }
  return (la_ssize_t) length;
}

static la_ssize_t
stream_read_cb (struct archive *a, void *user_data, const void **buffer)
{
  Stream *stream = user_data;

  if (stream->error != NULL)
    return -1;
  for (;;) {
    ssize_t n;

    if (!stream_wait (stream, G_IO_IN))
      return -1;
    n = read (stream->fd, stream->buffer, CHUNK_SIZE);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n < 0) {
      smolvm_error_set_errno (&stream->error, errno, "Cannot read the archive");
      return -1;
    }
    smolvm_progress_add (stream->progress, n);
    *buffer = stream->buffer;
    return n;
  }
}

/* The stream's own error (a Cancel, an I/O error) if it made libarchive
 * fail; else libarchive's, as @code. */
static gboolean
archive_error (struct archive *a, Stream *stream, gint code, const gchar *what, GError **error)
{
  if (stream->error != NULL) {
    g_propagate_error (error, g_steal_pointer (&stream->error));
    return FALSE;
  }
  g_set_error (error, SMOLVM_ERROR, code, "%s: %s", what,
               archive_error_string (a) != NULL ? archive_error_string (a) : "archive error");
  return FALSE;
}

/* ---- writing ---- */

static struct archive_entry *
fixed_entry (const gchar *name, mode_t type, guint64 size)
{
  struct archive_entry *entry = archive_entry_new ();

  /* reproducible: nothing of this host or this moment */
  archive_entry_set_pathname (entry, name);
  archive_entry_set_filetype (entry, type);
  archive_entry_set_perm (entry, type == AE_IFDIR ? 0755 : 0644);
  archive_entry_set_size (entry, (la_int64_t) size);
  archive_entry_set_mtime (entry, 0, 0);
  return entry;
}

static gboolean
write_entry (struct archive *a, Stream *stream, struct archive_entry *entry, GError **error)
{
  int r = archive_write_header (a, entry);
  archive_entry_free (entry);
  if (r != ARCHIVE_OK)
    return archive_error (a, stream, SMOLVM_ERROR_FAILED, "Cannot write the archive", error);
  return TRUE;
}

static gboolean
write_file (struct archive *a, Stream *stream, const gchar *name, const gchar *path,
            GError **error)
{
  struct stat st;
  int fd = open (path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  g_autofree guchar *buffer = NULL;

  if (fd < 0 || fstat (fd, &st) < 0) {
    int errsv = errno;
    if (fd >= 0)
      close (fd);
    return smolvm_error_set_errno (error, errsv, "Cannot read %s", path);
  }
  if (!write_entry (a, stream, fixed_entry (name, AE_IFREG, st.st_size), error)) {
    close (fd);
    return FALSE;
  }
  buffer = g_malloc (CHUNK_SIZE);
  for (;;) {
    ssize_t n = read (fd, buffer, CHUNK_SIZE);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int errsv = errno;
      close (fd);
      return smolvm_error_set_errno (error, errsv, "Cannot read %s", path);
    }
    if (n == 0)
      break;
    if (archive_write_data (a, buffer, n) != n) {
      close (fd);
      return archive_error (a, stream, SMOLVM_ERROR_FAILED, "Cannot write the archive", error);
    }
  }
  close (fd);
  return TRUE;
}

static gboolean
write_layout (struct archive *a, Stream *stream, SmolvmOciArtifact *artifact,
              const gchar *layout_dir, GError **error)
{
  GPtrArray *blobs = smolvm_oci_artifact_get_blobs (artifact);
  g_autofree gchar *marker = g_build_filename (layout_dir, "oci-layout", NULL);
  g_autofree gchar *index = g_build_filename (layout_dir, "index.json", NULL);
  const gchar *manifest_digest = smolvm_oci_artifact_get_manifest_digest (artifact);

  if (!write_file (a, stream, "oci-layout", marker, error) ||
      !write_file (a, stream, "index.json", index, error) ||
      !write_entry (a, stream, fixed_entry ("blobs/", AE_IFDIR, 0), error) ||
      !write_entry (a, stream, fixed_entry ("blobs/sha256/", AE_IFDIR, 0), error))
    return FALSE;
  for (guint i = 0; i <= blobs->len; i++) {
    const gchar *digest = i < blobs->len
                            ? ((SmolvmOciDescriptor *) g_ptr_array_index (blobs, i))->digest
                            : manifest_digest;
    g_autofree gchar *path = smolvm_oci_layout_blob_path (layout_dir, digest, error);
    g_autofree gchar *name = g_strconcat ("blobs/sha256/", digest + 7, NULL);

    if (path == NULL || !write_file (a, stream, name, path, error))
      return FALSE;
  }
  return TRUE;
}

gboolean
smolvm_oci_archive_write (SmolvmOciArtifact *artifact, const gchar *layout_dir, int fd,
                          SmolvmProgress *progress, GCancellable *cancellable, GError **error)
{
  Stream stream = { fd, cancellable, progress, NULL, NULL };
  struct archive *a = archive_write_new ();
  gboolean ok;

  ok = archive_write_set_format_pax_restricted (a) == ARCHIVE_OK &&
       archive_write_set_bytes_in_last_block (a, 1) == ARCHIVE_OK &&
       archive_write_open (a, &stream, NULL, stream_write_cb, NULL) == ARCHIVE_OK;
  if (!ok)
    archive_error (a, &stream, SMOLVM_ERROR_FAILED, "Cannot write the archive", error);
  else
    ok = write_layout (a, &stream, artifact, layout_dir, error);
  if (ok && archive_write_close (a) != ARCHIVE_OK)
    ok = archive_error (a, &stream, SMOLVM_ERROR_FAILED, "Cannot write the archive", error);
  archive_write_free (a);
  g_clear_error (&stream.error);
  return ok;
}

/* ---- reading ---- */

static gboolean
read_blob (struct archive *a, Stream *stream, const gchar *layout_dir, const gchar *digest,
           GError **error)
{
  g_autoptr(GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree gchar *tmp_path = NULL;
  g_autofree gchar *path = smolvm_oci_layout_blob_path (layout_dir, digest, error);
  g_autofree guchar *buffer = NULL;
  gboolean ok = TRUE;
  int fd;

  if (path == NULL)
    return FALSE;
  fd = smolvm_oci_layout_blob_tmp (layout_dir, &tmp_path, error);
  if (fd < 0)
    return FALSE;
  buffer = g_malloc (CHUNK_SIZE);
  while (ok) {
    la_ssize_t n = archive_read_data (a, buffer, CHUNK_SIZE);
    if (n == 0)
      break;
    if (n < 0) {
      ok = archive_error (a, stream, SMOLVM_ERROR_CORRUPT, "Cannot read the archive", error);
      break;
    }
    g_checksum_update (sum, buffer, n);
    for (la_ssize_t done = 0; ok && done < n;) {
      ssize_t w = write (fd, buffer + done, n - done);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        ok = smolvm_error_set_errno (error, errno, "Cannot write blob %s", digest);
      else
        done += w;
    }
  }
  if (ok && !g_str_equal (g_checksum_get_string (sum), digest + 7)) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT,
                 "Blob %s is corrupt: its sha256 does not match", digest);
    ok = FALSE;
  }
  if (ok && rename (tmp_path, path) < 0)
    ok = smolvm_error_set_errno (error, errno, "Cannot store blob %s", digest);
  close (fd);
  if (!ok)
    g_unlink (tmp_path);
  return ok;
}

static gboolean
read_index (struct archive *a, Stream *stream, struct archive_entry *entry,
            const gchar *layout_dir, GError **error)
{
  g_autofree gchar *path = g_build_filename (layout_dir, "index.json", NULL);
  la_int64_t size = archive_entry_size (entry);
  g_autofree gchar *data = NULL;
  la_ssize_t n;

  if (size < 0 || size > SMOLVM_OCI_MAX_METADATA_SIZE) {
    g_set_error_literal (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT,
                         "The archive's index.json is too large");
    return FALSE;
  }
  data = g_malloc (size + 1);
  n = archive_read_data (a, data, size);
  if (n != size)
    return archive_error (a, stream, SMOLVM_ERROR_CORRUPT, "Cannot read the archive", error);
  return g_file_set_contents (path, data, size, error);
}

static gboolean
read_entries (struct archive *a, Stream *stream, const gchar *layout_dir, GError **error)
{
  guint n_blobs = 0;

  for (;;) {
    struct archive_entry *entry = NULL;
    const gchar *name;
    int r = archive_read_next_header (a, &entry);

    if (r == ARCHIVE_EOF)
      return TRUE;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
      return archive_error (a, stream, SMOLVM_ERROR_CORRUPT, "Not a readable OCI archive",
                            error);
    name = archive_entry_pathname (entry);
    if (name == NULL)
      continue;
    if (g_str_has_prefix (name, "./"))
      name += 2;
    if (archive_entry_filetype (entry) != AE_IFREG)
      continue;
    /* libarchive makes a sparse entry's holes up as zeros without reading
     * the stream: a few bytes could stand for terabytes written here, and
     * no Cancel would be seen meanwhile. OCI tools write no sparse
     * entries. */
    if (archive_entry_sparse_count (entry) > 0) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT,
                   "The archive holds %s as a sparse file", name);
      return FALSE;
    }
    if (g_str_equal (name, "index.json")) {
      if (!read_index (a, stream, entry, layout_dir, error))
        return FALSE;
    } else if (g_str_has_prefix (name, "blobs/sha256/")) {
      g_autofree gchar *digest = g_strconcat ("sha256:", name + strlen ("blobs/sha256/"), NULL);
      if (!smolvm_oci_ref_digest_is_valid (digest)) {
        g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT,
                     "The archive holds a blob of an invalid name: %s", name);
        return FALSE;
      }
      /* Which blobs the manifest names is known only at the end (index.json
       * may come last), so bound what an archive can make us write: a
       * snapshot has five blobs, and each must fit on the disk. */
      if (++n_blobs > ARCHIVE_BLOBS_MAX) {
        g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT,
                     "The archive holds more than %d blobs; a snapshot has 5",
                     ARCHIVE_BLOBS_MAX);
        return FALSE;
      }
      if (!smolvm_check_free_space (layout_dir, MAX (archive_entry_size (entry), 0), name, error))
        return FALSE;
      if (!read_blob (a, stream, layout_dir, digest, error))
        return FALSE;
    }
    /* oci-layout and anything else: skipped */
  }
}

SmolvmOciArtifact *
smolvm_oci_archive_read (int fd, const gchar *layout_dir, SmolvmProgress *progress,
                         GCancellable *cancellable, GError **error)
{
  g_autofree guchar *buffer = g_malloc (CHUNK_SIZE);
  Stream stream = { fd, cancellable, progress, buffer, NULL };
  g_autoptr(SmolvmOciArtifact) artifact = NULL;
  struct archive *a = archive_read_new ();
  GPtrArray *blobs;
  gboolean ok;

  archive_read_support_format_tar (a);
  ok = archive_read_open (a, &stream, NULL, stream_read_cb, NULL) == ARCHIVE_OK;
  if (!ok)
    archive_error (a, &stream, SMOLVM_ERROR_CORRUPT, "Not a readable OCI archive", error);
  else
    ok = read_entries (a, &stream, layout_dir, error);
  archive_read_free (a);
  g_clear_error (&stream.error);
  if (!ok)
    return NULL;

  artifact = smolvm_oci_artifact_new_from_layout (layout_dir, error);
  if (artifact == NULL)
    return NULL;
  blobs = smolvm_oci_artifact_get_blobs (artifact);
  for (guint i = 0; i < blobs->len; i++) {
    SmolvmOciDescriptor *desc = g_ptr_array_index (blobs, i);
    if (!smolvm_oci_layout_has_blob (layout_dir, desc)) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT,
                   "The archive lacks blob %s, or has it of another size", desc->digest);
      return NULL;
    }
  }
  return g_steal_pointer (&artifact);
}
