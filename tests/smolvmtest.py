# SPDX-License-Identifier: LGPL-2.1-or-later
"""smolvmtest: the harness of smolvm's integration tests.

Every test gets an Env: a temporary directory with a private dbus-daemon,
a smolvmd on it (state, runtime dir and emulator request log inside the
directory) that runs tests/fc-emulator as its Firecracker, a fake kernel and
a sparse rootfs.  The Env is torn down whatever happens: smolvmd, the
emulators it left (they run in their own session, so they are found by the
temporary directory in their command line) and the bus are killed by pid,
and the directory is removed.

The tests talk to smolvmd in three ways: the smolvm CLI, `gdbus call` and
`busctl call`.  They never assert on durations: anything asynchronous is
polled with a generous deadline that only bounds the wait.

Run the test files with /usr/bin/python3 (Debian's, which check-swagger.py
needs); they use the standard library only.  SMOLVM_BUILD_DIR and
SMOLVM_SOURCE_DIR (set by meson) locate the binaries.
"""

import atexit
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("SMOLVM_SOURCE_DIR") or os.path.dirname(HERE)
BUILD_DIR = os.environ.get("SMOLVM_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")
SMOLVMD = os.path.join(BUILD_DIR, "src", "daemon", "smolvmd")
CLI = os.path.join(BUILD_DIR, "src", "cli", "smolvm")
EMULATOR = os.path.join(BUILD_DIR, "tests", "fc-emulator")
DATA_DIR = os.path.join(SOURCE_DIR, "tests", "data")
CHECK_SWAGGER = os.path.join(SOURCE_DIR, "tests", "check-swagger.py")
SWAGGER = os.path.normpath(os.path.join(
    SOURCE_DIR, "..", "shared", "reference", "firecracker-v1.16.1-swagger.yaml"))
# Every Env's emulator request log ends up here, for the final Swagger check
# (test-swagger-log.py).
REQUEST_LOG_DIR = os.path.join(BUILD_DIR, "tests", "integration-request-logs")

BUS_NAME = "org.smolvm.Manager"
MANAGER_PATH = "/org/smolvm/Manager"
MANAGER_IFACE = "org.smolvm.Manager"
VM_IFACE = "org.smolvm.VM"
SNAPSHOT_IFACE = "org.smolvm.Snapshot"
ERROR_PREFIX = "org.smolvm.Error."

DEADLINE = 60.0  # bounds every wait; never an assertion on time
TICK_MS = "50"
MIB = 1024 * 1024
ROOTFS_SIZE = 256 * MIB
# Where the test rootfs has data; everything else is a hole.
ROOTFS_MARKS = (0, 1 * MIB, 100 * MIB + 12345, ROOTFS_SIZE - 4096)

ID_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")
TICK_RE = re.compile(r"^tick (\d+)$", re.M)
BOOT_BANNER = "fc-emulator: booting kernel"
LOADED_BANNER = "fc-emulator: snapshot loaded"

IS_ROOT = os.geteuid() == 0


# ---- small helpers ----------------------------------------------------------

def wait_for(predicate, what, timeout=DEADLINE, interval=0.05):
    """Polls @predicate until it returns something true and returns that."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError("gave up waiting (%.0f s) for %s" % (timeout, what))
        time.sleep(interval)


def escape_object_path(s):
    """g_dbus_escape_object_path(): every byte but [A-Za-z0-9] becomes _XX."""
    return "".join(c if (c.isascii() and c.isalnum()) else "_%02x" % b
                   for c, b in ((chr(b), b) for b in s.encode()))


def vm_path(vm_id):
    return MANAGER_PATH + "/vm/" + escape_object_path(vm_id)


def snapshot_path(snapshot_id):
    return MANAGER_PATH + "/snapshot/" + escape_object_path(snapshot_id)


def gv_str(s):
    """A GVariant text string literal."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def gv_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return "uint32 %d" % v
    if isinstance(v, str):
        return gv_str(v)
    if isinstance(v, GVText):
        return v.text
    raise TypeError("no GVariant text for %r" % (v,))


class GVText:
    """Literal GVariant text, for values of unusual types."""

    def __init__(self, text):
        self.text = text


