# SPDX-License-Identifier: LGPL-2.1-or-later
"""Exceptions of the smolvm SDK.

Every error smolvmd answers is a SmolVMError that carries the D-Bus error
name (``dbus_name``, e.g. ``org.smolvm.Error.NotFound``) and its short form
(``name``, e.g. ``NotFound``). The SmolVM-style subclasses (VMNotFoundError,
SnapshotNotFoundError, ...) are raised where the call names a VM or a
snapshot, so code written against SmolVM keeps catching what it caught.
"""

ERROR_PREFIX = "org.smolvm.Error."


class SmolVMError(Exception):
    """Base exception for all smolvm errors."""

    def __init__(self, message, details=None, dbus_name=None):
        super().__init__(message)
        self.message = message
        self.details = dict(details or {})
        self.dbus_name = dbus_name
        self.name = (dbus_name[len(ERROR_PREFIX):]
                     if dbus_name and dbus_name.startswith(ERROR_PREFIX) else dbus_name)


class ValidationError(SmolVMError):
    """The daemon refused an argument (org.smolvm.Error.InvalidArgument)."""


class NotAuthorizedError(SmolVMError):
    """polkit refused the call (NotAuthorized or AuthorizationDismissed)."""


class VMNotFoundError(SmolVMError):
    """No VM of that id."""


class VMAlreadyExistsError(SmolVMError):
    """A VM of that id exists already."""


class SnapshotNotFoundError(SmolVMError):
    """No snapshot of that id."""


class SnapshotAlreadyExistsError(SmolVMError):
    """A snapshot of that id exists already."""


class SnapshotAlreadyRestoredError(SmolVMError):
    """The snapshot was restored before; pass force=True to restore it again."""


class RegistryError(SmolVMError):
    """An OCI registry could not be reached, refused the configured
    credentials (RegistryUnavailable, RegistryAuthFailed), or has no such
    repository or tag to pull (NotFound)."""


class CorruptSnapshotError(SmolVMError):
    """Transferred data failed its check, or is not a smolvm snapshot
    (Corrupt, NotASnapshot)."""


class HostError(SmolVMError):
    """smolvmd is not installed, not running, or lacks what the call needs
    (a backend, room on disk)."""


# (D-Bus error short name, what the call is about) -> class; None: any
_CLASSES = {
    ("InvalidArgument", None): ValidationError,
    ("NotAuthorized", None): NotAuthorizedError,
    ("AuthorizationDismissed", None): NotAuthorizedError,
    ("NotFound", "vm"): VMNotFoundError,
    ("NotFound", "snapshot"): SnapshotNotFoundError,
    ("AlreadyExists", "vm"): VMAlreadyExistsError,
    ("AlreadyExists", "snapshot"): SnapshotAlreadyExistsError,
    ("AlreadyRestored", None): SnapshotAlreadyRestoredError,
    ("Unsupported", None): HostError,
    ("NoSpace", None): HostError,
    ("RegistryUnavailable", None): RegistryError,
    ("RegistryAuthFailed", None): RegistryError,
    ("NotFound", "reference"): RegistryError,
    ("Corrupt", None): CorruptSnapshotError,
    ("NotASnapshot", None): CorruptSnapshotError,
}


def error_class(name, about=None):
    return _CLASSES.get((name, about)) or _CLASSES.get((name, None)) or SmolVMError
