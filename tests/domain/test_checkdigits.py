"""Check digits against published vectors, and the properties every check digit must have."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_app.domain.checkdigits import (
    complete_individual_number,
    complete_resident_code,
    is_valid_individual_number,
    is_valid_municipality_code,
    is_valid_resident_code,
    municipality_check_digit,
)


@pytest.mark.parametrize("number", ["621498320257", "983205673214", "123456789018", "023456789013"])
def test_published_individual_numbers_are_valid(number: str) -> None:
    assert is_valid_individual_number(number)


@pytest.mark.parametrize(
    "number", ["621498320258", "62149832025", "6214983202570", "62149832025a", "６２１４９８３２０２５７"]
)
def test_wrong_individual_numbers_are_refused(number: str) -> None:
    assert not is_valid_individual_number(number)


@pytest.mark.parametrize("code", ["131105", "130001", "010006", "131016", "141003", "271403"])
def test_published_municipality_codes_are_valid(code: str) -> None:
    assert is_valid_municipality_code(code)


@pytest.mark.parametrize("code", ["131104", "13110", "1311050", "13110x"])
def test_wrong_municipality_codes_are_refused(code: str) -> None:
    assert not is_valid_municipality_code(code)


def test_resident_code_under_the_assumed_rule() -> None:
    assert complete_resident_code("1234567890") == "12345678903"
    assert is_valid_resident_code("12345678903")
    assert not is_valid_resident_code("12345678904")


def _single_digit_changes(code: str) -> list[str]:
    return [code[:i] + d + code[i + 1 :] for i in range(len(code)) for d in "0123456789" if d != code[i]]


def _remainder(code: str, weights: tuple[int, ...]) -> int:
    """Σ digit·weight mod 11 over the digits before the check digit, computed independently."""
    return sum(int(d) * w for d, w in zip(code[:-1], weights, strict=True)) % 11


# Mod 11 gives two remainders one check digit (0 and 1 give 0 for the 個人番号 and the resident
# code; 0 and 10 give 1 for municipality codes), so a change moving the remainder between those
# two goes unnoticed.  Every other single-digit change must be refused.
_MYNUMBER = ((6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2), {0, 1})
_RESIDENT = ((5, 4, 3, 2, 7, 6, 5, 4, 3, 2), {0, 1})
_MUNICIPALITY = ((6, 5, 4, 3, 2), {0, 10})


def _assert_changes_refused(
    code: str, is_valid: Callable[[str], bool], weights: tuple[int, ...], twins: set[int]
) -> None:
    before = _remainder(code, weights)
    for changed in _single_digit_changes(code):
        blind_spot = changed[-1] == code[-1] and {before, _remainder(changed, weights)} == twins
        assert is_valid(changed) == blind_spot


@given(st.text("0123456789", min_size=11, max_size=11))
def test_completed_individual_number_validates_and_digit_changes_are_refused(base: str) -> None:
    number = complete_individual_number(base)
    assert is_valid_individual_number(number)
    _assert_changes_refused(number, is_valid_individual_number, *_MYNUMBER)


@given(st.text("0123456789", min_size=5, max_size=5))
def test_completed_municipality_code_validates_and_digit_changes_are_refused(base: str) -> None:
    code = base + municipality_check_digit(base)
    assert is_valid_municipality_code(code)
    _assert_changes_refused(code, is_valid_municipality_code, *_MUNICIPALITY)


@given(st.text("0123456789", min_size=10, max_size=10))
def test_completed_resident_code_validates_and_digit_changes_are_refused(base: str) -> None:
    code = complete_resident_code(base)
    assert is_valid_resident_code(code)
    _assert_changes_refused(code, is_valid_resident_code, *_RESIDENT)


def test_the_mod11_blind_spot_exists() -> None:
    # 000000000000 has remainder 0; a 2 in front (weight 6) gives remainder 1: same check digit.
    assert is_valid_individual_number("000000000000")
    assert is_valid_individual_number("200000000000")
