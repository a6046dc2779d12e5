"""Mutual TLS 1.3 for the links: a frozen config, SSL-context factories and the peer pin check."""

from __future__ import annotations

import hashlib
import math
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from firmware_app.links.errors import LinkError

__all__ = ["PeerNotPinned", "TlsConfig", "TlsConfigError", "check_pinned", "client_context", "server_context"]

_PIN = re.compile(r"[0-9a-f]{64}")


class TlsConfigError(LinkError):
    """A certificate, key or CA file could not be loaded into an SSL context."""


class PeerNotPinned(LinkError):
    """The peer's certificate verified against the CA but is not one of the pinned peers."""


@dataclass(frozen=True)
class TlsConfig:
    """One link end: its own cert and key, the CA it trusts, and the SHA-256 pins of its peers."""

    cert_path: Path
    key_path: Path
    ca_path: Path
    pinned_sha256: frozenset[str]
    handshake_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        for path in (self.cert_path, self.key_path, self.ca_path):
            if not isinstance(path, Path):
                raise TypeError("cert_path, key_path and ca_path must be pathlib.Path")
        if not isinstance(self.pinned_sha256, frozenset):
            raise TypeError("pinned_sha256 must be a frozenset of str")
        if not all(isinstance(pin, str) for pin in self.pinned_sha256):
            raise TypeError("pinned_sha256 must be a frozenset of str")
        if not self.pinned_sha256:
            raise ValueError("pinned_sha256 needs at least one pin")
        if not all(_PIN.fullmatch(pin) for pin in self.pinned_sha256):
            raise ValueError("each pin must be 64 lowercase hex characters")
        timeout = self.handshake_timeout_s
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError("handshake_timeout_s must be a number")
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError("handshake_timeout_s must be positive and finite")


def _context(cfg: TlsConfig, protocol: int) -> ssl.SSLContext:
    ctx = ssl.SSLContext(protocol)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    ctx.options |= ssl.OP_NO_COMPRESSION
    try:
        ctx.load_cert_chain(certfile=cfg.cert_path, keyfile=cfg.key_path)
    except (OSError, ValueError):
        # The library's message is dropped: only the paths are named, never anything read from them.
        raise TlsConfigError(f"cannot load certificate {cfg.cert_path} with key {cfg.key_path}") from None
    try:
        ctx.load_verify_locations(cafile=cfg.ca_path)
    except (OSError, ValueError):
        raise TlsConfigError(f"cannot load CA certificates {cfg.ca_path}") from None
    return ctx


def server_context(cfg: TlsConfig) -> ssl.SSLContext:
    """A TLS 1.3-only server context that requires and verifies a client certificate."""
    return _context(cfg, ssl.PROTOCOL_TLS_SERVER)


def client_context(cfg: TlsConfig) -> ssl.SSLContext:
    """A TLS 1.3-only client context that presents its certificate and checks the server's name."""
    ctx = _context(cfg, ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = True
    return ctx


def check_pinned(ssl_object: ssl.SSLObject | ssl.SSLSocket, cfg: TlsConfig) -> str:
    """Return the peer certificate's SHA-256 pin, or raise PeerNotPinned if ``cfg`` does not pin it.

    Call it after every handshake.  CA verification alone would admit any certificate the CA ever
    issued (to any municipality, any test rig); pinning names the exact peers this link talks to.
    """
    der = ssl_object.getpeercert(binary_form=True)
    if der is None:
        raise PeerNotPinned("peer certificate is not pinned")
    pin = hashlib.sha256(der).hexdigest()  # Equal to pki.fingerprint_sha256 of the same certificate.
    if pin not in cfg.pinned_sha256:
        raise PeerNotPinned("peer certificate is not pinned")
    return pin
