#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""What CreateSnapshot, RestoreSnapshot and the deletes make durable, and in
which order.

smolvmd runs with tests/fsync-log.c preloaded, which logs its fsync() and
rename() calls in the order they return. The checks are the rules a crash
at any point relies on (start-up removes .tmp- directories and a restore's
.restoring disk, and puts a VM's own disk back from .pre-restore unless
vm.json says the restore completed):
- a snapshot's files and its hidden directory are synced before the rename
  that publishes it, and the rename is synced before the reply;
- a restore's disk is synced before it is renamed into place, vm.json is
  synced (file and directory) after that rename and before the VM's own disk
  goes to the trash, and the reply waits for vm.json and snapshot.json;
- a deleted snapshot's or VM's move to the trash is synced before the reply
  (a crash must not bring back what a reply said was gone);
- the main thread never syncs (the main loop must not wait for the disk);
- nothing is synced twice, and a snapshot's pause costs no vm.json write of
  its own (the syncs this work removed stay removed).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smolvmtest as st  # noqa: E402
from smolvmtest import MIB  # noqa: E402

SHIM = os.path.join(st.BUILD_DIR, "tests", "fsync-log.so")


class Log:
    """The shim's log, as (kind, tid, paths) of the daemon's own process."""

    def __init__(self, path, pid):
        self.path = path
        self.pid = pid

    def offset(self):
        return os.path.getsize(self.path) if os.path.exists(self.path) else 0

    def since(self, offset):
        with open(self.path) as f:
            f.seek(offset)
            out = []
            for line in f.read().splitlines():
                kind, pid, tid, *paths = line.split(" ")
                if int(pid) == self.pid:  # not the emulator's
                    out.append((kind, int(tid), paths))
            return out


def index(events, kind, *paths, start=0):
    """The index of the first event @kind on @paths at or after @start."""
    for i in range(start, len(events)):
        if events[i][0] == kind and tuple(events[i][2]) == paths:
            return i
    raise AssertionError("no %s %s in:\n%s" % (kind, " ".join(paths), "\n".join(
        "%s %d %s" % (k, t, " ".join(p)) for k, t, p in events)))


class DurabilityCase(st.TestCase):
    def setUp(self):
        super().setUp()
        self.log_path = None

    def start(self):
        env = self.new_env(start=False)
        self.log_path = os.path.join(env.root, "fsync.log")
        env.daemon.extra_env["LD_PRELOAD"] = SHIM
        env.daemon.extra_env["FSYNC_LOG"] = self.log_path
        # a sanitized smolvmd (tools/sanitize.sh) wants its runtime first;
        # the shim intercepts nothing of the sanitizer's
        env.daemon.extra_env["ASAN_OPTIONS"] = ":".join(
            o for o in (os.environ.get("ASAN_OPTIONS"), "verify_asan_link_order=0") if o)
        st.make_rootfs(env.rootfs, size=8 * MIB, marks=(0, 4 * MIB))
        env.daemon.start()
        return env, Log(self.log_path, env.daemon.pid)

    def assert_no_sync_twice(self, events):
        synced = [p[0] for k, _, p in events if k == "fsync"]
        # a directory may be synced again for a later change in it; a file never
        files = [p for p in synced if not os.path.isdir(p)]
        self.assertEqual(len(files), len(set(files)), synced)

    def assert_not_on_main_thread(self, events, pid):
        self.assertEqual([p for k, t, p in events if k == "fsync" and t == pid], [])


class TestCreate(DurabilityCase):
    def test_published_after_its_files_are_durable(self):
        env, log = self.start()
        env.running_vm("vm")
        start = log.offset()
        env.create_snapshot("vm", "s1", **{"resume-source": True})
        events = log.since(start)

        snaps = os.path.join(env.state_dir, "snapshots")
        tmp = os.path.join(snaps, ".tmp-s1")
        final = os.path.join(snaps, "s1")
        published = index(events, "rename", tmp, final)
        for name in ("vmstate.bin", "mem.bin", "disk.ext4", "snapshot.json"):
            self.assertLess(index(events, "fsync", os.path.join(tmp, name)), published, name)
        # one sync of the hidden directory covers every entry in it ...
        tmp_syncs = [i for i, (k, _, p) in enumerate(events) if k == "fsync" and p == [tmp]]
        self.assertEqual(len(tmp_syncs), 1, events)
        # ... after the last file in it was made
        last_file = max(index(events, "fsync", os.path.join(tmp, n))
                        for n in ("vmstate.bin", "mem.bin", "disk.ext4", "snapshot.json"))
        self.assertLess(last_file, tmp_syncs[0])
        self.assertLess(tmp_syncs[0], published)
        # the rename itself is durable before the reply
        index(events, "fsync", snaps, start=published)

        # vm.json: the mark before the pause, the resumed state after; the
        # pause itself is no write. The last is durable before the reply.
        vm_dir = os.path.join(env.state_dir, "vms", "vm")
        vm_json = os.path.join(vm_dir, "vm.json")
        writes = [i for i, (k, _, p) in enumerate(events) if k == "rename" and p[1] == vm_json]
        self.assertEqual(len(writes), 2, events)
        index(events, "fsync", vm_dir, start=writes[-1])

        self.assert_no_sync_twice(events)
        self.assert_not_on_main_thread(events, env.daemon.pid)
        self.assertEqual(env.vm_state("vm"), "running")


