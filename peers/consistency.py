"""The requesting side of the consistency check, as the prefecture and the national server run
it against a CS: fetch and verify the full signed check data, or find exactly the residents that
differ from a local copy by the range-digest exchange, counting every byte on the wire."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass

from firmware_app.consistency.range_digest import RangeTree, leaf_digest
from firmware_app.consistency.reconcile import Reconciler
from firmware_app.domain.check_item import CheckItem, decode_check_item, encode_check_item
from firmware_app.links.connection import Connection
from firmware_app.links.errors import ConnectionClosed
from firmware_app.links.messages import (
    MAX_ITEMS_CODES,
    CheckChunk,
    CheckEnd,
    CheckRequest,
    DigestReply,
    DigestRequest,
    ErrorReport,
    ItemsReply,
    ItemsRequest,
    Message,
    MessageCodec,
    Resume,
)
from firmware_app.links.outbound import Endpoint
from firmware_app.links.tls import TlsConfig, check_pinned, client_context
from firmware_app.service.check_data import CheckDataVerifier, decode_trailer, iter_framed_items

__all__ = ["ConsistencyClient", "FullCheck", "Reconciliation", "tree_of"]


@dataclass(frozen=True)
class FullCheck:
    """A verified full check: the items by code, and the bytes the link carried."""

    items: dict[str, bytes]
    bytes_in: int


@dataclass(frozen=True)
class Reconciliation:
    """What the range-digest exchange found, with the CS's current items of those residents."""

    differences: set[int]
    cs_items: dict[int, CheckItem]
    bytes_moved: int
    round_trips: int


def tree_of(items: Mapping[str, CheckItem]) -> RangeTree:
    """The range-digest tree of a local copy (same leaves as the CS computes for equal items)."""
    leaves = sorted((int(code), leaf_digest(int(code), encode_check_item(item))) for code, item in items.items())
    return RangeTree.build(leaves)


class ConsistencyClient:
    """One requester's connection to a CS (opened per call, closed after)."""

    def __init__(self, endpoint: Endpoint, tls: TlsConfig, cs_public_key_der: bytes, *, timeout_s: float = 120.0) -> None:
        self._endpoint = endpoint
        self._tls = tls
        self._public_key = cs_public_key_der
        self._codec = MessageCodec()
        self._timeout_s = timeout_s
        self._ids = itertools.count(1)

    async def _connect(self) -> Connection:
        ep = self._endpoint
        reader, writer = await asyncio.open_connection(ep.host, ep.port, ssl=client_context(self._tls), server_hostname=ep.server_name, limit=1 << 21)
        conn = Connection(reader, writer, self._codec, name="consistency")
        check_pinned(conn.ssl_object, self._tls)
        return conn

    @staticmethod
    async def _reply(conn: Connection, request_id: int) -> Message:
        while True:
            msg = await conn.recv()
            if isinstance(msg.body, Resume):
                continue
            if isinstance(msg.body, ErrorReport):
                raise ConnectionClosed(f"CS refused the request: {msg.body.code}")
            if msg.seq != request_id:
                raise ConnectionClosed("reply to another request")
            return msg

    async def full_check(self) -> FullCheck:
        """Fetch the full check data, verify count, digest, signature and our nonce."""
        async with asyncio.timeout(self._timeout_s):
            conn = await self._connect()
            try:
                context = os.urandom(16)
                request_id = next(self._ids)
                conn.send("check_request", request_id, CheckRequest(context))
                verifier = CheckDataVerifier(self._public_key, context=context)
                items: dict[str, bytes] = {}
                while True:
                    msg = await self._reply(conn, request_id)
                    if isinstance(msg.body, CheckChunk):
                        verifier.feed(msg.body.framed)
                        for item in iter_framed_items(msg.body.framed):
                            items[decode_check_item(item).resident_code] = item
                    elif isinstance(msg.body, CheckEnd):
                        verifier.finish(decode_trailer(msg.body.trailer))
                        return FullCheck(items, conn.bytes_in)
                    else:
                        raise ConnectionClosed("unexpected message during check data")
            finally:
                await conn.close()

    async def reconcile(self, local: Mapping[str, CheckItem]) -> Reconciliation:
        """Find the residents whose items differ between ``local`` and the CS, and fetch the CS's."""
        async with asyncio.timeout(self._timeout_s):
            reconciler = Reconciler(tree_of(local))
            conn = await self._connect()
            try:
                while (request := reconciler.next_request()) is not None:
                    request_id = next(self._ids)
                    conn.send("digest_request", request_id, DigestRequest(request))
                    msg = await self._reply(conn, request_id)
                    if not isinstance(msg.body, DigestReply):
                        raise ConnectionClosed("unexpected message during the digest exchange")
                    reconciler.receive(msg.body.response)
                differences = reconciler.differences()
                cs_items: dict[int, CheckItem] = {}
                codes = sorted(differences)
                for start in range(0, len(codes), MAX_ITEMS_CODES):
                    request_id = next(self._ids)
                    conn.send("items_request", request_id, ItemsRequest(codes[start : start + MAX_ITEMS_CODES]))
                    msg = await self._reply(conn, request_id)
                    if not isinstance(msg.body, ItemsReply):
                        raise ConnectionClosed("unexpected message while fetching items")
                    for item in iter_framed_items(msg.body.framed):
                        decoded = decode_check_item(item)
                        cs_items[int(decoded.resident_code)] = decoded
                return Reconciliation(differences, cs_items, conn.bytes_in + conn.bytes_out, reconciler.round_trips)
            finally:
                await conn.close()
