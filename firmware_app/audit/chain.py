"""The audit chain's byte layout and its verification (pure: no storage, no HSM).

Entry ``n`` is stored at key ``seq8(n)`` as ``body ‖ h(n)`` where ``body`` is the msgpack entry
(which repeats ``n``) and ``h(n) = SHA-256(DOMAIN ‖ h(n-1) ‖ body)``, ``h(anchor)`` being the
anchor hash (32 zero bytes at the start; after retention, the hash of the last entry deleted).
A checkpoint signs (seq, h(seq), time, anchor seq and hash, previous checkpoint's seq) with the
CS's HSM key.  Verification recomputes every hash from the anchor the newest checkpoint names, so
a changed byte, a missing, moved or swapped entry, a cut at or before a checkpoint, and a forged
or missing middle checkpoint are each found and named by the entry's sequence number.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import msgspec

from storage import layout

HASH_BYTES = 32
GENESIS_HASH = b"\0" * HASH_BYTES
_ENTRY_DOMAIN = b"cs-appliance audit entry v1\0"
_CHECKPOINT_DOMAIN = b"cs-appliance audit checkpoint v1\0"

Scalar = str | int | bool | None


class AuditEntry(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """One audit record: no personal data (residents appear as keyed pseudonyms)."""

    seq: int
    at: str  # ISO 8601 with offset
    kind: str
    actor: str
    subject: str
    detail: dict[str, Scalar]

    def to_json(self) -> dict[str, object]:
        return {"seq": self.seq, "at": self.at, "kind": self.kind, "actor": self.actor, "subject": self.subject, "detail": dict(self.detail)}


class Checkpoint(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """A signed statement: the chain through ``seq`` has hash ``chain_hash``, starting from the anchor."""

    seq: int
    chain_hash: bytes
    at: str
    anchor_seq: int
    anchor_hash: bytes
    prev_checkpoint_seq: int
    signature: bytes = b""

    def signed_bytes(self) -> bytes:
        return _CHECKPOINT_DOMAIN + _ENCODER.encode(
            [self.seq, self.chain_hash, self.at, self.anchor_seq, self.anchor_hash, self.prev_checkpoint_seq]
        )


_ENCODER = msgspec.msgpack.Encoder()
_ENTRY_DECODER = msgspec.msgpack.Decoder(AuditEntry)
_CHECKPOINT_DECODER = msgspec.msgpack.Decoder(Checkpoint)


def encode_entry(entry: AuditEntry) -> bytes:
    return _ENCODER.encode(entry)


def chain_hash(prev_hash: bytes, body: bytes) -> bytes:
    """The hash that links ``body`` to everything before it."""
    return hashlib.sha256(_ENTRY_DOMAIN + prev_hash + body).digest()


def stored_entry(prev_hash: bytes, entry: AuditEntry) -> tuple[bytes, bytes]:
    """(stored value, chain hash) of ``entry`` following ``prev_hash``."""
    body = encode_entry(entry)
    digest = chain_hash(prev_hash, body)
    return body + digest, digest


def decode_stored(value: bytes) -> tuple[AuditEntry, bytes, bytes]:
    """(entry, body, stored hash) of a stored value; ``msgspec.DecodeError`` or ``ValueError`` when malformed."""
    if len(value) <= HASH_BYTES:
        raise ValueError("audit value too short")
    body, digest = value[:-HASH_BYTES], value[-HASH_BYTES:]
    return _ENTRY_DECODER.decode(body), body, digest


def encode_checkpoint(cp: Checkpoint) -> bytes:
    return _ENCODER.encode(cp)


def decode_checkpoint(value: bytes) -> Checkpoint:
    return _CHECKPOINT_DECODER.decode(value)


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of a verification: ``first_broken_seq`` names the first entry at fault."""

    ok: bool
    entries: int
    checkpoints: int
    anchor_seq: int
    last_seq: int
    unsigned_tail: int
    first_broken_seq: int | None = None
    problem: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok, "entries": self.entries, "checkpoints": self.checkpoints, "anchor_seq": self.anchor_seq,
            "last_seq": self.last_seq, "unsigned_tail": self.unsigned_tail, "first_broken_seq": self.first_broken_seq,
            "problem": self.problem,
        }


class _Broken(Exception):
    def __init__(self, seq: int, problem: str) -> None:
        super().__init__(problem)
        self.seq = seq
        self.problem = problem


