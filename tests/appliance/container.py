"""A booted appliance root under ``systemd-nspawn -b``: real systemd 252 as PID 1, driven from
outside with ``nsenter`` (no machined or bus on this machine, hence ``--register=no
--keep-unit``; ../shared/reference/appliance.md §2).

The root is an overlay: the cached base root from image/rootfs.sh stays untouched below, and
everything a test installs or the appliance writes goes to a throw-away upper directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]


class ContainerError(RuntimeError):
    pass


def build_base_root(timeout_s: float = 900.0) -> Path:
    """image/rootfs.sh: the cached base root (built on first use, about 75 s here)."""
    done = subprocess.run(["bash", str(REPO / "image/rootfs.sh")], capture_output=True, text=True, timeout=timeout_s, cwd=REPO)
    if done.returncode != 0:
        raise ContainerError(f"image/rootfs.sh failed:\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def overlay_root(base: Path, work: Path) -> Iterator[Path]:
    """``base`` with a writable overlay in ``work``; unmounted afterwards."""
    upper, scratch, merged = work / "upper", work / "work", work / "root"
    for d in (upper, scratch, merged):
        d.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={base},upperdir={upper},workdir={scratch}", str(merged)],
        check=True,
        timeout=30,
    )
    try:
        yield merged
    finally:
        subprocess.run(["umount", "-l", str(merged)], check=False, timeout=30)


def install_app(root: Path) -> None:
    done = subprocess.run(["bash", str(REPO / "image/install-app.sh"), str(root)], capture_output=True, text=True, timeout=300, cwd=REPO)
    if done.returncode != 0:
        raise ContainerError(f"image/install-app.sh failed:\n{done.stderr[-3000:]}")


class Container:
    """One booted root.  ``run`` executes a command inside it (all its namespaces)."""

    def __init__(self, root: Path, console_log: Path) -> None:
        self.root = root
        self.console_log = console_log
        self._nspawn: subprocess.Popen[bytes] | None = None
        self.leader: int | None = None

    def boot(self, timeout_s: float = 90.0) -> None:
        log = self.console_log.open("wb")
        self._nspawn = subprocess.Popen(
            ["systemd-nspawn", "-q", "-D", str(self.root), "-b", "--register=no", "--keep-unit", "--console=pipe"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while self.leader is None and time.monotonic() < deadline:
            if self._nspawn.poll() is not None:
                raise ContainerError(f"systemd-nspawn ended ({self._nspawn.returncode}):\n{self.console()[-3000:]}")
            with contextlib.suppress(psutil.Error):
                children = psutil.Process(self._nspawn.pid).children()
                if children:
                    self.leader = children[0].pid
            time.sleep(0.1)
        if self.leader is None:
            raise ContainerError("the container's init did not appear")
        state = ""
        while time.monotonic() < deadline:
            state = self.run("systemctl", "is-system-running", check=False, timeout_s=30).stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(0.3)
        raise ContainerError(f"the container did not boot (state {state!r}):\n{self.console()[-3000:]}")

    def run(self, *argv: str, check: bool = True, timeout_s: float = 60.0, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        assert self.leader is not None
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}
        done = subprocess.run(
            ["nsenter", "-t", str(self.leader), "-a", "--", *argv],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            input=input_text,
        )
        if check and done.returncode != 0:
            raise ContainerError(f"{' '.join(argv)} exited {done.returncode}: {done.stdout[-2000:]} {done.stderr[-2000:]}")
        return done

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        out = self.run("systemctl", "show", unit, "-p", ",".join(properties)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def wait_for(self, unit: str, predicate, what: str, timeout_s: float, properties: Sequence[str]) -> dict[str, str]:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout_s
        shown: dict[str, str] = {}
        while time.monotonic() < deadline:
            shown = self.show(unit, *properties)
            if predicate(shown):
                return shown
            time.sleep(0.2)
        raise ContainerError(f"{unit}: not {what} within {timeout_s} s: {shown}\n{self.journal(unit)[-4000:]}")

    def journal(self, unit: str | None = None, *, output: str = "short-precise") -> str:
        argv = ["journalctl", "--no-pager", "-o", output]
        if unit:
            argv += ["-u", unit]
        return self.run(*argv, check=False, timeout_s=60).stdout

    def console(self) -> str:
        return self.console_log.read_text(errors="replace") if self.console_log.exists() else ""

    def poweroff(self, timeout_s: float = 60.0) -> None:
        if self._nspawn is None:
            return
        if self._nspawn.poll() is None and self.leader is not None:
            with contextlib.suppress(Exception):
                self.run("systemctl", "poweroff", "--no-block", check=False, timeout_s=20)
            try:
                self._nspawn.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._nspawn.kill()
                self._nspawn.wait(10)
        self._nspawn = None


def nspawn_available() -> str | None:
    """Why the nspawn tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (debootstrap, overlay mounts, systemd-nspawn)"
    for tool in ("debootstrap", "systemd-nspawn", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/setup.sh installs it)"
    return None
