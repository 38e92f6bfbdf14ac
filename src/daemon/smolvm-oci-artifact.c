/* SPDX-License-Identifier: LGPL-2.1-or-later */
#define _GNU_SOURCE /* SEEK_DATA, SEEK_HOLE */
#include "config.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "smolvm-error-map.h"
#include "smolvm-error.h"
#include "smolvm-fileutil.h"
#include "smolvm-id.h"
#include "smolvm-info.h"
#include "smolvm-json.h"
#include "smolvm-oci-artifact.h"
#include "smolvm-oci-ref.h"

/* The layers are built to be reproducible: a pax tar with every header
 * field fixed (mtime 0, uid/gid 0, no names, mode 0644), one zstd frame of
 * fixed parameters (level 3, one thread, checksum), so that the same file
 * content gives the same blob and a registry that has it is not sent it
 * again. */
#define ZSTD_LEVEL 3
/* The largest zstd window a layer may use: 16 MiB (zstd -19 uses 8 MiB). */
#define LAYER_WINDOW_LOG_MAX 24
#define CHUNK_SIZE (1024 * 1024)
#define LAYOUT_VERSION "{\"imageLayoutVersion\":\"1.0.0\"}"

/* The layers, in manifest order. */
static const gchar *const layer_names[] = { "vmstate.bin", "mem.bin", "disk.ext4" };
#define N_LAYERS G_N_ELEMENTS (layer_names)

typedef struct {
  guint64 size;      /* the file's length */
  guint64 data_size; /* its bytes of data, holes excluded */
  gchar *tar_digest; /* sha256 of the uncompressed tar (OCI's diff_id) */
} LayerFile;

struct _SmolvmOciArtifact {
  GObject parent_instance;
  GBytes *manifest;
  gchar *manifest_digest;
  GPtrArray *blobs; /* of SmolvmOciDescriptor: config, then layers */
  /* from the config */
  gboolean config_loaded;
  gchar *snapshot_id;
  gchar *vm_id;
  gchar *backend;
  JsonObject *snapshot; /* the record, without its host-specific fields */
  LayerFile files[N_LAYERS];
};

G_DEFINE_TYPE (SmolvmOciArtifact, smolvm_oci_artifact, G_TYPE_OBJECT)

static void
smolvm_oci_artifact_finalize (GObject *object)
{
  SmolvmOciArtifact *self = SMOLVM_OCI_ARTIFACT (object);

  g_clear_pointer (&self->manifest, g_bytes_unref);
  g_free (self->manifest_digest);
  g_clear_pointer (&self->blobs, g_ptr_array_unref);
  g_free (self->snapshot_id);
  g_free (self->vm_id);
  g_free (self->backend);
  g_clear_pointer (&self->snapshot, json_object_unref);
  for (gsize i = 0; i < N_LAYERS; i++)
    g_free (self->files[i].tar_digest);
  G_OBJECT_CLASS (smolvm_oci_artifact_parent_class)->finalize (object);
}

static void
smolvm_oci_artifact_class_init (SmolvmOciArtifactClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = smolvm_oci_artifact_finalize;
}

static void
smolvm_oci_artifact_init (SmolvmOciArtifact *self)
{
  self->blobs = g_ptr_array_new_with_free_func ((GDestroyNotify) smolvm_oci_descriptor_free);
}

/* ---- descriptors and digests ---- */

SmolvmOciDescriptor *
smolvm_oci_descriptor_new (const gchar *media_type, const gchar *digest, guint64 size)
{
  SmolvmOciDescriptor *self = g_new0 (SmolvmOciDescriptor, 1);
  self->media_type = g_strdup (media_type);
  self->digest = g_strdup (digest);
  self->size = size;
  return self;
}

SmolvmOciDescriptor *
smolvm_oci_descriptor_copy (const SmolvmOciDescriptor *self)
{
  return smolvm_oci_descriptor_new (self->media_type, self->digest, self->size);
}

void
smolvm_oci_descriptor_free (SmolvmOciDescriptor *self)
{
  if (self == NULL)
    return;
  g_free (self->media_type);
  g_free (self->digest);
  g_free (self);
}

G_DEFINE_BOXED_TYPE (SmolvmOciDescriptor, smolvm_oci_descriptor, smolvm_oci_descriptor_copy,
                     smolvm_oci_descriptor_free)

static gboolean
set_cancelled (GCancellable *cancellable, GError **error)
{
  if (!g_cancellable_is_cancelled (cancellable))
    return FALSE;
  g_set_error_literal (error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED, "Cancelled");
  return TRUE;
}

/* ---- layout dirs ---- */

static gchar *
blobs_dir (const gchar *layout_dir)
{
  return g_build_filename (layout_dir, "blobs", "sha256", NULL);
}

gboolean
smolvm_oci_layout_prepare (const gchar *layout_dir, GError **error)
{
  g_autofree gchar *dir = blobs_dir (layout_dir);
  g_autofree gchar *marker = g_build_filename (layout_dir, "oci-layout", NULL);

  if (!smolvm_mkdir_p (dir, 0700, error))
    return FALSE;
  if (g_file_test (marker, G_FILE_TEST_IS_REGULAR))
    return TRUE;
  return smolvm_write_file_atomic (marker, LAYOUT_VERSION, -1, error);
}

gchar *
smolvm_oci_layout_blob_path (const gchar *layout_dir, const gchar *digest, GError **error)
{
  if (!smolvm_oci_ref_digest_is_valid (digest)) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT, "Invalid digest '%s'",
                 digest != NULL ? digest : "");
    return NULL;
  }
  return g_build_filename (layout_dir, "blobs", "sha256", digest + 7, NULL);
}

int
smolvm_oci_layout_blob_tmp (const gchar *layout_dir, gchar **tmp_path, GError **error)
{
  g_autofree gchar *dir = blobs_dir (layout_dir);
  g_autofree gchar *path = g_build_filename (dir, ".tmp-XXXXXX", NULL);
  int fd = g_mkstemp_full (path, O_RDWR | O_CLOEXEC, 0600);

  if (fd < 0) {
    smolvm_error_set_errno (error, errno, "Cannot create a blob file in %s", dir);
    return -1;
  }
  *tmp_path = g_steal_pointer (&path);
  return fd;
}

gboolean
smolvm_oci_layout_has_blob (const gchar *layout_dir, const SmolvmOciDescriptor *desc)
{
  g_autofree gchar *path = smolvm_oci_layout_blob_path (layout_dir, desc->digest, NULL);
  struct stat st;

  return path != NULL && lstat (path, &st) == 0 && S_ISREG (st.st_mode) &&
         (guint64) st.st_size == desc->size;
}

static gboolean
blob_corrupt (GError **error, const gchar *digest, const gchar *what)
{
  g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT, "Blob %s is corrupt: %s", digest, what);
  return FALSE;
}

