/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* How foreign errors, errno values and SMOLVM_ERROR codes map onto each
 * other, for the daemon and the CLI. The domain itself is libsmolvm-1's
 * (src/lib/smolvm-error.h). */

#include "smolvm-error.h"

G_BEGIN_DECLS

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
