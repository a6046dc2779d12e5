"""Where the HSM is and how the appliance logs in: module path, token label, PIN file."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from hsm.errors import HsmLoginFailed
from hsm.token import Token

DEFAULT_MODULE_PATH = "/usr/lib/softhsm/libsofthsm2.so"
MAX_PIN_BYTES = 256


@dataclass(frozen=True)
class HsmConfig:
    """The HSM settings; the PIN itself is read from ``pin_file`` only when logging in."""

    module_path: str = DEFAULT_MODULE_PATH
    token_label: str = "cs-appliance"
    pin_file: Path = Path("/run/credentials/cs-appliance.service/hsm-pin")
    #: SoftHSM2 only: its configuration file (exported as SOFTHSM2_CONF before the module loads).
    softhsm_conf: Path | None = None


def read_pin_file(path: Path) -> str:
    """The PIN from a credential file; refused when group- or world-accessible, empty or oversized."""
    try:
        st = path.stat()
    except OSError:
        raise HsmLoginFailed("HSM PIN file is missing or unreadable") from None
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise HsmLoginFailed("HSM PIN file must not be accessible to group or others")
    data = path.read_bytes()
    if len(data) > MAX_PIN_BYTES:
        raise HsmLoginFailed("HSM PIN file is too large")
    try:
        pin = data.decode("utf-8", errors="strict").strip()
    except UnicodeDecodeError:
        pin = None  # Raised below, outside this block, so no exception context carries the bytes.
    if pin is None:
        raise HsmLoginFailed("HSM PIN file is not UTF-8 text")
    if not pin:
        raise HsmLoginFailed("HSM PIN file is empty")
    return pin


def open_token(config: HsmConfig) -> Token:
    """Log in to the configured token (blocking)."""
    if config.softhsm_conf is not None:
        os.environ["SOFTHSM2_CONF"] = str(config.softhsm_conf)
    pin = read_pin_file(config.pin_file)
    return Token.open_blocking(config.module_path, config.token_label, pin)
