/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "smolvm-error-map.h"

const gchar *
smolvm_error_short_name (const GError *error)
{
  const gchar *name;
  if (error->domain != SMOLVM_ERROR)
    return NULL;
  name = smolvm_error_to_dbus_name (error->code);
  return name + strlen ("org.smolvm.Error.");
}

/* Foreign errors the daemon meets, and what a D-Bus caller hears of them.
 * Permission errors are the daemon's own access, not the caller's
 * authorization: Failed. Anything not listed is Failed too. */
typedef struct {
  GQuark (*domain) (void);
  gint code;
  SmolvmError smolvm_code;
} ErrorMapping;

static const ErrorMapping error_map[] = {
  { g_io_error_quark, G_IO_ERROR_NOT_FOUND, SMOLVM_ERROR_NOT_FOUND },
  { g_io_error_quark, G_IO_ERROR_EXISTS, SMOLVM_ERROR_ALREADY_EXISTS },
  { g_io_error_quark, G_IO_ERROR_INVALID_ARGUMENT, SMOLVM_ERROR_INVALID_ARGUMENT },
  { g_io_error_quark, G_IO_ERROR_INVALID_FILENAME, SMOLVM_ERROR_INVALID_ARGUMENT },
  { g_io_error_quark, G_IO_ERROR_IS_DIRECTORY, SMOLVM_ERROR_INVALID_ARGUMENT },
  { g_io_error_quark, G_IO_ERROR_NOT_REGULAR_FILE, SMOLVM_ERROR_INVALID_ARGUMENT },
  { g_io_error_quark, G_IO_ERROR_NO_SPACE, SMOLVM_ERROR_NO_SPACE },
  { g_io_error_quark, G_IO_ERROR_PERMISSION_DENIED, SMOLVM_ERROR_FAILED },
  { g_io_error_quark, G_IO_ERROR_NOT_SUPPORTED, SMOLVM_ERROR_UNSUPPORTED },
  { g_io_error_quark, G_IO_ERROR_BUSY, SMOLVM_ERROR_IN_USE },
  { g_io_error_quark, G_IO_ERROR_CANCELLED, SMOLVM_ERROR_CANCELLED },
  { g_file_error_quark, G_FILE_ERROR_NOENT, SMOLVM_ERROR_NOT_FOUND },
  { g_file_error_quark, G_FILE_ERROR_EXIST, SMOLVM_ERROR_ALREADY_EXISTS },
  { g_file_error_quark, G_FILE_ERROR_NOSPC, SMOLVM_ERROR_NO_SPACE },
  { g_file_error_quark, G_FILE_ERROR_ACCES, SMOLVM_ERROR_FAILED },
  { g_file_error_quark, G_FILE_ERROR_PERM, SMOLVM_ERROR_FAILED },
};

/* errno values with a meaning of their own; the rest are Failed */
static const struct {
  int errsv;
  SmolvmError code;
} errno_map[] = {
  { ENOSPC, SMOLVM_ERROR_NO_SPACE },
  { EDQUOT, SMOLVM_ERROR_NO_SPACE },
  { ENOENT, SMOLVM_ERROR_NOT_FOUND },
  { EEXIST, SMOLVM_ERROR_ALREADY_EXISTS },
  { EACCES, SMOLVM_ERROR_FAILED },
  { EPERM, SMOLVM_ERROR_FAILED },
};

SmolvmError
smolvm_error_code_from_errno (int errsv)
{
  for (gsize i = 0; i < G_N_ELEMENTS (errno_map); i++)
    if (errno_map[i].errsv == errsv)
      return errno_map[i].code;
  return SMOLVM_ERROR_FAILED;
}

GError *
smolvm_error_normalize (const GError *error)
{
  if (error->domain == SMOLVM_ERROR)
    return g_error_copy (error);
  for (gsize i = 0; i < G_N_ELEMENTS (error_map); i++) {
    if (error->domain == error_map[i].domain () && error->code == error_map[i].code)
      return g_error_new_literal (SMOLVM_ERROR, error_map[i].smolvm_code, error->message);
  }
  return g_error_new_literal (SMOLVM_ERROR, SMOLVM_ERROR_FAILED, error->message);
}

gboolean
smolvm_error_set_errno (GError **error, int errsv, const gchar *format, ...)
{
  va_list args;
  g_autofree gchar *msg = NULL;

  va_start (args, format);
  msg = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, SMOLVM_ERROR, smolvm_error_code_from_errno (errsv), "%s: %s", msg,
               g_strerror (errsv));
  return FALSE;
}
