"""The room's event vocabulary: what adapters (OSDP, MQTT) tell the state machines.

Every event is a small frozen value naming its device by the configured name (door, reader,
camera, sensor), never by wire address.  Events carry no time: the service stamps them with its
clock when they are taken in, so the state machines see one time base whatever the source.
Badge numbers are credentials, not personal data, but are still kept out of ``repr`` and logs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "AccessDenied",
    "AccessGranted",
    "CameraTamper",
    "CardPresented",
    "DeviceKind",
    "DeviceLeft",
    "DeviceOffline",
    "DeviceOnline",
    "DoorContact",
    "ExitRequest",
    "InstallModeSeen",
    "KeypadEntry",
    "LockProgramming",
    "PersonDetected",
    "PersonsSeen",
    "PowerFault",
    "ReaderKeyMismatch",
    "RoomEvent",
    "SensorBattery",
    "SensorCheckIn",
    "Tamper",
]

#: What an online/offline/left/tamper event can be about.  ``bridge`` is Zigbee2MQTT itself,
#: ``nvr`` is Frigate itself.
DeviceKind = Literal["reader", "door", "sensor", "camera", "bridge", "nvr"]


@dataclass(frozen=True, slots=True)
class CardPresented:
    """A card read at a reader, already decoded to a badge number (e.g. H10301 ``fc:card``
    becomes ``"<fc>-<card>"``); the badge list decides whether it opens ``door``.
    ``card_format``: ``"h10301"``, ``"raw26"``, ... (``"raw<bits>"`` when undecodable)."""

    door: str
    reader: str
    badge: str = field(repr=False)
    card_format: str


@dataclass(frozen=True, slots=True)
class KeypadEntry:
    """Keys pressed at a reader; the digits may be a PIN and never leave this object's fields."""

    door: str
    reader: str
    keys: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class AccessGranted:
    """A controller or lock decided itself to let ``holder`` in (e.g. a Zigbee lock's keypad user);
    ``holder`` is a staff reference from the badge list, or ``"lock-user:<n>"``, never a name."""

    door: str
    holder: str
    method: str = "card"  # card | keypad | rfid | fingerprint | key | rf | remote


@dataclass(frozen=True, slots=True)
class AccessDenied:
    """A controller or lock refused someone itself; ``reason`` is a short stable word."""

    door: str
    holder: str | None
    reason: str  # invalid_credential | invalid_schedule | unknown_badge | revoked_badge | after_hours


@dataclass(frozen=True, slots=True)
class DoorContact:
    """The door position switch: ``open`` True when the door is open (a Zigbee ``contact: true``
    means CLOSED and becomes ``open=False`` here)."""

    door: str
    open: bool


@dataclass(frozen=True, slots=True)
class ExitRequest:
    """The request-to-exit button (or an inside thumb-turn) at ``door``."""

    door: str


@dataclass(frozen=True, slots=True)
class Tamper:
    """A tamper switch of a device changed: ``source`` is ``"<kind>:<name>"`` (e.g.
    ``"reader:server-room-in"``, ``"sensor:rack-door"``).  ``active`` False is a restore."""

    source: str
    active: bool


@dataclass(frozen=True, slots=True)
class PowerFault:
    """A device reports loss of (mains) power; ``active`` False is a restore."""

    source: str
    active: bool


@dataclass(frozen=True, slots=True)
class DeviceOnline:
    """A device is reachable again (reader polled with secure channel, camera streaming, ...)."""

    kind: DeviceKind
    name: str


@dataclass(frozen=True, slots=True)
class DeviceOffline:
    """A device stopped answering or says it is offline (camera offline is debounced later)."""

    kind: DeviceKind
    name: str


@dataclass(frozen=True, slots=True)
class DeviceLeft:
    """A device left its network (Zigbee ``device_leave``): a security event in itself."""

    kind: DeviceKind
    name: str


@dataclass(frozen=True, slots=True)
class InstallModeSeen:
    """A reader answered with the default install-mode key: it is never re-keyed automatically."""

    reader: str


@dataclass(frozen=True, slots=True)
class PersonsSeen:
    """The camera now counts ``count`` persons in its view (0 when the room is empty)."""

    camera: str
    count: int


@dataclass(frozen=True, slots=True)
class ReaderKeyMismatch:
    """A reader failed the secure-channel handshake with its configured key (a wrong key or a
    swapped reader): it is kept offline and never re-keyed."""

    reader: str


@dataclass(frozen=True, slots=True)
class PersonDetected:
    """The NVR reports a person in view now (a Frigate event or review), without a count."""

    camera: str


@dataclass(frozen=True, slots=True)
class CameraTamper:
    """A camera's own analytics: ``condition`` is ``tamper``, ``scene_change``, ``too_dark``,
    ``too_bright`` or ``too_blurry``; ``active`` False is a restore."""

    camera: str
    condition: str
    active: bool


@dataclass(frozen=True, slots=True)
class SensorBattery:
    """A battery report; either field may be missing on a given model."""

    sensor: str
    percent: int | None
    low: bool | None


@dataclass(frozen=True, slots=True)
class SensorCheckIn:
    """The sensor said anything at all: it is alive (supervision of its check-in interval)."""

    sensor: str


@dataclass(frozen=True, slots=True)
class LockProgramming:
    """A lock's code list was changed at the lock (``pin_code_added``, ``rfid_code_deleted``...)."""

    door: str
    action: str


RoomEvent = (
    CardPresented
    | KeypadEntry
    | AccessGranted
    | AccessDenied
    | DoorContact
    | ExitRequest
    | Tamper
    | PowerFault
    | DeviceOnline
    | DeviceOffline
    | DeviceLeft
    | InstallModeSeen
    | ReaderKeyMismatch
    | PersonsSeen
    | PersonDetected
    | CameraTamper
    | SensorBattery
    | SensorCheckIn
    | LockProgramming
)
