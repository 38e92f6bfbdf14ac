/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "smolvm-fileutil.h"
#include "smolvm-record-writer.h"

/* One queued item: a write (@path set) or a flush (@path NULL). */
typedef struct {
  gchar *path;
  gchar *contents; /* under the writer's lock while queued: a later write replaces it */
  GTask *task;     /* NULL: a write whose failure is only logged */
  gboolean visible; /* @task completes once @path is replaced, before the sync of its directory */
} Item;

struct _SmolvmRecordWriter {
  GObject parent_instance;
  GThreadPool *pool; /* one thread: items run in the order they were pushed */
  GMutex lock;
  GHashTable *queued; /* path -> the fire-and-forget Item not started yet */
  guint pending;      /* items queued and not finished */
  /* Fire-and-forget writes wait for the end of the main loop's current
   * iteration before they go to the worker: the changes one event makes to
   * a record (a restored VM's state, then what it was restored from) are
   * then one write, not two. Main thread only. */
  GPtrArray *deferred;
  guint deferred_source;
};

G_DEFINE_TYPE (SmolvmRecordWriter, smolvm_record_writer, G_TYPE_OBJECT)

static void
item_free (Item *item)
{
  g_free (item->path);
  g_free (item->contents);
  g_clear_object (&item->task);
  g_free (item);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Item, item_free)

static void
run_item (gpointer data, gpointer user_data)
{
  g_autoptr(Item) item = data;
  SmolvmRecordWriter *self = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree gchar *contents = NULL;
  gboolean ok = TRUE;

  g_mutex_lock (&self->lock);
  if (item->path != NULL && item->task == NULL &&
      g_hash_table_lookup (self->queued, item->path) == item)
    g_hash_table_remove (self->queued, item->path);
  contents = g_steal_pointer (&item->contents);
  g_mutex_unlock (&self->lock);

  if (item->path != NULL)
    ok = smolvm_write_file_replace (item->path, contents, -1, &error);
  if (ok && item->visible) {
    /* the caller goes on at once; the writer stays busy until the sync
     * below, so a flush still waits for it */
    g_task_return_boolean (item->task, TRUE);
    g_clear_object (&item->task);
  }
  if (ok && item->path != NULL) {
    g_autofree gchar *dir = g_path_get_dirname (item->path);
    ok = smolvm_fsync_dir (dir, &error);
    if (!ok)
      g_prefix_error (&error, "Cannot write %s: ", item->path);
  }
  if (item->task == NULL && !ok)
    g_warning ("%s", error->message);

  /* counted out before its caller hears: a caller that then asks finds the
   * writer idle if nothing else came */
  g_mutex_lock (&self->lock);
  self->pending--;
  g_mutex_unlock (&self->lock);

  if (item->task != NULL && ok)
    g_task_return_boolean (item->task, TRUE);
  else if (item->task != NULL)
    g_task_return_error (item->task, g_steal_pointer (&error));
}

static void
count_in (SmolvmRecordWriter *self)
{
  g_mutex_lock (&self->lock);
  self->pending++;
  g_mutex_unlock (&self->lock);
}

/* The deferred writes go first: whatever is queued after them comes after. */
static void
push_deferred (SmolvmRecordWriter *self)
{
  g_clear_handle_id (&self->deferred_source, g_source_remove);
  for (guint i = 0; i < self->deferred->len; i++)
    g_thread_pool_push (self->pool, g_ptr_array_index (self->deferred, i), NULL);
  g_ptr_array_set_size (self->deferred, 0);
}

static gboolean
on_push_deferred (gpointer user_data)
{
  SmolvmRecordWriter *self = user_data;

  self->deferred_source = 0;
  push_deferred (self);
  return G_SOURCE_REMOVE;
}

static void
push (SmolvmRecordWriter *self, Item *item)
{
  push_deferred (self);
  count_in (self);
  /* a pool of one exclusive thread cannot fail to take an item */
  g_thread_pool_push (self->pool, item, NULL);
}

void
smolvm_record_writer_write (SmolvmRecordWriter *self, const gchar *path, const gchar *contents)
{
  Item *item;

  g_return_if_fail (SMOLVM_IS_RECORD_WRITER (self));
  g_return_if_fail (path != NULL && contents != NULL);

  g_mutex_lock (&self->lock);
  item = g_hash_table_lookup (self->queued, path);
  if (item != NULL) {
    /* not started: it writes the newest state instead, in its place */
    g_free (item->contents);
    item->contents = g_strdup (contents);
    g_mutex_unlock (&self->lock);
    return;
  }
  item = g_new0 (Item, 1);
  item->path = g_strdup (path);
  item->contents = g_strdup (contents);
  g_hash_table_insert (self->queued, item->path, item);
  g_mutex_unlock (&self->lock);
  count_in (self);
  g_ptr_array_add (self->deferred, item);
  if (self->deferred_source == 0)
    self->deferred_source = g_idle_add_full (G_PRIORITY_HIGH, on_push_deferred, self, NULL);
}

