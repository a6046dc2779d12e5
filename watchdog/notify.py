"""A minimal ``sd_notify`` client: one datagram to ``$NOTIFY_SOCKET`` per message.

No systemd library is needed: the protocol is newline-separated ``KEY=value`` lines sent to an
AF_UNIX datagram socket, named by a path or, with a leading ``@``, in the abstract namespace.
Without ``NOTIFY_SOCKET`` (not run by systemd, or a unit that is not ``Type=notify``) every send
is a no-op.  A send never raises: the daemon must not fail because its supervisor went away.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

from firmware_app.journal import event

__all__ = ["MIN_INTERVAL_S", "Notifier", "forget_environ", "watchdog_interval_s"]

log = logging.getLogger(__name__)

#: The shortest ping interval honoured, whatever ``WATCHDOG_USEC`` says.
MIN_INTERVAL_S = 0.05
#: STATUS= is one line; systemd shows it in ``systemctl status``.  Longer texts are cut.
MAX_STATUS_CHARS = 400

_ENV_KEYS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def _address(value: str | None) -> str | None:
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # vsock: and other forms are not used on this appliance


class Notifier:
    """Sends notifications to the service manager; a no-op without an address."""

    def __init__(self, address: str | None) -> None:
        """``address``: the value of ``NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract
        socket), or None."""
        self._address = _address(address)
        if address and self._address is None:
            log.warning("NOTIFY_SOCKET of an unsupported kind; service manager notifications are off", extra=event("notify.unsupported_socket"))
        self._sock: socket.socket | None = None
        self._failing = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines in one datagram, e.g. ``send(READY=1, STATUS="ready")``.
        Returns True when the datagram was handed to the socket."""
        if self._address is None or not fields:
            return False
        lines = []
        for key, value in fields.items():
            text = " ".join(str(value).split()) if key == "STATUS" else str(value)  # one line
            if key == "STATUS" and len(text) > MAX_STATUS_CHARS:
                text = text[: MAX_STATUS_CHARS - 1] + "…"
            lines.append(f"{key}={text}")
        payload = ("\n".join(lines) + "\n").encode("utf-8")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
            self._sock.sendto(payload, self._address)
        except OSError as exc:
            if not self._failing:  # once per outage, not once per ping
                log.warning("service manager notification failed (%s)", type(exc).__name__, extra=event("notify.failed"))
            self._failing = True
            return False
        if self._failing:
            log.info("service manager notifications delivered again", extra=event("notify.recovered"))
        self._failing = False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval_s(environ: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """How often to send ``WATCHDOG=1``: half of ``WATCHDOG_USEC``, or None when no watchdog is
    configured for this process (unset, unparsable, zero, or ``WATCHDOG_PID`` naming another)."""
    env = os.environ if environ is None else environ
    usec_text = env.get("WATCHDOG_USEC", "")
    pid_text = env.get("WATCHDOG_PID", "")
    if pid_text:
        try:
            if int(pid_text) != (os.getpid() if pid is None else pid):
                return None
        except ValueError:
            return None
    try:
        usec = int(usec_text)
    except ValueError:
        return None
    if usec <= 0:
        return None
    return max(usec / 2 / 1_000_000, MIN_INTERVAL_S)


def forget_environ(environ: dict[str, str] | os._Environ[str] | None = None) -> None:
    """Remove the service manager's variables, so that no child process sends in our name."""
    env = os.environ if environ is None else environ
    for key in _ENV_KEYS:
        env.pop(key, None)
