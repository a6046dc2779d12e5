"""The room's part of the LMDB store: open alarms and the physical-access record, with the
retention sweep.  Blocking (LMDB), so the service calls it from one writer thread.

Record rows are keyed by time (microseconds since the epoch, then a sequence number) so a period
is one range read and the retention sweep deletes a contiguous range.  Rows hold staff
references, never names; they are not encrypted (no resident data).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
from collections.abc import Iterable

from firmware_app.room.actions import RecordRow
from firmware_app.room.alarms import Alarm
from storage import layout
from storage.errors import CorruptValue
from storage.store import Store, Writer

__all__ = ["RoomRecord"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _time_key(at: dt.datetime) -> bytes:
    return layout.pack_u64(max(0, (at - _EPOCH) // dt.timedelta(microseconds=1)))


def _row_json(row: RecordRow) -> bytes:
    data = dataclasses.asdict(row)
    data["at"] = row.at.isoformat()
    return json.dumps(data, separators=(",", ":")).encode()


def _row_from(value: bytes) -> RecordRow:
    try:
        data = json.loads(value)
        data["at"] = dt.datetime.fromisoformat(data["at"])
        return RecordRow(**data)
    except (ValueError, KeyError, TypeError):
        raise CorruptValue("stored room record row is not readable") from None


class RoomRecord:
    """Alarms and record rows in the store; every method blocks."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._seq = itertools.count()

    def commit_blocking(self, rows: Iterable[RecordRow], alarms: Iterable[Alarm]) -> None:
        """Append ``rows`` and write ``alarms`` (their latest state) in one transaction."""
        items = [(_time_key(row.at) + layout.pack_u32(next(self._seq) & 0xFFFFFFFF), _row_json(row)) for row in rows]
        latest = {alarm.alarm_id: alarm for alarm in alarms}

        def write(w: Writer) -> None:
            for key, value in items:
                w.put(layout.ROOM_RECORD, key, value)
            for alarm in latest.values():
                w.put(layout.ROOM_ALARMS, alarm.alarm_id.encode("ascii"), json.dumps(alarm.to_json(), separators=(",", ":")).encode())

        self._store.write(write)

    def open_alarms_blocking(self) -> list[Alarm]:
        """Alarms not yet restored and acknowledged, for the alarm book at start."""
        with self._store.read() as r:
            alarms = [self._alarm(value) for _, value in r.items(layout.ROOM_ALARMS)]
        return [a for a in alarms if not a.closed]

    def rows_blocking(self, start: dt.datetime, end: dt.datetime) -> list[RecordRow]:
        """Record rows of ``[start, end)`` in time order."""
        with self._store.read() as r:
            return [_row_from(value) for _, value in r.items(layout.ROOM_RECORD, _time_key(start), _time_key(end))]

    def open_visits_blocking(self, since: dt.datetime, until: dt.datetime) -> list[RecordRow]:
        """Entry rows of ``[since, until)`` whose visit has not ended: who is inside (at start)."""
        open_entries: dict[str, RecordRow] = {}
        for row in self.rows_blocking(since, until):
            if row.visit_id is None:
                continue
            if row.kind == "entry":
                open_entries[row.visit_id] = row
            elif row.kind in ("exit", "visit_closed"):
                open_entries.pop(row.visit_id, None)
        return list(open_entries.values())

    def sweep_blocking(self, before: dt.datetime, limit: int) -> int:
        """Delete up to ``limit`` record rows and closed alarms older than ``before``; the count."""
        cutoff = f"{before.astimezone(dt.UTC):%Y%m%dT%H%M%S%f}".encode()

        def sweep(w: Writer) -> int:
            deleted = len(w.pop_range(layout.ROOM_RECORD, b"", _time_key(before), limit))
            stale = [key for key, value in w.items(layout.ROOM_ALARMS, b"", cutoff) if self._alarm(value).closed][: max(0, limit - deleted)]
            for key in stale:
                w.delete(layout.ROOM_ALARMS, key)
            return deleted + len(stale)

        return self._store.write(sweep)

    @staticmethod
    def _alarm(value: bytes) -> Alarm:
        try:
            return Alarm.from_json(json.loads(value))
        except (ValueError, TypeError):
            raise CorruptValue("stored room alarm is not readable") from None
