/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smolvm-fileutil.h"
#include "smolvm-snapshot-index.h"

#define INDEX_MAGIC "smolvm-snapshot-index"
/* a change of the layout, or of the records', changes the version: an
 * index of another version is an empty one */
#define INDEX_VERSION 1
/* magic, version, one fixed-size entry per record, and the bytes the
 * entries point into: each id (NUL-terminated) and each record (a
 * serialized "v", 8-aligned). Fixed-size entries read as a C array: a
 * GVariant array of 10,000 variable-sized values costs more to read
 * (every child is checked) than the records' JSON took to parse. */
#define ENTRY_TYPE "(ttttttttttt)"
#define INDEX_TYPE "(sua" ENTRY_TYPE "ay)"

/* A damaged record must not pass for another: each has its MD5 (against
 * damage, not forgery: whoever can write the index can write the records) */
#define DIGEST_SIZE 16

typedef struct {
  SmolvmRecordStamp stamp;
  guint64 id_offset, id_size, record_offset, record_size;
  guint8 digest[DIGEST_SIZE];
} Entry;

G_STATIC_ASSERT (sizeof (SmolvmRecordStamp) == 5 * sizeof (guint64));
G_STATIC_ASSERT (sizeof (Entry) == 11 * sizeof (guint64));

struct _SmolvmSnapshotIndex {
  GVariant *index;
  GBytes *bytes; /* the file */
  const Entry *entries;
  const guint8 *data;
  gsize data_size;
  guint size;
  /* id -> place + 1, made on the first lookup the hint misses */
  GMutex lock;
  GHashTable *places;
};

gboolean
smolvm_record_stamp_read (int dir_fd, const gchar *path, SmolvmRecordStamp *stamp)
{
  struct stat st;

  if (fstatat (dir_fd, path, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG (st.st_mode))
    return FALSE;
  *stamp = (SmolvmRecordStamp){
    .dev = (guint64) st.st_dev,
    .ino = (guint64) st.st_ino,
    .size = (guint64) st.st_size,
    .mtime_ns = (guint64) st.st_mtim.tv_sec * G_GUINT64_CONSTANT (1000000000) +
                (guint64) st.st_mtim.tv_nsec,
    .ctime_ns = (guint64) st.st_ctim.tv_sec * G_GUINT64_CONSTANT (1000000000) +
                (guint64) st.st_ctim.tv_nsec,
  };
  return TRUE;
}

SmolvmSnapshotIndex *
smolvm_snapshot_index_read (const gchar *path)
{
  g_autoptr(SmolvmSnapshotIndex) self = g_new0 (SmolvmSnapshotIndex, 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(GMappedFile) file = NULL;
  g_autoptr(GVariant) entries = NULL;
  g_autoptr(GVariant) data = NULL;
  const gchar *magic;
  guint32 version;
  gsize n_entries = 0;

  g_mutex_init (&self->lock);
  file = g_mapped_file_new (path, FALSE, &error);
  if (file == NULL) {
    g_debug ("No snapshot index: %s", error->message);
    return g_steal_pointer (&self);
  }
  self->bytes = g_mapped_file_get_bytes (file);
  /* not trusted: a damaged file reads as defaults, never out of bounds */
  self->index = g_variant_ref_sink (
    g_variant_new_from_bytes (G_VARIANT_TYPE (INDEX_TYPE), self->bytes, FALSE));
  g_variant_get (self->index, "(&su@a" ENTRY_TYPE "@ay)", &magic, &version, &entries, &data);
  if (!g_str_equal (magic, INDEX_MAGIC) || version != INDEX_VERSION) {
    g_debug ("Ignoring %s: not a version %d snapshot index", path, INDEX_VERSION);
    return g_steal_pointer (&self);
  }
  self->entries = g_variant_get_fixed_array (entries, &n_entries, sizeof (Entry));
  self->data = g_variant_get_fixed_array (data, &self->data_size, 1);
  self->size = (guint) MIN (n_entries, G_MAXUINT);
  return g_steal_pointer (&self);
}

void
smolvm_snapshot_index_free (SmolvmSnapshotIndex *self)
{
  g_clear_pointer (&self->index, g_variant_unref);
  g_clear_pointer (&self->bytes, g_bytes_unref);
  g_clear_pointer (&self->places, g_hash_table_unref);
  g_mutex_clear (&self->lock);
  g_free (self);
}

guint
smolvm_snapshot_index_get_size (SmolvmSnapshotIndex *self)
{
  return self->size;
}

static void
digest (gconstpointer data, gsize size, guint8 out[DIGEST_SIZE])
{
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_MD5);
  gsize length = DIGEST_SIZE;

  g_checksum_update (checksum, data, (gssize) size);
  g_checksum_get_digest (checksum, out, &length);
}

static gboolean
slice_is_valid (SmolvmSnapshotIndex *self, guint64 offset, guint64 size)
{
  return offset <= self->data_size && size <= self->data_size - offset;
}

/* Entry @i's id, or NULL when the entry does not hold one. */
static const gchar *
entry_id (SmolvmSnapshotIndex *self, guint i)
{
  const Entry *e = &self->entries[i];
  const gchar *id;

  if (e->id_size == 0 || !slice_is_valid (self, e->id_offset, e->id_size))
    return NULL;
  id = (const gchar *) self->data + e->id_offset;
  return memchr (id, '\0', e->id_size) == id + e->id_size - 1 ? id : NULL;
}

static guint
place_of (SmolvmSnapshotIndex *self, const gchar *id)
{
  g_autoptr(GMutexLocker) locker G_GNUC_UNUSED = g_mutex_locker_new (&self->lock);

  if (self->places == NULL) {
    self->places = g_hash_table_new (g_str_hash, g_str_equal);
    for (guint i = 0; i < self->size; i++) {
      const gchar *entry = entry_id (self, i);
      if (entry != NULL)
        g_hash_table_insert (self->places, (gpointer) entry, GUINT_TO_POINTER (i + 1));
    }
  }
  return GPOINTER_TO_UINT (g_hash_table_lookup (self->places, id));
}

GVariant *
smolvm_snapshot_index_lookup (SmolvmSnapshotIndex *self, guint hint, const gchar *id,
                              const SmolvmRecordStamp *stamp)
{
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GVariant) boxed = NULL;
  const gchar *entry = hint < self->size ? entry_id (self, hint) : NULL;
  guint place = hint;
  guint8 sum[DIGEST_SIZE];
  const Entry *e;

  if (entry == NULL || !g_str_equal (entry, id)) {
    guint found = self->size > 0 ? place_of (self, id) : 0;
    if (found == 0)
      return NULL;
    place = found - 1;
  }
  e = &self->entries[place];
  if (memcmp (&e->stamp, stamp, sizeof (*stamp)) != 0 ||
      !slice_is_valid (self, e->record_offset, e->record_size))
    return NULL;
  digest (self->data + e->record_offset, e->record_size, sum);
  if (memcmp (sum, e->digest, DIGEST_SIZE) != 0) {
    g_debug ("The index entry of %s is damaged", id);
    return NULL;
  }
  bytes = g_bytes_new_from_bytes (self->bytes,
                                  (gsize) (self->data - (const guint8 *) g_bytes_get_data (
                                                          self->bytes, NULL)) +
                                    (gsize) e->record_offset,
                                  (gsize) e->record_size);
  boxed = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE_VARIANT, bytes, FALSE));
  return g_variant_get_variant (boxed);
}

