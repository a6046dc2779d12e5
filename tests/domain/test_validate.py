"""validate_record: every rule of docs/domain-rules.md, its item number, and values kept out of messages."""

from __future__ import annotations

import re
import unicodedata

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_app.domain import validate
from firmware_app.domain.checkdigits import complete_resident_code
from firmware_app.domain.errors import InvalidRecord
from firmware_app.domain.kana import seion
from firmware_app.domain.reasons import REASONS, ReasonClass, reason_class
from firmware_app.domain.record import ITEM_NUMBER
from firmware_app.domain.validate import validate_record

GAIJI = "\ue123"
FOREIGN_KANJI = "スミス　ジョン（山田　太郎）"
FOREIGN_KANA = "スミス　ジョン（ヤマダ　タロウ）"


def _refusal(record, today: str) -> InvalidRecord:
    with pytest.raises(InvalidRecord) as caught:
        validate_record(record, today=today)
    return caught.value


def test_valid_record_is_returned_unchanged_by_the_quick_path(valid_record, today) -> None:
    record = valid_record()
    assert validate_record(record, today=today) is record
    assert validate._is_plainly_valid(msgspec.structs.astuple(record), today)


@pytest.mark.parametrize(
    "overrides",
    [
        {"birth_date": "20000229"},  # a leap day (2000 is a leap year)
        {"birth_date": "19800500"},  # day unknown
        {"birth_date": "19800000"},  # month and day unknown
        {"birth_date": "18500101", "became_resident_on": "", "address_set_on": ""},
        {"name_kanji": "目黒　太" + GAIJI, "name_gaiji_count": 1, "gaiji_flag": "1"},
        {"address": "東京都目黒区" + GAIJI * 2, "address_gaiji_count": 2, "gaiji_flag": "1"},
        {"previous_address": GAIJI, "previous_address_gaiji_count": 1, "gaiji_flag": "1"},
        {
            "former_surname_kanji": "高" + GAIJI,
            "former_surname_gaiji_count": 1,
            "former_surname_kana": "タカハシ",
            "gaiji_flag": "1",
            "former_surname_gaiji_seq": 3,
        },
        {"name_kanji": FOREIGN_KANJI, "name_kana": FOREIGN_KANA, "name_seion_kana": seion(FOREIGN_KANA)},
        {"name_kanji": "SMITH JOHN", "name_kana": "スミス ジョン", "name_seion_kana": "スミスシヨン"},
        {"former_surname_kanji": "高橋", "former_surname_kana": "タカハシ"},
        {"change_reason": "SHIBOU", "record_status": "1"},
        {"change_reason": "TENSHUTSU", "record_status": "1"},
        {"individual_number": "", "previous_municipality_code": "", "previous_address": "", "oaza_code": ""},
        {"became_resident_on": "", "address_set_on": "", "resident_code_used_from": ""},
        {"former_resident_code": complete_resident_code("9876543210")},
        {"timestamp": "20240601235959", "change_date": "20240601", "notified_on": "20240601"},
        {"update_sequence": 2**63 - 1, "error_update_sequence": 2**63 - 1},
        {"former_surname_gaiji_seq": 2**31 - 1},
        {"request_control_number": "", "operator_id": "", "terminal_id": ""},
        {"relationship": "", "change_reason_detail": "届出による"},
        {"address": "東京都目黒区上目黒二丁目19番15号 コーポ|101"},  # "|" only costs the quick path
    ],
)
def test_valid_variants_pass(valid_record, today, overrides) -> None:
    record = valid_record(**overrides)
    assert validate_record(record, today=today) is record


@pytest.mark.parametrize(
    "overrides",
    [
        {"name_kanji": "目黒 太郎", "name_kana": "メグロ タロウ"},
        {"address": "東京都目黒区上目黒２－１９－１５　メゾン・ド・コーポ１０１"},
        {"address": "東京都目黒区上目黒2-19-15 ﾊｲﾂ A棟"},
        {"relationship": "", "previous_address": "", "previous_municipality_code": ""},
        {"former_surname_kanji": "髙橋", "former_surname_kana": "タカハシ"},
        {"change_reason": "SHOKKEN_SHOJO", "record_status": "1"},
    ],
)
def test_common_records_take_the_quick_path(valid_record, today, overrides) -> None:
    record = valid_record(**overrides)
    assert validate._is_plainly_valid(msgspec.structs.astuple(record), today)


