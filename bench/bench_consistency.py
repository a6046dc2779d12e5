"""Benchmark of the consistency-check data (CS function 6) of a real identity file, and of the
range-digest exchange against a peer copy that differs in 100 residents.

Prints figures; it is not a test and asserts nothing.  Generation of the synthetic residents and
the loads are outside every timed span.

    .venv/bin/python bench/bench_consistency.py --records 1000000

Phases, on fresh LMDB files in --dir:
  load        the population into the identity file with the parallel bulk loader (2 workers)
  plain       the floor: the same records as plain msgpack values in one LMDB table, and one pass
              doing everything the check data does (iterate, decode, project the nine items,
              encode, frame, SHA-256, leaf digests) except unsealing
  check data  the full check data, consumed chunk by chunk and dropped (as a link would send it),
              SHA-256 and the HSM-signed trailer included: in this process, then with worker
              processes, then in strict mode (every unseal inside the HSM)
  tree        RangeTree over the leaf digests of the pass
  exchange    a peer copy whose check items differ in --differences residents (90 % changed
              items, 5 % missing on the peer, 5 % only on the peer), reconciled in process
Peak anonymous memory (RssAnon, so the LMDB map's file pages are not counted) of this process and
its workers is sampled every 20 ms during each check-data pass.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import lmdb
import msgspec

from bench_identity import AnonPeak, anon_kb, export_population, load_plain, read_blobs
from firmware_app.clock import SystemClock, today_of
from firmware_app.consistency.range_digest import RangeTree, leaf_digest
from firmware_app.consistency.reconcile import Responder, reconcile
from firmware_app.domain.check_item import check_item_of, decode_check_item, encode_check_item
from firmware_app.domain.record import decode_record
from firmware_app.service.bulk_load import load_encoded_parallel_blocking
from firmware_app.service.check_data import (
    CheckWorkers,
    TrailerBuilder,
    check_chunks_blocking,
    check_items_blocking,
    encode_trailer,
    iter_framed_items,
)
from firmware_app.service.identity_file import DEFAULT_BATCH_RECORDS, IdentityFile
from firmware_app.service.keyring import Keyring
from hsm.config import open_token
from hsm.keys import Signer
from hsm.labels import SIGNING_LABEL
from hsm.provision import provision_keys
from hsm.softhsm import ensure_softhsm_token
from peers.population import generate
from storage import layout
from storage.store import Store

SEED = 1  # bench_identity.export_population's seed
#: Assumed per-message overhead on a link: the 4-byte frame header and ~16 bytes of envelope.
MESSAGE_OVERHEAD_BYTES = 4 + 16


def plain_pass(path: Path) -> tuple[float, int]:
    """Seconds and framed bytes of the check-data work over plain values: everything but unsealing."""
    env = lmdb.open(str(path), map_size=8 * 1024**3, max_dbs=4, readonly=True, lock=False, readahead=False)
    db = env.open_db(layout.IDENTITY.encode(), create=False)
    t0 = time.perf_counter()
    hasher, framed_bytes = hashlib.sha256(), 0
    with env.begin(buffers=False) as txn:
        chunk: list[bytes] = []
        for code5, value in txn.cursor(db):
            item = encode_check_item(check_item_of(decode_record(value)))
            chunk.append(len(item).to_bytes(4, "big"))
            chunk.append(item)
            leaf_digest(int.from_bytes(code5, "big"), item)
            if len(chunk) >= 2_000:
                blob = b"".join(chunk)
                hasher.update(blob)
                framed_bytes += len(blob)
                chunk = []
        blob = b"".join(chunk)
        hasher.update(blob)
        framed_bytes += len(blob)
    elapsed_s = time.perf_counter() - t0
    env.close()
    return elapsed_s, framed_bytes


def raw_iteration_s(store: Store) -> float:
    """Seconds to walk the identity db's sealed values once (no decode, no crypto)."""
    t0 = time.perf_counter()
    with store.read() as r:
        for _ in r.items(layout.IDENTITY):
            pass
    return time.perf_counter() - t0


