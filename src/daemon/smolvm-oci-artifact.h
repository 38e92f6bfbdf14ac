/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "smolvm-progress.h"

G_BEGIN_DECLS

/* A snapshot as an OCI artifact (image-spec 1.1): an image manifest of
 * artifactType SMOLVM_OCI_ARTIFACT_TYPE, a config blob with the snapshot's
 * metadata, and one layer per file (vmstate.bin, mem.bin, disk.ext4): a
 * pax tar of that one file, its holes recorded as a GNU 1.0 sparse map so
 * they are never read, stored or sent, compressed with zstd. See
 * docs/snapshot-artifact.md. */
#define SMOLVM_OCI_MEDIA_TYPE_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define SMOLVM_OCI_MEDIA_TYPE_INDEX "application/vnd.oci.image.index.v1+json"
#define SMOLVM_OCI_ARTIFACT_TYPE "application/vnd.smolvm.snapshot.v1"
#define SMOLVM_OCI_MEDIA_TYPE_CONFIG "application/vnd.smolvm.snapshot.config.v1+json"
#define SMOLVM_OCI_MEDIA_TYPE_LAYER "application/vnd.smolvm.snapshot.layer.v1.tar+zstd"
#define SMOLVM_OCI_ANNOTATION_TITLE "org.opencontainers.image.title"
/* the config's format_version; another is NOT_A_SNAPSHOT */
#define SMOLVM_OCI_FORMAT_VERSION 1
/* a manifest or config blob larger than this is refused (CORRUPT) */
#define SMOLVM_OCI_MAX_METADATA_SIZE (4 * 1024 * 1024)

/* One blob as a manifest names it. */
typedef struct {
  gchar *media_type;
  gchar *digest; /* "sha256:<64 lowercase hex>" */
  guint64 size;
} SmolvmOciDescriptor;

#define SMOLVM_TYPE_OCI_DESCRIPTOR (smolvm_oci_descriptor_get_type ())
GType smolvm_oci_descriptor_get_type (void);
SmolvmOciDescriptor *smolvm_oci_descriptor_new (const gchar *media_type, const gchar *digest,
                                                guint64 size);
SmolvmOciDescriptor *smolvm_oci_descriptor_copy (const SmolvmOciDescriptor *self);
void smolvm_oci_descriptor_free (SmolvmOciDescriptor *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmolvmOciDescriptor, smolvm_oci_descriptor_free)

/* A digest's check is smolvm_oci_ref_digest_is_valid() (smolvm-oci-ref.h). */

/* ---- layout dirs ----
 * A directory in OCI image-layout form: oci-layout, blobs/sha256/<hex>,
 * and index.json once an artifact is complete in it. Blobs appear by a
 * rename once written and verified, so a blob file present under its name
 * is complete; .tmp-* files in blobs/sha256 are unfinished writes. */

/* Creates @layout_dir (if needed), blobs/sha256 and oci-layout. */
gboolean smolvm_oci_layout_prepare (const gchar *layout_dir, GError **error);
/* LAYOUT/blobs/sha256/<hex>; NULL (and INVALID_ARGUMENT) for a malformed
 * digest, so a digest from the network never makes a path of its own. */
gchar *smolvm_oci_layout_blob_path (const gchar *layout_dir, const gchar *digest, GError **error);
/* A new temp file in LAYOUT/blobs/sha256 to write a blob into (mode 0600,
 * O_EXCL); its path in @tmp_path. */
int smolvm_oci_layout_blob_tmp (const gchar *layout_dir, gchar **tmp_path, GError **error);
/* Whether the blob is there with @desc's size (a cheap check; blobs only
 * appear complete and verified). */
gboolean smolvm_oci_layout_has_blob (const gchar *layout_dir, const SmolvmOciDescriptor *desc);
/* Reads the blob and checks its size and sha256: CORRUPT naming the blob
 * on a mismatch, NOT_FOUND when absent. Adds the bytes read to @progress. */
gboolean smolvm_oci_layout_blob_verify (const gchar *layout_dir, const SmolvmOciDescriptor *desc,
                                        SmolvmProgress *progress, GCancellable *cancellable,
                                        GError **error);
/* Moves @tmp_path (a finished write) into place as the blob @digest, after
 * checking that its content has that digest (CORRUPT otherwise; @tmp_path
 * is removed either way). */
gboolean smolvm_oci_layout_commit_blob (const gchar *layout_dir, const gchar *tmp_path,
                                        const gchar *digest, GCancellable *cancellable,
                                        GError **error);