/* A write cut short leaves its temporary file (smolvm_write_file_atomic's
 * ".<name>.XXXXXX") behind. */
static void
remove_leftovers (const gchar *path)
{
  g_autofree gchar *dir_path = g_path_get_dirname (path);
  g_autofree gchar *base = g_path_get_basename (path);
  g_autofree gchar *prefix = g_strdup_printf (".%s.", base);
  g_autoptr(GDir) dir = g_dir_open (dir_path, 0, NULL);
  const gchar *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL) {
    if (g_str_has_prefix (name, prefix) && strlen (name) == strlen (prefix) + 6) {
      g_autofree gchar *leftover = g_build_filename (dir_path, name, NULL);
      (void) unlink (leftover);
    }
  }
}

static void
append_aligned (GByteArray *data, gconstpointer bytes, gsize size, guint64 *offset)
{
  static const guint8 zeros[8] = { 0 };

  g_byte_array_append (data, zeros, (8 - data->len % 8) % 8);
  *offset = data->len;
  g_byte_array_append (data, bytes, (guint) size);
}

gboolean
smolvm_snapshot_index_write (const gchar *path, guint n, const gchar *const *ids,
                             const SmolvmRecordStamp *stamps, GVariant *const *records,
                             GError **error)
{
  g_autofree Entry *entries = g_new0 (Entry, n);
  g_autoptr(GByteArray) data = g_byte_array_new ();
  g_autoptr(GVariant) index = NULL;

  for (guint i = 0; i < n; i++) {
    g_autoptr(GVariant) boxed = g_variant_ref_sink (g_variant_new_variant (records[i]));
    entries[i].stamp = stamps[i];
    entries[i].id_size = strlen (ids[i]) + 1;
    append_aligned (data, ids[i], entries[i].id_size, &entries[i].id_offset);
    entries[i].record_size = g_variant_get_size (boxed);
    digest (g_variant_get_data (boxed), entries[i].record_size, entries[i].digest);
    append_aligned (data, g_variant_get_data (boxed), entries[i].record_size,
                    &entries[i].record_offset);
  }
  index = g_variant_ref_sink (g_variant_new (
    "(su@a" ENTRY_TYPE "@ay)", INDEX_MAGIC, (guint32) INDEX_VERSION,
    g_variant_new_fixed_array (G_VARIANT_TYPE (ENTRY_TYPE), entries, n, sizeof (Entry)),
    g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, data->data, data->len, 1)));
  remove_leftovers (path);
  if (!smolvm_write_file_atomic (path, g_variant_get_data (index),
                                 (gssize) g_variant_get_size (index), error)) {
    g_prefix_error (error, "Cannot write the snapshot index: ");
    return FALSE;
  }
  return TRUE;
}
