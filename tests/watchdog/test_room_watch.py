"""The machine room's health check: each problem a degraded check in operator words, never failed."""

from __future__ import annotations

import asyncio

from watchdog.checks import RoomWatch
from watchdog.health import State, evaluate


class FakeRoom:
    """Stands in for the room service's ``problems()``."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.list = problems

    def problems(self) -> list[tuple[str, str]]:
        return self.list


def test_one_camera_offline_keeps_pinging_and_says_so() -> None:
    room = FakeRoom([("camera:mr-cam", "camera mr-cam offline")])
    checks = asyncio.run(RoomWatch(room).check(1.0))
    verdict = evaluate(checks)
    assert verdict.ping and verdict.state is State.DEGRADED
    assert "camera mr-cam offline" in verdict.status
    room.list = []
    assert evaluate(asyncio.run(RoomWatch(room).check(1.0))).state is State.OK
