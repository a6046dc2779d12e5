"""libosdp's byte channel on a pyserial port (an RS-485 adapter, or a pty's slave side in tests).

libosdp calls ``read``/``write``/``flush`` from its refresh thread; every call is bounded (a
non-blocking read of at most ``max_read_bytes``, a write with a timeout) and never raises into
libosdp: line errors are counted.  What passes is shown to the :class:`HandshakeWatch`, whose
verdicts go to ``on_verdict`` and whose reply addresses stamp ``last_reply_s``.  An exception here
would end libosdp's poll thread, so line faults (a hung-up pty or unplugged adapter raises EIO,
some as ``termios.error``) are counted, never raised.  Every challenge
the control panel sends calls ``on_challenge`` (the panel reseeds libosdp's random numbers there).
"""

from __future__ import annotations

import termios
import threading
import time
from collections.abc import Callable

import osdp
import serial

from firmware_app.room.osdp.errors import OsdpError
from firmware_app.room.osdp.handshake import HandshakeWatch, Verdict

__all__ = ["SerialChannel", "open_serial_blocking"]

#: What pyserial and the tty layer raise on a faulty, closed or hung-up line.
_LINE_ERRORS = (serial.SerialException, OSError, termios.error, ValueError, TypeError)


def open_serial_blocking(device: str, baud: int, *, write_timeout_s: float = 0.1) -> serial.Serial:
    """Open ``device`` raw, non-blocking for reads, exclusively (a second daemon cannot share it)."""
    try:
        return serial.Serial(device, baud, timeout=0, write_timeout=write_timeout_s, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise OsdpError(f"cannot open the OSDP serial device ({type(exc).__name__})") from None


class SerialChannel(osdp.Channel):
    """One serial line shared by every reader on it (OSDP is multi-drop)."""

    def __init__(
        self,
        port: serial.Serial,
        watch: HandshakeWatch,
        on_verdict: Callable[[int, Verdict], None],
        *,
        on_challenge: Callable[[], None] = lambda: None,
        max_read_bytes: int = 512,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._port = port
        self._watch = watch
        self._on_verdict = on_verdict
        self._on_challenge = on_challenge
        self._max_read_bytes = max_read_bytes
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._last_reply_s: dict[int, float] = {}
        self.line_errors = 0

    def read(self, max_bytes: int) -> bytes:
        """At most ``max_bytes`` (and ``max_read_bytes``) already received; ``b""`` when none."""
        try:
            data = self._port.read(max(0, min(max_bytes, self._max_read_bytes)))
        except _LINE_ERRORS:
            self.line_errors += 1
            return b""
        if data:
            verdicts, replied = self._watch.received(data)
            if replied:
                now = self._monotonic()
                with self._lock:
                    for address in replied:
                        self._last_reply_s[address] = now
            for address, verdict in verdicts:
                self._on_verdict(address, verdict)
        return data

    def write(self, buf: bytes) -> int:
        """Send ``buf``; 0 when the line does not take it within the write timeout."""
        try:
            written = self._port.write(buf) or 0
        except _LINE_ERRORS:
            self.line_errors += 1
            return 0
        if self._watch.sent(bytes(buf[:written])):
            self._on_challenge()
        return written

    def flush(self) -> None:
        """Drop unread input (libosdp calls this to resynchronise after an error)."""
        try:
            self._port.reset_input_buffer()
        except _LINE_ERRORS:
            self.line_errors += 1

    def last_reply_s(self, address: int) -> float | None:
        """Monotonic time of the last valid reply frame from ``address``, None if never."""
        with self._lock:
            return self._last_reply_s.get(address)

    def close(self) -> None:
        """Close the port (after libosdp's thread has stopped)."""
        try:
            self._port.close()
        except _LINE_ERRORS:
            self.line_errors += 1
