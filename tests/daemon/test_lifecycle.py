"""``csd`` as its own process: ordered start, refusal exit codes, and the one stop path.

Each daemon here runs in a child process with its own SoftHSM2 token (a PKCS#11 login is per
process, and this process is already logged in to the session token of tests/conftest.py); the
peers (register, prefecture, national) run in this process's event loop.  The daemon uses the
system clock, so the register stream is dated today (JST).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from firmware_app.clock import SystemClock, today_of
from firmware_app.domain.check_item import CheckItem, check_item_of, decode_check_item
from firmware_app.domain.updates import CardEvent, IdentityChange
from firmware_app.links.outbound import Endpoint
from hsm.config import HsmConfig
from peers.consistency import ConsistencyClient
from peers.cs_process import CsProcess, CsProcessError, provision_cs_token
from peers.national import NationalSim
from peers.prefecture import PrefectureSim
from peers.register import RegisterClient
from peers.register_stream import CardChange, Change, DestinationDue, Event, RegisterStream
from peers.rig import Pki, free_port, write_config

REPO = Path(__file__).resolve().parents[2]
DRAIN_S = 2.0
#: Generous: a stop must end within the drain bound plus this (process exit, HSM logout, LMDB close).
STOP_MARGIN_S = 10.0
WAIT_S = 30.0
POPULATION = 300
FAST_LINKS = "[links]\nbackoff_initial_s = 0.02\nbackoff_max_s = 0.2\n"

_PRELOAD = """
import sys
from pathlib import Path
from firmware_app.clock import SystemClock
from firmware_app.service.identity_file import IdentityFile
from firmware_app.service.keyring import Keyring
from hsm.config import HsmConfig, open_token
from peers.register_stream import RegisterStream
from storage.store import Store

softhsm_conf, pin_file, store_path, population, seed, today = sys.argv[1:]
token = open_token(HsmConfig(pin_file=Path(pin_file), softhsm_conf=Path(softhsm_conf)))
store = Store(Path(store_path))
try:
    clock = SystemClock()
    keyring = Keyring(token, store, clock)
    keyring.open_blocking()
    stream = RegisterStream(population=int(population), seed=int(seed), today=today)
    print(IdentityFile(store, keyring, clock).load_blocking(stream.initial_records()))
finally:
    store.close()
    token.close_blocking()
