#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""smolvmd against the real polkitd (Debian's polkitd package).

The test re-executes itself under `unshare --mount --propagation private`
and, in that private mount namespace only, bind-mounts over polkit's
configuration:

  /usr/share/polkit-1/actions   only build/data/org.smolvm.policy
  /etc/polkit-1/rules.d         empty, or data/50-smolvm-snapshots.rules.example
  /usr/share/polkit-1/rules.d   a copy of the host's 50-default.rules
  /etc/group                    the host's, plus a group "smolvm"

so the host's polkit configuration is never touched and the mounts vanish
with the test.  It then starts /usr/lib/polkit-1/polkitd (which drops to the
user polkitd by itself) on the test's private system bus
(tests/data/system-bus.conf, which lets anyone own any name) and smolvmd in
system mode on the same bus; callers that are not root run through
`setpriv`.  There is no logind here, so callers have no session and polkit
applies the actions' <allow_any> defaults (auth_admin); uid 0 is always
authorized by polkitd.

polkit takes a subject's groups from the group database (getgrouplist() of
its user name), not from the calling process's supplementary groups; that is
why the test edits /etc/group rather than using `setpriv --groups`, and one
check shows it.

Needs root, unshare, setpriv and the polkitd package; skipped otherwise.
"""

import grp
import os
import pwd
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smolvmtest as st  # noqa: E402
from smolvmtest import gv_dict, gv_str, snapshot_path, vm_path  # noqa: E402

POLKITD = "/usr/lib/polkit-1/polkitd"
POLICY = os.path.join(st.BUILD_DIR, "data", "org.smolvm.policy")
RULES_EXAMPLE = os.path.join(st.SOURCE_DIR, "data", "50-smolvm-snapshots.rules.example")
NAMESPACE_FLAG = "SMOLVM_TEST_POLKIT_NAMESPACE"
POLKIT_NAME = "org.freedesktop.PolicyKit1"
NOBODY = 65534
DAEMON_UID = 1  # Debian's "daemon": not in the group smolvm

CREATE = "org.smolvm.snapshot.create"
RESTORE = "org.smolvm.snapshot.restore"
DELETE = "org.smolvm.snapshot.delete"
MANAGE = "org.smolvm.vm.manage"
CHALLENGE = "authentication is required"


def _unshare_works():
    try:
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           capture_output=True, text=True, timeout=30)
    except OSError as e:
        return str(e)
    return None if r.returncode == 0 else (r.stderr.strip() or "exit %d" % r.returncode)


def why_skip():
    """Why this test cannot run here, or None."""
    if os.environ.get(NAMESPACE_FLAG) == "1":
        return None  # checked before re-executing
    if not st.IS_ROOT:
        return "needs root (mount namespace, polkitd, callers with other uids)"
    for tool in ("unshare", "setpriv", "busctl", "gdbus", "mount", "umount"):
        if shutil.which(tool) is None:
            return "needs %s" % tool
    if not os.access(POLKITD, os.X_OK):
        return "needs %s (Debian package polkitd)" % POLKITD
    for name in ("polkitd", "nobody", "daemon"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            return "needs the user %s" % name
    if not os.path.exists(POLICY):
        return "%s is not built (build first)" % POLICY
    failure = _unshare_works()
    if failure is not None:
        return "cannot make a private mount namespace: %s" % failure
    return None


SKIP = why_skip()


def free_gid():
    used = {g.gr_gid for g in grp.getgrall()}
    for gid in range(64990, 60000, -1):
        if gid not in used:
            return gid
    raise RuntimeError("no free gid")


class PolkitConfig:
    """polkit's directories and /etc/group, replaced by bind mounts (in this
    process's private mount namespace)."""

    def __init__(self, example_rules, members):
        self.dir = tempfile.mkdtemp(prefix="smolvm-polkit-", dir="/tmp")
        self.mounts = []
        os.chmod(self.dir, 0o755)  # polkitd reads it as the user polkitd
        try:
            actions = self.subdir("actions")
            shutil.copy(POLICY, os.path.join(actions, "org.smolvm.policy"))
            rules_etc = self.subdir("rules-etc")
            if example_rules:
                shutil.copy(RULES_EXAMPLE, os.path.join(rules_etc, "50-smolvm-snapshots.rules"))
            rules_usr = self.subdir("rules-usr")
            default = "/usr/share/polkit-1/rules.d/50-default.rules"
            if os.path.exists(default):
                shutil.copy(default, rules_usr)
            self.gid = free_gid()
            with open("/etc/group") as f:
                self.host_groups = [line for line in f.read().splitlines()
                                    if line and not line.startswith("smolvm:")]
            self.group_file = os.path.join(self.dir, "group")
            self.set_members(members)
            for src, dst in ((actions, "/usr/share/polkit-1/actions"),
                             (rules_etc, "/etc/polkit-1/rules.d"),
                             (rules_usr, "/usr/share/polkit-1/rules.d"),
                             (self.group_file, "/etc/group")):
                subprocess.run(["mount", "--bind", src, dst], check=True)
                self.mounts.append(dst)
        except BaseException:
            self.cleanup()
            raise

    def subdir(self, name):
        path = os.path.join(self.dir, name)
        os.mkdir(path, 0o755)
        return path

    def set_members(self, members):
        """The members of the group smolvm; rewritten in place (the bind mount
        keeps the inode)."""
        with open(self.group_file, "w") as f:
            f.write("\n".join(self.host_groups +
                              ["smolvm:x:%d:%s" % (self.gid, ",".join(members))]) + "\n")
        os.chmod(self.group_file, 0o644)

    def cleanup(self):
        for dst in reversed(self.mounts):
            subprocess.run(["umount", dst], check=False)
        self.mounts = []
        shutil.rmtree(self.dir, ignore_errors=True)


