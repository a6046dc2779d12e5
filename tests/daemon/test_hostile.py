"""Hostile peers against the running daemon: each hostile input gets its stated refusal, changes
nothing (identity file, outboxes, the register's inbox cursor), and the daemon then still serves a
well-behaved register whose update is acknowledged and reaches the prefecture.

The hostile clients speak raw bytes over their own TLS connections.  Assertions never print a
record: comparisons of personal data are reduced to booleans or digests first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import ssl
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import msgspec
import psutil

from firmware_app.domain.check_item import check_item_of
from firmware_app.domain.record import IdentityRecord
from firmware_app.domain.updates import IdentityChange
from firmware_app.links.errors import (
    E_CONFLICT,
    E_FRAME_EMPTY,
    E_FRAME_TOO_LARGE,
    E_INVALID_FIELD,
    E_INVALID_RECORD,
    E_MALFORMED,
    E_NOT_ALLOWED,
    E_NOT_PINNED,
    E_SEQUENCE_GAP,
    E_UNAVAILABLE,
    E_UNKNOWN_TYPE,
    E_UNSUPPORTED_VERSION,
    E_UPDATE_PROHIBITED,
)
from firmware_app.links.frames import FrameDecoder, encode_frame
from firmware_app.links.messages import ErrorReport, Message, MessageCodec, Resume
from firmware_app.links.pki import create_ca, issue
from firmware_app.links.tls import TlsConfig, client_context
from firmware_app.service.identity_file import IdentityFile
from peers.register_stream import Change, RegisterStream
from peers.rig import Pki
from storage import layout
from tests.daemon.rig import TODAY, Rig, manual_clock, running_cs

POPULATION = 60
TEST_TIMEOUT_S = 60.0
STEP_S = 10.0  # one awaited step (a reply, an end of stream, a session ending)
MAX_MESSAGES = 200  # messages read while waiting for one reply
FRAME_LIMIT = 1 << 20  # the daemon's default max_frame_bytes
CODEC = MessageCodec()
FRAME_LEVEL = frozenset({E_FRAME_TOO_LARGE, E_FRAME_EMPTY})
#: The tables whose bytes must not change under a refused input (outboxes are checked by state).
DATA_TABLES = (layout.IDENTITY, layout.HISTORY, layout.HISTORY_INDEX, layout.MOVEOUT, layout.INBOX, *layout.INDEXES)


def run(scenario) -> None:
    asyncio.run(asyncio.wait_for(scenario, TEST_TIMEOUT_S))


# -- the population and its updates ----------------------------------------------------------------


def plan(seed: int, events: int = 400) -> tuple[list[IdentityRecord], list[IdentityChange]]:
    """The preloaded records and identity changes each valid on its own against that file (each
    touches a resident no earlier change touched), in stream order."""
    stream = RegisterStream(population=POPULATION, seed=seed, today=TODAY)
    records = list(stream.initial_records())
    live = {r.resident_code for r in records}
    seen: set[str] = set()
    changes = []
    for event in stream.events(events):
        if not isinstance(event, Change):
            continue
        code = event.record.resident_code
        if code in seen:
            continue
        seen.add(code)
        if (event.op == "create") == (code not in live):
            changes.append(IdentityChange(event.op, event.record))
    return records, changes


def take(changes: list[IdentityChange], op: str | None = None, *, numbered: bool = False) -> IdentityChange:
    """Remove and return the first change of ``op`` (any op when None), with an individual number if asked."""
    for i, change in enumerate(changes):
        if (op is None or change.op == op) and (not numbered or change.record.individual_number):
            return changes.pop(i)
    raise AssertionError("the stream has no such change")


def flip_last_digit(code: str) -> str:
    """The same code with another last digit: its check digit no longer fits."""
    return code[:-1] + str((int(code[-1]) + 1) % 10)


def secret_values(record: IdentityRecord) -> list[bytes]:
    """The record's text values long enough to be recognised in a frame."""
    values = [v for v in msgspec.structs.astuple(record) if isinstance(v, str)]
    return [v.encode() for v in values if len(v.encode()) >= 4]


# -- what must not change ------------------------------------------------------------------------


@dataclass(frozen=True)
class State:
    file_digest: str
    residents: int
    prefecture_next: int
    prefecture_depth: int
    card_next: int
    card_depth: int
    register_next: int


