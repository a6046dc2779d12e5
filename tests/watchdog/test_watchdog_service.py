"""The watchdog task in this process's own event loop, with check sources made to fail, hang or
lag, and a fake clock where durations matter; notifications go to a socket bound by the test."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from notify_listener import NotifyListener

from firmware_app.service.errors import ServiceUnavailable
from watchdog.checks import (
    HsmProbe,
    LagMonitor,
    LinkWatch,
    Resources,
    StorageProbe,
    run_on_daemon_thread,
)
from watchdog.health import Check, State, Thresholds
from watchdog.notify import Notifier
from watchdog.service import WatchdogService

WAIT_S = 10.0


class FakeClock:
    """Real monotonic time plus an offset the test can jump forward."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset_s


@dataclass
class Fixed:
    """A check source that reports what the test sets."""

    checks: Sequence[Check] = ()

    async def check(self, wait_s: float) -> Sequence[Check]:
        return list(self.checks)

    async def close(self) -> None:
        return None


class FakeKeyring:
    def __init__(self) -> None:
        self.sealed = False
        self.release = threading.Event()
        self.release.set()
        self.fail = False
        self.calls = 0

    def probe_blocking(self) -> None:
        self.calls += 1
        assert self.release.wait(timeout=WAIT_S)
        if self.fail:
            raise RuntimeError("token gone")


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


def service(listener: NotifyListener, sources: Sequence[object], *, interval_s: float | None = 0.5, **kwargs: object) -> WatchdogService:
    return WatchdogService(Notifier(listener.address), sources, interval_s=interval_s, **kwargs)  # type: ignore[arg-type]


# -- rounds -------------------------------------------------------------------------------------------


def test_healthy_rounds_ping_every_time_and_send_status_only_when_it_changes(path_listener: NotifyListener) -> None:
    source = Fixed([Check("HSM", State.OK)])

    async def scenario() -> None:
        wd = service(path_listener, [source])
        for _ in range(3):
            assert (await wd.round()).ping
        source.checks = [Check("prefecture", State.DEGRADED, "prefecture unreachable for 3 min, 5 notices queued")]
        await wd.round()
        await wd.round()

    run(scenario())
    assert path_listener.wait_for(lambda: len(path_listener.datagrams) == 5, WAIT_S)
    got = [d.fields for d in path_listener.datagrams]
    assert all(f.get("WATCHDOG") == "1" for f in got)  # degraded still pings
    assert [f.get("STATUS") for f in got] == [
        "ready: all health checks pass",
        None,
        None,
        "degraded: prefecture unreachable for 3 min, 5 notices queued",
        None,
    ]


def test_a_failed_check_withholds_the_ping_but_says_why(path_listener: NotifyListener, caplog: pytest.LogCaptureFixture) -> None:
    source = Fixed([Check("storage", State.FAILED, "storage write failing")])

    async def scenario() -> None:
        wd = service(path_listener, [source])
        assert not (await wd.round()).ping
        assert not (await wd.round()).ping
        source.checks = []
        assert (await wd.round()).ping

    with caplog.at_level(logging.INFO, logger="csd.watchdog"):
        run(scenario())
    assert path_listener.wait_for(lambda: len(path_listener.datagrams) == 2, WAIT_S)
    got = [d.fields for d in path_listener.datagrams]
    # The second failing round had nothing new to say and no ping to give: nothing was sent.
    assert got == [
        {"STATUS": "failing, watchdog pings stopped: storage write failing"},
        {"WATCHDOG": "1", "STATUS": "ready: all health checks pass"},
    ]
    logged = [r.getMessage() for r in caplog.records]
    assert logged.count("health check failed: storage write failing") == 1  # transitions, not every round
    assert "watchdog pings stopped; systemd will restart the service" in logged
    assert "health check storage ok again" in logged and "watchdog pings resumed" in logged


def test_without_a_systemd_watchdog_status_is_kept_current_but_nothing_pings(path_listener: NotifyListener) -> None:
    async def scenario() -> None:
        wd = service(path_listener, [Fixed()], interval_s=None)
        assert not wd.pinging and wd.interval_s == 10.0
        await wd.round()

    run(scenario())
    assert path_listener.wait_for(lambda: path_listener.values("STATUS") == ["ready: all health checks pass"], WAIT_S)
    assert path_listener.values("WATCHDOG") == []


