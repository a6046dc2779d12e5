"""The room package's error family; messages never carry badge numbers or payload bytes."""

from __future__ import annotations


class RoomError(Exception):
    """Base of every error the room package raises."""


class MalformedPayload(RoomError):
    """An incoming message could not be parsed into events (it is counted and dropped)."""


class UnknownAlarm(RoomError):
    """No alarm has this ID."""


class AlreadyAcknowledged(RoomError):
    """The alarm was acknowledged already."""


class RoomConfigError(RoomError):
    """The room configuration (or the badge list) is not usable."""