async def state_of(rig: Rig) -> State:
    store, gateway = rig.daemon.store, rig.daemon.gateway
    assert store is not None and gateway is not None
    digest = hashlib.sha256()
    with store.read() as r:
        residents = r.count(layout.IDENTITY)
        for table in DATA_TABLES:
            digest.update(table.encode() + b"\0")
            for key, value in r.items(table):
                digest.update(len(key).to_bytes(4, "big") + key + len(value).to_bytes(4, "big") + value)
    return State(
        file_digest=digest.hexdigest(),
        residents=residents,
        prefecture_next=await gateway.outbox_next_seq("prefecture"),
        prefecture_depth=await gateway.outbox_depth("prefecture"),
        card_next=await gateway.outbox_next_seq("card_system"),
        card_depth=await gateway.outbox_depth("card_system"),
        register_next=await gateway.inbox_next("register"),
    )


async def drained(rig: Rig) -> State:
    """The state once the outbound links have delivered what was committed."""
    gateway = rig.daemon.gateway
    assert gateway is not None
    async with asyncio.timeout(STEP_S):
        while await gateway.outbox_depth("prefecture") or await gateway.outbox_depth("card_system"):
            await asyncio.sleep(0.01)
    return await state_of(rig)


def version_of(rig: Rig, resident_code: str) -> int | None:
    assert rig.daemon.store is not None and rig.daemon.keyring is not None
    current = IdentityFile(rig.daemon.store, rig.daemon.keyring, manual_clock()).get_blocking(resident_code)
    return None if current is None else current.version


# -- the rig and the well-behaved register -------------------------------------------------------


@contextlib.asynccontextmanager
async def quiet_cs(tmp_path: Path, pki: Pki, hsm_config, token, records: Iterable[IdentityRecord]) -> AsyncIterator[Rig]:
    """The daemon with its peers, the register not yet running (a hostile client takes its place);
    yields once the national server's inbound session is up and the outboxes are idle."""
    async with running_cs(tmp_path, pki, hsm_config, token, preload=records, start_register=False) as rig:
        async with asyncio.timeout(STEP_S):
            while not open_sessions(rig):  # the national server's certificate link
                await asyncio.sleep(0.01)
        await rig.settle()
        yield rig


async def assert_still_serves(rig: Rig, fresh: IdentityChange, committed: Iterable[IdentityChange] = ()) -> None:
    """The register simulator (its log holding what was ``committed`` before) sends ``fresh``: it is
    acknowledged, committed once, and the prefecture's copy then equals the CS file."""
    register = rig.register
    for change in committed:
        register.submit("identity_change", change)
    seq = register.submit("identity_change", fresh)
    gateway = rig.daemon.gateway
    assert gateway is not None
    assert await gateway.inbox_next("register") == seq, "the CS expects the fresh update's number"
    before = await gateway.outbox_next_seq("prefecture")
    task = asyncio.create_task(register.run())
    try:
        await rig.settle(timeout_s=STEP_S)
        assert register.refused == [], "the well-behaved update was refused"
        assert register.acked_through == seq
        assert await gateway.inbox_next("register") == seq + 1
        assert await gateway.outbox_next_seq("prefecture") == before + 1
        code = fresh.record.resident_code
        reached = rig.prefecture.copy.get(code) == (None if fresh.op == "remove" else check_item_of(fresh.record))
        assert reached, "the fresh update did not reach the prefecture"
        same = rig.prefecture.copy == rig.cs_items()
        assert same, "the prefecture's copy differs from the CS file"
        assert rig.prefecture.out_of_order == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# -- a raw client --------------------------------------------------------------------------------


def open_sessions(rig: Rig) -> set[asyncio.Task[None]]:
    """The daemon's open inbound sessions (LinkServer keeps one task per accepted connection)."""
    assert rig.daemon.server is not None
    return set(rig.daemon.server._tasks)


def frame_of(value: object) -> bytes:
    return encode_frame(msgspec.msgpack.encode(value), max_frame_bytes=FRAME_LIMIT)


def envelope_frame(t: object, v: object, s: object, b: object) -> bytes:
    return frame_of({"t": t, "v": v, "s": s, "b": b})