"""


def child_env(hsm: HsmConfig) -> dict[str, str]:
    """This process's environment with the child's own SoftHSM2 configuration."""
    env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
    if hsm.softhsm_conf is not None:
        env["SOFTHSM2_CONF"] = str(hsm.softhsm_conf)
    return env


#: Tests run as root here; csd refuses root unless told it is a development run.
ROOT_FLAG = ["--allow-root"] if os.geteuid() == 0 else []


def run_csd(config: Path, hsm: HsmConfig, *, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``csd --config`` to its end (for the starts that must fail); stderr is its log."""
    return subprocess.run(
        [sys.executable, "-m", "firmware_app.daemon", "--config", str(config), *ROOT_FLAG],
        cwd=REPO,
        env=child_env(hsm),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def preload(hsm: HsmConfig, store: Path, *, population: int, seed: int, today: str) -> None:
    """Migrate the stream's initial population into ``store`` in a child process (its own login)."""
    assert hsm.softhsm_conf is not None
    done = subprocess.run(
        [sys.executable, "-c", _PRELOAD, str(hsm.softhsm_conf), str(hsm.pin_file), str(store), str(population), str(seed), today],
        cwd=REPO,
        env=child_env(hsm),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == population


def log_lines(text: str) -> list[str]:
    return text.splitlines()


def index_of(lines: list[str], mark: str) -> int:
    hits = [i for i, line in enumerate(lines) if mark in line]
    assert hits, f"{mark!r} not logged:\n" + "\n".join(lines[-30:])
    return hits[0]


def expected_items(initial: Iterable[CheckItem], events: Iterable[Event]) -> dict[str, CheckItem]:
    """The nine items of every resident after applying the identity changes among ``events`` once each, in order."""
    items = {item.resident_code: item for item in initial}
    for event in events:
        if isinstance(event, Change):
            if event.op == "remove":
                items.pop(event.record.resident_code, None)
            else:
                items[event.record.resident_code] = check_item_of(event.record)
    return items


def submit(register: RegisterClient, event: Event) -> int:
    if isinstance(event, Change):
        return register.submit("identity_change", IdentityChange(event.op, event.record))
    if isinstance(event, CardChange):
        return register.submit("card_event", CardEvent(event.kind, event.resident_code, event.occurred_on))
    assert isinstance(event, DestinationDue)
    return register.submit("destination", event.record)


@dataclass
class Feeder:
    """Keeps the register streaming: a few events every few milliseconds, at most ``backlog`` unacknowledged."""

    register: RegisterClient
    stream: RegisterStream
    backlog: int = 1500
    sent: list[Event] = field(default_factory=list)  # index = update sequence number - 1
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def burst(self, count: int) -> None:
        """Submit ``count`` events at once (the register sends them when the loop next runs)."""
        for event in self.stream.events(count):
            seq = submit(self.register, event)
            self.sent.append(event)
            assert seq == len(self.sent)

    async def _run(self) -> None:
        while True:
            if self.register.submitted - self.register.acked_through < self.backlog:
                self.burst(16)
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


@dataclass
class Site:
    """One CS directory: its token, store, configuration and log, and the peers around it."""

    base: Path
    pki: Pki
    hsm: HsmConfig
    public_key: bytes
    config: Path
    endpoint: Endpoint
    cs: CsProcess
    today: str

    @property
    def log(self) -> str:
        return self.cs.log_path.read_text(encoding="utf-8", errors="replace")

    @property
    def pin(self) -> str:
        return self.hsm.pin_file.read_text().strip()

    async def full_check(self) -> dict[str, CheckItem]:
        client = ConsistencyClient(self.endpoint, self.pki.tls("prefecture"), self.public_key, timeout_s=WAIT_S)
        full = await client.full_check()
        return {code: decode_check_item(item) for code, item in full.items.items()}


def make_site(base: Path, pki: Pki, *, prefecture_port: int | None = None, national_port: int | None = None, extra: str = "") -> Site:
    hsm, public_key = provision_cs_token(base / "hsm")
    listen_port = free_port()
    config = write_config(
        base / "csd.toml",
        store=base / "store",
        hsm=hsm,
        pki=pki,
        listen_port=listen_port,
        prefecture_port=prefecture_port or free_port(),
        national_port=national_port or free_port(),
        extra=extra,
    )
    cs = CsProcess(config, hsm, base / "csd.log")
    return Site(base, pki, hsm, public_key, config, Endpoint("127.0.0.1", listen_port, "localhost"), cs, today_of(SystemClock()))


async def resume_point(site: Site) -> int:
    """The update sequence number the CS tells a register to send next (a register that sends nothing)."""
    probe = RegisterClient(site.endpoint, site.pki.tls("register"))
    task = asyncio.create_task(probe.run())
    try:
        async with asyncio.timeout(WAIT_S):
            while probe.connections == 0:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return probe.acked_through + 1


# -- start ------------------------------------------------------------------------------------------


def test_start_logs_each_stage_in_order_and_stops_cleanly(tmp_path: Path, pki: Pki) -> None:
    site = make_site(tmp_path, pki)
    site.cs.start(ready_timeout_s=WAIT_S)
    try:
        assert (site.base / "store" / "data.mdb").exists()
    finally:
        assert site.cs.stop(timeout_s=WAIT_S) == 0
    lines = log_lines(site.log)
    storage = index_of(lines, "csd: storage open")
    hsm = index_of(lines, "csd: HSM logged in, self-test passed")
    ready = index_of(lines, f"csd: ready: listening on 127.0.0.1 port {site.endpoint.port}")
    stopping = index_of(lines, "csd: stopping")
    stopped = index_of(lines, "csd: stopped")
    assert storage < hsm < ready < stopping < stopped
    assert "Traceback" not in site.log
    assert site.pin not in site.log

    # The same store and token again (the data keys are unwrapped, not created anew), stopped by SIGINT.
    site.cs.start(ready_timeout_s=WAIT_S)
    assert site.cs.pid is not None
    os.kill(site.cs.pid, signal.SIGINT)
    proc = site.cs._proc  # CsProcess.stop would send SIGTERM; wait for the SIGINT exit itself
    assert proc is not None
    assert proc.wait(timeout=WAIT_S) == 0
    second = site.log.split(f"port {site.endpoint.port}")[-2]  # between the two ready lines
    assert "data key created" not in second
    assert site.log.rstrip().endswith("csd: stopped")


# -- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        pytest.param("[daemon]\ndrain_timeout_s = 0\n", "daemon.drain_timeout_s must be between", id="out-of-range"),
        pytest.param("[daemon]\ndrain_timeout_s = true\n", "daemon.drain_timeout_s has the wrong type", id="bool"),
        pytest.param("[retention]\nkeep_moveouts_days = 30\n", "unknown key 'keep_moveouts_days' in [retention]", id="unknown-key"),
        pytest.param("[listen]\nbacklog = 5\n", "not valid TOML", id="table-twice"),
    ],
)
def test_a_config_error_exits_2_naming_the_key(tmp_path: Path, pki: Pki, extra: str, named: str) -> None:
    hsm = HsmConfig(pin_file=tmp_path / "no-pin", softhsm_conf=tmp_path / "no-softhsm.conf")
    config = write_config(
        tmp_path / "csd.toml", store=tmp_path / "store", hsm=hsm, pki=pki, listen_port=free_port(), prefecture_port=1, national_port=2, extra=extra
    )
    done = run_csd(config, hsm)
    assert done.returncode == 2, done.stderr
    assert "configuration refused" in done.stderr and named in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "store").exists()  # refused before anything was opened


