"""A door controller simulator: an OSDP peripheral built on libosdp, on the master side of a pty.

The control panel under test opens the pty's slave path with pyserial, as it would an RS-485
adapter; several controllers (different addresses) can share one pty as they share a bus.  The simulated controller presents cards (raw Wiegand bits), keys, its door-contact and
exit-button inputs, local and remote tamper and power; it can fall silent and come back, or come
back keyless in install mode (and records any KEYSET it is sent, which must never happen).

    python -m peers.osdp_door --address 101 --key-file reader.scbk
prints the slave path, then takes lines on stdin: ``card FC NUMBER``, ``keys 1234#``,
``open``, ``close``, ``exit``, ``tamper on|off``, ``power on|off``, ``silent``, ``back``,
``install``, ``quit``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import tty
from pathlib import Path

import osdp

from firmware_app.room.osdp.wiegand import encode_h10301, to_osdp

__all__ = ["DoorController", "PtyPair"]

_INPUTS = 4
_READ_MAX_BYTES = 512
_PENDING_MAX_BYTES = 64 * 1024


class PtyPair:
    """A raw pty pair as an RS-485 bus: the panel opens ``slave_path``; simulated devices share
    ``master_fd``, each seeing every byte the panel sends (OSDP is multi-drop)."""

    def __init__(self) -> None:
        self.master_fd, self._slave_fd = os.openpty()
        tty.setraw(self.master_fd)
        tty.setraw(self._slave_fd)
        os.set_blocking(self.master_fd, False)
        self.slave_path = os.ttyname(self._slave_fd)
        self._lock = threading.Lock()
        self._pending: dict[int, bytearray] = {}

    def attach(self) -> int:
        """A new device on the bus: the key its channel reads with."""
        with self._lock:
            key = len(self._pending)
            self._pending[key] = bytearray()
            return key

    def read(self, key: int, max_bytes: int) -> bytes:
        """Bytes the panel sent that device ``key`` has not read yet (copied to every device)."""
        with self._lock:
            try:
                data = os.read(self.master_fd, _READ_MAX_BYTES)
            except (BlockingIOError, OSError):
                data = b""
            for pending in self._pending.values():
                pending += data
                del pending[:-_PENDING_MAX_BYTES]
            pending = self._pending[key]
            out = bytes(pending[:max_bytes])
            del pending[:max_bytes]
            return out

    def write(self, data: bytes) -> int:
        """Send to the panel; 0 when the pty does not take it now."""
        with self._lock:
            try:
                return os.write(self.master_fd, data)
            except (BlockingIOError, OSError):
                return 0

    def close(self) -> None:
        """Close both sides (after the panel and the simulator have stopped)."""
        for fd in (self.master_fd, self._slave_fd):
            try:
                os.close(fd)
            except OSError:
                pass


class _BusChannel(osdp.Channel):
    """libosdp's channel for one simulated device on the bus; silent while ``muted``."""

    def __init__(self, bus: PtyPair) -> None:
        super().__init__()
        self._bus = bus
        self._key = bus.attach()
        self.muted = False

    def read(self, max_bytes: int) -> bytes:
        data = self._bus.read(self._key, min(max_bytes, _READ_MAX_BYTES))
        return b"" if self.muted else data

    def write(self, buf: bytes) -> int:
        return len(buf) if self.muted else self._bus.write(bytes(buf))

    def flush(self) -> None:
        pass


