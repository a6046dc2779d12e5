"""kill -9 during a bulk load and during a stream of changes: nothing acknowledged is lost, nothing half-written.

Each round runs the writer in a child process with its own SoftHSM2 token (a login is per process),
kills it with SIGKILL after a random delay, then checks the file from a fresh process.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from child_identity import PRELUDE, child_env

COMMON = PRELUDE + "TOTAL, BATCH = 40_000, 1_000\n"

LOAD = COMMON + textwrap.dedent(
    """
    have = identity.count_blocking()
    for start in range(have, TOTAL, BATCH):
        identity.load_blocking(generate(BATCH, seed=5, start=start, today="20261126"), batch_records=BATCH)
        print("ack", start + BATCH, flush=True)
    print("done", flush=True)
    """
)

VERIFY_LOAD = COMMON + textwrap.dedent(
    """
    count = identity.count_blocking()
    ok = count % BATCH == 0
    with store.read() as r:
        counts = {db: r.count(db) for db in layout.INDEXES}
    records = list(generate(count, seed=5, today="20261126"))
    ok = ok and all(identity.get_blocking(rec.resident_code).record == rec for rec in records)
    ok = ok and counts[layout.IX_BIRTH] == count and counts[layout.IX_ADDR] == count
    ok = ok and counts[layout.IX_NUMBER] == sum(1 for rec in records if rec.individual_number)
    print(count, "consistent" if ok else "INCONSISTENT")
    """
)

CHANGES = COMMON + textwrap.dedent(
    """
    if identity.count_blocking() == 0:
        identity.load_blocking(generate(200, seed=6, today="20261126"))
        print("loaded", flush=True)
    people = list(generate(200, seed=6, today="20261126"))
    step = int(sys.argv[2])
    while step < 20_000:
        person = people[step % 200]
        current = identity.get_blocking(person.resident_code)
        changed = msgspec.structs.replace(
            current.record, address=f"東京都目黒区八雲一丁目{step % 40 + 1}番{step // 40 + 1}号",
            change_reason="TENKYO", update_sequence=current.record.update_sequence + 1)
        identity.put_blocking(changed)
        step += 1
        print("ack", step, flush=True)
    print("done", flush=True)
    """
)

VERIFY_CHANGES = COMMON + textwrap.dedent(
    """
    people = list(generate(200, seed=6, today="20261126")) if identity.count_blocking() else []
    applied = 0
    ok = identity.count_blocking() in (0, 200)
    for person in people:
        current = identity.get_blocking(person.resident_code)
        history = identity.history_blocking(person.resident_code)
        ok = ok and [h.version for h in history] == list(range(1, current.version))
        ok = ok and current.record.update_sequence == person.update_sequence + current.version - 1
        applied += current.version - 1
    with store.read() as r:
        ok = ok and r.count(layout.IX_ADDR) == len(people) and r.count(layout.HISTORY) == applied
    print(applied, "consistent" if ok else "INCONSISTENT")
    """
)


def _run_and_kill(script: str, args: list[str], delay_s: float) -> list[str]:
    """Start the writer, SIGKILL it ``delay_s`` after its first acknowledgement (or let it finish,
    bounded by a minute); return every line it printed, that is everything it acknowledged."""
    child = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=child_env(), text=True
    )
    lines: list[str] = []
    first_ack = threading.Event()

    def read() -> None:
        for line in child.stdout:
            lines.append(line.strip())
            if line.startswith(("ack", "done")):
                first_ack.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    first_ack.wait(timeout=60)
    deadline = time.monotonic() + delay_s
    while time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.005)
    if child.poll() is None:
        child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    reader.join(timeout=60)
    return lines


def _verify(script: str, state: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", script, state], capture_output=True, text=True, env=child_env(), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()


def _last_ack(lines: list[str]) -> int:
    acks = [int(line.split()[1]) for line in lines if line.startswith("ack ")]
    return acks[-1] if acks else 0


@pytest.mark.slow
def test_bulk_load_killed_at_random_moments(tmp_path):
    rng = random.Random(20261126)
    state = str(tmp_path)
    acknowledged, killed_midway = 0, 0
    for _ in range(10):
        lines = _run_and_kill(LOAD, [state], rng.uniform(0.0, 1.2))
        acknowledged = max(acknowledged, _last_ack(lines))
        count, verdict = _verify(VERIFY_LOAD, state)
        assert verdict == "consistent"
        assert int(count) >= acknowledged
        killed_midway += "done" not in lines and 0 < int(count) < 40_000
        acknowledged = int(count)
        if "done" in lines:
            break
    assert killed_midway >= 4, "the kills must land while batches are being written"
    lines = _run_and_kill(LOAD, [state], 120)
    assert "done" in lines
    assert _verify(VERIFY_LOAD, state) == ["40000", "consistent"]


@pytest.mark.slow
def test_changes_killed_at_random_moments(tmp_path):
    rng = random.Random(7)
    state = str(tmp_path)
    acknowledged, killed_midway = 0, 0
    for _ in range(8):
        lines = _run_and_kill(CHANGES, [state, str(acknowledged)], rng.uniform(0.0, 1.0))
        acked_now = _last_ack(lines)
        acknowledged = max(acknowledged, acked_now)
        applied, verdict = _verify(VERIFY_CHANGES, state)
        assert verdict == "consistent"
        # Every acknowledged change is in the file; at most the one in flight got further.
        assert acknowledged <= int(applied) <= acknowledged + 1
        killed_midway += "done" not in lines and acked_now > 0
        acknowledged = int(applied)
        if "done" in lines:
            break
    assert killed_midway >= 4, "the kills must land while changes are being written"
