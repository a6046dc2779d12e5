"""Benchmark of the machine room over a real mosquitto (started with the shipped configuration).
Prints figures; asserts nothing.  The room service runs in its own process (its own event loop,
real LMDB store, system clock); publishers and the alarm watcher run in this one.

0. Baseline, measured in the same run: a plain publish → receive round trip through the same
   broker (QoS 1), the floor under any alarm latency.
1. Latency: a Zigbee2MQTT door contact opens with no grant → the ``door_forced`` alarm received
   on MQTT (the room stores it in LMDB before publishing it).  p50/p99 over ``--samples``.
2. Sustained: ``--rate`` sensor messages/s for ``--seconds`` s (Zigbee2MQTT state payloads of
   ``--sensors`` contact sensors); the room must receive every one.
3. Burst after a restart: the room's client is down (clean stop, the broker keeps its persistent
   session) while ``--burst`` messages are queued; after the restart every one must arrive.
4. Retained: ``--burst`` retained messages (one per topic) wait on the broker; a room client with
   a fresh session subscribes and must receive every one.

    .venv/bin/python bench/bench_room_mqtt.py --samples 1000 --rate 2000 --seconds 10 --burst 20000
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import logging
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiomqtt

from peers.broker import Mosquitto
from peers.room_sim import AlarmWatcher

CLIENT_ID = "cs-room-bench"


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def _room_config(port: int, sensors: int, doors: int, client_id: str, password_file: str) -> object:
    """``doors`` doors with a contact each (a sample per door: each forced opening is a new alarm,
    where one door opened a thousand times would be one swinging alarm), ``sensors`` more sensors."""
    from firmware_app.room.settings import DoorConfig, MqttConfig, RoomConfig, SensorConfig

    door_cfgs = {f"d{i}": DoorConfig(f"d{i}", held_open_s=3600.0, prealarm_s=0.0) for i in range(doors)}
    sensor_cfgs = {f"door{i}": SensorConfig(f"door{i}", f"bench/door{i}", door=f"d{i}", checkin_interval_s=86400.0) for i in range(doors)}
    for i in range(sensors):
        sensor_cfgs[f"s{i}"] = SensorConfig(f"s{i}", f"bench/sensor{i}", checkin_interval_s=86400.0)
    mqtt = MqttConfig(port=port, client_id=client_id, password_file=Path(password_file), backoff_initial_s=0.05, backoff_max_s=0.5)
    return RoomConfig(door_cfgs, {}, sensor_cfgs, mqtt, None, tick_interval_s=0.5)


def _serve(port: int, sensors: int, doors: int, store_dir: str, shared: object, stop: object, client_id: str, password_file: str) -> None:
    """The room service in a child process; ``shared``: [received, malformed, connected]."""
    import logging

    from firmware_app.clock import SystemClock
    from firmware_app.room.service import RoomService
    from storage.store import Store

    logging.basicConfig(level=logging.ERROR)  # an alarm per sample would flood the terminal

    async def run() -> None:
        store = Store(Path(store_dir))
        service = RoomService(_room_config(port, sensors, doors, client_id, password_file), store, SystemClock(), flush_interval_s=0.2)  # type: ignore[arg-type]
        await service.start()
        try:
            while not stop.is_set():  # type: ignore[attr-defined]
                assert service.mqtt is not None
                c = service.mqtt.counters
                shared[0], shared[1], shared[2] = c.received, c.malformed + c.oversized, int(service.mqtt.connected)  # type: ignore[index]
                await asyncio.sleep(0.02)
        finally:
            await service.stop()
            store.close()

    asyncio.run(run())


class Room:
    """The room service's child process."""

    def __init__(self, broker: Mosquitto, sensors: int, doors: int, store_dir: Path, client_id: str = CLIENT_ID) -> None:
        ctx = mp.get_context("spawn")
        self.shared = ctx.Array(ctypes.c_longlong, 3)
        self._stop = ctx.Event()
        args = (broker.port, sensors, doors, str(store_dir), self.shared, self._stop, client_id, str(broker.password_file("cs-room")))
        self._proc = ctx.Process(target=_serve, args=args, daemon=True)

    async def start(self) -> None:
        self._proc.start()
        for _ in range(1000):
            if self.shared[2]:
                return
            await asyncio.sleep(0.02)
        raise RuntimeError("the room service did not connect")

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.to_thread(self._proc.join, 20)

    @property
    def received(self) -> int:
        return int(self.shared[0])