@dataclass
class Raw:
    """A client writing whatever bytes it likes and reading the CS's frames (kept raw as well)."""

    rig: Rig
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    sessions_before: set[asyncio.Task[None]]
    sessions: set[asyncio.Task[None]] = field(default_factory=set)  # the CS's session(s) for us
    decoder: FrameDecoder = field(default_factory=lambda: FrameDecoder(FRAME_LIMIT))
    frames: deque[bytes] = field(default_factory=deque)
    received: list[bytes] = field(default_factory=list)

    @classmethod
    async def connect(cls, rig: Rig, tls: TlsConfig) -> Raw:
        before = open_sessions(rig)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", rig.endpoint.port, ssl=client_context(tls), server_hostname="localhost", limit=1 << 20),
            STEP_S,
        )
        return cls(rig, reader, writer, before)

    @classmethod
    async def register(cls, rig: Rig) -> tuple[Raw, int]:
        """A raw register session and the sequence number the CS says it expects next."""
        raw = await cls.connect(rig, rig.pki.tls("register"))
        first = await raw.expect()
        assert first.type == "resume" and first.seq == 0 and isinstance(first.body, Resume)
        return raw, first.body.next_seq

    async def next(self) -> Message | None:
        """The CS's next message, or None when it closed the connection."""
        async with asyncio.timeout(STEP_S):
            while not self.frames:
                try:
                    data = await self.reader.read(1 << 16)
                except (ConnectionError, ssl.SSLError):
                    data = b""
                if not data:
                    return None
                self.frames.extend(self.decoder.feed(data))
        if not self.received:
            # The CS has written to us, so its session's task exists (or has ended already).
            self.sessions = open_sessions(self.rig) - self.sessions_before
        body = self.frames.popleft()
        self.received.append(body)
        return CODEC.decode(body)

    async def expect(self) -> Message:
        msg = await self.next()
        assert msg is not None, "the CS closed the connection"
        return msg

    async def expect_error(self, code: str, *, seq: int, expected_seq: int | None = None) -> ErrorReport:
        msg = await self.expect()
        assert msg.type == "error" and isinstance(msg.body, ErrorReport), f"got {msg.type!r} instead of an error"
        assert (msg.body.code, msg.seq, msg.body.expected_seq) == (code, seq, expected_seq)
        return msg.body

    async def expect_ack(self, seq: int) -> None:
        msg = await self.expect()
        assert (msg.type, msg.seq, getattr(msg.body, "seq", None)) == ("ack", seq, seq)

    async def expect_closed(self) -> None:
        msg = await self.next()
        assert msg is None, f"expected the CS to close, got {msg.type!r}"

    async def until(self, predicate) -> list[Message]:
        """Messages up to and including the first that satisfies ``predicate``."""
        seen = []
        for _ in range(MAX_MESSAGES):
            msg = await self.expect()
            seen.append(msg)
            if predicate(msg):
                return seen
        raise AssertionError("no such reply within the message bound")

    def send(self, type_name: str, seq: int, body: msgspec.Struct) -> None:
        self.writer.write(CODEC.encode(type_name, seq, body))

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def gap_probe(self, expected: int) -> None:
        """An update far ahead is refused as a gap naming ``expected``: the session is alive and
        the cursor has not moved (the body is never looked at)."""
        probe = expected + 1000
        self.write(envelope_frame("card_event", 1, probe, {"kind": "issue", "resident_code": "0" * 11, "occurred_on": TODAY}))
        await self.expect_error(E_SEQUENCE_GAP, seq=probe, expected_seq=expected)

    async def finish(self) -> None:
        """Close our end and wait until the CS's session for it has ended (committed what it took)."""
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), STEP_S)
        if self.sessions:
            _, pending = await asyncio.wait(self.sessions, timeout=STEP_S)
            assert not pending, "the CS's session did not end"


# -- 1, 2: who may connect ----------------------------------------------------------------------


def test_client_from_another_ca_fails_the_handshake(tmp_path: Path, pki, hsm_config, token) -> None:
    now = datetime.now(timezone.utc)
    rogue_dir = tmp_path / "rogue"
    rogue_dir.mkdir(mode=0o700)
    rogue_ca = create_ca(rogue_dir, "rogue-ca", clock_now=now)
    # Same name as our register; it trusts our CA and pins our CS, so only the CS can refuse it.
    cert, key = issue(rogue_dir, *rogue_ca, "register", role="client", clock_now=now)
    rogue = TlsConfig(cert, key, pki.ca, frozenset({pki.pin("cs")}), handshake_timeout_s=5.0)
    records, changes = plan(seed=11)

    async def scenario() -> None:
        async with quiet_cs(tmp_path, pki, hsm_config, token, records) as rig:
            before = await state_of(rig)
            sessions = open_sessions(rig)
            assert rig.daemon.server is not None
            refused = rig.daemon.server.refused_peers
            for _ in range(3):
                received = b""
                try:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection("127.0.0.1", rig.endpoint.port, ssl=client_context(rogue), server_hostname="localhost"),
                        STEP_S,
                    )
                except (ssl.SSLError, ConnectionError):
                    continue  # refused during the handshake
                try:
                    # TLS 1.3: the client may finish its side first, then read the server's alert.
                    writer.write(CODEC.encode("identity_change", before.register_next, changes[0]))
                    with contextlib.suppress(ssl.SSLError, ConnectionError):
                        await writer.drain()
                    with contextlib.suppress(ssl.SSLError, ConnectionError):
                        received = await asyncio.wait_for(reader.read(1 << 16), STEP_S)
                finally:
                    writer.close()
                    with contextlib.suppress(ssl.SSLError, ConnectionError, TimeoutError):
                        await asyncio.wait_for(writer.wait_closed(), STEP_S)
                assert received == b"", "the CS sent application data to a peer of another CA"
            # No session was ever opened for it: the handshake itself failed.
            assert open_sessions(rig) == sessions
            assert rig.daemon.server.refused_peers == refused
            assert await state_of(rig) == before
            await assert_still_serves(rig, take(changes))

    run(scenario())


