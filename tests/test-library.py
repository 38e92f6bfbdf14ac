#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""libsmolvm-1 through GObject introspection (gi.repository.Smolvm), against
a real smolvmd on a private session bus (smolvmtest.Env).

Every SmolvmClient call runs twice: the _sync function, and the async one
with its _finish on a GLib main loop. The errors are checked for their
domain (org.smolvm.Error, SMOLVM_ERROR) and code, and for the message
without the "GDBus.Error:NAME: " prefix.

The typelib and the library are the uninstalled ones of the build
directory: meson sets GI_TYPELIB_PATH and LD_LIBRARY_PATH to
<build>/src/lib (run by hand, this file sets them itself and re-executes).
One smolvmd serves the whole file (GLib keeps one session bus connection
per process); each test makes its own client and its own VM ids.
"""

import json
import os
import subprocess
import sys
import tempfile
import textwrap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smolvmtest as st  # noqa: E402

LIB_DIR = os.path.join(st.BUILD_DIR, "src", "lib")
if os.environ.get("GI_TYPELIB_PATH") != LIB_DIR:
    os.environ["GI_TYPELIB_PATH"] = LIB_DIR
    os.environ["LD_LIBRARY_PATH"] = LIB_DIR
    os.execv(sys.executable, [sys.executable] + sys.argv)

import gi  # noqa: E402

gi.require_version("Smolvm", "1.0")
gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib, Smolvm  # noqa: E402

# Snapshots take this long in the emulator, so that a job is there to cancel.
SNAPSHOT_DELAY_MS = 2000
ENV = None


def setUpModule():
    global ENV
    ENV = st.Env(extra_env={"FC_EMULATOR_SNAPSHOT_DELAY_MS": str(SNAPSHOT_DELAY_MS)})
    # libsmolvm-1 finds the bus like any GLib program
    os.environ["DBUS_SESSION_BUS_ADDRESS"] = ENV.bus.address


def tearDownModule():
    if ENV is not None:
        ENV.cleanup()


def read_fd(fd):
    chunks = []
    try:
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks).decode(errors="replace")
            chunks.append(chunk)
    finally:
        os.close(fd)


class LibraryCase(st.TestCase):
    def setUp(self):
        super().setUp()
        self._envs = [ENV]  # for the daemon log of a failure
        self.client = Smolvm.Client.new_sync(Smolvm.BusType.SESSION, None)
        # the bus goes away with the Env at the end; that must not end us
        self.client.get_connection().set_exit_on_close(False)

    def call_async(self, name, *args, client=None):
        """client.NAME(*args, None, callback) on the default main context;
        returns what NAME_finish returns, or raises its GLib.Error."""
        client = client or self.client
        loop = GLib.MainLoop()
        out = {}

        def done(source, result):
            self.assertIs(source, client)
            try:
                out["value"] = getattr(source, name + "_finish")(result)
            except GLib.Error as e:
                out["error"] = e
            loop.quit()

        getattr(client, name)(*args, None, done)
        timeout = GLib.timeout_add_seconds(int(st.DEADLINE * 3), loop.quit)
        loop.run()
        if "value" not in out and "error" not in out:
            self.fail("no reply to %s" % name)
        GLib.source_remove(timeout)
        if "error" in out:
            raise out["error"]
        return out["value"]

    def assertSmolvmError(self, code, fn, *args, **kw):
        """fn(*args) fails with SMOLVM_ERROR @code; returns the GLib.Error."""
        with self.assertRaises(GLib.Error) as caught:
            fn(*args, **kw)
        e = caught.exception
        self.assertEqual(e.domain, "smolvm-error-quark", e.message)
        self.assertEqual(GLib.quark_from_string(e.domain), Smolvm.error_quark())
        self.assertEqual(e.code, int(code), e.message)
        self.assertTrue(e.matches(Smolvm.error_quark(), code))
        self.assertFalse(e.message.startswith("GDBus.Error"), e.message)
        return e

    def vm_config(self, vm_id, **extra):
        """A CreateVM config with the kernel and rootfs as descriptors."""
        fds = Gio.UnixFDList.new()
        config = {"vm_id": GLib.Variant("s", vm_id), "mem_size_mib": GLib.Variant("u", 128),
                  "vcpu_count": GLib.Variant("u", 1), "network": GLib.Variant("b", False)}
        for key, path in (("kernel-fd", ENV.kernel), ("rootfs-fd", ENV.rootfs)):
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                config[key] = GLib.Variant("h", fds.append(fd))
            finally:
                os.close(fd)
        config.update(extra)
        return GLib.Variant("a{sv}", config), fds

    def job_paths(self, operation):
        return [path for path, ifaces in ENV.managed_objects().items()
                if ifaces.get("org.smolvm.Job", {}).get("Operation") == operation]


class TestClient(LibraryCase):
    def test_typelib_is_the_uninstalled_one(self):
        path = gi.Repository.get_default().get_typelib_path("Smolvm")
        self.assertEqual(os.path.dirname(path), LIB_DIR)

    def check_client(self, client):
        self.assertEqual(client.props.bus_type, Smolvm.BusType.SESSION)
        self.assertEqual(client.get_bus_type(), Smolvm.BusType.SESSION)
        self.assertIsInstance(client.props.connection, Gio.DBusConnection)
        self.assertEqual(client.props.daemon_version,
                         ENV.get_property(st.MANAGER_PATH, st.MANAGER_IFACE, "Version"))
        self.assertEqual(client.get_daemon_version(), client.props.daemon_version)
        self.assertEqual(list(client.props.backends), ["firecracker"])
        self.assertEqual(client.get_backends(), ["firecracker"])
        # pinned to the daemon's unique name
        owner = ENV.busctl("call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                           "org.freedesktop.DBus", "GetNameOwner", "s", st.BUS_NAME)[0]
        self.assertEqual(client.props.name_owner, owner)
        self.assertEqual(client.get_name_owner(), owner)
        self.assertFalse(client.props.interactive)

    def test_new_sync(self):
        self.check_client(self.client)

    def test_new_async(self):
        loop = GLib.MainLoop()
        out = {}

        def done(source, result):
            try:
                out["client"] = Smolvm.Client.new_finish(result)
            except GLib.Error as e:
                out["error"] = e
            loop.quit()

        Smolvm.Client.new(Smolvm.BusType.SESSION, None, done)
        loop.run()
        self.assertNotIn("error", out)
        self.check_client(out["client"])

    def test_interactive_property(self):
        notified = []
        self.client.connect("notify::interactive", lambda *a: notified.append(True))
        self.client.set_interactive(True)
        self.assertTrue(self.client.get_interactive())
        self.client.props.interactive = True  # no change, no notification
        self.client.props.interactive = False
        self.assertFalse(self.client.props.interactive)
        self.assertEqual(len(notified), 2)

    def test_interactive_sets_the_message_flag(self):
        """ALLOW_INTERACTIVE_AUTHORIZATION (header flag 0x4) on every call
        while interactive, on none otherwise; seen by busctl monitor."""
        log = os.path.join(ENV.root, "monitor.json")

        def ping(n):
            """A marker in the monitor's log: Peer.Ping from busctl, with
            @n as the object path's last element."""
            ENV.busctl("call", st.BUS_NAME, "/mark%d" % n, "org.freedesktop.DBus.Peer", "Ping")

        def seen(n):
            with open(log) as f:
                return ('"path":"/mark%d"' % n) in f.read().replace(" ", "")

        with open(log, "w") as out:
            monitor = ENV.adopt(subprocess.Popen(
                ["busctl", "--address=" + ENV.bus.address, "monitor", "--json=short",
                 st.BUS_NAME], stdout=out, stderr=subprocess.DEVNULL))
        # once it shows a marker, busctl is monitoring
        st.wait_for(lambda: ping(1) or seen(1), "busctl monitor to see a marker")
        self.client.list_vms_sync(None)
        self.client.set_interactive(True)
        self.client.list_snapshots_sync(None, None)
        self.assertSmolvmError(Smolvm.Error.NOT_FOUND, self.client.start_vm_sync, "lib-nope",
                               None)
        ping(2)
        st.wait_for(lambda: seen(2), "busctl monitor to see the calls")
        monitor.kill()
        monitor.wait()
        flags = {}
        with open(log) as f:
            text = f.read()
        for line in text.splitlines():
            msg = json.loads(line)
            if msg.get("type") == "method_call" and msg.get("interface") == st.MANAGER_IFACE:
                flags.setdefault(msg["member"], []).append(msg["flags"] & 0x4)
        self.assertEqual(flags.get("ListVMs"), [0], text)
        self.assertEqual(flags.get("ListSnapshots"), [4], text)
        self.assertEqual(flags.get("GetVM"), [4], text)

    def test_sync_call_leaves_the_callers_sources(self):
        ran = []
        GLib.idle_add(lambda: ran.append(True) and False)
        self.client.list_vms_sync(None)
        self.assertEqual(ran, [])
        while GLib.MainContext.default().iteration(False):
            pass
        self.assertEqual(ran, [True])

    def test_not_running(self):
        """On a bus without smolvmd (not activatable either): SERVICE_UNKNOWN."""
        other = st.Env(start=False)
        self.addCleanup(other.cleanup)
        code = textwrap.dedent("""
            import gi
            gi.require_version("Smolvm", "1.0")
            from gi.repository import Gio, GLib, Smolvm
            try:
                Smolvm.Client.new_sync(Smolvm.BusType.SESSION, None)
                print("connected")
            except GLib.Error as e:
                print(e.domain, e.code, e.message)
        """)
        r = subprocess.run([sys.executable, "-c", code], env=other.client_env(),
                           capture_output=True, text=True, timeout=st.DEADLINE)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(" ", 2)[:2],
                         ["g-dbus-error-quark", str(int(Gio.DBusError.SERVICE_UNKNOWN))], r.stdout)
        self.assertIn("neither running nor activatable on the session bus", r.stdout)

    def test_pinned_to_one_daemon(self):
        """A restarted smolvmd is another daemon: the old client's calls
        fail instead of reaching it; a new client works."""
        self.client.list_vms_sync(None)
        ENV.daemon.restart()
        with self.assertRaises(GLib.Error) as caught:
            self.client.list_vms_sync(None)
        self.assertEqual(caught.exception.domain, "g-dbus-error-quark")
        fresh = Smolvm.Client.new_sync(Smolvm.BusType.SESSION, None)
        self.assertNotEqual(fresh.props.name_owner, self.client.props.name_owner)
        fresh.list_vms_sync(None)


