"""The consistency-check data (整合性確認用本人確認情報, CS function 6) of the current identity file.

What the CS gives the prefecture and the national server: the nine check items of every current
resident, in resident-code order, streamed in chunks, closed by a signed trailer.

Wire form of the items (the *canonical concatenation*)::

    item_0 ‖ item_1 ‖ … ‖ item_{n-1},   item_k = u32be(len(b_k)) ‖ b_k

where ``b_k = encode_check_item(check_item_of(record_k))`` (a msgpack array of the nine items)
and the records are the current records in ascending resident code.  The length prefix makes the
concatenation unambiguous: dropping, merging, splitting or reordering items changes it.  A chunk's
``framed`` bytes are a run of whole items of that concatenation, so a link sends chunks as they
come and the receiver hashes them as they arrive; nothing needs the whole file in memory.

Trailer: ``count`` (items), ``digest = SHA-256(canonical concatenation)``, an optional ``context``
(at most 64 bytes, e.g. the requester's request id or nonce, so an old signed answer cannot be
replayed for a new request) and ``signature``, the HSM's ECDSA P-256 signature (``cs-sign``, raw
r‖s, 64 bytes) over::

    signed = b"cs-check-data/v1\\x00" ‖ u64be(count) ‖ digest ‖ u8(len(context)) ‖ context

A receiver checks it with :func:`verify_check_data` (or :class:`CheckDataVerifier` while
streaming) and the CS's public key DER; every refusal is a :class:`CheckDataRejected`.

Snapshot.  One pass reads one LMDB read transaction held in this process, so the count, digest and
items describe one state of the file even while changes are applied.  With worker processes this
process still reads the snapshot and sends the sealed values to the workers, which open and project
them with their own token login (keys never cross a process); chunks come back in order.  A long
pass is a long reader: a map growth waits for it (see ``storage.store``).

Range digests.  Every chunk also carries, for this side only, the leaf digest of each item,
``leaf_digest(int(code), b_k)`` (``b_k`` without its length prefix), so :func:`check_tree_blocking`
gives the ``RangeTree`` for the range-digest exchange; two sides holding equal items get equal trees.

Nothing here logs, and no error message carries a personal item.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key

from firmware_app.consistency.range_digest import DIGEST_BYTES, RangeTree, leaf_digest
from firmware_app.domain.check_item import check_item_of, decode_check_item, encode_check_item
from firmware_app.domain.record import decode_record
from firmware_app.service.keyring import Keyring, open_worker_keyring
from hsm.config import HsmConfig
from hsm.keys import Signer
from storage import layout
from storage.errors import CorruptValue
from storage.store import Store

__all__ = [
    "DEFAULT_CHUNK_ITEMS",
    "MAX_CONTEXT_BYTES",
    "CheckChunk",
    "CheckDataError",
    "CheckDataRejected",
    "CheckDataVerifier",
    "CheckTrailer",
    "CheckWorkers",
    "TrailerBuilder",
    "check_chunks_blocking",
    "check_items_blocking",
    "check_tree_blocking",
    "decode_trailer",
    "encode_trailer",
    "iter_framed_items",
    "leaf_of_item",
    "produce_check_data_blocking",
    "verify_check_data",
]

#: Items per chunk: about 150 KB of framed items, well inside a link frame (1 MiB).
DEFAULT_CHUNK_ITEMS = 1_000
MAX_CONTEXT_BYTES = 64
SIGNATURE_BYTES = 64
_SIGNED_TAG = b"cs-check-data/v1\x00"
_LENGTH = struct.Struct(">I")
_COUNT = struct.Struct(">Q")
_CODE_BYTES = layout.CODE_BYTES


class CheckDataError(Exception):
    """Base of the check data's own errors (HSM and storage errors pass through unchanged)."""


class CheckDataRejected(CheckDataError):
    """Received check data does not verify: framing, count, digest or signature.  No item is named."""


# -- chunks and trailer ---------------------------------------------------------------------------


