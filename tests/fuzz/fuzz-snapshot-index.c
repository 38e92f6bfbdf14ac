/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The snapshot index as smolvmd reads it at start-up, and the records in
 * it. The first byte picks what the rest is:
 *   even: an index file, looked up as start-up does (the seeds' entries
 *         have the id "fuzz" and a stamp of zeros);
 *   odd:  one record (SMOLVM_SNAPSHOT_RECORD_TYPE, untrusted bytes).
 * A record smolvmd accepts from the index must be one it would accept as
 * snapshot.json: its own snapshot.json loads to the same SnapshotInfo. */
#include "config.h"

#include "fuzz-record.h"
#include "smolvm-snapshot-index.h"
#include "smolvm-snapshot.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static SmolvmContext *ctx;
static gchar *dir, *json_path, *index_path;

static void
init (void)
{
  fuzz_init_logging ();
  ctx = fuzz_context_new ();
  dir = smolvm_store_snapshot_dir (ctx->store, FUZZ_RECORD_ID);
  json_path = smolvm_store_snapshot_file (ctx->store, FUZZ_RECORD_ID, SMOLVM_SNAPSHOT_METADATA);
  index_path = g_build_filename (smolvm_store_get_snapshots_dir (ctx->store),
                                 SMOLVM_SNAPSHOT_INDEX_NAME, NULL);
}

static void
check_record (GVariant *record)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmolvmSnapshotConfigs) configs = smolvm_snapshot_configs_new ();
  g_autoptr(SmolvmSnapshot) snapshot = NULL;
  g_autoptr(SmolvmSnapshot) again = NULL;
  g_autoptr(SmolvmSnapshot) shared = NULL;
  g_autoptr(GVariant) info = NULL, info_again = NULL;
  g_autofree gchar *json = NULL;

  snapshot = smolvm_snapshot_new_from_record (ctx, dir, record, configs, &error);
  if (snapshot == NULL) {
    g_assert_nonnull (error);
    return;
  }
  /* the second one takes its parsed config from the table */
  shared = smolvm_snapshot_new_from_record (ctx, dir, record, configs, &error);
  g_assert_nonnull (shared);
  info = g_variant_ref_sink (smolvm_snapshot_to_list_entry (snapshot));
  if (!g_variant_equal (info, smolvm_snapshot_to_list_entry (shared)))
    fuzz_finding ("a record reads differently with a shared config", "%s", "");
  json = smolvm_snapshot_to_json (snapshot);
  fuzz_write_file (json_path, (const uint8_t *) json, strlen (json));
  again = smolvm_snapshot_load (ctx, dir, NULL, &error);
  if (again == NULL) {
    fuzz_finding ("an index record is accepted that snapshot.json would not be", "%s\n%s",
                  error->message, json);
    return;
  }
  info_again = g_variant_ref_sink (smolvm_snapshot_to_list_entry (again));
  if (!g_variant_equal (info, info_again)) {
    g_autofree gchar *a = g_variant_print (info, TRUE);
    g_autofree gchar *b = g_variant_print (info_again, TRUE);
    fuzz_finding ("an index record does not round-trip through snapshot.json", "%s\n%s", a, b);
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (ctx == NULL)
    init ();
  if (size == 0)
    return 0;
  if (data[0] % 2 == 1) {
    g_autoptr(GBytes) bytes = g_bytes_new (data + 1, size - 1);
    g_autoptr(GVariant) record = g_variant_ref_sink (
      g_variant_new_from_bytes (G_VARIANT_TYPE (SMOLVM_SNAPSHOT_RECORD_TYPE), bytes, FALSE));
    check_record (record);
    return 0;
  }
  fuzz_write_file (index_path, data + 1, size - 1);
  {
    g_autoptr(SmolvmSnapshotIndex) index = smolvm_snapshot_index_read (index_path);
    SmolvmRecordStamp stamp = { 0 };
    for (guint hint = 0; hint < 4; hint++) {
      g_autoptr(GVariant) record =
        smolvm_snapshot_index_lookup (index, hint, FUZZ_RECORD_ID, &stamp);
      if (record != NULL)
        check_record (record);
    }
  }
  return 0;
}
