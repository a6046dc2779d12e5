"""The machine room, sans-IO: events and the time in, actions out.

``handle(event, now)`` and ``tick(now)`` return alarm changes (from the :class:`AlarmBook`),
record rows and door unlocks.  Timers (held open, offline hold, silent sensors, repeated denials)
advance only in ``tick``; the service calls it every ``tick_interval_s``.  Alarm sources are
``"<kind>:<name>"`` (``door:server-room``, ``camera:mr-cam``).
"""

from __future__ import annotations

import datetime as dt

from firmware_app.room import events as ev
from firmware_app.room.actions import Action, RecordRow, Unlock
from firmware_app.room.alarms import Alarm, AlarmBook
from firmware_app.room.badges import BadgeList, Decision
from firmware_app.room.doors import Door, Visit
from firmware_app.room.presence import Presence
from firmware_app.room.settings import DoorConfig, RoomConfig

__all__ = ["RoomModel"]

#: Offline alarm kind per device kind; readers are supervised by OSDP polling, so no hold time.
_OFFLINE_KIND = {"camera": "camera_offline", "sensor": "sensor_offline", "reader": "reader_offline",
                 "bridge": "bridge_offline", "nvr": "nvr_offline", "door": "sensor_offline"}


class RoomModel:
    """Doors, cameras, sensors and readers of one machine room, and its open alarms."""

    def __init__(
        self,
        config: RoomConfig,
        badges: BadgeList,
        now: dt.datetime,
        open_alarms: list[Alarm] | None = None,
        open_visits: list[RecordRow] | None = None,
    ) -> None:
        """``open_alarms`` and ``open_visits`` (entry rows not yet ended) come from the store, so
        a restart keeps both the alarms and who is inside."""
        self.config = config
        self.badges = badges
        self.alarms = AlarmBook(open_alarms)
        self.doors = {name: Door(door, now) for name, door in config.doors.items()}
        for row in open_visits or []:
            if row.door in self.doors and row.visit_id is not None and row.holder is not None:
                self.doors[row.door].visits.append(Visit(row.visit_id, row.holder, row.at, bool(row.corroborated)))
        self.presence: dict[str, Presence] = {}
        self.battery_pct: dict[str, int | None] = {}
        self.last_seen: dict[str, dt.datetime] = {name: now for name in config.sensors}
        for name in config.cameras:
            self.presence[f"camera:{name}"] = Presence(now)
        for name in config.sensors:
            self.presence[f"sensor:{name}"] = Presence(now)
        for door in config.doors.values():
            for reader in door.readers:
                self.presence[f"reader:{reader}"] = Presence(now)
        for osdp_reader in config.osdp.readers if config.osdp is not None else ():
            self.presence[f"reader:{osdp_reader.name}"] = Presence(now)

    # -- events -------------------------------------------------------------------------------

    def handle(self, event: ev.RoomEvent, now: dt.datetime) -> list[Action]:
        out: list[Action] = []
        match event:
            case ev.CardPresented(door=door, reader=reader, badge=badge):
                self._card(door, reader, badge, now, out)
            case ev.AccessGranted(door=door, holder=holder):
                self._granted(door, holder, "entry", now, out)
            case ev.AccessDenied(door=door, holder=holder, reason=reason):
                self._denied(door, Decision(False, holder, reason), now, out)
            case ev.ExitRequest(door=door):
                if door in self.doors:
                    self.doors[door].expect("exit", None, now)
            case ev.DoorContact(door=door, open=is_open):
                self._contact(door, is_open, now, out)
            case ev.PersonsSeen(camera=camera, count=count):
                self._persons(camera, count, now, out)
            case ev.PersonDetected(camera=camera):
                self._person_detected(camera, now, out)
            case ev.DeviceOnline(kind=kind, name=name):
                self._presence(kind, name, True, now, out)
            case ev.DeviceOffline(kind=kind, name=name):
                self._presence(kind, name, False, now, out)
            case ev.DeviceLeft(kind=kind, name=name):
                out += self.alarms.raise_("device_left", f"{kind}:{name}", now)
            case ev.InstallModeSeen(reader=reader):
                out += self.alarms.raise_("reader_install_mode", f"reader:{reader}", now)
            case ev.ReaderKeyMismatch(reader=reader):
                out += self.alarms.raise_("reader_key_mismatch", f"reader:{reader}", now)
            case ev.Tamper(source=source, active=active):
                kind = "sensor_tamper" if source.startswith("sensor:") else "tamper"
                out += self.alarms.raise_(kind, source, now) if active else self.alarms.restore(kind, source, now)
            case ev.PowerFault(source=source, active=active):
                out += self.alarms.raise_("power_fault", source, now) if active else self.alarms.restore("power_fault", source, now)
            case ev.CameraTamper(camera=camera, condition=condition, active=active):
                kind, source = f"camera_{condition}", f"camera:{camera}"
                out += self.alarms.raise_(kind, source, now) if active else self.alarms.restore(kind, source, now)
            case ev.SensorBattery(sensor=sensor, percent=percent, low=low):
                self._battery(sensor, percent, low, now, out)
            case ev.SensorCheckIn(sensor=sensor):
                self.last_seen[sensor] = now
                out += self.alarms.restore("sensor_silent", f"sensor:{sensor}", now)
            case ev.KeypadEntry() | ev.LockProgramming():
                pass  # audited by the service; no state here
        return out

    def _card(self, door: str, reader: str, badge: str, now: dt.datetime, out: list[Action]) -> None:
        decision = self.badges.decide(badge, door, now)
        if not decision.granted:
            self._denied(door, decision, now, out)
            return
        direction = self.doors[door].config.readers.get(reader, "in") if door in self.doors else "in"
        assert decision.holder is not None
        self._granted(door, decision.holder, "exit" if direction == "out" else "entry", now, out)
        out.append(Unlock(door))
        if decision.reason == "after_hours_ok":
            out += self.alarms.raise_("after_hours_entry", f"door:{door}", now)

    def _granted(self, door: str, holder: str, kind: str, now: dt.datetime, out: list[Action]) -> None:
        out.append(RecordRow(now, "granted", door, holder, reason="exit" if kind == "exit" else None))
        if door in self.doors:
            self.doors[door].expect(kind, holder, now)

    def _denied(self, door: str, decision: Decision, now: dt.datetime, out: list[Action]) -> None:
        out.append(RecordRow(now, "denied", door, decision.holder, reason=decision.reason))
        if decision.reason in ("unknown_badge", "revoked_badge"):
            out += self.alarms.raise_("badge_" + decision.reason.split("_")[0], f"door:{door}", now)
        state = self.doors.get(door)
        if state is not None and state.note_denial(now) >= state.config.denials_max:
            out += self.alarms.raise_("repeated_denials", f"door:{door}", now)

    def _contact(self, name: str, is_open: bool, now: dt.datetime, out: list[Action]) -> None:
        door = self.doors.get(name)
        if door is None:
            return
        source = f"door:{name}"
        was = door.open
        if was is is_open:
            return  # a repeated full-state report, or back from unavailable in the same position
        door.open, door.since = is_open, now
        if not is_open:
            door.forced = False
            for kind in ("door_forced", "door_held", "door_held_prealarm"):
                out += self.alarms.restore(kind, source, now)
            return
        if was is None:
            return  # first report since start: open since before we knew; the held timer runs
        pending = door.take_pending(now)
        if pending is None:
            door.forced = True
            out.append(RecordRow(now, "forced_opening", name))
            out += self.alarms.raise_("door_forced", source, now)
        elif pending.kind == "entry":
            assert pending.holder is not None
            visit = door.enter(pending.holder, now, self.config.corroboration_window_s)
            out.append(RecordRow(now, "entry", name, visit.holder, visit.visit_id, corroborated=visit.corroborated))
            if door.config.camera is not None:
                self._crowd(door, now, out)
        else:
            visit, ended = door.leave(pending.holder)
            if visit is not None:
                out.append(self._visit_row("exit", visit, name, now))
            else:
                out.append(RecordRow(now, "exit", name, pending.holder, reason="not attributed"))
            out += [self._visit_row("visit_closed", v, name, now, "room empty by count") for v in ended]

    @staticmethod
    def _visit_row(kind: str, visit: Visit, door: str, now: dt.datetime, reason: str | None = None) -> RecordRow:
        return RecordRow(now, kind, door, visit.holder, visit.visit_id, (now - visit.entered_at).total_seconds(), visit.corroborated, reason)

    def _persons(self, camera: str, count: int, now: dt.datetime, out: list[Action]) -> None:
        cam = self.config.cameras.get(camera)
        if cam is None or cam.door is None:
            return
        door = self.doors[cam.door]
        door.persons_seen = count
        if count > 0:
            door.last_person_at = now
            window_s = self.config.corroboration_window_s
            for visit in door.visits:
                if not visit.corroborated and abs((now - visit.entered_at).total_seconds()) <= window_s:
                    visit.corroborated = True
        self._crowd(door, now, out)

    def _person_detected(self, camera: str, now: dt.datetime, out: list[Action]) -> None:
        cam = self.config.cameras.get(camera)
        if cam is None or cam.door is None:
            return
        count = self.doors[cam.door].persons_seen
        self._persons(camera, max(count, 1), now, out)

    def _crowd(self, door: Door, now: dt.datetime, out: list[Action]) -> None:
        """More people seen than badged in: intrusion if nobody is, tailgating otherwise."""
        source = f"door:{door.config.name}"
        inside = door.occupancy()
        if door.persons_seen > inside + door.expected_entries(now):
            out += self.alarms.raise_("intrusion" if inside == 0 else "tailgating", source, now, {"persons": str(door.persons_seen), "badged": str(inside)})
        else:
            out += self.alarms.restore("intrusion", source, now) + self.alarms.restore("tailgating", source, now)

    def _presence(self, kind: str, name: str, online: bool, now: dt.datetime, out: list[Action]) -> None:
        source = f"{kind}:{name}"
        presence = self.presence.setdefault(source, Presence(now))
        if not presence.set(online, now):
            return
        if online:
            out += self.alarms.restore("device_left", source, now)
            out += self.alarms.restore("reader_key_mismatch", source, now)
        if kind == "nvr" and not online:
            for camera in self.config.cameras:  # while the NVR is down nothing watches the room
                self.presence[f"camera:{camera}"].set(False, now)
        self._judge(source, presence, now, out)

    def _judge(self, source: str, presence: Presence, now: dt.datetime, out: list[Action]) -> None:
        kind = _OFFLINE_KIND.get(source.split(":", 1)[0], "device_offline")
        hold_s = 0.0 if kind == "reader_offline" else self.config.offline_hold_s
        verdict = presence.verdict(now, hold_s=hold_s, flap_count=self.config.flap_count, flap_window_s=self.config.flap_window_s)
        if verdict is True:
            out += self.alarms.raise_(kind, source, now)
        elif verdict is False:
            out += self.alarms.restore(kind, source, now)

    def _battery(self, sensor: str, percent: int | None, low: bool | None, now: dt.datetime, out: list[Action]) -> None:
        if percent is not None:
            self.battery_pct[sensor] = percent
        source = f"sensor:{sensor}"
        is_low = low is True or (percent is not None and percent < self.config.battery_low_pct)
        if is_low:
            out += self.alarms.raise_("battery_low", source, now)
        elif low is False or percent is not None:
            out += self.alarms.restore("battery_low", source, now)

    # -- time ---------------------------------------------------------------------------------

    def tick(self, now: dt.datetime) -> list[Action]:
        """Advance every timer to ``now``."""
        out: list[Action] = []
        for door in self.doors.values():
            self._held(door, now, out)
            source = f"door:{door.config.name}"
            if door.recent_denials(now) == 0:
                out += self.alarms.restore("repeated_denials", source, now)
            if door.config.camera is not None and door.pending is not None:
                self._crowd(door, now, out)  # a grant that lapsed unused no longer explains a person
        for source, presence in self.presence.items():
            self._judge(source, presence, now, out)
        for name, sensor in self.config.sensors.items():
            if (now - self.last_seen[name]).total_seconds() > sensor.checkin_interval_s:
                out += self.alarms.raise_("sensor_silent", f"sensor:{name}", now)
        return out

    def _held(self, door: Door, now: dt.datetime, out: list[Action]) -> None:
        cfg: DoorConfig = door.config
        source = f"door:{cfg.name}"
        open_s = door.open_for_s(now)
        if not door.open:
            return
        if open_s >= cfg.held_open_s:
            out += self.alarms.raise_("door_held", source, now, {"held_open_s": str(int(open_s))})
            out += self.alarms.restore("door_held_prealarm", source, now)
        elif cfg.prealarm_s > 0 and open_s >= cfg.held_open_s - cfg.prealarm_s:
            out += self.alarms.raise_("door_held_prealarm", source, now)

    # -- console ------------------------------------------------------------------------------

    def acknowledge(self, alarm_id: str, operator_id: str, now: dt.datetime) -> list[Action]:
        return list(self.alarms.acknowledge(alarm_id, operator_id, now))
