#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The errors that need a special setting: NotAuthorized (smolvmd on a
"system" bus, a caller that is not root), NoSpace (a small tmpfs as the
state directory) and Failed (the snapshots directory replaced by a file).
The first two need root and are skipped without it."""

import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smolvmtest as st  # noqa: E402
from smolvmtest import MIB, gv_dict, gv_str, snapshot_path, vm_path  # noqa: E402

NOBODY = 65534


@st.unittest.skipUnless(st.IS_ROOT and shutil.which("setpriv"), "needs root and setpriv")
class TestNotAuthorized(st.TestCase):
    def test_unprivileged_caller(self):
        env = self.new_env(session=False)
        # root may do anything
        env.running_vm("sys-vm")
        env.create_snapshot("sys-vm", "s1", **{"resume-source": True})
        self.assertEqual(env.snapshot_ids(), ["s1"])
        pid = env.vm_prop("sys-vm", "Pid")
        before = st.tree_fingerprint(env.state_dir)

        # reads are open to everyone
        out = env.call("ListSnapshots", gv_str(""), as_user=NOBODY)
        self.assertIn(snapshot_path("s1"), out)
        self.assertIn("'snapshot_id': <'s1'>", out)
        out = env.call("ListVMs", as_user=NOBODY)
        self.assertIn("'vm_id': <'sys-vm'>", out)
        self.assertIn(snapshot_path("s1"), env.call("GetSnapshot", gv_str("s1"), as_user=NOBODY))
        self.assertIn(vm_path("sys-vm"), env.call("GetVM", gv_str("sys-vm"), as_user=NOBODY))

        # changes are not
        refused = [
            (st.MANAGER_PATH, "CreateSnapshot", gv_str("sys-vm"), gv_str("s2"), gv_dict()),
            (st.MANAGER_PATH, "CreateSnapshot", gv_str("sys-vm"), gv_str(""), gv_dict()),
            (st.MANAGER_PATH, "RestoreSnapshot", gv_str("s1"), "{'force': <true>}"),
            (st.MANAGER_PATH, "DeleteSnapshot", gv_str("s1"), gv_dict()),
            (st.MANAGER_PATH, "CreateVM", gv_dict({"vm_id": "evil", "kernel_path": env.kernel,
                                                   "rootfs_path": env.rootfs,
                                                   "network": False})),
            (vm_path("sys-vm"), "Pause"),
            (vm_path("sys-vm"), "Stop", gv_dict()),
            (vm_path("sys-vm"), "Delete", "{'force': <true>}"),
            (vm_path("sys-vm"), "CreateSnapshot", gv_str("s3"), gv_dict()),
            (snapshot_path("s1"), "Restore", "{'force': <true>}"),
            (snapshot_path("s1"), "Delete", gv_dict()),
        ]
        for path, method, *args in refused:
            with self.subTest(method=method, path=path):
                err = self.assertDBusError("NotAuthorized", env.gdbus, path, method, *args,
                                           as_user=NOBODY)
                self.assertTrue(err.message, "an empty message")

        self.assertEqual(st.tree_fingerprint(env.state_dir), before)
        self.assertEqual(env.snapshot_ids(), ["s1"])
        self.assertEqual(sorted(env.list_vms()), ["sys-vm"])
        self.assertEqual(env.vm_state("sys-vm"), "running")
        self.assertEqual(env.vm_prop("sys-vm", "Pid"), pid)
        # and root still may
        env.delete_snapshot("s1")
        self.assertEqual(env.snapshot_ids(), [])


SMALL_FS = 8 * MIB


@st.unittest.skipUnless(st.IS_ROOT and shutil.which("unshare"), "needs root and unshare")
class TestNoSpace(st.TestCase):
    """The state directory is a tmpfs of 8 MiB, mounted in a mount namespace
    of smolvmd's own; the test looks into it through /proc/PID/root."""

    def small_env(self):
        env = self.new_env(start=False)
        os.makedirs(env.state_dir)
        env.daemon.wrapper = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                              'mount -t tmpfs -o size=%d smolvm-test-nospace "$0" && exec "$@"'
                              % SMALL_FS, env.state_dir]
        env.daemon.start()
        return env

    def inside(self, env, *parts):
        return os.path.join("/proc/%d/root" % env.daemon.pid, env.state_dir.lstrip("/"), *parts)

    def free_bytes(self, env):
        s = os.statvfs(self.inside(env))
        return s.f_bavail * s.f_frsize

    def test_no_space(self):
        env = self.small_env()
        self.assertEqual(os.statvfs(self.inside(env)).f_blocks * os.statvfs(self.inside(env)).f_frsize,
                         SMALL_FS, "smolvmd does not see the small tmpfs")
        big = os.path.join(env.root, "big.ext4")
        st.make_dense_file(big, 2 * SMALL_FS)
        small = os.path.join(env.root, "small.ext4")
        st.make_dense_file(small, 5 * MIB)
        free = self.free_bytes(env)

        # the disk copy of CreateVM does not fit
        err = self.assertDBusError("NoSpace", env.create_vm, "too-big", rootfs=big)
        self.assertIn("too-big", err.message)
        self.assertEqual(env.list_vms(), {})
        self.assertEqual(os.listdir(self.inside(env, "vms")), [])
        self.assertEqual(self.free_bytes(env), free)

        # one VM fits, but not its snapshot
        env.running_vm("fits", rootfs=small)
        free = self.free_bytes(env)
        err = self.assertDBusError("NoSpace", env.create_snapshot, "fits", "no-room")
        self.assertIn("no-room", err.message)
        self.assertEqual(env.snapshot_ids(), [])
        self.assertEqual(os.listdir(self.inside(env, "snapshots")), [])
        self.assertEqual(self.free_bytes(env), free)
        self.assertEqual(env.vm_state("fits"), "running")
        self.assertDBusError("NotFound", env.call, "GetSnapshot", gv_str("no-room"))
        # the id is free again, once there is room
        env.vm("fits", "Delete", "{'force': <true>}")
        tiny = os.path.join(env.root, "tiny.ext4")
        st.make_dense_file(tiny, 1 * MIB)
        env.running_vm("tiny", rootfs=tiny)
        env.create_snapshot("tiny", "no-room")
        self.assertEqual(env.snapshot_ids(), ["no-room"])

        # a restore without room for its disk copy is refused before the
        # running VM is touched
        env.vm("tiny", "Resume")
        pid = env.vm_prop("tiny", "Pid")
        filler = self.inside(env, "filler")
        with open(filler, "wb") as f:
            f.write(b"x" * max(self.free_bytes(env) - 512 * 1024, 0))
        self.assertLess(self.free_bytes(env), 1 * MIB)
        err = self.assertDBusError("NoSpace", env.restore, "no-room", resume=True)
        self.assertIn("no-room", err.message)
        self.assertEqual(env.vm_state("tiny"), "running")
        self.assertEqual(env.vm_prop("tiny", "Pid"), pid)
        self.assertEqual(sorted(os.listdir(self.inside(env, "vms", "tiny"))),
                         ["disk.ext4", "kernel", "vm.json"])
        os.unlink(filler)
        env.restore("no-room", resume=True)
        self.assertNotEqual(env.vm_prop("tiny", "Pid"), pid)


class TestFailed(st.TestCase):
    def test_snapshots_dir_is_a_file(self):
        """ENOTDIR has no better name than the generic Failed."""
        env = self.env
        env.running_vm("f")
        snapshots = os.path.join(env.state_dir, "snapshots")
        os.rmdir(snapshots)
        with open(snapshots, "w") as f:
            f.write("not a directory\n")
        err = self.assertDBusError("Failed", env.create_snapshot, "f", "nowhere")
        self.assertIn("nowhere", err.message)
        self.assertEqual(env.vm_state("f"), "running")
        self.assertEqual(env.snapshot_ids(), [])
        with open(snapshots) as f:
            self.assertEqual(f.read(), "not a directory\n")
        os.unlink(snapshots)
        os.mkdir(snapshots)
        env.create_snapshot("f", "nowhere")
        self.assertEqual(env.snapshot_ids(), ["nowhere"])


if __name__ == "__main__":
    st.main("errors")
