"""Machine-room simulators on MQTT, publishing the real payload shapes of the upstream systems:
a Zigbee2MQTT contact sensor (TuYa TS0203) and lock, and a Frigate camera (status, person
count, events, binary snapshots) with ONVIF tamper events through an onvif2mqtt-style bridge.
Used by the demo, the tests and the benchmarks; every message is QoS 1."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Self

import aiomqtt

__all__ = ["AlarmWatcher", "CameraSim", "ContactSensorSim", "LockSim"]


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ContactSensorSim:
    """A TS0203 door contact: full-state JSON, ``contact: true`` = closed."""

    def __init__(self, client: aiomqtt.Client, friendly_name: str, *, prefix: str = "zigbee2mqtt") -> None:
        self._client = client
        self.topic = f"{prefix}/{friendly_name}"
        self.friendly_name = friendly_name
        self.prefix = prefix
        self.battery = 100

    def state(self, *, closed: bool, tamper: bool = False) -> bytes:
        return json.dumps({"battery": self.battery, "battery_low": self.battery < 20, "contact": closed, "last_seen": _now_iso(),
                           "linkquality": 153, "tamper": tamper, "voltage": 3000}).encode()

    async def availability(self, online: bool) -> None:
        await self._client.publish(f"{self.topic}/availability", json.dumps({"state": "online" if online else "offline"}), qos=1, retain=True)

    async def set_closed(self, closed: bool) -> None:
        await self._client.publish(self.topic, self.state(closed=closed), qos=1)

    async def leave(self) -> None:
        payload = {"type": "device_leave", "data": {"ieee_address": "0x00158d0001a2b3c4", "friendly_name": self.friendly_name}}
        await self._client.publish(f"{self.prefix}/bridge/event", json.dumps(payload), qos=1)


class LockSim:
    """A Zigbee lock with keypad/RFID: lock operation events in its state JSON."""

    def __init__(self, client: aiomqtt.Client, friendly_name: str, *, prefix: str = "zigbee2mqtt") -> None:
        self._client = client
        self.topic = f"{prefix}/{friendly_name}"

    async def operate(self, action: str, *, user: int | None = None, source: str = "rfid") -> None:
        sources = ["keypad", "rf", "manual", "rfid", "fingerprint"]
        payload = {"state": "UNLOCK" if "unlock" in action else "LOCK", "lock_state": "unlocked" if "unlock" in action else "locked",
                   "action": action, "action_user": user, "action_source": sources.index(source), "action_source_name": source,
                   "battery": 87, "linkquality": 120}
        await self._client.publish(self.topic, json.dumps(payload), qos=1)


class CameraSim:
    """A Frigate camera (and its ONVIF analytics through an onvif2mqtt bridge, which logs in as
    another account: ``onvif_client``)."""

    def __init__(
        self,
        client: aiomqtt.Client,
        frigate_name: str,
        onvif_name: str | None = None,
        *,
        onvif_client: aiomqtt.Client | None = None,
        prefix: str = "frigate",
    ) -> None:
        self._client = client
        self._onvif_client = onvif_client or client
        self.name = frigate_name
        self.onvif_name = onvif_name
        self.prefix = prefix
        self._event_id = f"{time.time():.6f}-sim"

    async def status(self, online: bool) -> None:
        await self._client.publish(f"{self.prefix}/{self.name}/status/detect", b"online" if online else b"offline", qos=1, retain=True)

    async def persons(self, count: int) -> None:
        """The count topic, a Frigate ``events`` message, and a binary snapshot (to be ignored)."""
        await self._client.publish(f"{self.prefix}/{self.name}/person", str(count).encode(), qos=1, retain=True)
        kind = "new" if count else "end"
        after = {"id": self._event_id, "camera": self.name, "frame_time": time.time(), "label": "person", "sub_label": None,
                 "top_score": 0.93, "false_positive": False, "start_time": time.time(), "end_time": None if count else time.time(),
                 "score": 0.9, "box": [432, 496, 544, 854], "current_zones": ["door_zone"], "entered_zones": ["door_zone"],
                 "has_snapshot": True, "active": True, "stationary": False}
        await self._client.publish(f"{self.prefix}/events", json.dumps({"type": kind, "before": after, "after": after}), qos=1)
        if count:
            await self._client.publish(f"{self.prefix}/{self.name}/person/snapshot", b"\xff\xd8\xff\xe0" + bytes(2048), qos=1)

    async def tamper(self, active: bool) -> None:
        if self.onvif_name is None:
            raise ValueError("this camera has no ONVIF bridge name")
        payload = {"topic": "tns1:RuleEngine/TamperDetector/Tamper", "value": "true" if active else "false"}
        await self._onvif_client.publish(f"onvif2mqtt/{self.onvif_name}/event", json.dumps(payload), qos=1)


class AlarmWatcher:
    """Receives the daemon's alarm messages (``<prefix>/alarm/<source>/<kind>``) on its own client;
    ``wait_for`` returns the first matching alarm after a point in time (benchmarks, demo)."""

    def __init__(
        self, host: str, port: int, *, username: str | None = None, password: str | None = None, prefix: str = "cs-room", identifier: str = "alarm-watcher"
    ) -> None:
        self._args = (host, port)
        self._login = {"username": username, "password": password}
        self._identifier = identifier
        self._prefix = prefix
        self.seen: list[tuple[float, dict[str, object]]] = []
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.on_alarm: Callable[[dict[str, object]], None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        async with aiomqtt.Client(*self._args, **self._login, identifier=self._identifier, clean_session=True, max_queued_incoming_messages=0) as client:
            await client.subscribe(f"{self._prefix}/alarm/#", qos=1)
            self._ready.set()
            async for message in client.messages:
                if message.retain:
                    continue  # an old state, not news
                alarm = json.loads(bytes(message.payload))  # type: ignore[arg-type]
                async with self._changed:
                    self.seen.append((time.perf_counter(), alarm))
                    self._changed.notify_all()
                if self.on_alarm is not None:
                    self.on_alarm(alarm)

    async def wait_for(self, kind: str, source: str, state: str, *, after_index: int = 0, timeout_s: float = 10.0) -> tuple[float, dict[str, object]]:
        """(perf_counter at receipt, alarm) of the first match at or after ``after_index``."""
        async with asyncio.timeout(timeout_s):
            async with self._changed:
                while True:
                    for at, alarm in self.seen[after_index:]:
                        if alarm["kind"] == kind and alarm["source"] == source and alarm["state"] == state:
                            return at, alarm
                    await self._changed.wait()
