"""``cs-demo``, the main job for now: a Meguro-sized identity file in a SoftHSM2 token and LMDB, shown working.

Provisions a token under the state directory, loads the synthetic population (resuming where an
interrupted load stopped), then shows look-ups, searches, a change kept as history, and that no
name, address or individual number stands in the file in plaintext.  Personal items are shown
masked, as the console will show them to a role that does not need them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
from pathlib import Path

import msgspec

from firmware_app.clock import SystemClock, today_of
from firmware_app.domain.record import IdentityRecord
from firmware_app.domain.terms import FourItemQuery
from firmware_app.service.bulk_load import load_parallel_blocking
from firmware_app.service.identity_file import IdentityFile
from firmware_app.service.keyring import Keyring
from hsm.config import open_token
from hsm.errors import HsmError
from hsm.provision import provision_keys
from hsm.softhsm import ensure_softhsm_token
from peers.population import generate
from storage.store import Store

MEGURO_RESIDENTS = 280_000


def mask(text: str) -> str:
    """First character kept, the rest hidden."""
    return text[:1] + "＊" * max(0, len(text) - 1)


def masked(record: IdentityRecord) -> str:
    """A one-line, masked view of a record."""
    return (
        f"code ******{record.resident_code[-5:]}  name {mask(record.name_kanji)}  "
        f"born {record.birth_date[:4]}  sex {record.sex}  address {record.address[:6]}…"
    )


def _timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return result, (time.perf_counter() - t0) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cs-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, default=Path("state/demo"))
    parser.add_argument("--residents", type=int, default=MEGURO_RESIDENTS)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    clock = SystemClock()
    today = today_of(clock)
    try:
        hsm_config = ensure_softhsm_token(args.state_dir)
        token = open_token(hsm_config)
        created = provision_keys(token, dt.date.today())
        print(f"HSM token ready under {args.state_dir}/softhsm ({len(created)} keys created now)")
        store = Store(args.state_dir / "identity")
        keyring = Keyring(token, store, clock)
        keyring.open_blocking()
    except HsmError as exc:
        print(f"cs-demo: {exc}", file=sys.stderr)
        return 1
    identity = IdentityFile(store, keyring, clock)

    have = identity.count_blocking()
    if have < args.residents:
        print(f"loading {args.residents - have:,} synthetic residents (already in the file: {have:,})")
        t0 = time.perf_counter()
        # Batches commit in order, so an interrupted load resumes at the count already in the file.
        load_parallel_blocking(
            identity,
            generate(args.residents - have, seed=args.seed, start=have, today=today),
            hsm_config=hsm_config,
            store_path=store.path,
            clock=clock,
            workers=2,
        )
        elapsed_s = time.perf_counter() - t0
        print(f"loaded {args.residents - have:,} residents in {elapsed_s:.1f} s "
              f"({(args.residents - have) / elapsed_s:,.0f} records/s with 2 worker processes, generation included)")
    else:
        print(f"identity file already holds {have:,} residents")
    print(f"LMDB file: {store.used_bytes() / 1e6:,.0f} MB used for {identity.count_blocking():,} current records")

    rng = random.Random(2026)
    sample = [next(generate(1, seed=args.seed, start=rng.randrange(args.residents), today=today)) for _ in range(3)]
    print("\nlook-up by resident code (decrypted, masked):")
    for record in sample:
        current, us = _timed(lambda r=record: identity.get_blocking(r.resident_code))
        print(f"  v{current.version} {masked(current.record)}   {us:,.0f} µs")

    # Search with the resident's current record: a previous run of the demo may have moved them.
    person = identity.get_blocking(next(r for r in sample if r.individual_number).resident_code).record
    found, us = _timed(lambda: identity.find_by_number_blocking(person.individual_number))
    print(f"\nsearch by individual number: {len(found)} match   {us:,.0f} µs")
    found, us = _timed(lambda: identity.search_blocking(FourItemQuery(name=person.name_kana, birth_date=person.birth_date)))
    print(f"search by kana name + birth date: {len(found)} match(es)   {us:,.0f} µs")
    found, us = _timed(lambda: identity.search_blocking(FourItemQuery(name=person.name_kanji, address=person.address)))
    print(f"search by kanji name + address: {len(found)} match(es)   {us:,.0f} µs")

    current = identity.get_blocking(person.resident_code)
    moved = msgspec.structs.replace(
        current.record,
        address="東京都目黒区中目黒三丁目6番2号",
        change_reason="TENKYO",
        change_date=today,
        notified_on=today,
        address_set_on=today,
        update_sequence=current.record.update_sequence + 1,
        timestamp=clock.now().strftime("%Y%m%d%H%M%S"),
    )
    version = identity.put_blocking(moved)
    history = identity.history_blocking(person.resident_code)
    print(f"\nchange of address (転居) applied: now version {version}, {len(history)} superseded version(s) kept as history")

    with open(store.path / "data.mdb", "rb") as f:
        raw = f.read(store.used_bytes())  # beyond the last used page the reserved file is all zeros
    probes = list(generate(200, seed=args.seed, start=0, today=today))
    leaks = sum(
        bool(p.name_kanji.encode() in raw or p.address.encode() in raw or (p.individual_number and p.individual_number.encode() in raw))
        for p in probes
    )
    print(f"plaintext scan of the LMDB file for 200 residents' names, addresses, numbers: {leaks} found")
    store.close()
    token.close_blocking()
    return 0 if leaks == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
