"""Is a device there?  Online/offline with a hold time against flapping, sans-IO.

A device offline for ``hold_s`` is an alarm; so is one that went offline ``flap_count`` times in
``flap_window_s`` (a dead camera whose ffmpeg keeps restarting).  An alarm clears once the device
is online again, and — if it was flapping — has stayed online for ``hold_s``.
"""

from __future__ import annotations

import datetime as dt
from collections import deque

__all__ = ["Presence"]


class Presence:
    """One device's reachability as last reported."""

    def __init__(self, now: dt.datetime) -> None:
        self.online: bool | None = None
        self.since = now
        self.last_seen: dt.datetime | None = None
        self._offline_at: deque[dt.datetime] = deque()

    @property
    def state(self) -> str:
        return {None: "unknown", True: "online", False: "offline"}[self.online]

    def set(self, online: bool, now: dt.datetime) -> bool:
        """Record a report; True when it changed anything."""
        if self.online is online:
            return False
        self.online, self.since = online, now
        if not online:
            self._offline_at.append(now)
        return True

    def verdict(self, now: dt.datetime, *, hold_s: float, flap_count: int, flap_window_s: float) -> bool | None:
        """True: raise the offline alarm; False: clear it; None: leave it as it is."""
        while self._offline_at and (now - self._offline_at[0]).total_seconds() > flap_window_s:
            self._offline_at.popleft()
        held_s = (now - self.since).total_seconds()
        flapping = len(self._offline_at) >= flap_count
        if self.online is False:
            return True if held_s >= hold_s or flapping else None
        if self.online is True:
            return False if not flapping or held_s >= hold_s else None
        return None
