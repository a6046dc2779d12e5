"""The sd_notify client against a socket bound by the test (a path and an abstract name)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from notify_listener import NotifyListener

from watchdog.notify import (
    MIN_INTERVAL_S,
    Notifier,
    forget_environ,
    watchdog_interval_s,
)

WAIT_S = 5.0


def test_ready_watchdog_status_and_stopping_arrive_as_sent(listener: NotifyListener) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": listener.address})
    assert notifier.enabled
    assert notifier.send(READY=1, STATUS="ready: listening on 127.0.0.1 port 7400")
    assert notifier.send(WATCHDOG=1)
    assert notifier.send(STATUS="degraded: prefecture\nunreachable for 2 min")
    assert notifier.send(STOPPING=1)
    notifier.close()
    assert listener.wait_for(lambda: len(listener.datagrams) == 4, WAIT_S)
    got = listener.datagrams
    assert got[0].fields == {"READY": "1", "STATUS": "ready: listening on 127.0.0.1 port 7400"}
    assert got[1].fields == {"WATCHDOG": "1"}
    assert got[2].fields == {"STATUS": "degraded: prefecture unreachable for 2 min"}  # one line
    assert got[3].fields == {"STOPPING": "1"}
    assert {d.pid for d in got} == {os.getpid()}  # SCM_CREDENTIALS: systemd can check MAINPID


def test_without_notify_socket_every_send_is_a_no_op() -> None:
    notifier = Notifier.from_environ({})
    assert not notifier.enabled
    assert notifier.send(READY=1) is False
    assert Notifier("vsock:2:1234").send(READY=1) is False  # a kind this appliance does not use


def test_a_missing_socket_never_raises(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "gone"))
    assert notifier.send(WATCHDOG=1) is False
    assert notifier.send(WATCHDOG=1) is False


def test_a_long_status_is_cut_to_one_datagram_line(path_listener: NotifyListener) -> None:
    notifier = Notifier(path_listener.address)
    assert notifier.send(STATUS="x" * 5000)
    assert path_listener.wait_for(lambda: path_listener.values("STATUS"), WAIT_S)
    assert len(path_listener.values("STATUS")[0]) == 400


@pytest.mark.parametrize(
    ("env", "expected_s"),
    [
        ({"WATCHDOG_USEC": "1000000"}, 0.5),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4243"}, None),  # another process's watchdog
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "20"}, MIN_INTERVAL_S),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec_for_our_pid(env: dict[str, str], expected_s: float | None) -> None:
    assert watchdog_interval_s(env, pid=4242) == expected_s


def test_forget_environ_removes_only_the_service_managers_variables() -> None:
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1", "WATCHDOG_PID": "2", "PATH": "/bin"}
    forget_environ(env)
    assert env == {"PATH": "/bin"}


def test_the_socket_is_a_datagram_socket_of_its_own(path_listener: NotifyListener) -> None:
    """Two notifiers (the daemon is one process; a test may make several) do not interfere."""
    a, b = Notifier(path_listener.address), Notifier(path_listener.address)
    assert a.send(STATUS="a") and b.send(STATUS="b")
    assert path_listener.wait_for(lambda: sorted(path_listener.values("STATUS")) == ["a", "b"], WAIT_S)
    a.close()
    b.close()
