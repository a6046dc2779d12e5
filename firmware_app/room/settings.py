"""The machine room's configuration: the ``[room]`` TOML table read into frozen values.

Devices are named once here; adapters map wire names (Zigbee2MQTT friendly names, Frigate camera
names) onto these names, and every alarm, record row and STATUS word uses them.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_app.config_paths import config_path
from firmware_app.room.errors import RoomConfigError
from firmware_app.room.osdp.settings import OsdpConfig, load_osdp_config

__all__ = ["CameraConfig", "DoorConfig", "MqttConfig", "RoomConfig", "Schedule", "SensorConfig", "load_room_config"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)")


@dataclass(frozen=True)
class Schedule:
    """Working hours: outside them an entry is after-hours (JST wall clock)."""

    days: frozenset[int] = frozenset(range(5))  # Monday=0
    start: dt.time = dt.time(8, 30)
    end_minutes: int = 18 * 60

    def is_working_time(self, when: dt.datetime) -> bool:
        local = when.astimezone(dt.timezone(dt.timedelta(hours=9)))
        minutes = local.hour * 60 + local.minute
        start = self.start.hour * 60 + self.start.minute
        return local.weekday() in self.days and start <= minutes < self.end_minutes


@dataclass(frozen=True)
class DoorConfig:
    """A door: its readers (name → ``in``/``out``), camera, and timings."""

    name: str
    readers: dict[str, str] = field(default_factory=dict)
    camera: str | None = None
    grant_window_s: float = 10.0
    held_open_s: float = 60.0
    prealarm_s: float = 20.0
    denials_max: int = 3
    denials_window_s: float = 120.0


@dataclass(frozen=True)
class CameraConfig:
    """A camera watching a door's room; ``frigate`` and ``onvif`` are its names on those bridges."""

    name: str
    door: str | None = None
    frigate: str | None = None
    onvif: str | None = None


@dataclass(frozen=True)
class SensorConfig:
    """A Zigbee2MQTT device: a door ``contact`` sensor or a ``lock``, on ``door``."""

    name: str
    zigbee: str
    kind: str = "contact"
    door: str | None = None
    checkin_interval_s: float = 3600.0


@dataclass(frozen=True)
class MqttConfig:
    """Where the broker is and how the room's client behaves on it."""

    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = "cs-room"
    username: str = "cs-room"
    password_file: Path | None = None  # a systemd credential; None: log in without a password
    zigbee_prefix: str = "zigbee2mqtt"
    frigate_prefix: str = "frigate"
    onvif_prefixes: tuple[str, ...] = ("onvif2mqtt", "cam2mqtt")
    publish_prefix: str = "cs-room"
    max_payload_bytes: int = 256 * 1024
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 30.0
    keepalive_s: int = 30


@dataclass(frozen=True)
class RoomConfig:
    """Everything the room service needs."""

    doors: dict[str, DoorConfig]
    cameras: dict[str, CameraConfig]
    sensors: dict[str, SensorConfig]
    mqtt: MqttConfig | None
    badges_path: Path | None
    schedule: Schedule = Schedule()
    offline_hold_s: float = 60.0
    flap_count: int = 5
    flap_window_s: float = 600.0
    battery_low_pct: int = 20
    record_keep_days: int = 365
    corroboration_window_s: float = 15.0
    tick_interval_s: float = 1.0
    osdp: OsdpConfig | None = None


