#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Clones (org.smolvm.Manager.CloneSnapshot, org.smolvm.Snapshot.Clone) on
the Firecracker emulator: new VMs from one snapshot, their ids, ClonedFrom
and Clones, the rules of delete and restore, and the refusals."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smolvmtest as st  # noqa: E402
from smolvmtest import GVText, gv_dict, gv_str, snapshot_path, vm_path  # noqa: E402


def paths_of(out):
    return re.findall(r"'(/org/smolvm/Manager/vm/[^']*)'", out)


class TestClones(st.TestCase):
    def setUp(self):
        super().setUp()
        env = self.env
        env.running_vm("src")
        env.create_snapshot("src", "s1", **{"resume-source": True})

    def clone(self, snapshot_id, **options):
        return paths_of(self.env.call("CloneSnapshot", gv_str(snapshot_id), gv_dict(options)))

    def test_clones(self):
        env = self.env
        snap_dir = os.path.join(env.state_dir, "snapshots", "s1")
        made = self.clone("s1", count=GVText("uint32 3"), resume=True)
        self.assertEqual(made, [vm_path("src-%d" % n) for n in (1, 2, 3)])
        for n in (1, 2, 3):
            vm_id = "src-%d" % n
            self.assertEqual(env.vm_state(vm_id), "running")
            self.assertEqual(env.vm_prop(vm_id, "ClonedFrom"), "s1")
            self.assertEqual(env.vm_prop(vm_id, "RestoredFrom"), "")
            vm_dir = os.path.join(env.state_dir, "vms", vm_id)
            self.assertTrue(st.files_identical(os.path.join(vm_dir, "disk.ext4"),
                                               os.path.join(snap_dir, "disk.ext4")))
            self.assertEqual(os.stat(os.path.join(vm_dir, "kernel")).st_ino,
                             os.stat(os.path.join(snap_dir, "kernel")).st_ino)
            self.assertEqual(env.vm_info(vm_id)["cloned_from"], "s1")
        self.assertEqual(env.snap_prop("s1", "Clones"), made)
        # not a restore
        info = env.snapshot_info("s1")
        self.assertEqual((info["restored"], info["restored_vm_id"]), (False, ""))
        self.assertEqual(env.vm_state("src"), "running")

        # the snapshot's memory is mapped: no delete
        err = self.assertDBusError("InUse", env.delete_snapshot, "s1")
        self.assertIn("cloned", err.message)

        # through the snapshot object, with ids; paused without resume
        made2 = paths_of(env.gdbus(snapshot_path("s1"), "Clone", gv_dict(
            {"vm-ids": GVText("['b-vm', 'a-vm']")}), iface=st.SNAPSHOT_IFACE))
        self.assertEqual(made2, [vm_path("b-vm"), vm_path("a-vm")])
        self.assertEqual((env.vm_state("a-vm"), env.vm_state("b-vm")), ("paused", "paused"))
        self.assertEqual(env.snap_prop("s1", "Clones"), sorted(made + made2))

        # the restore-once rule is untouched, and a clone does not block it
        env.restore("s1", resume=True)
        self.assertEqual(env.vm_state("src"), "running")
        self.assertEqual(env.snapshot_info("s1")["restored_vm_id"], "src")

        # a clone is an ordinary VM: snapshot it and restore that
        env.create_snapshot("src-1", "c1", **{"resume-source": True})
        self.assertEqual(env.snapshot_info("c1")["vm_id"], "src-1")
        env.vm("src-1", "Stop", gv_dict())
        env.restore("c1", resume=True)
        self.assertEqual(env.vm_state("src-1"), "running")
        # it maps c1 now, no longer s1
        self.assertNotIn(vm_path("src-1"), env.snap_prop("s1", "Clones"))

        # stopped, or booted afresh, a clone no longer maps the snapshot
        env.vm("src-2", "Stop", gv_dict())
        env.vm("src-3", "Stop", gv_dict())
        env.vm("src-3", "Start")
        self.assertEqual(env.snap_prop("s1", "Clones"), [vm_path("a-vm"), vm_path("b-vm")])
        self.assertEqual(env.vm_prop("src-3", "ClonedFrom"), "s1")
        for vm_id in ("a-vm", "b-vm"):
            env.vm(vm_id, "Delete", gv_dict({"force": True}))
        self.assertEqual(env.snap_prop("s1", "Clones"), [])
        # the restored src still maps it
        self.assertDBusError("InUse", env.delete_snapshot, "s1")
        env.vm("src", "Stop", gv_dict())
        env.delete_snapshot("s1")

    def test_generated_ids_skip_taken_ones(self):
        env = self.env
        env.create_vm("src-1")
        made = self.clone("s1", count=GVText("uint32 2"))
        self.assertEqual(made, [vm_path("src-2"), vm_path("src-3")])

    def test_survives_a_restart(self):
        env = self.env
        made = self.clone("s1", count=GVText("uint32 2"), resume=True)
        env.daemon.restart()
        self.assertEqual(env.snap_prop("s1", "Clones"), made)
        self.assertEqual(env.vm_prop("src-1", "ClonedFrom"), "s1")
        self.assertEqual(env.vm_state("src-2"), "running")
        self.assertDBusError("InUse", env.delete_snapshot, "s1")

    def test_refusals(self):
        env = self.env
        before = sorted(env.list_vms())
        cases = [
            ("InvalidArgument", "s1", {"count": GVText("uint32 0")}),
            ("InvalidArgument", "s1", {"count": GVText("uint32 65")}),
            ("InvalidArgument", "s1", {"count": GVText("int32 2")}),  # not u
            ("InvalidArgument", "s1", {"colour": "blue"}),
            ("InvalidArgument", "s1", {"vm-ids": GVText("['x', 'x']")}),
            ("InvalidArgument", "s1", {"vm-ids": GVText("['Bad_Id']")}),
            ("InvalidArgument", "s1", {"vm-ids": GVText("['x']"), "count": GVText("uint32 2")}),
            ("AlreadyExists", "s1", {"vm-ids": GVText("['fresh', 'src']")}),
            ("Unsupported", "s1", {"network": True}),
            ("NotFound", "nope", {}),
            ("InvalidArgument", "Bad_Snap", {}),
        ]
        for name, snapshot_id, options in cases:
            with self.subTest(options=options, snapshot=snapshot_id):
                self.assertDBusError(name, env.call, "CloneSnapshot", gv_str(snapshot_id),
                                     gv_dict(options))
        self.assertEqual(sorted(env.list_vms()), before, "nothing made")
        self.assertEqual(sorted(os.listdir(os.path.join(env.state_dir, "vms"))), before)
        # an id refused once is free: the failed call released what it reserved
        self.assertEqual(self.clone("s1", **{"vm-ids": GVText("['fresh']")}),
                         [vm_path("fresh")])

    def test_a_failed_clone_keeps_the_others(self):
        """The second clone fails (an id so long that its VMM's socket path
        does not fit): the first is kept, the call fails naming both, and
        nothing of the second is left."""
        env = self.env
        long_id = "v" * 64
        err = self.assertDBusError("Failed", env.call, "CloneSnapshot", gv_str("s1"), gv_dict(
            {"vm-ids": GVText("['ok-1', '%s']" % long_id), "resume": True}))
        self.assertIn("Cloned snapshot 's1' into 1 of 2 VMs ('ok-1', kept)", err.message)
        self.assertIn("VM '%s': " % long_id, err.message)
        self.assertIn("107 bytes", err.message)
        self.assertEqual(sorted(env.list_vms()), ["ok-1", "src"])
        self.assertEqual(env.vm_state("ok-1"), "running")
        self.assertFalse(os.path.exists(os.path.join(env.state_dir, "vms", long_id)))
        self.assertEqual(env.snap_prop("s1", "Clones"), [vm_path("ok-1")])
        # its id is free again: the same failure, not AlreadyExists
        self.assertDBusError("Failed", env.call, "CloneSnapshot", gv_str("s1"), gv_dict(
            {"vm-ids": GVText("['%s']" % long_id)}))

    def test_damaged_snapshot(self):
        """A mem.bin of the wrong size, or a damaged vmstate.bin, is refused
        before any clone is made."""
        env = self.env
        snap_dir = os.path.join(env.state_dir, "snapshots", "s1")
        mem = os.path.join(snap_dir, "mem.bin")
        size = os.path.getsize(mem)
        os.truncate(mem, size // 2)
        err = self.assertDBusError("Failed", env.call, "CloneSnapshot", gv_str("s1"),
                                   gv_dict({"count": GVText("uint32 2")}))
        self.assertIn("mem.bin", err.message)
        os.truncate(mem, size)
        vmstate = os.path.join(snap_dir, "vmstate.bin")
        with open(vmstate, "r+b") as f:
            byte = f.read(1)
            f.seek(0)
            f.write(bytes([byte[0] ^ 0xff]))
        err = self.assertDBusError("Failed", env.call, "CloneSnapshot", gv_str("s1"), gv_dict())
        self.assertIn("checksum", err.message)
        self.assertEqual(sorted(env.list_vms()), ["src"])


if __name__ == "__main__":
    st.main("clones")
