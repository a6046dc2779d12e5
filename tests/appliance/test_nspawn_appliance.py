"""The appliance under real systemd: a Debian 12 root (image/rootfs.sh, cached) with the project
installed (image/install-app.sh) and staged as a site would have it, booted with
``systemd-nspawn -b`` so that systemd 252 is PID 1.  The register, the prefecture and the national
server are the simulators, on this machine's loopback (the container shares the network).

Checked here: the shipped unit starts csd and reaches ready; its sandbox holds (a probe under a
copy of the unit's sandbox); the journal gets structured fields; a stop during a stream drains
cleanly and loses nothing acknowledged; a hung event loop is killed by systemd's watchdog and
restarted; and nothing the daemon, systemd or the probe printed carries personal data of the
synthetic population.  Not checkable in nspawn (../shared/reference/appliance.md §1c):
DeviceAllow= and IPAddressAllow= (not enforced in containers; the qemu boot test of image/ runs
the unit in a VM).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from firmware_app.domain.check_item import check_item_of
from firmware_app.journal import message_id
from firmware_app.links.outbound import Endpoint
from peers.appliance_root import install_sandbox_probe, stage_root
from peers.national import NationalSim
from peers.prefecture import PrefectureSim
from peers.register import RegisterClient, submit_event
from peers.register_stream import Change, RegisterStream
from peers.rig import free_port
from peers.stand import expected_items
from tests.appliance.container import Container, build_base_root, install_app, nspawn_available, overlay_root

pytestmark = [pytest.mark.slow, pytest.mark.skipif(nspawn_available() is not None, reason=str(nspawn_available()))]

UNIT = "cs-appliance.service"
POPULATION = 2_000
SEED = 41
HERE = Path(__file__).resolve().parent
WATCHDOG_S = 3
TEST_DROPIN = f"""# test-only: a short watchdog period and restart delay; the hang hook on PYTHONPATH
[Service]
WatchdogSec={WATCHDOG_S}s
RestartSec=1s
Environment=PYTHONPATH=/opt/cs-test
"""


class LoopThread:
    """The simulators' event loop, on its own thread for the whole module."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="simulators", daemon=True)
        self._thread.start()

    def call(self, coro, timeout_s: float = 120.0):  # type: ignore[no-untyped-def]
        future: Future[object] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout_s)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@dataclass
class Site:
    container: Container
    loop: LoopThread
    register: RegisterClient
    prefecture: PrefectureSim
    national: NationalSim
    stream: RegisterStream
    initial: list
    changes: list
    today: str
    tasks: list = field(default_factory=list)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = build_base_root()
    work = tmp_path_factory.mktemp("appliance")
    today = datetime.date.today().strftime("%Y%m%d")
    with overlay_root(base, work) as root:
        install_app(root)
        listen_port, prefecture_port, national_port = free_port(), free_port(), free_port()
        staged = stage_root(
            root, work / "stage", population=POPULATION, seed=SEED, today=today, listen_port=listen_port,
            prefecture_port=prefecture_port, national_port=national_port,
        )
        dropin = root / "etc/systemd/system" / f"{UNIT}.d"
        dropin.mkdir(parents=True)
        (dropin / "50-test.conf").write_text(TEST_DROPIN)
        (root / "opt/cs-test").mkdir(parents=True)
        shutil.copy(HERE / "block_loop.py", root / "opt/cs-test/sitecustomize.py")

        loop = LoopThread()
        pki = staged.pki
        prefecture = PrefectureSim(tls=pki.tls("prefecture"), cs_public_key_der=staged.public_key, port=prefecture_port)
        national = NationalSim(tls=pki.tls("national"), cs_public_key_der=staged.public_key, port=national_port)
        stream = RegisterStream(population=POPULATION, seed=SEED, today=today)
        initial = [check_item_of(r) for r in stream.initial_records()]
        prefecture.copy.update((item.resident_code, item) for item in initial)
        register = RegisterClient(Endpoint("127.0.0.1", listen_port, "localhost"), pki.tls("register"))

        async def start_peers() -> None:
            await prefecture.start()
            await national.start()
            register_task = asyncio.get_running_loop().create_task(register.run())
            site.tasks.append(register_task)

        container = Container(root, work / "console.log")
        site = Site(container, loop, register, prefecture, national, stream, initial, [], today)
        loop.call(start_peers())
        container.boot()
        try:
            yield site
        finally:
            container.poweroff()

            async def stop_peers() -> None:
                for task in site.tasks:
                    task.cancel()
                await national.close()
                await prefecture.close()

            loop.call(stop_peers())
            loop.close()


