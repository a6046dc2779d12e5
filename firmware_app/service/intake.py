"""The intake: updates from the register and the national server applied in order, in groups,
each group in one durable LMDB transaction with its history, its outbox entries and the peer's
sequence cursor — so an acknowledgement sent after the commit can never be for something lost,
and a group replayed after a crash is recognised by its sequence numbers and not applied twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import msgspec

from firmware_app.clock import Clock, today_of
from firmware_app.domain.check_item import check_item_of
from firmware_app.domain.destination import DestinationRecord, validate_destination
from firmware_app.domain.errors import InvalidRecord
from firmware_app.domain.notices import (
    CardNotice,
    DestinationNotice,
    Notice,
    encode_entry,
)
from firmware_app.domain.reasons import REASONS, ReasonClass
from firmware_app.domain.record import STATUS_LIVE, STATUS_REMOVED
from firmware_app.domain.retention import destination_due, epoch_period_of, moveout_due
from firmware_app.domain.updates import (
    CardEvent,
    IdentityChange,
    MoveOutCertificate,
    validate_card_event,
    validate_moveout,
)
from firmware_app.domain.validate import validate_record
from firmware_app.journal import event
from firmware_app.service.errors import ServiceError
from firmware_app.service.identity_file import IdentityFile
from firmware_app.service.keyring import Keyring, seal_value
from firmware_app.service.outbox import Outbox
from storage import envelope, layout
from storage.store import Reader, Store, Writer

__all__ = [
    "REFUSE_CONFLICT",
    "REFUSE_INVALID",
    "REFUSE_PROHIBITED",
    "Applied",
    "Intake",
    "IntakeError",
    "Refusal",
    "Update",
]

log = logging.getLogger(__name__)

Update = IdentityChange | CardEvent | DestinationRecord | MoveOutCertificate

#: The update breaks a rule of the domain model (check digit, date, length, reason code…).
REFUSE_INVALID = "invalid_record"
#: The update does not fit the file: a create for a live resident, a change for an unknown one.
REFUSE_CONFLICT = "conflict"
#: The resident's current record carries 更新禁止フラグ; the register must lift it first.
REFUSE_PROHIBITED = "update_prohibited"

_OP_CLASS = {"create": ReasonClass.ENTRY, "modify": ReasonClass.MODIFICATION, "remove": ReasonClass.REMOVAL}
_CODE_CHANGE = "JUMINHYO_CODE_HENKO"
_MOVEOUT_VERSION = 1
_INBOX_PREFIX = b"inbox:"
_MOVEOUT_ENCODER = msgspec.msgpack.Encoder()
_MOVEOUT_DECODER = msgspec.msgpack.Decoder(MoveOutCertificate)

class IntakeError(ServiceError):
    """The intake's own failures (domain, storage and HSM errors pass through unchanged)."""

@dataclass(frozen=True)
class Refusal:
    """Why an update was refused: a stable code and, for an invalid record, the field and item."""

    code: str
    field: str | None = None
    item: int | None = None

@dataclass(frozen=True)
class Applied:
    """The outcome of a group: the first ``count`` updates are committed; ``refusal`` is set when the
    next one was refused (it and everything after it changed nothing)."""

    count: int
    refusal: Refusal | None = None

def _moveout_period(cert: MoveOutCertificate, keep_days: int) -> str:
    return epoch_period_of(moveout_due(cert.planned_moveout_date, keep_days), "moveout")

