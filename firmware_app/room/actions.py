"""What the room model asks of the world besides alarm changes: record rows and door unlocks."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from firmware_app.room.alarms import AlarmChange

__all__ = ["Action", "RecordRow", "Unlock"]


@dataclass(frozen=True)
class RecordRow:
    """One line of the physical-access record.  ``kind``: ``granted``, ``denied``, ``entry``,
    ``exit``, ``visit_closed`` (the room emptied by count), ``forced_opening``, ``alarm_raised``, ``alarm_restored``, ``alarm_acknowledged``.
    ``holder`` is a staff reference from the badge list (never a name)."""

    at: dt.datetime
    kind: str
    door: str = ""
    holder: str | None = None
    visit_id: str | None = None
    duration_s: float | None = None
    corroborated: bool | None = None
    reason: str | None = None
    alarm_id: str | None = None
    alarm_kind: str | None = None
    source: str | None = None
    actor: str | None = None

    @classmethod
    def for_alarm(cls, change: AlarmChange, at: dt.datetime) -> RecordRow:
        alarm = change.alarm
        actor = alarm.acknowledged_by if change.change == "acknowledged" else None
        return cls(at, f"alarm_{change.change}", alarm_id=alarm.alarm_id, alarm_kind=alarm.kind, source=alarm.source, actor=actor)


@dataclass(frozen=True)
class Unlock:
    """Pulse the strike of ``door`` (a card granted at a reader the daemon decides for)."""

    door: str


Action = AlarmChange | RecordRow | Unlock
