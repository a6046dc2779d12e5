"""OSDP test rig: a real libosdp control panel (our OsdpPanel) and a real libosdp peripheral (the
door-controller simulator) on the two sides of a pty pair, events collected from the room inbox."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from firmware_app.room.inbox import EventInbox
from firmware_app.room.osdp.panel import OsdpPanel
from firmware_app.room.osdp.settings import OsdpConfig, load_osdp_config
from peers.osdp_door import DoorController, PtyPair

#: Every wait in these tests is bounded by this (generous for a busy 2-core machine).
WAIT_S = 10.0


def write_key_file(path: Path, key: bytes) -> Path:
    path.write_text(key.hex() + "\n")
    os.chmod(path, 0o600)
    return path


@dataclass
class Rig:
    """One panel, one simulated door controller, one inbox: built inside the running loop."""

    tmp_path: Path
    key: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    pty: PtyPair = field(default_factory=PtyPair)

    def __post_init__(self) -> None:
        self.key_file = write_key_file(self.tmp_path / "mr-in.scbk", self.key)
        self.sim = DoorController(self.pty, address=101, scbk=self.key)
        self.config: OsdpConfig = load_osdp_config(
            {
                "device": self.pty.slave_path,
                "offline_after_s": 1.0,
                "retry_interval_s": 0.5,
                "readers": [{"name": "mr-in", "door": "server-room", "address": 101, "key_file": "mr-in.scbk"}],
            },
            self.tmp_path,
        )
        self.inbox: EventInbox | None = None
        self.panel: OsdpPanel | None = None

    async def start(self, sink_factory: Callable[[EventInbox], object] | None = None) -> None:
        self.inbox = EventInbox()
        sink = self.inbox if sink_factory is None else sink_factory(self.inbox)
        self.panel = OsdpPanel(self.config, sink)  # type: ignore[arg-type]
        await self.panel.start()

    async def next(self, timeout_s: float = WAIT_S) -> object:
        """The next room event (fails the test if none comes within ``timeout_s``)."""
        assert self.inbox is not None
        return await asyncio.wait_for(self.inbox.get(), timeout_s)

    async def wait_online(self) -> None:
        """Until the reader is online; on a loaded machine a first handshake may be missed and
        retried, so only offline reports may come first."""
        from firmware_app.room.events import DeviceOffline, DeviceOnline

        seen = await self.until(lambda e: e == DeviceOnline("reader", "mr-in"), timeout_s=20)
        assert all(e == DeviceOffline("reader", "mr-in") for e in seen[:-1]), seen

    async def until(self, predicate: Callable[[object], bool], timeout_s: float = WAIT_S) -> list[object]:
        """Events up to and including the first one matching ``predicate``."""
        seen = []
        async with asyncio.timeout(timeout_s):
            while True:
                ev = await self.next(timeout_s)
                seen.append(ev)
                if predicate(ev):
                    return seen

    async def quiet(self, duration_s: float) -> list[object]:
        """Every event that arrives within ``duration_s``."""
        seen = []
        loop = asyncio.get_running_loop()
        end = loop.time() + duration_s
        while (left := end - loop.time()) > 0:
            try:
                seen.append(await asyncio.wait_for(self.next(), left))
            except TimeoutError:
                break
        return seen

    async def stop(self) -> None:
        if self.panel is not None:
            await self.panel.stop()
        self.sim.stop()
        self.pty.close()


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    """A fresh rig (start it inside the test's event loop)."""
    return Rig(tmp_path)


@pytest.fixture
def run() -> Callable[..., object]:
    """Run one test coroutine in a fresh event loop, bounded overall."""

    def _run(coro) -> object:
        async def bounded():
            async with asyncio.timeout(90):
                return await coro

        return asyncio.run(bounded())

    return _run
