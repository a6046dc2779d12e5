"""Benchmark of the retention sweep: 1,000,000 history versions of which 10 % are due, with lookups
running meanwhile.  Prints figures; asserts nothing.

    .venv/bin/python bench/bench_retention.py --versions 1000000 --due 0.10

Setup (not timed): R residents loaded with the parallel bulk loader (the lookup targets), then
``--versions`` history versions written directly in the product's layout — each sealed under its
history epoch key with the record's real bytes, with its index entry — a fraction ``--due`` of
them due by the sweep's day.  Then:
  baseline  plain LMDB: delete the same number of keys, in the same batches, from two plain tables
            shaped like the product's (date-first keys with ~300-byte values, and a small index);
  sweep     RetentionSweep.run_blocking() on the product store (its batches are durable
            transactions), while a second thread looks residents up as fast as it can;
  lookups   p50/p99 of decrypted look-ups by resident code before the sweep (quiet) and during it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import tempfile
import threading
import time
from pathlib import Path

import lmdb
import msgspec

from firmware_app.clock import JST, ManualClock
from firmware_app.domain.record import encode_record
from firmware_app.domain.retention import retention_due
from firmware_app.service.bulk_load import load_parallel_blocking
from firmware_app.service.identity_file import IdentityFile
from firmware_app.service.intake import Intake
from firmware_app.service.keyring import Keyring
from firmware_app.service.outbox import Outbox
from firmware_app.service.retention import RetentionSweep
from hsm.config import open_token
from hsm.provision import provision_keys
from hsm.softhsm import ensure_softhsm_token
from peers.population import generate, resident_code_of
from storage import envelope, layout
from storage.store import Store

SEED = 1
_HISTORY = msgspec.msgpack.Encoder()


class _History(msgspec.Struct, array_like=True, frozen=True):
    superseded_on: str
    record: bytes


def _percentiles_us(samples_s: list[float]) -> tuple[float, float]:
    ordered = sorted(samples_s)
    return ordered[len(ordered) // 2] * 1e6, ordered[int(len(ordered) * 0.99)] * 1e6


def _write_history(store: Store, keyring: Keyring, residents: int, versions: int, due_fraction: float, sweep_day: str) -> int:
    """Write ``versions`` sealed history versions and their schedule entries; returns how many are due."""
    rng = random.Random(SEED)
    # Two superseded days: one whose versions fall due by the sweep day, one 40 years later.
    due_day, kept_day = "20261126", "20661126"
    keys = {}
    for day in (due_day, kept_day):
        keys[day] = keyring.epoch_key("history", retention_due(day)[:4])
    sample = [encode_record(r) for r in generate(1000, seed=SEED, today=due_day)]
    due_count = 0
    batch: list[tuple[bytes, bytes, bytes]] = []

    def flush() -> None:
        batch.sort()
        def write(w) -> None:  # type: ignore[no-untyped-def]
            w.put_sorted(layout.HISTORY, [(k, v) for k, v, _ in batch])
            w.put_sorted(layout.HISTORY_INDEX, sorted((ix, k[:8]) for k, _, ix in batch))
        store.write(write)
        batch.clear()

    for i in range(versions):
        code5 = layout.pack_code(resident_code_of(rng.randrange(residents), SEED))
        version = i + 1  # unique per key: versions of one resident need not be consecutive here
        day = due_day if rng.random() < due_fraction else kept_day
        due_count += day == due_day
        key = keys[day]
        hkey = layout.history_key(retention_due(day), code5, version)
        payload = _HISTORY.encode(_History(day, sample[i % len(sample)]))
        sealed = envelope.pack(key.key_id, version, key.seal(payload, envelope.aad(layout.HISTORY, hkey, version, key.key_id)))
        batch.append((hkey, sealed, layout.history_index_key(code5, version)))
        if len(batch) >= 50_000:
            flush()
    if batch:
        flush()
    return due_count


def _baseline(path: Path, due: int, batch: int) -> float:
    """Seconds to delete ``due`` schedule-shaped keys (and as many values) from plain LMDB tables."""
    env = lmdb.open(str(path), map_size=4 << 30, max_dbs=4)
    a, b = env.open_db(b"a"), env.open_db(b"b")
    with env.begin(write=True) as txn:
        for i in range(due):
            k = i.to_bytes(9, "big")
            txn.put(b"21761126" + k, b"", db=a)
            txn.put(k, b"x" * 300, db=b)
    start = time.perf_counter()
    done = 0
    while done < due:
        with env.begin(write=True) as txn:
            cursor = txn.cursor(db=a)
            cursor.first()
            keys = []
            for key, _ in cursor:
                keys.append(key)
                if len(keys) >= batch:
                    break
            for key in keys:
                txn.delete(key[8:], db=b)
                txn.delete(key, db=a)
            done += len(keys)
    elapsed = time.perf_counter() - start
    env.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=1_000_000)
    parser.add_argument("--due", type=float, default=0.10)
    parser.add_argument("--residents", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000, help="deletions per durable transaction")
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true", help="use the store already built in --dir (see --setup-only)")
    parser.add_argument("--setup-only", action="store_true", help="build the store in --dir and stop")
    parser.add_argument("--no-lookups", action="store_true", help="sweep alone (no concurrent look-ups)")
    parser.add_argument("--lookup-rate", type=float, default=2000.0, help="look-ups per second during the sweep (0: as fast as possible)")
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="bench-retention-"))
    try:
        _run(args, base)
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)


def _run(args: argparse.Namespace, base: Path) -> None:
    hsm = ensure_softhsm_token(base / "hsm")
    token = open_token(hsm)
    provision_keys(token, dt.date(2026, 11, 26))
    clock = ManualClock(dt.datetime(2026, 11, 26, 9, tzinfo=JST))
    store = Store(base / "store")
    keyring = Keyring(token, store, clock)
    keyring.open_blocking()
    identity = IdentityFile(store, keyring, clock)
    t0 = time.perf_counter()
    if args.reuse and identity.count_blocking():
        with store.read() as r:
            due = sum(1 for _ in r.items(layout.HISTORY, b"", b"21761126\xff"))
    else:
        load_parallel_blocking(
            identity, generate(args.residents, seed=SEED, today="20261126"), hsm_config=hsm, store_path=base / "store", clock=clock
        )
        due = _write_history(store, keyring, args.residents, args.versions, args.due, "21761126")
    print(f"setup: {args.residents:,} residents, {args.versions:,} history versions ({due:,} due) in {time.perf_counter() - t0:.1f} s")
    if args.setup_only:
        store.close()
        token.close_blocking()
        return

    baseline_s = _baseline(base / "plain", due, args.batch)
    print(f"baseline  plain LMDB, {due:,} schedule+value deletions: {due / baseline_s:12,.0f} /s ({baseline_s:.2f} s)")

    rng = random.Random(SEED + 1)
    codes = [resident_code_of(rng.randrange(args.residents), SEED) for _ in range(20_000)]
    # Quiet look-ups paced exactly as those during the sweep (a look-up after a pause finds colder
    # caches than one in a tight loop; comparing the two would blame the sweep for the pause).
    quiet = []
    pause_s = 1.0 / args.lookup_rate if args.lookup_rate > 0 else 0.0
    for code in codes[:2000]:
        t = time.perf_counter()
        identity.get_blocking(code)
        quiet.append(time.perf_counter() - t)
        if pause_s:
            time.sleep(pause_s)

    clock.set(dt.datetime(2176, 11, 26, 9, tzinfo=JST))
    intake = Intake(store, keyring, identity, prefecture=Outbox(store, keyring, layout.OUTBOX_PREF),
                    card_system=Outbox(store, keyring, layout.OUTBOX_NATIONAL), clock=clock)
    sweep = RetentionSweep(store, keyring, intake, clock, batch=args.batch)
    during: list[float] = []
    done = threading.Event()

    def lookups() -> None:
        i = 0
        pause_s = 1.0 / args.lookup_rate if args.lookup_rate > 0 else 0.0
        while not done.is_set():
            t = time.perf_counter()
            identity.get_blocking(codes[i % len(codes)])
            during.append(time.perf_counter() - t)
            i += 1
            if pause_s:
                time.sleep(pause_s)

    worker = threading.Thread(target=lookups)
    if not args.no_lookups:
        worker.start()
    start = time.perf_counter()
    report = sweep.run_blocking()
    sweep_s = time.perf_counter() - start
    done.set()
    if not args.no_lookups:
        worker.join()
    rate = report.history_versions / sweep_s
    print(
        f"product   retention sweep: {report.history_versions:,} versions deleted in {sweep_s:.2f} s = {rate:12,.0f} /s "
        f"({rate / (due / baseline_s):.0%} of plain); epochs destroyed: {report.epochs_destroyed}"
    )
    q50, q99 = _percentiles_us(quiet)
    d50, d99 = _percentiles_us(during or [0.0])
    print(f"lookups   offered at {'max' if args.lookup_rate <= 0 else f'{args.lookup_rate:,.0f}/s'}; quiet: p50 {q50:.1f} µs, p99 {q99:.1f} µs | during the sweep ({len(during):,}): p50 {d50:.1f} µs, p99 {d99:.1f} µs")
    with store.read() as r:
        left = r.count(layout.HISTORY)
    print(f"left      {left:,} history versions (expected {args.versions - due:,})")
    store.close()
    token.close_blocking()


if __name__ == "__main__":
    main()