# (overrides, field, item); each breaks exactly one rule of the valid record.
REFUSALS = [
    ({"resident_code": "12345678904"}, "resident_code", 1),
    ({"resident_code": "1234567890"}, "resident_code", 1),
    ({"name_kanji": ""}, "name_kanji", 2),
    ({"name_kanji": "目" * 101}, "name_kanji", 2),
    ({"name_kanji": " 目黒太郎"}, "name_kanji", 2),
    ({"name_kanji": "目黒太郎\u3000"}, "name_kanji", 2),
    ({"name_kanji": "目黒\x07太郎"}, "name_kanji", 2),
    ({"name_kanji": "山田（太郎"}, "name_kanji", 2),
    ({"name_kanji": "山田（太郎）（花子）"}, "name_kanji", 2),
    ({"name_kanji": "目黒" + GAIJI}, "name_gaiji_count", 3),
    ({"name_gaiji_count": 1, "gaiji_flag": "1"}, "name_gaiji_count", 3),
    ({"name_kana": "めぐろ　たろう"}, "name_kana", 4),
    ({"name_kana": "ﾒｸﾞﾛ ﾀﾛｳ", "name_seion_kana": "メクロタロウ"}, "name_kana", 4),
    ({"name_kana": "メグロ  タロウ"}, "name_kana", 4),
    ({"name_kana": "メ" * 101, "name_seion_kana": "メ" * 101}, "name_kana", 4),
    ({"name_seion_kana": "メグロタロウ"}, "name_seion_kana", 5),
    ({"birth_date": "19800230"}, "birth_date", 6),
    ({"birth_date": "20230229"}, "birth_date", 6),
    ({"birth_date": "19000229"}, "birth_date", 6),
    ({"birth_date": "19801301"}, "birth_date", 6),
    ({"birth_date": "19800005"}, "birth_date", 6),
    ({"birth_date": "18491231"}, "birth_date", 6),
    ({"birth_date": "1980-1-1"}, "birth_date", 6),
    ({"birth_date": "１９８００１１５"}, "birth_date", 6),
    ({"birth_date": "20240602"}, "birth_date", 6),
    ({"sex": "3"}, "sex", 7),
    ({"sex": "0"}, "sex", 7),
    ({"municipality_code": "131104"}, "municipality_code", 8),
    ({"oaza_code": "12a"}, "oaza_code", 9),
    ({"oaza_code": "1" * 13}, "oaza_code", 9),
    ({"postal_code": "153857"}, "postal_code", 10),
    ({"postal_code": "１５３８５７３"}, "postal_code", 10),
    ({"address": ""}, "address", 11),
    ({"address": "東" * 201}, "address", 11),
    ({"address": "東京都目黒区\ufffd"}, "address", 11),
    ({"address": "東京都目黒区\ud800"}, "address", 11),
    ({"address": "東京都目黒区\x85"}, "address", 11),
    ({"address": "東京都目黒区カ\u3099"}, "address", 11),  # not NFC
    ({"address_gaiji_count": 1, "gaiji_flag": "1"}, "address_gaiji_count", 12),
    ({"individual_number": "123456789019"}, "individual_number", 13),
    ({"became_resident_on": "19791231"}, "became_resident_on", 14),
    ({"became_resident_on": "20240602"}, "became_resident_on", 14),
    ({"address_set_on": "20100230"}, "address_set_on", 15),
    ({"notified_on": ""}, "notified_on", 16),
    ({"notified_on": "20240602"}, "notified_on", 16),
    ({"previous_municipality_code": "131017"}, "previous_municipality_code", 17),
    ({"previous_address": "東" * 201}, "previous_address", 18),
    ({"previous_address": GAIJI}, "previous_address_gaiji_count", 19),
    ({"relationship": "続" * 21}, "relationship", 20),
    ({"change_reason": "UNKNOWN"}, "change_reason", 21),
    ({"change_reason": ""}, "change_reason", 21),
    ({"change_date": "20230229"}, "change_date", 22),
    ({"change_date": "20240602"}, "change_date", 22),
    ({"change_reason_detail": "詳" * 101}, "change_reason_detail", 23),
    ({"former_resident_code": "98765432100"}, "former_resident_code", 24),
    ({"former_resident_code": "12345678903"}, "former_resident_code", 24),
    ({"resident_code_used_from": "20240602"}, "resident_code_used_from", 25),
    ({"request_control_number": "REQ-1"}, "request_control_number", 26),
    ({"request_control_number": "R" * 21}, "request_control_number", 26),
    ({"operator_id": "op 01"}, "operator_id", 27),
    ({"terminal_id": "t" * 17}, "terminal_id", 28),
    ({"update_sequence": -1}, "update_sequence", 29),
    ({"update_sequence": 2**63}, "update_sequence", 29),
    ({"error_update_sequence": -1}, "error_update_sequence", 30),
    ({"update_prohibited": "2"}, "update_prohibited", 31),
    ({"scheduled_flag": ""}, "scheduled_flag", 32),
    ({"exclusive_flag": "Y"}, "exclusive_flag", 33),
    ({"gaiji_flag": "1"}, "gaiji_flag", 34),
    ({"name_kanji": "目黒" + GAIJI, "name_gaiji_count": 1}, "gaiji_flag", 34),
    ({"change_reason": "SHIBOU"}, "record_status", 35),
    ({"record_status": "1"}, "record_status", 35),
    ({"record_status": "2"}, "record_status", 35),
    ({"timestamp": "20100405246000"}, "timestamp", 36),
    ({"timestamp": "20100405093060"}, "timestamp", 36),
    ({"timestamp": "20100231093000"}, "timestamp", 36),
    ({"timestamp": "2010040509300"}, "timestamp", 36),
    ({"timestamp": "20240602000000"}, "timestamp", 36),
    ({"former_surname_kanji": "高橋"}, "former_surname_kanji", 37),
    ({"former_surname_kanji": "高" * 41, "former_surname_kana": "タカハシ"}, "former_surname_kanji", 37),
    ({"former_surname_kanji": "高" + GAIJI, "former_surname_kana": "タカハシ"}, "former_surname_gaiji_count", 38),
    ({"former_surname_kanji": "高橋", "former_surname_kana": "たかはし"}, "former_surname_kana", 39),
    ({"former_surname_kanji": "高橋", "former_surname_kana": "タ" * 61}, "former_surname_kana", 39),
    ({"former_surname_gaiji_seq": 2**31}, "former_surname_gaiji_seq", 40),
    ({"former_surname_gaiji_seq": -1}, "former_surname_gaiji_seq", 40),
]

