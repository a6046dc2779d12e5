"""``csctl``: the operator console of the Community Server.

Each command connects to csd's console socket, logs in (password from the terminal, or the first
line of standard input with ``--password-stdin``), runs, and logs out.  ``csctl shell`` keeps one
login for many commands; ``csctl screen`` is the live dashboard.  Output is a readable table, or
JSON with ``--json``.  Exit status: 0 done, 1 refused or failed, 2 usage, 3 cannot reach csd.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import getpass
import json
import os
import shlex
import sys
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from firmware_app.console.client import ConsoleClient
from firmware_app.console.errors import E_CLOSED, E_PEER_REFUSED, ConsoleError
from firmware_app.console.settings import DEFAULT_SOCKET

PROG = "csctl"
EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3

EPILOG = """\
examples:
  csctl status                                   links, HSM, watchdog, room
  csctl confirm 12345678901                      confirm a card holder
  csctl search --name "ヤマダ タロウ" --birth 19800101
  csctl export request residents --reason "court order 12" --code 12345678901
  csctl export approve 3                         (a different supervisor)
  csctl audit verify                             (auditor)
  csctl --password-stdin --json status < pw      for scripts

The operator is --user, else $CSCTL_USER, else the login name.  The socket is --socket, else
$CSCTL_SOCKET, else /run/cs-appliance-console/console.sock.  Rights depend on the operator's
roles (clerk, supervisor, security-admin, auditor, system); see docs/console.md.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Operator console of the Community Server (csd).", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--socket", type=Path, default=Path(os.environ.get("CSCTL_SOCKET", str(DEFAULT_SOCKET))), help="console socket of csd")
    p.add_argument("--user", default=os.environ.get("CSCTL_USER") or _login_name(), help="operator ID")
    p.add_argument("--terminal", default=_terminal(), help="terminal ID recorded with every change (default: this tty)")
    p.add_argument("--password-stdin", action="store_true", help="read passwords from standard input, one per line")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def cmd(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text)

    cmd("whoami", "show who is logged in, with roles and rights")
    cmd("passwd", "change your own password")
    cmd("status", "links, outbox depth, HSM, watchdog, doors, cameras and open alarms")
    c = cmd("confirm", "confirm a card holder by resident code (clerk, supervisor)")
    c.add_argument("code", help="11-digit resident code")
    for name, help_text in (("search", "search residents in this CS (clerk, supervisor)"),
                            ("national-query", "ask the national server (clerk, supervisor)")):
        s = cmd(name, help_text)
        s.add_argument("--code", help="11-digit resident code")
        s.add_argument("--number", help="12-digit individual number")
        s.add_argument("--name", help="name in kanji or kana")
        s.add_argument("--sex", help="sex code (1 male, 2 female)")
        s.add_argument("--birth", help="birth date YYYYMMDD")
        s.add_argument("--address", help="address")
    chk = cmd("check", "consistency check (supervisor, system)")
    chk.add_argument("action", choices=["summary"], help="summary: resident count and range-digest root")
    ret = cmd("retention", "retention (run: supervisor, system; reports: also auditor)")
    ret.add_argument("action", choices=["run", "reports"])
    bk = cmd("backup", "signed backup of the store on the appliance (system)")
    bk.add_argument("action", choices=["run"])
    bk.add_argument("--out", required=True, help="new directory on the appliance (absolute path)")
    room = cmd("room", "machine room: status (all), report (auditor, security-admin)")
    room.add_argument("action", choices=["status", "report"])
    room.add_argument("--from", dest="start", help="report start, YYYY-MM-DD")
    room.add_argument("--to", dest="end", help="report end (exclusive), YYYY-MM-DD")
    room.add_argument("--format", default="csv", choices=["csv", "pdf"])
    room.add_argument("--out", type=Path, help="file to write the report to")
    al = cmd("alarms", "open alarms (all); ack ID (supervisor, security-admin)")
    al.add_argument("action", choices=["list", "ack"])
    al.add_argument("alarm_id", nargs="?")
    op = cmd("operator", "operators: list, show (security-admin, auditor); add, grant, revoke, lock, unlock, reset-password (security-admin)")
    op.add_argument("action", choices=["list", "show", "add", "grant", "revoke", "lock", "unlock", "reset-password"])
    op.add_argument("operator", nargs="?", help="operator ID")
    op.add_argument("--role", help="clerk, supervisor, security-admin, auditor, system (revoke: or all)")
    op.add_argument("--from", dest="start", help="grant valid from YYYY-MM-DD (default today)")
    op.add_argument("--until", help="grant valid until YYYY-MM-DD (default open-ended)")
    ex = cmd("export", "exports of personal data under the two-person rule")
    ex.add_argument("action", choices=["request", "list", "approve", "deny", "write"])
    ex.add_argument("target", nargs="?", help="request: check-file | destinations | residents; approve, deny, write: export ID")
    ex.add_argument("--reason", help="why (request)")
    ex.add_argument("--code", action="append", default=[], help="resident code for a residents export (repeatable)")
    au = cmd("audit", "audit trail (auditor): verify, show")
    au.add_argument("action", choices=["verify", "show"])
    au.add_argument("--from-seq", type=int, default=0, help="first entry (default: the newest --limit)")
    au.add_argument("--limit", type=int, default=50)
    au.add_argument("--kind", default="", help="entry kind or its prefix, e.g. console. or export.approved")
    au.add_argument("--actor", default="", help="operator ID")
    au.add_argument("--resident", default="", help="resident code: the entries that name this resident")
    cmd("shell", "one login, many commands (type help); locks when idle like every session")
    cmd("screen", "live operator screen: links, outbox, HSM, watchdog, doors, cameras, alarms")
    bs = cmd("bootstrap-admin", "create the first security admin (local, csd stopped, as the service user)")
    bs.add_argument("--config", type=Path, required=True, help="csd's TOML configuration")
    bs.add_argument("operator", help="operator ID of the first security admin")
    return p


