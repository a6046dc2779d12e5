"""The console subsystem: the dispatcher between the socket and the commands, with login, unlock,
logout, replay guard, idle lock, rights checks and the audit record of every step.

Started after the daemon is ready (``attach`` then ``start``), stopped first on stop.
"""

from __future__ import annotations

import asyncio
import grp
import logging
import re
from typing import Any

from firmware_app.audit.errors import AuditError
from firmware_app.audit.trail import AuditTrail
from firmware_app.clock import Clock
from firmware_app.console.commands import COMMANDS
from firmware_app.console.context import Ctx, Services
from firmware_app.console.errors import (
    E_FORBIDDEN,
    E_LOCKED,
    E_LOGIN_REFUSED,
    E_LOGIN_REQUIRED,
    E_PASSWORD_CHANGE,
    E_REFUSED,
    E_UNAVAILABLE,
    E_UNKNOWN_COMMAND,
    ConsoleError,
)
from firmware_app.console.protocol import Request, Response, decode_request, encode_response, failed, ok
from firmware_app.console.server import Connection, ConsoleServer, PeerCredentials
from firmware_app.console.session import ANONYMOUS, LOCKED, Session
from firmware_app.console.settings import ConsoleConfig
from firmware_app.journal import event
from firmware_app.operators.errors import LoginRefused, OperatorError
from firmware_app.operators.policy import check_operator_id
from firmware_app.operators.roles import rights_of
from firmware_app.service.errors import ServiceUnavailable

__all__ = ["ConsoleService", "resolve_group"]

log = logging.getLogger(__name__)

_TERMINAL = re.compile(r"[A-Za-z0-9/._:-]{1,32}")
#: What an operator who must change their password may still do.
_BEFORE_CHANGE = frozenset({"passwd", "whoami", "logout"})


def resolve_group(group: str) -> int:
    """A group name or number as a gid; ``ConsoleError`` naming the setting when unknown."""
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConsoleError(E_UNAVAILABLE, f"console.group {group!r} is not a group on this machine") from None


