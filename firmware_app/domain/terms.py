"""What search looks at: a record's normalised index terms and the validated 4情報 query.

Records and queries go through the same kana/name/address normalisation, so a full-width,
half-width or hiragana query meets the stored key.  Terms are personal data: callers store
them only in protected (keyed or encrypted) form.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from firmware_app.domain import kana
from firmware_app.domain.errors import InvalidQuery
from firmware_app.domain.kana import is_kana
from firmware_app.domain.record import IdentityRecord
from firmware_app.domain.rules import SEX_CODES, is_date, split_tsusho

__all__ = ["FourItemQuery", "IndexTerms", "index_terms", "is_kana"]

#: The longest query field accepted, in characters.
MAX_QUERY_CHARS = 200


class IndexTerms(msgspec.Struct, frozen=True):
    """The normalised search terms of one record; names are deduplicated, whole name first."""

    number: str | None
    kana_names: tuple[str, ...]
    kanji_names: tuple[str, ...]
    birth: str
    address: str


def _name_terms(name: str, key: Callable[[str], str]) -> tuple[str, ...]:
    """``key`` of the whole name and, for ``本名（通称）``, of each part, without duplicates."""
    parts = split_tsusho(name)
    terms = (name,) if parts is None else (name, *parts)
    return tuple(dict.fromkeys(map(key, terms)))


def index_terms(record: IdentityRecord) -> IndexTerms:
    """The index terms of a validated record (docs/domain-rules.md, last section)."""
    return IndexTerms(
        number=record.individual_number or None,
        kana_names=_name_terms(record.name_kana, kana.seion),
        kanji_names=_name_terms(record.name_kanji, kana.name_key),
        birth=record.birth_date,
        address=kana.address_key(record.address),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class FourItemQuery:
    """A 4情報 search (name in kanji or kana, sex, birth date, address); a sex alone is too broad.

    Every field is optional, at most MAX_QUERY_CHARS long, and normalised only by the key methods,
    so the query is compared with index terms built by the same functions.
    """

    name: str | None = None
    sex: str | None = None
    birth_date: str | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        for field in ("name", "sex", "birth_date", "address"):
            value = getattr(self, field)
            if value is not None and type(value) is not str:
                raise TypeError(f"query {field} must be a str or None")
            if value is not None and len(value) > MAX_QUERY_CHARS:
                raise InvalidQuery(f"query {field} is longer than {MAX_QUERY_CHARS} characters")
        if self.name is None and self.birth_date is None and self.address is None:
            raise InvalidQuery("a query needs a name, a birth date or an address")
        if self.name is not None and not self.kanji_key():
            raise InvalidQuery("query name is empty")
        if self.address is not None and not self.address_key():
            raise InvalidQuery("query address is empty")
        if self.sex is not None and self.sex not in SEX_CODES:
            raise InvalidQuery("query sex is not a known sex code")
        if self.birth_date is not None and not is_date(self.birth(), partial=True):
            raise InvalidQuery("query birth date must be a real YYYYMMDD date (00 for an unknown part)")

    def kana_key(self) -> str | None:
        """The seion key of the name when it is written in kana only (any width or script), else None."""
        if self.name is None or not is_kana(self.name):
            return None
        return kana.seion(self.name)

    def kanji_key(self) -> str | None:
        """The name key of the name (kanji or any script), or None without a name."""
        return None if self.name is None else kana.name_key(self.name)

    def address_key(self) -> str | None:
        """The address key, or None without an address."""
        return None if self.address is None else kana.address_key(self.address)

    def birth(self) -> str | None:
        """The birth date with full-width digits folded (NFKC), or None."""
        return None if self.birth_date is None else unicodedata.normalize("NFKC", self.birth_date)
