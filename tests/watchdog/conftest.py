"""Fixtures of the watchdog tests: a notification socket of the tests' own (see notify_listener)."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from notify_listener import NotifyListener

from peers.rig import Pki, make_pki


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short directory for socket paths (AF_UNIX paths are limited to 107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="wd-") as name:
        yield Path(name)


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest, socket_dir: Path) -> Iterator[NotifyListener]:
    """A listener on a socket path and on an abstract name in turn."""
    address = str(socket_dir / "notify") if request.param == "path" else f"@cs-watchdog-test-{os.getpid()}-{secrets.token_hex(4)}"
    got = NotifyListener(address)
    try:
        yield got
    finally:
        got.close()


@pytest.fixture
def path_listener(socket_dir: Path) -> Iterator[NotifyListener]:
    got = NotifyListener(str(socket_dir / "notify"))
    try:
        yield got
    finally:
        got.close()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))
