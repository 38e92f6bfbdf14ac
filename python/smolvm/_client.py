# SPDX-License-Identifier: LGPL-2.1-or-later
"""The one connection to smolvmd: libsmolvm through GObject Introspection."""

import functools
import os

import gi

gi.require_version("Smolvm", "1.0")
gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib, Smolvm  # noqa: E402

from .exceptions import ERROR_PREFIX, HostError, SmolVMError, error_class  # noqa: E402

_BUSES = {"system": Smolvm.BusType.SYSTEM, "session": Smolvm.BusType.SESSION}


def bus_type(bus=None):
    """@bus, else $SMOLVM_BUS, else the system bus, where smolvmd runs."""
    name = bus or os.environ.get("SMOLVM_BUS") or "system"
    try:
        return _BUSES[name]
    except KeyError:
        raise ValueError("bus must be 'system' or 'session', not %r" % name) from None


def translate(error, about=None, details=None):
    """The SmolVMError for a GLib.Error from libsmolvm; @about: "vm",
    "snapshot", or a dict of them by error name (None: the others)."""
    if error.domain == GLib.quark_to_string(Smolvm.error_quark()):
        dbus_name = Smolvm.error_to_dbus_name(error.code)
    else:
        dbus_name = Gio.DBusError.get_remote_error(error)
    name = dbus_name[len(ERROR_PREFIX):] if dbus_name and dbus_name.startswith(
        ERROR_PREFIX) else None
    Gio.DBusError.strip_remote_error(error)  # "GDBus.Error:name: " goes
    message = error.message
    if isinstance(about, dict):
        about = about.get(name, about.get(None))
    cls = error_class(name, about) if name else SmolVMError
    if dbus_name in ("org.freedesktop.DBus.Error.ServiceUnknown",
                     "org.freedesktop.DBus.Error.NameHasNoOwner",
                     "org.freedesktop.DBus.Error.FileNotFound"):
        cls = HostError
    return cls(message, details, dbus_name)


def calls_daemon(about=None, key=None):
    """Turns the GLib.Errors of a method into SmolVMErrors; @about says
    whether the call is about a "vm" or a "snapshot" (or, as a dict, which
    for which error names), @key which argument names it (for the error's
    details)."""
    def wrap(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except GLib.Error as e:
                details = {}
                if key is not None:
                    value = kwargs.get(key, args[0] if args else None)
                    if value is not None:
                        details[key] = value
                raise translate(e, about, details) from None
        return wrapper
    return wrap


class Connection:
    """A libsmolvm client, made on first use and dropped by close()."""

    def __init__(self, bus=None, interactive=False):
        self._bus = bus_type(bus)
        self._interactive = interactive
        self._client = None

    @property
    def client(self):
        if self._client is None:
            try:
                self._client = Smolvm.Client.new_sync(self._bus, None)
            except GLib.Error as e:
                raise translate(e) from None
            self._client.set_interactive(self._interactive)
        return self._client

    def close(self):
        self._client = None