class TestVms(LibraryCase):
    def lifecycle(self, vm_id, call):
        """create, get, list, start, pause, resume, console log, stop, delete
        through call(name, *args)."""
        config, fds = self.vm_config(vm_id)
        vm = call("create_vm", config, fds)
        self.assertIsInstance(vm, Smolvm.VmInfo)
        self.assertEqual((vm.props.vm_id, vm.props.status), (vm_id, "created"))
        self.assertEqual(vm.get_backend(), "firecracker")
        self.assertEqual((vm.props.vcpu_count, vm.props.mem_size_mib), (1, 128))
        self.assertFalse(vm.props.network)
        self.assertIsNone(vm.props.ip_address)
        self.assertIsNone(vm.props.restored_from)
        self.assertEqual(vm.props.vm_config.unpack()["mem_size_mib"], 128)
        self.assertNotIn("state", vm.props.vm_config.unpack())
        self.assertEqual(vm.props.network_config.unpack(), {})

        # nothing printed yet
        self.assertSmolvmError(Smolvm.Error.NOT_FOUND, call, "open_console_log", vm_id)

        got = call("get_vm", vm_id)
        self.assertEqual(got.props.disk_path, vm.props.disk_path)
        listed = {v.props.vm_id: v for v in call("list_vms")}
        self.assertIn(vm_id, listed)
        self.assertIsInstance(listed[vm_id], Smolvm.VmInfo)

        self.assertTrue(call("start_vm", vm_id))
        self.assertEqual(ENV.vm_state(vm_id), "running")
        ENV.wait_tick(vm_id, 1)
        running = call("get_vm", vm_id)
        self.assertEqual(running.props.status, "running")
        self.assertGreater(running.props.pid, 0)

        self.assertTrue(call("pause_vm", vm_id))
        self.assertEqual(call("get_vm", vm_id).get_status(), "paused")
        self.assertTrue(call("resume_vm", vm_id))
        self.assertEqual(ENV.vm_state(vm_id), "running")

        log = read_fd(call("open_console_log", vm_id))
        self.assertIn(st.BOOT_BANNER, log)

        self.assertTrue(call("stop_vm", vm_id))
        self.assertEqual(call("get_vm", vm_id).props.status, "stopped")
        self.assertTrue(call("delete_vm", vm_id, Smolvm.VmDeleteFlags.NONE))
        self.assertIsNone(ENV.vm_info(vm_id))
        self.assertSmolvmError(Smolvm.Error.NOT_FOUND, call, "get_vm", vm_id)

    def test_lifecycle_sync(self):
        self.lifecycle("lib-vm-sync",
                       lambda name, *args: getattr(self.client, name + "_sync")(*args, None))

    def test_lifecycle_async(self):
        self.lifecycle("lib-vm-async", self.call_async)

    def test_delete_force(self):
        for suffix, call in (("sync", lambda *a: self.client.delete_vm_sync(*a, None)),
                             ("async", lambda *a: self.call_async("delete_vm", *a))):
            vm_id = "lib-force-" + suffix
            config, fds = self.vm_config(vm_id)
            self.client.create_vm_sync(config, fds, None)
            self.client.start_vm_sync(vm_id, None)
            self.assertSmolvmError(Smolvm.Error.INVALID_STATE, call, vm_id,
                                   Smolvm.VmDeleteFlags.NONE)
            self.assertTrue(call(vm_id, Smolvm.VmDeleteFlags.FORCE))
            self.assertIsNone(ENV.vm_info(vm_id))

    def test_create_vm_generated_id_and_paths(self):
        """No vm_id: smolvmd makes one; images as paths instead of descriptors."""
        config = GLib.Variant("a{sv}", {
            "kernel_path": GLib.Variant("s", ENV.kernel),
            "rootfs_path": GLib.Variant("s", ENV.rootfs),
            "mem_size_mib": GLib.Variant("u", 128), "network": GLib.Variant("b", False)})
        vm = self.client.create_vm_sync(config, None, None)
        self.assertRegex(vm.props.vm_id, r"^vm-[0-9a-f]{8}$")
        self.assertEqual(vm.props.kernel_path, ENV.kernel)
        self.client.delete_vm_sync(vm.props.vm_id, Smolvm.VmDeleteFlags.NONE, None)


