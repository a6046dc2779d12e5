"""A small ECDSA P-256 PKI for the links: a CA, leaf certificates and their SHA-256 pins.

Keys are written unencrypted (mode 0600) because this PKI is for demos and tests; production keys
live in the HSM.  Nothing here ever prints or logs key material.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["DEMO_CA_NAME", "DEMO_LEAVES", "create_ca", "fingerprint_sha256", "issue", "main"]

DEMO_CA_NAME = "cs-demo-ca"
# The demo peers and the roles their certificates carry.
DEMO_LEAVES = {"cs": "both", "register": "client", "prefecture": "both", "national": "both"}

_KEY_MODE = 0o600
_CERT_MODE = 0o644
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_ROLE_USAGES = {
    "server": [ExtendedKeyUsageOID.SERVER_AUTH],
    "client": [ExtendedKeyUsageOID.CLIENT_AUTH],
    "both": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
}


def _paths(directory: Path, name: str) -> tuple[Path, Path]:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError("name must be 1-63 lowercase letters, digits or hyphens")
    return directory / f"{name}-cert.pem", directory / f"{name}-key.pem"


def _start(clock_now: datetime, valid_days: int) -> tuple[datetime, datetime]:
    if not isinstance(clock_now, datetime) or not isinstance(valid_days, int):
        raise TypeError("clock_now must be a datetime and valid_days an int")
    if clock_now.tzinfo is None or valid_days < 1:
        raise ValueError("clock_now must be timezone-aware and valid_days at least 1")
    # X.509 times have whole seconds; truncating here makes not_valid_before equal the given clock.
    start = clock_now.astimezone(timezone.utc).replace(microsecond=0)
    return start, start + timedelta(days=valid_days)


def _refuse_existing(*paths: Path) -> None:
    for path in paths:
        if path.exists():
            raise FileExistsError(f"refusing to overwrite {path}")


def _write(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with exactly ``mode`` (whatever the umask); fail if it already exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), mode)
        handle.write(data)


def _save(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, cert_path: Path, key_path: Path) -> None:
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write(key_path, key_pem, _KEY_MODE)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), _CERT_MODE)


def _builder(
    name: str, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, start: datetime, end: datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """A CA signs certificates and CRLs only; a leaf signs its handshakes only."""
    return x509.KeyUsage(
        digital_signature=not ca, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False,
    )


def create_ca(
    directory: Path, name: str, *, clock_now: datetime, valid_days: int = 3650
) -> tuple[Path, Path]:
    """Write a self-signed P-256 CA that may sign leaves only; return (cert_path, key_path)."""
    cert_path, key_path = _paths(Path(directory), name)
    start, end = _start(clock_now, valid_days)
    _refuse_existing(key_path, cert_path)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        _builder(name, subject, key.public_key(), start, end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    _save(cert, key, cert_path, key_path)
    return cert_path, key_path


def issue(
    directory: Path,
    ca_cert_path: Path,
    ca_key_path: Path,
    name: str,
    *,
    role: str,
    clock_now: datetime,
    valid_days: int = 825,
    dns_names: Iterable[str] = ("localhost",),
    ip_addresses: Iterable[str] = ("127.0.0.1", "::1"),
) -> tuple[Path, Path]:
    """Write a CA-signed P-256 leaf for ``role`` (server, client or both); return (cert_path, key_path)."""
    if role not in _ROLE_USAGES:
        raise ValueError("role must be 'server', 'client' or 'both'")
    if isinstance(dns_names, str) or isinstance(ip_addresses, str):
        raise TypeError("dns_names and ip_addresses must be collections of str, not a str")
    cert_path, key_path = _paths(Path(directory), name)
    start, end = _start(clock_now, valid_days)
    san = [x509.DNSName(dns) for dns in dns_names]
    san += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if not san:
        raise ValueError("a leaf needs at least one DNS name or IP address")
    _refuse_existing(key_path, cert_path)
    ca_cert = x509.load_pem_x509_certificate(Path(ca_cert_path).read_bytes())
    ca_key = serialization.load_pem_private_key(Path(ca_key_path).read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the CA key must be an EC private key")
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        _builder(name, ca_cert.subject, key.public_key(), start, end)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(_ROLE_USAGES[role]), critical=False)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _save(cert, key, cert_path, key_path)
    return cert_path, key_path


def fingerprint_sha256(cert: str | os.PathLike[str] | bytes) -> str:
    """The pin of a certificate: lowercase hex SHA-256 over its DER, from a PEM/DER file or bytes."""
    data = cert if isinstance(cert, bytes) else Path(cert).read_bytes()
    if b"-----BEGIN CERTIFICATE-----" in data:
        parsed = x509.load_pem_x509_certificate(data)
    else:
        parsed = x509.load_der_x509_certificate(data)
    return parsed.fingerprint(hashes.SHA256()).hex()


def _ensure(directory: Path, name: str, make: Callable[[], object]) -> tuple[Path, Path, str]:
    """Keep an existing cert/key pair or make one; a half pair is refused by ``make``."""
    cert_path, key_path = _paths(directory, name)
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path, "kept"
    make()
    return cert_path, key_path, "created"


def _init(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = datetime.now(timezone.utc)
    ca_cert, ca_key = _paths(directory, DEMO_CA_NAME)
    entries = [_ensure(directory, DEMO_CA_NAME, partial(create_ca, directory, DEMO_CA_NAME, clock_now=now))]
    for name, role in DEMO_LEAVES.items():
        make = partial(issue, directory, ca_cert, ca_key, name, role=role, clock_now=now)
        entries.append(_ensure(directory, name, make))
    for cert_path, key_path, state in entries:
        print(f"{cert_path} {state} sha256={fingerprint_sha256(cert_path)}")
        print(f"{key_path} {state}")


def main(argv: Sequence[str] | None = None) -> int:
    """``cs-pki init --dir D``: make (or keep) the demo/test PKI and print each file and pin."""
    parser = argparse.ArgumentParser(prog="cs-pki", description="Demo/test PKI of the Community Server links")
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init", help="create (or keep) the demo CA and peer certs")
    init.add_argument("--dir", type=Path, required=True, help="directory for the PEM files")
    args = parser.parse_args(argv)
    try:
        _init(args.dir)
    except (OSError, ValueError) as exc:
        print(f"cs-pki: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
