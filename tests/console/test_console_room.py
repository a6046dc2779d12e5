"""The room commands against a fake RoomPort (the machine-room service is built on another branch):
who may see, acknowledge and report, and what reaches the audit trail."""

from __future__ import annotations

import asyncio
import base64
import datetime
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from firmware_app.console.errors import E_FORBIDDEN, E_REFUSED, ConsoleError
from tests.console.conftest import console_toml, login, seed_operators
from tests.daemon.rig import running_cs


class UnknownAlarmFake(Exception):
    pass


class FakeRoom:
    """A fake RoomPort: fixed doors and one alarm, as the room service reports them."""

    def __init__(self) -> None:
        self.alarm: dict[str, object] = {
            "alarm_id": "A-1", "kind": "door_forced", "source": "door:server-room", "state": "active",
            "raised_at": "2026-11-26T08:59:00+09:00", "acknowledged_by": None, "acknowledged_at": None,
        }
        self.reports: list[tuple[datetime.datetime, datetime.datetime, str]] = []

    def status(self) -> Mapping[str, object]:
        return {"doors": [{"door": "server-room", "state": "closed", "since": "2026-11-26T08:00:00+09:00"}], "cameras": [], "sensors": [],
                "readers": [], "broker": "connected"}

    def open_alarms(self) -> Sequence[Mapping[str, object]]:
        return [self.alarm] if self.alarm["acknowledged_by"] is None else []

    async def acknowledge(self, alarm_id: str, operator_id: str) -> Mapping[str, object]:
        if alarm_id != "A-1":
            raise UnknownAlarmFake(f"unknown alarm {alarm_id}")
        self.alarm = {**self.alarm, "acknowledged_by": operator_id, "acknowledged_at": "2026-11-26T09:00:00+09:00"}
        return self.alarm

    async def report(self, start: datetime.datetime, end: datetime.datetime, fmt: str) -> bytes:
        self.reports.append((start, end, fmt))
        return b"door,entered,left\nserver-room,09:00,09:05\n"


def test_room_commands_by_role(tmp_path: Path, pki, hsm_config, token) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        async with running_cs(tmp_path, pki, hsm_config, token, extra=console_toml(tmp_path)) as rig:
            room = FakeRoom()
            rig.daemon.console.services.room = room
            await seed_operators(rig.daemon, {"clerk1": "clerk", "sup1": "supervisor", "aud1": "auditor"})
            sock = rig.daemon.config.console.socket_path
            clerk, sup, aud = await login(sock, "clerk1"), await login(sock, "sup1"), await login(sock, "aud1")
            status = await clerk.call("status")
            assert status["open_alarms"] == 1 and status["room"]["broker"] == "connected"
            assert (await clerk.call("alarm-list"))["alarms"][0]["alarm_id"] == "A-1"
            for client, cmd, args in ((clerk, "alarm-ack", {"alarm_id": "A-1"}), (sup, "room-report", {"from": "2026-11-01", "to": "2026-12-01"})):
                with pytest.raises(ConsoleError) as caught:
                    await client.call(cmd, **args)
                assert caught.value.code == E_FORBIDDEN
            with pytest.raises(ConsoleError) as caught:
                await sup.call("alarm-ack", alarm_id="A-9")
            assert caught.value.code == E_REFUSED and "unknown alarm" in str(caught.value)
            acked = await sup.call("alarm-ack", alarm_id="A-1")
            assert acked["alarm"]["acknowledged_by"] == "sup1"
            report = await aud.call("room-report", **{"from": "2026-11-01", "to": "2026-12-01", "format": "csv"})
            assert base64.b64decode(report["data_b64"]).startswith(b"door,")
            assert room.reports[0][0].tzinfo is not None
            entries = [e.to_json() for e in await rig.daemon.audit.entries(from_seq=1, limit=1000, kind="room.")]
            assert [(e["kind"], e["actor"], e["subject"]) for e in entries] == [
                ("room.alarm_acknowledged", "sup1", "alarm:A-1"), ("room.report", "aud1", "")]
            for client in (clerk, sup, aud):
                await client.close()

    asyncio.run(scenario())
