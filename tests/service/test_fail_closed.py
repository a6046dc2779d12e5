"""A token that disappears while the daemon runs: the identity file refuses personal data from then on.

Runs in a subprocess with its own SoftHSM2 token, since a lost token poisons the process's PKCS#11 state.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import datetime as dt, shutil, sys
    from pathlib import Path
    from firmware_app.clock import ManualClock, JST
    from firmware_app.domain.terms import FourItemQuery
    from firmware_app.service.identity_file import IdentityFile
    from firmware_app.service.keyring import Keyring
    from hsm.config import open_token
    from hsm.errors import HsmUnavailable
    from hsm.provision import provision_keys
    from hsm.softhsm import ensure_softhsm_token
    from peers.population import generate
    from storage.store import Store

    state = Path(sys.argv[1])
    token = open_token(ensure_softhsm_token(state))
    provision_keys(token, dt.date(2026, 11, 26))
    clock = ManualClock(dt.datetime(2026, 11, 26, 9, tzinfo=JST))
    store = Store(state / "db")
    keyring = Keyring(token, store, clock, probe_interval_s=1.0)
    keyring.open_blocking()
    identity = IdentityFile(store, keyring, clock)
    records = list(generate(100, today="20261126"))
    identity.load_blocking(records)
    assert identity.get_blocking(records[0].resident_code).record == records[0]
    for tokendir in (state / "softhsm" / "tokens").iterdir():
        shutil.rmtree(tokendir)
    clock.advance(1.5)
    outcomes = []
    for call in (
        lambda: identity.get_blocking(records[1].resident_code),
        lambda: identity.get_blocking(records[0].resident_code),
        lambda: identity.search_blocking(FourItemQuery(name=records[2].name_kana, birth_date=records[2].birth_date)),
        lambda: identity.load_blocking(list(generate(3, start=500, today="20261126"))),
    ):
        try:
            call()
            outcomes.append("served")
        except HsmUnavailable:
            outcomes.append("refused")
    print(",".join(outcomes), "sealed" if keyring.sealed else "open")
    """
)


def test_lost_token_seals_the_identity_file(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "refused,refused,refused,refused sealed"
