"""Two door controllers on one line (OSDP is multi-drop): each online with its own key, events
attributed to the right reader and door, one falling silent takes only itself offline."""

from __future__ import annotations

import asyncio
import secrets

from firmware_app.room.events import DeviceOffline, DeviceOnline, DoorContact, ReaderKeyMismatch
from firmware_app.room.inbox import EventInbox
from firmware_app.room.osdp.panel import OsdpPanel
from firmware_app.room.osdp.settings import load_osdp_config
from peers.osdp_door import DoorController, PtyPair


def write_key_file(path, key: bytes) -> None:
    path.write_text(key.hex())
    path.chmod(0o600)


def test_two_readers_share_the_line(tmp_path, run):
    keys = {"mr-in": secrets.token_bytes(16), "side-in": secrets.token_bytes(16), "spare": secrets.token_bytes(16)}
    for name, key in keys.items():
        write_key_file(tmp_path / f"{name}.scbk", key)
    bus = PtyPair()
    main = DoorController(bus, address=101, scbk=keys["mr-in"])
    side = DoorController(bus, address=102, scbk=keys["side-in"])
    wrong = DoorController(bus, address=103, scbk=secrets.token_bytes(16))  # not the configured key
    readers = [
        {"name": "mr-in", "door": "server-room", "address": 101, "key_file": "mr-in.scbk"},
        {"name": "side-in", "door": "side-door", "address": 102, "key_file": "side-in.scbk"},
        {"name": "spare", "door": "side-door", "address": 103, "key_file": "spare.scbk"},
    ]
    config = load_osdp_config({"device": bus.slave_path, "offline_after_s": 1.0, "retry_interval_s": 0.5, "readers": readers}, tmp_path)

    async def scenario():
        inbox = EventInbox()
        panel = OsdpPanel(config, inbox)
        for sim in (main, side, wrong):
            sim.start()
        await panel.start()

        async def take(n):
            return [await asyncio.wait_for(inbox.get(), 10) for _ in range(n)]

        try:
            # On a loaded machine a reader may miss its first handshake and be retried: wait for
            # the state, not for an exact first sequence.
            wanted = {DeviceOnline("reader", "mr-in"), DeviceOnline("reader", "side-in"), ReaderKeyMismatch("spare")}
            seen = []
            async with asyncio.timeout(30):
                while not wanted <= set(seen) or {r["reader"]: r["state"] for r in panel.status()}["side-in"] != "online":
                    seen += await take(1)
            assert DeviceOnline("reader", "spare") not in seen
            assert all(isinstance(e, (DeviceOnline, DeviceOffline, ReaderKeyMismatch)) for e in seen)
            assert {r["reader"]: r["state"] for r in panel.status()} == {"mr-in": "online", "side-in": "online", "spare": "key_mismatch"}
            side.door(True)
            main.door(False)
            assert set(await take(2)) == {DoorContact("side-door", True), DoorContact("server-room", False)}
            side.go_silent()
            assert await take(1) == [DeviceOffline("reader", "side-in")]
            main.door(True)
            assert await take(1) == [DoorContact("server-room", True)]
            assert {r["reader"]: r["state"] for r in panel.status()} == {"mr-in": "online", "side-in": "offline", "spare": "key_mismatch"}
            side.come_back()
            assert await take(1) == [DeviceOnline("reader", "side-in")]
        finally:
            await panel.stop()
            for sim in (main, side, wrong):
                sim.stop()
            bus.close()

    run(scenario())
