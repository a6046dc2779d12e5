"""The ``[room.osdp]`` table: the serial line, its timings, and the readers on it.

::

    [room.osdp]
    device = "/dev/ttyUSB0"          # the RS-485 adapter
    baud = 115200
    offline_after_s = 1.0            # no reply for this long: the reader is offline
    retry_interval_s = 2.0           # how often an offline reader is tried again

    [[room.osdp.readers]]
    name = "server-room-in"
    door = "server-room"
    address = 101                    # OSDP address, 0-126
    key_file = "/etc/cs/osdp/server-room-in.scbk"   # 32 hex digits, mode 0600
    contact_input = 0                # PD input wired to the door contact (active = open)
    rex_input = 1                    # PD input wired to the exit button (active = pressed)
    strike_output = 0                # PD output driving the door strike (pulsed on a grant)

Every error names its key as ``room.osdp.<key>``.  Keys are not read here (see ``keys``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware_app.config_paths import config_path
from firmware_app.room.osdp.errors import OsdpConfigError

__all__ = ["BAUD_RATES", "OsdpConfig", "ReaderConfig", "load_osdp_config"]

BAUD_RATES = (9600, 19200, 38400, 57600, 115200, 230400)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_MAX_READERS = 32
_MAX_INPUTS = 32


@dataclass(frozen=True)
class ReaderConfig:
    """One OSDP peripheral (reader or door controller) and the door it serves."""

    name: str
    door: str
    address: int
    key_file: Path
    contact_input: int = 0
    rex_input: int = 1
    strike_output: int = 0


@dataclass(frozen=True)
class OsdpConfig:
    """One RS-485 line and its readers."""

    device: str
    readers: tuple[ReaderConfig, ...]
    baud: int = 115200
    offline_after_s: float = 1.0
    retry_interval_s: float = 2.0


def load_osdp_config(data: Any, base: Path) -> OsdpConfig:
    """Read ``[room.osdp]``; relative key paths are relative to ``base`` (the config's directory)."""
    top = _table(data, "room.osdp")
    device = _get(top, "room.osdp", "device", str)
    if not device or len(device) > 4096 or not device.isprintable():
        raise OsdpConfigError("room.osdp.device must be a device path")
    baud = _get(top, "room.osdp", "baud", int, 115200)
    if baud not in BAUD_RATES:
        raise OsdpConfigError(f"room.osdp.baud must be one of {', '.join(map(str, BAUD_RATES))}")
    offline_after_s = _number(top, "room.osdp", "offline_after_s", 1.0, 0.2, 60.0)
    retry_interval_s = _number(top, "room.osdp", "retry_interval_s", 2.0, 0.5, 3600.0)
    raw_readers = _get(top, "room.osdp", "readers", list)
    if not 1 <= len(raw_readers) <= _MAX_READERS:
        raise OsdpConfigError(f"room.osdp.readers must list 1-{_MAX_READERS} readers")
    readers = tuple(_reader(item, f"room.osdp.readers[{i}]", base) for i, item in enumerate(raw_readers))
    for key in ("name", "address"):
        values = [getattr(r, key) for r in readers]
        if len(set(values)) != len(values):
            raise OsdpConfigError(f"room.osdp.readers: two readers have the same {key}")
    _no_unknown(top, "room.osdp", {"device", "baud", "offline_after_s", "retry_interval_s", "readers"})
    return OsdpConfig(device, readers, baud, offline_after_s, retry_interval_s)


def _reader(data: Any, section: str, base: Path) -> ReaderConfig:
    t = _table(data, section)
    name, door = _get(t, section, "name", str), _get(t, section, "door", str)
    for key, value in (("name", name), ("door", door)):
        if not _NAME.fullmatch(value):
            raise OsdpConfigError(f"{section}.{key} must be 1-64 letters, digits, '.', '_' or '-'")
    address = _get(t, section, "address", int)
    if not 0 <= address <= 126:
        raise OsdpConfigError(f"{section}.address must be between 0 and 126")
    key_text = _get(t, section, "key_file", str)
    if not key_text or len(key_text) > 4096 or not key_text.isprintable():
        raise OsdpConfigError(f"{section}.key_file must be a file path")
    try:
        key_file = config_path(key_text, base)
    except ValueError as exc:
        raise OsdpConfigError(f"{section}.key_file {exc}") from None
    contact, rex = _get(t, section, "contact_input", int, 0), _get(t, section, "rex_input", int, 1)
    for key, value in (("contact_input", contact), ("rex_input", rex)):
        if not 0 <= value < _MAX_INPUTS:
            raise OsdpConfigError(f"{section}.{key} must be between 0 and {_MAX_INPUTS - 1}")
    if contact == rex:
        raise OsdpConfigError(f"{section}.rex_input must differ from contact_input")
    strike = _get(t, section, "strike_output", int, 0)
    if not 0 <= strike < _MAX_INPUTS:
        raise OsdpConfigError(f"{section}.strike_output must be between 0 and {_MAX_INPUTS - 1}")
    _no_unknown(t, section, {"name", "door", "address", "key_file", "contact_input", "rex_input", "strike_output"})
    return ReaderConfig(name, door, address, key_file, contact, rex, strike)


_REQUIRED = object()


def _table(data: Any, section: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise OsdpConfigError(f"{section} must be a table")
    return data


def _get(t: dict[str, Any], section: str, key: str, kind: type, default: Any = _REQUIRED) -> Any:
    if key not in t:
        if default is _REQUIRED:
            raise OsdpConfigError(f"{section}.{key} is required")
        return default
    value = t[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise OsdpConfigError(f"{section}.{key} has the wrong type")
    return value


def _number(t: dict[str, Any], section: str, key: str, default: float, low: float, high: float) -> float:
    value = t.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and low <= value <= high):
        raise OsdpConfigError(f"{section}.{key} must be a number between {low} and {high}")
    return float(value)


def _no_unknown(t: dict[str, Any], section: str, known: set[str]) -> None:
    unknown = sorted(set(t) - known)
    if unknown:
        raise OsdpConfigError(f"unknown key {unknown[0]!r} in {section}")
