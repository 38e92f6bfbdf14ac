#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The QEMU backend with a real guest: smolvmd drives qemu-system-x86_64 (TCG)
booting the test guest of tests/build-guest.sh, whose /init prints
`smolvm-guest: init started` once per boot and then `tick N` about once a
second; N lives in guest RAM.  So after a restore the console must go on with
the tick after the snapshot's last one, and never show a second boot.

The guest is built (or found in its cache) by running tests/build-guest.sh
into $SMOLVM_GUEST_CACHE, default <build dir>/guest-cache.  A missing
qemu-system-x86_64 is a failure, not a skip: tools/deps.sh installs it.

TCG boots here have been seen to hang silently about one time in ten, so a
boot gets BOOT_DEADLINE seconds to reach `tick 3` and is retried (a fresh VM
with a new id, so that its console log is fresh too) at most BOOT_TRIES
times.  Only boots are retried, never an assertion.

Accel must be tcg: /dev/kvm here is nested PVM, under which guests hang.

A booted guest's RAM is a shared file of its own in the runtime dir (`ram`),
which a snapshot copies to mem.bin.  A restored guest maps the snapshot's
mem.bin privately instead (copy-on-write): no `ram` file, mem.bin mapped in
QEMU and never written, 0400 on disk; a snapshot of such a guest gets its
RAM out of the migration stream and has the same layout.

As root (with /dev/net/tun), test_9 boots a networked guest (its /init
loads virtio-net and configures eth0 from the ip= argument), clones it twice
with network and pings each clone at its own host_ip from smolvmd's network
namespace (a namespace of the test's, so nothing touches the host's).