def _active(shown: dict[str, str]) -> bool:
    return shown.get("ActiveState") == "active" and shown.get("SubState") == "running"


def _feed(site: Site, count: int) -> int:
    """Submit ``count`` more events of the stream; returns the register's sequence after them."""
    events = list(site.stream.events(count))
    site.changes.extend(e for e in events if isinstance(e, Change))

    async def submit() -> None:
        for event in events:
            submit_event(site.register, event)

    site.loop.call(submit())
    return site.register.submitted


def _wait_drained(site: Site, timeout_s: float = 120.0) -> None:
    async def drained() -> None:
        async with asyncio.timeout(timeout_s):
            while site.register.acked_through < site.register.submitted or site.prefecture.last_seq < len(site.changes):
                await asyncio.sleep(0.05)

    site.loop.call(drained(), timeout_s + 5)


# -- the tests, in order: they share one booted root -----------------------------------------------


def test_unit_starts_and_reaches_ready(site: Site) -> None:
    c = site.container
    c.run("systemctl", "start", UNIT, timeout_s=120)  # Type=notify: returns once READY=1 arrived
    shown = c.show(UNIT, "ActiveState", "SubState", "Type", "NotifyAccess", "WatchdogUSec", "StatusText", "User", "NRestarts", "MainPID")
    assert _active(shown), shown
    assert shown["Type"] == "notify" and shown["NotifyAccess"] == "main"
    assert shown["WatchdogUSec"] == f"{WATCHDOG_S}s"
    assert shown["User"] == "cs-appliance"
    assert shown["NRestarts"] == "0"
    c.wait_for(UNIT, lambda s: "all health checks pass" in s.get("StatusText", ""), "healthy", 30, ["StatusText"])
    journal = c.journal(UNIT)
    order = [journal.index(mark) for mark in ("storage open", "HSM logged in", "ready: listening", "Started cs-appliance.service")]
    assert order == sorted(order), journal[-3000:]


def test_stream_flows_through_the_booted_appliance(site: Site) -> None:
    _feed(site, 3_000)
    _wait_drained(site)
    assert site.register.refused == []
    assert site.prefecture.out_of_order == 0
    assert site.prefecture.copy == expected_items(site.initial, site.changes)


def test_the_sandbox_holds(site: Site) -> None:
    c = site.container
    install_sandbox_probe(c.root)
    c.run("systemctl", "daemon-reload")
    c.run("systemctl", "start", "cs-sandbox-probe.service", timeout_s=60)
    lines = [line for line in c.journal("cs-sandbox-probe.service", output="cat").splitlines() if line.startswith("SANDBOX-PROBE ")]
    assert lines, c.journal("cs-sandbox-probe.service")
    got = json.loads(lines[-1].removeprefix("SANDBOX-PROBE "))

    # Read-only system (ProtectSystem=strict), writable state and private /tmp, no homes.
    for path in ("write_usr", "write_etc", "write_opt", "write_root"):
        assert got[path] == "EROFS", (path, got[path])
    assert got["write_state"] == "allowed" and got["write_tmp"] == "allowed"
    assert got["list_home"] in ("EACCES", "EPERM"), got["list_home"]
    # The address families it is limited to.
    assert got["af_unix"] == got["af_inet"] == got["af_inet6"] == "allowed"
    assert got["af_packet"] == got["af_netlink"] == "EAFNOSUPPORT"
    # The system calls it is limited to (SystemCallFilter, RestrictNamespaces, MemoryDenyWriteExecute).
    for call in ("mount", "reboot", "swapon", "kexec_load", "init_module", "raise_rlimit", "unshare_user", "wx_memory"):
        assert got[call] == "EPERM", (call, got[call])
    # No privileges: not root, no new privileges, seccomp filter on, no capabilities at all.
    assert got["uid"] != 0
    assert got["no_new_privs"] == "1" and got["seccomp"] == "2"
    assert int(got["cap_eff"], 16) == 0 and int(got["cap_bnd"], 16) == 0
    # Private /dev: pseudo devices only (the serial line and USB HSM are bound when present).
    assert not {d for d in got["devices"] if re.match(r"(sd|vd|nvme|mem$|kmem|port$|tty[0-9])", d)}, got["devices"]
    # ProtectProc=invisible: only its own processes are visible.
    assert got["pids_visible"] <= 2
    # Secrets come as credentials, never in the environment.
    assert not [n for n in got["environment_names"] if re.search(r"PIN|KEY|SECRET|PASS|TOKEN", n)]
    assert "CREDENTIALS_DIRECTORY" in got["environment_names"]


