"""The PKCS#11 adapter against a real SoftHSM2 token: provisioning, wrap/unwrap, signatures, strict mode.

Most tests share the session's one logged-in token (tests/conftest.py); those that would spend a
login or may leave a token "lost" run in a child process with a token of their own.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pkcs11 import ObjectClass

from hsm.errors import HsmError, HsmKeyMissing, HsmUnavailable, InvalidCiphertext, InvalidSignature
from hsm.keys import MAC_BYTES, HsmIndexMac, HsmSealingKey, ProcessIndexMac, ProcessSealingKey, Signer
from hsm.labels import EPOCH_PREFIX, KEK_LABEL, SIGNING_LABEL, epoch_label
from hsm.provision import initial_epochs, provision_keys
from hsm.softhsm import ensure_softhsm_token
from hsm.token import SECRET_BYTES, WRAP_MECHANISM
from hsm_subproc import MODULE_PATH, child_env, run_script

#: The date the session token is provisioned for (tests/conftest.py).
PROVISION_DATE = datetime.date(2026, 11, 26)

EPOCH = initial_epochs(PROVISION_DATE)[0]


def _flip(data: bytes, index: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[index] ^= 1 << bit
    return bytes(out)


@pytest.fixture
def throwaway_label(token):
    """A fresh wrapping key in the shared token, destroyed afterwards if the test left it."""
    label = epoch_label("audit", "T" + uuid.uuid4().hex)
    token.create_wrapping_key_blocking(label)
    yield label
    if not token.lost and token.has_key_blocking(label):
        token.destroy_key_blocking(label)


# -- keys cannot be read out ------------------------------------------------------------------------


def _pkcs11_tool_read(hsm_config, object_type: str, label: str) -> subprocess.CompletedProcess:
    pin = hsm_config.pin_file.read_text().strip()
    state_dir = hsm_config.pin_file.parent.parent
    return subprocess.run(
        [
            "pkcs11-tool", "--module", MODULE_PATH, "--login", "--pin", pin,
            "--read-object", "--type", object_type, "--label", label,
        ],
        env=child_env(state_dir),
        capture_output=True,
        timeout=60,
    )


def test_pkcs11_tool_can_read_the_public_key(hsm_config) -> None:
    """Control for the next test: the same command line does read a non-sensitive object."""
    proc = _pkcs11_tool_read(hsm_config, "pubkey", SIGNING_LABEL)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert len(proc.stdout) > 0


@pytest.mark.parametrize("label", [KEK_LABEL, EPOCH], ids=["kek", "epoch"])
def test_wrapping_keys_cannot_be_read_out(hsm_config, token, label: str) -> None:
    assert token.has_key_blocking(label)
    proc = _pkcs11_tool_read(hsm_config, "secrkey", label)
    err = (proc.stdout + proc.stderr).decode(errors="replace")
    assert proc.returncode != 0
    assert "object not found" not in err, "the key should exist; the test would prove nothing"
    assert "SENSITIVE" in err.upper()


# -- provisioning ----------------------------------------------------------------------------------


def test_provisioning_is_idempotent_in_the_shared_token(token) -> None:
    assert provision_keys(token, PROVISION_DATE) == []
    assert token.has_key_blocking(KEK_LABEL)
    assert token.has_key_blocking(SIGNING_LABEL, ObjectClass.PRIVATE_KEY)
    assert token.has_key_blocking(SIGNING_LABEL, ObjectClass.PUBLIC_KEY)
    epochs = initial_epochs(PROVISION_DATE)
    assert len(set(epochs)) == 6
    assert set(epochs) <= set(token.key_labels_blocking(EPOCH_PREFIX))
    assert KEK_LABEL not in token.key_labels_blocking(EPOCH_PREFIX)


def test_provisioning_a_fresh_token_creates_everything_once(tmp_path: Path) -> None:
    ensure_softhsm_token(tmp_path)
    out = run_script(
        tmp_path,
        f"""
        import datetime
        from pathlib import Path
        from pkcs11 import ObjectClass
        from hsm.config import open_token
        from hsm.softhsm import ensure_softhsm_token
        from hsm.provision import provision_keys
        token = open_token(ensure_softhsm_token(Path({str(tmp_path)!r})))
        first = provision_keys(token, datetime.date(2026, 11, 26))
        second = provision_keys(token, datetime.date(2026, 11, 26))
        print("|".join(first))
        print(len(second))
        print(token.has_key_blocking("cs-sign", ObjectClass.PRIVATE_KEY), token.has_key_blocking("cs-sign", ObjectClass.PUBLIC_KEY))
        token.close_blocking()
        """,
    )
    first, second, pair = out.splitlines()
    assert first.split("|") == [KEK_LABEL, SIGNING_LABEL, *initial_epochs(PROVISION_DATE)]
    assert second == "0"
    assert pair == "True True"


def test_initial_epochs() -> None:
    assert initial_epochs(datetime.date(2026, 12, 31)) == [
        "cs-epoch/history/2176",
        "cs-epoch/history/2177",
        "cs-epoch/destination/202612",
        "cs-epoch/destination/202701",
        "cs-epoch/moveout/202612",
        "cs-epoch/moveout/202701",
    ]


def test_provision_cli_is_idempotent_and_prints_no_pin(tmp_path: Path) -> None:
    import sys

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "hsm.provision", "--state-dir", str(tmp_path), "--softhsm"],
            env=child_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[2],
        )

    first = run()
    assert first.returncode == 0, first.stderr
    assert "keys created: 8" in first.stdout
    second = run()
    assert second.returncode == 0, second.stderr
    assert "keys created: 0" in second.stdout
    pin = (tmp_path / "credentials" / "hsm-pin").read_text().strip()
    so_pin = (tmp_path / "credentials" / "hsm-so-pin").read_text().strip()
    leaked = any(secret in text for text in (first.stdout, first.stderr, second.stdout, second.stderr) for secret in (pin, so_pin))
    assert not leaked, "cs-provision printed a PIN"


def test_softhsm_token_files_are_private(hsm_config) -> None:
    for name in ("hsm-pin", "hsm-so-pin"):
        path = hsm_config.pin_file.parent / name
        assert path.stat().st_mode & 0o777 == 0o600
        assert len(path.read_text().strip()) >= 16
    assert hsm_config.pin_file.parent.stat().st_mode & 0o077 == 0


# -- wrap / unwrap ----------------------------------------------------------------------------------


@pytest.mark.parametrize("wrapping", [KEK_LABEL, EPOCH], ids=["kek", "epoch"])
def test_wrap_unwrap_round_trip(token, wrapping: str) -> None:
    secret = os.urandom(SECRET_BYTES)
    blob = token.wrap_secret_blocking(wrapping, secret)
    assert len(blob) == SECRET_BYTES + 8  # RFC 3394 adds one 8-byte block
    assert secret not in blob
    assert token.unwrap_secret_blocking(wrapping, blob, WRAP_MECHANISM) == secret
    # Deterministic (RFC 3394 has no nonce): the same secret wraps to the same blob.
    assert token.wrap_secret_blocking(wrapping, secret) == blob
    assert not token.lost


def test_wrap_refuses_other_lengths(token) -> None:
    for n in (0, 16, 31, 33, 64):
        with pytest.raises(ValueError):
            token.wrap_secret_blocking(KEK_LABEL, bytes(n))
    assert not token.lost


def test_check_value_is_deterministic_and_per_key(token) -> None:
    kek1 = token.check_value_blocking(KEK_LABEL)
    kek2 = token.check_value_blocking(KEK_LABEL)
    epoch = token.check_value_blocking(EPOCH)
    other_epoch = token.check_value_blocking(initial_epochs(PROVISION_DATE)[1])
    assert kek1 == kek2
    assert len(kek1) == 40
    assert len({kek1, epoch, other_epoch}) == 3


def test_unknown_mechanism_is_refused(token) -> None:
    blob = token.wrap_secret_blocking(KEK_LABEL, os.urandom(SECRET_BYTES))
    for name in ("CKM_AES_KEY_WRAP_PAD", "CKM_AES_KEY_WRAP_KWP", "", "ckm_aes_key_wrap"):
        with pytest.raises(HsmError):
            token.unwrap_secret_blocking(KEK_LABEL, blob, name)
        with pytest.raises(HsmError):
            token.unwrap_session_key_blocking(KEK_LABEL, blob, name, use="seal")
    assert not token.lost


def test_malformed_blob_lengths_are_refused(token) -> None:
    """Blobs that are not whole 8-byte blocks are refused without the token being declared lost."""
    blob = token.wrap_secret_blocking(KEK_LABEL, os.urandom(SECRET_BYTES))
    for bad in (b"", blob[:-3], blob + b"\0"):
        with pytest.raises(HsmError) as info:
            token.unwrap_secret_blocking(KEK_LABEL, bad, WRAP_MECHANISM)
        assert not isinstance(info.value, HsmUnavailable)
    assert not token.lost


# A blob that fails RFC 3394's integrity check must be refused as a bad blob (HsmError), not make
# the process give up on the whole token.  Run in a child: if it does, the token is lost for good.
_TAMPER_CHILD = """
    import os
    from pathlib import Path
    from hsm.config import open_token
    from hsm.errors import HsmUnavailable
    from hsm.softhsm import ensure_softhsm_token
    from hsm.provision import provision_keys
    import datetime
    token = open_token(ensure_softhsm_token(Path({state!r})))
    provision_keys(token, datetime.date(2026, 11, 26))
    blob = token.wrap_secret_blocking("cs-kek", os.urandom(32))
    other = token.wrap_secret_blocking({epoch!r}, os.urandom(32))
    case = {case!r}
    if case == "first-byte":
        bad, under = bytes([blob[0] ^ 1]) + blob[1:], "cs-kek"
    elif case == "last-byte":
        bad, under = blob[:-1] + bytes([blob[-1] ^ 0x80]), "cs-kek"
    elif case == "truncated-block":
        bad, under = blob[:-8], "cs-kek"
    elif case == "extra-block":
        bad, under = blob + bytes(8), "cs-kek"
    else:  # wrapped under another key
        bad, under = other, "cs-kek"
    try:
        if {use!r}:
            token.unwrap_session_key_blocking(under, bad, "CKM_AES_KEY_WRAP", use={use!r})
        else:
            token.unwrap_secret_blocking(under, bad, "CKM_AES_KEY_WRAP")
        print("accepted")
    except Exception as exc:
        print(type(exc).__name__)
    print("lost" if token.lost else "alive")
    try:
        token.check_value_blocking("cs-kek")
        print("usable")
    except Exception as exc:
        print(type(exc).__name__)
