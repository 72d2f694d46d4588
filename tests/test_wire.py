"""The one codec: round trips of every message, batches, and hostile input."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import replace
from typing import Any, Union

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import movex_p2p as mx
from movex_p2p import wire
from movex_p2p.errors import InvalidState, RemoteProtocolError
from movex_p2p.ids import Rid, Term
from movex_p2p.resource import messages as rm
from movex_p2p.resource.state import check_data as state_check_data
from movex_p2p.resource.state import freeze
from movex_p2p.resource.values import MasterValue

PAYLOAD: Any = {
    "nested": [mx.master.now(), {"t": mx.master.random_int(1, 6)}, [mx.master.uuid()]],
    "n": 1,
    "f": 2.5,
    "s": "é",
    "b": b"\x00",
    "z": None,
    "ok": True,
    "r": mx.master.random(),
}


def sample(tp: Any, depth: int = 0) -> Any:
    """One valid value of wire type ``tp``."""
    supertype = getattr(tp, "__supertype__", None)
    if supertype is not None:
        return sample(supertype, depth)
    if tp is Any:
        return PAYLOAD
    simple = {int: 7, str: "p1", bytes: b"\x01" * 16, bool: True, float: 1.25}
    if tp in simple:
        return simple[tp]
    if tp is mx.Action:
        return mx.Action("move", PAYLOAD)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return tp(**{f.name: sample(hints[f.name], depth + 1) for f in dataclasses.fields(tp)})
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return sample(next(a for a in args if a is not type(None)), depth)
    if origin is tuple:
        return (sample(args[0], depth + 1), sample(args[0], depth + 1))
    if origin is list:
        return [sample(args[0], depth + 1)]
    if origin is dict:
        return {"k1": sample(args[1], depth + 1), "k2": sample(args[1], depth + 1)}
    if origin is typing.Literal:
        return args[-1]
    raise AssertionError(f"no sample for {tp!r}")


SAMPLES: list[Any] = [sample(cls) for _, cls in sorted(wire._BY_TAG.items())]
FRAMES: list[bytes] = [wire.encode(m) for m in SAMPLES]


def test_every_tag_has_a_sample() -> None:
    assert {type(m) for m in SAMPLES} == set(wire._BY_TAG.values())
    assert len(wire._BY_TAG) >= 23  # 16 resource + 7 election messages


def test_no_two_messages_share_a_tag() -> None:
    from movex_p2p import censorship as cm
    from movex_p2p import presence as pm
    from movex_p2p.election import messages as em

    tables = (pm.MESSAGES, rm.MESSAGES, em.MESSAGES, cm.MESSAGES)
    tags = [tag for table in tables for tag in table]
    assert len(tags) == len(set(tags)) == len(wire._BY_TAG)
    assert len(set(wire._BY_TAG.values())) == len(wire._BY_TAG)
    assert all(1 <= t <= 29 for t in pm.MESSAGES)
    assert all(30 <= t <= 59 or 80 <= t <= 89 for t in rm.MESSAGES)  # 80-89: fair draws
    assert all(60 <= t <= 79 for t in em.MESSAGES)
    assert all(90 <= t <= 99 for t in cm.MESSAGES)  # proof of censorship


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(message: Any) -> None:
    decoded = wire.decode(wire.encode(message))
    assert decoded == [message]
    assert type(decoded[0]) is type(message)


def test_master_values_survive_the_wire() -> None:
    msg = rm.Propose(term=Term(1), rid=Rid("dice:1"), seq=1, base=0, action=mx.Action("roll", PAYLOAD))
    (back,) = wire.decode(wire.encode(msg))
    assert isinstance(back, rm.Propose)
    assert back.action.payload["nested"][1]["t"] == MasterValue("random_int", (1, 6))
    assert isinstance(back.action.payload["nested"][0], MasterValue)


def test_fair_values_survive_the_wire() -> None:
    payload = {
        "die": mx.fair.random_int(1, 6),
        "card": mx.fair.choice(["a", {"b": [1, 2]}]),
        "deck": mx.fair.shuffle(range(3)),
    }
    msg = rm.Propose(term=Term(1), rid=Rid("dice:1"), seq=1, base=0, action=mx.Action("roll", payload))
    (back,) = wire.decode(wire.encode(msg))
    assert isinstance(back, rm.Propose)
    assert back.action.payload["die"] == MasterValue("fair_int", (1, 6))
    assert back.action.payload["card"].kind == "fair_choice"
    assert back.action.payload["card"].args == ("a", {"b": [1, 2]})
    assert list(back.action.payload["deck"].args) == [0, 1, 2]


def test_batches() -> None:
    assert wire.decode(wire.encode_many(SAMPLES)) == SAMPLES
    assert wire.decode(wire.join(FRAMES)) == SAMPLES
    assert wire.decode(wire.encode_many(SAMPLES[:1])) == SAMPLES[:1]
    many = FRAMES[:1] * 300  # header sizes: <24, <256, <65536
    for n in (0, 1, 23, 24, 255, 256, 300):
        assert wire.decode(wire.join(many[:n])) == SAMPLES[:1] * n


def test_tuples_are_lists_on_the_wire() -> None:
    msg = rm.Propose(term=Term(1), rid=Rid("c:1"), seq=1, base=0, action=mx.Action("t", (1, (2, 3))))
    (back,) = wire.decode(wire.encode(msg))
    assert isinstance(back, rm.Propose)
    assert back.action.payload == [1, [2, 3]]


# -- hostile input --------------------------------------------------------------------------------


def hostile(data: bytes) -> None:
    """Decoding may fail only with RemoteProtocolError; a success yields registered messages."""
    try:
        messages = wire.decode(data)
    except RemoteProtocolError:
        return
    assert all(type(m) in wire.ROUTES for m in messages)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    hostile(data)


@pytest.mark.parametrize("bad", [{"a": 1}, [1], b"spectator", 1.5, None])
def test_a_choice_field_holding_another_type_is_refused_by_the_codec(bad: object) -> None:
    """A Literal field (here a Refusal) holding a map made the check raise TypeError (unhashable), not the
    codec's error: found by test_mutated_frames."""
    good = wire.encode(rm.Rejected(term=Term(1), rid=Rid("c:1"), seq=1, reason="no", refusal="rejected"))
    raw = cbor2.loads(good)
    assert "rejected" in raw
    raw[raw.index("rejected")] = bad
    with pytest.raises(RemoteProtocolError):
        wire.decode(cbor2.dumps(raw))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(FRAMES),
    st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(0, 255), st.sampled_from(["set", "del", "ins"])),
        min_size=1,
        max_size=6,
    ),
)
def test_mutated_frames(frame: bytes, edits: list[tuple[int, int, str]]) -> None:
    data = bytearray(frame)
    for pos, byte, how in edits:
        i = pos % (len(data) + 1)
        if how == "ins" or i == len(data):
            data.insert(i, byte)
        elif how == "set":
            data[i] = byte
        else:
            del data[i]
    hostile(bytes(data))


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(sorted(wire._BY_TAG)),
    st.lists(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5) | st.binary(max_size=5),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
            max_leaves=8,
        ),
        max_size=12,
    ),
)
def test_wrong_field_values(tag: int, fields: list[Any]) -> None:
    hostile(cbor2.dumps([tag, *fields]))


