"""Careful decoding of MQTT payloads: size-capped JSON objects and short plain-text words."""

from __future__ import annotations

import json
from typing import Any

from firmware_app.room.errors import MalformedPayload

__all__ = ["MAX_WORD_BYTES", "json_object", "optional", "word"]

MAX_WORD_BYTES = 64
_MAX_JSON_DEPTH = 16


def json_object(payload: bytes, max_bytes: int) -> dict[str, Any]:
    """A JSON object of at most ``max_bytes``; anything else is malformed."""
    if len(payload) > max_bytes:
        raise MalformedPayload("payload too large")
    try:
        value = json.loads(payload.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedPayload("payload is not JSON") from None
    if not isinstance(value, dict):
        raise MalformedPayload("payload is not a JSON object")
    if _depth(value) > _MAX_JSON_DEPTH:
        raise MalformedPayload("payload nests too deeply")
    return value


def word(payload: bytes) -> str:
    """A short plain-text payload (``online``, ``ON``, ``3``), stripped and lower-cased."""
    if len(payload) > MAX_WORD_BYTES:
        raise MalformedPayload("plain-text payload too long")
    try:
        text = payload.decode("ascii").strip()
    except UnicodeDecodeError:
        raise MalformedPayload("plain-text payload is not ASCII") from None
    if not text.isprintable():
        raise MalformedPayload("plain-text payload is not printable")
    return text.lower()


def optional(data: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    """``data[key]`` if present and not null; of the wrong type it is malformed."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) and kind not in (bool, (bool,)):
        raise MalformedPayload(f"field {key!r} has the wrong type")
    if not isinstance(value, kind):
        raise MalformedPayload(f"field {key!r} has the wrong type")
    return value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _depth(value: Any, level: int = 0) -> int:
    if level > _MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level
