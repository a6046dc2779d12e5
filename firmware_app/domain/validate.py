"""Validation of an identity record against docs/domain-rules.md, fast enough for bulk loads.

Two paths share one verdict.  ``_is_plainly_valid`` is a quick test that is True only for a
record keeping every rule, and covers the common case (common Japanese characters, no 外字,
no 通称, no 29 February).
Whenever it is False, ``_check`` runs the rules one by one in a fixed order, types of all 40
items first and then item 1 to item 40 (a cross-item rule at its own item), and raises the
first broken one as ``InvalidRecord(field, rule, item)``; its rule phrases never hold a value.
"""

from __future__ import annotations

import functools
import operator
import re
import unicodedata
from collections.abc import Iterable

import msgspec

from firmware_app.domain import checkdigits
from firmware_app.domain.checkdigits import (
    individual_number_check_digit,
    is_valid_individual_number,
    is_valid_municipality_code,
    is_valid_resident_code,
)
from firmware_app.domain.errors import InvalidRecord
from firmware_app.domain.kana import seion, seion_of_katakana
from firmware_app.domain.reasons import REASONS, ReasonClass
from firmware_app.domain.record import (
    FLAG_OFF,
    FLAG_ON,
    ITEM_NUMBER,
    STATUS_LIVE,
    STATUS_REMOVED,
    IdentityRecord,
)
from firmware_app.domain.rules import (
    INT_LIMITS,
    KANA_ITEM,
    SEX_CODES,
    TEXT_LIMITS,
    YEAR_FLOOR,
    count_gaiji,
    has_forbidden_char,
    is_account_id,
    is_alnum_id,
    is_ascii_digits,
    is_date,
    is_kana_item,
    split_tsusho,
)

_TYPES = tuple(field.type for field in msgspec.structs.fields(IdentityRecord))
_SIZE = {field: range(low, high + 1) for field, (low, high) in TEXT_LIMITS.items()}
_FLAGS = frozenset({FLAG_OFF, FLAG_ON})
_STATUSES = frozenset({STATUS_LIVE, STATUS_REMOVED})
_REMOVALS = frozenset(code for code, reason in REASONS.items() if reason.reason_class is ReasonClass.REMOVAL)
_FIRST_DATE = f"{YEAR_FLOOR:04d}0000"
_NAME_KANA_MAX = TEXT_LIMITS["name_kana"][1]
_FORMER_SURNAME_KANA_MAX = TEXT_LIMITS["former_surname_kana"][1]
_UPDATE_SEQUENCE_LIMIT = INT_LIMITS["update_sequence"]
_ERROR_UPDATE_SEQUENCE_LIMIT = INT_LIMITS["error_update_sequence"]
_GAIJI_SEQ_LIMIT = INT_LIMITS["former_surname_gaiji_seq"]
_HOURS = frozenset(f"{h:02d}" for h in range(24))
_MINUTES = frozenset(f"{m:02d}" for m in range(60))

# Municipality codes repeat across records (about 1,900 exist), so their verdict is cached.
_is_municipality_code = functools.lru_cache(maxsize=4096)(is_valid_municipality_code)


# ---------------------------------------------------------------------------------------
# The quick test: one pattern over every str item, joined by "|" in layout order.  No pattern
# admits "|" inside a value, so each value meets its own pattern; a value holding "|" fails,
# and so does anything else the patterns leave out (29 February, 外字, a 通称, white space at
# an edge, a character outside _PLAIN_CHARS): it simply takes the exact path.

_MONTH_DAY = (
    "(?:(?:0[13578]|1[02])(?:0[1-9]|[12][0-9]|3[01])"
    "|(?:0[469]|11)(?:0[1-9]|[12][0-9]|30)"
    "|02(?:0[1-9]|1[0-9]|2[0-8]))"
)
_DAY = f"[0-9]{{4}}{_MONTH_DAY}"
# The characters of plain text besides the spaces.  None of them is a control or a 外字, is
# changed by NFC or combines with a neighbour under NFC, so a text of them is NFC.
_PLAIN_CHARS = (
    r"\x21-\x7b\x7d\x7e"  # printable ASCII but "|"
    r"\u3001-\u3003\u3005-\u3007"  # 、。〃 々〆〇
    r"\u3041-\u3096\u309d\u309e\u30a1-\u30fe"  # kana, ・, ー and the iteration marks
    r"\u4e00-\u9fff"  # CJK unified ideographs
    r"\uff01-\uff5e\uff61-\uff9f"  # full-width forms, half-width katakana
)
# A kanji name without （ ） (U+FF08, U+FF09): a 通称 takes the exact path.
_PLAIN_NAME_CHARS = _PLAIN_CHARS.replace(r"\uff01-\uff5e", r"\uff01-\uff07\uff0a-\uff5e")
_PLAIN_SPACES = r" \u3000"


