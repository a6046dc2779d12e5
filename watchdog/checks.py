"""Thin adapters that measure what ``watchdog.health`` judges.  None of them blocks the event loop:
the HSM and storage probes run on threads, each with at most one call in flight, and a call that
does not return in time is reported as a failure (the thread is left to finish or hang on its
own; the watchdog never waits for it).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

import psutil

from firmware_app.journal import event
from watchdog.health import (
    Check,
    State,
    Thresholds,
    disk_check,
    link_check,
    memory_check,
    open_files_check,
    probe_check,
)

__all__ = [
    "CheckSource",
    "HsmProbe",
    "LagMonitor",
    "LinkWatch",
    "ProbeRunner",
    "Resources",
    "RoomWatch",
    "StorageProbe",
    "run_on_daemon_thread",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How often the lag monitor wakes up to measure the event loop's scheduling delay.
LAG_SAMPLE_INTERVAL_S = 0.1
#: A probe call (HSM, storage write) that has not returned after this long is a failure.
HSM_PROBE_TIMEOUT_S = 10.0
STORAGE_PROBE_TIMEOUT_S = 10.0


class CheckSource(Protocol):
    """One or more checks; ``wait_s`` bounds how long a call may take."""

    async def check(self, wait_s: float) -> Sequence[Check]: ...

    async def close(self) -> None: ...


class LagMonitor:
    """Measures how late the event loop runs a task that asked to wake up at a given time."""

    def __init__(self, monotonic_s: Callable[[], float] = time.monotonic, *, sample_interval_s: float = LAG_SAMPLE_INTERVAL_S) -> None:
        self._now_s = monotonic_s
        self._interval_s = sample_interval_s
        self._max_lag_s = 0.0

    async def run(self) -> None:
        while True:
            due_s = self._now_s() + self._interval_s
            await asyncio.sleep(self._interval_s)
            self.note(self._now_s() - due_s)

    def note(self, lag_s: float) -> None:
        self._max_lag_s = max(self._max_lag_s, lag_s)

    def take_max_s(self) -> float:
        """The longest lag since the last call (and start again)."""
        lag_s, self._max_lag_s = self._max_lag_s, 0.0
        return max(lag_s, 0.0)


async def run_on_daemon_thread(fn: Callable[[], T], *, name: str) -> T:
    """``fn()`` on a fresh daemon thread: unlike an executor's, a thread stuck in a hung driver
    call neither holds up other work nor keeps the process from exiting."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, exc: BaseException | None) -> None:
        if future.done():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def target() -> None:
        try:
            result, exc = fn(), None
        except BaseException as caught:  # noqa: BLE001 - handed to the awaiting task
            result, exc = None, caught
        try:
            loop.call_soon_threadsafe(settle, result, exc)
        except RuntimeError:
            pass  # the loop has closed: nobody is waiting any more

    threading.Thread(target=target, name=name, daemon=True).start()
    return await future


