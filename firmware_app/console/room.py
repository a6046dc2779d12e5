"""What the console needs of the machine room (provided by the room service; see docs/console.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol


class RoomPort(Protocol):
    def status(self) -> Mapping[str, object]: ...

    def open_alarms(self) -> Sequence[Mapping[str, object]]: ...

    async def acknowledge(self, alarm_id: str, operator_id: str) -> Mapping[str, object]: ...

    async def report(self, start: datetime, end: datetime, fmt: str) -> bytes: ...
