"""What a command handler is given: who asks, with which rights, and the services to call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware_app.audit.trail import AuditTrail
from firmware_app.clock import Clock
from firmware_app.console.room import RoomPort
from firmware_app.console.session import Session
from firmware_app.operators.registry import Actor, OperatorRecord, OperatorRegistry
from firmware_app.operators.roles import Right
from firmware_app.service.exports import ExportBook
from firmware_app.service.residents import ResidentDirectory


@dataclass
class Services:
    """The daemon's parts the console calls (built by ``ConsoleService.attach``)."""

    registry: OperatorRegistry
    audit: AuditTrail
    residents: ResidentDirectory
    exports: ExportBook
    clock: Clock
    gateway: Any  # firmware_app.service.gateway.Gateway
    daemon: Any  # firmware_app.daemon.Daemon: links, national query, watchdog, keyring state, retention
    store: Any  # for backups (firmware_app.service.backup takes the store and the signer)
    signer: Any
    room: RoomPort | None
    export_dir: Path
    export_recipient_pem: bytes | None
    idle_lock_s: float


@dataclass
class Ctx:
    """One request's context."""

    session: Session
    operator: OperatorRecord
    rights: frozenset[Right]
    services: Services

    @property
    def actor(self) -> Actor:
        return Actor(self.session.operator_id, self.session.terminal_id)

    async def audit(self, kind: str, subject: str = "", /, **detail: str | int | bool | None) -> None:
        """Record ``kind`` by this operator at this terminal (no personal data in ``detail``)."""
        await self.services.audit.record(kind, actor=self.session.operator_id, subject=subject, detail={"terminal": self.session.terminal_id, **detail})