class Intake:
    """Applies groups of updates from one peer at a time."""

    def __init__(
        self,
        store: Store,
        keyring: Keyring,
        identity_file: IdentityFile,
        *,
        prefecture: Outbox,
        card_system: Outbox,
        clock: Clock,
        moveout_keep_days: int = 30,
    ) -> None:
        self._store = store
        self._keyring = keyring
        self._file = identity_file
        self._prefecture = prefecture
        self._card_system = card_system
        self._clock = clock
        self._moveout_keep_days = moveout_keep_days

    def outbox(self, channel: str) -> Outbox:
        """The outbox of an outbound channel ("prefecture" or "card_system")."""
        if channel == "prefecture":
            return self._prefecture
        if channel == "card_system":
            return self._card_system
        raise KeyError("unknown outbound channel")

    # -- sequence cursors -------------------------------------------------------------------------

    def inbox_next_blocking(self, peer: str) -> int:
        """The first update sequence number from ``peer`` not yet committed (1 for a new peer)."""
        with self._store.read() as r:
            value = r.get(layout.INBOX, _INBOX_PREFIX + peer.encode())
        return 1 if value is None else layout.unpack_u64(value)

    # -- applying ---------------------------------------------------------------------------------

    def apply_blocking(
        self, peer: str, first_seq: int, updates: Sequence[Update], *, acks: Mapping[str, int] | None = None
    ) -> Applied:
        """Apply ``updates`` (sequence numbers ``first_seq``…) in one durable transaction.

        Stops at the first refused update: those before it are committed with the peer's cursor,
        it and those after it change nothing.  Raises ``IntakeError`` when ``first_seq`` is not the
        committed cursor (a second connection of the same peer raced this one).  ``acks`` (outbox
        channel → acknowledged through) are recorded in the same transaction, saving a commit.
        """
        self._keyring.ensure_live()
        today = today_of(self._clock)
        valid, refusal = self._validate(updates, today)
        if any(isinstance(u, IdentityChange) for u in valid):
            self._file.ensure_history_key()
        for u in valid:
            if isinstance(u, MoveOutCertificate):
                self._keyring.epoch_key("moveout", _moveout_period(u, self._moveout_keep_days))
        destination_due_on = destination_due(today)
        if any(isinstance(u, DestinationRecord) for u in valid):
            self._keyring.epoch_key("destination", epoch_period_of(destination_due_on, "destination"))
        inbox_key = _INBOX_PREFIX + peer.encode()

        def write(w: Writer) -> Applied:
            stored = w.get(layout.INBOX, inbox_key)
            if (1 if stored is None else layout.unpack_u64(stored)) != first_seq:
                raise IntakeError("update sequence does not continue the committed cursor")
            notices: list[bytes] = []
            deliveries: list[bytes] = []
            count = 0
            late_refusal = None
            for update in valid:
                late_refusal = self._stage(w, update, notices, deliveries)
                if late_refusal is not None:
                    break
                count += 1
            self._prefecture.stage(w, notices)
            self._stage_deliveries(w, deliveries, valid[:count], destination_due_on)
            for channel, through in (acks or {}).items():
                try:
                    self.outbox(channel).stage_acked(w, through)
                except ValueError:
                    # A peer acknowledged what was never sent; never let that undo this group.
                    log.error("outbox %s: acknowledgement beyond the last entry ignored", channel, extra=event("service.ack_beyond_end"))
            if count:
                w.put(layout.INBOX, inbox_key, layout.pack_u64(first_seq + count))
            return Applied(count, late_refusal or (refusal if count == len(valid) else None))

        return self._store.write(write)

    def _stage_deliveries(self, w: Writer, deliveries: list[bytes], applied: Sequence[Update], due_on: str) -> None:
        """Card events under the outbox key; destination records under their month's epoch key and
        on the expiry schedule, so they are gone within the year even if never acknowledged."""
        is_destination = [isinstance(u, DestinationRecord) for u in applied if isinstance(u, (CardEvent, DestinationRecord))]
        if not any(is_destination):
            self._card_system.stage(w, deliveries)
            return
        epoch = self._keyring.epoch_key("destination", epoch_period_of(due_on, "destination"), create=False)
        first = self._card_system.stage(w, deliveries, keys=[epoch if d else None for d in is_destination])
        for offset, destination in enumerate(is_destination):
            if destination:
                w.put(layout.EXPIRY, layout.expiry_key(due_on, layout.EXPIRY_DESTINATION, layout.pack_u64(first + offset)), b"")

    def _validate(self, updates: Sequence[Update], today: str) -> tuple[list[Update], Refusal | None]:
        """The updates before the first one that fails validation on its own, and that refusal."""
        for index, update in enumerate(updates):
            try:
                if isinstance(update, IdentityChange):
                    validate_record(update.record, today=today)
                    _check_op(update)
                elif isinstance(update, CardEvent):
                    validate_card_event(update, today=today)
                elif isinstance(update, DestinationRecord):
                    validate_destination(update, today=today)
                else:
                    validate_moveout(update, today=today)
            except InvalidRecord as exc:
                return list(updates[:index]), Refusal(REFUSE_INVALID, exc.field, exc.item if isinstance(exc.item, int) else None)
        return list(updates), None

    def _stage(self, w: Writer, update: Update, notices: list[bytes], deliveries: list[bytes]) -> Refusal | None:
        if isinstance(update, IdentityChange):
            refusal = self._check_state(w, update)
            if refusal is not None:
                return refusal
            self._file.stage_change(w, update.record)
            notices.append(encode_entry(Notice(update.op, check_item_of(update.record))))
            if update.record.change_reason == "TOKUREI_TENNYU":
                # The move-in is filed: the certificate has been handed over and is not kept.
                w.delete(layout.MOVEOUT, layout.pack_code(update.record.resident_code))
        elif isinstance(update, CardEvent):
            deliveries.append(encode_entry(CardNotice(update.kind, update.resident_code, update.occurred_on)))
        elif isinstance(update, DestinationRecord):
            deliveries.append(encode_entry(DestinationNotice(update)))
        else:
            self._stage_moveout(w, update)
        return None

    def _check_state(self, w: Writer, change: IdentityChange) -> Refusal | None:
        code5 = layout.pack_code(change.record.resident_code)
        current = w.get(layout.IDENTITY, code5)
        if (current is None) != (change.op == "create"):
            return Refusal(REFUSE_CONFLICT, "resident_code", 1)
        if current is not None and self._file.current_of(code5, current).record.update_prohibited == "1":
            return Refusal(REFUSE_PROHIBITED, "update_prohibited", 31)
        return None

    def _stage_moveout(self, w: Writer, cert: MoveOutCertificate) -> None:
        key = self._keyring.epoch_key("moveout", _moveout_period(cert, self._moveout_keep_days), create=False)
        code5 = layout.pack_code(cert.resident_code)
        w.put(layout.MOVEOUT, code5, seal_value(key, layout.MOVEOUT, code5, _MOVEOUT_VERSION, _MOVEOUT_ENCODER.encode(cert)))
        due = moveout_due(cert.planned_moveout_date, self._moveout_keep_days)
        w.put(layout.EXPIRY, layout.expiry_key(due, layout.EXPIRY_MOVEOUT, code5), b"")

    # -- hand-over ----------------------------------------------------------------------------------

    def _moveout_in(self, r: Reader, code5: bytes) -> MoveOutCertificate | None:
        """The certificate stored under ``code5``, opened (None: none, or its epoch erased)."""
        value = r.get(layout.MOVEOUT, code5)
        if value is None:
            return None
        if self._keyring.erased(envelope.unpack(value).key_id):
            return None
        _, plaintext = self._keyring.open_value(layout.MOVEOUT, code5, value)
        return _MOVEOUT_DECODER.decode(plaintext)

    def moveout_due_in(self, r: Reader, code5: bytes) -> str | None:
        """The day the certificate stored under ``code5`` falls due (None: none, or erased)."""
        cert = self._moveout_in(r, code5)
        return None if cert is None else moveout_due(cert.planned_moveout_date, self._moveout_keep_days)

    def moveout_for_blocking(self, resident_code: str) -> MoveOutCertificate | None:
        """The move-out certificate waiting for ``resident_code``'s special move-in, if any."""
        self._keyring.ensure_live()
        with self._store.read() as r:
            return self._moveout_in(r, layout.pack_code(resident_code))

def _check_op(change: IdentityChange) -> None:
    """The operation must agree with the change reason's class and the record status."""
    record = change.record
    reason = REASONS[record.change_reason]  # validate_record has refused unknown codes
    # A resident-code change (住民票コードの記載の変更) keeps the person under a new code: the new
    # code's record is created with that modification reason and names the former code.
    code_change = change.op == "create" and record.change_reason == _CODE_CHANGE and bool(record.former_resident_code)
    if reason.reason_class is not _OP_CLASS[change.op] and not code_change:
        raise InvalidRecord("change_reason", "reason class does not match the operation", 21)
    wanted = STATUS_REMOVED if change.op == "remove" else STATUS_LIVE
    if record.record_status != wanted:
        raise InvalidRecord("record_status", "status does not match the operation", 35)
