"""Sans-IO state of an inbound update sequence: new, repeat (acknowledge again) or gap (refuse)."""

from __future__ import annotations

from typing import Literal

from firmware_app.links.errors import E_SEQUENCE_GAP, ProtocolError

__all__ = ["InboundSequence"]

_SEQ_LIMIT = 2**63


def _check_seq(seq: int) -> int:
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise TypeError("seq must be an int")
    if not 0 <= seq < _SEQ_LIMIT:
        raise ValueError("seq must be in [0, 2**63)")
    return seq


class InboundSequence:
    """The next sequence number expected from a peer; advanced only after a commit."""

    def __init__(self, expected_next: int) -> None:
        self._expected = _check_seq(expected_next)

    @property
    def expected_next(self) -> int:
        """The sequence number of the next message that has an effect."""
        return self._expected

    def classify(self, seq: int) -> Literal["new", "repeat"]:
        """``"new"`` to apply, ``"repeat"`` to acknowledge again; ProtocolError for a gap."""
        _check_seq(seq)
        if seq == self._expected:
            return "new"
        if seq < self._expected:
            return "repeat"
        raise ProtocolError(E_SEQUENCE_GAP, expected_seq=self._expected)

    def commit(self, seq: int) -> None:
        """Record that message ``seq`` (the expected one) has been committed."""
        if _check_seq(seq) != self._expected:
            raise ValueError("only the expected sequence number can be committed")
        self._expected = seq + 1
