/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench-copy SRC DST: the daemon's disk copy (smolvm_copy_file_sparse, the
 * function CreateVM and the restores run in a worker), timed from inside so
 * that process start-up is not in the figure; prints nanoseconds. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "smolvm-fileutil.h"

int
main (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  gint64 start;

  if (argc != 3) {
    g_printerr ("usage: bench-copy SRC DST\n");
    return 2;
  }
  start = g_get_monotonic_time ();
  if (!smolvm_copy_file_sparse (argv[1], argv[2], NULL, NULL, &error)) {
    g_printerr ("bench-copy: %s\n", error->message);
    return EXIT_FAILURE;
  }
  g_print ("%" G_GINT64_FORMAT "\n", (g_get_monotonic_time () - start) * 1000);
  return EXIT_SUCCESS;
}
