"""``cs-demo``, the main job: the CS daemon (``csd``) at work against its peer simulators.

Sets up, under the state directory (wiped first): a SoftHSM2 token with the CS keys, a local PKI
for the links, and a Meguro-sized identity file; starts ``csd`` as its own process, a prefecture
server and a national server; then the ward register streams a working day's changes at a chosen
rate while the demo shows the links doing their work — the prefecture's copy following the file,
a special move-in, the prefecture offline for a while and its backlog draining, a ``kill -9`` of
the daemon and its resumption, a consistency check, and the machine room (a mosquitto broker
started by the demo, a badge entry, a forced door, a camera offline and back, the alarms as they
arrive on MQTT) — and stops the daemon cleanly.  Nothing personal is printed: only counts,
sequence numbers and timings.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import msgspec

from firmware_app.domain.check_item import decode_check_item
from peers.broker import Mosquitto
from peers.consistency import ConsistencyClient
from peers.national import moveout_certificate_of
from peers.register import submit_event
from peers.register_stream import Change
from peers.room_sim import AlarmWatcher, CameraSim, ContactSensorSim, LockSim
from peers.stand import Stand, cs_env, open_stand

MEGURO_RESIDENTS = 280_000


def _say(text: str) -> None:
    print(text, flush=True)


async def _stream(stand: Stand, *, rate: float, seconds: float, label: str) -> None:
    """Submit the register's changes at ``rate`` for ``seconds``, reporting every two seconds."""
    events = list(stand.stream.events(int(rate * seconds)))
    start = time.monotonic()
    next_report = start + 2
    for index, event in enumerate(events):
        submit_event(stand.register, event)
        delay = start + (index + 1) / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if time.monotonic() >= next_report:
            next_report += 2
            _report(stand, label)
    _report(stand, label)


def _report(stand: Stand, label: str) -> None:
    r, p, n = stand.register, stand.prefecture, stand.national
    _say(
        f"  [{label}] register: {r.submitted:,} sent, {r.acked_through:,} acknowledged | "
        f"prefecture: notice {p.last_seq:,} applied, copy {len(p.copy):,} residents | "
        f"card system: {len(n.cards):,} card events, {len(n.destinations):,} destination records"
    )


