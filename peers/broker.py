"""A real mosquitto for tests, the demo and the benchmarks, started with the configuration and the
ACL the project ships (``systemd/mosquitto/cs-room.conf``, ``cs-room.acl``) on a free loopback
port; only the port and the directories differ, and the password file is made here with a
random password per account (each also written to ``<account>.password``, 0600)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["ACCOUNTS", "SHIPPED_ACL", "SHIPPED_CONFIG", "Mosquitto", "free_port", "mosquitto"]

SHIPPED_CONFIG = Path(__file__).resolve().parents[1] / "systemd" / "mosquitto" / "cs-room.conf"
SHIPPED_ACL = SHIPPED_CONFIG.with_suffix(".acl")
START_TIMEOUT_S = 10.0
#: The accounts of the shipped ACL.
ACCOUNTS = ("cs-room", "cs-room-watch", "zigbee2mqtt", "frigate", "onvif")
#: Which bridge account publishes on a topic prefix.
_PUBLISHER = {"zigbee2mqtt": "zigbee2mqtt", "frigate": "frigate", "onvif2mqtt": "onvif", "cam2mqtt": "onvif"}


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
        self.passwords = {account: secrets.token_hex(16) for account in ACCOUNTS}
        passwd = workdir / "passwd"
        passwd.touch(mode=0o600)
        for account, password in self.passwords.items():
            subprocess.run(["mosquitto_passwd", "-b", str(passwd), account, password], check=True, timeout=10, capture_output=True)
            secret = workdir / f"{account}.password"
            secret.touch(mode=0o600)
            secret.write_text(password)
        acl = workdir / "cs-room.acl"
        shutil.copyfile(SHIPPED_ACL, acl)
        text = SHIPPED_CONFIG.read_text()
        text = re.sub(r"^listener .*$", f"listener {self.port} 127.0.0.1", text, flags=re.MULTILINE)
        text = re.sub(r"^persistence_location .*$", f"persistence_location {workdir}/", text, flags=re.MULTILINE)
        text = re.sub(r"^password_file .*$", f"password_file {passwd}", text, flags=re.MULTILINE)
        text = re.sub(r"^acl_file .*$", f"acl_file {acl}", text, flags=re.MULTILINE)
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

    def password_file(self, account: str) -> Path:
        """A file holding ``account``'s password (what a systemd credential would be)."""
        return self.workdir / f"{account}.password"

    def client_args(self, account: str) -> dict[str, Any]:
        """Keyword arguments of ``aiomqtt.Client`` logging in as ``account``."""
        return {"hostname": self.host, "port": self.port, "username": account, "password": self.passwords[account]}

    def _login(self, topic: str) -> list[str]:
        account = _PUBLISHER.get(topic.split("/", 1)[0], "zigbee2mqtt")
        return ["-u", account, "-P", self.passwords[account]]

    def pub(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """``mosquitto_pub`` one message as the bridge that owns the topic's prefix (the payload
        from stdin, so binary is fine)."""
        args = ["mosquitto_pub", "-h", self.host, "-p", str(self.port), *self._login(topic), "-t", topic, "-q", str(qos), "-s"]
        if retain:
            args.append("-r")
        subprocess.run(args, input=payload, check=True, timeout=10, capture_output=True)

    def pub_lines(self, topic: str, lines: list[bytes], *, qos: int = 1) -> None:
        """Many messages on one topic through one ``mosquitto_pub -l`` (one per line)."""
        args = ["mosquitto_pub", "-h", self.host, "-p", str(self.port), *self._login(topic), "-t", topic, "-q", str(qos), "-l"]
        subprocess.run(args, input=b"\n".join(lines) + b"\n", check=True, timeout=120, capture_output=True)


@contextlib.contextmanager
def mosquitto(workdir: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(workdir)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
