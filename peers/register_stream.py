"""The ward register's change stream over the synthetic population: pure, deterministic, cheap.

The register simulator, the tests and the benchmarks all need "what 既存住基 sends the CS next".
``RegisterStream(population=N, seed=s, today=d)`` starts from ``peers.population.generate(N)``
(the file as first loaded) and yields, one *occurrence* at a time, what a ward office does in a
working day, per 1,000 occurrences (a Meguro-like ward: moves dominate, moves in ≈ moves out +
deaths so the population stays level; the rare kinds are boosted so a short stream meets them):

==================  ====  =========================================================
occurrence           ‰    events
==================  ====  =========================================================
転入 TENNYU           205  create; + DestinationDue (交付申請書) when the newcomer has no card
特例転入 TOKUREI_TENNYU 70  create with ``special_move_in=True`` (the newcomer holds a card)
転出 TENSHUTSU        270  remove
出生 SHUSSEI           20  create (at a parent's address); + DestinationDue (通知書) when numbered
死亡 SHIBOU            25  remove (mostly residents over 65)
転居 TENKYO           130  modify; + DestinationDue (交付申請書) when the resident has no card
氏名の変更 SHIMEI_HENKO 20  modify (a Japanese adult takes a new surname); + DestinationDue as 転居
旧氏 KYUUJI_*           8  modify: KISAI for one without a 旧氏, else SAKUJO 70 % / HENKO 30 %
個人番号の変更          3  modify (new number, the card lapses); + DestinationDue (通知書)
住民票コードの変更       4  create of the new code, then remove of the old one (two events)
card issue            140  CardChange for a live resident with a number and no card
card loss              40  CardChange; the card is suspended
card suspension_lift   20  CardChange for a suspended card (redrawn while none is)
card return            20  CardChange; the card ends
card revoke            25  CardChange; the card ends
==================  ====  =========================================================

Measured over 20,000 events the event shares come out near: Change 67 %, CardChange 22 %,
DestinationDue 11 % (1,000 occurrences make ≈ 1,140 events).  About 78 % of the initial
residents hold a card (a hash of ``(seed, index)``), 60 % of ordinary movers-in do.

Consistency: modify and remove only touch residents live at that moment; every create uses a
resident code never used before (a new *slot* index beyond the population, through
``resident_code_of``); new individual numbers come from indices far beyond any slot.  A
resident-code change keeps the person: the create carries ``former_resident_code`` = the old
code and reason JUMINHYO_CODE_HENKO; the old code's remove must carry a removal-class reason for
``validate_record`` (record status "1" iff a removal reason), so it says SHOKKEN_SHOJO with
異動事由詳細 "住民票コードの記載の変更".  A receiver that insists on an entry-class reason for
every create can pass ``code_change_reasons=("SHOKKEN_KISAI", "SHOKKEN_SHOJO")`` (both then carry
that 異動事由詳細).  Dates never pass ``today``: 届出の年月日 is ``today``,
異動年月日 up to 14 days earlier (never before the record's previous change), a 転出 is dated
``today`` (its planned day may lie ahead, which the record cannot carry).  Item 29
(``update_sequence``) numbers the Changes consecutively after the initial load's 1…N, so a
sender may use it as the register's gapless sequence (or overwrite it); items 36 (timestamp,
clock 08:30 + one second per Change, wrapping within ``today``), 27 and 28 are filled in.
Versions are not tracked: the CS numbers them.

Memory: live slots in two ``array('q')`` (slot list and slot → position), and a dict of only the
residents changed so far; an untouched resident is rebuilt from the population generator when
needed.  Everything random comes from one ``random.Random`` seeded from ``seed``, so the same
arguments give the same stream, and ``events`` continues where the last call stopped.
"""

from __future__ import annotations

