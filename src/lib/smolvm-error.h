/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/**
 * SmolvmError:
 * @SMOLVM_ERROR_FAILED: Anything else (org.smolvm.Error.Failed).
 * @SMOLVM_ERROR_NOT_FOUND: No such VM, snapshot or job (org.smolvm.Error.NotFound).
 * @SMOLVM_ERROR_ALREADY_EXISTS: The id is taken (org.smolvm.Error.AlreadyExists).
 * @SMOLVM_ERROR_INVALID_ARGUMENT: A bad id, option or configuration
 *   (org.smolvm.Error.InvalidArgument).
 * @SMOLVM_ERROR_INVALID_STATE: The VM or job is not in a state that allows this
 *   (org.smolvm.Error.InvalidState).
 * @SMOLVM_ERROR_ALREADY_RESTORED: The snapshot was restored before; restore it
 *   with %SMOLVM_SNAPSHOT_RESTORE_FLAGS_FORCE (org.smolvm.Error.AlreadyRestored).
 * @SMOLVM_ERROR_IN_USE: A VM restored from the snapshot still runs
 *   (org.smolvm.Error.InUse).
 * @SMOLVM_ERROR_NOT_AUTHORIZED: polkit said no (org.smolvm.Error.NotAuthorized).
 * @SMOLVM_ERROR_UNSUPPORTED: Not possible with this daemon or backend
 *   (org.smolvm.Error.Unsupported).
 * @SMOLVM_ERROR_BACKEND: The VMM (Firecracker, QEMU) failed (org.smolvm.Error.Backend).
 * @SMOLVM_ERROR_NO_SPACE: The disk is full (org.smolvm.Error.NoSpace).
 * @SMOLVM_ERROR_CANCELLED: The operation's job was cancelled and rolled back
 *   (org.smolvm.Error.Cancelled).
 * @SMOLVM_ERROR_AUTHORIZATION_DISMISSED: The user dismissed the authentication
 *   dialog (org.smolvm.Error.AuthorizationDismissed).
 * @SMOLVM_ERROR_CORRUPT: Data failed its check: a blob whose sha256 or size
 *   is not what its manifest says, or a malformed archive (org.smolvm.Error.Corrupt).
 * @SMOLVM_ERROR_NOT_A_SNAPSHOT: An OCI artifact or archive that is not a
 *   smolvm snapshot, or of a format version this daemon does not read
 *   (org.smolvm.Error.NotASnapshot).
 * @SMOLVM_ERROR_REGISTRY_UNAVAILABLE: An OCI registry could not be reached or
 *   failed (org.smolvm.Error.RegistryUnavailable).
 * @SMOLVM_ERROR_REGISTRY_AUTH_FAILED: An OCI registry refused the configured
 *   credentials, or wants some and none are configured
 *   (org.smolvm.Error.RegistryAuthFailed).
 *
 * Every error smolvmd answers with, in the %SMOLVM_ERROR domain. The domain
 * is registered with GDBus, so a remote org.smolvm.Error.* comes back as
 * its code.
 */
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
  SMOLVM_ERROR_CORRUPT,
  SMOLVM_ERROR_NOT_A_SNAPSHOT,
  SMOLVM_ERROR_REGISTRY_UNAVAILABLE,
  SMOLVM_ERROR_REGISTRY_AUTH_FAILED,
} SmolvmError;

/**
 * SMOLVM_ERROR:
 *
 * The error domain of smolvm, org.smolvm.Error on D-Bus. See #SmolvmError.
 */
#define SMOLVM_ERROR (smolvm_error_quark ())
GQuark smolvm_error_quark (void);

const gchar *smolvm_error_to_dbus_name (gint code);

G_END_DECLS
