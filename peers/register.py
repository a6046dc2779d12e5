"""The ward register simulator's link: sends every update with its update sequence number,
pipelined up to a window, resumes where the CS says after a break, and records every
acknowledgement and refusal (with when it happened, for the latency benchmark)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from dataclasses import dataclass

import msgspec

from firmware_app.domain.updates import MoveOutCertificate
from firmware_app.links.connection import Connection
from firmware_app.links.errors import E_SEQUENCE_GAP, ConnectionClosed, LinkError, ProtocolError
from firmware_app.links.messages import Ack, ErrorReport, MessageCodec, MoveOutReply, MoveOutRequest, Resume
from firmware_app.links.outbound import Endpoint
from firmware_app.links.tls import TlsConfig, check_pinned, client_context

__all__ = ["Refused", "RegisterClient"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refused:
    """An update the CS refused for its content: its type, the code, and the field named."""

    type_name: str
    code: str
    field: str | None
    item: int | None


class RegisterClient:
    """Submit updates with ``submit``; ``run`` keeps them flowing until cancelled."""

    def __init__(self, endpoint: Endpoint, tls: TlsConfig, *, window: int = 4096, codec: MessageCodec | None = None) -> None:
        self._endpoint = endpoint
        self._tls = tls
        self._window = window
        self._codec = codec or MessageCodec()
        self._log: list[tuple[str, msgspec.Struct]] = []  # index = seq - 1
        self.acked_through = 0
        self.sent_at: dict[int, float] = {}
        self.acked_at: dict[int, float] = {}
        self.refused: list[Refused] = []
        self.connections = 0
        self.gaps = 0
        #: Times the CS resumed below what it had already acknowledged (an acknowledged update lost).
        self.resume_regressions = 0
        self.failures: list[str] = []
        self.other_errors: list[tuple[int, str, int | None]] = []
        self._wake = asyncio.Event()
        self._acked = asyncio.Event()
        self._conn: Connection | None = None
        self._request_id = 0
        self._replies: dict[int, asyncio.Future[MoveOutCertificate | None]] = {}

    @property
    def submitted(self) -> int:
        return len(self._log)

    def count(self, type_name: str) -> int:
        """Updates of one type submitted and not refused."""
        return sum(1 for name, _ in self._log if name == type_name)

    def submit(self, type_name: str, body: msgspec.Struct) -> int:
        """Queue an update; returns its sequence number (which may shift down if an earlier one is refused)."""
        self._log.append((type_name, body))
        self._wake.set()
        return len(self._log)

    async def wait_acked(self, seq: int, timeout_s: float) -> None:
        """Wait until the CS has acknowledged everything through ``seq``."""
        async with asyncio.timeout(timeout_s):
            while self.acked_through < seq:
                self._acked.clear()
                await self._acked.wait()

    async def request_moveout(self, resident_code: str, timeout_s: float = 10.0) -> MoveOutCertificate | None:
        """Fetch the move-out certificate for a special move-in over the current connection."""
        async with asyncio.timeout(timeout_s):
            while self._conn is None:
                await asyncio.sleep(0.01)
            self._request_id += 1
            future: asyncio.Future[MoveOutCertificate | None] = asyncio.get_running_loop().create_future()
            self._replies[self._request_id] = future
            self._conn.send("moveout_request", self._request_id, MoveOutRequest(resident_code))
            return await future

    async def run(self, *, backoff_max_s: float = 2.0) -> None:
        delay_s = 0.05
        while True:
            try:
                await self._session()
                delay_s = 0.05
            except (OSError, ssl.SSLError, LinkError, TimeoutError) as exc:
                log.debug("register link down: %s", type(exc).__name__)
                self.failures.append(type(exc).__name__)
            except Exception as exc:  # a simulator must never die silently mid-test
                log.exception("register link failed unexpectedly")
                self.failures.append(f"unexpected {type(exc).__name__}: {exc}")
            self._conn = None
            await asyncio.sleep(delay_s * random.uniform(0.5, 1.0))
            delay_s = min(delay_s * 2, backoff_max_s)

    async def _session(self) -> None:
        ep = self._endpoint
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(ep.host, ep.port, ssl=client_context(self._tls), server_hostname=ep.server_name, limit=1 << 20),
            self._tls.handshake_timeout_s,
        )
        conn = Connection(reader, writer, self._codec, name="register")
        try:
            check_pinned(conn.ssl_object, self._tls)
            first = await asyncio.wait_for(conn.recv(), self._tls.handshake_timeout_s)
            if not isinstance(first.body, Resume):
                raise ConnectionClosed("CS did not say where to resume")
            if first.body.next_seq - 1 < self.acked_through:
                self.resume_regressions += 1
            self._mark_acked(first.body.next_seq - 1)
            self.connections += 1
            self._conn = conn
            state = {"next": first.body.next_seq}
            receiver = asyncio.create_task(self._receive(conn, state))
            try:
                await self._send(conn, state, receiver)
            finally:
                receiver.cancel()
                await asyncio.gather(receiver, return_exceptions=True)
        finally:
            self._conn = None
            with contextlib.suppress(Exception):
                await conn.close()

    async def _send(self, conn: Connection, state: dict[str, int], receiver: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        while not receiver.done():
            nxt = state["next"]
            if nxt > len(self._log) or nxt - 1 - self.acked_through >= self._window:
                self._wake.clear()
                waiter = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait({waiter, receiver}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                continue
            end = min(len(self._log), self.acked_through + self._window, nxt + 256)
            now = loop.time()
            for seq in range(nxt, end + 1):
                type_name, body = self._log[seq - 1]
                conn.send(type_name, seq, body)
                self.sent_at.setdefault(seq, now)
            state["next"] = end + 1
            await conn.drain()
        receiver.result()

    async def _receive(self, conn: Connection, state: dict[str, int]) -> None:
        while True:
            msg = await conn.recv()
            body = msg.body
            if isinstance(body, Ack):
                self._mark_acked(body.seq)
            elif isinstance(body, MoveOutReply):
                future = self._replies.pop(msg.seq, None)
                if future is not None and not future.done():
                    future.set_result(body.certificate)
            elif isinstance(body, ErrorReport):
                self._on_error(msg.seq, body, state)
            else:
                raise ProtocolError("not_allowed")

    def _on_error(self, seq: int, report: ErrorReport, state: dict[str, int]) -> None:
        if report.code == E_SEQUENCE_GAP and report.expected_seq is not None:
            self.gaps += 1
            state["next"] = min(state["next"], report.expected_seq)
        elif report.expected_seq is not None and 1 <= seq <= len(self._log) and seq == report.expected_seq:
            # Refused for its content: the register drops it (a clerk fixes and re-files it later);
            # everything after it moves down one number and is sent again.
            type_name, _ = self._log.pop(seq - 1)
            self.refused.append(Refused(type_name, report.code, report.field, report.item))
            for later in [s for s in self.sent_at if s >= seq]:
                del self.sent_at[later]
            state["next"] = seq
        else:
            log.warning("register: CS reported %s", report.code)
            self.other_errors.append((seq, report.code, report.expected_seq))
        self._wake.set()

    def _mark_acked(self, through: int) -> None:
        if through > self.acked_through:
            now = asyncio.get_running_loop().time()
            for seq in range(self.acked_through + 1, through + 1):
                self.acked_at[seq] = now
            self.acked_through = through
            self._acked.set()
            self._wake.set()  # the window has room again


def submit_event(client: RegisterClient, event: object) -> int:
    """Queue one event of ``peers.register_stream`` as the message the register sends for it."""
    from firmware_app.domain.updates import CardEvent, IdentityChange
    from peers.register_stream import CardChange, Change, DestinationDue

    if isinstance(event, Change):
        return client.submit("identity_change", IdentityChange(event.op, event.record))
    if isinstance(event, CardChange):
        return client.submit("card_event", CardEvent(event.kind, event.resident_code, event.occurred_on))
    if isinstance(event, DestinationDue):
        return client.submit("destination", event.record)
    raise TypeError("not a register stream event")
