"""The payload parsers on real payload shapes (Zigbee2MQTT, Frigate, ONVIF bridges), and on
malformed, oversized and hostile input: a clear MalformedPayload, or nothing."""

from __future__ import annotations

import json

import pytest

from firmware_app.room import events as ev
from firmware_app.room.errors import MalformedPayload
from firmware_app.room.feeds.router import TopicRouter
from firmware_app.room.settings import MqttConfig, RoomConfig

TS0203 = b'{"battery": 100, "battery_low": false, "contact": false, "last_seen": "2023-08-31T23:31:39.771Z", "linkquality": 153, "tamper": false, "voltage": 3000}'
AQARA = b'{"battery": 91, "contact": true, "device_temperature": 23, "voltage": 3005, "linkquality": 87, "power_outage_count": 4}'
LOCK = b'{"state": "UNLOCK", "lock_state": "unlocked", "action": "unlock", "action_user": 3, "action_source": 0, "action_source_name": "keypad", "battery": 87, "linkquality": 120}'
FRIGATE_EVENT = json.dumps({
    "type": "update",
    "before": {"id": "1700000000.123456-abc123", "camera": "server_room", "label": "person", "score": 0.79},
    "after": {"id": "1700000000.123456-abc123", "camera": "server_room", "frame_time": 1700000006.08, "label": "person",
              "sub_label": None, "top_score": 0.95, "false_positive": False, "start_time": 1700000000.12, "end_time": None,
              "score": 0.88, "box": [432, 496, 544, 854], "area": 40096, "current_zones": ["rack_row_a"],
              "entered_zones": ["door_zone", "rack_row_a"], "has_snapshot": True, "active": True, "stationary": False,
              "attributes": {"face": 0.86}, "current_estimated_speed": 0, "velocity_angle": 0, "recognized_license_plate": None},
}).encode()
FRIGATE_REVIEW = json.dumps({
    "type": "new", "before": {},
    "after": {"id": "1718987129.308396-fqk5ka", "camera": "server_room", "start_time": 1718987129.31, "end_time": None,
              "severity": "alert", "thumb_path": "/media/frigate/clips/review/thumb.webp",
              "data": {"detections": ["1718987128.947436-g92ztx"], "objects": ["person"], "sub_labels": [], "zones": ["door_zone"], "audio": []}},
}).encode()


@pytest.fixture
def router(room_config: RoomConfig) -> TopicRouter:
    return TopicRouter(room_config, MqttConfig(max_payload_bytes=4096))


def test_contact_false_means_open(router: TopicRouter) -> None:
    out = router.route("zigbee2mqtt/building1/server_room/door", TS0203)
    assert out == [ev.SensorCheckIn("mr-contact"), ev.DoorContact("server-room", open=True), ev.SensorBattery("mr-contact", 100, False)]
    out = router.route("zigbee2mqtt/building1/server_room/door", AQARA)
    assert ev.DoorContact("server-room", open=False) in out


def test_tamper_true_is_reported_and_false_is_never_a_restore(router: TopicRouter) -> None:
    assert ev.Tamper("sensor:mr-contact", True) in router.route("zigbee2mqtt/building1/server_room/door", b'{"contact": true, "tamper": true}')
    assert not any(isinstance(e, ev.Tamper) for e in router.route("zigbee2mqtt/building1/server_room/door", b'{"contact": true, "tamper": false}'))


def test_lock_operations(router: TopicRouter) -> None:
    assert ev.AccessGranted("side-door", "lock-user:3", "keypad") in router.route("zigbee2mqtt/side_lock", LOCK)
    denied = router.route("zigbee2mqtt/side_lock", b'{"action": "unlock_failure_invalid_pin_or_id", "action_user": 9}')
    assert ev.AccessDenied("side-door", None, "invalid_credential") in denied
    assert ev.ExitRequest("side-door") in router.route("zigbee2mqtt/side_lock", b'{"action": "manual_unlock"}')
    assert ev.LockProgramming("side-door", "pin_code_added") in router.route("zigbee2mqtt/side_lock", b'{"action": "pin_code_added", "action_user": 4}')


@pytest.mark.parametrize("payload", [b"online", b'{"state":"online"}', b"ONLINE\n"])
def test_availability_both_shapes(router: TopicRouter, payload: bytes) -> None:
    assert router.route("zigbee2mqtt/building1/server_room/door/availability", payload) == [ev.DeviceOnline("sensor", "mr-contact")]


def test_bridge_state_and_device_leave(router: TopicRouter) -> None:
    assert router.route("zigbee2mqtt/bridge/state", b'{"state":"offline"}') == [ev.DeviceOffline("bridge", "zigbee2mqtt")]
    leave = b'{"type":"device_leave","data":{"ieee_address":"0x00158d0001a2b3c4","friendly_name":"building1/server_room/door"}}'
    assert router.route("zigbee2mqtt/bridge/event", leave) == [ev.DeviceLeft("sensor", "mr-contact")]
    joined = b'{"type":"device_joined","data":{"ieee_address":"0x1","friendly_name":"0x1"}}'
    assert router.route("zigbee2mqtt/bridge/event", joined) == []
    assert router.route("zigbee2mqtt/bridge/devices", b"[]") is None