gboolean
smolvm_oci_layout_blob_verify (const gchar *layout_dir, const SmolvmOciDescriptor *desc,
                               SmolvmProgress *progress, GCancellable *cancellable,
                               GError **error)
{
  g_autofree gchar *path = smolvm_oci_layout_blob_path (layout_dir, desc->digest, error);

  return path != NULL && smolvm_oci_blob_file_verify (path, desc->digest, desc->size, progress,
                                                      cancellable, error);
}

gboolean
smolvm_oci_layout_commit_blob (const gchar *layout_dir, const gchar *tmp_path,
                               const gchar *digest, GCancellable *cancellable, GError **error)
{
  g_autofree gchar *path = smolvm_oci_layout_blob_path (layout_dir, digest, error);
  g_autofree gchar *sha256 = NULL;

  if (path == NULL || (sha256 = smolvm_file_sha256 (tmp_path, NULL, cancellable, error)) == NULL) {
    g_unlink (tmp_path);
    return FALSE;
  }
  if (!g_str_equal (sha256, digest + 7)) {
    g_unlink (tmp_path);
    return blob_corrupt (error, digest, "its sha256 does not match");
  }
  if (rename (tmp_path, path) < 0) {
    int errsv = errno;
    g_unlink (tmp_path);
    return smolvm_error_set_errno (error, errsv, "Cannot store blob %s", digest);
  }
  return TRUE;
}

GBytes *
smolvm_oci_layout_read_blob (const gchar *layout_dir, const gchar *digest, gint64 expected_size,
                             GError **error)
{
  g_autofree gchar *path = smolvm_oci_layout_blob_path (layout_dir, digest, error);
  g_autofree gchar *contents = NULL;
  g_autofree gchar *sha256 = NULL;
  gsize length = 0;
  struct stat st;

  if (path == NULL)
    return NULL;
  if (lstat (path, &st) < 0) {
    if (errno == ENOENT) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND, "Blob %s is missing", digest);
      return NULL;
    }
    smolvm_error_set_errno (error, errno, "Cannot read blob %s", digest);
    return NULL;
  }
  if (!S_ISREG (st.st_mode) || st.st_size > SMOLVM_OCI_MAX_METADATA_SIZE) {
    blob_corrupt (error, digest, "not a regular file of metadata size");
    return NULL;
  }
  if (!g_file_get_contents (path, &contents, &length, error))
    return NULL;
  if (expected_size >= 0 && (gint64) length != expected_size) {
    blob_corrupt (error, digest, "its size does not match");
    return NULL;
  }
  sha256 = g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *) contents, length);
  if (!g_str_equal (sha256, digest + 7)) {
    blob_corrupt (error, digest, "its sha256 does not match");
    return NULL;
  }
  return g_bytes_new_take (g_steal_pointer (&contents), length);
}

gboolean
smolvm_oci_layout_add_bytes (const gchar *layout_dir, GBytes *bytes, gchar **digest,
                             GError **error)
{
  gsize length = 0;
  const gchar *data = g_bytes_get_data (bytes, &length);
  g_autofree gchar *sha256 =
    g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *) data, length);
  g_autofree gchar *full = g_strconcat ("sha256:", sha256, NULL);
  g_autofree gchar *path = smolvm_oci_layout_blob_path (layout_dir, full, error);

  if (path == NULL)
    return FALSE;
  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR) &&
      !smolvm_write_file_atomic (path, data, (gssize) length, error))
    return FALSE;
  *digest = g_steal_pointer (&full);
  return TRUE;
}

/* ---- writing a layer ---- */

/* Where the tar stream goes: into zstd, and from there into the blob's
 * temp file; sha256 of both sides on the way. */
typedef struct {
  ZSTD_CCtx *cctx;
  int fd;
  GChecksum *tar_sum;
  GChecksum *blob_sum;
  guint64 tar_size;
  guint64 blob_size;
  guchar *out;
  gsize out_size;
  GCancellable *cancellable;
  GError *error;
} LayerSink;

static gboolean
sink_write_all (LayerSink *sink, const guchar *data, gsize length)
{
  while (length > 0) {
    ssize_t n = write (sink->fd, data, length);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      smolvm_error_set_errno (&sink->error, errno, "Cannot write a layer blob");
      return FALSE;
    }
    g_checksum_update (sink->blob_sum, data, n);
    sink->blob_size += n;
    data += n;
    length -= n;
  }
  return TRUE;
}

/* Compresses @length bytes (none with ZSTD_e_end: finishes the frame). */
static gboolean
sink_compress (LayerSink *sink, const void *data, gsize length, ZSTD_EndDirective mode)
{
  ZSTD_inBuffer in = { data, length, 0 };
  gsize remaining;

  do {
    ZSTD_outBuffer out = { sink->out, sink->out_size, 0 };
    remaining = ZSTD_compressStream2 (sink->cctx, &out, &in, mode);
    if (ZSTD_isError (remaining)) {
      g_set_error (&sink->error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "zstd: %s",
                   ZSTD_getErrorName (remaining));
      return FALSE;
    }
    if (!sink_write_all (sink, sink->out, out.pos))
      return FALSE;
  } while (mode == ZSTD_e_end ? remaining != 0 : in.pos < in.size);
  return TRUE;
}

static la_ssize_t
sink_write_cb (struct archive *a, void *user_data, const void *buffer, size_t length)
{
  LayerSink *sink = user_data;

  if (sink->error != NULL)
    return -1;
  if (set_cancelled (sink->cancellable, &sink->error))
    return -1;
  g_checksum_update (sink->tar_sum, buffer, length);
  sink->tar_size += length;
  if (!sink_compress (sink, buffer, length, ZSTD_e_continue))
    return -1;
  return (la_ssize_t) length;
}

/* A failure of libarchive, or the sink's own error if it made it fail. */
static gboolean
archive_failed (struct archive *a, GError **sink_error, GError **error, const gchar *what)
{
  if (sink_error != NULL && *sink_error != NULL) {
    g_propagate_error (error, g_steal_pointer (sink_error));
    g_prefix_error (error, "%s: ", what);
    return FALSE;
  }
  g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "%s: %s", what,
               archive_error_string (a) != NULL ? archive_error_string (a) : "archive error");
  return FALSE;
}

typedef struct {
  guint64 offset;
  guint64 length;
} Extent;

/* The file's data extents, from SEEK_DATA/SEEK_HOLE: holes are found
 * without reading them. */
static GArray *
data_extents (int fd, const gchar *path, guint64 size, GError **error)
{
  g_autoptr(GArray) extents = g_array_new (FALSE, FALSE, sizeof (Extent));
  off_t pos = 0;

  while ((guint64) pos < size) {
    off_t data = lseek (fd, pos, SEEK_DATA);
    off_t hole;
    Extent e;

    if (data < 0 && errno == ENXIO)
      break;
    if (data < 0) {
      smolvm_error_set_errno (error, errno, "Cannot read %s", path);
      return NULL;
    }
    hole = lseek (fd, data, SEEK_HOLE);
    if (hole < 0) {
      smolvm_error_set_errno (error, errno, "Cannot read %s", path);
      return NULL;
    }
    if ((guint64) hole > size)
      hole = (off_t) size;
    e.offset = data;
    e.length = hole - data;
    if (e.length > 0)
      g_array_append_val (extents, e);
    pos = hole;
  }
  return g_steal_pointer (&extents);
}