def test_daemon_process_is_confined_and_secrets_are_credentials(site: Site) -> None:
    c = site.container
    pid = c.show(UNIT, "MainPID")["MainPID"]
    status = c.run("cat", f"/proc/{pid}/status").stdout
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M) and re.search(r"^Seccomp:\s+2$", status, re.M)
    assert re.search(r"^CapEff:\s+0+$", status, re.M)
    environ = c.run("cat", f"/proc/{pid}/environ").stdout.split("\0")
    names = {entry.split("=", 1)[0] for entry in environ if entry}
    assert "CREDENTIALS_DIRECTORY" in names
    assert not [n for n in names if re.search(r"PIN|KEY|SECRET|PASS", n)]
    creds = c.run("ls", "-ln", "/run/credentials/cs-appliance.service").stdout
    assert "hsm-pin" in creds and "cs-key.pem" in creds
    # Files the daemon created: 0600 / 0700, owned by its user.
    listing = c.run("find", "/var/lib/cs-appliance/store", "-printf", "%m %u %p\n").stdout.splitlines()
    assert listing and all(line.split()[0] in ("600", "700") and line.split()[1] == "cs-appliance" for line in listing), listing
    limits = c.run("cat", f"/proc/{pid}/limits").stdout
    assert re.search(r"^Max core file size\s+0\s+0\s", limits, re.M)


CSCTL = "/opt/cs-appliance/venv/bin/csctl"
ADMIN_PASSWORD = "synthetic-Pw-for-the-2026-test"  # synthetic, test-only


