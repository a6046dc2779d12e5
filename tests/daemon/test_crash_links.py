"""kill -9 of the daemon at random moments during a 20,000-update stream, ten times over: every
update the register saw acknowledged is in the file, and the prefecture's copy ends equal to the
CS file, each notice applied once and in order.  And a prefecture that refuses connections for a
while: updates keep being taken, and the backlog drains in order when it returns."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from firmware_app.domain.check_item import check_item_of, decode_check_item
from peers.consistency import ConsistencyClient
from peers.register import submit_event
from peers.register_stream import Change
from peers.stand import expected_items, open_stand

pytestmark = pytest.mark.slow

POPULATION = 2_000
UPDATES = 20_000
KILLS = 10
WAIT_S = 60.0


async def _cs_items(stand) -> dict:
    full = await ConsistencyClient(stand.endpoint, stand.pki.tls("prefecture"), stand.public_key).full_check()
    return {code: decode_check_item(item) for code, item in full.items.items()}


async def _drained(stand, notices: int) -> None:
    register, prefecture = stand.register, stand.prefecture
    try:
        async with asyncio.timeout(WAIT_S):
            while register.acked_through < register.submitted or prefecture.last_seq < notices:
                await asyncio.sleep(0.05)
    except TimeoutError:
        state = (register.acked_through, register.submitted, register.connections, prefecture.last_seq, notices)
        raise AssertionError(
            f"not drained: register acked/submitted/connections, prefecture last/expected = {state}; "
            f"register failures {register.failures[-5:]}"
        ) from None


def test_kill_9_during_a_stream_loses_nothing_acknowledged_and_applies_nothing_twice(tmp_path: Path) -> None:
    rng = random.Random(20261126)

    async def scenario() -> None:
        async with open_stand(tmp_path, population=POPULATION, seed=11) as stand:
            initial = [check_item_of(r) for r in stand.stream.initial_records()]
            events = list(stand.stream.events(UPDATES))
            changes = [e for e in events if isinstance(e, Change)]

            async def feed() -> None:
                for start in range(0, len(events), 500):
                    for event in events[start : start + 500]:
                        submit_event(stand.register, event)
                    await asyncio.sleep(0.02)

            feeder = asyncio.create_task(feed())
            for _ in range(KILLS):
                await asyncio.sleep(rng.uniform(0.1, 1.2))
                acked_before = stand.register.acked_through
                await stand.restart(kill=True)
                assert stand.register.acked_through >= acked_before
            await feeder
            await _drained(stand, len(changes))

            register, prefecture = stand.register, stand.prefecture
            assert register.resume_regressions == 0, "the CS resumed below an acknowledged update"
            assert register.refused == []
            assert register.acked_through == register.submitted == len(events)
            assert prefecture.out_of_order == 0
            assert prefecture.last_seq == len(changes), "one notice per change, none twice"
            expected = expected_items(initial, changes)
            cs = await _cs_items(stand)
            assert cs == expected, "the CS file is the stream applied once, in order"
            assert prefecture.copy == cs
            assert stand.national.cards or stand.national.destinations

    asyncio.run(scenario())


def test_prefecture_refusing_for_a_while_then_the_backlog_drains_in_order(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with open_stand(tmp_path, population=POPULATION, seed=12) as stand:
            initial = [check_item_of(r) for r in stand.stream.initial_records()]
            prefecture = stand.prefecture
            prefecture.faults.refuse = True
            # Close the connection it already has: from now on it refuses every reconnect.
            prefecture.faults.disconnect_after = 1
            events = list(stand.stream.events(3_000))
            changes = [e for e in events if isinstance(e, Change)]
            for event in events:
                submit_event(stand.register, event)
            await stand.register.wait_acked(len(events), WAIT_S)
            held = prefecture.last_seq
            assert held < len(changes), "the prefecture took nothing while refusing"
            prefecture.faults.refuse = False
            await _drained(stand, len(changes))
            assert prefecture.out_of_order == 0
            assert prefecture.copy == expected_items(initial, changes) == await _cs_items(stand)

    asyncio.run(scenario())
