"""Frigate NVR: ``available``, per-camera ``status/<role>`` and person counts, ``events`` and
``reviews``.  Snapshot topics carry binary JPEGs and are never parsed.  Unknown fields and
unknown ``type`` values are ignored; Frigate adds fields in most releases.
"""

from __future__ import annotations

from firmware_app.room import events as ev
from firmware_app.room.errors import MalformedPayload
from firmware_app.room.feeds.codec import json_object, optional, word

__all__ = ["available", "camera_status", "event_or_review", "person_count"]

MAX_PERSONS = 1000


def available(payload: bytes) -> list[ev.RoomEvent]:
    value = word(payload)
    if value not in ("online", "offline"):
        raise MalformedPayload("frigate/available is neither online nor offline")
    return [ev.DeviceOnline("nvr", "frigate") if value == "online" else ev.DeviceOffline("nvr", "frigate")]


def camera_status(camera: str, payload: bytes) -> list[ev.RoomEvent]:
    """``frigate/<cam>/status/detect``: ``online``, ``offline`` or ``disabled`` (an operator
    turned it off: offline for the room's purposes)."""
    value = word(payload)
    if value not in ("online", "offline", "disabled"):
        raise MalformedPayload("camera status is not online, offline or disabled")
    return [ev.DeviceOnline("camera", camera) if value == "online" else ev.DeviceOffline("camera", camera)]


def person_count(camera: str, payload: bytes) -> list[ev.RoomEvent]:
    """``frigate/<cam>/person``: how many persons the camera sees now."""
    value = word(payload)
    if not value.isdigit() or int(value) > MAX_PERSONS:
        raise MalformedPayload("person count is not a small whole number")
    return [ev.PersonsSeen(camera, int(value))]


def event_or_review(payload: bytes, max_bytes: int, cameras: dict[str, str]) -> list[ev.RoomEvent]:
    """``frigate/events`` (label per tracked object) or ``frigate/reviews`` (objects per review):
    a person on one of our cameras, while the object or review is live (not ``end``).
    ``cameras``: Frigate camera name → our camera name."""
    data = json_object(payload, max_bytes)
    kind = optional(data, "type", str)
    after = optional(data, "after", dict)
    if after is None or kind not in ("new", "update", "end"):
        raise MalformedPayload("not a Frigate event or review")
    frigate_camera = optional(after, "camera", str)
    camera = cameras.get(frigate_camera) if frigate_camera is not None else None
    if camera is None or kind == "end":
        return []
    label = optional(after, "label", str)
    if label is not None:  # an event
        if optional(after, "false_positive", bool) is True:
            return []
        return [ev.PersonDetected(camera)] if label == "person" else []
    detail = optional(after, "data", dict) or {}
    objects = optional(detail, "objects", list) or []
    return [ev.PersonDetected(camera)] if "person" in objects else []
