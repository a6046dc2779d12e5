"""Tests of the message envelope and registry: round trips, refusals and their codes, fuzzing."""

from __future__ import annotations

import pickle

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_app.links.errors import (
    E_INVALID_FIELD,
    E_MALFORMED,
    E_SEQUENCE_GAP,
    E_UNKNOWN_TYPE,
    E_UNSUPPORTED_VERSION,
    ProtocolError,
)
from firmware_app.links.frames import FrameDecoder
from firmware_app.links.messages import (
    DEFAULT_REGISTRY,
    Ack,
    ErrorReport,
    Message,
    MessageCodec,
    CheckChunk,
    CheckEnd,
    CheckRequest,
    DigestReply,
    DigestRequest,
    ItemsReply,
    ItemsRequest,
    MoveOutReply,
    MoveOutRequest,
    OutboxBatch,
    Query,
    QueryResult,
    Resume,
)
from firmware_app.domain.check_item import check_item_of
from firmware_app.domain.destination import destination_record_of
from firmware_app.domain.updates import CardEvent, IdentityChange, MoveOutCertificate
from peers.population import generate

SENTINEL = "ZQXSENTINEL"
CODEC = MessageCodec(max_frame_bytes=64 * 1024)
RECORD = next(generate(1, start=42))


def _moveout(**changes: object) -> MoveOutCertificate:
    fields: dict[str, object] = {
        "resident_code": "12345678901",
        "name_kanji": "目黒\u3000花子",
        "name_kana": "メグロ\u3000ハナコ",
        "birth_date": "19900101",
        "sex": "2",
        "address": "東京都目黒区駒場一丁目1番1号",
        "honseki": "",
        "hittousha": "",
        "individual_number": "123456789012",
        "former_surname": "",
        "from_municipality_code": "131105",
        "to_municipality_code": "131121",
        "planned_moveout_date": "20261201",
        "planned_address": "東京都世田谷区池尻一丁目1番1号",
    }
    fields.update(changes)
    return MoveOutCertificate(**fields)  # type: ignore[arg-type]


def _raw(envelope: object) -> bytes:
    return msgspec.msgpack.encode(envelope)


def _refusal(frame_body: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        CODEC.decode(frame_body)
    exc = info.value
    # Nothing from the input reaches the message, the args, or a chained exception.
    assert SENTINEL not in str(exc) and SENTINEL not in repr(exc)
    assert all(SENTINEL not in str(arg) for arg in exc.args)
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)
    return exc


def _envelope(body: object, t: str = "moveout_certificate", v: int = 1, s: int = 3) -> bytes:
    return _raw({"t": t, "v": v, "s": s, "b": body})


def _moveout_fields(**changes: object) -> dict[str, object]:
    return {**msgspec.structs.asdict(_moveout()), **changes}


BODIES = [
    ("ack", Ack(seq=9)),
    ("error", ErrorReport(code=E_SEQUENCE_GAP, expected_seq=4)),
    ("error", ErrorReport(code=E_MALFORMED)),
    ("identity_change", IdentityChange(op="modify", record=RECORD)),
    ("card_event", CardEvent(kind="suspension_lift", resident_code="12345678901", occurred_on="20260401")),
    ("resume", Resume(next_seq=1)),
    ("destination", destination_record_of(RECORD, management_number="0000000001", processed_on="20260401")),
    ("moveout_certificate", _moveout()),
    ("moveout_request", MoveOutRequest(resident_code="12345678901")),
    ("moveout_reply", MoveOutReply(_moveout())),
    ("outbox_batch", OutboxBatch(entries=[b"\x01\x02"], signature=b"\x00" * 64)),
    ("query", Query(by="number", individual_number="123456789012")),
    ("query_result", QueryResult([check_item_of(RECORD)])),
    ("check_request", CheckRequest(b"nonce")),
    ("check_chunk", CheckChunk(b"\x00\x00\x00\x01\x90")),
    ("check_end", CheckEnd(b"\x94")),
    ("digest_request", DigestRequest(b"\x91\x90")),
    ("digest_reply", DigestReply(b"\x91\x90")),
    ("items_request", ItemsRequest([1, 99999999999])),
    ("items_reply", ItemsReply(b"")),
]


