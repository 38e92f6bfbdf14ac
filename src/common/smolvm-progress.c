/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "smolvm-progress.h"

struct _SmolvmProgress {
  GObject parent_instance;
  gchar *phase; /* main thread only */
  gboolean measurable;
  guint64 done;  /* atomic */
  guint64 total; /* atomic */
};

G_DEFINE_TYPE (SmolvmProgress, smolvm_progress, G_TYPE_OBJECT)

enum { SIGNAL_PHASE_CHANGED, N_SIGNALS };
static guint signals[N_SIGNALS];

static void
smolvm_progress_finalize (GObject *object)
{
  g_free (SMOLVM_PROGRESS (object)->phase);
  G_OBJECT_CLASS (smolvm_progress_parent_class)->finalize (object);
}

static void
smolvm_progress_class_init (SmolvmProgressClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = smolvm_progress_finalize;
  signals[SIGNAL_PHASE_CHANGED] = g_signal_new ("phase-changed", G_TYPE_FROM_CLASS (klass),
                                                G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                                                G_TYPE_NONE, 0);
}

static void
smolvm_progress_init (SmolvmProgress *self)
{
  self->phase = g_strdup ("");
}

SmolvmProgress *
smolvm_progress_new (void)
{
  return g_object_new (SMOLVM_TYPE_PROGRESS, NULL);
}

void
smolvm_progress_set_phase (SmolvmProgress *self, const gchar *phase, gboolean measurable)
{
  if (self == NULL)
    return;
  g_free (self->phase);
  self->phase = g_strdup (phase);
  self->measurable = measurable;
  g_signal_emit (self, signals[SIGNAL_PHASE_CHANGED], 0);
}

const gchar *
smolvm_progress_get_phase (SmolvmProgress *self)
{
  return self != NULL ? self->phase : "";
}

gboolean
smolvm_progress_get_measurable (SmolvmProgress *self)
{
  return self != NULL && self->measurable;
}

/* GLib has no 64-bit atomics; the compiler builtins do. */
void
smolvm_progress_expect (SmolvmProgress *self, guint64 bytes)
{
  if (self != NULL)
    __atomic_add_fetch (&self->total, bytes, __ATOMIC_RELAXED);
}

void
smolvm_progress_add (SmolvmProgress *self, guint64 bytes)
{
  if (self != NULL)
    __atomic_add_fetch (&self->done, bytes, __ATOMIC_RELAXED);
}

guint64
smolvm_progress_get_done (SmolvmProgress *self)
{
  return self != NULL ? __atomic_load_n (&self->done, __ATOMIC_RELAXED) : 0;
}

guint64
smolvm_progress_get_total (SmolvmProgress *self)
{
  return self != NULL ? __atomic_load_n (&self->total, __ATOMIC_RELAXED) : 0;
}