@dataclass
class PassFigures:
    """What one full check-data pass took and gave."""

    elapsed_s: float = 0.0
    items: int = 0
    framed_bytes: int = 0
    trailer_bytes: int = 0
    chunks: int = 0
    largest_chunk_bytes: int = 0
    leaves: list[tuple[int, bytes]] = field(default_factory=list)

    def link_bytes(self) -> int:
        """Bytes on a link: framed items, trailer, and the per-message overhead of each chunk and the trailer."""
        return self.framed_bytes + self.trailer_bytes + (self.chunks + 1) * MESSAGE_OVERHEAD_BYTES


def check_pass(store: Store, keyring: Keyring, signer: Signer, workers: CheckWorkers | None,
               *, keep_leaves: bool = False) -> PassFigures:
    """One full pass, chunks dropped as a link would after sending them, signed trailer included."""
    builder = TrailerBuilder()
    figures = PassFigures()
    t0 = time.perf_counter()
    for chunk in check_chunks_blocking(store, keyring, workers=workers):
        builder.update(chunk)
        figures.chunks += 1
        figures.largest_chunk_bytes = max(figures.largest_chunk_bytes, len(chunk.framed))
        if keep_leaves:
            figures.leaves.extend(chunk.leaves())
    trailer = builder.trailer_blocking(signer, context=b"bench")
    figures.elapsed_s = time.perf_counter() - t0
    figures.items, figures.framed_bytes = builder.count, builder.framed_bytes
    figures.trailer_bytes = len(encode_trailer(trailer))
    return figures


