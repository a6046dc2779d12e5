"""The in-process key recipes (no HSM needed): AES-256-GCM sealing and the truncated HMAC blind index."""

from __future__ import annotations

import hashlib
import hmac
import os

import msgspec
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from hsm.errors import InvalidCiphertext
from hsm.keys import MAC_BYTES, NONCE_BYTES, TAG_BYTES, HsmIndexMac, HsmSealingKey, ProcessIndexMac, ProcessSealingKey, WrappedKey
from hsm.token import SessionKey

KEY = bytes(range(32))


def _flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[index] ^= mask
    return bytes(out)


# -- ProcessSealingKey -------------------------------------------------------------------------------


def test_seal_open_round_trip() -> None:
    key = ProcessSealingKey(1, KEY)
    for plaintext in (b"", b"x", "目黒　太郎".encode(), os.urandom(5000)):
        sealed = key.seal(plaintext, b"aad")
        assert len(sealed) == NONCE_BYTES + len(plaintext) + TAG_BYTES
        assert key.open(sealed, b"aad") == plaintext


def test_seal_uses_a_fresh_nonce() -> None:
    key = ProcessSealingKey(1, KEY)
    sealed = [key.seal(b"same", b"aad") for _ in range(20)]
    assert len({s[:NONCE_BYTES] for s in sealed}) == 20
    assert len(set(sealed)) == 20


def test_every_flipped_byte_is_refused() -> None:
    key = ProcessSealingKey(1, KEY)
    sealed = key.seal(b"short value", b"identity")
    assert key.open(sealed, b"identity") == b"short value"
    for i in range(len(sealed)):
        for mask in (0x01, 0x80):
            with pytest.raises(InvalidCiphertext):
                key.open(_flip(sealed, i, mask), b"identity")


def test_wrong_aad_is_refused() -> None:
    key = ProcessSealingKey(1, KEY)
    sealed = key.seal(b"short value", b"identity/00000000001")
    for aad in (b"", b"identity/00000000002", b"identity/00000000001\0", b"identity/0000000000"):
        with pytest.raises(InvalidCiphertext):
            key.open(sealed, aad)


def test_truncated_or_extended_is_refused() -> None:
    key = ProcessSealingKey(1, KEY)
    sealed = key.seal(b"short value", b"a")
    for n in range(len(sealed)):
        with pytest.raises(InvalidCiphertext):
            key.open(sealed[:n], b"a")
    with pytest.raises(InvalidCiphertext):
        key.open(sealed + b"\0", b"a")
    with pytest.raises(InvalidCiphertext):
        key.open(sealed[1:], b"a")


def test_other_key_is_refused() -> None:
    sealed = ProcessSealingKey(1, KEY).seal(b"value", b"a")
    with pytest.raises(InvalidCiphertext):
        ProcessSealingKey(1, bytes(32)).open(sealed, b"a")


def test_invalid_ciphertext_says_nothing() -> None:
    key = ProcessSealingKey(1, KEY)
    with pytest.raises(InvalidCiphertext) as info:
        key.open(_flip(key.seal(b"secret payload", b"a"), 20), b"a")
    assert str(info.value) == "ciphertext did not open"
    assert info.value.__cause__ is None and info.value.__suppress_context__


# NIST GCM specification (McGrew & Viega), test case 16: AES-256, 60-byte plaintext, 20-byte AAD.
GCM_KEY = bytes.fromhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
GCM_IV = bytes.fromhex("cafebabefacedbaddecaf888")
GCM_PT = bytes.fromhex(
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
)
GCM_AAD = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
GCM_CT = bytes.fromhex(
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
)
GCM_TAG = bytes.fromhex("76fc6ece0f4e1768cddf8853bb2d551b")


