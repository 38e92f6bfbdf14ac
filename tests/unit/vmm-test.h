/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the VMM tests share: a fixture and waiting for async results. */
#pragma once

#include "smolvm-vmm.h"

typedef struct {
  gchar *dir;
  SmolvmVmm *vmm;
} Fixture;

typedef struct {
  gboolean done;
  gboolean ok;
  GError *error;
} Result;

static void
on_op (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Result *r = user_data;
  r->ok = smolvm_vmm_op_finish (SMOLVM_VMM (source), result, &r->error);
  r->done = TRUE;
}

static void
on_terminated (GObject *source, GAsyncResult *result, gpointer user_data)
{
  smolvm_vmm_terminate_finish (SMOLVM_VMM (source), result);
  *(gboolean *) user_data = TRUE;
}

static void
wait_for (gboolean *flag)
{
  while (!*flag)
    g_main_context_iteration (NULL, TRUE);
}
