"""firmware_app.hygiene: every check runs in a child process (the settings are process-wide).

The suite runs as root here, so the root refusal is tested directly; the non-root paths drop to
nobody inside the child (after Python has started: the interpreter under /root is not reachable
by nobody) and then call the function.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from firmware_app.hygiene import (
    HygieneError,
    apply_process_hygiene,
    secret_variable_names,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl and mlockall are Linux only")

ROOT = Path(__file__).resolve().parents[1]
NOBODY = 65534

_PRELUDE = """
import ctypes, json, os, resource, sys
from firmware_app.hygiene import HygieneError, apply_process_hygiene, lock_memory
libc = ctypes.CDLL(None, use_errno=True)
def as_nobody():
    os.setgroups([])
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)
    libc.prctl(4, 1, 0, 0, 0)  # a change of credentials clears "dumpable": set it again, hygiene must clear it
def state():
    umask = os.umask(0); os.umask(umask)
    return {"dumpable": libc.prctl(3, 0, 0, 0, 0), "core": list(resource.getrlimit(resource.RLIMIT_CORE)), "umask": umask, "uid": os.geteuid()}
"""


def run_child(body: str, env: dict[str, str] | None = None) -> tuple[int, dict, str]:
    """Run ``body`` after the prelude in a fresh interpreter; returns (exit code, last JSON line, stderr)."""
    child_env = {k: v for k, v in os.environ.items() if not secret_variable_names({k: v})}
    child_env["PYTHONPATH"] = str(ROOT)
    child_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", _PRELUDE + textwrap.dedent(body)],
        capture_output=True, text=True, timeout=60, env=child_env, cwd="/", check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, (json.loads(lines[-1]) if lines else {}), proc.stderr


def test_root_is_refused_unless_allowed() -> None:
    if os.geteuid() != 0:
        pytest.skip("the refusal of root needs the suite to run as root")
    code, out, err = run_child(
        """
        before = state()
        try:
            apply_process_hygiene(allow_root=False)
        except HygieneError as exc:
            print(json.dumps({"refused": str(exc), "before": before, "after": state()}))
            sys.exit(7)
        """
    )
    assert code == 7, err
    assert "refuses to run as root" in out["refused"]
    # Refused before anything was changed.
    assert out["after"] == out["before"]


def test_root_allowed_applies_everything() -> None:
    code, out, err = run_child(
        """
        libc.prctl(4, 1, 0, 0, 0)
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        os.umask(0o022)
        report = apply_process_hygiene(allow_root=True)
        path = "/tmp/cs-hygiene-%d" % os.getpid()
        with open(path, "w"): pass
        os.mkdir(path + ".d")
        modes = [os.stat(path).st_mode & 0o777, os.stat(path + ".d").st_mode & 0o777]
        os.unlink(path); os.rmdir(path + ".d")
        print(json.dumps({**state(), "modes": modes, "line": report.describe(), "was": report.umask_was}))
        """
    )
    assert code == 0, err
    assert out["dumpable"] == 0
    assert out["core"] == [0, 0]
    assert out["umask"] == 0o077
    assert out["was"] == 0o022
    assert out["modes"] == [0o600, 0o700]
    if os.geteuid() == 0:
        assert "running as root (allowed)" in out["line"]


def test_non_root_process_gets_the_same_hygiene() -> None:
    if os.geteuid() != 0:
        pytest.skip("dropping to nobody needs root")
    code, out, err = run_child(
        """
        as_nobody()
        before = state()
        report = apply_process_hygiene(allow_root=False)
        print(json.dumps({"before": before, **state(), "line": report.describe()}))
        """
    )
    assert code == 0, err
    assert out["before"]["dumpable"] == 1
    assert out["uid"] == NOBODY
    assert out["dumpable"] == 0
    assert out["core"] == [0, 0]
    assert out["umask"] == 0o077
    assert "as root" not in out["line"]


def test_not_dumpable_means_no_ptrace_by_the_same_uid() -> None:
    """A sibling process of the same UID may not read the hygienic process's memory."""
    if os.geteuid() != 0:
        pytest.skip("dropping to nobody needs root")
    code, out, err = run_child(
        """
        as_nobody()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            apply_process_hygiene(allow_root=False)
            os.write(w, b"x"); os.close(w)
            import time; time.sleep(5); os._exit(0)
        os.close(w); os.read(r, 1)
        try:
            open("/proc/%d/mem" % pid, "rb").close(); mem = "readable"
        except OSError as exc:
            mem = exc.strerror
        try:
            open("/proc/%d/environ" % pid, "rb").read(); environ = "readable"
        except OSError as exc:
            environ = exc.strerror
        os.kill(pid, 9); os.waitpid(pid, 0)
        print(json.dumps({"mem": mem, "environ": environ}))
        """
    )
    assert code == 0, err
    assert out["mem"] == "Permission denied"
    assert out["environ"] == "Permission denied"


