"""Lockout, idle lock, peer credentials and hostile requests on the real console socket."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import msgspec
import pytest

from firmware_app.console.client import ConsoleClient
from firmware_app.console.errors import (
    E_LOCKED,
    E_LOGIN_REFUSED,
    E_LOGIN_REQUIRED,
    E_MALFORMED,
    E_PEER_REFUSED,
    E_REPLAYED,
    E_TOO_LARGE,
    E_UNKNOWN_COMMAND,
    ConsoleError,
)
from firmware_app.console.protocol import VERSION, Request
from tests.console.conftest import PASSWORD, console_toml, login, seed_operators
from tests.daemon.rig import running_cs


async def _entries(daemon, kind: str) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    return [e.to_json() for e in await daemon.audit.entries(from_seq=1, limit=10_000, kind=kind)]


def test_ten_wrong_passwords_lock_the_account_and_every_attempt_is_audited(tmp_path: Path, pki, hsm_config, token) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        async with running_cs(tmp_path, pki, hsm_config, token, extra=console_toml(tmp_path)) as rig:
            await seed_operators(rig.daemon, {"clerk1": "clerk"})
            sock = rig.daemon.config.console.socket_path
            for attempt in range(10):
                client = await ConsoleClient.connect(sock)
                with pytest.raises(ConsoleError) as caught:
                    await client.call("login", operator="clerk1", password=f"Wrong-guess-{attempt:04d}")
                assert caught.value.code == E_LOGIN_REFUSED and str(caught.value) == "login refused"
                await client.close()
            # The right password now fails too, with the same opaque answer, until a security admin unlocks.
            with pytest.raises(ConsoleError) as caught:
                await login(sock, "clerk1")
            assert caught.value.code == E_LOGIN_REFUSED
            failures = await _entries(rig.daemon, "console.login_failed")
            assert [e["detail"]["reason"] for e in failures] == ["wrong_password"] * 9 + ["wrong_password_locked", "locked"]
            assert all(e["subject"] == "operator:clerk1" for e in failures)
            assert len(await _entries(rig.daemon, "operator.locked_out")) == 1
            admin = await login(sock, "admin")
            await admin.call("operator-unlock", operator="clerk1")
            clerk = await login(sock, "clerk1")
            assert (await clerk.call("whoami"))["roles"] == ["clerk"]
            # Unknown IDs are refused the same way and recorded without a subject when malformed.
            client = await ConsoleClient.connect(sock)
            with pytest.raises(ConsoleError):
                await client.call("login", operator="NOT AN ID; DROP", password="x")
            assert (await _entries(rig.daemon, "console.login_failed"))[-1]["detail"]["reason"] == "unknown_operator"
            for c in (admin, clerk, client):
                await c.close()

    asyncio.run(scenario())


def test_idle_lock_needs_the_password_again(tmp_path: Path, pki, hsm_config, token) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        async with running_cs(tmp_path, pki, hsm_config, token, extra=console_toml(tmp_path, idle_lock_s=60)) as rig:
            await seed_operators(rig.daemon, {"sys1": "system"})
            clock = rig.daemon.clock
            client = await login(rig.daemon.config.console.socket_path, "sys1")
            await client.call("status")
            clock.advance(59)
            await client.call("status")  # activity restarts the idle timer
            clock.advance(59)
            await client.call("status", poll=True)  # a screen's poll is not activity
            clock.advance(1)
            with pytest.raises(ConsoleError) as caught:
                await client.call("status")
            assert caught.value.code == E_LOCKED
            with pytest.raises(ConsoleError) as caught:
                await client.call("unlock", password="Wrong-guess-0000")
            assert caught.value.code == E_LOGIN_REFUSED
            await client.call("unlock", password=PASSWORD["sys1"])
            assert (await client.call("status"))["ready"] is True
            kinds = [e["kind"] for e in await _entries(rig.daemon, "console.")]
            assert kinds[-3:] == ["console.idle_locked", "console.unlock_failed", "console.unlocked"]
            await client.close()

    asyncio.run(scenario())


def test_a_peer_outside_the_console_group_is_refused_before_any_login(tmp_path: Path, pki, hsm_config, token) -> None:  # type: ignore[no-untyped-def]
    outsider_gid = 54321
    assert outsider_gid != os.getgid() and outsider_gid not in os.getgroups()

    async def scenario() -> None:
        async with running_cs(tmp_path, pki, hsm_config, token, extra=console_toml(tmp_path, group=outsider_gid)) as rig:
            sock = rig.daemon.config.console.socket_path
            # This process is not in the group: the refusal arrives before it has sent a byte.
            reader, writer = await asyncio.open_unix_connection(str(sock))
            refusal = await asyncio.wait_for(reader.read(4096), 10)
            assert E_PEER_REFUSED.encode() in refusal
            assert await asyncio.wait_for(reader.read(4096), 10) == b""  # and the daemon hung up
            writer.close()
            with pytest.raises(ConsoleError) as caught:
                await ConsoleClient.connect(sock)
            assert caught.value.code == E_PEER_REFUSED
            await rig.daemon.audit.flush()
            refused = await _entries(rig.daemon, "console.peer_refused")
            assert len(refused) == 2 and refused[0]["actor"].startswith(f"peer:uid={os.getuid()}")
            assert not await _entries(rig.daemon, "console.login")

    asyncio.run(scenario())


def _connect_as(uid: int, gid: int, path: Path) -> bytes:
    """Fork a child that drops to ``uid``/``gid`` (no supplementary groups), connects, and returns
    what the daemon sent it before hanging up."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no Python imports, no event loop; only these calls, then _exit
        code = 1
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(10)
            s.connect(str(path))
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            os.write(write_fd, data[:4096])
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            data = pipe.read()
    finally:
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return data


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a child under another uid and gid")
def test_a_process_of_another_user_is_refused(tmp_path: Path, pki, hsm_config, token) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        async with running_cs(tmp_path, pki, hsm_config, token, extra=console_toml(tmp_path)) as rig:
            sock = rig.daemon.config.console.socket_path
            # Open file modes, so that only the daemon's own check stands between the child and a login.
            os.chmod(sock, 0o666)
            for directory in (sock.parent, *sock.parents):
                if directory == Path("/"):
                    break
                os.chmod(directory, os.stat(directory).st_mode | 0o011)
            data = await asyncio.to_thread(_connect_as, 65534, 65534, sock)
            assert E_PEER_REFUSED.encode() in data
            await rig.daemon.audit.flush()
            refused = await _entries(rig.daemon, "console.peer_refused")
            assert refused and refused[-1]["actor"].startswith("peer:uid=65534")
            assert not await _entries(rig.daemon, "console.login_failed")

    asyncio.run(scenario())


