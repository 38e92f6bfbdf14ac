/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What every fuzz target shares: quiet logging where a CRITICAL or an
 * ERROR is a crash (a g_return_if_fail() that fires is a bug the input
 * found; FUZZ_CRITICALS=log only lists CRITICALs, see tools/fuzz.sh), and
 * a scratch directory on tmpfs for the targets that parse files. */
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

static gchar *fuzz_tmp_dir;

static inline GLogWriterOutput
fuzz_log_writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields,
                 gpointer user_data)
{
  /* warnings and messages about the bad input are expected: dropped, so
   * that the fuzzer runs at full speed */
  static GHashTable *seen;

  if ((level & G_LOG_LEVEL_CRITICAL) && g_strcmp0 (g_getenv ("FUZZ_CRITICALS"), "log") == 0) {
    /* FUZZ_CRITICALS=log: each distinct CRITICAL once, marked for
     * tools/fuzz.sh to list, and the run goes on */
    const gchar *message = NULL;
    for (gsize i = 0; i < n_fields; i++)
      if (g_str_equal (fields[i].key, "MESSAGE"))
        message = fields[i].value;
    if (seen == NULL)
      seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
    if (message != NULL && g_hash_table_add (seen, g_strdup (message)))
      fprintf (stderr, "FUZZ-CRITICAL: %s\n", message);
    return G_LOG_WRITER_HANDLED;
  }
  if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR)) {
    /* abort() here rather than GLib's breakpoint trap, so that libFuzzer
     * reports it as a crash, with the stack, and keeps the input */
    g_log_writer_standard_streams (level, fields, n_fields, user_data);
    abort ();
  }
  if (g_getenv ("FUZZ_VERBOSE") != NULL)
    return g_log_writer_standard_streams (level, fields, n_fields, user_data);
  return G_LOG_WRITER_HANDLED;
}

static inline void
fuzz_remove_tmp_dir (void)
{
  if (fuzz_tmp_dir != NULL) {
    g_autofree gchar *quoted = g_shell_quote (fuzz_tmp_dir);
    g_autofree gchar *command = g_strdup_printf ("rm -rf %s", quoted);
    if (system (command) != 0)
      g_printerr ("cannot remove %s\n", fuzz_tmp_dir);
  }
}

static inline void
fuzz_init_logging (void)
{
  g_log_set_writer_func (fuzz_log_writer, NULL, NULL);
}

/* A private directory, on /dev/shm when there is one; removed at exit. */
static inline const gchar *
fuzz_init_tmp_dir (void)
{
  const gchar *base = g_file_test ("/dev/shm", G_FILE_TEST_IS_DIR) ? "/dev/shm" : g_get_tmp_dir ();
  g_autofree gchar *template = g_build_filename (base, "smolvm-fuzz-XXXXXX", NULL);

  fuzz_tmp_dir = g_mkdtemp (g_steal_pointer (&template));
  if (fuzz_tmp_dir == NULL)
    g_error ("cannot make a temporary directory in %s", base);
  atexit (fuzz_remove_tmp_dir);
  return fuzz_tmp_dir;
}

/* Writes @data to @path whole, in place (the reader is ours). */
static inline void
fuzz_write_file (const gchar *path, const uint8_t *data, size_t size)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  size_t done = 0;

  if (fd < 0)
    g_error ("cannot write %s: %s", path, g_strerror (errno));
  while (done < size) {
    ssize_t n = write (fd, data + done, size - done);
    if (n <= 0)
      g_error ("cannot write %s: %s", path, g_strerror (errno));
    done += (size_t) n;
  }
  close (fd);
}

/* A property the input broke (no memory error): a CRITICAL with a fixed
 * @what, so that FUZZ_CRITICALS=log lists it once; the details go to
 * stderr only when it is fatal. */
#define fuzz_finding(what, ...)                                             \
  G_STMT_START {                                                           \
    if (g_strcmp0 (g_getenv ("FUZZ_CRITICALS"), "log") != 0)               \
      g_printerr (__VA_ARGS__);                                            \
    g_critical ("%s", what);                                               \
  } G_STMT_END
