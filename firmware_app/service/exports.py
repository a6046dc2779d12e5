"""Exports of personal data under the two-person rule (PIA: データ出力に際しては、事前に管理責任者の承認を得る).

One operator requests (kind, reason, parameters); a different operator with the approve right
approves or denies; only then may the requester write it, once, within ``approval_valid_s``, sealed
to the configured recipient's X25519 key (the off-site construction).  The requests live in the
``exports`` table with their parameters sealed (they may name residents); each step carries the
operator ID and terminal ID.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass

import msgspec

from firmware_app.clock import Clock
from firmware_app.service.keyring import Keyring, seal_value
from storage import layout
from storage.store import Store, Writer

__all__ = ["EXPORT_KINDS", "ExportBook", "ExportError", "ExportRequest", "SelfApproval"]

#: What may be exported: the consistency-check file, destination records awaiting the card system
#: (to media when the link is down), and a report of named residents' confirmation items.
EXPORT_KINDS = ("check-file", "destinations", "residents")
MAX_REASON_CHARS = 200


class ExportError(Exception):
    """An export step was refused; the message says why (no personal data)."""


class SelfApproval(ExportError):
    """The approver is the requester: the two-person rule needs a second person."""


class ExportRequest(msgspec.Struct, frozen=True):
    export_id: int
    kind: str
    reason: str
    params_sealed: bytes
    state: str  # requested | approved | denied | writing | written
    requested_by: str
    requested_terminal: str
    requested_at: str
    decided_by: str = ""
    decided_terminal: str = ""
    decided_at: str = ""
    written_by: str = ""
    written_at: str = ""
    file_name: str = ""
    file_sha256: str = ""
    size_bytes: int = 0

    def __repr__(self) -> str:
        return f"ExportRequest(export_id={self.export_id}, kind={self.kind!r}, state={self.state!r})"

    def public(self) -> dict[str, object]:
        """What the console shows (never the parameters)."""
        fields = ("export_id", "kind", "reason", "state", "requested_by", "requested_terminal", "requested_at", "decided_by",
                  "decided_terminal", "decided_at", "written_by", "written_at", "file_name", "file_sha256", "size_bytes")
        return {f: getattr(self, f) for f in fields}


@dataclass(frozen=True)
class Step:
    """Who takes a step: operator ID and terminal ID."""

    operator_id: str
    terminal_id: str


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(ExportRequest)
_PARAMS = msgspec.msgpack.Decoder(dict[str, list[str]])


class ExportBook:
    """The export requests and their state machine: requested → approved | denied; approved →
    writing → written (or back to approved when the write fails)."""

    def __init__(self, store: Store, keyring: Keyring, clock: Clock, *, approval_valid_s: float = 86400.0) -> None:
        self._store = store
        self._keyring = keyring
        self._clock = clock
        self.approval_valid_s = approval_valid_s

    def _now(self) -> str:
        return self._clock.now().isoformat(timespec="seconds")

    def request_blocking(self, step: Step, kind: str, reason: str, params: dict[str, list[str]]) -> ExportRequest:
        if kind not in EXPORT_KINDS:
            raise ExportError(f"unknown export kind; kinds are {', '.join(EXPORT_KINDS)}")
        reason = reason.strip()
        if not reason or len(reason) > MAX_REASON_CHARS:
            raise ExportError(f"a reason of 1-{MAX_REASON_CHARS} characters is required")
        plain = _ENCODER.encode(params)
        key = self._keyring.identity_key()

        def write(w: Writer) -> ExportRequest:
            last = w.last(layout.EXPORTS)
            export_id = layout.unpack_u64(last[0]) + 1 if last else 1
            at = layout.pack_u64(export_id)
            sealed = seal_value(key, layout.EXPORTS, at, 1, plain)
            request = ExportRequest(export_id, kind, reason, sealed, "requested", step.operator_id, step.terminal_id, self._now())
            w.put(layout.EXPORTS, at, _ENCODER.encode(request))
            return request

        return self._store.write(write)

    def get_blocking(self, export_id: int) -> ExportRequest:
        with self._store.read() as r:
            value = r.get(layout.EXPORTS, layout.pack_u64(export_id))
        if value is None:
            raise ExportError("no such export request")
        return _DECODER.decode(value)

    def list_blocking(self, *, limit: int = 100) -> list[ExportRequest]:
        with self._store.read() as r:
            return [_DECODER.decode(v) for _, v in r.items(layout.EXPORTS)][-limit:]

    def _change(self, export_id: int, change) -> ExportRequest:  # type: ignore[no-untyped-def]
        def write(w: Writer) -> ExportRequest:
            value = w.get(layout.EXPORTS, layout.pack_u64(export_id))
            if value is None:
                raise ExportError("no such export request")
            new = change(_DECODER.decode(value))
            w.put(layout.EXPORTS, layout.pack_u64(export_id), _ENCODER.encode(new))
            return new

        return self._store.write(write)

    def decide_blocking(self, step: Step, export_id: int, *, approve: bool) -> ExportRequest:
        """Approve or deny; refused to the requester (``SelfApproval``) and once decided."""

        def change(req: ExportRequest) -> ExportRequest:
            if req.requested_by == step.operator_id:
                raise SelfApproval("the requester cannot approve or deny their own export request")
            if req.state != "requested":
                raise ExportError(f"export request is {req.state} already")
            return msgspec.structs.replace(
                req, state="approved" if approve else "denied", decided_by=step.operator_id, decided_terminal=step.terminal_id, decided_at=self._now()
            )

        return self._change(export_id, change)

    def claim_blocking(self, step: Step, export_id: int) -> tuple[ExportRequest, dict[str, list[str]]]:
        """Claim an approved request for writing (approved → writing, atomically, so two writes of
        one approval cannot both start) and return it with its parameters: requester only, while
        the approval is valid."""

        def change(req: ExportRequest) -> ExportRequest:
            if req.requested_by != step.operator_id:
                raise ExportError("only the requester may write an approved export")
            if req.state != "approved":
                raise ExportError(f"export request is {req.state}, not approved")
            decided = datetime.datetime.fromisoformat(req.decided_at)
            if (self._clock.now() - decided).total_seconds() > self.approval_valid_s:
                raise ExportError("the approval has expired; request the export again")
            return msgspec.structs.replace(req, state="writing")

        req = self._change(export_id, change)
        _, plain = self._keyring.open_value(layout.EXPORTS, layout.pack_u64(export_id), req.params_sealed)
        return req, _PARAMS.decode(plain)

    def release_blocking(self, export_id: int) -> ExportRequest:
        """A write that failed gives its claim back (writing → approved)."""

        def change(req: ExportRequest) -> ExportRequest:
            return msgspec.structs.replace(req, state="approved") if req.state == "writing" else req

        return self._change(export_id, change)

    def written_blocking(self, step: Step, export_id: int, file_name: str, sha256: str, size_bytes: int) -> ExportRequest:
        """Record the written file; the approval is used up."""

        def change(req: ExportRequest) -> ExportRequest:
            if req.state != "writing":
                raise ExportError(f"export request is {req.state}, not being written")
            return msgspec.structs.replace(
                req, state="written", written_by=step.operator_id, written_at=self._now(), file_name=file_name, file_sha256=sha256, size_bytes=size_bytes
            )

        return self._change(export_id, change)


def sha256_file(path) -> str:  # type: ignore[no-untyped-def]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