def _login_name() -> str:
    try:
        return os.getlogin()
    except OSError:
        return os.environ.get("USER", "")


def _terminal() -> str:
    try:
        name = os.ttyname(0).removeprefix("/dev/")
    except OSError:
        return "console"
    return "".join(c for c in name if c.isalnum() or c in "/._-")[:32] or "console"


class Passwords:
    """Passwords from the terminal (never echoed, never argv) or from stdin lines."""

    def __init__(self, from_stdin: bool) -> None:
        self._from_stdin = from_stdin

    def ask(self, prompt: str) -> str:
        if self._from_stdin:
            line = sys.stdin.readline()
            if not line:
                raise ConsoleError("usage", "standard input ended before a password")
            return line.rstrip("\n")
        return getpass.getpass(prompt)

    def new(self, whose: str) -> str:
        first = self.ask(f"new password for {whose}: ")
        if not self._from_stdin and getpass.getpass("again: ") != first:
            raise ConsoleError("usage", "the passwords do not match")
        return first


# -- commands → requests -------------------------------------------------------------------------


def request_of(args: argparse.Namespace, passwords: Passwords) -> tuple[str, dict[str, Any]]:
    """The console command and arguments of a parsed command line."""
    c = args.command
    if c in ("whoami", "status"):
        return c, {}
    if c == "passwd":
        return "passwd", {"old": passwords.ask("current password: "), "new": passwords.new(args.user)}
    if c == "confirm":
        return "confirm", {"code": args.code}
    if c in ("search", "national-query"):
        return c, {"code": args.code, "number": args.number, "name": args.name, "sex": args.sex, "birth": args.birth, "address": args.address}
    if c == "check":
        return "check-summary", {}
    if c == "retention":
        return f"retention-{args.action}", {}
    if c == "backup":
        return "backup-run", {"out": args.out}
    if c == "room":
        if args.action == "status":
            return "room-status", {}
        if not (args.start and args.end and args.out):
            raise ConsoleError("usage", "room report needs --from, --to and --out")
        return "room-report", {"from": args.start, "to": args.end, "format": args.format}
    if c == "alarms":
        if args.action == "ack":
            if not args.alarm_id:
                raise ConsoleError("usage", "alarms ack needs an alarm ID")
            return "alarm-ack", {"alarm_id": args.alarm_id}
        return "alarm-list", {}
    if c == "operator":
        if args.action != "list" and not args.operator:
            raise ConsoleError("usage", f"operator {args.action} needs an operator ID")
        out: dict[str, Any] = {"operator": args.operator}
        if args.action in ("add", "grant", "revoke"):
            if not args.role:
                raise ConsoleError("usage", f"operator {args.action} needs --role")
            out["role"] = args.role
        if args.action in ("add", "grant"):
            out.update({"from": args.start, "until": args.until})
        if args.action in ("add", "reset-password"):
            out["password"] = passwords.new(args.operator)
        return f"operator-{args.action}", out
    if c == "export":
        if args.action == "list":
            return "export-list", {}
        if not args.target:
            raise ConsoleError("usage", f"export {args.action} needs {'a kind' if args.action == 'request' else 'an export ID'}")
        if args.action == "request":
            return "export-request", {"kind": args.target, "reason": args.reason, "codes": args.code or None}
        if not args.target.isdigit():
            raise ConsoleError("usage", "an export ID is a number")
        return f"export-{args.action}", {"export_id": int(args.target)}
    if c == "audit":
        if args.action == "verify":
            return "audit-verify", {}
        return "audit-show", {"from_seq": args.from_seq, "limit": args.limit, "kind": args.kind, "actor": args.actor, "resident": args.resident}
    raise ConsoleError("usage", f"unknown command {c}")


