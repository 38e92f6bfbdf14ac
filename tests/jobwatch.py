# SPDX-License-Identifier: LGPL-2.1-or-later
"""A GDBus client (python3-gi) that watches smolvmd's Jobs while a method
call runs on its main loop: every Job that appears, the properties it goes
through, its Completed signal and its removal."""

import gi

gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

import smolvmtest as st  # noqa: E402

JOB_IFACE = "org.smolvm.Job"


class JobWatch:
    """Records the Jobs of one smolvmd while a call runs on the main loop."""

    def __init__(self, env):
        self.conn = Gio.DBusConnection.new_for_address_sync(
            env.bus.address,
            Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT |
            Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
        self.props = {}      # job path -> latest properties
        self.history = {}    # job path -> [(property, value)] in order
        self.states = {}     # job path -> [all properties after each signal]
        self.completed = {}  # job path -> (success, message)
        self.removed = set()
        self.on_props = None  # callback (path, changed) for the test
        self.reply = None
        sub = self.conn.signal_subscribe
        sub(st.BUS_NAME, "org.freedesktop.DBus.ObjectManager", "InterfacesAdded",
            st.MANAGER_PATH, None, Gio.DBusSignalFlags.NONE, self._added)
        sub(st.BUS_NAME, "org.freedesktop.DBus.ObjectManager", "InterfacesRemoved",
            st.MANAGER_PATH, None, Gio.DBusSignalFlags.NONE, self._removed)
        sub(st.BUS_NAME, "org.freedesktop.DBus.Properties", "PropertiesChanged", None,
            JOB_IFACE, Gio.DBusSignalFlags.NONE, self._changed)
        sub(st.BUS_NAME, JOB_IFACE, "Completed", None, None, Gio.DBusSignalFlags.NONE,
            self._completed)
        # a round trip, so that the subscriptions are in place before any call
        self.conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus",
                            "org.freedesktop.DBus", "GetId", None, None,
                            Gio.DBusCallFlags.NONE, -1, None)

    def _record(self, path, changed):
        self.props.setdefault(path, {}).update(changed)
        self.history.setdefault(path, []).extend(sorted(changed.items()))
        self.states.setdefault(path, []).append(dict(self.props[path]))
        if self.on_props is not None:
            self.on_props(path, changed)

    def _added(self, conn, sender, path, iface, signal, params):
        obj, ifaces = params.unpack()
        if JOB_IFACE in ifaces:
            self._record(obj, ifaces[JOB_IFACE])

    def _removed(self, conn, sender, path, iface, signal, params):
        obj, ifaces = params.unpack()
        if JOB_IFACE in ifaces:
            self.removed.add(obj)

    def _changed(self, conn, sender, path, iface, signal, params):
        _, changed, _ = params.unpack()
        self._record(path, changed)

    def _completed(self, conn, sender, path, iface, signal, params):
        self.completed[path] = params.unpack()

    def call(self, path, iface, method, args):
        """Starts a method call; its outcome lands in self.reply."""
        def done(conn, result):
            try:
                self.reply = ("ok", conn.call_finish(result).unpack())
            except GLib.Error as e:
                name = Gio.DBusError.get_remote_error(e)
                prefix = "GDBus.Error:%s: " % name
                message = e.message[len(prefix):] if e.message.startswith(prefix) else e.message
                self.reply = ("error", name, message)
        self.conn.call(st.BUS_NAME, path, iface, method, args, None, Gio.DBusCallFlags.NONE,
                       int(st.DEADLINE * 1000 * 3), None, done)

    def cancel(self, job, options=None):
        """Job.Cancel, synchronously; returns None or the error's D-Bus name."""
        try:
            self.conn.call_sync(st.BUS_NAME, job, JOB_IFACE, "Cancel",
                                GLib.Variant("(a{sv})", (options or {},)), None,
                                Gio.DBusCallFlags.NONE, -1, None)
            return None
        except GLib.Error as e:
            return Gio.DBusError.get_remote_error(e)

    def run_until(self, predicate, what):
        ctx = GLib.MainContext.default()
        deadline = GLib.get_monotonic_time() + int(st.DEADLINE * 3 * 1e6)
        while not predicate():
            if GLib.get_monotonic_time() > deadline:
                raise AssertionError("timed out waiting for " + what)
            ctx.iteration(False) or GLib.usleep(2000)

    def wait_reply(self):
        self.run_until(lambda: self.reply is not None, "the method's reply")
        # Completed and InterfacesRemoved came before the reply; let them in
        ctx = GLib.MainContext.default()
        while ctx.iteration(False):
            pass
        return self.reply

    def only_job(self):
        jobs = list(self.props)
        assert len(jobs) == 1, "expected one job, saw %r" % jobs
        return jobs[0]

    def values(self, job, name):
        return [v for k, v in self.history[job] if k == name]

    def valid_by_phase(self, job):
        """{phase: {ProgressValid values seen while in it}}"""
        out = {}
        for state in self.states[job]:
            out.setdefault(state["Phase"], set()).add(state["ProgressValid"])
        return out

    def phases(self, job):
        out = []
        for p in self.values(job, "Phase"):
            if p and (not out or out[-1] != p):
                out.append(p)
        return out

    def close(self):
        self.conn.close_sync(None)


def cancel_at(watch, phase):
    """Makes @watch cancel the job as soon as it enters @phase; returns a
    list that receives the result of Cancel."""
    outcome = []

    def on_props(path, changed):
        if not outcome and changed.get("Phase") == phase:
            outcome.append(watch.cancel(path))
    watch.on_props = on_props
    return outcome