def test_a_missing_config_file_exits_2(tmp_path: Path) -> None:
    done = run_csd(tmp_path / "nowhere.toml", HsmConfig())
    assert done.returncode == 2
    assert "cannot read configuration file" in done.stderr


def _wrong_pin(site: Site) -> str:
    wrong = secrets.token_hex(16)
    assert wrong != site.pin
    site.hsm.pin_file.write_text(wrong + "\n")
    return wrong


def _missing_pin_file(site: Site) -> str:
    site.hsm.pin_file.unlink()
    return "HSM PIN file is missing"


def _readable_pin_file(site: Site) -> str:
    site.hsm.pin_file.chmod(0o644)
    return "must not be accessible"


@pytest.mark.parametrize("break_it", [_wrong_pin, _missing_pin_file, _readable_pin_file], ids=["wrong-pin", "missing-pin-file", "world-readable-pin-file"])
def test_an_unusable_hsm_exits_3_never_ready_and_never_logs_the_pin(tmp_path: Path, pki: Pki, break_it) -> None:
    site = make_site(tmp_path, pki)
    real_pin = site.pin
    said = break_it(site)
    done = run_csd(site.config, site.hsm)
    assert done.returncode == 3, done.stderr
    log = done.stderr
    assert "HSM not usable" in log
    assert "ready: listening" not in log
    assert "HSM logged in" not in log
    assert index_of(log_lines(log), "storage open") < index_of(log_lines(log), "start failed")
    assert real_pin not in log
    if break_it is _wrong_pin:
        assert said not in log  # the PIN that was tried is not logged either
    else:
        assert said in log
    assert "Traceback" not in log


def test_a_store_written_with_another_token_exits_3(tmp_path: Path, pki: Pki) -> None:
    first = make_site(tmp_path / "a", pki)
    first.cs.start(ready_timeout_s=WAIT_S)
    assert first.cs.stop(timeout_s=WAIT_S) == 0
    other_hsm, _ = provision_cs_token(tmp_path / "b" / "hsm")
    config = write_config(
        tmp_path / "b" / "csd.toml", store=first.base / "store", hsm=other_hsm, pki=pki, listen_port=free_port(), prefecture_port=1, national_port=2
    )
    other = CsProcess(config, other_hsm, tmp_path / "b" / "csd.log")
    with pytest.raises(CsProcessError, match="exited with 3"):
        other.start(ready_timeout_s=WAIT_S)
    assert other.stop() == 3
    assert "different KEK" in (tmp_path / "b" / "csd.log").read_text()