How test_4 reaches QEMU's own migration failure: 64 KiB in the middle of
vmstate.bin (inside the RAM section of the stream) are overwritten with 0xff.
smolvmd first refuses that file by its SHA-256 (org.smolvm.Error.Failed,
"damaged (checksum mismatch)"); then the test writes the damaged file's
SHA-256 into snapshot.json by hand and restarts smolvmd so that it reads it:
QEMU's incoming migration fails ("Received an unexpected compressed page" /
"load of migration failed: Invalid argument"), QEMU exits 1 and smolvmd
reports org.smolvm.Error.Backend quoting QEMU's last stderr line.
"""

import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smolvmtest as st  # noqa: E402
from smolvmtest import MIB, file_sha256  # noqa: E402

QEMU = shutil.which("qemu-system-x86_64")
GUEST_CACHE = os.environ.get("SMOLVM_GUEST_CACHE") or os.path.join(st.BUILD_DIR, "guest-cache")
BUILD_GUEST = os.path.join(st.SOURCE_DIR, "tests", "build-guest.sh")
BOOT_ARGS = "console=ttyS0 panic=-1 quiet"
MEM_MIB = 256
BOOT_DEADLINE = 60.0
BOOT_TRIES = 3
INIT_BANNER = "smolvm-guest: init started"
MACHINE_RE = re.compile(r"^pc-q35-\d+\.\d+$")
# the stderr line of the fake QEMU of test_qemu_fails_to_start
FAKE_QEMU_ERROR = "qemu-system-x86_64: -accel tcg: fake QEMU of the smolvm tests refuses to start"

TIMINGS = []  # (phase, seconds), printed at the end


def timed(phase, seconds):
    TIMINGS.append((phase, seconds))
    print("  [time] %s: %.2f s" % (phase, seconds))
    sys.stdout.flush()


_guest = None


def guest():
    """(vmlinuz, initramfs, rootfs) of the test guest, built once per run."""
    global _guest
    if _guest is None:
        start = time.monotonic()
        proc = subprocess.run([BUILD_GUEST, GUEST_CACHE], capture_output=True, text=True,
                              timeout=600)
        if proc.returncode != 0:
            raise AssertionError("tests/build-guest.sh %s failed (%d):\n%s" %
                                 (GUEST_CACHE, proc.returncode, proc.stderr))
        paths = proc.stdout.split()
        if len(paths) != 3 or not all(os.path.isfile(p) for p in paths):
            raise AssertionError("tests/build-guest.sh printed %r" % proc.stdout)
        _guest = tuple(paths)
        timed("build-guest.sh (cached after the first run)", time.monotonic() - start)
    return _guest


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def complete_part(text):
    """The part of a console text up to its last newline: a line the guest
    was writing when it stopped may be completed after a restore."""
    return text[:text.rfind("\n") + 1]


# smolvmd started under `umask 000`: its files must be private all the same
UMASK_000 = ["sh", "-c", 'umask 000; exec "$@"', "sh"]


class QemuTestCase(st.TestCase):
    env_options = {"qemu_bin": QEMU, "wrapper": UMASK_000}

    # -- processes and files

    def qemu_pids(self, env, binary=None):
        """Live processes of @env's QEMU (the binary smolvmd runs)."""
        binary = binary or env.daemon.qemu_bin
        return [pid for pid in env.our_pids()
                if binary in cmdline(pid)[:2] and st.process_alive(pid)]

    def assertNoQemu(self, env, binary=None):
        st.wait_for(lambda: not self.qemu_pids(env, binary), "no QEMU process of this test left",
                    timeout=10)

    def runtime_files(self, env, vm_id):
        d = os.path.join(env.runtime_dir, "vms", vm_id)
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def assertNoRuntimeLeftovers(self, env, vm_id):
        """Once no QEMU runs, only the logs stay in the VM's runtime dir: no
        RAM file, monitor socket or pid file."""
        self.assertEqual([f for f in self.runtime_files(env, vm_id)
                          if f not in ("console.log", "qemu.log")], [],
                         "leftovers in the runtime dir of VM %s" % vm_id)

    def assertPrivateRuntimeFiles(self, env, vm_id, restored=False):
        """The files of a running QEMU VM are the daemon's alone, although
        it runs under umask 000: 0600 files and sockets, 0700 directories.
        A booted VM has its RAM file; a @restored one has none."""
        with open("/proc/%d/status" % env.daemon.pid) as f:
            self.assertIn("Umask:\t0000", f.read())
        d = os.path.join(env.runtime_dir, "vms", vm_id)
        modes = {name: stat.S_IMODE(os.lstat(os.path.join(d, name)).st_mode)
                 for name in os.listdir(d)}
        self.assertEqual(sorted(modes), ["console.log", "qemu.log", "qemu.pid", "qmp.sock"] +
                         ([] if restored else ["ram"]))
        self.assertTrue(stat.S_ISSOCK(os.lstat(os.path.join(d, "qmp.sock")).st_mode))
        self.assertEqual(modes, dict.fromkeys(modes, 0o600))
        for path in (d, os.path.dirname(d), os.path.join(env.state_dir, "vms"),
                     os.path.join(env.state_dir, "vms", vm_id),
                     os.path.join(env.state_dir, "snapshots")):
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o700, path)

    # -- the CLI

    def cli_ok(self, env, *args):
        r = env.cli(*args)
        self.assertCli(r, 0)
        return r

    def cli_error(self, env, name, *args):
        """A CLI call that must fail with org.smolvm.Error.@name; returns the error object."""
        r = env.cli(*(list(args) + ["--json"]))
        self.assertCli(r, 1)
        err = r.json()["error"]
        self.assertEqual(err["name"], name, repr(r))
        self.assertEqual(err["dbus_name"], st.ERROR_PREFIX + name)
        return err

    def console(self, env, vm_id):
        """The console log, read directly from the file (fast, for polling)."""
        return env.console(vm_id)

    def guest_report(self, env, vm_id):
        """What a guest that stopped printing is doing, for a failure
        message: the daemon's state of the VM, each QEMU thread's CPU time
        over one second (a spinning vCPU or an idle one), QEMU's own log and
        the console's last lines."""
        lines = ["VM %s: state %s" % (vm_id, env.vm_state(vm_id))]
        pids = [pid for pid in self.qemu_pids(env)
                if any(("/vms/%s/" % vm_id) in arg for arg in cmdline(pid))]

        def cpu_ticks():
            ticks = {}
            for pid in pids:
                for tid in os.listdir("/proc/%d/task" % pid):
                    try:
                        with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                            fields = f.read().rsplit(")", 1)
                        with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                            name = f.read().strip()
                    except OSError:
                        continue
                    rest = fields[1].split()
                    ticks[(pid, tid, name)] = (rest[0], int(rest[11]) + int(rest[12]))
            return ticks

        before = cpu_ticks()
        time.sleep(1)
        after = cpu_ticks()
        hz = os.sysconf("SC_CLK_TCK")
        for key in sorted(after):
            run_state, total = after[key]
            spent = (total - before[key][1]) / hz if key in before else float("nan")
            lines.append("  QEMU %d thread %s (%s): state %s, %.2f s of CPU in 1 s" % (
                key[0], key[1], key[2], run_state, spent))
        if not pids:
            lines.append("  no QEMU process for this VM")
        d = os.path.join(env.runtime_dir, "vms", vm_id)
        for name in ("qemu.log", "console.log"):
            try:
                with open(os.path.join(d, name), errors="replace") as f:
                    tail = f.read().splitlines()[-40:]
            except OSError as e:
                tail = ["(%s)" % e]
            lines.append("  -- last lines of %s --" % name)
            lines.extend("  " + line for line in tail)
        return "\n".join(lines)

    def wait_for_tick(self, env, vm_id, predicate, what):
        """Waits BOOT_DEADLINE for @predicate over the console's ticks;
        when it gives up, the failure says what the guest was doing."""
        try:
            st.wait_for(lambda: predicate(st.ticks(self.console(env, vm_id))), what,
                        timeout=BOOT_DEADLINE)
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, self.guest_report(env, vm_id))) from None

    # -- VMs

    def create_qemu_vm(self, env, vm_id, boot_args=BOOT_ARGS, rootfs=None, network=False):
        kernel, initrd, guest_rootfs = guest()
        rootfs = rootfs or guest_rootfs
        r = self.cli_ok(env, "create", "--vm-id", vm_id, "--backend", "qemu", "--accel", "tcg",
                        "--kernel", kernel, "--initrd", initrd, "--rootfs", rootfs,
                        "--boot-args", boot_args, "--vcpus", "1", "--mem", str(MEM_MIB),
                        *([] if network else ["--no-network"]), "--json")
        vm = r.json()["data"]["vm"]
        self.assertEqual((vm["vm_id"], vm["backend"], vm["accel"]), (vm_id, "qemu", "tcg"), repr(r))

    def boot(self, env, base_id, boot_args=BOOT_ARGS, until_tick=3, rootfs=None, network=False):
        """Creates and starts a VM until its console shows `tick @until_tick`;
        retries a boot that misses BOOT_DEADLINE with a fresh VM.  Returns the
        VM id."""
        misses = []
        for attempt in range(1, BOOT_TRIES + 1):
            vm_id = base_id if attempt == 1 else "%s-retry%d" % (base_id, attempt)
            self.create_qemu_vm(env, vm_id, boot_args, rootfs, network)
            start = time.monotonic()
            self.cli_ok(env, "start", vm_id)
            try:
                self.wait_for_tick(env, vm_id, lambda ticks: until_tick in ticks,
                                   "tick %d of VM %s" % (until_tick, vm_id))
            except AssertionError as e:
                misses.append(str(e))
                print(e)
                print("  boot of %s missed tick %d within %.0f s (try %d of %d)" %
                      (vm_id, until_tick, BOOT_DEADLINE, attempt, BOOT_TRIES))
                self.cli_ok(env, "delete", vm_id, "--force")
                continue
            timed("boot to tick %d (%s)" % (until_tick, vm_id), time.monotonic() - start)
            return vm_id
        self.fail("%d boots in a row missed tick %d:\n%s" % (BOOT_TRIES, until_tick,
                                                              "\n".join(misses)))

    def mark_cut(self, env, vm_id):
        """(last tick, offset) of a paused VM's console: its last complete
        tick line, and where the next line will start."""
        text = complete_part(self.console(env, vm_id))
        t = st.ticks(text)
        self.assertTrue(t, "no tick on the console of %s" % vm_id)
        return t[-1], len(text)

    def next_line(self, env, vm_id, cut):
        """The first complete console line written at or after @cut."""
        def line():
            rest = self.console(env, vm_id)[cut:]
            return rest.split("\n", 1)[0] if "\n" in rest else None
        try:
            return st.wait_for(line, "a console line of VM %s after byte %d" % (vm_id, cut))
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, self.guest_report(env, vm_id))) from None

    def restore(self, env, what, *args):
        """`smolvm snapshot restore ARGS…`; returns when it returned (monotonic)."""
        start = time.monotonic()
        self.cli_ok(env, "snapshot", "restore", *args)
        done = time.monotonic()
        timed("%s (RestoreSnapshot through the CLI)" % what, done - start)
        return done

    def assertContinues(self, env, vm_id, last, cut, what, restored_at, boots=1):
        """After a restore: the next line is `tick last+1` and the guest never booted again
        (@boots: the boots the console log shows; 0 when the restore recreated a deleted VM,
        whose log starts afresh)."""
        line = self.next_line(env, vm_id, cut)
        timed("%s: restore returned -> next console line" % what, time.monotonic() - restored_at)
        text = self.console(env, vm_id)
        self.assertEqual(line, "tick %d" % (last + 1),
                         "%s: the line after the restore; console:\n%s" % (what, text))
        self.assertEqual(text.count(INIT_BANNER), boots, "%s: a second boot? console:\n%s" %
                         (what, text))

    def snapshot_dir(self, env, snapshot_id):
        return os.path.join(env.state_dir, "snapshots", snapshot_id)

    def mem_bin(self, env, snapshot_id):
        return os.path.join(self.snapshot_dir(env, snapshot_id), "mem.bin")

    def assertMapsSnapshot(self, env, vm_id, snapshot_id):
        """The VM's QEMU maps the snapshot's mem.bin (privately, writable:
        copy-on-write), and the VM has no RAM file of its own."""
        pid = env.vm_prop(vm_id, "Pid")
        with open("/proc/%d/maps" % pid) as f:
            maps = [line.split() for line in f if line.rstrip().endswith("/mem.bin")]
        self.assertEqual([(m[1], m[-1]) for m in maps],
                         [("rw-p", self.mem_bin(env, snapshot_id))], maps)
        self.assertFalse(os.path.exists(os.path.join(env.runtime_dir, "vms", vm_id, "ram")))

    def assertQemuSnapshotFiles(self, env, snapshot_id, vm_id):
        d = self.snapshot_dir(env, snapshot_id)
        # the kernel and initrd are hard links of the VM's own copies
        self.assertEqual(sorted(os.listdir(d)), ["disk.ext4", "initrd", "kernel", "mem.bin",
                                                 "snapshot.json", "vmstate.bin"])
        for image in ("kernel", "initrd"):
            self.assertGreaterEqual(os.stat(os.path.join(d, image)).st_nlink, 2)
        vmstate = os.path.getsize(os.path.join(d, "vmstate.bin"))
        # device state only (x-ignore-shared); all of RAM would be ~90 MB
        self.assertGreater(vmstate, 0)
        self.assertLess(vmstate, 2 * MIB, "vmstate.bin holds more than device state")
        self.assertEqual(os.path.getsize(os.path.join(d, "mem.bin")), MEM_MIB * MIB)
        self.assertEqual(os.path.getsize(os.path.join(d, "disk.ext4")),
                         os.path.getsize(guest()[2]))
        info = env.snapshot_info(snapshot_id)
        self.assertEqual(info["backend"], "qemu")
        self.assertEqual(env.snap_prop(snapshot_id, "Backend"), "qemu")
        self.assertEqual(info["vm_id"], vm_id)
        cfg = info["vm_config"]
        self.assertEqual(cfg["backend"], "qemu")
        self.assertEqual(cfg["accel"], "tcg")
        self.assertRegex(cfg["machine"], MACHINE_RE)
        self.assertEqual(cfg["mem_size_mib"], MEM_MIB)
        self.assertEqual(info["snapshot_path"], os.path.join(d, "vmstate.bin"))
        self.assertEqual(info["mem_file_path"], os.path.join(d, "mem.bin"))
        return vmstate


