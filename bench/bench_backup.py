"""Benchmark of backups: backup, verify, restore and off-site seal/open of an N-record store, against
a plain file copy plus one SHA-256 pass of the same data file, measured in the same run.

Prints figures and ratios; it is not a test and asserts only that the restored store reads back.

    .venv/bin/python bench/bench_backup.py --records 1000000 [--dir DIR] [--keep]

Phases, after the store is loaded with the parallel bulk loader (as bench_identity.py does):
  baseline    shutil.copyfile of data.mdb, fsync, and a SHA-256 pass over the copy
  lmdb copy   Store.copy_to alone (LMDB's copy from one read transaction; not compacting, see Store.copy_to)
  backup      backup_blocking: LMDB copy, SHA-256, summary of the copy, manifest signed in the HSM
  verify      verify_backup: signature, size, SHA-256, content summary of the copy
  restore     restore_blocking: signature, copy + SHA-256 in one pass, content check, fsync, swap
  off-site    seal (X25519 + HKDF + AES-256-GCM in 1 MiB chunks) and open
Peak anonymous memory (RssAnon) is sampled over the backup-to-open phases: it must not grow with
the store (nothing reads the data file whole).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import lmdb
from bench_identity import AnonPeak, anon_kb, export_population, read_blobs

from firmware_app.clock import SystemClock, today_of
from firmware_app.service.backup import (
    DATA_FILE,
    backup_blocking,
    restore_blocking,
    verify_backup,
)
from firmware_app.service.backup_files import fsync_file, hash_file
from firmware_app.service.bulk_load import load_encoded_parallel_blocking
from firmware_app.service.identity_file import DEFAULT_BATCH_RECORDS, IdentityFile
from firmware_app.service.keyring import Keyring
from firmware_app.service.offsite import (
    generate_recipient_keypair,
    open_offsite_blocking,
    seal_offsite_blocking,
)
from hsm.config import open_token
from hsm.keys import Signer
from hsm.labels import SIGNING_LABEL
from hsm.provision import provision_keys
from hsm.softhsm import ensure_softhsm_token
from storage import layout
from storage.store import Store

MB = 1024 * 1024
T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """(result, seconds) of one call."""
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def rate(size_bytes: int, seconds: float) -> str:
    return f"{size_bytes / MB / seconds:8,.0f} MB/s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2, help="load worker processes")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="reuse a store already loaded in --dir")
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="cs-bench-backup-"))
    work.mkdir(parents=True, exist_ok=True)
    for name in ("baseline", "lmdb-copy", "backup", "restored", "offsite.bin", "opened"):
        path = work / name
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    clock = SystemClock()
    hsm_config = ensure_softhsm_token(work / "hsm")
    token = open_token(hsm_config)
    provision_keys(token, dt.date.today())
    store_path = work / "store"
    if not args.keep:
        shutil.rmtree(store_path, ignore_errors=True)
    store = Store(store_path)
    keyring = Keyring(token, store, clock)
    keyring.open_blocking()
    identity = IdentityFile(store, keyring, clock)
    print(f"# backup benchmark: {args.records:,} records, {os.cpu_count()} CPUs, python {sys.version.split()[0]}, lmdb {lmdb.version()}")
    if identity.count_blocking() != args.records:
        if identity.count_blocking():
            raise SystemExit("the store in --dir holds another number of records; run without --keep")
        export = work / "population.bin"
        export_population(export, args.records, DEFAULT_BATCH_RECORDS, today_of(clock))
        loaded, load_s = timed(lambda: load_encoded_parallel_blocking(
            identity, read_blobs(export), hsm_config=hsm_config, store_path=store_path, clock=clock, workers=args.workers))
        assert loaded == args.records
        print(f"load (parallel, {args.workers} workers)  {loaded / load_s:>10,.0f} rec/s  ({load_s:.1f} s)")
    store_file_bytes = store.file_bytes()
    print(f"store: data.mdb {store_file_bytes / MB:,.0f} MB on disk, {store.used_bytes() / MB:,.0f} MB used")

    # Baseline: a plain copy of the file and one SHA-256 pass, as any file-level backup would do.
    (work / "baseline").mkdir()
    baseline_file = work / "baseline" / DATA_FILE

    def baseline() -> tuple[int, str]:
        shutil.copyfile(store_path / DATA_FILE, baseline_file)
        fsync_file(baseline_file)
        return hash_file(baseline_file)

    (baseline_size, _), baseline_s = timed(baseline)
    print(f"baseline copy+fsync+sha256     {baseline_s:7.2f} s  {rate(baseline_size, baseline_s)}  ({baseline_size / MB:,.0f} MB)")
    shutil.rmtree(work / "baseline")

    (work / "lmdb-copy").mkdir()
    _, copy_s = timed(lambda: store.copy_to(work / "lmdb-copy"))
    copy_bytes = (work / "lmdb-copy" / DATA_FILE).stat().st_size
    print(f"  LMDB copy alone              {copy_s:7.2f} s  {rate(copy_bytes, copy_s)}  ({copy_bytes / MB:,.0f} MB)")
    shutil.rmtree(work / "lmdb-copy")

    signer = Signer(token, SIGNING_LABEL)
    public_key = signer.public_key_der()
    with AnonPeak() as peak:
        start_kb = anon_kb()
        manifest, backup_s = timed(lambda: backup_blocking(store, signer, work / "backup", clock=clock, note="bench"))
        size = manifest.data_size_bytes
        print(f"backup (copy+sha256+sign)      {backup_s:7.2f} s  {rate(size, backup_s)}  ({size / MB:,.0f} MB, "
              f"{size / store_file_bytes:.0%} of the store file)  ratio to baseline {backup_s / baseline_s:.2f}")
        _, verify_s = timed(lambda: verify_backup(work / "backup", public_key))
        print(f"verify                         {verify_s:7.2f} s  {rate(size, verify_s)}")
        _, restore_s = timed(lambda: restore_blocking(work / "backup", work / "restored", public_key))
        print(f"restore (verifies as it copies){restore_s:7.2f} s  {rate(size, restore_s)}  ratio to baseline {restore_s / baseline_s:.2f}")
        print(f"verify + restore               {verify_s + restore_s:7.2f} s")
        private_pem, public_pem = generate_recipient_keypair()
        sealed_bytes, seal_s = timed(lambda: seal_offsite_blocking(work / "backup", public_pem, work / "offsite.bin"))
        print(f"off-site seal                  {seal_s:7.2f} s  {rate(size, seal_s)}  ({sealed_bytes / MB:,.0f} MB, overhead {sealed_bytes - size - len((work / 'backup' / 'manifest.json').read_bytes()):,} bytes)")
        _, open_s = timed(lambda: open_offsite_blocking(work / "offsite.bin", private_pem, work / "opened"))
        print(f"off-site open                  {open_s:7.2f} s  {rate(size, open_s)}")
        print("    " + peak.report("backup to off-site open") + f" (this process at start {start_kb / 1024:,.0f} MB)")
    store.close()

    restored = Store(work / "restored")
    try:
        keyring = Keyring(token, restored, clock)
        keyring.open_blocking()
        count = IdentityFile(restored, keyring, clock).count_blocking()
        assert count == args.records == manifest.store.entries[layout.IDENTITY], count
    finally:
        restored.close()
    print(f"restored store reads back: {count:,} residents")
    token.close_blocking()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
