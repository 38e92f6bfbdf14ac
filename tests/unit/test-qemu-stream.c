/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2, SEEK_DATA */
#endif
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <gio/gio.h>

#include "smolvm-error.h"
#include "smolvm-fileutil.h"
#include "smolvm-qemu-stream.h"

/* Splitting migration streams written here the way QEMU 7.2 writes them
 * (migration/savevm.c, ram.c): the pages of block "ram0" go to the memory
 * file, everything else stays, byte for byte, in the stream. */

#define PAGE 4096
#define PAGES 16
#define BLOCK "ram0"
#define ROM "pc.bios"
#define ROM_PAGES 2

/* The stream as QEMU writes it (@in), and as it must come out (@out). */
typedef struct {
  GByteArray *in;
  GByteArray *out;
  gboolean block_record; /* what is put now is a record of BLOCK: not in @out */
  guint8 mem[PAGES * PAGE]; /* what mem.bin must hold */
} Stream;

static void
put (Stream *s, const void *data, gsize n)
{
  g_byte_array_append (s->in, data, (guint) n);
  if (!s->block_record)
    g_byte_array_append (s->out, data, (guint) n);
}

static void
put_u8 (Stream *s, guint8 v)
{
  put (s, &v, 1);
}

static void
put_be32 (Stream *s, guint32 v)
{
  v = GUINT32_TO_BE (v);
  put (s, &v, 4);
}

static void
put_be64 (Stream *s, guint64 v)
{
  v = GUINT64_TO_BE (v);
  put (s, &v, 8);
}

static void
put_name (Stream *s, const gchar *name)
{
  put_u8 (s, (guint8) strlen (name));
  put (s, name, strlen (name));
}

static void
stream_free (Stream *s)
{
  g_byte_array_unref (s->in);
  g_byte_array_unref (s->out);
  g_free (s);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Stream, stream_free)

static void
subsection (Stream *s, const gchar *name)
{
  put_u8 (s, 0x05);
  put_name (s, name);
  put_be32 (s, 1);
}

static void
capabilities (Stream *s)
{
  subsection (s, "configuration/capabilities");
  put_be32 (s, 2);
  put_name (s, "x-ignore-shared");
  put_name (s, "events");
}

/* The header and the configuration's machine type; its subsections next. */
static Stream *
stream_new (void)
{
  Stream *s = g_new0 (Stream, 1);

  s->in = g_byte_array_new ();
  s->out = g_byte_array_new ();
  put_be32 (s, 0x5145564d);
  put_be32 (s, 3);
  put_u8 (s, 0x07); /* configuration */
  put_be32 (s, strlen ("pc-q35-7.2"));
  put (s, "pc-q35-7.2", strlen ("pc-q35-7.2"));
  return s;
}

static void
section (Stream *s, guint8 type)
{
  put_u8 (s, type);
  put_be32 (s, 2);
  if (type == 0x01) {
    put_name (s, "ram");
    put_be32 (s, 0);
    put_be32 (s, 4);
  }
}

static void
section_end (Stream *s)
{
  put_be64 (s, 0x10); /* EOS */
  put_u8 (s, 0x7e);   /* footer */
  put_be32 (s, 2);
}

/* The block list; x-ignore-shared adds each block's address. */
static void
block_list (Stream *s, guint block_pages)
{
  put_be64 (s, (guint64) (block_pages + ROM_PAGES) * PAGE | 0x04);
  put_name (s, ROM);
  put_be64 (s, ROM_PAGES * PAGE);
  put_be64 (s, 0xfffc0000);
  put_name (s, BLOCK);
  put_be64 (s, (guint64) block_pages * PAGE);
  put_be64 (s, 0);
}

/* A page record; @last_block: the record before was of the same block. */
static void
page (Stream *s, const gchar *block, guint index, gint fill, gboolean last_block)
{
  guint64 flags = (fill == 0 ? 0x02 : 0x08) | (last_block ? 0x20 : 0);
  guint8 data[PAGE];

  s->block_record = g_str_equal (block, BLOCK);
  put_be64 (s, (guint64) index * PAGE | flags);
  if (!last_block)
    put_name (s, block);
  if (fill == 0) {
    put_u8 (s, 0);
  } else {
    memset (data, fill, sizeof data);
    data[0] = (guint8) index; /* not a page of one byte repeated */
    put (s, data, sizeof data);
  }
  /* (a page past the block is a bad stream's) */
  if (s->block_record && index < PAGES && fill == 0)
    memset (s->mem + (gsize) index * PAGE, 0, PAGE);
  else if (s->block_record && index < PAGES)
    memcpy (s->mem + (gsize) index * PAGE, data, PAGE);
  s->block_record = FALSE;
}