def propose(payload: Any, *, kind: Any = "t", rid: Any = "counter:c", **override: Any) -> list[Any]:
    """A raw Propose frame (before CBOR) with ``payload`` as its action's payload."""
    values = {
        "term": 1,
        "rid": rid,
        "seq": 1,
        "base": 0,
        "action": [kind, payload],
        "private": None,
        "nonce": b"",
        "sealed": b"",
        "incarnation": b"",
        "draw": False,
        **override,
    }
    return [33, *(values[f.name] for f in dataclasses.fields(rm.Propose))]


def _expect_error(data: bytes, *, limit: int = wire.DECODE_LIMIT) -> str:
    with pytest.raises(RemoteProtocolError) as info:
        wire.decode(data, limit=limit)
    return str(info.value)


def test_oversized_frame() -> None:
    frame = wire.encode_many(SAMPLES)
    assert wire.decode(frame, limit=len(frame)) == SAMPLES
    assert "exceeds" in _expect_error(frame, limit=len(frame) - 1)
    assert wire.DECODE_LIMIT > 64 * 2**20  # a resource of the default maximum size (64 MiB) fits in one frame


def test_deep_nesting() -> None:
    deep: Any = 1
    for _ in range(200):
        deep = [deep]
    _expect_error(cbor2.dumps(propose(deep)))
    _expect_error(b"\x81" * 10_000 + b"\x01")  # arrays nested 10k deep, raw
    deep_map: Any = 1
    for _ in range(wire.MAX_DEPTH + 2):
        deep_map = {"k": deep_map}
    _expect_error(cbor2.dumps(propose(deep_map)))


