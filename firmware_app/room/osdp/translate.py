"""One reader's libosdp event dicts (and link evidence) to room events: sans-IO, no clock.

libosdp 3.2 hands the control panel plain dicts: ``event`` 1 card read (raw bits), 2 keypad,
4 status report (``type`` 0 inputs, 2 local and 3 remote tamper/power), 5 notification
(``type`` 1 secure channel, 2 reader online).  Input reports are snapshots of every input, so
the translator keeps the last one and emits changes.  Link state joins libosdp's notifications,
the handshake watcher's verdicts and silence on the line; every alarm-worthy change is emitted
once per episode (a reader retried every few seconds in install mode alarms once, not forever).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from firmware_app.room.events import (
    CardPresented,
    DeviceOffline,
    DeviceOnline,
    DoorContact,
    ExitRequest,
    InstallModeSeen,
    KeypadEntry,
    PowerFault,
    ReaderKeyMismatch,
    RoomEvent,
    Tamper,
)
from firmware_app.room.osdp.errors import DecodeError, OsdpError
from firmware_app.room.osdp.handshake import Verdict
from firmware_app.room.osdp.settings import ReaderConfig
from firmware_app.room.osdp.wiegand import decode_card

__all__ = ["Link", "ReaderTranslator"]

_CARD_READ, _KEYPRESS, _STATUS, _NOTIFICATION = 1, 2, 4, 5
_RAW_FORMATS = (0, 1)  # unspecified raw, raw Wiegand (ASCII is deprecated and dropped by libosdp)
_INPUT, _OUTPUT, _LOCAL, _REMOTE = 0, 1, 2, 3
_NOTE_SC, _NOTE_PD = 1, 2
_MAX_KEYS = 64
_KEY_CHARS = {0x7F: "*", 0x0D: "#"} | {c: chr(c) for c in b"0123456789*#"}


class Link(enum.Enum):
    """What the panel knows of a reader's link."""

    UNKNOWN = "unknown"
    ONLINE = "online"
    OFFLINE = "offline"
    INSTALL_MODE = "install_mode"
    KEY_MISMATCH = "key_mismatch"


