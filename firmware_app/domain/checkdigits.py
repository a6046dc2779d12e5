"""Check digits of the codes the CS handles (see shared/reference/domain-facts.md §1).

The resident-code rule is UNCONFIRMED in primary text: it lives only in
``RESIDENT_CODE_RULE`` so that it can be replaced without touching callers.
"""

from __future__ import annotations

from collections.abc import Callable

_MYNUMBER_WEIGHTS = (6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
_MUNICIPALITY_WEIGHTS = (6, 5, 4, 3, 2)


def _unrolled(weights: tuple[int, ...]) -> Callable[[bytes], int]:
    """Σ digit·weight over ASCII bytes, as one generated expression: this runs for every record of
    a bulk load, and the unrolled form is about twice as fast as a loop."""
    terms = "+".join(f"b[{i}]*{w}" for i, w in enumerate(weights))
    return eval(f"lambda b: {terms} - {48 * sum(weights)}")  # noqa: S307 - built from integer constants only


_SUMS = {weights: _unrolled(weights) for weights in (_MYNUMBER_WEIGHTS, _MYNUMBER_WEIGHTS[1:], _MUNICIPALITY_WEIGHTS)}


def _weighted_sum(digits: str, weights: tuple[int, ...]) -> int:
    return _SUMS[weights](digits.encode("ascii"))


def _is_digits(text: str, length: int) -> bool:
    return len(text) == length and text.isascii() and text.isdigit()


def individual_number_check_digit(base11: str) -> str:
    """Check digit of a 個人番号 from its 11 leading digits (総務省令第85号 第5条). [CONFIRMED]"""
    if not _is_digits(base11, 11):
        raise ValueError("individual number base must be 11 ASCII digits")
    remainder = _weighted_sum(base11, _MYNUMBER_WEIGHTS) % 11
    return "0" if remainder <= 1 else str(11 - remainder)


def is_valid_individual_number(number: str) -> bool:
    """True when ``number`` is 12 ASCII digits with a correct check digit."""
    return _is_digits(number, 12) and individual_number_check_digit(number[:11]) == number[11]


def _mod11_resident_code(base10: str) -> str:
    # ASSUMPTION (domain-facts §1b): the 個人番号 rule applied to 10 digits,
    # left-to-right weights 5,4,3,2,7,6,5,4,3,2; remainder ≤ 1 gives 0.
    remainder = _weighted_sum(base10, _MYNUMBER_WEIGHTS[1:]) % 11
    return "0" if remainder <= 1 else str(11 - remainder)


#: The one place the 住民票コード check-digit rule is chosen.  告示436 could not be read;
#: replace this callable when the official formula is confirmed.
RESIDENT_CODE_RULE: Callable[[str], str] = _mod11_resident_code


def resident_code_check_digit(base10: str) -> str:
    """Check digit of a 住民票コード from its 10 leading digits. [UNCONFIRMED rule]"""
    if not _is_digits(base10, 10):
        raise ValueError("resident code base must be 10 ASCII digits")
    return RESIDENT_CODE_RULE(base10)


def is_valid_resident_code(code: str) -> bool:
    """True when ``code`` is 11 ASCII digits with a correct check digit."""
    return _is_digits(code, 11) and resident_code_check_digit(code[:10]) == code[10]


def municipality_check_digit(base5: str) -> str:
    """Check digit of a 全国地方公共団体コード (総務省): (11 − Σ mod 11) mod 10. [CONFIRMED]"""
    if not _is_digits(base5, 5):
        raise ValueError("municipality code base must be 5 ASCII digits")
    return str((11 - _weighted_sum(base5, _MUNICIPALITY_WEIGHTS) % 11) % 10)


def is_valid_municipality_code(code: str) -> bool:
    """True when ``code`` is 6 ASCII digits with a correct check digit (131105 is Meguro)."""
    return _is_digits(code, 6) and municipality_check_digit(code[:5]) == code[5]


def complete_individual_number(base11: str) -> str:
    """``base11`` followed by its check digit."""
    return base11 + individual_number_check_digit(base11)


def complete_resident_code(base10: str) -> str:
    """``base10`` followed by its check digit."""
    return base10 + resident_code_check_digit(base10)