static gboolean
write_zeros (struct archive *a, LayerSink *sink, const guchar *zeros, guint64 length,
             GError **error)
{
  /* the pax writer skips a sparse entry's holes in the stream it is given:
   * these zeros are neither read from the file nor written */
  while (length > 0) {
    gsize n = MIN (length, CHUNK_SIZE);
    if (archive_write_data (a, zeros, n) < 0)
      return archive_failed (a, &sink->error, error, "Cannot write a layer");
    length -= n;
  }
  return TRUE;
}

static gboolean
write_layer_tar (struct archive *a, LayerSink *sink, int fd, const gchar *path,
                 const gchar *name, guint64 size, LayerFile *file, SmolvmProgress *progress,
                 GError **error)
{
  g_autoptr(GArray) extents = data_extents (fd, path, size, error);
  g_autofree guchar *buffer = NULL;
  g_autofree guchar *zeros = NULL;
  struct archive_entry *entry;
  guint64 pos = 0;

  if (extents == NULL)
    return FALSE;
  entry = archive_entry_new ();
  archive_entry_set_pathname (entry, name);
  archive_entry_set_filetype (entry, AE_IFREG);
  archive_entry_set_perm (entry, 0644);
  archive_entry_set_size (entry, (la_int64_t) size);
  archive_entry_set_mtime (entry, 0, 0);
  archive_entry_set_uid (entry, 0);
  archive_entry_set_gid (entry, 0);
  file->data_size = 0;
  for (guint i = 0; i < extents->len; i++) {
    Extent *e = &g_array_index (extents, Extent, i);
    archive_entry_sparse_add_entry (entry, (la_int64_t) e->offset, (la_int64_t) e->length);
    file->data_size += e->length;
  }
  /* all holes: a map of one empty extent at the end, else the writer
   * would take the file as one of data */
  if (extents->len == 0 && size > 0)
    archive_entry_sparse_add_entry (entry, (la_int64_t) size, 0);
  if (archive_write_header (a, entry) != ARCHIVE_OK) {
    archive_entry_free (entry);
    return archive_failed (a, &sink->error, error, "Cannot write a layer");
  }
  archive_entry_free (entry);

  buffer = g_malloc (CHUNK_SIZE);
  zeros = g_malloc0 (CHUNK_SIZE);
  /* the pax writer puts the sparse map out on the first data write, so
   * there must be one even for a file without data */
  if (archive_write_data (a, zeros, 0) < 0)
    return archive_failed (a, &sink->error, error, "Cannot write a layer");
  for (guint i = 0; i < extents->len; i++) {
    Extent *e = &g_array_index (extents, Extent, i);
    guint64 done = 0;

    if (!write_zeros (a, sink, zeros, e->offset - pos, error))
      return FALSE;
    while (done < e->length) {
      gsize want = MIN (e->length - done, CHUNK_SIZE);
      ssize_t n = pread (fd, buffer, want, (off_t) (e->offset + done));
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return smolvm_error_set_errno (error, errno, "Cannot read %s", path);
      if (n == 0) {
        g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "%s changed while being read",
                     path);
        return FALSE;
      }
      if (archive_write_data (a, buffer, n) < 0)
        return archive_failed (a, &sink->error, error, "Cannot write a layer");
      smolvm_progress_add (progress, n);
      done += n;
    }
    pos = e->offset + e->length;
  }
  if (archive_write_finish_entry (a) != ARCHIVE_OK)
    return archive_failed (a, &sink->error, error, "Cannot write a layer");
  return TRUE;
}

/* Writes the layer of @name in @snapshot_dir into @layout_dir; sets its
 * descriptor and what the config says of the file. */
static SmolvmOciDescriptor *
build_layer (const gchar *snapshot_dir, const gchar *name, const gchar *layout_dir,
             LayerFile *file, SmolvmProgress *progress, GCancellable *cancellable,
             GError **error)
{
  g_autofree gchar *path = g_build_filename (snapshot_dir, name, NULL);
  g_autofree gchar *tmp_path = NULL;
  g_autofree gchar *blob_path = NULL;
  g_autofree gchar *digest = NULL;
  g_autofree guchar *out = NULL;
  g_autoptr(GChecksum) tar_sum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autoptr(GChecksum) blob_sum = g_checksum_new (G_CHECKSUM_SHA256);
  LayerSink sink = { 0 };
  struct archive *a = NULL;
  struct stat st;
  gboolean ok;
  int fd;

  fd = open (path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    smolvm_error_set_errno (error, errno, "Cannot open %s", path);
    return NULL;
  }
  if (fstat (fd, &st) < 0) {
    smolvm_error_set_errno (error, errno, "Cannot read %s", path);
    close (fd);
    return NULL;
  }
  if (!S_ISREG (st.st_mode)) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "%s is not a regular file", path);
    close (fd);
    return NULL;
  }
  file->size = st.st_size;

  sink.fd = smolvm_oci_layout_blob_tmp (layout_dir, &tmp_path, error);
  if (sink.fd < 0) {
    close (fd);
    return NULL;
  }
  sink.cctx = ZSTD_createCCtx ();
  ZSTD_CCtx_setParameter (sink.cctx, ZSTD_c_compressionLevel, ZSTD_LEVEL);
  ZSTD_CCtx_setParameter (sink.cctx, ZSTD_c_checksumFlag, 1);
  ZSTD_CCtx_setParameter (sink.cctx, ZSTD_c_nbWorkers, 0);
  sink.out_size = ZSTD_CStreamOutSize ();
  sink.out = out = g_malloc (sink.out_size);
  sink.tar_sum = tar_sum;
  sink.blob_sum = blob_sum;
  sink.cancellable = cancellable;

  a = archive_write_new ();
  ok = archive_write_set_format_pax_restricted (a) == ARCHIVE_OK &&
       archive_write_open (a, &sink, NULL, sink_write_cb, NULL) == ARCHIVE_OK;
  if (!ok)
    archive_failed (a, &sink.error, error, "Cannot write a layer");
  else
    ok = write_layer_tar (a, &sink, fd, path, name, file->size, file, progress, error);
  if (ok && archive_write_close (a) != ARCHIVE_OK)
    ok = archive_failed (a, &sink.error, error, "Cannot write a layer");
  if (ok && !sink_compress (&sink, NULL, 0, ZSTD_e_end))
    ok = archive_failed (a, &sink.error, error, "Cannot write a layer");
  if (ok && fsync (sink.fd) < 0)
    ok = smolvm_error_set_errno (error, errno, "Cannot write a layer blob");
  archive_write_free (a);
  ZSTD_freeCCtx (sink.cctx);
  close (fd);
  close (sink.fd);
  g_clear_error (&sink.error);

  if (ok) {
    digest = g_strconcat ("sha256:", g_checksum_get_string (blob_sum), NULL);
    blob_path = smolvm_oci_layout_blob_path (layout_dir, digest, error);
    /* present already: the same content, the same bytes */
    if (g_file_test (blob_path, G_FILE_TEST_IS_REGULAR))
      g_unlink (tmp_path);
    else if (rename (tmp_path, blob_path) < 0)
      ok = smolvm_error_set_errno (error, errno, "Cannot store blob %s", digest);
  }
  if (!ok) {
    g_unlink (tmp_path);
    g_prefix_error (error, "%s: ", name);
    return NULL;
  }
  file->tar_digest = g_strconcat ("sha256:", g_checksum_get_string (tar_sum), NULL);
  return smolvm_oci_descriptor_new (SMOLVM_OCI_MEDIA_TYPE_LAYER, digest, sink.blob_size);
}