class ConsoleService:
    """Owns the console socket; every request goes through :meth:`handle`."""

    def __init__(self, config: ConsoleConfig, services: Services) -> None:
        self.config = config
        self.services = services
        self._server: ConsoleServer | None = None

    @property
    def _audit(self) -> AuditTrail:
        return self.services.audit

    @property
    def _clock(self) -> Clock:
        return self.services.clock

    async def start(self) -> None:
        gid = resolve_group(self.config.group)
        self._server = ConsoleServer(
            self.config.socket_path, gid, self._serve, on_refused=self._refused, max_connections=self.config.max_connections
        )
        await self._server.start()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None
        await asyncio.to_thread(self.services.residents.close)

    async def _refused(self, creds: PeerCredentials, reason: str) -> None:
        log.warning("console peer refused (%s): uid=%d gid=%d", reason, creds.uid, creds.gid, extra=event("console.peer_refused"))
        await self._audit.record("console.peer_refused", actor=f"peer:{creds.describe()}", detail={"gid": creds.gid, "reason": reason})

    # -- one connection ---------------------------------------------------------------------------

    async def _serve(self, creds: PeerCredentials, conn: Connection) -> None:
        session = Session(self._clock, self.config.idle_lock_s, creds.describe())
        await conn.send(encode_response(ok(0, {"server": "csd", "version": 1, "idle_lock_s": self.config.idle_lock_s})))
        try:
            while True:
                try:
                    body = await conn.recv()
                except ConsoleError as exc:  # an oversized frame: the stream cannot be trusted further
                    await self._audit.record("console.request_refused", actor=session.actor, detail={"code": exc.code})
                    await self._audit.flush()
                    await conn.send(encode_response(failed(0, exc.code, str(exc))))
                    return
                if body is None:
                    return
                response, close = await self.handle(session, body)
                await conn.send(encode_response(response))
                if close:
                    return
        finally:
            if session.state != ANONYMOUS:
                await self._audit.record("console.logout", actor=session.operator_id, detail={"terminal": session.terminal_id, "cause": "disconnected"})

    async def handle(self, session: Session, body: bytes) -> tuple[Response, bool]:
        """One request → its response, and whether to close the connection after it."""
        request_id = 0
        close = False
        try:
            request = decode_request(body)
            request_id = request.id
            session.accept_id(request.id)
            result, close = await self._dispatch(session, request)
            response = ok(request.id, result)
        except ConsoleError as exc:
            if exc.code not in (E_LOGIN_REFUSED, E_LOCKED):
                await self._record_refusal(session, exc.code)
            response = failed(request_id, exc.code, str(exc))
            close = close or session.login_failures >= self.config.login_attempts_per_connection
        except ServiceUnavailable as exc:
            response = failed(request_id, E_UNAVAILABLE, str(exc))
        except Exception as exc:  # noqa: BLE001 - one failed command must not end the operator's session
            log.error("console command failed: %s", type(exc).__name__, extra=event("console.command_failed"))
            response = failed(request_id, E_UNAVAILABLE, "the command failed; see the journal")
        try:
            await self._audit.flush()  # nothing is answered before its audit record is durable
        except AuditError:
            log.error("console request refused: audit trail unavailable", extra=event("console.audit_unavailable"))
            return failed(request_id, E_UNAVAILABLE, "audit trail unavailable; request refused"), True
        return response, close

    async def _record_refusal(self, session: Session, code: str) -> None:
        kind = "console.forbidden" if code == E_FORBIDDEN else "console.request_refused"
        await self._audit.record(kind, actor=session.actor, detail={"code": code, "terminal": session.terminal_id or None})

    async def _dispatch(self, session: Session, request: Request) -> tuple[object, bool]:
        if session.lock_if_idle():
            await self._audit.record("console.idle_locked", actor=session.operator_id, detail={"terminal": session.terminal_id})
        cmd, args = request.cmd, dict(request.args)
        if cmd == "login":
            return await self._login(session, args), False
        if cmd == "unlock":
            return await self._unlock(session, args), False
        if cmd == "logout":
            if session.state != ANONYMOUS:
                await self._audit.record("console.logout", actor=session.operator_id, detail={"terminal": session.terminal_id})
            session.logged_out()
            return {"logged_out": True}, True
        if session.state == ANONYMOUS:
            raise ConsoleError(E_LOGIN_REQUIRED, "log in first")
        if session.state == LOCKED:
            raise ConsoleError(E_LOCKED, "session locked after being idle; log in again to unlock")
        command = COMMANDS.get(cmd)
        if command is None:
            raise ConsoleError(E_UNKNOWN_COMMAND, "unknown command")
        registry = self.services.registry
        try:
            operator = await asyncio.to_thread(registry.get_blocking, session.operator_id)
        except OperatorError:
            raise ConsoleError(E_FORBIDDEN, "forbidden: the operator no longer exists") from None
        rights = rights_of(operator.roles_on(registry.today()))
        if operator.locked or not rights:
            raise ConsoleError(E_FORBIDDEN, "forbidden: the account is locked or holds no valid rights")
        if operator.must_change and cmd not in _BEFORE_CHANGE:
            raise ConsoleError(E_PASSWORD_CHANGE, "change your password first (csctl passwd)")
        if command.right is not None and command.right not in rights:
            await self._audit.record("console.forbidden", actor=session.operator_id, detail={"command": cmd, "terminal": session.terminal_id})
            raise ConsoleError(E_FORBIDDEN, "forbidden: your roles do not include that")
        if not args.pop("poll", False):
            session.touch()
        return await command.handler(Ctx(session, operator, rights, self.services), args), False

    async def _login(self, session: Session, args: dict[str, Any]) -> object:
        if session.state != ANONYMOUS:
            raise ConsoleError(E_REFUSED, "already logged in on this connection")
        operator_id, password, terminal = _credentials(args)
        record = await self._authenticate(session, "console.login_failed", operator_id, password)
        session.logged_in(operator_id, terminal)
        await self._audit.record("console.login", actor=operator_id, detail={"terminal": terminal, "peer": session.peer})
        return {
            "operator": operator_id,
            "roles": sorted(r.value for r in record.roles_on(self.services.registry.today())),
            "must_change_password": record.must_change,
            "idle_lock_s": self.config.idle_lock_s,
        }

    async def _unlock(self, session: Session, args: dict[str, Any]) -> object:
        if session.state != LOCKED:
            raise ConsoleError(E_REFUSED, "the session is not locked")
        password = args.get("password")
        if not isinstance(password, str) or len(password) > 256:
            raise ConsoleError(E_REFUSED, "password is required")
        await self._authenticate(session, "console.unlock_failed", session.operator_id, password)
        session.unlocked()
        await self._audit.record("console.unlocked", actor=session.operator_id, detail={"terminal": session.terminal_id})
        return {"unlocked": True}

    async def _authenticate(self, session: Session, failure_kind: str, operator_id: str, password: str):  # type: ignore[no-untyped-def]
        try:
            return await asyncio.to_thread(self.services.registry.authenticate_blocking, operator_id, password)
        except LoginRefused as exc:
            session.login_failures += 1
            subject = f"operator:{operator_id}" if _valid_id(operator_id) else ""
            await self._audit.record(failure_kind, actor=session.actor, subject=subject, detail={"reason": exc.reason, "peer": session.peer})
            if exc.reason == "wrong_password_locked":
                log.warning("operator account locked after repeated failures", extra=event("console.account_locked"))
                await self._audit.record("operator.locked_out", actor="system", subject=subject)
            raise ConsoleError(E_LOGIN_REFUSED, "login refused") from None


