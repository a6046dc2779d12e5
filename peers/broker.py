"""A real mosquitto for tests, the demo and the benchmarks, started with the configuration the
project ships (``systemd/mosquitto/cs-room.conf``) on a free loopback port; only the port and the
persistence directory differ."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["SHIPPED_CONFIG", "Mosquitto", "free_port", "mosquitto"]

SHIPPED_CONFIG = Path(__file__).resolve().parents[1] / "systemd" / "mosquitto" / "cs-room.conf"
START_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """One broker process; ``stop``/``start`` again keep its persistence directory."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        if shutil.which("mosquitto") is None:
            raise RuntimeError("mosquitto is not installed (scripts/setup.sh installs it)")
        self.workdir = workdir
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.log_path = workdir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        text = SHIPPED_CONFIG.read_text()
        text = re.sub(r"^listener .*$", f"listener {self.port} 127.0.0.1", text, flags=re.M)
        text = re.sub(r"^persistence_location .*$", f"persistence_location {workdir}/", text, flags=re.M)
        if os.geteuid() == 0:
            text += "\n# started by root (CI, a developer's container): keep root, the persistence directory is ours\nuser root\n"
        self.config_path = workdir / "mosquitto.conf"
        self.config_path.write_text(text)

    def start(self) -> None:
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(["mosquitto", "-c", str(self.config_path)], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited at start: {self.log_path.read_text()[-500:]}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.2):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("mosquitto did not listen in time")

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(5.0)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5.0)
        self._proc = None

    def pub(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """``mosquitto_pub`` one message (the payload from stdin, so binary is fine)."""
        args = ["mosquitto_pub", "-h", self.host, "-p", str(self.port), "-t", topic, "-q", str(qos), "-s"]
        if retain:
            args.append("-r")
        subprocess.run(args, input=payload, check=True, timeout=10, capture_output=True)

    def pub_lines(self, topic: str, lines: list[bytes], *, qos: int = 1) -> None:
        """Many messages on one topic through one ``mosquitto_pub -l`` (one per line)."""
        args = ["mosquitto_pub", "-h", self.host, "-p", str(self.port), "-t", topic, "-q", str(qos), "-l"]
        subprocess.run(args, input=b"\n".join(lines) + b"\n", check=True, timeout=120, capture_output=True)


@contextlib.contextmanager
def mosquitto(workdir: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(workdir)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
