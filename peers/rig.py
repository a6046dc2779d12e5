"""Stands up what a CS needs around it on one machine — a PKI, a configuration file, free loopback
ports — for the demo, the tests and the benchmarks alike."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from firmware_app.links.pki import create_ca, fingerprint_sha256, issue
from firmware_app.links.tls import TlsConfig
from hsm.config import HsmConfig

__all__ = ["Pki", "free_port", "make_pki", "write_config"]

_NAMES = {"cs": "both", "register": "client", "prefecture": "both", "national": "both", "stranger": "client"}


@dataclass(frozen=True)
class Pki:
    """Certificates of the CS and its peers under one CA (plus a pinned-nowhere "stranger")."""

    directory: Path
    ca: Path

    def cert(self, name: str) -> Path:
        return self.directory / f"{name}-cert.pem"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}-key.pem"

    def pin(self, name: str) -> str:
        return fingerprint_sha256(self.cert(name))

    def tls(self, name: str, *, pins: tuple[str, ...] = ("cs",), handshake_timeout_s: float = 5.0) -> TlsConfig:
        """TLS settings of ``name`` pinning the certificates of ``pins``."""
        return TlsConfig(self.cert(name), self.key(name), self.ca, frozenset(self.pin(p) for p in pins), handshake_timeout_s)


def make_pki(directory: Path) -> Pki:
    """A CA and the certificates of every party (kept when they exist)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = datetime.now(timezone.utc)
    pki = Pki(directory, directory / "ca-cert.pem")
    if not pki.ca.exists():
        create_ca(directory, "ca", clock_now=now)
    for name, role in _NAMES.items():
        if not pki.cert(name).exists():
            issue(directory, pki.ca, pki.key("ca"), name, role=role, clock_now=now)
    return pki


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(
    path: Path,
    *,
    store: Path,
    hsm: HsmConfig,
    pki: Pki,
    listen_port: int,
    prefecture_port: int,
    national_port: int,
    extra: str = "",
) -> Path:
    """A ``csd`` configuration file for one machine's loopback (``extra`` is appended TOML)."""
    softhsm = f'softhsm_conf = "{hsm.softhsm_conf}"\n' if hsm.softhsm_conf else ""
    path.write_text(
        f"""# csd configuration written by peers.rig
[storage]
path = "{store}"

[hsm]
module_path = "{hsm.module_path}"
token_label = "{hsm.token_label}"
pin_file = "{hsm.pin_file}"
{softhsm}
[tls]
cert = "{pki.cert('cs')}"
key = "{pki.key('cs')}"
ca = "{pki.ca}"
handshake_timeout_s = 5

[listen]
host = "127.0.0.1"
port = {listen_port}

[peers.register]
pin_sha256 = "{pki.pin('register')}"

[peers.prefecture]
pin_sha256 = "{pki.pin('prefecture')}"
host = "127.0.0.1"
port = {prefecture_port}
server_name = "localhost"

[peers.national]
pin_sha256 = "{pki.pin('national')}"
host = "127.0.0.1"
port = {national_port}
server_name = "localhost"
{extra}""",
        encoding="utf-8",
    )
    return path
