"""Real mutual TLS 1.3 on loopback: pinned peers talk; every other kind of peer is refused."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from firmware_app.links.errors import LinkError
from firmware_app.links.pki import create_ca, fingerprint_sha256, issue
from firmware_app.links.tls import (
    PeerNotPinned,
    TlsConfig,
    TlsConfigError,
    check_pinned,
    client_context,
    server_context,
)

TEST_TIMEOUT_S = 10.0
HANDSHAKE_TIMEOUT_S = 5.0
MAX_READS = 16


@dataclass(frozen=True)
class Pki:
    """The link ends of one test module: the server and clients good and bad."""

    ca_path: Path
    server: TlsConfig
    client: TlsConfig
    stranger: TlsConfig
    rogue: TlsConfig
    expired: TlsConfig


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    now = datetime.now(timezone.utc)
    ca = create_ca(directory, "test-ca", clock_now=now)
    rogue_ca = create_ca(directory, "rogue-ca", clock_now=now)
    cs = issue(directory, *ca, "cs", role="both", clock_now=now)
    register = issue(directory, *ca, "register", role="client", clock_now=now)
    stranger = issue(directory, *ca, "stranger", role="client", clock_now=now)
    rogue = issue(directory, *rogue_ca, "rogue", role="client", clock_now=now)
    expired = issue(directory, *ca, "expired", role="client", clock_now=now - timedelta(days=400), valid_days=1)

    def end(pair: tuple[Path, Path], pins: frozenset[str]) -> TlsConfig:
        return TlsConfig(pair[0], pair[1], ca[0], pins, handshake_timeout_s=HANDSHAKE_TIMEOUT_S)

    # The server pins the rogue and expired clients too, so only CA verification can refuse them.
    server_pins = frozenset(fingerprint_sha256(pair[0]) for pair in (register, rogue, expired))
    client_pins = frozenset({fingerprint_sha256(cs[0])})
    return Pki(
        ca_path=ca[0],
        server=end(cs, server_pins),
        client=end(register, client_pins),
        stranger=end(stranger, client_pins),
        rogue=end(rogue, client_pins),
        expired=end(expired, client_pins),
    )


def _run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(scenario, TEST_TIMEOUT_S))


@dataclass
class EchoServer:
    """Checks each peer's pin, records the outcome, then echoes one read back."""

    cfg: TlsConfig
    pins: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    refusals: list[PeerNotPinned] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        try:
            try:
                self.pins.append(check_pinned(ssl_object, self.cfg))
            except PeerNotPinned as exc:
                self.refusals.append(exc)
                return
            self.versions.append(ssl_object.version())
            writer.write(await reader.read(64))
            await writer.drain()
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def serving(cfg: TlsConfig, host: str = "127.0.0.1") -> AsyncIterator[tuple[EchoServer, int]]:
    echo = EchoServer(cfg)
    server = await asyncio.start_server(
        echo.handle, host, 0, ssl=server_context(cfg), ssl_handshake_timeout=cfg.handshake_timeout_s
    )
    try:
        yield echo, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        await writer.wait_closed()


async def exchange(host: str, port: int, cfg: TlsConfig, ctx: ssl.SSLContext | None = None) -> tuple[str, str, bytes]:
    """Connect as ``cfg``, check the server's pin, send a ping; return (version, server pin, reply)."""
    reader, writer = await asyncio.open_connection(
        host, port, ssl=ctx or client_context(cfg), server_hostname="localhost",
        ssl_handshake_timeout=cfg.handshake_timeout_s,
    )
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        pin = check_pinned(ssl_object, cfg)
        writer.write(b"ping")
        await writer.drain()
        return ssl_object.version(), pin, await reader.read(64)
    finally:
        await _close(writer)


async def assert_refused(port: int, ctx: ssl.SSLContext) -> None:
    """The connection must fail: in TLS 1.3 a client may finish its side first, then read the server's alert."""
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="localhost", ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S
        )
    except (ssl.SSLError, ConnectionError):
        return
    try:
        writer.write(b"ping")
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await writer.drain()
        try:
            reply = await reader.read(64)
        except (ssl.SSLError, ConnectionError):
            return
        assert reply == b""
    finally:
        await _close(writer)


async def assert_serves(echo: EchoServer, port: int, pki: Pki) -> None:
    """A good client still gets through."""
    version, _, reply = await exchange("127.0.0.1", port, pki.client)
    assert (version, reply) == ("TLSv1.3", b"ping")
    assert echo.pins[-1] == fingerprint_sha256(pki.client.cert_path)


def test_pinned_peers_talk_mutual_tls13(pki: Pki) -> None:
    async def scenario() -> None:
        async with serving(pki.server) as (echo, port):
            version, server_pin, reply = await exchange("127.0.0.1", port, pki.client)
            assert version == "TLSv1.3" and reply == b"ping"
            assert server_pin == fingerprint_sha256(pki.server.cert_path)
            assert echo.pins == [fingerprint_sha256(pki.client.cert_path)]
            assert echo.versions == ["TLSv1.3"] and echo.refusals == []

    _run(scenario())