class _Keys:
    """A plain dict read key by key; every error names ``room.<section>.<key>``."""

    def __init__(self, data: Any, section: str) -> None:
        if not isinstance(data, dict):
            raise RoomConfigError(f"{section} must be a table")
        self.data = data
        self.section = section
        self._used: set[str] = set()

    def get(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        self._used.add(key)
        if key not in self.data:
            if default is _REQUIRED:
                raise RoomConfigError(f"{self.section}.{key} is required")
            return default
        value = self.data[key]
        if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
            raise RoomConfigError(f"{self.section}.{key} has the wrong type")
        return value

    def name(self, key: str, default: Any = None) -> str:
        value = self.get(key, str, _REQUIRED if default is None else default)
        if value and not _NAME.fullmatch(value):
            raise RoomConfigError(f"{self.section}.{key} must be 1-64 letters, digits, '.', '_' or '-'")
        return value

    def text(self, key: str, default: Any = None, max_chars: int = 200) -> str:
        value = self.get(key, str, _REQUIRED if default is None else default)
        if len(value) > max_chars or not value.isprintable():
            raise RoomConfigError(f"{self.section}.{key} is too long or not printable")
        return value

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = float(self.get(key, (int, float), default))
        if not (math.isfinite(value) and low <= value <= high):
            raise RoomConfigError(f"{self.section}.{key} must be between {low} and {high}")
        return value

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self.get(key, int, default)
        if not low <= value <= high:
            raise RoomConfigError(f"{self.section}.{key} must be between {low} and {high}")
        return value

    def items(self, key: str) -> list[_Keys]:
        value = self.get(key, list, [])
        return [_Keys(item, f"{self.section}.{key}[{i}]") for i, item in enumerate(value)]

    def done(self) -> None:
        unknown = set(self.data) - self._used
        if unknown:
            raise RoomConfigError(f"unknown key {min(unknown)!r} in {self.section}")


_REQUIRED = object()


def load_room_config(data: Any, base: Path) -> RoomConfig:
    """Read the ``[room]`` table (``data``); relative paths are relative to ``base``."""
    top = _Keys(data, "room")
    doors: dict[str, DoorConfig] = {}
    for item in top.items("doors"):
        name = item.name("name")
        readers_raw = item.get("readers", dict, {})
        readers: dict[str, str] = {}
        for reader, direction in readers_raw.items():
            if not _NAME.fullmatch(reader) or direction not in ("in", "out"):
                raise RoomConfigError(f"{item.section}.readers must map reader names to \"in\" or \"out\"")
            readers[reader] = direction
        held_open_s = item.number("held_open_s", 60.0, 1.0, 86400.0)
        door = DoorConfig(
            name,
            readers,
            item.name("camera", "") or None,
            item.number("grant_window_s", 10.0, 0.5, 600.0),
            held_open_s,
            item.number("prealarm_s", min(20.0, held_open_s / 2), 0.0, held_open_s),
            item.integer("denials_max", 3, 1, 1000),
            item.number("denials_window_s", 120.0, 1.0, 86400.0),
        )
        item.done()
        _unique(doors, name, item.section)
        doors[name] = door
    cameras: dict[str, CameraConfig] = {}
    for item in top.items("cameras"):
        camera = CameraConfig(item.name("name"), item.name("door", "") or None, item.text("frigate", "") or None, item.text("onvif", "") or None)
        item.done()
        _unique(cameras, camera.name, item.section)
        cameras[camera.name] = camera
    sensors: dict[str, SensorConfig] = {}
    for item in top.items("sensors"):
        kind = item.text("kind", "contact")
        if kind not in ("contact", "lock"):
            raise RoomConfigError(f"{item.section}.kind must be \"contact\" or \"lock\"")
        sensor = SensorConfig(item.name("name"), item.text("zigbee"), kind, item.name("door", "") or None, item.number("checkin_interval_s", 3600.0, 1.0, 7 * 86400.0))
        item.done()
        _unique(sensors, sensor.name, item.section)
        sensors[sensor.name] = sensor
    for camera in cameras.values():
        if camera.door is not None and camera.door not in doors:
            raise RoomConfigError(f"room.cameras: camera {camera.name!r} names an unknown door")
    for sensor in sensors.values():
        if sensor.door is not None and sensor.door not in doors:
            raise RoomConfigError(f"room.sensors: sensor {sensor.name!r} names an unknown door")
    for door in doors.values():
        if door.camera is not None and door.camera not in cameras:
            raise RoomConfigError(f"room.doors: door {door.name!r} names an unknown camera")
    badges = top.text("badges", "", max_chars=4096)
    badges_path = _path(badges, base, "room.badges")
    mqtt = _mqtt(top, base) if "mqtt" in top.data else None
    top.get("mqtt", dict, {})
    schedule = _schedule(_Keys(top.get("schedule", dict, {}), "room.schedule"))
    osdp = load_osdp_config(top.data["osdp"], base) if "osdp" in top.data else None
    top.get("osdp", dict, {})
    for reader in osdp.readers if osdp is not None else ():
        if reader.door not in doors:
            raise RoomConfigError(f"room.osdp.readers: reader {reader.name!r} names an unknown door")
    config = RoomConfig(
        doors,
        cameras,
        sensors,
        mqtt,
        badges_path,
        schedule,
        offline_hold_s=top.number("offline_hold_s", 60.0, 0.0, 86400.0),
        flap_count=top.integer("flap_count", 5, 2, 1000),
        flap_window_s=top.number("flap_window_s", 600.0, 1.0, 86400.0),
        battery_low_pct=top.integer("battery_low_pct", 20, 0, 100),
        record_keep_days=top.integer("record_keep_days", 365, 1, 36500),
        corroboration_window_s=top.number("corroboration_window_s", 15.0, 0.0, 3600.0),
        tick_interval_s=top.number("tick_interval_s", 1.0, 0.01, 60.0),
        osdp=osdp,
    )
    top.done()
    return config


def _path(text: str, base: Path, key: str) -> Path | None:
    if not text:
        return None
    try:
        return config_path(text, base)
    except ValueError as exc:
        raise RoomConfigError(f"{key} {exc}") from None


def _unique(seen: dict[str, Any], name: str, section: str) -> None:
    if name in seen:
        raise RoomConfigError(f"{section}.name {name!r} is used twice")


def _mqtt(top: _Keys, base: Path) -> MqttConfig:
    t = _Keys(top.data["mqtt"], "room.mqtt")
    prefixes = t.get("onvif_prefixes", list, ["onvif2mqtt", "cam2mqtt"])
    if not all(isinstance(p, str) and p and "#" not in p and "+" not in p for p in prefixes):
        raise RoomConfigError("room.mqtt.onvif_prefixes must be topic prefixes without wildcards")
    mqtt = MqttConfig(
        host=t.text("host", "127.0.0.1"),
        port=t.integer("port", 1883, 1, 65535),
        client_id=t.name("client_id", "cs-room"),
        username=t.name("username", "cs-room"),
        password_file=_path(t.text("password_file", "", max_chars=4096), base, "room.mqtt.password_file"),
        zigbee_prefix=t.name("zigbee_prefix", "zigbee2mqtt"),
        frigate_prefix=t.name("frigate_prefix", "frigate"),
        onvif_prefixes=tuple(prefixes),
        publish_prefix=t.name("publish_prefix", "cs-room"),
        max_payload_bytes=t.integer("max_payload_bytes", 256 * 1024, 1024, 16 << 20),
        backoff_initial_s=t.number("backoff_initial_s", 0.2, 0.01, 60.0),
        backoff_max_s=t.number("backoff_max_s", 30.0, 0.01, 3600.0),
        keepalive_s=t.integer("keepalive_s", 30, 5, 3600),
    )
    t.done()
    return mqtt


def _schedule(t: _Keys) -> Schedule:
    days_raw = t.get("days", list, list(_DAYS[:5]))
    if not all(isinstance(d, str) and d in _DAYS for d in days_raw):
        raise RoomConfigError("room.schedule.days must list day names mon..sun")
    hours = t.text("hours", "08:30-18:00")
    match = _HOURS.fullmatch(hours)
    if match is None:
        raise RoomConfigError("room.schedule.hours must be HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h2 * 60 + m2 <= h1 * 60 + m1 or h2 * 60 + m2 > 24 * 60:
        raise RoomConfigError("room.schedule.hours must end after it starts, on the same day")
    t.done()
    return Schedule(frozenset(_DAYS.index(d) for d in days_raw), dt.time(h1, m1), h2 * 60 + m2)
