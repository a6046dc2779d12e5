"""The room service: runs the model on the inbox's events and the clock's ticks, stores alarms and
record rows, publishes alarms, journals them, audits everything, and answers the console
(the ``RoomPort`` of notes/interfaces.md: ``status``, ``open_alarms``, ``acknowledge``,
``report``).

An alarm change is committed to LMDB before it is published; plain record rows are committed in
batches (at most ``flush_interval_s`` late), each batch one write transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping, Sequence

from firmware_app.clock import Clock
from firmware_app.journal import event
from firmware_app.room import events as ev
from firmware_app.room.actions import Action, RecordRow, Unlock
from firmware_app.room.alarms import SWINGER_LIMIT, Alarm, AlarmChange
from firmware_app.room.audit import AuditFeed, AuditSink, entry_of_event, entry_of_row
from firmware_app.room.badges import load_badges
from firmware_app.room.broker import MqttFeed, read_password_blocking
from firmware_app.room.errors import RoomError
from firmware_app.room.feeds.router import TopicRouter
from firmware_app.room.inbox import EventInbox, RoomAdapter
from firmware_app.room.model import RoomModel
from firmware_app.room.record import RoomRecord
from firmware_app.room.report import render_report
from firmware_app.room.settings import RoomConfig
from storage.errors import StorageError
from storage.store import Store

__all__ = ["RoomService"]

log = logging.getLogger(__name__)

#: Events handled per turn of the loop before stored rows are considered for a flush.
_BATCH_EVENTS = 2000
_FLUSH_ROWS = 2000
SWEEP_INTERVAL_S = 3600.0
SWEEP_BATCH = 10_000
#: A swinging alarm's latest state is published at most this often.
SWINGER_PUBLISH_INTERVAL_S = 1.0
#: How far back the start looks for visits not yet ended (who is inside the room).
OCCUPANCY_LOOKBACK_DAYS = 7
#: The longest the stop waits for the audit trail to take the last entries.
AUDIT_FLUSH_TIMEOUT_S = 3.0
#: A broker connection down for less than this is a reconnect, not news for STATUS=.
BROKER_GRACE_S = 30.0


class RoomService:
    """One machine room: adapters in, alarms and the record out."""

    def __init__(self, config: RoomConfig, store: Store, clock: Clock, *, audit: AuditSink | None = None, flush_interval_s: float = 0.2) -> None:
        self.config = config
        self._clock = clock
        self._record = RoomRecord(store)
        self._audit = AuditFeed(audit) if audit is not None else None
        self._flush_interval_s = flush_interval_s
        self._adapters: list[RoomAdapter] = []
        self.inbox: EventInbox | None = None
        self.model: RoomModel | None = None
        self.mqtt: MqttFeed | None = None
        self._rows: list[RecordRow] = []
        self._alarms: list[Alarm] = []
        self._commit_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self.failed = 0
        self._swinging: dict[str, Alarm] = {}  # alarm ID → latest state not yet published
        self._swingers_published_s = 0.0

    def add_adapter(self, adapter: RoomAdapter) -> None:
        """An event source to start and stop with the service (before :meth:`start`)."""
        self._adapters.append(adapter)

    def submit(self, e: ev.RoomEvent) -> None:
        """The adapters' entry point: thread-safe, never blocks."""
        assert self.inbox is not None, "the room service is not started"
        self.inbox.submit(e)

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the badge list and open alarms, then start the adapters and the loops."""
        badges = await asyncio.to_thread(load_badges, self.config.badges_path, self.config.schedule)
        open_alarms = await asyncio.to_thread(self._record.open_alarms_blocking)
        now = self._clock.now()
        inside = await asyncio.to_thread(self._record.open_visits_blocking, now - dt.timedelta(days=OCCUPANCY_LOOKBACK_DAYS), now + dt.timedelta(seconds=1))
        self.model = RoomModel(self.config, badges, now, open_alarms, inside)
        self.inbox = EventInbox()
        if self.config.mqtt is not None:
            secret = self.config.mqtt.password_file
            password = None if secret is None else await asyncio.to_thread(read_password_blocking, secret)
            router = TopicRouter(self.config, self.config.mqtt)
            self.mqtt = MqttFeed(self.config.mqtt, router, self, monotonic_s=self._clock.monotonic_s, password=password)
            self._adapters.insert(0, self.mqtt)
            for alarm in open_alarms:
                self.mqtt.publish_alarm(alarm)
        if self.config.osdp is not None:
            from firmware_app.room.osdp.panel import OsdpPanel  # libosdp loads only when a line is configured

            self._adapters.append(OsdpPanel(self.config.osdp, self))
        self._tasks = [
            asyncio.create_task(self._event_loop(), name="room-events"),
            asyncio.create_task(self._tick_loop(), name="room-ticks"),
            asyncio.create_task(self._sweep_loop(), name="room-sweep"),
        ]
        if self._audit is not None:
            self._tasks.append(asyncio.create_task(self._audit.run(), name="room-audit"))
        for adapter in self._adapters:
            await adapter.start()
        log.info("machine room started: %d doors, %d cameras, %d sensors, %d badges, %d open alarms, %d people inside",
                 len(self.config.doors), len(self.config.cameras), len(self.config.sensors), len(badges), len(open_alarms), len(inside),
                 extra=event("room.started"))

    async def stop(self) -> None:
        """Stop the adapters, handle what they queued, commit, and stop the loops."""
        for adapter in reversed(self._adapters):
            try:
                await adapter.stop()
            except Exception as exc:  # noqa: BLE001 - one adapter must not keep the others running
                log.error("room adapter did not stop cleanly: %s", type(exc).__name__, extra=event("room.adapter_stop_failed"))
        if self.inbox is not None and self.model is not None:
            while self.inbox.pending():
                self._handle_pending()
            await self._commit()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._audit is not None:
            try:
                await asyncio.wait_for(self._audit.flush(), AUDIT_FLUSH_TIMEOUT_S)
            except TimeoutError:
                log.error("audit trail took too long at stop; %d room entries not handed over", self._audit.pending(), extra=event("room.audit_failed"))
        log.info("machine room stopped", extra=event("room.stopped"))

    # -- the loops ----------------------------------------------------------------------------

    async def _event_loop(self) -> None:
        assert self.inbox is not None
        while True:
            first = await self.inbox.get()
            self._handle(first)
            self._handle_pending()
            if self._alarms or len(self._rows) >= _FLUSH_ROWS:
                await self._commit()

    def _handle_pending(self) -> None:
        assert self.inbox is not None
        for _ in range(_BATCH_EVENTS):
            e = self.inbox.get_nowait()
            if e is None:
                return
            self._handle(e)

    def _handle(self, e: ev.RoomEvent) -> None:
        assert self.model is not None
        if self._audit is not None and not isinstance(e, ev.SensorCheckIn):
            self._audit.note(entry_of_event(e))
        try:
            actions = self.model.handle(e, self._clock.now())
        except Exception as exc:  # noqa: BLE001 - one bad event must not stop the room
            self.failed += 1
            log.error("room event %s could not be handled: %s", type(e).__name__, type(exc).__name__, extra=event("room.event_failed"))
            return
        self._apply(actions)

    async def _tick_loop(self) -> None:
        assert self.model is not None
        last_flush_s = self._clock.monotonic_s()
        while True:
            await asyncio.sleep(min(self.config.tick_interval_s, self._flush_interval_s))
            self._apply(self.model.tick(self._clock.now()))
            if self._alarms or self._clock.monotonic_s() - last_flush_s >= self._flush_interval_s:
                last_flush_s = self._clock.monotonic_s()
                await self._commit()
            self._publish_swingers()

    async def _sweep_loop(self) -> None:
        while True:
            await self.sweep()
            await asyncio.sleep(SWEEP_INTERVAL_S)

    async def sweep(self) -> int:
        """Delete record rows and closed alarms older than ``record_keep_days``; the count."""
        before = self._clock.now() - dt.timedelta(days=self.config.record_keep_days)
        total = 0
        while True:
            try:
                deleted = await asyncio.to_thread(self._record.sweep_blocking, before, SWEEP_BATCH)
            except StorageError as exc:
                log.error("room record sweep failed: %s", exc, extra=event("room.sweep_failed"))
                return total
            total += deleted
            if deleted < SWEEP_BATCH:
                break
        if total:
            log.info("room record sweep deleted %d rows and alarms older than %d days", total, self.config.record_keep_days, extra=event("room.swept"))
        return total

    # -- actions ------------------------------------------------------------------------------

    def _apply(self, actions: Sequence[Action]) -> None:
        now = self._clock.now()
        for action in actions:
            if isinstance(action, RecordRow):
                self._row(action)
            elif isinstance(action, AlarmChange):
                self._alarms.append(action.alarm)
                self._row(RecordRow.for_alarm(action, now))
                if action.quiet:
                    self._swinging[action.alarm.alarm_id] = action.alarm
                else:
                    self._journal(action)
            elif isinstance(action, Unlock):
                for adapter in self._adapters:  # an adapter that drives strikes has unlock(door)
                    unlock = getattr(adapter, "unlock", None)
                    if unlock is not None:
                        unlock(action.door)

    def _row(self, row: RecordRow) -> None:
        self._rows.append(row)
        if self._audit is not None:
            self._audit.note(entry_of_row(row))

    @staticmethod
    def _journal(change: AlarmChange) -> None:
        a = change.alarm
        if change.change == "raised" and a.count == SWINGER_LIMIT:
            log.warning("room alarm raised: %s at %s (alarm %s), the %dth time: its further swings are not reported one by one",
                        a.kind, a.source, a.alarm_id, a.count, extra=event("room.alarm_swinging"))
        elif change.change == "raised":
            log.warning("room alarm raised: %s at %s (alarm %s)", a.kind, a.source, a.alarm_id, extra=event("room.alarm_raised"))
        elif change.change == "restored":
            log.info("room alarm restored: %s at %s (alarm %s)", a.kind, a.source, a.alarm_id, extra=event("room.alarm_restored"))
        else:
            log.info("room alarm acknowledged: %s at %s (alarm %s)", a.kind, a.source, a.alarm_id, extra=event("room.alarm_acknowledged"))

    async def _commit(self) -> None:
        """Store what is pending in one transaction, then publish the alarms it held."""
        async with self._commit_lock:
            rows, alarms = self._rows, self._alarms
            if not rows and not alarms:
                return
            self._rows, self._alarms = [], []
            try:
                await asyncio.to_thread(self._record.commit_blocking, rows, alarms)
            except StorageError as exc:
                log.error("room record could not be stored: %s", exc, extra=event("room.store_failed"))
                self._rows, self._alarms = rows + self._rows, alarms + self._alarms
                return
            if self.mqtt is not None:
                for alarm in alarms:
                    if alarm.alarm_id not in self._swinging:
                        self.mqtt.publish_alarm(alarm)

    def _publish_swingers(self) -> None:
        """A swinger's latest state, at most once per ``SWINGER_PUBLISH_INTERVAL_S`` (its retained
        topic stays true without a message per swing)."""
        now_s = self._clock.monotonic_s()
        if not self._swinging or now_s - self._swingers_published_s < SWINGER_PUBLISH_INTERVAL_S:
            return
        self._swingers_published_s = now_s
        swinging, self._swinging = self._swinging, {}
        if self.mqtt is not None:
            for alarm in swinging.values():
                self.mqtt.publish_alarm(alarm)

    # -- the console (RoomPort) ---------------------------------------------------------------

    def status(self) -> Mapping[str, object]:
        """Doors, cameras, sensors, readers and the broker, in operator words; no personal data."""
        assert self.model is not None
        m = self.model
        doors = [{"door": name, "state": d.state, "since": d.since.isoformat()} for name, d in m.doors.items()]
        by_kind: dict[str, list[dict[str, object]]] = {"camera": [], "reader": []}
        sensors = []
        for source, p in m.presence.items():
            kind, _, name = source.partition(":")
            if kind == "sensor":
                last = m.last_seen.get(name)
                sensors.append({"sensor": name, "state": p.state, "battery_pct": m.battery_pct.get(name), "last_seen": last.isoformat() if last else None})
            elif kind in by_kind:
                by_kind[kind].append({kind: name, "state": p.state, "since": p.since.isoformat()})
        broker = self.mqtt.state if self.mqtt is not None else "not configured"
        return {"doors": doors, "cameras": by_kind["camera"], "sensors": sensors, "readers": by_kind["reader"], "broker": broker}

    def open_alarms(self) -> Sequence[Mapping[str, object]]:
        assert self.model is not None
        keys = ("alarm_id", "kind", "source", "state", "raised_at", "acknowledged_by", "acknowledged_at")
        return [{k: a.to_json()[k] for k in keys} for a in self.model.alarms.open_alarms()]

    async def acknowledge(self, alarm_id: str, operator_id: str) -> Mapping[str, object]:
        """A supervisor's acknowledgement; raises UnknownAlarm or AlreadyAcknowledged."""
        assert self.model is not None
        actions = self.model.acknowledge(alarm_id, operator_id, self._clock.now())
        self._apply(actions)
        await self._commit()
        (change,) = [a for a in actions if isinstance(a, AlarmChange)]
        return change.alarm.to_json()

    async def report(self, start: dt.datetime, end: dt.datetime, fmt: str) -> bytes:
        """The physical-access record of ``[start, end)`` with its alarms, as CSV or PDF."""
        if fmt not in ("csv", "pdf"):
            raise RoomError("report format must be csv or pdf")
        if start.tzinfo is None or end.tzinfo is None or end <= start:
            raise RoomError("report period must be two aware times, the end after the start")
        await self._commit()
        rows = await asyncio.to_thread(self._record.rows_blocking, start, end)
        return await asyncio.to_thread(render_report, rows, start, end, fmt)

    # -- health (watchdog) --------------------------------------------------------------------

    def problems(self) -> list[tuple[str, str]]:
        """(part, operator words) for what is degraded: broker, offline or silent devices,
        dropped events."""
        out: list[tuple[str, str]] = []
        mqtt = self.mqtt
        if mqtt is not None and mqtt.down_since_s is not None:
            down_s = self._clock.monotonic_s() - mqtt.down_since_s
            if down_s >= BROKER_GRACE_S:
                out.append(("broker", f"machine-room broker unreachable for {down_s:.0f} s"))
        if self.model is not None:
            for a in self.model.alarms.open_alarms():
                if a.state == "active" and a.kind in _DEGRADING:
                    kind, _, name = a.source.partition(":")
                    out.append((a.source, f"{kind} {name} {_DEGRADING[a.kind]}"))
        dropped = (self.inbox.dropped if self.inbox else 0) + (self._audit.dropped if self._audit else 0) + self.failed
        if dropped:
            out.append(("machine-room events", f"machine-room events dropped: {dropped}"))
        return out


_DEGRADING = {
    "camera_offline": "offline",
    "sensor_offline": "offline",
    "reader_offline": "offline",
    "bridge_offline": "offline",
    "nvr_offline": "offline",
    "reader_key_mismatch": "refused: it does not hold its configured key",
    "sensor_silent": "silent past its check-in interval",
    "device_left": "left the network",
    "battery_low": "battery low",
}