def _ipv6_loopback_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback_available(), reason="IPv6 loopback is unavailable")
def test_pinned_peers_talk_over_ipv6_loopback(pki: Pki) -> None:
    async def scenario() -> None:
        async with serving(pki.server, "::1") as (echo, port):
            version, _, reply = await exchange("::1", port, pki.client)
            assert (version, reply) == ("TLSv1.3", b"ping")
            assert echo.pins == [fingerprint_sha256(pki.client.cert_path)]

    _run(scenario())


def test_client_from_another_ca_is_refused_and_server_keeps_serving(pki: Pki) -> None:
    async def scenario() -> None:
        async with serving(pki.server) as (echo, port):
            await assert_refused(port, client_context(pki.rogue))
            assert echo.pins == [] and echo.refusals == []
            await assert_serves(echo, port, pki)

    _run(scenario())


def test_unpinned_client_of_the_same_ca_fails_the_server_pin_check(pki: Pki) -> None:
    async def scenario() -> None:
        async with serving(pki.server) as (echo, port):
            # The handshake succeeds (the CA vouches for it); the server's pin check then refuses it.
            _, server_pin, reply = await exchange("127.0.0.1", port, pki.stranger)
            assert server_pin == fingerprint_sha256(pki.server.cert_path)
            assert reply == b""
            assert echo.pins == []
            assert len(echo.refusals) == 1 and isinstance(echo.refusals[0], LinkError)
            assert str(echo.refusals[0]) == "peer certificate is not pinned"
            await assert_serves(echo, port, pki)

    _run(scenario())


def test_client_without_certificate_is_refused(pki: Pki) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(cafile=pki.ca_path)

    async def scenario() -> None:
        async with serving(pki.server) as (echo, port):
            await assert_refused(port, ctx)
            assert echo.pins == [] and echo.refusals == []
            await assert_serves(echo, port, pki)

    _run(scenario())


def test_tls12_client_is_refused(pki: Pki) -> None:
    ctx = client_context(pki.client)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2

    async def scenario() -> None:
        async with serving(pki.server) as (echo, port):
            # The handshake itself fails: the client sees an alert or the server's reset.
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await asyncio.open_connection(
                    "127.0.0.1", port, ssl=ctx, server_hostname="localhost", ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S
                )
            assert echo.pins == []
            await assert_serves(echo, port, pki)

    _run(scenario())


def test_expired_client_certificate_is_refused(pki: Pki) -> None:
    async def scenario() -> None:
        async with serving(pki.server) as (echo, port):
            await assert_refused(port, client_context(pki.expired))
            assert echo.pins == [] and echo.refusals == []
            await assert_serves(echo, port, pki)

    _run(scenario())


def test_plaintext_is_dropped_and_server_keeps_serving(pki: Pki) -> None:
    async def scenario() -> None:
        async with serving(pki.server) as (echo, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.0\r\n\r\n")
            await writer.drain()
            received = bytearray()
            for _ in range(MAX_READS):
                try:
                    chunk = await reader.read(1024)
                except ConnectionError:
                    break
                if not chunk:
                    break
                received += chunk
            else:
                pytest.fail("the server kept the plaintext connection open")
            await _close(writer)
            # At most a TLS alert record (content type 21) comes back, never application data.
            assert not received or received[0] == 21
            await assert_serves(echo, port, pki)

    _run(scenario())


@pytest.mark.parametrize(
    ("pins", "error"),
    [
        (frozenset(), ValueError),
        (frozenset({"ab" * 31}), ValueError),
        (frozenset({"AB" * 32}), ValueError),
        (frozenset({"zz" * 32}), ValueError),
        (frozenset({"ab" * 32 + "\n"}), ValueError),
        ({"ab" * 32}, TypeError),
        (frozenset({b"ab" * 32}), TypeError),
    ],
)
def test_config_refuses_malformed_pins(pki: Pki, pins: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        replace(pki.server, pinned_sha256=pins)


def test_config_refuses_bad_paths_and_timeouts(pki: Pki) -> None:
    with pytest.raises(TypeError):
        replace(pki.server, cert_path=str(pki.server.cert_path))
    for timeout in (0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError):
            replace(pki.server, handshake_timeout_s=timeout)


def test_unloadable_files_raise_tls_config_error(pki: Pki) -> None:
    mismatched = replace(pki.server, key_path=pki.client.key_path)
    with pytest.raises(TlsConfigError) as caught:
        server_context(mismatched)
    assert "PRIVATE KEY" not in str(caught.value)
    with pytest.raises(TlsConfigError):
        client_context(replace(pki.client, ca_path=pki.ca_path.with_name("missing.pem")))