async def _baseline(broker: Mosquitto, samples: int) -> list[float]:
    out: list[float] = []
    login = broker.client_args("zigbee2mqtt")
    async with aiomqtt.Client(**login, identifier="bench-echo-sub") as sub, aiomqtt.Client(**login, identifier="bench-echo-pub") as pub:
        await sub.subscribe("zigbee2mqtt/bench-echo", qos=1)
        for i in range(samples):
            t0 = time.perf_counter()
            await pub.publish("zigbee2mqtt/bench-echo", str(i).encode(), qos=1)
            async for message in sub.messages:
                if message.payload == str(i).encode():
                    break
            out.append(time.perf_counter() - t0)
    return out


async def _latency(broker: Mosquitto, samples: int) -> list[float]:
    out: list[float] = []
    watch = broker.client_args("cs-room-watch")
    quiet = logging.getLogger("bench.publisher")
    quiet.setLevel(logging.ERROR)
    async with AlarmWatcher(broker.host, broker.port, username=watch["username"], password=watch["password"], identifier="bench-alarms") as watcher, aiomqtt.Client(
        **broker.client_args("zigbee2mqtt"), identifier="bench-door", logger=quiet
    ) as pub:
        closed = json.dumps({"battery": 97, "contact": True, "linkquality": 140}).encode()
        opened = json.dumps({"battery": 97, "contact": False, "linkquality": 140}).encode()
        await asyncio.gather(*(pub.publish(f"zigbee2mqtt/bench/door{i}", closed, qos=1) for i in range(samples)))
        await asyncio.sleep(1.0)
        for i in range(samples):
            topic, source = f"zigbee2mqtt/bench/door{i}", f"door:d{i}"
            mark = len(watcher.seen)
            t0 = time.perf_counter()
            await pub.publish(topic, opened, qos=1)
            at, _ = await watcher.wait_for("door_forced", source, "active", after_index=mark)
            out.append(at - t0)
            mark = len(watcher.seen)
            await pub.publish(topic, closed, qos=1)
            await watcher.wait_for("door_forced", source, "restored", after_index=mark)
    return out


async def _sustained(broker: Mosquitto, room: Room, rate: float, seconds: float, sensors: int) -> tuple[int, float, float, int]:
    """(messages, offered rate, achieved rate, received by the room)."""
    total = int(rate * seconds)
    payloads = [json.dumps({"battery": 50 + i % 50, "battery_low": False, "contact": True, "linkquality": 100 + i % 100,
                            "tamper": False, "voltage": 3000}).encode() for i in range(100)]
    await asyncio.sleep(0.5)  # the latency phase's last messages are counted before the start
    start_received = room.received
    quiet = logging.getLogger("bench.publisher")
    quiet.setLevel(logging.ERROR)  # aiomqtt warns about many publishes in flight: that is the point here
    async with aiomqtt.Client(**broker.client_args("zigbee2mqtt"), identifier="bench-sensors", max_inflight_messages=1000, logger=quiet) as pub:
        per_tick = max(1, int(rate * 0.01))  # a batch every 10 ms
        t0 = time.perf_counter()
        sent = 0
        while sent < total:
            batch = min(per_tick, total - sent)
            await asyncio.gather(*(pub.publish(f"zigbee2mqtt/bench/sensor{(sent + i) % sensors}", payloads[(sent + i) % 100], qos=1) for i in range(batch)))
            sent += batch
            due = t0 + sent / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        offered_s = time.perf_counter() - t0
        for _ in range(3000):
            if room.received - start_received >= total:
                break
            await asyncio.sleep(0.01)
        done_s = time.perf_counter() - t0
    return total, total / offered_s, (room.received - start_received) / done_s, room.received - start_received


