"""The audit trail: entries batched into one LMDB transaction per flush, checkpoints signed by the
HSM key, verification, reading for auditors, and retention that keeps the chain verifiable.

``record()`` is cheap (a list append) so the machine room may call it thousands of times a second;
a flusher task commits the batch every ``flush_interval_s`` and whoever needs an entry durable
before answering (the console) awaits ``flush()``.  Satisfies the ``AuditSink`` protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

import msgspec
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from firmware_app.audit.chain import (
    GENESIS_HASH,
    AuditEntry,
    Checkpoint,
    Scalar,
    VerifyReport,
    check_detail,
    decode_checkpoint,
    decode_stored,
    encode_checkpoint,
    stored_entry,
    verify_chain,
)
from firmware_app.audit.errors import AuditRefused, AuditUnavailable
from firmware_app.clock import Clock
from firmware_app.journal import event
from hsm.errors import HsmError
from hsm.keys import Signer
from storage import layout
from storage.errors import StorageError
from storage.store import Store, Writer

__all__ = ["AuditSink", "AuditTrail", "TrailSettings"]

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_KIND_CHARS = 64
MAX_ACTOR_CHARS = 64
MAX_SUBJECT_CHARS = 128
MAX_DETAIL_ITEMS = 16
MAX_DETAIL_CHARS = 256
_ANCHOR_KEY = b"audit_anchor"


class AuditSink(Protocol):
    """What every part that must leave an audit record calls (see docs/console.md)."""

    async def record(self, kind: str, *, actor: str, subject: str = "", detail: Mapping[str, Scalar] | None = None) -> None: ...


@dataclass(frozen=True)
class TrailSettings:
    """Timings and bounds of the trail."""

    flush_interval_s: float = 0.2
    checkpoint_interval_s: float = 60.0
    max_pending: int = 100_000
    retention_days: int = 1826
    retention_batch: int = 10_000


class AuditTrail:
    """Append, checkpoint, verify, read and expire the audit chain in ``store``."""

    def __init__(self, store: Store, signer: Signer, clock: Clock, settings: TrailSettings | None = None) -> None:
        self._store = store
        self._signer = signer
        self._clock = clock
        self.settings = settings or TrailSettings()
        self._pending: list[tuple[str, str, str, str, dict[str, Scalar]]] = []
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="cs-audit")
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._head_seq = 0
        self._head_hash = GENESIS_HASH
        self._anchor = (0, GENESIS_HASH)
        self._last_cp_seq = 0
        self._last_cp_s = 0.0
        self._public_key: ec.EllipticCurvePublicKey | None = None

    async def _run(self, what: str, fn: Callable[..., T], *args: object) -> T:
        def call() -> T:
            try:
                return fn(*args)
            except (StorageError, HsmError) as exc:
                log.error("audit %s failed: %s", what, type(exc).__name__, extra=event("audit.failed"))
                raise AuditUnavailable(f"audit {what} failed") from None

        return await asyncio.get_running_loop().run_in_executor(self._writer, call)

    # -- life cycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Read the head of the chain, then flush in the background."""
        await self._run("open", self._open_blocking)
        self._last_cp_s = self._clock.monotonic_s()
        self._task = asyncio.create_task(self._flush_loop(), name="audit-flush")

    def _open_blocking(self) -> None:
        self._public_key = _load_public(self._signer.public_key_der())
        with self._store.read() as r:
            anchor = r.get(layout.META, _ANCHOR_KEY)
            if anchor is not None:
                self._anchor = (layout.unpack_u64(anchor[:8]), anchor[8:])
            self._head_seq, self._head_hash = self._anchor
            last = r.last(layout.AUDIT)
            if last is not None:
                self._head_seq = layout.unpack_u64(last[0])
                self._head_hash = last[1][-32:]
            cp = r.last(layout.AUDIT_CHECKPOINTS)
            self._last_cp_seq = layout.unpack_u64(cp[0]) if cp is not None else 0

    async def stop(self) -> None:
        """Flush what is pending and sign a checkpoint over it (the last step before the store closes)."""
        # A flag, not a cancel: a cancel can be swallowed by wait_for when the wake-up races it.
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        try:
            await self.flush()
            await self.checkpoint()
        finally:
            self._writer.shutdown(wait=True)

    async def _flush_loop(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.flush_interval_s)
            self._wake.clear()
            if self._closing:
                return
            try:
                await self.flush()
                if self._clock.monotonic_s() - self._last_cp_s >= self.settings.checkpoint_interval_s:
                    await self.checkpoint()
            except AuditUnavailable:
                await asyncio.sleep(self.settings.flush_interval_s)  # logged; kept pending, tried again

    # -- appending --------------------------------------------------------------------------------

    async def record(self, kind: str, *, actor: str, subject: str = "", detail: Mapping[str, Scalar] | None = None) -> None:
        """Queue one entry (no personal data: residents by pseudonym).  ``AuditRefused`` when malformed."""
        if not isinstance(kind, str) or not 0 < len(kind) <= MAX_KIND_CHARS:
            raise AuditRefused("audit kind must be a short name")
        if not isinstance(actor, str) or not 0 < len(actor) <= MAX_ACTOR_CHARS:
            raise AuditRefused("audit actor must be a short name")
        if not isinstance(subject, str) or len(subject) > MAX_SUBJECT_CHARS:
            raise AuditRefused("audit subject is too long")
        try:
            flat = check_detail(detail, max_items=MAX_DETAIL_ITEMS, max_chars=MAX_DETAIL_CHARS)
        except ValueError as exc:
            raise AuditRefused(str(exc)) from None
        self._pending.append((self._clock.now().isoformat(timespec="microseconds"), kind, actor, subject, flat))
        if len(self._pending) >= self.settings.max_pending:
            await self.flush()  # backpressure: the caller waits for the commit
        elif len(self._pending) == 1:
            self._wake.set()

    async def flush(self) -> None:
        """Commit every queued entry in one transaction; returns once they are durable."""
        async with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                self._head_seq, self._head_hash = await self._run("append", self._append_blocking, batch)
            except BaseException:
                self._pending = batch + self._pending
                raise

    def _append_blocking(self, batch: list[tuple[str, str, str, str, dict[str, Scalar]]]) -> tuple[int, bytes]:
        seq0, hash0 = self._head_seq, self._head_hash

        def write(w: Writer) -> tuple[int, bytes]:
            seq, prev = seq0, hash0
            for at, kind, actor, subject, detail in batch:
                seq += 1
                value, prev = stored_entry(prev, AuditEntry(seq, at, kind, actor, subject, detail))
                w.put(layout.AUDIT, layout.pack_u64(seq), value)
            return seq, prev

        return self._store.write(write)

    async def checkpoint(self) -> int:
        """Sign the head of the chain (if it moved since the last checkpoint); returns the head's seq."""
        async with self._lock:
            self._last_cp_s = self._clock.monotonic_s()
            if self._head_seq == self._last_cp_seq or self._head_seq == 0:
                return self._head_seq
            await self._run("checkpoint", self._checkpoint_blocking)
            log.info("audit checkpoint signed at entry %d", self._head_seq, extra=event("audit.checkpoint"))
            return self._head_seq

    def _checkpoint_blocking(self) -> None:
        cp = self._signed_checkpoint(self._head_seq, self._head_hash, self._last_cp_seq)
        self._store.write(lambda w: w.put(layout.AUDIT_CHECKPOINTS, layout.pack_u64(cp.seq), encode_checkpoint(cp)))
        self._last_cp_seq = cp.seq

    def _signed_checkpoint(self, seq: int, digest: bytes, prev_checkpoint_seq: int) -> Checkpoint:
        at = self._clock.now().isoformat(timespec="seconds")
        unsigned = Checkpoint(seq, digest, at, self._anchor[0], self._anchor[1], prev_checkpoint_seq)
        return msgspec.structs.replace(unsigned, signature=self._signer.sign(unsigned.signed_bytes()))

    # -- verification and reading -----------------------------------------------------------------

    async def verify(self) -> VerifyReport:
        """Flush, then verify the whole retained chain against its checkpoints (one snapshot)."""
        await self.flush()
        report = await self._run("verification", self._verify_blocking)
        if not report.ok:
            log.error("audit chain broken at entry %s", report.first_broken_seq, extra=event("audit.verify_failed"))
        return report

    def _verify_blocking(self) -> VerifyReport:
        with self._store.read() as r:
            return verify_chain(r.items(layout.AUDIT), r.items(layout.AUDIT_CHECKPOINTS), r.last(layout.AUDIT_CHECKPOINTS), self._verify_signature)

    def _verify_signature(self, data: bytes, signature: bytes) -> None:
        assert self._public_key is not None
        if len(signature) != 64:
            raise ValueError("signature has the wrong length")
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        self._public_key.verify(der, data, ec.ECDSA(hashes.SHA256()))

    async def entries(self, *, from_seq: int = 0, limit: int = 100, kind: str = "", actor: str = "", subject: str = "") -> list[AuditEntry]:
        """Entries from ``from_seq`` on (the newest ``limit`` when ``from_seq`` is 0), filtered."""
        await self.flush()
        if not from_seq and not (kind or actor or subject):
            from_seq = max(1, self._head_seq - limit + 1)  # the newest ``limit``, without a scan from the start
        return await self._run("read", self._entries_blocking, from_seq, limit, kind, actor, subject)

    def _entries_blocking(self, from_seq: int, limit: int, kind: str, actor: str, subject: str) -> list[AuditEntry]:
        out: list[AuditEntry] = []
        with self._store.read() as r:
            for _, value in r.items(layout.AUDIT, layout.pack_u64(from_seq)):
                try:
                    entry = decode_stored(value)[0]
                except Exception:  # noqa: BLE001 - a damaged entry is verify's business; reading skips it
                    continue
                if (kind and not entry.kind.startswith(kind)) or (actor and entry.actor != actor) or (subject and entry.subject != subject):
                    continue
                out.append(entry)
                if from_seq and len(out) >= limit:
                    break
        return out if from_seq else out[-limit:]

    @property
    def head_seq(self) -> int:
        return self._head_seq

    # -- retention --------------------------------------------------------------------------------

    async def run_retention(self) -> dict[str, int]:
        """Delete entries older than ``retention_days`` (at most ``retention_batch`` a run) and sign a
        checkpoint whose anchor is the last entry deleted, so the rest still verifies."""
        await self.flush()
        async with self._lock:
            deleted = await self._run("retention", self._retention_blocking)
        if deleted:
            log.info("audit retention deleted %d entries", deleted, extra=event("audit.retention"))
        return {"deleted": deleted, "anchor_seq": self._anchor[0]}

    def _retention_blocking(self) -> int:
        cutoff = (self._clock.now() - datetime.timedelta(days=self.settings.retention_days)).isoformat()
        last: tuple[int, bytes] | None = None
        with self._store.read() as r:
            for _, value in r.items(layout.AUDIT):
                entry, _, digest = decode_stored(value)
                if entry.at >= cutoff or entry.seq >= self._head_seq:
                    break  # the head stays, so the chain never empties
                last = (entry.seq, digest)
                if entry.seq - self._anchor[0] >= self.settings.retention_batch:
                    break
        if last is None:
            return 0
        anchor_seq, anchor_hash = last
        prev_cp_seq = self._last_cp_seq
        if prev_cp_seq == self._head_seq:
            # The new checkpoint replaces the one at the head: it keeps that one's link backwards.
            with self._store.read() as r:
                stored = r.get(layout.AUDIT_CHECKPOINTS, layout.pack_u64(prev_cp_seq))
            prev_cp_seq = decode_checkpoint(stored).prev_checkpoint_seq if stored is not None else 0
        self._anchor = (anchor_seq, anchor_hash)
        cp = self._signed_checkpoint(self._head_seq, self._head_hash, prev_cp_seq)

        def write(w: Writer) -> int:
            stop = layout.pack_u64(anchor_seq + 1)
            n = len(w.pop_range(layout.AUDIT, b"", stop, self.settings.retention_batch + 1))
            w.pop_range(layout.AUDIT_CHECKPOINTS, b"", stop, 1 << 30)
            w.put(layout.META, _ANCHOR_KEY, layout.pack_u64(anchor_seq) + anchor_hash)
            w.put(layout.AUDIT_CHECKPOINTS, layout.pack_u64(cp.seq), encode_checkpoint(cp))
            return n

        deleted = self._store.write(write)
        self._last_cp_seq = cp.seq
        return deleted


def _load_public(der: bytes) -> ec.EllipticCurvePublicKey:
    key = serialization.load_der_public_key(der)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key
