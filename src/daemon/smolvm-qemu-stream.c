/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "smolvm-error-map.h"
#include "smolvm-qemu-stream.h"

/* The parts of QEMU's migration format (migration/savevm.c, ram.c) this
 * reads. Only the header, the configuration and the RAM section are
 * parsed: device sections carry no length, so everything from the first
 * of them on is copied as it is. */
#define FILE_MAGIC 0x5145564du
#define FILE_VERSION 3u
#define SECTION_START 0x01
#define SECTION_PART 0x02
#define SECTION_END 0x03
#define SUBSECTION 0x05
#define CONFIGURATION 0x07
#define SECTION_FOOTER 0x7e
/* a RAM record is a be64 offset with flags in its bits below the page size */
#define RAM_ZERO 0x02
#define RAM_MEM_SIZE 0x04
#define RAM_PAGE 0x08
#define RAM_EOS 0x10
#define RAM_CONTINUE 0x20 /* the same block as the record before */

#define DEFAULT_PAGE_BITS 12
#define IN_BUF_SIZE (1024 * 1024)
#define OUT_BUF_SIZE (256 * 1024)
/* consecutive pages are written to mem.bin in runs of up to this */
#define RUN_MAX (1024 * 1024)
#define MAX_CAPABILITIES 256

typedef struct {
  int in_fd;
  int out_fd;
  int mem_fd;
  GCancellable *cancellable;
  GPollFD polls[2];
  guint n_polls;

  guint8 *in;
  gsize in_pos;
  gsize in_len;
  guint8 *out;
  gsize out_len;
  guint8 *run; /* pages of the block, not written yet */
  guint64 run_offset;
  gsize run_len;
  guint8 *page; /* a page of another block */

  const gchar *block;
  guint64 block_size;
  gsize page_size;
  gboolean ignore_shared;
  gboolean block_listed;
  guint8 *seen;    /* a bit per page of the block: in the stream */
  guint8 *written; /* a bit per page: holds data in mem.bin */
  guint64 pages_seen;
  gchar last_block[256]; /* of the last record: RAM_CONTINUE refers to it */
  gboolean have_last_block;
  guint32 ram_section;
  gboolean have_ram_section;
  gboolean ram_ended;
} Split;

static gboolean
stream_error (GError **error, const gchar *format, ...) G_GNUC_PRINTF (2, 3);

static gboolean
stream_error (GError **error, const gchar *format, ...)
{
  va_list args;
  g_autofree gchar *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_BACKEND,
               "Cannot split QEMU's migration stream: %s", message);
  return FALSE;
}

/* ---- input ---- */

static gboolean
fill (Split *s, GError **error)
{
  for (;;) {
    gssize n;

    if (g_cancellable_is_cancelled (s->cancellable)) {
      g_set_error_literal (error, SMOLVM_ERROR, SMOLVM_ERROR_CANCELLED,
                           "Cancelled while reading QEMU's migration stream");
      return FALSE;
    }
    /* a pipe waits for QEMU; the cancellable's descriptor ends the wait */
    if (g_poll (s->polls, s->n_polls, -1) < 0) {
      if (errno == EINTR)
        continue;
      return smolvm_error_set_errno (error, errno, "Cannot wait for QEMU's migration stream");
    }
    if (s->polls[0].revents == 0)
      continue;
    n = read (s->in_fd, s->in, IN_BUF_SIZE);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n < 0)
      return smolvm_error_set_errno (error, errno, "Cannot read QEMU's migration stream");
    s->in_pos = 0;
    s->in_len = (gsize) n;
    return TRUE;
  }
}

/* Exactly @n bytes into @dst, or an error if the stream ends first. */
static gboolean
read_exact (Split *s, guint8 *dst, gsize n, GError **error)
{
  while (n > 0) {
    gsize chunk;

    if (s->in_pos == s->in_len) {
      if (!fill (s, error))
        return FALSE;
      if (s->in_len == 0)
        return stream_error (error, "it ended before its RAM section did");
    }
    chunk = MIN (n, s->in_len - s->in_pos);
    memcpy (dst, s->in + s->in_pos, chunk);
    s->in_pos += chunk;
    dst += chunk;
    n -= chunk;
  }
  return TRUE;
}