def _one_of(codes: Iterable[str]) -> str:
    escaped = sorted(map(re.escape, codes))
    if all(len(code) == 1 for code in escaped):
        return f"[{''.join(escaped)}]"
    return f"(?:{'|'.join(escaped)})"


def _plain_text(field: str, chars: str = _PLAIN_CHARS) -> str:
    """Pattern of a text item of ``chars`` and spaces within its length limits, with no space at an edge."""
    low, high = TEXT_LIMITS[field]
    return f"(?![{_PLAIN_SPACES}])[{chars}{_PLAIN_SPACES}]{{{low},{high}}}(?<![{_PLAIN_SPACES}])"


_PLAIN = {
    "resident_code": "[0-9]{11}",
    "name_kanji": _plain_text("name_kanji", _PLAIN_NAME_CHARS),
    "name_kana": KANA_ITEM,
    "birth_date": f"[0-9]{{4}}(?:{_MONTH_DAY}|(?:0[1-9]|1[0-2])00|0000)",
    "sex": _one_of(SEX_CODES),
    "municipality_code": "[0-9]{6}",
    "oaza_code": "[0-9]{0,12}",
    "postal_code": "[0-9]{7}",
    "address": _plain_text("address"),
    "individual_number": "(?:[0-9]{12})?",
    "became_resident_on": f"(?:{_DAY})?",
    "address_set_on": f"(?:{_DAY})?",
    "notified_on": _DAY,
    "previous_municipality_code": "(?:[0-9]{6})?",
    "previous_address": _plain_text("previous_address"),
    "relationship": _plain_text("relationship"),
    "change_reason": _one_of(REASONS),
    "change_date": _DAY,
    "change_reason_detail": _plain_text("change_reason_detail"),
    "former_resident_code": "(?:[0-9]{11})?",
    "resident_code_used_from": f"(?:{_DAY})?",
    "request_control_number": "[0-9A-Za-z]{0,20}",
    "operator_id": "[0-9A-Za-z_-]{0,16}",
    "terminal_id": "[0-9A-Za-z_-]{0,16}",
    "update_prohibited": "[01]",
    "scheduled_flag": "[01]",
    "exclusive_flag": "[01]",
    "gaiji_flag": FLAG_OFF,
    "record_status": "[01]",
    "timestamp": f"{_DAY}(?:[01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]",
    "former_surname_kanji": _plain_text("former_surname_kanji"),
    "former_surname_kana": f"(?:{KANA_ITEM})?",
}
# Every str item is covered, item 5 by its comparison with the seion of item 4.
assert {*_PLAIN, "name_seion_kana"} == {field for field, kind in zip(ITEM_NUMBER, _TYPES) if kind is str}
_PLAIN_RE = re.compile(r"\|".join(_PLAIN.values()))
_strs = operator.itemgetter(*(ITEM_NUMBER[field] - 1 for field in _PLAIN))
# CPython keeps one int 0, so identity with it tests type and value at once; should an equal
# int ever be another object, the record merely takes the exact path.
_ZERO = 0


