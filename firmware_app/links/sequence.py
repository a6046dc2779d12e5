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
    """A peer's update sequence numbers as received and as committed.

    Updates may arrive pipelined and be committed in groups: ``accept`` moves the received cursor,
    ``commit_through`` the committed one once the group's transaction is durable, and ``rollback``
    returns to the last commit when that transaction failed (the peer resends what it was not
    acknowledged for).
    """

    def __init__(self, committed_next: int) -> None:
        self._committed = _check_seq(committed_next)
        self._received = self._committed

    @property
    def committed_next(self) -> int:
        """The first sequence number not yet durable."""
        return self._committed

    @property
    def expected_next(self) -> int:
        """The sequence number the peer must send next."""
        return self._received

    def accept(self, seq: int) -> Literal["new", "pending", "repeat"]:
        """``"new"``: apply it (the received cursor moves on); ``"pending"``: received already, wait for
        its commit before acknowledging; ``"repeat"``: committed already, acknowledge again with no
        second effect.  A number past the expected one is a gap (ProtocolError naming the expected)."""
        _check_seq(seq)
        if seq == self._received:
            self._received = seq + 1
            return "new"
        if seq < self._committed:
            return "repeat"
        if seq < self._received:
            return "pending"
        raise ProtocolError(E_SEQUENCE_GAP, expected_seq=self._received)

    def commit_through(self, seq: int) -> None:
        """Record that every accepted message up to ``seq`` is committed."""
        if not self._committed <= _check_seq(seq) < self._received:
            raise ValueError("only accepted, uncommitted sequence numbers can be committed")
        self._committed = seq + 1

    def rollback(self) -> None:
        """Forget what was accepted but not committed (its transaction failed)."""
        self._received = self._committed