static gboolean
read_u8 (Split *s, guint8 *value, GError **error)
{
  return read_exact (s, value, 1, error);
}

static gboolean
read_be32 (Split *s, guint32 *value, GError **error)
{
  guint32 be;
  if (!read_exact (s, (guint8 *) &be, sizeof be, error))
    return FALSE;
  *value = GUINT32_FROM_BE (be);
  return TRUE;
}

static gboolean
read_be64 (Split *s, guint64 *value, GError **error)
{
  guint64 be;
  if (!read_exact (s, (guint8 *) &be, sizeof be, error))
    return FALSE;
  *value = GUINT64_FROM_BE (be);
  return TRUE;
}

/* A length byte and that many bytes, as a string. */
static gboolean
read_name (Split *s, gchar name[256], GError **error)
{
  guint8 len;
  if (!read_u8 (s, &len, error) || !read_exact (s, (guint8 *) name, len, error))
    return FALSE;
  name[len] = '\0';
  return TRUE;
}

/* ---- output ---- */

static gboolean
write_all (int fd, const guint8 *data, gsize n, GError **error)
{
  while (n > 0) {
    gssize done = write (fd, data, n);
    if (done < 0 && errno == EINTR)
      continue;
    if (done < 0)
      return smolvm_error_set_errno (error, errno, "Cannot write the VM state");
    data += done;
    n -= (gsize) done;
  }
  return TRUE;
}

static gboolean
flush_out (Split *s, GError **error)
{
  gsize n = s->out_len;
  s->out_len = 0;
  return write_all (s->out_fd, s->out, n, error);
}

/* What stays in the stream. */
static gboolean
emit (Split *s, const void *data, gsize n, GError **error)
{
  if (s->out_len + n > OUT_BUF_SIZE && !flush_out (s, error))
    return FALSE;
  if (n >= OUT_BUF_SIZE)
    return write_all (s->out_fd, data, n, error);
  memcpy (s->out + s->out_len, data, n);
  s->out_len += n;
  return TRUE;
}

static gboolean
emit_u8 (Split *s, guint8 value, GError **error)
{
  return emit (s, &value, 1, error);
}

static gboolean
emit_be32 (Split *s, guint32 value, GError **error)
{
  guint32 be = GUINT32_TO_BE (value);
  return emit (s, &be, sizeof be, error);
}

static gboolean
emit_be64 (Split *s, guint64 value, GError **error)
{
  guint64 be = GUINT64_TO_BE (value);
  return emit (s, &be, sizeof be, error);
}

static gboolean
emit_name (Split *s, const gchar *name, GError **error)
{
  gsize len = strlen (name);
  return emit_u8 (s, (guint8) len, error) && emit (s, name, len, error);
}

static gboolean
flush_run (Split *s, GError **error)
{
  const guint8 *data = s->run;
  gsize n = s->run_len;
  guint64 offset = s->run_offset;

  s->run_len = 0;
  while (n > 0) {
    gssize done = pwrite (s->mem_fd, data, n, (off_t) offset);
    if (done < 0 && errno == EINTR)
      continue;
    if (done < 0)
      return smolvm_error_set_errno (error, errno, "Cannot write the VM memory");
    data += done;
    offset += (guint64) done;
    n -= (gsize) done;
  }
  return TRUE;
}

/* Where the page at @offset of the block goes in the run, which is
 * written first if the page does not extend it. */
static guint8 *
run_slot (Split *s, guint64 offset, GError **error)
{
  guint8 *slot;

  if (s->run_len > 0 && (offset != s->run_offset + s->run_len ||
                         s->run_len + s->page_size > RUN_MAX) &&
      !flush_run (s, error))
    return NULL;
  if (s->run_len == 0)
    s->run_offset = offset;
  slot = s->run + s->run_len;
  s->run_len += s->page_size;
  return slot;
}

/* ---- the configuration section ---- */

