/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

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
  { SMOLVM_ERROR_CORRUPT, "org.smolvm.Error.Corrupt" },
  { SMOLVM_ERROR_NOT_A_SNAPSHOT, "org.smolvm.Error.NotASnapshot" },
  { SMOLVM_ERROR_REGISTRY_UNAVAILABLE, "org.smolvm.Error.RegistryUnavailable" },
  { SMOLVM_ERROR_REGISTRY_AUTH_FAILED, "org.smolvm.Error.RegistryAuthFailed" },
};

/**
 * smolvm_error_quark:
 *
 * The quark of the %SMOLVM_ERROR domain. The first call registers the
 * org.smolvm.Error.* names with GDBus (g_dbus_error_register_error_domain()).
 *
 * Returns: the error domain
 */
GQuark
smolvm_error_quark (void)
{
  static gsize quark = 0;
  g_dbus_error_register_error_domain ("smolvm-error-quark", &quark, smolvm_error_entries,
                                      G_N_ELEMENTS (smolvm_error_entries));
  return (GQuark) quark;
}

/**
 * smolvm_error_to_dbus_name:
 * @code: a #SmolvmError code
 *
 * The D-Bus error name of @code, e.g. "org.smolvm.Error.NotFound" for
 * %SMOLVM_ERROR_NOT_FOUND.
 *
 * Returns: (transfer none): the name; "org.smolvm.Error.Failed" for a code
 *   this version does not know
 */
const gchar *
smolvm_error_to_dbus_name (gint code)
{
  for (gsize i = 0; i < G_N_ELEMENTS (smolvm_error_entries); i++)
    if (smolvm_error_entries[i].error_code == code)
      return smolvm_error_entries[i].dbus_error_name;
  return "org.smolvm.Error.Failed";
}
