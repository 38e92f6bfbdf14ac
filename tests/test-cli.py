#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The smolvm CLI against a real smolvmd: the text, JSON and exit codes of
the `smolvm snapshot` reference (../shared/seeds/000_*.txt), and the VM
commands."""

import datetime
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smolvmtest as st  # noqa: E402
from ptyrun import ERASE, PtyRun, bars  # noqa: E402

# From the reference, character for character.
LIST_HEADER = "  Snapshot ID        VM ID     Restored   Created At"
REFERENCE_ROW = "  before-deploy      my-vm     No         2026-04-03T12:30:00"
SNAPSHOT_KEYS = ["snapshot_id", "vm_id", "restored", "restored_vm_id", "created_at",
                 "snapshot_path", "mem_file_path", "disk_path"]
# The reference's keys in its order, then SmolVM's "ok" and "error".
ENVELOPE_KEYS = ["command", "exit_code", "ok", "data", "error"]
CREATED_AT_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")
TABLE_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")


def ordered(text):
    """JSON with its objects as lists of pairs, to check the order of keys."""
    return json.loads(text, object_pairs_hook=lambda pairs: pairs)


def keys(pairs):
    return [k for k, _ in pairs]


def utc_seconds(usec):
    return datetime.datetime.fromtimestamp(usec // 1000000, datetime.timezone.utc)


def columns_of(line):
    """Start offsets of the fields of a table line (fields: runs without 2 spaces)."""
    return [m.start() for m in re.finditer(r"(?<=  )\S", line)]


class CliCase(st.TestCase):
    def setUp(self):
        super().setUp()
        if not os.access(st.CLI, os.X_OK):
            self.fail("missing %s" % st.CLI)

    def run_ok(self, *args):
        r = self.env.cli(*args)
        self.assertCli(r, 0)
        self.assertEqual(r.err, "", repr(r))
        return r

    def running_vm(self, vm_id):
        self.env.running_vm(vm_id)


class TestSnapshotCommands(CliCase):
    def test_create_human(self):
        self.running_vm("my-vm")
        r = self.run_ok("snapshot", "create", "my-vm", "--snapshot-id", "before-deploy",
                        "--resume-source")
        self.assertEqual(r.out, "Created snapshot 'before-deploy' from VM 'my-vm'.\n")
        self.assertEqual(self.env.vm_state("my-vm"), "running")
        r = self.run_ok("snapshot", "create", "my-vm", "--snapshot-id", "stays-paused")
        self.assertEqual(r.out, "Created snapshot 'stays-paused' from VM 'my-vm'.\n")
        self.assertEqual(self.env.vm_state("my-vm"), "paused")
        # a generated id is told back
        r = self.run_ok("snapshot", "create", "my-vm")
        m = re.fullmatch(r"Created snapshot '(snap-my-vm-\d+(?:-\d+)?)' from VM 'my-vm'\.\n",
                         r.out)
        self.assertIsNotNone(m, r.out)
        self.assertIn(m.group(1), self.env.snapshot_ids())
        # so is one asked for with an empty --snapshot-id, as in SmolVM
        r = self.run_ok("snapshot", "create", "my-vm", "--snapshot-id", "", "--json")
        generated = r.json()["data"]["snapshot"]["snapshot_id"]
        self.assertRegex(generated, r"^snap-my-vm-\d+(?:-\d+)?$")
        self.assertNotEqual(generated, m.group(1))
        self.assertEqual(sorted(self.env.snapshot_ids()),
                         sorted(["before-deploy", "stays-paused", m.group(1), generated]))

    def test_create_json(self):
        self.running_vm("my-vm")
        r = self.run_ok("snapshot", "create", "my-vm", "--snapshot-id", "test-snap", "--json")
        data = ordered(r.out)
        self.assertEqual(keys(data), ENVELOPE_KEYS)
        self.assertEqual(data[0], ("command", "snapshot.create"))
        self.assertEqual(data[1], ("exit_code", 0))
        self.assertEqual(data[2], ("ok", True))
        self.assertEqual(data[4], ("error", None))
        self.assertEqual(keys(data[3][1]), ["snapshot"])
        snap = data[3][1][0][1]
        self.assertEqual(keys(snap), SNAPSHOT_KEYS)
        snap = dict(snap)
        info = self.env.snapshot_info("test-snap")
        self.assertEqual(snap["snapshot_id"], "test-snap")
        self.assertEqual(snap["vm_id"], "my-vm")
        self.assertIs(snap["restored"], False)
        self.assertIsNone(snap["restored_vm_id"])
        self.assertRegex(snap["created_at"], CREATED_AT_RE)
        self.assertEqual(snap["created_at"], utc_seconds(info["created_at"]).isoformat())
        d = os.path.join(self.env.state_dir, "snapshots", "test-snap")
        self.assertEqual(snap["snapshot_path"], os.path.join(d, "vmstate.bin"))
        self.assertEqual(snap["mem_file_path"], os.path.join(d, "mem.bin"))
        self.assertEqual(snap["disk_path"], os.path.join(d, "disk.ext4"))
        # laid out like the reference: two-space indent, "key": value
        self.assertEqual(r.out, json.dumps(json.loads(r.out), indent=2) + "\n")

    def test_list(self):
        env = self.env
        r = self.run_ok("snapshot", "list")
        self.assertEqual(r.out, "No snapshots found.\n")
        self.running_vm("my-vm")
        self.running_vm("agent-1")
        self.run_ok("snapshot", "create", "my-vm", "--snapshot-id", "before-deploy",
                    "--resume-source")
        self.run_ok("snapshot", "create", "agent-1", "--snapshot-id", "pre-experiment",
                    "--resume-source")
        self.run_ok("snapshot", "restore", "pre-experiment")
        r = self.run_ok("snapshot", "list")
        lines = r.out.split("\n")
        self.assertEqual(lines[0], LIST_HEADER)
        self.assertEqual(lines[3:], ["", "Total: 2 snapshot(s).", ""])
        infos = [i for _, i in env.list_snapshots()]
        for line, info, restored in zip(lines[1:3], infos, ("No", "Yes")):
            fields = line.split()
            created = utc_seconds(info["created_at"]).strftime("%Y-%m-%dT%H:%M:%S")
            self.assertEqual(fields, [info["snapshot_id"], info["vm_id"], restored, created])
            self.assertRegex(fields[3], TABLE_TIME_RE)
            # the columns of the reference
            self.assertEqual(columns_of(line), columns_of(REFERENCE_ROW), line)
            self.assertTrue(line.startswith("  "))
        self.assertEqual([line.split()[0] for line in lines[1:3]],
                         ["before-deploy", "pre-experiment"])

        r = self.run_ok("snapshot", "list", "--vm-id", "my-vm")
        self.assertEqual(r.out.split("\n")[0], LIST_HEADER)
        self.assertEqual([line.split()[0] for line in r.out.split("\n")[1:-3]], ["before-deploy"])
        self.assertTrue(r.out.endswith("\n\nTotal: 1 snapshot(s).\n"), r.out)
        r = self.run_ok("snapshot", "list", "--vm-id", "nobody")
        self.assertEqual(r.out, "No snapshots found for VM 'nobody'.\n")

        r = self.run_ok("snapshot", "list", "--json")
        data = ordered(r.out)
        self.assertEqual(keys(data), ENVELOPE_KEYS)
        self.assertEqual(data[0], ("command", "snapshot.list"))
        self.assertEqual(data[1], ("exit_code", 0))
        self.assertEqual(keys(data[3][1]), ["snapshots", "total", "filters"])
        listed = dict(data[3][1])
        self.assertEqual(listed["filters"], [("vm_id", None)])
        snaps = listed["snapshots"]
        self.assertEqual([keys(s) for s in snaps], [SNAPSHOT_KEYS] * 2)
        snaps = [dict(s) for s in snaps]
        self.assertEqual([s["snapshot_id"] for s in snaps], ["before-deploy", "pre-experiment"])
        self.assertEqual([s["restored"] for s in snaps], [False, True])
        self.assertEqual([s["restored_vm_id"] for s in snaps], [None, "agent-1"])
        r = self.run_ok("snapshot", "list", "--vm-id", "agent-1", "--json")
        snaps = json.loads(r.out)["data"]["snapshots"]
        self.assertEqual([s["snapshot_id"] for s in snaps], ["pre-experiment"])
        self.assertEqual(json.loads(r.out)["data"]["filters"], {"vm_id": "agent-1"})

    def test_restore_and_delete(self):
        env = self.env
        self.running_vm("my-vm")
        self.run_ok("snapshot", "create", "my-vm", "--snapshot-id", "before-deploy")
        since = env.console_size("my-vm")
        r = self.run_ok("snapshot", "restore", "before-deploy", "--resume")
        self.assertEqual(r.out, "Restored snapshot 'before-deploy' into VM 'my-vm'.\n")
        self.assertEqual(env.vm_state("my-vm"), "running")
        env.wait_loaded_tick("my-vm", since)

        # once only, even while the restored VM runs; InUse answers --force then
        r = env.cli("snapshot", "restore", "before-deploy")
        self.assertCli(r, 1)
        self.assertEqual(r.out, "")
        self.assertEqual(r.err, "Error: Snapshot 'before-deploy' was already restored into VM "
                                "'my-vm'; use force to restore it again\n")
        r = env.cli("snapshot", "restore", "before-deploy", "--force", "--json")
        self.assertCli(r, 1)
        err = json.loads(r.out)
        self.assertEqual(err["command"], "snapshot.restore")
        self.assertEqual(err["exit_code"], 1)
        self.assertEqual(err["error"]["name"], "InUse")
        self.assertEqual(err["error"]["type"], "runtime_error")
        r = env.cli("snapshot", "delete", "before-deploy", "--json")
        self.assertCli(r, 1)
        self.assertEqual(json.loads(r.out)["error"]["name"], "InUse")

        self.run_ok("stop", "my-vm")
        r = env.cli("snapshot", "restore", "before-deploy", "--json")
        self.assertCli(r, 1)
        self.assertEqual(json.loads(r.out)["error"]["name"], "AlreadyRestored")
        r = self.run_ok("snapshot", "restore", "before-deploy", "--force", "--json")
        data = json.loads(r.out)
        self.assertEqual(data["command"], "snapshot.restore")
        self.assertEqual(data["exit_code"], 0)
        self.assertEqual(data["data"]["snapshot"]["snapshot_id"], "before-deploy")
        self.assertIs(data["data"]["snapshot"]["restored"], True)
        self.assertEqual(data["data"]["snapshot"]["restored_vm_id"], "my-vm")
        self.assertEqual(env.vm_state("my-vm"), "paused")  # no --resume
        # the VM as SmolVM shows it; no networking here: no address
        self.assertEqual(data["data"]["vm"], {"name": "my-vm", "vm_id": "my-vm",
                                              "status": "paused", "ip_address": None,
                                              "ssh_port": None})

        self.run_ok("stop", "my-vm")
        snap_dir = os.path.join(env.state_dir, "snapshots", "before-deploy")
        self.assertTrue(os.path.isdir(snap_dir))
        record = env.snapshot_info("before-deploy")
        r = self.run_ok("snapshot", "delete", "before-deploy", "--json")
        data = r.json()["data"]
        self.assertEqual(list(data), ["snapshot_id", "deleted", "snapshot"])
        # the record as it was before the delete
        self.assertEqual(list(data["snapshot"]), SNAPSHOT_KEYS)
        self.assertEqual(data["snapshot"]["snapshot_id"], "before-deploy")
        self.assertIs(data["snapshot"]["restored"], True)
        self.assertEqual(data["snapshot"]["disk_path"], record["disk_path"])
        self.assertEqual(data["snapshot"]["created_at"],
                         utc_seconds(record["created_at"]).isoformat())
        self.assertFalse(os.path.exists(snap_dir))
        self.assertEqual(env.snapshot_ids(), [])
        r = env.cli("snapshot", "delete", "before-deploy")
        self.assertCli(r, 1)
        self.assertIn("before-deploy", r.err)
        self.run_ok("start", "my-vm")
        self.run_ok("snapshot", "create", "my-vm", "--snapshot-id", "again", "--resume-source")
        r = self.run_ok("snapshot", "delete", "again")
        self.assertEqual(r.out, "Deleted snapshot 'again'.\n")
        self.assertEqual(env.snapshot_ids(), [])

    def test_failures(self):
        env = self.env
        env.create_vm("idle")
        cases = [
            (["snapshot", "create", "idle", "--snapshot-id", "x"], "InvalidState"),
            (["snapshot", "create", "ghost"], "NotFound"),
            (["snapshot", "restore", "ghost"], "NotFound"),
            (["snapshot", "delete", "ghost"], "NotFound"),
            (["snapshot", "create", "idle", "--snapshot-id", "Bad_Id"], "InvalidArgument"),
            (["start", "ghost"], "NotFound"),
            (["pause", "idle"], "InvalidState"),
            (["create", "--kernel", env.kernel, "--rootfs", env.rootfs, "--vm-id", "idle",
              "--no-network"], "AlreadyExists"),
            (["create", "--kernel", env.kernel, "--rootfs", env.rootfs, "--backend", "qemu",
              "--no-network"], "Unsupported"),
            # smolvmd's own check of a value
            (["create", "--kernel", env.kernel, "--rootfs", env.rootfs, "--vcpus", "1000",
              "--no-network"], "InvalidArgument"),
        ]
        for argv, name in cases:
            with self.subTest(argv=argv):
                r = env.cli(*argv)
                self.assertCli(r, 1)
                self.assertEqual(r.out, "")
                self.assertTrue(r.err.startswith("Error: "), r.err)
                r = env.cli(*(argv + ["--json"]))
                self.assertCli(r, 1)
                data = ordered(r.out)
                self.assertEqual(keys(data), ENVELOPE_KEYS)
                self.assertEqual(keys(dict(data)["error"]), ["name", "dbus_name", "message",
                                                             "type"])
                data = json.loads(r.out)
                self.assertEqual(data["exit_code"], 1)
                self.assertIs(data["ok"], False)
                self.assertIsNone(data["data"])
                self.assertEqual(data["error"]["name"], name, r)
                # SmolVM's rule: only bad input (its ValueError) is invalid_input
                self.assertEqual(data["error"]["type"],
                                 "invalid_input" if name == "InvalidArgument"
                                 else "runtime_error", r)
                self.assertEqual(data["command"],
                                 ("snapshot." + argv[1]) if argv[0] == "snapshot"
                                 else "vm." + argv[0])
        self.assertEqual(env.snapshot_ids(), [])

    def test_daemon_not_running(self):
        env = self.env
        env.daemon.kill()
        r = env.cli("snapshot", "list")
        self.assertCli(r, 1)
        self.assertTrue(r.err.startswith("Error: "), r.err)
        r = env.cli("snapshot", "list", "--json")
        self.assertCli(r, 1)
        self.assertEqual(json.loads(r.out)["exit_code"], 1)
        self.assertEqual(json.loads(r.out)["error"]["type"], "missing_dependency")

    def system_cli(self, env, *args):
        """`smolvm ARGS…` on the Env's bus as the system bus."""
        argv = [st.CLI] + list(args)
        proc = subprocess.run(argv, env=env.client_env(system=True), capture_output=True,
                              text=True, timeout=st.DEADLINE * 2)
        return st.CliResult(argv, proc)

    def test_daemon_not_installed(self):
        """On the system bus, neither running nor activatable: not installed."""
        env = self.new_env(session=False, start=False)
        r = self.system_cli(env, "snapshot", "list")
        self.assertCli(r, 1)
        self.assertIn("smolvmd is not installed", r.err)
        self.assertNotIn("not running", r.err)
        r = self.system_cli(env, "list", "--json")
        self.assertCli(r, 1)
        self.assertIn("smolvmd is not installed", r.json()["error"]["message"])
        self.assertEqual(r.json()["error"]["type"], "missing_dependency")

    def activating_bus(self, env, exec_line, timeout_ms=25000):
        """Restarts the Env's bus as a system bus that activates smolvmd by
        running @exec_line."""
        env.bus.stop()
        services = os.path.join(env.root, "services")
        os.makedirs(services, exist_ok=True)
        with open(os.path.join(services, st.BUS_NAME + ".service"), "w") as f:
            f.write("[D-BUS Service]\nName=%s\nExec=%s\n" % (st.BUS_NAME, exec_line))
        config = os.path.join(env.root, "activation.conf")
        with open(config, "w") as f:
            f.write('<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration '
                    '1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
                    "<busconfig><include>%s</include><servicedir>%s</servicedir>"
                    '<limit name="service_start_timeout">%d</limit></busconfig>\n'
                    % (os.path.join(st.DATA_DIR, "system-bus.conf"), services, timeout_ms))
        os.unlink(env.bus.socket)
        env.bus.proc = subprocess.Popen(
            ["dbus-daemon", "--config-file=" + config, "--address=unix:path=" + env.bus.socket,
             "--print-address=1", "--nofork"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        env.bus.address = env.bus.proc.stdout.readline().strip()

    def test_activation_times_out(self):
        """A bus whose activation of smolvmd times out: look in the journal."""
        env = self.new_env(session=False, start=False)
        self.activating_bus(env, "/bin/sleep 30", timeout_ms=1000)
        r = self.system_cli(env, "snapshot", "list")
        self.assertCli(r, 1)
        self.assertIn("smolvmd could not be started (see journalctl -u smolvmd)", r.err)
        self.assertNotIn("not running", r.err)
        # smolvmd is there but failed: no dependency is missing
        r = self.system_cli(env, "snapshot", "list", "--json")
        self.assertCli(r, 1)
        self.assertEqual(r.json()["error"]["type"], "runtime_error")

    def test_activation_without_program(self):
        """A service file whose program is missing: a missing dependency."""
        env = self.new_env(session=False, start=False)
        self.activating_bus(env, os.path.join(env.root, "no-such-smolvmd"))
        r = self.system_cli(env, "snapshot", "list", "--json")
        self.assertCli(r, 1)
        error = r.json()["error"]
        self.assertIn("smolvmd could not be started", error["message"])
        self.assertEqual(error["dbus_name"], "org.freedesktop.DBus.Error.Spawn.ExecFailed")
        self.assertEqual(error["type"], "missing_dependency")


class TestCloneCommand(CliCase):
    """`smolvm snapshot clone` against smolvmd: text, JSON, and a clone
    that fails while another is kept."""

    def setUp(self):
        super().setUp()
        self.running_vm("my-vm")
        self.run_ok("snapshot", "create", "my-vm", "--snapshot-id", "base", "--resume-source")

    def test_clone(self):
        env = self.env
        r = self.run_ok("snapshot", "clone", "base", "--count", "2", "--resume")
        self.assertEqual(r.out, "Cloned snapshot 'base' into VM 'my-vm-1'.\n"
                                "Cloned snapshot 'base' into VM 'my-vm-2'.\n")
        for vm_id in ("my-vm-1", "my-vm-2"):
            self.assertEqual(env.vm_state(vm_id), "running")
            self.assertEqual(env.vm_prop(vm_id, "ClonedFrom"), "base")
        self.assertEqual(env.snap_prop("base", "Clones"), [st.vm_path("my-vm-1"),
                                                           st.vm_path("my-vm-2")])

        r = self.run_ok("snapshot", "clone", "base", "--vm-id", "web-b", "--vm-id", "web-a",
                        "--json")
        data = ordered(r.out)
        self.assertEqual(keys(data), ENVELOPE_KEYS)
        self.assertEqual(data[0], ("command", "snapshot.clone"))
        body = dict(data[3][1])
        self.assertEqual(keys(data[3][1]), ["snapshot", "vms"])
        self.assertEqual(keys(body["snapshot"]), SNAPSHOT_KEYS)
        snap = dict(body["snapshot"])
        self.assertEqual((snap["snapshot_id"], snap["vm_id"], snap["restored"]),
                         ("base", "my-vm", False))
        self.assertEqual([dict(vm) for vm in body["vms"]], [
            {"name": "web-b", "vm_id": "web-b", "status": "paused", "ip_address": None,
             "ssh_port": None},
            {"name": "web-a", "vm_id": "web-a", "status": "paused", "ip_address": None,
             "ssh_port": None}])
        self.assertEqual(env.vm_state("web-a"), "paused")
        # the VM objects of smolvm list carry cloned_from
        vms = {v["vm_id"]: v for v in self.run_ok("list", "--json").json()["data"]["vms"]}
        self.assertEqual(vms["web-a"]["cloned_from"], "base")
        self.assertEqual(vms["my-vm"]["cloned_from"], "")
        # not a restore
        self.assertIs(env.snapshot_info("base")["restored"], False)

        r = env.cli("snapshot", "clone", "nope")
        self.assertCli(r, 1)
        self.assertEqual(r.err, "Error: Snapshot 'nope' not found\n")

    def test_partial_failure(self):
        """The second clone's id is so long that its VMM's socket path does
        not fit: the first is kept; exit 1; --json lists it in the error's
        details."""
        env = self.env
        long_id = "v" * 64
        r = env.cli("snapshot", "clone", "base", "--vm-id", "ok-1", "--vm-id", long_id)
        self.assertCli(r, 1)
        self.assertEqual(r.out, "Cloned snapshot 'base' into VM 'ok-1'.\n")
        self.assertTrue(r.err.startswith(
            "Error: Cloned snapshot 'base' into 1 of 2 VMs ('ok-1', kept); VM '%s': " % long_id),
            r.err)
        self.assertEqual(r.err.count("\n"), 1, r.err)

        r = env.cli("snapshot", "clone", "base", "--vm-id", "ok-2", "--vm-id", long_id,
                    "--resume", "--json")
        self.assertCli(r, 1)
        envelope = r.json()
        self.assertEqual((envelope["command"], envelope["ok"], envelope["data"]),
                         ("snapshot.clone", False, None))
        error = envelope["error"]
        self.assertEqual(list(error), ["name", "dbus_name", "message", "type", "details"])
        self.assertEqual((error["name"], error["type"]), ("Failed", "runtime_error"))
        self.assertTrue(error["message"].startswith(
            "Cloned snapshot 'base' into 1 of 2 VMs ('ok-2', kept); VM '%s': " % long_id),
            error["message"])
        # this command's clone only, not ok-1 of the one before
        self.assertEqual(error["details"], {"snapshot_id": "base", "vms": [
            {"name": "ok-2", "vm_id": "ok-2", "status": "running", "ip_address": None,
             "ssh_port": None}]})
        self.assertEqual(sorted(env.list_vms()), ["my-vm", "ok-1", "ok-2"])


class TestUsage(CliCase):
    env_options = {"start": False}  # usage errors never reach smolvmd

    def test_usage_errors(self):
        env = self.env
        cases = [
            [],
            ["snapshot"],
            ["snapshot", "frobnicate"],
            ["snapshot", "create"],
            ["snapshot", "restore"],
            ["snapshot", "delete"],
            ["snapshot", "create", "my-vm", "extra"],
            ["snapshot", "delete", "a", "b"],
            ["snapshot", "list", "unexpected"],
            ["snapshot", "list", "--bogus"],
            ["snapshot", "create", "my-vm", "--resume"],  # restore's option
            ["snapshot", "restore", "x", "--resume-source"],
            ["snapshot", "create", "my-vm", "--snapshot-id"],  # no value
            ["frobnicate"],
            ["start"],
        ]
        for argv in cases:
            with self.subTest(argv=argv):
                r = env.cli(*argv)
                self.assertCli(r, 2)
                self.assertEqual(r.out, "")
                self.assertTrue(r.err.startswith("Error: "), r.err)
                r = env.cli("--json", *argv)  # first: an option without value would take it
                self.assertCli(r, 2)
                data = json.loads(r.out)
                self.assertEqual(data["exit_code"], 2)
                self.assertEqual((data["error"]["name"], data["error"]["type"]),
                                 ("Usage", "invalid_input"))
        # help is no error
        r = env.cli("snapshot", "create", "--help")
        self.assertCli(r, 0)
        self.assertIn("--snapshot-id", r.out)
        self.assertIn("--resume-source", r.out)


class TestVmCommands(CliCase):
    def test_vm_verbs(self):
        env = self.env
        r = self.run_ok("create", "--kernel", env.kernel, "--rootfs", env.rootfs, "--vm-id",
                        "cli-vm", "--vcpus", "1", "--mem", "128", "--no-network")
        self.assertEqual(r.out, "Created VM 'cli-vm'.\n")
        self.assertEqual(env.vm_state("cli-vm"), "created")
        info = env.vm_info("cli-vm")
        self.assertEqual((info["vcpu_count"], info["mem_size_mib"]), (1, 128))
        r = self.run_ok("start", "cli-vm")
        self.assertEqual(r.out, "Started VM 'cli-vm'.\n")
        env.wait_tick("cli-vm", 1)
        self.assertEqual(self.run_ok("pause", "cli-vm").out, "Paused VM 'cli-vm'.\n")
        self.assertEqual(env.vm_state("cli-vm"), "paused")
        self.assertEqual(self.run_ok("resume", "cli-vm").out, "Resumed VM 'cli-vm'.\n")
        self.assertEqual(env.vm_state("cli-vm"), "running")
        r = self.run_ok("list")
        lines = r.out.split("\n")
        self.assertEqual(lines[0].split(), ["VM", "ID", "State", "Backend", "vCPUs", "Memory",
                                            "Guest", "IP"])
        self.assertEqual(lines[1].split(), ["cli-vm", "running", "firecracker", "1", "128", "MiB",
                                            "-"])
        self.assertEqual(lines[2:], ["", "Total: 1 VM(s).", ""])
        data = self.run_ok("list", "--json").json()
        self.assertEqual(data["command"], "vm.list")
        self.assertEqual([v["vm_id"] for v in data["data"]["vms"]], ["cli-vm"])
        self.assertEqual(data["data"]["vms"][0]["state"], "running")
        self.assertEqual(data["data"]["vms"][0]["pid"], env.vm_prop("cli-vm", "Pid"))

        r = env.cli("delete", "cli-vm")
        self.assertCli(r, 1)  # running: needs --force
        self.assertEqual(self.run_ok("stop", "cli-vm").out, "Stopped VM 'cli-vm'.\n")
        self.assertEqual(env.vm_state("cli-vm"), "stopped")
        data = self.run_ok("start", "cli-vm", "--json").json()
        self.assertEqual(data["command"], "vm.start")
        self.assertEqual(data["data"]["vm"]["state"], "running")
        self.assertEqual(self.run_ok("delete", "cli-vm", "--force").out, "Deleted VM 'cli-vm'.\n")
        self.assertEqual(env.list_vms(), {})
        self.assertEqual(env.emulator_pids(), [])

        r = self.run_ok("create", "--kernel", env.kernel, "--rootfs", env.rootfs, "--vm-id",
                        "quick", "--mem", "128", "--no-network", "--start")
        self.assertEqual(r.out, "Created VM 'quick'.\nStarted VM 'quick'.\n")
        self.assertEqual(env.vm_state("quick"), "running")


BIG_SIZE = 2048 * st.MIB
BIG_DATA = 1536 * st.MIB


def make_big_rootfs(path):
    """A sparse image of BIG_SIZE holding BIG_DATA bytes of random data, so
    that copying it takes a while (no holes to skip, nothing to dedupe)."""
    with open(path, "wb") as f:
        f.truncate(BIG_SIZE)
        with open("/dev/urandom", "rb") as rnd:
            for _ in range(BIG_DATA // (4 * st.MIB)):
                f.write(rnd.read(4 * st.MIB))


class TestProgressAndCancel(CliCase):
    """The bar, Ctrl-C and the job verbs against smolvmd, through a
    pseudo-terminal, on a VM whose disk takes a while to copy."""

    def setUp(self):
        super().setUp()
        self.big = os.path.join(self.env.root, "big.ext4")
        make_big_rootfs(self.big)
        self.env.running_vm("big", rootfs=self.big)

    def pty(self, *args):
        run = PtyRun([st.CLI, "--session"] + list(args), self.env.client_env())
        self.addCleanup(run.kill)
        return run

    def snapshots_dir(self):
        """Every entry of the snapshots directory, with its content (not
        times: a cancelled snapshot was built in a hidden directory there)."""
        return st.tree_fingerprint(os.path.join(self.env.state_dir, "snapshots"))

    def test_bar(self):
        run = self.pty("snapshot", "create", "big", "--snapshot-id", "s1", "--resume-source")
        run.finish()
        self.assertEqual((run.rc, run.err), (0, ""), run.out)
        drawn = bars(run.out)
        phases = [b.split()[0] for b in drawn]
        self.assertIn("copying-disk", phases, drawn)
        self.assertNotIn("authorizing", phases)
        copying = [b for b in drawn if b.startswith("copying-disk") and "%" in b]
        self.assertTrue(copying, drawn)
        self.assertRegex(copying[-1], r"^copying-disk +\[[#.]{20}\] +\d+%  [\d.]+ \S+ / \d")
        self.assertTrue(run.out.endswith(ERASE + "Created snapshot 's1' from VM 'big'.\n"),
                        repr(run.out[-300:]))
        self.assertEqual(self.env.snapshot_ids(), ["s1"])

        # the other verbs with a Job: restore, clone, create, delete
        env = self.env
        for argv, message in (
                (["snapshot", "restore", "s1"], "Restored snapshot 's1' into VM 'big'.\n"),
                (["snapshot", "clone", "s1", "--vm-id", "big-c"],
                 "Cloned snapshot 's1' into VM 'big-c'.\n"),
                (["create", "--kernel", env.kernel, "--rootfs", self.big, "--vm-id", "big2",
                  "--mem", "128", "--no-network"], "Created VM 'big2'.\n"),
                (["delete", "big2"], "Deleted VM 'big2'.\n")):
            with self.subTest(argv=argv):
                run = self.pty(*argv)
                run.finish()
                self.assertEqual((run.rc, run.err), (0, ""), run.out)
                self.assertTrue(bars(run.out), run.out)
                self.assertTrue(run.out.endswith(ERASE + message), repr(run.out[-300:]))

    def test_ctrl_c(self):
        env = self.env
        before = self.snapshots_dir()
        run = self.pty("snapshot", "create", "big", "--snapshot-id", "s2")
        run.wait_for(lambda: any(b.startswith("copying-disk") for b in bars(run.out)),
                     "the bar of the disk copy")
        run.ctrl_c()
        run.finish()
        self.assertEqual(run.rc, 1, repr(run.out) + run.err)
        self.assertTrue(run.err.startswith("Error: Cancelled"), run.err)
        self.assertEqual(run.err.count("\n"), 1, run.err)
        self.assertTrue(run.out.endswith(ERASE), repr(run.out[-300:]))
        # rolled back: the snapshots directory as it was, the VM running again
        self.assertEqual(self.snapshots_dir(), before)
        self.assertEqual(env.snapshot_ids(), [])
        self.assertEqual(env.vm_state("big"), "running")

    def test_ctrl_c_clone(self):
        """Ctrl-C while the clones copy their disks: none is left. Once
        some are made: those are kept, the error names them, and --json
        lists them in the error's details; the others are undone."""
        env = self.env
        env.create_snapshot("big", "s4", **{"resume-source": True})
        run = self.pty("snapshot", "clone", "s4", "--count", "3")
        # the bytes of the copies, made together, are counted: a percentage
        run.wait_for(lambda: any(b.startswith("copying-disk") and "%" in b
                                 for b in bars(run.out)), "the bar of the disk copies")
        run.ctrl_c()
        run.finish()
        self.assertEqual(run.rc, 1, repr(run.out) + run.err)
        self.assertTrue(run.err.startswith(
            "Error: Cancelled: Cloned snapshot 's4' into 0 of 3 VMs; VM 'big-1': "), run.err)
        self.assertIn("VM 'big-3': ", run.err)
        self.assertTrue(run.out.endswith(ERASE), repr(run.out[-300:]))
        # the clones under way were undone
        self.assertEqual(sorted(env.list_vms()), ["big"])
        self.assertEqual(sorted(os.listdir(os.path.join(env.state_dir, "vms"))), ["big"])

        # smolvmd copies four disks at once: the fifth clone begins when one
        # of those copies is over, and copies 1.5 GiB; the Ctrl-C comes
        # during it, once big-1 is made
        run = self.pty("snapshot", "clone", "s4", "--count", "5", "--json")
        st.wait_for(lambda: "big-1" in env.list_vms(), "the first clone")
        run.ctrl_c()
        run.finish()
        self.assertEqual((run.rc, run.err), (1, ""), run.out)
        error = json.loads(run.out.replace("^C", ""))["error"]
        self.assertEqual(error["name"], "Cancelled", error)
        kept = sorted(v for v in env.list_vms() if v != "big")
        self.assertIn("big-1", kept)
        self.assertNotIn("big-5", kept)
        self.assertIn("Cloned snapshot 's4' into %d of 5 VMs (%s, kept)"
                      % (len(kept), ", ".join("'%s'" % v for v in kept)), error["message"])
        self.assertIn("VM 'big-5': ", error["message"])
        self.assertEqual(error["details"], {"snapshot_id": "s4", "vms": [
            {"name": v, "vm_id": v, "status": "paused", "ip_address": None, "ssh_port": None}
            for v in kept]})
        self.assertEqual(sorted(os.listdir(os.path.join(env.state_dir, "vms"))),
                         sorted(["big"] + kept))

    def test_job_list_and_cancel(self):
        env = self.env
        before = self.snapshots_dir()
        call = env.adopt(env.gdbus_background(st.MANAGER_PATH, "CreateSnapshot", "'big'", "'s3'",
                                              "@a{sv} {}"))

        def running_job():
            jobs = self.run_ok("job", "list", "--json").json()["data"]["jobs"]
            return [j for j in jobs if j["phase"] == "copying-disk"]
        job = st.wait_for(running_job, "the job copying the disk")[0]
        self.assertEqual(job["operation"], "snapshot-create")
        self.assertIn(st.vm_path("big"), job["objects"])
        self.assertEqual(job["started_by_uid"], os.getuid())
        self.assertTrue(job["cancelable"])
        self.assertEqual(job["path"], "/org/smolvm/Manager/job/%d" % job["job"])
        table = self.run_ok("job", "list").out
        self.assertIn("snapshot-create", table)
        self.assertIn("vm/big", table)

        r = self.run_ok("job", "cancel", str(job["job"]))
        self.assertEqual(r.out, "Cancelled job %d.\n" % job["job"])
        out, err = call.communicate(timeout=st.DEADLINE)
        with self.assertRaises(st.DBusError) as failed:
            st.gdbus_result(call.returncode, out, err)
        self.assertEqual(failed.exception.name, st.ERROR_PREFIX + "Cancelled")
        self.assertEqual(self.snapshots_dir(), before)
        r = env.cli("job", "cancel", str(job["job"]))
        self.assertCli(r, 1)
        self.assertEqual(r.err, "Error: Job %d not found\n" % job["job"])


if __name__ == "__main__":
    st.main("cli")
