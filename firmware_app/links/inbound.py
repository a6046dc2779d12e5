"""One inbound session: the sequenced updates a peer sends (pipelined, committed in groups,
acknowledged only after their transaction is durable) and the requests it may make.

The service is reached through :class:`InboundPort`, a narrow async interface, so the part that
holds keys and data could later move to another process without touching this module.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from firmware_app.domain.updates import MoveOutCertificate
from firmware_app.journal import event
from firmware_app.links.connection import Connection
from firmware_app.links.errors import (
    E_NOT_ALLOWED,
    E_UNAVAILABLE,
    ConnectionClosed,
    ProtocolError,
)
from firmware_app.links.messages import (
    Ack,
    Message,
    MoveOutReply,
    MoveOutRequest,
    Resume,
)
from firmware_app.links.sequence import InboundSequence
from firmware_app.service.errors import ServiceUnavailable
from firmware_app.service.intake import Applied, Update

__all__ = ["REQUEST_TYPES", "UPDATE_TYPES", "InboundPort", "InboundSession"]

log = logging.getLogger(__name__)

#: The sequenced update types each role may send.
UPDATE_TYPES: Mapping[str, frozenset[str]] = {
    "register": frozenset({"identity_change", "card_event", "destination"}),
    "national": frozenset({"moveout_certificate"}),
    "prefecture": frozenset(),
}
#: The request types each role may send (answered with the request's own ``s``).
REQUEST_TYPES: Mapping[str, frozenset[str]] = {
    "register": frozenset({"moveout_request"}),
    "national": frozenset({"check_request", "digest_request", "items_request"}),
    "prefecture": frozenset({"check_request", "digest_request", "items_request"}),
}

RequestHandler = Callable[[Connection, Message], Awaitable[None]]
_SESSIONS: weakref.WeakSet[InboundSession] = weakref.WeakSet()


def describe_sessions() -> list[str]:
    """A line per open inbound session (see :meth:`InboundSession.describe`)."""
    return [session.describe() for session in list(_SESSIONS)]


class InboundPort(Protocol):
    """What an inbound session needs from the service."""

    async def inbox_next(self, peer: str) -> int: ...

    async def apply(self, peer: str, first_seq: int, updates: Sequence[Update]) -> Applied: ...

    async def moveout_for(self, resident_code: str) -> MoveOutCertificate | None: ...


class InboundSession:
    """Serves one connection of one role until it closes or ``stop`` is called."""

    def __init__(
        self,
        role: str,
        conn: Connection,
        port: InboundPort,
        *,
        max_group: int = 1024,
        max_pending: int = 8192,
        extra_requests: Mapping[str, RequestHandler] | None = None,
        drain_timeout_s: float = 10.0,
    ) -> None:
        self.role = role
        self._conn = conn
        self._port = port
        self._max_group = max_group
        self._max_pending = max_pending
        self._updates = UPDATE_TYPES.get(role, frozenset())
        self._requests: dict[str, RequestHandler] = {}
        if "moveout_request" in REQUEST_TYPES.get(role, frozenset()):
            self._requests["moveout_request"] = self._moveout
        allowed = REQUEST_TYPES.get(role, frozenset())
        self._requests.update({t: h for t, h in (extra_requests or {}).items() if t in allowed})
        self._pending: list[object] = []
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._sequence: InboundSequence | None = None
        self._failed = False
        self._drain_timeout_s = drain_timeout_s
        self._reading: asyncio.Task[None] | None = None
        _SESSIONS.add(self)

    def describe(self) -> str:
        """One line of state for an operator's dump (no data): cursors, backlog, bytes."""
        seq = self._sequence
        cursors = f"received<{seq.expected_next} committed<{seq.committed_next}" if seq else "no sequence"
        return f"{self.role}: {cursors} pending={len(self._pending)} bytes_in={self._conn.bytes_in} {self._conn.transport_state()}"

    async def run(self) -> None:
        """Read and answer until the peer leaves; what was accepted is committed before returning."""
        if self._updates:
            self._sequence = InboundSequence(await self._port.inbox_next(self.role))
            self._conn.send("resume", 0, Resume(self._sequence.expected_next))
            log.info("link %s connected, resuming at %d", self.role, self._sequence.expected_next, extra=event("link.connected"))
        committer = asyncio.create_task(self._commit_loop(), name=f"commit-{self.role}")
        self._reading = asyncio.create_task(self._read_loop(), name=f"read-{self.role}")
        try:
            await self._reading
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise  # the session itself is cancelled, not just its reading
        finally:
            # What the peer sent and we accepted is committed (it will be a repeat if resent).
            self._wake.set()
            try:
                await asyncio.wait_for(self._drained(), self._drain_timeout_s)
            except TimeoutError:
                log.warning("link %s: pending updates not committed before close; the peer will resend", self.role, extra=event("link.uncommitted_at_close"))
            committer.cancel()
            await asyncio.gather(committer, return_exceptions=True)

    def stop(self) -> None:
        """Stop reading (intake closes at once); what was accepted is still committed and acked."""
        if self._reading is not None and not self._reading.done():
            self._reading.cancel()

    async def _drained(self) -> None:
        while self._pending and not self._failed:
            self._wake.set()
            await asyncio.sleep(0.005)

    async def _read_loop(self) -> None:
        conn = self._conn
        while not self._failed:
            if len(self._pending) >= self._max_pending:
                self._room.clear()
                await self._room.wait()
                continue
            try:
                msg = await conn.recv()
            except ProtocolError as exc:
                log.info("link %s refused a message: %s", self.role, exc.code, extra=event("link.message_refused"))
                conn.send_error(exc)
                if conn.broken:
                    return
                continue
            except ConnectionClosed:
                return
            if msg.type in self._updates:
                self._on_update(msg)
            elif msg.type in self._requests:
                await self._requests[msg.type](conn, msg)
            else:
                conn.send_error(ProtocolError(E_NOT_ALLOWED, seq=msg.seq))
            if conn.needs_drain:
                await conn.drain()

    def _on_update(self, msg: Message) -> None:
        assert self._sequence is not None
        try:
            verdict = self._sequence.accept(msg.seq)
        except ProtocolError as exc:
            self._conn.send_error(ProtocolError(exc.code, expected_seq=exc.expected_seq, seq=msg.seq))
            return
        if verdict == "new":
            self._pending.append(msg.body)
            self._wake.set()
        elif verdict == "repeat":
            self._conn.send("ack", msg.seq, Ack(msg.seq))
        # "pending": received and in a group being committed; its acknowledgement follows.

    async def _commit_loop(self) -> None:
        sequence = self._sequence
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending and sequence is not None:
                group = self._pending[: self._max_group]
                first = sequence.committed_next
                try:
                    applied = await self._port.apply(self.role, first, group)
                except ServiceUnavailable:
                    log.error("link %s: updates refused, the service is unavailable", self.role, extra=event("link.service_unavailable"))
                    self._fail(ProtocolError(E_UNAVAILABLE, expected_seq=first, seq=first))
                    return
                except Exception:
                    log.exception("link %s: commit failed unexpectedly; closing the session", self.role, extra=event("link.commit_failed"))
                    self._fail(ProtocolError(E_UNAVAILABLE, expected_seq=first, seq=first))
                    return
                self._record(first, applied)
                self._room.set()

    def _record(self, first: int, applied: Applied) -> None:
        assert self._sequence is not None
        del self._pending[: applied.count]
        if applied.count:
            last = first + applied.count - 1
            self._sequence.commit_through(last)
            self._conn.send("ack", last, Ack(last))
        if applied.refusal is not None:
            refused = first + applied.count
            log.info("link %s refused update %d: %s", self.role, refused, applied.refusal.code, extra=event("link.update_refused"))
            error = ProtocolError(applied.refusal.code, expected_seq=refused, seq=refused)
            self._conn.send_error(error, field=applied.refusal.field, item=applied.refusal.item)
            self._sequence.rollback()
            self._pending.clear()

    def _fail(self, error: ProtocolError) -> None:
        """Refuse everything uncommitted and end the session (the peer resends later)."""
        self._failed = True
        if self._sequence is not None:
            self._sequence.rollback()
        self._pending.clear()
        self._conn.send_error(error)
        self._conn.close_soon()
        self._room.set()

    async def _moveout(self, conn: Connection, msg: Message) -> None:
        body = msg.body
        assert isinstance(body, MoveOutRequest)
        try:
            cert = await self._port.moveout_for(body.resident_code)
        except ServiceUnavailable:
            conn.send_error(ProtocolError(E_UNAVAILABLE, seq=msg.seq))
            return
        conn.send("moveout_reply", msg.seq, MoveOutReply(cert))  # type: ignore[arg-type]
