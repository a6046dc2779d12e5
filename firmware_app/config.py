"""The daemon's configuration: one TOML file, read once at start into frozen dataclasses.

Relative paths are relative to the file's directory.  Every error names the key at fault (never
a secret: the HSM PIN is not in this file, only the path of its credential file).
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware_app.console.settings import DEFAULT_EXPORT_DIR, DEFAULT_GROUP, DEFAULT_SOCKET, ConsoleConfig
from firmware_app.config_paths import config_path
from firmware_app.links.outbound import Endpoint
from firmware_app.links.tls import TlsConfig
from firmware_app.room.errors import RoomConfigError
from firmware_app.room.settings import RoomConfig, load_room_config
from hsm.config import DEFAULT_MODULE_PATH, HsmConfig

__all__ = ["Config", "ConfigError", "LinkLimits", "PeerConfig", "load_config"]

_PIN = re.compile(r"[0-9a-f]{64}")
MAX_CONFIG_BYTES = 64 * 1024
#: The peers a CS talks to, and whether it connects to them (outbound) as well as accepting them.
PEER_NAMES = ("register", "prefecture", "national")
_OUTBOUND = {"prefecture": "prefecture", "national": "card_system"}


class ConfigError(ValueError):
    """The configuration file is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class PeerConfig:
    """One peer: its certificate pin, and where to reach it when the CS connects out."""

    name: str
    pin_sha256: str
    endpoint: Endpoint | None


@dataclass(frozen=True)
class LinkLimits:
    """Sizes and timings of the links."""

    max_frame_bytes: int = 1 << 20
    max_group: int = 1024
    window_entries: int = 8192
    batch_entries: int = 512
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 10.0
    ack_timeout_s: float = 10.0


@dataclass(frozen=True)
class Config:
    """Everything ``csd`` needs to start."""

    store_path: Path
    map_size_bytes: int
    hsm: HsmConfig
    strict_hsm: bool
    tls_cert: Path
    tls_key: Path
    tls_ca: Path
    listen_host: str
    listen_port: int
    handshake_timeout_s: float
    peers: dict[str, PeerConfig]
    limits: LinkLimits
    moveout_keep_days: int
    drain_timeout_s: float
    retention_interval_s: float = 3600.0
    retention_batch: int = 1000
    offsite_recipient: Path | None = None
    #: An outbound link down for longer than this is reported as degraded (STATUS=).
    watchdog_link_grace_s: float = 120.0
    #: The machine room (``[room]``); None when the file has no such table.
    room: RoomConfig | None = None
    #: The operator console (``[console]``); None when the table is absent (no console socket).
    console: ConsoleConfig | None = None

    def tls(self) -> TlsConfig:
        """The TLS settings, pinning every configured peer."""
        return TlsConfig(
            self.tls_cert,
            self.tls_key,
            self.tls_ca,
            frozenset(peer.pin_sha256 for peer in self.peers.values()),
            self.handshake_timeout_s,
        )

    def tls_for(self, peer: str) -> TlsConfig:
        """TLS settings that pin one peer only (for an outbound connection to it)."""
        return TlsConfig(self.tls_cert, self.tls_key, self.tls_ca, frozenset({self.peers[peer].pin_sha256}), self.handshake_timeout_s)

    def outbound(self) -> dict[str, str]:
        """Outbound channel name → the peer it goes to, for the peers that have an endpoint."""
        return {channel: peer for peer, channel in _OUTBOUND.items() if peer in self.peers and self.peers[peer].endpoint}