/* ---- the config ---- */

/* What of a snapshot's record travels: not its paths on this host, nor
 * whether it was restored here. */
static const gchar *const host_members[] = {
  SMOLVM_INFO_SNAPSHOT_PATH, SMOLVM_INFO_MEM_FILE_PATH, SMOLVM_INFO_DISK_PATH,
  SMOLVM_INFO_RESTORED,      SMOLVM_INFO_RESTORED_VM_ID,
};

/* The JSON @b built, compact, its members in the order they were added:
 * the same content gives the same bytes. */
static GBytes *
builder_to_bytes (JsonBuilder *b)
{
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  g_autoptr(JsonNode) root = json_builder_get_root (b);
  gsize length = 0;
  gchar *data;

  json_generator_set_root (gen, root);
  data = json_generator_to_data (gen, &length);
  return g_bytes_new_take (data, length);
}

static GBytes *
build_config (SmolvmOciArtifact *self)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(JsonNode) snapshot = json_node_new (JSON_NODE_OBJECT);

  json_node_set_object (snapshot, self->snapshot);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "format_version");
  json_builder_add_int_value (b, SMOLVM_OCI_FORMAT_VERSION);
  json_builder_set_member_name (b, "snapshot_id");
  json_builder_add_string_value (b, self->snapshot_id);
  json_builder_set_member_name (b, "backend");
  json_builder_add_string_value (b, self->backend);
  json_builder_set_member_name (b, "snapshot");
  json_builder_add_value (b, g_steal_pointer (&snapshot));
  json_builder_set_member_name (b, "files");
  json_builder_begin_array (b);
  for (gsize i = 0; i < N_LAYERS; i++) {
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "name");
    json_builder_add_string_value (b, layer_names[i]);
    json_builder_set_member_name (b, "size");
    json_builder_add_int_value (b, (gint64) self->files[i].size);
    json_builder_set_member_name (b, "data_size");
    json_builder_add_int_value (b, (gint64) self->files[i].data_size);
    json_builder_set_member_name (b, "tar_digest");
    json_builder_add_string_value (b, self->files[i].tar_digest);
    json_builder_end_object (b);
  }
  json_builder_end_array (b);
  json_builder_end_object (b);
  return builder_to_bytes (b);
}

static gboolean
config_error (GError **error, const gchar *what)
{
  g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT, "Invalid snapshot config: %s", what);
  return FALSE;
}

static gboolean
get_uint (JsonObject *o, const gchar *key, guint64 *value)
{
  JsonNode *node = json_object_get_member (o, key);
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) ||
      json_node_get_value_type (node) != G_TYPE_INT64 || json_node_get_int (node) < 0)
    return FALSE;
  *value = (guint64) json_node_get_int (node);
  return TRUE;
}

static const gchar *
get_str (JsonObject *o, const gchar *key)
{
  JsonNode *node = json_object_get_member (o, key);
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) ||
      json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (node);
}

static JsonObject *
parse_object (GBytes *bytes, GError **error)
{
  gsize length = 0;
  const gchar *data = g_bytes_get_data (bytes, &length);
  g_autoptr(GError) local_error = NULL;
  g_autoptr(JsonNode) root = smolvm_json_parse_object (data, (gssize) length, &local_error);

  if (root == NULL) {
    g_set_error_literal (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT, local_error->message);
    return NULL;
  }
  return json_object_ref (json_node_get_object (root));
}

static gboolean
parse_config (SmolvmOciArtifact *self, GBytes *bytes, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autoptr(JsonObject) o = parse_object (bytes, &local_error);
  JsonNode *snapshot, *files;
  JsonArray *array;
  guint64 version = 0;
  const gchar *id, *backend, *vm_id;

  if (o == NULL)
    return config_error (error, local_error->message);
  if (!get_uint (o, "format_version", &version))
    return config_error (error, "no format_version");
  if (version != SMOLVM_OCI_FORMAT_VERSION) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_A_SNAPSHOT,
                 "Snapshot format version %" G_GUINT64_FORMAT " is not supported (this smolvm "
                 "reads version %d)",
                 version, SMOLVM_OCI_FORMAT_VERSION);
    return FALSE;
  }
  id = get_str (o, "snapshot_id");
  backend = get_str (o, "backend");
  if (id == NULL || !smolvm_id_is_valid (id))
    return config_error (error, "missing or invalid snapshot_id");
  if (backend == NULL || !smolvm_id_is_valid (backend))
    return config_error (error, "missing or invalid backend");
  snapshot = json_object_get_member (o, "snapshot");
  if (snapshot == NULL || !JSON_NODE_HOLDS_OBJECT (snapshot))
    return config_error (error, "no snapshot record");
  vm_id = get_str (json_node_get_object (snapshot), SMOLVM_INFO_VM_ID);
  if (vm_id == NULL || !smolvm_id_is_valid (vm_id))
    return config_error (error, "missing or invalid vm_id");
  files = json_object_get_member (o, "files");
  if (files == NULL || !JSON_NODE_HOLDS_ARRAY (files) ||
      json_array_get_length (json_node_get_array (files)) != N_LAYERS)
    return config_error (error, "files is not a list of three");
  array = json_node_get_array (files);
  for (guint i = 0; i < N_LAYERS; i++) {
    JsonNode *node = json_array_get_element (array, i);
    JsonObject *f;
    const gchar *name, *tar_digest;
    LayerFile *file = &self->files[i];

    if (!JSON_NODE_HOLDS_OBJECT (node))
      return config_error (error, "a file is not an object");
    f = json_node_get_object (node);
    name = get_str (f, "name");
    tar_digest = get_str (f, "tar_digest");
    if (g_strcmp0 (name, layer_names[i]) != 0 || !get_uint (f, "size", &file->size) ||
        !get_uint (f, "data_size", &file->data_size) || file->data_size > file->size ||
        !smolvm_oci_ref_digest_is_valid (tar_digest))
      return config_error (error, "a file's entry is malformed");
    g_free (file->tar_digest);
    file->tar_digest = g_strdup (tar_digest);
  }
  g_free (self->snapshot_id);
  self->snapshot_id = g_strdup (id);
  g_free (self->backend);
  self->backend = g_strdup (backend);
  g_free (self->vm_id);
  self->vm_id = g_strdup (vm_id);
  g_clear_pointer (&self->snapshot, json_object_unref);
  self->snapshot = json_object_ref (json_node_get_object (snapshot));
  self->config_loaded = TRUE;
  return TRUE;
}

