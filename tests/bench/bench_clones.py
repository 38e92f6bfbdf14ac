# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmark rows for clones (issue 10), run by bench.py as the part
SMOLVM_BENCH_ONLY=clones (and in a full run).

Rows:
  * emulator: time to N running clones (CloneSnapshot with resume, until its
    reply) for N = 1, 4, 16, against one plain restore of the same snapshot
    (RestoreSnapshot with force and resume over its running VM);
  * QEMU with the real test guest (tests/build-guest.sh, TCG): time to N
    running clones for N = 1, 4 against one plain restore; memory of each
    extra clone (Pss and Private_* of /proc/PID/smaps_rollup, 4 clones
    running) against the guest's RAM size;
  * QEMU restore now (it maps mem.bin copy-on-write) against the restore as
    it was (the same plus a copy of mem.bin, timed here with the daemon's
    copy function, bench-copy), and the disk space a restore takes now (the
    VM's disk) against then (plus the copy of mem.bin).

All figures are medians of the runs, the anchor's runs interleaved with
smolvm's.  Figures taken on a busy machine are noisy: read the ratios.
"""

import os
import shutil
import subprocess
import time

import smolvmtest as T
from smolvmtest import GVText, gv_dict, gv_str

QEMU = shutil.which("qemu-system-x86_64")
GUEST_CACHE = os.environ.get("SMOLVM_GUEST_CACHE") or os.path.join(T.BUILD_DIR, "guest-cache")
BUILD_GUEST = os.path.join(T.SOURCE_DIR, "tests", "build-guest.sh")
QEMU_MEM_MIB = 256
MIB = 1024 * 1024


def _ms(fn):
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def _interleave(runs, *fns):
    out = [[] for _ in fns]
    for _ in range(runs):
        for i, fn in enumerate(fns):
            out[i].append(fn())
    return out


def _smaps_rollup(pid):
    fields = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[0].endswith(":") and parts[2] == "kB":
                fields[parts[0][:-1]] = int(parts[1])
    return fields


def _allocated(path):
    """Bytes allocated on disk under @path (a file or a directory)."""
    if os.path.isfile(path):
        return os.stat(path).st_blocks * 512
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


class _Cloner:
    """Clones of snapshot @snapshot_id in @env, made and deleted again."""

    def __init__(self, env, snapshot_id, source_vm):
        self.env, self.snapshot_id, self.source_vm = env, snapshot_id, source_vm

    def clone_ms(self, n):
        ms = _ms(lambda: self.env.call("CloneSnapshot", gv_str(self.snapshot_id), gv_dict(
            {"count": GVText("uint32 %d" % n), "resume": True})))
        self.delete_clones()
        return ms

    def restore_ms(self):
        """A restore into the source VM, stopped first (untimed): a running
        VM restored from the snapshot holds it."""
        if self.env.vm_state(self.source_vm) != "stopped":
            self.env.vm(self.source_vm, "Stop", gv_dict())
        return _ms(lambda: self.env.restore(self.snapshot_id, force=True, resume=True))

    def clones(self):
        return sorted(v for v in self.env.list_vms() if v.startswith(self.source_vm + "-"))

    def delete_clones(self):
        for vm_id in self.clones():
            self.env.vm(vm_id, "Delete", gv_dict({"force": True}))


def bench_emulator(row, runs, counts=(1, 4, 16)):
    env = T.Env(session=True)
    try:
        env.running_vm("src")
        env.create_snapshot("src", "s1", **{"resume-source": True})
        c = _Cloner(env, "s1", "src")
        for n in counts:
            restore, clone = _interleave(runs, c.restore_ms, lambda: c.clone_ms(n))
            row("clones", "emulator: time to %d running clone%s" % (n, "s" if n > 1 else ""),
                _median(clone), _median(restore), "one plain restore (emulator)", "ms")
    finally:
        env.cleanup()


def _guest():
    proc = subprocess.run([BUILD_GUEST, GUEST_CACHE], capture_output=True, text=True,
                          timeout=900, check=True)
    return proc.stdout.split()


def _boot_qemu(env, vm_id):
    kernel, initrd, rootfs = _guest()
    r = env.cli("create", "--vm-id", vm_id, "--backend", "qemu", "--accel", "tcg",
                "--kernel", kernel, "--initrd", initrd, "--rootfs", rootfs,
                "--boot-args", "console=ttyS0 panic=-1 quiet", "--vcpus", "1",
                "--mem", str(QEMU_MEM_MIB), "--no-network")
    if r.rc != 0:
        raise RuntimeError("smolvm create failed: %r" % r)
    env.vm(vm_id, "Start")
    T.wait_for(lambda: 3 in T.ticks(env.console(vm_id)), "tick 3 of %s" % vm_id, timeout=180)


def bench_qemu(row, runs, bench_copy):
    if QEMU is None:
        print("  (no qemu-system-x86_64: QEMU clone rows left out)", flush=True)
        return
    env = T.Env(session=True, qemu_bin=QEMU)
    scratch = os.path.join(env.root, "copy")
    os.makedirs(scratch)
    try:
        _boot_qemu(env, "q")
        env.create_snapshot("q", "t1", **{"resume-source": True})
        mem_bin = os.path.join(env.state_dir, "snapshots", "t1", "mem.bin")
        c = _Cloner(env, "t1", "q")
        for n in (1, 4):
            restore, clone = _interleave(runs, c.restore_ms, lambda: c.clone_ms(n))
            row("clones", "QEMU: time to %d running clone%s" % (n, "s" if n > 1 else ""),
                _median(clone), _median(restore), "one plain restore (QEMU, %d MiB guest)"
                % QEMU_MEM_MIB, "ms")

        # memory of each extra clone, 4 of them running on
        env.call("CloneSnapshot", gv_str("t1"), gv_dict({"count": GVText("uint32 4"),
                                                         "resume": True}))
        for vm_id in c.clones():
            seen = T.ticks(env.console(vm_id))
            env.wait_tick(vm_id, (seen[-1] if seen else 0) + 2)
        figures = [_smaps_rollup(env.vm_info(v)["pid"]) for v in c.clones()]
        pss = _median([f["Pss"] for f in figures]) / 1024
        private = _median([f.get("Private_Clean", 0) + f.get("Private_Dirty", 0)
                           for f in figures]) / 1024
        row("clones", "QEMU: Pss of each extra clone (4 running)", pss, QEMU_MEM_MIB,
            "the guest's RAM size", "MiB")
        row("clones", "QEMU: private memory of each extra clone", private, QEMU_MEM_MIB,
            "the guest's RAM size", "MiB")
        c.delete_clones()

        # the restore now (mem.bin mapped) against then (plus a copy of it)
        def copy_ms():
            dst = os.path.join(scratch, "mem.bin")
            if os.path.exists(dst):
                os.unlink(dst)
            out = subprocess.run([bench_copy, mem_bin, dst], check=True, capture_output=True,
                                 text=True).stdout
            return int(out.strip()) / 1e6
        restore, copy = _interleave(runs, c.restore_ms, copy_ms)
        # every run in the note: one full run measured this row ten times the
        # plain restores above, which no run alone has repeated
        row("clones", "QEMU: restore (maps mem.bin)", _median(restore),
            _median(restore) + _median(copy),
            "the same + copying mem.bin (%.0f ms, bench-copy), as before" % _median(copy), "ms",
            note="restores %s ms; copies %s ms" % (" ".join("%.0f" % x for x in restore),
                                                    " ".join("%.0f" % x for x in copy)))
        vm_dirs = [os.path.join(env.state_dir, "vms", "q"), os.path.join(env.runtime_dir, "vms",
                                                                          "q")]
        now = sum(_allocated(d) for d in vm_dirs if os.path.exists(d)) / MIB
        copied = _allocated(os.path.join(scratch, "mem.bin")) / MIB
        row("clones", "QEMU: disk taken by a restored VM", now, now + copied,
            "the same + its copy of mem.bin (%.0f MiB allocated), as before" % copied, "MiB")
    finally:
        env.cleanup()


def run(row, runs, quick, bench_copy):
    """The clone rows, through bench.py's row(); @quick leaves out N=16."""
    print("clones (emulator)", flush=True)
    bench_emulator(row, runs, (1, 4) if quick else (1, 4, 16))
    print("clones (QEMU, real guest)", flush=True)
    bench_qemu(row, runs, bench_copy)