def test_storage_that_cannot_be_opened_exits_4_before_the_hsm(tmp_path: Path, pki: Pki) -> None:
    hsm = HsmConfig(pin_file=tmp_path / "no-pin", softhsm_conf=tmp_path / "no-softhsm.conf")
    in_the_way = tmp_path / "store"
    in_the_way.write_text("not a directory")
    config = write_config(tmp_path / "csd.toml", store=in_the_way, hsm=hsm, pki=pki, listen_port=free_port(), prefecture_port=1, national_port=2)
    done = run_csd(config, hsm)
    assert done.returncode == 4, done.stderr
    assert "storage could not be opened" in done.stderr
    assert "HSM logged in" not in done.stderr and "ready: listening" not in done.stderr
    assert "Traceback" not in done.stderr


# -- the stop path -----------------------------------------------------------------------------------


@dataclass
class Stopped:
    """What a SIGTERM while the register streamed left behind."""

    site: Site
    register: RegisterClient
    feeder: Feeder
    initial: list[CheckItem]
    acked_at_sigterm: int
    submitted_at_sigterm: int
    exit_code: int
    took_s: float


async def wait_logged(site: Site, mark: str) -> None:
    async with asyncio.timeout(WAIT_S):
        while mark not in site.log:
            await asyncio.sleep(0.005)


async def sigterm_while_streaming(base: Path, pki: Pki, *, seed: int) -> Stopped:
    """A CS with a preloaded population and a register streaming into it, stopped by SIGTERM.

    Right before the signal the feeder pauses and submits a burst (so updates are in flight at the
    signal and ``submitted_at_sigterm`` is exact); it resumes once the daemon has logged that it is
    stopping, so the register streams throughout."""
    site = make_site(base, pki, extra=FAST_LINKS + f"[daemon]\ndrain_timeout_s = {DRAIN_S}\n")
    stream = RegisterStream(population=POPULATION, seed=seed, today=site.today)
    preload(site.hsm, site.base / "store", population=POPULATION, seed=seed, today=site.today)
    initial = [check_item_of(r) for r in stream.initial_records()]
    await asyncio.to_thread(site.cs.start, ready_timeout_s=WAIT_S)
    register = RegisterClient(site.endpoint, pki.tls("register"))
    register_task = asyncio.create_task(register.run())
    feeder = Feeder(register, stream)
    feeder.start()
    try:
        await register.wait_acked(400, WAIT_S)
        await feeder.stop()
        feeder.burst(1000)
        acked_at_sigterm, submitted_at_sigterm = register.acked_through, register.submitted
        started = time.monotonic()
        stopping = asyncio.create_task(asyncio.to_thread(site.cs.stop, timeout_s=DRAIN_S + 60))
        await wait_logged(site, "csd: stopping")
        feeder.start()
        exit_code = await stopping
        took_s = time.monotonic() - started
    finally:
        await feeder.stop()
        register_task.cancel()
        await asyncio.gather(register_task, return_exceptions=True)
    return Stopped(site, register, feeder, initial, acked_at_sigterm, submitted_at_sigterm, exit_code, took_s)


def test_sigterm_while_a_register_streams_keeps_every_acknowledged_update(tmp_path: Path, pki: Pki) -> None:
    async def scenario() -> None:
        run = await sigterm_while_streaming(tmp_path, pki, seed=11)
        site, register = run.site, run.register
        assert run.submitted_at_sigterm >= run.acked_at_sigterm + 1000  # updates were in flight at the signal
        assert run.exit_code == 0
        assert run.took_s < DRAIN_S + STOP_MARGIN_S
        lines = log_lines(site.log)
        assert index_of(lines, "csd: ready") < index_of(lines, "csd: stopping") < index_of(lines, "csd: stopped")
        assert "Traceback" not in site.log
        assert site.pin not in site.log
        assert register.refused == []
        acked = register.acked_through
        assert acked >= run.acked_at_sigterm

        # Restarted on the same store and token: nothing acknowledged is missing, nothing else is there.
        await asyncio.to_thread(site.cs.start, ready_timeout_s=WAIT_S)
        try:
            resume = await resume_point(site)
            assert acked < resume <= register.submitted + 1
            assert await site.full_check() == expected_items(run.initial, run.feeder.sent[: resume - 1])
        finally:
            assert await asyncio.to_thread(site.cs.stop, timeout_s=DRAIN_S + 60) == 0

    asyncio.run(scenario())


