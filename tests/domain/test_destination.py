"""The destination record (送付先情報): 67 items, built from an identity record, and its refusals."""

from __future__ import annotations

import msgspec
import pytest

from firmware_app.domain.destination import (
    DEST_ITEM_NUMBER,
    PRINT_FORM_ONLY,
    SUBSTITUTE_CHAR,
    DestinationRecord,
    decode_destination,
    destination_record_of,
    encode_destination,
    validate_destination,
)
from firmware_app.domain.errors import InvalidRecord
from firmware_app.domain.kana import seion

GAIJI = "\ue123"
_replace = msgspec.structs.replace


@pytest.fixture
def destination(valid_record, today) -> DestinationRecord:
    """A valid destination record of the shared valid identity record."""
    return destination_record_of(valid_record(), management_number="D2024060100000001", processed_on=today)


def _refusal(rec: DestinationRecord, today: str) -> InvalidRecord:
    with pytest.raises(InvalidRecord) as caught:
        validate_destination(rec, today=today)
    return caught.value


def test_layout_has_the_67_items_of_the_pia() -> None:
    assert len(DestinationRecord.__struct_fields__) == 67
    assert [DEST_ITEM_NUMBER[f] for f in ("management_number", "municipality_code", "target_count")] == [1, 9, 33]
    assert [DEST_ITEM_NUMBER[f] for f in ("resident_code", "individual_number", "gaiji_flag")] == [38, 50, 60]
    assert DEST_ITEM_NUMBER["roman_former_surname"] == 67


def test_built_record_is_valid_and_mirrors_the_identity_record(destination, valid_record, today) -> None:
    record = valid_record()
    assert validate_destination(destination, today=today) is destination
    assert (destination.resident_code, destination.individual_number) == (record.resident_code, record.individual_number)
    assert (destination.send_name, destination.send_address) == (record.name_kanji, record.address)
    assert destination.name_kanji_length == len(record.name_kanji)
    assert (destination.substitute_result, destination.substitute_name, destination.gaiji_flag) == ("0", "", "0")
    assert (destination.foreign_resident_category, destination.roman_name) == ("", "")
    assert decode_destination(encode_destination(destination)) == destination


def test_gaiji_get_substitutes_and_positions(valid_record, today) -> None:
    record = valid_record(
        name_kanji="目黒　太" + GAIJI,
        name_gaiji_count=1,
        address="東京都目黒区" + GAIJI + "町" + GAIJI,
        address_gaiji_count=2,
        gaiji_flag="1",
    )
    rec = destination_record_of(record, management_number="D1", processed_on=today, print_category=PRINT_FORM_ONLY)
    assert validate_destination(rec, today=today) is rec
    assert rec.substitute_result == "1" and rec.gaiji_flag == "1"
    assert rec.substitute_name == "目黒　太" + SUBSTITUTE_CHAR and rec.substitute_name_positions == "5"
    assert rec.substitute_address_positions == "7,9"
    assert (rec.name_gaiji_count, rec.send_name_gaiji_count, rec.address_gaiji_count) == (1, 1, 2)


def test_foreign_resident_and_former_surname(valid_record, today) -> None:
    kana = "スミス　ジョン（ヤマダ　タロウ）"
    record = valid_record(
        name_kanji="SMITH JOHN（山田　太郎）",
        name_kana=kana,
        name_seion_kana=seion(kana),
        former_surname_kanji="高橋",
        former_surname_kana="タカハシ",
    )
    rec = destination_record_of(record, management_number="D2", processed_on=today, residence_expires_on="20290331")
    assert validate_destination(rec, today=today) is rec
    assert (rec.roman_name, rec.foreign_resident_category, rec.residence_expires_on) == ("SMITH JOHN", "1", "20290331")
    assert (rec.former_surname_kanji, rec.former_surname_kana) == ("高橋", "タカハシ")


def test_a_record_without_an_individual_number_is_refused(valid_record, today) -> None:
    with pytest.raises(InvalidRecord) as caught:
        destination_record_of(valid_record(individual_number=""), management_number="D3", processed_on=today)
    assert (caught.value.field, caught.value.item) == ("individual_number", 50)


def test_repr_is_redacted(destination) -> None:
    assert repr(destination) == "DestinationRecord(<67 items redacted>)"
    assert destination.name_kanji not in repr([destination])


