#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""smolvmd's polkit authorization, against mock polkit daemons.

smolvmd runs in system mode (no --session) on a private "system" bus
(tests/data/system-bus.conf) that a mock org.freedesktop.PolicyKit1 owns:

- python-dbusmock's stock `polkitd` template (AllowUnknown, SetAllowed,
  SimulateHangActions): which action each call needs, refusals leave no
  trace, reads need nothing, authorization does not block the daemon;
- a recording template written by this file (RECORDER_TEMPLATE): it keeps
  the subject, action, details and flags of every CheckAuthorization and
  answers per action (yes, no, challenge, auth, dismissed, error), which the
  stock template cannot do: details, the interactive flag, dismissal, polkit
  errors, polkit going away.

The test process talks to smolvmd through GDBus (python3-gi), so that it
knows its own unique name (the subject) and sets the
ALLOW_INTERACTIVE_AUTHORIZATION flag as it likes, and through `gdbus call`,
`busctl` and the smolvm CLI.  Run with /usr/bin/python3; needs
python3-dbusmock and python3-gi (tools/deps.sh).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smolvmtest as st  # noqa: E402
from smolvmtest import snapshot_path, vm_path  # noqa: E402

try:
    import gi
    gi.require_version("Gio", "2.0")
    from gi.repository import Gio, GLib
    import dbusmock  # noqa: F401  (run as `python3 -m dbusmock`; checked here)
    from jobwatch import JOB_IFACE, JobWatch
    MISSING = None
except (ImportError, ValueError) as e:
    MISSING = "needs python3-gi and python3-dbusmock: %s" % e

PYTHON = sys.executable or "/usr/bin/python3"
POLKIT_NAME = "org.freedesktop.PolicyKit1"
POLKIT_PATH = "/org/freedesktop/PolicyKit1/Authority"
MOCK_IFACE = "org.freedesktop.DBus.Mock"
NOBODY = 65534

CREATE = "org.smolvm.snapshot.create"
RESTORE = "org.smolvm.snapshot.restore"
DELETE = "org.smolvm.snapshot.delete"
CLONE = "org.smolvm.snapshot.clone"
PUSH = "org.smolvm.snapshot.push"
PULL = "org.smolvm.snapshot.pull"
MANAGE = "org.smolvm.vm.manage"
ACTIONS = (CREATE, RESTORE, DELETE, MANAGE)
MIB = 1024 * 1024
# a disk of real data: its copy takes long enough for a Cancel to land in it
BIG = 1536 * MIB
INTERACTIVE = 1  # POLKIT_CHECK_AUTHORIZATION_FLAGS_ALLOW_USER_INTERACTION
TIMEOUT_MS = int(st.DEADLINE * 2 * 1000)

# The bus's errors in polkitd's stead when it cannot reach it: the recorder
# answers them for these answer names.
UNREACHABLE = {
    "masked": ("org.freedesktop.systemd1.UnitMasked", "Unit polkit.service is masked."),
    "spawn-failed": ("org.freedesktop.DBus.Error.Spawn.ChildExited",
                     "Process org.freedesktop.PolicyKit1 exited with status 1"),
    "timed-out": ("org.freedesktop.DBus.Error.TimedOut",
                  "Activation of org.freedesktop.PolicyKit1 timed out"),
    "no-reply": ("org.freedesktop.DBus.Error.NoReply", "Did not receive a reply"),
}

# A python-dbusmock template: a polkitd that records what it is asked.
RECORDER_TEMPLATE = r'''
"""polkitd that records every CheckAuthorization (for smolvm's tests)."""
import json
import dbus
from dbusmock import MOCK_IFACE

BUS_NAME = "org.freedesktop.PolicyKit1"
MAIN_OBJ = "/org/freedesktop/PolicyKit1/Authority"
MAIN_IFACE = "org.freedesktop.PolicyKit1.Authority"
SYSTEM_BUS = True


def load(mock, parameters):
    mock.AddProperties(MAIN_IFACE, dbus.Dictionary({
        "BackendName": "smolvm-test-recorder",
        "BackendVersion": "0",
        "BackendFeatures": dbus.UInt32(1),
    }, signature="sv"))
    mock.answers = {"*": "no"}
    mock.checks = []


UNREACHABLE = @UNREACHABLE@


def plain(v):
    if isinstance(v, dbus.Boolean):
        return bool(v)
    if isinstance(v, (int, dbus.Byte)):
        return int(v)
    if isinstance(v, str):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    return repr(v)


@dbus.service.method(MAIN_IFACE, in_signature="(sa{sv})sa{ss}us", out_signature="(bba{ss})")
def CheckAuthorization(self, subject, action_id, details, flags, cancellation_id):
    self.checks.append({
        "subject_kind": str(subject[0]),
        "subject": plain(subject[1]),
        "action_id": str(action_id),
        "details": plain(details),
        "flags": int(flags),
        "cancellation_id": str(cancellation_id),
    })
    answer = self.answers.get(str(action_id), self.answers.get("*", "no"))
    empty = dbus.Dictionary({}, signature="ss")
    if answer == "yes":
        return (True, False, empty)
    if answer == "challenge":
        return (False, True, empty)
    if answer == "auth":
        # auth_admin with an agent that always gets the right password:
        # yes if the caller allows interaction, else a challenge
        return (True, False, empty) if int(flags) & 1 else (False, True, empty)
    if answer == "dismissed":
        return (False, False, dbus.Dictionary({"polkit.dismissed": "true"}, signature="ss"))
    if answer == "error":
        raise dbus.exceptions.DBusException("the recorder was told to fail",
                                            name="org.freedesktop.PolicyKit1.Error.Failed")
    if answer in UNREACHABLE:
        # what the bus answers in polkitd's stead when it cannot reach it
        name, message = UNREACHABLE[answer]
        raise dbus.exceptions.DBusException(message, name=name)
    return (False, False, empty)


@dbus.service.method(MAIN_IFACE, in_signature="(sa{sv})ss")
def RegisterAuthenticationAgent(self, subject, locale, object_path):
    pass


@dbus.service.method(MOCK_IFACE, in_signature="a{ss}", out_signature="")
def SetAnswers(self, answers):
    self.answers = {str(k): str(v) for k, v in answers.items()}


@dbus.service.method(MOCK_IFACE, in_signature="", out_signature="s")
def GetChecks(self):
    return json.dumps(self.checks)


@dbus.service.method(MOCK_IFACE, in_signature="", out_signature="")
def ClearChecks(self):
    self.checks = []
'''


# ---- a GDBus client ---------------------------------------------------------

_REMOTE_RE = re.compile(r"GDBus\.Error:([A-Za-z0-9_.]+): (.*)", re.S)


def v(signature, *values):
    """A GVariant tuple of @values."""
    return GLib.Variant("(" + signature + ")", values)


def asv(**kw):
    """a{sv} content: str -> s, bool -> b, int -> u; resume_source is the
    option resume-source."""
    out = {}
    for k, x in kw.items():
        k = "resume-source" if k == "resume_source" else k
        if isinstance(x, bool):
            out[k] = GLib.Variant("b", x)
        elif isinstance(x, int):
            out[k] = GLib.Variant("u", x)
        else:
            out[k] = GLib.Variant("s", x)
    return out


class Client:
    """One connection to the private bus; its unique name is the subject polkit
    is asked about."""

    def __init__(self, address):
        self.conn = Gio.DBusConnection.new_for_address_sync(
            address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT |
            Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)

    @property
    def name(self):
        return self.conn.get_unique_name()

    def call(self, dest, path, iface, method, args=None, interactive=False):
        flags = (Gio.DBusCallFlags.ALLOW_INTERACTIVE_AUTHORIZATION if interactive
                 else Gio.DBusCallFlags.NONE)
        try:
            reply = self.conn.call_sync(dest, path, iface, method, args, None, flags,
                                        TIMEOUT_MS, None)
        except GLib.Error as e:
            m = _REMOTE_RE.match(e.message)
            if m is None:
                raise st.DBusError("(local)", e.message)
            raise st.DBusError(m.group(1), m.group(2).strip())
        return reply.unpack() if reply is not None else None

    def create_vm_fds(self, config, fds):
        """CreateVM with @fds as the message's descriptors (the caller keeps
        its own copies)."""
        fd_list = Gio.UnixFDList.new()
        for fd in fds:
            fd_list.append(fd)
        try:
            reply, _ = self.conn.call_with_unix_fd_list_sync(
                st.BUS_NAME, st.MANAGER_PATH, st.MANAGER_IFACE, "CreateVM", GLib.Variant("(a{sv})", (config,)),
                None, Gio.DBusCallFlags.NONE, TIMEOUT_MS, fd_list, None)
        except GLib.Error as e:
            m = _REMOTE_RE.match(e.message)
            if m is None:
                raise st.DBusError("(local)", e.message)
            raise st.DBusError(m.group(1), m.group(2).strip())
        return reply.unpack()[0]

    def smolvm(self, path, method, args=None, iface=None, interactive=False):
        if iface is None:
            iface = (st.VM_IFACE if "/vm/" in path else
                     st.SNAPSHOT_IFACE if "/snapshot/" in path else st.MANAGER_IFACE)
        return self.call(st.BUS_NAME, path, iface, method, args, interactive)

    def has_owner(self, name):
        return self.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                         "NameHasOwner", v("s", name))[0]

    def close(self):
        self.conn.close_sync(None)