"""


@pytest.mark.parametrize(
    ("case", "use"),
    [
        ("first-byte", ""),
        ("truncated-block", ""),
        ("other-key", ""),
        ("last-byte", "seal"),
    ],
)
def test_altered_blob_raises_hsm_error_and_keeps_token(tmp_path: Path, case: str, use: str) -> None:
    ensure_softhsm_token(tmp_path)
    out = run_script(tmp_path, _TAMPER_CHILD.format(state=str(tmp_path), epoch=EPOCH, case=case, use=use))
    error, state, after = out.split()
    assert error not in ("accepted",), "an altered blob was unwrapped"
    import hsm.errors

    assert issubclass(getattr(hsm.errors, error), HsmError), error
    # A corrupt blob in storage is not evidence that the token has gone away.
    assert (error, state, after) == ("HsmError", "alive", "usable"), (
        f"an altered wrapped key made the token fail closed: {error}, {state}, {after}"
    )


# -- signatures -------------------------------------------------------------------------------------


def test_sign_and_verify(token) -> None:
    signer = Signer(token, SIGNING_LABEL)
    data = b"audit record 0001: \xe4\xbd\x8f\xe6\xb0\x91\xe7\xa5\xa8"
    sig = signer.sign(data)
    assert len(sig) == 64
    signer.verify(data, sig)
    for i in (0, len(data) // 2, len(data) - 1):
        with pytest.raises(InvalidSignature):
            signer.verify(_flip(data, i, 3), sig)
    for i, bit in ((0, 7), (31, 0), (32, 0), (63, 7)):  # in r and in s
        with pytest.raises(InvalidSignature):
            signer.verify(data, _flip(sig, i, bit))
    for bad in (b"", sig[:-1], sig + b"\0", bytes(64)):
        with pytest.raises(InvalidSignature):
            signer.verify(data, bad)
    assert not token.lost


def test_signer_public_key_verifies_with_cryptography(token) -> None:
    signer = Signer(token, SIGNING_LABEL)
    public = load_der_public_key(signer.public_key_der())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp256r1"
    data = b"checkpoint 2026-11-26"
    sig = signer.sign(data)
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    public.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(CryptoInvalidSignature):
        public.verify(encode_dss_signature(r, s), data + b".", ec.ECDSA(hashes.SHA256()))


def test_signatures_are_randomised_but_all_verify(token) -> None:
    signer = Signer(token, SIGNING_LABEL)
    sigs = {signer.sign(b"same data") for _ in range(3)}
    assert len(sigs) == 3
    for sig in sigs:
        signer.verify(b"same data", sig)


def test_missing_signing_key(token) -> None:
    with pytest.raises(HsmKeyMissing):
        Signer(token, "cs-sign-missing").sign(b"x")
    assert not token.lost


# -- strict mode -------------------------------------------------------------------------------------


def test_strict_mode_sealing_round_trip_and_tamper(token) -> None:
    secret = os.urandom(SECRET_BYTES)
    blob = token.wrap_secret_blocking(KEK_LABEL, secret)
    session_key = token.unwrap_session_key_blocking(KEK_LABEL, blob, WRAP_MECHANISM, use="seal")
    assert repr(session_key) == "SessionKey(<in HSM>)"
    key = HsmSealingKey(7, token, session_key, KEK_LABEL)
    aad = b"cs-env\x01identity"
    plaintext = "住民票コード 12345678903".encode()
    sealed = key.seal(plaintext, aad)
    assert len(sealed) == 12 + len(plaintext) + 16
    assert key.open(sealed, aad) == plaintext
    assert key.seal(plaintext, aad) != sealed  # fresh nonce
    # The HSM's ciphertext is ordinary AES-GCM under the same secret.
    assert ProcessSealingKey(7, secret).open(sealed, aad) == plaintext
    assert key.open(ProcessSealingKey(7, secret).seal(plaintext, aad), aad) == plaintext
    # Tag failures come back from SoftHSM as CKR_GENERAL_ERROR; the probe must tell them from a fault.
    for i in (0, 11, 12, len(sealed) - 17, len(sealed) - 1):
        with pytest.raises(InvalidCiphertext):
            key.open(_flip(sealed, i), aad)
    with pytest.raises(InvalidCiphertext):
        key.open(sealed, aad + b"x")
    for n in (0, 27, 28, len(sealed) - 1):
        with pytest.raises(InvalidCiphertext):
            key.open(sealed[:n], aad)
    assert not token.lost
    assert key.open(sealed, aad) == plaintext


def test_strict_mode_index_mac_equals_process_mac(token) -> None:
    secret = os.urandom(SECRET_BYTES)
    blob = token.wrap_secret_blocking(EPOCH, secret)
    in_process = ProcessIndexMac(3, token.unwrap_secret_blocking(EPOCH, blob, WRAP_MECHANISM))
    in_hsm = HsmIndexMac(3, token, token.unwrap_session_key_blocking(EPOCH, blob, WRAP_MECHANISM, use="mac"))
    for msg in (b"", b"a", "メグロタロウ".encode(), os.urandom(200)):
        expected = hmac.new(secret, msg, hashlib.sha256).digest()[:MAC_BYTES]
        assert in_hsm.mac(msg) == expected
        assert in_process.mac(msg) == expected


# -- destruction ---------------------------------------------------------------------------------------


def test_destroyed_key_is_gone_and_its_blobs_do_not_unwrap(token, throwaway_label: str) -> None:
    label = throwaway_label
    assert token.has_key_blocking(label)
    assert label in token.key_labels_blocking(EPOCH_PREFIX + "audit/")
    secret = os.urandom(SECRET_BYTES)
    blob = token.wrap_secret_blocking(label, secret)
    assert token.unwrap_secret_blocking(label, blob, WRAP_MECHANISM) == secret

    token.destroy_key_blocking(label)

    assert not token.has_key_blocking(label)
    assert label not in token.key_labels_blocking(EPOCH_PREFIX)
    with pytest.raises(HsmKeyMissing):
        token.unwrap_secret_blocking(label, blob, WRAP_MECHANISM)
    with pytest.raises(HsmKeyMissing):
        token.unwrap_session_key_blocking(label, blob, WRAP_MECHANISM, use="seal")
    with pytest.raises(HsmKeyMissing):
        token.check_value_blocking(label)
    with pytest.raises(HsmKeyMissing):
        token.destroy_key_blocking(label)
    assert not token.lost
    # The other keys are untouched.
    assert token.has_key_blocking(KEK_LABEL)


def test_creating_an_existing_label_is_refused(token, throwaway_label: str) -> None:
    with pytest.raises(HsmError):
        token.create_wrapping_key_blocking(throwaway_label)
    with pytest.raises(HsmError):
        token.create_wrapping_key_blocking(KEK_LABEL)
    assert not token.lost


def test_epoch_labels_are_checked() -> None:
    assert epoch_label("history", "2176") == "cs-epoch/history/2176"
    for cls, period in (("nope", "2026"), ("audit", ""), ("audit", "2026/01"), ("audit", "２０２６"), ("audit", "a b")):
        with pytest.raises(ValueError):
            epoch_label(cls, period)


def test_random_bytes(token) -> None:
    a, b = token.random_blocking(32), token.random_blocking(32)
    assert len(a) == len(b) == 32
    assert a != b