def test_malformed_oversized_and_replayed_requests_change_nothing(tmp_path: Path, pki, hsm_config, token) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        async with running_cs(tmp_path, pki, hsm_config, token, extra=console_toml(tmp_path)) as rig:
            await seed_operators(rig.daemon, {"sup1": "supervisor"})
            sock = rig.daemon.config.console.socket_path
            anon = await ConsoleClient.connect(sock)
            with pytest.raises(ConsoleError) as caught:
                await anon.call("status")
            assert caught.value.code == E_LOGIN_REQUIRED
            client = await login(sock, "sup1")
            enc = msgspec.msgpack.Encoder()
            for body in (b"\xc1", enc.encode({"v": 1}), enc.encode({"v": 2, "id": 99, "cmd": "status"}),
                         enc.encode({"v": 1, "id": 100, "cmd": "status", "args": {"x": {"nested": 1}}}),
                         enc.encode({"v": 1, "id": 101, "cmd": "status", "extra": 1})):
                await client.send_raw(len(body).to_bytes(4, "big") + body)
                response = await client.receive()
                assert not response.ok and response.error.code == E_MALFORMED
            response = await client.exchange(Request(VERSION, 200, "no-such-command"))
            assert response.error.code == E_UNKNOWN_COMMAND
            # Replayed (same id) and reordered (older id) requests are refused, nothing runs twice.
            first = await client.exchange(Request(VERSION, 300, "export-request", {"kind": "check-file", "reason": "prefecture media"}))
            assert first.ok
            for replay_id in (300, 250):
                again = await client.exchange(Request(VERSION, replay_id, "export-request", {"kind": "check-file", "reason": "prefecture media"}))
                assert again.error.code == E_REPLAYED
            assert len((await client.call("export-list"))["exports"]) == 1
            # Over-long arguments are refused by the decoder; an oversized frame ends the connection unread.
            long_arg = await client.exchange(Request(VERSION, 400, "confirm", {"code": "1" * 5000}))
            assert long_arg.error.code == E_MALFORMED
            await client.send_raw((10 << 20).to_bytes(4, "big") + b"\0" * 16)
            response = await client.receive()
            assert response.error.code == E_TOO_LARGE
            with pytest.raises(ConsoleError):
                await client.call("status")
            refusals = [e["detail"]["code"] for e in await _entries(rig.daemon, "console.request_refused")]
            assert refusals.count(E_MALFORMED) == 6 and refusals.count(E_REPLAYED) == 2 and E_TOO_LARGE in refusals
            await anon.close()
            await client.close()

    asyncio.run(scenario())


def test_peer_credentials_are_read_from_the_kernel(tmp_path: Path) -> None:
    from firmware_app.console.server import peer_credentials

    a, b = socket.socketpair(socket.AF_UNIX)
    with a, b:
        creds = peer_credentials(a)
    assert (creds.pid, creds.uid, creds.gid) == (os.getpid(), os.getuid(), os.getgid())
    assert os.getgid() in creds.groups or creds.groups == ()
