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


def qemu_stream(config=True, subsections=("caps",), pages=16, truncate=None):
    """A migration stream as QEMU 7.2 writes it for a snapshot of a restored
    VM (migration/savevm.c, ram.c): RAM block ram0 (64 KiB) in the stream."""
    import struct
    be32 = lambda v: struct.pack(">I", v)  # noqa: E731
    be64 = lambda v: struct.pack(">Q", v)  # noqa: E731
    name = lambda s: bytes([len(s)]) + s.encode()  # noqa: E731
    out = be32(0x5145564D) + be32(3)
    if config:
        out += b"\x07" + be32(10) + b"pc-q35-7.2"
        for sub in subsections:
            if sub == "bits":
                out += b"\x05" + name("configuration/target-page-bits") + be32(1) + be32(12)
            elif sub == "caps":
                out += (b"\x05" + name("configuration/capabilities") + be32(1) + be32(1) +
                        name("x-ignore-shared"))
            elif sub == "uuid":
                out += b"\x05" + name("configuration/uuid") + be32(1) + bytes(range(16))
    addr = (lambda a: be64(a)) if "caps" in subsections else (lambda a: b"")
    out += b"\x01" + be32(2) + name("ram") + be32(0) + be32(4)
    out += be64((16 + 2) * 4096 | 0x04)
    out += name("pc.bios") + be64(2 * 4096) + addr(0xfffc0000)
    out += name("ram0") + be64(16 * 4096) + addr(0)
    out += be64(0x10) + b"\x7e" + be32(2)
    out += b"\x02" + be32(2)
    for i in range(pages):
        flags = (0x08 if i % 3 == 0 else 0x02) | (0x20 if i else 0)
        out += be64(i * 4096 | flags) + (b"" if i else name("ram0"))
        out += bytes([i]) * 4096 if flags & 0x08 else b"\x00"
    out += be64(0x08) + name("pc.bios") + b"\xea" * 4096
    out += be64(4096 | 0x22) + b"\x00"
    out += be64(0x10) + b"\x7e" + be32(2)
    out += b"\x03" + be32(2) + be64(3 * 4096 | 0x02) + name("ram0") + b"\x00"
    out += be64(0x10) + b"\x7e" + be32(2)
    out += b"\x04" + be32(3) + name("timer") + be32(0) + be32(2) + bytes(64) + b"\x00"
    desc = b'{"page_size": 4096, "devices": []}'
    out += b"\x06" + be32(len(desc)) + desc
    return out[:truncate] if truncate else out


write("qemu-stream", "restored-vm", qemu_stream())
write("qemu-stream", "all-subsections", qemu_stream(subsections=("bits", "caps", "uuid")))
write("qemu-stream", "no-configuration", qemu_stream(config=False, subsections=()))
write("qemu-stream", "page-missing", qemu_stream(pages=15))
write("qemu-stream", "truncated", qemu_stream(truncate=200))


# oci-manifest: a manifest, a NUL, a config (fuzz-oci-manifest.c)
def oci_manifest(**over):
    layer = "sha256:" + "ab" * 32
    m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "artifactType": "application/vnd.smolvm.snapshot.v1",
         "config": {"mediaType": "application/vnd.smolvm.snapshot.config.v1+json",
                    "digest": "sha256:" + "cd" * 32, "size": 100},
         "layers": [{"mediaType": "application/vnd.smolvm.snapshot.layer.v1.tar+zstd",
                     "digest": layer, "size": 10 + i,
                     "annotations": {"org.opencontainers.image.title": name}}
                    for i, name in enumerate(("vmstate.bin", "mem.bin", "disk.ext4"))]}
    m.update(over)
    return json.dumps(m)


def oci_config(**over):
    c = {"format_version": 1, "snapshot_id": "fuzz", "backend": "firecracker",
         "snapshot": json.loads(snapshot()),
         "files": [{"name": name, "size": 4096 * (i + 1), "data_size": 4096,
                    "tar_digest": "sha256:" + "ef" * 32}
                   for i, name in enumerate(("vmstate.bin", "mem.bin", "disk.ext4"))]}
    c.update(over)
    return json.dumps(c)


