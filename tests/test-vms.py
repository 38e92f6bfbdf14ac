#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""VMs in smolvmd: CreateVM's validation, the disk copy, the lifecycle and
the ObjectManager, driven through `gdbus call` and busctl."""

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smolvmtest as st  # noqa: E402
from smolvmtest import GVText, gv_dict, gv_str, snapshot_path, vm_path  # noqa: E402


class TestCreateVM(st.TestCase):
    def test_validation(self):
        env = self.env
        missing = os.path.join(env.root, "no-such-kernel")
        cases = {
            "vcpu_count 0": dict(vcpu_count=0),
            "vcpu_count 33": dict(vcpu_count=33),
            "mem_size_mib 64": dict(mem_size_mib=64),
            "mem_size_mib 16385": dict(mem_size_mib=16385),
            "relative kernel": dict(kernel_path="vmlinux"),
            "relative rootfs": dict(rootfs="rootfs.ext4"),
            "missing kernel file": dict(kernel_path=missing),
            "no kernel_path": dict(kernel_path=None),
            "no rootfs_path": dict(rootfs_path=None),
            "kernel is a directory": dict(kernel_path=env.root),
            "unknown key": dict(colour="blue"),
            "wrong type": dict(vcpu_count="2"),
            "wrong type (int32)": dict(mem_size_mib=GVText("int32 256")),
            "wrong type (bool)": dict(network="no"),
            "bad id": dict(vm_id="Bad_Id"),
        }
        for what, config in cases.items():
            with self.subTest(what):
                vm_id = config.pop("vm_id", "v1")
                rootfs = config.pop("rootfs", None)
                if rootfs is not None:
                    config["rootfs_path"] = rootfs
                self.assertDBusError("InvalidArgument", env.create_vm, vm_id, **config)
        self.assertEqual(env.list_vms(), {})
        self.assertEqual(os.listdir(os.path.join(env.state_dir, "vms")), [])
        # the limits themselves are fine
        env.create_vm("low", vcpu_count=1, mem_size_mib=128)
        env.create_vm("high", vcpu_count=32, mem_size_mib=16384)
        self.assertEqual(sorted(env.list_vms()), ["high", "low"])

    def test_unsupported_and_duplicates(self):
        env = self.env
        self.assertDBusError("Unsupported", env.create_vm, "q", backend="qemu")
        self.assertNotIn("q", env.list_vms())
        self.assertEqual(env.get_property(st.MANAGER_PATH, st.MANAGER_IFACE, "Backends"),
                         ["firecracker"])
        env.create_vm("dup", backend="firecracker")
        err = self.assertDBusError("AlreadyExists", env.create_vm, "dup")
        self.assertIn("dup", err.message)
        self.assertEqual(list(env.list_vms()), ["dup"])
        self.assertDBusError("NotFound", env.call, "GetVM", gv_str("nope"))
        self.assertEqual(env.call("GetVM", gv_str("dup")), "(objectpath '%s',)" % vm_path("dup"))

    def test_generated_vm_id(self):
        env = self.env
        out = env.call("CreateVM", gv_dict({"kernel_path": env.kernel,
                                            "rootfs_path": env.rootfs, "network": False}))
        (vm_id,) = env.list_vms()
        self.assertRegex(vm_id, st.ID_RE)
        self.assertEqual(out, "(objectpath '%s',)" % vm_path(vm_id))
        info = env.vm_info(vm_id)
        # the documented defaults
        self.assertEqual(info["vcpu_count"], 2)
        self.assertEqual(info["mem_size_mib"], 512)
        self.assertEqual(info["backend"], "firecracker")
        self.assertEqual(info["state"], "created")
        self.assertEqual(info["pid"], 0)
        self.assertIs(info["network"], False)

    def test_disk_copy(self):
        env = self.env
        env.create_vm("disk")
        info = env.vm_info("disk")
        disk = info["disk_path"]
        self.assertEqual(disk, os.path.join(env.state_dir, "vms", "disk", "disk.ext4"))
        self.assertEqual(env.vm_prop("disk", "DiskPath"), disk)
        self.assertEqual(env.vm_prop("disk", "RootfsPath"), env.rootfs)
        self.assertEqual(os.path.getsize(disk), st.ROOTFS_SIZE)
        self.assertTrue(st.files_identical(disk, env.rootfs))
        with open(disk, "rb") as f:
            for off in st.ROOTFS_MARKS:
                f.seek(off)
                self.assertEqual(f.read(4096), st.mark_bytes(off))
        if st.is_sparse(env.rootfs):
            self.assertLess(st.allocated_bytes(disk), st.ROOTFS_SIZE // 8,
                            "the copy lost the holes")
        # a copy, not the same file: writing it leaves the rootfs alone
        with open(disk, "r+b") as f:
            f.write(b"private")
        self.assertFalse(st.files_identical(disk, env.rootfs))


class TestLifecycle(st.TestCase):
    def test_states(self):
        env = self.env
        env.create_vm("life")
        self.assertEqual(env.vm_state("life"), "created")
        self.assertDBusError("InvalidState", env.vm, "life", "Pause")
        self.assertDBusError("InvalidState", env.vm, "life", "Resume")
        self.assertDBusError("InvalidState", env.vm, "life", "Stop", gv_dict())
        env.start_vm("life")
        info = env.vm_info("life")
        self.assertEqual(info["state"], "running")
        self.assertIn(info["pid"], env.emulator_pids())
        self.assertEqual(env.vm_prop("life", "Pid"), info["pid"])
        self.assertEqual(env.console(("life")).count(st.BOOT_BANNER), 1)
        self.assertDBusError("InvalidState", env.vm, "life", "Start")
        self.assertDBusError("InvalidState", env.vm, "life", "Resume")
        env.vm("life", "Pause")
        self.assertEqual(env.vm_state("life"), "paused")
        self.assertDBusError("InvalidState", env.vm, "life", "Pause")
        env.vm("life", "Resume")
        self.assertEqual(env.vm_state("life"), "running")
        since = env.console_size("life")
        env.wait_tick("life", env.last_tick("life") + 1, since)
        self.assertDBusError("InvalidArgument", env.vm, "life", "Stop", "{'now': <true>}")
        env.vm("life", "Stop", gv_dict())
        self.assertEqual(env.vm_state("life"), "stopped")
        self.assertEqual(env.vm_prop("life", "Pid"), 0)
        self.assertEqual(env.emulator_pids(), [])
        # a fresh boot: the counter starts again
        since = env.console_size("life")
        env.start_vm("life", first_tick=False)
        env.wait_tick("life", 1, since)
        log = env.console("life")[since:]
        self.assertIn(st.BOOT_BANNER, log)
        self.assertEqual(st.ticks(log)[0], 1)
        # Delete: only with force while active
        self.assertDBusError("InvalidState", env.vm, "life", "Delete", gv_dict())
        self.assertDBusError("InvalidArgument", env.vm, "life", "Delete", "{'force': <'yes'>}")
        vm_dir = os.path.join(env.state_dir, "vms", "life")
        self.assertTrue(os.path.isdir(vm_dir))
        run_dir = os.path.join(env.runtime_dir, "vms", "life")
        self.assertTrue(os.path.isdir(run_dir))
        # what a QEMU that died while smolvmd was down leaves: its RAM file
        with open(os.path.join(run_dir, "ram"), "wb") as f:
            f.truncate(64 * 1024 * 1024)
        env.vm("life", "Delete", "{'force': <true>}")
        self.assertFalse(os.path.exists(vm_dir))
        # /run is memory: nothing stays, not even the console log (a restore
        # of a snapshot recreates the VM, which starts a fresh log)
        st.wait_for(lambda: not os.path.exists(run_dir), "the runtime dir of a deleted VM to go")
        self.assertEqual([n for n in os.listdir(os.path.dirname(run_dir))
                          if not n.startswith(".trash-")], [])
        self.assertEqual(env.list_vms(), {})
        self.assertEqual(env.emulator_pids(), [])
        self.assertDBusError("NotFound", env.call, "GetVM", gv_str("life"))
        # a stopped VM goes without force; its id is free again
        env.create_vm("life")
        env.vm("life", "Delete", gv_dict())
        self.assertEqual(env.list_vms(), {})

    def test_api_socket_path_too_long(self):
        """A VM id of 64 characters under a long runtime directory: the API
        socket path cannot be bound, and smolvmd says so at once."""
        env = self.new_env(runtime_name="r" * 40)
        long_id = "v" * 64
        sock = os.path.join(env.runtime_dir, "vms", long_id, "firecracker.sock")
        self.assertGreater(len(sock), 107)
        env.create_vm(long_id)
        err = self.assertDBusError("Failed", env.vm, long_id, "Start")
        self.assertIn("shorter runtime directory", err.message)
        self.assertNotEqual(env.vm_state(long_id), "running")
        self.assertEqual(env.emulator_pids(), [])
        # a shorter id in the same place runs
        env.running_vm("short")

    def test_vmm_crash(self):
        env = self.env
        env.running_vm("crash")
        os.kill(env.vm_prop("crash", "Pid"), 9)
        st.wait_for(lambda: env.vm_state("crash") == "error", "the VM to be in error")
        self.assertEqual(env.vm_prop("crash", "Pid"), 0)
        env.vm("crash", "Stop", gv_dict())  # "running, paused or failed"
        self.assertEqual(env.vm_state("crash"), "stopped")
        env.start_vm("crash")

    def test_failed_vm_starts_again(self):
        """A VM whose VMM died (state error) starts again without a Stop."""
        env = self.env
        env.running_vm("again")
        os.kill(env.vm_prop("again", "Pid"), 9)
        st.wait_for(lambda: env.vm_state("again") == "error", "the VM to be in error")
        since = env.console_size("again")
        env.vm("again", "Start")
        self.assertEqual(env.vm_state("again"), "running")
        self.assertNotEqual(env.vm_prop("again", "Pid"), 0)
        env.wait_tick("again", 1, since)
        self.assertDBusError("InvalidState", env.vm, "again", "Start")

    def test_calls_on_removed_objects(self):
        """A call on a VM, snapshot or job that is gone (or never was) answers
        org.smolvm.Error.NotFound, not GDBus's UnknownMethod."""
        env = self.env
        env.running_vm("gone")
        env.create_snapshot("gone", "gone-snap", **{"resume-source": True})
        env.delete_snapshot("gone-snap")
        env.vm("gone", "Delete", "{'force': <true>}")
        calls = [
            (st.vm_path("gone"), "Start"),
            (st.vm_path("gone"), "Stop", gv_dict()),
            (st.vm_path("never"), "Pause"),
            (st.snapshot_path("gone-snap"), "Restore", gv_dict()),
            (st.snapshot_path("gone-snap"), "Delete", gv_dict()),
        ]
        for path, method, *args in calls:
            with self.subTest(path=path, method=method):
                err = self.assertDBusError("NotFound", env.gdbus, path, method, *args)
                self.assertIn("not found", err.message)
        err = self.assertDBusError("NotFound", env.gdbus, st.MANAGER_PATH + "/job/999",
                                   "Cancel", gv_dict(), iface="org.smolvm.Job")
        self.assertEqual(err.message, "Job 999 not found")
        err = self.assertDBusError("NotFound", env.get_property_gdbus, st.vm_path("gone"),
                                   st.VM_IFACE, "State")
        # a new VM of the same id is an object again
        env.create_vm("gone")
        self.assertEqual(env.vm_state("gone"), "created")

    def test_list_snapshots_checks_the_vm_id(self):
        env = self.env
        env.running_vm("lister")
        env.create_snapshot("lister", "l1", **{"resume-source": True})
        for bad in ("Bad_Id", "-x", "a/b", "x" * 200):
            with self.subTest(vm_id=bad):
                self.assertDBusError("InvalidArgument", env.call, "ListSnapshots", gv_str(bad))
        self.assertEqual(env.snapshot_ids(""), ["l1"])
        self.assertEqual(env.snapshot_ids("lister"), ["l1"])
        self.assertEqual(env.snapshot_ids("no-such-vm"), [])

    def write_config(self, text):
        fd, path = tempfile.mkstemp(prefix="smolvmd-", suffix=".conf")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        self.addCleanup(os.unlink, path)
        return path

    def test_hung_vmm_times_out(self):
        """A VMM that stops answering fails the call, and the VM stays
        manageable: Stop still ends it. The command line wins over the
        config file's vmm-timeout."""
        config = self.write_config("[daemon]\nvmm-timeout=600\n")
        self.check_hung_vmm(["--config", config, "--vmm-timeout", "2"])

    def test_vmm_timeout_config_key(self):
        """vmm-timeout in [daemon] sets the timeout without the option."""
        config = self.write_config("[daemon]\nvmm-timeout=2\n")
        self.check_hung_vmm(["--config", config])

    def test_vmm_timeout_bad_values(self):
        """A bad value is a usage error on the command line (2) and a bad
        configuration (1) in the file; smolvmd does not start."""
        for value in ["-1", "abc", "", "1.5"]:
            with self.subTest(where="option", value=value):
                r = subprocess.run([st.SMOLVMD, "--session", "--vmm-timeout", value],
                                   capture_output=True, text=True, timeout=st.DEADLINE)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn("--vmm-timeout must be 0 or more seconds", r.stderr)
            with self.subTest(where="file", value=value):
                config = self.write_config(f"[daemon]\nvmm-timeout={value}\n")
                r = subprocess.run([st.SMOLVMD, "--session", "--config", config],
                                   capture_output=True, text=True, timeout=st.DEADLINE)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn(f"{config}: vmm-timeout must be 0 or more seconds", r.stderr)

    def test_default_images(self):
        """A VM created without images (SmolVM() in Python) gets the daemon's
        default kernel, initrd, rootfs and backend; without defaults the
        error says what to configure."""
        env = self.env
        err = self.assertDBusError("InvalidArgument", env.call, "CreateVM", gv_dict({}))
        self.assertIn("default-kernel", err.message)
        self.assertEqual(env.list_vms(), {})
        initrd = os.path.join(env.root, "initrd.img")
        with open(initrd, "wb") as f:
            f.write(b"initrd of the default kernel\n")
        config = self.write_config("[daemon]\ndefault-kernel=%s\ndefault-initrd=%s\n"
                                   "default-backend=firecracker\n" % (env.kernel, initrd))
        env2 = self.new_env(daemon_args=["--config", config, "--default-rootfs", env.rootfs])
        shutil.copyfile(env.kernel, env2.kernel)
        out = env2.call("CreateVM", gv_dict({"network": False}))
        (vm_id,) = env2.list_vms()
        self.assertEqual(out, "(objectpath '%s',)" % vm_path(vm_id))
        info = env2.vm_info(vm_id)
        self.assertEqual((info["kernel_path"], info["initrd_path"], info["rootfs_path"],
                          info["backend"]), (env.kernel, initrd, env.rootfs, "firecracker"))
        vm_dir = os.path.join(env2.state_dir, "vms", vm_id)
        self.assertTrue(st.files_identical(os.path.join(vm_dir, "initrd"), initrd))
        self.assertTrue(st.files_identical(os.path.join(vm_dir, "disk.ext4"), env.rootfs))
        # a kernel of the caller's own comes without the default initrd
        env2.call("CreateVM", gv_dict({"vm_id": "own", "kernel_path": env2.kernel,
                                       "network": False}))
        info = env2.vm_info("own")
        self.assertEqual((info["initrd_path"], info["rootfs_path"]), ("", env.rootfs))
        self.assertFalse(os.path.exists(os.path.join(env2.state_dir, "vms", "own", "initrd")))
        env2.start_vm("own")
        # a bad default backend: smolvmd does not start
        r = subprocess.run([st.SMOLVMD, "--session", "--default-backend", "xen"],
                           capture_output=True, text=True, timeout=st.DEADLINE)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("default-backend must be firecracker or qemu", r.stderr)

    def check_hung_vmm(self, daemon_args):
        env = self.new_env(daemon_args=daemon_args)
        env.running_vm("hung")
        pid = env.vm_prop("hung", "Pid")
        os.kill(pid, signal.SIGSTOP)
        try:
            err = self.assertDBusError("Backend", env.vm, "hung", "Pause")
            self.assertIn("did not answer PATCH /vm within 2 s", err.message)
            self.assertEqual(env.vm_state("hung"), "running")
            env.vm("hung", "Stop", gv_dict())  # SIGKILL after the grace period
            self.assertEqual(env.vm_state("hung"), "stopped")
            st.wait_for(lambda: not st.process_alive(pid), "the hung emulator to end")
        finally:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass


