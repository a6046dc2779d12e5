"""Tests of the inbound update-sequence state: new, repeat, gap and commit."""

from __future__ import annotations

import pytest

from firmware_app.links.errors import E_SEQUENCE_GAP, ProtocolError
from firmware_app.links.sequence import InboundSequence


def test_expected_is_new_and_commit_advances() -> None:
    seq = InboundSequence(7)
    assert seq.classify(7) == "new"
    seq.commit(7)
    assert seq.expected_next == 8


def test_replayed_sequence_is_a_repeat() -> None:
    seq = InboundSequence(7)
    seq.commit(7)
    assert seq.classify(7) == "repeat"
    assert seq.classify(0) == "repeat"
    assert seq.expected_next == 8


def test_classify_alone_does_not_advance() -> None:
    seq = InboundSequence(3)
    assert seq.classify(3) == "new"
    assert seq.classify(3) == "new"
    assert seq.expected_next == 3


def test_gap_carries_expected_seq() -> None:
    seq = InboundSequence(10)
    with pytest.raises(ProtocolError) as info:
        seq.classify(12)
    assert info.value.code == E_SEQUENCE_GAP
    assert info.value.expected_seq == 10
    assert "12" not in str(info.value)


def test_commit_of_other_than_expected_refused() -> None:
    seq = InboundSequence(5)
    for wrong in (4, 6):
        with pytest.raises(ValueError):
            seq.commit(wrong)
    assert seq.expected_next == 5


@pytest.mark.parametrize("bad", [-1, 2**63])
def test_out_of_range_refused(bad: int) -> None:
    with pytest.raises(ValueError):
        InboundSequence(bad)
    with pytest.raises(ValueError):
        InboundSequence(0).classify(bad)


def test_non_int_refused() -> None:
    with pytest.raises(TypeError):
        InboundSequence(0).classify(True)
