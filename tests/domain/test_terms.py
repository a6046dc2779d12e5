"""Index terms of records and the four-item query: one normalisation for both sides."""

from __future__ import annotations

import dataclasses

import pytest

from firmware_app.domain.errors import InvalidQuery
from firmware_app.domain.kana import seion
from firmware_app.domain.terms import MAX_QUERY_CHARS, FourItemQuery, IndexTerms, index_terms, is_kana

FOREIGN_KANJI = "スミス　ジョン（山田　太郎）"
FOREIGN_KANA = "スミス　ジョン（ヤマダ　タロウ）"
FOREIGN = {"name_kanji": FOREIGN_KANJI, "name_kana": FOREIGN_KANA, "name_seion_kana": seion(FOREIGN_KANA)}


def test_terms_of_a_japanese_resident(valid_record) -> None:
    terms = index_terms(valid_record(address="東京都目黒区上目黒二丁目１９ー１５"))
    assert terms == IndexTerms(
        number="123456789018",
        kana_names=("メクロタロウ",),
        kanji_names=("目黒太郎",),
        birth="19800115",
        address="東京都目黒区上目黒二丁目19-15",
    )


def test_no_number_term_before_a_number_is_assigned(valid_record) -> None:
    assert index_terms(valid_record(individual_number="")).number is None


def test_a_tsusho_gives_extra_name_terms(valid_record) -> None:
    record = valid_record(**FOREIGN)
    terms = index_terms(record)
    assert terms.kana_names == ("スミスシヨン（ヤマタタロウ）", "スミスシヨン", "ヤマタタロウ")
    assert terms.kanji_names == ("スミスジョン(山田太郎)", "スミスジョン", "山田太郎")


def test_name_terms_are_deduplicated(valid_record) -> None:
    record = valid_record(name_kanji="ジョン（ジョン）", name_kana="ジョン（ジョン）", name_seion_kana="シヨン（シヨン）")
    terms = index_terms(record)
    assert terms.kanji_names == ("ジョン(ジョン)", "ジョン")
    assert terms.kana_names == ("シヨン（シヨン）", "シヨン")


@pytest.mark.parametrize("name", ["メグロ　タロウ", "ﾒｸﾞﾛ ﾀﾛｳ", "めぐろ たろう", "メグロタロウ", "ﾒｸﾞﾛﾀﾛｳ"])
def test_kana_query_in_any_width_meets_the_record_term(valid_record, name) -> None:
    query = FourItemQuery(name=name, birth_date="19800115")
    assert query.kana_key() in index_terms(valid_record()).kana_names
    assert query.birth() == "19800115"


def test_kanji_and_address_queries_meet_the_record_terms(valid_record) -> None:
    terms = index_terms(valid_record())
    query = FourItemQuery(name="目黒 太郎", address="東京都目黒区上目黒二丁目１９番１５号")
    assert query.kana_key() is None
    assert query.kanji_key() in terms.kanji_names
    assert query.address_key() == terms.address
    assert query.birth() is None


def test_alias_query_meets_a_tsusho_term(valid_record) -> None:
    record = valid_record(**FOREIGN)
    assert FourItemQuery(name="山田 太郎", birth_date="19800115").kanji_key() in index_terms(record).kanji_names
    assert FourItemQuery(name="ﾔﾏﾀﾞ ﾀﾛｳ", birth_date="19800115").kana_key() in index_terms(record).kana_names


def test_full_width_birth_date_is_folded() -> None:
    assert FourItemQuery(birth_date="１９８０００００").birth() == "19800000"


@pytest.mark.parametrize(
    "fields",
    [
        {"sex": "1"},  # a sex alone is too broad
        {},
        {"name": "x" * (MAX_QUERY_CHARS + 1)},
        {"address": "東" * (MAX_QUERY_CHARS + 1)},
        {"name": "目黒", "sex": "1" * (MAX_QUERY_CHARS + 1)},
        {"name": "目黒", "sex": "3"},
        {"name": "　 "},
        {"address": ""},
        {"birth_date": "19800230"},
        {"birth_date": "1980-01-15"},
        {"birth_date": "19800005"},
    ],
)
def test_bad_queries_are_refused(fields) -> None:
    with pytest.raises(InvalidQuery) as caught:
        FourItemQuery(**fields)
    for value in fields.values():
        if len(value) >= 4:
            assert value not in str(caught.value)


@pytest.mark.parametrize("fields", [{"name": 1}, {"birth_date": 19800115}, {"sex": True}, {"address": b"x"}])
def test_wrong_types_are_type_errors(fields) -> None:
    with pytest.raises(TypeError):
        FourItemQuery(**fields)


def test_query_is_frozen_and_keyword_only() -> None:
    query = FourItemQuery(name="目黒")
    with pytest.raises(dataclasses.FrozenInstanceError):
        query.name = "品川"  # type: ignore[misc]
    with pytest.raises(TypeError):
        FourItemQuery("目黒")  # type: ignore[misc]


def test_is_kana_is_exported() -> None:
    assert is_kana("ﾒｸﾞﾛ") and not is_kana("目黒")
