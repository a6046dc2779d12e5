"""The service's narrow async interface for links (and later the console): every blocking call
runs on a worker thread — writes on one dedicated writer thread, so LMDB transactions never wait
for each other's locks and group commits form naturally — and HSM or storage failures become
``ServiceUnavailable`` (fail closed) at this boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from firmware_app.consistency.range_digest import RangeTree
from firmware_app.domain.notices import batch_signed_bytes
from firmware_app.domain.updates import MoveOutCertificate
from firmware_app.journal import event
from firmware_app.service.check_data import (
    CheckChunk,
    CheckTrailer,
    CheckWorkers,
    check_items_blocking,
    check_tree_blocking,
    encode_trailer,
    produce_check_data_blocking,
)
from firmware_app.service.errors import ServiceUnavailable
from firmware_app.service.intake import Applied, Intake, IntakeError, Update
from firmware_app.service.keyring import Keyring
from firmware_app.service.outbox import Outbox, OutboxState, SignedBatch
from firmware_app.service.retention import RetentionReport, RetentionSweep
from hsm.errors import HsmError
from hsm.keys import Signer
from storage import layout
from storage.errors import StorageError
from storage.store import Store

__all__ = ["Gateway"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Bytes of entries per outbound batch (the frame limit is 1 MiB; entries are at most 16 KiB).
_BATCH_MAX_BYTES = 512 * 1024
#: Longest an acknowledgement waits for an intake transaction to ride along with.
_ACK_FLUSH_S = 0.2
#: Check-data chunks produced ahead of the link (each ~140 KB).
_CHECK_CHUNKS_AHEAD = 4
#: The key of the watchdog's storage probe in ``meta``.
_PROBE_KEY = b"watchdog_probe"


class _Abandoned(Exception):
    """The link went away while check data was being produced."""


@contextlib.contextmanager
def _fail_closed(what: str) -> Iterator[None]:
    try:
        yield
    except (HsmError, StorageError) as exc:
        log.error("%s failed: %s", what, type(exc).__name__, extra=event("service.failure"))
        raise ServiceUnavailable(f"{what} failed") from None


class Gateway:
    """Async access to the intake, the outboxes and the signer."""

    def __init__(
        self,
        *,
        store: Store,
        keyring: Keyring,
        intake: Intake,
        outboxes: Mapping[str, Outbox],
        signer: Signer,
        check_workers: CheckWorkers | None = None,
        retention: RetentionSweep | None = None,
        reader_threads: int = 4,
    ) -> None:
        self._store = store
        self._keyring = keyring
        self._check_workers = check_workers
        self._retention = retention
        # Its own thread: each sweep batch takes the store's write lock briefly, between intake groups.
        self._sweeper = ThreadPoolExecutor(1, thread_name_prefix="cs-retention")
        self._intake = intake
        self._outboxes = dict(outboxes)
        self._signer = signer
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="cs-writer")
        self._readers = ThreadPoolExecutor(reader_threads, thread_name_prefix="cs-reader")
        self._events: dict[str, asyncio.Event] = {}
        self._acks: dict[str, int] = {}
        self._ack_flush: asyncio.Future[None] | None = None
        self._probes = 0

    async def _run(self, pool: ThreadPoolExecutor, what: str, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        loop = asyncio.get_running_loop()

        def call() -> T:
            with _fail_closed(what):
                return fn(*args, **kwargs)

        return await loop.run_in_executor(pool, call)

    def close(self) -> None:
        """Wait for running calls, then stop the threads (after the links have stopped)."""
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self._sweeper.shutdown(wait=True)

    # -- health -----------------------------------------------------------------------------------

    async def probe_storage(self) -> None:
        """One tiny durable write (``meta/watchdog_probe``, a counter) on the writer thread, the
        path every intake group takes: the watchdog's storage probe."""
        await self._run(self._writer, "storage probe", self._probe_storage_blocking)

    def _probe_storage_blocking(self) -> None:
        self._probes += 1
        self._store.write(lambda w: w.put(layout.META, _PROBE_KEY, layout.pack_u64(self._probes)))

    # -- inbound ----------------------------------------------------------------------------------

    async def inbox_next(self, peer: str) -> int:
        return await self._run(self._readers, "reading the inbox cursor", self._intake.inbox_next_blocking, peer)

    async def apply(self, peer: str, first_seq: int, updates: Sequence[Update]) -> Applied:
        start_s = time.perf_counter()
        acks, self._acks = self._acks, {}
        try:
            applied = await self._run(self._writer, "applying updates", self._intake.apply_blocking, peer, first_seq, updates, acks=acks)
        except IntakeError as exc:
            self._merge_acks(acks)
            log.error("intake from %s: %s", peer, exc, extra=event("service.intake_failed"))
            raise ServiceUnavailable("intake cursor moved") from None
        except BaseException:
            self._merge_acks(acks)
            raise
        log.debug("group of %d from %s applied in %.2f ms", len(updates), peer, (time.perf_counter() - start_s) * 1000, extra=event("service.group_applied"))
        if applied.count:
            for waiter in self._events.values():
                waiter.set()
        return applied

    async def moveout_for(self, resident_code: str) -> MoveOutCertificate | None:
        return await self._run(self._readers, "reading a move-out certificate", self._intake.moveout_for_blocking, resident_code)

    # -- outbound ---------------------------------------------------------------------------------

    def outbox_event(self, channel: str) -> asyncio.Event:
        """Set whenever an intake group committed (the channel may have entries to send)."""
        event = self._events.get(channel)
        if event is None:
            event = self._events[channel] = asyncio.Event()
            event.set()
        return event

    async def outbox_state(self, channel: str) -> OutboxState:
        """The channel's cursors as committed (one read)."""
        return await self._run(self._readers, "reading the outbox", self._outboxes[channel].state_blocking)

    async def outbox_next_seq(self, channel: str) -> int:
        return (await self.outbox_state(channel)).next_seq

    async def outbox_depth(self, channel: str) -> int:
        return (await self.outbox_state(channel)).depth

    async def outbox_batch(self, channel: str, from_seq: int, max_entries: int) -> SignedBatch | None:
        return await self._run(self._readers, "preparing a batch", self._batch_blocking, channel, from_seq, max_entries)

    def _batch_blocking(self, channel: str, from_seq: int, max_entries: int) -> SignedBatch | None:
        pending = self._outboxes[channel].pending_blocking(from_seq, limit=max_entries, max_bytes=_BATCH_MAX_BYTES)
        if not pending:
            return None
        entries = [data for _, data in pending]
        signature = self._signer.sign(batch_signed_bytes(channel, from_seq, entries))
        return SignedBatch(from_seq, entries, signature)

    # -- retention --------------------------------------------------------------------------------

    async def run_retention(self) -> RetentionReport:
        """One retention run (scheduled by the daemon; on demand from the console)."""
        if self._retention is None:
            raise ServiceUnavailable("no retention engine configured")
        return await self._run(self._sweeper, "running retention", self._retention.run_blocking)

    async def retention_reports(self) -> list[RetentionReport]:
        """The reports of past retention runs (counts only), oldest first."""
        if self._retention is None:
            raise ServiceUnavailable("no retention engine configured")
        return await self._run(self._readers, "reading retention reports", self._retention.reports_blocking)

    # -- consistency check --------------------------------------------------------------------------

    async def check_data(self, context: bytes) -> AsyncIterator[bytes | tuple[str, bytes]]:
        """The full check data as framed chunks, then ``("end", trailer bytes)``; produced on a
        reader thread at most a few chunks ahead of the link."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        slots = threading.Semaphore(_CHECK_CHUNKS_AHEAD)
        abandoned = threading.Event()

        def send(chunk: CheckChunk) -> None:
            while not slots.acquire(timeout=0.5):
                if abandoned.is_set():
                    raise _Abandoned()
            loop.call_soon_threadsafe(queue.put_nowait, chunk.framed)

        def produce() -> CheckTrailer:
            return produce_check_data_blocking(self._store, self._keyring, self._signer, send, context=context, workers=self._check_workers)

        producer = asyncio.ensure_future(self._run(self._readers, "producing check data", produce))
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, producer}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    slots.release()
                    yield getter.result()
                    continue
                getter.cancel()
                while not queue.empty():
                    slots.release()
                    yield queue.get_nowait()
                yield ("end", encode_trailer(await producer))
                return
        finally:
            abandoned.set()
            if not producer.done():
                with contextlib.suppress(BaseException):
                    await producer

    async def check_tree(self) -> RangeTree:
        """The range-digest tree of the current file (one snapshot)."""
        return await self._run(self._readers, "building the range-digest tree", check_tree_blocking, self._store, self._keyring, workers=self._check_workers)

    async def check_items(self, codes: list[int]) -> bytes:
        """The framed check items of ``codes`` (those still in the file)."""
        chunk = await self._run(self._readers, "reading check items", check_items_blocking, self._store, self._keyring, codes)
        return chunk.framed

    async def outbox_acked(self, channel: str, through_seq: int) -> None:
        """Note a peer's acknowledgement; it is written with the next intake group, or on its own
        after ``_ACK_FLUSH_S`` when no group comes (a late record only means resends after a crash,
        which the receiver ignores)."""
        self._merge_acks({channel: through_seq})
        if self._ack_flush is None or self._ack_flush.done():
            self._ack_flush = asyncio.ensure_future(self._flush_acks_later())

    def _merge_acks(self, acks: Mapping[str, int]) -> None:
        for channel, through in acks.items():
            self._acks[channel] = max(self._acks.get(channel, 0), through)

    async def _flush_acks_later(self) -> None:
        await asyncio.sleep(_ACK_FLUSH_S)
        await self.flush_acks()

    async def flush_acks(self) -> None:
        """Write the acknowledgements noted so far in a transaction of their own."""
        if self._ack_flush is not None and self._ack_flush is not asyncio.current_task():
            self._ack_flush.cancel()
        acks, self._acks = self._acks, {}
        if not acks:
            return
        try:
            await self._run(self._writer, "recording acknowledgements", self._record_acks_blocking, acks)
        except BaseException:
            self._merge_acks(acks)
            raise

    def _record_acks_blocking(self, acks: Mapping[str, int]) -> None:
        self._store.write(lambda w: [self._outboxes[channel].stage_acked(w, through) for channel, through in acks.items()])