import bisect
import datetime
import hashlib
import random
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from firmware_app.domain.destination import (
    PRINT_FORM_ONLY,
    PRINT_NOTICE_AND_FORM,
    DestinationRecord,
    destination_record_of,
)
from firmware_app.domain.kana import seion
from firmware_app.domain.reasons import ReasonClass, reason_class
from firmware_app.domain.record import FLAG_OFF, FLAG_ON, STATUS_LIVE, STATUS_REMOVED, IdentityRecord
from firmware_app.domain.rules import count_gaiji
from peers.population import (
    OPERATOR_IDS,
    TERMINAL_IDS,
    domestic_origin,
    generate,
    individual_number_of,
    meguro_address,
    newborn_given_name,
    resident_code_of,
    surname,
)


@dataclass(frozen=True, slots=True)
class Change:
    """One identity change the register sends the CS."""

    op: Literal["create", "modify", "remove"]
    record: IdentityRecord  # the resident's full new record (remove: status REMOVED, a removal reason)
    special_move_in: bool = False  # 特例転入: a move-out certificate for this code comes first


@dataclass(frozen=True, slots=True)
class CardChange:
    """A card event the register forwards to the card system."""

    kind: str  # one of CARD_KINDS
    resident_code: str = field(repr=False)
    occurred_on: str  # YYYYMMDD


@dataclass(frozen=True, slots=True)
class DestinationDue:
    """A destination record (送付先情報) is due for this resident."""

    record: DestinationRecord


Event = Change | CardChange | DestinationDue

CARD_KINDS = ("issue", "revoke", "loss", "return", "suspension_lift")

#: Occurrences per 1,000, in the module docstring's order (names are reasons or card kinds).
MIX: dict[str, int] = {
    "TENNYU": 205,
    "TOKUREI_TENNYU": 70,
    "TENSHUTSU": 270,
    "SHUSSEI": 20,
    "SHIBOU": 25,
    "TENKYO": 130,
    "SHIMEI_HENKO": 20,
    "KYUUJI": 8,
    "KOJIN_BANGO_HENKO": 3,
    "JUMINHYO_CODE_HENKO": 4,
    "card:issue": 140,
    "card:loss": 40,
    "card:suspension_lift": 20,
    "card:return": 20,
    "card:revoke": 25,
}
assert sum(MIX.values()) == 1000

_NO_CARD, _CARD, _SUSPENDED = 0, 1, 2
_CARD_PER_MILLE = 780  # initial residents holding a card
_MOVER_CARD_PERCENT = 60  # ordinary movers-in holding a card
_FRESH_NUMBERS = 5 * 10**10  # individual-number indices for number changes start here
_TRIES = 32  # picks of a fitting resident before the occurrence is redrawn
_SPACE = "\u3000"
_CLOCK_START = 8 * 3600 + 30 * 60
_CODE_CHANGE_DETAIL = "住民票コードの記載の変更"

_replace = msgspec.structs.replace
_seion = seion


def _years_before(today: str, years: int) -> str:
    """``today`` shifted back by ``years`` as a comparable YYYYMMDD string (29 Feb need not exist)."""
    return f"{int(today[:4]) - years:04d}{today[4:]}"


def _clock(seconds: int) -> str:
    seconds %= 86_400
    return f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}"