class ReaderTranslator:
    """The state of one reader as events arrive; each method returns the room events to emit."""

    def __init__(self, reader: ReaderConfig) -> None:
        self.reader = reader
        self.link = Link.UNKNOWN
        self._sc_active = False
        self._inputs: bytes | None = None
        self._flags: dict[str, bool] = {}

    @property
    def _source(self) -> str:
        return f"reader:{self.reader.name}"

    def event(self, ev: Mapping[str, object]) -> list[RoomEvent]:
        """A libosdp event dict; raises DecodeError (bad card) or OsdpError (malformed event)."""
        kind = ev.get("event")
        if kind == _NOTIFICATION:
            return self._notification(ev)
        if not self._sc_active or self.link in (Link.INSTALL_MODE, Link.KEY_MISMATCH):
            raise OsdpError("event from a reader without a secure channel session")
        if kind == _CARD_READ:
            out = self._card(ev)
        elif kind == _KEYPRESS:
            out = self._keys(ev)
        elif kind == _STATUS:
            out = self._status(ev)
        else:
            raise OsdpError("unknown OSDP event kind")
        # libosdp delivers events only within the secure session: a reader marked offline for a
        # silence is back (and nothing it said in between is lost).
        return self.online() + out

    def _card(self, ev: Mapping[str, object]) -> list[RoomEvent]:
        data, length, fmt = ev.get("data"), ev.get("length"), ev.get("format")
        if fmt not in _RAW_FORMATS or not isinstance(data, bytes) or not isinstance(length, int):
            raise DecodeError("card read is not raw bits")
        credential = decode_card(data, length)
        return [CardPresented(self.reader.door, self.reader.name, credential.badge, credential.card_format)]

    def _keys(self, ev: Mapping[str, object]) -> list[RoomEvent]:
        data = ev.get("data")
        if not isinstance(data, bytes) or not 1 <= len(data) <= _MAX_KEYS or any(b not in _KEY_CHARS for b in data):
            raise OsdpError("keypad data is not keypad keys")
        return [KeypadEntry(self.reader.door, self.reader.name, "".join(_KEY_CHARS[b] for b in data))]

    def _status(self, ev: Mapping[str, object]) -> list[RoomEvent]:
        kind, report = ev.get("type"), ev.get("report")
        if not isinstance(report, bytes) or not 1 <= len(report) <= 64:
            raise OsdpError("status report is malformed")
        if kind == _INPUT:
            return self._input_report(report)
        if kind == _LOCAL:
            return self._change("tamper", report[0] != 0, Tamper) + (
                self._change("power", report[1] != 0, PowerFault) if len(report) > 1 else []
            )
        if kind == _REMOTE:
            return self._change("remote_tamper", report[0] != 0, Tamper, "/remote") + (
                self._change("remote_power", report[1] != 0, PowerFault, "/remote") if len(report) > 1 else []
            )
        if kind == _OUTPUT:
            return []
        raise OsdpError("unknown status report type")

    def _input_report(self, report: bytes) -> list[RoomEvent]:
        contact, rex = self.reader.contact_input, self.reader.rex_input
        if max(contact, rex) >= len(report):
            raise OsdpError("input report is shorter than the wired inputs")
        before, self._inputs = self._inputs, report
        out: list[RoomEvent] = []
        if before is None or (before[contact] != 0) != (report[contact] != 0):
            out.append(DoorContact(self.reader.door, report[contact] != 0))
        if before is not None and before[rex] == 0 and report[rex] != 0:
            out.append(ExitRequest(self.reader.door))
        return out

    def _change(self, flag: str, active: bool, kind: type, suffix: str = "") -> list[RoomEvent]:
        if self._flags.get(flag, False) == active:
            return []
        self._flags[flag] = active
        return [kind(self._source + suffix, active)]

    def _notification(self, ev: Mapping[str, object]) -> list[RoomEvent]:
        kind, arg0 = ev.get("type"), ev.get("arg0")
        if kind == _NOTE_SC:
            # arg1 set means SCBK-D: never with ENFORCE_SECURE, but never trusted either.
            self._sc_active = arg0 == 1 and ev.get("arg1") == 0
            return []
        if kind == _NOTE_PD:
            if arg0 == 1 and self._sc_active:
                return self.online()
            self._sc_active = False
            return self.offline()
        return []  # command outcomes

    def online(self) -> list[RoomEvent]:
        """The reader is online with the secure channel."""
        if self.link is Link.ONLINE:
            return []
        self.link = Link.ONLINE
        return [DeviceOnline("reader", self.reader.name)]

    def offline(self) -> list[RoomEvent]:
        """The reader went offline (libosdp said so, or it fell silent)."""
        if self.link in (Link.OFFLINE, Link.INSTALL_MODE, Link.KEY_MISMATCH):
            return []
        self.link = Link.OFFLINE
        return [DeviceOffline("reader", self.reader.name)]

    def resumed(self) -> list[RoomEvent]:
        """The reader replies again after a silence, still within libosdp's secure session."""
        return self.online() if self.link is Link.OFFLINE and self._sc_active else []

    def restarting(self) -> None:
        """The panel tears libosdp's session down to try the reader afresh."""
        self._sc_active = False

    def verdict(self, verdict: Verdict) -> list[RoomEvent]:
        """The handshake watcher's finding on this reader's latest secure-channel answer."""
        if verdict is Verdict.CONFIGURED:
            return []
        self._sc_active = False
        out = self.offline()
        if verdict is Verdict.INSTALL_MODE and self.link is not Link.INSTALL_MODE:
            self.link = Link.INSTALL_MODE
            out.append(InstallModeSeen(self.reader.name))
        elif verdict is Verdict.MISMATCH and self.link is not Link.KEY_MISMATCH:
            self.link = Link.KEY_MISMATCH
            out.append(ReaderKeyMismatch(self.reader.name))
        return out
