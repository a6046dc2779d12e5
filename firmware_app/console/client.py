"""The console client (async): connect, read the greeting, send requests with increasing ids."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from firmware_app.console.errors import E_CLOSED, ConsoleError
from firmware_app.console.protocol import MAX_RESPONSE_BYTES, VERSION, Framer, Request, Response, decode_response, encode_request

__all__ = ["ConsoleClient"]


class ConsoleClient:
    """One connection to ``csd``'s console socket; every call bounded by ``timeout_s``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, timeout_s: float) -> None:
        self._reader = reader
        self._writer = writer
        self._framer = Framer(MAX_RESPONSE_BYTES)
        self._frames: list[bytes] = []
        self._next_id = 1
        self._timeout_s = timeout_s
        self.greeting: dict[str, Any] = {}

    @classmethod
    async def connect(cls, path: Path, *, timeout_s: float = 60.0) -> ConsoleClient:
        """Connect and read the greeting; ``ConsoleError`` with the server's code when refused."""
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path), limit=MAX_RESPONSE_BYTES), timeout_s)
        client = cls(reader, writer, timeout_s=timeout_s)
        hello = await client._receive()
        if not hello.ok:
            await client.close()
            assert hello.error is not None
            raise ConsoleError(hello.error.code, hello.error.message)
        client.greeting = dict(hello.result or {})
        return client

    async def _receive(self) -> Response:
        async with asyncio.timeout(self._timeout_s):
            while not self._frames:
                try:
                    data = await self._reader.read(1 << 20)
                except ConnectionError:
                    data = b""
                if not data:
                    raise ConsoleError(E_CLOSED, "the daemon closed the connection")
                self._frames.extend(self._framer.feed(data))
        return decode_response(self._frames.pop(0))

    async def call(self, cmd: str, **args: Any) -> Any:
        """Send one command; its result, or ``ConsoleError(code, message)``."""
        response = await self.exchange(Request(VERSION, self._next_id, cmd, {k: v for k, v in args.items() if v is not None}))
        if not response.ok:
            assert response.error is not None
            raise ConsoleError(response.error.code, response.error.message)
        return response.result

    async def exchange(self, request: Request) -> Response:
        """Send ``request`` as it is (tests send hostile ones) and return the response."""
        self._next_id = max(self._next_id, request.id) + 1
        await self.send_raw(encode_request(request))
        return await self._receive()

    async def send_raw(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            await self._writer.drain()
        except ConnectionError:
            raise ConsoleError(E_CLOSED, "the daemon closed the connection") from None

    async def receive(self) -> Response:
        return await self._receive()

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
