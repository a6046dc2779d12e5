"""The register's change stream: valid records, live-only ops, fresh codes, paired code changes, the mix."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest

from firmware_app.domain.destination import validate_destination
from firmware_app.domain.reasons import ReasonClass, reason_class
from firmware_app.domain.record import STATUS_LIVE, STATUS_REMOVED
from firmware_app.domain.validate import validate_record
from peers.population import generate
from peers.register_stream import MIX, CardChange, Change, DestinationDue, Event, RegisterStream

TODAY = "20261126"
POPULATION = 5_000
EVENTS = 20_000


@pytest.fixture(scope="module")
def stream_events() -> list[Event]:
    """20,000 events over a 5,000-resident population."""
    return list(RegisterStream(population=POPULATION, seed=5, today=TODAY).events(EVENTS))


def _changes(events: list[Event]) -> list[Change]:
    return [e for e in events if isinstance(e, Change)]


def test_initial_records_are_the_population() -> None:
    stream = RegisterStream(population=300, seed=4, today=TODAY)
    list(stream.events(500))
    assert list(stream.initial_records()) == list(generate(300, seed=4, today=TODAY))


def test_every_record_is_valid_and_dated_by_today(stream_events) -> None:
    for event in stream_events:
        if isinstance(event, Change):
            record = validate_record(event.record, today=TODAY)
            assert record.notified_on == TODAY and record.change_date <= TODAY
            assert record.timestamp[:8] == TODAY
            removal = reason_class(record.change_reason) is ReasonClass.REMOVAL
            assert (event.op == "remove") == removal == (record.record_status == STATUS_REMOVED)
        elif isinstance(event, DestinationDue):
            validate_destination(event.record, today=TODAY)
        else:
            assert event.occurred_on <= TODAY


def test_update_sequence_continues_after_the_initial_load(stream_events) -> None:
    sequences = [c.record.update_sequence for c in _changes(stream_events)]
    assert sequences == list(range(POPULATION + 1, POPULATION + 1 + len(sequences)))


def test_ops_touch_live_residents_and_creates_never_reuse_codes_or_numbers(stream_events) -> None:
    initial = list(generate(POPULATION, seed=5, today=TODAY))
    live = {r.resident_code: r.individual_number for r in initial}
    used_codes = set(live)
    used_numbers = {n for n in live.values() if n}
    for event in stream_events:
        if isinstance(event, Change):
            record = event.record
            code, number = record.resident_code, record.individual_number
            if event.op == "create":
                assert code not in used_codes
                if record.change_reason == "JUMINHYO_CODE_HENKO":
                    assert live[record.former_resident_code] == number  # the same person, still live
                else:
                    assert not number or number not in used_numbers
                used_codes.add(code)
                used_numbers.add(number)
                live[code] = number
            elif event.op == "modify":
                assert code in live
                if record.change_reason == "KOJIN_BANGO_HENKO":
                    assert number not in used_numbers
                    used_numbers.add(number)
                else:
                    assert live[code] == number
                live[code] = number
            else:
                assert code in live
                del live[code]
        else:
            code = event.resident_code if isinstance(event, CardChange) else event.record.resident_code
            assert code in live


def test_resident_code_changes_pair_create_then_remove(stream_events) -> None:
    pairs = 0
    for event, following in itertools.pairwise(stream_events):
        if isinstance(event, Change) and event.record.change_reason == "JUMINHYO_CODE_HENKO":
            pairs += 1
            new = event.record
            assert event.op == "create" and new.former_resident_code and new.record_status == STATUS_LIVE
            assert isinstance(following, Change) and following.op == "remove"
            old = following.record
            assert old.resident_code == new.former_resident_code
            assert (old.change_reason, old.change_reason_detail) == ("SHOKKEN_SHOJO", "住民票コードの記載の変更")
            same_person = ("name_kanji", "birth_date", "sex", "address", "individual_number")
            assert [getattr(old, f) for f in same_person] == [getattr(new, f) for f in same_person]
    assert pairs > 20


def test_special_move_ins_are_flagged_creates_from_japan(stream_events) -> None:
    flagged = [c for c in _changes(stream_events) if c.special_move_in]
    assert flagged
    assert all(c.record.change_reason == "TOKUREI_TENNYU" for c in flagged)
    assert all(c.op == "create" and c.record.previous_municipality_code for c in flagged)
    assert sum(c.record.change_reason == "TOKUREI_TENNYU" for c in _changes(stream_events)) == len(flagged)


def test_card_events_follow_each_card(stream_events) -> None:
    # States known from the stream itself: an initial resident's card state is only seen once it moves.
    known: dict[str, str] = {}
    for event in stream_events:
        if isinstance(event, Change):
            record = event.record
            if event.special_move_in:
                known[record.resident_code] = "card"
            elif record.change_reason == "KOJIN_BANGO_HENKO":
                known[record.resident_code] = "none"
            elif record.change_reason == "JUMINHYO_CODE_HENKO" and record.former_resident_code in known:
                known[record.resident_code] = known[record.former_resident_code]
        elif isinstance(event, CardChange):
            state = known.get(event.resident_code)
            if event.kind == "issue":
                assert state in (None, "none")
                known[event.resident_code] = "card"
            elif event.kind == "loss":
                assert state in (None, "card")
                known[event.resident_code] = "suspended"
            elif event.kind == "suspension_lift":
                assert state == "suspended"  # no card starts suspended
                known[event.resident_code] = "card"
            else:
                assert event.kind in ("return", "revoke") and state != "none"
                known[event.resident_code] = "none"


def test_destination_records_follow_the_change_that_caused_them(stream_events) -> None:
    dues = 0
    for event, following in itertools.pairwise(stream_events):
        if isinstance(following, DestinationDue):
            dues += 1
            assert isinstance(event, Change) and event.op in ("create", "modify")
            assert following.record.resident_code == event.record.resident_code
            assert following.record.individual_number == event.record.individual_number
            assert (following.record.name_kanji, following.record.address) == (event.record.name_kanji, event.record.address)
    numbers = {e.record.management_number for e in stream_events if isinstance(e, DestinationDue)}
    assert len(numbers) == dues > 0


def test_the_mix_is_within_the_stated_proportions(stream_events) -> None:
    changes = _changes(stream_events)
    kinds = Counter(
        "KYUUJI" if c.record.change_reason.startswith("KYUUJI") else c.record.change_reason
        for c in changes
        if c.record.change_reason != "SHOKKEN_SHOJO"  # the second half of a code change
    )
    kinds.update(f"card:{e.kind}" for e in stream_events if isinstance(e, CardChange))
    occurrences = sum(kinds.values())
    assert set(kinds) == set(MIX)
    for kind, per_mille in MIX.items():
        expected = occurrences * per_mille / 1000
        assert abs(kinds[kind] - expected) <= 4 * math.sqrt(expected) + 0.03 * expected, kind
    shares = Counter(type(e).__name__ for e in stream_events)
    assert 0.62 < shares["Change"] / EVENTS < 0.72
    assert 0.18 < shares["CardChange"] / EVENTS < 0.26
    assert 0.08 < shares["DestinationDue"] / EVENTS < 0.15


def test_same_seed_same_stream_and_other_seeds_differ() -> None:
    first = list(RegisterStream(population=1000, seed=9, today=TODAY).events(1500))
    assert list(RegisterStream(population=1000, seed=9, today=TODAY).events(1500)) == first
    assert list(RegisterStream(population=1000, seed=10, today=TODAY).events(1500)) != first


def test_events_resume_where_the_last_call_stopped() -> None:
    whole = list(RegisterStream(population=800, seed=2, today=TODAY).events(3000))
    stream = RegisterStream(population=800, seed=2, today=TODAY)
    parts = list(stream.events(1)) + list(stream.events(999))
    abandoned = stream.events(500)
    parts += list(itertools.islice(abandoned, 7))  # an iterator dropped early leaves no gap
    parts += list(stream.events(3000 - len(parts)))
    assert parts == whole


def test_keeps_only_touched_residents_in_memory() -> None:
    stream = RegisterStream(population=100_000, seed=3, today=TODAY)
    list(stream.events(2000))
    assert len(stream._changed) <= 2000
    assert 99_000 < stream.live_count < 101_000


def test_an_empty_register_starts_with_entries() -> None:
    events = list(RegisterStream(population=0, seed=1, today=TODAY).events(50))
    first = events[0]
    assert isinstance(first, Change) and first.op == "create"
    for event in events:
        if isinstance(event, Change):
            validate_record(event.record, today=TODAY)


def test_card_change_repr_hides_the_resident_code() -> None:
    assert "12345678903" not in repr(CardChange("issue", "12345678903", TODAY))
    with pytest.raises(ValueError):
        list(RegisterStream(population=1).events(-1))


def test_code_changes_can_use_entry_class_reasons() -> None:
    stream = RegisterStream(population=500, seed=6, today=TODAY, code_change_reasons=("SHOKKEN_KISAI", "SHOKKEN_SHOJO"))
    changes = _changes(list(stream.events(4000)))
    pairs = [c for c in changes if c.record.former_resident_code and c.record.change_reason == "SHOKKEN_KISAI"]
    assert pairs
    for change in changes:
        validate_record(change.record, today=TODAY)
        wanted = {"create": ReasonClass.ENTRY, "modify": ReasonClass.MODIFICATION, "remove": ReasonClass.REMOVAL}
        assert reason_class(change.record.change_reason) is wanted[change.op]
    assert all(c.record.change_reason_detail == "住民票コードの記載の変更" for c in pairs)
    with pytest.raises(ValueError):
        RegisterStream(population=1, code_change_reasons=("JUMINHYO_CODE_HENKO", "JUMINHYO_CODE_HENKO"))
