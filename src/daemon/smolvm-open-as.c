/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* setfsuid */
#endif
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "smolvm-error-map.h"
#include "smolvm-fileutil.h"
#include "smolvm-open-as.h"

gboolean
smolvm_check_image_fd (int fd, const gchar *what, guint64 *data_size, GError **error)
{
  struct stat st;
  int flags = fcntl (fd, F_GETFL);

  if (flags < 0 || fstat (fd, &st) < 0)
    return smolvm_error_set_errno (error, errno, "Cannot read %s", what);
  if (!S_ISREG (st.st_mode)) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                 "%s is not a regular file", what);
    return FALSE;
  }
  if ((flags & O_PATH) == O_PATH || (flags & O_ACCMODE) == O_WRONLY) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT,
                 "%s is not open for reading", what);
    return FALSE;
  }
  if (data_size != NULL)
    *data_size = smolvm_stat_data_size (&st);
  return TRUE;
}

typedef struct {
  guint32 uid;
  guint n;
  gchar **paths;
  gchar **whats;
  int *fds;
  guint64 *sizes;
} OpenAs;

static void
open_as_free (gpointer data)
{
  OpenAs *d = data;

  for (guint i = 0; d->fds != NULL && i < d->n; i++)
    if (d->fds[i] >= 0)
      close (d->fds[i]);
  for (guint i = 0; i < d->n; i++) {
    g_free (d->paths[i]);
    g_free (d->whats[i]);
  }
  g_free (d->paths);
  g_free (d->whats);
  g_free (d->fds);
  g_free (d->sizes);
  g_free (d);
}

/* The user's primary gid and groups, as a login would have them. */
static gboolean
lookup_user (guint32 uid, gid_t *gid, gid_t **groups, int *n_groups, GError **error)
{
  long hint = sysconf (_SC_GETPW_R_SIZE_MAX);
  gsize size = hint > 0 ? (gsize) hint : 16384;
  g_autofree gchar *buf = NULL;
  struct passwd pw, *found = NULL;
  int r;

  for (;;) {
    g_free (buf);
    buf = g_malloc (size);
    r = getpwuid_r (uid, &pw, buf, size, &found);
    if (r != ERANGE || size > 1024 * 1024)
      break;
    size *= 2;
  }
  if (found == NULL) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_AUTHORIZED,
                 "uid %u has no entry in the user database, so its rights on files are "
                 "unknown; pass the files as descriptors",
                 uid);
    return FALSE;
  }
  *gid = pw.pw_gid;
  *n_groups = 16;
  *groups = g_new (gid_t, *n_groups);
  while (getgrouplist (pw.pw_name, pw.pw_gid, *groups, n_groups) < 0) {
    *n_groups = MAX (*n_groups * 2, *n_groups + 1);
    *groups = g_renew (gid_t, *groups, *n_groups);
  }
  return TRUE;
}

/* The filesystem ids and groups of this thread only: glibc's setgroups()
 * would change every thread of the process, the raw system call does not;
 * setfsuid() and setfsgid() are per thread. A nonzero fsuid also drops the
 * thread's CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH. */
static gboolean
become_user (guint32 uid, GError **error)
{
  g_autofree gid_t *groups = NULL;
  int n_groups = 0;
  gid_t gid;

  if (!lookup_user (uid, &gid, &groups, &n_groups, error))
    return FALSE;
  if (syscall (SYS_setgroups, (size_t) n_groups, groups) != 0)
    return smolvm_error_set_errno (error, errno, "Cannot take on the groups of uid %u", uid);
  setfsgid (gid);
  setfsuid (uid);
  /* each returns the id in force, which tells whether the change took */
  if ((gid_t) setfsgid (gid) != gid || (uid_t) setfsuid (uid) != uid) {
    g_set_error (error, SMOLVM_ERROR, SMOLVM_ERROR_FAILED,
                 "Cannot take on the filesystem ids of uid %u", uid);
    return FALSE;
  }
  return TRUE;
}