def _credentials(args: dict[str, Any]) -> tuple[str, str, str]:
    operator_id, password, terminal = args.get("operator"), args.get("password"), args.get("terminal") or "console"
    if not isinstance(operator_id, str) or not isinstance(password, str) or len(operator_id) > 64 or len(password) > 256:
        raise ConsoleError(E_REFUSED, "operator and password are required")
    if not isinstance(terminal, str) or not _TERMINAL.fullmatch(terminal):
        raise ConsoleError(E_REFUSED, "terminal must be 1-32 letters, digits or / . _ : -")
    return operator_id, password, terminal


def _valid_id(operator_id: str) -> bool:
    try:
        check_operator_id(operator_id)
    except OperatorError:
        return False
    return True


def build_console(config: ConsoleConfig, daemon: Any, audit: AuditTrail, room: Any = None) -> ConsoleService:
    """The console over a started daemon's store, keys and gateway."""
    from firmware_app.operators.kdf import KdfParams
    from firmware_app.operators.policy import LockoutPolicy, PasswordPolicy
    from firmware_app.operators.registry import OperatorRegistry
    from firmware_app.service.exports import ExportBook
    from firmware_app.service.identity_file import IdentityFile
    from firmware_app.service.residents import ResidentDirectory

    clock = daemon.clock
    registry = OperatorRegistry(
        daemon.store,
        clock,
        password_policy=PasswordPolicy(min_chars=config.password_min_chars),
        lockout=LockoutPolicy(config.lockout_failures),
        kdf_params=KdfParams(config.kdf_memory_kib, config.kdf_iterations, config.kdf_lanes),
    )
    recipient = config.export_recipient.read_bytes() if config.export_recipient is not None else None
    services = Services(
        registry=registry,
        audit=audit,
        residents=ResidentDirectory(IdentityFile(daemon.store, daemon.keyring, clock), daemon.keyring),
        exports=ExportBook(daemon.store, daemon.keyring, clock, approval_valid_s=config.export_approval_valid_s),
        clock=clock,
        gateway=daemon.gateway,
        daemon=daemon,
        store=daemon.store,
        signer=daemon.signer,
        room=room,
        export_dir=config.export_dir,
        export_recipient_pem=recipient,
        idle_lock_s=config.idle_lock_s,
    )
    return ConsoleService(config, services)
