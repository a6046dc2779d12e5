"""Who may open which door when: the badge list (a TOML file kept beside the configuration) and
the access decision, sans-IO.

The file maps badge numbers to staff references (``holder``), never to names: the record says
which staff reference entered, and who that is stays in the personnel system.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from firmware_app.room.errors import RoomConfigError
from firmware_app.room.settings import Schedule

__all__ = ["MAX_BADGE_FILE_BYTES", "Badge", "BadgeList", "Decision", "load_badges"]

MAX_BADGE_FILE_BYTES = 4 << 20
_BADGE = re.compile(r"[0-9A-Za-z-]{1,40}")
_HOLDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


@dataclass(frozen=True)
class Badge:
    """One card: whose it is, where and when it opens."""

    holder: str
    doors: frozenset[str] | None  # None: every door
    after_hours: bool = False
    revoked: bool = False


@dataclass(frozen=True)
class Decision:
    """The outcome for one card: ``reason`` is ``ok``, ``after_hours_ok`` (granted, alarmed), or
    why it was refused (``unknown_badge``, ``revoked_badge``, ``not_permitted``, ``after_hours``)."""

    granted: bool
    holder: str | None
    reason: str


class BadgeList:
    """Badge number → badge, and the decision for a card at a door at a time."""

    def __init__(self, badges: dict[str, Badge], schedule: Schedule) -> None:
        self._badges = badges
        self._schedule = schedule

    def __len__(self) -> int:
        return len(self._badges)

    def decide(self, badge_number: str, door: str, when: dt.datetime) -> Decision:
        badge = self._badges.get(badge_number)
        if badge is None:
            return Decision(False, None, "unknown_badge")
        if badge.revoked:
            return Decision(False, badge.holder, "revoked_badge")
        if badge.doors is not None and door not in badge.doors:
            return Decision(False, badge.holder, "not_permitted")
        if not self._schedule.is_working_time(when):
            if not badge.after_hours:
                return Decision(False, badge.holder, "after_hours")
            return Decision(True, badge.holder, "after_hours_ok")
        return Decision(True, badge.holder, "ok")


def load_badges(path: Path | None, schedule: Schedule) -> BadgeList:
    """Read the badge file (none configured: an empty list, every card is refused)."""
    if path is None:
        return BadgeList({}, schedule)
    try:
        raw = path.read_bytes()
    except OSError:
        raise RoomConfigError(f"cannot read the badge file {path}") from None
    if len(raw) > MAX_BADGE_FILE_BYTES:
        raise RoomConfigError("the badge file is too large")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        raise RoomConfigError("the badge file is not valid TOML") from None  # the text may hold badge numbers
    entries = data.get("badge", [])
    if set(data) - {"badge"} or not isinstance(entries, list):
        raise RoomConfigError("the badge file must hold only [[badge]] tables")
    badges: dict[str, Badge] = {}
    for i, entry in enumerate(entries):
        where = f"badge[{i}]"
        if not isinstance(entry, dict) or set(entry) - {"number", "holder", "doors", "after_hours", "revoked"}:
            raise RoomConfigError(f"{where} has unknown keys")
        number, holder = entry.get("number"), entry.get("holder")
        if not isinstance(number, str) or not _BADGE.fullmatch(number):
            raise RoomConfigError(f"{where}.number must be 1-40 letters, digits or '-'")
        if not isinstance(holder, str) or not _HOLDER.fullmatch(holder):
            raise RoomConfigError(f"{where}.holder must be a staff reference (letters, digits, '_.:-')")
        doors = entry.get("doors")
        if doors is not None and not (isinstance(doors, list) and all(isinstance(d, str) for d in doors)):
            raise RoomConfigError(f"{where}.doors must be a list of door names")
        flags = [entry.get(k, False) for k in ("after_hours", "revoked")]
        if not all(isinstance(f, bool) for f in flags):
            raise RoomConfigError(f"{where}.after_hours and .revoked must be true or false")
        if number in badges:
            raise RoomConfigError(f"{where}.number appears twice")
        badges[number] = Badge(holder, None if doors is None else frozenset(doors), flags[0], flags[1])
    return BadgeList(badges, schedule)
