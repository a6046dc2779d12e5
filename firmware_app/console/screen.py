"""``csctl screen``: the live operator screen (Textual).  It polls ``status`` (a poll is not operator
activity), so the daemon's idle lock applies: once idle, the screen is covered by a lock screen
until the operator's password is typed again.  Keys count as activity."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from textual.app import App, ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Header, Input, Static

from firmware_app.console.errors import E_LOCKED, ConsoleError

Fetch = Callable[[bool], Awaitable[dict[str, Any]]]  # poll: True when not operator activity
Unlock = Callable[[str], Awaitable[None]]


class LockScreen(ModalScreen[None]):
    """Covers everything until the password unlocks the session."""

    def __init__(self, operator: str, unlock: Unlock) -> None:
        super().__init__()
        self._operator = operator
        self._unlock = unlock

    def compose(self) -> ComposeResult:
        with Vertical(id="lock"):
            yield Static(f"Locked after being idle. Password for {self._operator}:", id="lock-text")
            yield Input(password=True, id="password")
            yield Static("", id="lock-error")

    async def on_input_submitted(self, message: Input.Submitted) -> None:
        password, message.input.value = message.value, ""
        try:
            await self._unlock(password)
        except ConsoleError as exc:
            self.query_one("#lock-error", Static).update(f"refused: {exc}")
            return
        self.dismiss(None)


class OperatorScreen(App[None]):
    """Links, outbox depth, HSM, watchdog, doors, cameras and open alarms, refreshed every ``refresh_s``."""

    TITLE = "Community Server — operator screen"
    BINDINGS = [("r", "refresh", "Refresh now"), ("q", "quit", "Quit")]
    CSS = "#lock { width: 60; height: auto; border: heavy red; padding: 1; } #summary { height: auto; padding: 0 1; }"

    def __init__(self, operator: str, fetch: Fetch, unlock: Unlock, *, refresh_s: float = 2.0) -> None:
        super().__init__()
        self.operator = operator
        self._fetch = fetch
        self._unlock = unlock
        self._refresh_s = refresh_s
        self.locked = False
        self.last_status: dict[str, Any] = {}
        self._keys_since_poll = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("connecting…", id="summary")
        yield DataTable(id="links")
        yield DataTable(id="room")
        yield DataTable(id="alarms")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#links", DataTable).add_columns("link", "connected", "outbox depth")
        self.query_one("#room", DataTable).add_columns("device", "state", "since")
        self.query_one("#alarms", DataTable).add_columns("alarm", "kind", "source", "state", "raised at", "acknowledged by")
        self.set_interval(self._refresh_s, self.refresh_status)
        self.call_later(self.refresh_status)

    def on_key(self) -> None:
        """A key is the operator's activity: the next poll tells the daemon so."""
        self._keys_since_poll = True

    async def action_refresh(self) -> None:
        await self.refresh_status(activity=True)

    async def refresh_status(self, activity: bool = False) -> None:
        """Poll the daemon; a locked session shows the lock screen."""
        if self.locked:
            return
        activity, self._keys_since_poll = activity or self._keys_since_poll, False
        try:
            status = await self._fetch(not activity)
        except ConsoleError as exc:
            if exc.code == E_LOCKED:
                self.locked = True
                await self.push_screen(LockScreen(self.operator, self._unlock), callback=self._unlocked)
            else:
                self.query_one("#summary", Static).update(f"error: {exc}")
            return
        self.last_status = status
        self._show(status)

    def _unlocked(self, _: None) -> None:
        self.locked = False
        self.call_later(self.refresh_status)

    def _show(self, status: dict[str, Any]) -> None:
        verdict = status.get("watchdog", {})
        hsm = "SEALED" if status.get("hsm", {}).get("sealed") else "ok"
        self.query_one("#summary", Static).update(
            f"operator {self.operator}   ready {status.get('ready')}   HSM {hsm}   watchdog {verdict.get('state')} {verdict.get('status', '')}"
            f"   open alarms {status.get('open_alarms')}   audit entries {status.get('audit', {}).get('last_seq')}"
        )
        links = self.query_one("#links", DataTable)
        links.clear()
        for name, link in status.get("links", {}).items():
            links.add_row(name, "yes" if link.get("connected") else "NO", str(link.get("outbox_depth")))
        room_table = self.query_one("#room", DataTable)
        room_table.clear()
        room = status.get("room")
        if isinstance(room, dict):
            for kind, key in (("doors", "door"), ("cameras", "camera"), ("readers", "reader")):
                for device in room.get(kind, []):
                    room_table.add_row(f"{key} {device.get(key)}", str(device.get("state")), str(device.get("since", "")))
        else:
            room_table.add_row("machine room", str(room), "")
        alarms = self.query_one("#alarms", DataTable)
        alarms.clear()
        for alarm in status.get("alarms", []):
            alarms.add_row(*(str(alarm.get(k) or "") for k in ("alarm_id", "kind", "source", "state", "raised_at", "acknowledged_by")))


def run_screen(args: argparse.Namespace, passwords: Any) -> int:
    """Log in, then run the screen until the operator quits."""
    from firmware_app.console.cli import session

    loop = asyncio.new_event_loop()
    client = loop.run_until_complete(session(args, passwords))

    async def fetch(poll: bool) -> dict[str, Any]:
        status = await client.call("status", poll=poll)
        if status.get("open_alarms"):
            status["alarms"] = (await client.call("alarm-list", poll=True))["alarms"]
        return status

    async def unlock(password: str) -> None:
        await client.call("unlock", password=password)

    app = OperatorScreen(args.user, fetch, unlock)
    try:
        loop.run_until_complete(app.run_async())
    finally:
        loop.run_until_complete(client.close())
        loop.close()
    return 0
