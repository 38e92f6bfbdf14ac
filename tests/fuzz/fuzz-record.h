/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A minimal SmolvmContext for the record loaders: a store in a scratch
 * directory, a network pool and no VMM binaries. Loading reads
 * STATE/{vms,snapshots}/<id>/<file>; the targets write the input there
 * under the id "fuzz", which the seeds use, so that inputs can get past
 * the id checks. */
#pragma once

#include "fuzz-common.h"
#include "smolvm-context.h"
#include "smolvm-network.h"
#include "smolvm-record-writer.h"
#include "smolvm-store.h"

#define FUZZ_RECORD_ID "fuzz"

static SmolvmContext *
fuzz_context_new (void)
{
  g_autoptr(GError) error = NULL;
  const gchar *root = fuzz_init_tmp_dir ();
  g_autofree gchar *state = g_build_filename (root, "state", NULL);
  g_autofree gchar *runtime = g_build_filename (root, "run", NULL);
  g_autofree gchar *vm_dir = NULL, *snapshot_dir = NULL;
  SmolvmContext *ctx = g_new0 (SmolvmContext, 1);

  ctx->session = TRUE;
  ctx->store = smolvm_store_new (state, runtime);
  if (!smolvm_store_prepare (ctx->store, &error))
    g_error ("cannot prepare the store: %s", error->message);
  ctx->network = smolvm_network_new ("172.16.0.0/16", &error);
  if (ctx->network == NULL)
    g_error ("%s", error->message);
  /* smolvm_vm_save() writes through it, as in smolvmd */
  ctx->records = smolvm_record_writer_new ();
  ctx->binaries = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  vm_dir = smolvm_store_vm_dir (ctx->store, FUZZ_RECORD_ID);
  snapshot_dir = smolvm_store_snapshot_dir (ctx->store, FUZZ_RECORD_ID);
  if (g_mkdir (vm_dir, 0700) != 0 || g_mkdir (snapshot_dir, 0700) != 0)
    g_error ("cannot make the record directories in %s", root);
  return ctx;
}