/* Devices, EOF and the JSON description: copied as they are. */
static void
devices (Stream *s)
{
  static const gchar json[] = "{\"page_size\": 4096, \"devices\": []}";
  g_autofree guint8 *state = g_malloc (300000); /* more than the output buffer */

  for (guint i = 0; i < 300000; i++)
    state[i] = (guint8) (i * 7);
  put_u8 (s, 0x04);
  put_be32 (s, 3);
  put_name (s, "timer");
  put_be32 (s, 0);
  put_be32 (s, 2);
  put (s, state, 300000);
  put_u8 (s, 0x00);
  put_u8 (s, 0x06);
  put_be32 (s, sizeof json - 1);
  put (s, json, sizeof json - 1);
}

/* A whole stream, each part as QEMU may send it: pages in order, out of
 * order, a page sent again (the last record counts), zero pages, the
 * firmware block's pages between ours. */
static Stream *
good_stream (void)
{
  Stream *s = stream_new ();

  capabilities (s);
  section (s, 0x01);
  block_list (s, PAGES);
  section_end (s);
  section (s, 0x02);
  page (s, BLOCK, 0, 0xa1, FALSE);
  page (s, BLOCK, 1, 0, TRUE);
  page (s, BLOCK, 2, 0xa2, TRUE);
  page (s, ROM, 0, 0xb0, FALSE);
  page (s, ROM, 1, 0, TRUE);
  page (s, BLOCK, 3, 0xa3, FALSE);
  page (s, BLOCK, 9, 0xa9, TRUE);
  page (s, BLOCK, 4, 0xa4, TRUE);
  for (guint i = 5; i < 9; i++)
    page (s, BLOCK, i, 0, TRUE);
  for (guint i = 10; i < PAGES; i++)
    page (s, BLOCK, i, 0, TRUE);
  section_end (s);
  section (s, 0x03);
  page (s, BLOCK, 2, 0, FALSE); /* zero now: its data must go */
  page (s, BLOCK, 4, 0xc4, TRUE);
  section_end (s);
  devices (s);
  return s;
}

typedef struct {
  gchar *dir;
  gchar *in_path;
  gchar *out_path;
  gchar *mem_path;
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  f->dir = g_dir_make_tmp ("svstream-XXXXXX", &error);
  g_assert_no_error (error);
  f->in_path = g_build_filename (f->dir, "stream", NULL);
  f->out_path = g_build_filename (f->dir, "vmstate.bin", NULL);
  f->mem_path = g_build_filename (f->dir, "mem.bin", NULL);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_assert_true (smolvm_rm_rf (f->dir, NULL));
  g_free (f->dir);
  g_free (f->in_path);
  g_free (f->out_path);
  g_free (f->mem_path);
}

