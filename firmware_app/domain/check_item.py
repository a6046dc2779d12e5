"""The items the CS gives the prefecture and the national server for one resident.

The PIA names the same nine items for the update notice (更新通知) and the consistency-check data
(整合性確認用本人確認情報): resident code, name, birth date, sex, address, former surname, individual
number, change reason and change date.  One projection serves both, so a notice applied by the
prefecture and the check data it later compares are the same bytes.
"""

from __future__ import annotations

import msgspec

from firmware_app.domain.record import IdentityRecord

__all__ = ["CheckItem", "check_item_of", "decode_check_item", "encode_check_item"]


class CheckItem(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """The nine items of one resident, in the PIA's order.  Personal data: repr is redacted."""

    resident_code: str
    name: str
    birth_date: str
    sex: str
    address: str
    former_surname: str
    individual_number: str
    change_reason: str
    change_date: str

    def __repr__(self) -> str:
        return "CheckItem(<redacted>)"


def check_item_of(record: IdentityRecord) -> CheckItem:
    """The nine items of ``record`` (the name is the kanji name, the former surname its kanji form)."""
    return CheckItem(
        record.resident_code,
        record.name_kanji,
        record.birth_date,
        record.sex,
        record.address,
        record.former_surname_kanji,
        record.individual_number,
        record.change_reason,
        record.change_date,
    )


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(CheckItem)


def encode_check_item(item: CheckItem) -> bytes:
    """The canonical bytes of an item (msgpack array): what is hashed, signed and compared."""
    return _ENCODER.encode(item)


def decode_check_item(data: bytes) -> CheckItem:
    """Inverse of :func:`encode_check_item` (msgspec.DecodeError / ValidationError on bad input)."""
    return _DECODER.decode(data)
