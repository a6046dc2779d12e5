"""A scripted day through the room service (no broker: events submitted as the adapters do):
the CSV report matches the script one to one, the PDF carries the same visits and alarms, and
the retention sweep deletes what is past the configured period."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import datetime as dt
import io

import pypdf
import pytest

from firmware_app.clock import JST, ManualClock
from firmware_app.room import events as ev
from firmware_app.room.errors import RoomError
from firmware_app.room.service import RoomService
from firmware_app.room.settings import RoomConfig

DOOR = "server-room"


async def settle(service: RoomService) -> None:
    """Until the service has handled everything submitted (bounded)."""
    assert service.inbox is not None
    for _ in range(500):
        if service.inbox.pending() == 0:
            await asyncio.sleep(0)
            return
        await asyncio.sleep(0.01)
    raise AssertionError("events not handled in time")


async def until_alarm(service: RoomService, kind: str, state: str) -> str:
    for _ in range(500):
        for alarm in service.open_alarms():
            if alarm["kind"] == kind and alarm["state"] == state:
                return str(alarm["alarm_id"])
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {state} {kind} alarm in time")


async def scripted_day(service: RoomService, clock: ManualClock) -> None:
    async def at(hh: int, mm: int, *events: ev.RoomEvent) -> None:
        clock.set(dt.datetime(2026, 11, 26, hh, mm, tzinfo=JST))
        for e in events:
            service.submit(e)
            await settle(service)
            clock.advance(1)

    opened, closed = ev.DoorContact(DOOR, True), ev.DoorContact(DOOR, False)
    await at(9, 0, closed)
    await at(9, 1, ev.CardPresented(DOOR, "mr-in", "37-1001", "h10301"), opened, closed)
    await at(9, 5, ev.CardPresented(DOOR, "mr-in", "37-1002", "h10301"), ev.PersonsSeen("mr-cam", 2), opened, closed)
    await at(10, 0, ev.CardPresented(DOOR, "mr-in", "99-0000", "h10301"))
    await at(11, 0, ev.CardPresented(DOOR, "mr-out", "37-1001", "h10301"), opened, closed, ev.PersonsSeen("mr-cam", 1))
    await at(12, 0, opened, closed)
    forced = await until_alarm(service, "door_forced", "restored")
    await at(13, 0, ev.PersonsSeen("mr-cam", 0), ev.ExitRequest(DOOR), opened, closed)
    await at(14, 0, ev.DeviceOnline("camera", "mr-cam"), ev.DeviceOffline("camera", "mr-cam"))
    clock.advance(61)
    await until_alarm(service, "camera_offline", "active")
    await at(14, 5, ev.DeviceOnline("camera", "mr-cam"))
    await until_alarm(service, "camera_offline", "restored")
    clock.set(dt.datetime(2026, 11, 26, 15, 0, tzinfo=JST))
    await service.acknowledge(forced, "op-sup-01")


EXPECTED = [
    ("granted", "staff-0001"),
    ("entry", "staff-0001"),
    ("granted", "staff-0002"),
    ("entry", "staff-0002"),
    ("denied", ""),
    ("alarm_raised", "badge_unknown"),
    ("alarm_restored", "badge_unknown"),
    ("granted", "staff-0001"),
    ("exit", "staff-0001"),
    ("forced_opening", ""),
    ("alarm_raised", "door_forced"),
    ("alarm_restored", "door_forced"),
    ("exit", "staff-0002"),
    ("alarm_raised", "camera_offline"),
    ("alarm_restored", "camera_offline"),
    ("alarm_acknowledged", "door_forced"),
]


def quiet(config: RoomConfig, **changes: object) -> RoomConfig:
    """The room with sensors that need not check in during the scripted day."""
    sensors = {n: dataclasses.replace(s, checkin_interval_s=7 * 86400.0) for n, s in config.sensors.items()}
    return dataclasses.replace(config, sensors=sensors, tick_interval_s=0.02, **changes)  # type: ignore[arg-type]


@pytest.fixture
def day_clock() -> ManualClock:
    return ManualClock(dt.datetime(2026, 11, 26, 8, 0, tzinfo=JST))


def test_a_scripted_day_reports_one_to_one(room_config: RoomConfig, store: object, day_clock: ManualClock) -> None:
    config = quiet(room_config)

    async def scenario() -> tuple[bytes, bytes]:
        service = RoomService(config, store, day_clock, flush_interval_s=0.02)  # type: ignore[arg-type]
        await service.start()
        try:
            await scripted_day(service, day_clock)
            start, end = dt.datetime(2026, 11, 26, tzinfo=JST), dt.datetime(2026, 11, 27, tzinfo=JST)
            with pytest.raises(RoomError):
                await service.report(end, start, "csv")
            with pytest.raises(RoomError):
                await service.report(start, end, "xlsx")
            return await service.report(start, end, "csv"), await service.report(start, end, "pdf")
        finally:
            await service.stop()

    csv_bytes, pdf_bytes = asyncio.run(asyncio.wait_for(scenario(), 60))
    rows = list(csv.DictReader(io.StringIO(csv_bytes.decode("utf-8"))))
    got = [(r["event"], r["holder"] or r["alarm_kind"]) for r in rows if r["alarm_kind"] not in ("intrusion", "tailgating")]
    assert got == EXPECTED
    exit_1 = next(r for r in rows if r["event"] == "exit" and r["holder"] == "staff-0001")
    assert float(exit_1["duration_s"]) == pytest.approx(2 * 3600 - 60 + 1, abs=2)
    entry_2 = next(r for r in rows if r["event"] == "entry" and r["holder"] == "staff-0002")
    assert entry_2["camera_corroborated"] == "yes"
    ack = next(r for r in rows if r["event"] == "alarm_acknowledged")
    assert ack["actor"] == "op-sup-01"
    assert "37-10" not in csv_bytes.decode()  # badge numbers never reach the record

    assert pdf_bytes.startswith(b"%PDF")
    text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf_bytes)).pages)
    for needle in ("staff-0001", "staff-0002", "door_forced", "camera_offline", "op-sup-01", "Visits: 2", "Alarms raised: 3"):
        assert needle in text


def test_records_past_the_retention_period_are_swept(room_config: RoomConfig, store: object, day_clock: ManualClock) -> None:
    config = quiet(room_config, record_keep_days=30)

    async def scenario() -> tuple[int, bytes, set[str]]:
        service = RoomService(config, store, day_clock, flush_interval_s=0.02)  # type: ignore[arg-type]
        await service.start()
        try:
            await scripted_day(service, day_clock)
            await service.sweep()  # nothing is old yet
            day_clock.advance(31 * 86400)
            deleted = await service.sweep()
            report = await service.report(dt.datetime(2026, 11, 1, tzinfo=JST), dt.datetime(2026, 12, 1, tzinfo=JST), "csv")
            return deleted, report, {str(a["kind"]) for a in service.open_alarms()}
        finally:
            await service.stop()

    deleted, report, still_open = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert deleted >= len(EXPECTED)
    assert report.decode().count("\n") == 1  # the header alone
    # Unacknowledged alarms are kept whatever their age (the month's silence may add sensor_silent).
    assert {"badge_unknown", "camera_offline"} <= still_open and "door_forced" not in still_open


def test_a_restart_remembers_who_is_inside(room_config: RoomConfig, store: object, clock: ManualClock) -> None:
    config = quiet(room_config)
    day_clock = clock  # 09:00, within working hours

    async def scenario() -> tuple[int, list[str]]:
        first = RoomService(config, store, day_clock, flush_interval_s=0.02)  # type: ignore[arg-type]
        await first.start()
        for e in (ev.DoorContact(DOOR, False), ev.CardPresented(DOOR, "mr-in", "37-1001", "h10301"), ev.DoorContact(DOOR, True), ev.DoorContact(DOOR, False)):
            first.submit(e)
            await settle(first)
        await first.stop()
        day_clock.advance(600)
        again = RoomService(config, store, day_clock, flush_interval_s=0.02)  # type: ignore[arg-type]
        await again.start()
        try:
            again.submit(ev.PersonsSeen("mr-cam", 1))  # the person badged in before the restart
            await settle(again)
            assert again.model is not None
            return again.model.doors[DOOR].occupancy(), [str(a["kind"]) for a in again.open_alarms()]
        finally:
            await again.stop()

    inside, alarms = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert inside == 1 and "intrusion" not in alarms


def test_a_swinging_door_is_journaled_a_bounded_number_of_times(room_config: RoomConfig, store: object, clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    config = quiet(room_config)

    async def scenario() -> int:
        service = RoomService(config, store, clock, flush_interval_s=0.02)  # type: ignore[arg-type]
        await service.start()
        try:
            service.submit(ev.DoorContact(DOOR, False))
            for _ in range(50):
                service.submit(ev.DoorContact(DOOR, True))
                service.submit(ev.DoorContact(DOOR, False))
            await settle(service)
            clock.advance(1)
            report = await service.report(clock.now() - dt.timedelta(hours=1), clock.now(), "csv")
            return report.decode().count("forced_opening")
        finally:
            await service.stop()

    with caplog.at_level("INFO", logger="firmware_app.room.service"):
        openings = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert openings == 50  # every opening is in the record
    alarm_lines = [r for r in caplog.records if "room alarm" in r.getMessage()]
    assert len(alarm_lines) <= 6