def gv_dict(d=None):
    """An a{sv} in GVariant text."""
    if not d:
        return "@a{sv} {}"
    return "{" + ", ".join("%s: <%s>" % (gv_str(k), gv_value(v)) for k, v in d.items()) + "}"


def unwrap(node):
    """busctl --json=short value -> plain Python (variants unwrapped)."""
    if isinstance(node, dict) and set(node) == {"type", "data"}:
        return unwrap(node["data"])
    if isinstance(node, dict):
        return {k: unwrap(v) for k, v in node.items()}
    if isinstance(node, list):
        return [unwrap(v) for v in node]
    return node


def process_alive(pid):
    """True for a live process; a zombie (exited, not yet reaped) counts as dead."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(4 * MIB), b""):
            h.update(chunk)
    return h.hexdigest()


def files_identical(a, b):
    return subprocess.run(["cmp", "-s", a, b]).returncode == 0


def allocated_bytes(path):
    return os.stat(path).st_blocks * 512


def is_sparse(path):
    st = os.stat(path)
    return st.st_blocks * 512 < st.st_size // 2


def tree_fingerprint(root):
    """Every entry under @root: type, mode, size and content hash."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if os.path.isdir(path) and not os.path.islink(path):
                out[rel] = ("dir", st.st_mode)
            elif os.path.islink(path):
                out[rel] = ("link", os.readlink(path))
            else:
                out[rel] = ("file", st.st_mode, st.st_size, file_sha256(path))
    return out