def _is_plainly_valid(values: tuple, today: str) -> bool:
    """True only when the record keeps every rule (False says nothing)."""
    (
        resident_code, _name_kanji, name_gaiji_count, name_kana, name_seion_kana,
        birth_date, _sex, municipality_code, _oaza_code, _postal_code,
        _address, address_gaiji_count, individual_number, became_resident_on, address_set_on,
        notified_on, previous_municipality_code, _previous_address, previous_address_gaiji_count,
        _relationship, change_reason, change_date, _change_reason_detail, former_resident_code,
        resident_code_used_from, _request_control_number, _operator_id, _terminal_id,
        update_sequence, error_update_sequence, _update_prohibited, _scheduled_flag, _exclusive_flag,
        _gaiji_flag, record_status, timestamp, former_surname_kanji, former_surname_gaiji_count,
        former_surname_kana, former_surname_gaiji_seq,
    ) = values  # fmt: skip
    try:
        joined = "|".join(_strs(values))  # str.join refuses a value that is not a str.
    except TypeError:
        return False
    return (
        name_gaiji_count is _ZERO
        and address_gaiji_count is _ZERO
        and previous_address_gaiji_count is _ZERO
        and former_surname_gaiji_count is _ZERO
        and type(update_sequence) is int
        and type(error_update_sequence) is int
        and type(former_surname_gaiji_seq) is int
        and _PLAIN_RE.fullmatch(joined) is not None
        and len(name_kana) <= _NAME_KANA_MAX
        and len(former_surname_kana) <= _FORMER_SURNAME_KANA_MAX
        and name_seion_kana == seion_of_katakana(name_kana)
        and bool(former_surname_kanji) == bool(former_surname_kana)
        and _FIRST_DATE <= birth_date <= today
        and (not became_resident_on or birth_date <= became_resident_on <= today)
        and (not address_set_on or _FIRST_DATE <= address_set_on <= today)
        and _FIRST_DATE <= notified_on <= today
        and _FIRST_DATE <= change_date <= today
        and (not resident_code_used_from or _FIRST_DATE <= resident_code_used_from <= today)
        and _FIRST_DATE <= timestamp[:8] <= today
        and 0 <= update_sequence < _UPDATE_SEQUENCE_LIMIT
        and 0 <= error_update_sequence < _ERROR_UPDATE_SEQUENCE_LIMIT
        and 0 <= former_surname_gaiji_seq < _GAIJI_SEQ_LIMIT
        and (record_status == STATUS_REMOVED) == (change_reason in _REMOVALS)
        and former_resident_code != resident_code
        and _is_municipality_code(municipality_code)
        and (not previous_municipality_code or _is_municipality_code(previous_municipality_code))
        # The pattern has made these codes ASCII digits of the right length, so only their
        # check digits remain; the rule is read at each call so that it can be replaced.
        and checkdigits.RESIDENT_CODE_RULE(resident_code[:10]) == resident_code[10]
        and (not individual_number or individual_number[11] == individual_number_check_digit(individual_number[:11]))
        and (not former_resident_code or is_valid_resident_code(former_resident_code))
    )


# ---------------------------------------------------------------------------------------
# The exact path: every rule on its own, in order.

_TEXT_CHARS = "must not contain control characters, U+FFFD or surrogates"
_TEXT_EDGES = "must not begin or end with white space"
_TEXT_NFC = "must be in Unicode NFC"
_GAIJI_COUNT = "must equal the number of gaiji (private-use characters) in item {}"
_DATE = f"must be a real date YYYYMMDD from year {YEAR_FLOOR}"
_BIRTH_DATE = _DATE + " (00 for an unknown day, 0000 for an unknown month)"
_NOT_FUTURE = "must not be after today"
_RESIDENT_CODE = "11 ASCII digits with a valid check digit"
_MUNICIPALITY_CODE = "6 ASCII digits with a valid check digit"
_ACCOUNT_ID = "must be at most 16 ASCII letters, digits, '-' or '_'"
_FLAG = "must be '0' or '1'"


def _refuse(field: str, rule: str) -> InvalidRecord:
    return InvalidRecord(field, rule, ITEM_NUMBER[field])


def _check_text(field: str, value: str) -> int:
    """Checks the characters and length of one text item; returns its 外字 count."""
    if has_forbidden_char(value):
        raise _refuse(field, _TEXT_CHARS)
    if value != value.strip():
        raise _refuse(field, _TEXT_EDGES)
    if not unicodedata.is_normalized("NFC", value):
        raise _refuse(field, _TEXT_NFC)
    size = _SIZE[field]
    if len(value) not in size:
        raise _refuse(field, f"must be {size.start} to {size.stop - 1} characters")
    return count_gaiji(value)


