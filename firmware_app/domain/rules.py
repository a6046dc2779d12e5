"""Record conventions in one place (limits, codes, character classes), so policy changes touch no caller.

Everything here is data or a small predicate over data; ``validate.py`` applies it.
Values marked (convention) are not confirmed by a public primary text (domain-facts §6).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

#: Length limits in characters, as (minimum, maximum), of the free-text items.  A minimum
#: of 0 means the item may be empty; an optional item that is set must have ≥ 1 character.
TEXT_LIMITS: Mapping[str, tuple[int, int]] = MappingProxyType({
    "name_kanji": (1, 100),
    "name_kana": (1, 100),
    "address": (1, 200),
    "previous_address": (0, 200),
    "relationship": (0, 20),
    "change_reason_detail": (0, 100),
    "former_surname_kanji": (0, 40),
    "former_surname_kana": (0, 60),
})

#: Exclusive upper bounds of the integer items that are not 外字 counts.
INT_LIMITS: Mapping[str, int] = MappingProxyType({
    "update_sequence": 2**63,
    "error_update_sequence": 2**63,
    "former_surname_gaiji_seq": 2**31,
})

#: Sex codes (convention): "1" male, "2" female, as in the withdrawn JIS X 0303.
SEX_CODES = frozenset({"1", "2"})

#: The earliest year any date item may carry (birth dates of the oldest residents).
YEAR_FLOOR = 1850

_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# Every MMDD of a common year; 0229 is checked against the leap-year rule.
_MONTH_DAYS = frozenset(f"{m:02d}{d:02d}" for m, n in enumerate(_DAYS_IN_MONTH, 1) for d in range(1, n + 1))
# A birth date may give 00 for an unknown day, or 0000 for an unknown month and day.
_UNKNOWN_MONTH_DAYS = frozenset(f"{m:02d}00" for m in range(13))
_FIRST_DATE = f"{YEAR_FLOOR:04d}0000"

#: 外字 are private-use code points standing for 住基ネット統一文字 outside UCS.
GAIJI_FIRST = 0xE000
GAIJI_LAST = 0xF8FF

#: Regex class body of the 外字.
GAIJI_CHARS = f"{chr(GAIJI_FIRST)}-{chr(GAIJI_LAST)}"

#: Regex class body of what no text item may hold: C0 and C1 controls, U+FFFD and surrogates
#: (a Python str can only hold a surrogate unpaired: a pair decodes to one astral code point).
FORBIDDEN_CHARS = "\x00-\x1f\x7f-\x9f\ufffd\ud800-\udfff"

_GAIJI = re.compile(f"[{GAIJI_CHARS}]")
_FORBIDDEN = re.compile(f"[{FORBIDDEN_CHARS}]")

#: Full-width katakana letters allowed in a kana item: ァ–ヺ, the long vowel ー and ヽ ヾ.
KANA_LETTERS = "\u30a1-\u30fa\u30fc\u30fd\u30fe"

#: The separators allowed between the parts of a kana item: one ASCII or ideographic space.
KANA_SPACES = " \u3000"

_KANA_WORDS = f"[{KANA_LETTERS}]+(?:[{KANA_SPACES}][{KANA_LETTERS}]+)*"

#: Regex of a kana item: katakana words, single-spaced, and an optional （通称読み）.
KANA_ITEM = f"{_KANA_WORDS}(?:（{_KANA_WORDS}）)?"

_KANA_ITEM = re.compile(KANA_ITEM)
_TSUSHO = re.compile("([^（）]+)（([^（）]+)）")
_ALNUM = re.compile("[0-9A-Za-z]*")
_ACCOUNT_ID = re.compile("[0-9A-Za-z_-]*")


def count_gaiji(text: str) -> int:
    """Number of 外字 (private-use code points) in ``text``."""
    return len(_GAIJI.findall(text))


def has_forbidden_char(text: str) -> bool:
    """True when ``text`` holds a control character, U+FFFD or a surrogate."""
    return _FORBIDDEN.search(text) is not None


def is_kana_item(text: str) -> bool:
    """True when ``text`` is full-width katakana words, single-spaced, with an optional （通称読み）."""
    return _KANA_ITEM.fullmatch(text) is not None


def split_tsusho(text: str) -> tuple[str, str] | None:
    """``(本名, 通称)`` of a name written ``本名（通称）``, or None when it has no 通称 part."""
    match = _TSUSHO.fullmatch(text)
    return None if match is None else (match[1], match[2])


def is_ascii_digits(text: str, shortest: int, longest: int) -> bool:
    """True when ``text`` is ``shortest``–``longest`` ASCII digits."""
    return shortest <= len(text) <= longest and text.isascii() and text.isdigit()


def is_alnum_id(text: str, longest: int) -> bool:
    """True when ``text`` is at most ``longest`` ASCII letters and digits."""
    return len(text) <= longest and _ALNUM.fullmatch(text) is not None


def is_account_id(text: str, longest: int) -> bool:
    """True when ``text`` is at most ``longest`` ASCII letters, digits, ``-`` and ``_``."""
    return len(text) <= longest and _ACCOUNT_ID.fullmatch(text) is not None


def is_leap_year(year: int) -> bool:
    """True for a Gregorian leap year."""
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def is_date(text: str, *, partial: bool = False) -> bool:
    """True when ``text`` is a real ``YYYYMMDD`` date from YEAR_FLOOR (``partial``: MM00 or 0000 too)."""
    if len(text) != 8 or not (text.isascii() and text.isdigit()) or text < _FIRST_DATE:
        return False
    month_day = text[4:]
    if month_day in _MONTH_DAYS:
        return True
    if month_day == "0229":
        return is_leap_year(int(text[:4]))
    return partial and month_day in _UNKNOWN_MONTH_DAYS
