/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A snapshot artifact's manifest and config as a pull or an import reads
 * them (smolvm-oci-artifact.c). The input is a manifest, a NUL, then a
 * config: the manifest goes through smolvm_oci_artifact_new_from_manifest();
 * the config is stored as a blob of a layout dir and loaded through a
 * manifest that names it (its digest and size are right, so the config
 * parser is reached). Properties: whatever parses has a config first and
 * three layers, each with a valid digest; a config that loads gives ids
 * that are valid ids and files whose data fits in them. */
#include "config.h"

#include <string.h>

#include "fuzz-common.h"
#include "smolvm-id.h"
#include "smolvm-oci-artifact.h"
#include "smolvm-oci-ref.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static gchar *layout;

static void
init (void)
{
  g_autoptr(GError) error = NULL;

  fuzz_init_logging ();
  layout = g_build_filename (fuzz_init_tmp_dir (), "layout", NULL);
  if (!smolvm_oci_layout_prepare (layout, &error))
    g_error ("%s", error->message);
}

static void
check_blobs (SmolvmOciArtifact *artifact)
{
  GPtrArray *blobs = smolvm_oci_artifact_get_blobs (artifact);

  if (blobs->len != 4)
    fuzz_finding ("a parsed manifest has not a config and three layers", "%u\n", blobs->len);
  for (guint i = 0; i < blobs->len; i++) {
    SmolvmOciDescriptor *desc = g_ptr_array_index (blobs, i);
    if (!smolvm_oci_ref_digest_is_valid (desc->digest))
      fuzz_finding ("a parsed manifest names an invalid digest", "%s\n", desc->digest);
  }
}

static void
load_config (const uint8_t *config, size_t size)
{
  static const gchar layer[] =
    "\"sha256:0000000000000000000000000000000000000000000000000000000000000000\"";
  g_autoptr(GBytes) bytes = g_bytes_new (config, size);
  g_autoptr(GBytes) manifest = NULL;
  g_autoptr(SmolvmOciArtifact) artifact = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree gchar *digest = NULL;
  g_autofree gchar *path = NULL;
  gchar *text;

  if (!smolvm_oci_layout_add_bytes (layout, bytes, &digest, &error))
    g_error ("%s", error->message);
  text = g_strdup_printf (
    "{\"schemaVersion\": 2, \"mediaType\": \"%s\", \"artifactType\": \"%s\", "
    "\"config\": {\"mediaType\": \"%s\", \"digest\": \"%s\", \"size\": %zu}, "
    "\"layers\": ["
    "{\"mediaType\": \"%s\", \"digest\": %s, \"size\": 1, "
    "\"annotations\": {\"%s\": \"vmstate.bin\"}}, "
    "{\"mediaType\": \"%s\", \"digest\": %s, \"size\": 1, "
    "\"annotations\": {\"%s\": \"mem.bin\"}}, "
    "{\"mediaType\": \"%s\", \"digest\": %s, \"size\": 1, "
    "\"annotations\": {\"%s\": \"disk.ext4\"}}]}",
    SMOLVM_OCI_MEDIA_TYPE_MANIFEST, SMOLVM_OCI_ARTIFACT_TYPE, SMOLVM_OCI_MEDIA_TYPE_CONFIG,
    digest, size, SMOLVM_OCI_MEDIA_TYPE_LAYER, layer, SMOLVM_OCI_ANNOTATION_TITLE,
    SMOLVM_OCI_MEDIA_TYPE_LAYER, layer, SMOLVM_OCI_ANNOTATION_TITLE,
    SMOLVM_OCI_MEDIA_TYPE_LAYER, layer, SMOLVM_OCI_ANNOTATION_TITLE);
  manifest = g_bytes_new_take (text, strlen (text));
  artifact = smolvm_oci_artifact_new_from_manifest (manifest, &error);
  if (artifact == NULL)
    g_error ("the fuzzer's own manifest is refused: %s", error->message);
  if (smolvm_oci_artifact_load_config (artifact, layout, &error)) {
    const gchar *ids[] = { smolvm_oci_artifact_get_snapshot_id (artifact),
                           smolvm_oci_artifact_get_vm_id (artifact),
                           smolvm_oci_artifact_get_backend (artifact) };
    for (gsize i = 0; i < G_N_ELEMENTS (ids); i++)
      if (!smolvm_id_is_valid (ids[i]))
        fuzz_finding ("a loaded config has an invalid id", "%s\n", ids[i]);
    /* the sum of data sizes may not wrap into something small */
    (void) smolvm_oci_artifact_get_data_size (artifact);
  } else if (error == NULL) {
    fuzz_finding ("a config refused without an error", "%s", "");
  }
  /* each input's blob goes, so the layout stays small */
  path = smolvm_oci_layout_blob_path (layout, digest, NULL);
  g_unlink (path);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const uint8_t *nul = memchr (data, '\0', size);
  size_t manifest_size = nul != NULL ? (size_t) (nul - data) : size;
  g_autoptr(GBytes) manifest = NULL;
  g_autoptr(SmolvmOciArtifact) artifact = NULL;
  g_autoptr(GError) error = NULL;

  if (layout == NULL)
    init ();
  manifest = g_bytes_new (data, manifest_size);
  artifact = smolvm_oci_artifact_new_from_manifest (manifest, &error);
  if (artifact != NULL)
    check_blobs (artifact);
  else if (error == NULL)
    fuzz_finding ("a manifest refused without an error", "%s", "");
  if (nul != NULL)
    load_config (nul + 1, size - manifest_size - 1);
  return 0;
}
