#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Python SDK (python/smolvm, over libsmolvm's typelib): the three usage
blocks of the SnapshotInfo spec page, run verbatim against smolvmd with
default images, and the SDK's types and errors.

Needs GI_TYPELIB_PATH and LD_LIBRARY_PATH pointing at the built library
(tests/meson.build sets them); the SDK is imported from the source tree."""

import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import registry  # noqa: E402
import smolvmtest as st  # noqa: E402

PYTHON_DIR = os.path.join(st.SOURCE_DIR, "python")
sys.path.insert(0, PYTHON_DIR)
SPEC = os.path.normpath(os.path.join(st.SOURCE_DIR, "..", "shared", "seeds",
                                     "002_8d1b9fd1fd35f33f.txt"))
HEADINGS = ["Creating a snapshot", "Listing snapshots", "Restoring from a snapshot",
            "Last modified"]


def spec_blocks():
    """The page's usage blocks, exactly as written there."""
    with open(SPEC, encoding="utf-8") as f:
        text = f.read()
    blocks = []
    for heading, following in zip(HEADINGS, HEADINGS[1:]):
        start = text.index("\n%s\n" % heading) + len(heading) + 2
        end = text.index(following, start)
        blocks.append(text[start:end].strip() + "\n")
    return blocks


def sdk_env(env):
    """What a user's script sees: the SDK on its path, the daemon's bus."""
    return dict(os.environ, PYTHONPATH=PYTHON_DIR, SMOLVM_BUS="session",
                DBUS_SESSION_BUS_ADDRESS=env.bus.address)


