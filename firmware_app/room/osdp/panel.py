"""The OSDP control panel: libosdp polls the readers on its own thread; events come to asyncio.

One ``osdp.ControlPanel`` drives every configured reader on one serial line, each with its own
SCBK and ``ENFORCE_SECURE`` (no plaintext, no SCBK-D, so never a KEYSET: a reader that comes back
in install mode is reported, not re-keyed).  libosdp's callbacks run on its thread named ``cp``
and do one thing: ``loop.call_soon_threadsafe`` with a copy of the event, so all state lives on
the event loop.  A supervisor task marks a reader offline when it has not replied for
``offline_after_s`` (libosdp itself takes many seconds), back online if it replies again within
libosdp's secure session, and otherwise retries it every ``retry_interval_s`` by disabling and
re-enabling it (libosdp 3.2 would otherwise wait 300 s).

libosdp 3.2.9's PyPI build draws the secure channel's random challenge (RND.A) from the C
library's ``rand()`` and never seeds it, so every start of the daemon would send the same
challenges.  The panel seeds ``rand()`` from the OS random source at start and again after
every challenge it sends (see ``reseed_libosdp_random``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping

import osdp

from firmware_app.journal import event
from firmware_app.room.events import DeviceOffline, DeviceOnline, InstallModeSeen, ReaderKeyMismatch, RoomEvent
from firmware_app.room.inbox import EventSink
from firmware_app.room.osdp.channel import SerialChannel, open_serial_blocking
from firmware_app.room.osdp.errors import DecodeError, OsdpError
from firmware_app.room.osdp.handshake import HandshakeWatch, Verdict
from firmware_app.room.osdp.keys import load_scbk_blocking
from firmware_app.room.osdp.settings import OsdpConfig
from firmware_app.room.osdp.translate import Link, ReaderTranslator

__all__ = ["OsdpPanel"]

log = logging.getLogger(__name__)

_SUPERVISE_INTERVAL_S = 0.1
_REFUSED_RETRY_FACTOR = 10  # a reader in install mode or with a wrong key is retried less often
_DISABLE_SETTLE_S = 0.1  # libosdp applies disable_pd on its next refresh (every 20 ms)
_STOP_TIMEOUT_S = 5.0
_OUTPUT_TEMPORARY_ON = 5  # osdp_OUT: on for timer_count, then back to the permanent state
_STRIKE_PULSE_UNITS = 50  # 100 ms units: the strike is released for 5 s


_LIBC = ctypes.CDLL(None)  # the process's C library: libosdp's rand() is this one's


def reseed_libosdp_random() -> None:
    """Seed the C library's ``rand()``, which libosdp 3.2.9 uses for RND.A, from ``secrets``."""
    _LIBC.srand(ctypes.c_uint(secrets.randbits(32)))


