# SPDX-License-Identifier: LGPL-2.1-or-later
"""smolvm: the Python SDK of smolvmd, on libsmolvm (gi.repository.Smolvm).

    from smolvm import SmolVM, SmolVMManager, SnapshotInfo
"""

from .exceptions import (
    CorruptSnapshotError,
    HostError,
    NotAuthorizedError,
    RegistryError,
    SmolVMError,
    SnapshotAlreadyExistsError,
    SnapshotAlreadyRestoredError,
    SnapshotNotFoundError,
    ValidationError,
    VMAlreadyExistsError,
    VMNotFoundError,
)
from .facade import SmolVM
from .manager import SmolVMManager
from .models import NetworkConfig, SnapshotInfo, VMConfig, VMInfo, VMState

__all__ = [
    "CorruptSnapshotError", "RegistryError", "HostError", "NetworkConfig", "NotAuthorizedError", "SmolVM", "SmolVMError",
    "SmolVMManager", "SnapshotAlreadyExistsError", "SnapshotAlreadyRestoredError",
    "SnapshotInfo", "SnapshotNotFoundError", "VMAlreadyExistsError", "VMConfig", "VMInfo",
    "VMNotFoundError", "VMState", "ValidationError",
]
