"""The operator screen, headless (Textual's pilot) against a running CS: it shows the status and
is covered by the lock screen once the session idles, until the password is typed again."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.widgets import DataTable, Input, Static

from firmware_app.console.screen import LockScreen, OperatorScreen
from tests.console.conftest import PASSWORD, console_toml, login, seed_operators
from tests.daemon.rig import running_cs


def test_screen_shows_status_and_locks_when_idle(tmp_path: Path, pki, hsm_config, token) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        async with running_cs(tmp_path, pki, hsm_config, token, extra=console_toml(tmp_path, idle_lock_s=120)) as rig:
            await seed_operators(rig.daemon, {"sys1": "system"})
            client = await login(rig.daemon.config.console.socket_path, "sys1")

            async def fetch(poll: bool) -> dict:  # type: ignore[type-arg]
                return await client.call("status", poll=poll)

            async def unlock(password: str) -> None:
                await client.call("unlock", password=password)

            app = OperatorScreen("sys1", fetch, unlock, refresh_s=3600)
            async with app.run_test() as pilot:
                await app.refresh_status()
                await pilot.pause()
                assert app.query_one("#links", DataTable).row_count == 2
                assert "machine room not configured" in str(app.query_one("#room", DataTable).get_row_at(0))
                assert "watchdog" in str(app.query_one("#summary", Static).render())
                rig.daemon.clock.advance(121)
                await app.refresh_status()  # a poll: not activity, and the session has idled
                await pilot.pause()
                assert app.locked and isinstance(app.screen, LockScreen)
                app.screen.query_one("#password", Input).value = "Wrong-guess-0000"
                await pilot.press("enter")
                await pilot.pause()
                assert isinstance(app.screen, LockScreen)
                assert "refused" in str(app.screen.query_one("#lock-error", Static).render())
                app.screen.query_one("#password", Input).value = PASSWORD["sys1"]
                await pilot.press("enter")
                await pilot.pause()
                assert not app.locked and not isinstance(app.screen, LockScreen)
                await pilot.press("q")
            kinds = [e.kind for e in await rig.daemon.audit.entries(from_seq=1, limit=1000, kind="console.")]
            assert kinds[-3:] == ["console.idle_locked", "console.unlock_failed", "console.unlocked"]
            await client.close()

    asyncio.run(scenario())
