"""Every room event and record row into the audit trail, without holding up the room.

The audit trail (the console branch) is reached through :class:`AuditSink`; the feed queues
entries and a task hands them over in order, so a slow sink never delays an alarm.  Past
``max_pending`` entries are counted as dropped (the watchdog says so) rather than eating memory.
Badge numbers and keypad digits never reach an entry.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections import deque
from collections.abc import Mapping
from typing import Protocol

from firmware_app.journal import event
from firmware_app.room import events as ev
from firmware_app.room.actions import RecordRow

__all__ = ["AuditFeed", "AuditSink", "entry_of_event", "entry_of_row"]

log = logging.getLogger(__name__)

Detail = Mapping[str, str | int | bool | None]
Entry = tuple[str, str, str, dict[str, str | int | bool | None]]


class AuditSink(Protocol):
    """The audit trail as the room uses it (see notes/interfaces.md)."""

    async def record(self, kind: str, *, actor: str, subject: str = "", detail: Detail | None = None) -> None: ...


_SECRET_FIELDS = frozenset({"badge", "keys"})
_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def entry_of_event(e: ev.RoomEvent) -> Entry:
    """(kind, actor, subject, detail) of an incoming event: the device is the actor."""
    fields = {f.name: getattr(e, f.name) for f in dataclasses.fields(e) if f.name not in _SECRET_FIELDS}
    kind = "room." + _SNAKE.sub("_", type(e).__name__).lower()
    if "reader" in fields:
        actor = f"reader:{fields['reader']}"
    elif "camera" in fields:
        actor = f"camera:{fields['camera']}"
    elif "sensor" in fields:
        actor = f"sensor:{fields['sensor']}"
    elif "source" in fields:
        actor = str(fields["source"])
    elif "kind" in fields and "name" in fields:
        actor = f"{fields['kind']}:{fields['name']}"
    else:
        actor = f"door:{fields.get('door', '')}"
    subject = f"door:{fields['door']}" if "door" in fields else actor
    if isinstance(e, ev.KeypadEntry):
        fields["key_count"] = len(e.keys)
    return kind, actor, subject, {k: v for k, v in fields.items() if isinstance(v, str | int | bool) or v is None}


def entry_of_row(row: RecordRow) -> Entry:
    """(kind, actor, subject, detail) of a record row (access decisions, visits, alarms)."""
    detail = {k: v for k, v in dataclasses.asdict(row).items() if k not in ("at", "kind") and v is not None}
    detail = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in detail.items()}
    detail["at"] = row.at.isoformat()
    if row.kind.startswith("alarm_"):
        return f"room.{row.kind}", row.actor or "system", row.alarm_id or "", detail
    return f"room.{row.kind}", f"door:{row.door}", f"door:{row.door}", detail


class AuditFeed:
    """A bounded, ordered hand-over to the sink; ``note`` never blocks or raises."""

    def __init__(self, sink: AuditSink, *, max_pending: int = 200_000) -> None:
        self._sink = sink
        self._pending: deque[Entry] = deque()
        self._max_pending = max_pending
        self._wake = asyncio.Event()
        self.dropped = 0

    def note(self, entry: Entry) -> None:
        if len(self._pending) >= self._max_pending:
            self.dropped += 1
            return
        self._pending.append(entry)
        self._wake.set()

    def pending(self) -> int:
        return len(self._pending)

    async def run(self) -> None:
        """Hand entries over until cancelled; a failing sink is logged and the entry dropped."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        while self._pending:
            kind, actor, subject, detail = self._pending.popleft()
            try:
                await self._sink.record(kind, actor=actor, subject=subject, detail=detail)
            except Exception as exc:  # noqa: BLE001 - the room goes on; the count tells
                self.dropped += 1
                log.error("audit sink refused a room entry: %s", type(exc).__name__, extra=event("room.audit_failed"))