class TestQemu(QemuTestCase):

    def test_1_snapshot_restore_continuity(self):
        """Boot, snapshot, delete the VM, restore: the guest counts on. Then
        snapshot the restored VM and restore that; then the restore-once,
        force and InUse rules."""
        env = self.env
        self.assertIn("qemu", env.busctl("get-property", st.BUS_NAME, st.MANAGER_PATH,
                                         st.MANAGER_IFACE, "Backends"))
        vm = self.boot(env, "counter")
        info = env.vm_info(vm)
        self.assertEqual(info["backend"], "qemu")
        self.assertEqual(info["accel"], "tcg")
        self.assertRegex(info["machine"], MACHINE_RE)
        self.assertEqual(env.vm_prop(vm, "Accel"), "tcg")
        self.assertEqual(env.vm_prop(vm, "Machine"), info["machine"])
        self.assertEqual(self.qemu_pids(env), [info["pid"]])
        self.assertPrivateRuntimeFiles(env, vm)

        # -- snapshot s1 (the VM is paused when the call returns)
        start = time.monotonic()
        self.cli_ok(env, "snapshot", "create", vm, "--snapshot-id", "s1")
        timed("snapshot s1 (CreateSnapshot through the CLI)", time.monotonic() - start)
        self.assertEqual(env.vm_state(vm), "paused")
        last1, cut1 = self.mark_cut(env, vm)
        self.assertGreaterEqual(last1, 3)
        size1 = self.assertQemuSnapshotFiles(env, "s1", vm)
        self.assertEqual(env.snapshot_info("s1")["vm_config"]["machine"], info["machine"])
        # what restored VMs map: read-only, and never written
        self.assertEqual(stat.S_IMODE(os.stat(self.mem_bin(env, "s1")).st_mode), 0o400)
        mem1 = file_sha256(self.mem_bin(env, "s1"))
        # the CLI shows the same console
        self.assertEqual(self.cli_ok(env, "console-log", vm).out, self.console(env, vm))

        # -- the VM goes away entirely; the restore recreates it
        self.cli_ok(env, "stop", vm)
        self.cli_ok(env, "delete", vm)
        self.assertNotIn(vm, env.list_vms())
        self.assertNoQemu(env)
        # its console log went with it; the restore starts a fresh one
        st.wait_for(lambda: not os.path.exists(env.console_path(vm)),
                    "the console log of the deleted VM to go")
        done = self.restore(env, "restore s1, VM deleted", "s1", "--resume")
        self.assertEqual(env.vm_state(vm), "running")
        self.assertEqual(env.vm_prop(vm, "RestoredFrom"), "s1")
        pid = env.vm_prop(vm, "Pid")
        self.assertEqual(self.qemu_pids(env), [pid])
        self.assertContinues(env, vm, last1, 0, "restore of s1", done, boots=0)
        self.assertPrivateRuntimeFiles(env, vm, restored=True)
        self.assertMapsSnapshot(env, vm, "s1")
        s1 = env.snapshot_info("s1")
        self.assertIs(s1["restored"], True)
        self.assertEqual(s1["restored_vm_id"], vm)

        # -- InUse while the VM restored from s1 runs
        self.cli_error(env, "InUse", "snapshot", "delete", "s1")
        self.assertDBusError("InUse", env.delete_snapshot, "s1")
        self.assertDBusError("InUse", env.restore, "s1", force=True)

        # -- a snapshot of the restored VM (second generation), through D-Bus,
        # by a restarted smolvmd: it asks QEMU how the VM's RAM is mapped
        env.daemon.restart()
        self.assertEqual(env.vm_state(vm), "running")
        self.assertDBusError("InUse", env.delete_snapshot, "s1")
        env.wait_tick(vm, last1 + 2)
        start = time.monotonic()
        env.create_snapshot(vm, "s2")
        timed("snapshot s2 of the restored VM (gdbus)", time.monotonic() - start)
        self.assertEqual(env.vm_state(vm), "paused")
        last2, cut2 = self.mark_cut(env, vm)
        self.assertGreaterEqual(last2, last1 + 2)
        # the same layout as s1's (its RAM came out of the stream): device
        # state in vmstate.bin, all of RAM in a mem.bin of its own
        size2 = self.assertQemuSnapshotFiles(env, "s2", vm)
        print("  vmstate.bin: s1 %d bytes, s2 %d bytes" % (size1, size2))
        self.assertEqual(stat.S_IMODE(os.stat(self.mem_bin(env, "s2")).st_mode), 0o400)
        self.assertNotEqual(os.stat(self.mem_bin(env, "s2")).st_ino,
                            os.stat(self.mem_bin(env, "s1")).st_ino)
        mem2 = file_sha256(self.mem_bin(env, "s2"))
        # a paused VM maps s1 as much as a running one
        self.assertEqual(env.vm_state(vm), "paused")
        self.assertDBusError("InUse", env.delete_snapshot, "s1")
        # the guest runs on, writing its memory: neither file changes
        self.cli_ok(env, "resume", vm)
        env.wait_tick(vm, last2 + 2, cut2)
        self.cli_ok(env, "pause", vm)
        self.assertEqual(file_sha256(self.mem_bin(env, "s1")), mem1, "s1's mem.bin changed")
        self.assertEqual(file_sha256(self.mem_bin(env, "s2")), mem2, "s2's mem.bin changed")

        # restoring over the existing (paused) VM stops it first
        cut = len(complete_part(self.console(env, vm)))
        done = self.restore(env, "restore s2 over the paused VM", "s2", "--resume")
        self.assertNotEqual(env.vm_prop(vm, "Pid"), pid)
        self.assertEqual(env.vm_prop(vm, "RestoredFrom"), "s2")
        self.assertEqual(len(self.qemu_pids(env)), 1)
        self.assertMapsSnapshot(env, vm, "s2")
        self.assertContinues(env, vm, last2, cut, "restore of s2", done, boots=0)

        # -- s1 is no longer in use, but restored: once only, unless forced
        self.cli_error(env, "AlreadyRestored", "snapshot", "restore", "s1")
        self.assertDBusError("AlreadyRestored", env.restore, "s1")
        self.assertDBusError("InUse", env.delete_snapshot, "s2")
        # forced: the guest goes back to s1's memory, although it ran on since
        self.cli_ok(env, "pause", vm)
        cut3 = len(complete_part(self.console(env, vm)))
        done = self.restore(env, "forced restore of s1 over the paused VM", "s1", "--force",
                            "--resume")
        self.assertEqual(env.vm_prop(vm, "RestoredFrom"), "s1")
        self.assertContinues(env, vm, last1, cut3, "forced restore of s1", done, boots=0)
        # s2 is free now
        self.cli_ok(env, "snapshot", "delete", "s2")
        self.assertFalse(os.path.exists(self.snapshot_dir(env, "s2")))

        # -- s3 of the VM that maps s1 outlives s1: once stopped, the VM no
        # longer holds s1, which goes; s3 restores and the guest counts on
        env.wait_tick(vm, last1 + 2, cut3)
        self.cli_ok(env, "snapshot", "create", vm, "--snapshot-id", "s3")
        last3, _ = self.mark_cut(env, vm)
        self.assertQemuSnapshotFiles(env, "s3", vm)
        mem3 = file_sha256(self.mem_bin(env, "s3"))
        self.cli_ok(env, "resume", vm)
        env.wait_tick(vm, last3 + 2, cut3)
        pid = env.vm_prop(vm, "Pid")
        self.cli_ok(env, "stop", vm)
        self.assertEqual(env.vm_state(vm), "stopped")
        self.assertEqual(env.vm_prop(vm, "Pid"), 0)
        self.assertFalse(st.process_alive(pid))
        self.assertNoQemu(env)
        self.assertNoRuntimeLeftovers(env, vm)
        self.assertEqual(file_sha256(self.mem_bin(env, "s1")), mem1, "s1's mem.bin changed")
        self.cli_ok(env, "snapshot", "delete", "s1")
        self.assertEqual(file_sha256(self.mem_bin(env, "s3")), mem3, "s3's mem.bin changed")
        cut = len(complete_part(self.console(env, vm)))
        done = self.restore(env, "restore s3 (s1 deleted)", "s3", "--resume")
        self.assertMapsSnapshot(env, vm, "s3")
        self.assertContinues(env, vm, last3, cut, "restore of s3", done, boots=0)
        self.cli_ok(env, "delete", vm, "--force")
        self.assertNoQemu(env)
        self.cli_ok(env, "snapshot", "delete", "s3")
        self.assertEqual(env.snapshot_ids(), [])

    def test_2_pause_resume_and_daemon_restart(self):
        """State follows pause/resume; a SIGKILLed smolvmd takes its QEMU over."""
        env = self.env
        vm = self.boot(env, "survivor")
        pid = env.vm_prop(vm, "Pid")

        self.cli_ok(env, "pause", vm)
        self.assertEqual(env.vm_state(vm), "paused")
        self.assertEqual(env.list_vms()[vm]["state"], "paused")
        paused_at = self.console(env, vm)
        time.sleep(2.5)  # ~2 ticks of a running guest
        self.assertEqual(self.console(env, vm), paused_at, "the guest ran on while paused")
        self.cli_ok(env, "resume", vm)
        self.assertEqual(env.vm_state(vm), "running")
        env.wait_tick(vm, st.ticks(paused_at)[-1] + 1)

        # -- smolvmd dies; the guest does not
        env.daemon.kill()
        self.assertTrue(st.process_alive(pid))
        since = env.console_size(vm)
        env.wait_tick(vm, env.last_tick(vm) + 1, since)
        start = time.monotonic()
        env.daemon.start()
        timed("smolvmd restart with a running QEMU VM", time.monotonic() - start)
        self.assertEqual(env.vm_state(vm), "running")
        self.assertEqual(env.vm_prop(vm, "Pid"), pid)
        self.assertEqual(self.qemu_pids(env), [pid])
        since = env.console_size(vm)
        env.wait_tick(vm, env.last_tick(vm) + 2, since)
        # the monitor connection is really ours again
        self.cli_ok(env, "pause", vm)
        self.assertEqual(env.vm_state(vm), "paused")
        self.cli_ok(env, "resume", vm)
        self.assertEqual(env.vm_state(vm), "running")
        since = env.console_size(vm)
        env.wait_tick(vm, env.last_tick(vm) + 1, since)
        text = self.console(env, vm)
        self.assertEqual(text.count(INIT_BANNER), 1, text)
        t = st.ticks(text)
        self.assertEqual(t, list(range(1, len(t) + 1)), "the ticks did not count on")

        self.cli_ok(env, "stop", vm)
        self.assertEqual(env.vm_state(vm), "stopped")
        self.assertEqual(env.vm_prop(vm, "Pid"), 0)
        st.wait_for(lambda: not st.process_alive(pid), "QEMU %d to end" % pid, timeout=10)
        self.assertNoQemu(env)
        self.assertNoRuntimeLeftovers(env, vm)

    def test_3_guest_poweroff(self):
        """A guest that powers itself off leaves its VM stopped, not in error."""
        env = self.env
        vm = self.boot(env, "shortlived", boot_args=BOOT_ARGS + " smolvm.poweroff=3")
        st.wait_for(lambda: env.vm_state(vm) != "running", "VM %s to leave running" % vm)
        self.assertEqual(env.vm_state(vm), "stopped", self.console(env, vm))
        self.assertEqual(env.vm_prop(vm, "Pid"), 0)
        self.assertIn("smolvm-guest: powering off", self.console(env, vm))
        self.assertNoQemu(env)
        self.assertNoRuntimeLeftovers(env, vm)

        # The same after a daemon restart: the process is adopted, so its
        # exit status is unknown; QMP's SHUTDOWN event says it was the guest.
        vm = self.boot(env, "adopted", boot_args=BOOT_ARGS + " smolvm.poweroff=9",
                       until_tick=2)
        env.daemon.kill()
        env.daemon.start()
        self.assertEqual(env.vm_state(vm), "running")
        st.wait_for(lambda: env.vm_state(vm) != "running", "VM %s to leave running" % vm,
                    timeout=60)
        self.assertEqual(env.vm_state(vm), "stopped", self.console(env, vm))
        self.assertEqual(env.vm_prop(vm, "Pid"), 0)
        self.assertIn("smolvm-guest: powering off", self.console(env, vm))
        self.assertNoQemu(env)

    def test_4_failed_restores(self):
        """A short mem.bin, a damaged vmstate.bin and a migration that QEMU
        refuses: each a clear error, the VM stopped on its previous disk,
        the snapshot not restored and nothing left over."""
        env = self.env
        vm = self.boot(env, "victim")
        self.cli_ok(env, "snapshot", "create", vm, "--snapshot-id", "e1")
        last, _ = self.mark_cut(env, vm)
        self.cli_ok(env, "resume", vm)
        snap = self.snapshot_dir(env, "e1")
        mem, vmstate, meta = (os.path.join(snap, n)
                              for n in ("mem.bin", "vmstate.bin", "snapshot.json"))
        good = os.path.join(env.root, "good")
        os.mkdir(good)
        for path in (mem, vmstate, meta):
            subprocess.run(["cp", "--sparse=always", path, good], check=True)
        # the VM's disk now differs from the snapshot's
        disk = env.vm_prop(vm, "DiskPath")
        with open(disk, "r+b") as f:
            f.seek(32 * MIB)
            f.write(st.mark_bytes(32 * MIB, b"after-the-snapshot"))
        disk_sha = file_sha256(disk)
        self.assertNotEqual(disk_sha, file_sha256(os.path.join(snap, "disk.ext4")))

        def assertRolledBack(what):
            self.assertEqual(env.vm_state(vm), "stopped", what)
            self.assertEqual(env.vm_prop(vm, "Pid"), 0, what)
            self.assertEqual(env.vm_prop(vm, "RestoredFrom"), "", what)
            self.assertNoQemu(env)
            self.assertNoRuntimeLeftovers(env, vm)
            self.assertEqual(file_sha256(disk), disk_sha, "%s: not the VM's previous disk" % what)
            self.assertEqual(sorted(os.listdir(os.path.dirname(disk))),
                             ["disk.ext4", "initrd", "kernel", "vm.json"], what)
            info = env.snapshot_info("e1")
            self.assertIs(info["restored"], False, what)
            self.assertEqual(info["restored_vm_id"], "", what)
            self.assertEqual(sorted(os.listdir(snap)), ["disk.ext4", "initrd", "kernel", "mem.bin",
                                                        "snapshot.json", "vmstate.bin"], what)
            self.assertEqual([n for n in os.listdir(env.state_dir + "/snapshots")], ["e1"], what)

        # -- (b) mem.bin of the wrong size while the VM runs: refused before
        # the VM is touched, so it runs on
        self.assertEqual(env.vm_state(vm), "running")
        pid = env.vm_prop(vm, "Pid")
        os.truncate(mem, 128 * MIB)
        e = self.assertDBusError("Failed", env.restore, "e1", resume=True)
        print("  short mem.bin: %s" % e.message)
        self.assertIn("mem.bin is %d bytes" % (128 * MIB), e.message)
        self.assertIn("%d MiB" % MEM_MIB, e.message)
        self.assertEqual(env.vm_state(vm), "running")
        self.assertEqual(env.vm_prop(vm, "Pid"), pid)
        self.assertEqual(file_sha256(disk), disk_sha)
        shutil.copyfile(os.path.join(good, "mem.bin"), mem)
        self.cli_ok(env, "stop", vm)

        # -- (c1) vmstate.bin damaged in the middle: smolvmd's checksum catches it
        with open(vmstate, "r+b") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(size // 2 - 32 * 1024)
            f.write(b"\xff" * (64 * 1024))
        e = self.assertDBusError("Failed", env.restore, "e1", resume=True)
        print("  damaged vmstate.bin: %s" % e.message)
        self.assertIn("damaged (checksum mismatch)", e.message)
        assertRolledBack("damaged vmstate.bin")
        self.cli_error(env, "Failed", "snapshot", "restore", "e1", "--resume")

        # -- (c2) the same damage with a matching checksum in snapshot.json
        # (edited by hand, read by a restarted smolvmd): QEMU's own incoming
        # migration fails, QEMU exits 1, and its stderr is quoted.
        with open(meta) as f:
            data = json.load(f)
        data["vmstate_sha256"] = file_sha256(vmstate)
        with open(meta, "w") as f:
            json.dump(data, f, indent=2)
        env.daemon.restart()
        e = self.assertDBusError("Backend", env.restore, "e1", resume=True)
        print("  migration refused by QEMU: %s" % e.message)
        self.assertIn("Migration failed", e.message)
        self.assertIn("qemu-system-x86_64: ", e.message)
        qemu_log = open(os.path.join(env.runtime_dir, "vms", vm, "qemu.log")).read()
        self.assertIn("load of migration failed", qemu_log)
        assertRolledBack("migration failure")

        # -- repaired, the same snapshot restores, and the guest counts on
        for name in ("vmstate.bin", "snapshot.json"):
            shutil.copyfile(os.path.join(good, name), os.path.join(snap, name))
        env.daemon.restart()
        cut = len(complete_part(self.console(env, vm)))
        done = self.restore(env, "restore of e1 after the failed ones", "e1", "--resume")
        self.assertEqual(env.vm_state(vm), "running")
        self.assertContinues(env, vm, last, cut, "restore of the repaired e1", done)
        self.assertEqual(file_sha256(disk), file_sha256(os.path.join(snap, "disk.ext4")))
        self.cli_ok(env, "stop", vm)
        self.assertNoQemu(env)

    def test_5_qemu_fails_to_start(self):
        """A QEMU that exits at once: Start fails with its stderr line."""
        env = self.new_env(start=False)
        fake_dir = os.path.join(env.root, "fake-qemu")
        os.mkdir(fake_dir)
        fake = os.path.join(fake_dir, "qemu-system-x86_64")
        with open(fake, "w") as f:
            f.write("""#!/bin/sh
if [ "$1" = -machine ] && [ "$2" = help ]; then
  echo 'Supported machines are:'
  echo 'q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-7.2)'
  echo 'pc-q35-7.2           Standard PC (Q35 + ICH9, 2009)'
  exit 0
fi
echo 'qemu-system-x86_64: warning: something harmless first' >&2
echo '%s' >&2
exit 1
""" % FAKE_QEMU_ERROR)
        os.chmod(fake, 0o755)
        env.daemon.qemu_bin = fake
        env.daemon.start()
        self.assertIn("qemu", env.busctl("get-property", st.BUS_NAME, st.MANAGER_PATH,
                                         st.MANAGER_IFACE, "Backends"))
        self.create_qemu_vm(env, "doomed")
        self.assertEqual(env.vm_prop("doomed", "Machine"), "pc-q35-7.2")

        e = self.assertDBusError("Backend", env.vm, "doomed", "Start")
        print("  start error: %s" % e.message)
        self.assertIn(FAKE_QEMU_ERROR, e.message)
        state = env.vm_state("doomed")
        self.assertIn(state, ("created", "stopped"))
        self.assertEqual(env.vm_prop("doomed", "Pid"), 0)
        self.assertNoQemu(env, fake)
        self.assertNoRuntimeLeftovers(env, "doomed")
        # again, through the CLI: same answer, same state
        err = self.cli_error(env, "Backend", "start", "doomed")
        self.assertIn(FAKE_QEMU_ERROR, err["message"])
        r = env.cli("start", "doomed")
        self.assertCli(r, 1)
        self.assertIn(FAKE_QEMU_ERROR, r.err)
        self.assertEqual(env.vm_state("doomed"), state)
        self.assertNoQemu(env, fake)
        self.assertNoRuntimeLeftovers(env, "doomed")
        self.cli_ok(env, "delete", "doomed")
        self.assertEqual(env.list_vms(), {})


class TestQemuPython(QemuTestCase):

    def test_7_python_sdk_spec_page(self):
        """The SnapshotInfo page's three Python blocks, verbatim, on a QEMU
        guest made from the daemon's default images: after the restore the
        guest counts on."""
        sdk_test = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test-python-sdk.py")
        spec = importlib.util.spec_from_file_location("python_sdk_test", sdk_test)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if not os.path.exists(module.SPEC):
            self.skipTest("the spec page %s is not there" % module.SPEC)
        if not os.path.exists(os.path.join(st.BUILD_DIR, "src", "lib", "Smolvm-1.0.typelib")):
            self.skipTest("built without introspection")
        kernel, initrd, rootfs = guest()
        env = self.new_env(daemon_args=[
            "--default-kernel", kernel, "--default-initrd", initrd, "--default-rootfs", rootfs,
            "--default-backend", "qemu", "--default-accel", "tcg"])
        vm_id = module.check_spec_blocks(self, env)
        info = env.vm_info(vm_id)
        self.assertEqual((info["backend"], info["accel"]), ("qemu", "tcg"))
        seen = len(st.ticks(self.console(env, vm_id)))
        self.wait_for_tick(env, vm_id, lambda ticks: len(ticks) > seen,
                           "a tick of the restored guest")


def smaps_kib(pid, path=None):
    """The kB fields of /proc/PID/smaps_rollup (all of the process), or,
    with @path, of PID's mappings of the file @path in /proc/PID/smaps,
    summed; a dict of ints, in KiB."""
    fields = {}
    inside = path is None
    with open("/proc/%d/%s" % (pid, "smaps_rollup" if path is None else "smaps")) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if not parts[0].endswith(":"):
                # a mapping's header: "start-end perms offset dev inode [path]"
                inside = path is None or parts[-1] == path
            elif inside and len(parts) >= 3 and parts[2] == "kB":
                key = parts[0][:-1]
                fields[key] = fields.get(key, 0) + int(parts[1])
    return fields


def private_kib(fields):
    return fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)


