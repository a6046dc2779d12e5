"""Benchmark: a door opened without a grant at an OSDP door controller, to the alarm on MQTT.

Prints figures and ratios; it is not a test and asserts nothing.  Everything is real and local:
a libosdp door controller (peers/osdp_door.py) on a pty pair, the OsdpPanel (libosdp control
panel, secure channel) feeding the RoomService, LMDB, and mosquitto started with the shipped
configuration and accounts on a loopback port, watched by the room's ``AlarmWatcher``
(peers/room_sim.py) logged in as ``cs-room-watch``.

    .venv/bin/python bench/bench_room_osdp.py --samples 300

Per sample: the controller reports the door closed, the bench waits for the forced-door alarm to
be published as restored and acknowledges it (so the next opening is a new alarm, not a swinger
the room quietens); then the controller reports the door open (no card, no exit button)
and the clock runs until the watcher receives the new alarm, active.  A random pause of up to
150 ms before each opening keeps the openings out of step with the polls.  Measured in the same
run, per sample:
  osdp      controller submits the input report -> the door event handed to the room on the loop
            (the OSDP poll round trip: libosdp's CP polls a reader about every 100 ms here, with a
            20 ms refresh sleep on both sides)
  alarm     controller submits the input report -> the alarm received from the broker
and once, before the samples, the idle poll period (time between the control panel's frames on
the line, with the reader online in secure channel).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import random
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from firmware_app.clock import SystemClock
from firmware_app.room.events import DoorContact, RoomEvent
from firmware_app.room.osdp.panel import OsdpPanel
from firmware_app.room.osdp.settings import load_osdp_config
from firmware_app.room.service import RoomService
from firmware_app.room.settings import load_room_config
from peers.broker import mosquitto
from peers.osdp_door import DoorController, PtyPair
from peers.room_sim import AlarmWatcher
from storage.store import Store

ALARM = ("door_forced", "door:server-room")
WAIT_S = 10.0


class TimingSink:
    """Stands between the panel and the room: notes when each door opening reaches the loop."""

    def __init__(self, room: RoomService) -> None:
        self.room = room
        self.opened_at: list[float] = []

    def submit(self, event: RoomEvent) -> None:
        if isinstance(event, DoorContact) and event.open:
            self.opened_at.append(time.perf_counter())
        self.room.submit(event)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def poll_period_ms(panel: OsdpPanel, duration_s: float = 3.0) -> list[float]:
    """Times between the panel's writes on the line while idle (the bench wraps its channel)."""
    channel = panel._channel  # noqa: SLF001 - the bench looks at the line, the product does not
    assert channel is not None
    stamps: list[float] = []
    write = channel.write

    def timed_write(buf: bytes) -> int:
        stamps.append(time.perf_counter())
        return write(buf)

    channel.write = timed_write  # type: ignore[method-assign]
    await asyncio.sleep(duration_s)
    channel.write = write  # type: ignore[method-assign]
    return [(b - a) * 1e3 for a, b in zip(stamps, stamps[1:], strict=False)]


async def bench(samples: int, work: Path) -> None:
    key = secrets.token_bytes(16)
    key_file = work / "mr-in.scbk"
    key_file.write_text(key.hex())
    os.chmod(key_file, 0o600)
    (work / "badges.toml").write_text('[[badge]]\nnumber = "37-1001"\nholder = "staff-0001"\n')
    pty = PtyPair()
    sim = DoorController(pty, address=101, scbk=key)
    sim.start()
    osdp = load_osdp_config({"device": pty.slave_path, "readers": [{"name": "mr-in", "door": "server-room", "address": 101, "key_file": str(key_file)}]}, work)
    with mosquitto(work / "broker") as broker:
        room = load_room_config(
            {
                "badges": "badges.toml",
                "tick_interval_s": 0.05,
                "doors": [{"name": "server-room", "readers": {"mr-in": "in"}}],
                "mqtt": {"host": broker.host, "port": broker.port, "client_id": "cs-room", "password_file": str(broker.password_file("cs-room"))},
            },
            work,
        )
        store = Store(work / "db")
        service = RoomService(dataclasses.replace(room, osdp=None), store, SystemClock(), flush_interval_s=0.05)
        sink = TimingSink(service)
        panel = OsdpPanel(osdp, sink)  # type: ignore[arg-type]
        service.add_adapter(panel)
        await service.start()
        osdp_ms: list[float] = []
        alarm_ms: list[float] = []
        try:
            watch = broker.client_args("cs-room-watch")
            async with AlarmWatcher(broker.host, broker.port, username=watch["username"], password=watch["password"], identifier="bench-alarms") as watcher:
                for _ in range(int(WAIT_S / 0.05)):
                    if panel.status()[0]["state"] == "online":
                        break
                    await asyncio.sleep(0.05)
                poll_ms = await poll_period_ms(panel)
                sim.door(False)
                await asyncio.sleep(0.5)  # the first report only tells the door's position
                for i in range(samples):
                    if i:
                        mark = len(watcher.seen)
                        sim.door(False)
                        _, restored = await watcher.wait_for(*ALARM, "restored", after_index=mark, timeout_s=WAIT_S)
                        # The operator acknowledges it: the next opening is a new alarm, not a swinger.
                        await service.acknowledge(str(restored["alarm_id"]), "op-bench-01")
                    await asyncio.sleep(random.uniform(0.0, 0.15))  # not in step with the polls
                    mark, seen = len(watcher.seen), len(sink.opened_at)
                    start = time.perf_counter()
                    sim.door(True)
                    received_at, _ = await watcher.wait_for(*ALARM, "active", after_index=mark, timeout_s=WAIT_S)
                    alarm_ms.append((received_at - start) * 1e3)
                    osdp_ms.append((sink.opened_at[seen] - start) * 1e3)
        finally:
            await service.stop()
            store.close()
            sim.stop()
            pty.close()
    print(f"{samples} door openings without a grant, OSDP secure channel, alarm on MQTT (QoS 1, retained)")
    print(f"poll   idle period between the panel's frames: p50 {percentile(poll_ms, 0.5):.1f} ms, p99 {percentile(poll_ms, 0.99):.1f} ms ({len(poll_ms)} frames)")
    for label, values in (("osdp", osdp_ms), ("alarm", alarm_ms)):
        print(
            f"{label:<6} p50 {percentile(values, 0.50):6.1f} ms   p99 {percentile(values, 0.99):6.1f} ms   "
            f"max {max(values):6.1f} ms   mean {statistics.fmean(values):6.1f} ms"
        )
    added = [a - o for a, o in zip(alarm_ms, osdp_ms, strict=True)]
    print(f"room + LMDB commit + MQTT after the OSDP leg: p50 {percentile(added, 0.5):.1f} ms, p99 {percentile(added, 0.99):.1f} ms")
    print(f"ratio alarm/osdp: p50 {percentile(alarm_ms, 0.5) / percentile(osdp_ms, 0.5):.2f}, p99 {percentile(alarm_ms, 0.99) / percentile(osdp_ms, 0.99):.2f}")
    print(f"target p99 <= 250 ms: {'met' if percentile(alarm_ms, 0.99) <= 250 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)  # one warning per alarm would drown the figures
    with tempfile.TemporaryDirectory(prefix="bench-room-osdp-") as work:
        asyncio.run(bench(args.samples, Path(work)))


if __name__ == "__main__":
    main()