class _Table:
    """A TOML table read key by key, each error naming ``section.key``."""

    def __init__(self, data: Any, section: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"[{section}] must be a table")
        self._data = data
        self._section = section
        self._used: set[str] = set()

    def _get(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        self._used.add(key)
        if key not in self._data:
            if default is _REQUIRED:
                raise ConfigError(f"{self._section}.{key} is required")
            return default
        value = self._data[key]
        if isinstance(value, bool) and kind is not bool:
            raise ConfigError(f"{self._section}.{key} has the wrong type")
        if not isinstance(value, kind):
            raise ConfigError(f"{self._section}.{key} has the wrong type")
        return value

    def text(self, key: str, default: Any = None) -> str:
        return self._get(key, str, _REQUIRED if default is None else default)

    def path(self, key: str, base: Path, default: Any = None) -> Path:
        value = self._get(key, str, _REQUIRED if default is None else default)
        try:
            return config_path(value, base)
        except ValueError as exc:
            raise ConfigError(f"{self._section}.{key} {exc}") from None

    def optional_path(self, key: str, base: Path) -> Path | None:
        """``path``, or None when the key is absent or empty."""
        return self.path(key, base) if self._get(key, str, "") else None

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self._get(key, int, default)
        if not low <= value <= high:
            raise ConfigError(f"{self._section}.{key} must be between {low} and {high}")
        return value

    def seconds(self, key: str, default: float, low: float, high: float) -> float:
        value = float(self._get(key, (int, float), default))
        if not (math.isfinite(value) and low <= value <= high):
            raise ConfigError(f"{self._section}.{key} must be between {low} and {high} seconds")
        return value

    def flag(self, key: str, default: bool) -> bool:
        return self._get(key, bool, default)

    def table(self, key: str) -> _Table:
        self._used.add(key)
        return _Table(self._data.get(key, {}), f"{self._section}.{key}" if self._section else key)

    def done(self) -> None:
        unknown = set(self._data) - self._used
        if unknown:
            raise ConfigError(f"unknown key {sorted(unknown)[0]!r} in [{self._section or 'top level'}]")


_REQUIRED = object()


def load_config(path: Path) -> Config:
    """Read and check the configuration file at ``path``."""
    try:
        raw = path.read_bytes()
    except OSError:
        raise ConfigError(f"cannot read configuration file {path}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError("configuration file is too large")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"configuration file is not valid TOML: {exc}") from None
    base = path.resolve().parent
    top = _Table(data, "")

    storage = top.table("storage")
    store_path = storage.path("path", base)
    map_size_bytes = storage.integer("map_size_mib", 256, 16, 1 << 20) << 20
    storage.done()

    hsm_t = top.table("hsm")
    hsm = HsmConfig(
        module_path=hsm_t.text("module_path", DEFAULT_MODULE_PATH),
        token_label=hsm_t.text("token_label", "cs-appliance"),
        pin_file=hsm_t.path("pin_file", base),
        softhsm_conf=hsm_t.optional_path("softhsm_conf", base),
    )
    strict = hsm_t.flag("strict", False)
    hsm_t.done()

    tls = top.table("tls")
    tls_cert, tls_key, tls_ca = tls.path("cert", base), tls.path("key", base), tls.path("ca", base)
    handshake_timeout_s = tls.seconds("handshake_timeout_s", 10.0, 0.1, 120.0)
    tls.done()

    listen = top.table("listen")
    listen_host = listen.text("host", "127.0.0.1")
    listen_port = listen.integer("port", 7400, 0, 65535)
    listen.done()

    peers_t = top.table("peers")
    peers: dict[str, PeerConfig] = {}
    for name in PEER_NAMES:
        if name not in data.get("peers", {}):
            continue
        peer = peers_t.table(name)
        pin = peer.text("pin_sha256").lower()
        if not _PIN.fullmatch(pin):
            raise ConfigError(f"peers.{name}.pin_sha256 must be 64 hex characters")
        endpoint = None
        if name in _OUTBOUND:
            endpoint = Endpoint(peer.text("host"), peer.integer("port", 0, 1, 65535), peer.text("server_name", "localhost"))
        peer.done()
        peers[name] = PeerConfig(name, pin, endpoint)
    peers_t.done()
    if "register" not in peers:
        raise ConfigError("peers.register is required")
    pinned_by: dict[str, str] = {}
    for name, peer_config in peers.items():
        other = pinned_by.setdefault(peer_config.pin_sha256, name)
        if other != name:
            raise ConfigError(f"peers.{name}.pin_sha256 is the same as peers.{other}.pin_sha256 (two peers share one certificate pin)")

    links = top.table("links")
    limits = LinkLimits(
        max_frame_bytes=links.integer("max_frame_bytes", 1 << 20, 4096, 16 << 20),
        max_group=links.integer("max_group", 1024, 1, 65536),
        window_entries=links.integer("window_entries", 8192, 1, 1 << 20),
        batch_entries=links.integer("batch_entries", 512, 1, 1024),
        backoff_initial_s=links.seconds("backoff_initial_s", 0.1, 0.001, 60.0),
        backoff_max_s=links.seconds("backoff_max_s", 10.0, 0.001, 3600.0),
        ack_timeout_s=links.seconds("ack_timeout_s", 10.0, 0.01, 3600.0),
    )
    links.done()

    retention = top.table("retention")
    moveout_keep_days = retention.integer("moveout_keep_days", 30, 1, 365)
    retention_interval_s = retention.seconds("interval_s", 3600.0, 1.0, 7 * 86400.0)
    retention_batch = retention.integer("batch", 1000, 1, 100_000)
    retention.done()

    backup = top.table("backup")
    offsite_recipient = backup.optional_path("offsite_recipient", base)
    backup.done()

    daemon = top.table("daemon")
    drain_timeout_s = daemon.seconds("drain_timeout_s", 10.0, 0.1, 300.0)
    daemon.done()

    watchdog = top.table("watchdog")
    watchdog_link_grace_s = watchdog.seconds("link_grace_s", 120.0, 0.0, 86400.0)
    watchdog.done()

    # The machine room: its own reader checks every key of [room] (firmware_app/room/settings.py).
    top.table("room")
    try:
        room = load_room_config(data["room"], base) if "room" in data else None
    except RoomConfigError as exc:
        raise ConfigError(str(exc)) from None
    # console and audit (issue 5)
    console = _console(top, base) if "console" in data else None
    top.done()

    return Config(
        store_path, map_size_bytes, hsm, strict, tls_cert, tls_key, tls_ca, listen_host, listen_port,
        handshake_timeout_s, peers, limits, moveout_keep_days, drain_timeout_s, retention_interval_s, retention_batch,
        offsite_recipient, watchdog_link_grace_s, room, console,
    )


def _console(top: _Table, base: Path) -> ConsoleConfig:
    """The ``[console]`` table: socket, group, idle lock, lockout, password hashing, audit, exports."""
    t = top.table("console")
    memory_kib = t.integer("kdf_memory_kib", 65536, 8, 4 << 20)
    lanes = t.integer("kdf_lanes", 4, 1, 64)
    if memory_kib < 8 * lanes:
        raise ConfigError("console.kdf_memory_kib must be at least 8 KiB per lane (console.kdf_lanes)")
    config = ConsoleConfig(
        socket_path=t.path("socket", base, str(DEFAULT_SOCKET)),
        group=t.text("group", DEFAULT_GROUP),
        idle_lock_s=t.seconds("idle_lock_s", 300.0, 1.0, 86400.0),
        lockout_failures=t.integer("lockout_failures", 10, 1, 100),
        password_min_chars=t.integer("password_min_chars", 12, 8, 128),
        login_attempts_per_connection=t.integer("login_attempts_per_connection", 3, 1, 100),
        max_connections=t.integer("max_connections", 16, 1, 1024),
        kdf_memory_kib=memory_kib,
        kdf_iterations=t.integer("kdf_iterations", 3, 1, 100),
        kdf_lanes=lanes,
        audit_retention_days=t.integer("audit_retention_days", 1826, 1, 36500),
        audit_flush_interval_s=t.seconds("audit_flush_interval_s", 0.2, 0.001, 60.0),
        audit_checkpoint_interval_s=t.seconds("audit_checkpoint_interval_s", 60.0, 0.0, 86400.0),
        export_dir=t.path("export_dir", base, str(DEFAULT_EXPORT_DIR)),
        export_recipient=t.optional_path("export_recipient", base),
        export_approval_valid_s=t.seconds("export_approval_valid_s", 86400.0, 1.0, 30 * 86400.0),
    )
    t.done()
    return config
