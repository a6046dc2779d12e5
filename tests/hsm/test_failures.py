"""How opening and using the token fails: each scenario in its own process, with its own SoftHSM2 token.

The child prints only exception class names (with ":LEAK" appended if a PIN appears anywhere in
the exception's text, its traceback or its suppressed context) or "ok"; it never prints a PIN.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from hsm.softhsm import ensure_softhsm_token
from hsm_subproc import CKF_USER_PIN_LOCKED, run_script, set_token_flags, token_dirs

# Prepended to every child: the state dir's config, the secrets to look for, and a reporter.
_PRELUDE = """
import dataclasses, datetime, os, shutil, stat, traceback
from pathlib import Path
from hsm.config import HsmConfig, open_token
from hsm.softhsm import ensure_softhsm_token
from hsm.provision import provision_keys

STATE = Path({state!r})
config = ensure_softhsm_token(STATE)
SECRETS = [p.read_text().strip() for p in (STATE / "credentials").iterdir() if p.is_file()]
SECRETS += [s for s in {extra_secrets!r} if s]

def _texts(exc):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield "".join(traceback.format_exception(exc))
        yield repr(exc) + str(exc) + repr(exc.args)
        exc = exc.__context__ or exc.__cause__

def report(exc):
    leak = any(s in text for text in _texts(exc) for s in SECRETS)
    print(type(exc).__name__ + (":LEAK" if leak else ""))

def attempt(fn):
    try:
        fn()
    except Exception as exc:
        report(exc)
    else:
        print("ok")
"""


def _child(state: Path, body: str, *, extra_secrets: tuple[str, ...] = ()) -> list[str]:
    out = run_script(state, _PRELUDE.format(state=str(state), extra_secrets=list(extra_secrets)) + body)
    leaked = any(secret in out for secret in (*extra_secrets, *_secrets(state)))
    assert not leaked, "a PIN reached the child's output"
    return out.split()


def _secrets(state: Path) -> list[str]:
    creds = state / "credentials"
    return [p.read_text().strip() for p in creds.iterdir() if p.is_file()] if creds.exists() else []


def _private_file(path: Path, text: str, mode: int = 0o600) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A state directory with its own freshly initialised SoftHSM2 token."""
    d = tmp_path / "state"
    ensure_softhsm_token(d)
    return d


# -- opening --------------------------------------------------------------------------------------


def test_control_the_right_config_logs_in(state: Path) -> None:
    """Control: the harness itself works, so the failures below are the ones under test."""
    assert _child(state, "attempt(lambda: open_token(config).close_blocking())\n") == ["ok"]


@pytest.mark.parametrize("module_path", ["/nonexistent/libsofthsm2.so", "/etc/hostname", ""])
def test_wrong_module_path(state: Path, module_path: str) -> None:
    body = f"attempt(lambda: open_token(dataclasses.replace(config, module_path={module_path!r})))\n"
    assert _child(state, body) == ["HsmUnavailable"]


def test_unknown_token_label(state: Path) -> None:
    body = "attempt(lambda: open_token(dataclasses.replace(config, token_label='no-such-token')))\n"
    assert _child(state, body) == ["HsmUnavailable"]


def test_wrong_pin(state: Path, tmp_path: Path) -> None:
    wrong = "wrong" + secrets.token_hex(12)
    pin_file = _private_file(tmp_path / "wrong-pin", wrong + "\n")
    body = f"""
attempt(lambda: open_token(dataclasses.replace(config, pin_file=Path({str(pin_file)!r}))))
# The refusal leaves no login behind: the right PIN still works in the same process.
attempt(lambda: open_token(config).close_blocking())
"""
    assert _child(state, body, extra_secrets=(wrong,)) == ["HsmLoginFailed", "ok"]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_pin_file_readable_by_others_is_refused(state: Path, tmp_path: Path, mode: int) -> None:
    right_pin = (state / "credentials" / "hsm-pin").read_text()
    pin_file = _private_file(tmp_path / "open-pin", right_pin, mode)
    assert pin_file.stat().st_mode & 0o777 == mode
    body = f"""
attempt(lambda: open_token(dataclasses.replace(config, pin_file=Path({str(pin_file)!r}))))
# Refused before any login: a login with the 0600 file still succeeds in this process.
attempt(lambda: open_token(config).close_blocking())
"""
    assert _child(state, body) == ["HsmLoginFailed", "ok"]


