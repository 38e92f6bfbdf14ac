/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The snapshot artifact alone: a snapshot directory with a 2 GiB sparse
 * disk holding 60 MiB built into an OCI layout, validated, verified and
 * unpacked with its holes. */
#define _GNU_SOURCE /* SEEK_DATA, SEEK_HOLE */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "smolvm-error.h"
#include "smolvm-fileutil.h"
#include "smolvm-oci-artifact.h"

#define MiB (1024 * 1024)
#define DISK_SIZE (2048ULL * MiB)
#define MEM_SIZE (32ULL * MiB)
#define VMSTATE_SIZE (100 * 1024)
/* three 20 MiB extents: at the start, in the middle, at the end */
static const guint64 disk_extents[] = { 0, 1000 * MiB, DISK_SIZE - 20 * MiB };
#define EXTENT_SIZE (20 * MiB)
#define METADATA_SLACK (64 * 1024)

typedef struct {
  gchar *root;
  gchar *snapshot;
  gchar *layout;
} Fixture;

static const gchar record[] =
  "{\"snapshot_id\": \"snap-a\", \"vm_id\": \"vm-a\", "
  "\"snapshot_path\": \"/somewhere/vmstate.bin\", \"mem_file_path\": \"/somewhere/mem.bin\", "
  "\"disk_path\": \"/somewhere/disk.ext4\", "
  "\"vm_config\": {\"vm_id\": \"vm-a\", \"vcpu_count\": 1, \"mem_size_mib\": 32}, "
  "\"network_config\": {}, \"created_at\": \"2026-12-01T10:00:00.000000+00:00\", "
  "\"restored\": true, \"restored_vm_id\": \"vm-a\", \"backend\": \"firecracker\", "
  "\"vmstate_sha256\": \"00\"}";

static void
fill_random (GRand *rand, guchar *buffer, gsize length)
{
  for (gsize i = 0; i + 4 <= length; i += 4) {
    guint32 v = g_rand_int (rand);
    memcpy (buffer + i, &v, 4);
  }
}

static void
write_at (int fd, const guchar *data, gsize length, guint64 offset)
{
  while (length > 0) {
    ssize_t n = pwrite (fd, data, length, (off_t) offset);
    g_assert_cmpint (n, >, 0);
    data += n;
    length -= n;
    offset += n;
  }
}

static void
make_snapshot (const gchar *dir)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (12);
  g_autofree guchar *buffer = g_malloc (EXTENT_SIZE);
  g_autofree gchar *json = g_build_filename (dir, "snapshot.json", NULL);
  g_autofree gchar *vmstate = g_build_filename (dir, "vmstate.bin", NULL);
  g_autofree gchar *mem = g_build_filename (dir, "mem.bin", NULL);
  g_autofree gchar *disk = g_build_filename (dir, "disk.ext4", NULL);
  int fd;

  g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);
  g_assert_true (g_file_set_contents (json, record, -1, NULL));
  fill_random (rand, buffer, VMSTATE_SIZE);
  g_assert_true (g_file_set_contents (vmstate, (const gchar *) buffer, VMSTATE_SIZE, NULL));
  /* all holes: a fresh guest's memory that was never touched */
  fd = open (mem, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (ftruncate (fd, MEM_SIZE), ==, 0);
  close (fd);
  fd = open (disk, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  g_assert_cmpint (fd, >=, 0);
  for (gsize i = 0; i < G_N_ELEMENTS (disk_extents); i++) {
    fill_random (rand, buffer, EXTENT_SIZE);
    write_at (fd, buffer, EXTENT_SIZE, disk_extents[i]);
  }
  g_assert_cmpint (ftruncate (fd, DISK_SIZE), ==, 0);
  g_assert_cmpint (fsync (fd), ==, 0);
  close (fd);
}

static void
setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  f->root = g_dir_make_tmp ("smolvm-oci-XXXXXX", &error);
  g_assert_no_error (error);
  f->snapshot = g_build_filename (f->root, "snap", NULL);
  f->layout = g_build_filename (f->root, "layout", NULL);
  make_snapshot (f->snapshot);
}