class TestQemuClones(QemuTestCase):

    def test_8_clones(self):
        """Snapshot a ticking guest at tick N, clone it 4 times with resume:
        every clone goes on from tick N+1 without a boot, they share the
        snapshot's memory, stopping one leaves the others ticking,
        DeleteSnapshot is InUse until they are gone, and a clone's own
        snapshot restores and goes on."""
        env = self.env
        vm = self.boot(env, "tmpl")
        self.cli_ok(env, "snapshot", "create", vm, "--snapshot-id", "t1")
        last, _ = self.mark_cut(env, vm)
        start = time.monotonic()
        r = self.cli_ok(env, "snapshot", "clone", "t1", "--count", "4", "--resume", "--json")
        done = time.monotonic()
        timed("4 clones of a %d MiB guest (CloneSnapshot through the CLI)" % MEM_MIB,
              done - start)
        clones = [v["vm_id"] for v in r.json()["data"]["vms"]]
        self.assertEqual(clones, ["%s-%d" % (vm, n) for n in range(1, 5)])
        for clone in clones:
            self.assertEqual(env.vm_state(clone), "running")
            self.assertEqual(env.vm_prop(clone, "ClonedFrom"), "t1")
            # a clone's console log is its own, and starts with the tick after N
            self.assertContinues(env, clone, last, 0, "clone %s" % clone, done, boots=0)
        pids = [env.vm_prop(clone, "Pid") for clone in clones]
        self.assertEqual(sorted(self.qemu_pids(env)), sorted(pids + [env.vm_prop(vm, "Pid")]))
        # each clone's QEMU maps the snapshot's mem.bin privately: no RAM file
        # of its own in its runtime dir, and mem.bin read-only again after
        # the loads, made at the same time
        for clone in clones:
            self.assertMapsSnapshot(env, clone, "t1")
            self.assertNotIn("ram", self.runtime_files(env, clone))
        self.assertEqual(stat.S_IMODE(os.stat(self.mem_bin(env, "t1")).st_mode), 0o400)

        # memory: the guests' pages are the snapshot's until written
        mem_bin = self.mem_bin(env, "t1")
        whole = [smaps_kib(pid) for pid in pids]
        mapped = [smaps_kib(pid, mem_bin) for pid in pids]
        guest_kib = MEM_MIB * 1024
        for clone, w, m in zip(clones, whole, mapped):
            print("  clone %s: Pss %d KiB, private %d KiB; its mem.bin mapping: Rss %d KiB, "
                  "Pss %d KiB, shared %d KiB, private %d KiB (dirty %d KiB)" % (
                      clone, w["Pss"], private_kib(w), m["Rss"], m["Pss"],
                      m["Shared_Clean"] + m["Shared_Dirty"], private_kib(m), m["Private_Dirty"]))
        private = sum(private_kib(w) for w in whole)
        pss = sum(w["Pss"] for w in whole)
        mapped_rss = sum(m["Rss"] for m in mapped)
        mapped_pss = sum(m["Pss"] for m in mapped)
        # the clones' own (copy-on-write) pages of guest RAM
        written = sum(m["Private_Dirty"] for m in mapped)
        print("  4 clones of a %d MiB guest: private %.1f MiB, Pss %.1f MiB in all; mem.bin "
              "mapped: Rss %.1f MiB, Pss %.1f MiB, written %.1f MiB" % (
                  MEM_MIB, private / 1024, pss / 1024, mapped_rss / 1024, mapped_pss / 1024,
                  written / 1024))
        # four guests of their own would hold 4 x MEM_MIB privately; the
        # clones hold QEMU's own memory (TCG's code buffer above all) and the
        # pages their guests wrote since the snapshot: allow half of it
        self.assertLess(private, 4 * guest_kib // 2,
                        "the clones do not share the snapshot's memory: %r" % whole)
        self.assertLess(written, guest_kib // 2, "the clones wrote most of guest RAM?")
        # the pages of mem.bin they read are shared (each clone's Rss has
        # them, each Pss a quarter of those the four map): counted once,
        # they are at most mem.bin itself, though four times over they
        # would be more than half of it
        self.assertGreater(sum(m["Shared_Clean"] for m in mapped), 0)
        self.assertLessEqual(mapped_pss - written, guest_kib)
        self.assertLess(mapped_pss - written, (mapped_rss - written) // 2,
                        "the clones' mem.bin pages are not shared: %r" % mapped)

        # -- stopping one does not disturb the others
        self.cli_ok(env, "stop", clones[0])
        for clone in clones[1:]:
            seen = st.ticks(self.console(env, clone))[-1]
            env.wait_tick(clone, seen + 1)
            self.assertEqual(env.vm_state(clone), "running")

        # -- the snapshot is mapped: no delete
        self.cli_error(env, "InUse", "snapshot", "delete", "t1")

        # -- a clone's own snapshot restores and goes on
        self.cli_ok(env, "snapshot", "create", clones[1], "--snapshot-id", "c1")
        last_c1, cut_c1 = self.mark_cut(env, clones[1])
        done = self.restore(env, "restore of a clone's snapshot", "c1", "--resume")
        self.assertContinues(env, clones[1], last_c1, cut_c1, "restore of c1", done, boots=0)

        # -- once no clone maps it, the snapshot can go
        for clone in clones:
            self.cli_ok(env, "delete", clone, "--force")
        self.cli_ok(env, "snapshot", "delete", "t1")
        self.cli_ok(env, "snapshot", "delete", "c1")


PING_TTL_RE = re.compile(r"ttl=(\d+)")


@st.unittest.skipUnless(st.IS_ROOT and os.path.exists("/dev/net/tun") and
                        all(shutil.which(t) for t in ("unshare", "nsenter", "ip", "nft", "ping")),
                        "needs root, /dev/net/tun, unshare, nsenter, ip, nft and ping")
class TestQemuCloneNetwork(QemuTestCase):
    PING_TRIES = 10

    def net_env(self):
        return self.net_namespaced_env()

    def ping(self, env, ip, tries=None):
        """Pings @ip from smolvmd's network namespace (the host, to its
        VMs) until one answer, at most @tries times (a TCG guest is slow);
        the answer's TTL, or None without an answer."""
        for attempt in range(1, (tries or self.PING_TRIES) + 1):
            r = subprocess.run(["nsenter", "--net=/proc/%d/ns/net" % env.daemon.pid,
                                "ping", "-n", "-c", "1", "-W", "2", ip],
                               capture_output=True, text=True)
            m = PING_TTL_RE.search(r.stdout)
            if r.returncode == 0 and m:
                print("  %s answered ping %d (ttl %s)" % (ip, attempt, m.group(1)))
                return int(m.group(1))
        print("  %s did not answer %d pings" % (ip, attempt))
        return None

    def test_9_networked_clones_answer_ping(self):
        """A networked guest (its /init brings eth0 up with busybox from the
        ip= argument) answers ping; its snapshot's two networked clones each
        answer at their own host_ip, from the guest itself (the reply was
        routed through the clone's namespace: TTL 63, and none while that
        clone is paused), and the source still answers at its address."""
        env = self.net_env()
        vm = self.boot(env, "pinged", network=True)
        net = env.vm_info(vm)["network_config"]
        st.wait_for(lambda: "smolvm-guest: eth0 is %s," % net["guest_ip"] in
                    self.console(env, vm), "the guest to configure eth0")
        # on its own link: the reply is not forwarded
        self.assertEqual(self.ping(env, net["guest_ip"]), 64)

        self.cli_ok(env, "snapshot", "create", vm, "--snapshot-id", "n1")
        self.cli_ok(env, "resume", vm)
        r = self.cli_ok(env, "snapshot", "clone", "n1", "--count", "2", "--resume", "--json")
        clones = [v["vm_id"] for v in r.json()["data"]["vms"]]
        self.assertEqual(len(clones), 2)
        nets = [env.vm_info(c)["network_config"] for c in clones]
        hosts = [n["host_ip"] for n in nets]
        print("  source at %s; clones %s at %s" % (net["guest_ip"], clones, hosts))
        self.assertEqual(len(set(hosts + [net["guest_ip"]])), 3)
        self.assertEqual([v["ip_address"] for v in r.json()["data"]["vms"]], hosts)
        self.assertEqual(len({n["host_mac"] for n in nets}), 2)
        for clone, n in zip(clones, nets):
            self.assertEqual(n["guest_ip"], net["guest_ip"])
            self.assertEqual(env.vm_state(clone), "running")
            # answered by the guest behind the namespace's NAT: one hop
            self.assertEqual(self.ping(env, n["host_ip"]), 63, "clone %s at %s" %
                             (clone, n["host_ip"]))
        self.assertEqual(self.ping(env, net["guest_ip"]), 64, "the source after the clones")

        # a paused clone does not answer (nothing else does for it); the
        # other one still does
        self.cli_ok(env, "pause", clones[0])
        self.assertIsNone(self.ping(env, hosts[0], tries=2))
        self.assertEqual(self.ping(env, hosts[1]), 63)
        self.cli_ok(env, "resume", clones[0])
        self.assertEqual(self.ping(env, hosts[0]), 63)

        for clone in clones:
            self.cli_ok(env, "delete", clone, "--force")
        self.cli_ok(env, "snapshot", "delete", "n1")
        self.cli_ok(env, "delete", vm, "--force")


class TestQemuJobs(QemuTestCase):
    FILL_MIB = 160
    DISK_FILL_MIB = 192

    def test_6_jobs_progress_and_cancel(self):
        """A guest that has written FILL_MIB MiB of RAM: the Job of a snapshot
        shows QEMU's phases with rising progress; Cancel while the memory is
        copied (create) or the disk is (restore: it maps mem.bin, so copies
        only the disk, made DISK_FILL_MIB MiB bigger here) leaves the state
        directory as it was, the VM as it was and no QEMU behind. A snapshot
        of the restored VM measures its memory in the saving-state phase."""
        from jobwatch import GLib, JobWatch, cancel_at
        env = self.env
        rootfs = os.path.join(env.root, "big-rootfs.ext4")
        shutil.copyfile(guest()[2], rootfs)
        with open(rootfs, "ab") as f:  # past the file system: the guest never reads it
            chunk = os.urandom(MIB)
            for _ in range(self.DISK_FILL_MIB):
                f.write(chunk)
        vm = self.boot(env, "filled", BOOT_ARGS + " smolvm.fill=%d" % self.FILL_MIB,
                       rootfs=rootfs)
        self.assertIn("smolvm-guest: filled %d MiB" % self.FILL_MIB, self.console(env, vm))
        state = lambda: st.tree_fingerprint(env.state_dir)  # noqa: E731

        # -- cancel a snapshot while QEMU's RAM file is copied
        before = state()
        w = JobWatch(env)
        outcome = cancel_at(w, "copying-memory")
        w.call(st.MANAGER_PATH, st.MANAGER_IFACE, "CreateSnapshot",
               GLib.Variant("(ssa{sv})", (vm, "q1", {})))
        reply = w.wait_reply()
        job = w.only_job()
        w.close()
        self.assertEqual(outcome, [None])
        self.assertEqual(reply[:2], ("error", st.ERROR_PREFIX + "Cancelled"), reply)
        self.assertTrue(reply[2].startswith("Cancelled"), reply)
        self.assertEqual(w.completed[job], (False, reply[2]))
        self.assertEqual(w.phases(job)[:3], ["pausing", "saving-state", "copying-memory"])
        self.assertEqual(state(), before)
        self.assertEqual(env.snapshot_ids(), [])
        self.assertEqual(env.vm_state(vm), "running")
        env.wait_tick(vm, env.last_tick(vm) + 1, env.console_size(vm))

        # -- a snapshot that completes: its memory is measured
        w = JobWatch(env)
        w.call(st.MANAGER_PATH, st.MANAGER_IFACE, "CreateSnapshot",
               GLib.Variant("(ssa{sv})", (vm, "q1", {})))
        self.assertEqual(w.wait_reply()[0], "ok")
        job = w.only_job()
        w.close()
        self.assertEqual(w.phases(job), ["pausing", "saving-state", "copying-memory",
                                         "copying-disk", "checksumming", "committing"])
        self.assertGreaterEqual(w.props[job]["BytesTotal"], self.FILL_MIB * MIB)
        self.assertEqual(w.props[job]["BytesDone"], w.props[job]["BytesTotal"])
        progress = w.values(job, "Progress")
        self.assertEqual(progress, sorted(progress))
        self.assertEqual(w.valid_by_phase(job).get("copying-memory"), {True})
        last, cut = self.mark_cut(env, vm)

        # -- cancel a restore into the deleted VM while the disk is copied
        self.cli_ok(env, "delete", vm, "--force")
        self.assertNoQemu(env)
        before = state()
        w = JobWatch(env)
        outcome = cancel_at(w, "copying-disk")
        w.call(st.MANAGER_PATH, st.MANAGER_IFACE, "RestoreSnapshot",
               GLib.Variant("(sa{sv})", ("q1", {"resume": GLib.Variant("b", True)})))
        reply = w.wait_reply()
        job = w.only_job()
        w.close()
        self.assertEqual(outcome, [None])
        self.assertEqual(reply[:2], ("error", st.ERROR_PREFIX + "Cancelled"), reply)
        self.assertEqual(w.phases(job)[:2], ["checksumming", "copying-disk"])
        self.assertEqual(state(), before)
        self.assertNotIn(vm, env.list_vms())
        self.assertIs(env.snapshot_info("q1")["restored"], False)
        self.assertNoQemu(env)
        self.assertNoRuntimeLeftovers(env, vm)

        # -- and the snapshot still restores, the guest counting on (in a
        # fresh console log: the VM's went with its delete)
        self.assertNotIn(INIT_BANNER, self.console(env, vm))
        cut = env.console_size(vm)
        w = JobWatch(env)
        w.call(st.MANAGER_PATH, st.MANAGER_IFACE, "RestoreSnapshot",
               GLib.Variant("(sa{sv})", ("q1", {"resume": GLib.Variant("b", True)})))
        self.assertEqual(w.wait_reply()[0], "ok")
        done = time.monotonic()
        job = w.only_job()
        w.close()
        # no memory to copy: the disk is all it measures
        self.assertEqual(w.phases(job), ["checksumming", "copying-disk", "loading-state",
                                         "committing"])
        disk = os.path.getsize(os.path.join(self.snapshot_dir(env, "q1"), "disk.ext4"))
        self.assertGreaterEqual(w.props[job]["BytesTotal"], self.DISK_FILL_MIB * MIB)
        self.assertLess(w.props[job]["BytesTotal"], disk + MIB)
        self.assertContinues(env, vm, last, cut, "restore of q1", done, boots=0)
        self.assertMapsSnapshot(env, vm, "q1")

        # -- a snapshot of the restored VM: its memory comes in QEMU's stream
        env.wait_tick(vm, last + 2, cut)
        w = JobWatch(env)
        w.call(st.MANAGER_PATH, st.MANAGER_IFACE, "CreateSnapshot",
               GLib.Variant("(ssa{sv})", (vm, "q2", {"resume-source": GLib.Variant("b", True)})))
        self.assertEqual(w.wait_reply()[0], "ok")
        job = w.only_job()
        w.close()
        self.assertEqual(w.phases(job), ["pausing", "saving-state", "copying-disk",
                                         "checksumming", "committing", "resuming"])
        self.assertGreaterEqual(w.props[job]["BytesTotal"], (MEM_MIB + self.DISK_FILL_MIB) * MIB)
        self.assertEqual(w.props[job]["BytesDone"], w.props[job]["BytesTotal"])
        progress = w.values(job, "Progress")
        self.assertEqual(progress, sorted(progress))
        q2 = self.snapshot_dir(env, "q2")
        self.assertLess(os.path.getsize(os.path.join(q2, "vmstate.bin")), 2 * MIB)
        self.assertEqual(os.path.getsize(os.path.join(q2, "mem.bin")), MEM_MIB * MIB)
        self.assertEqual(env.vm_state(vm), "running")
        self.cli_ok(env, "delete", vm, "--force")
        self.assertNoQemu(env)


def tearDownModule():
    if TIMINGS:
        print("timings:")
        for phase, seconds in TIMINGS:
            print("  %-75s %6.2f s" % (phase, seconds))


if __name__ == "__main__":
    if QEMU is None:
        print("qemu-system-x86_64 is not installed (tools/deps.sh installs qemu-system-x86)")
        print("0 passed, 1 failed")
        sys.exit(1)
    st.main("qemu")
