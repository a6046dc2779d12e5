"""Named fakes for the edges of the machine-room tests that belong to another branch."""

from __future__ import annotations

from collections.abc import Mapping


class FakeAuditSink:
    """An in-memory stand-in for the console branch's audit trail: records every call."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, str, dict[str, object]]] = []

    async def record(self, kind: str, *, actor: str, subject: str = "", detail: Mapping[str, object] | None = None) -> None:
        self.entries.append((kind, actor, subject, dict(detail or {})))

    def kinds(self) -> list[str]:
        return [e[0] for e in self.entries]