class TestSnapshots(LibraryCase):
    def snapshots(self, vm_id, call):
        config, fds = self.vm_config(vm_id)
        call("create_vm", config, fds)
        call("start_vm", vm_id)
        ENV.wait_tick(vm_id, 1)

        # a generated id; the VM stays paused
        first = call("create_snapshot", vm_id, None, Smolvm.SnapshotCreateFlags.NONE)
        self.assertIsInstance(first, Smolvm.SnapshotInfo)
        self.assertTrue(first.props.snapshot_id.startswith("snap-" + vm_id),
                        first.props.snapshot_id)
        self.assertEqual(first.props.vm_id, vm_id)
        self.assertEqual(ENV.vm_state(vm_id), "paused")
        self.assertFalse(first.props.restored)
        self.assertIsNone(first.props.restored_vm_id)
        self.assertEqual(first.props.backend, "firecracker")
        self.assertEqual(first.props.vm_config.unpack()["vm_id"], vm_id)
        self.assertEqual(first.props.network_config.unpack(), {})
        daemon = ENV.snapshot_info(first.props.snapshot_id)
        self.assertEqual(first.props.snapshot_path, daemon["snapshot_path"])
        self.assertEqual(first.props.mem_file_path, daemon["mem_file_path"])
        self.assertEqual(first.props.disk_path, daemon["disk_path"])
        created = first.props.created_at
        self.assertEqual(created.get_utc_offset(), 0)
        self.assertEqual(created.to_unix() * 1000000 + created.get_microsecond(),
                         daemon["created_at"])
        self.assertEqual(first.to_variant().unpack()["snapshot_id"], first.props.snapshot_id)

        # an id of our own, "" as none, and the VM resumed
        call("resume_vm", vm_id)
        second = call("create_snapshot", vm_id, vm_id + "-s2",
                      Smolvm.SnapshotCreateFlags.RESUME_SOURCE)
        self.assertEqual(second.props.snapshot_id, vm_id + "-s2")
        self.assertEqual(ENV.vm_state(vm_id), "running")

        ids = [s.props.snapshot_id for s in call("list_snapshots", vm_id)]
        self.assertEqual(ids, [first.props.snapshot_id, second.props.snapshot_id])
        everything = [s.props.snapshot_id for s in call("list_snapshots", None)]
        self.assertIn(second.props.snapshot_id, everything)
        got = call("get_snapshot", second.props.snapshot_id)
        self.assertEqual(got.props.created_at.to_unix(), second.props.created_at.to_unix())

        # restore: the VM comes back running; the snapshot is marked
        vm = call("restore_snapshot", second.props.snapshot_id,
                  Smolvm.SnapshotRestoreFlags.RESUME)
        self.assertIsInstance(vm, Smolvm.VmInfo)
        self.assertEqual((vm.props.vm_id, vm.props.status), (vm_id, "running"))
        self.assertEqual(vm.props.restored_from, second.props.snapshot_id)
        marked = call("get_snapshot", second.props.snapshot_id)
        self.assertTrue(marked.props.restored)
        self.assertEqual(marked.props.restored_vm_id, vm_id)
        # it runs from this snapshot's memory
        self.assertSmolvmError(Smolvm.Error.IN_USE, call, "delete_snapshot",
                               second.props.snapshot_id)

        # once more: only with FORCE
        call("stop_vm", vm_id)
        self.assertSmolvmError(Smolvm.Error.ALREADY_RESTORED, call, "restore_snapshot",
                               second.props.snapshot_id, Smolvm.SnapshotRestoreFlags.NONE)
        again = call("restore_snapshot", second.props.snapshot_id,
                     Smolvm.SnapshotRestoreFlags.FORCE)
        self.assertEqual(again.props.status, "paused")

        call("delete_vm", vm_id, Smolvm.VmDeleteFlags.FORCE)
        for snapshot in (first, second):
            self.assertTrue(call("delete_snapshot", snapshot.props.snapshot_id))
        self.assertEqual(call("list_snapshots", vm_id), [])
        self.assertSmolvmError(Smolvm.Error.NOT_FOUND, call, "get_snapshot",
                               first.props.snapshot_id)

    def test_snapshots_sync(self):
        self.snapshots("lib-snap-sync",
                       lambda name, *args: getattr(self.client, name + "_sync")(*args, None))

    def test_snapshots_async(self):
        self.snapshots("lib-snap-async", self.call_async)