async def _wait(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


async def _special_move_in(stand: Stand) -> None:
    for event in stand.stream.events(5000):
        submit_event(stand.register, event)
        if isinstance(event, Change) and event.special_move_in:
            break
    else:
        return
    await stand.register.wait_acked(stand.register.submitted - 1, 30)
    record = event.record
    # The move-in was just filed above; show the hand-over on a fresh certificate for the same person.
    cert = moveout_certificate_of(record, planned_moveout_date=stand.today, from_municipality_code="131016")
    await stand.national.send_certificate(msgspec.structs.replace(cert, resident_code=record.resident_code))
    fetched = await stand.register.request_moveout(record.resident_code)
    _say(f"  special move-in: the national server sent a move-out certificate; the register fetched it ({'found' if fetched == cert else 'NOT found'})")


def _backup(stand: Stand) -> bool:
    """``cs-backup backup`` and ``verify`` against the running daemon's store."""
    config, out = stand.base / "csd.toml", stand.base / "backup"
    key = stand.base / "hsm" / "cs-signing-key.der"
    for args in (["backup", "--out", str(out)], ["verify", str(out), "--public-key", str(key)]):
        done = subprocess.run(
            [sys.executable, "-m", "firmware_app.backup_cli", "--config", str(config), *args],
            capture_output=True, text=True, timeout=300, env=cs_env(stand), check=False,
        )
        _say(f"   {(done.stdout or done.stderr).strip()}")
        if done.returncode:
            return False
    return True


_ROOM_CONFIG = """
[room]
offline_hold_s = 2
tick_interval_s = 0.2

[room.mqtt]
port = {port}
client_id = "cs-room-demo"
password_file = "{password_file}"
backoff_initial_s = 0.05
backoff_max_s = 1

[[room.doors]]
name = "server-room"
camera = "mr-cam"

[[room.cameras]]
name = "mr-cam"
door = "server-room"
frigate = "server_room"
onvif = "mr_cam"

[[room.sensors]]
name = "mr-door-contact"
zigbee = "building1/server_room/door"
door = "server-room"

[[room.sensors]]
name = "mr-lock"
zigbee = "building1/server_room/lock"
kind = "lock"
door = "server-room"
"""


async def _machine_room(broker: Mosquitto) -> bool:
    """Door and camera simulators on the demo's broker; csd's alarms printed as they arrive."""
    watch = broker.client_args("cs-room-watch")
    async with (
        AlarmWatcher(broker.host, broker.port, username=watch["username"], password=watch["password"], identifier="demo-alarms") as watcher,
        aiomqtt.Client(**broker.client_args("zigbee2mqtt"), identifier="demo-zigbee") as client,
        aiomqtt.Client(**broker.client_args("frigate"), identifier="demo-frigate") as frigate,
        aiomqtt.Client(**broker.client_args("onvif"), identifier="demo-onvif") as onvif,
        aiomqtt.Client(**watch, identifier="demo-status") as status,
    ):
        watcher.on_alarm = lambda a: _say(f"   alarm {a['state']}: {a['kind']} at {a['source']} (alarm {a['alarm_id']})")
        await status.subscribe("cs-room/status", qos=1)
        async with asyncio.timeout(10):
            async for message in status.messages:
                if message.payload == b"online":
                    break
        contact = ContactSensorSim(client, "building1/server_room/door")
        lock = LockSim(client, "building1/server_room/lock")
        camera = CameraSim(frigate, "server_room", "mr_cam", onvif_client=onvif)
        await contact.availability(True)
        await contact.set_closed(True)
        await camera.status(True)
        await camera.persons(0)
        _say("   a badge at the door's lock (RFID user 3): the door opens, the camera sees one person, the door closes")
        await lock.operate("unlock", user=3, source="rfid")
        await contact.set_closed(False)
        await camera.persons(1)
        await contact.set_closed(True)
        _say("   the person leaves by the inside thumb-turn")
        await lock.operate("manual_unlock", source="manual")
        await contact.set_closed(False)
        await contact.set_closed(True)
        await camera.persons(0)
        await asyncio.sleep(1.0)
        quiet = not watcher.seen
        _say(f"   alarms for that entry and exit: {'none' if quiet else len(watcher.seen)}")
        mark = len(watcher.seen)
        _say("   the door is forced open (no grant, no exit request)")
        t0 = time.perf_counter()
        await contact.set_closed(False)
        at, _ = await watcher.wait_for("door_forced", "door:server-room", "active", after_index=mark)
        _say(f"   ... door_forced on MQTT {1000 * (at - t0):.0f} ms after the contact opened")
        await contact.set_closed(True)
        await watcher.wait_for("door_forced", "door:server-room", "restored", after_index=mark)
        _say("   the camera goes offline (hold time 2 s), then comes back")
        await camera.status(False)
        await watcher.wait_for("camera_offline", "camera:mr-cam", "active", after_index=mark)
        await camera.status(True)
        await watcher.wait_for("camera_offline", "camera:mr-cam", "restored", after_index=mark)
    return quiet


async def _demo(args: argparse.Namespace) -> int:
    base = args.state_dir
    if base.exists():
        shutil.rmtree(base)
    _say(f"setting up under {base}: SoftHSM2 token, link PKI, {args.residents:,} synthetic residents, an MQTT broker …")
    t0 = time.monotonic()
    broker = Mosquitto(base.resolve() / "broker")
    await asyncio.to_thread(broker.start)
    try:
        return await _demo_with(args, base, broker, t0)
    finally:
        await asyncio.to_thread(broker.stop)


async def _demo_with(args: argparse.Namespace, base: Path, broker: Mosquitto, t0: float) -> int:
    async with open_stand(base, population=args.residents, seed=args.seed, extra_config=_ROOM_CONFIG.format(port=broker.port, password_file=broker.password_file("cs-room"))) as stand:
        _say(f"csd is ready (pid {stand.cs.pid}, log {stand.cs.log_path}) after {time.monotonic() - t0:.1f} s")
        _say(f"1. the register streams changes at {args.rate:,.0f}/s; every one is committed durably, then acknowledged")
        await _stream(stand, rate=args.rate, seconds=args.seconds, label="day")

        _say("2. a card holder's special move-in")
        await _special_move_in(stand)

        _say("3. the prefecture goes offline for 3 s: the CS keeps taking changes and queues its notices")
        stand.prefecture.faults.refuse = True
        stand.prefecture.faults.disconnect_after = 1
        await _stream(stand, rate=args.rate, seconds=3, label="prefecture offline")
        stand.prefecture.faults.refuse = False
        _say("   the prefecture is back; the backlog drains in order")

        _say("4. kill -9 of the daemon in the middle of the stream, and a restart")
        feeder = asyncio.create_task(_stream(stand, rate=args.rate, seconds=4, label="crash"))
        await asyncio.sleep(1.5)
        acked = stand.register.acked_through
        await stand.restart(kill=True)
        _say(f"   restarted; the register had {acked:,} acknowledged and resumes where the CS says")
        await feeder
        settled = await _wait(
            lambda: stand.register.acked_through == stand.register.submitted
            and stand.prefecture.last_seq == stand.register.count("identity_change"),
            60,
        )
        _report(stand, "settled")

        _say("5. consistency check by the prefecture: full signed check data, then a range-digest exchange")
        client = ConsistencyClient(stand.endpoint, stand.pki.tls("prefecture"), stand.public_key)
        t1 = time.monotonic()
        full = await client.full_check()
        full_s = time.monotonic() - t1
        cs_items = {code: decode_check_item(item) for code, item in full.items.items()}
        same = cs_items == stand.prefecture.copy
        _say(f"   full check data: {len(full.items):,} residents, {full.bytes_in / 1e6:.1f} MB, signature verified, in {full_s:.1f} s")
        _say(f"   the prefecture's copy equals the CS file: {'yes' if same else 'NO'}")
        drifted = dict(stand.prefecture.copy)
        for code in sorted(drifted)[:: max(1, len(drifted) // 3)][:3]:
            drifted[code] = msgspec.structs.replace(drifted[code], address=drifted[code].address + "（誤）")
        found = await client.reconcile(drifted)
        _say(
            f"   3 residents planted as different in a copy: the exchange found {len(found.differences)} in "
            f"{found.round_trips} round trips, moving {found.bytes_moved / 1e3:.1f} kB "
            f"({found.bytes_moved / full.bytes_in:.2%} of the full check data)"
        )
        _say(f"   notices applied out of order: {stand.prefecture.out_of_order}; updates refused: {len(stand.register.refused)}")
        _say("6. a backup while the daemon runs, signed by the HSM key, then verified")
        backed_up = await asyncio.to_thread(_backup, stand)
        _say("7. the machine room: door and camera events over MQTT, alarms raised, published and restored")
        try:
            room_ok = await _machine_room(broker)
        except TimeoutError:
            _say("   an expected alarm did not arrive in time")
            room_ok = False
        ok = settled and same and backed_up and room_ok and stand.prefecture.out_of_order == 0 and stand.register.resume_regressions == 0
    _say(f"csd stopped cleanly; all checks {'passed' if ok else 'FAILED'}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cs-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, default=Path("state/demo"), help="wiped and rebuilt on every run")
    parser.add_argument("--residents", type=int, default=MEGURO_RESIDENTS)
    parser.add_argument("--rate", type=float, default=500.0, help="register changes per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the main stream")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        return asyncio.run(_demo(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
