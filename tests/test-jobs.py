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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smolvmtest as st  # noqa: E402
from jobwatch import GLib, JobWatch, cancel_at  # noqa: E402
from smolvmtest import MIB, snapshot_path, vm_path  # noqa: E402

BIG = 2048 * MIB
# smolvmd under a wrapper such as valgrind
SLOW_DAEMON = bool(os.environ.get("SMOLVM_TEST_DAEMON_WRAPPER"))


def make_big_rootfs(path):
    """@BIG bytes of data that is not all the same (no dedup, no holes)."""
    block = bytearray(os.urandom(4 * MIB))
    with open(path, "wb") as f:
        for i in range(BIG // len(block)):
            block[:8] = i.to_bytes(8, "little")
            f.write(block)


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
        # The disk copy stopped part-way. That the Cancel lands within the
        # copy rests on a 2 GiB copy outlasting one D-Bus round trip by far;
        # under valgrind the daemon answers too slowly for that (the rollback
        # is still checked there).
        if not SLOW_DAEMON:
            self.assertLess(watch.props[job]["BytesDone"], BIG)
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

    def test_cancel_restore_over_a_running_vm_leaves_it_running(self):
        """The snapshot's disk is copied while the VM still runs: a Cancel
        during the copy does not touch the VM at all."""
        env = self.env
        env.running_vm("big", rootfs=self.big)
        env.create_snapshot("big", "r3", **{"resume-source": True})
        pid = env.vm_prop("big", "Pid")
        before = self.state()
        w = self.watch()
        outcome = cancel_at(w, "copying-disk")
        w.call(st.MANAGER_PATH, st.MANAGER_IFACE, "RestoreSnapshot",
               GLib.Variant("(sa{sv})", ("r3", {})))
        reply = w.wait_reply()
        job = w.only_job()
        self.assertEqual(outcome, [None])
        self.assertCancelled(w, job, reply)
        self.assertNotIn("stopping", w.phases(job))
        self.assertEqual(self.state(), before)
        self.assertEqual(env.vm_state("big"), "running")
        self.assertEqual(env.vm_prop("big", "Pid"), pid)
        since = env.console_size("big")
        env.wait_tick("big", env.last_tick("big") + 1, since)
        # a restore that goes through stops it only after the copy
        w2 = self.watch()
        w2.call(st.MANAGER_PATH, st.MANAGER_IFACE, "RestoreSnapshot",
                GLib.Variant("(sa{sv})", ("r3", {"resume": GLib.Variant("b", True)})))
        self.assertEqual(w2.wait_reply()[0], "ok")
        phases = w2.phases(w2.only_job())
        self.assertLess(phases.index("copying-disk"), phases.index("stopping"))
        self.assertNotEqual(env.vm_prop("big", "Pid"), pid)

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
        vms_dir = os.path.join(env.state_dir, "vms")
        w.call(st.MANAGER_PATH, st.MANAGER_IFACE, "CreateVM", GLib.Variant("(a{sv})", (cfg,)))
        w.run_until(lambda: w.reply is not None, "the method's reply")
        # at once: the rollback is over when the caller hears of it, the
        # partial disk included (no .trash- directory still being removed)
        left = os.listdir(vms_dir)
        reply = w.wait_reply()
        job = w.only_job()
        self.assertEqual(left, [])
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
        # never there, or over: no longer there to cancel
        self.assertEqual(answers[1], st.ERROR_PREFIX + "NotFound")
        job = w.only_job()
        self.assertEqual(w.cancel(job), st.ERROR_PREFIX + "NotFound")


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