class TestExportImport(LibraryCase):
    def export_import(self, vm_id, call):
        config, fds = self.vm_config(vm_id)
        call("create_vm", config, fds)
        call("start_vm", vm_id)
        ENV.wait_tick(vm_id, 1)
        snap = call("create_snapshot", vm_id, vm_id + "-s", Smolvm.SnapshotCreateFlags.NONE)
        with tempfile.TemporaryFile() as f:
            # the caller keeps its descriptor: smolvmd writes through a copy
            self.assertTrue(call("export_snapshot", snap.props.snapshot_id, f.fileno()))
            self.assertGreater(os.fstat(f.fileno()).st_size, 0)
            f.seek(0)
            copy = call("import_snapshot", f.fileno(), vm_id + "-copy")
            self.assertIsInstance(copy, Smolvm.SnapshotInfo)
            self.assertEqual(copy.props.snapshot_id, vm_id + "-copy")
            self.assertEqual(copy.props.vm_id, vm_id)
            self.assertEqual(copy.props.created_at.to_unix(), snap.props.created_at.to_unix())
            self.assertFalse(copy.props.restored)
            f.seek(0)
            # under its own id, which is taken
            self.assertSmolvmError(Smolvm.Error.ALREADY_EXISTS, call, "import_snapshot",
                                   f.fileno(), None)
        with tempfile.TemporaryFile() as f:
            f.write(b"not an archive" * 1000)
            f.seek(0)
            self.assertSmolvmError(Smolvm.Error.CORRUPT, call, "import_snapshot", f.fileno(),
                                   vm_id + "-junk")
        with tempfile.TemporaryFile() as f:
            self.assertSmolvmError(Smolvm.Error.NOT_FOUND, call, "export_snapshot",
                                   vm_id + "-none", f.fileno())
        call("delete_vm", vm_id, Smolvm.VmDeleteFlags.FORCE)
        for snapshot_id in (vm_id + "-s", vm_id + "-copy"):
            call("delete_snapshot", snapshot_id)

    def test_export_import_sync(self):
        self.export_import("lib-xfer-sync",
                           lambda name, *args: getattr(self.client, name + "_sync")(*args, None))

    def test_export_import_async(self):
        self.export_import("lib-xfer-async", self.call_async)