def tree_fingerprint_strict(root):
    """Every entry under and including @root, with its name, type, inode, mode,
    owner, size, mtime, ctime and content hash: any write, rename, chmod,
    atomic replacement or temporary file (it changes its directory's mtime)
    shows.  Returns (sha256 of it all, the entries) -- compare the entries
    for a readable diff."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        entries = sorted(dirnames + filenames)
        if dirpath == root:
            entries = ["."] + entries
        for name in entries:
            path = os.path.normpath(os.path.join(dirpath, name))
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            entry = (stat.S_IFMT(st.st_mode), st.st_ino, stat.S_IMODE(st.st_mode), st.st_uid,
                     st.st_gid, st.st_nlink, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            if stat.S_ISREG(st.st_mode):
                entry += (file_sha256(path),)
            elif stat.S_ISLNK(st.st_mode):
                entry += (os.readlink(path),)
            out[rel] = entry
    digest = hashlib.sha256(repr(sorted(out.items())).encode()).hexdigest()
    return digest, out


def make_kernel(path):
    with open(path, "wb") as f:
        f.write(b"\x7fELF fake smolvm test kernel\n" + bytes(range(256)) * 16)


def mark_bytes(offset, tag=b""):
    seed = hashlib.sha256(b"smolvm-rootfs-%d-%s" % (offset, tag)).digest()
    return (seed * (4096 // len(seed)))[:4096]


def make_rootfs(path, size=ROOTFS_SIZE, marks=ROOTFS_MARKS, tag=b""):
    """A sparse image: holes with 4 KiB of recognizable data at @marks."""
    with open(path, "wb") as f:
        f.truncate(size)
        for off in marks:
            f.seek(off)
            f.write(mark_bytes(off, tag))


def make_dense_file(path, size):
    """Real data everywhere (for filling a small filesystem)."""
    block = hashlib.sha256(b"dense").digest() * (MIB // 32)
    with open(path, "wb") as f:
        for i in range(size // MIB):
            f.write(block[:MIB - 8] + i.to_bytes(8, "little"))


def ticks(text):
    return [int(n) for n in TICK_RE.findall(text)]


class DBusError(Exception):
    def __init__(self, name, message, output=""):
        super().__init__("%s: %s" % (name, message))
        self.name = name
        self.message = message
        self.output = output

    @property
    def short_name(self):
        return self.name[len(ERROR_PREFIX):] if self.name.startswith(ERROR_PREFIX) else self.name


_GDBUS_ERROR_RE = re.compile(r"GDBus\.Error:([A-Za-z0-9_.]+): (.*)", re.S)


def gdbus_result(rc, out, err):
    """The output of a `gdbus call`, or its DBusError."""
    if rc != 0:
        m = _GDBUS_ERROR_RE.search(err)
        if m is None:
            raise DBusError("(unparsable)", err, err)
        raise DBusError(m.group(1), m.group(2).strip(), err)
    return out.strip()


class CliResult:
    def __init__(self, argv, proc):
        self.argv = argv
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return "$ %s\n[exit %d]\nstdout:\n%s\nstderr:\n%s" % (
            shlex.join(self.argv), self.rc, self.out, self.err)


# ---- the processes ----------------------------------------------------------

class Bus:
    """A private dbus-daemon listening in @directory."""

    def __init__(self, directory, system=False):
        config = os.path.join(DATA_DIR, "system-bus.conf" if system else "session-bus.conf")
        self.socket = os.path.join(directory, "bus")
        self.proc = subprocess.Popen(
            ["dbus-daemon", "--config-file=" + config, "--address=unix:path=" + self.socket,
             "--print-address=1", "--nofork"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.address = self.proc.stdout.readline().strip()
        if not self.address:
            self.stop()
            raise RuntimeError("dbus-daemon did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


class Daemon:
    """smolvmd on a Bus; can be killed and started again on the same dirs."""

    def __init__(self, env, session=True, extra_env=None, wrapper=None, qemu_bin=None,
                 extra_args=None):
        self.env = env
        self.extra_args = list(extra_args or [])
        self.session = session
        # The Firecracker suites want exactly one backend: a QEMU "binary"
        # without a q35 machine (/bin/false) leaves the QEMU backend off.
        self.qemu_bin = qemu_bin or "/bin/false"
        self.extra_env = dict(extra_env or {})
        # e.g. SMOLVM_TEST_DAEMON_WRAPPER="valgrind --error-exitcode=9" to debug smolvmd
        self.wrapper = list(wrapper or []) + shlex.split(
            os.environ.get("SMOLVM_TEST_DAEMON_WRAPPER", ""))
        self.proc = None
        self.log_path = os.path.join(env.root, "smolvmd.log")
        self.starts = 0

    def argv(self):
        argv = self.wrapper + [SMOLVMD]
        if self.session:
            argv.append("--session")
        argv += ["--state-dir", self.env.state_dir, "--runtime-dir", self.env.runtime_dir,
                 "--firecracker-bin", EMULATOR, "--qemu-bin", self.qemu_bin]
        return argv + self.extra_args

    def start(self):
        env = dict(os.environ)
        for k in ("DBUS_SESSION_BUS_ADDRESS", "DBUS_SYSTEM_BUS_ADDRESS",
                  "FC_EMULATOR_SNAPSHOT_DELAY_MS"):
            env.pop(k, None)
        env["DBUS_SESSION_BUS_ADDRESS" if self.session else "DBUS_SYSTEM_BUS_ADDRESS"] = \
            self.env.bus.address
        env["FC_EMULATOR_TICK_MS"] = TICK_MS
        env["FC_EMULATOR_REQUEST_LOG"] = self.env.request_log
        # a g_critical is a bug (a record that was not validated, a misuse of
        # an API): it must fail the test, not scroll past in the log
        env["G_DEBUG"] = "fatal-criticals"
        env.update(self.extra_env)
        self.starts += 1
        with open(self.log_path, "a") as log:
            log.write("==== smolvmd start #%d: %s\n" % (self.starts, shlex.join(self.argv())))
            log.flush()
            self.proc = subprocess.Popen(self.argv(), env=env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        wait_for(self._ready, "smolvmd to own %s" % BUS_NAME)

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("smolvmd exited with %d:\n%s" % (self.proc.returncode,
                                                                  self.env.daemon_log()))
        r = subprocess.run(["busctl", "--address=" + self.env.bus.address, "call",
                            "org.freedesktop.DBus", "/org/freedesktop/DBus",
                            "org.freedesktop.DBus", "NameHasOwner", "s", BUS_NAME],
                           capture_output=True, text=True)
        return r.returncode == 0 and r.stdout.strip() == "b true"

    @property
    def pid(self):
        return self.proc.pid

    def kill(self):
        """SIGKILL: no chance to clean up, like a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()

    def restart(self):
        self.kill()
        self.start()

    def stop_checked(self):
        """SIGTERM and wait; a wrapped daemon (valgrind) reports its findings
        only in its exit status and log then. Returns an error text or None."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "smolvmd did not exit on SIGTERM"
        if rc != 0:
            return "smolvmd (%s) exited with %d" % (" ".join(self.wrapper), rc)
        return None


class Monitor:
    """`gdbus monitor` of smolvmd's signals, written to a file."""

    def __init__(self, env):
        self.env = env
        self.path = os.path.join(env.root, "monitor-%d.txt" % len(env.monitors))
        self.file = open(self.path, "w")
        self.proc = subprocess.Popen(["gdbus", "monitor", "--session" if env.session else "--system",
                                      "--dest", BUS_NAME],
                                     env=env.client_env(not env.session), stdout=self.file,
                                     stderr=subprocess.STDOUT)
        # It prints the owner once it has subscribed.
        wait_for(lambda: "is owned by" in self.text(), "gdbus monitor to subscribe")

    def text(self):
        with open(self.path) as f:
            return f.read()

    def wait_for_line(self, *needles):
        def find():
            for line in self.text().splitlines():
                if all(n in line for n in needles):
                    return line
            return None
        return wait_for(find, "a signal line with %r" % (needles,))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.file.close()


