#!/usr/bin/python3
"""Writes the seed corpora of tests/fuzz/corpus/<target>/ (run from anywhere;
the seeds are checked in, this only documents and regenerates them)."""
import json
import os

from gi.repository import GLib

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

CONFIG = {"vm_id": "fuzz", "backend": "firecracker", "vcpu_count": 2, "mem_size_mib": 512,
          "kernel_path": "/k", "initrd_path": "", "rootfs_path": "/r",
          "boot_args": "console=ttyS0", "network": False, "accel": "auto", "machine": ""}
NET = {"guest_ip": "172.16.0.2", "gateway_ip": "172.16.0.1", "netmask": "255.255.255.252",
       "tap_device": "smolvm-tap0", "guest_mac": "06:00:ac:10:00:02"}


def write(target, name, data):
    os.makedirs(os.path.join(HERE, target), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(HERE, target, name), "wb") as f:
        f.write(data)


def snapshot(**over):
    s = {"snapshot_id": "fuzz", "vm_id": "fuzz", "snapshot_path": "/s/vmstate.bin",
         "mem_file_path": "/s/mem.bin", "disk_path": "/s/disk.ext4", "vm_config": CONFIG,
         "network_config": NET, "created_at": "2026-04-03T12:30:00.123456+00:00",
         "restored": False, "restored_vm_id": None, "backend": "firecracker",
         "vmstate_sha256": "0" * 64}
    s.update(over)
    return json.dumps(s, indent=2)


write("snapshot-json", "valid", snapshot())
write("snapshot-json", "qemu-restored", snapshot(
    backend="qemu", restored=True, restored_vm_id="fuzz", network_config={},
    vm_config=dict(CONFIG, backend="qemu", accel="tcg", machine="pc-q35-7.2"),
    created_at="1999-12-31T23:59:59Z"))
write("snapshot-json", "network-not-object", snapshot(network_config="x"))
write("snapshot-json", "wrong-types", snapshot(vm_id=7, restored="yes", created_at=[]))
write("snapshot-json", "not-object", "[1, 2, 3]")

vm = {"vm_id": "fuzz", "config": CONFIG, "network_config": NET, "state": "stopped",
      "pid": 0, "restored_from": ""}
write("vm-json", "valid", json.dumps(vm, indent=2))
write("vm-json", "running-qemu", json.dumps(dict(
    vm, state="running", pid=4242, restored_from="snap-1",
    config=dict(CONFIG, backend="qemu", network=True, vcpu_count=32, mem_size_mib=16384))))
write("vm-json", "weird-state", json.dumps(dict(vm, state="weird", network_config=[])))
write("vm-json", "bad-config", json.dumps(dict(vm, config=dict(CONFIG, vcpu_count="two"))))

write("config", "full", """# smolvmd.conf
[daemon]
state-dir=/var/lib/smolvm
runtime-dir=/run/smolvm
firecracker-bin=/usr/bin/firecracker
qemu-bin=/usr/bin/qemu-system-x86_64
network-pool=10.0.0.0/8
vmm-timeout=30
""")
write("config", "escapes", "[daemon]\nqemu-bin=/opt/q\\sq\\n\\t\\\\\nvmm-timeout=-1\n"
      "network-pool=172.16.0.0/29\n[other]\nkey=value\n")
write("config", "unknown-key", "[daemon]\nstate-dir=/x\nbogus=1\n")
write("config", "locale", "[daemon]\nnetwork-pool[de]=1.2.3.4/8\nnetwork-pool=300.1.1.1/16\n")

v = GLib.Variant


def asv(d):
    return GLib.Variant("a{sv}", d).get_data_as_bytes().get_data()


write("vm-config", "create-firecracker", asv({
    "vm_id": v("s", "my-vm"), "kernel_path": v("s", "/k"), "rootfs_path": v("s", "/r"),
    "vcpu_count": v("u", 2), "mem_size_mib": v("u", 512), "network": v("b", False)}))
write("vm-config", "create-qemu", asv({
    "backend": v("s", "qemu"), "accel": v("s", "tcg"), "machine": v("s", "pc-q35-7.2"),
    "kernel_path": v("s", "/k"), "rootfs_path": v("s", "/r"), "initrd_path": v("s", "/i"),
    "boot_args": v("s", "")}))
write("vm-config", "wrong-type", asv({"vcpu_count": v("i", 2)}))
write("vm-config", "options-restore", asv({"resume": v("b", True), "force": v("b", False)}))
write("vm-config", "options-create-snapshot", asv({"resume-source": v("b", True)}))
write("vm-config", "options-bad", asv({"force": v("s", "yes")}))
write("vm-config", "empty", b"")

GREETING = '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": ["oob"]}}\n'
CAPS = '{"return": {}, "id": "smolvm-1"}\n'
write("qmp", "negotiation", GREETING + CAPS)
write("qmp", "replies", GREETING + CAPS +
      '{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}\n'
      '{"return": {"status": "running", "running": true}, "id": "smolvm-2"}\n'
      '{"error": {"class": "GenericError", "desc": "migration failed"}, "id": "smolvm-3"}\n'
      '{"return": {}, "id": "smolvm-4"}\n')
write("qmp", "crlf-and-junk", GREETING.replace("\n", "\r\n") + CAPS.replace("\n", "\r") +
      'not json\n[1]\n{"event": "MIGRATION", "data": {"status": "completed"}}\n'
      '{"id": 5}\n{"error": "x", "id": "smolvm-2"}\n')
write("qmp", "no-greeting", '{"return": {}, "id": "smolvm-1"}\n')
write("qmp", "error-caps", GREETING + '{"error": {"desc": "no"}, "id": "smolvm-1"}\n')
