"""``csd``, the Community Server daemon: one asyncio process, started from a TOML file.

Start, in order: configuration → storage → HSM login and self-test → links → ready.
Stop, one path for every cause (SIGTERM, SIGINT, a failed start): stop taking connections and
updates → let open sessions commit what they accepted and the outbound links stop, within
``drain_timeout_s`` → close the HSM session and the LMDB environment.

Under systemd (``Type=notify``): ``READY=1`` once ready, ``WATCHDOG=1`` while the health checks
pass and ``STATUS=`` saying what is degraded (see ``watchdog``), ``STOPPING=1`` when stopping.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import logging
import signal
import sys
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path

from firmware_app.audit.errors import AuditError
from firmware_app.audit.trail import AuditTrail, TrailSettings
from firmware_app.clock import Clock, SystemClock
from firmware_app.config import Config, ConfigError, load_config
from firmware_app.hygiene import HygieneError, apply_process_hygiene, lock_memory
from firmware_app.journal import configure_logging, event
from firmware_app.links.connection import Connection
from firmware_app.links.consistency_link import ConsistencyHandlers
from firmware_app.links.errors import LinkError
from firmware_app.links.inbound import InboundSession, describe_sessions
from firmware_app.links.messages import MessageCodec
from firmware_app.links.national_query import NationalQueryClient
from firmware_app.links.outbound import OutboundLink
from firmware_app.links.server import LinkServer
from firmware_app.room.errors import RoomError
from firmware_app.room.service import RoomService
from firmware_app.service.errors import ServiceUnavailable
from firmware_app.service.gateway import Gateway
from firmware_app.service.identity_file import IdentityFile
from firmware_app.service.intake import Intake
from firmware_app.service.keyring import Keyring
from firmware_app.service.outbox import Outbox
from firmware_app.service.retention import RetentionReport, RetentionSweep
from hsm.config import open_token
from hsm.errors import HsmError
from hsm.keys import Signer
from hsm.labels import SIGNING_LABEL
from hsm.token import Token
from storage import layout
from storage.errors import StorageError
from storage.store import Store
from watchdog.checks import CheckSource, HsmProbe, LinkWatch, Resources, RoomWatch, StorageProbe
from watchdog.health import Thresholds
from watchdog.notify import Notifier, forget_environ, watchdog_interval_s
from watchdog.service import WatchdogService

__all__ = ["Daemon", "RetentionRun", "StartFailed", "main"]

log = logging.getLogger("csd")

_OUTBOX_TABLES = {"prefecture": layout.OUTBOX_PREF, "card_system": layout.OUTBOX_NATIONAL}
EXIT_CONFIG = 2
EXIT_HSM = 3
EXIT_STORAGE = 4
EXIT_LINKS = 5
EXIT_HYGIENE = 6
EXIT_ROOM = 7
EXIT_CONSOLE = 8


@dataclass(frozen=True)
class RetentionRun:
    """What one retention run deleted: the identity file's report and the audit entries."""

    report: RetentionReport
    audit_entries: int

    def counts(self) -> dict[str, int]:
        """Counts per class (no personal data), as the audit trail records them."""
        r = self.report
        return {
            "history_versions": r.history_versions, "moveout_certificates": r.moveout_certificates,
            "destination_records": r.destination_records, "outbox_entries": r.outbox_entries,
            "epochs_destroyed": len(r.epochs_destroyed), "audit_entries": self.audit_entries,
        }


