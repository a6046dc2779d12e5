"""The receiver's check of an outbox batch's signature (sans-IO; the signed bytes are defined by
:func:`firmware_app.domain.notices.batch_signed_bytes`)."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key

from firmware_app.domain.notices import batch_signed_bytes
from firmware_app.links.errors import LinkError

__all__ = ["BadBatchSignature", "BatchVerifier"]

_SCALAR_BYTES = 32


class BadBatchSignature(LinkError):
    """The batch's signature is not the CS's over these entries at this place in this channel."""


class BatchVerifier:
    """A receiver's check of batch signatures against the CS's public key (DER SubjectPublicKeyInfo)."""

    def __init__(self, public_key_der: bytes, channel: str) -> None:
        key = load_der_public_key(public_key_der)
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise ValueError("the CS signing key must be an EC P-256 public key")
        self._key = key
        self._channel = channel

    def verify(self, first_seq: int, entries: Sequence[bytes], signature: bytes) -> None:
        """Raise ``BadBatchSignature`` unless ``signature`` covers ``entries`` at ``first_seq``."""
        if len(signature) != 2 * _SCALAR_BYTES:
            raise BadBatchSignature("signature has the wrong length")
        r = int.from_bytes(signature[:_SCALAR_BYTES], "big")
        s = int.from_bytes(signature[_SCALAR_BYTES:], "big")
        try:
            self._key.verify(encode_dss_signature(r, s), batch_signed_bytes(self._channel, first_seq, entries), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise BadBatchSignature("batch signature does not verify") from None
