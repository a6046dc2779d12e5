"""Shared fixtures of the domain tests: a valid record of a Meguro resident, with overrides."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from firmware_app.domain.record import IdentityRecord

TODAY = "20240601"

# Synthetic data only: the codes carry valid check digits but belong to no one.
_VALID = {
    "resident_code": "12345678903",
    "name_kanji": "目黒　太郎",
    "name_gaiji_count": 0,
    "name_kana": "メグロ　タロウ",
    "name_seion_kana": "メクロタロウ",
    "birth_date": "19800115",
    "sex": "1",
    "municipality_code": "131105",
    "oaza_code": "0012",
    "postal_code": "1538573",
    "address": "東京都目黒区上目黒二丁目19番15号",
    "address_gaiji_count": 0,
    "individual_number": "123456789018",
    "became_resident_on": "20100401",
    "address_set_on": "20100401",
    "notified_on": "20100405",
    "previous_municipality_code": "131016",
    "previous_address": "東京都千代田区九段南一丁目2番1号",
    "previous_address_gaiji_count": 0,
    "relationship": "世帯主",
    "change_reason": "TENNYU",
    "change_date": "20100401",
    "change_reason_detail": "",
    "former_resident_code": "",
    "resident_code_used_from": "20020805",
    "request_control_number": "REQ000123",
    "operator_id": "op-01",
    "terminal_id": "term_07",
    "update_sequence": 1,
    "error_update_sequence": 0,
    "update_prohibited": "0",
    "scheduled_flag": "0",
    "exclusive_flag": "0",
    "gaiji_flag": "0",
    "record_status": "0",
    "timestamp": "20100405093000",
    "former_surname_kanji": "",
    "former_surname_gaiji_count": 0,
    "former_surname_kana": "",
    "former_surname_gaiji_seq": 0,
}


def make_valid_record(**overrides: object) -> IdentityRecord:
    """A valid record of a Meguro resident with ``overrides`` applied (which may break it)."""
    return IdentityRecord(**(_VALID | overrides))


@pytest.fixture(scope="session")
def valid_record() -> Callable[..., IdentityRecord]:
    """The :func:`make_valid_record` factory."""
    return make_valid_record


@pytest.fixture(scope="session")
def today() -> str:
    """The date the tests pass as ``today``."""
    return TODAY