class StartFailed(Exception):
    """The daemon could not reach ready; ``exit_code`` says which stage failed."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Daemon:
    """The running CS: storage, keys, service and links, started and stopped in order."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        token: Token | None = None,
        notifier: Notifier | None = None,
        watchdog_interval_s: float | None = None,
    ) -> None:
        """``token``: an already logged-in session to use instead of logging in (tests; SoftHSM2
        allows one login per process).  The daemon then leaves it open when it stops.
        ``notifier``: the service manager's socket (none: notifications are dropped);
        ``watchdog_interval_s``: how often to ping it (None: systemd does not watch)."""
        self.config = config
        self._clock = clock or SystemClock()
        self.store: Store | None = None
        self._token: Token | None = token
        self._owns_token = token is None
        self.keyring: Keyring | None = None
        self.gateway: Gateway | None = None
        self.server: LinkServer | None = None
        self.outbound: dict[str, OutboundLink] = {}
        self.national_query: NationalQueryClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._sessions: set[InboundSession] = set()
        self._stopping = False
        self.ready = False
        self._notifier = notifier or Notifier(None)
        self._watchdog_interval_s = watchdog_interval_s
        self.watchdog: WatchdogService | None = None
        self._watchdog_task: asyncio.Task[None] | None = None
        # The machine room (issue 6): started after the links (its audit sink is the trail),
        # stopped before the store closes.
        self.room: RoomService | None = None
        # console and audit (issue 5): the trail runs whenever the service does; the console only
        # with a [console] table; it reaches the room through ``room`` (a RoomPort).
        self.signer: Signer | None = None
        self.audit: AuditTrail | None = None
        self.console: object | None = None

    @property
    def clock(self) -> Clock:
        return self._clock

    # -- start ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bring every part up in order; on failure everything started so far is closed again."""
        try:
            await asyncio.to_thread(self._open_storage)
            await asyncio.to_thread(self._open_hsm)
            self._build_service()
            await self._start_audit()
            try:
                await self._start_links()
            except (OSError, LinkError) as exc:
                raise StartFailed(f"links could not start: {type(exc).__name__}: {exc}", EXIT_LINKS) from None
            await self._start_room()
            await self._start_console()
        except BaseException:
            await self.stop()
            raise
        self.ready = True
        self._tasks.append(asyncio.create_task(self._retention_loop(), name="retention"))
        port = self.server.port if self.server else 0
        log.info("ready: listening on %s port %d", self.config.listen_host, port, extra=event("csd.ready"))
        self._notifier.send(READY=1, STATUS=f"ready: listening on {self.config.listen_host} port {port}")
        self._start_watchdog()

    def _open_storage(self) -> None:
        try:
            self.store = Store(self.config.store_path, map_size_bytes=self.config.map_size_bytes)
        except (StorageError, OSError) as exc:  # OSError: the directory cannot be made (a file in the way, permissions)
            raise StartFailed(f"storage could not be opened: {exc}", EXIT_STORAGE) from None
        log.info("storage open", extra=event("csd.storage_open"))

    def _open_hsm(self) -> None:
        assert self.store is not None
        try:
            if self._token is None:
                self._token = open_token(self.config.hsm)
            self.keyring = Keyring(self._token, self.store, self._clock, strict=self.config.strict_hsm)
            self.keyring.open_blocking()
            self._self_test()
        except HsmError as exc:
            raise StartFailed(f"HSM not usable: {exc}", EXIT_HSM) from None
        log.info("HSM logged in, self-test passed, data keys unwrapped (strict=%s)", self.config.strict_hsm, extra=event("csd.hsm_ready"))

    def _self_test(self) -> None:
        """A signature made and verified, and a seal/open round trip, before anything is served."""
        assert self._token is not None and self.keyring is not None
        signer = Signer(self._token, SIGNING_LABEL)
        probe = b"csd self-test"
        signer.verify(probe, signer.sign(probe))
        self.keyring.probe_blocking()
        key = self.keyring.outbox_key()
        if key.open(key.seal(probe, b"self-test"), b"self-test") != probe:
            raise HsmError("seal/open self-test failed")

    def _build_service(self) -> None:
        assert self.store is not None and self.keyring is not None and self._token is not None
        identity_file = IdentityFile(self.store, self.keyring, self._clock)
        outboxes = {channel: Outbox(self.store, self.keyring, table) for channel, table in _OUTBOX_TABLES.items()}
        intake = Intake(
            self.store,
            self.keyring,
            identity_file,
            prefecture=outboxes["prefecture"],
            card_system=outboxes["card_system"],
            clock=self._clock,
            moveout_keep_days=self.config.moveout_keep_days,
        )
        retention = RetentionSweep(self.store, self.keyring, intake, self._clock, batch=self.config.retention_batch)
        self.signer = Signer(self._token, SIGNING_LABEL)
        self.gateway = Gateway(
            store=self.store,
            keyring=self.keyring,
            intake=intake,
            outboxes=outboxes,
            signer=self.signer,
            retention=retention,
        )

    async def _start_links(self) -> None:
        assert self.gateway is not None
        cfg = self.config
        codec = MessageCodec(max_frame_bytes=cfg.limits.max_frame_bytes)
        roles = {peer.pin_sha256: name for name, peer in cfg.peers.items()}
        self.server = LinkServer(host=cfg.listen_host, port=cfg.listen_port, tls=cfg.tls(), roles=roles, handler=self._session, codec=codec)
        await self.server.start()
        for channel, peer in cfg.outbound().items():
            endpoint = cfg.peers[peer].endpoint
            assert endpoint is not None
            link = OutboundLink(
                channel,
                endpoint,
                cfg.tls_for(peer),
                self.gateway,
                codec,
                window_entries=cfg.limits.window_entries,
                batch_entries=cfg.limits.batch_entries,
                backoff_initial_s=cfg.limits.backoff_initial_s,
                backoff_max_s=cfg.limits.backoff_max_s,
                ack_timeout_s=cfg.limits.ack_timeout_s,
            )
            self.outbound[channel] = link
            self._tasks.append(asyncio.create_task(link.run(), name=f"outbound-{channel}"))
        national = cfg.peers.get("national")
        if national is not None and national.endpoint is not None:
            self.national_query = NationalQueryClient(national.endpoint, cfg.tls_for("national"), codec)

    async def _start_room(self) -> None:
        """The machine room, if configured; a broker not yet reachable is retried, not fatal.
        Every room event and alarm goes to the audit trail."""
        if self.config.room is None:
            return
        assert self.store is not None
        self.room = RoomService(self.config.room, self.store, self._clock, audit=self.audit)
        try:
            await self.room.start()
        except (RoomError, OSError) as exc:
            raise StartFailed(f"machine room could not start: {exc}", EXIT_ROOM) from None

    # -- console and audit (issue 5) ---------------------------------------------------------------

    async def _start_audit(self) -> None:
        assert self.store is not None and self.signer is not None
        console = self.config.console
        settings = TrailSettings(
            flush_interval_s=console.audit_flush_interval_s, checkpoint_interval_s=console.audit_checkpoint_interval_s,
            retention_days=console.audit_retention_days,
        ) if console is not None else TrailSettings()
        self.audit = AuditTrail(self.store, self.signer, self._clock, settings)
        try:
            await self.audit.start()
        except AuditError as exc:
            raise StartFailed(f"audit trail could not be opened: {exc}", EXIT_STORAGE) from None
        await self.audit.record("csd.started", actor="system")

    async def _start_console(self) -> None:
        if self.config.console is None:
            return
        from firmware_app.console.errors import ConsoleError
        from firmware_app.console.service import build_console

        assert self.audit is not None
        try:
            self.console = console = build_console(self.config.console, self, self.audit, self.room)
            await console.start()
        except (ConsoleError, OSError) as exc:
            raise StartFailed(f"console could not start: {exc}", EXIT_CONSOLE) from None

    async def _stop_audit(self) -> None:
        if self.audit is not None:
            with contextlib.suppress(Exception):
                await self.audit.record("csd.stopped", actor="system")
            with contextlib.suppress(Exception):
                await _bounded("flushing the audit trail", self.audit.stop(), _STEP_MARGIN_S)
            self.audit = None

    def _start_watchdog(self) -> None:
        assert self.gateway is not None and self.keyring is not None
        thresholds = Thresholds(link_grace_s=self.config.watchdog_link_grace_s)
        sources: list[CheckSource] = [
            HsmProbe(self.keyring),
            StorageProbe(self.gateway.probe_storage),
            Resources(self.config.store_path, thresholds),
            LinkWatch(self.outbound, self.gateway.outbox_depth, thresholds),
        ]
        if self.room is not None:
            sources.append(RoomWatch(self.room))
        self.watchdog = WatchdogService(
            self._notifier,
            sources,
            interval_s=self._watchdog_interval_s,
            thresholds=thresholds,
        )
        self._watchdog_task = asyncio.create_task(self.watchdog.run(), name="watchdog")

    async def _retention_loop(self) -> None:
        """A retention run at start and then every ``retention.interval_s``; a failed run is logged
        and retried at the next interval (the engine is idempotent)."""
        while True:
            try:
                run = await self.run_retention()
                if self.audit is not None:
                    await self.audit.record("retention.run", actor="system", detail=run.counts())
            except ServiceUnavailable as exc:
                log.error("retention run failed: %s", exc, extra=event("retention.failed"))
            except Exception as exc:  # noqa: BLE001 - the audit trail's failure is logged by it; retried next interval
                log.error("retention run failed: %s", type(exc).__name__, extra=event("retention.failed"))
            await asyncio.sleep(self.config.retention_interval_s)

    async def run_retention(self) -> RetentionRun:
        """One retention run now, of the identity file and then the audit trail: the schedule's
        and the console's ``retention run`` (each records it in the audit trail as its actor)."""
        assert self.gateway is not None
        report = await self.gateway.run_retention()
        audit = await self.audit.run_retention() if self.audit is not None else {"deleted": 0}
        return RetentionRun(report, audit["deleted"])

    async def _session(self, role: str, conn: Connection) -> None:
        assert self.gateway is not None
        consistency = ConsistencyHandlers(self.gateway)
        session = InboundSession(
            role,
            conn,
            self.gateway,
            max_group=self.config.limits.max_group,
            extra_requests=consistency.handlers,
            drain_timeout_s=self.config.drain_timeout_s,
        )
        if self._stopping:
            return  # stopping: no new sessions
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)

    # -- stop -----------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop intake, drain within the time bound, then close the HSM session and LMDB."""
        if self.ready:
            self._notifier.send(STOPPING=1, STATUS="stopping: draining open sessions")
        # Cancelled before the first await, so it sends nothing more; awaited with the other tasks
        # (awaiting it here would leave intake open a moment longer).
        if self._watchdog_task is not None:
            self._watchdog_task.cancel()
            self._tasks.append(self._watchdog_task)
            self._watchdog_task = None
        self.ready = False
        self._stopping = True
        drain_s = self.config.drain_timeout_s
        if self.console is not None:
            await _bounded("closing the console", self.console.stop(), _STEP_MARGIN_S)  # type: ignore[attr-defined]
            self.console = None
        if self.server is not None:
            await self.server.stop_accepting()
            for session in list(self._sessions):
                session.stop()
            await _bounded("closing the listener and its sessions", self.server.close(timeout_s=drain_s), drain_s + _STEP_MARGIN_S)
        for task in self._tasks:
            task.cancel()
        await _bounded("stopping the links and tasks", asyncio.gather(*self._tasks, return_exceptions=True), _STEP_MARGIN_S)
        self._tasks.clear()
        if self.room is not None:
            await _bounded("stopping the machine room", self.room.stop(), _STEP_MARGIN_S)
            self.room = None
        await self._stop_audit()
        if self.gateway is not None:
            with contextlib.suppress(Exception):
                await _bounded("recording acknowledgements", self.gateway.flush_acks(), _STEP_MARGIN_S)
            await _bounded("joining the worker threads", asyncio.to_thread(self.gateway.close), _STEP_MARGIN_S)
        if self.keyring is not None:
            self.keyring.seal(reason="stopping")
        if self._token is not None and self._owns_token:
            await asyncio.to_thread(self._token.close_blocking)
            self._token = None
        if self.store is not None:
            self.store.close()
            self.store = None
        log.info("stopped", extra=event("csd.stopped"))


