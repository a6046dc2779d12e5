"""Log lines as journal entries: a ``MESSAGE_ID`` per event kind and a priority by severity.

Every log call in the product names its event kind::

    log.warning("link %s down", channel, extra=event("link.down"))

The kind must be in :data:`CATALOG` (a test checks every call site); its ``MESSAGE_ID`` is a
UUID derived from the name, so it is stable across versions and the same on every appliance, and
an operator or a SIEM can select one kind with ``journalctl MESSAGE_ID=…``.  Under journald (our
stderr is the journal stream systemd gave us, ``$JOURNAL_STREAM``) entries are sent natively with
the fields ``MESSAGE``, ``MESSAGE_ID``, ``PRIORITY``, ``CS_EVENT``, ``SYSLOG_IDENTIFIER``,
``LOGGER``, ``CODE_FILE``/``CODE_LINE``/``CODE_FUNC`` and ``THREAD_NAME``; the format arguments
and exception objects are deliberately not sent as separate fields.  Without journald the same
lines go to stderr as plain text with the event kind.  Log messages never carry personal data,
PINs or keys: they are written by us from counts, codes, role names and labels.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import IO

__all__ = ["CATALOG", "JournalFormatter", "StructuredJournalHandler", "configure_logging", "event", "message_id", "under_journald"]

#: The namespace of every MESSAGE_ID: uuid5(NAMESPACE, event name).
NAMESPACE = uuid.UUID("6a0e2f3c-7c1b-4d55-9a43-c5e1d0b8a917")

#: Every event kind the product logs, with what it means for the operator.
CATALOG: Mapping[str, str] = MappingProxyType(
    {
        # daemon lifecycle
        "csd.hygiene": "Process hygiene applied at start (core dumps off, umask, memory lock).",
        "csd.hygiene_refused": "The daemon refused to start (for example: run as root).",
        "csd.config_refused": "The configuration file was refused; the daemon did not start.",
        "csd.storage_open": "The store was opened.",
        "csd.hsm_ready": "The HSM session is logged in and its self-test passed.",
        "csd.ready": "The daemon is ready and serving.",
        "csd.start_failed": "The daemon could not reach ready.",
        "csd.stopping": "A stop was requested; intake is closed and sessions drain.",
        "csd.stop_overrun": "A step of the stop took longer than its bound.",
        "csd.stopped": "The daemon stopped cleanly.",
        "csd.memory_unlocked": "Memory holding keys could not be locked against swap.",
        # service
        "service.failure": "A storage or HSM operation of the service failed.",
        "service.intake_failed": "A group of updates from a peer could not be applied.",
        "service.group_applied": "A group of updates was committed (debug).",
        "service.ack_beyond_end": "A peer acknowledged outbox entries beyond the last one.",
        "retention.run": "A retention run finished; counts per class, epochs destroyed.",
        "retention.failed": "A retention run failed; it is retried at the next interval.",
        "keyring.epoch_erased": "A data key's epoch key is gone; its data is treated as erased.",
        "keyring.sealed": "The keyring was sealed; personal data is refused until restart.",
        "keyring.epoch_destroyed": "An epoch key was destroyed in the HSM (cryptographic erase).",
        "keyring.data_key_created": "A new data key was created and wrapped by the HSM.",
        # links
        "link.consistency_requested": "A peer requested consistency check data.",
        "link.connected": "A peer connected to an inbound link.",
        "link.uncommitted_at_close": "A session closed with updates not committed; the peer resends.",
        "link.message_refused": "A message from a peer was refused with an error code.",
        "link.service_unavailable": "Updates were refused because the service is unavailable.",
        "link.commit_failed": "A commit failed unexpectedly; the session was closed.",
        "link.update_refused": "An update from the register was refused (invalid, conflict, prohibited).",
        "link.down": "An outbound link is down and will retry.",
        "link.not_pinned": "A peer's certificate is not pinned; the link refuses it.",
        "link.up": "An outbound link is up and sending.",
        "link.ack_timeout": "An outbound link got no acknowledgement in time and reconnects.",
        "link.ack_unsent": "A peer acknowledged entries never sent.",
        "link.batch_refused": "A peer refused a batch.",
        "link.no_role": "A pinned certificate has no role on this listener.",
        "link.session_error": "A link session ended by an unexpected error.",
        # watchdog
        "watchdog.failed": "The watchdog itself failed; pings stopped.",
        "watchdog.check_failed": "A health check failed; pings stop and systemd restarts the service.",
        "watchdog.degraded": "A health check is degraded but safe; pings go on.",
        "watchdog.check_ok": "A health check is healthy again.",
        "watchdog.pings_stopped": "Watchdog pings stopped.",
        "watchdog.pings_resumed": "Watchdog pings resumed.",
        "watchdog.probe_failed": "A health probe raised (debug).",
        "notify.unsupported_socket": "NOTIFY_SOCKET is of an unsupported kind.",
        "notify.failed": "A service manager notification failed.",
        "notify.recovered": "Service manager notifications are delivered again.",
        # machine room
        "room.started": "The machine-room service started (counts of doors, cameras, sensors, badges, open alarms).",
        "room.stopped": "The machine-room service stopped.",
        "room.alarm_raised": "A machine-room alarm was raised (kind, device, alarm ID).",
        "room.alarm_restored": "A machine-room alarm's condition cleared.",
        "room.alarm_acknowledged": "A supervisor acknowledged a machine-room alarm.",
        "room.mqtt_connected": "The machine-room MQTT broker connection is up.",
        "room.mqtt_lost": "The machine-room MQTT broker connection was lost; reconnecting with backoff.",
        "room.store_failed": "Machine-room record rows or alarms could not be stored; retried at the next flush.",
        "room.swept": "The machine-room record sweep deleted rows past the retention period.",
        "room.sweep_failed": "The machine-room record sweep failed; retried at the next interval.",
        "room.audit_failed": "The audit trail refused a machine-room entry; it was counted as dropped.",
        "room.adapter_stop_failed": "A machine-room adapter raised while stopping.",
        "room.event_failed": "A machine-room event could not be handled (a bug); it was counted and skipped.",
        "room.alarm_swinging": "A machine-room alarm keeps swinging; its further swings are stored and audited, not journaled.",
        # machine room: OSDP readers
        "room.osdp.started": "The OSDP control panel opened its serial line and polls its readers.",
        "room.osdp.stopped": "The OSDP control panel stopped and closed its serial line.",
        "room.osdp.reader_online": "An OSDP reader is online with the secure channel.",
        "room.osdp.reader_offline": "An OSDP reader stopped answering; it is retried.",
        "room.osdp.install_mode": "A reader answered with the install-mode key; it is not re-keyed.",
        "room.osdp.key_mismatch": "A reader failed the secure-channel handshake with its configured key.",
        "room.osdp.card_unreadable": "A card read failed its Wiegand checks and was dropped.",
        "room.osdp.event_refused": "A malformed OSDP event from a reader was dropped.",
        "room.osdp.stop_overrun": "The OSDP poll thread did not stop within its bound.",
        # console and audit
        "audit.failed": "An audit trail write, checkpoint or read failed; the console refuses until it works.",
        "audit.checkpoint": "The head of the audit chain was signed by the HSM key (seq in the message).",
        "audit.verify_failed": "Audit verification found a broken chain; the message names the first entry.",
        "audit.retention": "Audit entries past the retention period were deleted; a signed anchor keeps the rest verifiable.",
        "console.listening": "The operator console socket is listening.",
        "console.socket_group": "How the console socket admits only the console group (its group, or its directory's under PrivateUsers).",
        "console.peer_refused": "A process outside the console group connected and was refused unread.",
        "console.account_locked": "An operator account locked after repeated wrong passwords.",
        "console.command_failed": "A console command failed unexpectedly (its type is logged, never its data).",
        "console.audit_unavailable": "A console request was refused because the audit trail could not record it.",
    }
)

_KEY = "cs_event"


def event(name: str) -> dict[str, str]:
    """The ``extra=`` of a log call of event kind ``name`` (which must be in the catalogue)."""
    if name not in CATALOG:
        raise KeyError(f"unknown log event kind {name!r}")
    return {_KEY: name}


def message_id(name: str) -> str:
    """The journal ``MESSAGE_ID`` of event kind ``name``: 32 lowercase hex digits."""
    return uuid.uuid5(NAMESPACE, name).hex


_PRIORITIES = ((logging.DEBUG, 7), (logging.INFO, 6), (logging.WARNING, 4), (logging.ERROR, 3), (logging.CRITICAL, 2))


def priority(levelno: int) -> int:
    """syslog priority of a logging level: debug 7, info 6, warning 4, error 3, critical 2."""
    for level, pri in _PRIORITIES:
        if levelno <= level:
            return pri
    return 1


class StructuredJournalHandler(logging.Handler):
    """Sends each record to journald with the fields listed in the module docstring."""

    def __init__(self, identifier: str, send=None) -> None:
        super().__init__()
        if send is None:
            from systemd import journal  # systemd-python; imported only under journald

            send = journal.send
        self._send = send
        self._identifier = identifier

    def emit(self, record: logging.LogRecord) -> None:
        try:
            kind = getattr(record, _KEY, None)
            fields = {
                "PRIORITY": str(priority(record.levelno)),
                "SYSLOG_IDENTIFIER": self._identifier,
                "LOGGER": record.name,
                "THREAD_NAME": record.threadName or "",
                "CODE_FILE": record.pathname,
                "CODE_LINE": record.lineno,
                "CODE_FUNC": record.funcName,
            }
            if kind is not None:
                fields["MESSAGE_ID"] = message_id(kind)
                fields["CS_EVENT"] = kind
            self._send(self.format(record), **fields)
        except Exception:
            self.handleError(record)


class JournalFormatter(logging.Formatter):
    """Plain text for stderr without journald: time, level, logger, event kind, message."""

    def format(self, record: logging.LogRecord) -> str:
        record.cs_event_text = getattr(record, _KEY, "-")
        return super().format(record)


_PLAIN_FORMAT = "%(asctime)s %(levelname)s [%(cs_event_text)s] %(name)s: %(message)s"


def under_journald(stream: IO[str] | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """True when ``stream`` (stderr) is the journal stream systemd connected (``$JOURNAL_STREAM``
    names its device and inode), as sd_journal_stream_fd(3) recommends checking."""
    environ = os.environ if environ is None else environ
    stream = sys.stderr if stream is None else stream
    value = environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(part) for part in value.split(":", 1))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def configure_logging(level: str | int, identifier: str = "csd", *, journal: bool | None = None) -> bool:
    """Route the root logger to journald (natively) or to stderr; returns True for journald."""
    use_journal = under_journald() if journal is None else journal
    handler: logging.Handler
    if use_journal:
        try:
            handler = StructuredJournalHandler(identifier)
        except ImportError:
            use_journal = False
    if not use_journal:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JournalFormatter(_PLAIN_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return use_journal
