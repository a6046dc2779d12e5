"""Zigbee2MQTT: device state (contact sensors, locks), per-device availability, bridge state and
bridge events.  ``contact: true`` means CLOSED.  Every field but the ones we use is ignored;
``tamper: false`` is never trusted as a restore (some models never clear it, some never set it).
"""

from __future__ import annotations

from typing import Any

from firmware_app.room import events as ev
from firmware_app.room.errors import MalformedPayload
from firmware_app.room.feeds.codec import json_object, optional, word
from firmware_app.room.settings import SensorConfig

__all__ = ["availability", "bridge_event", "bridge_state", "device_state"]

_LOCK_GRANTS = {"unlock": "keypad", "key_unlock": "key", "schedule_unlock": "schedule"}
_LOCK_DENIALS = {
    "unlock_failure_invalid_pin_or_id": "invalid_credential",
    "lock_failure_invalid_pin_or_id": "invalid_credential",
    "unlock_failure_invalid_schedule": "invalid_schedule",
    "lock_failure_invalid_schedule": "invalid_schedule",
}
_LOCK_EXITS = frozenset({"manual_unlock"})  # the inside thumb-turn
_SOURCE_NAMES = frozenset({"keypad", "rf", "manual", "rfid", "fingerprint"})


def online_word(payload: bytes, max_bytes: int) -> bool:
    """``online``/``offline`` as plain text (1.x) or ``{"state": "online"}`` (2.x)."""
    text = payload.strip()[:1]
    if text == b"{":
        state = optional(json_object(payload, max_bytes), "state", str)
        value = (state or "").lower()
    else:
        value = word(payload)
    if value not in ("online", "offline"):
        raise MalformedPayload("availability is neither online nor offline")
    return value == "online"


def availability(sensor: SensorConfig, payload: bytes, max_bytes: int) -> list[ev.RoomEvent]:
    online = online_word(payload, max_bytes)
    return [ev.DeviceOnline("sensor", sensor.name) if online else ev.DeviceOffline("sensor", sensor.name)]


def bridge_state(payload: bytes, max_bytes: int) -> list[ev.RoomEvent]:
    online = online_word(payload, max_bytes)
    return [ev.DeviceOnline("bridge", "zigbee2mqtt") if online else ev.DeviceOffline("bridge", "zigbee2mqtt")]


def bridge_event(payload: bytes, max_bytes: int, sensors_by_zigbee: dict[str, SensorConfig]) -> list[ev.RoomEvent]:
    """``device_leave`` of one of our devices is a security event; other types are not ours."""
    data = json_object(payload, max_bytes)
    kind = optional(data, "type", str)
    if kind != "device_leave":
        return []
    info = optional(data, "data", dict) or {}
    name = optional(info, "friendly_name", str)
    sensor = sensors_by_zigbee.get(name) if name is not None else None
    return [] if sensor is None else [ev.DeviceLeft("sensor", sensor.name)]


def device_state(sensor: SensorConfig, payload: bytes, max_bytes: int) -> list[ev.RoomEvent]:
    """The full state JSON of a device; the events it implies, the check-in first."""
    data = json_object(payload, max_bytes)
    out: list[ev.RoomEvent] = [ev.SensorCheckIn(sensor.name)]
    contact = optional(data, "contact", bool)
    if contact is not None and sensor.door is not None and sensor.kind == "contact":
        out.append(ev.DoorContact(sensor.door, open=not contact))
    battery = optional(data, "battery", (int, float))
    battery_low = optional(data, "battery_low", bool)
    if battery is not None and not 0 <= battery <= 100:
        raise MalformedPayload("battery is not a percentage")
    if battery is not None or battery_low is not None:
        out.append(ev.SensorBattery(sensor.name, None if battery is None else int(battery), battery_low))
    if optional(data, "tamper", bool) is True:
        out.append(ev.Tamper(f"sensor:{sensor.name}", True))
    if sensor.kind == "lock" and sensor.door is not None:
        out += _lock(sensor.door, data)
    return out


def _lock(door: str, data: dict[str, Any]) -> list[ev.RoomEvent]:
    action = optional(data, "action", str)
    if not action:
        return []
    user = optional(data, "action_user", int)
    source = optional(data, "action_source_name", str)
    method = source if source in _SOURCE_NAMES else "keypad"
    holder = f"lock-user:{user}" if user is not None else "lock-user:unknown"
    if action in _LOCK_GRANTS:
        return [ev.AccessGranted(door, holder, method if action == "unlock" else _LOCK_GRANTS[action])]
    if action in _LOCK_DENIALS:
        return [ev.AccessDenied(door, None, _LOCK_DENIALS[action])]
    if action in _LOCK_EXITS:
        return [ev.ExitRequest(door)]
    if action.startswith(("pin_code_", "rfid_code_", "fingerprint_")):
        return [ev.LockProgramming(door, action[:40])]
    return []
