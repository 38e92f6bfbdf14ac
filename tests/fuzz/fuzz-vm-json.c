/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vm.json as smolvmd reads it at start-up: smolvm_vm_load() on
 * STATE/vms/fuzz/vm.json. A record that loads must also save: what
 * smolvm_vm_save() writes loads again to the same VM info. */
#include "config.h"

#include "fuzz-record.h"
#include "smolvm-vm.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static SmolvmContext *ctx;
static gchar *dir, *path;

static void
init (void)
{
  fuzz_init_logging ();
  ctx = fuzz_context_new ();
  dir = smolvm_store_vm_dir (ctx->store, FUZZ_RECORD_ID);
  path = smolvm_store_vm_file (ctx->store, FUZZ_RECORD_ID, SMOLVM_VM_METADATA);
}

static void
on_saved (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GAsyncResult **out = user_data;
  *out = g_object_ref (result);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SmolvmVm) vm = NULL;
  g_autoptr(SmolvmVm) again = NULL;
  g_autoptr(GVariant) info = NULL, info_again = NULL;
  g_autoptr(GAsyncResult) saved = NULL;

  if (ctx == NULL)
    init ();
  fuzz_write_file (path, data, size);
  vm = smolvm_vm_load (ctx, dir, &error);
  if (vm == NULL) {
    g_assert_nonnull (error);
    return 0;
  }
  info = g_variant_ref_sink (smolvm_vm_to_info (vm));
  /* as the daemon writes it: through the record writer's thread */
  smolvm_vm_save_async (vm, on_saved, &saved);
  while (saved == NULL)
    g_main_context_iteration (NULL, TRUE);
  if (!smolvm_vm_save_finish (vm, saved, &error))
    g_error ("cannot save a loaded vm.json: %s", error->message);
  again = smolvm_vm_load (ctx, dir, &error);
  if (again == NULL) {
    fuzz_finding ("a loaded vm.json does not load once saved", "%s", error->message);
    return 0;
  }
  info_again = g_variant_ref_sink (smolvm_vm_to_info (again));
  if (!g_variant_equal (info, info_again)) {
    g_autofree gchar *a = g_variant_print (info, TRUE);
    g_autofree gchar *b = g_variant_print (info_again, TRUE);
    fuzz_finding ("vm.json does not round-trip", "%s\n%s", a, b);
  }
  return 0;
}