@st.unittest.skipIf(SKIP, SKIP)
class RealPolkitCase(st.TestCase):
    example_rules = False
    members = ()

    def setUp(self):
        super().setUp()
        self.config = PolkitConfig(self.example_rules, self.members)
        self.addCleanup(self.config.cleanup)  # after the Env's cleanup: polkitd is gone
        env = self.new_env(session=False, start=False)
        self.polkitd_log = os.path.join(env.root, "polkitd.log")
        with open(self.polkitd_log, "w") as log:
            self.polkitd = env.adopt(subprocess.Popen(
                [POLKITD], env=env.client_env(system=True), stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT))

        def ready():
            if self.polkitd.poll() is not None:
                raise AssertionError("polkitd exited with %d:\n%s" % (
                    self.polkitd.returncode, self.polkitd_output()))
            return self.has_owner(POLKIT_NAME)
        st.wait_for(ready, "polkitd to own %s" % POLKIT_NAME)
        env.daemon.start()

    def polkitd_output(self):
        try:
            with open(self.polkitd_log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def daemon_logs(self):
        return super().daemon_logs() + "\n---- polkitd ----\n" + self.polkitd_output()

    def has_owner(self, name):
        r = subprocess.run(["busctl", "--address=" + self.env.bus.address, "call",
                            "org.freedesktop.DBus", "/org/freedesktop/DBus",
                            "org.freedesktop.DBus", "NameHasOwner", "s", name],
                           capture_output=True, text=True, timeout=st.DEADLINE)
        return r.returncode == 0 and r.stdout.strip() == "b true"

    def gdbus_as(self, argv_prefix, path, method, *args):
        argv = argv_prefix + self.env.gdbus_argv(path, method, *args)
        proc = subprocess.run(argv, env=self.env.client_env(True), capture_output=True,
                              text=True, timeout=st.DEADLINE * 3)
        return st.gdbus_result(proc.returncode, proc.stdout, proc.stderr)

    def assertRefused(self, action, uid, path, method, *args):
        err = self.assertDBusError("NotAuthorized", self.env.gdbus, path, method, *args,
                                   as_user=uid)
        self.assertIn(action, err.message)
        # polkitd answered (a challenge), not smolvmd's no-polkit fallback
        self.assertIn(CHALLENGE, err.message)
        return err

    def polkitd_user(self):
        with open("/proc/%d/status" % self.polkitd.pid) as f:
            for line in f:
                if line.startswith("Uid:"):
                    return pwd.getpwuid(int(line.split()[1])).pw_name
        return None

    def common_checks(self):
        self.assertEqual(self.polkitd_user(), "polkitd")
        self.assertNotIn("polkit is not available", self.env.daemon_log())
        self.assertNotIn("Cannot reach polkit", self.env.daemon_log())


class TestDefaults(RealPolkitCase):
    """No rules: root may do everything, anyone else nothing (auth_admin)."""

    def test_root_allowed_others_refused(self):
        env = self.env
        # root, through polkitd
        env.running_vm("r-vm")
        env.vm("r-vm", "Pause")
        env.vm("r-vm", "Resume")
        env.create_snapshot("r-vm", "s1", **{"resume-source": True})
        env.gdbus(vm_path("r-vm"), "CreateSnapshot", gv_str("s2"), "{'resume-source': <true>}")
        env.restore("s1")
        self.assertEqual(env.vm_state("r-vm"), "paused")
        env.gdbus(snapshot_path("s2"), "Restore", "{'resume': <true>}")
        self.assertEqual(env.vm_state("r-vm"), "running")
        env.delete_snapshot("s1")
        env.create_vm("idle-vm")
        self.assertEqual(env.snapshot_ids(), ["s2"])
        before = st.tree_fingerprint_strict(env.state_dir)
        pid = env.vm_prop("r-vm", "Pid")

        # nobody: refused, without and with interactive authorization (there
        # is no authentication agent to ask)
        refused = [
            (MANAGE, st.MANAGER_PATH, "CreateVM",
             gv_dict({"vm_id": "evil", "kernel_path": env.kernel, "rootfs_path": env.rootfs,
                      "network": False})),
            (MANAGE, vm_path("idle-vm"), "Start"),
            (MANAGE, vm_path("r-vm"), "Pause"),
            (MANAGE, vm_path("r-vm"), "Stop", gv_dict()),
            (MANAGE, vm_path("r-vm"), "Delete", "{'force': <true>}"),
            (CREATE, st.MANAGER_PATH, "CreateSnapshot", gv_str("r-vm"), gv_str("n1"), gv_dict()),
            (CREATE, vm_path("r-vm"), "CreateSnapshot", gv_str("n1"), gv_dict()),
            (RESTORE, st.MANAGER_PATH, "RestoreSnapshot", gv_str("s2"), "{'force': <true>}"),
            (RESTORE, snapshot_path("s2"), "Restore", "{'force': <true>}"),
            (DELETE, st.MANAGER_PATH, "DeleteSnapshot", gv_str("s2"), gv_dict()),
            (DELETE, snapshot_path("s2"), "Delete", gv_dict()),
        ]
        for action, path, method, *args in refused:
            with self.subTest(method=method, path=path):
                self.assertRefused(action, NOBODY, path, method, *args)
        for allow in ("no", "yes"):
            with self.subTest(busctl_interactive=allow):
                r = subprocess.run(
                    ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
                     "busctl", "--address=" + env.bus.address,
                     "--allow-interactive-authorization=" + allow, "call", st.BUS_NAME,
                     vm_path("r-vm"), st.VM_IFACE, "Pause"],
                    capture_output=True, text=True, timeout=st.DEADLINE * 2)
                self.assertNotEqual(r.returncode, 0, r)
                self.assertIn(MANAGE, r.stderr)
        for ask in ([], ["--no-ask-password"]):
            with self.subTest(cli=ask):
                argv = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                        "--clear-groups", st.CLI] + ask + ["snapshot", "delete", "s2", "--json"]
                r = subprocess.run(argv, env=env.client_env(True), stdin=subprocess.DEVNULL,
                                   capture_output=True, text=True, timeout=st.DEADLINE * 2)
                self.assertEqual(r.returncode, 1, r)
                self.assertIn(st.ERROR_PREFIX + "NotAuthorized", r.stdout)
                self.assertIn(DELETE, r.stdout)

        self.assertEqual(st.tree_fingerprint_strict(env.state_dir), before)
        self.assertEqual(env.vm_state("r-vm"), "running")
        self.assertEqual(env.vm_state("idle-vm"), "created")
        self.assertEqual(env.vm_prop("r-vm", "Pid"), pid)
        self.assertEqual(env.snapshot_ids(), ["s2"])

        # reads are open to everyone
        self.assertIn(snapshot_path("s2"), env.call("ListSnapshots", gv_str(""), as_user=NOBODY))
        self.assertIn("'vm_id': <'r-vm'>", env.call("ListVMs", as_user=NOBODY))
        self.assertIn(vm_path("r-vm"), env.call("GetVM", gv_str("r-vm"), as_user=NOBODY))
        self.assertIn("'running'", env.gdbus(vm_path("r-vm"), "Get", gv_str(st.VM_IFACE),
                                             gv_str("State"),
                                             iface="org.freedesktop.DBus.Properties",
                                             as_user=NOBODY))

        # root still may
        env.vm("r-vm", "Delete", "{'force': <true>}")
        env.delete_snapshot("s2")
        self.assertEqual(env.snapshot_ids(), [])
        self.common_checks()