gboolean
smolvm_oci_artifact_load_config (SmolvmOciArtifact *self, const gchar *layout_dir,
                                 GError **error)
{
  SmolvmOciDescriptor *config = g_ptr_array_index (self->blobs, 0);
  g_autoptr(GBytes) bytes = smolvm_oci_layout_read_blob (layout_dir, config->digest,
                                                         (gint64) config->size, error);

  return bytes != NULL && parse_config (self, bytes, error);
}

/* ---- the manifest ---- */

static GBytes *
build_manifest (SmolvmOciArtifact *self)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "schemaVersion");
  json_builder_add_int_value (b, 2);
  json_builder_set_member_name (b, "mediaType");
  json_builder_add_string_value (b, SMOLVM_OCI_MEDIA_TYPE_MANIFEST);
  json_builder_set_member_name (b, "artifactType");
  json_builder_add_string_value (b, SMOLVM_OCI_ARTIFACT_TYPE);
  for (guint i = 0; i < self->blobs->len; i++) {
    SmolvmOciDescriptor *desc = g_ptr_array_index (self->blobs, i);
    if (i == 0) {
      json_builder_set_member_name (b, "config");
    } else if (i == 1) {
      json_builder_set_member_name (b, "layers");
      json_builder_begin_array (b);
    }
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "mediaType");
    json_builder_add_string_value (b, desc->media_type);
    json_builder_set_member_name (b, "digest");
    json_builder_add_string_value (b, desc->digest);
    json_builder_set_member_name (b, "size");
    json_builder_add_int_value (b, (gint64) desc->size);
    if (i > 0) {
      json_builder_set_member_name (b, "annotations");
      json_builder_begin_object (b);
      json_builder_set_member_name (b, SMOLVM_OCI_ANNOTATION_TITLE);
      json_builder_add_string_value (b, layer_names[i - 1]);
      json_builder_end_object (b);
    }
    json_builder_end_object (b);
  }
  json_builder_end_array (b);
  json_builder_end_object (b);
  return builder_to_bytes (b);
}

static gboolean
manifest_error (GError **error, const gchar *what)
{
  g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT, "Invalid snapshot manifest: %s", what);
  return FALSE;
}

static SmolvmOciDescriptor *
parse_descriptor (JsonNode *node)
{
  JsonObject *o;
  const gchar *media_type, *digest;
  guint64 size = 0;

  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
    return NULL;
  o = json_node_get_object (node);
  media_type = get_str (o, "mediaType");
  digest = get_str (o, "digest");
  if (media_type == NULL || !smolvm_oci_ref_digest_is_valid (digest) ||
      !get_uint (o, "size", &size))
    return NULL;
  return smolvm_oci_descriptor_new (media_type, digest, size);
}

static gboolean
parse_manifest (SmolvmOciArtifact *self, GBytes *manifest, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autoptr(JsonObject) o = NULL;
  g_autoptr(SmolvmOciDescriptor) config = NULL;
  const gchar *media_type, *artifact_type;
  guint64 schema = 0;
  JsonNode *layers;
  JsonArray *array;

  if (g_bytes_get_size (manifest) > SMOLVM_OCI_MAX_METADATA_SIZE)
    return manifest_error (error, "too large");
  o = parse_object (manifest, &local_error);
  if (o == NULL)
    return manifest_error (error, local_error->message);
  media_type = get_str (o, "mediaType");
  artifact_type = get_str (o, "artifactType");
  config = parse_descriptor (json_object_get_member (o, "config"));
  /* another kind of manifest (an index, a Docker image), or an OCI image
   * or artifact of another type: a valid thing, but no snapshot */
  if (g_strcmp0 (media_type, SMOLVM_OCI_MEDIA_TYPE_MANIFEST) != 0 ||
      (artifact_type != NULL && !g_str_equal (artifact_type, SMOLVM_OCI_ARTIFACT_TYPE)) ||
      (artifact_type == NULL &&
       (config == NULL || !g_str_equal (config->media_type, SMOLVM_OCI_MEDIA_TYPE_CONFIG)))) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_A_SNAPSHOT,
                 "Not a smolvm snapshot: a manifest of type %s%s%s",
                 media_type != NULL ? media_type : "(none)",
                 artifact_type != NULL ? " with artifactType " : "",
                 artifact_type != NULL ? artifact_type : "");
    return FALSE;
  }
  if (!get_uint (o, "schemaVersion", &schema) || schema != 2)
    return manifest_error (error, "schemaVersion is not 2");
  if (config == NULL || !g_str_equal (config->media_type, SMOLVM_OCI_MEDIA_TYPE_CONFIG))
    return manifest_error (error, "no smolvm config descriptor");
  if (config->size > SMOLVM_OCI_MAX_METADATA_SIZE)
    return manifest_error (error, "config too large");
  layers = json_object_get_member (o, "layers");
  if (layers == NULL || !JSON_NODE_HOLDS_ARRAY (layers) ||
      json_array_get_length (json_node_get_array (layers)) != N_LAYERS)
    return manifest_error (error, "not three layers");
  g_ptr_array_add (self->blobs, g_steal_pointer (&config));
  array = json_node_get_array (layers);
  for (guint i = 0; i < N_LAYERS; i++) {
    JsonNode *node = json_array_get_element (array, i);
    SmolvmOciDescriptor *desc = parse_descriptor (node);
    JsonNode *annotations;
    const gchar *title = NULL;

    if (desc == NULL)
      return manifest_error (error, "a malformed layer descriptor");
    g_ptr_array_add (self->blobs, desc);
    if (!g_str_equal (desc->media_type, SMOLVM_OCI_MEDIA_TYPE_LAYER))
      return manifest_error (error, "a layer of another media type");
    annotations = json_object_get_member (json_node_get_object (node), "annotations");
    if (annotations != NULL && JSON_NODE_HOLDS_OBJECT (annotations))
      title = get_str (json_node_get_object (annotations), SMOLVM_OCI_ANNOTATION_TITLE);
    if (g_strcmp0 (title, layer_names[i]) != 0) {
      g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT,
                   "Invalid snapshot manifest: layer %u is not titled %s", i + 1, layer_names[i]);
      return FALSE;
    }
  }
  return TRUE;
}

static void
set_manifest (SmolvmOciArtifact *self, GBytes *manifest)
{
  gsize length = 0;
  const guchar *data = g_bytes_get_data (manifest, &length);
  g_autofree gchar *sha256 = g_compute_checksum_for_data (G_CHECKSUM_SHA256, data, length);

  self->manifest = g_bytes_ref (manifest);
  self->manifest_digest = g_strconcat ("sha256:", sha256, NULL);
}

