"""CS → national server identity queries (CS function 5): by resident code, individual number or
the four items, each on a short mutual-TLS connection of its own so a slow query never holds up
the card-system outbox."""

from __future__ import annotations

import asyncio
import itertools

from firmware_app.domain.check_item import CheckItem
from firmware_app.links.connection import Connection
from firmware_app.links.errors import E_MALFORMED, KNOWN_CODES, ProtocolError
from firmware_app.links.messages import ErrorReport, MessageCodec, Query, QueryResult, Resume
from firmware_app.links.outbound import Endpoint
from firmware_app.links.tls import TlsConfig, check_pinned, client_context

__all__ = ["NationalQueryClient", "QueryRefused"]


class QueryRefused(ProtocolError):
    """The national server answered the query with an error code."""


class NationalQueryClient:
    """Asks the national server; every call is bounded by ``timeout_s``."""

    def __init__(self, endpoint: Endpoint, tls: TlsConfig, codec: MessageCodec, *, timeout_s: float = 10.0) -> None:
        self._endpoint = endpoint
        self._tls = tls
        self._codec = codec
        self._timeout_s = timeout_s
        self._ids = itertools.count(1)
        self._ctx = client_context(tls)

    async def query(self, query: Query) -> list[CheckItem]:
        """The residents the national server holds for ``query`` (at most 100)."""
        async with asyncio.timeout(self._timeout_s):
            ep = self._endpoint
            reader, writer = await asyncio.open_connection(ep.host, ep.port, ssl=self._ctx, server_hostname=ep.server_name)
            conn = Connection(reader, writer, self._codec, name="national-query")
            try:
                check_pinned(conn.ssl_object, self._tls)
                request_id = next(self._ids)
                conn.send("query", request_id, query)
                while True:
                    msg = await conn.recv()
                    if isinstance(msg.body, Resume):
                        continue  # the outbox receiver greets every connection; not for queries
                    if isinstance(msg.body, QueryResult) and msg.seq == request_id:
                        return list(msg.body.items)
                    if isinstance(msg.body, ErrorReport):
                        raise QueryRefused(msg.body.code if msg.body.code in KNOWN_CODES else E_MALFORMED)
                    raise ProtocolError(E_MALFORMED)
            finally:
                await conn.close()