TYPE_REFUSALS = [
    ({"resident_code": 12345678903}, "resident_code", 1),
    ({"sex": 1}, "sex", 7),
    ({"name_kanji": None}, "name_kanji", 2),
    ({"name_gaiji_count": True}, "name_gaiji_count", 3),
    ({"name_gaiji_count": 0.0}, "name_gaiji_count", 3),
    ({"update_sequence": "1"}, "update_sequence", 29),
    ({"update_sequence": False}, "update_sequence", 29),
    ({"timestamp": b"20100405093000"}, "timestamp", 36),
    ({"former_surname_gaiji_seq": 1.0}, "former_surname_gaiji_seq", 40),
]


@pytest.mark.parametrize(("overrides", "field", "item"), REFUSALS + TYPE_REFUSALS)
def test_refusal_names_the_item_and_the_rule(valid_record, today, overrides, field, item) -> None:
    error = _refusal(valid_record(**overrides), today)
    assert (error.field, error.item) == (field, item)
    assert ITEM_NUMBER[field] == item
    assert error.rule and str(error).startswith(f"item {item} ({field}): ")


@pytest.mark.parametrize(("overrides", "field", "item"), REFUSALS + TYPE_REFUSALS)
def test_refusal_message_never_contains_the_value(valid_record, today, overrides, field, item) -> None:
    error = _refusal(valid_record(**overrides), today)
    message = f"{error} {error.rule!r} {error.args!r}"
    for value in overrides.values():
        shown = value if isinstance(value, str) else repr(value)
        if len(shown) >= 4:  # shorter values ("1", "3") are indistinguishable from rule wording
            assert shown not in message