SmolvmOciArtifact *
smolvm_oci_artifact_new_from_manifest (GBytes *manifest, GError **error)
{
  g_autoptr(SmolvmOciArtifact) self = g_object_new (SMOLVM_TYPE_OCI_ARTIFACT, NULL);

  if (!parse_manifest (self, manifest, error))
    return NULL;
  set_manifest (self, manifest);
  return g_steal_pointer (&self);
}

SmolvmOciArtifact *
smolvm_oci_artifact_new_from_layout (const gchar *layout_dir, GError **error)
{
  g_autofree gchar *path = g_build_filename (layout_dir, "index.json", NULL);
  g_autofree gchar *contents = NULL;
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GBytes) manifest = NULL;
  g_autoptr(JsonObject) index = NULL;
  g_autoptr(SmolvmOciDescriptor) desc = NULL;
  g_autoptr(GError) local_error = NULL;
  gsize length = 0;
  JsonNode *manifests;

  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR)) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_A_SNAPSHOT,
                 "Not an OCI image layout: no index.json");
    return NULL;
  }
  if (!g_file_get_contents (path, &contents, &length, error))
    return NULL;
  if (length > SMOLVM_OCI_MAX_METADATA_SIZE) {
    manifest_error (error, "index.json too large");
    return NULL;
  }
  bytes = g_bytes_new_take (g_steal_pointer (&contents), length);
  index = parse_object (bytes, &local_error);
  if (index == NULL) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT, "Invalid index.json: %s",
                 local_error->message);
    return NULL;
  }
  manifests = json_object_get_member (index, "manifests");
  if (manifests == NULL || !JSON_NODE_HOLDS_ARRAY (manifests) ||
      json_array_get_length (json_node_get_array (manifests)) != 1 ||
      (desc = parse_descriptor (json_array_get_element (json_node_get_array (manifests), 0))) ==
        NULL) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_A_SNAPSHOT,
                 "Not a smolvm snapshot: index.json does not name exactly one manifest");
    return NULL;
  }
  if (!g_str_equal (desc->media_type, SMOLVM_OCI_MEDIA_TYPE_MANIFEST)) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_A_SNAPSHOT,
                 "Not a smolvm snapshot: index.json names a %s", desc->media_type);
    return NULL;
  }
  if (desc->size > SMOLVM_OCI_MAX_METADATA_SIZE) {
    manifest_error (error, "too large");
    return NULL;
  }
  manifest = smolvm_oci_layout_read_blob (layout_dir, desc->digest, (gint64) desc->size, error);
  if (manifest == NULL)
    return NULL;
  return smolvm_oci_artifact_new_from_manifest (manifest, error);
}

gboolean
smolvm_oci_artifact_write_index (SmolvmOciArtifact *self, const gchar *layout_dir,
                                 GError **error)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autofree gchar *path = g_build_filename (layout_dir, "index.json", NULL);
  g_autoptr(GBytes) index = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "schemaVersion");
  json_builder_add_int_value (b, 2);
  json_builder_set_member_name (b, "mediaType");
  json_builder_add_string_value (b, SMOLVM_OCI_MEDIA_TYPE_INDEX);
  json_builder_set_member_name (b, "manifests");
  json_builder_begin_array (b);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "mediaType");
  json_builder_add_string_value (b, SMOLVM_OCI_MEDIA_TYPE_MANIFEST);
  json_builder_set_member_name (b, "artifactType");
  json_builder_add_string_value (b, SMOLVM_OCI_ARTIFACT_TYPE);
  json_builder_set_member_name (b, "digest");
  json_builder_add_string_value (b, self->manifest_digest);
  json_builder_set_member_name (b, "size");
  json_builder_add_int_value (b, (gint64) g_bytes_get_size (self->manifest));
  json_builder_end_object (b);
  json_builder_end_array (b);
  json_builder_end_object (b);
  index = builder_to_bytes (b);
  return smolvm_write_file_atomic (path, g_bytes_get_data (index, NULL),
                                   (gssize) g_bytes_get_size (index), error);
}

/* ---- build ---- */

static gboolean
read_record (SmolvmOciArtifact *self, const gchar *snapshot_dir, GError **error)
{
  g_autofree gchar *path = g_build_filename (snapshot_dir, "snapshot.json", NULL);
  g_autofree gchar *contents = NULL;
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GError) local_error = NULL;
  gsize length = 0;
  const gchar *id, *vm_id, *backend;

  if (!g_file_get_contents (path, &contents, &length, error))
    return FALSE;
  bytes = g_bytes_new_take (g_steal_pointer (&contents), length);
  self->snapshot = parse_object (bytes, &local_error);
  if (self->snapshot == NULL) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED, "Cannot read %s: %s", path,
                 local_error->message);
    return FALSE;
  }
  id = get_str (self->snapshot, SMOLVM_INFO_SNAPSHOT_ID);
  vm_id = get_str (self->snapshot, SMOLVM_INFO_VM_ID);
  backend = get_str (self->snapshot, SMOLVM_INFO_BACKEND);
  if (id == NULL || vm_id == NULL || backend == NULL) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED,
                 "Cannot read %s: no snapshot_id, vm_id or backend", path);
    return FALSE;
  }
  self->snapshot_id = g_strdup (id);
  self->vm_id = g_strdup (vm_id);
  self->backend = g_strdup (backend);
  for (gsize i = 0; i < G_N_ELEMENTS (host_members); i++)
    if (json_object_has_member (self->snapshot, host_members[i]))
      json_object_remove_member (self->snapshot, host_members[i]);
  return TRUE;
}

SmolvmOciArtifact *
smolvm_oci_artifact_build (const gchar *snapshot_dir, const gchar *layout_dir,
                           SmolvmProgress *progress, GCancellable *cancellable, GError **error)
{
  g_autoptr(SmolvmOciArtifact) self = g_object_new (SMOLVM_TYPE_OCI_ARTIFACT, NULL);
  g_autoptr(GPtrArray) layers =
    g_ptr_array_new_with_free_func ((GDestroyNotify) smolvm_oci_descriptor_free);
  g_autoptr(GBytes) config = NULL;
  g_autoptr(GBytes) manifest = NULL;
  g_autofree gchar *config_digest = NULL;
  g_autofree gchar *manifest_digest = NULL;

  if (!smolvm_oci_layout_prepare (layout_dir, error) ||
      !read_record (self, snapshot_dir, error))
    return NULL;
  for (gsize i = 0; i < N_LAYERS; i++) {
    SmolvmOciDescriptor *desc;

    if (set_cancelled (cancellable, error))
      return NULL;
    desc = build_layer (snapshot_dir, layer_names[i], layout_dir, &self->files[i], progress,
                        cancellable, error);
    if (desc == NULL)
      return NULL;
    g_ptr_array_add (layers, desc);
  }
  config = build_config (self);
  if (!smolvm_oci_layout_add_bytes (layout_dir, config, &config_digest, error))
    return NULL;
  g_ptr_array_add (self->blobs, smolvm_oci_descriptor_new (SMOLVM_OCI_MEDIA_TYPE_CONFIG,
                                                           config_digest,
                                                           g_bytes_get_size (config)));
  for (guint i = 0; i < layers->len; i++)
    g_ptr_array_add (self->blobs, smolvm_oci_descriptor_copy (g_ptr_array_index (layers, i)));
  manifest = build_manifest (self);
  if (!smolvm_oci_layout_add_bytes (layout_dir, manifest, &manifest_digest, error))
    return NULL;
  set_manifest (self, manifest);
  self->config_loaded = TRUE;
  return g_steal_pointer (&self);
}