def test_gcm_known_answer_interop() -> None:
    assert len(GCM_PT) == 60
    assert AESGCM(GCM_KEY).encrypt(GCM_IV, GCM_PT, GCM_AAD) == GCM_CT + GCM_TAG
    key = ProcessSealingKey(9, GCM_KEY)
    assert key.open(GCM_IV + GCM_CT + GCM_TAG, GCM_AAD) == GCM_PT
    with pytest.raises(InvalidCiphertext):
        key.open(GCM_IV + GCM_CT + _flip(GCM_TAG, 15), GCM_AAD)
    with pytest.raises(InvalidCiphertext):
        key.open(GCM_IV + GCM_CT + GCM_TAG, GCM_AAD[:-1])
    # And the other way: what seal() produces is plain nonce ‖ AES-GCM output.
    sealed = key.seal(GCM_PT, GCM_AAD)
    assert AESGCM(GCM_KEY).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], GCM_AAD) == GCM_PT


@pytest.mark.parametrize("n", [0, 15, 31, 33, 64])
def test_sealing_key_must_be_an_aes_key(n: int) -> None:
    with pytest.raises(ValueError):
        ProcessSealingKey(1, bytes(n))


# -- ProcessIndexMac ---------------------------------------------------------------------------------

# RFC 4231 test cases 1-4 (keys up to one SHA-256 block), HMAC-SHA256.
RFC4231 = [
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 20, b"\xdd" * 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (bytes(range(1, 26)), b"\xcd" * 50, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
]


@pytest.mark.parametrize(("key", "data", "expected"), RFC4231, ids=["tc1", "tc2", "tc3", "tc4"])
def test_index_mac_rfc4231(key: bytes, data: bytes, expected: str) -> None:
    mac = ProcessIndexMac(1, key)
    assert MAC_BYTES == 8
    assert mac.mac(data) == bytes.fromhex(expected)[:MAC_BYTES]
    assert mac.mac(data) == hmac.new(key, data, hashlib.sha256).digest()[:MAC_BYTES]


@settings(max_examples=300, deadline=None, database=None)
@given(key=st.binary(min_size=0, max_size=64), data=st.lists(st.binary(max_size=300), min_size=1, max_size=4))
def test_index_mac_equals_hmac(key: bytes, data: list[bytes]) -> None:
    mac = ProcessIndexMac(1, key)
    # Several messages through the same object: the precomputed pad states must not be consumed.
    for msg in data + data[:1]:
        assert mac.mac(msg) == hmac.new(key, msg, hashlib.sha256).digest()[:MAC_BYTES]


def test_index_mac_refuses_keys_longer_than_a_block() -> None:
    with pytest.raises(ValueError):
        ProcessIndexMac(1, bytes(65))


# -- nothing secret in reprs ---------------------------------------------------------------------------


def _assert_hidden(obj: object, secret: bytes) -> None:
    for text in (repr(obj), str(obj)):
        assert secret.hex() not in text
        assert secret.hex().upper() not in text
        assert repr(secret) not in text
        assert secret.decode("latin-1") not in text


def test_reprs_never_show_key_material() -> None:
    secret = b"K" * 8 + os.urandom(24)
    sealing = ProcessSealingKey(5, secret)
    index = ProcessIndexMac(6, secret)
    _assert_hidden(sealing, secret)
    _assert_hidden(index, secret)
    assert repr(sealing) == "ProcessSealingKey(key_id=5)"
    assert repr(index) == "ProcessIndexMac(key_id=6)"
    session_key = SessionKey(object())
    _assert_hidden(HsmSealingKey(7, None, session_key, "cs-kek"), secret)  # type: ignore[arg-type]
    _assert_hidden(HsmIndexMac(8, None, session_key), secret)  # type: ignore[arg-type]
    assert repr(session_key) == "SessionKey(<in HSM>)"
    # Slots only: no __dict__ through which vars() would expose the key.
    for obj in (sealing, index):
        assert not hasattr(obj, "__dict__")


def test_wrapped_key_repr_hides_the_blob_and_round_trips() -> None:
    blob = os.urandom(40)
    wk = WrappedKey(key_id=3, use="seal", wrapped_by="cs-kek", mechanism="CKM_AES_KEY_WRAP", blob=blob, created="20261126")
    _assert_hidden(wk, blob)
    assert "cs-kek" in repr(wk)
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(wk), type=WrappedKey)
    assert decoded == wk
    assert decoded.blob == blob