# -- the event loop ------------------------------------------------------------------------------------


def test_a_stalled_event_loop_stops_the_pings_and_they_resume_after(path_listener: NotifyListener) -> None:
    """The loop is really blocked (briefly) while the fake clock jumps 30 s: the lag monitor reads
    a 30 s stall.  No ping goes out during the block itself, none for the round that sees the
    stall, and they come back once the loop runs on time again."""
    clock = FakeClock()
    thresholds = Thresholds(loop_lag_degraded_s=1.0, loop_lag_failed_s=5.0)

    async def scenario() -> None:
        wd = service(path_listener, [Fixed()], interval_s=0.05, thresholds=thresholds, lag=LagMonitor(clock, sample_interval_s=0.02))
        task = asyncio.create_task(wd.run())
        assert await _until(lambda: len(path_listener.values("WATCHDOG")) >= 3)

        def stall() -> None:
            clock.offset_s += 30.0
            time.sleep(0.3)

        asyncio.get_running_loop().call_soon(stall)
        assert await _until(lambda: any("event loop stalled" in s for s in path_listener.values("STATUS")))
        assert await _until(lambda: path_listener.values("STATUS")[-1] == "ready: all health checks pass")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    run(scenario())
    got = path_listener.datagrams
    stalled = next(i for i, d in enumerate(got) if "event loop stalled" in d.fields.get("STATUS", ""))
    assert set(got[stalled].fields) == {"STATUS"}  # no WATCHDOG=1 with it
    assert got[stalled].fields["STATUS"].startswith("failing, watchdog pings stopped: event loop stalled (30.")
    assert "WATCHDOG" in got[-1].fields
    pings = [d.at_s for d in got if "WATCHDOG" in d.fields]
    assert max(b - a for a, b in itertools.pairwise(pings)) >= 0.25  # the block itself sent nothing


def test_the_lag_monitor_reports_the_longest_lag_once() -> None:
    clock = FakeClock()
    monitor = LagMonitor(clock, sample_interval_s=0.01)

    async def scenario() -> None:
        task = asyncio.create_task(monitor.run())
        await asyncio.sleep(0.05)
        assert monitor.take_max_s() < 1.0
        clock.offset_s += 7.0  # as if the loop had been stuck for 7 s
        await asyncio.sleep(0.05)
        assert monitor.take_max_s() >= 6.9
        await asyncio.sleep(0.05)
        assert monitor.take_max_s() < 1.0
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    run(scenario())


# -- the HSM probe ---------------------------------------------------------------------------------------


def test_a_hung_hsm_call_becomes_a_failed_check_not_a_hung_watchdog() -> None:
    clock = FakeClock()
    keyring = FakeKeyring()
    probe = HsmProbe(keyring, timeout_s=10.0, monotonic_s=clock)

    async def scenario() -> None:
        assert (await probe.check(1.0))[0].state is State.OK
        keyring.release.clear()  # the next call hangs in the "driver"
        started = time.monotonic()
        assert (await probe.check(0.05))[0].state is State.OK  # running, but not for long yet
        clock.offset_s += 12.0
        hung = (await probe.check(0.05))[0]
        assert hung == Check("HSM", State.FAILED, "HSM not answering for 12 s")
        assert keyring.calls == 2  # one call in flight at most: no pile of stuck threads
        assert time.monotonic() - started < 5.0
        keyring.release.set()
        assert await _until_check(probe, State.OK)
        await probe.close()

    run(scenario())


def test_a_failing_or_sealed_hsm_is_a_failed_check() -> None:
    keyring = FakeKeyring()
    probe = HsmProbe(keyring)

    async def scenario() -> None:
        keyring.fail = True
        assert (await probe.check(1.0))[0] == Check("HSM", State.FAILED, "HSM lost: personal data refused until restart")
        keyring.fail = False
        keyring.sealed = True
        calls = keyring.calls
        assert (await probe.check(1.0))[0].state is State.FAILED
        assert keyring.calls == calls  # a sealed keyring stays failed: only a restart opens it

    run(scenario())


