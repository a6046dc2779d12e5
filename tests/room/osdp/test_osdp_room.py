"""End to end inside the appliance: a libosdp door controller on a pty pair drives the room
service's alarms through the OSDP panel: forced, held open (after a card grant that pulses the
strike), tamper, reader offline and back, install mode and a wrong key."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable

from firmware_app.clock import ManualClock
from firmware_app.room.service import RoomService
from firmware_app.room.settings import RoomConfig

WAIT_S = 15.0


@contextlib.asynccontextmanager
async def room_with_reader(room_config: RoomConfig, rig, store: object, clock: ManualClock) -> AsyncIterator[RoomService]:
    """The room service configured with the rig's OSDP line, started; the reader online."""
    config = dataclasses.replace(room_config, osdp=rig.config, tick_interval_s=0.05)
    service = RoomService(config, store, clock, flush_interval_s=0.05)  # type: ignore[arg-type]
    await service.start()
    try:
        await until(lambda: reader_state(service) == "online")
        yield service
    finally:
        await service.stop()
        rig.sim.stop()
        rig.pty.close()


def door_state(service: RoomService) -> str | None:
    return next((d["state"] for d in service.status()["doors"] if d["door"] == "server-room"), None)


def reader_state(service: RoomService) -> str | None:
    return next((r["state"] for r in service.status()["readers"] if r["reader"] == "mr-in"), None)


async def until(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    """Wait (bounded) until ``condition()`` holds."""
    for _ in range(int(timeout_s / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


def alarm(service: RoomService, kind: str, source: str) -> str | None:
    """The state of the open alarm of ``kind`` at ``source``, None if there is none."""
    return next((str(a["state"]) for a in service.open_alarms() if a["kind"] == kind and a["source"] == source), None)


def test_forced_held_open_and_tamper(room_config, rig, store, clock, run):
    async def scenario():
        rig.sim.start()
        async with room_with_reader(room_config, rig, store, clock) as service:
            rig.sim.door(False)  # the first report tells the door's position
            await until(lambda: door_state(service) == "closed")
            rig.sim.door(True)  # no card, no exit button
            await until(lambda: alarm(service, "door_forced", "door:server-room") == "active")
            rig.sim.door(False)
            await until(lambda: alarm(service, "door_forced", "door:server-room") == "restored")

            rig.sim.present_h10301(37, 1001)  # a valid badge: granted, the strike is pulsed
            await until(lambda: rig.sim.strike_pulses == [(0, 50)])
            rig.sim.door(True)
            await until(lambda: door_state(service) == "open")  # handled as an entry before time jumps
            assert alarm(service, "door_forced", "door:server-room") == "restored"
            clock.advance(61)
            await until(lambda: alarm(service, "door_held", "door:server-room") == "active")
            rig.sim.door(False)
            await until(lambda: alarm(service, "door_held", "door:server-room") == "restored")

            rig.sim.tamper(True)
            await until(lambda: alarm(service, "tamper", "reader:mr-in") == "active")
            rig.sim.tamper(False)
            await until(lambda: alarm(service, "tamper", "reader:mr-in") == "restored")

    run(scenario())


def test_reader_offline_and_back(room_config, rig, store, clock, run):
    async def scenario():
        rig.sim.start()
        async with room_with_reader(room_config, rig, store, clock) as service:
            rig.sim.go_silent()
            await until(lambda: alarm(service, "reader_offline", "reader:mr-in") == "active")
            rig.sim.come_back()
            await until(lambda: alarm(service, "reader_offline", "reader:mr-in") == "restored")
            assert reader_state(service) == "online"

    run(scenario())


def test_install_mode_and_wrong_key_alarm_and_nothing_is_rekeyed(room_config, rig, store, clock, run):
    async def scenario():
        rig.sim.start()
        async with room_with_reader(room_config, rig, store, clock) as service:
            rig.sim.reappear_in_install_mode()
            await until(lambda: alarm(service, "reader_install_mode", "reader:mr-in") == "active")
            rig.sim.stop()
            rig.sim.scbk = bytes(b ^ 0xA5 for b in rig.key)  # a swapped reader with another key
            rig.sim.start()
            await until(lambda: alarm(service, "reader_key_mismatch", "reader:mr-in") is not None, timeout_s=30)
            assert rig.sim.keysets_received == 0 and reader_state(service) != "online"

    run(scenario())