/* Splits @s with the sync function; files as the async one makes them. */
static gboolean
split (Fixture *f, Stream *s, guint64 block_size, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  int in_fd, out_fd, mem_fd;
  gboolean ok;

  g_assert_true (g_file_set_contents (f->in_path, (const gchar *) s->in->data, s->in->len,
                                      &local_error));
  in_fd = open (f->in_path, O_RDONLY | O_CLOEXEC);
  out_fd = open (f->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  mem_fd = open (f->mem_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  g_assert_cmpint (in_fd, >=, 0);
  g_assert_cmpint (out_fd, >=, 0);
  g_assert_cmpint (mem_fd, >=, 0);
  g_assert_cmpint (ftruncate (mem_fd, (off_t) block_size), ==, 0);
  ok = smolvm_qemu_stream_split (in_fd, out_fd, mem_fd, BLOCK, block_size, NULL, error);
  close (in_fd);
  close (out_fd);
  close (mem_fd);
  return ok;
}

static void
assert_file (const gchar *path, const guint8 *data, gsize len)
{
  g_autofree gchar *contents = NULL;
  gsize n = 0;

  g_assert_true (g_file_get_contents (path, &contents, &n, NULL));
  g_assert_cmpmem (contents, n, data, len);
}

static void
test_split (Fixture *f, gconstpointer data)
{
  g_autoptr(Stream) s = good_stream ();
  g_autoptr(GError) error = NULL;
  int fd;

  g_assert_true (split (f, s, PAGES * PAGE, &error));
  g_assert_no_error (error);
  assert_file (f->out_path, s->out->data, s->out->len);
  assert_file (f->mem_path, s->mem, sizeof s->mem);
  /* the stream kept the firmware's pages and lost our six with data */
  g_assert_cmpuint (s->in->len - s->out->len, >, 6 * PAGE);
  /* zero pages are holes: pages 10.. never held data */
  fd = open (f->mem_path, O_RDONLY | O_CLOEXEC);
  g_assert_cmpint (lseek (fd, 10 * PAGE, SEEK_DATA), ==, -1);
  g_assert_cmpint (errno, ==, ENXIO);
  close (fd);
}

static void
test_target_page_bits_and_uuid (Fixture *f, gconstpointer data)
{
  g_autoptr(Stream) s = stream_new ();
  g_autoptr(GError) error = NULL;

  subsection (s, "configuration/target-page-bits");
  put_be32 (s, 12);
  capabilities (s);
  subsection (s, "configuration/uuid");
  put (s, "0123456789abcdef", 16);
  section (s, 0x01);
  block_list (s, 2);
  section_end (s);
  section (s, 0x03);
  page (s, BLOCK, 0, 0x11, FALSE);
  page (s, BLOCK, 1, 0x22, TRUE);
  section_end (s);
  devices (s);
  g_assert_true (split (f, s, 2 * PAGE, &error));
  g_assert_no_error (error);
  assert_file (f->out_path, s->out->data, s->out->len);
  assert_file (f->mem_path, s->mem, 2 * PAGE);
}

/* One way each for a stream to be refused. */
typedef enum {
  BAD_TRUNCATED,
  BAD_PAGE_MISSING,
  BAD_SUBSECTION,
  BAD_XBZRLE,
  BAD_BLOCK_SIZE,
  BAD_BLOCK_MISSING,
  BAD_SECTION,
  BAD_PAGE_OFFSET,
  BAD_MAGIC,
} Bad;

static const struct {
  Bad bad;
  const gchar *message;
} bad_cases[] = {
  { BAD_TRUNCATED, "it ended before its RAM section did" },
  { BAD_PAGE_MISSING, "it holds 15 of the 16 pages of RAM block ram0" },
  { BAD_SUBSECTION, "an unknown configuration subsection configuration/other" },
  { BAD_XBZRLE, "RAM records with flags 0x40" },
  { BAD_BLOCK_SIZE, "RAM block ram0 is 131072 bytes, not 65536" },
  { BAD_BLOCK_MISSING, "it has no RAM block ram0" },
  { BAD_SECTION, "an iterable section block" },
  { BAD_PAGE_OFFSET, "a page at 65536 of RAM block ram0" },
  { BAD_MAGIC, "not a migration stream" },
};

static Stream *
bad_stream (Bad bad)
{
  Stream *s;

  if (bad == BAD_TRUNCATED) {
    /* cut among the pages of the section's second part */
    s = good_stream ();
    g_byte_array_set_size (s->in, 10000);
    return s;
  }
  s = stream_new ();
  if (bad == BAD_SUBSECTION)
    subsection (s, "configuration/other");
  capabilities (s);

  if (bad == BAD_SECTION) {
    section (s, 0x01);
    block_list (s, PAGES);
    section_end (s);
    put_u8 (s, 0x01);
    put_be32 (s, 5);
    put_name (s, "block");
    put_be32 (s, 0);
    put_be32 (s, 1);
    return s;
  }
  if (bad == BAD_MAGIC)
    s->in->data[0] = 'X';
  section (s, 0x01);
  if (bad == BAD_BLOCK_MISSING) {
    put_be64 (s, (guint64) ROM_PAGES * PAGE | 0x04);
    put_name (s, ROM);
    put_be64 (s, ROM_PAGES * PAGE);
    put_be64 (s, 0xfffc0000);
  } else {
    block_list (s, bad == BAD_BLOCK_SIZE ? 2 * PAGES : PAGES);
  }
  section_end (s);
  section (s, 0x03);
  if (bad != BAD_BLOCK_MISSING) {
    for (guint i = 0; i < (bad == BAD_PAGE_MISSING ? PAGES - 1 : PAGES); i++)
      page (s, BLOCK, i, i % 2 ? 0x42 : 0, i > 0);
  }
  if (bad == BAD_XBZRLE)
    put_be64 (s, 0x40);
  if (bad == BAD_PAGE_OFFSET)
    page (s, BLOCK, PAGES, 0x42, TRUE);
  section_end (s);
  devices (s);
  return s;
}

static void
test_refused (Fixture *f, gconstpointer data)
{
  for (gsize i = 0; i < G_N_ELEMENTS (bad_cases); i++) {
    g_autoptr(Stream) s = bad_stream (bad_cases[i].bad);
    g_autoptr(GError) error = NULL;

    g_test_message ("case %" G_GSIZE_FORMAT ": %s", i, bad_cases[i].message);
    g_assert_false (split (f, s, PAGES * PAGE, &error));
    g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND);
    g_assert_nonnull (strstr (error->message, bad_cases[i].message));
  }
}

/* ---- the async form, from a pipe ---- */

typedef struct {
  gboolean done;
  gboolean ok;
  GError *error;
} Result;

static void
on_split (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Result *r = user_data;
  r->ok = smolvm_qemu_stream_split_finish (result, &r->error);
  r->done = TRUE;
}

static void
wait_for (gboolean *flag)
{
  while (!*flag)
    g_main_context_iteration (NULL, TRUE);
}

typedef struct {
  int fd;
  GByteArray *data;
} Writer;

static gpointer
write_thread (gpointer user_data)
{
  Writer *w = user_data;
  const guint8 *p = w->data->data;
  gsize n = w->data->len;

  while (n > 0) {
    gssize done = write (w->fd, p, MIN (n, 7000)); /* in pieces, as a pipe would */
    if (done <= 0)
      break; /* the reader gave up: EPIPE */
    p += done;
    n -= (gsize) done;
  }
  close (w->fd);
  return NULL;
}

static void
test_async_pipe (Fixture *f, gconstpointer data)
{
  g_autoptr(Stream) s = good_stream ();
  Writer w;
  GThread *thread;
  int fds[2];
  Result r = { 0 };

  g_assert_cmpint (pipe2 (fds, O_CLOEXEC), ==, 0);
  w.fd = fds[1];
  w.data = s->in;
  thread = g_thread_new ("writer", write_thread, &w);
  smolvm_qemu_stream_split_async (fds[0], f->out_path, f->mem_path, BLOCK, PAGES * PAGE, NULL,
                                  on_split, &r);
  wait_for (&r.done);
  g_thread_join (thread);
  g_assert_no_error (r.error);
  g_assert_true (r.ok);
  assert_file (f->out_path, s->out->data, s->out->len);
  assert_file (f->mem_path, s->mem, sizeof s->mem);
}

/* A failure leaves no file behind, and the writer is not left blocked. */
static void
test_async_failure_removes (Fixture *f, gconstpointer data)
{
  g_autoptr(Stream) s = bad_stream (BAD_XBZRLE);
  Writer w;
  GThread *thread;
  int fds[2];
  Result r = { 0 };

  /* a stream longer than the pipe holds, so that the writer waits on it */
  for (guint i = 0; i < 64; i++)
    devices (s);
  g_assert_cmpint (pipe2 (fds, O_CLOEXEC), ==, 0);
  w.fd = fds[1];
  w.data = s->in;
  thread = g_thread_new ("writer", write_thread, &w);
  smolvm_qemu_stream_split_async (fds[0], f->out_path, f->mem_path, BLOCK, PAGES * PAGE, NULL,
                                  on_split, &r);
  wait_for (&r.done);
  g_thread_join (thread);
  g_assert_error (r.error, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND);
  g_assert_false (g_file_test (f->out_path, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (f->mem_path, G_FILE_TEST_EXISTS));
  g_clear_error (&r.error);
}

static gboolean
cancel_soon (gpointer user_data)
{
  g_cancellable_cancel (user_data);
  return G_SOURCE_REMOVE;
}

/* A writer that sends nothing and keeps its end open (a QEMU that hangs):
 * Cancel ends the wait, and the files go. */
static void
test_async_cancel (Fixture *f, gconstpointer data)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  int fds[2];
  Result r = { 0 };

  g_assert_cmpint (pipe2 (fds, O_CLOEXEC), ==, 0);
  smolvm_qemu_stream_split_async (fds[0], f->out_path, f->mem_path, BLOCK, PAGES * PAGE,
                                  cancellable, on_split, &r);
  /* once the worker waits in poll(): the files exist then */
  while (!g_file_test (f->mem_path, G_FILE_TEST_EXISTS))
    g_usleep (1000);
  g_idle_add (cancel_soon, cancellable);
  wait_for (&r.done);
  g_assert_error (r.error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED);
  g_assert_false (g_file_test (f->out_path, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (f->mem_path, G_FILE_TEST_EXISTS));
  close (fds[1]);
  g_clear_error (&r.error);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  smolvm_error_quark ();
  /* a writer whose reader gave up gets EPIPE, as QEMU does */
  signal (SIGPIPE, SIG_IGN);
#define ADD(path, func) g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("/qemu-stream/split", test_split);
  ADD ("/qemu-stream/target-page-bits-and-uuid", test_target_page_bits_and_uuid);
  ADD ("/qemu-stream/refused", test_refused);
  ADD ("/qemu-stream/async-pipe", test_async_pipe);
  ADD ("/qemu-stream/async-failure-removes", test_async_failure_removes);
  ADD ("/qemu-stream/async-cancel", test_async_cancel);
#undef ADD
  return g_test_run ();
}
