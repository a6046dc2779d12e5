"""Fixtures shared across the test tree: one SoftHSM2 token per test session, a manual clock, a store.

SoftHSM2 reads SOFTHSM2_CONF once per process and PKCS#11 login is per process (a second C_Login
raises UserAlreadyLoggedIn), so every in-process HSM test shares ONE session-scoped logged-in token.
Tests that need a fresh login, a wrong or locked PIN, or a destroyed token run in a subprocess with
their own state directory (see tests/hsm/hsm_subproc.py).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_app.clock import JST, ManualClock

#: The date the HSM token is provisioned for (the epoch keys follow from it).
PROVISION_DATE = datetime.date(2026, 11, 26)


@pytest.fixture(scope="session")
def _hsm_login(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, object]]:
    """The process's one SoftHSM2 token and login: (HsmConfig, Token), closed at session end."""
    from hsm.config import open_token
    from hsm.provision import provision_keys
    from hsm.softhsm import ensure_softhsm_token

    config = ensure_softhsm_token(tmp_path_factory.mktemp("hsm"))
    token = open_token(config)
    try:
        provision_keys(token, PROVISION_DATE)
        yield config, token
    finally:
        token.close_blocking()


@pytest.fixture(scope="session")
def hsm_config(_hsm_login: tuple[object, object]) -> object:
    """The ``HsmConfig`` of the session's SoftHSM2 token (provisioned for 2026-11-26)."""
    return _hsm_login[0]


@pytest.fixture(scope="session")
def token(_hsm_login: tuple[object, object]) -> object:
    """The session's logged-in ``hsm.token.Token`` (the process's only login)."""
    return _hsm_login[1]


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock at 2026-11-26 09:00 JST."""
    return ManualClock(datetime.datetime(2026, 11, 26, 9, tzinfo=JST))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[object]:
    """A fresh LMDB store under the test's temporary directory, closed afterwards."""
    from storage.store import Store

    s = Store(tmp_path / "db")
    try:
        yield s
    finally:
        s.close()