async def _drain(room_factory, count: int) -> tuple[int, float]:
    """Start a room client and wait (at most 60 s) until it has received ``count`` messages;
    (received, seconds from its start)."""
    room = room_factory()
    t0 = time.perf_counter()
    await room.start()
    for _ in range(6000):
        if room.received >= count:
            break
        await asyncio.sleep(0.01)
    drained_s = time.perf_counter() - t0
    received = room.received
    await room.stop()
    return received, drained_s


async def _burst(broker: Mosquitto, room_factory, count: int, sensors: int) -> tuple[int, float]:
    """Queue ``count`` messages while the room is down; (received after restart, seconds to drain)."""
    lines = [json.dumps({"battery": 60 + i % 40, "contact": True, "linkquality": 120}).encode() for i in range(count)]
    await asyncio.to_thread(broker.pub_lines, f"zigbee2mqtt/bench/sensor{sensors - 1}", lines)
    return await _drain(room_factory, count)


async def _retained(broker: Mosquitto, room_factory, count: int) -> tuple[int, float]:
    """``count`` retained messages, one per topic, then a room client with a fresh session."""
    quiet = logging.getLogger("bench.publisher")
    quiet.setLevel(logging.ERROR)
    async with aiomqtt.Client(**broker.client_args("zigbee2mqtt"), identifier="bench-retainer", max_inflight_messages=1000, logger=quiet) as pub:
        for start in range(0, count, 500):
            await asyncio.gather(*(pub.publish(f"zigbee2mqtt/retained/device{i}/availability", b'{"state":"online"}', qos=1, retain=True)
                                   for i in range(start, min(count, start + 500))))
    return await _drain(room_factory, count)


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-room-") as tmp:
        base = Path(tmp)
        broker = Mosquitto(base / "broker")
        broker.start()
        try:
            print(f"mosquitto with {broker.config_path.name} (shipped systemd/mosquitto/cs-room.conf), port {broker.port}")
            base_s = await _baseline(broker, args.samples)
            print(f"0. baseline publish→receive (QoS 1, {len(base_s)} samples): p50 {1000 * statistics.median(base_s):.2f} ms, p99 {1000 * _pct(base_s, 99):.2f} ms")
            room = Room(broker, args.sensors, args.samples, base / "store")
            await room.start()
            lat_s = await _latency(broker, args.samples)
            p50, p99 = statistics.median(lat_s), _pct(lat_s, 99)
            print(f"1. contact open without grant → door_forced on MQTT ({len(lat_s)} samples): p50 {1000 * p50:.2f} ms, p99 {1000 * p99:.2f} ms, "
                  f"max {1000 * max(lat_s):.2f} ms; p99 {p99 / _pct(base_s, 99):.1f}× the baseline's (target p99 ≤ 50 ms)")
            total, offered, achieved, received = await _sustained(broker, room, args.rate, args.seconds, args.sensors)
            print(f"2. sustained: {total:,} sensor messages offered at {offered:,.0f}/s, received {received:,} ({total - received:,} lost), "
                  f"{achieved:,.0f}/s end to end")
            await room.stop()
            received, drained_s = await _burst(broker, lambda: Room(broker, args.sensors, args.samples, base / "store"), args.burst, args.sensors)
            print(f"3. burst: {args.burst:,} messages queued while the room was down, {received:,} received after the restart "
                  f"({args.burst - received:,} lost) in {drained_s:.1f} s ({received / drained_s:,.0f}/s)")
            received, drained_s = await _retained(broker, lambda: Room(broker, args.sensors, args.samples, base / "store", "cs-room-bench-fresh"), args.burst)
            print(f"4. retained: {args.burst:,} retained messages, {received:,} received by a fresh session "
                  f"({args.burst - received:,} lost) in {drained_s:.1f} s")
        finally:
            broker.stop()
        dropped = [line for line in broker.log_path.read_text().splitlines() if "dropped" in line.lower()]
        print(f"broker log lines about dropped messages: {len(dropped)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--burst", type=int, default=20000)
    parser.add_argument("--sensors", type=int, default=50)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
