#!/usr/bin/python3
"""Paired timings of two smolvmd builds (e.g. before and after a change) on the
QEMU test guest (256 MiB, TCG): snapshot create of a booted VM, restore, snapshot
create of a restored VM, with the time of each Job phase, and disk use.

    /usr/bin/python3 tests/guest/measure-snapshots.py OLD_BUILD NEW_BUILD ROUNDS

Both daemons run side by side (private buses, temporary directories), each with
its own VM; every round does the same operation on both, the order alternating
per round, so that both see the same machine load. D-Bus calls go in-process
(Gio): no client start-up is counted. The guest comes from
$SMOLVM_GUEST_CACHE (default NEW_BUILD/guest-cache, see tests/build-guest.sh);
the CLI and test helpers from this tree. Not a test: it asserts nothing."""
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import smolvmtest as st  # noqa: E402
from gi.repository import Gio, GLib  # noqa: E402

OLD, NEW, ROUNDS = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), int(sys.argv[3])
GUEST = os.environ.get("SMOLVM_GUEST_CACHE") or os.path.join(NEW, "guest-cache")
QEMU = shutil.which("qemu-system-x86_64")
B = lambda v: GLib.Variant("b", v)  # noqa: E731

def du(*paths):
    return sum(int(subprocess.check_output(["du", "-sB1", p]).split()[0]) for p in paths)

class Side:
    def __init__(self, name, build):
        self.name = name
        self.env = st.Env(qemu_bin=QEMU, start=False)
        smolvmd = os.path.join(build, "src", "daemon", "smolvmd")
        orig = self.env.daemon.argv
        self.env.daemon.argv = lambda: [a if a != st.SMOLVMD else smolvmd for a in orig()]
        self.env.daemon.start()
        self.conn = Gio.DBusConnection.new_for_address_sync(
            self.env.bus.address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT |
            Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
        self.run = os.path.join(self.env.runtime_dir, "vms", "m")
        self.snaps = os.path.join(self.env.state_dir, "snapshots")
        self.res = {}
        self.phases = []
        self.conn.signal_subscribe(None, "org.freedesktop.DBus.Properties", "PropertiesChanged",
                                   None, "org.smolvm.Job", Gio.DBusSignalFlags.NONE,
                                   self.on_props)

    def on_props(self, conn, sender, path, iface, signal, params):
        changed = params.unpack()[1]
        if "Phase" in changed:
            self.phases.append((time.monotonic(), changed["Phase"]))

    def call(self, method, sig, *args, label=None):
        """Times the call; notes how long each Job phase took (key: label/phase)."""
        done = []
        self.phases = []
        t0 = time.monotonic()
        self.conn.call(st.BUS_NAME, st.MANAGER_PATH, st.MANAGER_IFACE, method,
                       GLib.Variant(sig, args), None, Gio.DBusCallFlags.NONE, 600000, None,
                       lambda c, r: done.append((time.monotonic(), c.call_finish(r))))
        ctx = GLib.MainContext.default()
        while not done:
            ctx.iteration(True)
        t1 = done[0][0]
        marks = [(t, p) for t, p in self.phases if p] + [(t1, None)]
        if method != "DeleteSnapshot":
            for (ta, pa), (tb, _) in zip(marks, marks[1:]):
                self.note("  %s/%s" % (label or method, pa), tb - ta)
        return t1 - t0

    def note(self, key, value):
        self.res.setdefault(key, []).append(value)

    def cli(self, *args):
        r = self.env.cli(*args)
        assert r.rc == 0, r

    def boot(self):
        self.cli("create", "--vm-id", "m", "--backend", "qemu", "--accel", "tcg",
                 "--kernel", GUEST + "/vmlinuz", "--initrd", GUEST + "/initramfs.cpio.gz",
                 "--rootfs", GUEST + "/rootfs.ext4", "--boot-args", "console=ttyS0 panic=-1 quiet",
                 "--vcpus", "1", "--mem", "256", "--no-network")
        self.cli("start", "m")

    def tick(self):
        self.env.wait_tick("m", self.env.last_tick("m") + 1)

sides = [Side("old", OLD), Side("new", NEW)]
try:
    for s in sides:
        s.boot()
    for s in sides:
        st.wait_for(lambda: 3 in st.ticks(s.env.console("m")), "tick 3", timeout=90)
    for s in sides:
        s.note("du runtime dir, booted VM", du(s.run))
    for i in range(ROUNDS):
        for s in (sides if i % 2 == 0 else sides[::-1]):
            s.tick()
            s.note("create, booted VM", s.call("CreateSnapshot", "(ssa{sv})", "m", "f%d" % i,
                                               {"resume-source": B(True)}, label="create, booted VM"))
            if i:
                s.call("DeleteSnapshot", "(sa{sv})", "f%d" % i, {})
    for i in range(ROUNDS):
        for s in (sides if i % 2 == 0 else sides[::-1]):
            s.cli("stop", "m")
            s.note("restore", s.call("RestoreSnapshot", "(sa{sv})", "f0",
                                     {"resume": B(True), "force": B(True)}))
            s.note("du runtime dir + snapshot, restored VM",
                   du(s.run, os.path.join(s.snaps, "f0")))
            s.note("du runtime dir, restored VM", du(s.run))
        for s in (sides if i % 2 == 0 else sides[::-1]):
            s.tick()
            s.note("create, restored VM", s.call("CreateSnapshot", "(ssa{sv})", "m", "r%d" % i,
                                                 {"resume-source": B(True)}, label="create, restored VM"))
            s.note("du of its snapshot's mem.bin", du(os.path.join(s.snaps, "r%d" % i, "mem.bin")))
            s.call("DeleteSnapshot", "(sa{sv})", "r%d" % i, {})
    keys = sorted(set(sides[0].res) | set(sides[1].res), key=lambda k: (k.strip(), k))
    for key in keys:
        for s in sides:
            v = s.res.get(key)
            if not v:
                continue
            if key.startswith("du"):
                print("%-40s %s median %7.1f MiB  (n=%d, min %.1f, max %.1f)" % (
                    key, s.name, statistics.median(v) / 2**20, len(v), min(v) / 2**20, max(v) / 2**20))
            else:
                print("%-40s %s median %7.3f s    (n=%d, min %.3f, max %.3f)" % (
                    key, s.name, statistics.median(v), len(v), min(v), max(v)))
finally:
    for s in sides:
        s.env.cleanup()
