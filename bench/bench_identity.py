"""Benchmark of the identity file at Meguro-to-city scale, against a plain LMDB baseline in the same run.

Prints figures and ratios; it is not a test and asserts nothing.  Generation of the synthetic
records is excluded from every timed span (records are made a batch at a time, outside the clock).

    .venv/bin/python bench/bench_identity.py --records 1000000

Phases, each on fresh LMDB files in --dir:
  plain       the same records, same serialisation, same sorted batches, one LMDB table, no
              encryption, no indexes, no validation (the floor)
  plain+val   as plain, with the domain validation every product write does
  product     the identity file: validation, AES-256-GCM (keys in process memory, wrapped in the
              SoftHSM2 token), five blind indexes (HMAC-SHA256)
  lookups     decrypted record by resident code, random residents, one read transaction each
  searches    name kana + birth date; kanji name + address (index candidates, decrypted, confirmed)
  strict      the product load with every encryption and MAC inside the HSM (--strict-records)
Peak anonymous memory (RssAnon: RSS less file-backed pages such as the LMDB map) is sampled every
20 ms, for this process and its load workers, over the product load (which runs first) and again
over the plain loads.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from collections.abc import Iterator

import lmdb
import msgspec
import psutil

from firmware_app.clock import SystemClock, today_of
from firmware_app.domain.record import IdentityRecord, encode_record
from firmware_app.domain.terms import FourItemQuery
from firmware_app.domain.validate import validate_record
from firmware_app.service.bulk_load import load_encoded_parallel_blocking
from firmware_app.service.identity_file import DEFAULT_BATCH_RECORDS, DEFAULT_COMMIT_RECORDS, IdentityFile
from firmware_app.service.keyring import Keyring
from hsm.config import HsmConfig, open_token
from hsm.provision import provision_keys
from hsm.softhsm import ensure_softhsm_token
from peers.population import generate, resident_code_of
from storage import layout
from storage.store import Store

SEED = 1


def anon_kb(pid: int | str = "self") -> int:
    """RssAnon of a process (RSS less file-backed pages such as the LMDB map), in KiB; 0 if gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class AnonPeak:
    """Samples anonymous memory every 20 ms on a background thread: this process, its worker
    processes, and both together at the same moment; keeps the maxima since the last reset."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self._me = psutil.Process()
        self._stop = threading.Event()
        self._interval_s = interval_s
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.reset()

    def reset(self) -> None:
        """Start a new measurement window."""
        self.self_kb = self.workers_kb = self.total_kb = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            mine = anon_kb()
            workers = sum(anon_kb(child.pid) for child in self._me.children(recursive=True))
            self.self_kb = max(self.self_kb, mine)
            self.workers_kb = max(self.workers_kb, workers)
            self.total_kb = max(self.total_kb, mine + workers)
            self._stop.wait(self._interval_s)

    def report(self, label: str) -> str:
        """One line: the window's peaks in MB."""
        return (f"peak anonymous memory, {label}: this process {self.self_kb / 1024:,.0f} MB, "
                f"workers {self.workers_kb / 1024:,.0f} MB, together {self.total_kb / 1024:,.0f} MB")

    def __enter__(self) -> AnonPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


_BATCH_OUT = msgspec.msgpack.Encoder()
_BATCH_IN = msgspec.msgpack.Decoder(list[IdentityRecord])


def export_population(path: Path, total: int, batch: int, today: str) -> None:
    """Write the population as the register's migration file would come: length-prefixed msgpack batches."""
    with open(path, "wb") as f:
        for start in range(0, total, batch):
            blob = _BATCH_OUT.encode(list(generate(min(batch, total - start), seed=SEED, start=start, today=today)))
            f.write(len(blob).to_bytes(4, "big") + blob)


def read_blobs(path: Path) -> Iterator[bytes]:
    """The migration file's encoded batches."""
    with open(path, "rb") as f:
        while header := f.read(4):
            yield f.read(int.from_bytes(header, "big"))


def read_batches(path: Path) -> Iterator[list[IdentityRecord]]:
    """Batches of records from the migration file (reading and decoding are part of every timed load)."""
    for blob in read_blobs(path):
        yield _BATCH_IN.decode(blob)


