"""For tests that run the identity file in a child process with its own SoftHSM2 token
(a PKCS#11 login is per process, and a lost or killed writer must not poison the test process)."""

from __future__ import annotations

import os
import textwrap

#: Python source a child starts with: ``state`` from argv[1], then ``token``, ``clock``,
#: ``store``, ``keyring`` (probe every second) and ``identity`` ready to use.
PRELUDE = textwrap.dedent(
    """
    import datetime as dt, shutil, sys
    from pathlib import Path
    import msgspec
    from firmware_app.clock import ManualClock, JST
    from firmware_app.service.identity_file import IdentityFile
    from firmware_app.service.keyring import Keyring
    from hsm.config import open_token
    from hsm.provision import provision_keys
    from hsm.softhsm import ensure_softhsm_token
    from peers.population import generate
    from storage import layout
    from storage.store import Store

    state = Path(sys.argv[1])
    token = open_token(ensure_softhsm_token(state))
    provision_keys(token, dt.date(2026, 11, 26))
    clock = ManualClock(dt.datetime(2026, 11, 26, 9, tzinfo=JST))
    store = Store(state / "db")
    keyring = Keyring(token, store, clock, probe_interval_s=1.0)
    keyring.open_blocking()
    identity = IdentityFile(store, keyring, clock)
    """
)


def child_env() -> dict[str, str]:
    """This environment without the test process's SOFTHSM2_CONF (the child stands up its own)."""
    return {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
