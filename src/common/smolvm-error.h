/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* Every error a D-Bus caller can see; registered as org.smolvm.Error.*. */
typedef enum {
  SMOLVM_ERROR_FAILED,
  SMOLVM_ERROR_NOT_FOUND,
  SMOLVM_ERROR_ALREADY_EXISTS,
  SMOLVM_ERROR_INVALID_ARGUMENT,
  SMOLVM_ERROR_INVALID_STATE,
  SMOLVM_ERROR_ALREADY_RESTORED,
  SMOLVM_ERROR_IN_USE,
  SMOLVM_ERROR_NOT_AUTHORIZED,
  SMOLVM_ERROR_UNSUPPORTED,
  SMOLVM_ERROR_BACKEND,
  SMOLVM_ERROR_NO_SPACE,
  SMOLVM_ERROR_CANCELLED,
  SMOLVM_ERROR_AUTHORIZATION_DISMISSED,
} SmolvmError;

#define SMOLVM_ERROR (smolvm_error_quark ())
GQuark smolvm_error_quark (void);

const gchar *smolvm_error_to_dbus_name (SmolvmError code);

/* Converts any GError into one in the SMOLVM_ERROR domain, so that no
 * caller ever sees an UnmappedGError. */
GError *smolvm_error_normalize (const GError *error);

/* The code an errno value maps to (ENOSPC/EDQUOT: NoSpace, ENOENT:
 * NotFound, EEXIST: AlreadyExists, anything else: Failed). */
SmolvmError smolvm_error_code_from_errno (int errsv);

/* Sets @error from errno (smolvm_error_code_from_errno), the message
 * followed by strerror. */
gboolean smolvm_error_set_errno (GError **error, int errsv, const gchar *format, ...)
  G_GNUC_PRINTF (3, 4);

/* The short name after "org.smolvm.Error.", e.g. "NotFound"; NULL for a
 * remote error outside the domain. Used by the CLI's JSON envelope. */
const gchar *smolvm_error_short_name (const GError *error);

G_END_DECLS