class OsdpPanel:
    """The room adapter for one RS-485 line: ``start()``, ``stop()``, ``status()``."""

    def __init__(self, config: OsdpConfig, sink: EventSink, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._sink = sink
        self._monotonic = monotonic
        self._by_address = {r.address: ReaderTranslator(r) for r in config.readers}
        self._index_address = [r.address for r in config.readers]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cp: osdp.ControlPanel | None = None
        self._channel: SerialChannel | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._next_retry_s: dict[int, float] = {}
        self._closing = threading.Event()
        self.events_refused = 0
        self.cards_unreadable = 0
        self.commands_refused = 0

    async def start(self) -> None:
        """Read the keys, open the line and start polling; raises OsdpError (no key in it)."""
        self._loop = asyncio.get_running_loop()
        keys = {}
        for reader in self._config.readers:
            keys[reader.address] = await asyncio.to_thread(load_scbk_blocking, reader.key_file)
        port = await asyncio.to_thread(open_serial_blocking, self._config.device, self._config.baud)
        reseed_libosdp_random()
        self._channel = SerialChannel(
            port, HandshakeWatch(keys), self._verdict_from_thread, on_challenge=reseed_libosdp_random, monotonic=self._monotonic
        )
        flags = [osdp.LibFlag.EnforceSecure, osdp.LibFlag.EnableNotification]
        infos = [osdp.PDInfo(r.address, self._channel, scbk=keys[r.address], name=r.name, flags=flags) for r in self._config.readers]
        del keys
        try:
            self._cp = osdp.ControlPanel(infos, log_level=osdp.LogLevel.Error)
            # The wrapper's own handler also puts every event on an unbounded queue.Queue that
            # only get_event() drains; give the C layer our handler directly instead.
            self._cp.ctx.set_event_callback(self._event_from_thread)
            self._cp.start()
        except Exception:
            self._channel.close()
            raise OsdpError("libosdp refused the control panel setup") from None
        self._supervisor = asyncio.create_task(self._supervise(), name="osdp-supervisor")
        log.info("OSDP control panel polling %d readers", len(self._config.readers), extra=event("room.osdp.started"))

    async def stop(self) -> None:
        """Stop polling and close the line; bounded by ``_STOP_TIMEOUT_S``."""
        self._closing.set()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        if self._cp is not None:
            cp, self._cp = self._cp, None
            stopper = threading.Thread(target=cp.teardown, name="osdp-stop", daemon=True)
            stopper.start()
            await asyncio.to_thread(stopper.join, _STOP_TIMEOUT_S)
            if stopper.is_alive():
                log.error("OSDP poll thread did not stop in %.0f s", _STOP_TIMEOUT_S, extra=event("room.osdp.stop_overrun"))
        if self._channel is not None:
            self._channel.close()
            self._channel = None
            log.info("OSDP control panel stopped", extra=event("room.osdp.stopped"))

    def unlock(self, door: str) -> None:
        """Pulse the strike output of every online reader on ``door`` (the room granted access).

        The command is queued with libosdp off the loop; libosdp sends it on its next poll."""
        cp, loop = self._cp, self._loop
        if cp is None or loop is None:
            return
        for translator in self._by_address.values():
            reader = translator.reader
            if reader.door == door and translator.link is Link.ONLINE:
                command = {
                    "command": osdp.Command.Output,
                    "output_no": reader.strike_output,
                    "control_code": _OUTPUT_TEMPORARY_ON,
                    "timer_count": _STRIKE_PULSE_UNITS,
                }
                loop.run_in_executor(None, cp.submit_command, reader.address, command).add_done_callback(self._command_queued)

    def _command_queued(self, future: asyncio.Future[object]) -> None:
        if future.cancelled() or future.exception() is not None or not future.result():
            self.commands_refused += 1

    def status(self) -> list[Mapping[str, str]]:
        """Each reader's link state by name (for the room's status)."""
        return [{"reader": t.reader.name, "state": t.link.value} for t in self._by_address.values()]

    # libosdp's thread: hand over, nothing else.

    def _event_from_thread(self, index: int, ev: dict[str, object]) -> int:
        self._hand_over(self._on_event, index, dict(ev))
        return 0

    def _verdict_from_thread(self, address: int, verdict: Verdict) -> None:
        self._hand_over(self._on_verdict, address, verdict)

    def _hand_over(self, fn: Callable[..., None], *args: object) -> None:
        loop = self._loop
        if loop is None or self._closing.is_set():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed while libosdp was stopping
            loop.call_soon_threadsafe(fn, *args)

    # The event loop: all state changes here.

    def _on_event(self, index: int, ev: dict[str, object]) -> None:
        if not 0 <= index < len(self._index_address):
            self.events_refused += 1
            return
        translator = self._by_address[self._index_address[index]]
        try:
            out = translator.event(ev)
        except DecodeError:
            self.cards_unreadable += 1
            log.warning("unreadable card at reader %s", translator.reader.name, extra=event("room.osdp.card_unreadable"))
            return
        except OsdpError:
            self.events_refused += 1
            log.warning("malformed OSDP event from reader %s", translator.reader.name, extra=event("room.osdp.event_refused"))
            return
        self._emit(translator, out)

    def _on_verdict(self, address: int, verdict: Verdict) -> None:
        translator = self._by_address.get(address)
        if translator is not None:
            self._emit(translator, translator.verdict(verdict))
            if verdict is not Verdict.CONFIGURED:
                self._next_retry_s[address] = self._monotonic() + self._config.retry_interval_s * _REFUSED_RETRY_FACTOR

    def _emit(self, translator: ReaderTranslator, out: list[RoomEvent]) -> None:
        name = translator.reader.name
        for item in out:
            self._sink.submit(item)
            if isinstance(item, DeviceOnline):
                log.info("reader %s online with secure channel", name, extra=event("room.osdp.reader_online"))
            elif isinstance(item, DeviceOffline):
                log.warning("reader %s offline", name, extra=event("room.osdp.reader_offline"))
            elif isinstance(item, InstallModeSeen):
                log.error("reader %s answered in install mode; not re-keyed", name, extra=event("room.osdp.install_mode"))
            elif isinstance(item, ReaderKeyMismatch):
                log.error("reader %s failed the secure channel with its key", name, extra=event("room.osdp.key_mismatch"))

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(_SUPERVISE_INTERVAL_S)
            now = self._monotonic()
            for address, translator in self._by_address.items():
                last = self._channel.last_reply_s(address) if self._channel is not None else None
                silent = last is None or now - last > self._config.offline_after_s
                if translator.link is Link.ONLINE:
                    if silent:
                        self._emit(translator, translator.offline())
                        self._next_retry_s[address] = now + self._config.retry_interval_s
                    continue
                if not silent and (back := translator.resumed()):
                    self._emit(translator, back)
                    continue
                if now >= self._next_retry_s.setdefault(address, now + self._config.retry_interval_s):
                    refused = translator.link in (Link.INSTALL_MODE, Link.KEY_MISMATCH)
                    factor = _REFUSED_RETRY_FACTOR if refused else 1
                    self._next_retry_s[address] = now + self._config.retry_interval_s * factor
                    translator.restarting()
                    await self._restart_reader(address)

    async def _restart_reader(self, address: int) -> None:
        """Make libosdp try ``address`` again now instead of after its own long back-off."""
        cp = self._cp
        if cp is None:
            return
        await asyncio.to_thread(cp.disable_pd, address)
        await asyncio.sleep(_DISABLE_SETTLE_S)
        if self._cp is cp:
            await asyncio.to_thread(cp.enable_pd, address)
