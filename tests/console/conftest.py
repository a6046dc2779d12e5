"""Fixtures of the console tests: a running CS (in process, on the session's SoftHSM2 login) with
its console socket under the test's directory, group = this process's gid, test-only KDF cost."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from firmware_app.console.client import ConsoleClient
from firmware_app.operators.registry import OperatorRegistry
from firmware_app.service.offsite import generate_recipient_keypair
from peers.rig import Pki, make_pki

PASSWORD = {
    "admin": "Harbor-lamp-0001",
    "sup1": "Maple-river-0002",
    "sup2": "Copper-cloud-003",
    "clerk1": "Silent-forest-04",
    "aud1": "Violet-stone-005",
    "sys1": "Amber-window-006",
}
ROLES = {"sup1": "supervisor", "sup2": "supervisor", "clerk1": "clerk", "aud1": "auditor", "sys1": "system"}


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def console_toml(tmp_path: Path, *, group: int | None = None, idle_lock_s: float = 300.0, recipient: Path | None = None) -> str:
    lines = [
        "[console]",
        f'socket = "{tmp_path / "console" / "console.sock"}"',
        f'group = "{os.getgid() if group is None else group}"',
        f"idle_lock_s = {idle_lock_s}",
        "kdf_memory_kib = 64",
        "kdf_iterations = 1",
        "kdf_lanes = 1",
        f'export_dir = "{tmp_path / "exports"}"',
        "audit_checkpoint_interval_s = 3600",
    ]
    if recipient is not None:
        lines.append(f'export_recipient = "{recipient}"')
    return "\n".join(lines) + "\n"


@pytest.fixture
def recipient(tmp_path: Path) -> tuple[Path, bytes]:
    """An export recipient key pair: (public key file, private key PEM)."""
    private_pem, public_pem = generate_recipient_keypair()
    path = tmp_path / "recipient.pub.pem"
    path.write_bytes(public_pem)
    return path, private_pem


async def login(socket_path: Path, operator: str, password: str | None = None) -> ConsoleClient:
    client = await ConsoleClient.connect(socket_path, timeout_s=30)
    await client.call("login", operator=operator, password=password or PASSWORD[operator], terminal="pts/1")
    return client


async def seed_operators(daemon, registry_ops: dict[str, str] | None = None) -> None:  # type: ignore[no-untyped-def]
    """The bootstrap admin and one operator per role, each with the first password changed already."""
    registry: OperatorRegistry = daemon.console.services.registry
    await asyncio.to_thread(registry.bootstrap_blocking, "admin", PASSWORD["admin"], "local")
    socket_path = daemon.config.console.socket_path
    admin = await login(socket_path, "admin")
    try:
        for operator, role in (registry_ops or ROLES).items():
            await admin.call("operator-add", operator=operator, role=role, password=PASSWORD[operator] + "x")
            first = await login(socket_path, operator, PASSWORD[operator] + "x")
            await first.call("passwd", old=PASSWORD[operator] + "x", new=PASSWORD[operator])
            await first.close()
    finally:
        await admin.close()


@pytest.fixture
def console_extra(tmp_path: Path, recipient: tuple[Path, bytes]) -> str:
    return console_toml(tmp_path, recipient=recipient[0])


