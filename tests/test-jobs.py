#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""org.smolvm.Job: long operations are visible while they run, and Cancel
rolls them back exactly as a failure does.

A GDBus client (python3-gi) watches the ObjectManager while it calls a
method asynchronously: it records every Job that appears, the properties it
goes through and its Completed signal. The VM's disk holds 2 GiB of real
data, so the copies take long enough for a Cancel sent on seeing a phase
to land in it; the assertions are on what happened (phases, rising
progress, bytes done short of the total, the state directory before and
after), never on how long anything took.
"""

import os
import sys

import gi

gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smolvmtest as st  # noqa: E402
from smolvmtest import MIB, snapshot_path, vm_path  # noqa: E402

JOB_IFACE = "org.smolvm.Job"
BIG = 2048 * MIB


def make_big_rootfs(path):
    """@BIG bytes of data that is not all the same (no dedup, no holes)."""
    block = bytearray(os.urandom(4 * MIB))
    with open(path, "wb") as f:
        for i in range(BIG // len(block)):
            block[:8] = i.to_bytes(8, "little")
            f.write(block)


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


class JobCase(st.TestCase):
    def setUp(self):
        super().setUp()
        self.big = os.path.join(self.env.root, "big.ext4")
        make_big_rootfs(self.big)

    def watch(self):
        w = JobWatch(self.env)
        self.addCleanup(w.close)
        return w

    def state(self):
        return st.tree_fingerprint(self.env.state_dir)

    def assertCancelled(self, watch, job, reply):
        self.assertEqual(reply[0], "error", reply)
        self.assertEqual(reply[1], st.ERROR_PREFIX + "Cancelled", reply)
        self.assertTrue(reply[2].startswith("Cancelled"), reply)
        self.assertEqual(watch.completed.get(job), (False, reply[2]))
        self.assertIn(job, watch.removed)
        # the copy stopped part-way: it did not run to its end
        self.assertLess(watch.props[job]["BytesDone"], watch.props[job]["BytesTotal"])


class TestCreateSnapshotJob(JobCase):
    def test_progress_phases_and_completion(self):
        env = self.env
        env.running_vm("big", rootfs=self.big)
        w = self.watch()
        w.call(st.MANAGER_PATH, st.MANAGER_IFACE, "CreateSnapshot",
               GLib.Variant("(ssa{sv})", ("big", "s1", {"resume-source": GLib.Variant("b", True)})))
        self.assertEqual(w.wait_reply(), ("ok", (snapshot_path("s1"),)))
        job = w.only_job()
        self.assertRegex(job, r"^/org/smolvm/Manager/job/\d+$")
        props = w.props[job]
        self.assertEqual(props["Operation"], "snapshot-create")
        self.assertEqual(props["Objects"], [vm_path("big"), snapshot_path("s1")])
        self.assertEqual(props["StartedByUid"], os.getuid())
        self.assertGreater(props["StartTime"], 0)
        self.assertGreaterEqual(props["BytesTotal"], BIG)
        self.assertEqual(props["BytesDone"], props["BytesTotal"])
        self.assertEqual(props["Progress"], 1.0)
        self.assertEqual(w.phases(job), ["pausing", "saving-state", "copying-disk",
                                         "checksumming", "committing", "resuming"])
        # rising, within [0, 1], with values between the ends
        progress = w.values(job, "Progress")
        self.assertEqual(progress, sorted(progress))
        self.assertTrue(all(0.0 <= p <= 1.0 for p in progress))
        self.assertTrue(any(0.0 < p < 1.0 for p in progress), progress)
        # Firecracker's snapshot/create tells nothing; the disk copy does
        valid = w.valid_by_phase(job)
        self.assertEqual(valid.get("saving-state"), {False})
        self.assertEqual(valid.get("copying-disk"), {True})
        self.assertFalse(props["Cancelable"])
        self.assertEqual(w.completed[job], (True, ""))
        self.assertIn(job, w.removed)
        self.assertNotIn(job, env.managed_objects())
        self.assertEqual(env.vm_state("big"), "running")


class TestCancel(JobCase):
    def test_cancel_create_of_a_running_vm(self):
        env = self.env
        env.running_vm("big", rootfs=self.big)
        before = self.state()
        w = self.watch()
        outcome = cancel_at(w, "copying-disk")
        w.call(st.MANAGER_PATH, st.MANAGER_IFACE, "CreateSnapshot",
               GLib.Variant("(ssa{sv})", ("big", "c1", {})))
        reply = w.wait_reply()
        job = w.only_job()
        self.assertEqual(outcome, [None])
        self.assertCancelled(w, job, reply)
        self.assertIn("c1", reply[2])
        self.assertIn("cancelling", w.phases(job))
        # nothing left, and the VM runs on as it did
        self.assertEqual(self.state(), before)
        self.assertEqual(env.snapshot_ids(), [])
        self.assertEqual(env.vm_state("big"), "running")
        since = env.console_size("big")
        env.wait_tick("big", env.last_tick("big") + 1, since)
        # the id is free: the same snapshot can be made now
        env.create_snapshot("big", "c1")
        self.assertEqual(env.snapshot_ids(), ["c1"])

    def test_cancel_create_of_a_paused_vm_keeps_it_paused(self):
        env = self.env
        env.running_vm("big", rootfs=self.big)
        env.vm("big", "Pause")
        before = self.state()
        w = self.watch()
        outcome = cancel_at(w, "copying-disk")
        w.call(vm_path("big"), st.VM_IFACE, "CreateSnapshot",
               GLib.Variant("(sa{sv})", ("c2", {"resume-source": GLib.Variant("b", True)})))
        reply = w.wait_reply()
        self.assertEqual(outcome, [None])
        self.assertCancelled(w, w.only_job(), reply)
        self.assertEqual(self.state(), before)
        self.assertEqual(env.vm_state("big"), "paused")

    def test_cancel_restore_into_a_deleted_vm(self):
        env = self.env
        env.running_vm("big", rootfs=self.big)
        env.create_snapshot("big", "r1")
        env.vm("big", "Delete", "{'force': <true>}")
        before = self.state()
        w = self.watch()
        outcome = cancel_at(w, "copying-disk")
        w.call(st.MANAGER_PATH, st.MANAGER_IFACE, "RestoreSnapshot",
               GLib.Variant("(sa{sv})", ("r1", {"resume": GLib.Variant("b", True)})))
        reply = w.wait_reply()
        job = w.only_job()
        self.assertEqual(outcome, [None])
        self.assertCancelled(w, job, reply)
        self.assertEqual(w.props[job]["Operation"], "snapshot-restore")
        self.assertEqual(w.props[job]["Objects"], [snapshot_path("r1"), vm_path("big")])
        self.assertEqual(self.state(), before)
        self.assertIsNone(env.vm_info("big"))
        self.assertIs(env.snapshot_info("r1")["restored"], False)
        # and the snapshot still restores
        since = env.console_size("big")
        env.restore("r1", resume=True)
        first, _ = env.wait_loaded_tick("big", since)
        self.assertGreater(first, 0)

    def test_cancel_restore_puts_the_previous_disk_back(self):
        env = self.env
        env.running_vm("big", rootfs=self.big)
        env.create_snapshot("big", "r2")
        env.vm("big", "Stop", "{}")
        # the VM's disk changes after the snapshot; a cancelled restore keeps it
        with open(os.path.join(env.state_dir, "vms", "big", "disk.ext4"), "r+b") as f:
            f.write(b"written after the snapshot")
        before = self.state()
        w = self.watch()
        outcome = cancel_at(w, "copying-disk")
        w.call(snapshot_path("r2"), st.SNAPSHOT_IFACE, "Restore",
               GLib.Variant("(a{sv})", ({},)))
        reply = w.wait_reply()
        self.assertEqual(outcome, [None])
        self.assertCancelled(w, w.only_job(), reply)
        self.assertEqual(self.state(), before)
        self.assertEqual(env.vm_state("big"), "stopped")

    def test_cancel_vm_create(self):
        env = self.env
        before = self.state()
        w = self.watch()
        outcome = cancel_at(w, "copying-disk")
        cfg = {"vm_id": GLib.Variant("s", "newbig"), "kernel_path": GLib.Variant("s", env.kernel),
               "rootfs_path": GLib.Variant("s", self.big),
               "mem_size_mib": GLib.Variant("u", 128), "network": GLib.Variant("b", False)}
        w.call(st.MANAGER_PATH, st.MANAGER_IFACE, "CreateVM", GLib.Variant("(a{sv})", (cfg,)))
        reply = w.wait_reply()
        job = w.only_job()
        self.assertEqual(outcome, [None])
        self.assertCancelled(w, job, reply)
        self.assertEqual(w.props[job]["Operation"], "vm-create")
        self.assertEqual(w.props[job]["Objects"], [vm_path("newbig")])
        self.assertEqual(self.state(), before)
        self.assertIsNone(env.vm_info("newbig"))
        env.create_vm("newbig")  # the id is free again
        self.assertEqual(env.vm_state("newbig"), "created")

    def test_cancel_refusals(self):
        env = self.env
        env.running_vm("big", rootfs=self.big)
        w = self.watch()
        answers = []

        def on_props(path, changed):
            if not answers and changed.get("Phase") == "copying-disk":
                answers.append(w.cancel(path, {"bogus": GLib.Variant("b", True)}))
                answers.append(w.cancel("/org/smolvm/Manager/job/999999"))
        w.on_props = on_props
        w.call(st.MANAGER_PATH, st.MANAGER_IFACE, "CreateSnapshot",
               GLib.Variant("(ssa{sv})", ("big", "k1", {})))
        self.assertEqual(w.wait_reply()[0], "ok")
        self.assertEqual(answers[0], st.ERROR_PREFIX + "InvalidArgument")
        gone = ("org.freedesktop.DBus.Error.UnknownObject",
                "org.freedesktop.DBus.Error.UnknownMethod")
        self.assertIn(answers[1], gone)
        job = w.only_job()
        # over: no longer there to cancel
        self.assertIn(w.cancel(job), gone)


class TestOtherJobs(JobCase):
    def test_delete_jobs_are_published_and_not_cancelable(self):
        env = self.env
        env.running_vm("big", rootfs=self.big)
        env.create_snapshot("big", "d1", **{"resume-source": True})
        w = self.watch()
        w.call(st.MANAGER_PATH, st.MANAGER_IFACE, "DeleteSnapshot",
               GLib.Variant("(sa{sv})", ("d1", {})))
        self.assertEqual(w.wait_reply(), ("ok", ()))
        job = w.only_job()
        self.assertEqual(w.props[job]["Operation"], "snapshot-delete")
        self.assertEqual(w.props[job]["Objects"], [snapshot_path("d1")])
        self.assertEqual(set(w.values(job, "Cancelable")), {False})
        self.assertEqual(w.completed[job], (True, ""))

        w2 = self.watch()
        w2.call(vm_path("big"), st.VM_IFACE, "Delete",
                GLib.Variant("(a{sv})", ({"force": GLib.Variant("b", True)},)))
        self.assertEqual(w2.wait_reply(), ("ok", ()))
        job = w2.only_job()
        self.assertEqual(w2.props[job]["Operation"], "vm-delete")
        self.assertEqual(w2.phases(job), ["stopping", "removing"])
        self.assertEqual(w2.completed[job], (True, ""))

    def test_quick_verbs_have_no_job(self):
        env = self.env
        env.create_vm("small")
        w = self.watch()
        w.call(vm_path("small"), st.VM_IFACE, "Start", None)
        self.assertEqual(w.wait_reply(), ("ok", ()))
        self.assertEqual(w.props, {})


if __name__ == "__main__":
    st.main("jobs")