/* ---- getters ---- */

GBytes *smolvm_oci_artifact_get_manifest (SmolvmOciArtifact *self) { return self->manifest; }

const gchar *
smolvm_oci_artifact_get_manifest_digest (SmolvmOciArtifact *self)
{
  return self->manifest_digest;
}

GPtrArray *smolvm_oci_artifact_get_blobs (SmolvmOciArtifact *self) { return self->blobs; }

/* Sizes come from a manifest or config of elsewhere: a sum that would
 * wrap (to a small number a free-space check lets pass) is G_MAXUINT64. */
static guint64
add_saturated (guint64 a, guint64 b)
{
  guint64 sum;
  return g_uint64_checked_add (&sum, a, b) ? sum : G_MAXUINT64;
}

guint64
smolvm_oci_artifact_get_blobs_size (SmolvmOciArtifact *self)
{
  guint64 total = 0;
  for (guint i = 0; i < self->blobs->len; i++)
    total = add_saturated (total,
                           ((SmolvmOciDescriptor *) g_ptr_array_index (self->blobs, i))->size);
  return total;
}

const gchar *smolvm_oci_artifact_get_snapshot_id (SmolvmOciArtifact *self) { return self->snapshot_id; }
const gchar *smolvm_oci_artifact_get_vm_id (SmolvmOciArtifact *self) { return self->vm_id; }
const gchar *smolvm_oci_artifact_get_backend (SmolvmOciArtifact *self) { return self->backend; }

guint64
smolvm_oci_artifact_get_data_size (SmolvmOciArtifact *self)
{
  guint64 total = 0;
  for (gsize i = 0; i < N_LAYERS; i++)
    total = add_saturated (total, self->files[i].data_size);
  return total;
}

/* ---- unpack ---- */

/* Where libarchive reads a layer from: the blob, through zstd; sha256 of
 * the tar stream on the way. */
typedef struct {
  ZSTD_DCtx *dctx;
  int fd;
  guchar *in;
  gsize in_size;
  ZSTD_inBuffer input;
  guchar *out;
  gsize out_size;
  gboolean eof;
  gboolean frame_done;
  GChecksum *tar_sum;
  guint64 tar_size;
  guint64 tar_limit; /* what tar_size may reach (tar_header_limit(), then the data) */
  GCancellable *cancellable;
  GError *error;
} LayerSource;

/* The tar stream is untrusted and zstd shrinks repetition to nothing:
 * libarchive keeps a sparse map in memory as it reads the entry's header
 * (tens of bytes per line of "offset\nlength\n"), and anything after the
 * entry would only be hashed. So a layer's tar may be only as long as its
 * file makes sense of: up to its header, a map of at most one extent per
 * 512 bytes of data (a filesystem block is no smaller) and some slack; then
 * the data, the padding and end blocks. */
#define TAR_SLACK (1024 * 1024)
#define TAR_MAP_BYTES_PER_EXTENT 48

static guint64
tar_header_limit (const LayerFile *file)
{
  return TAR_SLACK + (file->data_size / 512 + 1) * TAR_MAP_BYTES_PER_EXTENT;
}

static la_ssize_t
source_read_cb (struct archive *a, void *user_data, const void **buffer)
{
  LayerSource *src = user_data;

  if (src->error != NULL || set_cancelled (src->cancellable, &src->error))
    return -1;
  for (;;) {
    ZSTD_outBuffer out = { src->out, src->out_size, 0 };
    gsize ret;

    if (src->input.pos == src->input.size && !src->eof) {
      ssize_t n = read (src->fd, src->in, src->in_size);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0) {
        smolvm_error_set_errno (&src->error, errno, "Cannot read the blob");
        return -1;
      }
      src->eof = n == 0;
      src->input = (ZSTD_inBuffer){ src->in, (gsize) n, 0 };
    }
    if (src->input.pos == src->input.size && src->eof) {
      if (!src->frame_done) {
        g_set_error_literal (&src->error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT,
                             "its zstd stream is truncated");
        return -1;
      }
      return 0;
    }
    ret = ZSTD_decompressStream (src->dctx, &out, &src->input);
    if (ZSTD_isError (ret)) {
      g_set_error (&src->error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT, "zstd: %s",
                   ZSTD_getErrorName (ret));
      return -1;
    }
    src->frame_done = ret == 0;
    if (out.pos > 0) {
      if (src->tar_size + out.pos > src->tar_limit) {
        g_set_error_literal (&src->error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT,
                             "its tar is longer than its file's header and data");
        return -1;
      }
      g_checksum_update (src->tar_sum, src->out, out.pos);
      src->tar_size += out.pos;
      *buffer = src->out;
      return (la_ssize_t) out.pos;
    }
  }
}

static gboolean
write_all_at (int fd, const guchar *data, gsize length, guint64 offset, const gchar *path,
              GError **error)
{
  while (length > 0) {
    ssize_t n = pwrite (fd, data, length, (off_t) offset);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return smolvm_error_set_errno (error, errno, "Cannot write %s", path);
    data += n;
    length -= n;
    offset += n;
  }
  return TRUE;
}

static gboolean
layer_corrupt (GError **error, const SmolvmOciDescriptor *desc, const gchar *name,
               const gchar *what)
{
  g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT, "Blob %s (%s) is corrupt: %s",
               desc->digest, name, what);
  return FALSE;
}

/* A read that failed: the source's own error (a Cancel, an I/O error) as
 * it is; anything else is a damaged layer. */
static gboolean
source_failed (struct archive *a, LayerSource *src, const SmolvmOciDescriptor *desc,
               const gchar *name, GError **error)
{
  if (src->error != NULL && !g_error_matches (src->error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT)) {
    g_propagate_error (error, g_steal_pointer (&src->error));
    return FALSE;
  }
  return layer_corrupt (error, desc, name,
                        src->error != NULL ? src->error->message
                        : archive_error_string (a) != NULL ? archive_error_string (a)
                                                           : "unreadable");
}

/* The tar's one entry into @out_fd; holes stay holes (only the data
 * blocks libarchive hands over are written, then the length is set). */
