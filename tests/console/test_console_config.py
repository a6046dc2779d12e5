"""The [console] table: defaults from systemd/, and every error names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_app.config import ConfigError, load_config

BASE = """
[storage]
path = "store"
[hsm]
pin_file = "pin"
[tls]
cert = "c"
key = "k"
ca = "ca"
[peers.register]
pin_sha256 = "{pin}"
""".format(pin="a" * 64)


def _load(tmp_path: Path, console: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "csd.toml"
    path.write_text(BASE + console)
    return load_config(path)


def test_no_table_no_console(tmp_path: Path) -> None:
    assert _load(tmp_path, "").console is None


def test_defaults_follow_the_units(tmp_path: Path) -> None:
    console = _load(tmp_path, "[console]\n").console
    assert console.socket_path == Path("/run/cs-appliance-console/console.sock")
    assert console.group == "cs-console" and console.idle_lock_s == 300 and console.lockout_failures == 10
    assert (console.kdf_memory_kib, console.kdf_iterations, console.kdf_lanes) == (65536, 3, 4)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("idle_lock_s = 0", "console.idle_lock_s"),
        ("lockout_failures = 0", "console.lockout_failures"),
        ('group = 5', "console.group"),
        ("kdf_memory_kib = 8\nkdf_lanes = 4", "console.kdf_memory_kib"),
        ("password_min_chars = 4", "console.password_min_chars"),
        ("audit_retention_days = 0", "console.audit_retention_days"),
        ("unknown = 1", "unknown"),
    ],
)
def test_errors_name_their_key(tmp_path: Path, line: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        _load(tmp_path, "[console]\n" + line + "\n")
