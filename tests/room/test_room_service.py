"""The room service against a real mosquitto started with the shipped configuration: real
payloads published with mosquitto_pub drive alarms; binary and malformed ones change nothing;
a restart with the persistent session loses nothing; alarms are stored, published, audited and
acknowledged; reports come out of the store."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import io
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path

import aiomqtt
import pytest

from firmware_app.clock import ManualClock
from firmware_app.room.errors import AlreadyAcknowledged, UnknownAlarm
from firmware_app.room.service import RoomService
from firmware_app.room.settings import MqttConfig, RoomConfig
from peers.broker import Mosquitto
from tests.room.room_fakes import FakeAuditSink

CONTACT = "zigbee2mqtt/building1/server_room/door"
WAIT_S = 10.0
TEST_TIMEOUT_S = 60.0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def mqtt_room(room_config: RoomConfig, broker: Mosquitto) -> RoomConfig:
    mqtt = MqttConfig(
        host=broker.host,
        port=broker.port,
        client_id="cs-room-test",
        password_file=broker.password_file("cs-room"),
        backoff_initial_s=0.05,
        backoff_max_s=0.5,
    )
    return dataclasses.replace(room_config, mqtt=mqtt, tick_interval_s=0.05)


@contextlib.asynccontextmanager
async def running(config: RoomConfig, store: object, clock: ManualClock) -> AsyncIterator[tuple[RoomService, FakeAuditSink]]:
    """A started room service connected to the broker, stopped afterwards."""
    audit = FakeAuditSink()
    service = RoomService(config, store, clock, audit=audit, flush_interval_s=0.05)  # type: ignore[arg-type]
    await service.start()
    try:
        await until(lambda: service.mqtt is not None and service.mqtt.connected)
        yield service, audit
    finally:
        await service.stop()


def run(scenario: Coroutine[object, object, None]) -> None:
    asyncio.run(asyncio.wait_for(scenario, TEST_TIMEOUT_S))


async def until(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    """Wait (bounded) until ``condition()`` holds."""
    for _ in range(int(timeout_s / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


async def pub(broker: Mosquitto, topic: str, payload: bytes, retain: bool = False) -> None:
    await asyncio.to_thread(broker.pub, topic, payload, retain=retain)


def active(service: RoomService) -> set[tuple[str, str]]:
    return {(str(a["kind"]), str(a["source"])) for a in service.open_alarms() if a["state"] == "active"}


def test_contact_opened_without_grant_raises_forced_on_mqtt(mqtt_room: RoomConfig, store: object, clock: ManualClock, broker: Mosquitto) -> None:
    async def scenario() -> None:
        async with running(mqtt_room, store, clock) as (service, audit):
            async with aiomqtt.Client(**broker.client_args("cs-room-watch"), identifier="test-watcher") as watcher:
                await watcher.subscribe("cs-room/#", qos=1)
                await pub(broker, CONTACT, b'{"battery": 100, "battery_low": false, "contact": true, "linkquality": 153, "tamper": false, "voltage": 3000}')
                await pub(broker, CONTACT, b'{"battery": 100, "battery_low": false, "contact": false, "linkquality": 153, "tamper": false, "voltage": 3000}')
                seen: dict[str, bytes] = {}
                async with asyncio.timeout(WAIT_S):
                    async for message in watcher.messages:
                        seen[str(message.topic)] = bytes(message.payload)  # type: ignore[arg-type]
                        if "cs-room/alarm/door:server-room/door_forced" in seen:
                            break
            assert seen.get("cs-room/status") == b"online"
            alarm = json.loads(seen["cs-room/alarm/door:server-room/door_forced"])
            assert alarm["state"] == "active" and alarm["kind"] == "door_forced"
            assert ("door_forced", "door:server-room") in active(service)
            await until(lambda: "room.alarm_raised" in audit.kinds())
            assert "room.door_contact" in audit.kinds()

    run(scenario())


def test_binary_and_malformed_payloads_change_nothing(mqtt_room: RoomConfig, store: object, clock: ManualClock, broker: Mosquitto) -> None:
    async def scenario() -> None:
        async with running(mqtt_room, store, clock) as (service, _):
            assert service.mqtt is not None
            bad = [
                (CONTACT, b"\xff\xd8\xff\xe0\x00\x10JFIF"),
                (CONTACT, b'{"contact": "open"}'),
                (CONTACT, b"{" * 10),
                (CONTACT, b'{"contact": false, "pad": "' + b"x" * 300_000 + b'"}'),
                ("frigate/server_room/person", b"lots"),
                ("frigate/server_room/status/detect", b"\x00\x01"),
                ("zigbee2mqtt/bridge/event", b'{"type": "device_leave", "data": 7}'),
            ]
            for topic, payload in bad:
                await pub(broker, topic, payload)
            await pub(broker, "frigate/server_room/person/snapshot", bytes(range(256)) * 40)
            await pub(broker, CONTACT, b'{"contact": true}')  # the stream goes on after them
            await until(lambda: service.status()["doors"][0]["state"] == "closed")
            c = service.mqtt.counters
            assert c.malformed + c.oversized == len(bad) and c.oversized == 1
            assert service.open_alarms() == []
            assert service.status()["doors"][0]["state"] == "closed"

    run(scenario())


def test_real_payloads_drive_the_expected_alarms(mqtt_room: RoomConfig, store: object, clock: ManualClock, broker: Mosquitto) -> None:
    async def scenario() -> None:
        async with running(mqtt_room, store, clock) as (service, _):
            await pub(broker, "frigate/server_room/status/detect", b"online")
            await pub(broker, "frigate/server_room/status/detect", b"offline")
            await pub(broker, "frigate/server_room/person", b"1")
            await pub(broker, "onvif2mqtt/mr_cam/event", b'{"topic": "tns1:RuleEngine/TamperDetector/Tamper", "value": "true"}')
            await pub(broker, "zigbee2mqtt/side_lock", b'{"battery": 12, "lock_state": "locked", "linkquality": 80}')
            await pub(broker, "zigbee2mqtt/bridge/event", b'{"type":"device_leave","data":{"ieee_address":"0x00158d0001a2b3c4","friendly_name":"building1/server_room/door"}}')
            await until(lambda: len(active(service)) >= 4)
            clock.advance(31)  # the camera's offline hold
            await until(lambda: ("camera_offline", "camera:mr-cam") in active(service))
            assert active(service) == {
                ("camera_offline", "camera:mr-cam"),
                ("intrusion", "door:server-room"),
                ("camera_tamper", "camera:mr-cam"),
                ("battery_low", "sensor:side-lock"),
                ("device_left", "sensor:mr-contact"),
            }
            problems = dict(service.problems())
            assert problems["camera:mr-cam"] == "camera mr-cam offline"
            await pub(broker, "frigate/server_room/status/detect", b"online")
            await until(lambda: ("camera_offline", "camera:mr-cam") not in active(service))

    run(scenario())


def test_restart_with_the_persistent_session_loses_nothing(mqtt_room: RoomConfig, store: object, clock: ManualClock, broker: Mosquitto) -> None:
    async def scenario() -> None:
        service = RoomService(mqtt_room, store, clock, flush_interval_s=0.05)  # type: ignore[arg-type]
        await service.start()
        await until(lambda: service.mqtt is not None and service.mqtt.connected)
        await pub(broker, CONTACT, b'{"contact": true}')
        await until(lambda: service.status()["doors"][0]["state"] == "closed")
        await service.stop()
        lines = [b'{"contact": %s, "battery": %d}' % (b"false" if i % 2 else b"true", 50 + i % 50) for i in range(400)]
        await asyncio.to_thread(broker.pub_lines, CONTACT, lines)  # while csd is down
        again = RoomService(mqtt_room, store, clock, flush_interval_s=0.05)  # type: ignore[arg-type]
        await again.start()
        try:
            await until(lambda: again.mqtt is not None and again.mqtt.counters.events >= 400 * 3)
            forced = [a for a in again.open_alarms() if a["kind"] == "door_forced"]
            assert len(forced) == 1  # 200 openings, one alarm (no storm)
        finally:
            await again.stop()

    run(scenario())


def test_acknowledge_and_report(mqtt_room: RoomConfig, store: object, clock: ManualClock, broker: Mosquitto) -> None:
    async def scenario() -> None:
        async with running(mqtt_room, store, clock) as (service, audit):
            start = clock.now()
            await pub(broker, CONTACT, b'{"contact": true}')
            await pub(broker, CONTACT, b'{"contact": false}')
            await pub(broker, CONTACT, b'{"contact": true}')
            await until(lambda: any(a["state"] == "restored" for a in service.open_alarms()))
            (alarm,) = service.open_alarms()
            with pytest.raises(UnknownAlarm):
                await service.acknowledge("no-such-alarm", "op-sup-01")
            acked = await service.acknowledge(str(alarm["alarm_id"]), "op-sup-01")
            assert acked["acknowledged_by"] == "op-sup-01" and service.open_alarms() == []
            with pytest.raises((UnknownAlarm, AlreadyAcknowledged)):
                await service.acknowledge(str(alarm["alarm_id"]), "op-sup-01")
            clock.advance(1)
            report = await service.report(start, clock.now(), "csv")
            events = [row["event"] for row in csv.DictReader(io.StringIO(report.decode()))]
            assert events == ["forced_opening", "alarm_raised", "alarm_restored", "alarm_acknowledged"]
            await until(lambda: "room.alarm_acknowledged" in audit.kinds())
            assert all("37-10" not in json.dumps(e) for e in audit.entries)

    run(scenario())


def test_a_broker_restart_is_reconnected_with_backoff(mqtt_room: RoomConfig, store: object, clock: ManualClock, broker: Mosquitto) -> None:
    async def scenario() -> None:
        async with running(mqtt_room, store, clock) as (service, _):
            assert service.mqtt is not None
            await asyncio.to_thread(broker.stop)
            await until(lambda: service.mqtt is not None and not service.mqtt.connected)
            assert service.status()["broker"] == "reconnecting"
            await asyncio.to_thread(broker.start)  # same port, same persistence directory
            await until(lambda: service.mqtt is not None and service.mqtt.connected)
            await pub(broker, CONTACT, b'{"contact": true}')
            await until(lambda: service.status()["doors"][0]["state"] == "closed")
        async with aiomqtt.Client(**broker.client_args("cs-room-watch"), identifier="test-status") as watcher:
            await watcher.subscribe("cs-room/status", qos=1)
            async with asyncio.timeout(WAIT_S):
                async for message in watcher.messages:
                    assert message.payload == b"offline"  # said at the clean stop, retained
                    break

    run(scenario())


def test_unlisted_real_payloads_change_nothing(mqtt_room: RoomConfig, store: object, clock: ManualClock, broker: Mosquitto) -> None:
    stats = b'{"cameras": {"server_room": {"camera_fps": 5.0, "process_fps": 5.0, "skipped_fps": 0.0, "detection_fps": 0.2, "pid": 101, "capture_pid": 102, "ffmpeg_pid": 103}}, "detection_fps": 0.2, "service": {"uptime": 100, "version": "0.14.1"}}'
    unlisted = [
        ("frigate/stats", stats),
        ("frigate/tracked_object_update", b'{"type": "description", "id": "1607123955.475377-mxklsc", "description": "..."}'),
        ("frigate/server_room/motion", b"ON"),
        ("frigate/server_room/review_status", b"ALERT"),
        ("frigate/server_room/status/record", b"offline"),
        ("zigbee2mqtt/bridge/devices", b'[{"ieee_address": "0x1", "friendly_name": "building1/server_room/door", "power_source": "Battery"}]'),
        ("zigbee2mqtt/bridge/response/health_check", b'{"data":{"healthy":true},"status":"ok"}'),
        ("zigbee2mqtt/bridge/event", b'{"type":"device_interview","data":{"friendly_name":"x","status":"successful"}}'),
        ("zigbee2mqtt/kitchen_plug", b'{"state": "ON", "power": 12}'),
        ("onvif2mqtt/mr_cam/motion", b"on"),
        ("cam2mqtt/camera/mr_cam/event/onvif/object/people/detected", b"on"),
    ]

    async def scenario() -> None:
        async with running(mqtt_room, store, clock) as (service, _):
            before = service.status()
            for topic, payload in unlisted:
                await pub(broker, topic, payload)
            await pub(broker, CONTACT, b'{"contact": true}')
            await until(lambda: service.status()["doors"][0]["state"] == "closed")
            assert service.open_alarms() == []
            assert service.mqtt is not None and service.mqtt.counters.malformed == 0
            assert service.status()["cameras"] == before["cameras"]

    run(scenario())


def test_the_shipped_acl_keeps_each_account_to_its_prefix(mqtt_room: RoomConfig, store: object, clock: ManualClock, broker: Mosquitto) -> None:
    async def scenario() -> None:
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client(broker.host, broker.port, identifier="anonymous"):
                pass
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client(broker.host, broker.port, username="zigbee2mqtt", password="wrong", identifier="guesser"):
                pass
        async with running(mqtt_room, store, clock) as (service, _), aiomqtt.Client(**broker.client_args("cs-room-watch"), identifier="acl-watcher") as watcher:
            await watcher.subscribe("cs-room/alarm/#", qos=1)
            forbidden = [("frigate/server_room/person", b"3"), ("cs-room/alarm/door:server-room/door_forced", b'{"state": "active"}')]
            for topic, payload in forbidden:  # not the account's prefix: dropped (and the client cut off)
                with contextlib.suppress(aiomqtt.MqttError):
                    async with aiomqtt.Client(**broker.client_args("zigbee2mqtt"), identifier="acl-zigbee") as zigbee:
                        await zigbee.publish(topic, payload, qos=1)
            await pub(broker, CONTACT, b'{"contact": true}')
            await until(lambda: service.status()["doors"][0]["state"] == "closed")
            assert service.open_alarms() == []
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.5):
                    await anext(aiter(watcher.messages))

    run(scenario())


def test_a_wrong_broker_password_never_connects(mqtt_room: RoomConfig, store: object, clock: ManualClock, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    assert mqtt_room.mqtt is not None
    config = dataclasses.replace(mqtt_room, mqtt=dataclasses.replace(mqtt_room.mqtt, password_file=wrong))

    async def scenario() -> None:
        service = RoomService(config, store, clock)  # type: ignore[arg-type]
        await service.start()
        try:
            await asyncio.sleep(0.5)
            assert service.mqtt is not None and not service.mqtt.connected and service.status()["broker"] == "reconnecting"
        finally:
            await service.stop()

    run(scenario())