def test_sigterm_closes_intake_at_once(tmp_path: Path, pki: Pki) -> None:
    async def scenario() -> None:
        run = await sigterm_while_streaming(tmp_path, pki, seed=12)
        assert run.exit_code == 0
        # Only what the register had sent before the signal may be acknowledged, and the stop
        # need not wait out the drain bound once the accepted updates are committed.
        assert run.register.acked_through <= run.submitted_at_sigterm
        assert run.took_s < DRAIN_S

    asyncio.run(scenario())


def test_a_restart_resumes_the_register_and_the_prefecture_exactly_once(tmp_path: Path, pki: Pki) -> None:
    async def scenario() -> None:
        prefecture_port, national_port = free_port(), free_port()
        # Small batches to a slow prefecture, so it is behind when the daemon stops.
        site = make_site(
            tmp_path,
            pki,
            prefecture_port=prefecture_port,
            national_port=national_port,
            extra=FAST_LINKS + f"batch_entries = 8\n[daemon]\ndrain_timeout_s = {DRAIN_S}\n",
        )
        stream = RegisterStream(population=POPULATION, seed=13, today=site.today)
        initial_records = list(stream.initial_records())
        preload(site.hsm, site.base / "store", population=POPULATION, seed=13, today=site.today)
        prefecture = PrefectureSim(tls=pki.tls("prefecture"), cs_public_key_der=site.public_key, port=prefecture_port)
        national = NationalSim(tls=pki.tls("national"), cs_public_key_der=site.public_key, port=national_port)
        prefecture.copy.update((r.resident_code, check_item_of(r)) for r in initial_records)
        prefecture.faults.delay_s = 0.02
        await prefecture.start()
        await national.start()
        register = RegisterClient(site.endpoint, pki.tls("register"))
        feeder = Feeder(register, stream, backlog=800)
        register_task: asyncio.Task[None] | None = None
        try:
            await asyncio.to_thread(site.cs.start, ready_timeout_s=WAIT_S)
            register_task = asyncio.create_task(register.run())
            feeder.start()
            await register.wait_acked(300, WAIT_S)
            # The register keeps streaming through the stop and the restart, and reconnects by itself.
            assert await asyncio.to_thread(site.cs.stop, timeout_s=DRAIN_S + 60) == 0
            behind = len([e for e in feeder.sent[: register.acked_through] if isinstance(e, Change)]) - prefecture.receiver.applied
            await asyncio.sleep(0.3)
            await asyncio.to_thread(site.cs.start, ready_timeout_s=WAIT_S)
            prefecture.faults.delay_s = 0.0
            more = register.submitted + 200
            async with asyncio.timeout(WAIT_S):
                while register.connections < 2 or register.acked_through < more:
                    await asyncio.sleep(0.02)
            await feeder.stop()
            await register.wait_acked(register.submitted, WAIT_S)
            changes = [e for e in feeder.sent if isinstance(e, Change)]
            async with asyncio.timeout(WAIT_S):
                while prefecture.receiver.applied < len(changes):
                    await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)  # anything sent twice would arrive now

            assert behind > 0  # the prefecture's remaining notices came from the restarted daemon
            assert register.refused == []
            assert register.gaps == 0  # it sent from where the CS said, never past it
            assert register.connections == 2
            assert prefecture.out_of_order == 0
            assert prefecture.receiver.applied == len(changes)  # every notice applied once
            assert prefecture.receiver.bad_signatures == 0
            cs_items = await site.full_check()
            assert cs_items == expected_items((check_item_of(r) for r in initial_records), feeder.sent)
            assert prefecture.copy == cs_items
        finally:
            await feeder.stop()
            if register_task is not None:
                register_task.cancel()
                await asyncio.gather(register_task, return_exceptions=True)
            assert await asyncio.to_thread(site.cs.stop, timeout_s=DRAIN_S + 60) == 0
            await national.close()
            await prefecture.close()

    asyncio.run(scenario())


@pytest.mark.skipif(os.geteuid() != 0, reason="the refusal of root can only be seen as root")
def test_csd_refuses_to_run_as_root_unless_told_it_is_a_development_run(tmp_path: Path) -> None:
    config = tmp_path / "csd.toml"
    config.write_text("this is not even read\n")
    done = subprocess.run(
        [sys.executable, "-m", "firmware_app.daemon", "--config", str(config)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 6
    assert "refuses to run as root" in done.stderr
    assert "configuration" not in done.stderr, "nothing is read before the refusal"
