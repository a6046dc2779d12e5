"""libosdp event dicts to room events for one reader, without libosdp: every kind, changes only,
link episodes reported once, and malformed dicts refused."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    Tamper,
)
from firmware_app.room.osdp.errors import DecodeError, OsdpError
from firmware_app.room.osdp.handshake import Verdict
from firmware_app.room.osdp.settings import ReaderConfig
from firmware_app.room.osdp.translate import Link, ReaderTranslator
from firmware_app.room.osdp.wiegand import encode_h10301, to_osdp

READER = ReaderConfig("mr-in", "server-room", 101, Path("/k"), contact_input=0, rex_input=1)
SC_UP = {"event": 5, "type": 1, "arg0": 1, "arg1": 0}
PD_UP = {"event": 5, "type": 2, "arg0": 1, "arg1": 0}
PD_DOWN = {"event": 5, "type": 2, "arg0": 0, "arg1": 0}


def online() -> ReaderTranslator:
    t = ReaderTranslator(READER)
    assert t.event(SC_UP) == []
    assert t.event(PD_UP) == [DeviceOnline("reader", "mr-in")]
    return t


def inputs(*values: int) -> dict:
    return {"event": 4, "type": 0, "report": bytes(values)}


def test_card_read_becomes_a_badge():
    t = online()
    (ev,) = t.event({"event": 1, "reader_no": 0, "format": 1, "direction": 0, "length": 26, "data": to_osdp(encode_h10301(37, 1001), 26)})
    assert ev == CardPresented("server-room", "mr-in", "37-1001", "h10301")


def test_bad_cards_raise_decode_error():
    t = online()
    good = to_osdp(encode_h10301(37, 1001), 26)
    for ev in [
        {"event": 1, "format": 1, "length": 26, "data": bytes([good[0] ^ 0x40]) + good[1:]},
        {"event": 1, "format": 2, "length": 26, "data": good},
        {"event": 1, "format": 1, "length": 24, "data": good},
        {"event": 1, "format": 1, "data": good},
        {"event": 1, "format": 1, "length": 26, "data": "text"},
    ]:
        with pytest.raises(DecodeError):
            t.event(ev)


def test_keypad():
    t = online()
    assert t.event({"event": 2, "reader_no": 0, "data": b"1234#"}) == [KeypadEntry("server-room", "mr-in", "1234#")]
    assert t.event({"event": 2, "data": b"\x7f9\x0d"})[0].keys == "*9#"
    for bad in [b"", b"12a", b"\x00", b"1" * 65, "12"]:
        with pytest.raises(OsdpError):
            t.event({"event": 2, "data": bad})


def test_inputs_are_snapshots_and_only_changes_are_emitted():
    t = online()
    assert t.event(inputs(0, 0, 0, 0)) == [DoorContact("server-room", False)]
    assert t.event(inputs(0, 0, 0, 0)) == []
    assert t.event(inputs(0, 1, 0, 0)) == [ExitRequest("server-room")]
    assert t.event(inputs(0, 1, 1, 1)) == []  # held, and unwired inputs
    assert t.event(inputs(1, 0, 0, 0)) == [DoorContact("server-room", True)]
    assert t.event(inputs(1, 1, 0, 0)) == [ExitRequest("server-room")]
    assert t.event(inputs(0, 0, 0, 0)) == [DoorContact("server-room", False)]


def test_first_input_report_with_exit_pressed_is_not_an_exit_request():
    t = online()
    assert t.event(inputs(1, 1)) == [DoorContact("server-room", True)]


def test_tamper_and_power_local_and_remote():
    t = online()
    assert t.event({"event": 4, "type": 2, "report": b"\x01\x00"}) == [Tamper("reader:mr-in", True)]
    assert t.event({"event": 4, "type": 2, "report": b"\x01\x01"}) == [PowerFault("reader:mr-in", True)]
    assert t.event({"event": 4, "type": 2, "report": b"\x00\x00"}) == [Tamper("reader:mr-in", False), PowerFault("reader:mr-in", False)]
    assert t.event({"event": 4, "type": 3, "report": b"\x01\x00"}) == [Tamper("reader:mr-in/remote", True)]
    assert t.event({"event": 4, "type": 3, "report": b"\x01"}) == []
    assert t.event({"event": 4, "type": 1, "report": b"\x01"}) == []  # output status: not ours


@pytest.mark.parametrize(
    "ev",
    [
        {"event": 4, "type": 0, "report": b"\x01"},  # shorter than the wired inputs
        {"event": 4, "type": 0, "report": b""},
        {"event": 4, "type": 0, "report": bytes(65)},
        {"event": 4, "type": 9, "report": b"\x00"},
        {"event": 4, "type": 0},
        {"event": 3, "data": b"x"},
        {"event": 99},
        {},
    ],
)
def test_malformed_events_are_refused(ev):
    with pytest.raises(OsdpError):
        online().event(ev)


def test_events_from_a_reader_not_online_with_sc_are_refused():
    t = ReaderTranslator(READER)
    with pytest.raises(OsdpError, match="without a secure channel session"):
        t.event(inputs(1, 0))
    # online without the secure channel (never with ENFORCE_SECURE, but not trusted): offline
    assert t.event({"event": 5, "type": 1, "arg0": 1, "arg1": 1}) == []  # SC with SCBK-D
    assert t.event(PD_UP) == [DeviceOffline("reader", "mr-in")]
    assert t.link is Link.OFFLINE
    with pytest.raises(OsdpError):
        t.event(inputs(1, 0))


def test_a_silent_reader_is_back_when_its_secure_session_goes_on():
    t = online()
    assert t.offline() == [DeviceOffline("reader", "mr-in")]  # the panel heard nothing for a while
    assert t.resumed() == [DeviceOnline("reader", "mr-in")]  # replies again, same session
    assert t.offline() == [DeviceOffline("reader", "mr-in")]
    # an event within the session brings it back first, and is not lost
    assert t.event(inputs(1, 0)) == [DeviceOnline("reader", "mr-in"), DoorContact("server-room", True)]
    assert t.offline() == [DeviceOffline("reader", "mr-in")]
    t.restarting()  # the panel tears the session down to retry: nothing heard counts until a new one
    assert t.resumed() == []
    with pytest.raises(OsdpError):
        t.event(inputs(0, 0))
    t.event(SC_UP)
    assert t.event(PD_UP) == [DeviceOnline("reader", "mr-in")]


def test_libosdp_saying_offline_ends_the_session():
    t = online()
    assert t.event(PD_DOWN) == [DeviceOffline("reader", "mr-in")]
    assert t.resumed() == []
    with pytest.raises(OsdpError):
        t.event(inputs(1, 0))


def test_offline_and_back_once_each():
    t = online()
    assert t.offline() == [DeviceOffline("reader", "mr-in")]
    assert t.event(PD_DOWN) == []
    assert t.event(PD_UP) == []  # the secure channel notification must come first
    t.event(SC_UP)
    assert t.event(PD_UP) == [DeviceOnline("reader", "mr-in")]
    assert t.event(PD_UP) == []


def test_install_mode_and_key_mismatch_alarm_once_per_episode():
    t = online()
    assert t.verdict(Verdict.INSTALL_MODE) == [DeviceOffline("reader", "mr-in"), InstallModeSeen("mr-in")]
    assert t.verdict(Verdict.INSTALL_MODE) == []
    assert t.event(PD_DOWN) == []
    assert t.verdict(Verdict.MISMATCH) == [ReaderKeyMismatch("mr-in")]
    assert t.verdict(Verdict.MISMATCH) == []
    assert t.verdict(Verdict.CONFIGURED) == []
    t.event(SC_UP)
    assert t.event(PD_UP) == [DeviceOnline("reader", "mr-in")]
    assert t.verdict(Verdict.INSTALL_MODE) == [DeviceOffline("reader", "mr-in"), InstallModeSeen("mr-in")]


def test_a_reader_never_seen_that_answers_with_a_wrong_key():
    t = ReaderTranslator(READER)
    assert t.verdict(Verdict.MISMATCH) == [DeviceOffline("reader", "mr-in"), ReaderKeyMismatch("mr-in")]
    assert t.link is Link.KEY_MISMATCH


def test_command_outcome_notifications_are_ignored():
    t = online()
    assert t.event({"event": 5, "type": 0, "arg0": 1, "arg1": 1}) == []


def test_no_badge_or_keys_in_reprs():
    t = online()
    (card,) = t.event({"event": 1, "format": 1, "length": 26, "data": to_osdp(encode_h10301(37, 1001), 26)})
    (keys,) = t.event({"event": 2, "data": b"4321"})
    assert "1001" not in repr(card) and "4321" not in repr(keys)
