"""The CS's listening side: mutual TLS 1.3, the peer named by its pinned certificate, one
handler per connection, and a clean stop (no new connections, then the open ones end)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping

from firmware_app.journal import event
from firmware_app.links.connection import Connection
from firmware_app.links.errors import E_NOT_PINNED, ProtocolError
from firmware_app.links.messages import MessageCodec
from firmware_app.links.tls import (
    PeerNotPinned,
    TlsConfig,
    check_pinned,
    server_context,
)

__all__ = ["LinkServer"]

log = logging.getLogger(__name__)

Handler = Callable[[str, Connection], Awaitable[None]]


class LinkServer:
    """Accepts the pinned peers of ``roles`` (certificate SHA-256 → role name, e.g. "register")."""

    def __init__(self, *, host: str, port: int, tls: TlsConfig, roles: Mapping[str, str], handler: Handler, codec: MessageCodec) -> None:
        if not roles or set(roles) - tls.pinned_sha256:
            raise ValueError("every role's pin must be among the TLS config's pins")
        self._host = host
        self._port = port
        self._tls = tls
        self._roles = dict(roles)
        self._handler = handler
        self._codec = codec
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.refused_peers = 0

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        if self._server is None:
            raise RuntimeError("server not started")
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        """Bind and start accepting."""
        self._server = await asyncio.start_server(
            self._accept,
            self._host,
            self._port,
            ssl=server_context(self._tls),
            ssl_handshake_timeout=self._tls.handshake_timeout_s,
            limit=1 << 20,
        )

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = Connection(reader, writer, self._codec, name="inbound")
        try:
            try:
                pin = check_pinned(conn.ssl_object, self._tls)
            except PeerNotPinned:
                self.refused_peers += 1
                log.warning("link refused a peer whose certificate is not pinned", extra=event("link.not_pinned"))
                conn.send_error(ProtocolError(E_NOT_PINNED))
                return
            role = self._roles.get(pin)
            if role is None:
                self.refused_peers += 1
                log.warning("link refused a pinned certificate that has no role here", extra=event("link.no_role"))
                conn.send_error(ProtocolError(E_NOT_PINNED))
                return
            conn.name = role
            await self._handler(role, conn)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("link session ended by an unexpected error", extra=event("link.session_error"))
        finally:
            await conn.close()
            self._tasks.discard(task)

    async def stop_accepting(self) -> None:
        """Close the listening socket; open sessions go on."""
        if self._server is not None:
            self._server.close()

    async def close(self, *, timeout_s: float) -> None:
        """Stop accepting, give open sessions ``timeout_s`` to end, then cancel them.

        Call the sessions' own ``stop`` first so that they stop reading and only finish committing."""
        await self.stop_accepting()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
            for task in pending:
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout_s)
