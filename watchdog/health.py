"""The watchdog's policy, sans I/O: measurements in, check results out, and from a set of check
results whether to ping the service manager and what to tell the operator.

* **failed** — the daemon cannot do its job and a restart is the remedy: no ``WATCHDOG=1``, so
  systemd restarts the service after ``WatchdogSec``.
* **degraded** — safe but not whole (a peer unreachable, the disk filling up): keep pinging, and
  say what is wrong in ``STATUS=``.
* **ok** — not mentioned.

Texts name parts of the appliance, durations and counts only: never a resident, a key or a PIN.
No function here reads a clock; durations are passed in.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "Check",
    "State",
    "Thresholds",
    "Verdict",
    "disk_check",
    "evaluate",
    "format_bytes",
    "format_duration",
    "link_check",
    "loop_lag_check",
    "memory_check",
    "open_files_check",
    "probe_check",
]

_MIB = 1024**2
_GIB = 1024**3


class State(enum.IntEnum):
    OK = 0
    DEGRADED = 1
    FAILED = 2


@dataclass(frozen=True)
class Check:
    """One health check's result; ``text`` is shown to the operator when not ok."""

    name: str
    state: State
    text: str = ""


@dataclass(frozen=True)
class Thresholds:
    """Where each measurement turns degraded and failed (units in the names)."""

    loop_lag_degraded_s: float = 0.5
    loop_lag_failed_s: float = 5.0
    disk_free_degraded_bytes: int = 2 * _GIB
    disk_free_failed_bytes: int = 64 * _MIB
    memory_available_degraded_bytes: int = 256 * _MIB
    memory_available_failed_bytes: int = 32 * _MIB
    open_files_degraded_ratio: float = 0.80
    open_files_failed_ratio: float = 0.95
    #: An outbound link down for less than this is a reconnect, not news.
    link_grace_s: float = 120.0


@dataclass(frozen=True)
class Verdict:
    """What to tell the service manager."""

    ping: bool
    state: State
    status: str
    problems: tuple[Check, ...]


#: What each outbound channel is called for an operator, and what its queued entries are.
_LINK_WORDS = {
    "prefecture": ("prefecture", "notices"),
    "card_system": ("card system", "deliveries"),
}


def format_duration(seconds: float) -> str:
    """``45 s``, ``2 min``, ``3 h 5 min``, ``2 d 4 h`` (rounded down)."""
    s = max(int(seconds), 0)
    if s < 120:
        return f"{s} s"
    minutes = s // 60
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def format_bytes(count: int) -> str:
    if count >= 10 * _GIB:
        return f"{count // _GIB:,} GiB"
    if count >= _GIB:
        return f"{count / _GIB:.1f} GiB"
    return f"{count // _MIB:,} MiB"


def loop_lag_check(lag_s: float, t: Thresholds) -> Check:
    """The longest delay, since the last check, between when a task should have run and when it ran."""
    if lag_s >= t.loop_lag_failed_s:
        return Check("event loop", State.FAILED, f"event loop stalled ({lag_s:.1f} s behind)")
    if lag_s >= t.loop_lag_degraded_s:
        return Check("event loop", State.DEGRADED, f"event loop slow ({lag_s:.1f} s behind)")
    return Check("event loop", State.OK)


def probe_check(name: str, *, ok: bool | None, running_for_s: float, timeout_s: float, failure_text: str) -> Check:
    """A probe run on a thread (the HSM, a storage write).  ``ok``: how the last completed call
    ended (None: none completed yet); ``running_for_s``: how long the call in flight has run (0
    when none).  A call that does not return within ``timeout_s`` is a failure, not a wait."""
    if running_for_s >= timeout_s:
        return Check(name, State.FAILED, f"{name} not answering for {format_duration(running_for_s)}")
    if ok is False:
        return Check(name, State.FAILED, failure_text)
    return Check(name, State.OK)


def disk_check(free_bytes: int, t: Thresholds) -> Check:
    """Free space on the store's filesystem."""
    if free_bytes < t.disk_free_failed_bytes:
        return Check("disk", State.FAILED, f"disk full: {format_bytes(free_bytes)} free for the store")
    if free_bytes < t.disk_free_degraded_bytes:
        return Check("disk", State.DEGRADED, f"disk filling up: {format_bytes(free_bytes)} free for the store")
    return Check("disk", State.OK)


def memory_check(available_bytes: int, t: Thresholds) -> Check:
    if available_bytes < t.memory_available_failed_bytes:
        return Check("memory", State.FAILED, f"memory exhausted: {format_bytes(available_bytes)} available")
    if available_bytes < t.memory_available_degraded_bytes:
        return Check("memory", State.DEGRADED, f"memory low: {format_bytes(available_bytes)} available")
    return Check("memory", State.OK)


def open_files_check(open_count: int, limit: int, t: Thresholds) -> Check:
    """Open file descriptors against the process's soft limit (a limit ≤ 0: unlimited)."""
    if limit <= 0:
        return Check("open files", State.OK)
    ratio = open_count / limit
    text = f"{open_count:,} of {limit:,} files open"
    if ratio >= t.open_files_failed_ratio:
        return Check("open files", State.FAILED, f"out of file handles: {text}")
    if ratio >= t.open_files_degraded_ratio:
        return Check("open files", State.DEGRADED, f"file handles running out: {text}")
    return Check("open files", State.OK)


def link_check(channel: str, *, down_for_s: float | None, queued: int | None, t: Thresholds) -> Check:
    """An outbound link: ``down_for_s`` None while connected.  A peer that cannot be reached is
    degraded, never failed: the outbox keeps every entry and a restart would not bring it back."""
    peer, entries = _LINK_WORDS.get(channel, (channel.replace("_", " "), "entries"))
    if down_for_s is None or down_for_s < t.link_grace_s:
        return Check(peer, State.OK)
    text = f"{peer} unreachable for {format_duration(down_for_s)}"
    if queued == 0:
        text += ", nothing queued"
    elif queued is not None:
        text += f", {queued:,} {entries} queued"
    return Check(peer, State.DEGRADED, text)


def evaluate(checks: Iterable[Check]) -> Verdict:
    """Ping unless a check failed; the status names every problem, failures first."""
    problems = tuple(sorted((c for c in checks if c.state is not State.OK), key=lambda c: -c.state))
    if not problems:
        return Verdict(True, State.OK, "ready: all health checks pass", ())
    worst = problems[0].state
    texts = "; ".join(c.text for c in problems)
    if worst is State.FAILED:
        return Verdict(False, worst, f"failing, watchdog pings stopped: {texts}", problems)
    return Verdict(True, worst, f"degraded: {texts}", problems)
