"""An in-process CS (the daemon on the test's SoftHSM2 session) with its peer simulators on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

from firmware_app.clock import JST, ManualClock
from firmware_app.config import load_config
from firmware_app.daemon import Daemon
from firmware_app.domain.check_item import CheckItem, check_item_of
from firmware_app.links.outbound import Endpoint
from firmware_app.domain.record import IdentityRecord
from firmware_app.service.identity_file import IdentityFile
from firmware_app.service.keyring import Keyring
from hsm.config import HsmConfig
from hsm.labels import SIGNING_LABEL
from hsm.token import Token
from peers.national import NationalSim
from peers.prefecture import PrefectureSim
from peers.register import RegisterClient
from peers.rig import Pki, free_port, write_config
from storage import layout
from storage.store import Store

TODAY = "20261126"
WAIT_S = 30.0


def manual_clock() -> ManualClock:
    return ManualClock(datetime.datetime(2026, 11, 26, 9, tzinfo=JST))


@dataclass
class Rig:
    daemon: Daemon
    register: RegisterClient
    prefecture: PrefectureSim
    national: NationalSim
    endpoint: Endpoint
    pki: Pki

    def cs_items(self) -> dict[str, CheckItem]:
        """The CS file's current residents as the nine items (what the prefecture must hold)."""
        assert self.daemon.store is not None and self.daemon.keyring is not None
        identity = IdentityFile(self.daemon.store, self.daemon.keyring, manual_clock())
        with self.daemon.store.read() as r:
            codes = [layout.unpack_code(k) for k, _ in r.items(layout.IDENTITY)]
        items = {}
        for code in codes:
            current = identity.get_blocking(code)
            assert current is not None
            items[code] = check_item_of(current.record)
        return items

    async def settle(self, *, timeout_s: float = WAIT_S) -> None:
        """Wait until the register's updates are acknowledged and both outboxes are drained."""
        await self.register.wait_acked(self.register.submitted, timeout_s)
        gateway = self.daemon.gateway
        assert gateway is not None
        async with asyncio.timeout(timeout_s):
            while await gateway.outbox_depth("prefecture") or await gateway.outbox_depth("card_system"):
                await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running_cs(
    tmp_path: Path,
    pki: Pki,
    hsm_config: HsmConfig,
    token: Token,
    *,
    preload: Iterable[IdentityRecord] = (),
    extra: str = "",
    start_register: bool = True,
) -> AsyncIterator[Rig]:
    """The daemon, a prefecture and a national server, and the register connected.  ``preload``
    is migrated into the file first (bulk load) and is in the prefecture's and national copies."""
    public_key = token.public_key_der_blocking(SIGNING_LABEL)
    prefecture = PrefectureSim(tls=pki.tls("prefecture"), cs_public_key_der=public_key)
    national = NationalSim(tls=pki.tls("national"), cs_public_key_der=public_key)
    preload = list(preload)
    if preload:
        store = Store(tmp_path / "store")
        try:
            keyring = Keyring(token, store, manual_clock())
            keyring.open_blocking()
            IdentityFile(store, keyring, manual_clock()).load_blocking(preload)
        finally:
            store.close()
        prefecture.copy.update((r.resident_code, check_item_of(r)) for r in preload)
        national.know(preload)
    await prefecture.start()
    await national.start()
    listen_port = free_port()
    config_path = write_config(
        tmp_path / "csd.toml",
        store=tmp_path / "store",
        hsm=hsm_config,
        pki=pki,
        listen_port=listen_port,
        prefecture_port=prefecture.port,
        national_port=national.port,
        extra="[links]\nbackoff_initial_s = 0.02\nbackoff_max_s = 0.2\n" + extra,
    )
    daemon = Daemon(load_config(config_path), clock=manual_clock(), token=token)
    await daemon.start()
    endpoint = Endpoint("127.0.0.1", listen_port, "localhost")
    register = RegisterClient(endpoint, pki.tls("register"))
    register_task = asyncio.create_task(register.run()) if start_register else None
    national.connect_to_cs(endpoint)
    try:
        yield Rig(daemon, register, prefecture, national, endpoint, pki)
    finally:
        if register_task is not None:
            register_task.cancel()
            await asyncio.gather(register_task, return_exceptions=True)
        await national.close()
        await daemon.stop()
        await prefecture.close()
