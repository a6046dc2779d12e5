"""Bulk load across processes: workers validate, seal and index batches; this process writes them.

Each worker logs in to the token itself and unwraps its own copies of the data keys (python-pkcs11
and SoftHSM scale by processes, not threads; keys never cross a process boundary).  Batches travel
as msgpack; at most two per worker are in flight, so memory stays bounded.  LMDB is written only
here, one durable transaction per batch, in input order.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice
from pathlib import Path

import msgspec

from firmware_app.clock import Clock, today_of
from firmware_app.domain.record import IdentityRecord
from firmware_app.service.identity_file import DEFAULT_BATCH_RECORDS, DEFAULT_COMMIT_RECORDS, IdentityFile, PreparedBatch
from firmware_app.service.keyring import open_worker_keyring
from hsm.config import HsmConfig

_RECORDS = msgspec.msgpack.Encoder()
_RECORDS_IN = msgspec.msgpack.Decoder(list[IdentityRecord])
_PREPARED_IN = msgspec.msgpack.Decoder(PreparedBatch)

_worker: IdentityFile | None = None


def _init_worker(hsm_config: HsmConfig, store_path: str, strict: bool) -> None:
    global _worker
    _worker = IdentityFile(*open_worker_keyring(hsm_config, Path(store_path), strict=strict))


def _prepare(records_blob: bytes, today: str) -> bytes:
    assert _worker is not None, "worker not initialised"
    return _RECORDS.encode(_worker.prepare_batch(_RECORDS_IN.decode(records_blob), today))


def _chunks(records: Iterable[IdentityRecord], size: int) -> Iterator[list[IdentityRecord]]:
    it = iter(records)
    while batch := list(islice(it, size)):
        yield batch


def load_parallel_blocking(
    identity: IdentityFile,
    records: Iterable[IdentityRecord],
    *,
    hsm_config: HsmConfig,
    store_path: Path,
    clock: Clock,
    workers: int = 2,
    strict: bool = False,
    batch_records: int = DEFAULT_BATCH_RECORDS,
) -> int:
    """Load new residents with ``workers`` preparing processes; returns how many were loaded.

    Same guarantees as ``IdentityFile.load_blocking``: a batch with an invalid or known resident is
    refused whole (the error is raised here), earlier batches stay committed.
    """
    if workers < 1:
        return identity.load_blocking(records, batch_records=batch_records)
    batches = (_RECORDS.encode(batch) for batch in _chunks(records, batch_records))
    return load_encoded_parallel_blocking(
        identity, batches, hsm_config=hsm_config, store_path=store_path, clock=clock, workers=workers, strict=strict
    )


def load_encoded_parallel_blocking(
    identity: IdentityFile,
    batches: Iterable[bytes],
    *,
    hsm_config: HsmConfig,
    store_path: Path,
    clock: Clock,
    workers: int = 2,
    strict: bool = False,
    commit_records: int = DEFAULT_COMMIT_RECORDS,
) -> int:
    """As :func:`load_parallel_blocking`, for batches already encoded as msgpack arrays of records
    (the migration file's form): only the workers decode them.  Malformed bytes are refused by the
    worker's decoder (``msgspec.DecodeError``/``ValidationError``) and nothing of that batch is written.

    Prepared batches are committed in groups of about ``commit_records``; a batch that a worker
    refuses is raised after the batches before it are committed, while a resident already in the file
    refuses its whole group.
    """
    today = today_of(clock)
    loaded = 0
    pending: list[PreparedBatch] = []

    def commit_pending() -> int:
        group = tuple(pending)
        pending.clear()
        return identity.commit_batch(*group)

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(hsm_config, str(store_path), strict)) as pool:
        in_flight: deque[Future[bytes]] = deque()

        def take_one() -> int:
            try:
                pending.append(_PREPARED_IN.decode(in_flight.popleft().result()))
            except BaseException:
                # A refused batch: what was prepared before it is still committed, then the error goes up.
                if pending:
                    commit_pending()
                raise
            if sum(len(batch.identity) for batch in pending) >= commit_records:
                return commit_pending()
            return 0

        try:
            for blob in batches:
                in_flight.append(pool.submit(_prepare, blob, today))
                # Two batches per worker in flight keep every worker busy while this process commits.
                if len(in_flight) >= 2 * workers:
                    loaded += take_one()
            while in_flight:
                loaded += take_one()
            if pending:
                loaded += commit_pending()
        finally:
            for future in in_flight:
                future.cancel()
    return loaded
