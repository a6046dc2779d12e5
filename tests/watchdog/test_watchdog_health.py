"""The watchdog's policy, pure: measurements → checks → ping or not, and the operator's text."""

from __future__ import annotations

import pytest

from watchdog.health import (
    Check,
    State,
    Thresholds,
    disk_check,
    evaluate,
    format_bytes,
    format_duration,
    link_check,
    loop_lag_check,
    memory_check,
    open_files_check,
    probe_check,
)

T = Thresholds()
MIB = 1024**2
GIB = 1024**3


def test_all_ok_pings_and_says_ready() -> None:
    verdict = evaluate([Check("HSM", State.OK), Check("storage", State.OK)])
    assert verdict.ping and verdict.state is State.OK
    assert verdict.status == "ready: all health checks pass"
    assert verdict.problems == ()


def test_degraded_keeps_pinging_and_names_every_problem() -> None:
    verdict = evaluate(
        [
            Check("HSM", State.OK),
            link_check("prefecture", down_for_s=150, queued=12345, t=T),
            disk_check(GIB, T),
        ]
    )
    assert verdict.ping and verdict.state is State.DEGRADED
    assert verdict.status == "degraded: prefecture unreachable for 2 min, 12,345 notices queued; disk filling up: 1.0 GiB free for the store"


def test_one_failed_check_stops_the_pings_and_comes_first() -> None:
    verdict = evaluate(
        [
            link_check("card_system", down_for_s=3600, queued=7, t=T),
            Check("HSM", State.FAILED, "HSM lost: personal data refused until restart"),
        ]
    )
    assert not verdict.ping and verdict.state is State.FAILED
    assert verdict.status.startswith("failing, watchdog pings stopped: HSM lost")
    assert verdict.status.endswith("card system unreachable for 60 min, 7 deliveries queued")


@pytest.mark.parametrize(
    ("lag_s", "state"),
    [(0.0, State.OK), (0.49, State.OK), (0.5, State.DEGRADED), (4.9, State.DEGRADED), (5.0, State.FAILED), (60.0, State.FAILED)],
)
def test_loop_lag_bounds(lag_s: float, state: State) -> None:
    check = loop_lag_check(lag_s, T)
    assert check.state is state
    if state is State.FAILED:
        assert check.text == f"event loop stalled ({lag_s:.1f} s behind)"


def test_a_probe_is_failed_when_it_failed_or_hangs_past_its_timeout() -> None:
    def probe(ok: bool | None, running_for_s: float) -> Check:
        return probe_check("HSM", ok=ok, running_for_s=running_for_s, timeout_s=10.0, failure_text="HSM lost")

    assert probe(None, 0.0).state is State.OK  # none finished yet: ready was reached after a self-test
    assert probe(True, 9.9).state is State.OK  # still within its time
    assert probe(False, 0.0) == Check("HSM", State.FAILED, "HSM lost")
    hung = probe(True, 12.0)
    assert hung.state is State.FAILED and hung.text == "HSM not answering for 12 s"


@pytest.mark.parametrize(
    ("free_bytes", "state"),
    [(100 * GIB, State.OK), (2 * GIB, State.OK), (2 * GIB - 1, State.DEGRADED), (64 * MIB, State.DEGRADED), (64 * MIB - 1, State.FAILED), (0, State.FAILED)],
)
def test_disk_bounds(free_bytes: int, state: State) -> None:
    assert disk_check(free_bytes, T).state is state


def test_memory_and_open_files_bounds() -> None:
    assert memory_check(4 * GIB, T).state is State.OK
    assert memory_check(100 * MIB, T) == Check("memory", State.DEGRADED, "memory low: 100 MiB available")
    assert memory_check(10 * MIB, T).state is State.FAILED
    assert open_files_check(10, 1024, T).state is State.OK
    assert open_files_check(820, 1024, T) == Check("open files", State.DEGRADED, "file handles running out: 820 of 1,024 files open")
    assert open_files_check(1000, 1024, T).state is State.FAILED
    assert open_files_check(10**6, 0, T).state is State.OK  # no limit


def test_a_link_is_news_only_after_its_grace_period_and_never_fatal() -> None:
    t = Thresholds(link_grace_s=60.0)
    assert link_check("prefecture", down_for_s=None, queued=None, t=t).state is State.OK
    assert link_check("prefecture", down_for_s=59.0, queued=None, t=t).state is State.OK
    down = link_check("prefecture", down_for_s=61.0, queued=None, t=t)
    assert down == Check("prefecture", State.DEGRADED, "prefecture unreachable for 61 s")
    assert link_check("prefecture", down_for_s=10 * 86400, queued=10**6, t=t).state is State.DEGRADED
    assert link_check("card_system", down_for_s=61.0, queued=0, t=t).text == "card system unreachable for 61 s, nothing queued"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (59.9, "59 s"), (119, "119 s"), (120, "2 min"), (7199, "119 min"), (7200, "2 h"), (3 * 3600 + 300, "3 h 5 min"), (49 * 3600, "2 d 1 h"), (-3, "0 s")],
)
def test_durations_read_naturally(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_byte_counts_read_naturally() -> None:
    assert format_bytes(5 * MIB) == "5 MiB"
    assert format_bytes(int(1.5 * GIB)) == "1.5 GiB"
    assert format_bytes(200 * GIB) == "200 GiB"
