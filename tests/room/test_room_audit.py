"""What the room hands to the audit trail: devices as actors, no badge numbers or keypad digits,
and a sink that fails or lags never holds up or breaks the room."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping

from firmware_app.clock import JST
from firmware_app.room import events as ev
from firmware_app.room.actions import RecordRow
from firmware_app.room.audit import AuditFeed, entry_of_event, entry_of_row
from tests.room.room_fakes import FakeAuditSink


def test_events_name_the_device_and_never_the_credential() -> None:
    kind, actor, subject, detail = entry_of_event(ev.CardPresented("server-room", "mr-in", "37-1001", "h10301"))
    assert (kind, actor, subject) == ("room.card_presented", "reader:mr-in", "door:server-room")
    assert "37-1001" not in repr(detail) and "badge" not in detail
    kind, _, _, detail = entry_of_event(ev.KeypadEntry("server-room", "mr-in", "1234#"))
    assert kind == "room.keypad_entry" and detail["key_count"] == 5 and "1234" not in repr(detail)
    assert entry_of_event(ev.DeviceOffline("camera", "mr-cam"))[1] == "camera:mr-cam"
    assert entry_of_event(ev.Tamper("sensor:s1", True))[1] == "sensor:s1"


def test_rows_and_alarm_rows() -> None:
    at = dt.datetime(2026, 11, 26, 9, tzinfo=JST)
    kind, actor, subject, detail = entry_of_row(RecordRow(at, "entry", "server-room", "staff-0001", "v1", corroborated=True))
    assert (kind, actor, subject) == ("room.entry", "door:server-room", "door:server-room") and detail["holder"] == "staff-0001"
    ack = RecordRow(at, "alarm_acknowledged", alarm_id="A1", alarm_kind="door_forced", source="door:server-room", actor="op-sup-01")
    assert entry_of_row(ack)[:3] == ("room.alarm_acknowledged", "op-sup-01", "A1")


class FailingSink:
    """A fake audit trail that refuses every entry."""

    async def record(self, kind: str, *, actor: str, subject: str = "", detail: Mapping[str, object] | None = None) -> None:
        raise RuntimeError("audit store unavailable")


def test_a_failing_sink_is_counted_and_a_full_feed_drops_not_blocks() -> None:
    async def scenario() -> tuple[int, int, int]:
        failing = AuditFeed(FailingSink())
        failing.note(("room.x", "system", "", {}))
        await failing.flush()
        bounded = AuditFeed(FakeAuditSink(), max_pending=3)
        for _ in range(5):
            bounded.note(("room.x", "system", "", {}))
        return failing.dropped, bounded.pending(), bounded.dropped

    assert asyncio.run(scenario()) == (1, 3, 2)