def test_unpinned_certificate_of_our_ca_is_refused_not_pinned(tmp_path: Path, pki, hsm_config, token) -> None:
    records, changes = plan(seed=12)

    async def scenario() -> None:
        async with quiet_cs(tmp_path, pki, hsm_config, token, records) as rig:
            before = await state_of(rig)
            assert rig.daemon.server is not None
            refused = rig.daemon.server.refused_peers
            raw = await Raw.connect(rig, pki.tls("stranger"))
            # Whatever it sends is never read as a message.
            raw.send("identity_change", before.register_next, changes[0])
            await raw.expect_error(E_NOT_PINNED, seq=0)
            await raw.expect_closed()
            await raw.finish()
            assert rig.daemon.server.refused_peers == refused + 1
            assert await state_of(rig) == before
            await assert_still_serves(rig, take(changes))

    run(scenario())


# -- 3: replay -------------------------------------------------------------------------------------


def test_replayed_frame_is_acknowledged_again_without_a_second_effect(tmp_path: Path, pki, hsm_config, token) -> None:
    records, changes = plan(seed=13)
    update = take(changes, "modify")
    code = update.record.resident_code

    async def scenario() -> None:
        async with quiet_cs(tmp_path, pki, hsm_config, token, records) as rig:
            original_version = version_of(rig, code)
            raw, seq = await Raw.register(rig)
            frame = CODEC.encode("identity_change", seq, update)
            raw.write(frame)
            await raw.expect_ack(seq)
            committed = await drained(rig)
            version = version_of(rig, code)
            assert original_version is not None and version == original_version + 1
            assert committed.register_next == seq + 1

            for _ in range(3):  # the same bytes again on the same connection
                raw.write(frame)
                await raw.expect_ack(seq)
            await raw.gap_probe(seq + 1)
            await raw.finish()

            again, resume = await Raw.register(rig)  # and on a new connection
            assert resume == seq + 1
            again.write(frame)
            await again.expect_ack(seq)
            await again.finish()

            assert version_of(rig, code) == version
            assert await drained(rig) == committed
            await assert_still_serves(rig, take(changes), committed=[update])

    run(scenario())


def test_same_frame_on_a_second_concurrent_connection_is_not_applied_twice(tmp_path: Path, pki, hsm_config, token) -> None:
    records, changes = plan(seed=26)
    update = take(changes, "modify")
    code = update.record.resident_code

    async def scenario() -> None:
        async with quiet_cs(tmp_path, pki, hsm_config, token, records) as rig:
            version = version_of(rig, code)
            first, seq = await Raw.register(rig)
            second, seq2 = await Raw.register(rig)  # both told the same place to resume
            assert seq2 == seq
            frame = CODEC.encode("identity_change", seq, update)
            first.write(frame)
            await first.expect_ack(seq)
            committed = await drained(rig)
            # The second session's cursor is stale: its commit finds the cursor moved and fails closed.
            second.write(frame)
            await second.expect_error(E_UNAVAILABLE, seq=seq, expected_seq=seq)
            await second.expect_closed()
            await second.finish()
            await first.gap_probe(seq + 1)  # the first session is unaffected
            await first.finish()
            assert version is not None and version_of(rig, code) == version + 1
            assert await drained(rig) == committed
            await assert_still_serves(rig, take(changes), committed=[update])

    run(scenario())


# -- 4, 5: framing ---------------------------------------------------------------------------------


