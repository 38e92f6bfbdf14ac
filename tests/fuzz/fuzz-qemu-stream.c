/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The QEMU migration stream splitter: the input is the stream QEMU writes
 * for a snapshot of a restored VM, read from a memfd, split into a memfd
 * (the rest of the stream) and a memfd of 64 KiB (RAM block "ram0"). A
 * stream that splits must give a memory file of the block's size and a
 * rest no longer than the input. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include "config.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include "fuzz-common.h"
#include "smolvm-qemu-stream.h"

#define BLOCK_SIZE (64 * 1024)

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static int
memfd (const char *name)
{
  int fd = memfd_create (name, MFD_CLOEXEC);
  if (fd < 0)
    g_error ("memfd_create: %s", g_strerror (errno));
  return fd;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static gboolean initialized;
  int in = memfd ("in"), out = memfd ("out"), mem = memfd ("mem");
  g_autoptr(GError) error = NULL;
  struct stat st;

  if (!initialized) {
    fuzz_init_logging ();
    initialized = TRUE;
  }
  if (write (in, data, size) != (ssize_t) size || lseek (in, 0, SEEK_SET) != 0 ||
      ftruncate (mem, BLOCK_SIZE) != 0)
    g_error ("cannot set up the memfds");
  if (smolvm_qemu_stream_split (in, out, mem, "ram0", BLOCK_SIZE, NULL, &error)) {
    g_assert_no_error (error);
    g_assert_true (fstat (mem, &st) == 0 && st.st_size == BLOCK_SIZE);
    g_assert_true (fstat (out, &st) == 0 && (size_t) st.st_size <= size);
  } else {
    g_assert_nonnull (error);
  }
  close (in);
  close (out);
  close (mem);
  return 0;
}
