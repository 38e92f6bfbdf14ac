/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* snapshot.json as smolvmd reads it at start-up: smolvm_snapshot_load() on
 * STATE/snapshots/fuzz/snapshot.json. A record that loads must also save:
 * its own snapshot.json loads again to the same SnapshotInfo, and so does
 * what the snapshot index keeps of it. */
#include "config.h"

#include "fuzz-record.h"
#include "smolvm-snapshot.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static SmolvmContext *ctx;
static gchar *dir, *path;

static void
init (void)
{
  fuzz_init_logging ();
  ctx = fuzz_context_new ();
  dir = smolvm_store_snapshot_dir (ctx->store, FUZZ_RECORD_ID);
  path = smolvm_store_snapshot_file (ctx->store, FUZZ_RECORD_ID, SMOLVM_SNAPSHOT_METADATA);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmolvmSnapshot) snapshot = NULL;
  g_autoptr(SmolvmSnapshot) again = NULL;
  g_autoptr(GVariant) info = NULL, info_again = NULL;
  g_autofree gchar *json = NULL;

  if (ctx == NULL)
    init ();
  fuzz_write_file (path, data, size);
  snapshot = smolvm_snapshot_load (ctx, dir, NULL, &error);
  if (snapshot == NULL) {
    g_assert_nonnull (error);
    return 0;
  }
  info = g_variant_ref_sink (smolvm_snapshot_to_list_entry (snapshot));
  json = smolvm_snapshot_to_json (snapshot);
  fuzz_write_file (path, (const uint8_t *) json, strlen (json));
  again = smolvm_snapshot_load (ctx, dir, NULL, &error);
  if (again == NULL) {
    fuzz_finding ("a loaded snapshot.json does not load once saved", "%s\n%s", error->message, json);
    return 0;
  }
  info_again = g_variant_ref_sink (smolvm_snapshot_to_list_entry (again));
  if (!g_variant_equal (info, info_again)) {
    g_autofree gchar *a = g_variant_print (info, TRUE);
    g_autofree gchar *b = g_variant_print (info_again, TRUE);
    fuzz_finding ("snapshot.json does not round-trip", "%s\n%s", a, b);
  }
  if (g_strcmp0 (smolvm_snapshot_get_vmstate_sha256 (snapshot),
                 smolvm_snapshot_get_vmstate_sha256 (again)) != 0)
    fuzz_finding ("vmstate_sha256 does not round-trip", "%s", "");

  /* the index's record, as a start-up reads it: from bytes, untrusted */
  {
    g_autoptr(GVariant) record = smolvm_snapshot_to_record (snapshot);
    g_autoptr(GBytes) bytes = g_variant_get_data_as_bytes (record);
    g_autoptr(GVariant) read = g_variant_ref_sink (
      g_variant_new_from_bytes (G_VARIANT_TYPE (SMOLVM_SNAPSHOT_RECORD_TYPE), bytes, FALSE));
    g_autoptr(SmolvmSnapshot) indexed = smolvm_snapshot_new_from_record (ctx, dir, read, NULL, &error);
    g_autoptr(GVariant) info_indexed = NULL;
    if (indexed == NULL) {
      fuzz_finding ("a loaded snapshot's index record does not load", "%s", error->message);
      return 0;
    }
    info_indexed = g_variant_ref_sink (smolvm_snapshot_to_list_entry (indexed));
    if (!g_variant_equal (info, info_indexed) ||
        g_strcmp0 (smolvm_snapshot_get_vmstate_sha256 (snapshot),
                   smolvm_snapshot_get_vmstate_sha256 (indexed)) != 0) {
      g_autofree gchar *a = g_variant_print (info, TRUE);
      g_autofree gchar *b = g_variant_print (info_indexed, TRUE);
      fuzz_finding ("the index record does not round-trip", "%s\n%s", a, b);
    }
  }
  return 0;
}
