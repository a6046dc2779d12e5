"""Tests of the demo/test PKI: CA and leaf properties, file modes, no overwrite, pins and cs-pki."""

from __future__ import annotations

import ipaddress
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from firmware_app.links.pki import create_ca, fingerprint_sha256, issue, main

NOW = datetime(2026, 4, 1, 9, 30, 15, 123456, tzinfo=timezone.utc)
START = NOW.replace(microsecond=0)


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture
def ca(tmp_path: Path) -> tuple[Path, Path]:
    return create_ca(tmp_path, "test-ca", clock_now=NOW)


def test_ca_is_a_self_signed_p256_ca_for_leaves_only(ca: tuple[Path, Path]) -> None:
    cert = _load(ca[0])
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(cert.public_key().curve, ec.SECP256R1)
    assert cert.not_valid_before_utc == START
    assert cert.not_valid_after_utc == START + timedelta(days=3650)


@pytest.mark.parametrize(
    ("role", "usages"),
    [
        ("server", [ExtendedKeyUsageOID.SERVER_AUTH]),
        ("client", [ExtendedKeyUsageOID.CLIENT_AUTH]),
        ("both", [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
    ],
)
def test_leaf_carries_role_names_and_validity(ca: tuple[Path, Path], tmp_path: Path, role: str, usages: list) -> None:
    cert_path, _ = issue(tmp_path, *ca, "peer", role=role, clock_now=NOW, dns_names=("localhost", "cs.example"))
    cert, ca_cert = _load(cert_path), _load(ca[0])
    cert.verify_directly_issued_by(ca_cert)
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == usages
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "cs.example"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    assert isinstance(cert.public_key().curve, ec.SECP256R1)
    assert cert.not_valid_before_utc == START
    assert cert.not_valid_after_utc == START + timedelta(days=825)


def test_unknown_role_and_naive_clock_are_refused(ca: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        issue(tmp_path, *ca, "peer", role="admin", clock_now=NOW)
    with pytest.raises(ValueError):
        issue(tmp_path, *ca, "peer", role="client", clock_now=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError):
        issue(tmp_path, *ca, "../peer", role="client", clock_now=NOW)


def test_keys_are_0600_and_certs_0644(ca: tuple[Path, Path], tmp_path: Path) -> None:
    leaf = issue(tmp_path, *ca, "peer", role="client", clock_now=NOW)
    for cert_path, key_path in (ca, leaf):
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(cert_path.stat().st_mode) == 0o644
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert key.public_key() == _load(cert_path).public_key()


def test_existing_key_is_never_overwritten(ca: tuple[Path, Path], tmp_path: Path) -> None:
    ca_key = ca[1].read_bytes()
    with pytest.raises(FileExistsError):
        create_ca(tmp_path, "test-ca", clock_now=NOW)
    assert ca[1].read_bytes() == ca_key
    _, leaf_key_path = issue(tmp_path, *ca, "peer", role="client", clock_now=NOW)
    leaf_key = leaf_key_path.read_bytes()
    with pytest.raises(FileExistsError):
        issue(tmp_path, *ca, "peer", role="server", clock_now=NOW)
    assert leaf_key_path.read_bytes() == leaf_key


def test_fingerprint_is_sha256_of_der_from_any_form(ca: tuple[Path, Path]) -> None:
    cert = _load(ca[0])
    expected = cert.fingerprint(hashes.SHA256()).hex()
    der = cert.public_bytes(serialization.Encoding.DER)
    forms = (ca[0], str(ca[0]), ca[0].read_bytes(), der)
    assert {fingerprint_sha256(form) for form in forms} == {expected}
    assert len(expected) == 64 and expected == expected.lower()


def test_cs_pki_init_is_idempotent_and_prints_no_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pki_dir = tmp_path / "pki"
    assert main(["init", "--dir", str(pki_dir)]) == 0
    first = capsys.readouterr().out
    contents = {path.name: path.read_bytes() for path in pki_dir.iterdir()}
    assert main(["init", "--dir", str(pki_dir)]) == 0
    second = capsys.readouterr().out
    assert {path.name: path.read_bytes() for path in pki_dir.iterdir()} == contents
    assert first.replace("created", "kept") == second
    names = ("cs-demo-ca", "cs", "register", "prefecture", "national")
    assert sorted(contents) == sorted(f"{n}-{kind}.pem" for n in names for kind in ("cert", "key"))
    for name in names:
        assert f"sha256={fingerprint_sha256(pki_dir / f'{name}-cert.pem')}" in first
    for text in (first, second):
        assert "PRIVATE KEY" not in text
        for name, data in contents.items():
            if name.endswith("-key.pem"):
                assert data.decode().splitlines()[1] not in text
    ca_cert = _load(pki_dir / "cs-demo-ca-cert.pem")
    for name in names[1:]:
        _load(pki_dir / f"{name}-cert.pem").verify_directly_issued_by(ca_cert)
