#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""smolvmd killed (SIGKILL) and started again on the same directories: it
finds its VMs and snapshots as they were, takes over the emulators that kept
running, and marks the VMs whose emulator died meanwhile as stopped."""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smolvmtest as st  # noqa: E402
from smolvmtest import gv_dict, vm_path  # noqa: E402


class TestRestart(st.TestCase):
    def test_takes_over_running_vms(self):
        env = self.env
        # a restored VM, running
        env.running_vm("kept")
        env.create_snapshot("kept", "s1", **{"resume-source": True})
        env.restore("s1", resume=True)
        # a paused one, a created one, one that will die, and one more snapshot
        env.running_vm("sleepy")
        env.create_snapshot("sleepy", "s2")
        self.assertEqual(env.vm_state("sleepy"), "paused")
        env.create_vm("idle")
        env.running_vm("doomed")
        env.running_vm("stopped")
        env.vm("stopped", "Stop", gv_dict())

        objects = env.managed_objects()
        snapshots = env.list_snapshots()
        vms = env.list_vms()
        self.assertEqual(vms["kept"]["state"], "running")
        self.assertEqual(vms["kept"]["restored_from"], "s1")
        kept_pid = vms["kept"]["pid"]
        sleepy_pid = vms["sleepy"]["pid"]
        doomed_pid = vms["doomed"]["pid"]
        old_daemon = env.daemon.pid

        env.daemon.kill()
        # the guests do not depend on smolvmd
        for pid in (kept_pid, sleepy_pid, doomed_pid):
            self.assertTrue(st.process_alive(pid), pid)
        since = env.console_size("kept")
        env.wait_tick("kept", env.last_tick("kept") + 1, since)
        os.kill(doomed_pid, signal.SIGKILL)
        st.wait_for(lambda: not st.process_alive(doomed_pid), "the doomed emulator to die")

        env.daemon.start()
        self.assertNotEqual(env.daemon.pid, old_daemon)

        # all as before, but for the VM that died
        expected = {path: {iface: dict(props) for iface, props in ifaces.items()}
                    for path, ifaces in objects.items()}
        doomed = expected[vm_path("doomed")][st.VM_IFACE]
        doomed["State"] = "stopped"
        doomed["Pid"] = 0
        try:
            st.wait_for(lambda: env.managed_objects() == expected,
                        "smolvmd to take over its VMs")
        except AssertionError:
            self.assertEqual(env.managed_objects(), expected)
        self.assertEqual(env.list_snapshots(), snapshots)
        expected_vms = dict(vms)
        expected_vms["doomed"] = dict(vms["doomed"], state="stopped", pid=0)
        self.assertEqual(env.list_vms(), expected_vms)
        self.assertEqual(env.vm_prop("kept", "Pid"), kept_pid)
        self.assertEqual(env.vm_prop("kept", "RestoredFrom"), "s1")
        self.assertIs(env.snap_prop("s1", "Restored"), True)
        self.assertEqual(env.snap_prop("s1", "RestoredVmId"), "kept")

        # the guest keeps ticking, in the same process
        since = env.console_size("kept")
        env.wait_tick("kept", env.last_tick("kept") + 2, since)
        self.assertNotIn(st.BOOT_BANNER, env.console("kept")[since:])

        # the taken-over VMs are fully under control again
        self.assertDBusError("InUse", env.delete_snapshot, "s1")
        self.assertDBusError("InUse", env.restore, "s1", force=True)
        env.vm("kept", "Pause")
        self.assertEqual(env.vm_state("kept"), "paused")
        env.vm("kept", "Resume")
        env.create_snapshot("kept", "after-restart", **{"resume-source": True})
        self.assertEqual(env.vm_state("kept"), "running")
        env.vm("kept", "Stop", gv_dict())
        st.wait_for(lambda: not st.process_alive(kept_pid), "the taken-over emulator to end")
        self.assertEqual(env.vm_state("kept"), "stopped")
        env.delete_snapshot("s1")

        # the paused guest resumes where it was
        last = env.last_tick("sleepy")
        since = env.console_size("sleepy")
        env.vm("sleepy", "Resume")
        self.assertEqual(env.wait_tick("sleepy", 1, since), last + 1)

        # the VM that died boots again
        env.start_vm("doomed")
        self.assertEqual(env.vm_state("idle"), "created")
        env.start_vm("idle")

    def test_snapshot_in_progress_is_forgotten(self):
        """A snapshot cut short by a crash leaves no trace after the restart."""
        env = self.env
        env.running_vm("v")
        env.create_snapshot("v", "done", **{"resume-source": True})
        env.daemon.kill()
        # what a crash mid-snapshot leaves: a hidden directory
        tmp = os.path.join(env.state_dir, "snapshots", ".tmp-half")
        os.makedirs(tmp)
        with open(os.path.join(tmp, "vmstate.bin"), "w") as f:
            f.write("partial")
        env.daemon.start()
        self.assertEqual(env.snapshot_ids(), ["done"])
        st.wait_for(lambda: not os.path.exists(tmp), "the leftover to be removed")
        self.assertEqual(sorted(os.listdir(os.path.join(env.state_dir, "snapshots"))), ["done"])
        env.create_snapshot("v", "half")
        self.assertEqual(env.snapshot_ids(), ["done", "half"])

    def test_restore_cut_short_is_undone(self):
        """A crash between setting a VM's disk aside and the end of the restore:
        the next start puts the VM's own disk back, unless the VM already runs
        the snapshot."""
        env = self.env
        env.create_vm("cut")
        disk = env.vm_info("cut")["disk_path"]
        own = st.file_sha256(disk)
        env.running_vm("done")
        done_disk = env.vm_info("done")["disk_path"]
        done_now = st.file_sha256(done_disk)
        env.daemon.kill()
        # "cut": own disk set aside, the snapshot's half copied
        os.rename(disk, disk + ".pre-restore")
        with open(disk, "wb") as f:
            f.write(b"half a copy")
        # "done": running the snapshot's disk, the old one not yet removed
        with open(done_disk + ".pre-restore", "wb") as f:
            f.write(b"the disk before the restore")
        env.daemon.start()
        self.assertEqual(st.file_sha256(disk), own)
        self.assertFalse(os.path.exists(disk + ".pre-restore"))
        self.assertEqual(env.vm_state("done"), "running")
        self.assertEqual(st.file_sha256(done_disk), done_now)
        self.assertFalse(os.path.exists(done_disk + ".pre-restore"))
        st.wait_for(lambda: not [n for n in os.listdir(os.path.join(env.state_dir, "vms"))
                                 if n.startswith(".")], "the discarded files to go")


if __name__ == "__main__":
    st.main("restart")