def run_block(test, env, block, name):
    path = os.path.join(env.root, name + ".py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(block)
    r = subprocess.run(["/usr/bin/python3", path], env=sdk_env(env), capture_output=True,
                       text=True, timeout=st.DEADLINE * 2)
    test.assertEqual(r.returncode, 0, "%s failed:\n%s%s" % (name, r.stdout, r.stderr))
    test.assertEqual(r.stderr, "", name)
    return r.stdout


def check_spec_blocks(test, env):
    """Runs the three blocks in the page's order; checks what they print.
    Returns the VM's id."""
    create, listing, restore = spec_blocks()
    before = datetime.now(timezone.utc)
    out = run_block(test, env, create, "creating").splitlines()
    test.assertEqual(len(out), 4, out)
    test.assertEqual(out[0], "ID: my-checkpoint")
    test.assertTrue(out[1].startswith("Source VM: "), out)
    vm_id = out[1][len("Source VM: "):]
    test.assertRegex(vm_id, st.ID_RE)
    created = datetime.fromisoformat(out[2][len("Created: "):])
    test.assertEqual(created.utcoffset(), timedelta(0), "an aware UTC datetime")
    test.assertTrue(before - timedelta(seconds=1) <= created <= datetime.now(timezone.utc),
                    created)
    test.assertEqual(out[3], "Disk path: %s" % os.path.join(
        env.state_dir, "snapshots", "my-checkpoint", "disk.ext4"))
    # close() let go of the connection only: the VM is there, paused by the
    # snapshot (no resume_source)
    test.assertEqual(env.vm_state(vm_id), "paused")

    test.assertEqual(run_block(test, env, listing, "listing"),
                     "my-checkpoint (available) — from %s\n" % vm_id)
    test.assertEqual(run_block(test, env, restore, "restoring"),
                     "Restored into: %s\nStatus: running\n" % vm_id)
    test.assertEqual(env.vm_state(vm_id), "running")
    test.assertEqual(run_block(test, env, listing, "listing again"),
                     "my-checkpoint (restored) — from %s\n" % vm_id)
    return vm_id


class TestSpecPage(st.TestCase):
    def setUp(self):
        super().setUp()
        if not os.path.exists(SPEC):
            self.skipTest("the spec page %s is not there" % SPEC)

    def test_blocks_verbatim(self):
        env = self.env
        env2 = self.new_env(daemon_args=["--default-kernel", env.kernel,
                                         "--default-rootfs", env.rootfs])
        vm_id = check_spec_blocks(self, env2)
        self.assertTrue(st.files_identical(
            os.path.join(env2.state_dir, "vms", vm_id, "disk.ext4"), env.rootfs))

    def test_blocks_are_the_page(self):
        """A control: the blocks found are the page's three."""
        create, listing, restore = spec_blocks()
        self.assertTrue(create.startswith("from smolvm import SmolVM\n"))
        self.assertIn('vm.snapshot(snapshot_id="my-checkpoint")', create)
        self.assertTrue(listing.startswith("from smolvm import SmolVMManager\n"))
        self.assertIn('SmolVM.from_snapshot("my-checkpoint", resume_vm=True)', restore)
        self.assertTrue(all(b.rstrip().endswith(("vm.close()", "from {snap.vm_id}\")"))
                            for b in (create, listing, restore)))


# Runs in its own process, as a user's script does: GLib keeps one session
# bus connection per process, and ends the process when that bus goes.
SDK_CHECKS = r"""
import dataclasses
import os
from datetime import timezone
from pathlib import Path
import smolvm

kernel, rootfs, root = os.environ["T_KERNEL"], os.environ["T_ROOTFS"], os.environ["T_ROOT"]

def raises(cls, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except cls as e:
        return e
    raise AssertionError("%s not raised by %s" % (cls.__name__, fn))

# no default images: the daemon says which key is missing
e = raises(smolvm.ValidationError, smolvm.SmolVM)
assert e.dbus_name == "org.smolvm.Error.InvalidArgument", e.dbus_name
assert e.name == "InvalidArgument" and "default-kernel" in e.message, e.message

vm = smolvm.SmolVM(config=smolvm.VMConfig(vm_id="py-vm", kernel_path=Path(kernel),
                                         rootfs_path=Path(rootfs), vcpu_count=1,
                                         mem_size_mib=128))
assert vm.vm_id == "py-vm"
assert vm.status == smolvm.VMState.CREATED, vm.status
assert str(vm.start().status) == "running"
snap = vm.snapshot(resume_source=True)
assert isinstance(snap, smolvm.SnapshotInfo)
assert vm.status == smolvm.VMState.RUNNING
for name in ("snapshot_path", "mem_file_path", "disk_path"):
    assert isinstance(getattr(snap, name), Path), name
assert snap.snapshot_path.name == "vmstate.bin" and snap.mem_file_path.name == "mem.bin"
assert snap.created_at.tzinfo == timezone.utc
assert snap.restored is False and snap.restored_vm_id is None
assert isinstance(snap.vm_config, smolvm.VMConfig)
assert (snap.vm_config.vm_id, snap.vm_config.vcpu_count, snap.vm_config.kernel_path) == \
    ("py-vm", 1, Path(kernel)), snap.vm_config
assert isinstance(snap.network_config, smolvm.NetworkConfig)
assert snap.network_config.guest_ip is None and snap.backend == "firecracker"

with smolvm.SmolVMManager() as sdk:
    assert sdk.get_snapshot(snap.snapshot_id) == snap
    assert sdk.list_snapshots(vm_id="py-vm") == [snap]
    assert sdk.list_snapshots(vm_id="other") == []
    e = raises(smolvm.SnapshotNotFoundError, sdk.get_snapshot, "nope")
    assert e.name == "NotFound" and e.details == {"snapshot_id": "nope"}, (e.name, e.details)
    e = raises(smolvm.SmolVMError, sdk.list_snapshots, vm_id="Bad_Id")
    assert e.name == "InvalidArgument", e.name

again = smolvm.SmolVM.from_snapshot(snap.snapshot_id, resume_vm=True)
assert (again.vm_id, str(again.status)) == ("py-vm", "running")
with smolvm.SmolVMManager() as sdk:
    restored = sdk.get_snapshot(snap.snapshot_id)
    assert (restored.restored, restored.restored_vm_id) == (True, "py-vm")
    raises(smolvm.SnapshotAlreadyRestoredError, sdk.restore_snapshot, snap.snapshot_id)
    # the VM restored from it maps its mem.bin
    e = raises(smolvm.SmolVMError, sdk.delete_snapshot, snap.snapshot_id)
    assert e.name == "InUse", e.name
    again.delete(force=True)
    sdk.delete_snapshot(snap.snapshot_id)
    assert sdk.list_snapshots() == []
raises(smolvm.VMNotFoundError, smolvm.SmolVM, vm_id="nope")
again.close()
vm.close()

# clones: new VMs of a snapshot, which is not restored by them
src = smolvm.SmolVM(config={"vm_id": "src", "kernel_path": kernel, "rootfs_path": rootfs,
                            "network": False, "mem_size_mib": 128})
src.start().snapshot("base", resume_source=True)
with smolvm.SmolVMManager() as sdk:
    one = sdk.clone_snapshot("base")
    assert [type(v) for v in one] == [smolvm.VMInfo], one
    assert (one[0].vm_id, one[0].status, one[0].cloned_from, one[0].restored_from) == \
        ("src-1", smolvm.VMState.PAUSED, "base", None), one
    two = sdk.clone_snapshot("base", vm_ids=("c-b", "c-a"), resume_vm=True)
    assert [(v.vm_id, str(v.status)) for v in two] == [("c-b", "running"), ("c-a", "running")]
    more = sdk.clone_snapshot("base", count=2)
    assert [v.vm_id for v in more] == ["src-2", "src-3"], more
    assert sdk.get_vm("c-a").cloned_from == "base"
    # no networking: no field of NetworkConfig is set, a clone's keys neither
    assert sdk.get_vm("c-a").network_config == smolvm.NetworkConfig(), \
        sdk.get_vm("c-a").network_config
    assert sdk.get_vm("src").cloned_from is None
    assert sdk.get_snapshot("base").restored is False
    e = raises(smolvm.SnapshotNotFoundError, sdk.clone_snapshot, "nope")
    assert e.details == {"snapshot_id": "nope"}, e.details
    raises(smolvm.VMAlreadyExistsError, sdk.clone_snapshot, "base", vm_ids=["c-a"])
    raises(smolvm.ValidationError, sdk.clone_snapshot, "base", count=65)
    raises(smolvm.ValidationError, sdk.clone_snapshot, "base", count=2, vm_ids=["c-c"])
    raises(ValueError, sdk.clone_snapshot, "base", count=0)
    # one fails (an id too long for its VMM's socket): the other is kept
    e = raises(smolvm.SmolVMError, sdk.clone_snapshot, "base", vm_ids=["kept", "v" * 64])
    assert e.name == "Failed" and "1 of 2 VMs ('kept', kept)" in e.message, e.message
    assert sdk.get_vm("kept").cloned_from == "base"
    for vm_id in ("src", "src-1", "src-2", "src-3", "c-a", "c-b", "kept"):
        sdk.delete(vm_id, force=True)
    sdk.delete_snapshot("base")
src.close()

# a networked clone's NetworkConfig (root only: test-clones.py makes them)
# has the host's side too; keys of a newer smolvmd are left out
clone_net = {"guest_ip": "172.16.0.2", "gateway_ip": "172.16.0.1",
             "netmask": "255.255.255.252", "tap_device": "tap0",
             "guest_mac": "06:00:AC:10:00:02", "host_ip": "172.16.0.6",
             "host_mac": "06:00:AC:10:00:06", "namespace": "smolvm-web-1",
             "host_veth": "smv-web-1", "namespace_veth": "veth0", "newer": "x"}
net = smolvm.NetworkConfig.from_dict(clone_net)
del clone_net["newer"]
assert dataclasses.asdict(net) == clone_net, net
# a plain VM's: the clone's fields are None
plain = smolvm.NetworkConfig.from_dict({k: clone_net[k] for k in list(clone_net)[:5]})
assert (plain.guest_ip, plain.host_ip, plain.host_mac, plain.namespace, plain.host_veth,
        plain.namespace_veth) == ("172.16.0.2", None, None, None, None, None), plain

# the images go as descriptors, opened here: a file this process cannot
# open fails before smolvmd is asked
raises(FileNotFoundError, smolvm.SmolVM,
       config={"kernel_path": os.path.join(root, "missing"), "rootfs_path": rootfs})
raises(ValueError, smolvm.SmolVM, config={"colour": "blue"})
fd_vm = smolvm.SmolVM(config={"vm_id": "fd-vm", "kernel_path": kernel, "rootfs_path": rootfs,
                              "network": False})
info = fd_vm.info
assert (info.config.kernel_path, info.config.rootfs_path) == (Path(kernel), Path(rootfs))
assert [v.vm_id for v in smolvm.SmolVMManager().list_vms()] == ["fd-vm"]
print("ok")
"""


# Snapshots between hosts through the SDK: OCI archives (a path, a file
# object, a descriptor) and a registry (T_REGISTRY, listed as insecure).
TRANSFER_CHECKS = r"""
import os
import smolvm

kernel, rootfs, root = os.environ["T_KERNEL"], os.environ["T_ROOTFS"], os.environ["T_ROOT"]
registry = os.environ["T_REGISTRY"]

def raises(cls, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except cls as e:
        return e
    raise AssertionError("%s not raised by %s" % (cls.__name__, fn))

def same(a, b):
    # what travels with a snapshot; its files' paths are this host's
    keys = ("snapshot_id", "vm_id", "vm_config", "network_config", "created_at", "backend")
    return all(getattr(a, k) == getattr(b, k) for k in keys)

vm = smolvm.SmolVM(config={"vm_id": "xfer", "kernel_path": kernel, "rootfs_path": rootfs,
                           "network": False, "mem_size_mib": 128})
snap = vm.start().snapshot("xsnap", resume_source=True)
vm.delete(force=True)
vm.close()
archive = os.path.join(root, "xsnap.tar")

with smolvm.SmolVMManager() as sdk:
    # a path, opened by the SDK; import under another id from a file object
    assert sdk.export_snapshot("xsnap", archive) is None
    assert os.path.getsize(archive) > 0
    with open(archive, "rb") as f:
        copy = sdk.import_snapshot(f, snapshot_id="xcopy")
    assert isinstance(copy, smolvm.SnapshotInfo)
    assert copy.snapshot_id == "xcopy" and copy.vm_id == "xfer", copy
    assert (copy.vm_config, copy.backend) == (snap.vm_config, snap.backend), copy
    # the archive's own id, from a path, once the original is gone
    sdk.delete_snapshot("xsnap")
    back = sdk.import_snapshot(archive)
    assert same(back, snap), (back, snap)
    assert sdk.get_snapshot("xsnap") == back
    # a descriptor the caller keeps, written and read again
    fd = os.open(os.path.join(root, "by-fd.tar"), os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    sdk.export_snapshot("xcopy", fd)
    os.lseek(fd, 0, os.SEEK_SET)
    by_fd = sdk.import_snapshot(fd, "xfd")
    os.close(fd)
    assert by_fd.snapshot_id == "xfd" and by_fd.vm_id == "xfer", by_fd

    # errors: an unknown snapshot (the file made for it goes), a taken id,
    # an archive that is not one, a file this process cannot open
    missing = os.path.join(root, "missing.tar")
    e = raises(smolvm.SnapshotNotFoundError, sdk.export_snapshot, "nope", missing)
    assert e.details == {"snapshot_id": "nope"}, e.details
    assert not os.path.exists(missing)
    e = raises(smolvm.SnapshotAlreadyExistsError, sdk.import_snapshot, archive)
    assert e.name == "AlreadyExists", e.name
    junk = os.path.join(root, "junk.tar")
    with open(junk, "wb") as f:
        f.write(b"not an archive\n" * 100)
    e = raises(smolvm.CorruptSnapshotError, sdk.import_snapshot, junk, "xjunk")
    assert e.name == "Corrupt", e.name
    raises(FileNotFoundError, sdk.import_snapshot, os.path.join(root, "absent.tar"))
    assert sorted(s.snapshot_id for s in sdk.list_snapshots()) == ["xcopy", "xfd", "xsnap"]

    # push, delete, pull: the same snapshot; pull again under another id
    ref = registry + "/sdk/xfer:v1"
    assert sdk.push_snapshot("xsnap", ref) is None
    sdk.delete_snapshot("xsnap")
    pulled = sdk.pull_snapshot(ref)
    assert same(pulled, snap), (pulled, snap)
    other = sdk.pull_snapshot(ref, snapshot_id="xpulled")
    assert other.snapshot_id == "xpulled" and other.vm_id == "xfer", other

    # errors: an unknown tag, a taken id, an unknown snapshot, a registry
    # that is not there (not listed as insecure: TLS to a closed port)
    e = raises(smolvm.RegistryError, sdk.pull_snapshot, registry + "/sdk/xfer:nope")
    assert e.name == "NotFound" and e.details == {"reference": registry + "/sdk/xfer:nope"}, \
        (e.name, e.details)
    e = raises(smolvm.SnapshotAlreadyExistsError, sdk.pull_snapshot, ref, "xpulled")
    e = raises(smolvm.SnapshotNotFoundError, sdk.push_snapshot, "nope", ref)
    assert e.details == {"snapshot_id": "nope"}, e.details
    e = raises(smolvm.RegistryError, sdk.push_snapshot, "xsnap", "127.0.0.1:9/sdk/x:v1")
    assert e.name == "RegistryUnavailable", e.name
    assert sorted(s.snapshot_id for s in sdk.list_snapshots()) == \
        ["xcopy", "xfd", "xpulled", "xsnap"]
print("ok")
"""


class TestSdk(st.TestCase):
    """The SDK's types and errors, against a daemon without default images."""

    def test_types_and_errors(self):
        env = self.env
        os.environ.update(T_KERNEL=env.kernel, T_ROOTFS=env.rootfs, T_ROOT=env.root)
        self.assertEqual(run_block(self, env, SDK_CHECKS, "sdk-checks"), "ok\n")
        self.assertEqual(sorted(env.list_vms()), ["fd-vm"])

    def test_transfers(self):
        if not registry.available():
            self.skipTest("docker-registry is not installed (tools/deps.sh)")
        tmp = tempfile.mkdtemp(prefix="test-python-sdk-")
        self.addCleanup(shutil.rmtree, tmp, True)
        reg = registry.Registry(tmp).start()
        self.addCleanup(reg.remove)
        env = self.new_env(daemon_args=["--insecure-registry", reg.host])
        os.environ.update(T_KERNEL=env.kernel, T_ROOTFS=env.rootfs, T_ROOT=env.root,
                          T_REGISTRY=reg.host)
        self.assertEqual(run_block(self, env, TRANSFER_CHECKS, "sdk-transfers"), "ok\n")
        # the push reached the registry: its manifest is there under the tag
        self.assertTrue(any(r.method == "PUT" and "/manifests/v1" in r.uri
                            for r in reg.requests()), reg.requests())


if __name__ == "__main__":
    st.main("python-sdk")