class TestClones(LibraryCase):
    def clones(self, vm_id, call):
        """clone_snapshot through call(name, *args): ids, order, flags,
        cloned-from, refusals and a partial failure."""
        config, fds = self.vm_config(vm_id)
        self.client.create_vm_sync(config, fds, None)
        self.client.start_vm_sync(vm_id, None)
        ENV.wait_tick(vm_id, 1)
        snap_id = vm_id + "-s"
        self.client.create_snapshot_sync(vm_id, snap_id, Smolvm.SnapshotCreateFlags.RESUME_SOURCE,
                                         None)
        made_ids = []

        # generated ids (VMID-N); paused without RESUME
        made = call("clone_snapshot", snap_id, 2, None, Smolvm.SnapshotCloneFlags.NONE)
        self.assertEqual([type(v) for v in made], [Smolvm.VmInfo] * 2)
        self.assertEqual([v.props.vm_id for v in made], [vm_id + "-1", vm_id + "-2"])
        for vm in made:
            self.assertEqual(vm.props.status, "paused")
            self.assertEqual(vm.props.cloned_from, snap_id)
            self.assertEqual(vm.get_cloned_from(), snap_id)
            self.assertIsNone(vm.props.restored_from)
            self.assertEqual(ENV.vm_state(vm.props.vm_id), "paused")
        made_ids += [v.props.vm_id for v in made]

        # ids of our own, in the order asked for; RESUME: they run
        ids = [vm_id + "-b", vm_id + "-a"]
        made = call("clone_snapshot", snap_id, 0, ids, Smolvm.SnapshotCloneFlags.RESUME)
        self.assertEqual([v.props.vm_id for v in made], ids)
        self.assertEqual([v.props.status for v in made], ["running", "running"])
        self.assertEqual([ENV.vm_state(i) for i in ids], ["running", "running"])
        made_ids += ids

        # count 0 and no ids (None or empty): one clone
        for no_ids in (None, []):
            made = call("clone_snapshot", snap_id, 0, no_ids, Smolvm.SnapshotCloneFlags.NONE)
            self.assertEqual(len(made), 1)
            made_ids.append(made[0].props.vm_id)
        self.assertEqual(made_ids[-2:], [vm_id + "-3", vm_id + "-4"])

        # cloning is no restore; the source VM is no clone
        self.assertFalse(call("get_snapshot", snap_id).props.restored)
        self.assertIsNone(call("get_vm", vm_id).props.cloned_from)
        self.assertEqual({v.props.vm_id: v.props.cloned_from for v in call("list_vms")
                          if v.props.vm_id in made_ids}, {i: snap_id for i in made_ids})

        # refused by the library (nothing is sent), and by smolvmd
        before = sorted(ENV.list_vms())
        self.assertSmolvmError(Smolvm.Error.INVALID_ARGUMENT, call, "clone_snapshot", snap_id, 1,
                               None, Smolvm.SnapshotCloneFlags(1 << 6))
        self.assertSmolvmError(Smolvm.Error.INVALID_ARGUMENT, call, "clone_snapshot", snap_id, 65,
                               None, Smolvm.SnapshotCloneFlags.NONE)
        self.assertSmolvmError(Smolvm.Error.INVALID_ARGUMENT, call, "clone_snapshot", snap_id, 2,
                               [vm_id + "-x"], Smolvm.SnapshotCloneFlags.NONE)
        self.assertSmolvmError(Smolvm.Error.ALREADY_EXISTS, call, "clone_snapshot", snap_id, 0,
                               [vm_id], Smolvm.SnapshotCloneFlags.NONE)
        e = self.assertSmolvmError(Smolvm.Error.NOT_FOUND, call, "clone_snapshot", "lib-none", 1,
                                   None, Smolvm.SnapshotCloneFlags.NONE)
        self.assertEqual(e.message, "Snapshot 'lib-none' not found")
        self.assertEqual(sorted(ENV.list_vms()), before)

        # one clone fails (an id too long for its VMM's socket): the other is
        # kept, and the error names both
        kept, failing = vm_id + "-ok", "v" * 64
        e = self.assertSmolvmError(Smolvm.Error.FAILED, call, "clone_snapshot", snap_id, 0,
                                   [kept, failing], Smolvm.SnapshotCloneFlags.RESUME)
        self.assertTrue(e.message.startswith(
            "Cloned snapshot '%s' into 1 of 2 VMs ('%s', kept); VM '%s': " %
            (snap_id, kept, failing)), e.message)
        self.assertEqual(call("get_vm", kept).props.cloned_from, snap_id)
        self.assertIsNone(ENV.vm_info(failing))
        made_ids.append(kept)

        for clone in made_ids + [vm_id]:
            self.client.delete_vm_sync(clone, Smolvm.VmDeleteFlags.FORCE, None)
        self.client.delete_snapshot_sync(snap_id, None)

    def test_clones_sync(self):
        self.clones("lib-clone-sync",
                    lambda name, *args: getattr(self.client, name + "_sync")(*args, None))

    def test_clones_async(self):
        self.clones("lib-clone-async", self.call_async)


