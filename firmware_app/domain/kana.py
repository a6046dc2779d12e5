"""Kana and search-key normalisation (清音化, register-input folding, name and address keys).

Each function is a Unicode normalisation and a ``str.translate`` over a table built once at
import (plus one regex for addresses), so the per-character work runs in C.  The 清音化 rules
are a convention (domain-facts §3, docs/domain-rules.md).
"""

from __future__ import annotations

import re
import unicodedata

from firmware_app.domain.rules import KANA_LETTERS, KANA_SPACES

_HIRAGANA_OFFSET = 0x60  # ぁ U+3041 + 0x60 = ァ U+30A1.
_HIRAGANA = [*range(0x3041, 0x3097), 0x309D, 0x309E]  # ぁ–ゖ, ゝ ゞ
_VOICE_MARKS = "\u3099\u309a\u309b\u309c"  # combining and spacing ゛ ゜
# Small kana become large, and the archaic ヰ ヱ ヲ become イ エ オ.
_FOLD_FROM, _FOLD_TO = "ァィゥェォッャュョヮヵヶヰヱヲ", "アイウエオツヤユヨワカケイエオ"
_WHITE_SPACE = "".join(ch for ch in map(chr, range(0x3001)) if ch.isspace())


def _to_katakana(ch: str) -> str:
    code = ord(ch)
    return chr(code + _HIRAGANA_OFFSET) if code in _HIRAGANA else ch


def _seion_letter(ch: str) -> str:
    # Canonical decomposition splits ガ into カ + U+3099; dropping the mark devoices it.
    base = unicodedata.normalize("NFD", _to_katakana(ch))[0]
    return _FOLD_TO[_FOLD_FROM.index(base)] if base in _FOLD_FROM else base


def _seion_table() -> dict[int, str | None]:
    letters = [*map(chr, _HIRAGANA), *map(chr, range(0x30A1, 0x30FF))]
    table: dict[int, str | None] = {ord(ch): _seion_letter(ch) for ch in letters}
    table.update(dict.fromkeys(map(ord, _VOICE_MARKS + _WHITE_SPACE + "ー")))
    table.update({ord("("): "（", ord(")"): "）"})
    return {code: to for code, to in table.items() if to != chr(code)}


def _fullwidth_table() -> dict[int, str]:
    table = {code: chr(code + _HIRAGANA_OFFSET) for code in _HIRAGANA}
    # Half-width katakana (U+FF61–U+FF9F); ﾞ ﾟ become combining marks, which NFC then composes.
    table.update({code: unicodedata.normalize("NFKC", chr(code)) for code in range(0xFF61, 0xFFA0)})
    table.update({ord("("): "（", ord(")"): "）"})
    return table


_SEION = _seion_table()
_FULLWIDTH = _fullwidth_table()
_NO_SPACE = dict.fromkeys(map(ord, _WHITE_SPACE))
# Dash-like characters as they stand after NFKC (which has made － and ﹣ into '-' and ‑ into ‐).
_DASHES = str.maketrans(dict.fromkeys("‐‒–—―⁃−", "-") | dict.fromkeys(map(ord, _WHITE_SPACE)))
_CHOON_AFTER_DIGIT = re.compile("(?<=[0-9])ー")
_KANA_ONLY = re.compile(f"[{KANA_SPACES}（）]*[{KANA_LETTERS}][{KANA_LETTERS}{KANA_SPACES}（）]*")


def seion(text: str) -> str:
    """清音化: the search reading of kana in any width or script, without voicing, small kana, ー or spaces."""
    # Folding U+3000 and （ ） first gives what NFKC would, but keeps NFKC on its fast path.
    folded = text.replace("\u3000", " ").replace("（", "(").replace("）", ")")
    return unicodedata.normalize("NFKC", folded).translate(_SEION)


def seion_of_katakana(text: str) -> str:
    """``seion(text)`` for a text known to be full-width katakana, spaces and （ ） (a kana item): no NFKC."""
    return text.translate(_SEION)


def to_fullwidth_katakana(text: str) -> str:
    """Register input as a kana item: half-width kana and hiragana become full-width katakana; spaces stay."""
    return unicodedata.normalize("NFC", text.translate(_FULLWIDTH))


def is_kana(text: str) -> bool:
    """True when ``text`` is kana only (any width or script), spaces and （ ）, with at least one letter."""
    return _KANA_ONLY.fullmatch(to_fullwidth_katakana(text)) is not None


def name_key(text: str) -> str:
    """The search key of a kanji name: NFKC with every space removed."""
    return unicodedata.normalize("NFKC", text).translate(_NO_SPACE)


def address_key(text: str) -> str:
    """The search key of an address: NFKC, spaces removed, dashes (and ー after a digit) as ``-``."""
    return _CHOON_AFTER_DIGIT.sub("-", unicodedata.normalize("NFKC", text).translate(_DASHES))
