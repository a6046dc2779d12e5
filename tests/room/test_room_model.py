"""The room model, condition by condition: events and a manual clock in, actions out."""

from __future__ import annotations

import datetime as dt

import pytest

from firmware_app.clock import JST, ManualClock
from firmware_app.room import events as ev
from firmware_app.room.actions import RecordRow, Unlock
from firmware_app.room.alarms import AlarmChange
from firmware_app.room.badges import BadgeList
from firmware_app.room.errors import AlreadyAcknowledged, UnknownAlarm
from firmware_app.room.model import RoomModel
from firmware_app.room.settings import RoomConfig


class Room:
    """A model driven with a manual clock, remembering every action."""

    def __init__(self, config: RoomConfig, badges: BadgeList, clock: ManualClock) -> None:
        self.clock = clock
        self.model = RoomModel(config, badges, clock.now())
        self.actions: list[object] = []

    def send(self, *events: ev.RoomEvent) -> list[object]:
        out: list[object] = []
        for e in events:
            out += self.model.handle(e, self.clock.now())
        self.actions += out
        return out

    def wait(self, seconds: float, step_s: float = 1.0) -> list[object]:
        out: list[object] = []
        remaining = seconds
        while remaining > 0:
            move = min(step_s, remaining)
            self.clock.advance(move)
            remaining -= move
            out += self.model.tick(self.clock.now())
        self.actions += out
        return out

    def raised(self, out: list[object] | None = None) -> list[tuple[str, str]]:
        return [(a.alarm.kind, a.alarm.source) for a in (self.actions if out is None else out) if isinstance(a, AlarmChange) and a.change == "raised"]

    def restored(self, out: list[object] | None = None) -> list[tuple[str, str]]:
        return [(a.alarm.kind, a.alarm.source) for a in (self.actions if out is None else out) if isinstance(a, AlarmChange) and a.change == "restored"]

    def rows(self, kind: str) -> list[RecordRow]:
        return [a for a in self.actions if isinstance(a, RecordRow) and a.kind == kind]

    def active(self) -> set[tuple[str, str]]:
        return {(a.kind, a.source) for a in self.model.alarms.open_alarms() if a.state == "active"}


@pytest.fixture
def room(room_config: RoomConfig, badges: BadgeList, clock: ManualClock) -> Room:
    r = Room(room_config, badges, clock)
    r.send(ev.DoorContact("server-room", False), ev.DoorContact("side-door", False))
    return r


def card(badge: str, reader: str = "mr-in", door: str = "server-room") -> ev.CardPresented:
    return ev.CardPresented(door, reader, badge, "h10301")


def test_granted_entry_and_badge_out_exit_make_one_visit(room: Room) -> None:
    out = room.send(card("37-1001"))
    assert Unlock("server-room") in out
    room.send(ev.DoorContact("server-room", True))
    room.wait(3)
    room.send(ev.DoorContact("server-room", False))
    room.wait(600, step_s=60)
    room.send(card("37-1001", reader="mr-out"), ev.DoorContact("server-room", True))
    room.wait(2)
    room.send(ev.DoorContact("server-room", False))
    (entry,), (exit_,) = room.rows("entry"), room.rows("exit")
    assert entry.holder == exit_.holder == "staff-0001" and entry.visit_id == exit_.visit_id
    assert exit_.duration_s == pytest.approx(603)
    assert room.raised() == []


def test_door_opened_without_grant_is_forced_and_restores_on_close(room: Room) -> None:
    out = room.send(ev.DoorContact("server-room", True))
    assert room.raised(out) == [("door_forced", "door:server-room")]
    assert [r.kind for r in room.rows("forced_opening")] == ["forced_opening"]
    assert room.restored(room.send(ev.DoorContact("server-room", False))) == [("door_forced", "door:server-room")]


def test_a_grant_expires_after_its_window(room: Room) -> None:
    room.send(card("37-1001"))
    room.wait(11)
    assert room.raised(room.send(ev.DoorContact("server-room", True))) == [("door_forced", "door:server-room")]