static gboolean
read_target_page_bits (Split *s, GError **error)
{
  guint32 bits;

  if (!read_be32 (s, &bits, error) || !emit_be32 (s, bits, error))
    return FALSE;
  /* RAM flags live below the page size, and the page bitmaps are sized
   * for pages of at least the default */
  if (bits < DEFAULT_PAGE_BITS || bits > 16)
    return stream_error (error, "a target page size of 2^%u bytes", bits);
  s->page_size = (gsize) 1 << bits;
  return TRUE;
}

static gboolean
read_capabilities (Split *s, GError **error)
{
  guint32 count;

  if (!read_be32 (s, &count, error) || !emit_be32 (s, count, error))
    return FALSE;
  if (count > MAX_CAPABILITIES)
    return stream_error (error, "%u migration capabilities", count);
  for (guint32 i = 0; i < count; i++) {
    gchar name[256];
    if (!read_name (s, name, error) || !emit_name (s, name, error))
      return FALSE;
    /* then every block list entry carries the block's address */
    if (g_str_equal (name, "x-ignore-shared"))
      s->ignore_shared = TRUE;
  }
  return TRUE;
}

static gboolean
read_uuid (Split *s, GError **error)
{
  guint8 uuid[16];
  return read_exact (s, uuid, sizeof uuid, error) && emit (s, uuid, sizeof uuid, error);
}

/* vmstate_configuration's subsections (migration/savevm.c) */
static const struct {
  const gchar *name;
  gboolean (*read) (Split *s, GError **error);
} config_subsections[] = {
  { "configuration/target-page-bits", read_target_page_bits },
  { "configuration/capabilities", read_capabilities },
  { "configuration/uuid", read_uuid },
};

/* After the CONFIGURATION byte: the machine type, then subsections. Sets
 * *@next to the byte that follows. */
static gboolean
split_configuration (Split *s, guint8 *next, GError **error)
{
  guint32 len;
  guint8 machine[256];

  if (!read_be32 (s, &len, error) || !emit_be32 (s, len, error))
    return FALSE;
  if (len >= sizeof machine)
    return stream_error (error, "a machine type name of %u bytes", len);
  if (!read_exact (s, machine, len, error) || !emit (s, machine, len, error))
    return FALSE;
  for (;;) {
    guint8 type;
    guint32 version;
    gchar name[256];
    gsize i;

    if (!read_u8 (s, &type, error))
      return FALSE;
    if (type != SUBSECTION) {
      *next = type;
      return TRUE;
    }
    if (!emit_u8 (s, type, error) || !read_name (s, name, error) ||
        !emit_name (s, name, error) || !read_be32 (s, &version, error) ||
        !emit_be32 (s, version, error))
      return FALSE;
    for (i = 0; i < G_N_ELEMENTS (config_subsections); i++)
      if (g_str_equal (name, config_subsections[i].name))
        break;
    if (i == G_N_ELEMENTS (config_subsections))
      return stream_error (error, "an unknown configuration subsection %s", name);
    if (!config_subsections[i].read (s, error))
      return FALSE;
  }
}

/* ---- the RAM section ---- */

static gboolean
read_block_list (Split *s, guint64 total, GError **error)
{
  while (total > 0) {
    gchar name[256];
    guint64 length, addr;

    if (!read_name (s, name, error) || !emit_name (s, name, error) ||
        !read_be64 (s, &length, error) || !emit_be64 (s, length, error))
      return FALSE;
    if (s->ignore_shared && (!read_be64 (s, &addr, error) || !emit_be64 (s, addr, error)))
      return FALSE;
    if (length > total)
      return stream_error (error, "RAM block %s is larger than all RAM", name);
    total -= length;
    if (!g_str_equal (name, s->block))
      continue;
    if (length != s->block_size)
      return stream_error (error,
                           "RAM block %s is %" G_GUINT64_FORMAT " bytes, not %" G_GUINT64_FORMAT,
                           name, length, s->block_size);
    s->block_listed = TRUE;
  }
  return TRUE;
}

