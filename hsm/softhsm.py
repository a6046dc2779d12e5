"""A SoftHSM2 token under the appliance's own state directory, for development, demos and CI.

A real appliance uses the integrator's HSM; this only stands one up where there is none.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

from hsm.config import DEFAULT_MODULE_PATH, HsmConfig
from hsm.errors import HsmUnavailable

SOFTHSM_UTIL = "softhsm2-util"


def _write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")


def ensure_softhsm_token(state_dir: Path, token_label: str = "cs-appliance") -> HsmConfig:
    """Create (once) a SoftHSM2 config, token directory, token and PIN files under ``state_dir``.

    Idempotent: an existing token is kept.  The PINs are random and written 0600 to
    ``state_dir/credentials``; nothing prints them.
    """
    hsm_dir = state_dir / "softhsm"
    token_dir = hsm_dir / "tokens"
    conf = hsm_dir / "softhsm2.conf"
    creds = state_dir / "credentials"
    pin_file = creds / "hsm-pin"
    token_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # reset_on_fork makes a forked child re-initialise, as hardware modules require.
    conf.write_text(
        f"directories.tokendir = {token_dir}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
        "library.reset_on_fork = true\n"
    )
    config = HsmConfig(module_path=DEFAULT_MODULE_PATH, token_label=token_label, pin_file=pin_file, softhsm_conf=conf)
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    if pin_file.exists() and any(token_dir.iterdir()):
        return config
    pin = secrets.token_hex(16)
    so_pin = secrets.token_hex(16)
    try:
        subprocess.run(
            [SOFTHSM_UTIL, "--init-token", "--free", "--label", token_label, "--so-pin", so_pin, "--pin", pin],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    except FileNotFoundError:
        raise HsmUnavailable("softhsm2-util is not installed") from None
    except subprocess.CalledProcessError:
        raise HsmUnavailable("softhsm2-util could not initialise the token") from None
    _write_secret(pin_file, pin)
    _write_secret(creds / "hsm-so-pin", so_pin)
    return config