class TestJobs(LibraryCase):
    def cancel_snapshot(self, vm_id, cancel):
        """Starts CreateSnapshot (async), cancels its job with @cancel(path)
        while smolvmd waits for the emulator, and checks the outcome."""
        config, fds = self.vm_config(vm_id)
        self.client.create_vm_sync(config, fds, None)
        self.client.start_vm_sync(vm_id, None)
        ENV.wait_tick(vm_id, 1)

        loop = GLib.MainLoop()
        out = {}

        def done(source, result):
            try:
                out["value"] = source.create_snapshot_finish(result)
            except GLib.Error as e:
                out["error"] = e
            loop.quit()

        self.client.create_snapshot(vm_id, vm_id + "-s", Smolvm.SnapshotCreateFlags.NONE, None,
                                    done)
        job = st.wait_for(lambda: self.job_paths("snapshot-create"), "the snapshot job")[0]
        self.assertTrue(cancel(job))
        loop.run()
        self.assertNotIn("value", out)
        e = out["error"]
        self.assertEqual((e.domain, e.code), ("smolvm-error-quark", int(Smolvm.Error.CANCELLED)),
                         e.message)
        self.assertEqual(Smolvm.error_to_dbus_name(e.code), "org.smolvm.Error.Cancelled")
        self.assertNotIn(vm_id + "-s", ENV.snapshot_ids())
        self.assertEqual(ENV.vm_state(vm_id), "running")
        # the job is gone
        st.wait_for(lambda: job not in ENV.managed_objects(), "the job to go")
        self.assertSmolvmError(Smolvm.Error.NOT_FOUND, cancel, job)
        self.client.delete_vm_sync(vm_id, Smolvm.VmDeleteFlags.FORCE, None)

    def test_cancel_job_sync(self):
        self.cancel_snapshot("lib-job-sync", lambda job: self.client.cancel_job_sync(job, None))

    def test_cancel_job_async(self):
        self.cancel_snapshot("lib-job-async", lambda job: self.call_async("cancel_job", job))


