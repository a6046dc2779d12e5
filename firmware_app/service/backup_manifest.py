"""A backup's manifest: what the copy holds, encoded canonically and signed by the HSM key.

The manifest lets an auditor see, without any key, what a backup is (its size and digest, the
entries per database, where the register and the outboxes stood) and which wrapping keys it
depends on: destroying one of those epoch keys erases that part of every copy (cryptographic
erase), so the key list says which backups an erasure reaches.  Nothing in it is personal data.

The bytes signed are a fixed context string followed by the file's exact bytes, so a manifest
signature can never be mistaken for an outbox batch or check-data signature by the same key.
"""

from __future__ import annotations

import hashlib

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key

from storage import layout
from storage.store import Reader

__all__ = [
    "FORMAT_VERSION",
    "BackupError",
    "BackupRejected",
    "KeyRef",
    "Manifest",
    "StoreSummary",
    "decode_manifest",
    "encode_manifest",
    "signed_bytes",
    "summarize",
    "verify_signature",
]

FORMAT_VERSION = 1
_CONTEXT = b"cs-appliance backup manifest v1\0"
_SCALAR_BYTES = 32
_INBOX_PREFIX = b"inbox:"
_OUTBOX_CURSOR_PREFIX = b"outbox_"
_KEK_CHECK = b"kek_check"


class BackupError(Exception):
    """A backup, verification or restore could not be done (the message names why; never personal data)."""


class BackupRejected(BackupError):
    """The backup (or off-site file) is not intact or not ours; ``what`` names what is wrong."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class KeyRef(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One wrapped data key the copy holds: its id, use, and the token key that wraps it."""

    key_id: int
    use: str
    wrapped_by: str


class StoreSummary(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a snapshot of the store holds, read in the copy's own transaction."""

    schema_version: str
    entries: dict[str, int]
    inbox: dict[str, int]  # peer → next expected register sequence number, as stored
    outbox_cursors: dict[str, int]  # meta name (outbox_next:…, outbox_acked:…) → sequence number
    keys: list[KeyRef]
    kek_check_sha256: str | None  # digest of the KEK fingerprint: which token the copy needs


class Manifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The signed description of one backup."""

    format_version: int
    created_at: str  # ISO 8601 from the appliance clock
    note: str
    data_file: str
    data_size_bytes: int
    data_sha256: str
    store: StoreSummary


class _StoredKey(msgspec.Struct):
    """The fields of ``hsm.keys.WrappedKey`` the manifest names (other fields are ignored)."""

    key_id: int
    use: str
    wrapped_by: str


_KEY_DECODER = msgspec.msgpack.Decoder(_StoredKey)


def summarize(r: Reader, dbs: tuple[str, ...] = layout.ALL) -> StoreSummary:
    """The summary of the snapshot ``r`` sees (run inside the copy's transaction)."""
    entries = {}
    for name in dbs:
        try:
            entries[name] = r.count(name)
        except KeyError:
            continue  # a database this copy does not have
    schema = r.get(layout.META, b"schema") or b""
    inbox = {k[len(_INBOX_PREFIX):].decode("ascii", "replace"): layout.unpack_u64(v) for k, v in r.prefix(layout.INBOX, _INBOX_PREFIX)}
    cursors = {k.decode("ascii", "replace"): layout.unpack_u64(v) for k, v in r.prefix(layout.META, _OUTBOX_CURSOR_PREFIX)}
    keys = []
    for _, value in r.items(layout.KEYS):
        stored = _KEY_DECODER.decode(value)
        keys.append(KeyRef(stored.key_id, stored.use, stored.wrapped_by))
    kek_check = r.get(layout.META, _KEK_CHECK)
    return StoreSummary(
        schema_version=schema.decode("ascii", "replace"),
        entries=entries,
        inbox=inbox,
        outbox_cursors=cursors,
        keys=keys,
        kek_check_sha256=None if kek_check is None else hashlib.sha256(kek_check).hexdigest(),
    )


def encode_manifest(manifest: Manifest) -> bytes:
    """Canonical, readable JSON: sorted keys, two-space indent, ASCII, final newline."""
    compact = msgspec.json.encode(manifest, order="sorted")
    return msgspec.json.format(compact, indent=2) + b"\n"


def decode_manifest(data: bytes) -> Manifest:
    """The manifest, or ``BackupRejected`` when it is not one (or not in its canonical form)."""
    try:
        manifest = msgspec.json.decode(data, type=Manifest)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise BackupRejected("manifest is malformed") from None
    if manifest.format_version != FORMAT_VERSION:
        raise BackupRejected(f"manifest format version {manifest.format_version} is not one this software reads")
    if encode_manifest(manifest) != data:
        raise BackupRejected("manifest is malformed (not in canonical form)")
    return manifest


def signed_bytes(manifest_bytes: bytes) -> bytes:
    """What the HSM signs: a context string and the manifest file's exact bytes."""
    return _CONTEXT + manifest_bytes


def verify_signature(manifest_bytes: bytes, signature: bytes, public_key_der: bytes) -> None:
    """Raise ``BackupRejected`` unless ``signature`` (raw r‖s) is the CS key's over the manifest."""
    try:
        key = load_der_public_key(public_key_der)
    except ValueError:
        raise BackupError("the CS public key is not a DER SubjectPublicKeyInfo") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise BackupError("the CS public key must be an EC P-256 key")
    if len(signature) != 2 * _SCALAR_BYTES:
        raise BackupRejected("manifest signature has the wrong length")
    r = int.from_bytes(signature[:_SCALAR_BYTES], "big")
    s = int.from_bytes(signature[_SCALAR_BYTES:], "big")
    try:
        key.verify(encode_dss_signature(r, s), signed_bytes(manifest_bytes), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise BackupRejected("manifest signature does not verify") from None