# -- output -----------------------------------------------------------------------------------------


def render(cmd: str, result: Any) -> str:
    """A readable rendering of a command's result."""
    if not isinstance(result, dict):
        return str(result)
    for key in ("residents", "operators", "exports", "entries", "alarms", "reports"):
        if isinstance(result.get(key), list):
            rows = [_flat(row) for row in result[key]]
            return table(rows) + f"\n({len(rows)} {key})"
    if cmd == "audit-verify":
        if result["ok"]:
            return (f"audit chain OK: {result['entries']} entries after anchor {result['anchor_seq']}, {result['checkpoints']} signed checkpoints; "
                    f"{result['unsigned_tail']} newest entries not yet under a checkpoint")
        return f"AUDIT CHAIN BROKEN at entry {result['first_broken_seq']}: {result['problem']}"
    for key in ("resident", "operator", "export", "alarm"):
        if isinstance(result.get(key), dict):
            return _pairs(_flat(result[key])) + "".join(f"\n{k}: {v}" for k, v in result.items() if k != key)
    return _pairs(_flat(result))


def _flat(row: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif isinstance(v, list):
            out[prefix + k] = "; ".join(" ".join(str(y) for y in x.values() if y) if isinstance(x, dict) else str(x) for x in v)
        else:
            out[prefix + k] = "" if v is None else str(v)
    return out


def width(text: str) -> int:
    """Columns ``text`` takes on a terminal (East Asian wide characters take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _fit(text: str, columns: int) -> str:
    """``text`` cut to at most ``columns`` and padded to exactly ``columns``."""
    out, used = [], 0
    for c in text:
        w = width(c)
        if used + w > columns:
            break
        out.append(c)
        used += w
    return "".join(out) + " " * (columns - used)


def table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "(none)"
    columns = list(dict.fromkeys(k for row in rows for k in row))
    widths = {c: min(48, max(width(c), *(width(row.get(c, "")) for row in rows))) for c in columns}
    lines = ["  ".join(_fit(c.upper(), widths[c]) for c in columns).rstrip()]
    for row in rows:
        lines.append("  ".join(_fit(row.get(c, ""), widths[c]) for c in columns).rstrip())
    return "\n".join(lines)


def _pairs(values: dict[str, str]) -> str:
    key_width = max((len(k) for k in values), default=0)
    return "\n".join(f"{k.ljust(key_width)}  {v}" for k, v in values.items())


# -- running ----------------------------------------------------------------------------------------


async def session(args: argparse.Namespace, passwords: Passwords) -> ConsoleClient:
    """Connect and log in as ``args.user``."""
    if not args.user:
        raise ConsoleError("usage", "no operator ID: use --user or set CSCTL_USER")
    client = await ConsoleClient.connect(args.socket)
    try:
        result = await client.call("login", operator=args.user, password=passwords.ask(f"password for {args.user}: "), terminal=args.terminal)
    except BaseException:
        await client.close()
        raise
    if result.get("must_change_password") and args.command != "passwd":
        print(f"{PROG}: you must change your first password: csctl passwd", file=sys.stderr)
    return client


async def run_one(args: argparse.Namespace, passwords: Passwords) -> int:
    client = await session(args, passwords)
    try:
        cmd, call_args = request_of(args, passwords)
        result = await client.call(cmd, **call_args)
        if cmd == "room-report":
            data = base64.b64decode(result.pop("data_b64"))
            args.out.write_bytes(data)
            result = {"written": str(args.out), "size_bytes": len(data), "format": result["format"]}
        print(json.dumps(result, ensure_ascii=False, indent=2) if args.json else render(cmd, result))
        if cmd == "audit-verify" and not result["ok"]:
            return EXIT_REFUSED
        return 0
    finally:
        try:
            await client.call("logout")
        except ConsoleError:
            pass
        await client.close()


async def run_shell(args: argparse.Namespace, passwords: Passwords) -> int:
    """A read-eval loop over one login; a locked session asks for the password again."""
    client = await session(args, passwords)
    parser = _parser()
    print(f"logged in as {args.user}; type a csctl command without 'csctl', 'help' or 'exit'")
    try:
        while True:
            try:
                line = await asyncio.to_thread(input, f"{args.user}> ")
            except EOFError:
                return 0
            words = shlex.split(line)
            if not words:
                continue
            if words[0] in ("exit", "quit", "logout"):
                return 0
            if words[0] == "help":
                parser.print_help()
                continue
            try:
                sub = parser.parse_args(["--user", args.user, *(["--json"] if args.json else []), *words])
                cmd, call_args = request_of(sub, passwords)
                try:
                    result = await client.call(cmd, **call_args)
                except ConsoleError as exc:
                    if exc.code != "locked":
                        raise
                    print("session locked after being idle")
                    await client.call("unlock", password=passwords.ask(f"password for {args.user}: "))
                    result = await client.call(cmd, **call_args)
                print(json.dumps(result, ensure_ascii=False, indent=2) if sub.json else render(cmd, result))
            except SystemExit:
                continue
            except ConsoleError as exc:
                if exc.code == E_CLOSED:
                    raise
                print(f"refused: {exc}")
    finally:
        await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    passwords = Passwords(args.password_stdin)
    try:
        if args.command == "bootstrap-admin":
            from firmware_app.operators.bootstrap import bootstrap_admin
            from firmware_app.operators.errors import OperatorError

            try:
                print(bootstrap_admin(args.config, args.operator, passwords.new(args.operator), args.terminal))
            except OperatorError as exc:
                print(f"{PROG}: {exc}", file=sys.stderr)
                return EXIT_REFUSED
            return 0
        if args.command == "screen":
            from firmware_app.console.screen import run_screen

            return run_screen(args, passwords)
        runner = run_shell if args.command == "shell" else run_one
        return asyncio.run(runner(args, passwords))
    except ConsoleError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        if exc.code == "usage":
            return EXIT_USAGE
        return EXIT_UNREACHABLE if exc.code in (E_CLOSED, E_PEER_REFUSED) else EXIT_REFUSED
    except (FileNotFoundError, ConnectionRefusedError, PermissionError) as exc:
        print(f"{PROG}: cannot reach csd at {args.socket}: {exc.strerror}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return EXIT_REFUSED


if __name__ == "__main__":
    raise SystemExit(main())