static gboolean
page_has_data (Split *s, guint64 offset)
{
  guint64 index = offset / s->page_size;
  return (s->written[index / 8] & (1u << (index % 8))) != 0;
}

static void
note_page (Split *s, guint64 offset, gboolean data)
{
  guint64 index = offset / s->page_size;
  guint8 bit = (guint8) (1u << (index % 8));

  if ((s->seen[index / 8] & bit) == 0) {
    s->seen[index / 8] |= bit;
    s->pages_seen++;
  }
  if (data)
    s->written[index / 8] |= bit;
}

/* A page of the block: into mem.bin. A zero page stays a hole, unless an
 * earlier record of the same page wrote data there. */
static gboolean
take_page (Split *s, guint64 offset, gboolean zero, GError **error)
{
  guint8 *slot;
  guint8 fill_byte = 0;

  if (!s->block_listed)
    return stream_error (error, "a page of RAM block %s before its size", s->block);
  if (offset >= s->block_size || s->block_size - offset < s->page_size)
    return stream_error (error, "a page at %" G_GUINT64_FORMAT " of RAM block %s", offset,
                         s->block);
  if (zero && !read_u8 (s, &fill_byte, error))
    return FALSE;
  if (zero && fill_byte == 0 && !page_has_data (s, offset)) {
    note_page (s, offset, FALSE);
    return TRUE;
  }
  note_page (s, offset, TRUE);
  slot = run_slot (s, offset, error);
  if (slot == NULL)
    return FALSE;
  if (zero) {
    memset (slot, fill_byte, s->page_size);
    return TRUE;
  }
  return read_exact (s, slot, s->page_size, error);
}

/* A page of another block (firmware, ROMs): stays in the stream. */
static gboolean
keep_page (Split *s, const guint8 *header, gsize header_len, gboolean zero, GError **error)
{
  gsize body = zero ? 1 : s->page_size;
  return emit (s, header, header_len, error) && read_exact (s, s->page, body, error) &&
         emit (s, s->page, body, error);
}

static gboolean
split_records (Split *s, GError **error)
{
  for (;;) {
    guint64 record, offset, be;
    guint flags, kind;
    guint8 header[8 + 1 + 255];
    gsize header_len = 8;

    if (!read_be64 (s, &record, error))
      return FALSE;
    flags = (guint) (record & (s->page_size - 1));
    offset = record - flags;
    kind = flags & ~RAM_CONTINUE;
    if (flags == RAM_EOS)
      return emit_be64 (s, record, error);
    if (flags == RAM_MEM_SIZE) {
      if (!emit_be64 (s, record, error) || !read_block_list (s, offset, error))
        return FALSE;
      continue;
    }
    if (kind != RAM_ZERO && kind != RAM_PAGE)
      return stream_error (error, "RAM records with flags 0x%x (compressed, XBZRLE or multifd "
                           "migration?)", flags);
    be = GUINT64_TO_BE (record);
    memcpy (header, &be, sizeof be);
    if ((flags & RAM_CONTINUE) != 0 && !s->have_last_block)
      return stream_error (error, "a RAM page continuing no block");
    if ((flags & RAM_CONTINUE) == 0) {
      if (!read_name (s, s->last_block, error))
        return FALSE;
      s->have_last_block = TRUE;
      header[8] = (guint8) strlen (s->last_block);
      memcpy (header + 9, s->last_block, header[8]);
      header_len += 1 + header[8];
    }
    if (!(g_str_equal (s->last_block, s->block)
            ? take_page (s, offset, kind == RAM_ZERO, error)
            : keep_page (s, header, header_len, kind == RAM_ZERO, error)))
      return FALSE;
  }
}

/* After a section byte of the RAM section; sets *@next to the byte after
 * the section. */