def test_run_on_daemon_thread_returns_and_raises() -> None:
    async def scenario() -> None:
        assert await run_on_daemon_thread(lambda: 42, name="t") == 42
        with pytest.raises(ZeroDivisionError):
            await run_on_daemon_thread(lambda: 1 / 0, name="t")

    run(scenario())


# -- storage, resources, links -----------------------------------------------------------------------------


def test_the_storage_probe_fails_when_the_write_fails_or_hangs() -> None:
    clock = FakeClock()
    behaviour: dict[str, object] = {"mode": "ok"}
    gate = asyncio.Event

    async def scenario() -> None:
        hang = gate()

        async def probe_storage() -> None:
            if behaviour["mode"] == "fail":
                raise ServiceUnavailable("storage probe failed")
            if behaviour["mode"] == "hang":
                await hang.wait()

        probe = StorageProbe(probe_storage, timeout_s=10.0, monotonic_s=clock)
        assert (await probe.check(0.5))[0].state is State.OK
        behaviour["mode"] = "fail"
        assert (await probe.check(0.5))[0] == Check("storage", State.FAILED, "storage write failing")
        behaviour["mode"] = "hang"
        assert (await probe.check(0.05))[0].state is State.FAILED  # the last completed write failed
        clock.offset_s += 11.0
        assert (await probe.check(0.05))[0] == Check("storage", State.FAILED, "storage not answering for 11 s")
        hang.set()
        assert (await probe.check(0.5))[0].state is State.OK
        await probe.close()

    run(scenario())


def test_resources_measure_disk_memory_and_open_files(tmp_path: Path) -> None:
    async def scenario() -> None:
        checks = await Resources(tmp_path, Thresholds()).check(1.0)
        assert [c.name for c in checks] == ["disk", "memory", "open files"]
        tight = Thresholds(disk_free_degraded_bytes=1 << 62, disk_free_failed_bytes=1 << 61, memory_available_degraded_bytes=1 << 62)
        disk, memory, _ = await Resources(tmp_path, tight).check(1.0)
        assert disk.state is State.FAILED and disk.text.startswith("disk full: ")
        assert memory.state is State.DEGRADED and memory.text.startswith("memory low: ")

    run(scenario())


@dataclass
class FakeLink:
    channel: str
    connected: bool = True


def test_a_link_down_past_its_grace_period_is_degraded_with_its_queue() -> None:
    clock = FakeClock()
    links = {"prefecture": FakeLink("prefecture"), "card_system": FakeLink("card_system")}
    depths = {"prefecture": 12345, "card_system": 0}
    slow_depth = asyncio.Event

    async def scenario() -> None:
        never = slow_depth()

        async def depth(channel: str) -> int:
            if channel == "card_system":
                await never.wait()  # storage busy: the count is left out, the check still returns
            return depths[channel]

        watch = LinkWatch(links, depth, Thresholds(link_grace_s=60.0), clock)
        assert all(c.state is State.OK for c in await watch.check(0.1))
        links["prefecture"].connected = False
        links["card_system"].connected = False
        assert all(c.state is State.OK for c in await watch.check(0.1))  # just went down: a reconnect
        clock.offset_s += 150.0
        started = time.monotonic()
        pref, card = await watch.check(0.1)
        assert time.monotonic() - started < 5.0
        assert pref == Check("prefecture", State.DEGRADED, "prefecture unreachable for 2 min, 12,345 notices queued")
        assert card == Check("card system", State.DEGRADED, "card system unreachable for 2 min")
        links["prefecture"].connected = True
        pref, _ = await watch.check(0.1)
        assert pref.state is State.OK
        links["prefecture"].connected = False  # down again: the grace period starts over
        pref, _ = await watch.check(0.1)
        assert pref.state is State.OK

    run(scenario())


# -- helpers -------------------------------------------------------------------------------------------------


async def _until(predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


async def _until_check(probe: HsmProbe, state: State, timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (await probe.check(0.1))[0].state is state:
            return True
    return False
