#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Reproduces the profiles behind the unmet 10k-snapshot goals of issue 11
(docs/performance.md): run it on a fresh build, by hand (not part of
`meson test` or CI; it takes a few minutes).

    /usr/bin/python3 tools/profile-scale.py [OUTDIR [PART...]]

OUTDIR defaults to <build dir>/profile-scale; PART is plain, callgrind,
heaptrack or calls (default: all four).

Writes 1k and 10k snapshot records as the benchmark does (bench.py's
write_snapshots), then, each on a private bus:

  plain-10k.txt     smolvmd at 10k, no profiler: start-up, then ListSnapshots
                    and GetManagedObjects, each call's wall time and the CPU
                    time it cost smolvmd, dbus-daemon and this (GDBus) client,
                    and smolvmd's RSS after each phase;
  marshal-10k.txt   bench-marshal on the 10k replies: GDBus's own
                    serialization and parsing of them, no bus;
  callgrind-1k-*    smolvmd under `valgrind --tool=callgrind` at 1k, one dump
                    per phase (start-up, 2 x ListSnapshots, 2 x
                    GetManagedObjects), and callgrind_annotate's top
                    inclusive and self entries of each (*.txt);
  heaptrack-10k.*   smolvmd under heaptrack at 10k (start-up, then lists and
                    GetManagedObjects), heaptrack_print's peak consumers;
  calls.txt         CreateSnapshot and RestoreSnapshot on the emulator: their
                    overhead (the benchmark's), then per call the file
                    syscalls of each smolvmd thread under `perf trace -s`
                    (counts, and wall time: what a reply waits for).

Needs valgrind, heaptrack and perf (tools/deps.sh --profile) and python3-gi; SMOLVM_BUILD_DIR
(default ./build) holds a build (tools/build.sh).
"""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
os.environ.setdefault("SMOLVM_SOURCE_DIR", SOURCE)
os.environ.setdefault("SMOLVM_BUILD_DIR", os.path.join(SOURCE, "build"))
sys.path.insert(0, os.path.join(SOURCE, "tests", "bench"))
sys.path.insert(0, os.path.join(SOURCE, "tests"))

import gi  # noqa: E402

gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

import bench  # noqa: E402
import smolvmtest as T  # noqa: E402

OUT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                      os.path.join(T.BUILD_DIR, "profile-scale"))
CALLS = 2  # of each list per profiled phase
LIST = (T.MANAGER_IFACE, "ListSnapshots", GLib.Variant("(s)", ("",)))
OBJECTS = ("org.freedesktop.DBus.ObjectManager", "GetManagedObjects", None)


def log(*args):
    print(*args, flush=True)


def cpu_ms(pid):
    """User + system CPU time of process @pid, ms."""
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def rss_mib(pid):
    return bench.rss_kib(pid) / 1024


def call(conn, iface, method, params):
    t0 = time.perf_counter()
    reply = conn.call_sync(T.BUS_NAME, T.MANAGER_PATH, iface, method, params, None,
                           Gio.DBusCallFlags.NONE, 3600 * 1000, None)
    return (time.perf_counter() - t0) * 1000, reply


class Run:
    """smolvmd (under @wrapper) on @n snapshot records and a private bus."""

    def __init__(self, n, wrapper=None):
        self.env = T.Env(start=False, wrapper=wrapper)
        bench.write_snapshots(self.env.state_dir, n, self.env.kernel, self.env.rootfs)
        t0 = time.perf_counter()
        self.env.daemon.start()
        self.startup_ms = (time.perf_counter() - t0) * 1000
        self.conn = bench.connect(self.env.bus.address)

    @property
    def pid(self):
        """smolvmd's own process: valgrind runs it in the process it was
        started as, heaptrack (a shell script) as one of its children."""
        todo = [self.env.daemon.pid]
        while todo:
            pid = todo.pop(0)
            if os.path.realpath("/proc/%d/exe" % pid) == os.path.realpath(T.SMOLVMD):
                return pid
            with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
                todo += [int(c) for c in f.read().split()]
        return self.env.daemon.pid

    def stop(self):
        """SIGTERM to smolvmd itself: a profiler writes its data as it exits."""
        self.conn.close_sync(None)
        os.kill(self.pid, 15)
        rc = self.env.daemon.proc.wait(timeout=600)
        if rc != 0:
            raise AssertionError("smolvmd exited with %d\n%s" % (rc, self.env.daemon_log()[-3000:]))

    def cleanup(self):
        self.env.cleanup()


def plain(out):
    """10k without a profiler: wall and CPU per call, RSS per phase; saves the
    replies for bench-marshal."""
    run = Run(10000)
    lines = []
    try:
        bus_pid = run.env.bus.proc.pid
        lines.append("smolvmd at 10,000 snapshots, no profiler (this machine; noisy)")
        lines.append("start-up to owning the name (busctl polls it): %.0f ms; smolvmd CPU %.0f ms"
                     % (run.startup_ms, cpu_ms(run.pid)))
        lines.append("RSS after start-up: %.1f MiB" % rss_mib(run.pid))
        replies = {}
        for label, (iface, method, params) in (("ListSnapshots", LIST),
                                               ("GetManagedObjects", OBJECTS)):
            d0, b0, c0 = cpu_ms(run.pid), cpu_ms(bus_pid), time.process_time()
            walls = []
            for _ in range(3):
                ms, replies[label] = call(run.conn, iface, method, params)
                walls.append(ms)
            d1, b1, c1 = cpu_ms(run.pid), cpu_ms(bus_pid), time.process_time()
            lines.append("%s: reply %d KiB; wall %s ms; CPU per call: smolvmd %.0f ms, "
                         "dbus-daemon %.0f ms, this GDBus client %.0f ms" % (
                             label, replies[label].get_size() // 1024,
                             " ".join("%.0f" % w for w in walls), (d1 - d0) / 3, (b1 - b0) / 3,
                             (c1 - c0) * 1000 / 3))
            lines.append("RSS after %s: %.1f MiB" % (label, rss_mib(run.pid)))
        files = bench.save_replies(run.env, {"List": replies["ListSnapshots"],
                                             "Objects": replies["GetManagedObjects"]})
        marshal = []
        for kind, key in (("list", "List"), ("objects", "Objects")):
            out_ = subprocess.run([bench.BENCH_MARSHAL, "--runs", "5", kind, files[key]],
                                  check=True, stdout=subprocess.PIPE, text=True).stdout
            marshal.append("$ bench-marshal --runs 5 %s <10k %s reply>\n%s" % (kind, key, out_))
        with open(os.path.join(out, "marshal-10k.txt"), "w") as f:
            f.write("".join(marshal))
        run.stop()
    finally:
        run.cleanup()
    with open(os.path.join(out, "plain-10k.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    log("\n".join(lines))


def callgrind(out):
    """1k under callgrind, one dump per phase: start-up, lists, GetManagedObjects."""
    base = os.path.join(out, "callgrind-1k.out")
    for name in os.listdir(out):
        if name.startswith("callgrind-1k"):
            os.unlink(os.path.join(out, name))
    run = Run(1000, wrapper=["valgrind", "--tool=callgrind", "--callgrind-out-file=" + base])
    try:
        phases = ["startup"]
        subprocess.run(["callgrind_control", "--dump=startup", str(run.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for label, what in (("ListSnapshots", LIST), ("GetManagedObjects", OBJECTS)):
            for _ in range(CALLS):
                call(run.conn, *what)
            subprocess.run(["callgrind_control", "--dump=" + label, str(run.pid)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            phases.append(label)
        run.stop()
    finally:
        run.cleanup()
    dumps = sorted((f for f in os.listdir(out) if f.startswith("callgrind-1k.out.")),
                   key=lambda f: int(f.rsplit(".", 1)[1].split("-")[0]))
    for label, dump in zip(phases, dumps):
        path = os.path.join(out, dump)
        for kind, args in (("inclusive", ["--inclusive=yes"]), ("self", [])):
            text = subprocess.run(["callgrind_annotate", "--threshold=100"] + args + [path],
                                  check=True, stdout=subprocess.PIPE, text=True).stdout
            with open(os.path.join(out, "callgrind-1k-%s-%s.txt" % (label, kind)), "w") as f:
                f.write("$ callgrind_annotate --threshold=100 %s %s\n" % (" ".join(args), dump))
                if kind == "self":
                    f.write("(a dump per phase charges the phase's total to the frames a "
                            "thread started from -- clone, start_thread, main: read from the "
                            "first real function)\n")
                f.write(top(text, 45))
        log("callgrind 1k %s: %s" % (label, dump))


def top(annotated, n):
    """The header and the first @n entries of callgrind_annotate's output."""
    lines = annotated.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Ir") and "file:function" in line:
            return "\n".join(lines[:i + 2 + n]) + "\n"
    return annotated


def heaptrack(out):
    """10k under heaptrack: start-up, lists, GetManagedObjects, then exit."""
    data = os.path.join(out, "heaptrack-10k")
    for name in os.listdir(out):
        if name.startswith("heaptrack-10k"):
            os.unlink(os.path.join(out, name))
    run = Run(10000, wrapper=["heaptrack", "-o", data])
    rss = []
    try:
        rss.append("RSS after start-up: %.1f MiB" % rss_mib(run.pid))
        for label, what in (("ListSnapshots", LIST), ("GetManagedObjects", OBJECTS)):
            for _ in range(CALLS):
                call(run.conn, *what)
            rss.append("RSS after %d x %s: %.1f MiB" % (CALLS, label, rss_mib(run.pid)))
        run.stop()
    finally:
        run.cleanup()
    recorded = [f for f in os.listdir(out) if f.startswith("heaptrack-10k") and
                not f.endswith(".txt")]
    text = subprocess.run(["heaptrack_print", "--print-peaks=1", "--print-allocators=0",
                           "--print-temporary=0", "--print-leaks=0", "--peak-limit=12",
                           "--print-flamegraph=" + os.path.join(out, "heaptrack-10k-flame.txt"),
                           os.path.join(out, recorded[0])],
                          check=True, stdout=subprocess.PIPE, text=True).stdout
    with open(os.path.join(out, "heaptrack-10k-peaks.txt"), "w") as f:
        f.write("(heaptrack adds its own pages to RSS)\n" + "\n".join(rss) + "\n\n")
        f.write("$ heaptrack_print --print-peaks=1 --peak-limit=12 %s\n" % recorded[0])
        f.write(text)
    with open(os.path.join(out, "heaptrack-10k-summary.txt"), "w") as f:
        f.write("\n".join(rss) + "\n" + summarize_peaks(text))
    log("heaptrack 10k: %s\n%s" % (recorded[0], "\n".join(rss)))


def summarize_peaks(text):
    """heaptrack_print's peak consumers, one line each: the bytes, the
    allocator and the first of smolvm's own frames (or the first named one);
    then its totals."""
    out, allocator, lines = [], "", text.splitlines()
    for i, line in enumerate(lines):
        if " peak memory consumed over " in line and i + 1 < len(lines):
            allocator = lines[i + 1].strip()
            out.append("%s  [%s]" % (line.strip(), allocator))
        elif line.startswith("    ") is False and " consumed over " in line:
            frames = []
            for nxt in lines[i + 1:i + 60]:
                if not nxt.startswith("    "):
                    break
                frames.append(nxt.strip())
            # the first named function, then smolvm's own first two frames
            names = [fr for fr in frames if not fr.startswith(("0x", "in ", "at "))]
            own = [frames[j] + " " + frames[j + 1] for j in range(len(frames) - 1)
                   if frames[j + 1].startswith("at ../src/")]
            first = " < ".join(([names[0]] if names and (not own or not own[0].startswith(
                names[0] + " ")) else []) + own[:2]) or "?"
            out.append("    %s  %s" % (line.strip(), first))
    totals = [ln for ln in lines if ln.startswith(("peak heap", "peak RSS", "total memory leaked",
                                                    "calls to allocation"))]
    return "\n".join(out + [""] + totals) + "\n"


CALL_RUNS = 30
# the syscalls whose wall time a call waits for (files written, synced, renamed)
FILE_SYSCALLS = ("fsync", "fdatasync", "rename", "renameat2", "openat", "mkdir", "write",
                 "close", "unlink", "fchmod", "link", "copy_file_range", "ioctl", "lseek")


def perf_trace_summary(text):
    """{thread: {syscall: (calls, total ms)}} of `perf trace -s` output."""
    out, thread = {}, None
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[-1].endswith("%") and words[-2] == "events,":
            thread = words[0]
            out.setdefault(thread, {})
        elif thread and len(words) >= 4 and words[0].isidentifier() and words[1].isdigit():
            calls, total = int(words[1]), float(words[3])
            old = out[thread].get(words[0], (0, 0.0))
            out[thread][words[0]] = (old[0] + calls, old[1] + total)
    return out


def calls(out):
    """CreateSnapshot and RestoreSnapshot on the emulator (the benchmark's
    VmmBench: a VM with an 8 MiB disk): the overhead of each (the D-Bus call
    minus the emulator's own time), then the same calls under `perf trace -s`
    on smolvmd: per call, how many of each file syscall each thread made and
    how long they took (wall time: an fsync's wait for the disk included).
    The traced calls are slower than untraced ones; the counts are exact."""
    vb = bench.VmmBench()
    lines = []
    try:
        pid = vb.env.daemon.pid
        for name in ("create", "restore"):
            fn = getattr(vb, name)
            fn()  # warm-up
            plain_runs = [fn() for _ in range(CALL_RUNS)]
            trace_file = os.path.join(out, "calls-%s-perf-trace.txt" % name)
            tracer = subprocess.Popen(["perf", "trace", "-s", "-p", str(pid), "-o", trace_file],
                                      stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # attached
            traced_runs = [fn() for _ in range(CALL_RUNS)]
            tracer.send_signal(2)
            tracer.wait()
            with open(trace_file) as f:
                summary = perf_trace_summary(f.read())
            over = sorted(ms - emu for ms, emu in plain_runs)
            traced = sorted(ms - emu for ms, emu in traced_runs)
            lines.append("%s: overhead median %.2f ms (min %.2f), the emulator's own time "
                         "median %.2f ms; under perf trace: overhead median %.2f ms" % (
                             name, over[len(over) // 2], over[0],
                             sorted(e for _, e in plain_runs)[len(plain_runs) // 2],
                             traced[len(traced) // 2]))
            for thread, calls_ in sorted(summary.items()):
                rows = [(sc, n, ms) for sc, (n, ms) in calls_.items() if sc in FILE_SYSCALLS]
                if not rows:
                    continue
                lines.append("  %s, per call:" % thread)
                for sc, n, ms in sorted(rows, key=lambda r: -r[2]):
                    lines.append("    %-16s %5.1f calls %8.2f ms" % (
                        sc, n / CALL_RUNS, ms / CALL_RUNS))
    finally:
        vb.cleanup()
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "calls.txt"), "w") as f:
        f.write(text)
    log(text)


def main():
    for tool in ("valgrind", "callgrind_annotate", "heaptrack", "heaptrack_print", "perf"):
        if subprocess.run(["which", tool], stdout=subprocess.DEVNULL).returncode != 0:
            sys.exit("profile-scale: %s is missing (tools/deps.sh --profile installs it)" % tool)
    for path in (T.SMOLVMD, bench.BENCH_MARSHAL):
        if not os.access(path, os.X_OK):
            sys.exit("profile-scale: no %s: build first (tools/build.sh)" % path)
    os.makedirs(OUT, exist_ok=True)
    commit = subprocess.run(["git", "-C", SOURCE, "describe", "--always", "--dirty"],
                            stdout=subprocess.PIPE, text=True).stdout.strip()
    with open(os.path.join(OUT, "README.txt"), "w") as f:
        f.write("tools/profile-scale.py on %s, %s\n" % (
            commit, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
    log("profiles of %s into %s" % (commit, OUT))
    parts = sys.argv[2:] or ["plain", "callgrind", "heaptrack", "calls"]
    for part in parts:
        if part not in ("plain", "callgrind", "heaptrack", "calls"):
            sys.exit("profile-scale: no part %r (plain, callgrind, heaptrack, calls)" % part)
    for part in parts:
        globals()[part](OUT)
    log("written to %s" % OUT)


if __name__ == "__main__":
    main()
