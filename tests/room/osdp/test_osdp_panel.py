"""The control panel against a libosdp peripheral over a pty pair: secure channel, card reads,
inputs, tamper and power, offline and back, install mode and wrong keys, noise on the line, the
hand-over from libosdp's thread to the event loop, and a bounded stop.  Waits are bounded; no
assertion depends on how fast anything is."""

from __future__ import annotations

import os
import threading

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
from firmware_app.room.osdp.errors import KeyFileError, OsdpError
from firmware_app.room.osdp.handshake import crc16
from firmware_app.room.osdp.panel import OsdpPanel
from firmware_app.room.osdp.settings import load_osdp_config

ONLINE = DeviceOnline("reader", "mr-in")
OFFLINE = DeviceOffline("reader", "mr-in")


def _cp_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "cp" and t.is_alive()]


def test_reader_comes_online_with_the_secure_channel(rig, run):
    async def scenario():
        rig.sim.start()
        await rig.start()
        try:
            await rig.wait_online()
            assert rig.sim.is_sc_active()
            assert rig.panel.status() == [{"reader": "mr-in", "state": "online"}]
            assert rig.sim.keysets_received == 0
        finally:
            await rig.stop()

    run(scenario())


def test_card_keypad_inputs_tamper_and_power_arrive_in_order(rig, run):
    async def scenario():
        rig.sim.start()
        await rig.start()
        try:
            await rig.wait_online()
            rig.sim.present_h10301(37, 1001)
            rig.sim.keys("1234#")
            rig.sim.door(True)
            rig.sim.door(False)
            rig.sim.press_exit()
            rig.sim.tamper(True)
            rig.sim.power_fault(True)
            rig.sim.remote_tamper(True)
            rig.sim.tamper(False)
            rig.sim.power_fault(False)
            got = [await rig.next() for _ in range(10)]
            assert got == [
                CardPresented("server-room", "mr-in", "37-1001", "h10301"),
                KeypadEntry("server-room", "mr-in", "1234#"),
                DoorContact("server-room", True),
                DoorContact("server-room", False),
                ExitRequest("server-room"),
                Tamper("reader:mr-in", True),
                PowerFault("reader:mr-in", True),
                Tamper("reader:mr-in/remote", True),
                Tamper("reader:mr-in", False),
                PowerFault("reader:mr-in", False),
            ]
            assert got[0].badge == "37-1001" and got[1].keys == "1234#"
        finally:
            await rig.stop()

    run(scenario())


def test_a_card_failing_parity_is_dropped_and_counted(rig, run):
    async def scenario():
        rig.sim.start()
        await rig.start()
        try:
            await rig.wait_online()
            from firmware_app.room.osdp.wiegand import encode_h10301

            rig.sim.present_bits(encode_h10301(37, 1001) ^ (1 << 10), 26)
            rig.sim.door(True)
            assert await rig.next() == DoorContact("server-room", True)
            assert rig.panel.cards_unreadable == 1
        finally:
            await rig.stop()

    run(scenario())


def test_wrong_key_never_comes_online(rig, run):
    async def scenario():
        rig.sim.scbk = bytes(b ^ 0x5A for b in rig.key)
        rig.sim.start()
        await rig.start()
        try:
            assert await rig.until(lambda e: isinstance(e, ReaderKeyMismatch)) == [OFFLINE, ReaderKeyMismatch("mr-in")]
            later = await rig.quiet(2.0)
            assert ONLINE not in later and later == []  # retried, refused again, reported once
            assert not rig.sim.is_sc_active()
            assert rig.panel.status() == [{"reader": "mr-in", "state": "key_mismatch"}]
            rig.sim.door(True)  # whatever it says is not heard
            assert await rig.quiet(1.0) == []
        finally:
            await rig.stop()

    run(scenario())


def test_offline_and_back(rig, run):
    async def scenario():
        rig.sim.start()
        await rig.start()
        try:
            await rig.wait_online()
            rig.sim.go_silent()
            assert await rig.next() == OFFLINE
            assert rig.panel.status()[0]["state"] == "offline"
            rig.sim.come_back()
            assert await rig.until(lambda e: e == ONLINE) == [ONLINE]
            rig.sim.door(True)
            assert await rig.next() == DoorContact("server-room", True)
        finally:
            await rig.stop()

    run(scenario())


def test_install_mode_reappearance_raises_the_alarm_and_is_never_rekeyed(rig, run):
    async def scenario():
        rig.sim.start()
        await rig.start()
        try:
            await rig.wait_online()
            rig.sim.reappear_in_install_mode()
            got = await rig.until(lambda e: isinstance(e, InstallModeSeen))
            assert got == [OFFLINE, InstallModeSeen("mr-in")]
            assert await rig.quiet(2.0) == []
            assert rig.sim.keysets_received == 0 and not rig.sim.is_sc_active()
            assert rig.panel.status()[0]["state"] == "install_mode"
            # An operator provisions the reader out of band; it then comes back with its key.
            rig.sim.stop()
            rig.sim.start()
            assert await rig.until(lambda e: e == ONLINE, timeout_s=20) == [ONLINE]
            assert rig.sim.keysets_received == 0
        finally:
            await rig.stop()

    run(scenario())


