/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* smolvmd.conf: smolvmd.c's own load_config() (static, so this file
 * includes smolvmd.c with its main() renamed), then the checks main()
 * applies to the values: vmm-timeout as seconds, network-pool as a CIDR
 * (smolvm_network_new(), as the manager does). */
#include "config.h"

#include "fuzz-common.h"

int smolvmd_main (int argc, char **argv);
#define main smolvmd_main
#include "smolvmd.c"
#undef main

#include "smolvm-network.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static gchar *path;

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr(GError) error = NULL;
  g_autofree gchar *state_dir = NULL, *runtime_dir = NULL, *firecracker_bin = NULL;
  g_autofree gchar *qemu_bin = NULL, *network_pool = NULL, *vmm_timeout = NULL;
  /* the command line gave --state-dir: its value wins over the file's */
  g_autofree gchar *from_command_line = g_strdup ("/from/the/command/line");
  ConfigKey keys[] = { { "state-dir", &state_dir },
                       { "runtime-dir", &runtime_dir },
                       { "firecracker-bin", &firecracker_bin },
                       { "qemu-bin", &qemu_bin },
                       { "network-pool", &network_pool },
                       { "vmm-timeout", &vmm_timeout },
                       { NULL, NULL } };
  guint64 seconds;

  if (path == NULL) {
    fuzz_init_logging ();
    path = g_build_filename (fuzz_init_tmp_dir (), "smolvmd.conf", NULL);
  }
  state_dir = g_steal_pointer (&from_command_line);
  fuzz_write_file (path, data, size);
  if (!load_config (path, TRUE, keys, &error)) {
    g_assert_nonnull (error);
    return 0;
  }
  g_assert_cmpstr (state_dir, ==, "/from/the/command/line");
  if (vmm_timeout != NULL)
    (void) g_ascii_string_to_unsigned (vmm_timeout, 10, 0, G_MAXUINT, &seconds, NULL);
  if (network_pool != NULL) {
    g_autoptr(SmolvmNetwork) network = smolvm_network_new (network_pool, NULL);
    (void) network;
  }
  return 0;
}