class ProbeRunner:
    """A probe call with at most one in flight.  Each check starts a call when none is running
    and waits up to ``wait_s`` for it; a call still running is judged by how long it has run."""

    def __init__(
        self,
        name: str,
        call: Callable[[], Awaitable[object]],
        *,
        timeout_s: float,
        failure_text: str,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._call = call
        self._timeout_s = timeout_s
        self._failure_text = failure_text
        self._now_s = monotonic_s
        self._task: asyncio.Future[object] | None = None
        self._started_s = 0.0
        self._ok: bool | None = None

    async def check(self, wait_s: float) -> Sequence[Check]:
        if self._task is None:
            self._started_s = self._now_s()
            self._task = asyncio.ensure_future(self._call())
        await asyncio.wait({self._task}, timeout=wait_s)
        running_for_s = 0.0
        if self._task.done():
            task, self._task = self._task, None
            exc = None if task.cancelled() else task.exception()
            if exc is not None:
                log.debug("%s probe failed: %s", self.name, type(exc).__name__, extra=event("watchdog.probe_failed"))
            self._ok = exc is None and not task.cancelled()
        else:
            running_for_s = self._now_s() - self._started_s
        return [probe_check(self.name, ok=self._ok, running_for_s=running_for_s, timeout_s=self._timeout_s, failure_text=self._failure_text)]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


class _Keyring(Protocol):
    @property
    def sealed(self) -> bool: ...

    def probe_blocking(self) -> None: ...


class HsmProbe:
    """One operation against a token object (the KEK) on a thread of its own.  A sealed keyring
    (the token was lost or changed) is a failure at once: only a restart opens it again."""

    def __init__(self, keyring: _Keyring, *, timeout_s: float = HSM_PROBE_TIMEOUT_S, monotonic_s: Callable[[], float] = time.monotonic) -> None:
        self._keyring = keyring
        self._runner = ProbeRunner(
            "HSM",
            lambda: run_on_daemon_thread(keyring.probe_blocking, name="cs-watchdog-hsm"),
            timeout_s=timeout_s,
            failure_text="HSM lost: personal data refused until restart",
            monotonic_s=monotonic_s,
        )

    async def check(self, wait_s: float) -> Sequence[Check]:
        if self._keyring.sealed:
            return [Check("HSM", State.FAILED, "HSM lost: personal data refused until restart")]
        return await self._runner.check(wait_s)

    async def close(self) -> None:
        await self._runner.close()


class StorageProbe:
    """A small durable write through the same writer thread the intake uses."""

    def __init__(
        self, probe_storage: Callable[[], Awaitable[None]], *, timeout_s: float = STORAGE_PROBE_TIMEOUT_S, monotonic_s: Callable[[], float] = time.monotonic
    ) -> None:
        self._runner = ProbeRunner("storage", probe_storage, timeout_s=timeout_s, failure_text="storage write failing", monotonic_s=monotonic_s)

    async def check(self, wait_s: float) -> Sequence[Check]:
        return await self._runner.check(wait_s)

    async def close(self) -> None:
        await self._runner.close()


class Resources:
    """Free disk on the store's filesystem, available memory, open files against RLIMIT_NOFILE.
    Each is one cheap system call on local files, made inline."""

    def __init__(self, store_path: Path, thresholds: Thresholds) -> None:
        self._path = store_path
        self._t = thresholds
        self._process = psutil.Process()

    async def check(self, wait_s: float) -> Sequence[Check]:
        checks: list[Check] = []
        try:
            checks.append(disk_check(psutil.disk_usage(str(self._path)).free, self._t))
        except OSError:
            checks.append(Check("disk", State.DEGRADED, "free disk space of the store cannot be read"))
        checks.append(memory_check(psutil.virtual_memory().available, self._t))
        soft_limit, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        limit = 0 if soft_limit == resource.RLIM_INFINITY else soft_limit
        checks.append(open_files_check(self._process.num_fds(), limit, self._t))
        return checks

    async def close(self) -> None:
        return None


class _Link(Protocol):
    channel: str
    connected: bool


class LinkWatch:
    """Outbound links: how long each has been down (as observed at each check) and, once past the
    grace period, how many entries its outbox holds."""

    def __init__(
        self,
        links: Mapping[str, _Link],
        outbox_depth: Callable[[str], Awaitable[int]],
        thresholds: Thresholds,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self._links = links
        self._depth = outbox_depth
        self._t = thresholds
        self._now_s = monotonic_s
        self._down_since_s: dict[str, float] = {}

    async def check(self, wait_s: float) -> Sequence[Check]:
        now_s = self._now_s()
        down_for_s: dict[str, float | None] = {}
        for channel, link in self._links.items():
            if link.connected:
                self._down_since_s.pop(channel, None)
                down_for_s[channel] = None
            else:
                down_for_s[channel] = now_s - self._down_since_s.setdefault(channel, now_s)
        overdue = [channel for channel, down_s in down_for_s.items() if down_s is not None and down_s >= self._t.link_grace_s]
        counts = await asyncio.gather(*(self._queued(channel, wait_s) for channel in overdue))
        queued = dict(zip(overdue, counts, strict=True))
        return [link_check(channel, down_for_s=down_s, queued=queued.get(channel), t=self._t) for channel, down_s in down_for_s.items()]

    async def _queued(self, channel: str, wait_s: float) -> int | None:
        try:
            return await asyncio.wait_for(self._depth(channel), wait_s)
        except Exception:  # noqa: BLE001 - the count is a detail; storage has its own check
            return None

    async def close(self) -> None:
        return None


class _Room(Protocol):
    def problems(self) -> Sequence[tuple[str, str]]: ...


class RoomWatch:
    """The machine room: its broker, cameras, sensors and readers.  Degraded, never failed: the
    daemon keeps pinging (a restart brings no camera back) and ``STATUS=`` names each device."""

    def __init__(self, room: _Room) -> None:
        self._room = room

    async def check(self, wait_s: float) -> Sequence[Check]:
        problems = self._room.problems()
        if not problems:
            return [Check("machine room", State.OK)]
        return [Check(f"machine room: {part}", State.DEGRADED, text) for part, text in problems]

    async def close(self) -> None:
        return None