def _check_date(field: str, value: str, today: str, *, optional: bool = False) -> None:
    if optional and not value:
        return
    if not is_date(value):
        raise _refuse(field, ("must be empty or " if optional else "") + _DATE)
    if value > today:
        raise _refuse(field, _NOT_FUTURE)


def _is_timestamp(value: str) -> bool:
    """True when ``value`` is a real instant ``YYYYMMDDhhmmss`` (no leap second)."""
    return (
        len(value) == 14
        and is_date(value[:8])
        and value[8:10] in _HOURS
        and value[10:12] in _MINUTES
        and value[12:] in _MINUTES
    )


def _check_types(values: tuple) -> None:
    for (field, item), expected, value in zip(ITEM_NUMBER.items(), _TYPES, values, strict=True):
        if expected is str and not isinstance(value, str):
            raise InvalidRecord(field, "must be a str", item)
        if expected is int and type(value) is not int:
            raise InvalidRecord(field, "must be an int (not a bool)", item)


def _check(values: tuple, today: str) -> None:
    """Raises InvalidRecord for the first broken rule, in the module docstring's order."""
    _check_types(values)
    (
        resident_code, name_kanji, name_gaiji_count, name_kana, name_seion_kana,
        birth_date, sex, municipality_code, oaza_code, postal_code,
        address, address_gaiji_count, individual_number, became_resident_on, address_set_on,
        notified_on, previous_municipality_code, previous_address, previous_address_gaiji_count,
        relationship, change_reason, change_date, change_reason_detail, former_resident_code,
        resident_code_used_from, request_control_number, operator_id, terminal_id,
        update_sequence, error_update_sequence, update_prohibited, scheduled_flag, exclusive_flag,
        gaiji_flag, record_status, timestamp, former_surname_kanji, former_surname_gaiji_count,
        former_surname_kana, former_surname_gaiji_seq,
    ) = values  # fmt: skip

    # Items 1–5: code and name.
    if not is_valid_resident_code(resident_code):
        raise _refuse("resident_code", "must be " + _RESIDENT_CODE)
    gaiji = _check_text("name_kanji", name_kanji)
    if ("（" in name_kanji or "）" in name_kanji) and split_tsusho(name_kanji) is None:
        raise _refuse("name_kanji", "a 通称 must be written once, as 本名（通称）")
    if name_gaiji_count != gaiji:
        raise _refuse("name_gaiji_count", _GAIJI_COUNT.format(2))
    _check_text("name_kana", name_kana)
    if not is_kana_item(name_kana):
        raise _refuse("name_kana", "must be full-width katakana words, single-spaced, with an optional （通称）")
    if name_seion_kana != seion(name_kana):
        raise _refuse("name_seion_kana", "must equal the seion form of item 4")

    # Items 6–13: birth, sex, address.
    if not is_date(birth_date, partial=True):
        raise _refuse("birth_date", _BIRTH_DATE)
    if birth_date > today:
        raise _refuse("birth_date", _NOT_FUTURE)
    if sex not in SEX_CODES:
        raise _refuse("sex", "must be a known sex code")
    if not _is_municipality_code(municipality_code):
        raise _refuse("municipality_code", "must be " + _MUNICIPALITY_CODE)
    if oaza_code and not is_ascii_digits(oaza_code, 1, 12):
        raise _refuse("oaza_code", "must be empty or 1 to 12 ASCII digits")
    if not is_ascii_digits(postal_code, 7, 7):
        raise _refuse("postal_code", "must be 7 ASCII digits")
    gaiji = _check_text("address", address)
    if address_gaiji_count != gaiji:
        raise _refuse("address_gaiji_count", _GAIJI_COUNT.format(11))
    if individual_number and not is_valid_individual_number(individual_number):
        raise _refuse("individual_number", "must be empty or 12 ASCII digits with a valid check digit")

    # Items 14–25: the change and where the resident came from.
    _check_date("became_resident_on", became_resident_on, today, optional=True)
    if became_resident_on and became_resident_on < birth_date:
        raise _refuse("became_resident_on", "must not be before the birth date")
    _check_date("address_set_on", address_set_on, today, optional=True)
    _check_date("notified_on", notified_on, today)
    if previous_municipality_code and not _is_municipality_code(previous_municipality_code):
        raise _refuse("previous_municipality_code", "must be empty or " + _MUNICIPALITY_CODE)
    gaiji = _check_text("previous_address", previous_address)
    if previous_address_gaiji_count != gaiji:
        raise _refuse("previous_address_gaiji_count", _GAIJI_COUNT.format(18))
    _check_text("relationship", relationship)
    if change_reason not in REASONS:
        raise _refuse("change_reason", "must be a code of the change-reason table")
    _check_date("change_date", change_date, today)
    _check_text("change_reason_detail", change_reason_detail)
    if former_resident_code and not is_valid_resident_code(former_resident_code):
        raise _refuse("former_resident_code", "must be empty or " + _RESIDENT_CODE)
    if former_resident_code == resident_code:
        raise _refuse("former_resident_code", "must differ from item 1")
    _check_date("resident_code_used_from", resident_code_used_from, today, optional=True)

    # Items 26–36: processing control.
    if not is_alnum_id(request_control_number, 20):
        raise _refuse("request_control_number", "must be at most 20 ASCII letters or digits")
    if not is_account_id(operator_id, 16):
        raise _refuse("operator_id", _ACCOUNT_ID)
    if not is_account_id(terminal_id, 16):
        raise _refuse("terminal_id", _ACCOUNT_ID)
    if not 0 <= update_sequence < INT_LIMITS["update_sequence"]:
        raise _refuse("update_sequence", "must be from 0 to 2**63 - 1")
    if not 0 <= error_update_sequence < INT_LIMITS["error_update_sequence"]:
        raise _refuse("error_update_sequence", "must be from 0 to 2**63 - 1")
    for field, flag in (
        ("update_prohibited", update_prohibited),
        ("scheduled_flag", scheduled_flag),
        ("exclusive_flag", exclusive_flag),
    ):
        if flag not in _FLAGS:
            raise _refuse(field, _FLAG)
    counts = (name_gaiji_count, address_gaiji_count, previous_address_gaiji_count, former_surname_gaiji_count)
    if gaiji_flag != (FLAG_ON if max(counts) > 0 else FLAG_OFF):
        raise _refuse("gaiji_flag", "must be '1' exactly when item 3, 12, 19 or 38 is above 0")
    if record_status not in _STATUSES:
        raise _refuse("record_status", _FLAG)
    if (record_status == STATUS_REMOVED) != (change_reason in _REMOVALS):
        raise _refuse("record_status", "must be '1' exactly when the change reason is a removal")
    if not _is_timestamp(timestamp):
        raise _refuse("timestamp", "must be a real instant YYYYMMDDhhmmss")
    if timestamp[:8] > today:
        raise _refuse("timestamp", _NOT_FUTURE)

    # Items 37–40: 旧氏.
    gaiji = _check_text("former_surname_kanji", former_surname_kanji)
    if bool(former_surname_kanji) != bool(former_surname_kana):
        raise _refuse("former_surname_kanji", "must be set exactly when item 39 is set")
    if former_surname_gaiji_count != gaiji:
        raise _refuse("former_surname_gaiji_count", _GAIJI_COUNT.format(37))
    _check_text("former_surname_kana", former_surname_kana)
    if former_surname_kana and not is_kana_item(former_surname_kana):
        raise _refuse("former_surname_kana", "must be empty or full-width katakana words, single-spaced")
    if not 0 <= former_surname_gaiji_seq < INT_LIMITS["former_surname_gaiji_seq"]:
        raise _refuse("former_surname_gaiji_seq", "must be from 0 to 2**31 - 1")


@functools.lru_cache(maxsize=8)
def _check_today(today: str) -> None:
    # Cached: a bulk load passes the same date for every record.
    if not is_date(today):
        raise ValueError("today must be a real YYYYMMDD date")


def validate_record(record: IdentityRecord, *, today: str) -> IdentityRecord:
    """``record`` unchanged when it keeps every rule of docs/domain-rules.md; else InvalidRecord."""
    if type(record) is not IdentityRecord:
        raise TypeError("record must be an IdentityRecord")
    if type(today) is not str:
        raise TypeError("today must be a str")
    _check_today(today)
    values = msgspec.structs.astuple(record)
    if not _is_plainly_valid(values, today):
        _check(values, today)
    return record