class TestExampleRules(RealPolkitCase):
    """data/50-smolvm-snapshots.rules.example installed, nobody in the group
    smolvm: snapshots without a password, VMs still not."""

    example_rules = True
    members = ("nobody",)

    def test_group_may_snapshot_not_manage(self):
        env = self.env
        env.running_vm("g-vm")  # root
        nobody = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"]

        # snapshots: create, restore and delete, through the Manager and the objects
        self.assertEqual(self.gdbus_as(nobody, st.MANAGER_PATH, "CreateSnapshot", gv_str("g-vm"),
                                       gv_str("n1"), "{'resume-source': <true>}"),
                         "(objectpath '%s',)" % snapshot_path("n1"))
        self.assertEqual(self.gdbus_as(nobody, vm_path("g-vm"), "CreateSnapshot", gv_str("n2"),
                                       "{'resume-source': <true>}"),
                         "(objectpath '%s',)" % snapshot_path("n2"))
        self.assertEqual(env.snapshot_ids(), ["n1", "n2"])
        self.gdbus_as(nobody, st.MANAGER_PATH, "RestoreSnapshot", gv_str("n1"), gv_dict())
        self.assertEqual(env.vm_prop("g-vm", "RestoredFrom"), "n1")
        self.gdbus_as(nobody, snapshot_path("n2"), "Restore", gv_dict())
        self.assertEqual(env.vm_prop("g-vm", "RestoredFrom"), "n2")
        self.assertEqual(env.vm_state("g-vm"), "paused")
        self.gdbus_as(nobody, st.MANAGER_PATH, "DeleteSnapshot", gv_str("n1"), gv_dict())
        self.assertEqual(env.snapshot_ids(), ["n2"])
        # the CLI, with and without --no-ask-password
        for ask, snap in (([], "n3"), (["--no-ask-password"], "n4")):
            argv = nobody + [st.CLI] + ask + ["snapshot", "create", "g-vm", "--snapshot-id", snap]
            r = subprocess.run(argv, env=env.client_env(True), stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=st.DEADLINE * 2)
            self.assertEqual(r.returncode, 0, r)
        self.assertEqual(env.snapshot_ids(), ["n2", "n3", "n4"])

        # VMs: still refused
        before = st.tree_fingerprint_strict(env.state_dir)
        for path, method, *args in (
                (st.MANAGER_PATH, "CreateVM",
                 gv_dict({"vm_id": "evil", "kernel_path": env.kernel, "rootfs_path": env.rootfs,
                          "network": False})),
                (vm_path("g-vm"), "Resume"),
                (vm_path("g-vm"), "Stop", gv_dict()),
                (vm_path("g-vm"), "Delete", "{'force': <true>}")):
            with self.subTest(method=method):
                self.assertRefused(MANAGE, NOBODY, path, method, *args)
        # a user who is not in the group: no snapshots either
        self.assertRefused(CREATE, DAEMON_UID, st.MANAGER_PATH, "CreateSnapshot",
                           gv_str("g-vm"), gv_str("d1"), gv_dict())
        self.assertRefused(DELETE, DAEMON_UID, snapshot_path("n3"), "Delete", gv_dict())
        # polkit asks the group database, not the caller's supplementary groups
        self.config.set_members([])
        with_group = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                      "--groups=%d" % self.config.gid]
        err = self.assertDBusError("NotAuthorized", self.gdbus_as, with_group, st.MANAGER_PATH,
                                   "CreateSnapshot", gv_str("g-vm"), gv_str("d2"), gv_dict())
        self.assertIn(CREATE, err.message)
        self.assertEqual(st.tree_fingerprint_strict(env.state_dir), before)
        self.assertEqual(env.vm_state("g-vm"), "paused")
        # back in the group database: allowed again
        self.config.set_members(["nobody"])
        self.gdbus_as(nobody, snapshot_path("n4"), "Delete", gv_dict())
        self.assertEqual(env.snapshot_ids(), ["n2", "n3"])
        self.common_checks()


def enter_namespace():
    """Re-executes this file in a private mount namespace (once)."""
    if SKIP or os.environ.get(NAMESPACE_FLAG) == "1":
        return
    env = dict(os.environ)
    env[NAMESPACE_FLAG] = "1"
    sys.stdout.flush()
    os.execvpe("unshare", ["unshare", "--mount", "--propagation", "private", "--",
                           sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env)


if __name__ == "__main__":
    enter_namespace()
    st.main("polkit-real")
