"""The destination record (送付先情報): the 67 items of 別添２ №3, as one frozen value, and its rules.

The register sends one when a resident is due a 個人番号通知書 or a 交付申請書 (a new individual
number, a name or address change of someone who may apply for a card, a card issue); the CS
hands it to J-LIS's card system and deletes it within a year (domain-facts §0, §4b).

Every one of the 67 items is modelled, in layout order, grouped as the PIA lists them.  Only the
item names are public, so the formats below are OUR CONVENTIONS (like ``rules.py``); the ones
that are pure guesswork are marked (opaque) and checked only for a safe shape:

* a text item travels as (項目長, text, 外字数); 項目長 is the text's length in characters and
  外字数 its number of 外字 (private-use code points); a text without a 外字数 item (市町村名,
  氏名かな, the 代替文字 texts) must hold no 外字;
* 代替文字 (items 53–59): ``substitute_result`` is "0" (no 外字, items 54–59 empty) or "1" (items
  55 and 57 are items 40 and 46 with each 外字 replaced by a UCS character, "〓" by default);
  the position items (58, 59) are (opaque) 1-based character positions, comma-separated,
  ascending; 外字パターン (61) is (opaque) "" or 1–20 ASCII letters and digits;
* 印刷区分 (37): "1" 個人番号通知書 and 交付申請書, "2" 交付申請書 only, "3" card (re)issue;
* 第30条の45 区分 (51): "" for a Japanese national, else "1" 中長期在留者, "2" 特別永住者,
  "3" 一時庇護許可者・仮滞在許可者, "4" 経過滞在者; 在留期間の満了の日 (52) only with a 区分 and
  may lie in the future;
* phone numbers: 1–15 ASCII digits and "-", starting and ending with a digit;
* 送付先管理番号: 1–20 ASCII letters and digits; 対象となる人数: 1–999.
"""

from __future__ import annotations

import unicodedata
from typing import Final

import msgspec

from firmware_app.domain.checkdigits import (
    is_valid_individual_number,
    is_valid_municipality_code,
    is_valid_resident_code,
)
from firmware_app.domain.errors import InvalidRecord
from firmware_app.domain.record import FLAG_OFF, FLAG_ON, IdentityRecord
from firmware_app.domain.rules import (
    INT_LIMITS,
    SEX_CODES,
    count_gaiji,
    has_forbidden_char,
    is_account_id,
    is_alnum_id,
    is_ascii_digits,
    is_date,
    is_kana_item,
    split_tsusho,
)