def load_plain(path: Path, export: Path, total: int, today: str, *, validate: bool, commit_records: int) -> tuple[float, int]:
    """Records/s and bytes used in one plain LMDB table: same input, serialisation, batching and
    records per transaction as the product load, nothing else."""
    env = lmdb.open(str(path), map_size=8 * 1024**3, max_dbs=4, sync=True, metasync=True, readahead=False)
    db = env.open_db(layout.IDENTITY.encode())

    def commit(items: list[tuple[bytes, bytes]]) -> None:
        items.sort()
        with env.begin(write=True) as txn:
            txn.cursor(db).putmulti(items, overwrite=False)

    t0 = time.perf_counter()
    items: list[tuple[bytes, bytes]] = []
    for records in read_batches(export):
        for record in records:
            if validate:
                validate_record(record, today=today)
            items.append((layout.pack_code(record.resident_code), encode_record(record)))
        if len(items) >= commit_records:
            commit(items)
            items = []
    if items:
        commit(items)
    elapsed_s = time.perf_counter() - t0
    used_bytes = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    env.close()
    return total / elapsed_s, used_bytes


def load_product(identity: IdentityFile, export: Path, total: int, batch: int, *, workers: int,
                 hsm_config: HsmConfig, store_path: Path, strict: bool, commit_records: int) -> float:
    """Records/s into the identity file, in-process (workers=0) or with worker processes."""
    t0 = time.perf_counter()
    if workers:
        loaded = load_encoded_parallel_blocking(identity, read_blobs(export), hsm_config=hsm_config,
                                                store_path=store_path, clock=SystemClock(), workers=workers, strict=strict,
                                                commit_records=commit_records)
    else:
        loaded = identity.load_blocking((r for records in read_batches(export) for r in records), batch_records=batch)
    elapsed_s = time.perf_counter() - t0
    assert loaded == total
    return total / elapsed_s


def percentiles_us(samples_s: list[float]) -> tuple[float, float, float]:
    """p50, p99 and max in microseconds."""
    ordered = sorted(samples_s)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6  # noqa: E731
    return pick(0.50), pick(0.99), ordered[-1] * 1e6


def time_lookups(identity: IdentityFile, total: int, n: int, rng: random.Random) -> tuple[float, float, float]:
    codes = [resident_code_of(rng.randrange(total), SEED) for _ in range(n)]
    samples = []
    for code in codes:
        t0 = time.perf_counter()
        current = identity.get_blocking(code)
        samples.append(time.perf_counter() - t0)
        assert current is not None
    return percentiles_us(samples)


def time_searches(identity: IdentityFile, total: int, n: int, rng: random.Random, today: str):
    people = [next(generate(1, seed=SEED, start=rng.randrange(total), today=today)) for _ in range(n)]
    results = {}
    for label, make in (
        ("kana+birth", lambda r: FourItemQuery(name=r.name_kana, birth_date=r.birth_date)),
        ("name+address", lambda r: FourItemQuery(name=r.name_kanji, address=r.address)),
    ):
        samples, found = [], 0
        for record in people:
            query = make(record)
            t0 = time.perf_counter()
            hits = identity.search_blocking(query)
            samples.append(time.perf_counter() - t0)
            found += any(h.record.resident_code == record.resident_code for h in hits)
        results[label] = (*percentiles_us(samples), found / n)
    return results


