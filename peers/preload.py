"""``python -m peers.preload``: migrate the synthetic population into a CS store before the daemon
first starts (the initial load of a new CS), in its own process with its own token login."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from firmware_app.clock import SystemClock
from firmware_app.service.bulk_load import load_parallel_blocking
from firmware_app.service.identity_file import IdentityFile
from firmware_app.service.keyring import Keyring
from hsm.config import HsmConfig, open_token
from peers.register_stream import RegisterStream
from storage.store import Store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="peers.preload", description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--softhsm-conf", type=Path, required=True)
    parser.add_argument("--pin-file", type=Path, required=True)
    parser.add_argument("--population", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--today", required=True, help="YYYYMMDD the population is generated for")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    hsm = HsmConfig(pin_file=args.pin_file, softhsm_conf=args.softhsm_conf)
    token = open_token(hsm)
    store = Store(args.store)
    try:
        clock = SystemClock()
        keyring = Keyring(token, store, clock)
        keyring.open_blocking()
        identity = IdentityFile(store, keyring, clock)
        records = RegisterStream(population=args.population, seed=args.seed, today=args.today).initial_records()
        start_s = time.perf_counter()
        loaded = load_parallel_blocking(
            identity, records, hsm_config=hsm, store_path=args.store, clock=clock, workers=args.workers if args.population > 20_000 else 0
        )
        print(f"preload: {loaded:,} residents in {time.perf_counter() - start_s:.1f} s", file=sys.stderr)
    finally:
        store.close()
        token.close_blocking()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