class DestinationRecord(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """One 送付先情報 record (items 1–67, in layout order)."""

    management_number: str  # 1 送付先管理番号
    # 送付先: where the notice or form is mailed (the address, or a 居所 on request).
    send_postal_code: str  # 2 送付先郵便番号
    send_address_length: int  # 3 送付先住所 漢字項目長
    send_address: str  # 4 送付先住所 漢字
    send_address_gaiji_count: int  # 5 送付先住所 漢字外字数
    send_name_length: int  # 6 送付先氏名 漢字項目長
    send_name: str  # 7 送付先氏名 漢字
    send_name_gaiji_count: int  # 8 送付先氏名 漢字外字数
    # 市町村: the sender.
    municipality_code: str  # 9 市町村コード
    municipality_name_length: int  # 10 市町村名 項目長
    municipality_name: str  # 11 市町村名
    municipality_postal_code: str  # 12 市町村郵便番号
    municipality_address_length: int  # 13 市町村住所 項目長
    municipality_address: str  # 14 市町村住所
    municipality_address_gaiji_count: int  # 15 市町村住所 外字数
    municipality_phone: str  # 16 市町村電話番号
    # 交付場所: where the card is handed over.
    issue_place_name_length: int  # 17 交付場所名 項目長
    issue_place_name: str  # 18 交付場所名
    issue_place_name_gaiji_count: int  # 19 交付場所名 外字数
    issue_place_postal_code: str  # 20 交付場所郵便番号
    issue_place_address_length: int  # 21 交付場所住所 項目長
    issue_place_address: str  # 22 交付場所住所
    issue_place_address_gaiji_count: int  # 23 交付場所住所 外字数
    issue_place_phone: str  # 24 交付場所電話番号
    # カード送付場所: where J-LIS sends the finished card.
    card_place_name_length: int  # 25 カード送付場所名 項目長
    card_place_name: str  # 26 カード送付場所名
    card_place_name_gaiji_count: int  # 27 カード送付場所名 外字数
    card_place_postal_code: str  # 28 カード送付場所郵便番号
    card_place_address_length: int  # 29 カード送付場所住所 項目長
    card_place_address: str  # 30 カード送付場所住所
    card_place_address_gaiji_count: int  # 31 カード送付場所住所 外字数
    card_place_phone: str  # 32 カード送付場所電話番号
    # Processing.
    target_count: int  # 33 対象となる人数
    processed_on: str  # 34 処理年月日
    operator_id: str  # 35 操作者ID
    terminal_id: str  # 36 操作端末ID
    print_category: str  # 37 印刷区分
    # The resident: what the card will show.
    resident_code: str  # 38 住民票コード
    name_kanji_length: int  # 39 氏名 漢字項目長
    name_kanji: str  # 40 氏名 漢字
    name_gaiji_count: int  # 41 氏名 漢字外字数
    name_kana_length: int  # 42 氏名 かな項目長
    name_kana: str  # 43 氏名 かな
    postal_code: str  # 44 郵便番号
    address_length: int  # 45 住所 項目長
    address: str  # 46 住所
    address_gaiji_count: int  # 47 住所 外字数
    birth_date: str  # 48 生年月日
    sex: str  # 49 性別
    individual_number: str  # 50 個人番号
    foreign_resident_category: str  # 51 第30条の45に規定する区分
    residence_expires_on: str  # 52 在留期間の満了の日
    # 代替文字 and 外字.
    substitute_result: str  # 53 代替文字変換結果
    substitute_name_length: int  # 54 代替文字氏名 項目長
    substitute_name: str  # 55 代替文字氏名
    substitute_address_length: int  # 56 代替文字住所 項目長
    substitute_address: str  # 57 代替文字住所
    substitute_name_positions: str  # 58 代替文字氏名位置情報
    substitute_address_positions: str  # 59 代替文字住所位置情報
    gaiji_flag: str  # 60 外字フラグ
    gaiji_pattern: str  # 61 外字パターン
    # 旧氏.
    former_surname_kanji: str  # 62 旧氏 漢字
    former_surname_gaiji_count: int  # 63 旧氏 外字数
    former_surname_kana: str  # 64 旧氏 ふりがな
    former_surname_gaiji_seq: int  # 65 旧氏 外字変更連番
    # ローマ字 (foreign residents).
    roman_name: str  # 66 ローマ字 氏名
    roman_former_surname: str  # 67 ローマ字 旧氏

    def __repr__(self) -> str:
        # Personal data must not reach a log line, a traceback or a test report by accident.
        return "DestinationRecord(<67 items redacted>)"


#: Item number of every field, in layout order (1-based), for error messages.
DEST_ITEM_NUMBER: dict[str, int] = {name: i for i, name in enumerate(DestinationRecord.__struct_fields__, 1)}

assert len(DEST_ITEM_NUMBER) == 67

#: 印刷区分 (convention): what J-LIS prints for this record.
PRINT_NOTICE_AND_FORM: Final = "1"  # 個人番号通知書 and 交付申請書 (a new individual number)
PRINT_FORM_ONLY: Final = "2"  # 交付申請書 (name or address change of a non-holder)
PRINT_CARD: Final = "3"  # card issue or reissue
PRINT_CATEGORIES = frozenset({PRINT_NOTICE_AND_FORM, PRINT_FORM_ONLY, PRINT_CARD})

#: 第30条の45 区分 (convention); "" for a Japanese national.
FOREIGN_CATEGORIES = frozenset({"", "1", "2", "3", "4"})

#: 代替文字変換結果 (convention).
SUBSTITUTE_NONE: Final = "0"
SUBSTITUTE_DONE: Final = "1"

#: The UCS character that stands for a 外字 in the 代替文字 items (the geta mark).
SUBSTITUTE_CHAR: Final = "\u3013"

# Text items: (項目長 field or None, minimum, maximum, 外字数 field or None when 外字 are barred).
_TEXTS: dict[str, tuple[str | None, int, int, str | None]] = {
    "send_address": ("send_address_length", 1, 200, "send_address_gaiji_count"),
    "send_name": ("send_name_length", 1, 100, "send_name_gaiji_count"),
    "municipality_name": ("municipality_name_length", 1, 20, None),
    "municipality_address": ("municipality_address_length", 1, 200, "municipality_address_gaiji_count"),
    "issue_place_name": ("issue_place_name_length", 1, 60, "issue_place_name_gaiji_count"),
    "issue_place_address": ("issue_place_address_length", 1, 200, "issue_place_address_gaiji_count"),
    "card_place_name": ("card_place_name_length", 1, 60, "card_place_name_gaiji_count"),
    "card_place_address": ("card_place_address_length", 1, 200, "card_place_address_gaiji_count"),
    "name_kanji": ("name_kanji_length", 1, 100, "name_gaiji_count"),
    "name_kana": ("name_kana_length", 1, 100, None),
    "address": ("address_length", 1, 200, "address_gaiji_count"),
    "substitute_name": ("substitute_name_length", 0, 100, None),
    "substitute_address": ("substitute_address_length", 0, 200, None),
    "former_surname_kanji": (None, 0, 40, "former_surname_gaiji_count"),
    "former_surname_kana": (None, 0, 60, None),
}
_GAIJI_COUNTS = tuple(gaiji for _, _, _, gaiji in _TEXTS.values() if gaiji is not None)
_SUBSTITUTE_ITEMS = (
    "substitute_name",
    "substitute_address",
    "substitute_name_positions",
    "substitute_address_positions",
)
_ROMAN = {"roman_name": 100, "roman_former_surname": 40}
_ROMAN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz '-.,")
_TARGET_COUNT_MAX = 999
_TYPES = {field.name: field.type for field in msgspec.structs.fields(DestinationRecord)}


def _refuse(field: str, rule: str) -> InvalidRecord:
    return InvalidRecord(field, rule, DEST_ITEM_NUMBER[field])


def _check_text(rec: DestinationRecord, field: str) -> None:
    """Characters, edges, NFC, limits, 項目長 and 外字数 of one text item."""
    length_field, low, high, gaiji_field = _TEXTS[field]
    value: str = getattr(rec, field)
    if has_forbidden_char(value):
        raise _refuse(field, "must not contain control characters, U+FFFD or surrogates")
    if value != value.strip():
        raise _refuse(field, "must not begin or end with white space")
    if not unicodedata.is_normalized("NFC", value):
        raise _refuse(field, "must be in Unicode NFC")
    if not low <= len(value) <= high:
        raise _refuse(field, f"must be {low} to {high} characters")
    gaiji = count_gaiji(value)
    if gaiji_field is None and gaiji:
        raise _refuse(field, "must not contain gaiji (the item has no gaiji count)")
    if length_field is not None and getattr(rec, length_field) != len(value):
        raise _refuse(length_field, f"must equal the length in characters of item {DEST_ITEM_NUMBER[field]}")
    if gaiji_field is not None and getattr(rec, gaiji_field) != gaiji:
        raise _refuse(gaiji_field, f"must equal the number of gaiji in item {DEST_ITEM_NUMBER[field]}")


def _is_phone(value: str) -> bool:
    return (
        1 <= len(value) <= 15
        and value.isascii()
        and value[0].isdigit()
        and value[-1].isdigit()
        and value.replace("-", "").isdigit()
    )


def _positions_ok(value: str, text_length: int) -> bool:
    """True for "" or ascending, comma-separated 1-based positions within ``text_length``."""
    if not value:
        return True
    if len(value) > 200 or not value.isascii():
        return False
    parts = value.split(",")
    if not all(part.isdigit() and part[0] != "0" for part in parts):
        return False
    numbers = [int(part) for part in parts]
    return all(a < b for a, b in zip(numbers, numbers[1:])) and 1 <= numbers[0] and numbers[-1] <= text_length


def _check_types(rec: DestinationRecord) -> None:
    for field, expected in _TYPES.items():
        value = getattr(rec, field)
        if expected is str and not isinstance(value, str):
            raise _refuse(field, "must be a str")
        if expected is int and type(value) is not int:
            raise _refuse(field, "must be an int (not a bool)")
        if expected is int and value < 0:
            raise _refuse(field, "must not be negative")


def _check_date(field: str, value: str, today: str, *, partial: bool = False, future: bool = False) -> None:
    if not is_date(value, partial=partial):
        unknown = " (00 for an unknown day or month)" if partial else ""
        raise _refuse(field, "must be a real date YYYYMMDD" + unknown)
    if not future and value > today:
        raise _refuse(field, "must not be after today")


def validate_destination(rec: DestinationRecord, *, today: str) -> DestinationRecord:
    """``rec`` unchanged when it keeps every rule of the module docstring; else InvalidRecord.

    Rules are checked types first, then item 1 to item 67, a text with its 項目長 and 外字数
    together; the first broken one is raised, naming the field and the rule, never the value.
    """
    if type(rec) is not DestinationRecord:
        raise TypeError("rec must be a DestinationRecord")
    if not (isinstance(today, str) and is_date(today)):
        raise ValueError("today must be a real YYYYMMDD date")
    _check_types(rec)

    if not is_alnum_id(rec.management_number, 20) or not rec.management_number:
        raise _refuse("management_number", "must be 1 to 20 ASCII letters or digits")
    if not is_ascii_digits(rec.send_postal_code, 7, 7):
        raise _refuse("send_postal_code", "must be 7 ASCII digits")
    _check_text(rec, "send_address")
    _check_text(rec, "send_name")

    if not is_valid_municipality_code(rec.municipality_code):
        raise _refuse("municipality_code", "must be 6 ASCII digits with a valid check digit")
    _check_text(rec, "municipality_name")
    for prefix in ("municipality", "issue_place", "card_place"):
        if prefix != "municipality":
            _check_text(rec, f"{prefix}_name")
        if not is_ascii_digits(getattr(rec, f"{prefix}_postal_code"), 7, 7):
            raise _refuse(f"{prefix}_postal_code", "must be 7 ASCII digits")
        _check_text(rec, f"{prefix}_address")
        if not _is_phone(getattr(rec, f"{prefix}_phone")):
            raise _refuse(f"{prefix}_phone", "must be 1 to 15 ASCII digits and '-', a digit at each end")

    if not 1 <= rec.target_count <= _TARGET_COUNT_MAX:
        raise _refuse("target_count", f"must be from 1 to {_TARGET_COUNT_MAX}")
    _check_date("processed_on", rec.processed_on, today)
    if not is_account_id(rec.operator_id, 16):
        raise _refuse("operator_id", "must be at most 16 ASCII letters, digits, '-' or '_'")
    if not is_account_id(rec.terminal_id, 16):
        raise _refuse("terminal_id", "must be at most 16 ASCII letters, digits, '-' or '_'")
    if rec.print_category not in PRINT_CATEGORIES:
        raise _refuse("print_category", "must be a known print category")

    if not is_valid_resident_code(rec.resident_code):
        raise _refuse("resident_code", "must be 11 ASCII digits with a valid check digit")
    _check_text(rec, "name_kanji")
    if ("（" in rec.name_kanji or "）" in rec.name_kanji) and split_tsusho(rec.name_kanji) is None:
        raise _refuse("name_kanji", "a 通称 must be written once, as 本名（通称）")
    _check_text(rec, "name_kana")
    if not is_kana_item(rec.name_kana):
        raise _refuse("name_kana", "must be full-width katakana words, single-spaced, with an optional （通称）")
    if not is_ascii_digits(rec.postal_code, 7, 7):
        raise _refuse("postal_code", "must be 7 ASCII digits")
    _check_text(rec, "address")
    _check_date("birth_date", rec.birth_date, today, partial=True)
    if rec.sex not in SEX_CODES:
        raise _refuse("sex", "must be a known sex code")
    if not is_valid_individual_number(rec.individual_number):
        raise _refuse("individual_number", "must be 12 ASCII digits with a valid check digit")
    if rec.foreign_resident_category not in FOREIGN_CATEGORIES:
        raise _refuse("foreign_resident_category", "must be empty or a known category")
    if rec.residence_expires_on:
        if not rec.foreign_resident_category:
            raise _refuse("residence_expires_on", "must be empty when item 51 is empty")
        _check_date("residence_expires_on", rec.residence_expires_on, today, future=True)

    _check_substitutes(rec)
    counts = [getattr(rec, field) for field in _GAIJI_COUNTS]
    if rec.gaiji_flag != (FLAG_ON if max(counts) > 0 else FLAG_OFF):
        raise _refuse("gaiji_flag", "must be '1' exactly when a gaiji count is above 0")
    if rec.gaiji_pattern and not is_alnum_id(rec.gaiji_pattern, 20):
        raise _refuse("gaiji_pattern", "must be empty or at most 20 ASCII letters or digits")

    _check_text(rec, "former_surname_kanji")
    if bool(rec.former_surname_kanji) != bool(rec.former_surname_kana):
        raise _refuse("former_surname_kanji", "must be set exactly when item 64 is set")
    _check_text(rec, "former_surname_kana")
    if rec.former_surname_kana and not is_kana_item(rec.former_surname_kana):
        raise _refuse("former_surname_kana", "must be empty or full-width katakana words, single-spaced")
    if rec.former_surname_gaiji_seq >= INT_LIMITS["former_surname_gaiji_seq"]:
        raise _refuse("former_surname_gaiji_seq", "must be from 0 to 2**31 - 1")

    for field, longest in _ROMAN.items():
        value = getattr(rec, field)
        if len(value) > longest or not _ROMAN_CHARS.issuperset(value) or value != value.strip():
            raise _refuse(field, f"must be at most {longest} ASCII letters, spaces or ' - . , inside")
    return rec


def _check_substitutes(rec: DestinationRecord) -> None:
    """Items 53–59: empty without 外字; with them, the texts of items 40 and 46 in UCS characters."""
    if rec.substitute_result not in (SUBSTITUTE_NONE, SUBSTITUTE_DONE):
        raise _refuse("substitute_result", "must be '0' or '1'")
    _check_text(rec, "substitute_name")
    _check_text(rec, "substitute_address")
    if rec.substitute_result == SUBSTITUTE_NONE:
        for field in _SUBSTITUTE_ITEMS:
            if getattr(rec, field):
                raise _refuse(field, "must be empty when item 53 is '0'")
        return
    for field, original in (("substitute_name", "name_kanji"), ("substitute_address", "address")):
        if len(getattr(rec, field)) != len(getattr(rec, original)):
            raise _refuse(field, f"must be as long as item {DEST_ITEM_NUMBER[original]} when item 53 is '1'")
    if not _positions_ok(rec.substitute_name_positions, len(rec.substitute_name)):
        raise _refuse("substitute_name_positions", "must be empty or ascending 1-based positions, comma-separated")
    if not _positions_ok(rec.substitute_address_positions, len(rec.substitute_address)):
        raise _refuse("substitute_address_positions", "must be empty or ascending 1-based positions, comma-separated")


# ---------------------------------------------------------------------------------------
# Building one from an identity record.


class Place(msgspec.Struct, frozen=True):
    """A named place with an address and a phone (the municipality, the 交付場所, the card destination)."""

    name: str
    postal_code: str
    address: str
    phone: str


#: Synthetic places of Meguro ward (the office address is public; the phones are made up).
MEGURO_OFFICE = Place("目黒区", "1538573", "東京都目黒区上目黒二丁目19番15号", "03-5555-0100")
MEGURO_ISSUE_PLACE = Place("目黒区総合庁舎　戸籍住民課", "1538573", "東京都目黒区上目黒二丁目19番15号", "03-5555-0111")


def _substitute(text: str) -> tuple[str, str]:
    """(``text`` with each 外字 as SUBSTITUTE_CHAR, their 1-based positions comma-separated)."""
    positions = [i for i, ch in enumerate(text, 1) if count_gaiji(ch)]
    if not positions:
        return text, ""
    chars = list(text)
    for i in positions:
        chars[i - 1] = SUBSTITUTE_CHAR
    return "".join(chars), ",".join(map(str, positions))


def _roman_name(name_kanji: str) -> str:
    """The roman-letter name of a foreign resident (the 本名 part when ASCII), else ""."""
    parts = split_tsusho(name_kanji)
    real = parts[0] if parts is not None else name_kanji
    return real if real.isascii() and _ROMAN_CHARS.issuperset(real) else ""


def destination_record_of(
    record: IdentityRecord,
    *,
    management_number: str,
    processed_on: str,
    print_category: str = PRINT_NOTICE_AND_FORM,
    operator_id: str | None = None,
    terminal_id: str | None = None,
    municipality: Place = MEGURO_OFFICE,
    issue_place: Place = MEGURO_ISSUE_PLACE,
    card_place: Place | None = None,
    foreign_resident_category: str | None = None,
    residence_expires_on: str = "",
) -> DestinationRecord:
    """The destination record of ``record``'s resident, mailed to the resident's own address.

    The card is sent to the 交付場所 unless ``card_place`` says otherwise.  A resident whose
    name is in roman letters is taken for a 中長期在留者 ("1") unless ``foreign_resident_category``
    is given.  It is valid (``validate_destination``) whenever ``record`` is a valid identity
    record with an individual number; without one there is nothing to notify, so item 50 is refused.
    """
    if not record.individual_number:
        raise _refuse("individual_number", "must be assigned for a destination record")
    card_place = card_place or issue_place
    roman = _roman_name(record.name_kanji)
    category = ("1" if roman else "") if foreign_resident_category is None else foreign_resident_category
    name_sub, name_positions = _substitute(record.name_kanji)
    address_sub, address_positions = _substitute(record.address)
    gaiji = bool(name_positions or address_positions)
    counts = (
        record.name_gaiji_count,
        record.address_gaiji_count,
        count_gaiji(municipality.address),
        count_gaiji(issue_place.name),
        count_gaiji(issue_place.address),
        count_gaiji(card_place.name),
        count_gaiji(card_place.address),
        record.former_surname_gaiji_count,
    )
    return DestinationRecord(
        management_number,
        record.postal_code,
        len(record.address),
        record.address,
        record.address_gaiji_count,
        len(record.name_kanji),
        record.name_kanji,
        record.name_gaiji_count,
        record.municipality_code,
        len(municipality.name),
        municipality.name,
        municipality.postal_code,
        len(municipality.address),
        municipality.address,
        count_gaiji(municipality.address),
        municipality.phone,
        *_place_items(issue_place),
        *_place_items(card_place),
        1,
        processed_on,
        record.operator_id if operator_id is None else operator_id,
        record.terminal_id if terminal_id is None else terminal_id,
        print_category,
        record.resident_code,
        len(record.name_kanji),
        record.name_kanji,
        record.name_gaiji_count,
        len(record.name_kana),
        record.name_kana,
        record.postal_code,
        len(record.address),
        record.address,
        record.address_gaiji_count,
        record.birth_date,
        record.sex,
        record.individual_number,
        category,
        residence_expires_on if category else "",
        SUBSTITUTE_DONE if gaiji else SUBSTITUTE_NONE,
        len(name_sub) if gaiji else 0,
        name_sub if gaiji else "",
        len(address_sub) if gaiji else 0,
        address_sub if gaiji else "",
        name_positions,
        address_positions,
        FLAG_ON if max(counts) > 0 else FLAG_OFF,
        "",
        record.former_surname_kanji,
        record.former_surname_gaiji_count,
        record.former_surname_kana,
        record.former_surname_gaiji_seq,
        roman,
        "",
    )


def _place_items(place: Place) -> tuple[int, str, int, str, int, str, int, str]:
    """Items 17–24 (or 25–32) of ``place``."""
    return (
        len(place.name),
        place.name,
        count_gaiji(place.name),
        place.postal_code,
        len(place.address),
        place.address,
        count_gaiji(place.address),
        place.phone,
    )


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(DestinationRecord)


def encode_destination(rec: DestinationRecord) -> bytes:
    """The record's compact serialisation (a msgpack array of the 67 items)."""
    return _ENCODER.encode(rec)


def decode_destination(data: bytes) -> DestinationRecord:
    """Inverse of :func:`encode_destination`; raises ``msgspec.DecodeError`` on malformed bytes."""
    return _DECODER.decode(data)
