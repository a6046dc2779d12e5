"""The daemon with its links, end to end on loopback TLS, against the peer simulators."""

from __future__ import annotations

import asyncio
from pathlib import Path

from firmware_app.domain.updates import CardEvent, IdentityChange
from peers.register_stream import CardChange, Change, DestinationDue, RegisterStream
from tests.daemon.rig import TODAY, running_cs

POPULATION = 300


def submit_stream(register, stream: RegisterStream, count: int) -> list[Change]:
    """Submit ``count`` events of the stream; returns the identity changes among them."""
    changes = []
    for event in stream.events(count):
        if isinstance(event, Change):
            register.submit("identity_change", IdentityChange(event.op, event.record))
            changes.append(event)
        elif isinstance(event, CardChange):
            register.submit("card_event", CardEvent(event.kind, event.resident_code, event.occurred_on))
        elif isinstance(event, DestinationDue):
            register.submit("destination", event.record)
    return changes


def test_changes_flow_to_the_prefecture_in_order_once(tmp_path: Path, pki, hsm_config, token) -> None:
    async def scenario() -> None:
        stream = RegisterStream(population=POPULATION, seed=3, today=TODAY)
        async with running_cs(tmp_path, pki, hsm_config, token, preload=stream.initial_records()) as rig:
            submit_stream(rig.register, stream, 600)
            await rig.settle()
            assert rig.register.refused == []
            assert rig.prefecture.out_of_order == 0
            assert rig.prefecture.copy == rig.cs_items()
            assert rig.national.cards and rig.national.destinations

    asyncio.run(scenario())
