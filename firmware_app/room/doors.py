"""One door and the room behind it, sans-IO: grants, exit requests and the contact make entries,
exits, forced openings and held-open conditions; the room camera's person count is checked
against who badged in (tailgating, intrusion).

Occupancy is the list of open visits.  An exit through the request-to-exit button is not
attributed to anyone while several people are inside; once as many anonymous exits have been
seen as there are visits, the room is empty and every remaining visit is closed then.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import dataclass

from firmware_app.room.settings import DoorConfig

__all__ = ["Door", "Visit"]


@dataclass
class Visit:
    """One person's stay, from the opening after their grant to the opening of their exit."""

    visit_id: str
    holder: str
    entered_at: dt.datetime
    corroborated: bool = False


@dataclass
class _Pending:
    """A grant (or exit request) waiting for the door to open within the grant window."""

    kind: str  # entry | exit
    holder: str | None
    at: dt.datetime


class Door:
    """The state of one door; the model reads and changes it (no I/O, no clock of its own)."""

    def __init__(self, config: DoorConfig, now: dt.datetime) -> None:
        self.config = config
        self.open: bool | None = None  # None: never heard of (kept through a sensor's absence)
        self.since = now
        self.forced = False
        self.pending: _Pending | None = None
        self.denials: deque[dt.datetime] = deque()
        self.visits: list[Visit] = []
        self.anonymous_exits = 0
        self.persons_seen = 0
        self.last_person_at: dt.datetime | None = None
        self._visit_seq = 0

    @property
    def state(self) -> str:
        """Operator words for the console."""
        if self.open is None:
            return "unknown"
        if not self.open:
            return "closed"
        return "forced open" if self.forced else "open"

    def occupancy(self) -> int:
        return max(0, len(self.visits) - self.anonymous_exits)

    def expect(self, kind: str, holder: str | None, now: dt.datetime) -> None:
        self.pending = _Pending(kind, holder, now)

    def take_pending(self, now: dt.datetime) -> _Pending | None:
        """The grant or exit request that explains an opening now, if still within its window."""
        pending, self.pending = self.pending, None
        if pending is None or (now - pending.at).total_seconds() > self.config.grant_window_s:
            return None
        return pending

    def expected_entries(self, now: dt.datetime) -> int:
        pending = self.pending
        live = pending is not None and pending.kind == "entry" and (now - pending.at).total_seconds() <= self.config.grant_window_s
        return 1 if live else 0

    def enter(self, holder: str, now: dt.datetime, corroboration_window_s: float) -> Visit:
        self._visit_seq += 1
        visit_id = f"{self.config.name}-{now.astimezone(dt.UTC):%Y%m%dT%H%M%S%f}-{self._visit_seq}"
        seen = self.last_person_at is not None and (now - self.last_person_at).total_seconds() <= corroboration_window_s
        visit = Visit(visit_id, holder, now, corroborated=seen)
        self.visits.append(visit)
        return visit

    def leave(self, holder: str | None) -> tuple[Visit | None, list[Visit]]:
        """Who an exit is: the holder's latest visit (a badge at an ``out`` reader), the only
        visit (an exit button with one person inside), or nobody; and, for an anonymous exit
        that leaves the room empty by count, the visits that ends."""
        if holder is not None:
            for i in range(len(self.visits) - 1, -1, -1):
                if self.visits[i].holder == holder:
                    return self.visits.pop(i), []
            return None, []
        if len(self.visits) == 1 and self.anonymous_exits == 0:
            return self.visits.pop(), []
        if not self.visits:
            return None, []
        self.anonymous_exits += 1
        if self.anonymous_exits < len(self.visits):
            return None, []
        closed, self.visits, self.anonymous_exits = self.visits, [], 0
        return None, closed

    def note_denial(self, now: dt.datetime) -> int:
        """Count a refusal; the number within the window."""
        self.denials.append(now)
        return self.recent_denials(now)

    def recent_denials(self, now: dt.datetime) -> int:
        while self.denials and (now - self.denials[0]).total_seconds() > self.config.denials_window_s:
            self.denials.popleft()
        return len(self.denials)

    def open_for_s(self, now: dt.datetime) -> float:
        return (now - self.since).total_seconds() if self.open else 0.0
