"""``csd`` as its own process under a fake service manager: ``NOTIFY_SOCKET`` is a socket bound by
the test and ``WATCHDOG_USEC=1000000``, so the daemon should ping about every 0.5 s.

No peer listens here, so both outbound links stay down: past the one-second grace period of these
tests the daemon is degraded but safe, and must keep pinging.  Counts and timings are asserted
loosely; every wait is bounded.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from notify_listener import Datagram, NotifyListener

from peers.cs_process import CsProcess, CsProcessError, provision_cs_token
from peers.rig import Pki, free_port, write_config
from storage import layout
from storage.store import Store

WAIT_S = 30.0
WATCHDOG_USEC = 1_000_000
EXTRA = "[links]\nbackoff_initial_s = 0.05\nbackoff_max_s = 0.5\n[watchdog]\nlink_grace_s = 1\n"


@dataclass
class Site:
    base: Path
    cs: CsProcess
    ready_logged_at_ready: list[bool]

    @property
    def log(self) -> str:
        return self.cs.log_path.read_text(encoding="utf-8", errors="replace")


def make_site(base: Path, pki: Pki, listener: NotifyListener) -> Site:
    hsm, _ = provision_cs_token(base / "hsm")
    config = write_config(
        base / "csd.toml",
        store=base / "store",
        hsm=hsm,
        pki=pki,
        listen_port=free_port(),
        prefecture_port=free_port(),  # nothing listens there
        national_port=free_port(),
        extra=EXTRA,
    )
    env = {"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    site = Site(base, CsProcess(config, hsm, base / "csd.log", extra_env=env), [])

    def on_datagram(datagram: Datagram) -> None:
        if "READY" in datagram.fields:  # what the log said when READY=1 arrived
            site.ready_logged_at_ready.append("csd: ready: listening" in site.log)

    listener.on_datagram = on_datagram
    return site


def after(listener: NotifyListener, at_s: float, key: str) -> list[Datagram]:
    return [d for d in listener.datagrams if d.at_s > at_s and key in d.fields]


def test_ready_after_ready_pings_at_half_the_period_and_degraded_keeps_pinging(tmp_path: Path, pki: Pki, path_listener: NotifyListener) -> None:
    listener = path_listener
    site = make_site(tmp_path, pki, listener)
    site.cs.start(ready_timeout_s=WAIT_S)
    try:
        assert listener.wait_for(lambda: listener.values("READY"), WAIT_S)
        assert site.ready_logged_at_ready == [True]  # READY=1 only once storage, HSM and links are up
        ready = next(d for d in listener.datagrams if "READY" in d.fields)
        assert ready.pid == site.cs.pid
        assert ready.fields["STATUS"].startswith("ready: listening on 127.0.0.1 port ")
        assert not [d for d in listener.datagrams if d.at_s < ready.at_s and "WATCHDOG" in d.fields]

        # About every 0.5 s: in a window of about 3 s expect about 6 pings; allow a wide margin.
        window_start = time.monotonic()
        time.sleep(3.0)
        window_s = time.monotonic() - window_start
        pings = [d for d in listener.datagrams if window_start <= d.at_s <= window_start + window_s and "WATCHDOG" in d.fields]
        expected = window_s / (WATCHDOG_USEC / 2e6)
        assert expected / 3 <= len(pings) <= expected * 2 + 2, (len(pings), window_s)
        assert {d.pid for d in pings} == {site.cs.pid}

        # No peer listens: degraded, named in words, and the pings go on.
        def degraded() -> list[Datagram]:
            return [d for d in listener.datagrams if d.fields.get("STATUS", "").startswith("degraded: ")]

        assert listener.wait_for(lambda: any("prefecture unreachable for" in d.fields["STATUS"] for d in degraded()), WAIT_S)
        status = next(d for d in degraded() if "prefecture unreachable for" in d.fields["STATUS"])
        assert status.fields["STATUS"].count("prefecture unreachable for") == 1
        assert re.search(r"health degraded: prefecture unreachable for \d+ s, nothing queued", site.log)  # at the transition
        assert listener.wait_for(lambda: len(after(listener, status.at_s, "WATCHDOG")) >= 3, WAIT_S)
    finally:
        assert site.cs.stop(timeout_s=WAIT_S) == 0
    stopping = [d for d in listener.datagrams if "STOPPING" in d.fields]
    assert len(stopping) == 1
    assert not after(listener, stopping[0].at_s, "WATCHDOG")  # nothing pings once stopping
    assert "Traceback" not in site.log
    # The storage probe wrote through the writer thread: its counter is in the store.
    store = Store(tmp_path / "store")
    try:
        with store.read() as r:
            value = r.get(layout.META, b"watchdog_probe")
    finally:
        store.close()
    assert value is not None and layout.unpack_u64(value) >= 3


def test_a_lost_hsm_stops_the_pings_and_says_so(tmp_path: Path, pki: Pki, path_listener: NotifyListener) -> None:
    listener = path_listener
    site = make_site(tmp_path, pki, listener)
    site.cs.start(ready_timeout_s=WAIT_S)
    try:
        assert listener.wait_for(lambda: len(listener.values("WATCHDOG")) >= 2, WAIT_S)
        for token_dir in (tmp_path / "hsm" / "softhsm" / "tokens").iterdir():
            shutil.rmtree(token_dir)

        def failing() -> list[Datagram]:
            return [d for d in listener.datagrams if d.fields.get("STATUS", "").startswith("failing, watchdog pings stopped: ")]

        assert listener.wait_for(lambda: bool(failing()), WAIT_S)
        first = failing()[0]
        assert "HSM" in first.fields["STATUS"]
        assert "WATCHDOG" not in first.fields
        time.sleep(2.0)  # four periods: systemd would have restarted the service by now
        assert not after(listener, first.at_s, "WATCHDOG")
        assert site.cs._proc is not None and site.cs._proc.poll() is None  # still up: systemd's call
        assert "watchdog pings stopped; systemd will restart the service" in site.log
    finally:
        site.cs.stop(timeout_s=WAIT_S)
    assert site.cs.hsm.pin_file.read_text().strip() not in site.log


def test_a_wrong_pin_exits_3_without_ready(tmp_path: Path, pki: Pki, path_listener: NotifyListener) -> None:
    listener = path_listener
    site = make_site(tmp_path, pki, listener)
    pin = site.cs.hsm.pin_file.read_text().strip()
    site.cs.hsm.pin_file.write_text("0" * 32 + "\n")
    with pytest.raises(CsProcessError, match="exited with 3"):
        site.cs.start(ready_timeout_s=WAIT_S)
    assert site.cs.stop() == 3
    assert listener.wait_for(lambda: listener.values("STATUS"), 5.0)
    assert listener.values("STATUS") == [v for v in listener.values("STATUS") if v.startswith("start failed: HSM not usable")]
    assert not listener.values("READY") and not listener.values("WATCHDOG")
    assert all(pin not in v and "0" * 32 not in v for v in listener.values("STATUS"))
