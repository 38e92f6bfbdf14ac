#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Snapshot semantics of smolvmd, driven through `gdbus call` (and busctl).

Create, restore, delete and list, their rules and their failures; the
simulated guest of fc-emulator tells a restored guest (its tick counter
goes on) from a rebooted one.
"""

import json
import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smolvmtest as st  # noqa: E402
from smolvmtest import MIB, gv_dict, gv_str, snapshot_path, vm_path  # noqa: E402

INFO_KEYS = {"snapshot_id", "vm_id", "snapshot_path", "mem_file_path", "disk_path", "vm_config",
             "network_config", "created_at", "restored", "restored_vm_id", "backend"}
# what describes a VM, as opposed to what it is doing
VM_IDENTITY_KEYS = ("vm_id", "backend", "vcpu_count", "mem_size_mib", "kernel_path",
                    "initrd_path", "rootfs_path", "boot_args", "network", "disk_path",
                    "console_log_path", "network_config")


def identity(info):
    return {k: info[k] for k in VM_IDENTITY_KEYS}


def open_modes(pid, path):
    """The access mode (os.O_RDONLY...) of each descriptor process @pid
    holds on @path: how it opened it, which root's access cannot show."""
    modes = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) != path:
                continue
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                flags = re.search(r"^flags:\s+([0-7]+)$", f.read(), re.M).group(1)
        except FileNotFoundError:  # closed meanwhile
            continue
        modes.append(int(flags, 8) & os.O_ACCMODE)
    return modes


class SnapshotCase(st.TestCase):
    def snapshots_dir(self):
        return os.path.join(self.env.state_dir, "snapshots")

    def snapshot_entries(self):
        return sorted(os.listdir(self.snapshots_dir()))

    def vm_disk(self, vm_id):
        return os.path.join(self.env.state_dir, "vms", vm_id, "disk.ext4")

    def assertNoTraceOf(self, snapshot_id):
        env = self.env
        self.assertNotIn(snapshot_id, env.snapshot_ids())
        self.assertDBusError("NotFound", env.call, "GetSnapshot", gv_str(snapshot_id))
        leftovers = [e for e in self.snapshot_entries()
                     if e == snapshot_id or e.startswith(".tmp-") or e.startswith(".trash-")]
        self.assertEqual(leftovers, [])