def test_exit_button_then_opening_is_an_exit_not_forced(room: Room) -> None:
    room.send(card("37-1001"), ev.DoorContact("server-room", True), ev.DoorContact("server-room", False))
    room.wait(5)
    room.send(ev.ExitRequest("server-room"), ev.DoorContact("server-room", True), ev.DoorContact("server-room", False))
    assert room.raised() == []
    assert [r.holder for r in room.rows("exit")] == ["staff-0001"]


def test_anonymous_exits_close_visits_once_the_room_is_empty_by_count(room: Room) -> None:
    for badge in ("37-1001", "37-1002"):
        room.send(card(badge), ev.DoorContact("server-room", True), ev.DoorContact("server-room", False))
    for _ in range(2):
        room.send(ev.ExitRequest("server-room"), ev.DoorContact("server-room", True), ev.DoorContact("server-room", False))
    assert [r.holder for r in room.rows("exit")] == [None, None]
    assert sorted(r.holder for r in room.rows("visit_closed")) == ["staff-0001", "staff-0002"]
    assert room.model.doors["server-room"].occupancy() == 0


def test_held_open_prealarm_then_alarm_then_restore(room: Room) -> None:
    room.send(card("37-1001"), ev.DoorContact("server-room", True))
    assert room.raised(room.wait(39)) == []
    assert room.raised(room.wait(1)) == [("door_held_prealarm", "door:server-room")]
    out = room.wait(20)
    assert room.raised(out) == [("door_held", "door:server-room")]
    assert room.restored(out) == [("door_held_prealarm", "door:server-room")]
    assert room.raised(room.wait(120)) == []  # raised once, no storm
    assert room.restored(room.send(ev.DoorContact("server-room", False))) == [("door_held", "door:server-room")]


def test_after_hours_entry_needs_permission_and_is_alarmed(room_config: RoomConfig, badges: BadgeList) -> None:
    clock = ManualClock(dt.datetime(2026, 11, 26, 23, 0, tzinfo=JST))
    room = Room(room_config, badges, clock)
    out = room.send(card("37-1001"))
    assert [r.reason for r in room.rows("denied")] == ["after_hours"] and Unlock("server-room") not in out
    out = room.send(card("37-1002"))
    assert Unlock("server-room") in out
    assert room.raised(out) == [("after_hours_entry", "door:server-room")]


def test_unknown_and_revoked_badges_are_refused_and_alarmed(room: Room) -> None:
    room.send(card("99-9999"), card("37-1003"))
    assert [r.reason for r in room.rows("denied")] == ["unknown_badge", "revoked_badge"]
    assert room.raised() == [("badge_unknown", "door:server-room"), ("badge_revoked", "door:server-room")]
    assert [r.holder for r in room.rows("denied")] == [None, "staff-0003"]


def test_badge_not_permitted_on_this_door(room: Room) -> None:
    room.send(card("37-1004"))
    assert [r.reason for r in room.rows("denied")] == ["not_permitted"]


def test_repeated_denials_raise_once_and_restore_after_the_window(room: Room) -> None:
    for _ in range(6):
        room.send(card("37-1004"))
    assert room.raised().count(("repeated_denials", "door:server-room")) == 1
    room.wait(121, step_s=10)
    assert ("repeated_denials", "door:server-room") in room.restored()


def test_person_seen_with_nobody_badged_in_is_intrusion(room: Room) -> None:
    out = room.send(ev.PersonsSeen("mr-cam", 1))
    assert room.raised(out) == [("intrusion", "door:server-room")]
    assert room.restored(room.send(ev.PersonsSeen("mr-cam", 0))) == [("intrusion", "door:server-room")]


def test_more_people_than_grants_is_tailgating(room: Room) -> None:
    room.send(card("37-1001"), ev.DoorContact("server-room", True))
    assert room.raised(room.send(ev.PersonsSeen("mr-cam", 1))) == []
    assert room.rows("entry")[0].corroborated is False
    assert room.raised(room.send(ev.PersonsSeen("mr-cam", 2))) == [("tailgating", "door:server-room")]
    exit_ = room.send(ev.DoorContact("server-room", False), ev.PersonsSeen("mr-cam", 1))
    assert room.restored(exit_) == [("tailgating", "door:server-room")]