# (overrides, field); each breaks exactly one rule of the valid destination record.
REFUSALS = [
    ({"management_number": ""}, "management_number"),
    ({"management_number": "D-1"}, "management_number"),
    ({"management_number": "D" * 21}, "management_number"),
    ({"send_postal_code": "153857"}, "send_postal_code"),
    ({"send_address_length": 3}, "send_address_length"),
    ({"send_address": "東" * 201, "send_address_length": 201}, "send_address"),
    ({"send_address": ""}, "send_address"),
    ({"send_address": " 東京都", "send_address_length": 4}, "send_address"),
    ({"send_address": "東京都" + GAIJI, "send_address_length": 4}, "send_address_gaiji_count"),
    ({"send_name": "目黒\x07太郎", "send_name_length": 5}, "send_name"),
    ({"send_name_gaiji_count": 1}, "send_name_gaiji_count"),
    ({"municipality_code": "131104"}, "municipality_code"),
    ({"municipality_name": "目" * 21, "municipality_name_length": 21}, "municipality_name"),
    ({"municipality_name": "目黒" + GAIJI, "municipality_name_length": 3}, "municipality_name"),
    ({"municipality_name_length": 4}, "municipality_name_length"),
    ({"municipality_postal_code": "1538573a"}, "municipality_postal_code"),
    ({"municipality_address": "カ\u3099", "municipality_address_length": 2}, "municipality_address"),
    ({"municipality_phone": "03-5555-01OO"}, "municipality_phone"),
    ({"municipality_phone": "-0355550100"}, "municipality_phone"),
    ({"issue_place_name": "窓" * 61, "issue_place_name_length": 61}, "issue_place_name"),
    ({"issue_place_postal_code": ""}, "issue_place_postal_code"),
    ({"issue_place_address_length": 0}, "issue_place_address_length"),
    ({"issue_place_phone": "0" * 16}, "issue_place_phone"),
    ({"card_place_name": ""}, "card_place_name"),
    ({"card_place_address_gaiji_count": 2}, "card_place_address_gaiji_count"),
    ({"card_place_phone": ""}, "card_place_phone"),
    ({"target_count": 0}, "target_count"),
    ({"target_count": 1000}, "target_count"),
    ({"processed_on": "20240602"}, "processed_on"),
    ({"processed_on": "20230229"}, "processed_on"),
    ({"operator_id": "op 01"}, "operator_id"),
    ({"terminal_id": "t" * 17}, "terminal_id"),
    ({"print_category": "9"}, "print_category"),
    ({"resident_code": "12345678904"}, "resident_code"),
    ({"name_kanji": "目" * 101, "name_kanji_length": 101, "send_name": "目", "send_name_length": 1}, "name_kanji"),
    ({"name_kanji": "山田（太郎", "name_kanji_length": 5}, "name_kanji"),
    ({"name_kanji_length": 99}, "name_kanji_length"),
    ({"name_kana": "めぐろ　たろう", "name_kana_length": 7}, "name_kana"),
    ({"name_kana_length": 1}, "name_kana_length"),
    ({"postal_code": "１５３８５７３"}, "postal_code"),
    ({"address": "東" * 201, "address_length": 201}, "address"),
    ({"birth_date": "19800230"}, "birth_date"),
    ({"birth_date": "20240602"}, "birth_date"),
    ({"sex": "3"}, "sex"),
    ({"individual_number": ""}, "individual_number"),
    ({"individual_number": "123456789019"}, "individual_number"),
    ({"foreign_resident_category": "7"}, "foreign_resident_category"),
    ({"residence_expires_on": "20290331"}, "residence_expires_on"),
    ({"foreign_resident_category": "1", "residence_expires_on": "20290231"}, "residence_expires_on"),
    ({"substitute_result": "2"}, "substitute_result"),
    ({"substitute_name": "目黒　太郎", "substitute_name_length": 5}, "substitute_name"),
    ({"substitute_name_positions": "1"}, "substitute_name_positions"),
    ({"substitute_result": "1", "substitute_name": "目", "substitute_name_length": 1}, "substitute_name"),
    ({"substitute_address": "東京都" + GAIJI, "substitute_address_length": 4}, "substitute_address"),
    ({"gaiji_flag": "1"}, "gaiji_flag"),
    ({"gaiji_pattern": "P-1"}, "gaiji_pattern"),
    ({"former_surname_kanji": "高橋"}, "former_surname_kanji"),
    ({"former_surname_kanji": "高" * 41, "former_surname_kana": "タカハシ"}, "former_surname_kanji"),
    ({"former_surname_kanji": "高" + GAIJI, "former_surname_kana": "タカハシ"}, "former_surname_gaiji_count"),
    ({"former_surname_kanji": "高橋", "former_surname_kana": "タ" * 61}, "former_surname_kana"),
    ({"former_surname_gaiji_seq": 2**31}, "former_surname_gaiji_seq"),
    ({"roman_name": "SMITH\u3000JOHN"}, "roman_name"),
    ({"roman_former_surname": "A" * 41}, "roman_former_surname"),
]

TYPE_REFUSALS = [
    ({"management_number": 1}, "management_number"),
    ({"send_address_length": True}, "send_address_length"),
    ({"target_count": 1.0}, "target_count"),
    ({"name_gaiji_count": -1}, "name_gaiji_count"),
    ({"resident_code": None}, "resident_code"),
]


@pytest.mark.parametrize(("overrides", "field"), REFUSALS + TYPE_REFUSALS)
def test_refusal_names_the_field_and_never_the_value(destination, today, overrides, field) -> None:
    error = _refusal(_replace(destination, **overrides), today)
    assert (error.field, error.item) == (field, DEST_ITEM_NUMBER[field])
    assert error.rule and str(error).startswith(f"item {error.item} ({field}): ")
    for value in overrides.values():
        if isinstance(value, str) and len(value) > 1:
            assert value not in str(error)
    assert str(error) == str(InvalidRecord(error.field, error.rule, error.item))


@pytest.mark.parametrize(
    ("field", "limit"),
    [("send_address", 200), ("send_name", 100), ("issue_place_address", 200), ("card_place_name", 60)],
)
def test_oversize_text_is_refused_at_any_length_field(destination, today, field, limit) -> None:
    text = "東" * (limit + 1)
    rec = _replace(destination, **{field: text, f"{field}_length": len(text)})
    assert _refusal(rec, today).field == field
    fits = _replace(destination, **{field: text[:limit], f"{field}_length": limit})
    assert validate_destination(fits, today=today) is fits


def test_today_and_type_are_checked(destination) -> None:
    with pytest.raises(ValueError):
        validate_destination(destination, today="20240230")
    with pytest.raises(TypeError):
        validate_destination(msgspec.structs.astuple(destination), today="20240601")  # type: ignore[arg-type]