def test_frigate_topics(router: TopicRouter) -> None:
    assert router.route("frigate/available", b"offline") == [ev.DeviceOffline("nvr", "frigate")]
    assert router.route("frigate/server_room/status/detect", b"offline") == [ev.DeviceOffline("camera", "mr-cam")]
    assert router.route("frigate/server_room/status/record", b"offline") is None
    assert router.route("frigate/server_room/person", b"2") == [ev.PersonsSeen("mr-cam", 2)]
    assert router.route("frigate/events", FRIGATE_EVENT) == [ev.PersonDetected("mr-cam")]
    assert router.route("frigate/reviews", FRIGATE_REVIEW) == [ev.PersonDetected("mr-cam")]
    ended = FRIGATE_REVIEW.replace(b'"type": "new"', b'"type": "end"')
    assert router.route("frigate/reviews", ended) == []
    face = b'{"type": "face", "id": "1607123955.475377-mxklsc", "name": "Someone", "score": 0.95, "camera": "server_room"}'
    assert router.route("frigate/tracked_object_update", face) is None


def test_snapshots_and_other_topics_are_never_read(router: TopicRouter) -> None:
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8
    assert router.route("frigate/server_room/person/snapshot", jpeg) is None
    assert router.route("frigate/other_cam/person", b"3") is None
    assert router.route("zigbee2mqtt/someone_elses_plug", b"not even json") is None
    assert router.route("zigbee2mqtt/building1/server_room/door/set", b'{"x": 1}') is None
    assert router.route("unrelated", b"x") is None


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("zigbee2mqtt/building1/server_room/door", b"\xff\xd8\xff\xe0binary"),
        ("zigbee2mqtt/building1/server_room/door", b"[1, 2]"),
        ("zigbee2mqtt/building1/server_room/door", b'{"contact": "yes"}'),
        ("zigbee2mqtt/building1/server_room/door", b'{"contact": true, "battery": 400}'),
        ("zigbee2mqtt/building1/server_room/door", b'{"contact": NaN}'),
        ("zigbee2mqtt/building1/server_room/door", b"[" * 5000 + b"]" * 5000),
        ("zigbee2mqtt/building1/server_room/door", b'{"a": ' + b'{"a": ' * 40 + b"1" + b"}" * 41),
        ("zigbee2mqtt/building1/server_room/door", b'{"contact": true, "pad": "' + b"x" * 5000 + b'"}'),
        ("zigbee2mqtt/building1/server_room/door/availability", b"maybe"),
        ("frigate/server_room/person", b"-1"),
        ("frigate/server_room/person", b"\x00\x01"),
        ("frigate/server_room/person", b"9" * 100),
        ("frigate/events", b'{"type": "update"}'),
        ("frigate/events", b'{"type": "bogus", "after": {}}'),
        ("frigate/available", b"sleeping"),
        ("onvif2mqtt/mr_cam/tamper", b"perhaps"),
        ("onvif2mqtt/mr_cam/event", b'{"topic": "tns1:RuleEngine/TamperDetector/Tamper"}'),
    ],
)
def test_malformed_payloads_are_refused(router: TopicRouter, topic: str, payload: bytes) -> None:
    with pytest.raises(MalformedPayload):
        router.route(topic, payload)


def test_malformed_messages_do_not_echo_their_content(router: TopicRouter) -> None:
    with pytest.raises(MalformedPayload) as info:
        router.route("zigbee2mqtt/building1/server_room/door", b'{"contact": "SECRET-37-1001"}')
    assert "SECRET" not in str(info.value)


def test_onvif_bridges(router: TopicRouter) -> None:
    assert router.route("onvif2mqtt/mr_cam/tamper", b"on") == [ev.CameraTamper("mr-cam", "tamper", True)]
    assert router.route("onvif2mqtt/mr_cam/motion", b"on") is None
    passed = b'{"topic": "tns1:VideoSource/GlobalSceneChange/AnalyticsService", "value": "true"}'
    assert router.route("onvif2mqtt/mr_cam/event", passed) == [ev.CameraTamper("mr-cam", "scene_change", True)]
    dark = b'{"device":"mr_cam","eventType":"ImageTooDark","state":"false"}'
    assert router.route("onvif2mqtt/mr_cam/custom", dark) == [ev.CameraTamper("mr-cam", "too_dark", False)]
    assert router.route("cam2mqtt/camera/mr_cam/status", b"offline") == [ev.DeviceOffline("camera", "mr-cam")]
    assert router.route("cam2mqtt/camera/mr_cam/event/onvif/tamper", b"off") == [ev.CameraTamper("mr-cam", "tamper", False)]
    assert router.route("cam2mqtt/camera/mr_cam/event/onvif/motion", b"on") is None


def test_subscriptions_never_take_snapshots(router: TopicRouter) -> None:
    subs = router.subscriptions()
    assert "frigate/#" not in subs and "frigate/+/person" in subs