def test_wrong_field_types() -> None:
    good = propose(None)
    assert wire.decode(cbor2.dumps(good))
    names = [f.name for f in dataclasses.fields(rm.Propose)]
    bad_values = {"term": "1", "rid": 5, "seq": 1.0, "base": True, "action": "t", "private": 3}
    for name, bad in bad_values.items():
        frame = list(good)
        frame[1 + names.index(name)] = bad
        _expect_error(cbor2.dumps(frame))
    frame = list(good)
    frame[1 + names.index("action")] = [1, None]
    _expect_error(cbor2.dumps(frame))
    _expect_error(cbor2.dumps(good[:-1]))  # a missing field
    _expect_error(cbor2.dumps([*good, 1]))  # an extra field
    _expect_error(cbor2.dumps(propose(None, kind="")))  # empty action type
    _expect_error(cbor2.dumps(propose({1: 2})))  # non-str key


def test_not_frames() -> None:
    for data in (
        b"",
        b"\xff",
        cbor2.dumps(1),
        cbor2.dumps([]),
        cbor2.dumps({"a": 1}),
        cbor2.dumps(["33"]),
        cbor2.dumps([0, [[33]]]),
        cbor2.dumps([0, [1]]),
    ):
        _expect_error(data)
    with pytest.raises(RemoteProtocolError):
        wire.decode("text")  # type: ignore[arg-type]


def test_unknown_tags() -> None:
    assert "unknown message tag" in _expect_error(cbor2.dumps([999, 1]))
    assert "tag" in _expect_error(cbor2.dumps([33, cbor2.CBORTag(1234, 1)]))
    _expect_error(cbor2.dumps(propose(cbor2.CBORTag(1, 0))))  # datetime tag refused


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats(value: float) -> None:
    _expect_error(cbor2.dumps(propose({"x": value})))
    applied = wire.encode(sample(rm.Applied))
    raw = cbor2.loads(applied, tag_hook=lambda _d, t: t)
    raw[-1] = value  # Applied.now
    _expect_error(cbor2.dumps(raw))


@pytest.mark.parametrize(
    "args",
    [
        ["now", [1]],
        ["random_int", [1]],
        ["random_int", [6, 1]],
        ["random_int", [1.0, 2]],
        ["bogus", []],
        ["now"],
        "now",
        [["now"], []],
        ["random_int", [True, 2]],
        ["uuid", "x"],
        ["fair_int", [6, 1]],
        ["fair_choice", []],
        ["fair_choice", [cbor2.CBORTag(40411, ["now", []])]],
    ],
)
def test_master_value_with_bad_args(args: Any) -> None:
    payload = cbor2.CBORTag(40411, args)
    _expect_error(cbor2.dumps(propose(payload, kind="roll", rid="dice:c")))


def test_duplicate_map_keys_refused() -> None:
    frame = cbor2.dumps(propose("MARK"))
    dup = b"\xa2\x61a\x01\x61a\x02"  # {"a": 1, "a": 2} written by hand
    assert frame.count(b"\x64MARK") == 1
    _expect_error(frame.replace(b"\x64MARK", dup))
    assert wire.decode(frame.replace(b"\x64MARK", b"\xa2\x61a\x01\x61b\x02"))


def test_encode_refuses_unregistered() -> None:
    with pytest.raises(TypeError):
        wire.encode(mx.Action("x"))  # type: ignore[arg-type]


def test_one_depth_limit_everywhere() -> None:
    """A payload inside MAX_DEPTH nested containers is accepted by freeze, check_data and the codec; one more is not."""

    def nested(levels: int) -> Any:
        value: Any = 1
        for i in range(levels):
            value = [value] if i % 2 else {"k": value}
        return value

    deepest, too_deep = nested(wire.MAX_DEPTH), nested(wire.MAX_DEPTH + 1)
    freeze(deepest)
    state_check_data(deepest)
    message = rm.Propose(term=Term(1), rid=Rid("counter:c"), seq=1, base=0, action=mx.Action("t", deepest))
    pulled = rm.Pulled(
        term=Term(1),
        snapshot=rm.Snapshot(
            term=Term(1),
            index=1,
            rid=Rid("counter:c"),
            entry_term=Term(1),
            version=1,
            state=deepest,
            checksum=b"",
            subscribers={},
            held=(),
            applied={},
        ),
    )
    assert wire.decode(wire.encode_many([message, pulled])) == [message, pulled]  # in a batch: the deepest envelope
    with pytest.raises(InvalidState):
        freeze(too_deep)
    with pytest.raises(InvalidState):
        state_check_data(too_deep)
    _expect_error(wire.encode(replace(message, action=mx.Action("t", too_deep))))


def test_a_state_wrapped_one_level_deeper_per_action_stops_at_the_depth_limit() -> None:
    """A reducer returning ``{"inner": state}`` keeps the last (frozen) state whole: freeze still walks it."""
    state: Any = freeze({"n": 0})
    for _ in range(wire.MAX_DEPTH - 1):  # MAX_DEPTH containers: accepted
        state = freeze({"inner": state})
    with pytest.raises(InvalidState):
        freeze({"inner": state})
