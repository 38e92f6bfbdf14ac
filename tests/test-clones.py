#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Clones (org.smolvm.Manager.CloneSnapshot, org.smolvm.Snapshot.Clone) on
the Firecracker emulator: new VMs from one snapshot, their ids, ClonedFrom
and Clones, the rules of delete and restore, and the refusals."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smolvmtest as st  # noqa: E402
from smolvmtest import GVText, gv_dict, gv_str, snapshot_path, vm_path  # noqa: E402


def paths_of(out):
    return re.findall(r"'(/org/smolvm/Manager/vm/[^']*)'", out)


class TestClones(st.TestCase):
    def setUp(self):
        super().setUp()
        env = self.env
        env.running_vm("src")
        env.create_snapshot("src", "s1", **{"resume-source": True})

    def clone(self, snapshot_id, **options):
        return paths_of(self.env.call("CloneSnapshot", gv_str(snapshot_id), gv_dict(options)))

    def test_clones(self):
        env = self.env
        snap_dir = os.path.join(env.state_dir, "snapshots", "s1")
        made = self.clone("s1", count=GVText("uint32 3"), resume=True)
        self.assertEqual(made, [vm_path("src-%d" % n) for n in (1, 2, 3)])
        for n in (1, 2, 3):
            vm_id = "src-%d" % n
            self.assertEqual(env.vm_state(vm_id), "running")
            self.assertEqual(env.vm_prop(vm_id, "ClonedFrom"), "s1")
            self.assertEqual(env.vm_prop(vm_id, "RestoredFrom"), "")
            vm_dir = os.path.join(env.state_dir, "vms", vm_id)
            self.assertTrue(st.files_identical(os.path.join(vm_dir, "disk.ext4"),
                                               os.path.join(snap_dir, "disk.ext4")))
            self.assertEqual(os.stat(os.path.join(vm_dir, "kernel")).st_ino,
                             os.stat(os.path.join(snap_dir, "kernel")).st_ino)
            self.assertEqual(env.vm_info(vm_id)["cloned_from"], "s1")
        self.assertEqual(env.snap_prop("s1", "Clones"), made)
        # not a restore
        info = env.snapshot_info("s1")
        self.assertEqual((info["restored"], info["restored_vm_id"]), (False, ""))
        self.assertEqual(env.vm_state("src"), "running")

        # the snapshot's memory is mapped: no delete
        err = self.assertDBusError("InUse", env.delete_snapshot, "s1")
        self.assertIn("cloned", err.message)

        # through the snapshot object, with ids; paused without resume
        made2 = paths_of(env.gdbus(snapshot_path("s1"), "Clone", gv_dict(
            {"vm-ids": GVText("['b-vm', 'a-vm']")}), iface=st.SNAPSHOT_IFACE))
        self.assertEqual(made2, [vm_path("b-vm"), vm_path("a-vm")])
        self.assertEqual((env.vm_state("a-vm"), env.vm_state("b-vm")), ("paused", "paused"))
        self.assertEqual(env.snap_prop("s1", "Clones"), sorted(made + made2))

        # the restore-once rule is untouched, and a clone does not block it
        env.restore("s1", resume=True)
        self.assertEqual(env.vm_state("src"), "running")
        self.assertEqual(env.snapshot_info("s1")["restored_vm_id"], "src")

        # a clone is an ordinary VM: snapshot it and restore that
        env.create_snapshot("src-1", "c1", **{"resume-source": True})
        self.assertEqual(env.snapshot_info("c1")["vm_id"], "src-1")
        env.vm("src-1", "Stop", gv_dict())
        env.restore("c1", resume=True)
        self.assertEqual(env.vm_state("src-1"), "running")
        # it maps c1 now, no longer s1
        self.assertNotIn(vm_path("src-1"), env.snap_prop("s1", "Clones"))

        # stopped, or booted afresh, a clone no longer maps the snapshot
        env.vm("src-2", "Stop", gv_dict())
        env.vm("src-3", "Stop", gv_dict())
        env.vm("src-3", "Start")
        self.assertEqual(env.snap_prop("s1", "Clones"), [vm_path("a-vm"), vm_path("b-vm")])
        self.assertEqual(env.vm_prop("src-3", "ClonedFrom"), "s1")
        for vm_id in ("a-vm", "b-vm"):
            env.vm(vm_id, "Delete", gv_dict({"force": True}))
        self.assertEqual(env.snap_prop("s1", "Clones"), [])
        # the restored src still maps it
        self.assertDBusError("InUse", env.delete_snapshot, "s1")
        env.vm("src", "Stop", gv_dict())
        env.delete_snapshot("s1")

    def test_generated_ids_skip_taken_ones(self):
        env = self.env
        env.create_vm("src-1")
        made = self.clone("s1", count=GVText("uint32 2"))
        self.assertEqual(made, [vm_path("src-2"), vm_path("src-3")])

    def test_survives_a_restart(self):
        env = self.env
        made = self.clone("s1", count=GVText("uint32 2"), resume=True)
        env.daemon.restart()
        self.assertEqual(env.snap_prop("s1", "Clones"), made)
        self.assertEqual(env.vm_prop("src-1", "ClonedFrom"), "s1")
        self.assertEqual(env.vm_state("src-2"), "running")
        self.assertDBusError("InUse", env.delete_snapshot, "s1")

    def test_refusals(self):
        env = self.env
        before = sorted(env.list_vms())
        cases = [
            ("InvalidArgument", "s1", {"count": GVText("uint32 0")}),
            ("InvalidArgument", "s1", {"count": GVText("uint32 65")}),
            ("InvalidArgument", "s1", {"count": GVText("int32 2")}),  # not u
            ("InvalidArgument", "s1", {"colour": "blue"}),
            ("InvalidArgument", "s1", {"vm-ids": GVText("['x', 'x']")}),
            ("InvalidArgument", "s1", {"vm-ids": GVText("['Bad_Id']")}),
            ("InvalidArgument", "s1", {"vm-ids": GVText("['x']"), "count": GVText("uint32 2")}),
            ("AlreadyExists", "s1", {"vm-ids": GVText("['fresh', 'src']")}),
            ("Unsupported", "s1", {"network": True}),
            ("NotFound", "nope", {}),
            ("InvalidArgument", "Bad_Snap", {}),
        ]
        for name, snapshot_id, options in cases:
            with self.subTest(options=options, snapshot=snapshot_id):
                self.assertDBusError(name, env.call, "CloneSnapshot", gv_str(snapshot_id),
                                     gv_dict(options))
        self.assertEqual(sorted(env.list_vms()), before, "nothing made")
        self.assertEqual(sorted(os.listdir(os.path.join(env.state_dir, "vms"))), before)
        # an id refused once is free: the failed call released what it reserved
        self.assertEqual(self.clone("s1", **{"vm-ids": GVText("['fresh']")}),
                         [vm_path("fresh")])

    def test_a_failed_clone_keeps_the_others(self):
        """The second clone fails (an id so long that its VMM's socket path
        does not fit): the first is kept, the call fails naming both, and
        nothing of the second is left."""
        env = self.env
        long_id = "v" * 64
        err = self.assertDBusError("Failed", env.call, "CloneSnapshot", gv_str("s1"), gv_dict(
            {"vm-ids": GVText("['ok-1', '%s']" % long_id), "resume": True}))
        self.assertIn("Cloned snapshot 's1' into 1 of 2 VMs ('ok-1', kept)", err.message)
        self.assertIn("VM '%s': " % long_id, err.message)
        self.assertIn("107 bytes", err.message)
        self.assertEqual(sorted(env.list_vms()), ["ok-1", "src"])
        self.assertEqual(env.vm_state("ok-1"), "running")
        self.assertFalse(os.path.exists(os.path.join(env.state_dir, "vms", long_id)))
        self.assertEqual(env.snap_prop("s1", "Clones"), [vm_path("ok-1")])
        # its id is free again: the same failure, not AlreadyExists
        self.assertDBusError("Failed", env.call, "CloneSnapshot", gv_str("s1"), gv_dict(
            {"vm-ids": GVText("['%s']" % long_id)}))

    def held_env(self):
        """An env whose VMMs start through a wrapper that holds the VMM of
        a VM held-* until the test makes the file release-<its id>: that
        clone's load waits, and only it."""
        env = self.new_env(start=False)
        wrapper = os.path.join(env.root, "fc-wrapper")
        with open(wrapper, "w") as f:
            f.write('#!/bin/sh\n'
                    '# argv: --api-sock SOCKET --id VM_ID\n'
                    'case "$4" in held-*)\n'
                    '  while [ ! -e %s/release-"$4" ]; do sleep 0.05; done;;\n'
                    'esac\n'
                    'exec %s "$@"\n' % (shlex.quote(env.root), shlex.quote(st.EMULATOR)))
        os.chmod(wrapper, 0o755)
        env.daemon.extra_args += ["--firecracker-bin", wrapper]
        env.daemon.start()
        env.running_vm("src")
        env.create_snapshot("src", "s1", **{"resume-source": True})
        return env

    def release(self, env, vm_id):
        open(os.path.join(env.root, "release-" + vm_id), "w").close()

    def test_clones_are_made_together(self):
        """The first clone's VMM cannot load yet: the second, made at the
        same time, is running meanwhile, while the call and its Job go on
        (one after the other, it would wait for the first). Then a Cancel
        while a clone loads: that one is undone, the one made is kept."""
        from jobwatch import GLib, JobWatch
        env = self.held_env()
        w = JobWatch(env)
        self.addCleanup(w.close)
        w.call(st.MANAGER_PATH, st.MANAGER_IFACE, "CloneSnapshot", GLib.Variant(
            "(sa{sv})", ("s1", {"vm-ids": GLib.Variant("as", ["held-1", "free-1"]),
                                "resume": GLib.Variant("b", True)})))
        w.run_until(lambda: "free-1" in env.list_vms(), "free-1 to be made")
        self.assertIsNone(w.reply)
        self.assertEqual(env.vm_state("free-1"), "running")
        self.assertNotIn("held-1", env.list_vms())
        self.assertEqual(env.snap_prop("s1", "Clones"), [vm_path("free-1")])
        job = w.only_job()
        self.assertEqual(w.props[job]["Operation"], "snapshot-clone")
        # every disk is copied: the Job shows the load still under way
        w.run_until(lambda: w.props[job].get("Phase") == "loading-state", "loading-state")
        self.assertFalse(w.props[job]["ProgressValid"])
        self.release(env, "held-1")
        self.assertEqual(w.wait_reply(), ("ok", ([vm_path("held-1"), vm_path("free-1")],)))
        phases = w.phases(job)
        self.assertEqual(phases[-1], "loading-state", phases)
        self.assertNotIn("copying-disk", phases[phases.index("loading-state"):])
        # the copies' bytes are measured, all of them
        self.assertEqual(w.valid_by_phase(job).get("copying-disk", {True}), {True})
        self.assertEqual(w.props[job]["BytesDone"], w.props[job]["BytesTotal"])
        self.assertEqual(w.completed[job], (True, ""))
        self.assertEqual((env.vm_state("held-1"), env.vm_state("free-1")),
                         ("running", "running"))
        self.assertEqual(env.snap_prop("s1", "Clones"), [vm_path("free-1"), vm_path("held-1")])

        # a Cancel while held-2 loads: free-2, running already, is kept
        w2 = JobWatch(env)
        self.addCleanup(w2.close)
        w2.call(st.MANAGER_PATH, st.MANAGER_IFACE, "CloneSnapshot", GLib.Variant(
            "(sa{sv})", ("s1", {"vm-ids": GLib.Variant("as", ["held-2", "free-2"])})))
        w2.run_until(lambda: "free-2" in env.list_vms(), "free-2 to be made")
        job = w2.only_job()
        self.assertIsNone(w2.cancel(job))
        reply = w2.wait_reply()
        self.assertEqual(reply[:2], ("error", st.ERROR_PREFIX + "Cancelled"), reply)
        self.assertTrue(reply[2].startswith(
            "Cancelled: Cloned snapshot 's1' into 1 of 2 VMs ('free-2', kept); VM 'held-2': "),
            reply)
        self.assertEqual(w2.completed[job], (False, reply[2]))
        self.assertEqual(sorted(env.list_vms()), ["free-1", "free-2", "held-1", "src"])
        self.assertEqual(env.vm_state("free-2"), "paused")
        self.assertFalse(os.path.exists(os.path.join(env.state_dir, "vms", "held-2")))
        # its VMM is gone too (the wrapper, before it became the emulator)
        st.wait_for(lambda: not any("held-2" in cmd for cmd in self.commands(env)),
                    "held-2's VMM to go")
        self.assertEqual(env.snap_prop("s1", "Clones"),
                         [vm_path(v) for v in ("free-1", "free-2", "held-1")])

    def commands(self, env):
        out = []
        for pid in env.our_pids():
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    out.append(f.read().decode(errors="replace"))
            except OSError:
                pass
        return out

    def test_damaged_snapshot(self):
        """A mem.bin of the wrong size, or a damaged vmstate.bin, is refused
        before any clone is made."""
        env = self.env
        snap_dir = os.path.join(env.state_dir, "snapshots", "s1")
        mem = os.path.join(snap_dir, "mem.bin")
        size = os.path.getsize(mem)
        os.truncate(mem, size // 2)
        err = self.assertDBusError("Failed", env.call, "CloneSnapshot", gv_str("s1"),
                                   gv_dict({"count": GVText("uint32 2")}))
        self.assertIn("mem.bin", err.message)
        os.truncate(mem, size)
        vmstate = os.path.join(snap_dir, "vmstate.bin")
        with open(vmstate, "r+b") as f:
            byte = f.read(1)
            f.seek(0)
            f.write(bytes([byte[0] ^ 0xff]))
        err = self.assertDBusError("Failed", env.call, "CloneSnapshot", gv_str("s1"), gv_dict())
        self.assertIn("checksum", err.message)
        self.assertEqual(sorted(env.list_vms()), ["src"])


# smolvmd in network and mount namespaces of its own, held by a process of
# the test (so that a restarted smolvmd finds them again), with a sysfs of
# that network namespace and a /run/netns of its own: the clones'
# namespaces, veths and TAPs never touch the host or another test's daemon.
# Two namespaces of other programs are made in there before it starts, one named
# like a clone's: it must leave both alone.
FOREIGN = ["other-ns", "smolvm-stale"]


def mac_of(ip):
    """The MAC smolvmd derives from a pool address: 06:00 and its bytes."""
    return "06:00:" + ":".join("%02X" % int(b) for b in ip.split("."))


def host_end(host_ip):
    """The host's end of a clone's veth pair: the address before host_ip."""
    head, last = host_ip.rsplit(".", 1)
    return "%s.%d" % (head, int(last) - 1)


@st.unittest.skipUnless(st.IS_ROOT and shutil.which("unshare") and shutil.which("nsenter")
                        and shutil.which("ip") and shutil.which("nft")
                        and os.path.exists("/dev/net/tun"),
                        "needs root, unshare, nsenter, ip, nft and /dev/net/tun")
class TestCloneNetwork(st.TestCase):
    """Networked clones: each in a network namespace of its own, reached
    from the host at its own address through a veth pair and NAT."""

    def net_env(self):
        return self.net_namespaced_env(" && ".join("ip netns add " + n for n in FOREIGN))

    def mac(self, env, dev, ns=None):
        argv = ["ip", "-o", "link", "show", "dev", dev]
        out = self.in_ns(env, ns, *argv) if ns else self.in_daemon(env, *argv, mount=False).stdout
        return re.search(r"link/ether ([0-9a-f:]{17})", out).group(1).upper()

    def records(self, env):
        d = os.path.join(env.runtime_dir, "netns")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def in_daemon(self, env, *argv, mount=True):
        """@argv in smolvmd's network (and mount) namespace."""
        ns = ["--net=/proc/%d/ns/net" % env.daemon.pid]
        if mount:
            ns.append("--mount=/proc/%d/ns/mnt" % env.daemon.pid)
        return subprocess.run(["nsenter"] + ns + list(argv), capture_output=True, text=True)

    def namespaces(self, env):
        out = self.in_daemon(env, "ip", "netns", "list").stdout
        return sorted(line.split()[0] for line in out.splitlines() if line.strip())

    def links(self, env):
        out = self.in_daemon(env, "ip", "-o", "link", "show", mount=False).stdout
        return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]

    def in_ns(self, env, ns, *argv):
        r = self.in_daemon(env, "ip", "netns", "exec", ns, *argv)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def tcp_peer(self, env, server_ns, bind_ip, client_ns, connect_ip, client_ip=None):
        """Accepts one TCP connection on @bind_ip (in the namespace @server_ns,
        None: smolvmd's), made to @connect_ip from @client_ns (from
        @client_ip); the peer address the server saw."""
        def argv(ns, code):
            inner = ["ip", "netns", "exec", ns] if ns else []
            return ["nsenter", "--net=/proc/%d/ns/net" % env.daemon.pid,
                    "--mount=/proc/%d/ns/mnt" % env.daemon.pid] + inner + [
                        sys.executable, "-c", code]
        server = subprocess.Popen(argv(server_ns, (
            "import socket\ns = socket.socket(); s.bind((%r, 7777)); s.listen(1)\n"
            "print('ready', flush=True)\nc, peer = s.accept(); print(peer[0])") % bind_ip),
            stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(server.stdout.readline().strip(), "ready")
            client = subprocess.run(argv(client_ns, (
                "import socket\ns = socket.socket()\n%s"
                "s.settimeout(10); s.connect((%r, 7777))")
                % ("s.bind((%r, 0))\n" % client_ip if client_ip else "", connect_ip)),
                capture_output=True, text=True, timeout=30)
            self.assertEqual(client.returncode, 0, client.stderr)
            return server.communicate(timeout=30)[0].strip()
        finally:
            server.kill()
            server.wait()

    def load_requests(self, env):
        with open(env.request_log) as f:
            return [json.loads(line)["body"] for line in f if '"/snapshot/load"' in line]

    def settled(self, env):
        """No `ip` child of smolvmd runs (removals are in the background)."""
        def none():
            for entry in os.listdir("/proc"):
                try:
                    with open("/proc/%s/stat" % entry) as f:
                        stat = f.read()
                except OSError:
                    continue
                ppid = int(stat[stat.rindex(")") + 2:].split()[1])
                if ppid == env.daemon.pid and stat[stat.index("(") + 1:stat.rindex(")")] == "ip":
                    return False
            return True
        st.wait_for(none, "smolvmd's ip commands to end")

    def test_networked_clones(self):
        env = self.net_env()
        self.settled(env)
        # other programs' namespaces stay, whatever their names
        self.assertEqual(self.namespaces(env), FOREIGN)
        self.assertEqual(self.records(env), [])
        env.running_vm("src", network=None)
        src_net = env.vm_info("src")["network_config"]
        env.create_snapshot("src", "s1", **{"resume-source": True})

        # network=false for a guest with a NIC is refused, and so is
        # network=true for one without
        err = self.assertDBusError("Unsupported", env.call, "CloneSnapshot", gv_str("s1"),
                                   gv_dict({"network": False}))
        self.assertIn("network interface", err.message)
        env.running_vm("plain")
        env.create_snapshot("plain", "s-plain", **{"resume-source": True})
        self.assertDBusError("InvalidArgument", env.call, "CloneSnapshot", gv_str("s-plain"),
                             gv_dict({"network": True}))
        self.assertEqual(self.namespaces(env), FOREIGN)

        made = paths_of(env.call("CloneSnapshot", gv_str("s1"),
                                 gv_dict({"count": GVText("uint32 2"), "resume": True})))
        self.assertEqual(made, [vm_path("src-1"), vm_path("src-2")])
        self.settled(env)
        nets = [env.vm_info(v)["network_config"] for v in ("src-1", "src-2")]
        daemon_ns = os.stat("/proc/%d/ns/net" % env.daemon.pid).st_ino
        for vm_id, net in zip(("src-1", "src-2"), nets):
            self.assertEqual(env.vm_prop(vm_id, "NetworkConfig"), net)
            self.assertIs(env.vm_info(vm_id)["network"], True)
            # the guest's side is the snapshot's: it is in its memory
            for key in ("guest_ip", "gateway_ip", "netmask", "tap_device", "guest_mac"):
                self.assertEqual(net[key], src_net[key], key)
            self.assertEqual(net["namespace"], "smolvm-" + vm_id)
            self.assertEqual(net["namespace_veth"], "veth0")
            # the host's end of the veth pair, with the .1 next to host_ip
            out = self.in_daemon(env, "ip", "-o", "addr", "show", "dev", net["host_veth"],
                                 mount=False).stdout
            self.assertIn("inet %s/30" % host_end(net["host_ip"]), out)
            # in the namespace: the veth end with host_ip, the TAP with the gateway
            ns = net["namespace"]
            self.assertIn("inet %s/30" % net["host_ip"],
                          self.in_ns(env, ns, "ip", "-o", "addr", "show", "dev", "veth0"))
            self.assertIn("inet %s/30" % net["gateway_ip"],
                          self.in_ns(env, ns, "ip", "-o", "addr", "show", "dev",
                                     net["tap_device"]))
            self.assertEqual(self.in_ns(env, ns, "sysctl", "-n", "net.ipv4.ip_forward").strip(),
                             "1")
            nat = self.in_ns(env, ns, "nft", "list", "table", "ip", "smolvm")
            self.assertRegex(nat, r'iifname "veth0" ip daddr %s dnat to %s'
                             % (re.escape(net["host_ip"]), re.escape(net["guest_ip"])))
            self.assertRegex(nat, r'oifname "veth0" ip saddr %s snat to %s'
                             % (re.escape(net["guest_ip"]), re.escape(net["host_ip"])))
            # the VMM runs in that namespace, not in the daemon's
            pid = env.vm_info(vm_id)["pid"]
            vmm_ns = os.stat("/proc/%d/ns/net" % pid).st_ino
            self.assertNotEqual(vmm_ns, daemon_ns)
            ns_ino = self.in_daemon(env, "stat", "-L", "-c", "%i", "/run/netns/" + ns).stdout
            self.assertEqual(vmm_ns, int(ns_ino))
            # MACs: the guest keeps the snapshot's (in its memory), and its
            # TAP shows it the gateway MAC the source's did (in its ARP
            # cache); the veth pair's are the clone's own, host_mac where
            # the host reaches it
            self.assertEqual(net["host_mac"], mac_of(net["host_ip"]))
            self.assertEqual(self.mac(env, "veth0", ns), net["host_mac"])
            self.assertEqual(self.mac(env, net["host_veth"]), mac_of(host_end(net["host_ip"])))
            self.assertEqual(self.mac(env, net["tap_device"], ns),
                             self.mac(env, src_net["tap_device"]))
        self.assertEqual(self.mac(env, src_net["tap_device"]), mac_of(src_net["gateway_ip"]))
        self.assertNotIn("host_mac", src_net)
        self.assertNotEqual(nets[0]["host_mac"], nets[1]["host_mac"])
        # the namespaces smolvmd made are recorded as its own
        self.assertEqual(self.records(env), ["smolvm-src-1", "smolvm-src-2"])
        # the NAT, with the guest's address made local in the namespace
        # (the emulator has no guest): the host's connection to host_ip
        # reaches guest_ip (DNAT: nothing else listens on guest_ip), and
        # the guest's to the host comes from host_ip (SNAT)
        net, ns = nets[0], nets[0]["namespace"]
        end = host_end(net["host_ip"])
        self.in_ns(env, ns, "ip", "addr", "add", net["guest_ip"] + "/32", "dev", "lo")
        self.assertEqual(self.tcp_peer(env, ns, net["guest_ip"], None, net["host_ip"]), end)
        self.assertEqual(self.tcp_peer(env, None, end, ns, end, net["guest_ip"]),
                         net["host_ip"])
        # distinct namespaces, host addresses, host veths, and TAP devices
        # (same name, each in its own namespace)
        for key in ("namespace", "host_ip", "host_veth"):
            self.assertNotEqual(nets[0][key], nets[1][key], key)
        self.assertNotIn(nets[0]["host_ip"], (src_net["guest_ip"], nets[1]["host_ip"]))
        # the TAP name is the snapshot's, in another namespace: no override
        loads = self.load_requests(env)
        self.assertEqual(len(loads), 2)
        for body in loads:
            self.assertNotIn("network_overrides", body)
        self.assertEqual(self.namespaces(env), sorted(FOREIGN + ["smolvm-src-1", "smolvm-src-2"]))

        # a failed clone (its VMM's socket path does not fit) leaves nothing
        long_id = "v" * 64
        self.assertDBusError("Failed", env.call, "CloneSnapshot", gv_str("s1"), gv_dict(
            {"vm-ids": GVText("['%s']" % long_id)}))
        self.settled(env)
        self.assertEqual(self.namespaces(env), sorted(FOREIGN + ["smolvm-src-1", "smolvm-src-2"]))
        self.assertEqual(self.records(env), ["smolvm-src-1", "smolvm-src-2"])
        # ... and its address is free again: the next clone gets it
        self.assertEqual(paths_of(env.call("CloneSnapshot", gv_str("s1"), gv_dict(
            {"vm-ids": GVText("['src-3']")}))), [vm_path("src-3")])
        net3 = env.vm_info("src-3")["network_config"]
        self.assertNotIn(net3["host_ip"], (nets[0]["host_ip"], nets[1]["host_ip"]))

        # deleted (running, or stopped), a clone leaves no namespace or veth
        env.vm("src-1", "Delete", gv_dict({"force": True}))
        env.vm("src-3", "Stop", gv_dict())
        self.settled(env)
        self.assertEqual(self.namespaces(env), sorted(FOREIGN + ["smolvm-src-2"]))
        env.vm("src-3", "Delete", gv_dict())
        env.vm("src-2", "Delete", gv_dict({"force": True}))
        self.settled(env)
        self.assertEqual(self.namespaces(env), FOREIGN)
        st.wait_for(lambda: self.records(env) == [], "the namespaces' records to go")
        links = self.links(env)
        for net in nets + [net3]:
            self.assertNotIn(net["host_veth"], links)
        # the snapshot's VM keeps its own TAP in the daemon's namespace
        self.assertIn(src_net["tap_device"], links)
        self.assertEqual(env.vm_state("src"), "running")

    def test_start_up_removes_only_its_own(self):
        """A clone gone while no smolvmd ran leaves its namespace behind:
        the next smolvmd removes it, as it recorded it, but not a live
        clone's, and never another program's, even named like a clone's;
        nor does a clone take over such a namespace."""
        env = self.net_env()
        env.running_vm("src", network=None)
        env.create_snapshot("src", "s1", **{"resume-source": True})
        self.in_daemon(env, "ip", "netns", "add", "smolvm-src-9")
        foreign = sorted(FOREIGN + ["smolvm-src-9"])
        # (a clone's failure is reported in the Failed reply of the call)
        err = self.assertDBusError("Failed", env.call, "CloneSnapshot", gv_str("s1"), gv_dict(
            {"vm-ids": GVText("['src-9']")}))
        self.assertIn("network namespace smolvm-src-9 exists and was not made by smolvmd",
                      err.message)
        self.settled(env)
        self.assertEqual(self.namespaces(env), foreign)
        self.assertEqual(self.records(env), [])
        self.assertNotIn("src-9", env.list_vms())

        env.call("CloneSnapshot", gv_str("s1"), gv_dict({"count": GVText("uint32 2")}))
        self.settled(env)
        self.assertEqual(self.records(env), ["smolvm-src-1", "smolvm-src-2"])
        gone_pid = env.vm_info("src-1")["pid"]
        # src-1 goes while no smolvmd runs: its VMM and its record
        env.daemon.kill()
        os.kill(gone_pid, 9)
        st.wait_for(lambda: not st.process_alive(gone_pid), "src-1's VMM to exit")
        shutil.rmtree(os.path.join(env.state_dir, "vms", "src-1"))
        env.daemon.start()
        self.settled(env)
        self.assertEqual(self.namespaces(env), sorted(foreign + ["smolvm-src-2"]))
        st.wait_for(lambda: self.records(env) == ["smolvm-src-2"], "src-1's record to go")
        self.assertEqual(sorted(env.list_vms()), ["src", "src-2"])
        env.vm("src-2", "Delete", gv_dict({"force": True}))
        self.settled(env)
        self.assertEqual(self.namespaces(env), foreign)


if __name__ == "__main__":
    st.main("clones")
