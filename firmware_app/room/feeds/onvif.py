"""ONVIF events as bridges put them on MQTT (onvif2mqtt, cam2mqtt, or an ONVIF topic passed
through): tamper, scene change and image-quality events become camera tamper conditions.
There is no standard MQTT convention, so the mapping goes by names (after Home Assistant's
ONVIF parsers); motion is not ours (the NVR counts persons).
"""

from __future__ import annotations

from firmware_app.room import events as ev
from firmware_app.room.errors import MalformedPayload
from firmware_app.room.feeds.codec import json_object, optional, word

__all__ = ["condition_of", "event", "status"]

#: Lower-cased name fragments (of an ONVIF topic or a bridge's event name) → our condition.
_CONDITIONS = (
    ("tamperdetector", "tamper"),
    ("tamper", "tamper"),
    ("globalscenechange", "scene_change"),
    ("scenechange", "scene_change"),
    ("scene_change", "scene_change"),
    ("imagetoodark", "too_dark"),
    ("too_dark", "too_dark"),
    ("imagetoobright", "too_bright"),
    ("too_bright", "too_bright"),
    ("imagetooblurry", "too_blurry"),
    ("too_blurry", "too_blurry"),
)
_TRUE = frozenset({"true", "on", "1", "active"})
_FALSE = frozenset({"false", "off", "0", "inactive"})


def condition_of(name: str) -> str | None:
    """``tns1:RuleEngine/TamperDetector/Tamper`` → ``tamper``; None if not a tamper kind."""
    lowered = name.lower()
    for fragment, condition in _CONDITIONS:
        if fragment in lowered:
            return condition
    return None


def _truth(value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise MalformedPayload("event state is not on/off or true/false")


def event(camera: str, event_name: str, payload: bytes, max_bytes: int) -> list[ev.RoomEvent]:
    """One event of a bridge: plain ``on``/``off`` (``true``/``false``), or a JSON object with
    ``state`` or ``value`` and, for passed-through ONVIF, the ONVIF ``topic``."""
    name = event_name
    if payload.strip()[:1] == b"{":
        data = json_object(payload, max_bytes)
        name = optional(data, "topic", str) or optional(data, "eventType", str) or event_name
        state = optional(data, "state", (str, bool)) if "state" in data else optional(data, "value", (str, bool))
        if state is None:
            raise MalformedPayload("event has no state")
        active = state if isinstance(state, bool) else _truth(state.lower())
    else:
        active = _truth(word(payload))
    condition = condition_of(name)
    return [] if condition is None else [ev.CameraTamper(camera, condition, active)]


def status(camera: str, payload: bytes) -> list[ev.RoomEvent]:
    """cam2mqtt's ``camera/<id>/status``: ``online``/``offline``."""
    value = word(payload)
    if value not in ("online", "offline"):
        raise MalformedPayload("camera status is neither online nor offline")
    return [ev.DeviceOnline("camera", camera) if value == "online" else ev.DeviceOffline("camera", camera)]
