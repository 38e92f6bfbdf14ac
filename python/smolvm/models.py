# SPDX-License-Identifier: LGPL-2.1-or-later
"""The models of the SnapshotInfo page: SnapshotInfo, VMConfig,
NetworkConfig, and the VM's state."""

import enum
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional


class VMState(str, enum.Enum):
    """A VM's state, as smolvmd reports it; prints as its value."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    ERROR = "error"

    def __str__(self):
        return self.value

    def __format__(self, spec):
        return format(self.value, spec)


def _path(value):
    return Path(value) if value else None


@dataclass(frozen=True)
class VMConfig:
    """The configuration of a VM (the VMConfig dictionary of smolvmd)."""

    vm_id: Optional[str] = None
    backend: Optional[str] = None
    vcpu_count: int = 2
    mem_size_mib: int = 512
    kernel_path: Optional[Path] = None
    initrd_path: Optional[Path] = None
    rootfs_path: Optional[Path] = None
    boot_args: Optional[str] = None
    network: Optional[bool] = None
    accel: Optional[str] = None
    machine: Optional[str] = None

    _PATHS = ("kernel_path", "initrd_path", "rootfs_path")

    @classmethod
    def from_dict(cls, d):
        """From smolvmd's dictionary; keys a newer daemon adds are ignored."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        for k in cls._PATHS:
            if k in values:
                values[k] = _path(values[k])
        return cls(**values)

    def to_dict(self):
        """The keys that are set, as smolvmd takes them."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            out[f.name] = str(value) if f.name in self._PATHS else value
        return out


@dataclass(frozen=True)
class NetworkConfig:
    """A VM's network identity; every field None without networking.

    A networked clone's guest keeps the snapshot's guest_ip, gateway_ip,
    tap_device and guest_mac inside a network namespace of its own; the
    host reaches it at host_ip (MAC host_mac) through the veth pair
    host_veth (host side) and namespace_veth. These five are None for
    every other VM."""

    guest_ip: Optional[str] = None
    gateway_ip: Optional[str] = None
    netmask: Optional[str] = None
    tap_device: Optional[str] = None
    guest_mac: Optional[str] = None
    host_ip: Optional[str] = None
    host_mac: Optional[str] = None
    namespace: Optional[str] = None
    host_veth: Optional[str] = None
    namespace_veth: Optional[str] = None

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def _variant_dict(variant):
    return dict(variant.unpack()) if variant is not None else {}


def _utc(gdatetime):
    return datetime.fromtimestamp(gdatetime.to_unix(), tz=timezone.utc).replace(
        microsecond=gdatetime.get_microsecond())


@dataclass(frozen=True)
class SnapshotInfo:
    """All metadata of a saved VM snapshot."""

    snapshot_id: str
    vm_id: str
    snapshot_path: Path
    mem_file_path: Path
    disk_path: Path
    vm_config: VMConfig
    network_config: NetworkConfig
    created_at: datetime
    restored: bool = False
    restored_vm_id: Optional[str] = None
    backend: str = field(default="firecracker")

    @classmethod
    def _from_lib(cls, info):
        return cls(
            snapshot_id=info.get_snapshot_id(),
            vm_id=info.get_vm_id(),
            snapshot_path=Path(info.get_snapshot_path()),
            mem_file_path=Path(info.get_mem_file_path()),
            disk_path=Path(info.get_disk_path()),
            vm_config=VMConfig.from_dict(_variant_dict(info.get_vm_config())),
            network_config=NetworkConfig.from_dict(_variant_dict(info.get_network_config())),
            created_at=_utc(info.get_created_at()),
            restored=info.get_restored(),
            restored_vm_id=info.get_restored_vm_id() or None,
            backend=info.get_backend(),
        )


@dataclass(frozen=True)
class VMInfo:
    """What smolvmd knows of a VM."""

    vm_id: str
    status: VMState
    config: VMConfig
    network_config: NetworkConfig
    pid: Optional[int] = None
    disk_path: Optional[Path] = None
    ip_address: Optional[str] = None
    restored_from: Optional[str] = None
    cloned_from: Optional[str] = None

    @classmethod
    def _from_lib(cls, info):
        return cls(
            vm_id=info.get_vm_id(),
            status=VMState(info.get_status()),
            config=VMConfig.from_dict(_variant_dict(info.get_vm_config())),
            network_config=NetworkConfig.from_dict(_variant_dict(info.get_network_config())),
            pid=info.get_pid() or None,
            disk_path=_path(info.get_disk_path()),
            ip_address=info.get_ip_address(),
            restored_from=info.get_restored_from(),
            cloned_from=info.get_cloned_from(),
        )
