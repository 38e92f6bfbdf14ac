# SPDX-License-Identifier: LGPL-2.1-or-later
"""SmolVMManager: snapshots and VMs of smolvmd, as SmolVM's manager has them."""

import contextlib
import os

from ._client import Connection, Gio, GLib, Smolvm, calls_daemon
from .models import SnapshotInfo, VMConfig, VMInfo

# VMConfig key -> GVariant type; the images go as descriptors instead
_CONFIG_TYPES = {
    "vm_id": "s", "backend": "s", "vcpu_count": "u", "mem_size_mib": "u", "boot_args": "s",
    "network": "b", "accel": "s", "machine": "s",
}
_IMAGES = {"kernel_path": "kernel-fd", "initrd_path": "initrd-fd", "rootfs_path": "rootfs-fd"}


def config_variant(config):
    """(a{sv} GVariant, Gio.UnixFDList) for CreateVM: the images are opened
    here, with this process's rights, and passed as descriptors."""
    if config is None:
        config = {}
    elif isinstance(config, VMConfig):
        config = config.to_dict()
    out = {}
    fds = Gio.UnixFDList.new()
    for key, value in config.items():
        if value is None:
            continue
        if key in _IMAGES:
            # O_NONBLOCK: a FIFO opens at once (and smolvmd refuses it)
            fd = os.open(os.fspath(value), os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
            try:
                index = fds.append(fd)
            finally:
                os.close(fd)
            out[_IMAGES[key]] = GLib.Variant("h", index)
        elif key in _CONFIG_TYPES:
            out[key] = GLib.Variant(_CONFIG_TYPES[key], value)
        else:
            raise ValueError("unknown VMConfig field %r" % key)
    return GLib.Variant("a{sv}", out), fds


@contextlib.contextmanager
def _descriptor(file, writing):
    """The descriptor for @file: an int is one, an object with fileno() has
    one (flushed first), anything else is a path opened here, with this
    process's rights, since smolvmd never opens a caller's path. A path
    opened for writing that the call fails on is removed: half an archive
    is no archive."""
    if isinstance(file, int):
        yield file
        return
    if hasattr(file, "fileno"):
        if hasattr(file, "flush"):
            file.flush()
        yield file.fileno()
        return
    path = os.fspath(file)
    flags = os.O_CLOEXEC | os.O_NOCTTY
    flags |= os.O_WRONLY | os.O_CREAT | os.O_TRUNC if writing else os.O_RDONLY
    fd = os.open(path, flags, 0o644)
    try:
        yield fd
    except BaseException:
        if writing:
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise
    finally:
        os.close(fd)


class SmolVMManager:
    """The snapshots and VMs smolvmd manages. A context manager: leaving the
    block closes the connection (nothing else changes).

    bus: "system" (the default, or $SMOLVM_BUS) or "session".
    interactive: let polkit ask for a password (needs an agent)."""

    def __init__(self, bus=None, interactive=False):
        self._connection = Connection(bus, interactive)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Release the connection to smolvmd; VMs and snapshots stay."""
        self._connection.close()

    @property
    def _client(self):
        return self._connection.client

    # -- snapshots

    @calls_daemon("snapshot")
    def list_snapshots(self, vm_id=None):
        """Every snapshot, or those of VM @vm_id, oldest first."""
        return [SnapshotInfo._from_lib(i)
                for i in self._client.list_snapshots_sync(vm_id or None, None)]

    @calls_daemon("snapshot", "snapshot_id")
    def get_snapshot(self, snapshot_id):
        return SnapshotInfo._from_lib(self._client.get_snapshot_sync(snapshot_id, None))

    @calls_daemon("snapshot", "snapshot_id")
    def delete_snapshot(self, snapshot_id):
        self._client.delete_snapshot_sync(snapshot_id, None)

    @calls_daemon("vm", "vm_id")
    def create_snapshot(self, vm_id, snapshot_id=None, *, resume_source=False):
        flags = (Smolvm.SnapshotCreateFlags.RESUME_SOURCE if resume_source
                 else Smolvm.SnapshotCreateFlags.NONE)
        return SnapshotInfo._from_lib(
            self._client.create_snapshot_sync(vm_id, snapshot_id or None, flags, None))

    @calls_daemon("snapshot", "snapshot_id")
    def restore_snapshot(self, snapshot_id, *, resume_vm=False, force=False):
        """Restore into the snapshot's own VM (recreated if it was deleted);
        returns that VM's VMInfo."""
        flags = Smolvm.SnapshotRestoreFlags.NONE
        if resume_vm:
            flags |= Smolvm.SnapshotRestoreFlags.RESUME
        if force:
            flags |= Smolvm.SnapshotRestoreFlags.FORCE
        return VMInfo._from_lib(self._client.restore_snapshot_sync(snapshot_id, flags, None))

    # NotFound names the snapshot; AlreadyExists one of the new VMs' ids
    @calls_daemon({"AlreadyExists": "vm", None: "snapshot"}, "snapshot_id")
    def clone_snapshot(self, snapshot_id, count=None, vm_ids=None, *, resume_vm=False):
        """Make new VMs of a snapshot, each going on from where its guest
        stopped; returns their VMInfos (cloned_from is the snapshot), in the
        order of their ids. count: how many (default: one per vm_ids, or
        one); vm_ids: their ids (default: generated, VMID-N). They stay
        paused unless resume_vm. If one fails, the others are kept and a
        SmolVMError (Failed) names them; cloned_from finds them too."""
        if count is not None and count < 1:
            raise ValueError("count must be at least 1, not %r" % count)
        flags = (Smolvm.SnapshotCloneFlags.RESUME if resume_vm
                 else Smolvm.SnapshotCloneFlags.NONE)
        return [VMInfo._from_lib(i) for i in self._client.clone_snapshot_sync(
            snapshot_id, count or 0, list(vm_ids) if vm_ids else None, flags, None)]

    # -- snapshots between hosts: OCI archives and registries

    @calls_daemon("snapshot", "snapshot_id")
    def export_snapshot(self, snapshot_id, file):
        """Write the snapshot as an OCI archive (an image layout in a tar,
        skopeo's oci-archive) to @file: a path (created or truncated, and
        removed if the export fails), a file object open for writing, or a
        descriptor (the caller keeps it)."""
        with _descriptor(file, writing=True) as fd:
            self._client.export_snapshot_sync(snapshot_id, fd, None)

    # AlreadyExists: the snapshot's id is taken here
    @calls_daemon({"AlreadyExists": "snapshot", None: None})
    def import_snapshot(self, file, snapshot_id=None):
        """Store the snapshot of an OCI archive read from @file (a path, a
        file object open for reading, or a descriptor), under @snapshot_id
        or the archive's own id; returns its SnapshotInfo. A bad archive is
        a CorruptSnapshotError."""
        with _descriptor(file, writing=False) as fd:
            return SnapshotInfo._from_lib(
                self._client.import_snapshot_sync(fd, snapshot_id or None, None))

    @calls_daemon("snapshot", "snapshot_id")
    def push_snapshot(self, snapshot_id, reference):
        """Push the snapshot to an OCI registry as @reference
        (registry/repository:tag); blobs the registry has are not sent
        again. Registry errors are RegistryErrors."""
        self._client.push_snapshot_sync(snapshot_id, reference, None)

    # NotFound: no such repository or tag in the registry
    @calls_daemon({"AlreadyExists": "snapshot", "NotFound": "reference", None: None},
                  "reference")
    def pull_snapshot(self, reference, snapshot_id=None):
        """Pull the snapshot at @reference (registry/repository:tag or
        @sha256:...) and store it under @snapshot_id or its own id; returns
        its SnapshotInfo. Every blob is checked on the way
        (CorruptSnapshotError)."""
        return SnapshotInfo._from_lib(
            self._client.pull_snapshot_sync(reference, snapshot_id or None, None))

    # -- VMs

    @calls_daemon("vm")
    def create_vm(self, config=None):
        variant, fds = config_variant(config)
        return VMInfo._from_lib(self._client.create_vm_sync(variant, fds, None))

    @calls_daemon("vm")
    def list_vms(self):
        return [VMInfo._from_lib(i) for i in self._client.list_vms_sync(None)]

    @calls_daemon("vm", "vm_id")
    def get_vm(self, vm_id):
        return VMInfo._from_lib(self._client.get_vm_sync(vm_id, None))

    @calls_daemon("vm", "vm_id")
    def start(self, vm_id):
        self._client.start_vm_sync(vm_id, None)

    @calls_daemon("vm", "vm_id")
    def stop(self, vm_id):
        self._client.stop_vm_sync(vm_id, None)

    @calls_daemon("vm", "vm_id")
    def pause(self, vm_id):
        self._client.pause_vm_sync(vm_id, None)

    @calls_daemon("vm", "vm_id")
    def resume(self, vm_id):
        self._client.resume_vm_sync(vm_id, None)

    @calls_daemon("vm", "vm_id")
    def delete(self, vm_id, *, force=False):
        flags = Smolvm.VmDeleteFlags.FORCE if force else Smolvm.VmDeleteFlags.NONE
        self._client.delete_vm_sync(vm_id, flags, None)
