"""The receiving end of a CS outbox channel, as the prefecture server and the card system run it:
verify each batch's signature, apply each entry once and in order, acknowledge by sequence, and
ignore what was seen already.  ``Faults`` makes it misbehave on demand for the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from firmware_app.links.batch import BadBatchSignature, BatchVerifier
from firmware_app.links.connection import Connection
from firmware_app.links.errors import E_BAD_SIGNATURE, E_NOT_ALLOWED, E_SEQUENCE_GAP, ConnectionClosed, ProtocolError
from firmware_app.links.messages import Ack, MessageCodec, OutboxBatch, Resume
from firmware_app.links.tls import PeerNotPinned, TlsConfig, check_pinned, server_context

__all__ = ["Faults", "OutboxReceiver"]

log = logging.getLogger(__name__)

Apply = Callable[[int, bytes], None]


@dataclass
class Faults:
    """What the receiver does wrong; change the fields at any time."""

    refuse: bool = False  # close every connection right after the handshake
    drop_every: int = 0  # ignore every Nth batch: neither applied nor acknowledged
    delay_s: float = 0.0  # wait this long before handling each batch
    duplicate: bool = False  # handle each batch twice (the second time must change nothing)
    disconnect_after: int = 0  # close the connection after this many batches (then reset to 0)


class OutboxReceiver:
    """A TLS server taking one CS's batches for ``channel``; ``apply(seq, entry)`` is called once per
    entry, in sequence order."""

    def __init__(
        self,
        *,
        channel: str,
        tls: TlsConfig,
        cs_public_key_der: bytes,
        apply: Apply,
        host: str = "127.0.0.1",
        port: int = 0,
        on_applied: Callable[[int, int], None] | None = None,
        extra: Callable[[Connection, object], bool] | None = None,
    ) -> None:
        self.channel = channel
        self._tls = tls
        self._verifier = BatchVerifier(cs_public_key_der, channel)
        self._apply = apply
        self._on_applied = on_applied
        self._extra = extra
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._codec = MessageCodec()
        self.faults = Faults()
        self.next_seq = 1
        self.applied = 0
        self.ignored_entries = 0
        self.bad_signatures = 0
        self.connections = 0
        self._batches_seen = 0
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port, ssl=server_context(self._tls), limit=1 << 20)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        conn = Connection(reader, writer, self._codec, name=self.channel)
        try:
            check_pinned(conn.ssl_object, self._tls)
            if self.faults.refuse:
                return
            self.connections += 1
            conn.send("resume", 0, Resume(self.next_seq))
            await self._session(conn)
        except (PeerNotPinned, ConnectionClosed, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                await conn.close()
            self._handlers.discard(task)

    async def _session(self, conn: Connection) -> None:
        while True:
            try:
                msg = await conn.recv()
            except ProtocolError as exc:
                conn.send_error(exc)
                if conn.broken:
                    return
                continue
            if not isinstance(msg.body, OutboxBatch):
                if self._extra is not None and self._extra(conn, msg):
                    continue
                conn.send_error(ProtocolError(E_NOT_ALLOWED, seq=msg.seq))
                continue
            self._batches_seen += 1
            faults = self.faults
            if faults.drop_every and self._batches_seen % faults.drop_every == 0:
                continue
            if faults.delay_s:
                await asyncio.sleep(faults.delay_s)
            for _ in range(2 if faults.duplicate else 1):
                if not self._batch(conn, msg.seq, msg.body):
                    return
            await conn.drain()
            if faults.disconnect_after and self._batches_seen >= faults.disconnect_after:
                faults.disconnect_after = 0
                return

    def _batch(self, conn: Connection, first: int, batch: OutboxBatch) -> bool:
        """Handle one batch; False when the connection must end."""
        try:
            self._verifier.verify(first, batch.entries, batch.signature)
        except BadBatchSignature:
            self.bad_signatures += 1
            conn.send_error(ProtocolError(E_BAD_SIGNATURE, seq=first))
            return False
        if first > self.next_seq:
            conn.send_error(ProtocolError(E_SEQUENCE_GAP, expected_seq=self.next_seq, seq=first))
            return False
        skip = self.next_seq - first  # entries already applied: ignored, acknowledged again
        self.ignored_entries += min(skip, len(batch.entries))
        for offset in range(skip, len(batch.entries)):
            self._apply(first + offset, batch.entries[offset])
            self.applied += 1
        if skip < len(batch.entries):
            applied_from = self.next_seq
            self.next_seq = first + len(batch.entries)
            if self._on_applied is not None:
                self._on_applied(applied_from, self.next_seq - 1)
        conn.send("ack", self.next_seq - 1, Ack(self.next_seq - 1))
        return True