@pytest.mark.parametrize(("type_name", "body"), BODIES)
def test_round_trip_through_frames(type_name: str, body: msgspec.Struct) -> None:
    frame = CODEC.encode(type_name, 2**63 - 1, body)
    [frame_body] = FrameDecoder().feed(frame)
    assert CODEC.decode(frame_body) == Message(type_name, 1, 2**63 - 1, body)


def test_every_registered_type_has_a_round_trip() -> None:
    assert {(t, type(b)) for t, b in BODIES} == {(t, cls) for (t, _), cls in DEFAULT_REGISTRY.items()}


def test_many_frames_pipelined() -> None:
    records = list(generate(50))
    stream = b"".join(CODEC.encode("identity_change", i, IdentityChange("create", r)) for i, r in enumerate(records))
    messages = [CODEC.decode(body) for body in FrameDecoder().feed(stream)]
    assert [m.seq for m in messages] == list(range(50))
    assert [m.body.record for m in messages] == records  # type: ignore[attr-defined]


def test_repr_hides_personal_data() -> None:
    message = CODEC.decode(CODEC.encode("moveout_certificate", 1, _moveout(name_kanji=SENTINEL))[4:])
    assert SENTINEL not in repr(message) and SENTINEL not in repr(message.body)


def test_garbage_is_malformed() -> None:
    assert _refusal(b"\xc1" + SENTINEL.encode()).code == E_MALFORMED


@pytest.mark.parametrize(
    "envelope",
    [
        [1, 2, 3, 4],
        {"t": "ack", "v": 1, "s": 1},
        {"t": "ack", "v": 1, "s": 1, "b": {"seq": 1}, SENTINEL: 1},
        {"t": SENTINEL, "v": 1, "s": 1, "b": {"seq": 1}},
        {"t": "ack\n", "v": 1, "s": 1, "b": {"seq": 1}},
        {"t": "ack", "v": 0, "s": 1, "b": {"seq": 1}},
        {"t": "ack", "v": 256, "s": 1, "b": {"seq": 1}},
        {"t": "ack", "v": 1, "s": -1, "b": {"seq": 1}},
        {"t": "ack", "v": 1, "s": SENTINEL, "b": {"seq": 1}},
    ],
    ids=["array", "no-body", "unknown-key", "bad-type-name", "newline", "v0", "v256", "negative-seq", "str-seq"],
)
def test_bad_envelope_is_malformed(envelope: object) -> None:
    assert _refusal(_raw(envelope)).code == E_MALFORMED


def test_trailing_bytes_are_malformed() -> None:
    assert _refusal(_envelope({"seq": 1}, t="ack") + b"\x00").code == E_MALFORMED


def test_invalid_utf8_is_malformed() -> None:
    head = b"\x84\xa1t\xa3ack\xa1v\x01\xa1s\x01"
    assert _refusal(head + b"\xa2b\xff\x01").code == E_MALFORMED
    error_head = b"\x84\xa1t\xa5error\xa1v\x01\xa1s\x01"
    assert _refusal(error_head + b"\xa1b\x81\xa4code\xa2\xff\xfe").code == E_MALFORMED


def test_deep_nesting_is_malformed() -> None:
    head = b"\x84\xa1t\xa3ack\xa1v\x01\xa1s\x01\xa1b"
    assert _refusal(head + b"\x91" * 100_000 + b"\xc0").code == E_MALFORMED
    assert _refusal(head + b"\x81\xa3seq" + b"\x91" * 100_000 + b"\xc0").code == E_MALFORMED


def test_unknown_type() -> None:
    assert _refusal(_envelope({"seq": 1}, t="sentinel")).code == E_UNKNOWN_TYPE


def test_unsupported_version() -> None:
    assert _refusal(_envelope({"seq": 1}, t="ack", v=2)).code == E_UNSUPPORTED_VERSION


@pytest.mark.parametrize(
    "changes",
    [
        {"name_kanji": SENTINEL * 20},
        {"address": SENTINEL * 30},
        {"former_surname": SENTINEL * 5},
        {"resident_code": SENTINEL},
        {"resident_code": "１２３４５６７８９０１"},
        {"birth_date": SENTINEL},
        {"individual_number": SENTINEL[:10] + "12"},
        {"sex": SENTINEL},
        {"planned_moveout_date": SENTINEL * 3},
        {"name_kanji": 12345678},
        {"honseki": SENTINEL * 20},
        {SENTINEL: "x"},
    ],
    ids=lambda c: next(iter(c)).replace(SENTINEL, "unknown"),
)
def test_invalid_moveout_fields(changes: dict[str, object]) -> None:
    assert _refusal(_envelope(_moveout_fields(**changes))).code == E_INVALID_FIELD