/* @visible: the task completes once the file is in place, before its sync */
static void
write_async (SmolvmRecordWriter *self, const gchar *path, const gchar *contents, gboolean visible,
             GAsyncReadyCallback callback, gpointer user_data)
{
  Item *item;

  g_return_if_fail (SMOLVM_IS_RECORD_WRITER (self));
  g_return_if_fail (path != NULL && contents != NULL);

  item = g_new0 (Item, 1);
  item->path = g_strdup (path);
  item->contents = g_strdup (contents);
  item->visible = visible;
  item->task = g_task_new (self, NULL, callback, user_data);
  g_task_set_source_tag (item->task, smolvm_record_writer_write_async);
  /* a queued fire-and-forget write of the same path stays before this one;
   * a later one must queue after it, not merge into that older item */
  g_mutex_lock (&self->lock);
  g_hash_table_remove (self->queued, path);
  g_mutex_unlock (&self->lock);
  push (self, item);
}

void
smolvm_record_writer_write_async (SmolvmRecordWriter *self, const gchar *path,
                                  const gchar *contents, GAsyncReadyCallback callback,
                                  gpointer user_data)
{
  write_async (self, path, contents, FALSE, callback, user_data);
}

void
smolvm_record_writer_write_visible_async (SmolvmRecordWriter *self, const gchar *path,
                                          const gchar *contents, GAsyncReadyCallback callback,
                                          gpointer user_data)
{
  write_async (self, path, contents, TRUE, callback, user_data);
}

gboolean
smolvm_record_writer_write_finish (SmolvmRecordWriter *self, GAsyncResult *result,
                                   GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

void
smolvm_record_writer_flush_async (SmolvmRecordWriter *self, GAsyncReadyCallback callback,
                                  gpointer user_data)
{
  Item *item;

  g_return_if_fail (SMOLVM_IS_RECORD_WRITER (self));

  item = g_new0 (Item, 1);
  item->task = g_task_new (self, NULL, callback, user_data);
  g_task_set_source_tag (item->task, smolvm_record_writer_flush_async);
  if (!smolvm_record_writer_is_busy (self)) {
    /* nothing to wait for: no trip through the worker */
    g_task_return_boolean (item->task, TRUE);
    item_free (item);
    return;
  }
  push (self, item);
}

void
smolvm_record_writer_flush_finish (SmolvmRecordWriter *self, GAsyncResult *result)
{
  g_return_if_fail (g_task_is_valid (result, self));
  g_task_propagate_boolean (G_TASK (result), NULL);
}

gboolean
smolvm_record_writer_is_busy (SmolvmRecordWriter *self)
{
  gboolean busy;

  g_mutex_lock (&self->lock);
  busy = self->pending > 0;
  g_mutex_unlock (&self->lock);
  return busy;
}

static void
smolvm_record_writer_finalize (GObject *object)
{
  SmolvmRecordWriter *self = SMOLVM_RECORD_WRITER (object);

  /* what was asked for is written before the daemon goes */
  push_deferred (self);
  g_thread_pool_free (self->pool, FALSE, TRUE);
  g_ptr_array_unref (self->deferred);
  g_hash_table_unref (self->queued);
  g_mutex_clear (&self->lock);
  G_OBJECT_CLASS (smolvm_record_writer_parent_class)->finalize (object);
}

static void
smolvm_record_writer_class_init (SmolvmRecordWriterClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = smolvm_record_writer_finalize;
}

static void
smolvm_record_writer_init (SmolvmRecordWriter *self)
{
  g_mutex_init (&self->lock);
  /* keys are the queued items' own paths */
  self->queued = g_hash_table_new (g_str_hash, g_str_equal);
  /* exclusive, one thread: order is kept; creating it cannot fail then
   * except for lack of threads, which GLib aborts on anyway */
  self->pool = g_thread_pool_new (run_item, self, 1, TRUE, NULL);
  self->deferred = g_ptr_array_new ();
}

SmolvmRecordWriter *
smolvm_record_writer_new (void)
{
  return g_object_new (SMOLVM_TYPE_RECORD_WRITER, NULL);
}
