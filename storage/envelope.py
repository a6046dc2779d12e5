"""The layout of an encrypted value, and the associated data that binds it to where it lives.

value = format(1) ‖ key_id(4) ‖ version(4) ‖ sealed (nonce ‖ ciphertext ‖ tag)
AAD   = b"cs-env" ‖ format ‖ len(table) ‖ table ‖ len(key) ‖ key ‖ version ‖ key_id

A value copied to another table, another key or another version, or relabelled with another
key id, no longer opens.
"""

from __future__ import annotations

import struct

from storage.errors import CorruptValue

FORMAT_V1 = 1
_HEADER = struct.Struct(">BII")
HEADER_BYTES = _HEADER.size
_AAD_PREFIX = b"cs-env"


class Envelope:
    """The parsed header of a stored encrypted value."""

    __slots__ = ("key_id", "version", "sealed")

    def __init__(self, key_id: int, version: int, sealed: bytes) -> None:
        self.key_id = key_id
        self.version = version
        self.sealed = sealed


def aad(table: str, key: bytes, version: int, key_id: int) -> bytes:
    """Associated data for a value of ``table`` at ``key``."""
    t = table.encode("ascii")
    return b"".join(
        (_AAD_PREFIX, bytes((FORMAT_V1, len(t))), t, struct.pack(">H", len(key)), key, struct.pack(">II", version, key_id))
    )


def pack(key_id: int, version: int, sealed: bytes) -> bytes:
    """The stored value."""
    return _HEADER.pack(FORMAT_V1, key_id, version) + sealed


def unpack(value: bytes) -> Envelope:
    """Parse a stored value's header; raises ``CorruptValue`` on an unknown format."""
    if len(value) < HEADER_BYTES:
        raise CorruptValue("stored value is too short")
    fmt, key_id, version = _HEADER.unpack_from(value)
    if fmt != FORMAT_V1:
        raise CorruptValue("stored value has an unknown format")
    return Envelope(key_id, version, bytes(value[HEADER_BYTES:]))