def verify_chain(
    entries: Iterable[tuple[bytes, bytes]],
    checkpoints: Iterable[tuple[bytes, bytes]],
    latest_checkpoint: tuple[bytes, bytes] | None,
    verify_signature: Callable[[bytes, bytes], None],
) -> VerifyReport:
    """Walk the stored entries and checkpoints (key order) and report the first break.

    ``verify_signature(data, signature)`` raises on a bad signature.  ``latest_checkpoint`` is read
    first: its (signed) anchor says where the retained chain must start.
    """
    counted = {"entries": 0, "checkpoints": 0}
    anchor_seq, anchor_hash = 0, GENESIS_HASH
    last_seq = 0
    last_cp_seq = 0
    try:
        if latest_checkpoint is not None:
            latest = _checked_checkpoint(*latest_checkpoint, verify_signature)
            anchor_seq, anchor_hash = latest.anchor_seq, latest.anchor_hash
        expected, prev = anchor_seq + 1, anchor_hash
        cps = _checkpoints_after(checkpoints, anchor_seq, verify_signature, counted)
        pending_cp = next(cps, None)
        prev_cp_seq: int | None = None
        for key, value in entries:
            seq = _seq_of(key)
            if seq < expected:
                continue  # entries at or before the anchor are outside the retained chain
            if seq != expected:
                raise _Broken(expected, f"entry {expected} is missing")
            try:
                entry, body, stored_hash = decode_stored(value)
            except (msgspec.DecodeError, ValueError):
                raise _Broken(seq, f"entry {seq} was altered (it does not decode)") from None
            if entry.seq != seq:
                raise _Broken(seq, f"entry {seq} holds entry {entry.seq}'s content (moved or reordered)")
            digest = chain_hash(prev, body)
            if digest != stored_hash:
                raise _Broken(seq, f"entry {seq} was altered (its hash does not match the chain)")
            while pending_cp is not None and pending_cp.seq <= seq:
                if pending_cp.seq < seq:
                    raise _Broken(pending_cp.seq, f"entry {pending_cp.seq} is missing (a checkpoint covers it)")
                if pending_cp.chain_hash != digest:
                    raise _Broken(seq, f"entry {seq}: the signed checkpoint does not match the chain (an earlier entry was rewritten)")
                if prev_cp_seq is not None and pending_cp.prev_checkpoint_seq != prev_cp_seq:
                    raise _Broken(seq, f"entry {seq}: the checkpoint before this one (at entry {pending_cp.prev_checkpoint_seq}) is missing")
                prev_cp_seq = pending_cp.seq
                last_cp_seq = seq
                pending_cp = next(cps, None)
            counted["entries"] += 1
            prev, expected, last_seq = digest, seq + 1, seq
        if pending_cp is not None:
            raise _Broken(expected, f"entry {expected} is missing (the chain was cut; a checkpoint covers entry {pending_cp.seq})")
        if latest_checkpoint is not None and _seq_of(latest_checkpoint[0]) > last_seq:
            raise _Broken(expected, f"entry {expected} is missing (the chain was cut)")
    except _Broken as broken:
        return VerifyReport(False, counted["entries"], counted["checkpoints"], anchor_seq, last_seq, 0, broken.seq, broken.problem)
    return VerifyReport(True, counted["entries"], counted["checkpoints"], anchor_seq, last_seq, last_seq - max(last_cp_seq, anchor_seq))


def _seq_of(key: bytes) -> int:
    try:
        return layout.unpack_u64(key)
    except Exception:  # noqa: BLE001 - a key of the wrong length is tampering like any other
        raise _Broken(0, "a key of the audit table is malformed") from None


def _checked_checkpoint(key: bytes, value: bytes, verify_signature: Callable[[bytes, bytes], None]) -> Checkpoint:
    seq = _seq_of(key)
    try:
        cp = decode_checkpoint(value)
    except msgspec.DecodeError:
        raise _Broken(seq, f"entry {seq}: its checkpoint was altered (it does not decode)") from None
    if cp.seq != seq:
        raise _Broken(seq, f"entry {seq}: its checkpoint was moved from entry {cp.seq}")
    try:
        verify_signature(cp.signed_bytes(), cp.signature)
    except Exception:  # noqa: BLE001 - any failure of verification is a forged or altered checkpoint
        raise _Broken(seq, f"entry {seq}: its checkpoint's signature does not verify (forged or altered)") from None
    return cp


def _checkpoints_after(
    checkpoints: Iterable[tuple[bytes, bytes]], anchor_seq: int, verify_signature: Callable[[bytes, bytes], None], counted: dict[str, int]
) -> Iterator[Checkpoint]:
    for key, value in checkpoints:
        if _seq_of(key) <= anchor_seq:
            continue
        cp = _checked_checkpoint(key, value, verify_signature)
        counted["checkpoints"] += 1
        yield cp


def check_detail(detail: Mapping[str, Scalar] | None, *, max_items: int, max_chars: int) -> dict[str, Scalar]:
    """A flat, JSON-safe copy of ``detail``; ``ValueError`` when it is not one."""
    if detail is None:
        return {}
    if len(detail) > max_items:
        raise ValueError("too many detail items")
    out: dict[str, Scalar] = {}
    for key, value in detail.items():
        if not isinstance(key, str) or len(key) > 64:
            raise ValueError("detail keys must be short strings")
        if value is not None and not isinstance(value, str | int | bool):
            raise ValueError("detail values must be strings, integers, booleans or None")
        if isinstance(value, str) and len(value) > max_chars:
            raise ValueError("a detail value is too long")
        out[key] = value
    return out