class DoorController:
    """One simulated OSDP door controller (reader + door inputs) on ``pty``."""

    def __init__(self, pty: PtyPair, *, address: int = 101, scbk: bytes | None, contact_input: int = 0, rex_input: int = 1) -> None:
        self.pty = pty
        self.address = address
        self.scbk = scbk
        self.contact_input = contact_input
        self.rex_input = rex_input
        self.keysets_received = 0
        self.strike_pulses: list[tuple[int, int]] = []  # (output, duration in 100 ms units)
        self._inputs = bytearray(_INPUTS)
        self._local = bytearray(2)
        self._channel = _BusChannel(pty)
        self._pd: osdp.PeripheralDevice | None = None
        self._lock = threading.Lock()

    def start(self, *, install_mode: bool = False) -> None:
        """Start answering the panel: with ``scbk`` and ENFORCE_SECURE, or keyless in install mode."""
        if install_mode:
            info = osdp.PDInfo(self.address, self._channel, scbk=None, flags=[osdp.LibFlag.InstallMode])
        else:
            info = osdp.PDInfo(self.address, self._channel, scbk=self.scbk, flags=[osdp.LibFlag.EnforceSecure])
        caps = osdp.PDCapabilities(
            [
                (osdp.Capability.ContactStatusMonitoring, 1, _INPUTS),
                (osdp.Capability.OutputControl, 1, 1),
                (osdp.Capability.LEDControl, 1, 1),
                (osdp.Capability.AudibleControl, 1, 1),
            ]
        )
        self._channel.muted = False
        self._pd = osdp.PeripheralDevice(info, caps, log_level=osdp.LogLevel.Error, command_handler=self._command)
        self._pd.start()

    def stop(self) -> None:
        """Stop libosdp's thread and drop the device."""
        if self._pd is not None:
            pd, self._pd = self._pd, None
            pd.teardown()

    def is_sc_active(self) -> bool:
        """Whether this side believes the secure channel is up."""
        return self._pd is not None and bool(self._pd.is_sc_active())

    def _command(self, cmd: dict[str, object]) -> tuple[int, None]:
        if cmd.get("command") == osdp.Command.Keyset:
            self.keysets_received += 1
            return -1, None  # refuse: the test asserts none were sent at all
        if cmd.get("command") == osdp.Command.Output:
            self.strike_pulses.append((int(cmd.get("output_no", -1)), int(cmd.get("timer_count", 0))))
        return 0, None

    def _submit(self, ev: dict[str, object]) -> None:
        if self._pd is None:
            raise RuntimeError("the door controller is not running")
        if not self._pd.submit_event(ev):
            raise RuntimeError("libosdp refused the event")

    def present_bits(self, value: int, bit_length: int) -> None:
        """A card read of raw Wiegand bits."""
        data = to_osdp(value, bit_length)
        self._submit({"event": osdp.Event.CardRead, "reader_no": 0, "direction": 0, "format": osdp.CardFormat.Wiegand, "length": bit_length, "data": data})

    def present_h10301(self, facility: int, number: int) -> None:
        """A card read of an H10301 (26-bit) card."""
        self.present_bits(encode_h10301(facility, number), 26)

    def keys(self, text: str) -> None:
        """Keys pressed on the keypad."""
        self._submit({"event": osdp.Event.KeyPress, "reader_no": 0, "data": text.encode("ascii")})

    def set_input(self, index: int, active: bool) -> None:
        """Flip one input and report every input (OSDP input status is a snapshot)."""
        with self._lock:
            self._inputs[index] = 1 if active else 0
            report = bytes(self._inputs)
        self._submit({"event": osdp.Event.Status, "type": osdp.StatusReportType.Input, "report": report})

    def door(self, open_: bool) -> None:
        """The door contact: open or closed."""
        self.set_input(self.contact_input, open_)

    def press_exit(self) -> None:
        """The exit button, pressed and released."""
        self.set_input(self.rex_input, True)
        self.set_input(self.rex_input, False)

    def _local_report(self, index: int, active: bool, kind: int) -> None:
        with self._lock:
            self._local[index] = 1 if active else 0
            report = bytes(self._local)
        self._submit({"event": osdp.Event.Status, "type": kind, "report": report})

    def tamper(self, active: bool) -> None:
        """The controller's own tamper switch."""
        self._local_report(0, active, osdp.StatusReportType.Local)

    def power_fault(self, active: bool) -> None:
        """The controller's mains power."""
        self._local_report(1, active, osdp.StatusReportType.Local)

    def remote_tamper(self, active: bool) -> None:
        """The tamper switch of the reader head wired to the controller."""
        self._submit({"event": osdp.Event.Status, "type": osdp.StatusReportType.Remote, "report": bytes([1 if active else 0, 0])})

    def go_silent(self) -> None:
        """Stop answering, as a cut line would (the device keeps its state)."""
        self._channel.muted = True

    def come_back(self) -> None:
        """Answer again after a silence."""
        self._channel.muted = False

    def reappear_in_install_mode(self) -> None:
        """Restart keyless in install mode, as a reset or swapped reader would."""
        self.stop()
        self.start(install_mode=True)


def main(argv: list[str] | None = None) -> int:
    """Run one simulated door controller on a new pty until ``quit`` or end of input."""
    parser = argparse.ArgumentParser(prog="python -m peers.osdp_door", description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", type=int, default=101)
    parser.add_argument("--key-file", type=Path, help="the reader's SCBK (32 hex digits); omit for install mode")
    args = parser.parse_args(argv)
    scbk = bytes.fromhex(args.key_file.read_text().strip()) if args.key_file else None
    pty = PtyPair()
    sim = DoorController(pty, address=args.address, scbk=scbk)
    sim.start(install_mode=scbk is None)
    print(pty.slave_path, flush=True)
    actions = {
        "open": lambda a: sim.door(True),
        "close": lambda a: sim.door(False),
        "exit": lambda a: sim.press_exit(),
        "card": lambda a: sim.present_h10301(int(a[0]), int(a[1])),
        "keys": lambda a: sim.keys(a[0]),
        "tamper": lambda a: sim.tamper(a[0] == "on"),
        "power": lambda a: sim.power_fault(a[0] == "on"),
        "silent": lambda a: sim.go_silent(),
        "back": lambda a: sim.come_back(),
        "install": lambda a: sim.reappear_in_install_mode(),
    }
    try:
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            if words[0] == "quit":
                break
            try:
                actions[words[0]](words[1:])
            except (KeyError, IndexError, ValueError, RuntimeError) as exc:
                print(f"? {type(exc).__name__}", flush=True)
    finally:
        sim.stop()
        pty.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
