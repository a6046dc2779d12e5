"""Which parser a topic goes to, by the configured prefixes and device names (Zigbee2MQTT
friendly names may contain ``/``, so names are matched whole, never split).  Topics that are not
ours (other devices, ``/set`` commands, snapshots) are ignored without touching the payload.
"""

from __future__ import annotations

from collections.abc import Callable

from firmware_app.room import events as ev
from firmware_app.room.feeds import frigate, onvif, zigbee
from firmware_app.room.settings import MqttConfig, RoomConfig

__all__ = ["TopicRouter"]

Parser = Callable[[], list[ev.RoomEvent]]


class TopicRouter:
    """Topic filters to subscribe to, and the events of one message."""

    def __init__(self, room: RoomConfig, mqtt: MqttConfig) -> None:
        self._m = mqtt
        self._sensors = {s.zigbee: s for s in room.sensors.values()}
        self._frigate = {c.frigate: c.name for c in room.cameras.values() if c.frigate}
        self._onvif = {c.onvif: c.name for c in room.cameras.values() if c.onvif}

    def subscriptions(self) -> list[str]:
        fp = self._m.frigate_prefix
        return [
            f"{self._m.zigbee_prefix}/#",
            f"{fp}/available",
            f"{fp}/events",
            f"{fp}/reviews",
            f"{fp}/+/person",
            f"{fp}/+/status/+",
            *(f"{p}/#" for p in self._m.onvif_prefixes),
        ]

    def route(self, topic: str, payload: bytes) -> list[ev.RoomEvent] | None:
        """The events of a message, or None when the topic is not one of ours.  Raises
        ``MalformedPayload`` when it is ours and cannot be read."""
        parser = self._parser(topic, payload)
        return None if parser is None else parser()

    def _parser(self, topic: str, payload: bytes) -> Parser | None:
        if topic.endswith("/snapshot"):
            return None  # binary JPEG
        limit = self._m.max_payload_bytes
        head, sep, rest = topic.partition("/")
        if not sep:
            return None
        if head == self._m.zigbee_prefix:
            return self._zigbee(rest, payload, limit)
        if head == self._m.frigate_prefix:
            return self._frigate_topic(rest, payload, limit)
        if head in self._m.onvif_prefixes:
            return self._onvif_topic(rest, payload, limit)
        return None

    def _zigbee(self, rest: str, payload: bytes, limit: int) -> Parser | None:
        if rest == "bridge/state":
            return lambda: zigbee.bridge_state(payload, limit)
        if rest == "bridge/event":
            return lambda: zigbee.bridge_event(payload, limit, self._sensors)
        if rest.startswith("bridge/"):
            return None
        if rest.endswith("/availability") and rest[: -len("/availability")] in self._sensors:
            sensor = self._sensors[rest[: -len("/availability")]]
            return lambda: zigbee.availability(sensor, payload, limit)
        sensor = self._sensors.get(rest)
        return None if sensor is None else (lambda: zigbee.device_state(sensor, payload, limit))

    def _frigate_topic(self, rest: str, payload: bytes, limit: int) -> Parser | None:
        if rest == "available":
            return lambda: frigate.available(payload)
        if rest in ("events", "reviews"):
            return lambda: frigate.event_or_review(payload, limit, self._frigate)
        parts = rest.split("/")
        camera = self._frigate.get(parts[0])
        if camera is None:
            return None
        if parts[1:] == ["person"]:
            return lambda: frigate.person_count(camera, payload)
        if parts[1:] == ["status", "detect"]:
            return lambda: frigate.camera_status(camera, payload)
        return None

    def _onvif_topic(self, rest: str, payload: bytes, limit: int) -> Parser | None:
        rest = rest.removeprefix("camera/")  # cam2mqtt: camera/<id>/status, camera/<id>/event/onvif/...
        device, sep, event_name = rest.partition("/")
        camera = self._onvif.get(device)
        if camera is None or not sep:
            return None
        if event_name == "status":
            return lambda: onvif.status(camera, payload)
        if onvif.condition_of(event_name) is None and payload.strip()[:1] != b"{":
            return None  # motion and the like: not ours
        return lambda: onvif.event(camera, event_name, payload, limit)