def test_frame_header_announcing_100_mb_is_refused_on_the_header(tmp_path: Path, pki, hsm_config, token) -> None:
    records, changes = plan(seed=14)
    announced = 100 * 1000 * 1000
    chunk = bytes(1 << 20)

    async def scenario() -> None:
        async with quiet_cs(tmp_path, pki, hsm_config, token, records) as rig:
            before = await state_of(rig)
            process = psutil.Process()
            rss_before = process.memory_info().rss
            raw, seq = await Raw.register(rig)
            raw.write(announced.to_bytes(4, "big"))  # the header alone: refused before any body
            await raw.expect_error(E_FRAME_TOO_LARGE, seq=0)
            # Pushing the body now goes nowhere: the CS has closed the stream.
            for _ in range(16):
                if raw.writer.is_closing():
                    break
                raw.write(chunk)
                try:
                    await asyncio.wait_for(raw.writer.drain(), STEP_S)
                except (ConnectionError, ssl.SSLError, TimeoutError):
                    break
            await raw.expect_closed()
            await raw.finish()
            grown = process.memory_info().rss - rss_before
            assert grown < 48 * (1 << 20), f"RSS grew by {grown} bytes"
            assert await state_of(rig) == before
            await assert_still_serves(rig, take(changes))

    run(scenario())


def test_zero_length_frame_is_refused_and_closes(tmp_path: Path, pki, hsm_config, token) -> None:
    records, changes = plan(seed=15)

    async def scenario() -> None:
        async with quiet_cs(tmp_path, pki, hsm_config, token, records) as rig:
            before = await state_of(rig)
            raw, seq = await Raw.register(rig)
            raw.write(bytes(4))
            await raw.expect_error(E_FRAME_EMPTY, seq=0)
            await raw.expect_closed()
            await raw.finish()
            assert await state_of(rig) == before
            await assert_still_serves(rig, take(changes))

    run(scenario())