class TestIds(SnapshotCase):
    def test_valid_and_invalid_snapshot_ids(self):
        env = self.env
        env.running_vm("idvm")
        bad = ["Upper", "has_underscore", "-leading", "trailing-", "a" * 65, "../x", "a/b",
               "sp ace", "dot.dot"]
        for snapshot_id in bad:
            with self.subTest(snapshot_id=snapshot_id):
                self.assertDBusError("InvalidArgument", env.create_snapshot, "idvm", snapshot_id,
                                     **{"resume-source": True})
        self.assertEqual(env.snapshot_ids(), [])
        self.assertEqual(self.snapshot_entries(), [])
        # refused before anything happened to the VM
        self.assertEqual(env.vm_state("idvm"), "running")
        self.assertEqual(env.vm_prop("idvm", "Pid"), env.vm_info("idvm")["pid"])

        good = ["a", "7", "a-b", "0-9-z", "b" * 64, "x" + "-" * 62 + "y"]
        for snapshot_id in good:
            with self.subTest(snapshot_id=snapshot_id):
                path = env.create_snapshot("idvm", snapshot_id, **{"resume-source": True})
                self.assertIn(snapshot_path(snapshot_id), path)
        self.assertEqual(env.snapshot_ids(), good)

        # the same rule for the other calls that take an id
        for snapshot_id in ("Upper", "../x", "a" * 65):
            self.assertDBusError("InvalidArgument", env.restore, snapshot_id)
            self.assertDBusError("InvalidArgument", env.delete_snapshot, snapshot_id)
        # and for VM ids
        for vm_id in ("Upper", "under_score", "-x", "x-", "v" * 65, "../x"):
            with self.subTest(vm_id=vm_id):
                self.assertDBusError("InvalidArgument", env.create_vm, vm_id)
                self.assertDBusError("InvalidArgument", env.create_snapshot, vm_id, "fine")
        self.assertEqual(sorted(env.list_vms()), ["idvm"])

    def test_generated_ids(self):
        env = self.env
        env.running_vm("auto-vm")
        seconds = {}
        ids = []
        # until two land in the same second (bounded by count, not by time)
        for _ in range(20):
            before = int(time.time())
            path = env.create_snapshot("auto-vm", "", **{"resume-source": True})
            after = int(time.time())
            new = [i for i in env.snapshot_ids() if i not in ids]
            self.assertEqual(len(new), 1)
            snapshot_id = new[0]
            ids.append(snapshot_id)
            self.assertIn(snapshot_path(snapshot_id), path)
            self.assertRegex(snapshot_id, st.ID_RE)
            m = re.fullmatch(r"snap-auto-vm-(\d+)(-\d+)?", snapshot_id)
            self.assertIsNotNone(m, snapshot_id)
            stamp = int(m.group(1))
            self.assertTrue(before <= stamp <= after, (before, stamp, after))
            seconds.setdefault(stamp, []).append(snapshot_id)
            if len(seconds[stamp]) >= 2:
                break
        self.assertEqual(len(set(ids)), len(ids))
        same = [v for v in seconds.values() if len(v) >= 2]
        self.assertTrue(same, "no two snapshots in the same second: %r" % ids)
        self.assertEqual(len(set(same[0])), len(same[0]))

        # a long VM id: the generated id is shortened, still valid
        long_id = "a" * 43 + "-" + "b" * 16  # 60 chars; cut at 44 it would end in '-'
        self.assertEqual(len(long_id), 60)
        env.running_vm(long_id)
        for _ in range(2):
            env.create_snapshot(long_id, "", **{"resume-source": True})
        made = env.snapshot_ids(long_id)
        self.assertEqual(len(made), 2)
        self.assertEqual(len(set(made)), 2)
        for snapshot_id in made:
            self.assertLessEqual(len(snapshot_id), 64, snapshot_id)
            self.assertRegex(snapshot_id, st.ID_RE)
            self.assertTrue(snapshot_id.startswith("snap-aaaa"), snapshot_id)
            self.assertEqual(env.snapshot_info(snapshot_id)["vm_id"], long_id)


