#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""smolvmd killed (SIGKILL) and started again on the same directories: it
finds its VMs and snapshots as they were, takes over the emulators that kept
running, and marks the VMs whose emulator died meanwhile as stopped."""

import json
import os
import re
import shutil
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smolvmtest as st  # noqa: E402
from smolvmtest import MIB, gv_dict, vm_path  # noqa: E402

BIG = 1536 * MIB


def make_big_rootfs(path):
    """@BIG bytes of data that is not all the same (no holes): its copy takes
    long enough to kill smolvmd in the middle of it."""
    block = bytearray(os.urandom(4 * MIB))
    with open(path, "wb") as f:
        for i in range(BIG // len(block)):
            block[:8] = i.to_bytes(8, "little")
            f.write(block)


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

    def test_abandoned_transfer_caches_are_cleared(self):
        """At start-up a push's leftover goes, and so does a pull cache
        untouched for more than a week; a recent pull cache stays for the
        same pull started again."""
        env = self.env
        env.daemon.kill()
        cache = os.path.join(env.state_dir, "oci-cache")
        day = 24 * 3600
        dirs = {"push-Ab12Cd": 0, "pull-" + "a" * 64: 8 * day, "pull-" + "b" * 64: day}
        for name, age in dirs.items():
            blobs = os.path.join(cache, name, "blobs", "sha256")
            os.makedirs(blobs)
            with open(os.path.join(blobs, "c" * 64), "w") as f:
                f.write("a verified blob")
            when = os.stat(blobs).st_mtime - age
            for path in (blobs, os.path.join(cache, name)):
                os.utime(path, (when, when))
        env.daemon.start()
        st.wait_for(lambda: sorted(os.listdir(cache)) == ["pull-" + "b" * 64],
                    "the abandoned caches to be removed")
        log = env.daemon_log()
        self.assertIn("push-Ab12Cd, left by a push that did not end", log)
        self.assertRegex(log, r"pull-a{64}, the blobs of a pull given up on \(untouched for 8 days\)")

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

    def test_symlinked_records_are_refused(self):
        """A vm.json or snapshot.json that is a symlink is never followed: the
        record is skipped with a warning naming the file, and nothing of the
        file it points to reaches the log."""
        env = self.env
        env.running_vm("linked")
        env.create_snapshot("linked", "via-link", **{"resume-source": True})
        env.create_snapshot("linked", "to-secret", **{"resume-source": True})
        env.vm("linked", "Stop", gv_dict())
        env.create_vm("plain")
        env.daemon.kill()
        secret = os.path.join(env.root, "shadow")
        with open(secret, "w") as f:
            f.write("root:$y$j9T$SECRET-HASH-of-smolvm-test:19000:0:99999:7:::\n")
        outside = os.path.join(env.root, "outside")
        os.mkdir(outside)
        # valid records, but reached through a symlink
        vm_json = os.path.join(env.state_dir, "vms", "linked", "vm.json")
        snap_json = os.path.join(env.state_dir, "snapshots", "via-link", "snapshot.json")
        for i, path in enumerate((vm_json, snap_json)):
            target = os.path.join(outside, "%d.json" % i)
            os.rename(path, target)
            os.symlink(target, path)
        secret_json = os.path.join(env.state_dir, "snapshots", "to-secret", "snapshot.json")
        os.unlink(secret_json)
        os.symlink(secret, secret_json)
        env.daemon.start()
        self.assertEqual(env.snapshot_ids(), [])
        self.assertEqual(sorted(env.list_vms()), ["plain"])
        log = env.daemon_log()
        for path in (vm_json, snap_json, secret_json):
            self.assertRegex(log, r"WARNING.*%s.*symbolic link" % re.escape(path))
        self.assertNotIn("SECRET-HASH", log)
        self.assertNotIn("root:", log)

    def test_invalid_records_are_skipped(self):
        """Records that do not validate are skipped whole with a warning that
        names the file; none of them gets a critical out of the daemon (which
        runs with G_DEBUG=fatal-criticals)."""
        env = self.env
        env.running_vm("good")
        env.create_snapshot("good", "net-string", **{"resume-source": True})
        env.create_snapshot("good", "net-list", **{"resume-source": True})
        env.create_snapshot("good", "config-string", **{"resume-source": True})
        env.create_snapshot("good", "fine", **{"resume-source": True})
        env.create_snapshot("good", "twice", **{"resume-source": True})
        for vm_id in ("weird", "config-list", "net-number", "pid-string", "vm-twice"):
            env.create_vm(vm_id)
        env.daemon.kill()

        bad = {
            ("snapshots", "net-string", "snapshot.json"): {"network_config": "eth0"},
            ("snapshots", "net-list", "snapshot.json"): {"network_config": ["a", "b"]},
            ("snapshots", "config-string", "snapshot.json"): {"vm_config": "x"},
            ("vms", "weird", "vm.json"): {"state": "weird"},
            ("vms", "config-list", "vm.json"): {"config": [1, 2]},
            ("vms", "net-number", "vm.json"): {"network_config": {"ip": 5}},
            ("vms", "pid-string", "vm.json"): {"pid": "12"},
        }
        paths = []
        for parts, change in bad.items():
            path = os.path.join(env.state_dir, *parts)
            with open(path) as f:
                record = json.load(f)
            record.update(change)
            with open(path, "w") as f:
                json.dump(record, f)
            paths.append(path)
        # a valid record written twice: json-glib alone would take the
        # second and leak the first
        for parts in (("snapshots", "twice", "snapshot.json"), ("vms", "vm-twice", "vm.json")):
            path = os.path.join(env.state_dir, *parts)
            with open(path) as f:
                text = f.read()
            with open(path, "w") as f:
                f.write(text + "\n" + text)
            paths.append(path)
        env.daemon.start()

        self.assertEqual(env.snapshot_ids(), ["fine"])
        self.assertEqual(sorted(env.list_vms()), ["good"])
        self.assertEqual(env.vm_state("good"), "running")
        log = env.daemon_log()
        for path in paths:
            self.assertRegex(log, r"WARNING.*Skipping.*%s" % re.escape(path))
        self.assertNotIn("CRITICAL", log)

    def test_many_records(self):
        """Enough records that start-up reads them in several threads: every
        valid one is there with its own info (records of two configs, which
        the daemon shares between the records that have the same), in
        creation order; the invalid ones, wherever they fall, are skipped
        with a warning each."""
        env = self.env
        env.running_vm("many")
        env.create_snapshot("many", "seed", **{"resume-source": True})
        env.daemon.kill()
        top = os.path.join(env.state_dir, "snapshots")
        with open(os.path.join(top, "seed", "snapshot.json")) as f:
            seed = json.load(f)
        shutil.rmtree(os.path.join(top, "seed"))

        n, bad = 700, {0, 349, 350, 699}
        expected = []
        for i in range(n):
            sid = "rec-%04d" % i
            record = json.loads(json.dumps(seed))
            record["snapshot_id"] = sid
            record["vm_config"]["vcpu_count"] = 1 + i % 2
            # creation order is the reverse of the names'
            record["created_at"] = "2026-01-01T00:%02d:%02d.%06d+00:00" % (
                (n - i) // 60, (n - i) % 60, i)
            if i in bad:
                record["vm_config"] = "x"
            else:
                expected.append(sid)
            os.mkdir(os.path.join(top, sid))
            with open(os.path.join(top, sid, "snapshot.json"), "w") as f:
                json.dump(record, f)
        env.daemon.start()

        listed = env.list_snapshots()
        self.assertEqual([info["snapshot_id"] for _, info in listed], expected[::-1])
        for path, info in listed:
            i = int(info["snapshot_id"][4:])
            self.assertEqual(path, st.snapshot_path(info["snapshot_id"]))
            self.assertEqual(info["vm_config"]["vcpu_count"], 1 + i % 2)
            self.assertEqual(info["vm_config"]["mem_size_mib"], seed["vm_config"]["mem_size_mib"])
            self.assertEqual(os.path.dirname(info["snapshot_path"]),
                             os.path.join(top, info["snapshot_id"]))
        self.assertEqual(env.snap_prop("rec-0001", "VmConfig")["vcpu_count"], 2)
        self.assertEqual(len(env.snapshot_ids("many")), len(expected))
        log = env.daemon_log()
        for i in bad:
            self.assertRegex(log, r"WARNING.*Skipping.*rec-%04d" % i)
        self.assertNotIn("CRITICAL", log)

    def test_index_follows_the_records(self):
        """Start-up reads a record from the snapshot index only while its
        snapshot.json is the file the index was made from: edited, replaced,
        removed, added or symlinked records are read (or refused) as their
        files say, a damaged index is ignored, and each start-up that found
        the index out of date writes it again."""
        env = self.env
        env.running_vm("idx")
        env.create_snapshot("idx", "seed", **{"resume-source": True})
        env.daemon.kill()
        top = os.path.join(env.state_dir, "snapshots")
        index = os.path.join(top, ".index")
        with open(os.path.join(top, "seed", "snapshot.json")) as f:
            seed = json.load(f)
        shutil.rmtree(os.path.join(top, "seed"))

        def write(sid, i, **change):
            record = json.loads(json.dumps(seed))
            record.update(snapshot_id=sid, created_at="2026-01-01T00:%02d:%02d.%06d+00:00" % (
                i // 60, i % 60, i), **change)
            record["vm_config"]["vcpu_count"] = 1 + i % 2
            os.makedirs(os.path.join(top, sid), exist_ok=True)
            with open(os.path.join(top, sid, "snapshot.json"), "w") as f:
                json.dump(record, f)

        n = 600  # enough for start-up to read them in several threads
        for i in range(n):
            write("rec-%04d" % i, i)

        def start(from_index=None, writes=True):
            """Starts the daemon; returns its list, once the index it writes
            (@writes: it must, or must not, write one) is there."""
            wrote = env.daemon_log().count("Wrote the snapshot index")
            env.daemon.start()
            listed = env.list_snapshots()
            m = re.findall(r"Read (\d+) snapshot records, (\d+) of them from the index",
                           env.daemon_log())
            if from_index is not None:
                self.assertEqual(int(m[-1][1]), from_index, m[-1])
            if writes:
                st.wait_for(lambda: env.daemon_log().count("Wrote the snapshot index") > wrote,
                            what="a new index")
            # the index is read at start-up, not kept (mapped) for as long as it runs
            with open("/proc/%d/maps" % env.daemon.pid) as f:
                self.assertNotIn(index, f.read())
            env.daemon.kill()
            if not writes:
                self.assertEqual(env.daemon_log().count("Wrote the snapshot index"), wrote)
            return {info["snapshot_id"]: info for _, info in listed}

        first = start(0)
        self.assertEqual(len(first), n)
        # the same records again: all of them from the index, with the same infos
        self.assertEqual(start(n, writes=False), first)

        # edited (restored flag, config), replaced by a symlink, removed, added
        write("rec-0007", 7, restored=True, restored_vm_id="idx")
        with open(os.path.join(top, "rec-0008", "snapshot.json")) as f:
            edited = json.load(f)
        edited["vm_config"]["mem_size_mib"] = 256
        with open(os.path.join(top, "rec-0008", "snapshot.json"), "w") as f:
            json.dump(edited, f)
        linked = os.path.join(top, "rec-0009", "snapshot.json")
        os.rename(linked, os.path.join(env.root, "rec-0009.json"))
        os.symlink(os.path.join(env.root, "rec-0009.json"), linked)
        shutil.rmtree(os.path.join(top, "rec-0010"))
        write("rec-new", n)
        second = start(n - 4)
        self.assertEqual(set(second), set(first) - {"rec-0009", "rec-0010"} | {"rec-new"})
        self.assertTrue(second["rec-0007"]["restored"])
        self.assertEqual(second["rec-0007"]["restored_vm_id"], "idx")
        self.assertEqual(second["rec-0008"]["vm_config"]["mem_size_mib"], 256)
        for sid in set(second) - {"rec-0007", "rec-0008", "rec-new"}:
            self.assertEqual(second[sid], first[sid])
        self.assertRegex(env.daemon_log(), r"WARNING.*%s.*symbolic link" % re.escape(linked))
        # (the symlinked one has no entry: it is read, and refused, each time)
        self.assertEqual(start(n - 1, writes=False), second)

        # a damaged index, then one that is not an index at all
        with open(index, "r+b") as f:
            f.seek(os.path.getsize(index) // 2)
            f.write(os.urandom(4096))
        self.assertEqual(start(), second)
        self.assertLess(int(re.findall(r"(\d+) of them from the index", env.daemon_log())[-1]),
                        n - 1)
        with open(index, "w") as f:
            f.write("not an index")
        self.assertEqual(start(0), second)
        self.assertEqual(start(n - 1, writes=False), second)
        self.assertNotIn("CRITICAL", env.daemon_log())

        # with few snapshots there is no index
        for i in range(n):
            if i > 100:
                shutil.rmtree(os.path.join(top, "rec-%04d" % i), ignore_errors=True)
        few = start(writes=False)
        self.assertEqual(len(few), 100)
        self.assertFalse(os.path.exists(index))

    def test_kill_mid_snapshot_does_not_strand_the_vm(self):
        """smolvmd killed while a CreateSnapshot copies the disk of a paused
        guest: after the restart a VM that the snapshot paused runs again, one
        that was paused before stays paused, and no partial snapshot is left."""
        from gi.repository import GLib
        from jobwatch import JobWatch

        env = self.env
        big = os.path.join(env.root, "big.ext4")
        make_big_rootfs(big)
        env.running_vm("big", rootfs=big)
        os.unlink(big)  # the VM has its own copy
        snapshots = os.path.join(env.state_dir, "snapshots")
        for before in ("running", "paused"):
            with self.subTest(before=before):
                if before == "paused":
                    env.vm("big", "Pause")
                self.assertEqual(env.vm_state("big"), before)
                pid = env.vm_prop("big", "Pid")
                watch = JobWatch(env)
                killed = []

                def on_props(path, changed):
                    if not killed and changed.get("Phase") == "copying-disk":
                        env.daemon.kill()
                        killed.append(path)
                watch.on_props = on_props
                watch.call(st.MANAGER_PATH, st.MANAGER_IFACE, "CreateSnapshot",
                           GLib.Variant("(ssa{sv})", ("big", "cut-" + before,
                                                      {"resume-source": GLib.Variant("b", True)})))
                watch.run_until(lambda: killed, "the disk copy to start")
                watch.close()
                self.assertTrue(any(n.startswith(".tmp-") for n in os.listdir(snapshots)))

                env.daemon.start()
                st.wait_for(lambda: env.vm_state("big") == before,
                            "VM big to be %s again" % before)
                self.assertEqual(env.vm_prop("big", "Pid"), pid)
                self.assertEqual(env.snapshot_ids(), [])
                st.wait_for(lambda: os.listdir(snapshots) == [], "the partial snapshot to go")
                # start-up recovery answers no call, so its record is written
                # by the record writer in its own time
                vm_json = os.path.join(env.state_dir, "vms", "big", "vm.json")

                def mark_cleared():
                    with open(vm_json) as f:
                        return json.load(f)["paused_by_snapshot"] is False
                st.wait_for(mark_cleared, "the paused-by-snapshot mark to be cleared on disk")
                resumed = "paused by a snapshot that a crash cut short"
                if before == "running":
                    self.assertIn(resumed, env.daemon_log())
                    since = env.console_size("big")
                    env.wait_tick("big", env.last_tick("big") + 1, since)
                else:
                    self.assertEqual(env.daemon_log().count(resumed), 1)
        # fully usable again
        env.vm("big", "Resume")
        env.create_snapshot("big", "after", **{"resume-source": True})
        self.assertEqual(env.vm_state("big"), "running")


if __name__ == "__main__":
    st.main("restart")
