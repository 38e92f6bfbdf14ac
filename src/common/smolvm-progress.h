/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define SMOLVM_TYPE_PROGRESS (smolvm_progress_get_type ())
G_DECLARE_FINAL_TYPE (SmolvmProgress, smolvm_progress, SMOLVM, PROGRESS, GObject)

/* The measure of one long operation: the phase it is in, and the bytes it
 * has processed out of those it expects. Worker threads add bytes (atomic,
 * no lock, no signal); the main thread sets phases, and the Job that shows
 * it reads the counters on a timer, which caps how often D-Bus hears of it.
 * Every function accepts NULL and does nothing then, so that code paths
 * without a Job need no special case. */
SmolvmProgress *smolvm_progress_new (void);

/* Main thread. @measurable: whether bytes are counted during this phase;
 * when not (a VMM writing its state on its own), progress is not valid.
 * Emits "phase-changed". */
void smolvm_progress_set_phase (SmolvmProgress *self, const gchar *phase, gboolean measurable);
const gchar *smolvm_progress_get_phase (SmolvmProgress *self);
gboolean smolvm_progress_get_measurable (SmolvmProgress *self);

/* Any thread. */
void smolvm_progress_expect (SmolvmProgress *self, guint64 bytes);
void smolvm_progress_add (SmolvmProgress *self, guint64 bytes);
guint64 smolvm_progress_get_done (SmolvmProgress *self);
guint64 smolvm_progress_get_total (SmolvmProgress *self);

G_END_DECLS
