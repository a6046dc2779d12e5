"""The CS's side of the consistency check on a link (CS function 6): the full signed check data
streamed in chunks, and the range-digest exchange with the items of the ranges that differ.

The tree for the digest exchange is built once per connection from one snapshot of the file, so
every round of one exchange answers about the same state.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Protocol

import msgspec

from firmware_app.consistency.messages import decode_request
from firmware_app.consistency.range_digest import RangeTree
from firmware_app.consistency.reconcile import Responder
from firmware_app.journal import event
from firmware_app.links.connection import Connection
from firmware_app.links.errors import E_MALFORMED, E_UNAVAILABLE, ProtocolError
from firmware_app.links.messages import (
    CheckChunk,
    CheckEnd,
    CheckRequest,
    DigestReply,
    DigestRequest,
    ItemsReply,
    ItemsRequest,
    Message,
)
from firmware_app.service.errors import ServiceUnavailable

__all__ = ["ConsistencyHandlers", "ConsistencyPort", "MAX_ASKS_PER_ROUND"]

log = logging.getLogger(__name__)

#: Asks in one digest round (a tree level of a 1M-record file with 100 differences needs < 1,600).
MAX_ASKS_PER_ROUND = 4096


class ConsistencyPort(Protocol):
    """What the consistency check needs from the service."""

    def check_data(self, context: bytes) -> AsyncIterator[bytes]: ...

    async def check_tree(self) -> RangeTree: ...

    async def check_items(self, codes: list[int]) -> bytes: ...


class ConsistencyHandlers:
    """Request handlers for one connection (pass ``handlers`` to the inbound session)."""

    def __init__(self, port: ConsistencyPort) -> None:
        self._port = port
        self._responder: Responder | None = None

    @property
    def handlers(self) -> Mapping[str, Callable[[Connection, Message], Awaitable[None]]]:
        return {"check_request": self._check, "digest_request": self._digest, "items_request": self._items}

    async def _check(self, conn: Connection, msg: Message) -> None:
        body = msg.body
        assert isinstance(body, CheckRequest)
        log.info("consistency check data requested by %s", conn.name, extra=event("link.consistency_requested"))
        try:
            async for piece in self._port.check_data(body.context):
                if isinstance(piece, tuple):  # the trailer comes last, tagged
                    conn.send("check_end", msg.seq, CheckEnd(piece[1]))
                else:
                    conn.send("check_chunk", msg.seq, CheckChunk(piece))
                    if conn.needs_drain:
                        await conn.drain()
        except ServiceUnavailable:
            conn.send_error(ProtocolError(E_UNAVAILABLE, seq=msg.seq))

    async def _digest(self, conn: Connection, msg: Message) -> None:
        body = msg.body
        assert isinstance(body, DigestRequest)
        try:
            if self._responder is None:
                self._responder = Responder(await self._port.check_tree())
            response = self._respond(body.request)
        except ServiceUnavailable:
            conn.send_error(ProtocolError(E_UNAVAILABLE, seq=msg.seq))
            return
        except ProtocolError as exc:
            conn.send_error(ProtocolError(exc.code, seq=msg.seq))
            return
        conn.send("digest_reply", msg.seq, DigestReply(response))

    def _respond(self, request: bytes) -> bytes:
        assert self._responder is not None
        try:
            asks = decode_request(request).asks
            if len(asks) > MAX_ASKS_PER_ROUND:
                raise ProtocolError(E_MALFORMED)
            for ask in asks:
                if not (isinstance(ask.lo, int) and isinstance(ask.hi, int) and 0 <= ask.lo < ask.hi <= 10**11):
                    raise ProtocolError(E_MALFORMED)
            return self._responder.respond(request)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError):
            raise ProtocolError(E_MALFORMED) from None

    async def _items(self, conn: Connection, msg: Message) -> None:
        body = msg.body
        assert isinstance(body, ItemsRequest)
        try:
            framed = await self._port.check_items(list(body.codes))
        except ServiceUnavailable:
            conn.send_error(ProtocolError(E_UNAVAILABLE, seq=msg.seq))
            return
        conn.send("items_reply", msg.seq, ItemsReply(framed))
