"""Recipes over the token: sealing keys, blind-index MACs, a signer, and wrapped-key records.

A data key is either held in process memory (AES-GCM and HMAC by ``cryptography``/``hashlib``,
the fast default) or only inside the HSM (strict mode, every operation a PKCS#11 call); both
offer the same ``seal``/``open`` or ``mac`` so the caller cannot tell them apart.
"""

from __future__ import annotations

import hashlib
import os

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hsm.errors import InvalidCiphertext
from hsm.token import SessionKey, Token

NONCE_BYTES = 12
TAG_BYTES = 16
#: Blind-index MACs are HMAC-SHA256 truncated to 8 bytes.  At a million values per index a false
#: candidate is about one query in 10^13, and every candidate is confirmed on its decrypted record;
#: shorter entries keep the indexes small, and every load transaction rewrites most of their pages.
MAC_BYTES = 8


class WrappedKey(msgspec.Struct, frozen=True):
    """A data key as stored: which token key wraps it, by which mechanism, and the blob."""

    key_id: int
    use: str  # "seal" or "mac"
    wrapped_by: str  # token label of the KEK or epoch key
    mechanism: str  # e.g. "CKM_AES_KEY_WRAP"
    blob: bytes
    created: str  # YYYYMMDD

    def __repr__(self) -> str:
        return f"WrappedKey(key_id={self.key_id}, use={self.use!r}, wrapped_by={self.wrapped_by!r})"


class ProcessSealingKey:
    """AES-256-GCM with the data key in process memory."""

    __slots__ = ("key_id", "_aead")

    def __init__(self, key_id: int, secret: bytes) -> None:
        self.key_id = key_id
        self._aead = AESGCM(secret)

    def __repr__(self) -> str:
        return f"ProcessSealingKey(key_id={self.key_id})"

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """nonce‖ciphertext‖tag under a fresh random nonce."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        """The plaintext, or ``InvalidCiphertext`` whatever went wrong."""
        if len(sealed) < NONCE_BYTES + TAG_BYTES:
            raise InvalidCiphertext()
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
        except InvalidTag:
            raise InvalidCiphertext() from None


class HsmSealingKey:
    """AES-256-GCM performed inside the HSM (strict mode)."""

    __slots__ = ("key_id", "_token", "_key", "_probe_label")

    def __init__(self, key_id: int, token: Token, key: SessionKey, probe_label: str) -> None:
        self.key_id = key_id
        self._token = token
        self._key = key
        self._probe_label = probe_label

    def __repr__(self) -> str:
        return f"HsmSealingKey(key_id={self.key_id})"

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._token.gcm_encrypt_blocking(self._key, nonce, plaintext, aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        if len(sealed) < NONCE_BYTES + TAG_BYTES:
            raise InvalidCiphertext()
        return self._token.gcm_decrypt_blocking(
            self._key, sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad, probe_label=self._probe_label
        )


class ProcessIndexMac:
    """HMAC-SHA256 (truncated) with the key in process memory; pads precomputed once."""

    __slots__ = ("key_id", "_inner", "_outer")

    def __init__(self, key_id: int, secret: bytes) -> None:
        if len(secret) > 64:
            raise ValueError("index key longer than the SHA-256 block")
        block = secret.ljust(64, b"\0")
        self.key_id = key_id
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def __repr__(self) -> str:
        return f"ProcessIndexMac(key_id={self.key_id})"

    def mac(self, data: bytes) -> bytes:
        """HMAC-SHA256(key, data)[:16] (RFC 2104 with the pads' states precomputed)."""
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:MAC_BYTES]


class HsmIndexMac:
    """HMAC-SHA256 (truncated) performed inside the HSM (strict mode)."""

    __slots__ = ("key_id", "_token", "_key")

    def __init__(self, key_id: int, token: Token, key: SessionKey) -> None:
        self.key_id = key_id
        self._token = token
        self._key = key

    def __repr__(self) -> str:
        return f"HsmIndexMac(key_id={self.key_id})"

    def mac(self, data: bytes) -> bytes:
        return self._token.hmac_blocking(self._key, data)[:MAC_BYTES]


class Signer:
    """Signs with the token's P-256 key; verification raises, never returns a bool."""

    def __init__(self, token: Token, label: str) -> None:
        self._token = token
        self._label = label

    def sign(self, data: bytes) -> bytes:
        """Raw r‖s ECDSA P-256 signature over SHA-256(data)."""
        return self._token.sign_blocking(self._label, data)

    def verify(self, data: bytes, signature: bytes) -> None:
        """Raise ``InvalidSignature`` unless ``signature`` is ours over ``data``."""
        self._token.verify_blocking(self._label, data, signature)

    def public_key_der(self) -> bytes:
        """DER SubjectPublicKeyInfo of the signing key."""
        return self._token.public_key_der_blocking(self._label)