class TestObjectManager(st.TestCase):
    def test_objects_and_signals(self):
        env = self.env
        monitor = env.monitor()
        env.running_vm("om")
        env.create_snapshot("om", "om-snap", **{"resume-source": True})
        objects = env.managed_objects()
        self.assertEqual(sorted(objects), sorted([vm_path("om"), snapshot_path("om-snap")]))
        vm = objects[vm_path("om")][st.VM_IFACE]
        self.assertEqual(vm["Id"], "om")
        self.assertEqual(vm["State"], "running")
        self.assertEqual(vm["MemSizeMib"], 128)
        snap = objects[snapshot_path("om-snap")][st.SNAPSHOT_IFACE]
        self.assertEqual(snap["Id"], "om-snap")
        self.assertEqual(snap["VmId"], "om")
        self.assertIs(snap["Restored"], False)

        added = "org.freedesktop.DBus.ObjectManager.InterfacesAdded"
        removed = "org.freedesktop.DBus.ObjectManager.InterfacesRemoved"
        line = monitor.wait_for_line(st.MANAGER_PATH + ":", added,
                                     "(objectpath '%s'," % vm_path("om"))
        self.assertIn("'org.smolvm.VM'", line)
        line = monitor.wait_for_line(st.MANAGER_PATH + ":", added,
                                     "(objectpath '%s'," % snapshot_path("om-snap"))
        self.assertIn("'org.smolvm.Snapshot'", line)
        # the long work came with Jobs, published while they ran
        line = monitor.wait_for_line(st.MANAGER_PATH + ":", added, "'org.smolvm.Job'",
                                     "'Operation': <'snapshot-create'>")
        job = re.search(r"\(objectpath '([^']+)',", line).group(1)
        self.assertRegex(job, r"^/org/smolvm/Manager/job/\d+$")
        monitor.wait_for_line(st.MANAGER_PATH + ":", removed, "(objectpath '%s'," % job)

        env.delete_snapshot("om-snap")
        line = monitor.wait_for_line(st.MANAGER_PATH + ":", removed,
                                     "(objectpath '%s'," % snapshot_path("om-snap"))
        self.assertIn("'org.smolvm.Snapshot'", line)
        env.vm("om", "Delete", "{'force': <true>}")
        line = monitor.wait_for_line(st.MANAGER_PATH + ":", removed,
                                     "(objectpath '%s'," % vm_path("om"))
        self.assertIn("'org.smolvm.VM'", line)
        self.assertEqual(env.managed_objects(), {})
        # state changes come as PropertiesChanged on the VM object
        monitor.wait_for_line(vm_path("om") + ":", "PropertiesChanged", "'State': <'running'>")

    def test_manager_properties(self):
        env = self.env
        self.assertRegex(env.get_property(st.MANAGER_PATH, st.MANAGER_IFACE, "Version"),
                         r"^\d+\.\d+")


