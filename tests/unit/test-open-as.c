/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Opening files with another user's rights, alone: the rights are that
 * user's (uid, primary group), only the worker thread takes them on, and
 * what is not a regular file is refused without blocking. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* O_PATH */
#endif
#include "config.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <unistd.h>

#include "smolvm-error.h"
#include "smolvm-fileutil.h"
#include "smolvm-open-as.h"

#define NOBODY 65534

typedef struct {
  gchar *dir;
  gchar *public_file;
  gchar *secret;
  gchar *group_file;
  gchar *fifo;
} Fixture;

static gchar *
make_file (const gchar *dir, const gchar *name, const gchar *contents, int mode)
{
  gchar *path = g_build_filename (dir, name, NULL);
  g_assert_true (g_file_set_contents (path, contents, -1, NULL));
  g_assert_cmpint (g_chmod (path, mode), ==, 0);
  return path;
}

static void
setup (Fixture *f, gconstpointer data)
{
  f->dir = g_dir_make_tmp ("smolvm-open-as-XXXXXX", NULL);
  g_assert_nonnull (f->dir);
  g_assert_cmpint (g_chmod (f->dir, 0755), ==, 0);
  f->public_file = make_file (f->dir, "public", "for anyone", 0644);
  f->secret = make_file (f->dir, "secret", "for root only", 0600);
  f->group_file = make_file (f->dir, "group", "for the group", 0640);
  if (geteuid () == 0)
    g_assert_cmpint (chown (f->group_file, 0, NOBODY), ==, 0);
  f->fifo = g_build_filename (f->dir, "fifo", NULL);
  g_assert_cmpint (mkfifo (f->fifo, 0666), ==, 0);
}

static void
teardown (Fixture *f, gconstpointer data)
{
  g_assert_true (smolvm_rm_rf (f->dir, NULL));
  g_free (f->dir);
  g_free (f->public_file);
  g_free (f->secret);
  g_free (f->group_file);
  g_free (f->fifo);
}

static void
on_opened (GObject *source, GAsyncResult *result, gpointer user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

/* Opens @paths as @uid; the descriptors on success, else the error. */
static gboolean
open_as (guint32 uid, const gchar *const *paths, guint n, int *fds, guint64 *sizes,
         GError **error)
{
  g_autoptr(GAsyncResult) result = NULL;
  const gchar *whats[8] = { "a", "b", "c", "d", "e", "f", "g", "h" };

  g_assert_cmpuint (n, <=, G_N_ELEMENTS (whats));
  smolvm_open_as_async (uid, paths, whats, n, on_opened, &result);
  while (result == NULL)
    g_main_context_iteration (NULL, TRUE);
  return smolvm_open_as_finish (result, fds, sizes, error);
}

static gchar *
read_fd (int fd)
{
  gchar buf[256];
  ssize_t n = pread (fd, buf, sizeof buf - 1, 0);
  g_assert_cmpint (n, >=, 0);
  return g_strndup (buf, n);
}

static void
test_as_self (Fixture *f, gconstpointer data)
{
  const gchar *paths[] = { f->public_file, NULL, "", f->secret };
  int fds[4];
  guint64 sizes[4];
  g_autoptr(GError) error = NULL;
  g_autofree gchar *text = NULL;

  g_assert_true (open_as (geteuid (), paths, 4, fds, sizes, &error));
  g_assert_no_error (error);
  g_assert_cmpint (fds[1], ==, -1);
  g_assert_cmpint (fds[2], ==, -1);
  text = read_fd (fds[0]);
  g_assert_cmpstr (text, ==, "for anyone");
  for (guint i = 0; i < 4; i++)
    if (fds[i] >= 0)
      close (fds[i]);
}

static void
test_not_regular (Fixture *f, gconstpointer data)
{
  const gchar *cases[] = { f->fifo, f->dir, "/dev/null" };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    const gchar *paths[] = { f->public_file, cases[i] };
    int fds[2] = { -1, -1 };
    g_autoptr(GError) error = NULL;

    /* a FIFO without a writer would block a plain open() forever */
    g_assert_false (open_as (geteuid (), paths, 2, fds, NULL, &error));
    g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
    g_assert_nonnull (strstr (error->message, "not a regular file"));
    g_assert_cmpint (fds[0], ==, -1); /* nothing handed over */
  }
}