def open_identity(state: Path, name: str, token, *, strict: bool) -> tuple[Store, IdentityFile]:
    store = Store(state / name, map_size_bytes=1024**3)
    keyring = Keyring(token, store, SystemClock(), strict=strict)
    keyring.open_blocking()
    return store, IdentityFile(store, keyring, SystemClock())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--strict-records", type=int, default=None, help="default: same as --records")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH_RECORDS)
    parser.add_argument("--commit-records", type=int, default=DEFAULT_COMMIT_RECORDS, help="records per load transaction")
    parser.add_argument("--lookups", type=int, default=20_000)
    parser.add_argument("--searches", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=2, help="load worker processes (0: load in this process)")
    parser.add_argument("--single-records", type=int, default=0, help="also time an in-process load of this many")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    args = parser.parse_args()
    strict_records = args.records if args.strict_records is None else args.strict_records
    work = args.dir or Path(tempfile.mkdtemp(prefix="cs-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    for name in ("plain", "plain-val", "single", "product", "strict"):
        shutil.rmtree(work / name, ignore_errors=True)
    today = today_of(SystemClock())
    rng = random.Random(42)
    hsm_config = ensure_softhsm_token(work / "hsm")
    token = open_token(hsm_config)
    provision_keys(token, dt.date.today())
    export = work / "population.bin"
    export_population(export, args.records, args.batch, today)
    if args.strict_records and args.strict_records != args.records:
        export_population(work / "population-strict.bin", strict_records, args.batch, today)
    strict_export = export if strict_records == args.records else work / "population-strict.bin"
    print(f"# identity file benchmark: {args.records:,} records, batch {args.batch:,}, {args.commit_records:,} per commit, {os.cpu_count()} CPUs, "
          f"{args.workers} load workers, python {sys.version.split()[0]}, lmdb {lmdb.version()}")
    print("# every load reads and decodes the same msgpack migration file inside its timer; every commit is durable")
    with AnonPeak() as peak:
        base_kb = anon_kb()
        # The product load runs first, so its memory is not mixed with heap the baselines leave behind.
        store, identity = open_identity(work, "product", token, strict=False)
        product_rps = load_product(identity, export, args.records, args.batch, workers=args.workers,
                                   hsm_config=hsm_config, store_path=store.path, strict=False,
                                   commit_records=args.commit_records)
        print(f"product load              {product_rps:>12,.0f} rec/s")
        print("    " + peak.report("product load") + f" (this process at start {base_kb / 1024:,.0f} MB)")
        p50, p99, worst = time_lookups(identity, args.records, args.lookups, rng)
        print(f"lookup by resident code   p50 {p50:7.1f} µs  p99 {p99:7.1f} µs  max {worst:9.1f} µs  (n={args.lookups:,})")
        for label, (p50, p99, worst, recall) in time_searches(identity, args.records, args.searches, rng, today).items():
            print(f"search {label:<18} p50 {p50:7.1f} µs  p99 {p99:7.1f} µs  max {worst:9.1f} µs  found {recall:.1%}")
        product_mb = store.used_bytes() / 1e6
        store.close()
        peak.reset()
        plain_rps, plain_bytes = load_plain(work / "plain", export, args.records, today, validate=False,
                                            commit_records=args.commit_records)
        print(f"plain load                {plain_rps:>12,.0f} rec/s   product is {product_rps / plain_rps:.1%} of it")
        plain_val_rps, _ = load_plain(work / "plain-val", export, args.records, today, validate=True,
                                       commit_records=args.commit_records)
        print(f"plain+validation load     {plain_val_rps:>12,.0f} rec/s   product is {product_rps / plain_val_rps:.1%} of it")
        print("    " + peak.report("plain loads"))
        plain_mb = plain_bytes / 1e6
        print(f"data size (used pages)    {product_mb:>12,.0f} MB        plain {plain_mb:,.0f} MB ({product_mb / plain_mb:.2f}x)")
        if args.single_records:
            single_store, single = open_identity(work, "single", token, strict=False)
            single_export = work / "population-single.bin"
            export_population(single_export, args.single_records, args.batch, today)
            single_rps = load_product(single, single_export, args.single_records, args.batch, workers=0,
                                      hsm_config=hsm_config, store_path=single_store.path, strict=False,
                                      commit_records=args.commit_records)
            print(f"product load, 1 process   {single_rps:>12,.0f} rec/s   (n={args.single_records:,})")
            single_store.close()
        if strict_records:
            strict_store, strict_identity = open_identity(work, "strict", token, strict=True)
            strict_rps = load_product(strict_identity, strict_export, strict_records, args.batch, workers=args.workers,
                                      hsm_config=hsm_config, store_path=strict_store.path, strict=True,
                                      commit_records=args.commit_records)
            print(f"strict (in-HSM) load      {strict_rps:>12,.0f} rec/s   "
                  f"{strict_rps / product_rps:.1%} of product, {strict_rps / plain_rps:.1%} of plain  (n={strict_records:,})")
            strict_store.close()
    token.close_blocking()
    if args.dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