def peer_copy(store: Store, keyring: Keyring, leaves: list[tuple[int, bytes]], total: int, differences: int,
              today: str, rng: random.Random) -> tuple[list[tuple[int, bytes]], set[int]]:
    """The peer's leaves: ours with the items of some residents changed, some missing, some extra."""
    extra_n = missing_n = max(1, differences // 20)
    changed_n = differences - extra_n - missing_n
    picked = rng.sample(range(len(leaves)), changed_n + missing_n)
    changed_codes = {leaves[k][0] for k in picked[:changed_n]}
    missing_codes = {leaves[k][0] for k in picked[changed_n:]}
    peer = {code: digest for code, digest in leaves if code not in missing_codes}
    chunk = check_items_blocking(store, keyring, changed_codes)
    for (code, _), item in zip(chunk.leaves(), iter_framed_items(chunk.framed)):
        theirs = msgspec.structs.replace(decode_check_item(item), address="東京都目黒区八雲九丁目9番9号")
        peer[code] = leaf_digest(code, encode_check_item(theirs))
    extra_codes = set()
    for record in generate(extra_n, seed=SEED, start=total, today=today):
        code = int(record.resident_code)
        peer[code] = leaf_digest(code, encode_check_item(check_item_of(record)))
        extra_codes.add(code)
    return sorted(peer.items()), changed_codes | missing_codes | extra_codes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes for the load and the parallel pass")
    parser.add_argument("--differences", type=int, default=100)
    parser.add_argument("--no-strict", action="store_true", help="skip the strict-mode passes")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="cs-bench-consistency-"))
    work.mkdir(parents=True, exist_ok=True)
    for name in ("product", "plain", "hsm"):
        shutil.rmtree(work / name, ignore_errors=True)
    clock = SystemClock()
    today = today_of(clock)
    rng = random.Random(20261126)
    hsm_config = ensure_softhsm_token(work / "hsm")
    token = open_token(hsm_config)
    provision_keys(token, dt.date.today())
    signer = Signer(token, SIGNING_LABEL)
    export = work / "population.bin"
    export_population(export, args.records, DEFAULT_BATCH_RECORDS, today)
    print(f"# consistency-check data benchmark: {args.records:,} records, {os.cpu_count()} CPUs, "
          f"{args.workers} workers, python {sys.version.split()[0]}, lmdb {lmdb.version()}")

    store = Store(work / "product", map_size_bytes=1024**3)
    keyring = Keyring(token, store, clock)
    keyring.open_blocking()
    identity = IdentityFile(store, keyring, clock)
    t0 = time.perf_counter()
    loaded = load_encoded_parallel_blocking(identity, read_blobs(export), hsm_config=hsm_config, store_path=store.path,
                                            clock=clock, workers=args.workers)
    print(f"load (not part of the check data)  {loaded:,} records in {time.perf_counter() - t0:.1f} s")
    load_plain(work / "plain", export, args.records, today, validate=False, commit_records=25_000)

    raw_s = raw_iteration_s(store)
    plain_s, plain_bytes = plain_pass(work / "plain")
    print(f"raw LMDB walk of identity db   {raw_s:7.2f} s   {args.records / raw_s:>11,.0f} rec/s   (sealed values, nothing else)")
    print(f"plain baseline (no unsealing)  {plain_s:7.2f} s   {args.records / plain_s:>11,.0f} rec/s   "
          f"(decode, project, encode, frame, SHA-256, leaf digests)")

    workers = CheckWorkers(hsm_config, store.path, count=args.workers)
    passes = [("check data, 1 process", keyring, None, True)]
    if args.workers:
        passes.append((f"check data, {args.workers} workers", keyring, workers, False))
    if not args.no_strict:
        strict_keyring = Keyring(token, store, clock, strict=True)
        strict_keyring.open_blocking()
        passes.append(("strict, 1 process", strict_keyring, None, False))
        if args.workers:
            strict_workers = CheckWorkers(hsm_config, store.path, count=args.workers, strict=True)
            passes.append((f"strict, {args.workers} workers", strict_keyring, strict_workers, False))
    leaves: list[tuple[int, bytes]] = []
    last = PassFigures()
    with AnonPeak() as peak:
        for label, ring, pool, keep in passes:
            # The first pass also keeps the leaves for the tree, so its memory includes them.
            start_kb = anon_kb()
            peak.reset()
            last = check_pass(store, ring, signer, pool, keep_leaves=keep)
            leaves = last.leaves or leaves
            elapsed_s = last.elapsed_s
            print(f"{label:<30} {elapsed_s:7.2f} s   {last.items / elapsed_s:>11,.0f} rec/s   "
                  f"{elapsed_s / plain_s:5.2f}x plain   target <= 15 s: {'met' if elapsed_s <= 15 else 'NOT met'}")
            print(f"    peak anonymous memory: this process {peak.self_kb / 1024:,.0f} MB "
                  f"(+{max(0, peak.self_kb - start_kb) / 1024:,.0f} MB over the pass, "
                  f"{'leaves kept for the tree' if keep else 'chunks dropped as sent'}), "
                  f"workers {peak.workers_kb / 1024:,.0f} MB")
    full_bytes = last.link_bytes()
    print(f"full check data                {last.items:,} items, {last.framed_bytes:,} framed bytes "
          f"({last.framed_bytes / last.items:.1f} per item; plain pass {plain_bytes:,}), "
          f"{last.chunks:,} chunks (largest {last.largest_chunk_bytes:,} bytes), trailer {last.trailer_bytes} bytes")
    print(f"    on a link: {full_bytes:,} bytes with {MESSAGE_OVERHEAD_BYTES} bytes of frame+envelope per chunk and trailer")

    t0 = time.perf_counter()
    tree = RangeTree.build(leaves)
    build_s = time.perf_counter() - t0
    print(f"tree build (from the leaves)   {build_s:7.2f} s   {len(leaves) / build_s:>11,.0f} leaves/s")

    peer_leaves, expected = peer_copy(store, keyring, leaves, args.records, args.differences, today, rng)
    peer = RangeTree.build(peer_leaves)
    t0 = time.perf_counter()
    r = reconcile(tree, Responder(peer))
    exchange_s = time.perf_counter() - t0
    found = r.differences()
    messages = 2 * r.round_trips
    moved = r.bytes_sent + r.bytes_received + messages * MESSAGE_OVERHEAD_BYTES
    ours = check_items_blocking(store, keyring, found)
    ship = len(ours.framed) + MESSAGE_OVERHEAD_BYTES
    print(f"differences                    {len(expected)} planted, {len(found)} found, exact: {found == expected}")
    print(f"bytes moved                    {moved:,} ({r.bytes_sent:,} sent + {r.bytes_received:,} received "
          f"+ {messages} x {MESSAGE_OVERHEAD_BYTES} overhead) = {100 * moved / full_bytes:.3f} % of the full check data "
          f"(target <= 2 %)")
    print(f"    then the {ours.count} differing items this side holds: {ship:,} bytes; "
          f"together {100 * (moved + ship) / full_bytes:.3f} %")
    print(f"round trips                    {r.round_trips}   (exchange in process {exchange_s:.3f} s)")
    store.close()
    token.close_blocking()
    if args.dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