def test_missing_field_is_invalid() -> None:
    fields = _moveout_fields()
    del fields["planned_address"]
    assert _refusal(_envelope(fields)).code == E_INVALID_FIELD


@pytest.mark.parametrize(
    "body",
    [
        {"kind": SENTINEL, "resident_code": "12345678901", "occurred_on": "20260401"},
        {"kind": "issue", "resident_code": "1234567890", "occurred_on": "20260401"},
        {"kind": "issue", "resident_code": "12345678901", "occurred_on": "2026-04-01"},
    ],
)
def test_invalid_card_event(body: dict[str, object]) -> None:
    assert _refusal(_envelope(body, t="card_event")).code == E_INVALID_FIELD


def test_invalid_identity_change() -> None:
    record = list(msgspec.structs.astuple(RECORD))
    bad_op = {"op": SENTINEL, "record": record}
    short_record = {"op": "create", "record": record[:39]}
    wrong_item = {"op": "create", "record": [SENTINEL if i == 2 else x for i, x in enumerate(record)]}
    for body in (bad_op, short_record, wrong_item):
        assert _refusal(_envelope(body, t="identity_change")).code == E_INVALID_FIELD


def test_error_report_bounds() -> None:
    assert _refusal(_envelope({"code": SENTINEL.lower() * 4}, t="error")).code == E_INVALID_FIELD
    assert _refusal(_envelope({"code": "x", "expected_seq": -1}, t="error")).code == E_INVALID_FIELD


def test_domain_rules_are_not_checked_here() -> None:
    # A check digit, a sex code or a date that the domain refuses is structurally fine.
    odd = msgspec.structs.replace(RECORD, resident_code="00000000000", sex="9", birth_date="20261399")
    message = CODEC.decode(CODEC.encode("identity_change", 1, IdentityChange("remove", odd))[4:])
    assert message.body.record == odd  # type: ignore[attr-defined]


def test_encode_refuses_unregistered_pairs_and_bad_seq() -> None:
    with pytest.raises(TypeError):
        CODEC.encode("notify", 1, Ack(seq=1))
    with pytest.raises(ValueError):
        CODEC.encode("ack", -1, Ack(seq=1))


def test_custom_registry_versions() -> None:
    class AckV2(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
        seq: int
        note: str = ""

    codec = MessageCodec({("ack", 1): Ack, ("ack", 2): AckV2}, max_frame_bytes=128)
    assert codec.decode(codec.encode("ack", 5, AckV2(seq=1, note="x"))[4:]).version == 2
    assert codec.decode(codec.encode("ack", 5, Ack(seq=1))[4:]).version == 1
    with pytest.raises(ValueError):
        MessageCodec({("Ack", 1): Ack}, max_frame_bytes=128)


def test_protocol_error_pickles_with_its_fields() -> None:
    exc = pickle.loads(pickle.dumps(ProtocolError(E_SEQUENCE_GAP, expected_seq=7)))
    assert (exc.code, exc.expected_seq, str(exc)) == (E_SEQUENCE_GAP, 7, str(ProtocolError(E_SEQUENCE_GAP)))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_raise_only_protocol_error(data: bytes) -> None:
    try:
        CODEC.decode(data)
    except ProtocolError:
        pass


_leaves = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=20) | st.binary(max_size=20)
_values = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted({t for t, _ in DEFAULT_REGISTRY} | {"zzz"})),
    st.integers(0, 3),
    _values,
)
def test_random_bodies_raise_only_protocol_error(type_name: str, version: int, body: object) -> None:
    try:
        CODEC.decode(_envelope(body, t=type_name, v=version))
    except ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(BODIES), st.data())
def test_mutated_frames_raise_only_protocol_error(item: tuple[str, msgspec.Struct], data: st.DataObject) -> None:
    body = bytearray(CODEC.encode(item[0], 1, item[1])[4:])
    for _ in range(data.draw(st.integers(1, 4))):
        body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    try:
        message = CODEC.decode(bytes(body))
    except ProtocolError:
        return
    assert isinstance(message.body, tuple(DEFAULT_REGISTRY.values()))
