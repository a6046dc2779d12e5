"""The audit trail on a real LMDB store with checkpoints signed by the SoftHSM2 key: every kind of
tampering is found by verify, which names the first broken entry."""

from __future__ import annotations

import asyncio

import pytest

from firmware_app.audit.chain import decode_checkpoint, encode_checkpoint
from firmware_app.audit.errors import AuditRefused
from firmware_app.audit.trail import AuditTrail, TrailSettings
from hsm.keys import Signer
from hsm.labels import SIGNING_LABEL
from storage import layout


def _trail(store, token, clock, **settings) -> AuditTrail:  # type: ignore[no-untyped-def]
    return AuditTrail(store, Signer(token, SIGNING_LABEL), clock, TrailSettings(**settings))


async def _filled(trail: AuditTrail, n: int = 30, checkpoint_every: int = 10) -> None:
    await trail.start()
    for i in range(1, n + 1):
        await trail.record("room.door_opened", actor="door:server-room", subject=f"door:{i % 3}", detail={"n": i, "ok": True})
        if i % checkpoint_every == 0:
            await trail.flush()
            await trail.checkpoint()
    await trail.flush()


def _tamper(store, fn) -> None:  # type: ignore[no-untyped-def]
    store.write(fn)


def _value(store, seq: int) -> bytes:  # type: ignore[no-untyped-def]
    with store.read() as r:
        value = r.get(layout.AUDIT, layout.pack_u64(seq))
    assert value is not None
    return value


def test_an_untouched_chain_verifies(store, token, clock) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        trail = _trail(store, token, clock)
        await _filled(trail, 35)
        report = await trail.verify()
        assert report.ok and report.entries == 35 and report.checkpoints == 3 and report.unsigned_tail == 5
        await trail.stop()  # signs the tail
        again = _trail(store, token, clock)
        await again.start()
        report = await again.verify()
        assert report.ok and report.unsigned_tail == 0 and report.last_seq == 35
        await again.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("name", "broken"),
    [
        ("flip a byte in the body", 7),
        ("flip a byte in the stored hash", 12),
        ("delete an entry", 15),
        ("swap two entries", 4),
        ("truncate the last signed entries", 26),
        ("cut a value short", 9),
        ("forge a checkpoint", 20),
        ("delete a middle checkpoint", 30),
    ],
)
def test_tampering_is_found_and_named(store, token, clock, name: str, broken: int) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        trail = _trail(store, token, clock)
        await _filled(trail, 30)
        assert (await trail.verify()).ok
        if name == "flip a byte in the body":
            value = bytearray(_value(store, 7))
            value[10] ^= 0x01
            _tamper(store, lambda w: w.put(layout.AUDIT, layout.pack_u64(7), bytes(value)))
        elif name == "flip a byte in the stored hash":
            value = bytearray(_value(store, 12))
            value[-1] ^= 0x80
            _tamper(store, lambda w: w.put(layout.AUDIT, layout.pack_u64(12), bytes(value)))
        elif name == "delete an entry":
            _tamper(store, lambda w: w.delete(layout.AUDIT, layout.pack_u64(15)))
        elif name == "swap two entries":
            a, b = _value(store, 4), _value(store, 5)
            _tamper(store, lambda w: (w.put(layout.AUDIT, layout.pack_u64(4), b), w.put(layout.AUDIT, layout.pack_u64(5), a)))
        elif name == "truncate the last signed entries":
            _tamper(store, lambda w: w.pop_range(layout.AUDIT, layout.pack_u64(26), layout.pack_u64(31), 100))
        elif name == "cut a value short":
            value = _value(store, 9)
            _tamper(store, lambda w: w.put(layout.AUDIT, layout.pack_u64(9), value[:5]))
        elif name == "forge a checkpoint":
            with store.read() as r:
                cp = decode_checkpoint(r.get(layout.AUDIT_CHECKPOINTS, layout.pack_u64(20)))
            import msgspec

            forged = msgspec.structs.replace(cp, chain_hash=bytes(32))
            _tamper(store, lambda w: w.put(layout.AUDIT_CHECKPOINTS, layout.pack_u64(20), encode_checkpoint(forged)))
        elif name == "delete a middle checkpoint":
            _tamper(store, lambda w: w.delete(layout.AUDIT_CHECKPOINTS, layout.pack_u64(20)))
        report = await trail.verify()
        assert not report.ok
        assert report.first_broken_seq == broken, report.problem
        assert str(broken) in report.problem
        await trail.stop()

    asyncio.run(scenario())


def test_retention_keeps_the_rest_verifiable(store, token, clock) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        trail = _trail(store, token, clock, retention_days=30)
        await _filled(trail, 20)
        clock.advance(40 * 86400)
        await _record_more(trail, 5)
        await trail.checkpoint()
        result = await trail.run_retention()
        assert result == {"deleted": 20, "anchor_seq": 20}
        report = await trail.verify()
        assert report.ok, report.problem
        assert report.anchor_seq == 20 and report.entries == 5
        # Deleting more of the old end than retention did is still found.
        _tamper(store, lambda w: w.delete(layout.AUDIT, layout.pack_u64(21)))
        report = await trail.verify()
        assert not report.ok and report.first_broken_seq == 21
        await trail.stop()

    asyncio.run(scenario())


async def _record_more(trail: AuditTrail, n: int) -> None:
    for i in range(n):
        await trail.record("console.login", actor="clerk1", detail={"terminal": "pts/1", "i": i})
    await trail.flush()


def test_malformed_entries_are_refused(store, token, clock) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        trail = _trail(store, token, clock)
        await trail.start()
        for kwargs in (
            {"kind": "", "actor": "x"},
            {"kind": "k" * 65, "actor": "x"},
            {"kind": "a.b", "actor": ""},
            {"kind": "a.b", "actor": "x", "subject": "s" * 200},
            {"kind": "a.b", "actor": "x", "detail": {"nested": {"no": 1}}},
            {"kind": "a.b", "actor": "x", "detail": {f"k{i}": i for i in range(17)}},
            {"kind": "a.b", "actor": "x", "detail": {"long": "v" * 300}},
        ):
            with pytest.raises(AuditRefused):
                await trail.record(**kwargs)  # type: ignore[arg-type]
        await trail.flush()
        assert trail.head_seq == 0
        await trail.stop()

    asyncio.run(scenario())
