"""A CS running as its own process (``python -m firmware_app.daemon``) with its own SoftHSM2
token and login: for the demo, the crash tests (kill -9) and the benchmarks."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from hsm.config import HsmConfig
from hsm.softhsm import ensure_softhsm_token

__all__ = ["CsProcess", "CsProcessError", "preload_store", "provision_cs_token", "token_env"]

_READY_MARK = "ready: listening"
#: Children run from the project root, so ``python -m`` never picks up a state directory named
#: like a package (a state dir holding ``hsm/`` would shadow the ``hsm`` package).
_ROOT = Path(__file__).resolve().parents[1]


class CsProcessError(RuntimeError):
    """The daemon did not start, or ended unexpectedly."""


def token_env(hsm: HsmConfig | None = None) -> dict[str, str]:
    """This environment with the SOFTHSM2_CONF of ``hsm`` (a child must find its own token)."""
    env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
    if hsm is not None and hsm.softhsm_conf is not None:
        env["SOFTHSM2_CONF"] = str(hsm.softhsm_conf)
    return env


def provision_cs_token(state_dir: Path) -> tuple[HsmConfig, bytes]:
    """A provisioned SoftHSM2 token under ``state_dir`` (in a child process: a login is per
    process) and the CS signing key's public half (DER) for the peers."""
    hsm = ensure_softhsm_token(state_dir)
    public_key = state_dir / "cs-signing-key.der"
    subprocess.run(
        [sys.executable, "-m", "hsm.provision", "--state-dir", str(state_dir), "--softhsm", "--public-key-out", str(public_key)],
        env=token_env(hsm),
        cwd=_ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return hsm, public_key.read_bytes()


def preload_store(store: Path, hsm: HsmConfig, *, population: int, seed: int, today: str, timeout_s: float = 600.0) -> None:
    """Migrate the synthetic population ``seed`` into ``store`` (child process, own login)."""
    assert hsm.softhsm_conf is not None
    subprocess.run(
        [
            sys.executable, "-m", "peers.preload", "--store", str(store), "--softhsm-conf", str(hsm.softhsm_conf),
            "--pin-file", str(hsm.pin_file), "--population", str(population), "--seed", str(seed), "--today", today,
        ],
        env=token_env(hsm),
        cwd=_ROOT,
        check=True,
        timeout=timeout_s,
    )


class CsProcess:
    """Start, stop (SIGTERM) and kill (SIGKILL) one ``csd``; its log goes to ``log_path``."""

    def __init__(
        self, config_path: Path, hsm: HsmConfig, log_path: Path, *, log_level: str = "INFO", extra_env: Mapping[str, str] | None = None
    ) -> None:
        """``extra_env``: variables added to the child's environment (e.g. ``NOTIFY_SOCKET``)."""
        self._config_path = config_path
        self._extra_env = dict(extra_env or {})
        self._hsm = hsm
        self.hsm = hsm
        self.log_path = log_path
        self._log_level = log_level
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self, *, ready_timeout_s: float = 60.0) -> None:
        """Start and wait until the daemon logs that it is ready."""
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "firmware_app.daemon", "--config", str(self._config_path), "--log-level", self._log_level,
                 *(["--allow-root"] if os.geteuid() == 0 else [])],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=token_env(self._hsm) | self._extra_env,
                cwd=_ROOT,
            )
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if _READY_MARK in self._new_log():
                return
            if self._proc.poll() is not None:
                raise CsProcessError(f"csd exited with {self._proc.returncode} before ready:\n{self._new_log()[-2000:]}")
            time.sleep(0.02)
        self.kill()
        raise CsProcessError("csd did not become ready in time")

    def _new_log(self) -> str:
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            return log.read().decode("utf-8", "replace")

    def kill(self) -> None:
        """SIGKILL, and reap."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(timeout=30)

    def stop(self, *, timeout_s: float = 30.0) -> int:
        """SIGTERM, wait for a clean exit; returns the exit code (SIGKILL after ``timeout_s``)."""
        if self._proc is None:
            return 0
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                # Before the kill: every task's and thread's stack into the log, for the post-mortem.
                for dump in (signal.SIGUSR2, signal.SIGUSR1):
                    with contextlib.suppress(ProcessLookupError):
                        self._proc.send_signal(dump)
                    time.sleep(0.5)
                self.kill()
        return self._proc.returncode
