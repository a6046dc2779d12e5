"""The prefecture server simulator: keeps its own copy of the municipality's residents from the
CS's signed notices, applied once each and in order (and can be told to misbehave)."""

from __future__ import annotations

from collections.abc import Callable

from firmware_app.domain.check_item import CheckItem
from firmware_app.domain.notices import Notice, decode_entry
from firmware_app.links.tls import TlsConfig
from peers.receiver import Faults, OutboxReceiver

__all__ = ["PrefectureSim"]


class PrefectureSim:
    """``copy`` maps resident code → the nine items the CS last notified."""

    def __init__(
        self,
        *,
        tls: TlsConfig,
        cs_public_key_der: bytes,
        host: str = "127.0.0.1",
        port: int = 0,
        on_applied: Callable[[int, int], None] | None = None,
    ) -> None:
        self.copy: dict[str, CheckItem] = {}
        self.last_seq = 0
        self.out_of_order = 0
        self.receiver = OutboxReceiver(
            channel="prefecture", tls=tls, cs_public_key_der=cs_public_key_der, apply=self._apply, host=host, port=port, on_applied=on_applied
        )

    @property
    def faults(self) -> Faults:
        return self.receiver.faults

    @property
    def port(self) -> int:
        return self.receiver.port

    async def start(self) -> None:
        await self.receiver.start()

    async def close(self) -> None:
        await self.receiver.close()

    def _apply(self, seq: int, entry: bytes) -> None:
        if seq != self.last_seq + 1:
            self.out_of_order += 1
        self.last_seq = seq
        notice = decode_entry(entry)
        if not isinstance(notice, Notice):
            raise ValueError("the prefecture takes notices only")
        if notice.op == "remove":
            self.copy.pop(notice.item.resident_code, None)
        else:
            self.copy[notice.item.resident_code] = notice.item