class CheckChunk(msgspec.Struct, frozen=True, array_like=True):
    """A run of consecutive items of the canonical concatenation, with this side's leaf data.

    ``framed`` is what a link sends; ``codes`` (5 bytes each, big-endian) and ``leaf_digests``
    (32 bytes each) are local by-products for the range-digest tree, one per item, same order.
    """

    count: int
    framed: bytes
    codes: bytes
    leaf_digests: bytes

    def leaves(self) -> Iterator[tuple[int, bytes]]:
        """(code, leaf digest) of each item, in order."""
        codes, digests = self.codes, self.leaf_digests
        for k in range(self.count):
            yield (
                int.from_bytes(codes[k * _CODE_BYTES : (k + 1) * _CODE_BYTES], "big"),
                digests[k * DIGEST_BYTES : (k + 1) * DIGEST_BYTES],
            )


class CheckTrailer(msgspec.Struct, frozen=True, array_like=True):
    """Closes a stream of check data: item count, SHA-256 of the concatenation, context, signature."""

    count: int
    digest: bytes
    context: bytes
    signature: bytes

    def signed_bytes(self) -> bytes:
        """The bytes the HSM signs (see the module docstring)."""
        return _signed_bytes(self.count, self.digest, self.context)


_TRAILER_ENCODER = msgspec.msgpack.Encoder()
_TRAILER_DECODER = msgspec.msgpack.Decoder(CheckTrailer)


def encode_trailer(trailer: CheckTrailer) -> bytes:
    """The trailer's wire bytes (msgpack array)."""
    return _TRAILER_ENCODER.encode(trailer)


def decode_trailer(data: bytes) -> CheckTrailer:
    """A trailer from its wire bytes; ``CheckDataRejected`` when malformed."""
    try:
        return _TRAILER_DECODER.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise CheckDataRejected("check data trailer is malformed") from None


def _signed_bytes(count: int, digest: bytes, context: bytes) -> bytes:
    if len(context) > MAX_CONTEXT_BYTES:
        raise ValueError(f"context is longer than {MAX_CONTEXT_BYTES} bytes")
    return _SIGNED_TAG + _COUNT.pack(count) + digest + bytes((len(context),)) + context