/* Reads a small blob (manifest, config) into memory, verifying its digest
 * and, when @expected_size >= 0, its size. */
GBytes *smolvm_oci_layout_read_blob (const gchar *layout_dir, const gchar *digest,
                                     gint64 expected_size, GError **error);
/* Adds a blob held in memory (skipped if present); sets @digest. */
gboolean smolvm_oci_layout_add_bytes (const gchar *layout_dir, GBytes *bytes, gchar **digest,
                                      GError **error);

#define SMOLVM_TYPE_OCI_ARTIFACT (smolvm_oci_artifact_get_type ())
G_DECLARE_FINAL_TYPE (SmolvmOciArtifact, smolvm_oci_artifact, SMOLVM, OCI_ARTIFACT, GObject)

/* Worker thread. Writes the config blob, one layer blob per file of the
 * snapshot in @snapshot_dir and the manifest blob into @layout_dir
 * (prepared if needed), skipping blobs already present. Deterministic:
 * the same content always gives the same blobs. Adds the data bytes read
 * to @progress (holes are never read). Does not write index.json. */
SmolvmOciArtifact *smolvm_oci_artifact_build (const gchar *snapshot_dir, const gchar *layout_dir,
                                              SmolvmProgress *progress,
                                              GCancellable *cancellable, GError **error);

/* Parses and validates a manifest: schemaVersion 2, the manifest media
 * type, artifactType (NOT_A_SNAPSHOT for another one, or for another
 * manifest type), config and layer media types, the three titles in order,
 * well-formed digests and sizes (CORRUPT otherwise). */
SmolvmOciArtifact *smolvm_oci_artifact_new_from_manifest (GBytes *manifest, GError **error);

/* Reads LAYOUT/index.json: its one manifest, read and verified from the
 * layout's blobs, then parsed as above. */
SmolvmOciArtifact *smolvm_oci_artifact_new_from_layout (const gchar *layout_dir, GError **error);
/* Writes LAYOUT/index.json naming this artifact's manifest. */
gboolean smolvm_oci_artifact_write_index (SmolvmOciArtifact *self, const gchar *layout_dir,
                                          GError **error);

GBytes *smolvm_oci_artifact_get_manifest (SmolvmOciArtifact *self);
/* "sha256:<hex>" of the manifest's bytes */
const gchar *smolvm_oci_artifact_get_manifest_digest (SmolvmOciArtifact *self);
/* Of SmolvmOciDescriptor (transfer none): the config, then the layers. */
GPtrArray *smolvm_oci_artifact_get_blobs (SmolvmOciArtifact *self);
/* The total size of the blobs (G_MAXUINT64 if it does not fit). */
guint64 smolvm_oci_artifact_get_blobs_size (SmolvmOciArtifact *self);

/* Verifies the config blob in @layout_dir (sha256, size) and parses it:
 * format_version (NOT_A_SNAPSHOT if unknown), the snapshot's record, one
 * entry per layer. Then the getters below answer. build() has done it. */
gboolean smolvm_oci_artifact_load_config (SmolvmOciArtifact *self, const gchar *layout_dir,
                                          GError **error);
const gchar *smolvm_oci_artifact_get_snapshot_id (SmolvmOciArtifact *self);
const gchar *smolvm_oci_artifact_get_vm_id (SmolvmOciArtifact *self);
const gchar *smolvm_oci_artifact_get_backend (SmolvmOciArtifact *self);
/* The files' bytes of data (holes excluded), what unpack() writes
 * (G_MAXUINT64 if the config's sizes add up to more). */
guint64 smolvm_oci_artifact_get_data_size (SmolvmOciArtifact *self);

/* Worker thread, after load_config(). Verifies every layer's sha256 and
 * size (a mismatch: CORRUPT, naming the blob), then writes its file into
 * @target_dir (an existing, empty staging dir) with its holes, checking
 * the tar stream against the config's tar_digest and the file's size, and
 * writes snapshot.json there as the snapshot @snapshot_id (not restored).
 * Adds the blob bytes verified and the data bytes written to @progress. On
 * failure the files it wrote are left for the caller to remove with the
 * staging dir. */
gboolean smolvm_oci_artifact_unpack (SmolvmOciArtifact *self, const gchar *layout_dir,
                                     const gchar *target_dir, const gchar *snapshot_id,
                                     SmolvmProgress *progress, GCancellable *cancellable,
                                     GError **error);

G_END_DECLS