static void
teardown (Fixture *f, gconstpointer data)
{
  g_assert_true (smolvm_rm_rf (f->root, NULL));
  g_free (f->root);
  g_free (f->snapshot);
  g_free (f->layout);
}

static SmolvmOciArtifact *
build (const gchar *snapshot, const gchar *layout, SmolvmProgress *progress)
{
  g_autoptr(GError) error = NULL;
  SmolvmOciArtifact *artifact =
    smolvm_oci_artifact_build (snapshot, layout, progress, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (artifact);
  return artifact;
}

static const SmolvmOciDescriptor *
blob (SmolvmOciArtifact *artifact, guint i)
{
  return g_ptr_array_index (smolvm_oci_artifact_get_blobs (artifact), i);
}

/* The bytes of the uncompressed stream inside a zstd blob. */
static guint64
decompressed_size (const gchar *path)
{
  g_autofree gchar *contents = NULL;
  gsize length = 0;
  ZSTD_DCtx *dctx = ZSTD_createDCtx ();
  g_autofree guchar *out = g_malloc (ZSTD_DStreamOutSize ());
  ZSTD_inBuffer in;
  guint64 total = 0;

  g_assert_true (g_file_get_contents (path, &contents, &length, NULL));
  in = (ZSTD_inBuffer){ contents, length, 0 };
  while (in.pos < in.size) {
    ZSTD_outBuffer o = { out, ZSTD_DStreamOutSize (), 0 };
    gsize ret = ZSTD_decompressStream (dctx, &o, &in);
    g_assert_false (ZSTD_isError (ret));
    total += o.pos;
  }
  ZSTD_freeDCtx (dctx);
  return total;
}

/* A file's content as its length, its data extents and their sha256:
 * equal for two files exactly when their bytes and their holes are. */
static gchar *
content_digest (const gchar *path, guint64 *allocated)
{
  g_autoptr(GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree guchar *buffer = g_malloc (MiB);
  g_autoptr(GString) map = g_string_new (NULL);
  struct stat st;
  off_t pos = 0;
  int fd = open (path, O_RDONLY);

  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (fstat (fd, &st), ==, 0);
  *allocated = (guint64) st.st_blocks * 512;
  g_string_append_printf (map, "%" G_GINT64_FORMAT ":", (gint64) st.st_size);
  while (pos < st.st_size) {
    off_t data = lseek (fd, pos, SEEK_DATA);
    off_t hole;
    if (data < 0 && errno == ENXIO)
      break;
    g_assert_cmpint (data, >=, 0);
    hole = lseek (fd, data, SEEK_HOLE);
    g_string_append_printf (map, "%" G_GINT64_FORMAT "+%" G_GINT64_FORMAT ",", (gint64) data,
                            (gint64) (hole - data));
    for (off_t p = data; p < hole;) {
      ssize_t n = pread (fd, buffer, MIN (MiB, hole - p), p);
      g_assert_cmpint (n, >, 0);
      g_checksum_update (sum, buffer, n);
      p += n;
    }
    pos = hole;
  }
  close (fd);
  g_string_append (map, g_checksum_get_string (sum));
  return g_string_free (g_steal_pointer (&map), FALSE);
}

static JsonObject *
read_json (const gchar *path)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  g_assert_true (json_parser_load_from_file (parser, path, &error));
  g_assert_no_error (error);
  return json_object_ref (json_node_get_object (json_parser_get_root (parser)));
}

static void
test_build_unpack (Fixture *f, gconstpointer data)
{
  g_autoptr(SmolvmProgress) progress = smolvm_progress_new ();
  g_autoptr(SmolvmOciArtifact) built = build (f->snapshot, f->layout, progress);
  g_autoptr(SmolvmOciArtifact) parsed = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree gchar *disk_blob = NULL;
  g_autofree gchar *mem_blob = NULL;
  g_autofree gchar *target = g_build_filename (f->root, "target", NULL);
  g_autofree gchar *target_json = g_build_filename (target, "snapshot.json", NULL);
  g_autofree gchar *target_disk = g_build_filename (target, "disk.ext4", NULL);
  g_autoptr(JsonObject) unpacked = NULL;
  GPtrArray *blobs = smolvm_oci_artifact_get_blobs (built);
  struct stat st;

  /* config first, then the three layers */
  g_assert_cmpuint (blobs->len, ==, 4);
  g_assert_cmpstr (blob (built, 0)->media_type, ==, SMOLVM_OCI_MEDIA_TYPE_CONFIG);
  for (guint i = 1; i < 4; i++) {
    g_assert_cmpstr (blob (built, i)->media_type, ==, SMOLVM_OCI_MEDIA_TYPE_LAYER);
    g_assert_true (smolvm_oci_layout_has_blob (f->layout, blob (built, i)));
  }
  /* only the data was read and compressed: 60 MiB and the small files,
   * never the 2 GiB of the disk nor the 32 MiB hole of mem.bin */
  g_assert_cmpuint (smolvm_progress_get_done (progress), ==, 3 * EXTENT_SIZE + VMSTATE_SIZE);
  g_assert_cmpuint (smolvm_oci_artifact_get_data_size (built), ==, 3 * EXTENT_SIZE + VMSTATE_SIZE);
  disk_blob = smolvm_oci_layout_blob_path (f->layout, blob (built, 3)->digest, NULL);
  mem_blob = smolvm_oci_layout_blob_path (f->layout, blob (built, 2)->digest, NULL);
  g_assert_cmpuint (blob (built, 3)->size, <, 3 * EXTENT_SIZE + MiB);
  /* the tar inside holds the data and its headers, not the holes */
  g_assert_cmpuint (decompressed_size (disk_blob), <, 3 * EXTENT_SIZE + MiB);
  g_assert_cmpuint (decompressed_size (disk_blob), >=, 3 * EXTENT_SIZE);
  g_assert_cmpuint (decompressed_size (mem_blob), <, 64 * 1024);

  /* what a puller does: the manifest alone, then the config */
  parsed = smolvm_oci_artifact_new_from_manifest (smolvm_oci_artifact_get_manifest (built), &error);
  g_assert_no_error (error);
  g_assert_cmpstr (smolvm_oci_artifact_get_manifest_digest (parsed), ==,
                   smolvm_oci_artifact_get_manifest_digest (built));
  g_assert_true (smolvm_oci_artifact_load_config (parsed, f->layout, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (smolvm_oci_artifact_get_snapshot_id (parsed), ==, "snap-a");
  g_assert_cmpstr (smolvm_oci_artifact_get_vm_id (parsed), ==, "vm-a");
  g_assert_cmpstr (smolvm_oci_artifact_get_backend (parsed), ==, "firecracker");

  g_assert_cmpint (g_mkdir (target, 0700), ==, 0);
  smolvm_oci_artifact_unpack (parsed, f->layout, target, "snap-b", NULL, NULL, &error);
  g_assert_no_error (error);
  for (gsize i = 0; i < 3; i++) {
    static const gchar *const names[] = { "vmstate.bin", "mem.bin", "disk.ext4" };
    g_autofree gchar *a = g_build_filename (f->snapshot, names[i], NULL);
    g_autofree gchar *b = g_build_filename (target, names[i], NULL);
    guint64 alloc_a = 0, alloc_b = 0;
    g_autofree gchar *digest_a = content_digest (a, &alloc_a);
    g_autofree gchar *digest_b = content_digest (b, &alloc_b);

    g_test_message ("%s: %s, %" G_GUINT64_FORMAT " bytes allocated", names[i], digest_b, alloc_b);
    /* the same data extents, holes and bytes */
    g_assert_cmpstr (digest_a, ==, digest_b);
    /* and the same allocation, give or take the filesystem's own metadata
     * (an ext4 extent tree block when the copy's blocks lie fragmented) */
    g_assert_cmpuint (alloc_b, <=, alloc_a + METADATA_SLACK);
    g_assert_cmpuint (alloc_b + METADATA_SLACK, >=, alloc_a);
  }
  g_assert_cmpint (stat (target_disk, &st), ==, 0);
  g_assert_cmpint (st.st_size, ==, DISK_SIZE);
  g_assert_cmpuint ((guint64) st.st_blocks * 512, <, 3 * EXTENT_SIZE + MiB);

  /* the record under its new id, restored nowhere yet */
  unpacked = read_json (target_json);
  g_assert_cmpstr (json_object_get_string_member (unpacked, "snapshot_id"), ==, "snap-b");
  g_assert_cmpstr (json_object_get_string_member (unpacked, "vm_id"), ==, "vm-a");
  g_assert_false (json_object_get_boolean_member (unpacked, "restored"));
  g_assert_true (json_object_get_null_member (unpacked, "restored_vm_id"));
  g_assert_cmpstr (json_object_get_string_member (unpacked, "vmstate_sha256"), ==, "00");
  g_assert_false (json_object_has_member (unpacked, "disk_path"));
}

static void
test_deterministic (Fixture *f, gconstpointer data)
{
  g_autofree gchar *other = g_build_filename (f->root, "layout2", NULL);
  g_autoptr(SmolvmOciArtifact) a = build (f->snapshot, f->layout, NULL);
  g_autoptr(SmolvmOciArtifact) b = build (f->snapshot, other, NULL);
  g_autoptr(SmolvmOciArtifact) again = build (f->snapshot, f->layout, NULL);
  g_autofree gchar *dir = g_build_filename (f->layout, "blobs", "sha256", NULL);
  g_autoptr(GDir) blobs = g_dir_open (dir, 0, NULL);
  guint n = 0;

  g_assert_cmpstr (smolvm_oci_artifact_get_manifest_digest (a), ==,
                   smolvm_oci_artifact_get_manifest_digest (b));
  g_assert_cmpstr (smolvm_oci_artifact_get_manifest_digest (a), ==,
                   smolvm_oci_artifact_get_manifest_digest (again));
  for (guint i = 0; i < 4; i++)
    g_assert_cmpstr (blob (a, i)->digest, ==, blob (b, i)->digest);
  /* a second build into the same layout adds nothing and leaves no temp
   * files: four blobs and the manifest */
  while (g_dir_read_name (blobs) != NULL)
    n++;
  g_assert_cmpuint (n, ==, 5);
}

static void
flip_byte (const gchar *path, goffset offset)
{
  guchar c;
  int fd = open (path, O_RDWR);
  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (pread (fd, &c, 1, offset), ==, 1);
  c ^= 0x40;
  g_assert_cmpint (pwrite (fd, &c, 1, offset), ==, 1);
  close (fd);
}

static void
test_corrupt (Fixture *f, gconstpointer data)
{
  g_autoptr(SmolvmOciArtifact) built = build (f->snapshot, f->layout, NULL);
  g_autoptr(GError) error = NULL;
  g_autofree gchar *target = g_build_filename (f->root, "target", NULL);
  g_autofree gchar *disk = smolvm_oci_layout_blob_path (f->layout, blob (built, 3)->digest, NULL);
  g_autofree gchar *config = smolvm_oci_layout_blob_path (f->layout, blob (built, 0)->digest, NULL);
  g_autofree gchar *unpacked_disk = g_build_filename (target, "disk.ext4", NULL);
  g_autoptr(SmolvmOciArtifact) parsed = NULL;

  flip_byte (disk, (goffset) blob (built, 3)->size / 2);
  g_assert_cmpint (g_mkdir (target, 0700), ==, 0);
  g_assert_false (smolvm_oci_artifact_unpack (built, f->layout, target, "snap-a", NULL, NULL,
                                              &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, blob (built, 3)->digest));
  g_assert_nonnull (strstr (error->message, "disk.ext4"));
  /* verified before anything of it was written */
  g_assert_false (g_file_test (unpacked_disk, G_FILE_TEST_EXISTS));
  g_clear_error (&error);
  g_assert_false (smolvm_oci_layout_blob_verify (f->layout, blob (built, 3), NULL, NULL, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT);
  g_clear_error (&error);

  /* a damaged config */
  flip_byte (config, 3);
  parsed = smolvm_oci_artifact_new_from_manifest (smolvm_oci_artifact_get_manifest (built), &error);
  g_assert_no_error (error);
  g_assert_false (smolvm_oci_artifact_load_config (parsed, f->layout, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, blob (built, 0)->digest));
}

/* The built manifest with one member replaced (a JSON value). */
static GBytes *
edited_manifest (SmolvmOciArtifact *artifact, const gchar *member, const gchar *value)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(JsonParser) value_parser = json_parser_new ();
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  GBytes *manifest = smolvm_oci_artifact_get_manifest (artifact);
  JsonObject *o;
  gsize length = 0;
  gchar *text;

  g_assert_true (json_parser_load_from_data (parser, g_bytes_get_data (manifest, NULL),
                                             (gssize) g_bytes_get_size (manifest), NULL));
  g_assert_true (json_parser_load_from_data (value_parser, value, -1, NULL));
  o = json_node_get_object (json_parser_get_root (parser));
  json_object_set_member (o, member, json_node_copy (json_parser_get_root (value_parser)));
  json_generator_set_root (gen, json_parser_get_root (parser));
  text = json_generator_to_data (gen, &length);
  return g_bytes_new_take (text, length);
}

static void
test_manifest_errors (Fixture *f, gconstpointer data)
{
  g_autoptr(SmolvmOciArtifact) built = build (f->snapshot, f->layout, NULL);
  static const struct {
    const gchar *member;
    const gchar *value;
    gint code;
  } cases[] = {
    { "artifactType", "\"application/vnd.example.other.v1\"", SMOLVM_ERROR_NOT_A_SNAPSHOT },
    { "mediaType", "\"application/vnd.docker.distribution.manifest.v2+json\"",
      SMOLVM_ERROR_NOT_A_SNAPSHOT },
    { "mediaType", "\"application/vnd.oci.image.index.v1+json\"", SMOLVM_ERROR_NOT_A_SNAPSHOT },
    { "schemaVersion", "1", SMOLVM_ERROR_CORRUPT },
    { "layers", "[]", SMOLVM_ERROR_CORRUPT },
    { "config", "{\"mediaType\": \"application/vnd.smolvm.snapshot.config.v1+json\", "
                "\"digest\": \"sha256:../../etc\", \"size\": 3}",
      SMOLVM_ERROR_CORRUPT },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr(GBytes) manifest = edited_manifest (built, cases[i].member, cases[i].value);
    g_autoptr(GError) error = NULL;
    g_autoptr(SmolvmOciArtifact) parsed = smolvm_oci_artifact_new_from_manifest (manifest, &error);

    g_test_message ("%s=%s: %s", cases[i].member, cases[i].value,
                    error != NULL ? error->message : "accepted");
    g_assert_null (parsed);
    g_assert_error (error, SMOLVM_ERROR, cases[i].code);
  }
  {
    g_autoptr(GBytes) garbage = g_bytes_new_static ("not json", 8);
    g_autoptr(GError) error = NULL;
    g_assert_null (smolvm_oci_artifact_new_from_manifest (garbage, &error));
    g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT);
  }
}

static void
test_format_version (Fixture *f, gconstpointer data)
{
  g_autoptr(SmolvmOciArtifact) built = build (f->snapshot, f->layout, NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) config = NULL;
  g_autoptr(GBytes) manifest = NULL;
  g_autoptr(SmolvmOciArtifact) parsed = NULL;
  g_autofree gchar *digest = NULL;
  g_autofree gchar *descriptor = NULL;
  g_autofree gchar *text = g_strdup_printf (
    "{\"format_version\": 2, \"snapshot_id\": \"snap-a\", \"backend\": \"firecracker\"}");

  config = g_bytes_new (text, strlen (text));
  g_assert_true (smolvm_oci_layout_add_bytes (f->layout, config, &digest, &error));
  descriptor = g_strdup_printf ("{\"mediaType\": \"%s\", \"digest\": \"%s\", \"size\": %zu}",
                                SMOLVM_OCI_MEDIA_TYPE_CONFIG, digest, strlen (text));
  manifest = edited_manifest (built, "config", descriptor);
  parsed = smolvm_oci_artifact_new_from_manifest (manifest, &error);
  g_assert_no_error (error);
  g_assert_false (smolvm_oci_artifact_load_config (parsed, f->layout, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_A_SNAPSHOT);
}

static void
test_layout_index (Fixture *f, gconstpointer data)
{
  g_autoptr(SmolvmOciArtifact) built = build (f->snapshot, f->layout, NULL);
  g_autoptr(SmolvmOciArtifact) read = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree gchar *empty = g_build_filename (f->root, "empty", NULL);

  g_assert_true (smolvm_oci_artifact_write_index (built, f->layout, &error));
  g_assert_no_error (error);
  read = smolvm_oci_artifact_new_from_layout (f->layout, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (smolvm_oci_artifact_get_manifest_digest (read), ==,
                   smolvm_oci_artifact_get_manifest_digest (built));
  /* a downloaded blob: kept under its digest only if it has it */
  {
    static const gchar content[] = "some blob";
    g_autofree gchar *sha256 =
      g_compute_checksum_for_string (G_CHECKSUM_SHA256, content, -1);
    g_autofree gchar *digest = g_strconcat ("sha256:", sha256, NULL);
    g_autofree gchar *tmp = NULL;
    g_autofree gchar *tmp2 = NULL;
    g_autoptr(SmolvmOciDescriptor) desc =
      smolvm_oci_descriptor_new ("application/octet-stream", digest, strlen (content));
    int fd = smolvm_oci_layout_blob_tmp (f->layout, &tmp, &error);

    g_assert_no_error (error);
    g_assert_cmpint (write (fd, content, strlen (content)), ==, strlen (content));
    close (fd);
    g_assert_false (smolvm_oci_layout_has_blob (f->layout, desc));
    g_assert_true (smolvm_oci_layout_commit_blob (f->layout, tmp, digest, NULL, &error));
    g_assert_no_error (error);
    g_assert_true (smolvm_oci_layout_has_blob (f->layout, desc));
    g_assert_true (smolvm_oci_layout_blob_verify (f->layout, desc, NULL, NULL, &error));
    g_assert_no_error (error);

    fd = smolvm_oci_layout_blob_tmp (f->layout, &tmp2, &error);
    g_assert_cmpint (write (fd, "other", 5), ==, 5);
    close (fd);
    g_assert_false (smolvm_oci_layout_commit_blob (f->layout, tmp2, blob (built, 1)->digest,
                                                   NULL, &error));
    g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CORRUPT);
    g_clear_error (&error);
    g_assert_false (g_file_test (tmp2, G_FILE_TEST_EXISTS));
  }
  /* a digest never makes a path of its own */
  g_assert_null (smolvm_oci_layout_blob_path (f->layout, "sha256:../../x", &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_true (smolvm_oci_layout_prepare (empty, &error));
  g_assert_null (smolvm_oci_artifact_new_from_layout (empty, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_A_SNAPSHOT);
}

static void
test_cancel (Fixture *f, gconstpointer data)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GError) error = NULL;
  g_autofree gchar *dir = g_build_filename (f->layout, "blobs", "sha256", NULL);
  g_autoptr(GDir) blobs = NULL;

  g_cancellable_cancel (cancellable);
  g_assert_null (smolvm_oci_artifact_build (f->snapshot, f->layout, NULL, cancellable, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED);
  /* no blob, no temp file */
  blobs = g_dir_open (dir, 0, NULL);
  g_assert_null (g_dir_read_name (blobs));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/oci-artifact/build-unpack", Fixture, NULL, setup, test_build_unpack, teardown);
  g_test_add ("/oci-artifact/deterministic", Fixture, NULL, setup, test_deterministic, teardown);
  g_test_add ("/oci-artifact/corrupt", Fixture, NULL, setup, test_corrupt, teardown);
  g_test_add ("/oci-artifact/manifest-errors", Fixture, NULL, setup, test_manifest_errors,
              teardown);
  g_test_add ("/oci-artifact/format-version", Fixture, NULL, setup, test_format_version, teardown);
  g_test_add ("/oci-artifact/layout-index", Fixture, NULL, setup, test_layout_index, teardown);
  g_test_add ("/oci-artifact/cancel", Fixture, NULL, setup, test_cancel, teardown);
  return g_test_run ();
}
