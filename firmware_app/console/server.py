"""The Unix-socket adapter: checks the peer's credentials (SO_PEERCRED and SO_PEERGROUPS) against
the console group BEFORE reading a byte, then passes frames to the dispatcher.

Under the shipped unit (``PrivateUsers=yes``) csd runs in a user namespace that maps only root and
its own user and group: the console group and every operator's ids read as the overflow id there,
so the daemon cannot check the group itself and cannot chown the socket to it.  The check is then
the kernel's, on the file system, before the connection exists: the socket's directory is
``2750 cs-appliance:cs-console`` (tmpfiles.d, setgid, so the socket inherits the group) and the
socket ``0660``; a process outside the group gets EACCES from ``connect()``.  The daemon detects
the case from ``/proc/self/gid_map`` and says so once at start."""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from firmware_app.console.errors import E_PEER_REFUSED, E_TOO_LARGE, ConsoleError
from firmware_app.console.protocol import MAX_REQUEST_BYTES, Framer, encode_response, failed
from firmware_app.journal import event

__all__ = ["ConsoleServer", "PeerCredentials", "peer_credentials"]

log = logging.getLogger(__name__)

_SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)  # Linux ≥ 4.13
_UCRED = struct.Struct("3i")
_READ_BYTES = 64 * 1024


@dataclass(frozen=True)
class PeerCredentials:
    pid: int
    uid: int
    gid: int
    groups: tuple[int, ...]

    def describe(self) -> str:
        return f"uid={self.uid},pid={self.pid}"


def gid_mapped(gid: int, gid_map: str | None = None) -> bool:
    """True when ``gid`` (as the system's group database names it) is mapped in this process's
    user namespace (``/proc/self/gid_map``: inside, outside, count per line)."""
    if gid_map is None:
        try:
            gid_map = Path("/proc/self/gid_map").read_text()
        except OSError:
            return True  # no user namespaces here: ids are the system's
    for line in gid_map.splitlines():
        fields = line.split()
        if len(fields) == 3:
            inside, outside, count = (int(f) for f in fields)
            if inside == outside and outside <= gid < outside + count:
                return True
    return False


def peer_credentials(sock: socket.socket) -> PeerCredentials:
    """The connecting process's pid, uid, primary gid and supplementary groups, from the kernel."""
    pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    groups: tuple[int, ...] = ()
    with contextlib.suppress(OSError):
        raw = sock.getsockopt(socket.SOL_SOCKET, _SO_PEERGROUPS, 4 * 256)
        groups = tuple(array.array("I", raw[: len(raw) - len(raw) % 4]))
    return PeerCredentials(pid, uid, gid, groups)


Handler = Callable[[PeerCredentials, "Connection"], Awaitable[None]]


class Connection:
    """One accepted console connection: frames in, frames out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._framer = Framer(MAX_REQUEST_BYTES)
        self._frames: list[bytes] = []

    async def recv(self) -> bytes | None:
        """The next request body, or None at end of stream; ``ConsoleError`` on an oversized frame."""
        while not self._frames:
            data = await self._reader.read(_READ_BYTES)
            if not data:
                return None
            self._frames.extend(self._framer.feed(data))
        return self._frames.pop(0)

    async def send(self, frame: bytes) -> None:
        self._writer.write(frame)
        await self._writer.drain()

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()


class ConsoleServer:
    """Listens on ``path`` (mode 0660, group ``gid``); refuses peers outside ``gid`` unread."""

    def __init__(
        self, path: Path, gid: int, handler: Handler, *, on_refused: Callable[[PeerCredentials, str], Awaitable[None]], max_connections: int = 16
    ) -> None:
        self._path = path
        self._gid = gid
        self._handler = handler
        self._on_refused = on_refused
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = max_connections
        #: False under PrivateUsers=yes: the kernel's permission check on the socket is the gate.
        self.checks_groups = gid_mapped(gid)

    def allowed(self, creds: PeerCredentials) -> bool:
        if not self.checks_groups:
            return True  # connect() already required the console group (module docstring)
        return creds.gid == self._gid or self._gid in creds.groups

    async def start(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if self._path.is_socket():
                self._path.unlink()  # a stale socket of an earlier run
        self._server = await asyncio.start_unix_server(self._accept, path=str(self._path))
        os.chmod(self._path, 0o660)
        if self.checks_groups:
            try:
                os.chown(self._path, -1, self._gid)
            except PermissionError:
                log.warning("console socket could not be given group %d; its directory's group applies", self._gid, extra=event("console.socket_group"))
        else:
            log.info(
                "console group %d is not mapped in this user namespace (PrivateUsers=yes): the socket's "
                "directory permissions admit its members only", self._gid, extra=event("console.socket_group"),
            )
        log.info("console listening on %s", self._path, extra=event("console.listening"))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        conn = Connection(reader, writer)
        try:
            creds = peer_credentials(writer.get_extra_info("socket"))
            refusal = None
            if not self.allowed(creds):
                refusal = "not a member of the console group"
            elif len(self._tasks) >= self._slots:
                refusal = "too many console connections"
            if refusal is not None:
                # Nothing is read from a refused peer: the refusal is written and the socket closed.
                await self._on_refused(creds, refusal)
                with contextlib.suppress(ConnectionError):
                    await conn.send(encode_response(failed(0, E_PEER_REFUSED, refusal)))
                return
            self._tasks.add(task)
            await self._handler(creds, conn)
        except ConsoleError as exc:
            if exc.code == E_TOO_LARGE:
                with contextlib.suppress(ConnectionError):
                    await conn.send(encode_response(failed(0, exc.code, str(exc))))
        except (ConnectionError, asyncio.CancelledError):
            pass  # the peer went away, or the server is stopping: this task ends here either way
        finally:
            self._tasks.discard(task)
            await conn.close()

    async def stop(self) -> None:
        """Stop accepting, end every open connection, remove the socket."""
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()