class TestErrors(LibraryCase):
    def test_not_found(self):
        c = self.client
        for fn, args in ((c.get_vm_sync, ("lib-none",)), (c.start_vm_sync, ("lib-none",)),
                         (c.pause_vm_sync, ("lib-none",)), (c.resume_vm_sync, ("lib-none",)),
                         (c.stop_vm_sync, ("lib-none",)),
                         (c.delete_vm_sync, ("lib-none", Smolvm.VmDeleteFlags.NONE)),
                         (c.open_console_log_sync, ("lib-none",)),
                         (c.get_snapshot_sync, ("lib-none",)),
                         (c.delete_snapshot_sync, ("lib-none",)),
                         (c.restore_snapshot_sync, ("lib-none", Smolvm.SnapshotRestoreFlags.NONE)),
                         (c.create_snapshot_sync, ("lib-none", None,
                                                   Smolvm.SnapshotCreateFlags.NONE)),
                         (c.cancel_job_sync, ("/org/smolvm/Manager/job/999999",))):
            with self.subTest(fn.__name__):
                e = self.assertSmolvmError(Smolvm.Error.NOT_FOUND, fn, *args, None)
                self.assertEqual(Smolvm.error_to_dbus_name(e.code), "org.smolvm.Error.NotFound")

    def test_not_found_async(self):
        e = self.assertSmolvmError(Smolvm.Error.NOT_FOUND, self.call_async, "get_vm", "lib-none")
        self.assertEqual(e.message, "VM 'lib-none' not found")
        self.assertSmolvmError(Smolvm.Error.NOT_FOUND, self.call_async, "get_snapshot",
                               "lib-none")

    def test_invalid(self):
        # refused by the library: unknown flags, a job path that is no path
        self.assertSmolvmError(Smolvm.Error.INVALID_ARGUMENT, self.client.delete_vm_sync,
                               "lib-none", Smolvm.VmDeleteFlags(1 << 7), None)
        self.assertSmolvmError(Smolvm.Error.INVALID_ARGUMENT, self.call_async,
                               "restore_snapshot", "lib-none", Smolvm.SnapshotRestoreFlags(1 << 5))
        self.assertSmolvmError(Smolvm.Error.INVALID_ARGUMENT, self.client.cancel_job_sync,
                               "job 1", None)
        self.assertSmolvmError(Smolvm.Error.INVALID_ARGUMENT, self.client.create_vm_sync,
                               GLib.Variant("s", "x"), None, None)
        # by smolvmd
        self.assertSmolvmError(Smolvm.Error.INVALID_ARGUMENT, self.client.create_snapshot_sync,
                               "lib-none", "Not An Id", Smolvm.SnapshotCreateFlags.NONE, None)
        config, fds = self.vm_config("lib-invalid")
        self.client.create_vm_sync(config, fds, None)
        self.assertSmolvmError(Smolvm.Error.INVALID_STATE, self.call_async, "pause_vm",
                               "lib-invalid")
        self.assertSmolvmError(Smolvm.Error.ALREADY_EXISTS, self.client.create_vm_sync,
                               *self.vm_config("lib-invalid"), None)
        self.client.delete_vm_sync("lib-invalid", Smolvm.VmDeleteFlags.NONE, None)

    def test_cancellable(self):
        """A cancelled GCancellable: G_IO_ERROR_CANCELLED, as everywhere in GIO."""
        cancellable = Gio.Cancellable()
        cancellable.cancel()
        with self.assertRaises(GLib.Error) as caught:
            self.client.list_vms_sync(cancellable)
        self.assertTrue(caught.exception.matches(Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED))


if __name__ == "__main__":
    st.main("library")