class RegisterStream:
    """The register's changes over ``peers.population`` (see the module docstring)."""

    def __init__(
        self,
        *,
        population: int,
        seed: int = 1,
        today: str = "20261126",
        code_change_reasons: tuple[str, str] = ("JUMINHYO_CODE_HENKO", "SHOKKEN_SHOJO"),
    ) -> None:
        """``code_change_reasons``: the change reasons of a code change's create and remove."""
        if population < 0:
            raise ValueError("population must not be negative")
        if reason_class(code_change_reasons[1]) is not ReasonClass.REMOVAL:
            raise ValueError("a code change's remove needs a removal-class reason")
        self._code_change_reasons = code_change_reasons
        end = datetime.datetime.strptime(today, "%Y%m%d").date()
        self._population = population
        self._seed = seed
        self._today = today
        self._days = tuple((end - datetime.timedelta(days=n)).strftime("%Y%m%d") for n in range(31))
        self._adult_born_by = _years_before(today, 18)
        self._parent_born_after = _years_before(today, 50)
        self._elderly_born_by = _years_before(today, 65)
        self._rng = random.Random(f"register-stream/{seed}")
        self._kinds = tuple(MIX)
        self._cumulative = tuple(sum(tuple(MIX.values())[: i + 1]) for i in range(len(MIX)))
        self._handlers: dict[str, Callable[[], list[Event] | None]] = {
            "TENNYU": lambda: self._move_in(special=False),
            "TOKUREI_TENNYU": lambda: self._move_in(special=True),
            "TENSHUTSU": lambda: self._remove_someone("TENSHUTSU"),
            "SHUSSEI": self._birth,
            "SHIBOU": lambda: self._remove_someone("SHIBOU"),
            "TENKYO": self._move_within,
            "SHIMEI_HENKO": self._name_change,
            "KYUUJI": self._former_surname,
            "KOJIN_BANGO_HENKO": self._number_change,
            "JUMINHYO_CODE_HENKO": self._code_change,
            "card:issue": self._card_issue,
            "card:loss": lambda: self._card_step("loss", (_CARD,), _SUSPENDED),
            "card:suspension_lift": self._card_lift,
            "card:return": lambda: self._card_step("return", (_CARD, _SUSPENDED), _NO_CARD),
            "card:revoke": lambda: self._card_step("revoke", (_CARD, _SUSPENDED), _NO_CARD),
        }
        # Live slots: the list and each slot's position in it (-1 once removed).
        self._live = array("q", range(population))
        self._where = array("q", range(population))
        self._changed: dict[int, IdentityRecord] = {}
        self._cards: dict[int, int] = {}  # card states that differ from the initial one
        self._suspended: list[int] = []
        self._suspended_at: dict[int, int] = {}
        self._sequence = population  # item 29 of the last record sent
        self._fresh_numbers = 0
        self._destinations = 0
        self._pending: deque[Event] = deque()

    # -- public ---------------------------------------------------------------------------

    def initial_records(self) -> Iterator[IdentityRecord]:
        """The population as first loaded, whatever the stream has done since."""
        return generate(self._population, seed=self._seed, today=self._today)

    def events(self, count: int) -> Iterator[Event]:
        """The next ``count`` events; a later call continues after the last event yielded."""
        if count < 0:
            raise ValueError("count must not be negative")
        for _ in range(count):
            if not self._pending:
                self._pending.extend(self._occurrence())
            yield self._pending.popleft()

    @property
    def live_count(self) -> int:
        """Residents live after the events yielded so far."""
        return len(self._live)

    # -- state ----------------------------------------------------------------------------

    def _occurrence(self) -> list[Event]:
        rng = self._rng
        while True:
            kind = self._kinds[bisect.bisect_right(self._cumulative, rng.randrange(1000))]
            if not self._live and not kind.endswith("TENNYU") and kind != "SHUSSEI":
                continue
            produced = self._handlers[kind]()
            if produced:
                return produced

    def _current(self, slot: int) -> IdentityRecord:
        record = self._changed.get(slot)
        if record is None:  # untouched since the initial load
            record = next(generate(1, seed=self._seed, start=slot, today=self._today))
        return record

    def _pick(self) -> int:
        return self._live[self._rng.randrange(len(self._live))]

    def _new_slot(self) -> int:
        slot = len(self._where)
        self._where.append(len(self._live))
        self._live.append(slot)
        return slot

    def _drop(self, slot: int) -> None:
        position = self._where[slot]
        last = self._live.pop()
        if last != slot:
            self._live[position] = last
            self._where[last] = position
        self._where[slot] = -1
        self._changed.pop(slot, None)
        self._set_card(slot, _NO_CARD)
        self._cards.pop(slot, None)

    def _card(self, slot: int) -> int:
        state = self._cards.get(slot)
        if state is not None:
            return state
        if slot >= self._population:
            return _NO_CARD
        digest = hashlib.blake2b(b"card:%d:%d" % (self._seed, slot), digest_size=8).digest()
        holds = int.from_bytes(digest, "little") % 1000 < _CARD_PER_MILLE
        return _CARD if holds and individual_number_of(slot, self._seed) else _NO_CARD

    def _set_card(self, slot: int, state: int) -> None:
        if self._suspended_at.get(slot) is not None and state != _SUSPENDED:
            position = self._suspended_at.pop(slot)
            last = self._suspended.pop()
            if last != slot:
                self._suspended[position] = last
                self._suspended_at[last] = position
        elif state == _SUSPENDED and slot not in self._suspended_at:
            self._suspended_at[slot] = len(self._suspended)
            self._suspended.append(slot)
        self._cards[slot] = state

    def _day_back(self, most: int) -> str:
        return self._days[self._rng.randrange(most + 1)]

    def _fresh_number(self) -> str:
        """An individual number no slot's number can equal (indices beyond any slot)."""
        while True:
            number = individual_number_of(_FRESH_NUMBERS + self._fresh_numbers, self._seed)
            self._fresh_numbers += 1
            if number:
                return number

    def _finish(self, record: IdentityRecord, **changes: object) -> IdentityRecord:
        """``record`` with ``changes`` and the register's processing items filled in."""
        self._sequence += 1
        rng = self._rng
        record = _replace(
            record,
            **changes,
            notified_on=self._today,
            request_control_number="",
            operator_id=OPERATOR_IDS[rng.randrange(len(OPERATOR_IDS))],
            terminal_id=TERMINAL_IDS[rng.randrange(len(TERMINAL_IDS))],
            update_sequence=self._sequence,
            error_update_sequence=0,
            timestamp=self._today + _clock(_CLOCK_START + self._sequence - self._population),
        )
        counts = (
            record.name_gaiji_count,
            record.address_gaiji_count,
            record.previous_address_gaiji_count,
            record.former_surname_gaiji_count,
        )
        flag = FLAG_ON if max(counts) > 0 else FLAG_OFF
        return record if record.gaiji_flag == flag else _replace(record, gaiji_flag=flag)

    def _destination(self, record: IdentityRecord, print_category: str) -> DestinationDue:
        self._destinations += 1
        return DestinationDue(
            destination_record_of(
                record,
                management_number=f"{self._today}{self._destinations:08d}",
                processed_on=self._today,
                print_category=print_category,
            )
        )

    def _form_if_no_card(self, slot: int, record: IdentityRecord) -> list[Event]:
        """A 交付申請書 is re-sent after a name or address change of a numbered non-holder."""
        if record.individual_number and self._card(slot) == _NO_CARD:
            return [self._destination(record, PRINT_FORM_ONLY)]
        return []

    def _pick_where(self, fits: Callable[[IdentityRecord], bool]) -> tuple[int, IdentityRecord] | None:
        for _ in range(_TRIES):
            slot = self._pick()
            record = self._current(slot)
            if fits(record):
                return slot, record
        return None

    def _is_japanese_adult(self, record: IdentityRecord) -> bool:
        name = record.name_kanji
        return (
            record.birth_date <= self._adult_born_by
            and name.count(_SPACE) == 1
            and "（" not in name
            and not name[0].isascii()
            and record.name_kana.count(_SPACE) == 1
        )

    # -- occurrences ----------------------------------------------------------------------

    def _move_in(self, *, special: bool) -> list[Event]:
        slot = self._new_slot()
        base = next(generate(1, seed=self._seed, start=slot, today=self._today))
        day = max(self._day_back(14), base.birth_date)
        previous_code, previous_address = base.previous_municipality_code, base.previous_address
        if special or not previous_address:  # a 特例転入 comes from a municipality in Japan
            previous_code, previous_address = domestic_origin(self._rng.getrandbits(64))
        number = base.individual_number or (self._fresh_number() if special else "")
        record = self._finish(
            base,
            individual_number=number,
            became_resident_on=day,
            address_set_on=day,
            resident_code_used_from=min(base.resident_code_used_from or day, day),
            previous_municipality_code=previous_code,
            previous_address=previous_address,
            previous_address_gaiji_count=count_gaiji(previous_address),
            change_reason="TOKUREI_TENNYU" if special else "TENNYU",
            change_date=day,
            change_reason_detail="",
            former_resident_code="",
            record_status=STATUS_LIVE,
        )
        self._changed[slot] = record
        holds = special or (bool(number) and self._rng.randrange(100) < _MOVER_CARD_PERCENT)
        self._set_card(slot, _CARD if holds else _NO_CARD)
        return [Change("create", record, special_move_in=special), *self._form_if_no_card(slot, record)]

    def _remove_someone(self, reason: str) -> list[Event]:
        if reason == "SHIBOU":  # deaths fall mostly on the old
            picked = self._pick_where(lambda r: r.birth_date <= self._elderly_born_by)
            if picked is None:
                slot = self._pick()
                picked = slot, self._current(slot)
            slot, record = picked
            day = max(self._day_back(7), record.change_date)
        else:
            slot = self._pick()
            record = self._current(slot)
            day = self._today
        removed = self._finish(
            record, record_status=STATUS_REMOVED, change_reason=reason, change_date=day, change_reason_detail=""
        )
        self._drop(slot)
        return [Change("remove", removed)]

    def _birth(self) -> list[Event]:
        parent = None
        if self._live:
            parent = self._pick_where(
                lambda r: self._parent_born_after <= r.birth_date <= self._adult_born_by and self._is_japanese_adult(r)
            )
        slot = self._new_slot()
        base = next(generate(1, seed=self._seed, start=slot, today=self._today))
        day = self._day_back(14)
        changes: dict[str, object] = {}
        if parent is not None:
            home = parent[1]
            family, family_kana = home.name_kanji.split(_SPACE)[0], home.name_kana.split(_SPACE)[0]
            given, given_kana = newborn_given_name(self._rng.getrandbits(32), base.sex == "2")
            name, kana = f"{family}{_SPACE}{given}", f"{family_kana}{_SPACE}{given_kana}"
            changes = {
                "name_kanji": name,
                "name_gaiji_count": count_gaiji(name),
                "name_kana": kana,
                "name_seion_kana": _seion(kana),
                "oaza_code": home.oaza_code,
                "postal_code": home.postal_code,
                "address": home.address,
                "address_gaiji_count": home.address_gaiji_count,
            }
        record = self._finish(
            base,
            **changes,
            birth_date=day,
            became_resident_on=day,
            address_set_on=day,
            previous_municipality_code="",
            previous_address="",
            previous_address_gaiji_count=0,
            relationship="子",
            change_reason="SHUSSEI",
            change_date=day,
            change_reason_detail="",
            former_resident_code="",
            resident_code_used_from=day,
            record_status=STATUS_LIVE,
            former_surname_kanji="",
            former_surname_gaiji_count=0,
            former_surname_kana="",
            former_surname_gaiji_seq=0,
        )
        self._changed[slot] = record
        self._set_card(slot, _NO_CARD)
        if record.individual_number:
            return [Change("create", record), self._destination(record, PRINT_NOTICE_AND_FORM)]
        return [Change("create", record)]

    def _move_within(self) -> list[Event]:
        slot = self._pick()
        record = self._current(slot)
        bits = self._rng.getrandbits(64)
        oaza_code, postal_code, address, gaiji = meguro_address(bits)
        if address == record.address:
            oaza_code, postal_code, address, gaiji = meguro_address(bits + 1)
        day = max(self._day_back(14), record.change_date)
        record = self._finish(
            record,
            oaza_code=oaza_code,
            postal_code=postal_code,
            address=address,
            address_gaiji_count=gaiji,
            address_set_on=day,
            change_reason="TENKYO",
            change_date=day,
            change_reason_detail="",
        )
        self._changed[slot] = record
        return [Change("modify", record), *self._form_if_no_card(slot, record)]

    def _other_surname(self, *avoid_kana: str) -> tuple[str, str]:
        while True:
            name, kana = surname(self._rng.getrandbits(32))
            if kana not in avoid_kana:
                return name, kana

    def _name_change(self) -> list[Event] | None:
        picked = self._pick_where(self._is_japanese_adult)
        if picked is None:
            return None
        slot, record = picked
        given, given_kana = record.name_kanji.split(_SPACE)[1], record.name_kana.split(_SPACE)[1]
        family, family_kana = self._other_surname(record.name_kana.split(_SPACE)[0])
        name, kana = f"{family}{_SPACE}{given}", f"{family_kana}{_SPACE}{given_kana}"
        record = self._finish(
            record,
            name_kanji=name,
            name_gaiji_count=count_gaiji(name),
            name_kana=kana,
            name_seion_kana=_seion(kana),
            change_reason="SHIMEI_HENKO",
            change_date=max(self._day_back(14), record.change_date),
            change_reason_detail="",
        )
        self._changed[slot] = record
        return [Change("modify", record), *self._form_if_no_card(slot, record)]

    def _former_surname(self) -> list[Event] | None:
        picked = self._pick_where(self._is_japanese_adult)
        if picked is None:
            return None
        slot, record = picked
        current_kana = record.name_kana.split(_SPACE)[0]
        if not record.former_surname_kanji:
            reason, (former, former_kana) = "KYUUJI_KISAI", self._other_surname(current_kana)
        elif self._rng.randrange(100) < 70:
            reason, former, former_kana = "KYUUJI_SAKUJO", "", ""
        else:
            reason = "KYUUJI_HENKO"
            former, former_kana = self._other_surname(current_kana, record.former_surname_kana)
        record = self._finish(
            record,
            former_surname_kanji=former,
            former_surname_gaiji_count=count_gaiji(former),
            former_surname_kana=former_kana,
            change_reason=reason,
            change_date=max(self._day_back(14), record.change_date),
            change_reason_detail="",
        )
        self._changed[slot] = record
        return [Change("modify", record)]

    def _number_change(self) -> list[Event] | None:
        picked = self._pick_where(lambda r: bool(r.individual_number))
        if picked is None:
            return None
        slot, record = picked
        record = self._finish(
            record,
            individual_number=self._fresh_number(),
            change_reason="KOJIN_BANGO_HENKO",
            change_date=self._today,
            change_reason_detail="",
        )
        self._changed[slot] = record
        self._set_card(slot, _NO_CARD)  # the card shows the old number: it lapses
        return [Change("modify", record), self._destination(record, PRINT_NOTICE_AND_FORM)]

    def _code_change(self) -> list[Event]:
        old_slot = self._pick()
        record = self._current(old_slot)
        card = self._card(old_slot)
        slot = self._new_slot()
        created = self._finish(
            record,
            resident_code=resident_code_of(slot, self._seed),
            former_resident_code=record.resident_code,
            resident_code_used_from=self._today,
            change_reason=self._code_change_reasons[0],
            change_date=self._today,
            change_reason_detail="" if self._code_change_reasons[0] == "JUMINHYO_CODE_HENKO" else _CODE_CHANGE_DETAIL,
        )
        removed = self._finish(
            record,
            record_status=STATUS_REMOVED,
            change_reason=self._code_change_reasons[1],
            change_date=self._today,
            change_reason_detail=_CODE_CHANGE_DETAIL,
        )
        self._drop(old_slot)
        self._changed[slot] = created
        self._set_card(slot, card)
        return [Change("create", created), Change("remove", removed)]

    # -- card events ----------------------------------------------------------------------

    def _card_issue(self) -> list[Event] | None:
        for _ in range(_TRIES):
            slot = self._pick()
            if self._card(slot) == _NO_CARD:
                record = self._current(slot)
                if record.individual_number:
                    self._set_card(slot, _CARD)
                    return [CardChange("issue", record.resident_code, self._today)]
        return None

    def _card_step(self, kind: str, from_states: tuple[int, ...], to_state: int) -> list[Event] | None:
        for _ in range(_TRIES):
            slot = self._pick()
            if self._card(slot) in from_states:
                self._set_card(slot, to_state)
                day = self._day_back(3) if kind == "loss" else self._today
                return [CardChange(kind, self._current(slot).resident_code, day)]
        return None

    def _card_lift(self) -> list[Event] | None:
        if not self._suspended:
            return None
        slot = self._suspended[self._rng.randrange(len(self._suspended))]
        self._set_card(slot, _CARD)
        return [CardChange("suspension_lift", self._current(slot).resident_code, self._today)]
