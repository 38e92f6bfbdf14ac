/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli-progress.h"

#define BAR_CELLS 20
#define DEFAULT_WIDTH 80

struct _CliProgress {
  int fd;
  gboolean drawn;
  gchar *last; /* what is on the line now */
};

static void
append_size (GString *out, guint64 bytes)
{
  g_autofree gchar *size = g_format_size_full (bytes, G_FORMAT_SIZE_IEC_UNITS);

  /* GLib puts a no-break space before the unit; the bar is plain text */
  for (const gchar *p = size; *p != '\0'; p = g_utf8_next_char (p)) {
    if (g_utf8_get_char (p) == 0x00A0)
      g_string_append_c (out, ' ');
    else
      g_string_append_len (out, p, g_utf8_next_char (p) - p);
  }
}

static void
append_duration (GString *out, guint64 seconds)
{
  if (seconds >= 3600)
    g_string_append_printf (out, "%" G_GUINT64_FORMAT ":%02u:%02u", seconds / 3600,
                            (guint) (seconds / 60 % 60), (guint) (seconds % 60));
  else
    g_string_append_printf (out, "%u:%02u", (guint) (seconds / 60), (guint) (seconds % 60));
}

gchar *
cli_progress_format (const CliProgressState *state, gint64 now_us, guint width)
{
  g_autoptr(GString) out = g_string_new (NULL);
  const gchar *phase = state->phase != NULL && state->phase[0] != '\0' ? state->phase : "working";

  g_string_append_printf (out, "%-14s", phase);
  if (state->progress_valid) {
    gdouble fraction = CLAMP (state->progress, 0.0, 1.0);
    guint cells = (guint) (fraction * BAR_CELLS);

    g_string_append (out, " [");
    for (guint i = 0; i < BAR_CELLS; i++)
      g_string_append_c (out, i < cells ? '#' : '.');
    g_string_append_printf (out, "] %3u%%", (guint) (fraction * 100.0));
  }
  if (state->bytes_done > 0 || state->bytes_total > 0) {
    g_string_append (out, "  ");
    append_size (out, state->bytes_done);
    if (state->bytes_total > 0) {
      g_string_append (out, " / ");
      append_size (out, state->bytes_total);
    }
  }
  if (state->rate > 0) {
    g_string_append (out, "  ");
    append_size (out, state->rate);
    g_string_append (out, "/s");
  }
  if (state->progress_valid && state->expected_end_us > 0) {
    guint64 left = state->expected_end_us > (guint64) now_us
                       ? (state->expected_end_us - (guint64) now_us + G_USEC_PER_SEC - 1) /
                             G_USEC_PER_SEC
                       : 0;
    g_string_append (out, "  ");
    append_duration (out, left);
    g_string_append (out, " left");
  }

  /* Never wrap: a wrapped line cannot be redrawn in place. The text is
   * ASCII but for the size units' locale, so cut at a character. */
  if (width > 1 && g_utf8_strlen (out->str, -1) > (glong) width - 1) {
    const gchar *end = g_utf8_offset_to_pointer (out->str, width - 1);
    g_string_truncate (out, end - out->str);
  }
  return g_string_free (g_steal_pointer (&out), FALSE);
}

CliProgress *
cli_progress_new (int fd)
{
  CliProgress *self = g_new0 (CliProgress, 1);

  self->fd = fd;
  return self;
}

void
cli_progress_free (CliProgress *self)
{
  if (self == NULL)
    return;
  cli_progress_clear (self);
  g_free (self->last);
  g_free (self);
}

static guint
terminal_width (int fd)
{
  struct winsize size = { 0 };

  if (ioctl (fd, TIOCGWINSZ, &size) == 0 && size.ws_col > 0)
    return size.ws_col;
  return DEFAULT_WIDTH;
}

static void
write_all (int fd, const gchar *data, gsize length)
{
  while (length > 0) {
    gssize n = write (fd, data, length);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return;
    data += n;
    length -= (gsize) n;
  }
}

void
cli_progress_draw (CliProgress *self, const CliProgressState *state)
{
  g_autofree gchar *line = cli_progress_format (state, g_get_real_time (),
                                                terminal_width (self->fd));
  g_autofree gchar *text = NULL;

  if (self->drawn && g_strcmp0 (line, self->last) == 0)
    return;
  /* what stdio holds goes first */
  fflush (stdout);
  text = g_strdup_printf ("\r%s\033[K", line);
  write_all (self->fd, text, strlen (text));
  self->drawn = TRUE;
  g_free (self->last);
  self->last = g_steal_pointer (&line);
}

void
cli_progress_clear (CliProgress *self)
{
  static const gchar erase[] = "\r\033[K";

  if (!self->drawn)
    return;
  write_all (self->fd, erase, strlen (erase));
  self->drawn = FALSE;
  g_clear_pointer (&self->last, g_free);
}
