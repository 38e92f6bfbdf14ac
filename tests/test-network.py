#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Network identities: smolvmd as root without --session gives VMs a TAP
device and an address by default, and a restore brings back the same
identity.  smolvmd runs in network and mount namespaces of its own (with a
sysfs of that network namespace), so the TAP devices never touch the host.
Needs root; skipped without it."""

import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smolvmtest as st  # noqa: E402
from smolvmtest import gv_dict, gv_str  # noqa: E402

NET_KEYS = {"guest_ip", "gateway_ip", "netmask", "tap_device", "guest_mac"}
NAMESPACES = ["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c",
              'mount -t sysfs sysfs /sys && exec "$@"', "sh"]


@st.unittest.skipUnless(st.IS_ROOT and shutil.which("unshare") and shutil.which("nsenter")
                        and shutil.which("ip") and os.path.exists("/dev/net/tun"),
                        "needs root, unshare, nsenter, ip and /dev/net/tun")
class TestNetwork(st.TestCase):
    def tap(self, env, name):
        """`ip -o addr show dev NAME` in smolvmd's network namespace, or None."""
        r = subprocess.run(["nsenter", "--net=/proc/%d/ns/net" % env.daemon.pid, "ip", "-o",
                            "addr", "show", "dev", name], capture_output=True, text=True)
        return r.stdout if r.returncode == 0 else None

    def ip_children(self, env):
        """The `ip` processes smolvmd runs now."""
        found = []
        for entry in os.listdir("/proc"):
            try:
                with open("/proc/%s/stat" % entry) as f:
                    stat = f.read()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            if ppid == env.daemon.pid and comm == "ip":
                found.append(int(entry))
        return found

    def assertTapUp(self, env, net):
        """The VM's TAP device is there and stays: no `ip` is left to remove it."""
        st.wait_for(lambda: not self.ip_children(env), "smolvmd's ip commands to end")
        out = self.tap(env, net["tap_device"])
        self.assertIsNotNone(out, "no TAP device %s" % net["tap_device"])
        self.assertIn("inet %s/30" % net["gateway_ip"], out)

    def network_requests(self, env):
        with open(env.request_log) as f:
            return [json.loads(line)["body"] for line in f
                    if '"/network-interfaces/' in line]

    def test_identity_survives_restore(self):
        env = self.new_env(session=False, wrapper=NAMESPACES)
        # no "network" key: on by default for root
        env.call("CreateVM", gv_dict({"vm_id": "net", "kernel_path": env.kernel,
                                      "rootfs_path": env.rootfs, "mem_size_mib": 128}))
        info = env.vm_info("net")
        net = info["network_config"]
        self.assertIs(info["network"], True)
        self.assertEqual(set(net), NET_KEYS)
        self.assertIs(env.vm_prop("net", "NetworkEnabled"), True)
        self.assertEqual(env.vm_prop("net", "NetworkConfig"), net)
        self.assertEqual(net["netmask"], "255.255.255.252")

        env.start_vm("net")
        self.assertTapUp(env, net)
        (iface,) = self.network_requests(env)
        self.assertEqual(iface, {"iface_id": "eth0", "host_dev_name": net["tap_device"],
                                 "guest_mac": net["guest_mac"]})
        with open(env.request_log) as f:
            boot = [json.loads(line)["body"] for line in f if '"/boot-source"' in line][0]
        self.assertIn("ip=%s::%s:%s::eth0:off" % (net["guest_ip"], net["gateway_ip"],
                                                  net["netmask"]), boot["boot_args"])

        env.running_vm("other", network=None)
        other = env.vm_info("other")["network_config"]
        for key in ("guest_ip", "tap_device", "guest_mac"):
            self.assertNotEqual(other[key], net[key])

        env.create_snapshot("net", "with-net", **{"resume-source": True})
        self.assertEqual(env.snapshot_info("with-net")["network_config"], net)
        self.assertEqual(env.snap_prop("with-net", "NetworkConfig"), net)

        # restore over the running VM: stopped, and back with the same identity
        env.restore("with-net", resume=True)
        self.assertEqual(env.vm_state("net"), "running")
        self.assertEqual(env.vm_info("net")["network_config"], net)
        self.assertTapUp(env, net)

        # stop removes the device, a start right after brings it back
        env.vm("net", "Stop", gv_dict())
        st.wait_for(lambda: self.tap(env, net["tap_device"]) is None, "the TAP device to go")
        env.start_vm("net")
        self.assertTapUp(env, net)
        # the removal of the old device must never take the new one: stop and
        # start, restore over a running VM, a few times (it used to be a race)
        for _ in range(4):
            env.vm("net", "Stop", gv_dict())
            env.vm("net", "Start")
            self.assertTapUp(env, net)
            env.restore("with-net", resume=True, force=True)
            self.assertTapUp(env, net)
            self.assertEqual(env.vm_state("net"), "running")

        # deleted: the identity is free, and another VM may take it
        env.vm("net", "Delete", "{'force': <true>}")
        st.wait_for(lambda: self.tap(env, net["tap_device"]) is None, "the TAP device to go")
        env.create_vm("thief", network=None)
        self.assertEqual(env.vm_info("thief")["network_config"], net)
        err = self.assertDBusError("InUse", env.restore, "with-net", force=True)
        self.assertIn("thief", err.message)
        self.assertDBusError("NotFound", env.call, "GetVM", gv_str("net"))
        self.assertFalse(os.path.exists(os.path.join(env.state_dir, "vms", "net")))

        # once it is free again, the restore recreates the VM with it; the
        # CLI's JSON tells its address, as SmolVM's does
        env.vm("thief", "Delete", gv_dict())
        r = subprocess.run([st.CLI, "--no-ask-password", "snapshot", "restore", "with-net",
                            "--force", "--resume", "--json"],
                           env=env.client_env(system=True), capture_output=True, text=True,
                           timeout=st.DEADLINE * 2)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(json.loads(r.stdout)["data"]["vm"],
                         {"name": "net", "vm_id": "net", "status": "running",
                          "ip_address": net["guest_ip"], "ssh_port": None})
        info = env.vm_info("net")
        self.assertEqual(info["network_config"], net)
        self.assertIs(info["network"], True)
        self.assertEqual(info["state"], "running")
        self.assertTapUp(env, net)
        self.assertEqual(env.vm_info("other")["network_config"], other)


if __name__ == "__main__":
    st.main("network")
