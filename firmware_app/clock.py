"""One clock object for the whole process, so that tests can move time."""

from __future__ import annotations

import datetime as _dt
import time
from typing import Protocol

JST = _dt.timezone(_dt.timedelta(hours=9), "JST")


class Clock(Protocol):
    """What product code may ask of time."""

    def now(self) -> _dt.datetime:
        """Wall-clock time, timezone-aware."""
        ...

    def monotonic_s(self) -> float:
        """Seconds from an arbitrary origin, never going backwards."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> _dt.datetime:
        return _dt.datetime.now(JST)

    def monotonic_s(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to (tests, simulations)."""

    def __init__(self, start: _dt.datetime | None = None) -> None:
        self._now = start or _dt.datetime(2026, 4, 1, 9, 0, tzinfo=JST)
        self._mono_s = 0.0

    def now(self) -> _dt.datetime:
        return self._now

    def monotonic_s(self) -> float:
        return self._mono_s

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._now += _dt.timedelta(seconds=seconds)
        self._mono_s += seconds

    def set(self, when: _dt.datetime) -> None:
        """Jump the wall clock (forward only); monotonic time advances by the same span."""
        delta = (when - self._now).total_seconds()
        self.advance(delta)


def today_of(clock: Clock) -> str:
    """The clock's date in JST as ``YYYYMMDD``."""
    return clock.now().astimezone(JST).strftime("%Y%m%d")
