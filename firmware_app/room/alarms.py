"""The alarm book, sans-IO: one alarm per (kind, source) condition while it is open.

An alarm is *open* until it is both restored and acknowledged.  Raising a condition that already
has an open alarm never makes a second one (no storms): an active alarm only counts the repeat,
a restored-but-unacknowledged one becomes active again.  An alarm that swings between active and
restored more than ``SWINGER_LIMIT`` times is a swinger: its further changes are marked
``quiet`` (stored and audited, but not journaled or notified one by one).  Latched kinds (one-way evidence such as
a Zigbee tamper switch, a reader in install mode) are restored by their acknowledgement.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field, replace

from firmware_app.room.errors import AlreadyAcknowledged, UnknownAlarm

__all__ = ["LATCHED_KINDS", "MOMENTARY_KINDS", "SWINGER_LIMIT", "Alarm", "AlarmBook", "AlarmChange"]

#: Kinds whose condition is one moment (a refused card): raised and restored at once, open until
#: acknowledged.
MOMENTARY_KINDS = frozenset({"badge_unknown", "badge_revoked", "after_hours_entry"})
#: Kinds with no trustworthy "all clear" from the device: the acknowledgement restores them.
LATCHED_KINDS = frozenset({"sensor_tamper", "reader_install_mode", "device_left"})
#: Raises of one open alarm past which its swings are no longer notified one by one.
SWINGER_LIMIT = 3


@dataclass(frozen=True)
class Alarm:
    """One alarm's state; ``detail`` is small, flat and free of personal data."""

    alarm_id: str
    kind: str
    source: str
    state: str  # active | restored
    raised_at: dt.datetime
    restored_at: dt.datetime | None = None
    acknowledged_by: str | None = None
    acknowledged_at: dt.datetime | None = None
    count: int = 1
    detail: dict[str, str] = field(default_factory=dict)

    @property
    def closed(self) -> bool:
        return self.state == "restored" and self.acknowledged_by is not None

    def to_json(self) -> dict[str, object]:
        """The JSON-safe shape the console and the MQTT status use."""
        out = asdict(self)
        for key in ("raised_at", "restored_at", "acknowledged_at"):
            value = out[key]
            out[key] = value.isoformat() if value is not None else None
        return out

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Alarm:
        """Inverse of :meth:`to_json` (stored alarms)."""
        values = dict(data)
        for key in ("raised_at", "restored_at", "acknowledged_at"):
            value = values.get(key)
            values[key] = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class AlarmChange:
    """What happened to an alarm: ``raised``, ``restored`` or ``acknowledged``; ``quiet`` for a
    swinger's repeated raise or restore."""

    change: str
    alarm: Alarm

    @property
    def quiet(self) -> bool:
        return self.change != "acknowledged" and self.alarm.count > SWINGER_LIMIT


class AlarmBook:
    """Open alarms by condition; every method returns the alarms that changed (to store, publish,
    journal and audit), and an empty list when nothing did."""

    def __init__(self, open_alarms: list[Alarm] | None = None) -> None:
        self._by_condition: dict[tuple[str, str], Alarm] = {}
        self._by_id: dict[str, Alarm] = {}
        self._seq = 0
        for alarm in open_alarms or []:
            self._put(alarm)

    def _put(self, alarm: Alarm) -> Alarm:
        if alarm.closed:
            self._by_condition.pop((alarm.kind, alarm.source), None)
            self._by_id.pop(alarm.alarm_id, None)
        else:
            self._by_condition[(alarm.kind, alarm.source)] = alarm
            self._by_id[alarm.alarm_id] = alarm
        return alarm

    def open_alarms(self) -> list[Alarm]:
        return sorted(self._by_id.values(), key=lambda a: a.alarm_id)

    def get(self, alarm_id: str) -> Alarm | None:
        return self._by_id.get(alarm_id)

    def is_active(self, kind: str, source: str) -> bool:
        alarm = self._by_condition.get((kind, source))
        return alarm is not None and alarm.state == "active"

    def raise_(self, kind: str, source: str, now: dt.datetime, detail: dict[str, str] | None = None) -> list[AlarmChange]:
        current = self._by_condition.get((kind, source))
        changed: list[AlarmChange] = []
        if current is None:
            self._seq += 1
            alarm_id = f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%S%f}-{self._seq:04d}"
            changed.append(AlarmChange("raised", self._put(Alarm(alarm_id, kind, source, "active", now, detail=dict(detail or {})))))
        elif current.state == "active":
            self._put(replace(current, count=current.count + 1))  # a repeat, not news
        else:
            changed.append(AlarmChange("raised", self._put(replace(current, state="active", restored_at=None, count=current.count + 1))))
        if kind in MOMENTARY_KINDS:
            changed += self.restore(kind, source, now)
        return changed

    def restore(self, kind: str, source: str, now: dt.datetime) -> list[AlarmChange]:
        current = self._by_condition.get((kind, source))
        if current is None or current.state != "active":
            return []
        return [AlarmChange("restored", self._put(replace(current, state="restored", restored_at=now)))]

    def acknowledge(self, alarm_id: str, operator_id: str, now: dt.datetime) -> list[AlarmChange]:
        current = self._by_id.get(alarm_id)
        if current is None:
            raise UnknownAlarm("no open alarm has this ID")
        if current.acknowledged_by is not None:
            raise AlreadyAcknowledged("the alarm was acknowledged already")
        acked = replace(current, acknowledged_by=operator_id, acknowledged_at=now)
        if acked.kind in LATCHED_KINDS and acked.state == "active":
            acked = replace(acked, state="restored", restored_at=now)
        return [AlarmChange("acknowledged", self._put(acked))]
