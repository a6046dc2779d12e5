"""Helpers for HSM tests that need their own process (fresh login, wrong PIN, locked PIN, token loss).

SoftHSM2 reads SOFTHSM2_CONF once per process and PKCS#11 login is per process, so every scenario
that needs another token state runs in a child with its own state directory and configuration.
The child prints exception class names (or "ok"), never secrets.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

SUBPROCESS_TIMEOUT_S = 60
MODULE_PATH = "/usr/lib/softhsm/libsofthsm2.so"

# CKA_OS_TOKENFLAGS (0x8000534b) as SoftHSM's file object store writes it: attribute type, then the
# value kind (2 = unsigned long); the 8-byte big-endian flags follow.
_TOKENFLAGS_MARKER = bytes.fromhex("000000008000534b0000000000000002")
CKF_USER_PIN_LOCKED = 0x40000


def softhsm_conf(state_dir: Path) -> Path:
    """The SoftHSM2 configuration written by ``ensure_softhsm_token`` under ``state_dir``."""
    return state_dir / "softhsm" / "softhsm2.conf"


def child_env(state_dir: Path) -> dict[str, str]:
    """The environment of a child that uses the token under ``state_dir``."""
    env = dict(os.environ)
    env["SOFTHSM2_CONF"] = str(softhsm_conf(state_dir))
    return env


def run_script(state_dir: Path, code: str) -> str:
    """Run ``code`` in a fresh interpreter using the token under ``state_dir``; returns its stdout.

    A non-zero exit fails the calling test with the child's stderr (which must not hold secrets).
    """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=child_env(state_dir),
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        cwd=Path(__file__).resolve().parents[2],
    )
    if proc.returncode != 0:
        raise AssertionError(f"child process failed (exit {proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def token_dirs(state_dir: Path) -> list[Path]:
    """The token directories (one per initialised token) under ``state_dir``."""
    return sorted(p for p in (state_dir / "softhsm" / "tokens").iterdir() if p.is_dir())


def set_token_flags(state_dir: Path, or_mask: int) -> int:
    """OR ``or_mask`` into the stored token flags of the one token under ``state_dir``; returns the new flags."""
    (tdir,) = token_dirs(state_dir)
    path = tdir / "token.object"
    data = bytearray(path.read_bytes())
    at = data.find(_TOKENFLAGS_MARKER)
    if at < 0 or data.find(_TOKENFLAGS_MARKER, at + 1) >= 0:
        raise AssertionError("token flags attribute not found exactly once in token.object")
    start = at + len(_TOKENFLAGS_MARKER)
    flags = int.from_bytes(data[start : start + 8], "big") | or_mask
    data[start : start + 8] = flags.to_bytes(8, "big")
    path.write_bytes(bytes(data))
    return flags