# ---- the environment of one test --------------------------------------------

_live_envs = set()  # cleaned up even when the test run is killed (SIGTERM, timeout)


def _cleanup_all(*_):
    for env in list(_live_envs):
        env.cleanup()


def _terminated(signum, frame):
    _cleanup_all()
    print("terminated by signal %d" % signum)
    sys.stdout.flush()
    os._exit(1)


class Env:
    """A temporary directory, a private bus and a smolvmd; see the module doc."""

    def __init__(self, session=True, extra_env=None, wrapper=None, start=True,
                 runtime_name="run", qemu_bin=None, daemon_args=None):
        # short: the emulator's API socket path below it must fit in sun_path
        self.root = tempfile.mkdtemp(prefix="smolvm-", dir="/tmp")
        self.state_dir = os.path.join(self.root, "state")
        self.runtime_dir = os.path.join(self.root, runtime_name)
        self.request_log = os.path.join(self.root, "requests.log")
        self.kernel = os.path.join(self.root, "vmlinux")
        self.rootfs = os.path.join(self.root, "rootfs.ext4")
        self.monitors = []
        self.session = session
        self.bus = None
        self.daemon = None
        self.saved_log = ""
        self.adopted = []  # other processes of the test, killed first by cleanup()
        _live_envs.add(self)
        try:
            if not session:
                # other uids must reach the bus socket
                os.chmod(self.root, 0o755)
            make_kernel(self.kernel)
            make_rootfs(self.rootfs)
            self.bus = Bus(self.root, system=not session)
            self.daemon = Daemon(self, session=session, extra_env=extra_env, wrapper=wrapper,
                                 qemu_bin=qemu_bin, extra_args=daemon_args)
            if start:
                self.daemon.start()
        except BaseException:
            self.cleanup()
            raise

    # -- logs

    def daemon_log(self):
        path = os.path.join(self.root, "smolvmd.log")
        if os.path.exists(path):
            with open(path, errors="replace") as f:
                return f.read()
        return self.saved_log

    # -- clients

    def client_env(self, system=False):
        env = dict(os.environ)
        env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        env.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
        env["DBUS_SYSTEM_BUS_ADDRESS" if system else "DBUS_SESSION_BUS_ADDRESS"] = \
            self.bus.address
        return env

    def cli(self, *args):
        """Runs `smolvm --session ARGS…`; returns a CliResult."""
        argv = [CLI, "--session"] + list(args)
        proc = subprocess.run(argv, env=self.client_env(), capture_output=True, text=True,
                              timeout=DEADLINE * 2)
        return CliResult(argv, proc)

    def gdbus(self, path, method, *args, iface=None, as_user=None):
        """`gdbus call`; returns its output or raises DBusError.

        @method is a member of @iface (by default the interface that objects
        at @path have); @args are GVariant texts. @as_user: run as this uid
        (and gid) on the system bus."""
        proc = subprocess.run(self.gdbus_argv(path, method, *args, iface=iface, as_user=as_user),
                              env=self.client_env(not self.session), capture_output=True,
                              text=True, timeout=DEADLINE * 3)
        return gdbus_result(proc.returncode, proc.stdout, proc.stderr)

    def gdbus_argv(self, path, method, *args, iface=None, as_user=None):
        if iface is None:
            iface = (VM_IFACE if "/vm/" in path else
                     SNAPSHOT_IFACE if "/snapshot/" in path else MANAGER_IFACE)
        argv = ["gdbus", "call", "--session" if self.session else "--system", "--dest", BUS_NAME,
                "--object-path", path, "--timeout", str(int(DEADLINE * 2)),
                "--method", iface + "." + method] + list(args)
        if as_user is not None:
            argv = ["setpriv", "--reuid=%d" % as_user, "--regid=%d" % as_user,
                    "--clear-groups"] + argv
        return argv

    def gdbus_background(self, path, method, *args):
        """`gdbus call` without waiting: a Popen; see gdbus_result()."""
        return subprocess.Popen(self.gdbus_argv(path, method, *args),
                                env=self.client_env(not self.session), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def call(self, method, *args, **kw):
        """A method of org.smolvm.Manager through gdbus."""
        return self.gdbus(MANAGER_PATH, method, *args, **kw)

    def busctl(self, *args):
        """`busctl --json=short ARGS…` on the private bus; returns the unwrapped data."""
        argv = ["busctl", "--address=" + self.bus.address, "--json=short"] + [str(a) for a in args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=DEADLINE * 3)
        if proc.returncode != 0:
            # busctl gives only the message, never the error name
            raise DBusError("(busctl)", proc.stderr.strip(), proc.stderr)
        out = proc.stdout.strip()
        return unwrap(json.loads(out)) if out else None

    def busctl_manager(self, method, signature="", *args):
        """`busctl call org.smolvm.Manager /org/smolvm/Manager org.smolvm.Manager …`."""
        argv = ["call", BUS_NAME, MANAGER_PATH, MANAGER_IFACE, method]
        if signature:
            argv += [signature] + list(args)
        return self.busctl(*argv)

    # -- reads

    def list_snapshots(self, vm_id=""):
        """[(object path, info)] from ListSnapshots, through busctl."""
        data = self.busctl_manager("ListSnapshots", "s", vm_id)
        return [tuple(entry) for entry in data[0]]

    def snapshot_ids(self, vm_id=""):
        return [info["snapshot_id"] for _, info in self.list_snapshots(vm_id)]

    def snapshot_info(self, snapshot_id):
        for _, info in self.list_snapshots():
            if info["snapshot_id"] == snapshot_id:
                return info
        return None

    def list_vms(self):
        """{vm_id: info} from ListVMs, through busctl."""
        data = self.busctl_manager("ListVMs")
        return {info["vm_id"]: info for _, info in data[0]}

    def vm_info(self, vm_id):
        return self.list_vms().get(vm_id)

    def get_property(self, path, iface, name):
        return self.busctl("get-property", BUS_NAME, path, iface, name)

    def get_property_gdbus(self, path, iface, name):
        """org.freedesktop.DBus.Properties.Get through gdbus (which, unlike
        busctl, reports the error's name)."""
        return self.gdbus(path, "Get", gv_str(iface), gv_str(name),
                          iface="org.freedesktop.DBus.Properties")

    def vm_prop(self, vm_id, name):
        return self.get_property(vm_path(vm_id), VM_IFACE, name)

    def snap_prop(self, snapshot_id, name):
        return self.get_property(snapshot_path(snapshot_id), SNAPSHOT_IFACE, name)

    def vm_state(self, vm_id):
        return self.vm_prop(vm_id, "State")

    def managed_objects(self):
        data = self.busctl("call", BUS_NAME, MANAGER_PATH, "org.freedesktop.DBus.ObjectManager",
                           "GetManagedObjects")
        return data[0]

    # -- writes (gdbus)

    def create_vm(self, vm_id, rootfs=None, **config):
        cfg = {"vm_id": vm_id, "kernel_path": self.kernel, "rootfs_path": rootfs or self.rootfs,
               "mem_size_mib": 128, "vcpu_count": 1, "network": False}
        cfg.update(config)
        cfg = {k: v for k, v in cfg.items() if v is not None}
        return self.call("CreateVM", gv_dict(cfg))

    def vm(self, vm_id, method, *args):
        return self.gdbus(vm_path(vm_id), method, *args)

    def start_vm(self, vm_id, first_tick=True):
        self.vm(vm_id, "Start")
        if first_tick:
            self.wait_tick(vm_id, 1)

    def running_vm(self, vm_id, **config):
        self.create_vm(vm_id, **config)
        self.start_vm(vm_id)

    def create_snapshot(self, vm_id, snapshot_id="", **options):
        return self.call("CreateSnapshot", gv_str(vm_id), gv_str(snapshot_id), gv_dict(options))

    def restore(self, snapshot_id, **options):
        return self.call("RestoreSnapshot", gv_str(snapshot_id), gv_dict(options))

    def delete_snapshot(self, snapshot_id):
        return self.call("DeleteSnapshot", gv_str(snapshot_id), gv_dict())

    def error_of(self, fn, *args, **kw):
        """The DBusError that fn(*args) raises (AssertionError if none)."""
        try:
            out = fn(*args, **kw)
        except DBusError as e:
            return e
        raise AssertionError("expected a D-Bus error, got success: %r" % (out,))

    # -- the guest

    def console_path(self, vm_id):
        return os.path.join(self.runtime_dir, "vms", vm_id, "console.log")

    def console(self, vm_id):
        try:
            with open(self.console_path(vm_id), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def console_size(self, vm_id):
        try:
            return os.path.getsize(self.console_path(vm_id))
        except FileNotFoundError:
            return 0

    def wait_tick(self, vm_id, minimum, since=0):
        """Waits for a `tick N` line, N >= @minimum, after byte @since of the console."""
        def found():
            t = [n for n in ticks(self.console(vm_id)[since:]) if n >= minimum]
            return t[0] if t else None
        return wait_for(found, "tick >= %d of VM %s" % (minimum, vm_id))

    def wait_loaded_tick(self, vm_id, since):
        """After byte @since of the console: waits for the snapshot-loaded banner and
        a tick after it; returns (that first tick, the console text from the banner)."""
        def found():
            log = self.console(vm_id)[since:]
            at = log.find(LOADED_BANNER)
            if at < 0:
                return None
            t = ticks(log[at:])
            return (t[0], log[at:]) if t else None
        return wait_for(found, "a tick after the snapshot load of VM %s" % vm_id)

    def last_tick(self, vm_id):
        t = ticks(self.console(vm_id))
        return t[-1] if t else None

    def monitor(self):
        m = Monitor(self)
        self.monitors.append(m)
        return m

    # -- processes and teardown

    def our_pids(self):
        """Processes whose command line names our directory (smolvmd, emulators, bus)."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            if self.root.encode() in cmdline:
                pids.append(int(entry))
        return pids

    def emulator_pids(self):
        out = []
        for pid in self.our_pids():
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    if f.read().split(b"\0")[0] == EMULATOR.encode():
                        out.append(pid)
            except OSError:
                pass
        return out

    def adopt(self, proc):
        """Kills the Popen @proc (by pid) when the Env is cleaned up; returns it."""
        self.adopted.append(proc)
        return proc

    def cleanup(self):
        _live_envs.discard(self)
        for m in self.monitors:
            m.stop()
        for proc in self.adopted:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        failure = None
        if self.daemon is not None:
            # under a wrapper, a clean stop is what lets it report
            if self.daemon.wrapper:
                failure = self.daemon.stop_checked()
            self.daemon.kill()
        for pid in self.our_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.bus is not None:
            self.bus.stop()
        self.saved_log = self.daemon_log()
        if _log_prefix is not None and os.path.exists(self.request_log):
            os.makedirs(REQUEST_LOG_DIR, exist_ok=True)
            with open(self.request_log) as src, \
                    open(os.path.join(REQUEST_LOG_DIR, "%s.log" % _log_prefix), "a") as dst:
                shutil.copyfileobj(src, dst)
        shutil.rmtree(self.root, ignore_errors=True)
        if failure is not None:
            raise AssertionError("%s:\n%s" % (failure, self.saved_log[-6000:]))


# ---- tests ------------------------------------------------------------------

_log_prefix = None  # set by main(); without it request logs are not kept


class TestCase(unittest.TestCase):
    """Gives each test self.env (made on first use) and cleans up after it."""

    maxDiff = None
    env_options = {}

    def setUp(self):
        self._envs = []

    def new_env(self, **options):
        opts = dict(self.env_options)
        opts.update(options)
        env = Env(**opts)
        self._envs.append(env)
        self.addCleanup(env.cleanup)
        return env

    def net_namespaced_env(self, setup="", **options):
        """A system-bus smolvmd in network and mount namespaces of its own,
        held by a process of the test, with a sysfs of that network
        namespace and a /run/netns of its own, so that its TAP devices,
        clones' namespaces and veths stay off the host. @setup: shell
        commands run in there first."""
        script = ("mount -t sysfs sysfs /sys && mkdir -p /run/netns && "
                  "mount -t tmpfs tmpfs /run/netns && %s echo ready && exec sleep infinity"
                  % (setup + " &&" if setup else ""))
        holder = subprocess.Popen(["unshare", "--net", "--mount", "--propagation", "private",
                                   "sh", "-c", script], stdout=subprocess.PIPE, text=True)
        self.addCleanup(holder.wait)
        self.addCleanup(holder.kill)
        self.assertEqual(holder.stdout.readline().strip(), "ready")
        holder.stdout.close()
        wrapper = ["nsenter", "--net=/proc/%d/ns/net" % holder.pid,
                   "--mount=/proc/%d/ns/mnt" % holder.pid, "--"]
        return self.new_env(session=False, wrapper=wrapper, **options)

    @property
    def env(self):
        if not self._envs:
            self.new_env()
        return self._envs[0]

    def daemon_logs(self):
        return "\n".join("---- smolvmd log of %s ----\n%s" % (e.root, e.daemon_log())
                         for e in getattr(self, "_envs", []))

    def assertDBusError(self, short_name, fn, *args, **kw):
        """fn(*args) must fail with org.smolvm.Error.@short_name; returns the error."""
        try:
            out = fn(*args, **kw)
        except DBusError as e:
            self.assertEqual(e.name, ERROR_PREFIX + short_name, "message: %s" % e.message)
            return e
        self.fail("expected %s%s, got success: %r" % (ERROR_PREFIX, short_name, out))

    def assertCli(self, result, rc):
        self.assertEqual(result.rc, rc, repr(result))


class _Result(unittest.TextTestResult):
    def _dump(self, test):
        if isinstance(test, TestCase):
            self.stream.write(test.daemon_logs() + "\n")

    def addError(self, test, err):
        super().addError(test, err)
        self._dump(test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._dump(test)


def main(name):
    """Runs the tests of module __main__; prints `N passed, M failed[, K skipped]`."""
    global _log_prefix
    _log_prefix = name
    atexit.register(_cleanup_all)
    signal.signal(signal.SIGTERM, _terminated)
    signal.signal(signal.SIGINT, _terminated)
    os.makedirs(REQUEST_LOG_DIR, exist_ok=True)
    log = os.path.join(REQUEST_LOG_DIR, "%s.log" % name)
    if os.path.exists(log):
        os.unlink(log)
    for path in (SMOLVMD, EMULATOR):
        if not os.access(path, os.X_OK):
            print("missing %s (build first)" % path)
            print("0 passed, 1 failed")
            sys.exit(1)
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules["__main__"])
    if len(sys.argv) > 1:
        # run only tests whose id contains one of the arguments
        wanted = sys.argv[1:]
        flat = []

        def walk(s):
            for t in s:
                if isinstance(t, unittest.TestSuite):
                    walk(t)
                elif any(w in t.id() for w in wanted):
                    flat.append(t)
        walk(suite)
        suite = unittest.TestSuite(flat)
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=_Result)
    result = runner.run(suite)
    # a test with failing subtests counts once
    bad = len({getattr(t, "test_case", t).id()
               for t, _ in result.failures + result.errors} |
              {t.id() for t in result.unexpectedSuccesses})
    skipped = len(result.skipped)
    passed = result.testsRun - bad - skipped
    line = "%d passed, %d failed" % (passed, bad)
    if skipped:
        line += ", %d skipped" % skipped
    print(line)
    sys.stdout.flush()
    sys.exit(1 if bad or result.testsRun == 0 else 0)
