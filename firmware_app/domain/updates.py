"""What peers send the CS to change its state: identity changes, card events, move-out certificates.

These structs are at once the wire bodies (the links decode straight into them, so every field
limit below is enforced while decoding) and the commands the intake applies.  Each carries
personal data, so its repr is redacted.  The validators add the rules msgspec cannot state
(check digits, real dates, not in the future) and raise ``InvalidRecord`` naming the field only.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Literal

import msgspec

from firmware_app.domain.checkdigits import is_valid_individual_number, is_valid_municipality_code, is_valid_resident_code
from firmware_app.domain.errors import InvalidRecord
from firmware_app.domain.record import IdentityRecord
from firmware_app.domain.rules import SEX_CODES, has_forbidden_char, is_date

__all__ = [
    "CARD_EVENT_KINDS",
    "CardEvent",
    "IdentityChange",
    "MoveOutCertificate",
    "validate_card_event",
    "validate_moveout",
]

_Digits11 = Annotated[str, msgspec.Meta(min_length=11, max_length=11, pattern=r"\A[0-9]{11}\Z")]
_Date = Annotated[str, msgspec.Meta(min_length=8, max_length=8, pattern=r"\A[0-9]{8}\Z")]


class _Personal(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    def __repr__(self) -> str:
        return f"{type(self).__name__}(<redacted>)"


class IdentityChange(_Personal, frozen=True, forbid_unknown_fields=True):
    """Register → CS: a resident's record created (記載), modified (修正) or removed (消除).

    The record's size is bounded by the frame limit, its items by ``validate_record``.
    """

    op: Literal["create", "modify", "remove"]
    record: IdentityRecord


CARD_EVENT_KINDS = ("issue", "revoke", "loss", "return", "suspension_lift")


class CardEvent(_Personal, frozen=True, forbid_unknown_fields=True):
    """Register → CS → card system: an event in the life of a resident's individual number card."""

    kind: Literal["issue", "revoke", "loss", "return", "suspension_lift"]
    resident_code: _Digits11
    occurred_on: _Date


class MoveOutCertificate(_Personal, frozen=True, forbid_unknown_fields=True):
    """National server → CS: 転出証明書情報 sent ahead of a card holder's special move-in (特例転入).

    The items the PIA lists (line 1293), for the resident who is to move in.  Kept encrypted until
    the register fetches it for the move-in, or until ``planned_moveout_date`` + the configured
    period passes unused.
    """

    resident_code: _Digits11
    name_kanji: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    name_kana: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    birth_date: _Date
    sex: Annotated[str, msgspec.Meta(min_length=1, max_length=1)]
    address: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    honseki: Annotated[str, msgspec.Meta(max_length=200)]  # 本籍 ("" for foreign residents)
    hittousha: Annotated[str, msgspec.Meta(max_length=100)]  # 筆頭者名
    individual_number: Annotated[str, msgspec.Meta(max_length=12, pattern=r"\A(?:[0-9]{12})?\Z")]
    former_surname: Annotated[str, msgspec.Meta(max_length=40)]
    from_municipality_code: Annotated[str, msgspec.Meta(min_length=6, max_length=6, pattern=r"\A[0-9]{6}\Z")]
    to_municipality_code: Annotated[str, msgspec.Meta(min_length=6, max_length=6, pattern=r"\A[0-9]{6}\Z")]
    planned_moveout_date: _Date
    planned_address: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


def _refuse(field: str, rule: str) -> InvalidRecord:
    return InvalidRecord(field, rule)


def _text(field: str, value: str, *, optional: bool = False) -> None:
    if not value:
        if optional:
            return
        raise _refuse(field, "must not be empty")
    if has_forbidden_char(value) or value != value.strip() or not unicodedata.is_normalized("NFC", value):
        raise _refuse(field, "must be NFC text without control characters or edge white space")


def _date(field: str, value: str, today: str, *, future_ok: bool = False, partial: bool = False) -> None:
    if not is_date(value, partial=partial):
        raise _refuse(field, "must be a real date YYYYMMDD")
    if not future_ok and value > today:
        raise _refuse(field, "must not be after today")


def _resident_code(field: str, value: str) -> None:
    if not is_valid_resident_code(value):
        raise _refuse(field, "11 ASCII digits with a valid check digit")


def validate_card_event(event: CardEvent, *, today: str) -> CardEvent:
    """``event`` if its resident code and date are valid (``InvalidRecord`` otherwise)."""
    _resident_code("resident_code", event.resident_code)
    _date("occurred_on", event.occurred_on, today)
    return event


def validate_moveout(cert: MoveOutCertificate, *, today: str) -> MoveOutCertificate:
    """``cert`` if every item is well-formed (``InvalidRecord`` naming the first bad field otherwise).

    The planned move-out date may lie ahead (the certificate travels before the move).
    """
    _resident_code("resident_code", cert.resident_code)
    for field in ("name_kanji", "name_kana", "address", "planned_address"):
        _text(field, getattr(cert, field))
    for field in ("honseki", "hittousha", "former_surname"):
        _text(field, getattr(cert, field), optional=True)
    _date("birth_date", cert.birth_date, today, partial=True)
    if cert.sex not in SEX_CODES:
        raise _refuse("sex", "must be a sex code")
    if cert.individual_number and not is_valid_individual_number(cert.individual_number):
        raise _refuse("individual_number", "must be empty or 12 ASCII digits with a valid check digit")
    for field in ("from_municipality_code", "to_municipality_code"):
        if not is_valid_municipality_code(getattr(cert, field)):
            raise _refuse(field, "6 ASCII digits with a valid check digit")
    _date("planned_moveout_date", cert.planned_moveout_date, today, future_ok=True)
    return cert