def test_camera_count_before_the_door_opens_is_covered_by_the_grant(room: Room) -> None:
    room.send(card("37-1001"))
    assert room.raised(room.send(ev.PersonsSeen("mr-cam", 1))) == []
    room.send(ev.DoorContact("server-room", True))
    assert room.rows("entry")[0].corroborated is True


def test_camera_offline_alarms_only_after_the_hold_time(room: Room) -> None:
    room.send(ev.DeviceOnline("camera", "mr-cam"), ev.DeviceOffline("camera", "mr-cam"))
    assert room.raised(room.wait(10)) == []
    room.send(ev.DeviceOnline("camera", "mr-cam"))  # a blip
    assert room.raised(room.wait(60)) == []
    room.send(ev.DeviceOffline("camera", "mr-cam"))
    assert room.raised(room.wait(30)) == [("camera_offline", "camera:mr-cam")]
    assert room.restored(room.send(ev.DeviceOnline("camera", "mr-cam"))) == [("camera_offline", "camera:mr-cam")]


def test_a_flapping_camera_alarms_and_clears_only_when_stable(room: Room) -> None:
    for _ in range(3):
        room.send(ev.DeviceOffline("camera", "mr-cam"))
        room.wait(2)
        room.send(ev.DeviceOnline("camera", "mr-cam"))
        room.wait(2)
    assert room.raised() == [("camera_offline", "camera:mr-cam")]
    assert room.restored() == []
    room.wait(30)
    assert room.restored() == [("camera_offline", "camera:mr-cam")]


def test_camera_tamper_and_blinding_raise_and_restore(room: Room) -> None:
    room.send(ev.CameraTamper("mr-cam", "tamper", True), ev.CameraTamper("mr-cam", "too_dark", True), ev.CameraTamper("mr-cam", "tamper", True))
    assert room.raised() == [("camera_tamper", "camera:mr-cam"), ("camera_too_dark", "camera:mr-cam")]
    assert room.restored(room.send(ev.CameraTamper("mr-cam", "too_dark", False))) == [("camera_too_dark", "camera:mr-cam")]


def test_silent_sensor_alarms_and_a_check_in_restores(room: Room) -> None:
    room.send(ev.SensorCheckIn("side-lock"))
    room.wait(3500, step_s=100)
    room.send(ev.SensorCheckIn("side-lock"))
    assert room.raised(room.wait(200, step_s=100)) == [("sensor_silent", "sensor:mr-contact")]
    assert room.restored(room.send(ev.SensorCheckIn("mr-contact"))) == [("sensor_silent", "sensor:mr-contact")]


def test_low_battery_by_flag_or_percentage(room: Room) -> None:
    assert room.raised(room.send(ev.SensorBattery("mr-contact", 15, None))) == [("battery_low", "sensor:mr-contact")]
    assert room.restored(room.send(ev.SensorBattery("mr-contact", 90, False))) == [("battery_low", "sensor:mr-contact")]
    assert room.raised(room.send(ev.SensorBattery("side-lock", None, True))) == [("battery_low", "sensor:side-lock")]


def test_device_leaving_the_network_is_latched_until_back(room: Room) -> None:
    room.send(ev.DeviceLeft("sensor", "mr-contact"))
    assert room.raised() == [("device_left", "sensor:mr-contact")]
    room.send(ev.DeviceOnline("sensor", "mr-contact"))
    assert room.restored() == [("device_left", "sensor:mr-contact")]


def test_reader_offline_is_immediate_and_install_mode_is_latched(room: Room) -> None:
    room.send(ev.DeviceOnline("reader", "mr-in"), ev.DeviceOffline("reader", "mr-in"))
    assert room.raised() == [("reader_offline", "reader:mr-in")]
    room.send(ev.DeviceOnline("reader", "mr-in"), ev.InstallModeSeen("mr-in"))
    assert room.restored() == [("reader_offline", "reader:mr-in")]
    alarm = next(a for a in room.model.alarms.open_alarms() if a.kind == "reader_install_mode")
    (change,) = room.model.acknowledge(alarm.alarm_id, "op-sup-01", room.clock.now())
    assert change.alarm.state == "restored" and change.alarm.closed


