# SPDX-License-Identifier: LGPL-2.1-or-later
"""SmolVM: one VM of smolvmd, as SmolVM's facade has it."""

from .manager import SmolVMManager


class SmolVM:
    """A VM of smolvmd.

    SmolVM() creates a VM from smolvmd's default images (its default-kernel,
    default-initrd, default-rootfs and default-backend); SmolVM(config=...)
    from a VMConfig or a dict of its fields (the images are opened here, with
    this process's rights); SmolVM(vm_id=...) attaches to an existing VM.
    close() only lets go of the connection: the VM keeps running."""

    def __init__(self, config=None, *, vm_id=None, bus=None, interactive=False):
        self._sdk = SmolVMManager(bus=bus, interactive=interactive)
        if vm_id is not None:
            self._info = self._sdk.get_vm(vm_id)
        else:
            self._info = self._sdk.create_vm(config)
        self._vm_id = self._info.vm_id

    @classmethod
    def from_snapshot(cls, snapshot_id, *, resume_vm=False, force=False, bus=None,
                      interactive=False):
        """Restore a snapshot into its own VM and attach to that VM."""
        with SmolVMManager(bus=bus, interactive=interactive) as sdk:
            info = sdk.restore_snapshot(snapshot_id, resume_vm=resume_vm, force=force)
        return cls(vm_id=info.vm_id, bus=bus, interactive=interactive)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "SmolVM(vm_id=%r)" % self._vm_id

    @property
    def vm_id(self):
        return self._vm_id

    @property
    def info(self):
        """The VM as smolvmd knows it now (a VMInfo)."""
        self._info = self._sdk.get_vm(self._vm_id)
        return self._info

    @property
    def status(self):
        """The VM's state now (a VMState, which prints as e.g. "running")."""
        return self.info.status

    def start(self):
        """Boot the VM (or do nothing if it runs); returns the VM."""
        if self.status.value == "running":
            return self
        if self.status.value == "paused":
            return self.resume()
        self._sdk.start(self._vm_id)
        return self

    def stop(self):
        self._sdk.stop(self._vm_id)
        return self

    def pause(self):
        self._sdk.pause(self._vm_id)
        return self

    def resume(self):
        self._sdk.resume(self._vm_id)
        return self

    def delete(self, *, force=False):
        """Delete the VM (force: stop it first); its snapshots stay."""
        self._sdk.delete(self._vm_id, force=force)

    def snapshot(self, snapshot_id=None, *, resume_source=False):
        """Snapshot the VM (running or paused); it stays paused unless
        resume_source. Returns the SnapshotInfo."""
        return self._sdk.create_snapshot(self._vm_id, snapshot_id, resume_source=resume_source)

    def close(self):
        """Release the connection to smolvmd. The VM is left as it is."""
        self._sdk.close()
