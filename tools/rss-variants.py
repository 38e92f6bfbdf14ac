#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Compares smolvmd variants on the calls the benchmark makes at 10k snapshots
before its "daemon RSS" row (docs/performance.md, "Giving freed memory back"):
run by hand, not by `meson test` or CI; a few minutes per variant and round.

    /usr/bin/python3 tools/rss-variants.py ROUNDS NAME=SMOLVMD[,VAR=VALUE...] ...

e.g. base=build/src/daemon/smolvmd slice=build/src/daemon/smolvmd,G_SLICE=always-malloc
(VAR=VALUE: the daemon's environment, e.g. GLIBC_TUNABLES=glibc.malloc.arena_max=1).

Writes 10,000 records as the benchmark does (bench.py's write_snapshots), then
per round starts each variant in turn (the order reversed every other round)
on the same state dir, which holds the snapshot index, and replays
bench_snapshots' calls: ListSnapshots (all) and GetManagedObjects, 7 more
lists, 7 filtered lists with GetSnapshot, 7 GetManagedObjects, 3 `smolvm
snapshot list`, an idle probe, then 6 s of lists beside a Get(Version) probe,
after which it reads VmRSS as the benchmark does.  Prints each run and the
medians, each with its ratio to the first variant's.  N=1000 writes fewer
records; GDBTRIM=1 also calls malloc_trim (0) in the daemon through gdb at the
end and reads RSS again (what any trim could return then).
"""

import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "bench"))

import bench as B  # noqa: E402
from bench import T, GLib  # noqa: E402

KEYS = ["rss", "rss_later", "rss_gdbtrim", "anon", "hwm", "rss_start", "rss_lists", "rss_gmo",
        "start_ms", "list_ms", "gmo_ms", "p99"]


def status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmRSS:", "RssAnon:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return out


def start(env, binary, venv):
    T.SMOLVMD = binary
    saved = {k: os.environ.get(k) for k in venv}
    os.environ.update(venv)
    try:
        return B.start_daemon_timed(env)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def one_run(env, binary, venv):
    rec = {"start_ms": start(env, binary, venv)}
    pid = env.daemon.proc.pid
    rec["rss_start"] = status(pid)["VmRSS"]
    conn = B.connect(env.bus.address)
    m = (T.BUS_NAME, T.MANAGER_PATH)

    def lst():
        return B.call_ms(conn, *m, T.MANAGER_IFACE, "ListSnapshots", GLib.Variant("(s)", ("",)))[0]

    def gmo():
        return B.call_ms(conn, *m, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects",
                         None)[0]

    lst()
    gmo()
    lists = [lst() for _ in range(7)]
    time.sleep(0.5)
    rec["rss_lists"] = status(pid)["VmRSS"]
    for _ in range(7):
        B.call_ms(conn, *m, T.MANAGER_IFACE, "ListSnapshots",
                  GLib.Variant("(s)", ("bench-vm-000",)))
        B.call_ms(conn, *m, T.MANAGER_IFACE, "GetSnapshot",
                  GLib.Variant("(s)", ("bench-snap-00000",)))
    gmos = [gmo() for _ in range(7)]
    time.sleep(0.5)
    rec["rss_gmo"] = status(pid)["VmRSS"]
    for _ in range(3):
        subprocess.run([T.CLI, "--session", "snapshot", "list"], env=env.client_env(), check=True,
                       stdout=subprocess.DEVNULL)
    B.probe(env, 2)
    busy = B.probe(env, 6, load=lst)
    st = status(pid)  # where the benchmark reads its row
    rec.update(list_ms=statistics.median(lists), gmo_ms=statistics.median(gmos), rss=st["VmRSS"],
               anon=st["RssAnon"], hwm=st["VmHWM"], p99=B.p99(busy))
    time.sleep(1.5)
    rec["rss_later"] = rec["rss_gdbtrim"] = status(pid)["VmRSS"]
    if os.environ.get("GDBTRIM"):
        subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "call (int) malloc_trim(0)"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        rec["rss_gdbtrim"] = status(pid)["VmRSS"]
    conn.close_sync(None)
    B.stop_daemon(env)
    return rec


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    rounds = int(sys.argv[1])
    variants = []
    for spec in sys.argv[2:]:
        name, rest = spec.split("=", 1)
        parts = rest.split(",")
        variants.append((name, os.path.abspath(parts[0]),
                         dict(p.split("=", 1) for p in parts[1:])))
    results = {name: [] for name, _, _ in variants}
    env = T.Env(start=False)
    try:
        B.write_snapshots(env.state_dir, int(os.environ.get("N", "10000")), env.kernel,
                          env.rootfs)
        # the snapshot index, which the benchmark's measured starts find
        start(env, *variants[0][1:])
        B.stop_daemon(env)
        for r in range(rounds):
            for name, binary, venv in variants if r % 2 == 0 else variants[::-1]:
                rec = one_run(env, binary, venv)
                results[name].append(rec)
                print(name, json.dumps({k: round(v, 1) for k, v in rec.items()}), flush=True)
    finally:
        env.cleanup()
    print("\nmedians of %d rounds (ratio to %s)" % (rounds, variants[0][0]))
    base = {k: statistics.median(x[k] for x in results[variants[0][0]]) for k in KEYS}
    for name, _, _ in variants:
        med = {k: statistics.median(x[k] for x in results[name]) for k in KEYS}
        print("%-12s " % name + "  ".join("%s %.1f (%.2f)" % (k, med[k], med[k] / base[k])
                                          for k in KEYS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
