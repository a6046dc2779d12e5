"""Every console command: the right it needs, what it shows, and what it leaves in the audit trail.

Personal data is returned only by commands whose right is ``resident.read`` (clerks and
supervisors), and only the items the task needs; audit entries name residents by pseudonym.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import functools
import queue
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware_app.audit.errors import AuditError
from firmware_app.console.context import Ctx
from firmware_app.console.errors import E_FORBIDDEN, E_NOT_CONFIGURED, E_REFUSED, E_UNAVAILABLE, ConsoleError
from firmware_app.domain.errors import InvalidQuery
from firmware_app.domain.terms import FourItemQuery
from firmware_app.links.messages import Query
from firmware_app.operators.errors import OperatorError
from firmware_app.operators.roles import Right
from firmware_app.service.backup import backup_blocking
from firmware_app.service.backup_manifest import BackupError
from firmware_app.service.exports import ExportError, Step, sha256_file
from firmware_app.service.offsite import seal_parts_blocking
from firmware_app.service.identity_file import Current

Handler = Callable[[Ctx, dict[str, Any]], Awaitable[object]]


@dataclass(frozen=True)
class Command:
    name: str
    right: Right | None  # None: any operator logged in
    handler: Handler
    summary: str


COMMANDS: dict[str, Command] = {}
MAX_RESULTS = 100


def command(name: str, right: Right | None, summary: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        COMMANDS[name] = Command(name, right, fn, summary)
        return fn

    return register


# -- arguments ------------------------------------------------------------------------------------


def text(args: dict[str, Any], key: str, *, required: bool = True, max_chars: int = 200) -> str:
    value = args.get(key)
    if value is None or value == "":
        if required:
            raise ConsoleError(E_REFUSED, f"{key} is required")
        return ""
    if not isinstance(value, str) or len(value) > max_chars:
        raise ConsoleError(E_REFUSED, f"{key} must be text of at most {max_chars} characters")
    return value


def number(args: dict[str, Any], key: str, default: int | None = None, *, low: int = 0, high: int = 2**53) -> int:
    value = args.get(key, default)
    if value is None:
        raise ConsoleError(E_REFUSED, f"{key} is required")
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConsoleError(E_REFUSED, f"{key} must be a whole number from {low} to {high}")
    return value


def resident_code(args: dict[str, Any], key: str = "code") -> str:
    code = text(args, key, max_chars=11)
    if len(code) != 11 or not code.isascii() or not code.isdigit():
        raise ConsoleError(E_REFUSED, "a resident code is 11 digits")
    return code


def resident_view(current: Current) -> dict[str, str]:
    """What an operator confirming or searching needs: the code and the four items, nothing else."""
    r = current.record
    return {"code": r.resident_code, "name": r.name_kanji, "kana": r.name_kana, "birth_date": r.birth_date, "sex": r.sex, "address": r.address}


def need_room(ctx: Ctx):  # type: ignore[no-untyped-def]
    if ctx.services.room is None:
        raise ConsoleError(E_NOT_CONFIGURED, "machine room not configured")
    return ctx.services.room


# -- every operator -------------------------------------------------------------------------------


@command("whoami", None, "who is logged in, with which roles and rights")
async def whoami(ctx: Ctx, args: dict[str, Any]) -> object:
    today = ctx.services.registry.today()
    return {
        "operator": ctx.session.operator_id,
        "terminal": ctx.session.terminal_id,
        "roles": sorted(r.value for r in ctx.operator.roles_on(today)),
        "rights": sorted(r.value for r in ctx.rights),
        "idle_lock_s": ctx.services.idle_lock_s,
    }


@command("passwd", None, "change your own password")
async def passwd(ctx: Ctx, args: dict[str, Any]) -> object:
    old, new = text(args, "old", max_chars=256), text(args, "new", max_chars=256)
    try:
        await asyncio.to_thread(ctx.services.registry.change_password_blocking, ctx.actor, old, new)
    except OperatorError as exc:
        await ctx.audit("operator.password_change_refused", f"operator:{ctx.session.operator_id}")
        raise ConsoleError(E_REFUSED, "password change refused: " + str(exc)) from None
    await ctx.audit("operator.password_changed", f"operator:{ctx.session.operator_id}")
    return {"changed": True}


@command("status", Right.STATUS, "links, outbox depth, HSM, watchdog, doors, cameras and open alarms")
async def status(ctx: Ctx, args: dict[str, Any]) -> object:
    daemon, gateway = ctx.services.daemon, ctx.services.gateway
    links = {}
    for channel, link in daemon.outbound.items():
        try:
            depth: int | None = await gateway.outbox_depth(channel)
        except Exception:  # noqa: BLE001 - a depth that cannot be read is shown as unknown
            depth = None
        links[channel] = {"connected": bool(link.connected), "outbox_depth": depth}
    verdict = daemon.watchdog.last if daemon.watchdog is not None else None
    keyring = daemon.keyring
    room = ctx.services.room
    out: dict[str, object] = {
        "ready": bool(daemon.ready),
        "links": links,
        "national_query": "configured" if daemon.national_query is not None else "not configured",
        "hsm": {"sealed": True if keyring is None else keyring.sealed},
        "watchdog": {"state": verdict.state.name.lower() if verdict else "starting", "status": verdict.status if verdict else ""},
        "audit": {"last_seq": ctx.services.audit.head_seq},
        "room": dict(room.status()) if room is not None else "machine room not configured",
        "open_alarms": len(room.open_alarms()) if room is not None else None,
    }
    return out


# -- residents (personal data) --------------------------------------------------------------------


async def _shown(ctx: Ctx, found: list[Current]) -> None:
    for current in found:
        await ctx.audit("resident.shown", ctx.services.residents.pseudonym(current.record.resident_code))


@command("confirm", Right.RESIDENT_READ, "confirm a card holder by resident code")
async def confirm(ctx: Ctx, args: dict[str, Any]) -> object:
    code = resident_code(args)
    current = await ctx.services.residents.get(code)
    await ctx.audit("resident.confirm", ctx.services.residents.pseudonym(code), found=current is not None)
    if current is None:
        raise ConsoleError(E_REFUSED, "no current record for that resident code")
    return {"resident": resident_view(current)}


@command("search", Right.RESIDENT_READ, "search residents by code, individual number or the four items")
async def search(ctx: Ctx, args: dict[str, Any]) -> object:
    residents = ctx.services.residents
    by = "code" if args.get("code") else "number" if args.get("number") else "four"
    try:
        if by == "code":
            current = await residents.get(resident_code(args))
            found = [current] if current else []
        elif by == "number":
            found = await residents.find_by_number(text(args, "number", max_chars=12))
        else:
            query = FourItemQuery(
                name=text(args, "name", required=False) or None,
                sex=text(args, "sex", required=False, max_chars=1) or None,
                birth_date=text(args, "birth", required=False, max_chars=8) or None,
                address=text(args, "address", required=False) or None,
            )
            found = await residents.search(query, limit=MAX_RESULTS)
    except InvalidQuery as exc:
        raise ConsoleError(E_REFUSED, str(exc)) from None
    await ctx.audit("resident.search", by=by, results=len(found))
    await _shown(ctx, found)
    return {"residents": [resident_view(c) for c in found], "count": len(found)}


@command("national-query", Right.RESIDENT_READ, "ask the national server by code, individual number or the four items")
async def national_query(ctx: Ctx, args: dict[str, Any]) -> object:
    client = ctx.services.daemon.national_query
    if client is None:
        raise ConsoleError(E_NOT_CONFIGURED, "national server not configured")
    if args.get("code"):
        query = Query(by="code", resident_code=resident_code(args))
    elif args.get("number"):
        query = Query(by="number", individual_number=text(args, "number", max_chars=12))
    else:
        query = Query(
            by="four", name=text(args, "name", required=False, max_chars=100), sex=text(args, "sex", required=False, max_chars=1),
            birth_date=text(args, "birth", required=False, max_chars=8), address=text(args, "address", required=False),
        )
    try:
        items = await client.query(query)
    except Exception as exc:  # noqa: BLE001 - any link failure is "unavailable" to the operator
        await ctx.audit("resident.national_query", by=query.by, failed=type(exc).__name__)
        raise ConsoleError(E_UNAVAILABLE, "national server did not answer") from None
    await ctx.audit("resident.national_query", by=query.by, results=len(items))
    for item in items:
        await ctx.audit("resident.shown", ctx.services.residents.pseudonym(item.resident_code), source="national")
    return {
        "residents": [{"code": i.resident_code, "name": i.name, "birth_date": i.birth_date, "sex": i.sex, "address": i.address} for i in items],
        "count": len(items),
    }


# -- consistency check, retention, backup (no personal data) --------------------------------------


@command("check-summary", Right.CHECK_SUMMARY, "consistency check: resident count and range-digest root of the file")
async def check_summary(ctx: Ctx, args: dict[str, Any]) -> object:
    tree = await ctx.services.gateway.check_tree()
    await ctx.audit("check.summary")
    return {"residents": tree.count(0, 10**11), "root_digest": tree.root().hex()}


@command("retention-run", Right.RETENTION_RUN, "run the retention schedule now (identity file and audit trail)")
async def retention_run(ctx: Ctx, args: dict[str, Any]) -> object:
    run = await ctx.services.daemon.run_retention()
    counts = run.counts()
    await ctx.audit("retention.run", **counts)
    return {"run_on": run.report.run_on, **counts, "epochs": list(run.report.epochs_destroyed)}


@command("retention-reports", Right.REPORT_READ, "reports of past retention runs (counts only)")
async def retention_reports(ctx: Ctx, args: dict[str, Any]) -> object:
    reports = await ctx.services.gateway.retention_reports()
    await ctx.audit("report.retention")
    return {"reports": [dict(vars(r)) for r in reports[-number(args, "limit", 30, low=1, high=1000):]]}


@command("backup-run", Right.BACKUP_RUN, "write a signed backup of the store into a new directory on the appliance")
async def backup_run(ctx: Ctx, args: dict[str, Any]) -> object:
    out = Path(text(args, "out", max_chars=512))
    if not out.is_absolute():
        raise ConsoleError(E_REFUSED, "out must be an absolute path on the appliance")
    try:
        manifest = await asyncio.to_thread(backup_blocking, ctx.services.store, ctx.services.signer, out, clock=ctx.services.clock, note=f"console {ctx.session.operator_id}")
    except (BackupError, OSError) as exc:
        await ctx.audit("backup.failed", error=type(exc).__name__)
        raise ConsoleError(E_REFUSED, f"backup failed: {exc}") from None
    await ctx.audit("backup.run", size_bytes=manifest.data_size_bytes)
    return {"out": str(out), "size_bytes": manifest.data_size_bytes, "sha256": manifest.data_sha256, "created_at": manifest.created_at}


# -- machine room ---------------------------------------------------------------------------------


@command("room-status", Right.STATUS, "doors, cameras, sensors and readers")
async def room_status(ctx: Ctx, args: dict[str, Any]) -> object:
    return dict(need_room(ctx).status())


@command("alarm-list", Right.STATUS, "open alarms")
async def alarm_list(ctx: Ctx, args: dict[str, Any]) -> object:
    return {"alarms": [dict(a) for a in need_room(ctx).open_alarms()]}


@command("alarm-ack", Right.ALARM_ACK, "acknowledge an alarm")
async def alarm_ack(ctx: Ctx, args: dict[str, Any]) -> object:
    room = need_room(ctx)
    alarm_id = text(args, "alarm_id", max_chars=64)
    try:
        alarm = await room.acknowledge(alarm_id, ctx.session.operator_id)
    except Exception as exc:  # noqa: BLE001 - the room's refusals (unknown, already acknowledged) are shown as they are
        raise ConsoleError(E_REFUSED, str(exc)) from None
    await ctx.audit("room.alarm_acknowledged", f"alarm:{alarm_id}")
    return {"alarm": dict(alarm)}


@command("room-report", Right.ROOM_REPORT, "physical-access report of a period (csv or pdf)")
async def room_report(ctx: Ctx, args: dict[str, Any]) -> object:
    room = need_room(ctx)
    fmt = text(args, "format", required=False, max_chars=3) or "csv"
    if fmt not in ("csv", "pdf"):
        raise ConsoleError(E_REFUSED, "format must be csv or pdf")
    try:
        start = datetime.datetime.fromisoformat(text(args, "from", max_chars=32))
        end = datetime.datetime.fromisoformat(text(args, "to", max_chars=32))
    except ValueError:
        raise ConsoleError(E_REFUSED, "from and to must be ISO dates (YYYY-MM-DD or with a time)") from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=ctx.services.clock.now().tzinfo)
    if end.tzinfo is None:
        end = end.replace(tzinfo=ctx.services.clock.now().tzinfo)
    data = await room.report(start, end, fmt)
    await ctx.audit("room.report", start=start.isoformat(), end=end.isoformat(), format=fmt, size_bytes=len(data))
    return {"format": fmt, "data_b64": base64.b64encode(data).decode("ascii")}


# -- operators ------------------------------------------------------------------------------------


async def _operator_change(ctx: Ctx, kind: str, fn, *args: object) -> object:  # type: ignore[no-untyped-def]
    try:
        record = await asyncio.to_thread(fn, ctx.actor, *args)
    except OperatorError as exc:
        raise ConsoleError(E_REFUSED, str(exc)) from None
    await ctx.audit(kind, f"operator:{record.operator_id}")
    return {"operator": record.public(ctx.services.registry.today())}


def _target(args: dict[str, Any]) -> str:
    return text(args, "operator", max_chars=32)


@command("operator-list", Right.OPERATOR_LIST, "every operator with roles, dates and lock state")
async def operator_list(ctx: Ctx, args: dict[str, Any]) -> object:
    registry = ctx.services.registry
    records = await asyncio.to_thread(registry.list_blocking)
    await ctx.audit("operator.list")
    return {"operators": [r.public(registry.today()) for r in records]}


@command("operator-show", Right.OPERATOR_LIST, "one operator")
async def operator_show(ctx: Ctx, args: dict[str, Any]) -> object:
    registry = ctx.services.registry
    try:
        record = await asyncio.to_thread(registry.get_blocking, _target(args))
    except OperatorError as exc:
        raise ConsoleError(E_REFUSED, str(exc)) from None
    return {"operator": record.public(registry.today())}


@command("operator-add", Right.OPERATOR_MANAGE, "add an operator with one role and a first password")
async def operator_add(ctx: Ctx, args: dict[str, Any]) -> object:
    reg = ctx.services.registry
    return await _operator_change(
        ctx, "operator.added", reg.add_blocking, _target(args), text(args, "password", max_chars=256), text(args, "role", max_chars=32),
        text(args, "from", required=False, max_chars=10), text(args, "until", required=False, max_chars=10),
    )


@command("operator-grant", Right.OPERATOR_MANAGE, "grant a role from a date until a date")
async def operator_grant(ctx: Ctx, args: dict[str, Any]) -> object:
    reg = ctx.services.registry
    return await _operator_change(
        ctx, "operator.granted", reg.grant_blocking, _target(args), text(args, "role", max_chars=32),
        text(args, "from", required=False, max_chars=10), text(args, "until", required=False, max_chars=10),
    )


@command("operator-revoke", Right.OPERATOR_MANAGE, "revoke a role (or all)")
async def operator_revoke(ctx: Ctx, args: dict[str, Any]) -> object:
    return await _operator_change(ctx, "operator.revoked", ctx.services.registry.revoke_blocking, _target(args), text(args, "role", max_chars=32))


@command("operator-lock", Right.OPERATOR_MANAGE, "lock an account")
async def operator_lock(ctx: Ctx, args: dict[str, Any]) -> object:
    return await _operator_change(ctx, "operator.locked", ctx.services.registry.lock_blocking, _target(args))


@command("operator-unlock", Right.OPERATOR_MANAGE, "unlock an account (after lockout)")
async def operator_unlock(ctx: Ctx, args: dict[str, Any]) -> object:
    return await _operator_change(ctx, "operator.unlocked", ctx.services.registry.unlock_blocking, _target(args))


@command("operator-reset-password", Right.OPERATOR_MANAGE, "set a first password again (to be changed at next login)")
async def operator_reset_password(ctx: Ctx, args: dict[str, Any]) -> object:
    reg = ctx.services.registry
    return await _operator_change(ctx, "operator.password_reset", reg.reset_password_blocking, _target(args), text(args, "password", max_chars=256))


# -- exports under the two-person rule ------------------------------------------------------------


def _step(ctx: Ctx) -> Step:
    return Step(ctx.session.operator_id, ctx.session.terminal_id)


async def _book(fn, *args: object):  # type: ignore[no-untyped-def]
    try:
        return await asyncio.to_thread(fn, *args)
    except ExportError as exc:
        raise ConsoleError(E_REFUSED, str(exc)) from None


@command("export-request", Right.EXPORT_REQUEST, "request an export of personal data (a second operator approves)")
async def export_request(ctx: Ctx, args: dict[str, Any]) -> object:
    kind = text(args, "kind", max_chars=32)
    codes = args.get("codes") or []
    if not isinstance(codes, list) or any(len(c) != 11 or not c.isdigit() for c in codes):
        raise ConsoleError(E_REFUSED, "codes must be 11-digit resident codes")
    if kind == "residents" and not codes:
        raise ConsoleError(E_REFUSED, "a residents export names at least one resident code")
    req = await _book(ctx.services.exports.request_blocking, _step(ctx), kind, text(args, "reason", max_chars=200), {"codes": codes})
    await ctx.audit("export.requested", f"export:{req.export_id}", kind=kind, residents=len(codes))
    return {"export": req.public()}


@command("export-list", Right.EXPORT_REQUEST, "export requests and their state")
async def export_list(ctx: Ctx, args: dict[str, Any]) -> object:
    return {"exports": [r.public() for r in await _book(ctx.services.exports.list_blocking)]}


async def _decide(ctx: Ctx, args: dict[str, Any], approve: bool) -> object:
    if Right.EXPORT_APPROVE not in ctx.rights:
        raise ConsoleError(E_FORBIDDEN, "forbidden: your roles do not include that")
    export_id = number(args, "export_id", low=1)
    try:
        req = await _book(functools.partial(ctx.services.exports.decide_blocking, approve=approve), _step(ctx), export_id)
    except ConsoleError:
        await ctx.audit("export.decision_refused", f"export:{export_id}", approve=approve)
        raise
    await ctx.audit("export.approved" if approve else "export.denied", f"export:{export_id}", requested_by=req.requested_by)
    return {"export": req.public()}


@command("export-approve", Right.EXPORT_APPROVE, "approve another operator's export request")
async def export_approve(ctx: Ctx, args: dict[str, Any]) -> object:
    return await _decide(ctx, args, True)


@command("export-deny", Right.EXPORT_APPROVE, "deny another operator's export request")
async def export_deny(ctx: Ctx, args: dict[str, Any]) -> object:
    return await _decide(ctx, args, False)


@command("export-write", Right.EXPORT_REQUEST, "write your approved export, sealed to the recipient key, into the export directory")
async def export_write(ctx: Ctx, args: dict[str, Any]) -> object:
    services = ctx.services
    if services.export_recipient_pem is None:
        raise ConsoleError(E_NOT_CONFIGURED, "no export recipient key configured (console.export_recipient)")
    export_id = number(args, "export_id", low=1)
    req, params = await _book(services.exports.claim_blocking, _step(ctx), export_id)
    out = services.export_dir / f"export-{export_id:06d}-{req.kind}.cse"
    try:
        services.export_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        size_bytes = await _seal(_parts(ctx, req.kind, params), services.export_recipient_pem, out)
    except BaseException as exc:
        await _book(services.exports.release_blocking, export_id)
        await ctx.audit("export.failed", f"export:{export_id}", error=type(exc).__name__)
        if isinstance(exc, BackupError | OSError | AuditError):
            raise ConsoleError(E_REFUSED, f"export failed: {exc}") from None
        raise
    digest = await asyncio.to_thread(sha256_file, out)
    req = await _book(services.exports.written_blocking, _step(ctx), export_id, out.name, digest, size_bytes)
    await ctx.audit("export.written", f"export:{export_id}", kind=req.kind, size_bytes=size_bytes, sha256=digest, approved_by=req.decided_by)
    return {"export": req.public(), "path": str(out)}


async def _parts(ctx: Ctx, kind: str, params: dict[str, list[str]]) -> AsyncIterator[tuple[str, bytes]]:
    services = ctx.services
    if kind == "residents":
        lines = ["code,name,kana,birth_date,sex,address"]
        for code in params.get("codes", []):
            current = await services.residents.get(code)
            await ctx.audit("resident.exported", services.residents.pseudonym(code), found=current is not None)
            if current is not None:
                v = resident_view(current)
                lines.append(",".join(_csv(v[k]) for k in ("code", "name", "kana", "birth_date", "sex", "address")))
        yield "residents.csv", ("\n".join(lines) + "\n").encode("utf-8")
    elif kind == "destinations":
        gateway = services.gateway
        state = await gateway.outbox_state("card_system")
        seq = state.acked_through + 1
        for _ in range(1_000_000):
            batch = await gateway.outbox_batch("card_system", seq, 512)
            if batch is None:
                break
            for i, entry in enumerate(batch.entries):
                yield f"card-system-{batch.first_seq + i:012d}.msgpack", entry
            seq = batch.first_seq + len(batch.entries)
    elif kind == "check-file":
        n = 0
        async for item in services.gateway.check_data(b"export"):
            if isinstance(item, tuple):
                yield "check-trailer.msgpack", item[1]
            else:
                n += 1
                yield f"check-chunk-{n:06d}.msgpack", item


def _csv(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


async def _seal(parts: AsyncIterator[tuple[str, bytes]], recipient_pem: bytes, out: Path) -> int:
    """Seal parts produced on the event loop on a worker thread, a few parts ahead at most."""
    q: queue.Queue[object] = queue.Queue(maxsize=4)
    end, abort = object(), object()

    def pull():  # type: ignore[no-untyped-def]
        while (item := q.get()) is not end:
            if item is abort:
                raise BackupError("export production failed; nothing was written")
            yield item

    async def put(item: object) -> None:
        while not sealing.done():
            try:
                q.put_nowait(item)
                return
            except queue.Full:
                await asyncio.sleep(0.005)

    sealing = asyncio.ensure_future(asyncio.to_thread(seal_parts_blocking, pull(), recipient_pem, out))
    try:
        async for part in parts:
            await put(part)
            if sealing.done():
                break
    except BaseException:
        await put(abort)  # the sealer removes its partial file
        await asyncio.gather(sealing, return_exceptions=True)
        raise
    await put(end)
    return await sealing


# -- audit ----------------------------------------------------------------------------------------


@command("audit-verify", Right.AUDIT_READ, "prove the audit chain and its signed checkpoints; name the first broken entry")
async def audit_verify(ctx: Ctx, args: dict[str, Any]) -> object:
    report = await ctx.services.audit.verify()
    await ctx.audit("audit.verified", ok=report.ok, first_broken_seq=report.first_broken_seq)
    return report.to_json()


@command("audit-show", Right.AUDIT_READ, "audit entries (newest last), filtered by kind, actor or resident")
async def audit_show(ctx: Ctx, args: dict[str, Any]) -> object:
    subject = text(args, "subject", required=False, max_chars=128)
    if args.get("resident"):
        subject = ctx.services.residents.pseudonym(resident_code(args, "resident"))
    entries = await ctx.services.audit.entries(
        from_seq=number(args, "from_seq", 0), limit=number(args, "limit", 50, low=1, high=1000),
        kind=text(args, "kind", required=False, max_chars=64), actor=text(args, "actor", required=False, max_chars=64), subject=subject,
    )
    await ctx.audit("audit.read", results=len(entries))
    return {"entries": [e.to_json() for e in entries]}
