"""Audit trail figures: appends per second (batched flushes), a signed checkpoint, verification.

    .venv/bin/python bench/bench_audit.py [--entries 100000]
Prints figures measured in this run on this machine (SoftHSM2 token made for the run).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import tempfile
import time
from pathlib import Path

from firmware_app.audit.trail import AuditTrail
from firmware_app.clock import JST, ManualClock
from hsm.config import open_token
from hsm.keys import Signer
from hsm.labels import SIGNING_LABEL
from hsm.provision import provision_keys
from hsm.softhsm import ensure_softhsm_token
from storage.store import Store


async def run(entries: int, tmp: Path) -> None:
    hsm = ensure_softhsm_token(tmp / "hsm")
    token = open_token(hsm)
    provision_keys(token, datetime.date(2026, 11, 26))
    store = Store(tmp / "db")
    trail = AuditTrail(store, Signer(token, SIGNING_LABEL), ManualClock(datetime.datetime(2026, 11, 26, 9, tzinfo=JST)))
    await trail.start()
    start = time.perf_counter()
    for i in range(entries):
        await trail.record("room.door_opened", actor="door:server-room", subject=f"door:{i % 4}", detail={"n": i})
        if i % 4096 == 4095:
            await trail.flush()
    await trail.flush()
    append_s = time.perf_counter() - start
    start = time.perf_counter()
    await trail.checkpoint()
    cp_s = time.perf_counter() - start
    start = time.perf_counter()
    report = await trail.verify()
    verify_s = time.perf_counter() - start
    await trail.stop()
    store.close()
    token.close_blocking()
    print(f"appended {entries} entries in {append_s:.2f} s: {entries / append_s:,.0f} entries/s (flush every 4096)")
    print(f"one signed checkpoint: {cp_s * 1000:.1f} ms")
    print(f"verify {report.entries} entries: {verify_s:.2f} s ({report.entries / verify_s:,.0f} entries/s), ok={report.ok}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args.entries, Path(tmp)))


if __name__ == "__main__":
    main()
