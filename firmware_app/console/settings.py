"""The ``[console]`` settings (read by firmware_app.config): socket, group, idle lock, lockout,
password hashing, audit trail and exports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: systemd/tmpfiles.d makes this directory 2750 cs-appliance:cs-console.
DEFAULT_SOCKET = Path("/run/cs-appliance-console/console.sock")
DEFAULT_GROUP = "cs-console"
DEFAULT_EXPORT_DIR = Path("/var/lib/cs-appliance/exports")


@dataclass(frozen=True)
class ConsoleConfig:
    socket_path: Path = DEFAULT_SOCKET
    group: str = DEFAULT_GROUP
    idle_lock_s: float = 300.0
    lockout_failures: int = 10
    password_min_chars: int = 12
    login_attempts_per_connection: int = 3
    max_connections: int = 16
    kdf_memory_kib: int = 65536
    kdf_iterations: int = 3
    kdf_lanes: int = 4
    audit_retention_days: int = 1826
    audit_flush_interval_s: float = 0.2
    audit_checkpoint_interval_s: float = 60.0
    export_dir: Path = DEFAULT_EXPORT_DIR
    export_recipient: Path | None = None
    export_approval_valid_s: float = 86400.0
