"""Sans-IO reconciliation of two range-digest trees: Reconciler asks, Responder answers.

Round 1 asks for the root with the asker's root digest: the answer is Same (done: one round
trip) or the responder's expansion.  The responder expands a range by its own leaf/split
decision: a local leaf range comes back as Leaves (compared at once with the asker's leaves in
that range, whatever the asker's shape there), a split range as Children digests (compared with
the asker's digests of the same canonical sub-ranges; the differing ones are asked about in the
next round, all of one level in one Request).  Leaf listings thus travel one way only, and the
round trips are about the tree depth.  Both sides must use the same fanout; leaf_limit may differ.
"""

from __future__ import annotations

from firmware_app.consistency.messages import (
    Ask,
    Children,
    Leaves,
    Request,
    Response,
    Same,
    decode_request,
    decode_response,
    encode,
)
from firmware_app.consistency.range_digest import (
    DIGEST_BYTES,
    ROOT,
    RangeTree,
    pack_records,
    split,
    unpack_records,
)


class Responder:
    """Answers Requests from one side's tree."""

    def __init__(self, local: RangeTree):
        self.local = local

    def _reply(self, ask: Ask) -> Same | Children | Leaves:
        """The answer to one ask (ValueError for a range this tree cannot have)."""
        tree = self.local
        if ask.digest is not None and ask.digest == tree.digest(ask.lo, ask.hi):
            return Same()
        if tree.count(ask.lo, ask.hi) <= tree.leaf_limit:
            return Leaves(pack_records(tree.leaves_in(ask.lo, ask.hi)))
        return Children(b"".join(tree.digest(*r) for r in split(ask.lo, ask.hi, tree.fanout)))

    def respond(self, request: bytes) -> bytes:
        """The wire Response to a wire Request."""
        asks = decode_request(request).asks
        return encode(Response(tuple(self._reply(ask) for ask in asks)))


class Reconciler:
    """Finds the codes whose leaves differ between the local tree and the peer's."""

    def __init__(self, local: RangeTree):
        self.local = local
        self.bytes_sent = 0
        self.bytes_received = 0
        self.round_trips = 0
        self._next: list[tuple[int, int]] = [ROOT]
        self._asked: tuple[Ask, ...] = ()
        self._differences: set[int] = set()

    def next_request(self) -> bytes | None:
        """The next wire Request, or None when reconciliation is over."""
        if self._asked:
            raise RuntimeError("the previous request has not been answered")
        if not self._next:
            return None
        opening = self.round_trips == 0
        self._asked = tuple(
            Ask(lo, hi, self.local.digest(lo, hi) if opening else None) for lo, hi in self._next
        )
        self._next = []
        data = encode(Request(self._asked))
        self.bytes_sent += len(data)
        return data

    def receive(self, response: bytes) -> None:
        """Take the peer's wire Response to the last Request."""
        if not self._asked:
            raise RuntimeError("no request is awaiting a response")
        replies = decode_response(response).replies
        if len(replies) != len(self._asked):
            raise ValueError("response does not answer every ask")
        self.bytes_received += len(response)
        self.round_trips += 1
        asked, self._asked = self._asked, ()
        for ask, reply in zip(asked, replies):
            if isinstance(reply, Children):
                self._compare_children(ask.lo, ask.hi, reply.digests)
            elif isinstance(reply, Leaves):
                self._compare_leaves(ask.lo, ask.hi, reply.records)
            elif not isinstance(reply, Same) or ask.digest is None:
                raise ValueError(f"unexpected reply to [{ask.lo}, {ask.hi})")

    def _compare_children(self, lo: int, hi: int, digests: bytes) -> None:
        """Queue the sub-ranges whose digest differs from the peer's."""
        ranges = split(lo, hi, self.local.fanout)
        if len(digests) != DIGEST_BYTES * len(ranges):
            raise ValueError("peer's fanout differs from ours")
        for k, (c_lo, c_hi) in enumerate(ranges):
            if digests[k * DIGEST_BYTES : (k + 1) * DIGEST_BYTES] != self.local.digest(c_lo, c_hi):
                self._next.append((c_lo, c_hi))

    def _compare_leaves(self, lo: int, hi: int, records: bytes) -> None:
        """Record the codes in [lo, hi) whose leaf is not the same on both sides."""
        theirs = dict(unpack_records(records))
        if any(not lo <= code < hi for code in theirs):
            raise ValueError(f"peer sent a leaf outside [{lo}, {hi})")
        ours = dict(self.local.leaves_in(lo, hi))
        self._differences.update(c for c in ours.keys() | theirs.keys() if ours.get(c) != theirs.get(c))

    def differences(self) -> set[int]:
        """Codes whose digest differs or that are on one side only (final once next_request is None)."""
        return set(self._differences)


def reconcile(local: RangeTree, responder: Responder) -> Reconciler:
    """Run a Reconciler against an in-process Responder to the end (tests, benchmarks)."""
    reconciler = Reconciler(local)
    while (request := reconciler.next_request()) is not None:
        reconciler.receive(responder.respond(request))
    return reconciler
