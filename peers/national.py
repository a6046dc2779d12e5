"""The national server simulator (機構): the card system that takes the CS's destination records
and card events, the identity query service, and the sender of move-out certificates ahead of
card holders' special move-ins."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from firmware_app.domain.check_item import CheckItem, check_item_of
from firmware_app.domain.notices import CardNotice, DestinationNotice, Expired, decode_entry
from firmware_app.domain.record import IdentityRecord
from firmware_app.domain.updates import MoveOutCertificate
from firmware_app.links.connection import Connection
from firmware_app.links.messages import Message, Query, QueryResult
from firmware_app.links.outbound import Endpoint
from firmware_app.links.tls import TlsConfig
from peers.receiver import Faults, OutboxReceiver
from peers.register import RegisterClient

__all__ = ["NationalSim", "moveout_certificate_of"]


def moveout_certificate_of(record: IdentityRecord, *, planned_moveout_date: str, from_municipality_code: str) -> MoveOutCertificate:
    """The certificate the former municipality sends for a resident moving in by special move-in."""
    return MoveOutCertificate(
        resident_code=record.resident_code,
        name_kanji=record.name_kanji,
        name_kana=record.name_kana,
        birth_date=record.birth_date,
        sex=record.sex,
        address=record.previous_address or record.address,
        honseki="",
        hittousha="",
        individual_number=record.individual_number,
        former_surname=record.former_surname_kanji,
        from_municipality_code=from_municipality_code,
        to_municipality_code=record.municipality_code,
        planned_moveout_date=planned_moveout_date,
        planned_address=record.address,
    )


class NationalSim:
    """``cards`` and ``destinations`` hold what the card system received, in order; ``known`` is the
    national copy that queries are answered from."""

    def __init__(self, *, tls: TlsConfig, cs_public_key_der: bytes, host: str = "127.0.0.1", port: int = 0) -> None:
        self.cards: list[CardNotice] = []
        self.destinations: list[DestinationNotice] = []
        self.known: dict[str, CheckItem] = {}
        self.by_number: dict[str, str] = {}
        self.queries = 0
        self.expired = 0
        self._tls = tls
        self.receiver = OutboxReceiver(
            channel="card_system", tls=tls, cs_public_key_der=cs_public_key_der, apply=self._apply, host=host, port=port, extra=self._request
        )
        self._sender: RegisterClient | None = None
        self._sender_task: asyncio.Task[None] | None = None

    @property
    def faults(self) -> Faults:
        return self.receiver.faults

    @property
    def port(self) -> int:
        return self.receiver.port

    def know(self, records: Iterable[IdentityRecord]) -> None:
        """Add residents to the national copy that answers queries."""
        for record in records:
            item = check_item_of(record)
            self.known[item.resident_code] = item
            if item.individual_number:
                self.by_number[item.individual_number] = item.resident_code

    async def start(self) -> None:
        await self.receiver.start()

    async def close(self) -> None:
        if self._sender_task is not None:
            self._sender_task.cancel()
            with contextlib.suppress(BaseException):
                await self._sender_task
        await self.receiver.close()

    def _apply(self, seq: int, entry: bytes) -> None:
        notice = decode_entry(entry)
        if isinstance(notice, CardNotice):
            self.cards.append(notice)
        elif isinstance(notice, DestinationNotice):
            self.destinations.append(notice)
        elif isinstance(notice, Expired):
            self.expired += 1
        else:
            raise ValueError("the card system takes card events and destination records only")

    def _request(self, conn: Connection, msg: Message) -> bool:
        if not isinstance(msg.body, Query):
            return False
        self.queries += 1
        conn.send("query_result", msg.seq, QueryResult(self._answer(msg.body)))
        return True

    def _answer(self, query: Query) -> list[CheckItem]:
        if query.by == "code":
            item = self.known.get(query.resident_code)
            return [item] if item else []
        if query.by == "number":
            code = self.by_number.get(query.individual_number)
            return [self.known[code]] if code else []
        hits = [
            item
            for item in self.known.values()
            if (not query.name or item.name == query.name)
            and (not query.sex or item.sex == query.sex)
            and (not query.birth_date or item.birth_date == query.birth_date)
            and (not query.address or item.address == query.address)
        ]
        return hits[:100]

    # -- move-out certificates (national → CS, a sequenced stream like the register's) --------------

    def connect_to_cs(self, endpoint: Endpoint) -> None:
        """Start the sequenced link on which certificates go to the CS."""
        self._sender = RegisterClient(endpoint, self._tls)
        self._sender_task = asyncio.create_task(self._sender.run())

    async def send_certificate(self, cert: MoveOutCertificate, *, timeout_s: float = 10.0) -> None:
        """Send one certificate and wait until the CS has committed it."""
        assert self._sender is not None, "connect_to_cs first"
        seq = self._sender.submit("moveout_certificate", cert)
        await self._sender.wait_acked(seq, timeout_s)
