/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The progress bar: one line on a terminal, redrawn in place, showing a
 * Job's phase, percent, bytes done/total, rate and time left. */

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  const gchar *phase;
  gdouble progress; /* 0..1 */
  gboolean progress_valid;
  guint64 bytes_done;
  guint64 bytes_total;     /* 0: unknown */
  guint64 rate;            /* bytes/s, 0: unknown */
  guint64 expected_end_us; /* µs since the epoch, 0: unknown */
} CliProgressState;

/* The bar's text for @state at @now_us (µs since the epoch), at most
 * @width - 1 characters (so that it never wraps):
 *
 *   copying-disk   [########............]  40%  410.0 MiB / 1.0 GiB  205.0 MiB/s  0:03 left
 *
 * Percent, the bar and the time left only when progress is valid; bytes when
 * any are known; the rate when known. */
gchar *cli_progress_format (const CliProgressState *state, gint64 now_us, guint width);

typedef struct _CliProgress CliProgress;

/* A bar drawn on @fd, a terminal. */
CliProgress *cli_progress_new (int fd);
void cli_progress_free (CliProgress *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CliProgress, cli_progress_free)

/* Draws @state over the previous line. */
void cli_progress_draw (CliProgress *self, const CliProgressState *state);
/* Erases the line, if something is drawn. */
void cli_progress_clear (CliProgress *self);

G_END_DECLS
