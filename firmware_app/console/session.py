"""One console connection's session (sans-IO, clock passed in): login state, replay guard, idle lock."""

from __future__ import annotations

from dataclasses import dataclass, field

from firmware_app.clock import Clock
from firmware_app.console.errors import E_REPLAYED, ConsoleError

ANONYMOUS = "anonymous"
ACTIVE = "active"
LOCKED = "locked"


@dataclass
class Session:
    """``anonymous`` → login → ``active`` → idle for ``idle_lock_s`` → ``locked`` → unlock → ``active``."""

    clock: Clock
    idle_lock_s: float
    peer: str  # "uid=…,pid=…": who connected, for audit entries before login
    state: str = ANONYMOUS
    operator_id: str = ""
    terminal_id: str = ""
    login_failures: int = 0
    _last_id: int = 0
    _last_activity_s: float = field(default=0.0)

    def accept_id(self, request_id: int) -> None:
        """Refuse a request id at or below the last one seen (a replayed or reordered request)."""
        if request_id <= self._last_id:
            raise ConsoleError(E_REPLAYED, "request id repeated or out of order (replayed request)")
        self._last_id = request_id

    def logged_in(self, operator_id: str, terminal_id: str) -> None:
        self.state, self.operator_id, self.terminal_id = ACTIVE, operator_id, terminal_id
        self.login_failures = 0
        self.touch()

    def touch(self) -> None:
        """Operator activity: the idle timer starts again."""
        self._last_activity_s = self.clock.monotonic_s()

    def lock_if_idle(self) -> bool:
        """Lock an active session idle for ``idle_lock_s``; True when this call locked it."""
        if self.state == ACTIVE and self.clock.monotonic_s() - self._last_activity_s >= self.idle_lock_s:
            self.state = LOCKED
            return True
        return False

    def unlocked(self) -> None:
        self.state = ACTIVE
        self.touch()

    def logged_out(self) -> None:
        self.state, self.operator_id = ANONYMOUS, ""

    @property
    def actor(self) -> str:
        """The operator ID once logged in, else the peer."""
        return self.operator_id or f"peer:{self.peer}"