# ---- the mock polkitd -------------------------------------------------------

class PolkitMock:
    """`python3 -m dbusmock --system --template TEMPLATE` on the Env's bus."""

    def __init__(self, env, client, template):
        self.env = env
        self.client = client
        self.template = template
        self.count = 0
        self.proc = None
        self.start()

    def start(self):
        self.count += 1
        self.log_path = os.path.join(self.env.root, "polkit-mock-%d.log" % self.count)
        # the Env's directory in the command line: Env.cleanup() finds it
        # even when the test is killed
        argv = [PYTHON, "-m", "dbusmock", "--system", "--template", self.template,
                "--parameters", json.dumps({"smolvm-test": self.env.root})]
        with open(self.log_path, "w") as log:
            self.proc = self.env.adopt(subprocess.Popen(
                argv, env=self.env.client_env(system=True), stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT))

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("the polkit mock exited with %d:\n%s" % (
                    self.proc.returncode, self.log()))
            return self.client.has_owner(POLKIT_NAME)
        st.wait_for(ready, "the polkit mock to own %s" % POLKIT_NAME)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        st.wait_for(lambda: not self.client.has_owner(POLKIT_NAME),
                    "%s to lose its owner" % POLKIT_NAME)

    def log(self):
        out = []
        for i in range(1, self.count + 1):
            path = os.path.join(self.env.root, "polkit-mock-%d.log" % i)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    out.append(f.read())
        return "\n".join(out)

    def mock(self, method, args=None):
        return self.client.call(POLKIT_NAME, POLKIT_PATH, MOCK_IFACE, method, args)

    # stock template
    def allow(self, *actions):
        self.mock("AllowUnknown", v("b", False))
        self.mock("SetAllowed", v("as", list(actions)))

    def allow_all(self):
        self.mock("AllowUnknown", v("b", True))

    # recorder template
    def answer(self, default="no", **per_action):
        answers = {"*": default}
        answers.update({k.replace("__", "."): x for k, x in per_action.items()})
        self.mock("SetAnswers", v("a{ss}", answers))

    def set_answers(self, answers):
        self.mock("SetAnswers", v("a{ss}", answers))

    def checks(self):
        return json.loads(self.mock("GetChecks")[0])

    def clear(self):
        self.mock("ClearChecks")


# ---- the tests --------------------------------------------------------------

