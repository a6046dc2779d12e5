"""csd with a ``[room]`` table: the room service starts after the links with a real mosquitto,
takes a real payload, reports through the watchdog, and stops before the store closes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hsm.config import HsmConfig
from hsm.token import Token
from peers.broker import Mosquitto
from peers.rig import Pki
from tests.daemon.rig import running_cs

ROOM = """
[room]
offline_hold_s = 0

[room.mqtt]
port = {port}
client_id = "csd-room-test"
password_file = "{password_file}"
backoff_initial_s = 0.05
backoff_max_s = 0.5

[[room.doors]]
name = "server-room"

[[room.cameras]]
name = "mr-cam"
door = "server-room"
frigate = "server_room"

[[room.sensors]]
name = "mr-door-contact"
zigbee = "building1/server_room/door"
door = "server-room"
"""


def test_csd_runs_the_machine_room(tmp_path: Path, pki: Pki, hsm_config: HsmConfig, token: Token) -> None:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()

    async def scenario() -> None:
        async with running_cs(tmp_path, pki, hsm_config, token, extra=ROOM.format(port=broker.port, password_file=broker.password_file("cs-room")), start_register=False) as rig:
            room = rig.daemon.room
            assert room is not None and room.mqtt is not None
            async with asyncio.timeout(20):
                while not room.mqtt.connected:
                    await asyncio.sleep(0.02)
                await asyncio.to_thread(broker.pub, "zigbee2mqtt/building1/server_room/door", b'{"contact": true}')
                await asyncio.to_thread(broker.pub, "zigbee2mqtt/building1/server_room/door", b'{"contact": false}')
                await asyncio.to_thread(broker.pub, "frigate/server_room/status/detect", b"offline")
                while {a["kind"] for a in room.open_alarms()} != {"door_forced", "camera_offline"}:
                    await asyncio.sleep(0.02)
                assert rig.daemon.watchdog is not None
                verdict = await rig.daemon.watchdog.round()
            assert verdict.ping and "camera mr-cam offline" in verdict.status
        assert rig.daemon.room is None and rig.daemon.store is None

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        broker.stop()
