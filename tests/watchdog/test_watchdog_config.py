"""The ``[watchdog]`` table of csd's configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_app.config import ConfigError, load_config
from hsm.config import HsmConfig
from peers.rig import Pki, write_config


def _config(tmp_path: Path, pki: Pki, extra: str) -> Path:
    hsm = HsmConfig(pin_file=tmp_path / "pin", softhsm_conf=tmp_path / "softhsm.conf")
    return write_config(tmp_path / "csd.toml", store=tmp_path / "store", hsm=hsm, pki=pki, listen_port=7400, prefecture_port=1, national_port=2, extra=extra)


def test_link_grace_defaults_to_two_minutes_and_can_be_set(tmp_path: Path, pki: Pki) -> None:
    assert load_config(_config(tmp_path, pki, "")).watchdog_link_grace_s == 120.0
    assert load_config(_config(tmp_path, pki, "[watchdog]\nlink_grace_s = 30\n")).watchdog_link_grace_s == 30.0


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ("[watchdog]\nlink_grace_s = -1\n", "watchdog.link_grace_s must be between"),
        ("[watchdog]\nlink_grace_s = true\n", "watchdog.link_grace_s has the wrong type"),
        ("[watchdog]\ninterval_s = 5\n", "unknown key 'interval_s' in [watchdog]"),
    ],
)
def test_a_bad_watchdog_key_is_refused_by_name(tmp_path: Path, pki: Pki, extra: str, named: str) -> None:
    with pytest.raises(ConfigError, match="^" + named.replace("[", r"\[").replace("]", r"\]")):
        load_config(_config(tmp_path, pki, extra))