#: The most any one step of the stop may add to the drain bound before the stop goes on without it.
_STEP_MARGIN_S = 5.0


async def _bounded(what: str, awaitable: Awaitable[object], timeout_s: float) -> None:
    """Await one step of the stop, but never longer than ``timeout_s``: a stop must always end (a
    step that overruns is logged with every task's stack, so the cause can be found)."""
    try:
        await asyncio.wait_for(awaitable, timeout_s)
    except (TimeoutError, asyncio.TimeoutError):
        log.error("stop: %s took longer than %.1f s; going on without it", what, timeout_s, extra=event("csd.stop_overrun"))
        _dump_tasks()


def _dump_tasks() -> None:
    """SIGUSR2: every asyncio task's stack to stderr (code locations only), for a stalled daemon."""
    for task in asyncio.all_tasks():
        task.print_stack(file=sys.stderr)
    for line in describe_sessions():
        print(f"session {line}", file=sys.stderr)


async def serve(config: Config, *, notifier: Notifier | None = None, watchdog_interval_s: float | None = None) -> None:
    """Run until SIGTERM or SIGINT, then stop cleanly."""
    daemon = Daemon(config, notifier=notifier, watchdog_interval_s=watchdog_interval_s)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR2, _dump_tasks)
    await daemon.start()
    await stop.wait()
    log.info("stopping: intake closed, draining for at most %.1f s", config.drain_timeout_s, extra=event("csd.stopping"))
    await daemon.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """``csd --config FILE``."""
    parser = argparse.ArgumentParser(prog="csd", description="Community Server daemon")
    parser.add_argument("--config", type=Path, required=True, help="TOML configuration file")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.add_argument("--allow-root", action="store_true", help="development and CI only: run although uid is 0")
    args = parser.parse_args(argv)
    configure_logging(args.log_level, "csd")
    try:
        report = apply_process_hygiene(allow_root=args.allow_root)
    except HygieneError as exc:
        log.error("refusing to start: %s", exc, extra=event("csd.hygiene_refused"))
        return EXIT_HYGIENE
    locked = lock_memory()
    log.info("%s; memory locked against swap: %s", report.describe(), "yes" if locked else "no", extra=event("csd.hygiene"))
    # SIGUSR1 writes every thread's stack to stderr (code locations only, never data): for a hung daemon.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    # The service manager's variables are ours alone: no child process may notify in our name.
    notifier, interval_s = Notifier.from_environ(), watchdog_interval_s()
    forget_environ()
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        log.error("configuration refused: %s", exc, extra=event("csd.config_refused"))
        notifier.send(STATUS=f"configuration refused: {exc}")
        notifier.close()
        return EXIT_CONFIG
    try:
        asyncio.run(serve(config, notifier=notifier, watchdog_interval_s=interval_s))
    except StartFailed as exc:
        log.error("start failed: %s", exc, extra=event("csd.start_failed"))
        notifier.send(STATUS=f"start failed: {exc}")
        return exc.exit_code
    finally:
        notifier.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
