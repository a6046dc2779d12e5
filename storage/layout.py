"""Named databases and key encodings of the LMDB environment."""

from __future__ import annotations

import struct

from storage.errors import CorruptValue

IDENTITY = "identity"  # code5 → envelope(current record)
HISTORY = "history"  # due8 ‖ code5 ‖ version4 → envelope(superseded record), in deletion order
IX_NUMBER = "ix_number"  # mac8 → code5 (dup)
IX_KANA = "ix_kana"
IX_KANJI = "ix_kanji"
IX_BIRTH = "ix_birth"
IX_ADDR = "ix_addr"
HISTORY_INDEX = "history_ix"  # code5 ‖ version4 → due8 (a resident's versions, and where each is)
KEYS = "keys"  # key_id4 → msgpack(WrappedKey)
META = "meta"  # name → value
OUTBOX_PREF = "outbox_pref"  # seq8 → envelope(outbox entry) for the prefecture
OUTBOX_NATIONAL = "outbox_national"  # seq8 → envelope(outbox entry) for the card system (national side)
INBOX = "inbox"  # peer name → next expected update sequence number (u64)
MOVEOUT = "moveout"  # code5 → envelope(move-out certificate) awaiting a special move-in
EXPIRY = "expiry"  # due8 ‖ class1 ‖ key → b"" (what else falls due: move-out certificates, destination records)
ROOM_ALARMS = "room_alarms"  # alarm ID (UTC time-ordered ASCII) → JSON alarm (machine room)
ROOM_RECORD = "room_record"  # time_us8 ‖ seq4 → JSON row of the physical-access record

# console and audit
OPERATORS = "operators"  # operator ID (ASCII) → msgpack(operator record)
AUDIT = "audit"  # seq8 → msgpack(audit entry) ‖ chain hash (32)
AUDIT_CHECKPOINTS = "audit_cp"  # seq8 → msgpack(signed checkpoint over the chain through seq)
EXPORTS = "exports"  # export id (u64) → msgpack(export request under the two-person rule)

INDEXES = (IX_NUMBER, IX_KANA, IX_KANJI, IX_BIRTH, IX_ADDR)
PLAIN = (
    IDENTITY, HISTORY, HISTORY_INDEX, KEYS, META, OUTBOX_PREF, OUTBOX_NATIONAL, INBOX, MOVEOUT, EXPIRY,
    ROOM_ALARMS, ROOM_RECORD, OPERATORS, AUDIT, AUDIT_CHECKPOINTS, EXPORTS,
)
OUTBOXES = (OUTBOX_PREF, OUTBOX_NATIONAL)
ALL = PLAIN + INDEXES

SCHEMA_VERSION = b"2"

CODE_BYTES = 5
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_MAX_CODE = 10**11


def pack_code(code: str) -> bytes:
    """An 11-digit resident code as 5 big-endian bytes (order-preserving)."""
    if len(code) != 11 or not code.isascii() or not code.isdigit():
        raise ValueError("resident code must be 11 ASCII digits")
    return int(code).to_bytes(CODE_BYTES, "big")


def unpack_code(data: bytes) -> str:
    """Inverse of :func:`pack_code`."""
    if len(data) != CODE_BYTES:
        raise CorruptValue("stored resident code has the wrong length")
    value = int.from_bytes(data, "big")
    if value >= _MAX_CODE:
        raise CorruptValue("stored resident code is out of range")
    return f"{value:011d}"


def pack_u32(value: int) -> bytes:
    """A 32-bit unsigned big-endian integer."""
    return _U32.pack(value)


def unpack_u32(data: bytes) -> int:
    """Inverse of :func:`pack_u32`."""
    if len(data) != 4:
        raise CorruptValue("stored integer has the wrong length")
    return _U32.unpack(data)[0]


def history_key(due_yyyymmdd: str, code5: bytes, version: int) -> bytes:
    """Key of one superseded version: its deletion date first, so the retention sweep deletes
    a contiguous range of pages instead of scattered entries."""
    return due_yyyymmdd.encode("ascii") + code5 + _U32.pack(version)


def history_index_key(code5: bytes, version: int) -> bytes:
    """Key of a resident's version in the history index (its value is the deletion date)."""
    return code5 + _U32.pack(version)


def pack_u64(value: int) -> bytes:
    """A 64-bit unsigned big-endian integer (order-preserving: outbox and inbox sequence numbers)."""
    return _U64.pack(value)


def unpack_u64(data: bytes) -> int:
    """Inverse of :func:`pack_u64`."""
    if len(data) != 8:
        raise CorruptValue("stored integer has the wrong length")
    return _U64.unpack(data)[0]


#: Classes of the ``expiry`` schedule.
EXPIRY_MOVEOUT = b"M"  # key: code5
EXPIRY_DESTINATION = b"D"  # key: seq8 of the card-system outbox entry


def expiry_key(due_yyyymmdd: str, expiry_class: bytes, key: bytes) -> bytes:
    """Key of one entry of the expiry schedule, ordered by due date."""
    return due_yyyymmdd.encode("ascii") + expiry_class + key