class TestCreate(SnapshotCase):
    def test_needs_running_or_paused_vm(self):
        env = self.env
        env.create_vm("fresh")
        self.assertDBusError("InvalidState", env.create_snapshot, "fresh", "s1")
        env.start_vm("fresh")
        env.vm("fresh", "Stop", gv_dict())
        self.assertEqual(env.vm_state("fresh"), "stopped")
        self.assertDBusError("InvalidState", env.create_snapshot, "fresh", "s1")
        self.assertDBusError("NotFound", env.create_snapshot, "no-such-vm", "s1")
        self.assertNoTraceOf("s1")
        # a paused VM can be snapshotted, and stays paused
        env.start_vm("fresh", first_tick=False)
        env.vm("fresh", "Pause")
        env.create_snapshot("fresh", "s1")
        self.assertEqual(env.vm_state("fresh"), "paused")
        self.assertEqual(env.snapshot_ids(), ["s1"])
        # the id is taken now
        self.assertDBusError("AlreadyExists", env.create_snapshot, "fresh", "s1")

    def test_pauses_and_resume_source(self):
        env = self.env
        env.running_vm("pvm")
        env.create_snapshot("pvm", "stays-paused")
        self.assertEqual(env.vm_state("pvm"), "paused")
        env.vm("pvm", "Resume")
        self.assertEqual(env.vm_state("pvm"), "running")
        env.create_snapshot("pvm", "resumed", **{"resume-source": True})
        self.assertEqual(env.vm_state("pvm"), "running")
        # and the guest really runs on
        since = env.console_size("pvm")
        last = env.last_tick("pvm")
        env.wait_tick("pvm", last + 1, since)
        self.assertEqual(env.snapshot_ids("pvm"), ["stays-paused", "resumed"])
        # the options are checked
        self.assertDBusError("InvalidArgument", env.call, "CreateSnapshot", gv_str("pvm"),
                             gv_str("x1"), "{'resume-source': <'yes'>}")
        self.assertDBusError("InvalidArgument", env.call, "CreateSnapshot", gv_str("pvm"),
                             gv_str("x2"), "{'bogus': <true>}")
        self.assertNoTraceOf("x1")
        self.assertNoTraceOf("x2")

    def test_snapshot_contents(self):
        env = self.env
        env.running_vm("cvm")
        # something of the VM's own on its disk
        with open(self.vm_disk("cvm"), "r+b") as f:
            f.seek(3 * MIB)
            f.write(b"written by the guest")
        before = env.console_size("cvm")
        obj = env.create_snapshot("cvm", "full")
        self.assertEqual(obj, "(objectpath '%s',)" % snapshot_path("full"))
        self.assertEqual(env.call("GetSnapshot", gv_str("full")),
                         "(objectpath '%s',)" % snapshot_path("full"))
        (path, info), = env.list_snapshots()
        self.assertEqual(path, snapshot_path("full"))
        self.assertEqual(set(info), INFO_KEYS)
        d = os.path.join(self.snapshots_dir(), "full")
        self.assertEqual(info["snapshot_id"], "full")
        self.assertEqual(info["vm_id"], "cvm")
        self.assertEqual(info["snapshot_path"], os.path.join(d, "vmstate.bin"))
        self.assertEqual(info["mem_file_path"], os.path.join(d, "mem.bin"))
        self.assertEqual(info["disk_path"], os.path.join(d, "disk.ext4"))
        self.assertEqual(info["restored"], False)
        self.assertEqual(info["restored_vm_id"], "")
        self.assertEqual(info["backend"], "firecracker")
        self.assertEqual(info["network_config"], {})
        self.assertEqual(info["vm_config"]["vm_id"], "cvm")
        self.assertEqual(info["vm_config"]["mem_size_mib"], 128)
        self.assertEqual(info["vm_config"]["rootfs_path"], env.rootfs)
        created = info["created_at"] / 1e6
        self.assertLess(abs(created - time.time()), 3600, "created_at is not UTC microseconds")
        for f in ("vmstate.bin", "mem.bin", "disk.ext4", "snapshot.json"):
            self.assertTrue(os.path.isfile(os.path.join(d, f)), f)
        self.assertEqual(os.path.getsize(info["mem_file_path"]), 128 * MIB)
        # the disk copy: byte for byte, holes kept
        self.assertTrue(st.files_identical(info["disk_path"], self.vm_disk("cvm")))
        if st.is_sparse(self.vm_disk("cvm")):
            self.assertLess(st.allocated_bytes(info["disk_path"]), st.ROOTFS_SIZE // 8)
        # the object and its properties
        props = {
            "Id": "full", "VmId": "cvm", "SnapshotPath": info["snapshot_path"],
            "MemFilePath": info["mem_file_path"], "DiskPath": info["disk_path"],
            "CreatedAt": info["created_at"], "Restored": False, "RestoredVmId": "",
            "Backend": "firecracker", "NetworkConfig": {},
        }
        for name, value in props.items():
            self.assertEqual(env.snap_prop("full", name), value, name)
        self.assertEqual(env.snap_prop("full", "VmConfig"), info["vm_config"])
        # the guest was not rebooted by the snapshot
        self.assertNotIn(st.BOOT_BANNER, env.console("cvm")[before:])

    def test_vm_object_create_snapshot(self):
        env = self.env
        env.running_vm("ovm")
        out = env.vm("ovm", "CreateSnapshot", gv_str("via-vm"), "{'resume-source': <true>}")
        self.assertIn(snapshot_path("via-vm"), out)
        self.assertEqual(env.snapshot_info("via-vm")["vm_id"], "ovm")
        self.assertEqual(env.vm_state("ovm"), "running")

    def test_failure_leaves_nothing_and_vm_as_it_was(self):
        env = self.env
        env.running_vm("fvm")
        disk = self.vm_disk("fvm")
        saved = os.path.join(env.root, "saved-disk")
        shutil.copyfile(disk, saved)
        os.unlink(disk)  # the disk copy will fail
        err = self.assertDBusError("NotFound", env.create_snapshot, "fvm", "broken")
        self.assertIn("broken", err.message)
        self.assertEqual(env.vm_state("fvm"), "running")
        self.assertNoTraceOf("broken")
        since = env.console_size("fvm")
        env.wait_tick("fvm", env.last_tick("fvm") + 1, since)

        # a paused VM stays paused
        env.vm("fvm", "Pause")
        self.assertDBusError("NotFound", env.create_snapshot, "fvm", "broken",
                             **{"resume-source": True})
        self.assertEqual(env.vm_state("fvm"), "paused")
        self.assertNoTraceOf("broken")

        # the id is free again
        shutil.copyfile(saved, disk)
        env.create_snapshot("fvm", "broken")
        self.assertEqual(env.snapshot_ids(), ["broken"])
        self.assertTrue(st.files_identical(env.snapshot_info("broken")["disk_path"], saved))


class TestRestore(SnapshotCase):
    def test_guest_continues_from_the_snapshot(self):
        env = self.env
        env.running_vm("guest")
        env.wait_tick("guest", 3)
        before = env.vm_info("guest")
        env.create_snapshot("guest", "point")
        self.assertEqual(env.vm_state("guest"), "paused")
        saved_tick = env.last_tick("guest")
        self.assertIsNotNone(saved_tick)
        # the guest goes on after the snapshot, so that a restore must go back
        env.vm("guest", "Resume")
        env.wait_tick("guest", saved_tick + 3)
        old_pid = env.vm_prop("guest", "Pid")
        since = env.console_size("guest")
        monitor = env.monitor()
        mem = os.path.realpath(os.path.join(self.snapshots_dir(), "point", "mem.bin"))
        mem_sha = st.file_sha256(mem)

        out = env.restore("point", resume=True)
        self.assertEqual(out, "(objectpath '%s',)" % vm_path("guest"))
        self.assertEqual(env.vm_state("guest"), "running")
        self.assertEqual(env.vm_prop("guest", "RestoredFrom"), "point")
        new_pid = env.vm_prop("guest", "Pid")
        self.assertNotEqual(new_pid, 0)
        self.assertNotEqual(new_pid, old_pid)
        self.assertNotIn(old_pid, env.emulator_pids())  # stopped first
        self.assertEqual(identity(env.vm_info("guest")), identity(before))

        first, after_load = env.wait_loaded_tick("guest", since)
        self.assertEqual(first, saved_tick + 1, after_load[:500])
        self.assertNotIn(st.BOOT_BANNER, after_load)

        # the read-only (0400) mem.bin: the VMM holds it open read-only while
        # the guest runs on (writing its memory), and it never changes
        env.wait_tick("guest", first + 2, since)
        self.assertEqual(open_modes(new_pid, mem), [os.O_RDONLY])
        self.assertEqual(st.file_sha256(mem), mem_sha)
        self.assertEqual(os.stat(mem).st_mode & 0o7777, 0o400)

        # marked restored: properties, ListSnapshots, the signal, the disk
        self.assertIs(env.snap_prop("point", "Restored"), True)
        self.assertEqual(env.snap_prop("point", "RestoredVmId"), "guest")
        info = env.snapshot_info("point")
        self.assertIs(info["restored"], True)
        self.assertEqual(info["restored_vm_id"], "guest")
        line = monitor.wait_for_line(snapshot_path("point") + ":",
                                     "org.freedesktop.DBus.Properties.PropertiesChanged",
                                     "'Restored': <true>")
        self.assertIn("'RestoredVmId': <'guest'>", line)
        with open(os.path.join(self.snapshots_dir(), "point", "snapshot.json")) as f:
            saved = json.load(f)
        self.assertIs(saved["restored"], True)
        self.assertEqual(saved["restored_vm_id"], "guest")

    def test_restore_paused_then_resume(self):
        env = self.env
        env.running_vm("pg")
        env.wait_tick("pg", 2)
        env.create_snapshot("pg", "p")
        snap_tick = env.last_tick("pg")
        env.vm("pg", "Resume")
        env.wait_tick("pg", snap_tick + 2)
        since = env.console_size("pg")
        env.restore("p")
        self.assertEqual(env.vm_state("pg"), "paused")
        self.assertEqual(env.vm_prop("pg", "RestoredFrom"), "p")
        env.vm("pg", "Resume")
        self.assertEqual(env.vm_state("pg"), "running")
        first, after_load = env.wait_loaded_tick("pg", since)
        self.assertEqual(first, snap_tick + 1)
        self.assertNotIn(st.BOOT_BANNER, after_load)

    def test_restore_recreates_a_deleted_vm(self):
        env = self.env
        env.running_vm("gone", vcpu_count=3, mem_size_mib=256, boot_args="console=ttyS0 quiet")
        env.create_snapshot("gone", "keep")
        before = env.vm_info("gone")
        env.vm("gone", "Delete", "{'force': <true>}")
        self.assertDBusError("NotFound", env.call, "GetVM", gv_str("gone"))
        self.assertFalse(os.path.exists(os.path.join(env.state_dir, "vms", "gone")))
        self.assertEqual(env.snapshot_ids(), ["keep"])  # snapshots outlive their VM

        out = env.restore("keep", resume=True)
        self.assertEqual(out, "(objectpath '%s',)" % vm_path("gone"))
        self.assertEqual(env.call("GetVM", gv_str("gone")), "(objectpath '%s',)" % vm_path("gone"))
        after = env.vm_info("gone")
        self.assertEqual(identity(after), identity(before))
        self.assertEqual(after["vcpu_count"], 3)
        self.assertEqual(after["mem_size_mib"], 256)
        self.assertEqual(after["state"], "running")
        self.assertTrue(st.files_identical(after["disk_path"], env.snapshot_info("keep")["disk_path"]))
        since = env.console_size("gone")
        env.wait_tick("gone", 1, since)

    def test_restore_refuses_a_vm_recreated_with_other_settings(self):
        env = self.env
        env.running_vm("again", vcpu_count=1, mem_size_mib=128)
        env.create_snapshot("again", "orig")
        env.vm("again", "Delete", "{'force': <true>}")
        env.create_vm("again", vcpu_count=4, mem_size_mib=512)
        disk_before = st.file_sha256(env.vm_info("again")["disk_path"])
        err = self.assertDBusError("InvalidState", env.restore, "orig", resume=True)
        self.assertIn("delete the VM", err.message)
        info = env.vm_info("again")
        self.assertEqual((info["state"], info["vcpu_count"], info["mem_size_mib"]),
                         ("created", 4, 512))
        self.assertEqual(st.file_sha256(info["disk_path"]), disk_before)
        self.assertFalse(env.snapshot_info("orig")["restored"])
        # once that VM is gone, the restore brings back the original
        env.vm("again", "Delete", "{}")
        env.restore("orig", resume=True)
        info = env.vm_info("again")
        self.assertEqual((info["state"], info["vcpu_count"], info["mem_size_mib"]),
                         ("running", 1, 128))

    def test_restore_puts_the_snapshot_disk_back(self):
        env = self.env
        env.running_vm("dvm")
        env.create_snapshot("dvm", "clean", **{"resume-source": True})
        with open(self.vm_disk("dvm"), "r+b") as f:
            f.seek(5 * MIB)
            f.write(b"changed after the snapshot")
        self.assertFalse(st.files_identical(self.vm_disk("dvm"),
                                            env.snapshot_info("clean")["disk_path"]))
        env.restore("clean")
        self.assertTrue(st.files_identical(self.vm_disk("dvm"),
                                           env.snapshot_info("clean")["disk_path"]))
        self.assertFalse(os.path.exists(self.vm_disk("dvm") + ".pre-restore"))

    def test_once_force_and_in_use(self):
        env = self.env
        env.running_vm("once")
        env.create_snapshot("once", "one", **{"resume-source": True})
        env.restore("one", resume=True)
        self.assertEqual(env.vm_state("once"), "running")
        # without force a restored snapshot is AlreadyRestored, whatever its VM
        # does; InUse answers force while the restored VM maps its memory
        err = self.assertDBusError("AlreadyRestored", env.restore, "one")
        self.assertIn("once", err.message)
        self.assertDBusError("InUse", env.restore, "one", force=True)
        env.vm("once", "Pause")
        self.assertDBusError("AlreadyRestored", env.restore, "one")
        err = self.assertDBusError("InUse", env.restore, "one", force=True)
        self.assertIn("stop it first", err.message)
        env.vm("once", "Stop", gv_dict())
        self.assertEqual(env.vm_state("once"), "stopped")
        err = self.assertDBusError("AlreadyRestored", env.restore, "one")
        self.assertIn("one", err.message)
        since = env.console_size("once")
        env.restore("one", force=True, resume=True)
        self.assertEqual(env.vm_state("once"), "running")
        env.wait_tick("once", 1, since)
        self.assertIs(env.snap_prop("one", "Restored"), True)
        # a fresh boot no longer maps the snapshot: AlreadyRestored, not InUse
        env.vm("once", "Stop", gv_dict())
        env.start_vm("once")
        self.assertEqual(env.vm_prop("once", "RestoredFrom"), "")
        self.assertDBusError("AlreadyRestored", env.restore, "one")
        # the Snapshot object's own Restore
        out = env.gdbus(snapshot_path("one"), "Restore", "{'force': <true>}")
        self.assertIn(vm_path("once"), out)
        self.assertEqual(env.vm_state("once"), "paused")
        self.assertDBusError("InvalidArgument", env.restore, "one", bogus=True)
        self.assertDBusError("NotFound", env.restore, "never-made")

    def test_failed_restore(self):
        env = self.env
        env.running_vm("rf")
        env.create_snapshot("rf", "bad-mem", **{"resume-source": True})
        info = env.snapshot_info("bad-mem")
        # the VM's disk after the snapshot: this must survive the failure
        with open(self.vm_disk("rf"), "r+b") as f:
            f.seek(7 * MIB)
            f.write(b"marker: must survive a failed restore")
        expected = os.path.join(env.root, "expected-disk")
        shutil.copyfile(self.vm_disk("rf"), expected)
        snap_disk = os.path.join(env.root, "expected-snapshot-disk")
        shutil.copyfile(info["disk_path"], snap_disk)
        pid = env.vm_prop("rf", "Pid")
        mem = info["mem_file_path"]
        saved_mem = os.path.join(env.root, "saved-mem")
        shutil.copyfile(mem, saved_mem)

        # bound to fail, and known to be before the VM is touched: it runs on
        for damage in ("missing", "short"):
            with self.subTest(mem_bin=damage):
                if damage == "missing":
                    os.unlink(mem)
                else:
                    shutil.copyfile(saved_mem, mem)
                    os.truncate(mem, 64 * MIB)  # the snapshot expects 128 MiB
                err = self.assertDBusError("NotFound" if damage == "missing" else "Failed",
                                           env.restore, "bad-mem", force=True, resume=True)
                self.assertIn("bad-mem", err.message)
                self.assertIn("mem.bin", err.message)
                self.assertEqual(env.vm_state("rf"), "running")
                self.assertEqual(env.vm_prop("rf", "Pid"), pid)
                self.assertTrue(st.files_identical(self.vm_disk("rf"), expected))
                self.assertEqual(sorted(os.listdir(os.path.dirname(self.vm_disk("rf")))),
                                 ["disk.ext4", "kernel", "vm.json"])
                self.assertIs(env.snapshot_info("bad-mem")["restored"], False)

        # a mem.bin of the right size that the VMM refuses: found only by the
        # load, after the VM was stopped; rolled back to its previous disk
        shutil.copyfile(saved_mem, mem)
        with open(mem, "r+b") as f:
            f.write(b"not an emulator memory image")
        monitor = env.monitor()

        err = self.assertDBusError("Backend", env.restore, "bad-mem", resume=True)
        self.assertIn("bad-mem", err.message)
        self.assertTrue(st.files_identical(self.vm_disk("rf"), expected))
        self.assertTrue(st.files_identical(info["disk_path"], snap_disk))
        self.assertFalse(os.path.exists(self.vm_disk("rf") + ".pre-restore"))
        self.assertIs(env.snap_prop("bad-mem", "Restored"), False)
        self.assertEqual(env.snap_prop("bad-mem", "RestoredVmId"), "")
        self.assertIs(env.snapshot_info("bad-mem")["restored"], False)
        with open(os.path.join(self.snapshots_dir(), "bad-mem", "snapshot.json")) as f:
            self.assertIs(json.load(f)["restored"], False)
        self.assertEqual(env.vm_prop("rf", "RestoredFrom"), "")
        self.assertEqual(env.vm_state("rf"), "stopped")
        self.assertEqual(env.emulator_pids(), [])
        self.assertIn("exiting after a failed snapshot load", env.console("rf"))
        self.assertNotIn("'Restored': <true>", monitor.text())
        # the VM still works
        env.start_vm("rf")

        # a VM the failed restore would have recreated is not left behind
        env.vm("rf", "Delete", "{'force': <true>}")
        self.assertDBusError("Backend", env.restore, "bad-mem")
        self.assertDBusError("NotFound", env.call, "GetVM", gv_str("rf"))
        self.assertFalse(os.path.exists(os.path.join(env.state_dir, "vms", "rf")))
        self.assertNotIn("rf", env.list_vms())


class TestDeleteAndList(SnapshotCase):
    def test_delete_in_use(self):
        env = self.env
        env.running_vm("del")
        env.create_snapshot("del", "busy", **{"resume-source": True})
        env.create_snapshot("del", "idle", **{"resume-source": True})
        env.restore("busy")
        self.assertEqual(env.vm_state("del"), "paused")
        self.assertDBusError("InUse", env.delete_snapshot, "busy")
        env.vm("del", "Resume")
        self.assertDBusError("InUse", env.delete_snapshot, "busy")
        self.assertDBusError("InUse", env.gdbus, snapshot_path("busy"), "Delete", gv_dict())
        # another snapshot of the same VM is not in use
        idle_dir = os.path.join(self.snapshots_dir(), "idle")
        env.delete_snapshot("idle")
        self.assertFalse(os.path.exists(idle_dir))
        self.assertEqual(env.snapshot_ids(), ["busy"])
        env.vm("del", "Stop", gv_dict())
        busy_dir = os.path.join(self.snapshots_dir(), "busy")
        self.assertTrue(os.path.isdir(busy_dir))
        env.gdbus(snapshot_path("busy"), "Delete", gv_dict())
        self.assertFalse(os.path.exists(busy_dir))
        self.assertNoTraceOf("busy")
        self.assertEqual(self.snapshot_entries(), [])
        self.assertDBusError("NotFound", env.delete_snapshot, "busy")
        self.assertDBusError("InvalidArgument", env.call, "DeleteSnapshot", gv_str("busy"),
                             "{'force': <true>}")
        # the VM is unaffected
        self.assertIn("del", env.list_vms())

    def test_list_order_and_filter(self):
        env = self.env
        env.running_vm("vm-a")
        env.running_vm("vm-b")
        # creation order differs from the alphabetical one
        for vm_id, snapshot_id in (("vm-a", "zz-first"), ("vm-b", "mm-second"),
                                   ("vm-a", "aa-third"), ("vm-b", "bb-fourth")):
            env.create_snapshot(vm_id, snapshot_id, **{"resume-source": True})
        entries = env.list_snapshots()
        self.assertEqual([i["snapshot_id"] for _, i in entries],
                         ["zz-first", "mm-second", "aa-third", "bb-fourth"])
        self.assertEqual([p for p, _ in entries],
                         [snapshot_path(i["snapshot_id"]) for _, i in entries])
        created = [i["created_at"] for _, i in entries]
        self.assertEqual(created, sorted(created))
        self.assertEqual(env.snapshot_ids("vm-a"), ["zz-first", "aa-third"])
        self.assertEqual(env.snapshot_ids("vm-b"), ["mm-second", "bb-fourth"])
        self.assertEqual(env.snapshot_ids("vm-c"), [])
        env.delete_snapshot("mm-second")
        self.assertEqual(env.snapshot_ids(), ["zz-first", "aa-third", "bb-fourth"])


class TestBusctl(SnapshotCase):
    """The whole cycle with `busctl call`."""

    def test_cycle(self):
        env = self.env
        out = env.busctl_manager("CreateVM", "a{sv}", 5, "vm_id", "s", "my-vm",
                                 "kernel_path", "s", env.kernel, "rootfs_path", "s", env.rootfs,
                                 "mem_size_mib", "u", 128, "network", "b", "false")
        self.assertEqual(out, [vm_path("my-vm")])
        self.assertEqual(env.busctl("call", st.BUS_NAME, vm_path("my-vm"), st.VM_IFACE, "Start"),
                         None)
        env.wait_tick("my-vm", 2)
        self.assertEqual(env.busctl_manager("ListSnapshots", "s", ""), [[]])
        out = env.busctl_manager("CreateSnapshot", "ssa{sv}", "my-vm", "snap", 0)
        self.assertEqual(out, [snapshot_path("snap")])
        self.assertEqual(env.busctl("get-property", st.BUS_NAME, vm_path("my-vm"), st.VM_IFACE,
                                    "State"), "paused")
        listed = env.busctl_manager("ListSnapshots", "s", "")[0]
        self.assertEqual([(p, i["snapshot_id"], i["vm_id"], i["restored"]) for p, i in listed],
                         [(snapshot_path("snap"), "snap", "my-vm", False)])
        self.assertEqual(env.busctl_manager("ListSnapshots", "s", "other-vm"), [[]])
        out = env.busctl_manager("RestoreSnapshot", "sa{sv}", "snap", 1, "resume", "b", "true")
        self.assertEqual(out, [vm_path("my-vm")])
        self.assertEqual(env.busctl("get-property", st.BUS_NAME, vm_path("my-vm"), st.VM_IFACE,
                                    "State"), "running")
        listed = env.busctl_manager("ListSnapshots", "s", "my-vm")[0]
        self.assertEqual([(i["snapshot_id"], i["restored"], i["restored_vm_id"])
                          for _, i in listed], [("snap", True, "my-vm")])
        vms = env.busctl_manager("ListVMs")[0]
        self.assertEqual([(p, i["vm_id"], i["state"], i["restored_from"]) for p, i in vms],
                         [(vm_path("my-vm"), "my-vm", "running", "snap")])
        self.assertEqual(env.busctl_manager("GetSnapshot", "s", "snap"), [snapshot_path("snap")])
        # busctl reports failures too (without the error name)
        with self.assertRaises(st.DBusError):
            env.busctl_manager("DeleteSnapshot", "sa{sv}", "snap", 0)  # InUse
        env.busctl("call", st.BUS_NAME, vm_path("my-vm"), st.VM_IFACE, "Stop", "a{sv}", 0)
        env.busctl_manager("DeleteSnapshot", "sa{sv}", "snap", 0)
        self.assertEqual(env.busctl_manager("ListSnapshots", "s", ""), [[]])


if __name__ == "__main__":
    st.main("snapshots")