def test_truncated_frames_apply_nothing(tmp_path: Path, pki, hsm_config, token) -> None:
    records, changes = plan(seed=16)
    update = take(changes, "modify")

    async def scenario() -> None:
        async with quiet_cs(tmp_path, pki, hsm_config, token, records) as rig:
            before = await state_of(rig)
            version = version_of(rig, update.record.resident_code)
            for keep in ("header", "half", "all but one byte", "two header bytes"):
                raw, seq = await Raw.register(rig)
                assert seq == before.register_next
                frame = CODEC.encode("identity_change", seq, update)
                cut = {"header": 4, "half": len(frame) // 2, "all but one byte": len(frame) - 1, "two header bytes": 2}[keep]
                raw.write(frame[:cut])
                await raw.writer.drain()
                await raw.finish()  # the CS sees the stream end mid-frame; its session ends
                assert version_of(rig, update.record.resident_code) == version
                assert await state_of(rig) == before, f"a truncated frame ({keep}) changed the CS"
            await assert_still_serves(rig, update)

    run(scenario())


# -- 6: random bytes -------------------------------------------------------------------------------


def test_random_bytes_in_valid_frames_are_malformed_and_the_link_goes_on(tmp_path: Path, pki, hsm_config, token) -> None:
    records, changes = plan(seed=17)

    async def scenario() -> None:
        async with quiet_cs(tmp_path, pki, hsm_config, token, records) as rig:
            before = await state_of(rig)
            raw, seq = await Raw.register(rig)
            for seed in range(12):
                rng = random.Random(seed)
                body = rng.randbytes(rng.randint(1, 4096))
                raw.write(encode_frame(body, max_frame_bytes=FRAME_LIMIT))
                await raw.expect_error(E_MALFORMED, seq=0)
            await raw.gap_probe(seq)
            await raw.finish()
            assert await state_of(rig) == before
            await assert_still_serves(rig, take(changes))

    run(scenario())


def test_random_byte_streams_are_refused_and_the_daemon_is_unaffected(tmp_path: Path, pki, hsm_config, token) -> None:
    records, changes = plan(seed=18)

    async def scenario() -> None:
        async with quiet_cs(tmp_path, pki, hsm_config, token, records) as rig:
            before = await state_of(rig)
            for seed in range(4):
                # Inside TLS: whatever the bytes frame up to, the stream breaks and is closed.
                raw, _ = await Raw.register(rig)
                raw.write(random.Random(seed).randbytes(64 * 1024))
                replies = []
                for _ in range(MAX_MESSAGES):
                    msg = await raw.next()
                    if msg is None:
                        break
                    replies.append(msg)
                assert replies, "no refusal of a random stream"
                assert all(m.type == "error" and isinstance(m.body, ErrorReport) for m in replies)
                codes = [m.body.code for m in replies]
                assert codes[-1] in FRAME_LEVEL and set(codes[:-1]) <= {E_MALFORMED}, codes
                await raw.finish()

                # Without TLS: the handshake fails and the connection ends.
                sessions = open_sessions(rig)
                reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", rig.endpoint.port), STEP_S)
                noise = bytearray(random.Random(100 + seed).randbytes(4096))
                noise[0] = 0x00  # not a TLS record type, so the server need not wait for more
                writer.write(bytes(noise))
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
                async with asyncio.timeout(STEP_S):
                    for _ in range(64):
                        try:
                            data = await reader.read(1 << 16)
                        except ConnectionError:
                            break
                        if not data:
                            break
                    else:
                        raise AssertionError("the CS kept a garbage connection open")
                writer.close()
                with contextlib.suppress(ConnectionError, TimeoutError):
                    await asyncio.wait_for(writer.wait_closed(), STEP_S)
                assert open_sessions(rig) == sessions
            assert await state_of(rig) == before
            await assert_still_serves(rig, take(changes))

    run(scenario())


# -- 7, 8, 11, 12: updates refused for their content ------------------------------------------------


def test_bad_check_digits_are_invalid_records_naming_the_field_never_the_value(tmp_path: Path, pki, hsm_config, token) -> None:
    records, changes = plan(seed=19)
    modify = take(changes, "modify")
    numbered = take(changes, numbered=True)
    bad_code = msgspec.structs.replace(modify.record, resident_code=flip_last_digit(modify.record.resident_code))
    bad_number = msgspec.structs.replace(numbered.record, individual_number=flip_last_digit(numbered.record.individual_number))
    cases = [
        (IdentityChange(modify.op, bad_code), "resident_code", 1, bad_code.resident_code),
        (IdentityChange(numbered.op, bad_number), "individual_number", 13, bad_number.individual_number),
    ]

    async def scenario() -> None:
        async with quiet_cs(tmp_path, pki, hsm_config, token, records) as rig:
            before = await state_of(rig)
            raw, seq = await Raw.register(rig)
            for change, field_name, item, synthetic in cases:
                raw.send("identity_change", seq, change)
                report = await raw.expect_error(E_INVALID_RECORD, seq=seq, expected_seq=seq)
                assert (report.field, report.item) == (field_name, item)
                frame = raw.received[-1]
                leaked = [v for v in [synthetic.encode(), *secret_values(change.record)] if v in frame]
                assert not leaked, f"the error frame carries {len(leaked)} value(s) of the record"
            await raw.gap_probe(seq)  # the refusals did not consume the sequence number
            await raw.finish()
            everything = b"".join(raw.received)
            assert not any(v in everything for c, _, _, _ in cases for v in secret_values(c.record))
            assert await state_of(rig) == before
            await assert_still_serves(rig, modify)  # the corrected update goes through

    run(scenario())


def test_unknown_change_reason_is_an_invalid_record(tmp_path: Path, pki, hsm_config, token) -> None:
    records, changes = plan(seed=20)
    modify = take(changes, "modify")
    bad = IdentityChange("modify", msgspec.structs.replace(modify.record, change_reason="NO_SUCH_REASON"))

    async def scenario() -> None:
        async with quiet_cs(tmp_path, pki, hsm_config, token, records) as rig:
            before = await state_of(rig)
            raw, seq = await Raw.register(rig)
            raw.send("identity_change", seq, bad)
            report = await raw.expect_error(E_INVALID_RECORD, seq=seq, expected_seq=seq)
            assert (report.field, report.item) == ("change_reason", 21)
            assert b"NO_SUCH_REASON" not in raw.received[-1]
            await raw.gap_probe(seq)
            await raw.finish()
            assert await state_of(rig) == before
            await assert_still_serves(rig, modify)

    run(scenario())


def test_update_of_a_prohibited_record_is_refused(tmp_path: Path, pki, hsm_config, token) -> None:
    records, changes = plan(seed=21)
    modify = take(changes, "modify")
    remove = take(changes, "remove")
    prohibited = {modify.record.resident_code, remove.record.resident_code}
    records = [msgspec.structs.replace(r, update_prohibited="1") if r.resident_code in prohibited else r for r in records]

    async def scenario() -> None:
        async with quiet_cs(tmp_path, pki, hsm_config, token, records) as rig:
            before = await state_of(rig)
            versions = {code: version_of(rig, code) for code in prohibited}
            raw, seq = await Raw.register(rig)
            for change in (modify, remove):
                raw.send("identity_change", seq, change)
                report = await raw.expect_error(E_UPDATE_PROHIBITED, seq=seq, expected_seq=seq)
                assert (report.field, report.item) == ("update_prohibited", 31)
            await raw.gap_probe(seq)
            await raw.finish()
            assert {code: version_of(rig, code) for code in prohibited} == versions
            assert await state_of(rig) == before
            await assert_still_serves(rig, take(changes))

    run(scenario())


def test_create_of_a_live_resident_and_modify_of_an_unknown_one_conflict(tmp_path: Path, pki, hsm_config, token) -> None:
    records, changes = plan(seed=22)
    create = take(changes, "create")
    live = records[0]
    recreate = IdentityChange("create", msgspec.structs.replace(live, change_reason="TENNYU", record_status="0"))
    modify_unknown = IdentityChange("modify", msgspec.structs.replace(create.record, change_reason="TENKYO"))
    remove_unknown = IdentityChange(
        "remove", msgspec.structs.replace(create.record, change_reason="TENSHUTSU", record_status="1")
    )

    async def scenario() -> None:
        async with quiet_cs(tmp_path, pki, hsm_config, token, records) as rig:
            before = await state_of(rig)
            live_version = version_of(rig, live.resident_code)
            raw, seq = await Raw.register(rig)
            for change in (recreate, modify_unknown, remove_unknown):
                raw.send("identity_change", seq, change)
                report = await raw.expect_error(E_CONFLICT, seq=seq, expected_seq=seq)
                assert (report.field, report.item) == ("resident_code", 1)
            await raw.gap_probe(seq)
            await raw.finish()
            assert version_of(rig, live.resident_code) == live_version
            assert version_of(rig, create.record.resident_code) is None
            assert await state_of(rig) == before
            await assert_still_serves(rig, create)

    run(scenario())


# -- 9, 10: sequence and message-level refusals --------------------------------------------------------


def test_sequence_gap_names_the_expected_number(tmp_path: Path, pki, hsm_config, token) -> None:
    records, changes = plan(seed=23)
    update = take(changes)

    async def scenario() -> None:
        async with quiet_cs(tmp_path, pki, hsm_config, token, records) as rig:
            before = await state_of(rig)
            raw, seq = await Raw.register(rig)
            for ahead in (1, 2, 1000, 2**63 - 1 - seq):
                raw.send("identity_change", seq + ahead, update)
                await raw.expect_error(E_SEQUENCE_GAP, seq=seq + ahead, expected_seq=seq)
            await raw.finish()
            assert await state_of(rig) == before
            await assert_still_serves(rig, update)

    run(scenario())


def test_message_level_refusals_keep_the_link(tmp_path: Path, pki, hsm_config, token) -> None:
    records, changes = plan(seed=24)
    update = take(changes)
    body = msgspec.to_builtins(update)

    async def scenario() -> None:
        async with quiet_cs(tmp_path, pki, hsm_config, token, records) as rig:
            before = await state_of(rig)
            raw, seq = await Raw.register(rig)
            cut = envelope_frame("identity_change", 1, seq, body)[4:-10]
            refusals = [
                (envelope_frame("no_such_type", 1, 41, {}), E_UNKNOWN_TYPE, 41),
                (envelope_frame("identity_change", 2, seq, body), E_UNSUPPORTED_VERSION, seq),
                (envelope_frame("identity_change", 255, seq, body), E_UNSUPPORTED_VERSION, seq),
                (envelope_frame("NOT-A-TYPE", 1, 42, {}), E_MALFORMED, 0),
                (envelope_frame("identity_change", 0, seq, body), E_MALFORMED, 0),
                (envelope_frame("identity_change", 1, -1, body), E_MALFORMED, 0),
                (envelope_frame("identity_change", 1, 2**63, body), E_MALFORMED, 0),
                (len(cut).to_bytes(4, "big") + cut, E_MALFORMED, 0),  # a whole frame of cut msgpack
                (envelope_frame("identity_change", 1, seq, {"op": "create"}), E_INVALID_FIELD, seq),
                (envelope_frame("identity_change", 1, seq, {**body, "op": "merge"}), E_INVALID_FIELD, seq),
                (envelope_frame("identity_change", 1, seq, {**body, "extra": 1}), E_INVALID_FIELD, seq),
                (encode_frame(b"\xc1", max_frame_bytes=FRAME_LIMIT), E_MALFORMED, 0),  # a byte msgpack never uses
                (frame_of({"t": "ack", "v": 1, "s": 3, "b": {"seq": 3}, "x": 1}), E_MALFORMED, 0),  # unknown envelope key
                (frame_of([1, 2, 3]), E_MALFORMED, 0),
                # The envelope reads, the body is not UTF-8: malformed, naming the envelope's number.
                (envelope_frame("identity_change", 1, seq, msgspec.Raw(b"\x81\xa2op\xa1\xff")), E_MALFORMED, seq),
                (envelope_frame("outbox_batch", 1, 43, {"entries": [b"x"], "signature": bytes(64)}), E_NOT_ALLOWED, 43),
                (envelope_frame("check_request", 1, 44, {"context": b""}), E_NOT_ALLOWED, 44),
                (envelope_frame("digest_request", 1, 45, {"request": b""}), E_NOT_ALLOWED, 45),
                (envelope_frame("ack", 1, 46, {"seq": 46}), E_NOT_ALLOWED, 46),
                (envelope_frame("resume", 1, 0, {"next_seq": 1}), E_NOT_ALLOWED, 0),
            ]
            for frame, code, reply_seq in refusals:
                raw.write(frame)
                await raw.expect_error(code, seq=reply_seq)
            await raw.gap_probe(seq)  # still the same session, and nothing consumed
            await raw.finish()

            # A prefecture may not send the register's updates.
            prefecture = await Raw.connect(rig, pki.tls("prefecture"))
            prefecture.send("identity_change", 1, update)
            await prefecture.expect_error(E_NOT_ALLOWED, seq=1)
            prefecture.write(envelope_frame("no_such_type", 1, 7, {}))
            await prefecture.expect_error(E_UNKNOWN_TYPE, seq=7)
            await prefecture.finish()

            assert await state_of(rig) == before
            await assert_still_serves(rig, update)

    run(scenario())


# -- 13: a pipelined burst with a bad update in it ---------------------------------------------------


def test_pipelined_burst_commits_up_to_the_bad_update_and_resumes_after_the_fix(tmp_path: Path, pki, hsm_config, token) -> None:
    records, changes = plan(seed=25)
    count, bad_index = 8, 3  # update k = 4 of 8 is invalid
    burst = [take(changes) for _ in range(count)]
    good = burst[bad_index]
    bad = IdentityChange(good.op, msgspec.structs.replace(good.record, resident_code=flip_last_digit(good.record.resident_code)))

    async def scenario() -> None:
        async with quiet_cs(tmp_path, pki, hsm_config, token, records) as rig:
            gateway = rig.daemon.gateway
            assert gateway is not None
            before = await state_of(rig)
            codes = [c.record.resident_code for c in burst]
            versions = [version_of(rig, code) for code in codes]
            raw, first = await Raw.register(rig)
            k = first + bad_index
            frames = [CODEC.encode("identity_change", first + i, bad if i == bad_index else c) for i, c in enumerate(burst)]
            raw.write(b"".join(frames))  # one write: the CS reads the burst pipelined

            replies = await raw.until(lambda m: m.type == "error" and m.body.code == E_INVALID_RECORD)
            # A barrier: its refusal comes after every reply to the burst (replies keep message order).
            raw.write(envelope_frame("no_such_type", 1, 999_999, {}))
            replies += await raw.until(lambda m: m.type == "error" and m.body.code == E_UNKNOWN_TYPE)
            acks = [m.seq for m in replies if m.type == "ack"]
            errors = [(m.body.code, m.seq, m.body.expected_seq) for m in replies if m.type == "error"]
            assert acks and max(acks) == k - 1 and acks == sorted(acks), acks
            assert errors[0] == (E_INVALID_RECORD, k, k)
            assert errors[-1] == (E_UNKNOWN_TYPE, 999_999, None)
            # Updates after k were dropped with it: silently when already queued, else as gaps.
            assert all(e == (E_SEQUENCE_GAP, e[1], k) and k < e[1] < first + count for e in errors[1:-1]), errors
            assert len({e[1] for e in errors[1:-1]}) == len(errors) - 2

            # The stream as it was, sent again after the refusal: a gap naming k.
            raw.write(frames[bad_index + 1])
            await raw.expect_error(E_SEQUENCE_GAP, seq=k + 1, expected_seq=k)
            assert await gateway.inbox_next("register") == k
            assert await gateway.outbox_next_seq("prefecture") == before.prefecture_next + bad_index
            for i, code in enumerate(codes):
                moved = version_of(rig, code) != versions[i]
                assert moved == (i < bad_index), f"update {i + 1} applied={moved}"

            # The fixed update k and the rest: committed and acknowledged through the end.
            raw.write(b"".join([CODEC.encode("identity_change", k, good), *frames[bad_index + 1 :]]))
            replies = await raw.until(lambda m: m.type == "ack" and m.seq == first + count - 1)
            assert all(m.type == "ack" for m in replies), [m.type for m in replies]
            await raw.finish()
            assert await gateway.inbox_next("register") == first + count
            assert await gateway.outbox_next_seq("prefecture") == before.prefecture_next + count
            assert all(version_of(rig, code) != versions[i] for i, code in enumerate(codes))
            await assert_still_serves(rig, take(changes), committed=burst)

    run(scenario())