static void
test_missing (Fixture *f, gconstpointer data)
{
  g_autofree gchar *missing = g_build_filename (f->dir, "missing", NULL);
  const gchar *paths[] = { missing };
  int fd = -1;
  g_autoptr(GError) error = NULL;

  g_assert_false (open_as (geteuid (), paths, 1, &fd, NULL, &error));
  g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, missing));
}

static void
test_as_another_user (Fixture *f, gconstpointer data)
{
  if (geteuid () != 0) {
    g_test_skip ("needs root (a second uid)");
    return;
  }
  {
    const gchar *paths[] = { f->public_file, f->group_file };
    int fds[2];
    g_autoptr(GError) error = NULL;
    g_autofree gchar *a = NULL;
    g_autofree gchar *b = NULL;

    g_assert_true (open_as (NOBODY, paths, 2, fds, NULL, &error));
    g_assert_no_error (error);
    a = read_fd (fds[0]);
    b = read_fd (fds[1]); /* through its primary group */
    g_assert_cmpstr (a, ==, "for anyone");
    g_assert_cmpstr (b, ==, "for the group");
    close (fds[0]);
    close (fds[1]);
  }
  {
    const gchar *paths[] = { f->public_file, f->secret };
    int fds[2] = { -1, -1 };
    g_autoptr(GError) error = NULL;

    g_assert_false (open_as (NOBODY, paths, 2, fds, NULL, &error));
    g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_AUTHORIZED);
    g_assert_nonnull (strstr (error->message, "uid 65534"));
  }
  {
    /* a uid without a user entry has no known rights */
    const gchar *paths[] = { f->public_file };
    int fd = -1;
    g_autoptr(GError) error = NULL;

    g_assert_false (open_as (4000000, paths, 1, &fd, NULL, &error));
    g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_NOT_AUTHORIZED);
  }
  {
    /* the rights were the worker's alone: this thread, and the pool's
     * threads, still read as root */
    const gchar *paths[] = { f->secret };
    int fd = -1;
    g_autoptr(GError) error = NULL;
    g_autofree gchar *text = NULL;
    int direct = open (f->secret, O_RDONLY | O_CLOEXEC);

    g_assert_cmpint (direct, >=, 0);
    close (direct);
    g_assert_true (open_as (0, paths, 1, &fd, NULL, &error));
    g_assert_no_error (error);
    text = read_fd (fd);
    g_assert_cmpstr (text, ==, "for root only");
    close (fd);
  }
}

static void
test_check_image_fd (Fixture *f, gconstpointer data)
{
  struct {
    const gchar *path;
    int flags;
    gboolean ok;
  } cases[] = {
    { f->public_file, O_RDONLY, TRUE },
    { f->public_file, O_RDWR, TRUE },
    { f->public_file, O_WRONLY, FALSE },
    { f->public_file, O_PATH, FALSE },
    { f->dir, O_RDONLY, FALSE },
    { f->fifo, O_RDONLY | O_NONBLOCK, FALSE },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr(GError) error = NULL;
    guint64 size = 0;
    int fd = open (cases[i].path, cases[i].flags | O_CLOEXEC);

    g_assert_cmpint (fd, >=, 0);
    g_assert_cmpint (smolvm_check_image_fd (fd, "rootfs-fd", &size, &error), ==, cases[i].ok);
    if (cases[i].ok) {
      g_assert_no_error (error);
    } else {
      g_assert_error (error, SMOLVM_ERROR, SMOLVM_ERROR_INVALID_ARGUMENT);
      g_assert_nonnull (strstr (error->message, "rootfs-fd"));
    }
    close (fd);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/open-as/self", Fixture, NULL, setup, test_as_self, teardown);
  g_test_add ("/open-as/not-regular", Fixture, NULL, setup, test_not_regular, teardown);
  g_test_add ("/open-as/missing", Fixture, NULL, setup, test_missing, teardown);
  g_test_add ("/open-as/another-user", Fixture, NULL, setup, test_as_another_user, teardown);
  g_test_add ("/open-as/check-image-fd", Fixture, NULL, setup, test_check_image_fd, teardown);
  return g_test_run ();
}