def test_console_bootstrap_and_group_gate_under_private_users(site: Site) -> None:
    """The first security admin is made with csd stopped, as the service user with the PIN as a
    credential (``systemd-run``, as docs/console.md says); then, with csd under PrivateUsers=yes,
    an operator in the console group logs in and one outside it is refused by connect()."""
    c = site.container
    c.run("systemctl", "stop", UNIT, timeout_s=90)
    made = c.run(
        "systemd-run", "--wait", "--pipe", "--quiet", "--service-type=exec",
        "-p", "User=cs-appliance", "-p", "Group=cs-appliance", "-p", "StateDirectory=cs-appliance",
        "-p", "LoadCredential=hsm-pin:/etc/cs-appliance/credentials/hsm-pin",
        CSCTL, "--password-stdin", "bootstrap-admin", "--config", "/etc/cs-appliance/csd.toml", "admin",
        input_text=ADMIN_PASSWORD + "\n", check=False, timeout_s=120,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    c.run("systemctl", "start", UNIT, timeout_s=120)
    journal = c.journal(UNIT)
    assert "is not mapped in this user namespace" in journal, journal[-2000:]
    c.run("useradd", "--no-create-home", "--groups", "cs-console", "op-member")
    c.run("useradd", "--no-create-home", "op-outsider")
    member = c.run(
        "runuser", "-u", "op-member", "--", CSCTL, "--user", "admin", "--password-stdin", "--json", "whoami",
        input_text=ADMIN_PASSWORD + "\n", check=False, timeout_s=60,
    )
    assert member.returncode == 0, member.stdout + member.stderr
    assert json.loads(member.stdout)["operator"] == "admin"
    outsider = c.run(
        "runuser", "-u", "op-outsider", "--", CSCTL, "--user", "admin", "--password-stdin", "whoami",
        input_text=ADMIN_PASSWORD + "\n", check=False, timeout_s=60,
    )
    assert outsider.returncode == 3, outsider.stdout + outsider.stderr
    assert ADMIN_PASSWORD not in c.journal(None, output="export") + member.stdout + outsider.stdout + outsider.stderr


ROOM_TOML = """
[room]
offline_hold_s = 60

[room.mqtt]
host = "127.0.0.1"
port = {port}
client_id = "cs-room"
username = "cs-room"
password_file = "${{CREDENTIALS_DIRECTORY}}/mqtt-password"

[[room.doors]]
name = "server-room"

[[room.sensors]]
name = "mr-door-contact"
zigbee = "building1/server_room/door"
kind = "contact"
door = "server-room"
"""


def _contact(closed: bool) -> str:
    return json.dumps({"battery": 90, "battery_low": False, "contact": closed, "linkquality": 150, "tamper": False, "voltage": 3000})


def test_machine_room_on_the_appliance_broker(site: Site, tmp_path: Path) -> None:
    """cs-room-broker.service (the shipped mosquitto unit and configuration, passwords as a
    credential) and csd with the room drop-in: a door contact opening with no grant, published by
    the Zigbee bridge's account, comes back as a retained door_forced alarm."""
    c = site.container
    port = free_port()
    passwords = {account: secrets.token_hex(12) for account in ("cs-room", "zigbee2mqtt", "cs-room-watch")}
    passwd = tmp_path / "passwd"
    passwd.touch(mode=0o600)
    for account, password in passwords.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), account, password], check=True, timeout=10, capture_output=True)
    creds = c.root / "etc/cs-appliance/credentials"
    shutil.copy(passwd, creds / "mosquitto-passwd")
    (creds / "mqtt-password").write_text(passwords["cs-room"] + "\n")
    for name in ("mosquitto-passwd", "mqtt-password"):
        (creds / name).chmod(0o600)
    conf = c.root / "etc/cs-appliance/mosquitto/cs-room.conf"
    conf.write_text(re.sub(r"^listener .*$", f"listener {port} 127.0.0.1", conf.read_text(), flags=re.M))
    config = c.root / "etc/cs-appliance/csd.toml"
    config.write_text(config.read_text() + ROOM_TOML.format(port=port))
    dropin = c.root / "etc/systemd/system" / f"{UNIT}.d"
    shutil.copy(c.root / "usr/share/doc/cs-appliance/room.conf.example", dropin / "room.conf")
    c.run("systemctl", "daemon-reload")
    c.run("systemctl", "start", "cs-room-broker.service", timeout_s=60)
    assert c.show("cs-room-broker.service", "ActiveState")["ActiveState"] == "active"
    c.run("systemctl", "restart", UNIT, timeout_s=120)
    status = c.wait_for(UNIT, lambda s: "machine room" not in s.get("StatusText", "broker"), "up with the room", 60, ["StatusText"])
    login = ["-h", "127.0.0.1", "-p", str(port), "-q", "1"]
    watcher = subprocess.Popen(
        ["mosquitto_sub", *login, "-u", "cs-room-watch", "-P", passwords["cs-room-watch"], "-t", "cs-room/alarm/#", "-v", "-W", "60"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        topic = "zigbee2mqtt/building1/server_room/door"
        bridge = ["-u", "zigbee2mqtt", "-P", passwords["zigbee2mqtt"], "-t", topic]
        subprocess.run(["mosquitto_pub", *login, *bridge, "-m", _contact(True)], check=True, timeout=20)
        site.loop.call(asyncio.sleep(1.0))
        subprocess.run(["mosquitto_pub", *login, *bridge, "-m", _contact(False)], check=True, timeout=20)
        seen = ""
        for _ in range(200):
            line = watcher.stdout.readline() if watcher.stdout else ""
            if not line:
                break
            seen += line
            if "door_forced" in line:
                break
        assert "door_forced" in seen, (seen, status, c.journal(UNIT)[-2000:])
    finally:
        watcher.kill()
        watcher.wait(10)
    journal = c.journal(UNIT)
    assert "room alarm raised: door_forced" in journal, journal[-2000:]
    assert not any(p in c.journal(None, output="export") for p in passwords.values())


def test_journal_entries_are_structured(site: Site) -> None:
    c = site.container
    entries = [json.loads(line) for line in c.journal(UNIT, output="json").splitlines() if line.startswith("{")]
    from_csd = [e for e in entries if e.get("SYSLOG_IDENTIFIER") == "csd"]
    ready = [e for e in from_csd if e.get("MESSAGE_ID") == message_id("csd.ready")]
    assert len(ready) >= 1, [e.get("MESSAGE") for e in from_csd][:20]
    assert ready[0]["PRIORITY"] == "6" and ready[0]["CS_EVENT"] == "csd.ready"
    assert all("MESSAGE_ID" in e and "CS_EVENT" in e for e in from_csd), "every csd line carries its event kind"
    assert not [e for e in from_csd if "CODE_ARGS" in e or "EXCEPTION_INFO" in e]
    warnings = [e for e in from_csd if e.get("CS_EVENT") == "csd.memory_unlocked"]
    assert all(e["PRIORITY"] == "4" for e in warnings)


def test_stop_during_a_stream_drains_cleanly_and_loses_nothing(site: Site) -> None:
    c = site.container
    target = _feed(site, 4_000)
    site.loop.call(asyncio.sleep(0.3))
    acked_at_stop = site.register.acked_through
    c.run("systemctl", "stop", UNIT, timeout_s=90)
    shown = c.show(UNIT, "ActiveState", "Result", "ExecMainStatus", "ExecMainCode")
    assert shown["ActiveState"] == "inactive" and shown["Result"] == "success" and shown["ExecMainStatus"] == "0", shown
    journal = c.journal(UNIT)
    assert "csd: stopped" in journal or re.search(r"csd\[\d+\]: stopped", journal), journal[-2000:]
    assert "took longer than" not in journal
    c.run("systemctl", "start", UNIT, timeout_s=120)
    _wait_drained(site)
    assert site.register.acked_through == target >= acked_at_stop
    assert site.register.resume_regressions == 0, "an acknowledged update was lost across the stop"
    assert site.prefecture.out_of_order == 0
    assert site.prefecture.copy == expected_items(site.initial, site.changes), "each change applied once, in order"


def test_a_hung_event_loop_is_killed_by_the_watchdog_and_restarted(site: Site) -> None:
    c = site.container
    before = c.show(UNIT, "MainPID", "NRestarts")
    c.run("systemctl", "kill", "--kill-who=main", "--signal=SIGRTMIN+4", UNIT)
    after = c.wait_for(
        UNIT,
        lambda s: s.get("NRestarts") == str(int(before["NRestarts"]) + 1) and _active(s) and s.get("MainPID") != before["MainPID"],
        "restarted by the watchdog",
        WATCHDOG_S * 4 + 60,
        ["NRestarts", "ActiveState", "SubState", "MainPID"],
    )
    journal = c.journal(UNIT)
    assert "Watchdog timeout" in journal, journal[-3000:]
    assert "Failed with result 'watchdog'" in journal
    assert after["NRestarts"] == "1"
    # And it serves again after the restart.
    _feed(site, 500)
    _wait_drained(site)
    assert site.prefecture.copy == expected_items(site.initial, site.changes)


def test_nothing_printed_carries_personal_data(site: Site) -> None:
    """Every line systemd, csd and the probe wrote to the journal or the console, scanned for the
    names, addresses and individual numbers of the synthetic population and of the stream."""
    c = site.container
    text = c.journal(None, output="export") + c.journal(None, output="verbose") + c.console()
    records = list(RegisterStream(population=POPULATION, seed=SEED, today=site.today).initial_records())
    records += [change.record for change in site.changes]
    needles: set[str] = set()
    for r in records:
        for value in (r.name_kanji, r.name_kana, r.address, r.individual_number, r.resident_code):
            if value and len(value) >= 4:
                needles.add(value)
    assert len(needles) > 3 * POPULATION
    found = sorted(n for n in needles if n in text)
    assert not found, f"{len(found)} personal values in the output"
    # No 12-digit number (the individual number's shape) anywhere in csd's own lines, other than
    # the time part of an alarm ID (…T112643077048-0001: hhmmss and microseconds).
    csd_lines = "\n".join(line for line in c.journal(UNIT, output="cat").splitlines())
    assert not re.search(r"(?<![\dT])\d{12}(?!\d)", csd_lines)