def test_tamper_and_power_toggle_and_restore(room: Room) -> None:
    room.send(ev.Tamper("reader:mr-in", True), ev.PowerFault("reader:mr-in", True), ev.Tamper("reader:mr-in", False), ev.PowerFault("reader:mr-in", False))
    assert room.raised() == [("tamper", "reader:mr-in"), ("power_fault", "reader:mr-in")]
    assert room.restored() == [("tamper", "reader:mr-in"), ("power_fault", "reader:mr-in")]


def test_sensor_unavailable_then_back_open_is_not_a_new_opening(room: Room) -> None:
    room.send(card("37-1001"), ev.DoorContact("server-room", True))
    room.send(ev.DeviceOffline("sensor", "mr-contact"))
    room.wait(5)
    room.send(ev.DeviceOnline("sensor", "mr-contact"), ev.DoorContact("server-room", True))
    assert len(room.rows("entry")) == 1 and room.raised() == []


def test_first_report_open_after_start_is_not_forced(room_config: RoomConfig, badges: BadgeList, clock: ManualClock) -> None:
    room = Room(room_config, badges, clock)
    assert room.raised(room.send(ev.DoorContact("server-room", True))) == []
    assert ("door_held", "door:server-room") in room.raised(room.wait(60))


def test_acknowledge_closes_a_restored_alarm_and_refuses_twice(room: Room) -> None:
    room.send(ev.DoorContact("server-room", True), ev.DoorContact("server-room", False))
    (alarm,) = room.model.alarms.open_alarms()
    room.model.acknowledge(alarm.alarm_id, "op-sup-01", room.clock.now())
    assert room.model.alarms.open_alarms() == []
    with pytest.raises(UnknownAlarm):
        room.model.acknowledge(alarm.alarm_id, "op-sup-01", room.clock.now())


def test_acknowledged_active_alarm_stays_open_until_restored(room: Room) -> None:
    room.send(ev.DoorContact("server-room", True))
    (alarm,) = room.model.alarms.open_alarms()
    room.model.acknowledge(alarm.alarm_id, "op-sup-01", room.clock.now())
    with pytest.raises(AlreadyAcknowledged):
        room.model.acknowledge(alarm.alarm_id, "op-sup-02", room.clock.now())
    room.send(ev.DoorContact("server-room", False))
    assert room.model.alarms.open_alarms() == []


def test_a_flapping_door_reuses_its_unacknowledged_alarm(room: Room) -> None:
    for _ in range(5):
        room.send(ev.DoorContact("server-room", True), ev.DoorContact("server-room", False))
    (alarm,) = room.model.alarms.open_alarms()
    assert alarm.count == 5 and len({a.alarm.alarm_id for a in room.actions if isinstance(a, AlarmChange)}) == 1


def test_unknown_devices_and_doors_change_nothing(room: Room) -> None:
    out = room.send(ev.DoorContact("no-such-door", True), ev.PersonsSeen("no-such-cam", 3), ev.ExitRequest("no-such-door"))
    assert out == []


def test_reader_with_the_wrong_key_alarms_until_it_comes_online(room: Room) -> None:
    room.send(ev.ReaderKeyMismatch("mr-in"), ev.ReaderKeyMismatch("mr-in"))
    assert room.raised() == [("reader_key_mismatch", "reader:mr-in")]
    room.send(ev.DeviceOnline("reader", "mr-in"))
    assert ("reader_key_mismatch", "reader:mr-in") in room.restored()


def test_a_swinging_alarm_goes_quiet_after_the_limit(room: Room) -> None:
    from firmware_app.room.alarms import SWINGER_LIMIT

    for _ in range(SWINGER_LIMIT + 3):
        room.send(ev.DoorContact("server-room", True), ev.DoorContact("server-room", False))
    changes = [a for a in room.actions if isinstance(a, AlarmChange)]
    loud = [c for c in changes if not c.quiet]
    assert len(loud) == 2 * SWINGER_LIMIT and all(c.quiet for c in changes[2 * SWINGER_LIMIT :])
    (alarm,) = room.model.alarms.open_alarms()
    (ack,) = room.model.acknowledge(alarm.alarm_id, "op-sup-01", room.clock.now())
    assert not ack.quiet