static gboolean
split_ram_section (Split *s, guint8 type, guint8 *next, GError **error)
{
  guint32 id;

  if (!read_be32 (s, &id, error) || !emit_u8 (s, type, error) || !emit_be32 (s, id, error))
    return FALSE;
  if (type == SECTION_START) {
    gchar name[256];
    guint32 instance, version;
    if (!read_name (s, name, error) || !emit_name (s, name, error) ||
        !read_be32 (s, &instance, error) || !emit_be32 (s, instance, error) ||
        !read_be32 (s, &version, error) || !emit_be32 (s, version, error))
      return FALSE;
    /* other iterable sections (block migration, dirty bitmaps) are off */
    if (!g_str_equal (name, "ram") || s->have_ram_section)
      return stream_error (error, "an iterable section %s", name);
    s->ram_section = id;
    s->have_ram_section = TRUE;
  } else if (!s->have_ram_section || id != s->ram_section) {
    return stream_error (error, "part of section %u, which did not start", id);
  }
  if (!split_records (s, error) || !read_u8 (s, next, error))
    return FALSE;
  if (*next == SECTION_FOOTER) {
    guint32 footer;
    if (!read_be32 (s, &footer, error) || !emit_u8 (s, *next, error) ||
        !emit_be32 (s, footer, error) || !read_u8 (s, next, error))
      return FALSE;
    if (footer != id)
      return stream_error (error, "the footer of section %u ends section %u", footer, id);
  }
  if (type == SECTION_END)
    s->ram_ended = TRUE;
  return TRUE;
}

static gboolean
copy_rest (Split *s, GError **error)
{
  for (;;) {
    if (!emit (s, s->in + s->in_pos, s->in_len - s->in_pos, error))
      return FALSE;
    s->in_pos = s->in_len;
    if (!fill (s, error))
      return FALSE;
    if (s->in_len == 0)
      return TRUE;
  }
}

static gboolean
split_run (Split *s, GError **error)
{
  guint32 magic, version;
  guint8 type;

  if (!read_be32 (s, &magic, error) || !read_be32 (s, &version, error))
    return FALSE;
  if (magic != FILE_MAGIC || version != FILE_VERSION)
    return stream_error (error, "not a migration stream of version %u", FILE_VERSION);
  if (!emit_be32 (s, magic, error) || !emit_be32 (s, version, error) ||
      !read_u8 (s, &type, error))
    return FALSE;
  if (type == CONFIGURATION &&
      (!emit_u8 (s, type, error) || !split_configuration (s, &type, error)))
    return FALSE;
  if (s->block_size % s->page_size != 0)
    return stream_error (error, "RAM block %s is not whole pages of %" G_GSIZE_FORMAT " bytes",
                         s->block, s->page_size);
  while (type == SECTION_START || type == SECTION_PART || type == SECTION_END) {
    if (!split_ram_section (s, type, &type, error))
      return FALSE;
  }
  if (!s->ram_ended)
    return stream_error (error, "section type 0x%02x within the RAM section", type);
  if (!emit_u8 (s, type, error) || !copy_rest (s, error) || !flush_out (s, error) ||
      !flush_run (s, error))
    return FALSE;
  if (!s->block_listed)
    return stream_error (error, "it has no RAM block %s", s->block);
  if (s->pages_seen != s->block_size / s->page_size)
    return stream_error (error,
                         "it holds %" G_GUINT64_FORMAT " of the %" G_GUINT64_FORMAT
                         " pages of RAM block %s",
                         s->pages_seen, s->block_size / s->page_size, s->block);
  return TRUE;
}