write("oci-manifest", "valid", oci_manifest() + "\0" + oci_config())
write("oci-manifest", "other-artifact", oci_manifest(artifactType="application/x") + "\0{}")
write("oci-manifest", "two-layers", oci_manifest(layers=[]) + "\0"
      + oci_config(files=[{"name": "vmstate.bin"}]))
write("oci-manifest", "format-2", "{}\0" + oci_config(format_version=2))
write("oci-manifest", "data-over-size", "[]\0" + oci_config(files=[
    {"name": n, "size": 1, "data_size": 2, "tar_digest": "sha256:" + "ef" * 32}
    for n in ("vmstate.bin", "mem.bin", "disk.ext4")]))
write("oci-manifest", "huge-sizes", oci_manifest(config={
    "mediaType": "application/vnd.smolvm.snapshot.config.v1+json",
    "digest": "sha256:" + "cd" * 32, "size": 2 ** 63 - 1}) + "\0" + oci_config(files=[
        {"name": n, "size": 2 ** 63 - 1, "data_size": 2 ** 63 - 1,
         "tar_digest": "sha256:" + "ef" * 32} for n in ("vmstate.bin", "mem.bin", "disk.ext4")]))
write("oci-manifest", "empty-manifest", "")
write("oci-manifest", "empty-both", "\0")


# snapshot-index: a first byte of 1 and one record, or of 0 and an index
def record_variant(**over):
    r = dict(vm_id="fuzz", network={k: GLib.Variant("s", v) for k, v in NET.items()},
             created=1775219400123456, backend="firecracker", sha="0" * 64, restored=False,
             restored_vm_id="")
    r.update(over)
    types = {"vcpu_count": "u", "mem_size_mib": "u", "network": "b"}
    config = {k: GLib.Variant(types.get(k, "s"), v) for k, v in r.get("config", CONFIG).items()}
    return GLib.Variant("(sa{sv}a{sv}xsmsbs)", (r["vm_id"], config, r["network"], r["created"],
                                               r["backend"], r["sha"], r["restored"],
                                               r["restored_vm_id"]))


def index_bytes(records):
    """The index layout of smolvm-snapshot-index.c: entries with a zero stamp."""
    import hashlib
    import struct
    blob = bytearray()
    entries = []
    for sid, record in records:
        def put(data):
            blob.extend(b"\0" * ((8 - len(blob) % 8) % 8))
            offset = len(blob)
            blob.extend(data)
            return offset
        id_data = sid.encode() + b"\0"
        boxed = GLib.Variant("v", record).get_data_as_bytes().get_data()
        id_offset = put(id_data)
        record_offset = put(boxed)
        digest = struct.unpack("<QQ", hashlib.md5(boxed).digest())
        entries.append((0, 0, 0, 0, 0, id_offset, len(id_data), record_offset, len(boxed)) + digest)
    index = GLib.Variant("(sua(ttttttttttt)ay)", ("smolvm-snapshot-index", 1, entries, bytes(blob)))
    return index.get_data_as_bytes().get_data()


valid_record = record_variant()
write("snapshot-index", "record-valid", b"\1" + valid_record.get_data_as_bytes().get_data())
write("snapshot-index", "record-qemu-restored", b"\1" + record_variant(
    backend="qemu", restored=True, restored_vm_id="fuzz", network={}, sha=None,
    config=dict(CONFIG, backend="qemu", accel="tcg", machine="pc-q35-7.2"))
    .get_data_as_bytes().get_data())
write("snapshot-index", "record-bad-config", b"\1" + record_variant(
    config=dict(CONFIG, vcpu_count=0)).get_data_as_bytes().get_data())
write("snapshot-index", "index-valid", b"\0" + index_bytes([("fuzz", valid_record)]))
write("snapshot-index", "index-hint-missed", b"\0" + index_bytes(
    [("other", valid_record), ("another", record_variant(vm_id="x")), ("fuzz", valid_record)]))
write("snapshot-index", "index-empty", b"\0" + index_bytes([]))
# found by fuzzing: a time GDateTime cannot hold (after 9999) was accepted
write("snapshot-index", "record-after-9999", b"\1" + record_variant(
    created=2 ** 62).get_data_as_bytes().get_data())
