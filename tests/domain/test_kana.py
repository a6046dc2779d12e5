"""清音化, register-input folding and the name and address keys."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_app.domain.kana import (
    address_key,
    is_kana,
    name_key,
    seion,
    seion_of_katakana,
    to_fullwidth_katakana,
)
from firmware_app.domain.rules import is_kana_item


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ガッコウ", "カツコウ"),  # full-width, voiced and small kana
        ("ｶﾞｯｺｳ", "カツコウ"),  # half-width with a separate ﾞ
        ("ﾊﾟﾝ", "ハン"),  # half-width with a separate ﾟ
        ("がっこう", "カツコウ"),  # hiragana
        ("ァィゥェォッャュョヮヵヶ", "アイウエオツヤユヨワカケ"),
        ("ぁぃぅぇぉっゃゅょゎゕゖ", "アイウエオツヤユヨワカケ"),
        ("ヴァイオリン", "ウアイオリン"),
        ("ゔ", "ウ"),
        ("ヷヸヹヺ", "ワイエオ"),
        ("ヰヱヲ", "イエオ"),
        ("ヾゞ", "ヽヽ"),
        ("コーヒー", "コヒ"),
        ("ｺｰﾋｰ", "コヒ"),
        ("メグロ　タロウ", "メクロタロウ"),  # ideographic space
        ("メグロ タロウ", "メクロタロウ"),  # ASCII space
        ("ﾒｸﾞﾛ ﾀﾛｳ", "メクロタロウ"),
        ("スミス　ジョン（ヤマダ　タロウ）", "スミスシヨン（ヤマタタロウ）"),  # a 通称 in parentheses
        ("ｽﾐｽ(ﾔﾏﾀﾞ)", "スミス（ヤマタ）"),
        ("ｱﾞ", "ア"),  # a stray voicing mark is dropped
        ("", ""),
    ],
)
def test_seion(text: str, expected: str) -> None:
    assert seion(text) == expected


@given(st.from_regex(r"[ァ-ヺーヽヾ]{1,8}(?:[ 　][ァ-ヺーヽヾ]{1,8}){0,2}(?:（[ァ-ヺーヽヾ]{1,8}）)?", fullmatch=True))
def test_seion_of_katakana_equals_seion_for_kana_items(text: str) -> None:
    assert seion_of_katakana(text) == seion(text)


_ANY_KANA = st.sampled_from(
    [chr(c) for c in [*range(0x3041, 0x3097), 0x309D, 0x309E, *range(0x30A1, 0x30FF), *range(0xFF66, 0xFFA0)]]
    + [" ", "\u3000", "（", "）", "(", ")"]
)


@given(st.text(_ANY_KANA, max_size=30))
def test_seion_of_any_kana_is_idempotent_katakana(text: str) -> None:
    once = seion(text)
    assert seion(once) == once
    assert not set(once) & set(" \u3000ー()ァィゥェォッャュョヮヵヶヰヱヲ")  # no space, ー or small kana
    assert not any("\u3041" <= ch <= "\u309f" for ch in once)  # no hiragana
    assert not set(unicodedata.normalize("NFD", once)) & {"\u3099", "\u309a"}  # no voicing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ｶﾞｯｺｳ ﾀﾛｳ", "ガッコウ タロウ"),  # half-width becomes full-width, the space is kept
        ("ﾊﾟﾝ", "パン"),
        ("ｳﾞｨｯﾄ", "ヴィット"),
        ("めぐろ　たろう", "メグロ　タロウ"),  # hiragana, ideographic space kept
        ("ゝゞ", "ヽヾ"),
        ("ｽﾐｽ(ﾔﾏﾀﾞ)", "スミス（ヤマダ）"),
        ("コーヒー", "コーヒー"),
        ("ｺｰﾋｰ", "コーヒー"),
    ],
)
def test_to_fullwidth_katakana(text: str, expected: str) -> None:
    assert to_fullwidth_katakana(text) == expected
    assert is_kana_item(to_fullwidth_katakana(text))


@pytest.mark.parametrize("text", ["メグロ", "ﾒｸﾞﾛ ﾀﾛｳ", "めぐろ　たろう", "スミス（ヤマダ）", "コーヒー"])
def test_is_kana(text: str) -> None:
    assert is_kana(text)


@pytest.mark.parametrize("text", ["目黒", "メグロ太郎", "", " ", "（）", "SMITH", "ｱﾞ"])
def test_is_not_kana(text: str) -> None:
    assert not is_kana(text)


def test_name_key_folds_width_and_drops_spaces() -> None:
    assert name_key("目黒　太郎") == name_key("目黒 太郎") == name_key(" 目黒太郎 ") == "目黒太郎"
    assert name_key("ＳＭＩＴＨ　ＪＯＨＮ") == "SMITHJOHN"
    assert name_key("ﾒｸﾞﾛ") == "メグロ"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("東京都目黒区上目黒１ー２－３", "東京都目黒区上目黒1-2-3"),
        ("上目黒1‐2‑3", "上目黒1-2-3"),
        ("上目黒1–2—3", "上目黒1-2-3"),
        ("上目黒1−2―3", "上目黒1-2-3"),
        ("上目黒1﹣2", "上目黒1-2"),
        ("上目黒1ｰ2", "上目黒1-2"),
        ("上目黒二丁目19番15号　メゾン・コーポ 101", "上目黒二丁目19番15号メゾン・コーポ101"),  # ー not after a digit stays
        ("ﾒｿﾞﾝ･ｺｰﾎﾟ", "メゾン・コーポ"),
        ("中町一丁目5番地", "中町一丁目5番地"),
    ],
)
def test_address_key(text: str, expected: str) -> None:
    assert address_key(text) == expected