def _frame(address: int, code: int, data: bytes) -> bytes:
    head = bytes([0x53, address, 0, 0, 0x04, code]) + data
    length = len(head) + 2
    head = head[:2] + bytes([length & 0xFF, length >> 8]) + head[4:]
    return head + crc16(head).to_bytes(2, "little")


@pytest.mark.parametrize(
    "noise",
    [
        os.urandom(3000),
        b"\x53" * 2000,
        b"\x53\xe5\xff\xff\x04" + bytes(900),  # claims an oversized frame
        _frame(0xE5, 0x50, b"\x01" * 900),  # a well-formed frame far larger than libosdp takes
        _frame(0xE5, 0x76, os.urandom(32)),  # an unsolicited CCRYPT
        _frame(0xE5, 0x45, b"garbage"),  # a reply code the CP did not ask for
    ],
    ids=["random", "soms", "oversized-length", "oversized-frame", "stray-ccrypt", "stray-reply"],
)
def test_noise_on_the_line_does_not_crash_the_panel(rig, run, noise):
    async def scenario():
        rig.sim.start()
        await rig.start()
        try:
            await rig.wait_online()
            for i in range(0, len(noise), 256):
                os.write(rig.pty.master_fd, noise[i : i + 256])
            assert _cp_threads(), "libosdp's thread died"
            # Whatever libosdp made of the noise, the reader is (or gets) online again and is heard.
            events = await rig.quiet(1.5)
            assert all(e in (ONLINE, OFFLINE) for e in events)
            if rig.panel.status()[0]["state"] != "online":
                await rig.until(lambda e: e == ONLINE, timeout_s=20)
            rig.sim.present_h10301(37, 1002)
            got = await rig.until(lambda e: isinstance(e, CardPresented), timeout_s=20)
            assert got[-1].badge == "37-1002"
        finally:
            await rig.stop()

    run(scenario())


def test_events_are_handed_to_the_loop_thread(rig, run):
    class RecordingSink:
        """Records which thread submitted each event, then forwards to the real inbox."""

        def __init__(self, inbox):
            self.inbox = inbox
            self.threads: set[int] = set()

        def submit(self, event):
            self.threads.add(threading.get_ident())
            self.inbox.submit(event)

    sinks = []

    async def scenario():
        rig.sim.start()
        await rig.start(lambda inbox: sinks.append(RecordingSink(inbox)) or sinks[-1])
        try:
            await rig.wait_online()
            assert _cp_threads()  # libosdp polls on its own thread
            rig.sim.door(True)
            rig.sim.tamper(True)
            assert [await rig.next(), await rig.next()] == [DoorContact("server-room", True), Tamper("reader:mr-in", True)]
            assert sinks[0].threads == {threading.get_ident()}  # the event loop's thread only
        finally:
            await rig.stop()

    run(scenario())


def test_stop_is_clean_and_bounded(rig, run):
    async def scenario():
        rig.sim.start()
        await rig.start()
        await rig.wait_online()
        rig.sim.door(True)  # may or may not arrive before the stop
        async with __import__("asyncio").timeout(10):
            await rig.panel.stop()
        assert not _cp_threads()
        await rig.panel.stop()  # a second stop is harmless
        rig.sim.tamper(True)
        assert [e for e in await rig.quiet(0.5) if not isinstance(e, DoorContact)] == []
        rig.sim.stop()
        rig.pty.close()

    run(scenario())


def test_start_refuses_a_bad_key_file_or_device(tmp_path, run):
    key_file = tmp_path / "k.scbk"
    key_file.write_text("00" * 16)
    os.chmod(key_file, 0o644)
    config = load_osdp_config({"device": "/nonexistent/tty", "readers": [{"name": "a", "door": "d", "address": 1, "key_file": str(key_file)}]}, tmp_path)

    async def scenario():
        from firmware_app.room.inbox import EventInbox

        with pytest.raises(KeyFileError):
            await OsdpPanel(config, EventInbox()).start()
        os.chmod(key_file, 0o600)
        key_file.write_text("5a" * 16)
        with pytest.raises(OsdpError, match="serial device"):
            await OsdpPanel(config, EventInbox()).start()
        assert not _cp_threads()

    run(scenario())


def test_events_do_not_pile_up_in_libosdps_wrapper_queue(rig, run):
    async def scenario():
        rig.sim.start()
        await rig.start()
        try:
            await rig.wait_online()
            for _ in range(5):
                rig.sim.door(True)
                rig.sim.door(False)
            assert len([await rig.next() for _ in range(10)]) == 10
            assert all(q.qsize() == 0 for q in rig.panel._cp.event_queue)  # the wrapper's get_event() queues
        finally:
            await rig.stop()

    run(scenario())


def test_a_hung_up_line_takes_the_reader_offline_and_the_poll_thread_survives(rig, run):
    async def scenario():
        rig.sim.start()
        await rig.start()
        try:
            await rig.wait_online()
            rig.sim.stop()
            rig.pty.close()  # the far end is gone: reads and flushes on our side fail with EIO
            assert await rig.next() == OFFLINE
            assert await rig.quiet(1.5) == []
            assert _cp_threads(), "a line fault must not end libosdp's thread"
            assert rig.panel._channel.line_errors > 0
        finally:
            await rig.stop()

    run(scenario())
