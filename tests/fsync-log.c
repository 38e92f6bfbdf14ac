/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An LD_PRELOAD shim for tests: with FSYNC_LOG=<file>, appends one line per
 * fsync()/fdatasync() ("fsync <pid> <tid> <path>") and per rename()
 * ("rename <pid> <tid> <old> <new>") of the process, in the order they
 * return, so that a
 * test can check what a daemon makes durable and in which order. With
 * FSYNC_NOOP=1 the syncs are skipped (diagnosis only: it shows what the
 * syncs cost; never for a test of behaviour). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void
log_line (const char *kind, const char *a, const char *b)
{
  const char *path = getenv ("FSYNC_LOG");
  char line[3 * PATH_MAX];
  int fd, n;

  if (path == NULL)
    return;
  n = snprintf (line, sizeof line, "%s %ld %ld %s%s%s\n", kind, (long) getpid (),
                (long) syscall (SYS_gettid), a,
                b != NULL ? " " : "", b != NULL ? b : "");
  if (n <= 0 || (size_t) n >= sizeof line)
    return;
  /* O_APPEND and one write: lines of several threads never mix */
  fd = open (path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return;
  if (write (fd, line, (size_t) n) < 0) {
    /* a test tool: a line lost shows up as a failed check */
  }
  close (fd);
}

static int
logged_sync (int fd, const char *name)
{
  int (*real) (int) = (int (*) (int)) dlsym (RTLD_NEXT, name);
  char link[64], target[PATH_MAX];
  ssize_t len;
  int rc;
  const char *noop = getenv ("FSYNC_NOOP");

  rc = noop != NULL && strcmp (noop, "1") == 0 ? 0 : real (fd);
  snprintf (link, sizeof link, "/proc/self/fd/%d", fd);
  len = readlink (link, target, sizeof target - 1);
  target[len > 0 ? len : 0] = '\0';
  log_line ("fsync", target, NULL);
  return rc;
}

int
fsync (int fd)
{
  return logged_sync (fd, "fsync");
}

int
fdatasync (int fd)
{
  return logged_sync (fd, "fdatasync");
}

int
rename (const char *oldpath, const char *newpath)
{
  int (*real) (const char *, const char *) =
    (int (*) (const char *, const char *)) dlsym (RTLD_NEXT, "rename");
  int rc = real (oldpath, newpath);

  if (rc == 0)
    log_line ("rename", oldpath, newpath);
  return rc;
}
