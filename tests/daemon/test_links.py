"""The daemon with its links, end to end on loopback TLS, against the peer simulators."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from firmware_app.domain.check_item import check_item_of, decode_check_item
from firmware_app.domain.updates import CardEvent, IdentityChange
from firmware_app.links.errors import ConnectionClosed
from firmware_app.links.messages import Query
from hsm.labels import SIGNING_LABEL
from peers.consistency import ConsistencyClient
from peers.national import moveout_certificate_of
from peers.register_stream import CardChange, Change, DestinationDue, RegisterStream
from tests.daemon.rig import TODAY, running_cs

POPULATION = 300


def submit_stream(register, stream: RegisterStream, count: int) -> list[Change]:
    """Submit ``count`` events of the stream; returns the identity changes among them."""
    changes = []
    for event in stream.events(count):
        if isinstance(event, Change):
            register.submit("identity_change", IdentityChange(event.op, event.record))
            changes.append(event)
        elif isinstance(event, CardChange):
            register.submit("card_event", CardEvent(event.kind, event.resident_code, event.occurred_on))
        elif isinstance(event, DestinationDue):
            register.submit("destination", event.record)
    return changes


def test_changes_flow_to_the_prefecture_in_order_once(tmp_path: Path, pki, hsm_config, token) -> None:
    async def scenario() -> None:
        stream = RegisterStream(population=POPULATION, seed=3, today=TODAY)
        async with running_cs(tmp_path, pki, hsm_config, token, preload=stream.initial_records()) as rig:
            submit_stream(rig.register, stream, 600)
            await rig.settle()
            assert rig.register.refused == []
            assert rig.prefecture.out_of_order == 0
            assert rig.prefecture.copy == rig.cs_items()
            assert rig.national.cards and rig.national.destinations

    asyncio.run(scenario())


def test_consistency_check_full_and_by_range_digests(tmp_path: Path, pki, hsm_config, token) -> None:
    async def scenario() -> None:
        stream = RegisterStream(population=POPULATION, seed=5, today=TODAY)
        async with running_cs(tmp_path, pki, hsm_config, token, preload=stream.initial_records()) as rig:
            submit_stream(rig.register, stream, 200)
            await rig.settle()
            public_key = token.public_key_der_blocking(SIGNING_LABEL)
            client = ConsistencyClient(rig.endpoint, pki.tls("prefecture"), public_key)
            full = await client.full_check()
            cs = rig.cs_items()
            assert {code: decode_check_item(item) for code, item in full.items.items()} == cs

            # The prefecture's copy drifts in a few places: one item changed, one lost, one extra.
            copy = dict(rig.prefecture.copy)
            changed, lost = sorted(copy)[10], sorted(copy)[20]
            copy[changed] = msgspec.structs.replace(copy[changed], address="東京都目黒区どこか")
            del copy[lost]
            copy["99999999999"] = msgspec.structs.replace(copy[changed], resident_code="99999999999")
            found = await client.reconcile(copy)
            assert found.differences == {int(changed), int(lost), 99999999999}
            assert found.cs_items == {int(changed): cs[changed], int(lost): cs[lost]}
            assert found.bytes_moved < full.bytes_in

            # The national server takes part in the same way.
            national = await ConsistencyClient(rig.endpoint, pki.tls("national"), public_key).full_check()
            assert national.items == full.items

            # A register is not allowed to ask for check data.
            register_client = ConsistencyClient(rig.endpoint, pki.tls("register"), public_key)
            with pytest.raises(ConnectionClosed, match="not_allowed"):
                await register_client.full_check()

    asyncio.run(scenario())


def test_special_move_in_hands_over_the_certificate(tmp_path: Path, pki, hsm_config, token) -> None:
    async def scenario() -> None:
        stream = RegisterStream(population=POPULATION, seed=7, today=TODAY)
        async with running_cs(tmp_path, pki, hsm_config, token, preload=stream.initial_records()) as rig:
            special = None
            for event in stream.events(2000):
                if isinstance(event, Change) and event.special_move_in:
                    special = event
                    break
            assert special is not None, "the stream has special move-ins"
            cert = moveout_certificate_of(special.record, planned_moveout_date=TODAY, from_municipality_code="131016")
            await rig.national.send_certificate(cert)
            fetched = await rig.register.request_moveout(special.record.resident_code)
            assert fetched == cert
            seq = rig.register.submit("identity_change", IdentityChange("create", special.record))
            await rig.register.wait_acked(seq, 10)
            # The move-in is filed: the certificate was handed over and is not kept.
            assert await rig.register.request_moveout(special.record.resident_code) is None
            assert await rig.register.request_moveout("12345678901") is None

    asyncio.run(scenario())


def test_national_query_by_each_key(tmp_path: Path, pki, hsm_config, token) -> None:
    async def scenario() -> None:
        records = list(RegisterStream(population=50, seed=9, today=TODAY).initial_records())
        async with running_cs(tmp_path, pki, hsm_config, token, preload=records) as rig:
            query = rig.daemon.national_query
            assert query is not None
            target = next(r for r in records if r.individual_number)
            item = check_item_of(target)
            assert await query.query(Query(by="code", resident_code=target.resident_code)) == [item]
            assert await query.query(Query(by="number", individual_number=target.individual_number)) == [item]
            four = Query(by="four", name=target.name_kanji, birth_date=target.birth_date, sex=target.sex, address=target.address)
            assert item in await query.query(four)
            assert await query.query(Query(by="code", resident_code="00000000000")) == []

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "faults",
    [
        {"drop_every": 3},
        {"duplicate": True},
        {"delay_s": 0.05},
        {"disconnect_after": 2},
    ],
    ids=lambda f: next(iter(f)),
)
def test_a_misbehaving_prefecture_still_ends_equal_with_each_notice_applied_once(
    tmp_path: Path, pki, hsm_config, token, faults: dict
) -> None:
    async def scenario() -> None:
        stream = RegisterStream(population=POPULATION, seed=21, today=TODAY)
        extra = "ack_timeout_s = 0.5\nbatch_entries = 16\n"
        async with running_cs(tmp_path, pki, hsm_config, token, preload=stream.initial_records(), extra=extra) as rig:
            for name, value in faults.items():
                setattr(rig.prefecture.faults, name, value)
            submit_stream(rig.register, stream, 400)
            await rig.settle()
            assert rig.prefecture.out_of_order == 0
            assert rig.prefecture.copy == rig.cs_items()

    asyncio.run(scenario())


def test_a_bad_move_out_certificate_from_the_national_server_is_refused_and_not_kept(tmp_path: Path, pki, hsm_config, token) -> None:
    async def scenario() -> None:
        records = list(RegisterStream(population=20, seed=31, today=TODAY).initial_records())
        async with running_cs(tmp_path, pki, hsm_config, token, preload=records) as rig:
            good = moveout_certificate_of(records[0], planned_moveout_date=TODAY, from_municipality_code="131016")
            bad = msgspec.structs.replace(good, from_municipality_code="131017")  # wrong check digit
            sender = rig.national._sender
            assert sender is not None
            sender.submit("moveout_certificate", bad)
            async with asyncio.timeout(10):
                while not sender.refused:
                    await asyncio.sleep(0.01)
            assert [(r.code, r.field) for r in sender.refused] == [("invalid_record", "from_municipality_code")]
            assert await rig.register.request_moveout(records[0].resident_code) is None
            await rig.national.send_certificate(good)  # the fixed one takes the refused one's number
            assert await rig.register.request_moveout(records[0].resident_code) == good
            assert await rig.daemon.gateway.inbox_next("national") == 2

    asyncio.run(scenario())