gboolean
smolvm_qemu_stream_split (int in_fd, int out_fd, int mem_fd, const gchar *block,
                          guint64 block_size, GCancellable *cancellable, GError **error)
{
  Split s = { 0 };
  gsize bitmap;
  gboolean ok;

  g_return_val_if_fail (block != NULL && strlen (block) < 256, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  /* the configuration may announce another page size; the block must be
   * whole pages of the smallest one it could be */
  if (block_size == 0 || block_size % ((gsize) 1 << DEFAULT_PAGE_BITS) != 0) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED,
                 "A RAM block of %" G_GUINT64_FORMAT " bytes is not whole pages", block_size);
    return FALSE;
  }
  s.in_fd = in_fd;
  s.out_fd = out_fd;
  s.mem_fd = mem_fd;
  s.cancellable = cancellable;
  s.block = block;
  s.block_size = block_size;
  s.page_size = (gsize) 1 << DEFAULT_PAGE_BITS;
  s.polls[0].fd = in_fd;
  s.polls[0].events = G_IO_IN | G_IO_HUP | G_IO_ERR;
  s.n_polls = 1;
  if (g_cancellable_make_pollfd (cancellable, &s.polls[1]))
    s.n_polls = 2;
  s.in = g_malloc (IN_BUF_SIZE);
  s.out = g_malloc (OUT_BUF_SIZE);
  s.run = g_malloc (RUN_MAX);
  s.page = g_malloc ((gsize) 1 << 16);
  bitmap = (gsize) (block_size >> DEFAULT_PAGE_BITS) / 8 + 1;
  s.seen = g_malloc0 (bitmap);
  s.written = g_malloc0 (bitmap);

  ok = split_run (&s, error);

  if (s.n_polls == 2)
    g_cancellable_release_fd (cancellable);
  g_free (s.in);
  g_free (s.out);
  g_free (s.run);
  g_free (s.page);
  g_free (s.seen);
  g_free (s.written);
  return ok;
}

/* ---- in a worker ---- */

typedef struct {
  int in_fd;
  gchar *out_path;
  gchar *mem_path;
  gchar *block;
  guint64 block_size;
} SplitTask;

static void
split_task_free (SplitTask *t)
{
  if (t->in_fd >= 0)
    close (t->in_fd);
  g_free (t->out_path);
  g_free (t->mem_path);
  g_free (t->block);
  g_free (t);
}

static int
create_output (const gchar *path, GError **error)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    smolvm_error_set_errno (error, errno, "Cannot create %s", path);
  return fd;
}

static void
split_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  SplitTask *t = task_data;
  g_autoptr(GError) error = NULL;
  int out_fd = -1, mem_fd = -1;
  gboolean ok;

  ok = (out_fd = create_output (t->out_path, &error)) >= 0 &&
       (mem_fd = create_output (t->mem_path, &error)) >= 0;
  if (ok && ftruncate (mem_fd, (off_t) t->block_size) != 0)
    ok = smolvm_error_set_errno (&error, errno, "Cannot size %s", t->mem_path);
  ok = ok && smolvm_qemu_stream_split (t->in_fd, out_fd, mem_fd, t->block, t->block_size,
                                       cancellable, &error);
  /* the end of our reading end: a QEMU still writing fails at once */
  close (t->in_fd);
  t->in_fd = -1;
  if (out_fd >= 0)
    close (out_fd);
  if (mem_fd >= 0)
    close (mem_fd);
  if (ok) {
    g_task_return_boolean (task, TRUE);
    return;
  }
  if (out_fd >= 0)
    unlink (t->out_path);
  if (mem_fd >= 0)
    unlink (t->mem_path);
  g_task_return_error (task, g_steal_pointer (&error));
}

void
smolvm_qemu_stream_split_async (int in_fd, const gchar *out_path, const gchar *mem_path,
                                const gchar *block, guint64 block_size,
                                GCancellable *cancellable, GAsyncReadyCallback callback,
                                gpointer user_data)
{
  g_autoptr(GTask) task = g_task_new (NULL, cancellable, callback, user_data);
  SplitTask *t = g_new0 (SplitTask, 1);

  g_task_set_source_tag (task, smolvm_qemu_stream_split_async);
  g_task_set_name (task, "smolvm_qemu_stream_split_async");
  /* the worker tells a cancel (SMOLVM_ERROR_CANCELLED) once its files are gone */
  g_task_set_check_cancellable (task, FALSE);
  t->in_fd = in_fd;
  t->out_path = g_strdup (out_path);
  t->mem_path = g_strdup (mem_path);
  t->block = g_strdup (block);
  t->block_size = block_size;
  g_task_set_task_data (task, t, (GDestroyNotify) split_task_free);
  g_task_run_in_thread (task, split_thread);
}

gboolean
smolvm_qemu_stream_split_finish (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_async_result_is_tagged (result, smolvm_qemu_stream_split_async), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}
