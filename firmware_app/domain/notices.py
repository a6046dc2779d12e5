"""What the CS sends out through its outboxes: notices to the prefecture, deliveries to the card system.

An outbox entry is stored sealed as its canonical msgpack bytes; those same bytes travel in the
signed batch, so the receiver verifies exactly what the CS committed.  Tagged, so one decoder
reads any entry and a receiver refuses kinds that are not for it.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Literal

import msgspec

from firmware_app.domain.check_item import CheckItem
from firmware_app.domain.destination import DestinationRecord

__all__ = ["CHANNELS", "batch_signed_bytes", "Expired", "CardNotice", "DestinationNotice", "Notice", "OutboxEntry", "decode_entry", "encode_entry"]


class _Entry(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True, tag_field="k"):
    def __repr__(self) -> str:
        return f"{type(self).__name__}(<redacted>)"


class Notice(_Entry, frozen=True, array_like=True, forbid_unknown_fields=True, tag="n"):
    """CS → prefecture (更新通知): a resident's nine items after a change; ``op`` says which kind."""

    op: Literal["create", "modify", "remove"]
    item: CheckItem


class CardNotice(_Entry, frozen=True, array_like=True, forbid_unknown_fields=True, tag="c"):
    """CS → card system: a card event, forwarded as the register sent it."""

    kind: Literal["issue", "revoke", "loss", "return", "suspension_lift"]
    resident_code: str
    occurred_on: str


class DestinationNotice(_Entry, frozen=True, array_like=True, forbid_unknown_fields=True, tag="d"):
    """CS → card system (送付先情報通知): a destination record."""

    record: DestinationRecord


class Expired(_Entry, frozen=True, array_like=True, forbid_unknown_fields=True, tag="x"):
    """Stands in for a destination record that passed its retention period before the card system
    acknowledged it: the sequence stays whole, the personal data is gone."""


OutboxEntry = Notice | CardNotice | DestinationNotice | Expired

_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(OutboxEntry)


def encode_entry(entry: OutboxEntry) -> bytes:
    """The canonical bytes of an entry: stored sealed, sent and signed as they are."""
    return _ENCODER.encode(entry)


def decode_entry(data: bytes) -> OutboxEntry:
    """Inverse of :func:`encode_entry` (msgspec.DecodeError / ValidationError on bad input)."""
    return _DECODER.decode(data)


#: The outbound channels: the prefecture server, and the card system on the national side.
CHANNELS = ("prefecture", "card_system")

_BATCH_PREFIX = b"cs-outbox-batch-v1"
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


def batch_signed_bytes(channel: str, first_seq: int, entries: Sequence[bytes]) -> bytes:
    """What the CS's signature over a batch of outbox entries covers:

    b"cs-outbox-batch-v1" ‖ len(channel) ‖ channel ‖ first_seq (8, big-endian)
    ‖ for each entry: len (4, big-endian) ‖ entry

    The channel is inside, so a batch for one peer cannot be replayed to the other; the first
    sequence number is inside, so a batch cannot be moved elsewhere in the stream; the lengths make
    the concatenation unambiguous.  ECDSA P-256 over SHA-256 of these bytes, raw r‖s.
    """
    if channel not in CHANNELS:
        raise ValueError("unknown outbound channel")
    name = channel.encode("ascii")
    parts = [_BATCH_PREFIX, bytes((len(name),)), name, _U64.pack(first_seq)]
    for entry in entries:
        parts.append(_U32.pack(len(entry)))
        parts.append(entry)
    return b"".join(parts)
