"""The validators of what peers send besides identity records: card events and move-out certificates."""

from __future__ import annotations

import msgspec
import pytest

from firmware_app.domain.errors import InvalidRecord
from firmware_app.domain.updates import CardEvent, MoveOutCertificate, validate_card_event, validate_moveout
from peers.national import moveout_certificate_of
from peers.population import generate

TODAY = "20261126"
RECORD = next(r for r in generate(50, seed=3, today=TODAY) if r.individual_number)
CERT = moveout_certificate_of(RECORD, planned_moveout_date="20261210", from_municipality_code="131016")
SENTINEL = "ZQXSENTINEL"


def test_a_valid_certificate_and_card_event_pass() -> None:
    assert validate_moveout(CERT, today=TODAY) is CERT
    event = CardEvent("issue", RECORD.resident_code, TODAY)
    assert validate_card_event(event, today=TODAY) is event


def _bad_code(code: str) -> str:
    return code[:-1] + str((int(code[-1]) + 1) % 10)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("resident_code", _bad_code(RECORD.resident_code)),
        ("individual_number", _bad_code(RECORD.individual_number)),
        ("name_kanji", f" {SENTINEL}"),
        ("name_kana", f"{SENTINEL}\x07"),
        ("address", ""),
        ("planned_address", "\u3000"),
        ("honseki", f"{SENTINEL} "),
        ("birth_date", "20261301"),
        ("sex", "9"),
        ("from_municipality_code", "131017"),
        ("to_municipality_code", "999999"),
        ("planned_moveout_date", "20260230"),
    ],
)
def test_each_bad_certificate_item_is_refused_by_name_never_by_value(field: str, value: str) -> None:
    with pytest.raises(InvalidRecord) as info:
        validate_moveout(msgspec.structs.replace(CERT, **{field: value}), today=TODAY)
    assert info.value.field == field
    assert SENTINEL not in str(info.value) and (not value.strip() or value not in str(info.value))


def test_a_certificate_may_be_planned_ahead_but_not_born_in_the_future() -> None:
    assert validate_moveout(msgspec.structs.replace(CERT, planned_moveout_date="20270301"), today=TODAY)
    with pytest.raises(InvalidRecord) as info:
        validate_moveout(msgspec.structs.replace(CERT, birth_date="20270101"), today=TODAY)
    assert info.value.field == "birth_date"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"resident_code": _bad_code(RECORD.resident_code)}, "resident_code"),
        ({"occurred_on": "20261127"}, "occurred_on"),
        ({"occurred_on": "20260231"}, "occurred_on"),
    ],
)
def test_a_bad_card_event_is_refused(changes: dict, field: str) -> None:
    with pytest.raises(InvalidRecord) as info:
        validate_card_event(msgspec.structs.replace(CardEvent("loss", RECORD.resident_code, TODAY), **changes), today=TODAY)
    assert info.value.field == field


def test_repr_hides_personal_data() -> None:
    cert = msgspec.structs.replace(CERT, name_kanji=SENTINEL)
    assert SENTINEL not in repr(cert)
    assert RECORD.resident_code not in repr(CardEvent("issue", RECORD.resident_code, TODAY))
    assert isinstance(cert, MoveOutCertificate)