/* what a failed open means for the caller's argument */
static const struct {
  int errsv;
  gint code;
} open_errors[] = {
  { EACCES, SMOLVM_ERROR_NOT_AUTHORIZED },
  { EPERM, SMOLVM_ERROR_NOT_AUTHORIZED },
  { ENOENT, SMOLVM_ERROR_INVALID_ARGUMENT },
  { ENOTDIR, SMOLVM_ERROR_INVALID_ARGUMENT },
  { ELOOP, SMOLVM_ERROR_INVALID_ARGUMENT },
};

static gboolean
open_all (OpenAs *d, GError **error)
{
  for (guint i = 0; i < d->n; i++) {
    if (d->paths[i] == NULL || d->paths[i][0] == '\0')
      continue;
    d->fds[i] = open (d->paths[i], O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (d->fds[i] < 0) {
      int errsv = errno;
      smolvm_error_set_errno (error, errsv, "Cannot open %s '%s' with the rights of uid %u",
                              d->whats[i], d->paths[i], d->uid);
      for (gsize e = 0; e < G_N_ELEMENTS (open_errors); e++)
        if (open_errors[e].errsv == errsv)
          (*error)->code = open_errors[e].code;
      return FALSE;
    }
    if (!smolvm_check_image_fd (d->fds[i], d->whats[i], &d->sizes[i], error)) {
      g_prefix_error (error, "%s: ", d->paths[i]);
      return FALSE;
    }
  }
  return TRUE;
}

/* @error is read only after @ok's call has set it */
static void
return_result (GTask *task, gboolean ok, GError **error)
{
  if (ok)
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, g_steal_pointer (error));
}

static void
open_as_self_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  g_autoptr(GError) error = NULL;
  return_result (task, open_all (task_data, &error), &error);
}

/* Runs in a thread of its own that ends here, so that the credentials it
 * took on never serve anything else. */
static gpointer
open_as_user_thread (gpointer data)
{
  g_autoptr(GTask) task = data;
  OpenAs *d = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;

  return_result (task, become_user (d->uid, &error) && open_all (d, &error), &error);
  return NULL;
}

void
smolvm_open_as_async (guint32 uid, const gchar *const *paths, const gchar *const *whats,
                      guint n_paths, GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = g_task_new (NULL, NULL, callback, user_data);
  OpenAs *d = g_new0 (OpenAs, 1);

  g_task_set_source_tag (task, smolvm_open_as_async);
  d->uid = uid;
  d->n = n_paths;
  d->paths = g_new0 (gchar *, n_paths);
  d->whats = g_new0 (gchar *, n_paths);
  d->fds = g_new (int, n_paths);
  d->sizes = g_new0 (guint64, n_paths);
  for (guint i = 0; i < n_paths; i++) {
    d->paths[i] = g_strdup (paths[i]);
    d->whats[i] = g_strdup (whats[i]);
    d->fds[i] = -1;
  }
  g_task_set_task_data (task, d, open_as_free);

  if (uid == geteuid ()) {
    g_task_run_in_thread (task, open_as_self_thread);
    return;
  }
  if (geteuid () != 0) {
    g_task_return_new_error (task, SMOLVM_ERROR, SMOLVM_ERROR_NOT_AUTHORIZED,
                             "smolvmd runs as uid %u and cannot open files with the rights of "
                             "uid %u; pass the files as descriptors",
                             (guint) geteuid (), uid);
    return;
  }
  g_thread_unref (g_thread_new ("smolvm-open-as", open_as_user_thread, g_steal_pointer (&task)));
}

gboolean
smolvm_open_as_finish (GAsyncResult *result, int *fds, guint64 *data_sizes, GError **error)
{
  OpenAs *d;

  g_return_val_if_fail (g_async_result_is_tagged (result, smolvm_open_as_async), FALSE);
  if (!g_task_propagate_boolean (G_TASK (result), error))
    return FALSE;
  d = g_task_get_task_data (G_TASK (result));
  for (guint i = 0; i < d->n; i++) {
    fds[i] = d->fds[i];
    d->fds[i] = -1; /* handed over */
    if (data_sizes != NULL)
      data_sizes[i] = d->sizes[i];
  }
  return TRUE;
}
