"""The synthetic Meguro population: deterministic, unique codes, valid records, realistic shares."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from firmware_app.domain.checkdigits import is_valid_individual_number, is_valid_resident_code
from firmware_app.domain.kana import seion
from firmware_app.domain.record import IdentityRecord
from firmware_app.domain.validate import validate_record
from peers.population import MUNICIPALITY_CODE, generate, individual_number_of, resident_code_of

TODAY = "20260401"
SAMPLE = 20_000


@pytest.fixture(scope="module")
def records() -> list[IdentityRecord]:
    """The first residents of the default population."""
    return list(generate(SAMPLE, today=TODAY))


def _share(records: list[IdentityRecord], predicate: Callable[[IdentityRecord], bool]) -> float:
    """The fraction of ``records`` that satisfy ``predicate``."""
    return sum(map(predicate, records)) / len(records)


def test_generation_is_deterministic_and_sliceable() -> None:
    first = list(generate(15))
    assert list(generate(15)) == first
    assert list(generate(5, start=10)) == first[10:15]
    assert [r.update_sequence for r in first] == list(range(1, 16))
    assert list(generate(15, seed=2)) != first


def test_cheap_code_helpers_match_the_records(records: list[IdentityRecord]) -> None:
    for i, record in enumerate(records[:2000]):
        assert resident_code_of(i) == record.resident_code
        assert individual_number_of(i) == record.individual_number
    other = next(generate(1, seed=7, start=123))
    assert (resident_code_of(123, seed=7), individual_number_of(123, seed=7)) == (
        other.resident_code,
        other.individual_number,
    )


def test_codes_are_unique_and_valid_over_200000_residents() -> None:
    codes = [resident_code_of(i) for i in range(200_000)]
    assert len(set(codes)) == len(codes)
    assert all(map(is_valid_resident_code, codes[:5000]))
    numbers = [n for n in map(individual_number_of, range(200_000)) if n]
    assert len(set(numbers)) == len(numbers)
    assert 0.985 < len(numbers) / 200_000 < 0.995  # about 1 % are newborns not yet numbered
    assert all(map(is_valid_individual_number, numbers[:5000]))


def test_every_record_validates(records: list[IdentityRecord]) -> None:
    for record in records:
        validate_record(record, today=TODAY)
        assert record.name_seion_kana == seion(record.name_kana)


def test_records_validate_on_another_day() -> None:
    for record in generate(2000, seed=3, today="20100101"):
        validate_record(record, today="20100101")
        assert record.birth_date >= "19200101"


def test_records_are_live_meguro_entries_with_consistent_dates(records: list[IdentityRecord]) -> None:
    for r in records:
        assert r.municipality_code == MUNICIPALITY_CODE
        assert r.address.startswith("東京都目黒区")
        assert r.postal_code[:3] in {"152", "153"}
        assert r.record_status == "0"
        assert r.change_reason in {"TENNYU", "SHUSSEI", "TENKYO", "SHOKKEN_KISAI"}
        assert r.birth_date <= r.became_resident_on <= r.address_set_on == r.change_date
        assert r.change_date <= r.notified_on <= TODAY
        assert r.timestamp[:8] <= TODAY
        if r.change_reason in {"SHUSSEI", "SHOKKEN_KISAI"}:
            assert r.previous_address == r.previous_municipality_code == ""
        if r.change_reason == "TENNYU":
            assert r.previous_address
        if r.change_reason == "SHUSSEI":
            assert r.became_resident_on == r.birth_date
    reasons = {r.change_reason for r in records}
    assert reasons == {"TENNYU", "SHUSSEI", "TENKYO", "SHOKKEN_KISAI"}
    assert 0.4 < _share(records, lambda r: bool(r.previous_municipality_code)) < 0.8
    assert min(r.birth_date for r in records) < "19300101"
    assert max(r.birth_date for r in records) > "20260101"


def test_shares_of_foreigners_former_surnames_and_gaiji(records: list[IdentityRecord]) -> None:
    foreign = _share(records, lambda r: r.name_kanji[0].isascii())
    assert 0.02 < foreign < 0.04
    assert _share(records, lambda r: "（" in r.name_kanji) > 0.005  # 通称
    assert 0.012 < _share(records, lambda r: bool(r.former_surname_kanji)) < 0.028
    assert all(bool(r.former_surname_kanji) == bool(r.former_surname_kana) for r in records)
    assert 0.0025 < _share(records, lambda r: r.name_gaiji_count == 1) < 0.008
    assert 0.0007 < _share(records, lambda r: r.address_gaiji_count == 1) < 0.0035
    for r in records:
        private_use = [ch for ch in r.name_kanji + r.address if "\ue000" <= ch <= "\uf8ff"]
        assert len(private_use) == r.name_gaiji_count + r.address_gaiji_count
        assert r.gaiji_flag == ("1" if private_use else "0")


def test_names_carry_voiced_small_and_rare_kana(records: list[IdentityRecord]) -> None:
    kana = "".join(r.name_kana for r in records)
    assert set("ガギグゲゴザジズゼゾダヅデドバビブベボパピプペポ") & set(kana)
    assert set("ャュョッァィゥェ") <= set(kana)
    assert "ヴ" in kana
    assert all("\u3000" in r.name_kanji or " " in r.name_kanji for r in records)
    assert {"ジュンイチ", "キョウコ", "リョウ"} <= {r.name_kana.split("\u3000")[1] for r in records}