@pytest.mark.parametrize("content", ["", "\n", "   \n\t"], ids=["empty", "newline", "blank"])
def test_empty_pin_file(state: Path, tmp_path: Path, content: str) -> None:
    pin_file = _private_file(tmp_path / "empty-pin", content)
    body = f"attempt(lambda: open_token(dataclasses.replace(config, pin_file=Path({str(pin_file)!r}))))\n"
    assert _child(state, body) == ["HsmLoginFailed"]


def test_missing_and_oversized_pin_files(state: Path, tmp_path: Path) -> None:
    big = _private_file(tmp_path / "big-pin", "1" * 257)
    body = f"""
attempt(lambda: open_token(dataclasses.replace(config, pin_file=Path({str(tmp_path / "absent")!r}))))
attempt(lambda: open_token(dataclasses.replace(config, pin_file=Path({str(big)!r}))))
"""
    assert _child(state, body) == ["HsmLoginFailed", "HsmLoginFailed"]


def test_pin_file_with_invalid_utf8_fails_as_login_failure(state: Path, tmp_path: Path) -> None:
    """A PIN file that is not UTF-8 is refused like any other bad PIN file, and its bytes are not echoed."""
    marker = "s3cret" + secrets.token_hex(8)
    pin_file = _private_file(tmp_path / "bad-pin", "")
    pin_file.write_bytes(marker.encode() + b"\xff\n")
    assert pin_file.stat().st_mode & 0o777 == 0o600
    body = f"attempt(lambda: open_token(dataclasses.replace(config, pin_file=Path({str(pin_file)!r}))))\n"
    assert _child(state, body, extra_secrets=(marker,)) == ["HsmLoginFailed"]


def test_locked_pin(state: Path) -> None:
    flags = set_token_flags(state, CKF_USER_PIN_LOCKED)
    assert flags & CKF_USER_PIN_LOCKED
    assert _child(state, "attempt(lambda: open_token(config))\n") == ["HsmPinLocked"]


# -- token lost while running ---------------------------------------------------------------------

_LOSS_BODY = """
token = open_token(config)
provision_keys(token, datetime.date(2026, 11, 26))
if {warm!r}:
    token.check_value_blocking("cs-kek")          # the running appliance has used its KEK
    token.sign_blocking("cs-sign", b"x")
for d in (STATE / "softhsm" / "tokens").iterdir():
    shutil.rmtree(d)
attempt(lambda: token.check_value_blocking("cs-kek"))
print("lost" if token.lost else "alive")
for op in (
    lambda: token.check_value_blocking("cs-kek"),
    lambda: token.has_key_blocking("cs-kek"),
    lambda: token.random_blocking(16),
    lambda: token.wrap_secret_blocking("cs-kek", bytes(32)),
    lambda: token.unwrap_secret_blocking("cs-kek", bytes(40), "CKM_AES_KEY_WRAP"),
    lambda: token.sign_blocking("cs-sign", b"x"),
    lambda: token.public_key_der_blocking("cs-sign"),
    lambda: token.key_labels_blocking("cs-epoch/"),
    lambda: token.create_wrapping_key_blocking("cs-epoch/audit/T1"),
):
    attempt(op)
token.close_blocking()
attempt(lambda: token.random_blocking(16))
"""


def test_token_removed_while_running(state: Path) -> None:
    """The KEK has been used (as it is after start-up); then the token directory disappears."""
    out = _child(state, _LOSS_BODY.format(warm=True))
    assert token_dirs(state) == []
    assert out[0] == "HsmUnavailable"
    assert out[1] == "lost"
    assert out[2:] == ["HsmUnavailable"] * 10


def test_token_removed_before_first_key_use(state: Path) -> None:
    """Opened, then the token directory disappears before any key was looked up.

    hsm/token.py promises that "empty look-ups" of a vanished token count as "token lost".
    """
    out = _child(state, _LOSS_BODY.format(warm=False))
    assert out[0] == "HsmUnavailable", f"first call after the token vanished raised {out[0]}"
    assert out[1] == "lost"
    assert out[2:] == ["HsmUnavailable"] * 10