static gboolean
extract_entry (struct archive *a, LayerSource *src, const SmolvmOciDescriptor *desc,
               const gchar *name, const LayerFile *file, int out_fd, const gchar *path,
               SmolvmProgress *progress, GError **error)
{
  struct archive_entry *entry = NULL;
  guint64 data_written = 0;
  int r;

  r = archive_read_next_header (a, &entry);
  if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
    return source_failed (a, src, desc, name, error);
  if (g_strcmp0 (archive_entry_pathname (entry), name) != 0 ||
      archive_entry_filetype (entry) != AE_IFREG || !archive_entry_size_is_set (entry) ||
      (guint64) archive_entry_size (entry) != file->size)
    return layer_corrupt (error, desc, name, "its tar entry is not the file");
  /* the header is read: from here its data, padding and end blocks */
  src->tar_limit = src->tar_size + file->data_size + TAR_SLACK;

  for (;;) {
    const void *buffer = NULL;
    size_t size = 0;
    la_int64_t offset = 0;

    r = archive_read_data_block (a, &buffer, &size, &offset);
    if (r == ARCHIVE_EOF)
      break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
      return source_failed (a, src, desc, name, error);
    if (offset < 0 || (guint64) offset + size > file->size ||
        data_written + size > file->data_size)
      return layer_corrupt (error, desc, name, "its data lies outside the file");
    if (!write_all_at (out_fd, buffer, size, (guint64) offset, path, error))
      return FALSE;
    data_written += size;
    smolvm_progress_add (progress, size);
  }
  if (ftruncate (out_fd, (off_t) file->size) < 0)
    return smolvm_error_set_errno (error, errno, "Cannot write %s", path);
  /* nothing after the file but the end of the archive */
  r = archive_read_next_header (a, &entry);
  if (r == ARCHIVE_FATAL)
    return source_failed (a, src, desc, name, error);
  if (r != ARCHIVE_EOF)
    return layer_corrupt (error, desc, name, "its tar has more than one entry");
  return TRUE;
}

static gboolean
unpack_layer (SmolvmOciArtifact *self, guint i, const gchar *layout_dir, const gchar *target_dir,
              SmolvmProgress *progress, GCancellable *cancellable, GError **error)
{
  const SmolvmOciDescriptor *desc = g_ptr_array_index (self->blobs, i + 1);
  const LayerFile *file = &self->files[i];
  const gchar *name = layer_names[i];
  g_autofree gchar *blob = smolvm_oci_layout_blob_path (layout_dir, desc->digest, error);
  g_autofree gchar *path = g_build_filename (target_dir, name, NULL);
  g_autofree guchar *in = NULL;
  g_autofree guchar *out = NULL;
  g_autoptr(GChecksum) tar_sum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autoptr(GError) local_error = NULL;
  LayerSource src = { 0 };
  struct archive *a;
  gboolean ok;
  int out_fd;

  if (blob == NULL)
    return FALSE;
  /* first the blob as a whole, so nothing of a damaged one is unpacked */
  if (!smolvm_oci_layout_blob_verify (layout_dir, desc, progress, cancellable, &local_error)) {
    if (g_error_matches (local_error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT) ||
        g_error_matches (local_error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_FOUND))
      g_prefix_error (&local_error, "%s: ", name);
    g_propagate_error (error, g_steal_pointer (&local_error));
    return FALSE;
  }
  src.fd = open (blob, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (src.fd < 0)
    return smolvm_error_set_errno (error, errno, "Cannot open blob %s", desc->digest);
  out_fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (out_fd < 0) {
    close (src.fd);
    return smolvm_error_set_errno (error, errno, "Cannot create %s", path);
  }
  src.dctx = ZSTD_createDCtx ();
  /* Our layers use a 2 MiB window (level 3); a blob from elsewhere asking
   * for libzstd's default limit of 128 MiB would cost that much memory. */
  ZSTD_DCtx_setParameter (src.dctx, ZSTD_d_windowLogMax, LAYER_WINDOW_LOG_MAX);
  src.in_size = ZSTD_DStreamInSize ();
  src.in = in = g_malloc (src.in_size);
  src.out_size = ZSTD_DStreamOutSize ();
  src.out = out = g_malloc (src.out_size);
  src.tar_sum = tar_sum;
  src.tar_limit = tar_header_limit (file);
  src.cancellable = cancellable;

  a = archive_read_new ();
  archive_read_support_format_tar (a);
  ok = archive_read_open (a, &src, NULL, source_read_cb, NULL) == ARCHIVE_OK;
  if (!ok)
    source_failed (a, &src, desc, name, error);
  else
    ok = extract_entry (a, &src, desc, name, file, out_fd, path, progress, error);
  /* the rest of the stream (the tar's end blocks) counts in its digest */
  if (ok) {
    const void *rest;
    la_ssize_t n;
    while ((n = source_read_cb (a, &src, &rest)) > 0)
      ;
    if (n < 0)
      ok = source_failed (a, &src, desc, name, error);
  }
  if (ok && !g_str_equal (g_checksum_get_string (tar_sum), file->tar_digest + 7))
    ok = layer_corrupt (error, desc, name, "its tar does not match the config's tar_digest");
  if (ok && fsync (out_fd) < 0)
    ok = smolvm_error_set_errno (error, errno, "Cannot write %s", path);
  archive_read_free (a);
  ZSTD_freeDCtx (src.dctx);
  close (src.fd);
  close (out_fd);
  g_clear_error (&src.error);
  return ok;
}

static gboolean
write_record (SmolvmOciArtifact *self, const gchar *target_dir, const gchar *snapshot_id,
              GError **error)
{
  g_autoptr(JsonNode) root = json_node_new (JSON_NODE_OBJECT);
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  g_autoptr(JsonObject) record = json_object_new ();
  g_autofree gchar *path = g_build_filename (target_dir, "snapshot.json", NULL);
  g_autofree gchar *data = NULL;
  g_autoptr(GList) members = json_object_get_members (self->snapshot);

  for (GList *l = members; l != NULL; l = l->next)
    json_object_set_member (record, l->data,
                            json_node_copy (json_object_get_member (self->snapshot, l->data)));
  json_object_set_string_member (record, SMOLVM_INFO_SNAPSHOT_ID, snapshot_id);
  json_object_set_boolean_member (record, SMOLVM_INFO_RESTORED, FALSE);
  json_object_set_null_member (record, SMOLVM_INFO_RESTORED_VM_ID);
  json_object_set_string_member (record, SMOLVM_INFO_BACKEND, self->backend);
  json_node_set_object (root, record);
  json_generator_set_root (gen, root);
  json_generator_set_pretty (gen, TRUE);
  data = json_generator_to_data (gen, NULL);
  return smolvm_write_file_atomic (path, data, -1, error);
}

gboolean
smolvm_oci_artifact_unpack (SmolvmOciArtifact *self, const gchar *layout_dir,
                            const gchar *target_dir, const gchar *snapshot_id,
                            SmolvmProgress *progress, GCancellable *cancellable, GError **error)
{
  g_return_val_if_fail (self->config_loaded, FALSE);

  if (!smolvm_id_validate (snapshot_id, "snapshot id", error))
    return FALSE;
  for (guint i = 0; i < N_LAYERS; i++) {
    if (set_cancelled (cancellable, error) ||
        !unpack_layer (self, i, layout_dir, target_dir, progress, cancellable, error))
      return FALSE;
  }
  return write_record (self, target_dir, snapshot_id, error);
}