@st.unittest.skipIf(MISSING, MISSING)
class PolkitCase(st.TestCase):
    template = "polkitd"

    def setUp(self):
        super().setUp()
        self.mocks = []

    def system_env(self, template=None):
        """A system-mode smolvmd whose polkit is a mock; returns (env, client, mock)."""
        env = self.new_env(session=False, start=False)
        client = Client(env.bus.address)
        self.addCleanup(client.close)
        if template is None:
            template = self.template
        if template == "recorder":
            template = os.path.join(env.root, "smolvm_polkit_recorder.py")
            with open(template, "w") as f:
                f.write(RECORDER_TEMPLATE.replace("@UNREACHABLE@", repr(UNREACHABLE)))
        mock = PolkitMock(env, client, template)
        self.mocks.append(mock)
        env.daemon.start()
        return env, client, mock

    def daemon_logs(self):
        return super().daemon_logs() + "".join(
            "\n---- polkit mock log ----\n" + m.log() for m in getattr(self, "mocks", []))

    # -- calls

    def create_vm(self, env, client, vm_id, interactive=False):
        cfg = asv(kernel_path=env.kernel, rootfs_path=env.rootfs, mem_size_mib=128,
                  vcpu_count=1, network=False)
        if vm_id:
            cfg["vm_id"] = GLib.Variant("s", vm_id)
        return client.smolvm(st.MANAGER_PATH, "CreateVM", v("a{sv}", cfg),
                             interactive=interactive)[0]

    def start_vm(self, env, client, vm_id):
        client.smolvm(vm_path(vm_id), "Start")
        env.wait_tick(vm_id, 1)

    def assertRefused(self, action, client, path, method, args=None, interactive=False,
                      error="NotAuthorized"):
        try:
            out = client.smolvm(path, method, args, interactive=interactive)
        except st.DBusError as e:
            self.assertEqual(e.name, st.ERROR_PREFIX + error,
                             "%s.%s: %s" % (path, method, e.message))
            self.assertIn(action, e.message, "%s.%s" % (path, method))
            return e
        self.fail("%s.%s (interactive=%s) succeeded: %r" % (path, method, interactive, out))

    def state(self, env, client):
        """Everything smolvmd exports, and every file of its state directory."""
        objects = client.call(st.BUS_NAME, st.MANAGER_PATH, "org.freedesktop.DBus.ObjectManager",
                              "GetManagedObjects")[0]
        return objects, st.tree_fingerprint_strict(env.state_dir)

    def assertStateEqual(self, a, b):
        self.assertEqual(a[0], b[0], "the exported objects changed")
        self.assertEqual(a[1][1], b[1][1], "the state directory changed")
        self.assertEqual(a[1][0], b[1][0])


    def check_reads(self, env, client):
        mgr = st.MANAGER_PATH
        props = "org.freedesktop.DBus.Properties"
        reads = [
            (mgr, st.MANAGER_IFACE, "ListSnapshots", v("s", "")),
            (mgr, st.MANAGER_IFACE, "ListSnapshots", v("s", "run-vm")),
            (mgr, st.MANAGER_IFACE, "ListVMs", None),
            (mgr, st.MANAGER_IFACE, "GetVM", v("s", "run-vm")),
            (mgr, st.MANAGER_IFACE, "GetSnapshot", v("s", "s1")),
            (mgr, props, "Get", v("ss", st.MANAGER_IFACE, "Version")),
            (mgr, props, "GetAll", v("s", st.MANAGER_IFACE)),
            (vm_path("run-vm"), props, "Get", v("ss", st.VM_IFACE, "State")),
            (vm_path("run-vm"), props, "GetAll", v("s", st.VM_IFACE)),
            (snapshot_path("s1"), props, "Get", v("ss", st.SNAPSHOT_IFACE, "VmId")),
            (snapshot_path("s1"), props, "GetAll", v("s", st.SNAPSHOT_IFACE)),
            (mgr, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", None),
            ("/", "org.freedesktop.DBus.Introspectable", "Introspect", None),
            (mgr, "org.freedesktop.DBus.Introspectable", "Introspect", None),
            (vm_path("run-vm"), "org.freedesktop.DBus.Introspectable", "Introspect", None),
            (snapshot_path("s1"), "org.freedesktop.DBus.Introspectable", "Introspect", None),
            (mgr, "org.freedesktop.DBus.Peer", "Ping", None),
        ]
        for path, iface, method, args in reads:
            for interactive in (False, True):
                with self.subTest(read=method, path=path, iface=iface, interactive=interactive):
                    out = client.call(st.BUS_NAME, path, iface, method, args, interactive)
                    self.assertIsNotNone(out)
        self.assertEqual(client.call(st.BUS_NAME, vm_path("run-vm"), props, "Get",
                                     v("ss", st.VM_IFACE, "State"))[0], "running")
        self.assertEqual(client.call(st.BUS_NAME, snapshot_path("s1"), props, "Get",
                                     v("ss", st.SNAPSHOT_IFACE, "VmId"))[0], "run-vm")
        # the CLI's reads, and a caller that is not root
        for args in (["list"], ["snapshot", "list"], ["snapshot", "list", "--vm-id", "run-vm"]):
            r = cli(env, *args, "--json")
            self.assertEqual(r.rc, 0, repr(r))
        self.assertIn(snapshot_path("s1"), env.call("ListSnapshots", st.gv_str(""), as_user=NOBODY)
                      if st.IS_ROOT else env.call("ListSnapshots", st.gv_str("")))


class TestStockTemplate(PolkitCase):
    """python-dbusmock's polkitd template: only which actions are allowed."""

    def test_each_action_alone(self):
        env, client, mock = self.system_env()
        mgr = st.MANAGER_PATH

        # org.smolvm.vm.manage alone: create, start, pause, resume
        mock.allow(MANAGE)
        self.assertEqual(self.create_vm(env, client, "a"), vm_path("a"))
        self.start_vm(env, client, "a")
        client.smolvm(vm_path("a"), "Pause")
        self.assertEqual(env.vm_state("a"), "paused")
        client.smolvm(vm_path("a"), "Resume")
        self.assertEqual(env.vm_state("a"), "running")
        self.assertRefused(CREATE, client, mgr, "CreateSnapshot", v("ssa{sv}", "a", "x", {}))
        self.assertRefused(CREATE, client, vm_path("a"), "CreateSnapshot", v("sa{sv}", "x", {}))
        self.assertRefused(RESTORE, client, mgr, "RestoreSnapshot", v("sa{sv}", "x", {}))
        self.assertRefused(DELETE, client, mgr, "DeleteSnapshot", v("sa{sv}", "x", {}))

        # org.smolvm.snapshot.create alone, through the Manager and the VM
        mock.allow(CREATE)
        self.assertEqual(client.smolvm(mgr, "CreateSnapshot",
                                       v("ssa{sv}", "a", "s1", asv(resume_source=True)))[0],
                         snapshot_path("s1"))
        self.assertEqual(client.smolvm(vm_path("a"), "CreateSnapshot",
                                       v("sa{sv}", "s2", asv(resume_source=True)))[0],
                         snapshot_path("s2"))
        self.assertEqual(env.snapshot_ids(), ["s1", "s2"])
        self.assertEqual(env.vm_state("a"), "running")
        self.assertRefused(MANAGE, client, vm_path("a"), "Pause")
        self.assertRefused(MANAGE, client, mgr, "CreateVM",
                           v("a{sv}", asv(vm_id="b", kernel_path=env.kernel,
                                          rootfs_path=env.rootfs, network=False)))
        self.assertRefused(RESTORE, client, snapshot_path("s1"), "Restore", v("a{sv}", {}))
        self.assertRefused(DELETE, client, snapshot_path("s1"), "Delete", v("a{sv}", {}))

        # org.smolvm.snapshot.restore alone, through the Manager and the snapshot
        mock.allow(RESTORE)
        self.assertEqual(client.smolvm(mgr, "RestoreSnapshot", v("sa{sv}", "s1", {}))[0],
                         vm_path("a"))
        self.assertEqual(env.vm_prop("a", "RestoredFrom"), "s1")
        self.assertEqual(client.smolvm(snapshot_path("s2"), "Restore", v("a{sv}", {}))[0],
                         vm_path("a"))
        self.assertEqual(env.vm_prop("a", "RestoredFrom"), "s2")
        self.assertEqual(env.vm_state("a"), "paused")
        self.assertRefused(MANAGE, client, vm_path("a"), "Resume")
        self.assertRefused(CREATE, client, vm_path("a"), "CreateSnapshot", v("sa{sv}", "x", {}))
        self.assertRefused(DELETE, client, mgr, "DeleteSnapshot", v("sa{sv}", "s1", {}))

        # org.smolvm.snapshot.delete alone, through the Manager
        mock.allow(DELETE)
        client.smolvm(mgr, "DeleteSnapshot", v("sa{sv}", "s1", {}))
        self.assertEqual(env.snapshot_ids(), ["s2"])
        self.assertRefused(MANAGE, client, vm_path("a"), "Stop", v("a{sv}", {}))
        self.assertRefused(RESTORE, client, mgr, "RestoreSnapshot",
                           v("sa{sv}", "s2", asv(force=True)))

        # org.smolvm.vm.manage alone: resume, stop
        mock.allow(MANAGE)
        client.smolvm(vm_path("a"), "Resume")
        client.smolvm(vm_path("a"), "Stop", v("a{sv}", {}))
        self.assertEqual(env.vm_state("a"), "stopped")
        self.assertRefused(DELETE, client, snapshot_path("s2"), "Delete", v("a{sv}", {}))

        # org.smolvm.snapshot.delete alone, through the snapshot
        mock.allow(DELETE)
        client.smolvm(snapshot_path("s2"), "Delete", v("a{sv}", {}))
        self.assertEqual(env.snapshot_ids(), [])
        self.assertRefused(MANAGE, client, vm_path("a"), "Delete", v("a{sv}", {}))

        # org.smolvm.vm.manage alone: delete, and create with a generated id
        mock.allow(MANAGE)
        client.smolvm(vm_path("a"), "Delete", v("a{sv}", {}))
        path = self.create_vm(env, client, None)
        (gen,) = env.list_vms()
        self.assertEqual(path, vm_path(gen))
        client.smolvm(path, "Delete", v("a{sv}", {}))
        self.assertEqual(env.list_vms(), {})
        self.assertNotIn("polkit is not available", env.daemon_log())
        self.assertNotIn("Cannot reach polkit", env.daemon_log())

    def test_nothing_allowed(self):
        env, client, mock = self.system_env()
        mgr = st.MANAGER_PATH
        mock.allow_all()
        self.create_vm(env, client, "run-vm")
        self.start_vm(env, client, "run-vm")
        self.create_vm(env, client, "paused-vm")
        self.start_vm(env, client, "paused-vm")
        client.smolvm(vm_path("paused-vm"), "Pause")
        self.create_vm(env, client, "new-vm")
        client.smolvm(mgr, "CreateSnapshot", v("ssa{sv}", "run-vm", "s1", asv(resume_source=True)))
        states = {vm: env.vm_state(vm) for vm in ("run-vm", "paused-vm", "new-vm")}
        self.assertEqual(states, {"run-vm": "running", "paused-vm": "paused", "new-vm": "created"})
        emulators = sorted(env.emulator_pids())
        self.assertEqual(len(emulators), 2)

        mock.allow()  # nothing
        before = self.state(env, client)
        time.sleep(0.3)
        self.assertStateEqual(self.state(env, client), before)  # a control: it is stable

        cfg = asv(vm_id="evil", kernel_path=env.kernel, rootfs_path=env.rootfs, network=False)
        cfg_noid = asv(kernel_path=env.kernel, rootfs_path=env.rootfs, network=False)
        # an unauthorized caller must not learn which host paths exist
        cfg_probe = asv(kernel_path="/root/does-not-exist", rootfs_path=env.rootfs,
                        network=False)
        refused = [
            (MANAGE, mgr, "CreateVM", v("a{sv}", cfg)),
            (MANAGE, mgr, "CreateVM", v("a{sv}", cfg_noid)),
            (MANAGE, mgr, "CreateVM", v("a{sv}", cfg_probe)),
            (MANAGE, vm_path("new-vm"), "Start", None),
            (MANAGE, vm_path("run-vm"), "Pause", None),
            (MANAGE, vm_path("paused-vm"), "Resume", None),
            (MANAGE, vm_path("run-vm"), "Stop", v("a{sv}", {})),
            (MANAGE, vm_path("run-vm"), "Delete", v("a{sv}", asv(force=True))),
            (MANAGE, vm_path("new-vm"), "Delete", v("a{sv}", {})),
            (CREATE, mgr, "CreateSnapshot", v("ssa{sv}", "run-vm", "s2", {})),
            (CREATE, mgr, "CreateSnapshot", v("ssa{sv}", "run-vm", "", {})),
            (CREATE, mgr, "CreateSnapshot", v("ssa{sv}", "paused-vm", "s3", {})),
            (CREATE, vm_path("run-vm"), "CreateSnapshot", v("sa{sv}", "s4", {})),
            (RESTORE, mgr, "RestoreSnapshot", v("sa{sv}", "s1", asv(force=True))),
            (RESTORE, mgr, "RestoreSnapshot", v("sa{sv}", "s1", {})),
            (RESTORE, snapshot_path("s1"), "Restore", v("a{sv}", asv(force=True))),
            (DELETE, mgr, "DeleteSnapshot", v("sa{sv}", "s1", {})),
            (DELETE, snapshot_path("s1"), "Delete", v("a{sv}", {})),
            (CLONE, mgr, "CloneSnapshot", v("sa{sv}", "s1", {})),
            (CLONE, snapshot_path("s1"), "Clone", v("a{sv}", asv(resume=True))),
        ]
        for action, path, method, args in refused:
            for interactive in (False, True):
                with self.subTest(method=method, path=path, interactive=interactive):
                    self.assertRefused(action, client, path, method, args, interactive)
        # the same through gdbus call and the CLI
        err = self.assertDBusError("NotAuthorized", env.gdbus, vm_path("run-vm"), "Pause")
        self.assertIn(MANAGE, err.message)
        err = self.assertDBusError("NotAuthorized", env.create_snapshot, "run-vm", "s5")
        self.assertIn(CREATE, err.message)
        for args, action in ((["snapshot", "create", "run-vm", "--snapshot-id", "s6"], CREATE),
                             (["snapshot", "restore", "s1", "--force"], RESTORE),
                             (["snapshot", "delete", "s1"], DELETE),
                             (["stop", "run-vm"], MANAGE),
                             (["delete", "new-vm"], MANAGE)):
            for ask in ([], ["--no-ask-password"]):
                with self.subTest(cli=args, ask=ask):
                    r = cli(env, *ask, *args, "--json")
                    self.assertEqual(r.rc, 1, repr(r))
                    error = r.json()["error"]
                    self.assertEqual(error["dbus_name"], st.ERROR_PREFIX + "NotAuthorized")
                    self.assertIn(action, error["message"])

        self.assertStateEqual(self.state(env, client), before)
        self.assertEqual({vm: env.vm_state(vm) for vm in states}, states)
        self.assertEqual(sorted(env.emulator_pids()), emulators)
        self.assertEqual(env.snapshot_ids(), ["s1"])
        self.assertNotIn("polkit is not available", env.daemon_log())
        self.assertNotIn("Cannot reach polkit", env.daemon_log())

        # reads need nothing
        self.check_reads(env, client)
        self.assertStateEqual(self.state(env, client), before)

        # and it was polkit that said no
        mock.allow(DELETE)
        client.smolvm(mgr, "DeleteSnapshot", v("sa{sv}", "s1", {}))
        self.assertEqual(env.snapshot_ids(), [])

    def test_authorization_does_not_block(self):
        """While polkit sits on one check, smolvmd serves everything else."""
        env, client, mock = self.system_env()
        mock.allow_all()
        for vm in ("h1", "h2"):
            self.create_vm(env, client, vm)
            self.start_vm(env, client, vm)
        mock.mock("SimulateHangActions", v("as", [CREATE]))
        pending = env.gdbus_background(st.MANAGER_PATH, "CreateSnapshot", st.gv_str("h1"),
                                       st.gv_str("hs"), st.gv_dict())
        try:
            st.wait_for(lambda: mock.mock("HaveHangingCalls")[0], "a hanging CheckAuthorization")
            # reads, and a call with another action, while the first waits
            self.assertEqual(sorted(env.list_vms()), ["h1", "h2"])
            self.assertDBusError("NotFound", env.call, "GetSnapshot", st.gv_str("hs"))
            client.smolvm(vm_path("h2"), "Pause")
            self.assertEqual(env.vm_state("h2"), "paused")
            self.assertEqual(env.vm_state("h1"), "running")
            self.assertFalse(os.path.exists(os.path.join(env.state_dir, "snapshots", "hs")))
            self.assertIsNone(pending.poll())
            mock.mock("ReleaseHangingCalls")
            out, err = pending.communicate(timeout=st.DEADLINE)
        finally:
            if pending.poll() is None:
                pending.kill()
                pending.communicate()
        self.assertEqual(st.gdbus_result(pending.returncode, out, err),
                         "(objectpath '%s',)" % snapshot_path("hs"))
        self.assertEqual(env.snapshot_ids(), ["hs"])

    def test_vm_create_snapshot_checks_the_vm_after_authorization(self):
        """VM.CreateSnapshot on an object whose VM is deleted and re-created
        under the same id while polkit decides: the new VM is not snapshotted."""
        env, client, mock = self.system_env()
        mock.allow_all()
        self.create_vm(env, client, "idv")
        self.start_vm(env, client, "idv")
        mock.mock("SimulateHangActions", v("as", [CREATE]))
        pending = env.gdbus_background(vm_path("idv"), "CreateSnapshot", st.gv_str("ids"),
                                       st.gv_dict())
        try:
            st.wait_for(lambda: mock.mock("HaveHangingCalls")[0], "a hanging CheckAuthorization")
            env.vm("idv", "Delete", "{'force': <true>}")
            self.create_vm(env, client, "idv")
            self.start_vm(env, client, "idv")
            mock.mock("ReleaseHangingCalls")
            out, err = pending.communicate(timeout=st.DEADLINE)
        finally:
            if pending.poll() is None:
                pending.kill()
                pending.communicate()
        with self.assertRaises(st.DBusError) as caught:
            st.gdbus_result(pending.returncode, out, err)
        self.assertEqual(caught.exception.name, st.ERROR_PREFIX + "NotFound")
        self.assertEqual(env.snapshot_ids(), [])
        self.assertEqual(env.vm_state("idv"), "running")


def make_big_rootfs(path):
    """@BIG bytes of data that is not all the same (no dedup, no holes); as in
    test-jobs.py."""
    block = bytearray(os.urandom(4 * MIB))
    with open(path, "wb") as f:
        for i in range(BIG // len(block)):
            block[:8] = i.to_bytes(8, "little")
            f.write(block)


def cli(env, *args):
    """The smolvm CLI on the system bus (no --session)."""
    argv = [st.CLI] + list(args)
    proc = subprocess.run(argv, env=env.client_env(system=True), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=st.DEADLINE * 2)
    return st.CliResult(argv, proc)


class TestRecorder(PolkitCase):
    """A recording polkitd: the subject, details and flags smolvmd sends."""

    template = "recorder"

    def one_check(self, mock):
        checks = mock.checks()
        mock.clear()
        self.assertEqual(len(checks), 1, "one CheckAuthorization per call: %r" % (checks,))
        return checks[0]

    def test_subject_details_and_flags(self):
        env, client, mock = self.system_env()
        mock.answer("yes")
        mgr = st.MANAGER_PATH
        me = client.name
        gen_vm = {}
        gen_snap = {}

        def create_gen_vm(interactive):
            path = self.create_vm(env, client, None, interactive)
            gen_vm["id"] = [vm for vm in env.list_vms() if vm != "d-vm"][0]
            self.assertEqual(path, vm_path(gen_vm["id"]))
            return path

        def create_gen_snap(interactive):
            path = client.smolvm(mgr, "CreateSnapshot", v("ssa{sv}", "d-vm", "",
                                                          asv(resume_source=True)),
                                 interactive=interactive)[0]
            gen_snap["id"] = [s for s in env.snapshot_ids() if s not in ("d-s1", "d-s2")][0]
            self.assertEqual(path, snapshot_path(gen_snap["id"]))
            return path

        def vmc(method, args=None, vm="d-vm"):
            return lambda i: client.smolvm(vm_path(vm), method, args, interactive=i)

        def mgrc(method, args):
            return lambda i: client.smolvm(mgr, method, args, interactive=i)

        def snapc(snap, method, args):
            return lambda i: client.smolvm(snapshot_path(snap), method, args, interactive=i)

        steps = [
            ("CreateVM d-vm", lambda i: self.create_vm(env, client, "d-vm", i),
             MANAGE, {"vm_id": "d-vm", "verb": "create"}),
            ("CreateVM (generated id)", create_gen_vm, MANAGE, {"verb": "create"}),
            ("VM.Start", vmc("Start"), MANAGE, {"vm_id": "d-vm", "verb": "start"}),
            ("VM.Pause", vmc("Pause"), MANAGE, {"vm_id": "d-vm", "verb": "pause"}),
            ("VM.Resume", vmc("Resume"), MANAGE, {"vm_id": "d-vm", "verb": "resume"}),
            ("Manager.CreateSnapshot",
             mgrc("CreateSnapshot", v("ssa{sv}", "d-vm", "d-s1", asv(resume_source=True))),
             CREATE, {"vm_id": "d-vm", "snapshot_id": "d-s1", "verb": "create"}),
            ("VM.CreateSnapshot", vmc("CreateSnapshot", v("sa{sv}", "d-s2",
                                                          asv(resume_source=True))),
             CREATE, {"vm_id": "d-vm", "snapshot_id": "d-s2", "verb": "create"}),
            ("Manager.CreateSnapshot (generated id)", create_gen_snap,
             CREATE, {"vm_id": "d-vm", "verb": "create"}),
            ("Manager.RestoreSnapshot", mgrc("RestoreSnapshot", v("sa{sv}", "d-s1", {})),
             RESTORE, {"vm_id": "d-vm", "snapshot_id": "d-s1", "verb": "restore"}),
            ("Snapshot.Restore", snapc("d-s2", "Restore", v("a{sv}", {})),
             RESTORE, {"vm_id": "d-vm", "snapshot_id": "d-s2", "verb": "restore"}),
            ("Manager.DeleteSnapshot", mgrc("DeleteSnapshot", v("sa{sv}", "d-s1", {})),
             DELETE, {"vm_id": "d-vm", "snapshot_id": "d-s1", "verb": "delete"}),
            ("VM.Stop", vmc("Stop", v("a{sv}", {})), MANAGE, {"vm_id": "d-vm", "verb": "stop"}),
            ("Snapshot.Delete", snapc("d-s2", "Delete", v("a{sv}", {})),
             DELETE, {"vm_id": "d-vm", "snapshot_id": "d-s2", "verb": "delete"}),
            ("Snapshot.Delete (generated id)",
             lambda i: client.smolvm(snapshot_path(gen_snap["id"]), "Delete", v("a{sv}", {}),
                                     interactive=i),
             DELETE, lambda: {"vm_id": "d-vm", "snapshot_id": gen_snap["id"], "verb": "delete"}),
            ("VM.Delete", vmc("Delete", v("a{sv}", {})), MANAGE,
             {"vm_id": "d-vm", "verb": "delete"}),
            ("VM.Delete (generated id)",
             lambda i: client.smolvm(vm_path(gen_vm["id"]), "Delete", v("a{sv}", {}),
                                     interactive=i),
             MANAGE, lambda: {"vm_id": gen_vm["id"], "verb": "delete"}),
        ]
        for n, (what, call, action, details) in enumerate(steps):
            interactive = n % 2 == 1
            mock.clear()
            call(interactive)
            if what == "VM.Start":
                env.wait_tick("d-vm", 1)
            with self.subTest(what, interactive=interactive):
                check = self.one_check(mock)
                self.assertEqual(check["action_id"], action)
                self.assertEqual(check["subject_kind"], "system-bus-name")
                self.assertEqual(check["subject"], {"name": me})
                self.assertEqual(check["details"], details() if callable(details) else details)
                self.assertEqual(check["flags"], INTERACTIVE if interactive else 0)
                self.assertEqual(check["cancellation_id"], "")
        self.assertEqual(env.list_vms(), {})
        self.assertEqual(env.snapshot_ids(), [])

    def test_export_and_import(self):
        """Export needs org.smolvm.snapshot.push, ImportSnapshot
        org.smolvm.snapshot.pull, with the snapshot (and VM) as details; a
        refusal leaves no file and no snapshot."""
        env, client, mock = self.system_env()
        mock.answer("yes")
        self.create_vm(env, client, "x-vm")
        self.start_vm(env, client, "x-vm")
        client.smolvm(st.MANAGER_PATH, "CreateSnapshot",
                      v("ssa{sv}", "x-vm", "x-s", asv(resume_source=True)))
        tmp = tempfile.mkdtemp(prefix="smolvm-polkit-")
        self.addCleanup(shutil.rmtree, tmp, True)
        archive = os.path.join(tmp, "x.tar")

        def cli_sys(*args):
            return subprocess.run([st.CLI, "--no-ask-password"] + list(args),
                                  env=env.client_env(system=True), stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=st.DEADLINE)

        mock.answer("no", **{PUSH: "yes"})
        mock.clear()
        r = cli_sys("snapshot", "export", "x-s", archive)
        self.assertEqual(r.returncode, 0, r.stderr)
        check = self.one_check(mock)
        self.assertEqual(check["action_id"], PUSH)
        self.assertEqual(check["details"],
                         {"vm_id": "x-vm", "snapshot_id": "x-s", "verb": "export"})

        mock.answer("no", **{PULL: "yes"})
        r = cli_sys("snapshot", "export", "x-s", archive + ".2")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn(PUSH, r.stderr)
        self.assertFalse(os.path.exists(archive + ".2"))
        mock.clear()
        r = cli_sys("snapshot", "import", archive, "--snapshot-id", "x-copy")
        self.assertEqual(r.returncode, 0, r.stderr)
        check = self.one_check(mock)
        self.assertEqual(check["action_id"], PULL)
        self.assertEqual(check["details"], {"snapshot_id": "x-copy", "verb": "import"})
        self.assertIn("x-copy", env.snapshot_ids())

        mock.answer("no", **{PUSH: "yes"})
        r = cli_sys("snapshot", "import", archive, "--snapshot-id", "x-refused")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn(PULL, r.stderr)
        self.assertNotIn("x-refused", env.snapshot_ids())
        self.assertEqual([e for e in os.listdir(os.path.join(env.state_dir, "snapshots"))
                          if e.startswith(".")], [])

    def test_push_and_pull(self):
        """Push needs org.smolvm.snapshot.push with the snapshot and its VM
        as details, PullSnapshot org.smolvm.snapshot.pull with the
        snapshot id it asks for; a refusal reaches no registry (none
        listens here: an allowed call fails later, RegistryUnavailable)."""
        env, client, mock = self.system_env()
        mock.answer("yes")
        self.create_vm(env, client, "p-vm")
        self.start_vm(env, client, "p-vm")
        client.smolvm(st.MANAGER_PATH, "CreateSnapshot",
                      v("ssa{sv}", "p-vm", "p-s", asv(resume_source=True)))
        ref = "127.0.0.1:9/smolvm/p:v1"  # the discard port: nobody answers

        def cli_sys(*args):
            return subprocess.run([st.CLI, "--no-ask-password", "--json"] + list(args),
                                  env=env.client_env(system=True), stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=st.DEADLINE)

        for answer, error in (("no", "NotAuthorized"), ("yes", "RegistryUnavailable")):
            with self.subTest(answer=answer):
                mock.answer("no", **{PUSH: answer})
                mock.clear()
                r = cli_sys("snapshot", "push", "p-s", ref)
                self.assertEqual(json.loads(r.stdout)["error"]["name"], error, r.stdout)
                check = self.one_check(mock)
                self.assertEqual(check["action_id"], PUSH)
                self.assertEqual(check["details"],
                                 {"vm_id": "p-vm", "snapshot_id": "p-s", "verb": "push"})

                mock.answer("no", **{PULL: answer})
                mock.clear()
                r = cli_sys("snapshot", "pull", ref, "--snapshot-id", "p-copy")
                self.assertEqual(json.loads(r.stdout)["error"]["name"], error, r.stdout)
                check = self.one_check(mock)
                self.assertEqual(check["action_id"], PULL)
                self.assertEqual(check["details"], {"snapshot_id": "p-copy", "verb": "pull"})
        self.assertNotIn("p-copy", env.snapshot_ids())

    def test_interactive_flag_by_client(self):
        """`auth` answers yes only when the caller allows interaction."""
        env, client, mock = self.system_env()
        mock.answer("yes")
        self.create_vm(env, client, "f-vm")
        self.start_vm(env, client, "f-vm")
        mock.answer("auth")
        mock.clear()

        def busctl(allow, method):
            return subprocess.run(
                ["busctl", "--address=" + env.bus.address,
                 "--allow-interactive-authorization=" + allow, "call", st.BUS_NAME,
                 vm_path("f-vm"), st.VM_IFACE, method], capture_output=True, text=True,
                timeout=st.DEADLINE * 2)

        # busctl --allow-interactive-authorization=no: challenge -> NotAuthorized
        r = busctl("no", "Pause")
        self.assertNotEqual(r.returncode, 0, r)
        self.assertIn(MANAGE, r.stderr)
        self.assertIn("authentication is required", r.stderr)
        self.assertEqual(self.one_check(mock)["flags"], 0)
        self.assertEqual(env.vm_state("f-vm"), "running")
        # busctl --allow-interactive-authorization=yes
        r = busctl("yes", "Pause")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(self.one_check(mock)["flags"], INTERACTIVE)
        self.assertEqual(env.vm_state("f-vm"), "paused")
        # gdbus call never sets the flag
        err = self.assertDBusError("NotAuthorized", env.gdbus, vm_path("f-vm"), "Resume")
        self.assertIn("authentication is required", err.message)
        self.assertEqual(self.one_check(mock)["flags"], 0)
        self.assertEqual(env.vm_state("f-vm"), "paused")
        # GDBus, without and with the flag
        err = self.assertRefused(MANAGE, client, vm_path("f-vm"), "Resume", interactive=False)
        self.assertIn("authentication is required", err.message)
        self.assertEqual(self.one_check(mock)["flags"], 0)
        client.smolvm(vm_path("f-vm"), "Resume", interactive=True)
        self.assertEqual(self.one_check(mock)["flags"], INTERACTIVE)
        self.assertEqual(env.vm_state("f-vm"), "running")
        # the CLI: --no-ask-password clears the flag; without it the flag is set
        # (stdin is not a terminal here, so it starts no pkttyagent)
        r = cli(env, "--no-ask-password", "pause", "f-vm", "--json")
        self.assertEqual(r.rc, 1, repr(r))
        self.assertEqual(r.json()["error"]["dbus_name"], st.ERROR_PREFIX + "NotAuthorized")
        self.assertIn("authentication is required", r.json()["error"]["message"])
        self.assertEqual(self.one_check(mock)["flags"], 0)
        self.assertEqual(env.vm_state("f-vm"), "running")
        r = cli(env, "pause", "f-vm", "--json")
        self.assertEqual(r.rc, 0, repr(r))
        check = self.one_check(mock)
        self.assertEqual(check["flags"], INTERACTIVE)
        self.assertEqual(check["details"], {"vm_id": "f-vm", "verb": "pause"})
        self.assertEqual(env.vm_state("f-vm"), "paused")
        r = cli(env, "--no-ask-password", "snapshot", "create", "f-vm", "--snapshot-id", "f-s",
                "--json")
        self.assertEqual(r.rc, 1, repr(r))
        check = self.one_check(mock)
        self.assertEqual((check["action_id"], check["flags"]), (CREATE, 0))
        r = cli(env, "snapshot", "create", "f-vm", "--snapshot-id", "f-s", "--json")
        self.assertEqual(r.rc, 0, repr(r))
        check = self.one_check(mock)
        self.assertEqual((check["action_id"], check["flags"]), (CREATE, INTERACTIVE))
        self.assertEqual(check["details"], {"vm_id": "f-vm", "snapshot_id": "f-s",
                                            "verb": "create"})
        self.assertEqual(env.snapshot_ids(), ["f-s"])

    @st.unittest.skipUnless(st.IS_ROOT, "needs root (a second uid)")
    def test_job_cancel_by_starter_or_polkit(self):
        """Job.Cancel: the uid that started the job may cancel it; anyone else
        needs the operation's polkit action (verb "cancel")."""
        env, client, mock = self.system_env()
        mock.answer("yes")
        big = os.path.join(env.root, "big.ext4")
        make_big_rootfs(big)
        cfg = asv(vm_id="j-vm", kernel_path=env.kernel, rootfs_path=big, mem_size_mib=128,
                  vcpu_count=1, network=False)
        client.smolvm(st.MANAGER_PATH, "CreateVM", v("a{sv}", cfg))
        self.start_vm(env, client, "j-vm")

        def cancel_as(uid, job):
            """Job.Cancel from another process as @uid; None or the error."""
            try:
                env.gdbus(job, "Cancel", "@a{sv} {}", iface=JOB_IFACE, as_user=uid)
                return None
            except st.DBusError as e:
                return e

        def cancel_as_root(job):
            """Job.Cancel from root's other connection (not the starter's)."""
            try:
                client.call(st.BUS_NAME, job, JOB_IFACE, "Cancel", v("a{sv}", {}))
                return None
            except st.DBusError as e:
                return e

        def run(snapshot_id, answer, cancel):
            """CreateSnapshot as root; once its Job copies the disk, polkit is
            told to answer @answer and cancel(job) runs. Returns (the watch,
            the job, what cancel returned, the checks polkit saw meanwhile,
            the reply)."""
            w = JobWatch(env)
            self.addCleanup(w.close)
            seen = []

            def on_props(path, changed):
                if not seen and changed.get("Phase") == "copying-disk":
                    mock.clear()
                    mock.answer(answer)
                    seen.append(path)
                    seen.append(cancel(path))
                    seen.append(mock.checks())
                    mock.answer("yes")
            w.on_props = on_props
            w.call(st.MANAGER_PATH, st.MANAGER_IFACE, "CreateSnapshot",
                   v("ssa{sv}", "j-vm", snapshot_id, asv(resume_source=True)))
            reply = w.wait_reply()
            self.assertEqual(len(seen), 3, "the job never reached copying-disk: %r" % (reply,))
            job, outcome, checks = seen
            self.assertEqual(w.only_job(), job, (outcome, checks, reply))
            self.assertEqual(w.props[job]["Operation"], "snapshot-create")
            self.assertEqual(w.props[job]["StartedByUid"], 0)
            self.assertIn(job, w.removed, (outcome, checks, reply))
            return w, job, outcome, checks, reply

        def assertCancelCheck(checks):
            self.assertEqual(len(checks), 1, "one CheckAuthorization for Cancel: %r" % (checks,))
            self.assertEqual(checks[0]["action_id"], CREATE)
            self.assertEqual(checks[0]["details"].get("verb"), "cancel")
            self.assertEqual(checks[0]["subject_kind"], "system-bus-name")

        def assertCancelled(w, job, reply):
            self.assertEqual(reply[0], "error", reply)
            self.assertEqual(reply[1], st.ERROR_PREFIX + "Cancelled", reply)
            self.assertEqual(w.completed.get(job), (False, reply[2]))
            # it stopped part-way, and nothing of it is left
            self.assertLess(w.props[job]["BytesDone"], w.props[job]["BytesTotal"])
            self.assertEqual(env.snapshot_ids(), ["ja"])
            self.assertEqual(sorted(os.listdir(os.path.join(env.state_dir, "snapshots"))), ["ja"])
            self.assertEqual(env.vm_state("j-vm"), "running")

        # (a) another uid, polkit says no: refused, asked with verb=cancel;
        # the snapshot is made as if nothing had happened
        w, job, outcome, checks, reply = run("ja", "no", lambda job: cancel_as(NOBODY, job))
        self.assertIsInstance(outcome, st.DBusError, "Cancel by uid %d succeeded" % NOBODY)
        self.assertEqual(outcome.name, st.ERROR_PREFIX + "NotAuthorized", outcome.message)
        self.assertIn(CREATE, outcome.message)
        assertCancelCheck(checks)
        self.assertEqual(reply, ("ok", (snapshot_path("ja"),)))
        self.assertEqual(w.completed.get(job), (True, ""))
        self.assertEqual(env.snapshot_ids(), ["ja"])
        self.assertEqual(env.vm_state("j-vm"), "running")

        # (b) root, the starter, from another connection, with polkit saying
        # no: cancelled without asking polkit
        w, job, outcome, checks, reply = run("jb", "no", cancel_as_root)
        self.assertIsNone(outcome)
        self.assertEqual(checks, [], "the starter's Cancel asked polkit")
        assertCancelled(w, job, reply)

        # (c) another uid, polkit says yes: cancelled
        w, job, outcome, checks, reply = run("jc", "yes", lambda job: cancel_as(NOBODY, job))
        self.assertIsNone(outcome, "Cancel by uid %d with polkit's yes" % NOBODY)
        assertCancelCheck(checks)
        assertCancelled(w, job, reply)

    def test_dismissed(self):
        env, client, mock = self.system_env()
        mock.answer("yes")
        self.create_vm(env, client, "x-vm")
        self.start_vm(env, client, "x-vm")
        client.smolvm(st.MANAGER_PATH, "CreateSnapshot",
                      v("ssa{sv}", "x-vm", "x-s1", asv(resume_source=True)))
        mock.answer("dismissed")
        before = self.state(env, client)
        calls = [
            (CREATE, st.MANAGER_PATH, "CreateSnapshot", v("ssa{sv}", "x-vm", "x-s2", {})),
            (RESTORE, st.MANAGER_PATH, "RestoreSnapshot", v("sa{sv}", "x-s1", asv(force=True))),
            (DELETE, snapshot_path("x-s1"), "Delete", v("a{sv}", {})),
            (MANAGE, vm_path("x-vm"), "Stop", v("a{sv}", {})),
        ]
        for action, path, method, args in calls:
            with self.subTest(method=method):
                err = self.assertRefused(action, client, path, method, args, interactive=True,
                                         error="AuthorizationDismissed")
                self.assertIn("dismissed", err.message)
        r = cli(env, "snapshot", "delete", "x-s1", "--json")
        self.assertEqual(r.rc, 1, repr(r))
        self.assertEqual(r.json()["error"]["dbus_name"],
                         st.ERROR_PREFIX + "AuthorizationDismissed")
        self.assertStateEqual(self.state(env, client), before)
        self.assertEqual(env.vm_state("x-vm"), "running")

    def test_challenge_and_polkit_failure(self):
        env, client, mock = self.system_env()
        mock.answer("yes")
        self.create_vm(env, client, "c-vm")
        before = self.state(env, client)
        mock.answer("challenge")
        for interactive in (False, True):
            err = self.assertRefused(MANAGE, client, vm_path("c-vm"), "Start",
                                     interactive=interactive)
            self.assertIn("authentication is required", err.message)
        # a challenge although the caller allowed interaction: polkitd found
        # no agent to ask; telling the caller to allow interaction is no help
        err = self.assertRefused(MANAGE, client, vm_path("c-vm"), "Start", interactive=True)
        self.assertIn("no polkit authentication agent could ask for a password", err.message)
        self.assertNotIn("call with interactive authorization allowed", err.message)
        err = self.assertRefused(MANAGE, client, vm_path("c-vm"), "Start", interactive=False)
        self.assertNotIn("no polkit authentication agent", err.message)
        self.assertIn("call with interactive authorization allowed", err.message)
        mock.answer("error")
        err = self.assertRefused(MANAGE, client, vm_path("c-vm"), "Start")
        self.assertIn("polkit failed", err.message)
        self.assertIn("the recorder was told to fail", err.message)
        mock.answer("no")
        err = self.assertRefused(MANAGE, client, vm_path("c-vm"), "Start")
        self.assertNotIn("authentication is required", err.message)
        self.assertStateEqual(self.state(env, client), before)
        self.assertEqual(env.vm_state("c-vm"), "created")

    def test_reads_ask_nothing(self):
        env, client, mock = self.system_env()
        mock.answer("yes")
        self.create_vm(env, client, "run-vm")
        self.start_vm(env, client, "run-vm")
        client.smolvm(st.MANAGER_PATH, "CreateSnapshot",
                      v("ssa{sv}", "run-vm", "s1", asv(resume_source=True)))
        mock.answer("no")
        mock.clear()
        before = self.state(env, client)
        self.check_reads(env, client)
        self.assertEqual(mock.checks(), [])
        self.assertStateEqual(self.state(env, client), before)

    @st.unittest.skipUnless(st.IS_ROOT, "needs root (a second uid)")
    def test_console_log_through_the_daemon(self):
        """OpenConsoleLog: smolvmd opens the console log for a caller that
        holds org.smolvm.vm.console, whatever the caller may read itself."""
        env, client, mock = self.system_env()
        mock.answer("yes")
        self.create_vm(env, client, "con-vm")
        self.start_vm(env, client, "con-vm")
        log = env.console_path("con-vm")
        # the file itself is out of the caller's reach
        os.chmod(log, 0o600)
        argv = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
                st.CLI, "--no-ask-password", "console-log", "con-vm"]

        def as_nobody():
            return subprocess.run(argv, env=env.client_env(system=True), stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=st.DEADLINE)

        mock.answer("no", **{"org.smolvm.vm.console": "yes"})
        mock.clear()
        r = as_nobody()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("tick 1", r.stdout)
        self.assertTrue(env.console("con-vm").startswith(r.stdout[:200]))
        checks = mock.checks()
        self.assertEqual([c["action_id"] for c in checks], ["org.smolvm.vm.console"])
        self.assertEqual(checks[0]["details"].get("vm_id"), "con-vm")

        mock.answer("no")
        r = as_nobody()
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("org.smolvm.vm.console", r.stderr)
        self.assertNotIn("tick", r.stdout)

    @st.unittest.skipUnless(st.IS_ROOT, "needs root (a second uid)")
    def test_polkit_goes_away_and_comes_back(self):
        env, client, mock = self.system_env()
        mock.answer("yes")
        self.create_vm(env, client, "g-vm")
        mock.answer("no")
        self.assertRefused(MANAGE, client, vm_path("g-vm"), "Start")
        # polkit gone: root (this test) only
        mock.stop()
        client.smolvm(vm_path("g-vm"), "Start")
        env.wait_tick("g-vm", 1)
        err = self.assertDBusError("NotAuthorized", env.gdbus, vm_path("g-vm"), "Pause",
                                   as_user=NOBODY)
        self.assertIn(MANAGE, err.message)
        self.assertIn("polkit is not available", err.message)
        self.assertEqual(env.vm_state("g-vm"), "running")
        # polkit back: it decides again, for root too
        mock.start()
        mock.answer("no")
        self.assertRefused(MANAGE, client, vm_path("g-vm"), "Pause")
        self.assertEqual(len(mock.checks()), 1)
        mock.answer("yes")
        client.smolvm(vm_path("g-vm"), "Pause")
        self.assertEqual(env.vm_state("g-vm"), "paused")


# A "system" bus on which org.freedesktop.PolicyKit1 is activatable, but its
# activation fails (the program exits at once), like a broken polkit install.
FAILING_ACTIVATION_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <include>%(base)s</include>
  <servicedir>%(services)s</servicedir>
</busconfig>
"""
FAILING_ACTIVATION_SERVICE = """[D-BUS Service]
Name=org.freedesktop.PolicyKit1
Exec=/bin/false
"""


class FailingActivationBus(st.Bus):
    def __init__(self, directory):
        services = os.path.join(directory, "services")
        os.makedirs(services, exist_ok=True)
        with open(os.path.join(services, POLKIT_NAME + ".service"), "w") as f:
            f.write(FAILING_ACTIVATION_SERVICE)
        config = os.path.join(directory, "failing-activation-bus.conf")
        with open(config, "w") as f:
            f.write(FAILING_ACTIVATION_CONF % {
                "base": os.path.join(st.DATA_DIR, "system-bus.conf"), "services": services})
        self.socket = os.path.join(directory, "bus")
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        self.proc = subprocess.Popen(
            ["dbus-daemon", "--config-file=" + config, "--address=unix:path=" + self.socket,
             "--print-address=1", "--nofork"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.address = self.proc.stdout.readline().strip()
        if not self.address:
            self.stop()
            raise RuntimeError("dbus-daemon did not start")


@st.unittest.skipIf(MISSING, MISSING)
@st.unittest.skipUnless(st.IS_ROOT, "needs root (a second uid)")
class TestPolkitUnreachable(PolkitCase):
    """polkit that cannot be reached, whatever the reason, is handled like
    polkit that is absent: root may change state, nobody else; one warning."""
    template = "recorder"
    WARNING = "Cannot reach polkit"

    def assertRootOnly(self, env, client, vm_id, reason):
        client.smolvm(vm_path(vm_id), "Pause")
        self.assertEqual(env.vm_state(vm_id), "paused", reason)
        client.smolvm(vm_path(vm_id), "Resume")
        self.assertEqual(env.vm_state(vm_id), "running", reason)
        err = self.assertDBusError("NotAuthorized", env.gdbus, vm_path(vm_id), "Pause",
                                   as_user=NOBODY)
        self.assertIn(MANAGE, err.message)
        self.assertIn("polkit is not available", err.message)
        self.assertEqual(env.vm_state(vm_id), "running", reason)

    def test_unreachable_errors(self):
        """The bus's errors for a masked polkit unit, a failed or timed-out
        activation and no reply: root only, one warning per outage."""
        env, client, mock = self.system_env()
        mock.answer("yes")
        self.create_vm(env, client, "u-vm")
        self.start_vm(env, client, "u-vm")
        for outage, answer in enumerate(sorted(UNREACHABLE), start=1):
            with self.subTest(answer=answer):
                mock.answer(answer)
                self.assertRootOnly(env, client, "u-vm", answer)
                self.assertRootOnly(env, client, "u-vm", answer)
                self.assertEqual(env.daemon_log().count(self.WARNING), outage,
                                 "one warning per outage")
                self.assertIn(UNREACHABLE[answer][1], env.daemon_log())
                # polkit answers again: it decides, for root too
                mock.answer("no")
                self.assertRefused(MANAGE, client, vm_path("u-vm"), "Pause")
                self.assertEqual(env.vm_state("u-vm"), "running")
                mock.answer("yes")

    def test_activation_fails(self):
        """A bus whose activation of polkit fails."""
        env = self.new_env(session=False, start=False)
        env.bus.stop()
        env.bus = FailingActivationBus(env.root)
        client = Client(env.bus.address)
        self.addCleanup(client.close)
        env.daemon.start()
        self.create_vm(env, client, "a-vm")
        self.start_vm(env, client, "a-vm")
        self.assertRootOnly(env, client, "a-vm", "activation fails")
        self.assertRootOnly(env, client, "a-vm", "activation fails")
        log = env.daemon_log()
        self.assertEqual(log.count(self.WARNING), 1, log)
        self.assertIn(POLKIT_NAME, log[log.index(self.WARNING):].split("\n")[0])


@st.unittest.skipIf(MISSING, MISSING)
@st.unittest.skipUnless(st.IS_ROOT, "needs root (a second uid)")
class TestCallerRights(PolkitCase):
    """smolvmd reads a caller's images with the caller's rights: as
    descriptors the caller opened, or paths opened as the caller."""
    template = "recorder"

    def setUp(self):
        super().setUp()
        self.senv, self.client, self.mock = self.system_env()
        self.mock.answer("yes")
        # a directory anyone may enter, with files of every kind of access
        self.pub = tempfile.mkdtemp(prefix="smolvm-pub-")
        self.addCleanup(shutil.rmtree, self.pub)
        os.chmod(self.pub, 0o755)
        self.kernel = self.pub_file("vmlinux", open(self.senv.kernel, "rb").read(), 0o644)
        self.rootfs = self.pub_file("rootfs.ext4", open(self.senv.rootfs, "rb").read(), 0o644)
        self.secret = self.pub_file("secret", b"root:only-root-may-read-this\n" * 64, 0o600)
        self.group = self.pub_file("group-readable", b"for group nogroup\n" * 64, 0o640)
        os.chown(self.group, 0, NOBODY)  # nobody's primary group
        self.link = os.path.join(self.pub, "link-to-secret")
        os.symlink(self.secret, self.link)
        # readable itself, but in a directory only root may enter
        private = os.path.join(self.pub, "private")
        os.mkdir(private, 0o700)
        self.hidden = os.path.join(private, "rootfs.ext4")
        shutil.copyfile(self.rootfs, self.hidden)
        os.chmod(self.hidden, 0o644)

    def pub_file(self, name, data, mode):
        path = os.path.join(self.pub, name)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
        return path

    def vms_dir(self):
        return sorted(os.listdir(os.path.join(self.senv.state_dir, "vms")))

    def disk(self, vm_id, name="disk.ext4"):
        return os.path.join(self.senv.state_dir, "vms", vm_id, name)

    def create_as_nobody(self, vm_id, kernel, rootfs):
        cfg = st.gv_dict({"vm_id": vm_id, "kernel_path": kernel, "rootfs_path": rootfs,
                          "network": False})
        return self.senv.gdbus(st.MANAGER_PATH, "CreateVM", cfg, as_user=NOBODY)

    def test_paths_of_a_non_root_caller(self):
        env = self.senv
        for what, kernel, rootfs in (("root-only rootfs", self.kernel, self.secret),
                                     ("symlink to it", self.kernel, self.link),
                                     ("root-only kernel", self.secret, self.rootfs),
                                     ("file in a root-only dir", self.kernel, self.hidden)):
            with self.subTest(what):
                err = self.assertDBusError("NotAuthorized", self.create_as_nobody, "evil",
                                           kernel, rootfs)
                self.assertIn("uid %d" % NOBODY, err.message)
                self.assertEqual(env.list_vms(), {})
                self.assertEqual(self.vms_dir(), [], "nothing copied")
        # what nobody may read, by its user or by its group, it gets
        self.create_as_nobody("mine", self.kernel, self.group)
        self.assertTrue(st.files_identical(self.disk("mine"), self.group))
        self.assertTrue(st.files_identical(self.disk("mine", "kernel"), self.kernel))
        self.assertEqual(env.vm_info("mine")["rootfs_path"], self.group)
        # root keeps paths, and reads as root
        self.client.smolvm(st.MANAGER_PATH, "CreateVM", v("a{sv}", asv(
            vm_id="roots", kernel_path=self.kernel, rootfs_path=self.link, network=False)))
        self.assertTrue(st.files_identical(self.disk("roots"), self.secret))

    def test_cli_passes_descriptors(self):
        env = self.senv

        def cli_as_nobody(*args):
            argv = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
                    st.CLI, "--no-ask-password", *args]
            return subprocess.run(argv, env=env.client_env(system=True),
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=st.DEADLINE)

        self.mock.clear()
        r = cli_as_nobody("create", "--kernel", self.kernel, "--rootfs", self.secret,
                          "--vm-id", "evil", "--no-network")
        self.assertEqual((r.returncode, r.stderr),
                         (1, "Error: Cannot open --rootfs %s: Permission denied\n" % self.secret))
        self.assertEqual(self.vms_dir(), [])
        calls = [c["action_id"] for c in self.mock.checks()]
        self.assertEqual(calls, [], "the CLI refused before calling")

        r = cli_as_nobody("create", "--kernel", self.kernel, "--rootfs", self.rootfs,
                          "--vm-id", "cli-vm", "--no-network", "--start")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(st.files_identical(self.disk("cli-vm"), self.rootfs))
        self.assertTrue(st.files_identical(self.disk("cli-vm", "kernel"), self.kernel))
        info = env.vm_info("cli-vm")
        self.assertEqual((info["kernel_path"], info["rootfs_path"]), (self.kernel, self.rootfs))
        env.wait_tick("cli-vm", 1)

    def test_descriptors(self):
        env = self.senv
        kernel_fd = os.open(self.kernel, os.O_RDONLY)
        self.addCleanup(os.close, kernel_fd)
        # an image already unlinked: only its descriptor can name it
        gone = self.pub_file("gone.ext4", open(self.senv.rootfs, "rb").read(), 0o600)
        gone_fd = os.open(gone, os.O_RDONLY)
        self.addCleanup(os.close, gone_fd)
        os.unlink(gone)
        cfg = asv(vm_id="by-fd", network=False)
        cfg["kernel-fd"] = GLib.Variant("h", 0)
        cfg["rootfs-fd"] = GLib.Variant("h", 1)
        self.client.create_vm_fds(cfg, [kernel_fd, gone_fd])
        self.assertTrue(st.files_identical(self.disk("by-fd"), self.senv.rootfs))
        self.assertTrue(st.files_identical(self.disk("by-fd", "kernel"), self.kernel))
        info = env.vm_info("by-fd")
        self.assertEqual(info["kernel_path"], self.kernel)
        self.assertEqual(info["rootfs_path"], gone + " (deleted)")
        self.client.smolvm(vm_path("by-fd"), "Start")
        env.wait_tick("by-fd", 1)

        fifo = os.path.join(self.pub, "fifo")
        os.mkfifo(fifo)
        bad = {
            "a FIFO": os.open(fifo, os.O_RDONLY | os.O_NONBLOCK),
            "a directory": os.open(self.pub, os.O_RDONLY),
            "an O_PATH descriptor": os.open(self.rootfs, os.O_PATH),
            "a write-only descriptor": os.open(self.pub_file("wo", b"x", 0o600), os.O_WRONLY),
        }
        for fd in bad.values():
            self.addCleanup(os.close, fd)
        for what, fd in bad.items():
            with self.subTest(what):
                cfg = asv(vm_id="bad", network=False)
                cfg["kernel-fd"] = GLib.Variant("h", 0)
                cfg["rootfs-fd"] = GLib.Variant("h", 1)
                err = self.assertDBusError("InvalidArgument", self.client.create_vm_fds, cfg,
                                           [kernel_fd, fd])
                self.assertIn("rootfs-fd", err.message)
        for what, extra, fds in (
                ("a descriptor the message lacks", {"rootfs-fd": GLib.Variant("h", 5)}, 1),
                ("fd and path both", {"rootfs-fd": GLib.Variant("h", 0),
                                      "rootfs_path": GLib.Variant("s", self.rootfs)}, 1),
                ("not a handle", {"rootfs-fd": GLib.Variant("s", "0")}, 1),
                ("no rootfs at all", {}, 1)):
            with self.subTest(what):
                cfg = asv(vm_id="bad", network=False)
                cfg["kernel-fd"] = GLib.Variant("h", 0)
                cfg.update(extra)
                self.assertDBusError("InvalidArgument", self.client.create_vm_fds, cfg,
                                     [kernel_fd] * fds)
        self.assertEqual(sorted(env.list_vms()), ["by-fd"])
        self.assertEqual(self.vms_dir(), ["by-fd"])

    def test_fifo_swapped_in_mid_create(self):
        """A path that flips between an image and a FIFO: every create ends
        (made, or refused as not a regular file), and no id stays held."""
        env = self.senv
        fifo = os.path.join(self.pub, "fifo")
        os.mkfifo(fifo)
        flip = os.path.join(self.pub, "flip")
        stop = threading.Event()

        def flipper():
            targets = (self.rootfs, fifo)
            n = 0
            while not stop.is_set():
                tmp = flip + ".new"
                os.symlink(targets[n % 2], tmp)
                os.rename(tmp, flip)
                n += 1

        thread = threading.Thread(target=flipper)
        thread.start()
        made, refused = [], []
        try:
            for i in range(16):
                vm_id = "flip-%d" % i
                try:
                    self.client.smolvm(st.MANAGER_PATH, "CreateVM", v("a{sv}", asv(
                        vm_id=vm_id, kernel_path=self.kernel, rootfs_path=flip,
                        network=False)))
                    made.append(vm_id)
                except st.DBusError as e:
                    self.assertEqual(e.short_name, "InvalidArgument", e.message)
                    self.assertIn("not a regular file", e.message)
                    refused.append(vm_id)
        finally:
            stop.set()
            thread.join()
        self.assertEqual(sorted(env.list_vms()), sorted(made))
        for vm_id in made:
            self.assertTrue(st.files_identical(self.disk(vm_id), self.rootfs))
        for vm_id in refused:  # free again
            self.client.smolvm(st.MANAGER_PATH, "CreateVM", v("a{sv}", asv(
                vm_id=vm_id, kernel_path=self.kernel, rootfs_path=self.rootfs, network=False)))

    def test_snapshots_keep_the_kernel(self):
        env, client = self.senv, self.client
        kernel = self.pub_file("k-a", b"kernel A\n" * 100, 0o644)

        def create():
            client.smolvm(st.MANAGER_PATH, "CreateVM", v("a{sv}", asv(
                vm_id="k-vm", kernel_path=kernel, rootfs_path=self.rootfs, mem_size_mib=128,
                vcpu_count=1, network=False)))

        create()
        self.start_vm(env, client, "k-vm")
        client.smolvm(st.MANAGER_PATH, "CreateSnapshot", v("ssa{sv}", "k-vm", "k1", {}))
        snap_kernel = os.path.join(env.state_dir, "snapshots", "k1", "kernel")
        self.assertEqual(os.stat(snap_kernel).st_ino, os.stat(self.disk("k-vm", "kernel")).st_ino)
        client.smolvm(vm_path("k-vm"), "Delete", v("a{sv}", asv(force=True)))
        # the same id, config and path, but the file now holds another kernel
        with open(kernel, "wb") as f:
            f.write(b"kernel B\n" * 100)
        create()
        err = self.assertDBusError("InvalidState", client.smolvm, st.MANAGER_PATH,
                                   "RestoreSnapshot", v("sa{sv}", "k1", {}))
        self.assertIn("kernel", err.message)
        client.smolvm(vm_path("k-vm"), "Delete", v("a{sv}", {}))
        # recreated by the restore: with the kernel the snapshot's guest booted
        client.smolvm(st.MANAGER_PATH, "RestoreSnapshot", v("sa{sv}", "k1", asv(resume=True)))
        with open(self.disk("k-vm", "kernel"), "rb") as f:
            self.assertEqual(f.read(), b"kernel A\n" * 100)
        self.assertEqual(env.vm_state("k-vm"), "running")


if __name__ == "__main__":
    st.main("polkit")
