"""A token that disappears while the daemon runs: the identity file refuses personal data from then on.

Runs in a subprocess with its own SoftHSM2 token, since a lost token poisons the process's PKCS#11 state.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from child_identity import PRELUDE, child_env

SCRIPT = PRELUDE + textwrap.dedent(
    """
    from firmware_app.domain.terms import FourItemQuery
    from hsm.errors import HsmUnavailable

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
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], env=child_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "refused,refused,refused,refused sealed"