def test_personal_data_stays_out_of_messages(valid_record, today) -> None:
    error = _refusal(valid_record(name_kanji="目黒\x00太郎", address="東京都目黒区秘密町1番1号"), today)
    assert "目黒" not in str(error) and "秘密" not in str(error)


def test_dates_and_rule_wording_are_distinct(valid_record, today) -> None:
    assert _refusal(valid_record(birth_date="19800230"), today).rule.startswith("must be a real date")
    assert _refusal(valid_record(birth_date="20240602"), today).rule == "must not be after today"


def test_the_first_broken_rule_is_raised(valid_record, today) -> None:
    two_faults = valid_record(resident_code="12345678904", update_sequence=-1, sex="3")
    assert _refusal(two_faults, today).item == 1
    # Types are checked for all items before any content rule.
    assert _refusal(valid_record(resident_code="12345678904", former_surname_gaiji_seq="0"), today).item == 40


def test_today_decides_the_future(valid_record) -> None:
    record = valid_record(change_date="20240601", notified_on="20240601", timestamp="20240601120000")
    assert validate_record(record, today="20240601") is record
    assert _refusal(record, "20240531").item == 16


def test_bad_arguments_are_programming_errors(valid_record, today) -> None:
    with pytest.raises(ValueError):
        validate_record(valid_record(), today="20240230")
    with pytest.raises(TypeError):
        validate_record(valid_record(), today=20240601)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        validate_record(msgspec.structs.astuple(valid_record()), today=today)  # type: ignore[arg-type]


def test_reason_table_is_a_convention_with_three_classes() -> None:
    assert reason_class("TENNYU") is ReasonClass.ENTRY
    assert reason_class("SHIBOU") is ReasonClass.REMOVAL
    assert reason_class("TENKYO") is ReasonClass.MODIFICATION
    assert {r.reason_class for r in REASONS.values()} == set(ReasonClass)
    assert REASONS["KOJIN_BANGO_HENKO"].name_ja == "個人番号の変更"
    with pytest.raises(KeyError):
        reason_class("99")
    with pytest.raises(TypeError):
        REASONS["X"] = REASONS["TENNYU"]  # type: ignore[index]


# The quick path may only say yes to records the exact path accepts: mutate a few items of a
# valid record at random and compare the two verdicts.
_TEXT = st.text(st.sampled_from("目黒太郎東京都1２-ー 　\u3000（）()|タロウガッｶﾞ\ue000\x00\x85\ufffd\u0301a"), max_size=12)
_DIGITS = st.text("0123456789", min_size=0, max_size=14)
_CODES = st.sampled_from(["", "0", "1", "2", "19800229", "20240601", "TENNYU", "SHIBOU"])
_VALUES = st.one_of(_TEXT, _DIGITS, _CODES, st.integers(-2, 2**63 + 1), st.booleans())


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(overrides=st.dictionaries(st.sampled_from(list(ITEM_NUMBER)), _VALUES, min_size=1, max_size=3))
def test_quick_path_never_accepts_what_the_exact_path_refuses(valid_record, today, overrides) -> None:
    values = msgspec.structs.astuple(valid_record(**overrides))
    if validate._is_plainly_valid(values, today):
        validate._check(values, today)  # must not raise


def test_plain_characters_are_inert_under_nfc() -> None:
    plain = re.compile(f"[{validate._PLAIN_CHARS}{validate._PLAIN_SPACES}]")
    chars = [chr(c) for c in range(0x10000) if plain.fullmatch(chr(c))]
    assert "|" not in chars and "\ue000" not in chars and "\x85" not in chars
    # Second halves of canonical pairs combine with what precedes them (Hangul jamo algorithmically).
    seconds = {chr(0x1161 + i) for i in range(21)} | {chr(0x11A8 + i) for i in range(27)}
    for code in range(0x110000):
        parts = unicodedata.decomposition(chr(code)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            seconds.add(chr(int(parts[1], 16)))
    for ch in chars:
        assert unicodedata.combining(ch) == 0 and unicodedata.normalize("NFC", ch) == ch and ch not in seconds
