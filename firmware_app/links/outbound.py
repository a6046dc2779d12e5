"""One outbound channel (CS → prefecture, CS → card system): the outbox sent in order in signed
batches, acknowledged by sequence, resumed where the receiver says it stopped, retried with
capped exponential backoff for as long as the daemon runs.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from dataclasses import dataclass
from typing import Protocol

from firmware_app.journal import event
from firmware_app.links.connection import Connection
from firmware_app.links.errors import (
    E_MALFORMED,
    E_NOT_ALLOWED,
    E_SEQUENCE_GAP,
    ConnectionClosed,
    LinkError,
    ProtocolError,
)
from firmware_app.links.messages import (
    Ack,
    ErrorReport,
    MessageCodec,
    OutboxBatch,
    Resume,
)
from firmware_app.links.tls import (
    PeerNotPinned,
    TlsConfig,
    check_pinned,
    client_context,
)
from firmware_app.service.outbox import OutboxState, SignedBatch

__all__ = ["Endpoint", "OutboundLink", "OutboxPort"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoint:
    """Where a peer listens and the name its certificate must carry."""

    host: str
    port: int
    server_name: str


class OutboxPort(Protocol):
    """What an outbound channel needs from the service."""

    async def outbox_state(self, channel: str) -> OutboxState: ...

    async def outbox_batch(self, channel: str, from_seq: int, max_entries: int) -> SignedBatch | None: ...

    async def outbox_acked(self, channel: str, through_seq: int) -> None: ...

    def outbox_event(self, channel: str) -> asyncio.Event: ...


class OutboundLink:
    """Keeps one channel's outbox flowing to its peer; ``run`` returns only when cancelled."""

    def __init__(
        self,
        channel: str,
        endpoint: Endpoint,
        tls: TlsConfig,
        port: OutboxPort,
        codec: MessageCodec,
        *,
        window_entries: int = 8192,
        batch_entries: int = 512,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 10.0,
        ack_timeout_s: float = 10.0,
    ) -> None:
        self.channel = channel
        self._endpoint = endpoint
        self._tls = tls
        self._port = port
        self._codec = codec
        self._window = window_entries
        self._batch = batch_entries
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._ack_timeout_s = ack_timeout_s
        self._ctx: ssl.SSLContext | None = None
        self.connected = False
        self.acked_through = 0
        self.failures = 0
        self._ack_event = asyncio.Event()
        self._recording: asyncio.Task[None] | None = None
        self._to_record = 0
        self._sent_next = 1
        self._progress_at = 0.0

    async def run(self) -> None:
        """Connect, send, and on any failure wait (exponential backoff with jitter) and reconnect."""
        delay_s = self._backoff_initial_s
        while True:
            try:
                await self._session()
                delay_s = self._backoff_initial_s
            except (OSError, ssl.SSLError, LinkError, TimeoutError) as exc:
                self.failures += 1
                log.info("link %s down (%s); retrying in %.1f s", self.channel, type(exc).__name__, delay_s, extra=event("link.down"))
            finally:
                self.connected = False
            await asyncio.sleep(delay_s * random.uniform(0.5, 1.0))
            delay_s = min(delay_s * 2, self._backoff_max_s)

    async def _session(self) -> None:
        if self._ctx is None:
            self._ctx = client_context(self._tls)
        ep = self._endpoint
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(ep.host, ep.port, ssl=self._ctx, server_hostname=ep.server_name, limit=1 << 20),
            self._tls.handshake_timeout_s,
        )
        conn = Connection(reader, writer, self._codec, name=self.channel)
        try:
            try:
                check_pinned(conn.ssl_object, self._tls)
            except PeerNotPinned:
                log.error("link %s: the peer's certificate is not pinned; not sending", self.channel, extra=event("link.not_pinned"))
                raise
            first = await asyncio.wait_for(conn.recv(), self._tls.handshake_timeout_s)
            if not isinstance(first.body, Resume):
                raise ProtocolError(E_MALFORMED)
            next_seq = await self._resume_at(first.body.next_seq)
            self._sent_next = next_seq
            self.connected = True
            log.info("link %s up, sending from %d", self.channel, next_seq, extra=event("link.up"))
            receiver = asyncio.create_task(self._receive(conn), name=f"acks-{self.channel}")
            try:
                await self._send(conn, next_seq, receiver)
            finally:
                receiver.cancel()
                await asyncio.gather(receiver, return_exceptions=True)
        finally:
            await conn.close()

    async def _resume_at(self, receiver_next: int) -> int:
        """Where to send from: the receiver's own count, unless it claims what was never sent."""
        state = await self._port.outbox_state(self.channel)  # one snapshot: both cursors agree
        acked, staged_next = state.acked_through, state.next_seq
        if receiver_next > staged_next:
            raise ProtocolError(E_SEQUENCE_GAP)
        if receiver_next - 1 > acked:
            # It committed entries whose acknowledgement we had not recorded before a restart.
            await self._port.outbox_acked(self.channel, receiver_next - 1)
            acked = receiver_next - 1
        self.acked_through = acked
        return acked + 1

    async def _send(self, conn: Connection, next_seq: int, receiver: asyncio.Task[None]) -> None:
        wake = self._port.outbox_event(self.channel)
        while not receiver.done():
            if next_seq - 1 - self.acked_through >= self._window:
                self._ack_event.clear()
                await _first(self._ack_event.wait(), receiver)
                continue
            wake.clear()
            room = self._window - (next_seq - 1 - self.acked_through)
            batch = await self._port.outbox_batch(self.channel, next_seq, min(self._batch, room))
            if batch is None:
                await _first(wake.wait(), receiver)
                continue
            if self._sent_next - 1 == self.acked_through:
                self._progress_at = asyncio.get_running_loop().time()  # the acknowledgement clock starts
            conn.send("outbox_batch", batch.first_seq, OutboxBatch(batch.entries, batch.signature))
            next_seq = batch.first_seq + len(batch.entries)
            self._sent_next = next_seq
            if conn.needs_drain:
                await conn.drain()
        receiver.result()  # re-raise why the receiving side ended

    async def _receive(self, conn: Connection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                msg = await asyncio.wait_for(conn.recv(), self._ack_timeout_s / 2)
            except TimeoutError:
                waiting = self._sent_next - 1 > self.acked_through
                if waiting and loop.time() - self._progress_at >= self._ack_timeout_s:
                    # A peer that lost a batch would otherwise wait for it forever: start over where it says.
                    log.warning("link %s: no acknowledgement for %.1f s; reconnecting", self.channel, self._ack_timeout_s, extra=event("link.ack_timeout"))
                    raise ConnectionClosed("peer stopped acknowledging") from None
                continue
            body = msg.body
            if isinstance(body, Ack):
                if body.seq >= self._sent_next:
                    log.error("link %s: the peer acknowledged entries never sent", self.channel, extra=event("link.ack_unsent"))
                    raise ProtocolError(E_SEQUENCE_GAP)
                if body.seq > self.acked_through:
                    self.acked_through = body.seq
                    self._progress_at = loop.time()
                    self._ack_event.set()
                    self._record_ack(body.seq)
            elif isinstance(body, ErrorReport):
                log.warning("link %s: the peer refused a batch: %s", self.channel, body.code, extra=event("link.batch_refused"))
                raise ConnectionClosed("peer refused a batch")
            else:
                raise ProtocolError(E_NOT_ALLOWED)

    def _record_ack(self, through_seq: int) -> None:
        """Persist acknowledgements coalesced: one write in flight, carrying the newest value."""
        self._to_record = through_seq
        if self._recording is None or self._recording.done():
            self._recording = asyncio.create_task(self._record_loop())

    async def _record_loop(self) -> None:
        recorded = 0
        while self._to_record > recorded:
            target = self._to_record
            await self._port.outbox_acked(self.channel, target)
            recorded = target


async def _first(waiting: object, receiver: asyncio.Task[None]) -> None:
    """Wait for ``waiting`` (a coroutine) or for the receiver to end, whichever comes first."""
    task = asyncio.ensure_future(waiting)  # type: ignore[arg-type]
    try:
        await asyncio.wait({task, receiver}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        task.cancel()
