"""The retention engine: deletes what has passed its period, by itself, and says what it deleted.

One run, for ``today`` (from the clock):
1. history versions whose due date (the notice that superseded or removed them + 150 years,
   住基法施行令 第34条) is today or earlier: the version and its schedule entry, in batches;
2. move-out certificates past their planned move-out date + the configured days, unused;
3. destination records the card system has not acknowledged within the year: replaced in the
   outbox by a tombstone (the sequence stays whole, the personal data goes);
4. acknowledged outbox entries left behind (normally none: an acknowledgement deletes them);
5. epochs whose every date has passed: the epoch key is destroyed in the HSM (cryptographic
   erase), so the records under it are unreadable in every copy, backups included.

Each batch is one durable transaction that deletes records together with their schedule entries,
so a run killed at any moment resumes where it stopped and a second run finds nothing more to do
(idempotent).  The report holds counts and epoch labels only, never personal data; it is kept in
``meta`` (and goes to the audit trail when that exists, issue 5).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field

from firmware_app.clock import Clock, today_of
from firmware_app.domain.notices import Expired, encode_entry
from firmware_app.domain.retention import epoch_over
from firmware_app.journal import event
from firmware_app.service.intake import Intake
from firmware_app.service.keyring import Keyring
from storage import layout
from storage.store import Store, Writer

__all__ = ["RETENTION_CLASSES", "RetentionReport", "RetentionSweep"]

log = logging.getLogger(__name__)

#: The classes whose epochs this engine erases (audit and physical come with issues 5 and 6).
RETENTION_CLASSES = ("history", "moveout", "destination")
DEFAULT_BATCH = 10_000
_REPORT_PREFIX = b"retention_report:"


@dataclass
class RetentionReport:
    """What one run deleted, per class, and which epoch keys it destroyed."""

    run_on: str
    history_versions: int = 0
    moveout_certificates: int = 0
    destination_records: int = 0
    outbox_entries: int = 0
    epochs_destroyed: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


class RetentionSweep:
    """Runs the retention schedule against one store."""

    def __init__(self, store: Store, keyring: Keyring, intake: Intake, clock: Clock, *, batch: int = DEFAULT_BATCH) -> None:
        self._store = store
        self._keyring = keyring
        self._intake = intake
        self._clock = clock
        self._batch = batch

    def run_blocking(self) -> RetentionReport:
        """One whole run (see the module docstring); safe to repeat and to interrupt."""
        self._keyring.ensure_live()
        today = today_of(self._clock)
        report = RetentionReport(today)
        report.history_versions = self._drain(lambda w: self._history_batch(w, today))
        self._drain(lambda w: self._expiry_batch(w, today, report))
        report.outbox_entries = self._acknowledged_leftovers()
        for retention_class in RETENTION_CLASSES:
            for period in self._keyring.epoch_periods(retention_class):
                if epoch_over(period, today):
                    report.epochs_destroyed.append(self._keyring.destroy_epoch_blocking(retention_class, period))
        self._keyring.purge_destroyed_blocking()
        self._store.write(lambda w: w.put(layout.META, _REPORT_PREFIX + today.encode(), report.to_json().encode()))
        log.info(
            "retention run %s: %d history versions, %d move-out certificates, %d destination records, "
            "%d outbox entries deleted; %d epoch keys destroyed",
            today, report.history_versions, report.moveout_certificates, report.destination_records,
            report.outbox_entries, len(report.epochs_destroyed),
            extra=event("retention.run"),
        )
        return report

    def _drain(self, batch) -> int:  # type: ignore[no-untyped-def]
        total = 0
        while True:
            done = self._store.write(batch)
            total += done
            if done < self._batch:
                return total

    def _history_batch(self, w: Writer, today: str) -> int:
        """Delete up to one batch of due history versions with their schedule entries."""
        stop = today.encode() + b"\xff"  # every key whose due date is today or earlier
        # History is keyed by deletion date: the due versions are the front of the table, deleted
        # with one cursor, page after page; their index entries (small) are deleted in key order.
        keys = w.pop_range(layout.HISTORY, b"", stop, self._batch)
        w.delete_sorted(layout.HISTORY_INDEX, sorted(key[8:] for key in keys))
        return len(keys)

    def _expiry_batch(self, w: Writer, today: str, report: RetentionReport) -> int:
        """Move-out certificates and unacknowledged destination records that fell due."""
        entries = w.pop_range(layout.EXPIRY, b"", today.encode() + b"\xff", self._batch)
        outbox = self._intake.outbox("card_system")
        tombstone = encode_entry(Expired())
        for key in entries:
            kind, subject = key[8:9], key[9:]
            if kind == layout.EXPIRY_MOVEOUT:
                # A certificate replaced since has its own, later entry: only a due one goes.
                due = self._intake.moveout_due_in(w, subject)
                if due is not None and due <= today:
                    w.delete(layout.MOVEOUT, subject)
                    report.moveout_certificates += 1
            elif kind == layout.EXPIRY_DESTINATION:
                if outbox.replace_entry(w, layout.unpack_u64(subject), tombstone):
                    report.destination_records += 1
        return len(entries)

    def _acknowledged_leftovers(self) -> int:
        def write(w: Writer) -> int:
            deleted = 0
            for channel in ("prefecture", "card_system"):
                outbox = self._intake.outbox(channel)
                acked = outbox.state_in(w).acked_through
                deleted += len(w.pop_range(outbox.table, b"", layout.pack_u64(acked + 1), self._batch))
            return deleted

        return self._store.write(write)

    def reports_blocking(self) -> list[RetentionReport]:
        """Every stored run report, oldest first."""
        with self._store.read() as r:
            return [RetentionReport(**json.loads(value)) for _, value in r.prefix(layout.META, _REPORT_PREFIX)]

