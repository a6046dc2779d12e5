"""A test stand: a CS daemon in its own process, with a prefecture, a national server and a
register on loopback TLS, all set up from nothing under one directory.  Used by the demo, the
crash tests and the link benchmark."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from firmware_app.domain.check_item import CheckItem, check_item_of
from firmware_app.links.outbound import Endpoint
from peers.cs_process import CsProcess, preload_store, provision_cs_token, token_env
from peers.national import NationalSim
from peers.prefecture import PrefectureSim
from peers.register import RegisterClient
from peers.register_stream import Change, RegisterStream
from peers.rig import Pki, free_port, make_pki, write_config

__all__ = ["Stand", "cs_env", "expected_items", "open_stand"]


@dataclass
class Stand:
    """Everything around one CS; ``stream`` continues the population the CS was loaded with."""

    base: Path
    cs: CsProcess
    pki: Pki
    endpoint: Endpoint
    public_key: bytes
    prefecture: PrefectureSim
    national: NationalSim
    register: RegisterClient
    stream: RegisterStream
    today: str
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def restart(self, *, kill: bool) -> None:
        """Kill -9 (or stop) the daemon and start it again on the same state."""
        if kill:
            await asyncio.to_thread(self.cs.kill)
        else:
            await asyncio.to_thread(self.cs.stop)
        await asyncio.to_thread(self.cs.start)


def cs_env(stand: Stand) -> dict[str, str]:
    """The environment a command needs to use the stand's token (its SoftHSM2 configuration)."""
    return token_env(stand.cs.hsm)


def expected_items(initial: Iterable[CheckItem], changes: Iterable[Change]) -> dict[str, CheckItem]:
    """The nine items of every resident after applying ``changes``, each once, in order."""
    items = {item.resident_code: item for item in initial}
    for change in changes:
        if change.op == "remove":
            items.pop(change.record.resident_code, None)
        else:
            items[change.record.resident_code] = check_item_of(change.record)
    return items


@contextlib.asynccontextmanager
async def open_stand(
    base: Path, *, population: int, seed: int = 1, extra_config: str = "", register_window: int = 4096, log_level: str = "INFO"
) -> AsyncIterator[Stand]:
    """Provision a token, a PKI and a loaded store under ``base``, start the peers and the daemon."""
    today = datetime.date.today().strftime("%Y%m%d")
    base.mkdir(parents=True, exist_ok=True)
    base = base.resolve()  # the config names absolute paths (relative ones resolve against its directory)
    hsm, public_key = await asyncio.to_thread(provision_cs_token, base / "hsm")
    pki = await asyncio.to_thread(make_pki, base / "pki")
    store = base / "store"
    if population:
        await asyncio.to_thread(preload_store, store, hsm, population=population, seed=seed, today=today)
    stream = RegisterStream(population=population, seed=seed, today=today)
    prefecture = PrefectureSim(tls=pki.tls("prefecture"), cs_public_key_der=public_key)
    national = NationalSim(tls=pki.tls("national"), cs_public_key_der=public_key)
    await prefecture.start()
    await national.start()
    initial = [check_item_of(r) for r in stream.initial_records()] if population else []
    prefecture.copy.update((item.resident_code, item) for item in initial)
    listen_port = free_port()
    config = write_config(
        base / "csd.toml",
        store=store,
        hsm=hsm,
        pki=pki,
        listen_port=listen_port,
        prefecture_port=prefecture.port,
        national_port=national.port,
        extra="[links]\nbackoff_initial_s = 0.05\nbackoff_max_s = 0.5\n" + extra_config,
    )
    cs = CsProcess(config, hsm, base / "csd.log", log_level=log_level)
    await asyncio.to_thread(cs.start)
    endpoint = Endpoint("127.0.0.1", listen_port, "localhost")
    register = RegisterClient(endpoint, pki.tls("register"), window=register_window)
    stand = Stand(base, cs, pki, endpoint, public_key, prefecture, national, register, stream, today)
    stand._tasks.append(asyncio.create_task(register.run()))
    national.connect_to_cs(endpoint)
    try:
        yield stand
    finally:
        for task in stand._tasks:
            task.cancel()
        await asyncio.gather(*stand._tasks, return_exceptions=True)
        await national.close()
        await asyncio.to_thread(cs.stop)
        await prefecture.close()