# smolvmd started under `umask 000`
UMASK_000 = ["sh", "-c", 'umask 000; exec "$@"', "sh"]


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


class TestPrivateFiles(st.TestCase):
    """Runtime and state files are private whatever the daemon's umask."""
    env_options = {"wrapper": UMASK_000}

    def test_modes_under_umask_000(self):
        env = self.env
        with open("/proc/%d/status" % env.daemon.pid) as f:
            self.assertIn("Umask:\t0000", f.read())
        env.running_vm("priv")
        run = os.path.join(env.runtime_dir, "vms")
        dirs = [os.path.join(env.state_dir, "vms"), os.path.join(env.state_dir, "snapshots"),
                os.path.join(env.state_dir, "vms", "priv"), run, os.path.join(run, "priv")]
        for d in dirs:
            self.assertEqual(mode(d), 0o700, d)
        console = env.console_path("priv")
        sock = os.path.join(run, "priv", "firecracker.sock")
        self.assertTrue(stat.S_ISSOCK(os.lstat(sock).st_mode))
        for path in (console, sock, os.path.join(env.state_dir, "vms", "priv", "disk.ext4")):
            self.assertEqual(mode(path), 0o600, path)
        env.create_snapshot("priv", "priv-s")
        snap = os.path.join(env.state_dir, "snapshots", "priv-s")
        self.assertEqual(mode(snap), 0o700, snap)
        # nothing writes a snapshot's state again: read-only, for restored VMs and clones to map
        for name, want in (("vmstate.bin", 0o400), ("mem.bin", 0o400), ("disk.ext4", 0o600)):
            self.assertEqual(mode(os.path.join(snap, name)), want, name)


if __name__ == "__main__":
    st.main("vms")