class TrailerBuilder:
    """Counts and hashes chunks as they pass; signs the result once at the end."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.count = 0
        self.framed_bytes = 0

    def update(self, chunk: CheckChunk) -> None:
        """Take the next chunk (in stream order)."""
        self._hash.update(chunk.framed)
        self.count += chunk.count
        self.framed_bytes += len(chunk.framed)

    def trailer_blocking(self, signer: Signer, *, context: bytes = b"") -> CheckTrailer:
        """The signed trailer of everything taken so far (one HSM signature)."""
        digest = self._hash.digest()
        signature = signer.sign(_signed_bytes(self.count, digest, context))
        return CheckTrailer(self.count, digest, context, signature)


# -- projection -------------------------------------------------------------------------------------


def _project(keyring: Keyring, pairs: list[tuple[bytes, bytes]]) -> CheckChunk:
    """Open, decode and project sealed current records (code5, value), in the order given."""
    keyring.ensure_live()
    framed: list[bytes] = []
    digests: list[bytes] = []
    length, open_value, table = _LENGTH.pack, keyring.open_value, layout.IDENTITY
    for code5, value in pairs:
        _, plaintext = open_value(table, code5, value)
        try:
            record = decode_record(plaintext)
        except msgspec.DecodeError:
            raise CorruptValue("identity value does not decode") from None
        code = int.from_bytes(code5, "big")
        if record.resident_code != f"{code:011d}":
            raise CorruptValue("identity value is not the record of its key")
        item = encode_check_item(check_item_of(record))
        framed.append(length(len(item)))
        framed.append(item)
        digests.append(leaf_digest(code, item))
    return CheckChunk(len(pairs), b"".join(framed), b"".join(code5 for code5, _ in pairs), b"".join(digests))


@dataclass(frozen=True)
class CheckWorkers:
    """Worker processes for a pass: each logs in to the token itself (as ``bulk_load`` does)."""

    hsm_config: HsmConfig
    store_path: Path
    count: int = 2
    strict: bool = False


_PAIRS_OUT = msgspec.msgpack.Encoder()
_PAIRS_IN = msgspec.msgpack.Decoder(list[tuple[bytes, bytes]])
_CHUNK_OUT = msgspec.msgpack.Encoder()
_CHUNK_IN = msgspec.msgpack.Decoder(CheckChunk)

_worker_keyring: Keyring | None = None


def _init_worker(hsm_config: HsmConfig, store_path: str, strict: bool) -> None:
    global _worker_keyring
    _, _worker_keyring, _ = open_worker_keyring(hsm_config, Path(store_path), strict=strict)


def _project_in_worker(pairs_blob: bytes) -> bytes:
    assert _worker_keyring is not None, "worker not initialised"
    return _CHUNK_OUT.encode(_project(_worker_keyring, _PAIRS_IN.decode(pairs_blob)))


def _batches(pairs: Iterable[tuple[bytes, bytes]], size: int) -> Iterator[list[tuple[bytes, bytes]]]:
    batch: list[tuple[bytes, bytes]] = []
    for pair in pairs:
        batch.append(pair)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def check_chunks_blocking(
    store: Store,
    keyring: Keyring,
    *,
    workers: CheckWorkers | None = None,
    chunk_items: int = DEFAULT_CHUNK_ITEMS,
    lo_code: int = 0,
    hi_code: int | None = None,
) -> Iterator[CheckChunk]:
    """The check data of the current records with ``lo_code <= code < hi_code``, in chunks, in code order.

    One read snapshot for the whole pass (held until the generator ends or is closed: close it if
    you stop early).  With ``workers`` the projection runs in worker processes, at most two chunks
    per worker in flight, so memory stays bounded by a few chunks whatever the file size.
    """
    if chunk_items < 1:
        raise ValueError("chunk_items must be at least 1")
    keyring.ensure_live()
    start = lo_code.to_bytes(_CODE_BYTES, "big")
    stop = None if hi_code is None else hi_code.to_bytes(_CODE_BYTES, "big")
    with store.read() as r:
        batches = _batches(r.items(layout.IDENTITY, start, stop), chunk_items)
        if workers is None or workers.count < 1:
            for batch in batches:
                yield _project(keyring, batch)
            return
        context = multiprocessing.get_context("spawn")
        initargs = (workers.hsm_config, str(workers.store_path), workers.strict)
        with ProcessPoolExecutor(workers.count, mp_context=context, initializer=_init_worker, initargs=initargs) as pool:
            in_flight: deque[Future[bytes]] = deque()
            try:
                for batch in batches:
                    in_flight.append(pool.submit(_project_in_worker, _PAIRS_OUT.encode(batch)))
                    if len(in_flight) >= 2 * workers.count:
                        yield _CHUNK_IN.decode(in_flight.popleft().result())
                while in_flight:
                    yield _CHUNK_IN.decode(in_flight.popleft().result())
            finally:
                for future in in_flight:
                    future.cancel()


def produce_check_data_blocking(
    store: Store,
    keyring: Keyring,
    signer: Signer,
    send: Callable[[CheckChunk], None],
    *,
    context: bytes = b"",
    workers: CheckWorkers | None = None,
    chunk_items: int = DEFAULT_CHUNK_ITEMS,
) -> CheckTrailer:
    """Give every chunk of the full check data to ``send`` (in order), then return the signed trailer.

    ``send`` may block (a link's bounded queue): the pass waits, holding only a few chunks.
    """
    if len(context) > MAX_CONTEXT_BYTES:
        raise ValueError(f"context is longer than {MAX_CONTEXT_BYTES} bytes")
    builder = TrailerBuilder()
    chunks = check_chunks_blocking(store, keyring, workers=workers, chunk_items=chunk_items)
    try:
        for chunk in chunks:
            builder.update(chunk)
            send(chunk)
    finally:
        chunks.close()
    return builder.trailer_blocking(signer, context=context)


def check_tree_blocking(
    store: Store,
    keyring: Keyring,
    *,
    workers: CheckWorkers | None = None,
    fanout: int = 16,
    leaf_limit: int = 32,
) -> RangeTree:
    """The range-digest tree over the leaf digests of the full check data (one pass, one snapshot)."""
    return RangeTree.build(
        (leaf for chunk in check_chunks_blocking(store, keyring, workers=workers) for leaf in chunk.leaves()),
        fanout=fanout,
        leaf_limit=leaf_limit,
    )


def check_items_blocking(store: Store, keyring: Keyring, codes: Iterable[int]) -> CheckChunk:
    """The check data of chosen residents (e.g. the differences a reconciliation found), in code
    order; codes not in the current file are left out (the chunk's ``codes`` say which are in)."""
    keyring.ensure_live()
    wanted = sorted(set(codes))
    with store.read() as r:
        pairs = []
        for code in wanted:
            code5 = code.to_bytes(_CODE_BYTES, "big")
            value = r.get(layout.IDENTITY, code5)
            if value is not None:
                pairs.append((code5, value))
        return _project(keyring, pairs)


# -- receiving side ---------------------------------------------------------------------------------


def iter_framed_items(framed: bytes) -> Iterator[bytes]:
    """The items (without length prefix) of a run of framed items; ``CheckDataRejected`` if torn."""
    view = memoryview(framed)
    at, end = 0, len(framed)
    while at < end:
        if end - at < _LENGTH.size:
            raise CheckDataRejected("check data framing is malformed")
        (size,) = _LENGTH.unpack_from(view, at)
        at += _LENGTH.size
        if size == 0 or size > end - at:
            raise CheckDataRejected("check data framing is malformed")
        yield bytes(view[at : at + size])
        at += size


def leaf_of_item(item: bytes) -> tuple[int, bytes]:
    """(code, leaf digest) of one received item, for a receiver building its tree from items it holds.

    ``CheckDataRejected`` when the item is not a check item.
    """
    try:
        code = int(decode_check_item(item).resident_code)
        return code, leaf_digest(code, item)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
        raise CheckDataRejected("check data item is malformed") from None


class CheckDataVerifier:
    """Receiving side: feed framed chunks as they arrive, then ``finish`` with the trailer."""

    def __init__(self, public_key_der: bytes, *, context: bytes = b"") -> None:
        try:
            key = load_der_public_key(public_key_der)
        except ValueError:
            raise CheckDataRejected("signing public key is not a valid DER key") from None
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
            raise CheckDataRejected("signing public key is not a P-256 key")
        if len(context) > MAX_CONTEXT_BYTES:
            raise ValueError(f"context is longer than {MAX_CONTEXT_BYTES} bytes")
        self._key = key
        self._context = context
        self._hash = hashlib.sha256()
        self.count = 0

    def feed(self, framed: bytes) -> int:
        """Take one chunk's framed bytes (whole items only); returns how many items it held."""
        items = sum(1 for _ in iter_framed_items(framed))
        self._hash.update(framed)
        self.count += items
        return items

    def finish(self, trailer: CheckTrailer) -> int:
        """Check count, digest, context and signature; returns the item count or raises ``CheckDataRejected``."""
        if trailer.count != self.count:
            raise CheckDataRejected("check data item count does not match its trailer")
        if trailer.digest != self._hash.digest():
            raise CheckDataRejected("check data digest does not match its trailer")
        if trailer.context != self._context:
            raise CheckDataRejected("check data answers another request")
        if len(trailer.signature) != SIGNATURE_BYTES:
            raise CheckDataRejected("check data signature does not verify")
        half = SIGNATURE_BYTES // 2
        der = encode_dss_signature(
            int.from_bytes(trailer.signature[:half], "big"), int.from_bytes(trailer.signature[half:], "big")
        )
        try:
            self._key.verify(der, trailer.signed_bytes(), ec.ECDSA(hashes.SHA256()))
        except (_CryptoInvalidSignature, ValueError):
            raise CheckDataRejected("check data signature does not verify") from None
        return self.count


def verify_check_data(
    public_key_der: bytes, chunks: Iterable[bytes], trailer: CheckTrailer, *, context: bytes = b""
) -> int:
    """Verify a whole received stream (framed chunks, in order) against its trailer; returns the count."""
    verifier = CheckDataVerifier(public_key_der, context=context)
    for framed in chunks:
        verifier.feed(framed)
    return verifier.finish(trailer)