class TestCreateVm(DurabilityCase):
    def test_published_once_its_record_is_durable(self):
        """CreateVM: vm.json is in place and its directory synced before the
        reply, and none of it on the main thread."""
        env, log = self.start()
        start = log.offset()
        env.create_vm("v1")
        events = log.since(start)
        vm_dir = os.path.join(env.state_dir, "vms", "v1")
        vm_json = os.path.join(vm_dir, "vm.json")
        written = [i for i, (k, _, p) in enumerate(events) if k == "rename" and p[1] == vm_json]
        self.assertEqual(len(written), 1, events)
        index(events, "fsync", vm_dir, start=written[0])
        self.assert_no_sync_twice(events)
        self.assert_not_on_main_thread(events, env.daemon.pid)


class TestRestore(DurabilityCase):
    def test_own_disk_goes_only_once_the_restore_is_durable(self):
        env, log = self.start()
        env.running_vm("vm")
        env.create_snapshot("vm", "s1", **{"resume-source": True})
        env.vm("vm", "Stop", st.gv_dict())
        start = log.offset()
        env.restore("s1", resume=True)

        vm_dir = os.path.join(env.state_dir, "vms", "vm")
        disk = os.path.join(vm_dir, "disk.ext4")
        incoming = disk + ".restoring"
        backup = disk + ".pre-restore"
        vm_json = os.path.join(vm_dir, "vm.json")
        snap_dir = os.path.join(env.state_dir, "snapshots", "s1")
        snap_json = os.path.join(snap_dir, "snapshot.json")

        # the old disk is moved into the trash after the reply, its sync
        # later still (in a worker): wait for that
        def trashed():
            events = log.since(start)
            moves = [i for i, (k, _, p) in enumerate(events)
                     if k == "rename" and p[0] == backup]
            if moves and any(k == "fsync" and p == [vm_dir] for k, _, p in events[moves[0]:]):
                return events
            return None
        events = st.wait_for(trashed, "the old disk's move to the trash, synced")

        aside = index(events, "rename", disk, backup)
        in_place = index(events, "rename", incoming, disk)
        self.assertLess(index(events, "fsync", incoming), in_place)
        self.assertLess(aside, in_place)
        # vm.json (it says the restore completed) is durable after the disk
        # is in place, and before the VM's own disk goes
        written = [i for i, (k, _, p) in enumerate(events)
                   if k == "rename" and p[1] == vm_json and i > in_place]
        self.assertTrue(written, events)
        synced = index(events, "fsync", vm_dir, start=written[0])
        trash = [i for i, (k, _, p) in enumerate(events) if k == "rename" and p[0] == backup]
        self.assertEqual(len(trash), 1, events)
        self.assertLess(synced, trash[0])
        self.assertTrue(os.path.basename(os.path.dirname(events[trash[0]][2][1]))
                        .startswith(".trash-"))
        # the temp file of vm.json was synced before its rename
        tmp_vm_json = events[written[0]][2][0]
        self.assertLess(index(events, "fsync", tmp_vm_json), written[0])
        # snapshot.json (Restored) too
        snap_written = [i for i, (k, _, p) in enumerate(events)
                        if k == "rename" and p[1] == snap_json]
        self.assertEqual(len(snap_written), 1, events)
        index(events, "fsync", snap_dir, start=snap_written[0])

        self.assert_no_sync_twice(events)
        self.assert_not_on_main_thread(events, env.daemon.pid)
        self.assertFalse(os.path.exists(backup))
        self.assertEqual(env.vm_state("vm"), "running")


class TestDelete(DurabilityCase):
    def check_delete(self, env, log, start, top, name):
        events = log.since(start)
        moved = [i for i, (k, _, p) in enumerate(events)
                 if k == "rename" and p[0] == os.path.join(top, name)]
        self.assertEqual(len(moved), 1, events)
        self.assertTrue(os.path.basename(os.path.dirname(events[moved[0]][2][1]))
                        .startswith(".trash-"), events)
        # synced by the time the reply came, and not by the main thread
        index(events, "fsync", top, start=moved[0])
        self.assert_not_on_main_thread(events, env.daemon.pid)
        self.assertFalse(os.path.exists(os.path.join(top, name)))

    def test_deleted_is_durably_gone_before_the_reply(self):
        env, log = self.start()
        env.running_vm("vm")
        env.create_snapshot("vm", "s1", **{"resume-source": True})
        start = log.offset()
        env.delete_snapshot("s1")
        self.check_delete(env, log, start, os.path.join(env.state_dir, "snapshots"), "s1")
        start = log.offset()
        env.vm("vm", "Delete", st.gv_dict({"force": True}))
        self.check_delete(env, log, start, os.path.join(env.state_dir, "vms"), "vm")


if __name__ == "__main__":
    st.main("durability")
