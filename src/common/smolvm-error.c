/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "smolvm-error.h"

static const GDBusErrorEntry smolvm_error_entries[] = {
  { SMOLVM_ERROR_FAILED, "org.smolvm.Error.Failed" },
  { SMOLVM_ERROR_NOT_FOUND, "org.smolvm.Error.NotFound" },
  { SMOLVM_ERROR_ALREADY_EXISTS, "org.smolvm.Error.AlreadyExists" },
  { SMOLVM_ERROR_INVALID_ARGUMENT, "org.smolvm.Error.InvalidArgument" },
  { SMOLVM_ERROR_INVALID_STATE, "org.smolvm.Error.InvalidState" },
  { SMOLVM_ERROR_ALREADY_RESTORED, "org.smolvm.Error.AlreadyRestored" },
  { SMOLVM_ERROR_IN_USE, "org.smolvm.Error.InUse" },
  { SMOLVM_ERROR_NOT_AUTHORIZED, "org.smolvm.Error.NotAuthorized" },
  { SMOLVM_ERROR_UNSUPPORTED, "org.smolvm.Error.Unsupported" },
  { SMOLVM_ERROR_BACKEND, "org.smolvm.Error.Backend" },
  { SMOLVM_ERROR_NO_SPACE, "org.smolvm.Error.NoSpace" },
  { SMOLVM_ERROR_CANCELLED, "org.smolvm.Error.Cancelled" },
  { SMOLVM_ERROR_AUTHORIZATION_DISMISSED, "org.smolvm.Error.AuthorizationDismissed" },
};

GQuark
smolvm_error_quark (void)
{
  static gsize quark = 0;
  g_dbus_error_register_error_domain ("smolvm-error-quark", &quark, smolvm_error_entries,
                                      G_N_ELEMENTS (smolvm_error_entries));
  return (GQuark) quark;
}

const gchar *
smolvm_error_to_dbus_name (SmolvmError code)
{
  for (gsize i = 0; i < G_N_ELEMENTS (smolvm_error_entries); i++)
    if (smolvm_error_entries[i].error_code == (gint) code)
      return smolvm_error_entries[i].dbus_error_name;
  return "org.smolvm.Error.Failed";
}

const gchar *
smolvm_error_short_name (const GError *error)
{
  const gchar *name;
  if (error->domain != SMOLVM_ERROR)
    return NULL;
  name = smolvm_error_to_dbus_name (error->code);
  return name + strlen ("org.smolvm.Error.");
}

GError *
smolvm_error_normalize (const GError *error)
{
  SmolvmError code = SMOLVM_ERROR_FAILED;

  if (error->domain == SMOLVM_ERROR)
    return g_error_copy (error);

  if (error->domain == G_IO_ERROR) {
    switch (error->code) {
    case G_IO_ERROR_NOT_FOUND:
      code = SMOLVM_ERROR_NOT_FOUND;
      break;
    case G_IO_ERROR_EXISTS:
      code = SMOLVM_ERROR_ALREADY_EXISTS;
      break;
    case G_IO_ERROR_INVALID_ARGUMENT:
    case G_IO_ERROR_INVALID_FILENAME:
    case G_IO_ERROR_IS_DIRECTORY:
    case G_IO_ERROR_NOT_REGULAR_FILE:
      code = SMOLVM_ERROR_INVALID_ARGUMENT;
      break;
    case G_IO_ERROR_NO_SPACE:
      code = SMOLVM_ERROR_NO_SPACE;
      break;
    case G_IO_ERROR_PERMISSION_DENIED:
      /* the daemon's own access, not the caller's authorization */
      code = SMOLVM_ERROR_FAILED;
      break;
    case G_IO_ERROR_NOT_SUPPORTED:
      code = SMOLVM_ERROR_UNSUPPORTED;
      break;
    case G_IO_ERROR_BUSY:
      code = SMOLVM_ERROR_IN_USE;
      break;
    case G_IO_ERROR_CANCELLED:
      code = SMOLVM_ERROR_CANCELLED;
      break;
    default:
      break;
    }
  } else if (error->domain == G_FILE_ERROR) {
    switch (error->code) {
    case G_FILE_ERROR_NOENT:
      code = SMOLVM_ERROR_NOT_FOUND;
      break;
    case G_FILE_ERROR_EXIST:
      code = SMOLVM_ERROR_ALREADY_EXISTS;
      break;
    case G_FILE_ERROR_NOSPC:
      code = SMOLVM_ERROR_NO_SPACE;
      break;
    case G_FILE_ERROR_ACCES:
    case G_FILE_ERROR_PERM:
      code = SMOLVM_ERROR_FAILED;
      break;
    default:
      break;
    }
  }
  return g_error_new_literal (SMOLVM_ERROR, code, error->message);
}

gboolean
smolvm_error_set_errno (GError **error, int errsv, const gchar *format, ...)
{
  va_list args;
  g_autofree gchar *msg = NULL;
  SmolvmError code;

  va_start (args, format);
  msg = g_strdup_vprintf (format, args);
  va_end (args);

  switch (errsv) {
  case ENOSPC:
  case EDQUOT:
    code = SMOLVM_ERROR_NO_SPACE;
    break;
  case ENOENT:
    code = SMOLVM_ERROR_NOT_FOUND;
    break;
  case EEXIST:
    code = SMOLVM_ERROR_ALREADY_EXISTS;
    break;
  case EACCES:
  case EPERM:
    code = SMOLVM_ERROR_FAILED;
    break;
  default:
    code = SMOLVM_ERROR_FAILED;
    break;
  }
  g_set_error (error, SMOLVM_ERROR, code, "%s: %s", msg, g_strerror (errsv));
  return FALSE;
}