@pytest.mark.parametrize("name", ["HSM_PIN", "CS_TLS_KEY_PASSWORD", "so-pin", "MY_SECRET", "DB_PASS", "CS_PRIVATE_KEY"])
def test_secret_in_the_environment_is_refused_by_name_only(name: str) -> None:
    code, out, err = run_child(
        """
        before = state()
        try:
            apply_process_hygiene(allow_root=True)
        except HygieneError as exc:
            print(json.dumps({"refused": str(exc), "unchanged": state() == before}))
            sys.exit(7)
        """,
        env={name: "123456-do-not-print"},
    )
    assert code == 7, err
    assert name in out["refused"]
    assert "123456" not in out["refused"] and "123456" not in err
    assert "CREDENTIALS_DIRECTORY" in out["refused"]
    assert out["unchanged"]  # refused before applying anything


def test_secret_variable_names() -> None:
    environ = {
        "HSM_PIN": "", "USER_PIN": "", "SO_PIN": "", "PASSWORD": "", "PGPASSWORD": "", "DB_PASSWD": "", "KEY_PASSPHRASE": "",
        "AWS_SECRET_ACCESS_KEY": "", "API_KEY": "", "X_AUTH_TOKEN": "", "TLS_PRIVATE_KEY": "",
        # Ordinary settings: paths, PKCS#11 token words, systemd's own variables, words that merely contain "PIN".
        "CREDENTIALS_DIRECTORY": "", "SOFTHSM2_CONF": "", "TOKEN_LABEL": "", "SSH_ASKPASS": "", "SHIPPING": "",
        "PIPENV_VENV": "", "KEYRING": "", "NOTIFY_SOCKET": "", "WATCHDOG_USEC": "", "STATE_DIRECTORY": "", "PATH": "",
    }
    assert secret_variable_names(environ) == sorted(
        ["HSM_PIN", "USER_PIN", "SO_PIN", "PASSWORD", "PGPASSWORD", "DB_PASSWD", "KEY_PASSPHRASE", "AWS_SECRET_ACCESS_KEY",
         "API_KEY", "X_AUTH_TOKEN", "TLS_PRIVATE_KEY"]
    )


def test_environment_argument_is_checked_instead_of_os_environ() -> None:
    # Runs in-process: the refusal comes before anything process-wide changes.
    with pytest.raises(HygieneError, match="HSM_PIN"):
        apply_process_hygiene(allow_root=True, environ={"HSM_PIN": "1234"})


def test_lock_memory_as_root_succeeds() -> None:
    if os.geteuid() != 0:
        pytest.skip("CAP_IPC_LOCK needs root")
    code, out, err = run_child(
        """
        ok = lock_memory()
        locked = [l.split()[1] for l in open("/proc/self/status") if l.startswith("VmLck")][0]
        print(json.dumps({"ok": ok, "vmlck_kb": int(locked)}))
        """
    )
    assert code == 0, err
    assert out["ok"] is True
    assert out["vmlck_kb"] > 0


def test_lock_memory_refused_by_rlimit_is_a_warning_not_an_error() -> None:
    if os.geteuid() != 0:
        pytest.skip("dropping to nobody needs root")
    code, out, err = run_child(
        """
        import logging; logging.basicConfig(level=logging.WARNING)
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (8 << 20, 8 << 20))  # systemd's default
        as_nobody()
        ok = lock_memory()
        locked = [l.split()[1] for l in open("/proc/self/status") if l.startswith("VmLck")][0]
        print(json.dumps({"ok": ok, "vmlck_kb": int(locked)}))
        """
    )
    assert code == 0, err
    assert out == {"ok": False, "vmlck_kb": 0}
    assert "memory not locked against swap" in err and "RLIMIT_MEMLOCK 8192 KiB" in err
