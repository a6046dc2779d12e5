"""A service manager's notification socket of the tests' own: an AF_UNIX datagram socket bound
at a path or an abstract name, read on a thread, every datagram kept with its arrival time and
the sender's pid (SO_PASSCRED), as systemd sees them."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

_CREDS = struct.Struct("iII")  # struct ucred: pid, uid, gid


@dataclass(frozen=True)
class Datagram:
    at_s: float  # time.monotonic() on arrival
    pid: int | None
    fields: dict[str, str]


class NotifyListener:
    """Binds ``address`` (a path or ``@name``) and collects what arrives until closed."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self._sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self._sock.settimeout(0.05)
        self._lock = threading.Lock()
        self._got: list[Datagram] = []
        #: Called on the reading thread with each datagram as it arrives.
        self.on_datagram: Callable[[Datagram], None] | None = None
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, name="notify-listener", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data, ancdata, _, _ = self._sock.recvmsg(4096, socket.CMSG_SPACE(_CREDS.size))
            except TimeoutError:
                continue
            except OSError:
                return
            pid = None
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = _CREDS.unpack(payload[: _CREDS.size])[0]
            fields = dict(line.split("=", 1) for line in data.decode("utf-8").splitlines() if "=" in line)
            datagram = Datagram(time.monotonic(), pid, fields)
            if self.on_datagram is not None:
                self.on_datagram(datagram)
            with self._lock:
                self._got.append(datagram)

    @property
    def datagrams(self) -> list[Datagram]:
        with self._lock:
            return list(self._got)

    def values(self, key: str) -> list[str]:
        return [d.fields[key] for d in self.datagrams if key in d.fields]

    def times(self, key: str) -> list[float]:
        return [d.at_s for d in self.datagrams if key in d.fields]

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Poll ``predicate`` until it holds or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        self._sock.close()
