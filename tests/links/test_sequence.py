"""Tests of the inbound update-sequence state: new, pending, repeat, gap, group commit and rollback."""

from __future__ import annotations

import pytest

from firmware_app.links.errors import E_SEQUENCE_GAP, ProtocolError
from firmware_app.links.sequence import InboundSequence


def test_expected_is_new_and_commit_advances() -> None:
    seq = InboundSequence(7)
    assert seq.accept(7) == "new"
    assert (seq.expected_next, seq.committed_next) == (8, 7)
    seq.commit_through(7)
    assert (seq.expected_next, seq.committed_next) == (8, 8)


def test_pipelined_group_is_accepted_then_committed_together() -> None:
    seq = InboundSequence(5)
    assert [seq.accept(n) for n in (5, 6, 7)] == ["new", "new", "new"]
    assert seq.committed_next == 5
    seq.commit_through(7)
    assert (seq.expected_next, seq.committed_next) == (8, 8)


def test_replayed_sequence_is_a_repeat_once_committed() -> None:
    seq = InboundSequence(7)
    seq.accept(7)
    assert seq.accept(7) == "pending"
    seq.commit_through(7)
    assert seq.accept(7) == "repeat"
    assert seq.accept(0) == "repeat"
    assert seq.expected_next == 8


def test_gap_carries_expected_seq() -> None:
    seq = InboundSequence(10)
    seq.accept(10)
    with pytest.raises(ProtocolError) as info:
        seq.accept(12)
    assert info.value.code == E_SEQUENCE_GAP
    assert info.value.expected_seq == 11
    assert "12" not in str(info.value)
    assert seq.expected_next == 11


def test_rollback_returns_to_the_last_commit() -> None:
    seq = InboundSequence(3)
    seq.accept(3)
    seq.commit_through(3)
    seq.accept(4)
    seq.accept(5)
    seq.rollback()
    assert (seq.expected_next, seq.committed_next) == (4, 4)
    assert seq.accept(4) == "new"


def test_commit_of_other_than_accepted_refused() -> None:
    seq = InboundSequence(5)
    with pytest.raises(ValueError):
        seq.commit_through(5)  # not accepted yet
    seq.accept(5)
    for wrong in (4, 6):
        with pytest.raises(ValueError):
            seq.commit_through(wrong)
    assert seq.committed_next == 5


@pytest.mark.parametrize("bad", [-1, 2**63])
def test_out_of_range_refused(bad: int) -> None:
    with pytest.raises(ValueError):
        InboundSequence(bad)
    with pytest.raises(ValueError):
        InboundSequence(0).accept(bad)


def test_non_int_refused() -> None:
    with pytest.raises(TypeError):
        InboundSequence(0).accept(True)
