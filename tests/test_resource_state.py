"""Rids, frozen states and checksums (pure)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import movex_p2p as mx
from movex_p2p.errors import InvalidState, LocalProtocolError
from movex_p2p.ids import Rid
from movex_p2p.resource import effects as fx
from movex_p2p.resource import messages as rm
from movex_p2p.resource.state import FrozenDict, FrozenList, checksum, freeze, thaw
from movex_p2p.resource.types import make_rid, parse_rid
from movex_p2p.testing.cores import CoreCluster
from tests.resources import ALL_TYPES, Counter, Mutating


@pytest.mark.parametrize("bad", ["abc", ":x", "x:", ":", "", "a"])
def test_rid_parsing_is_strict(bad: str) -> None:
    with pytest.raises(LocalProtocolError):
        parse_rid(bad)


def test_rid_splits_at_the_first_colon() -> None:
    assert parse_rid("a:b:c") == ("a", "b:c")
    assert parse_rid("counter:1") == ("counter", "1")
    assert make_rid("counter", "x:y") == "counter:x:y"
    assert Counter.rid("c1") == "counter:c1"
    with pytest.raises(LocalProtocolError):
        make_rid("a:b", "c")
    with pytest.raises(LocalProtocolError):
        make_rid("a", "")
    with pytest.raises(LocalProtocolError):
        parse_rid(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        mx.ResourceType("a:b", lambda s, a: s)


def test_checksum_ignores_dict_insertion_order() -> None:
    a = {"x": 1, "y": {"p": [1, 2, {"q": None}], "r": "s"}}
    b = {"y": {"r": "s", "p": [1, 2, {"q": None}]}, "x": 1}
    assert checksum(freeze(a)) == checksum(freeze(b)) == checksum(a)


def test_checksum_distinguishes_values() -> None:
    base = checksum(freeze({"x": [1, 2]}))
    for other in ({"x": [2, 1]}, {"x": [1, 2, None]}, {"x": {"0": 1, "1": 2}}, {"y": [1, 2]}, {"x": ["1", 2]}):
        assert checksum(freeze(other)) != base, other
    # a nested container is not confused with the digest bytes standing for it
    inner = freeze({"a": 1})
    assert checksum(freeze({"x": inner})) != checksum(freeze({"x": [checksum(inner)]}))


def test_int_and_float_checksums_differ() -> None:
    # We keep CBOR's distinction: 1 and 1.0 are different states (Python == says equal, the
    # checksum does not). Reducers must be deterministic about int vs float, which they are
    # when every peer runs the same code on the same inputs.
    assert checksum(freeze({"n": 1})) != checksum(freeze({"n": 1.0}))
    assert checksum(1) != checksum(1.0)
    assert checksum(True) != checksum(1)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=4),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4),
        max_leaves=20,
    )
)
def test_checksum_is_a_function_of_the_value(value: Any) -> None:
    copied = copy.deepcopy(value)
    reordered = _reverse_dicts(value)
    assert checksum(freeze(value)) == checksum(freeze(copied)) == checksum(freeze(reordered))
    assert thaw(freeze(value)) == value


def _reverse_dicts(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reverse_dicts(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reverse_dicts(v) for v in value]
    return value


def test_frozen_states_refuse_mutation_and_copy_to_mutable() -> None:
    state = freeze({"a": [1, {"b": 2}]})
    assert isinstance(state, FrozenDict)
    assert isinstance(state["a"], FrozenList)
    with pytest.raises(InvalidState, match="immutable"):
        state["a"] = 1
    with pytest.raises(InvalidState):
        state["a"].append(3)
    with pytest.raises(InvalidState):
        state["a"][1]["b"] = 3
    mutable = copy.deepcopy(state)
    mutable["a"][1]["b"] = 3
    assert state["a"][1]["b"] == 2
    assert {**state, "c": 1} == {"a": [1, {"b": 2}], "c": 1}


@pytest.mark.parametrize("bad", [{"x": object()}, {1: 2}, {"x": float("nan")}, {"x": {1, 2}}])
def test_non_json_state_is_refused(bad: Any) -> None:
    with pytest.raises(InvalidState):
        freeze(bad)


def test_a_mutating_reducer_is_rejected_and_never_corrupts_confirmed_state() -> None:
    c = CoreCluster(2, types=ALL_TYPES)
    c.setup("mutating:m")
    before = {p: (c.clients[p].replicas[Rid("mutating:m")].state, c.checksums("mutating:m")) for p in c.ids}
    with pytest.raises(mx.ActionRejected, match="immutable"):  # at the dispatch: nothing is sent
        c.dispatch(c.ids[1], "mutating:m", mx.Action("increment"))
    assert c.pending_links() == []
    # a peer that skips that check (other code) meets the master's
    born = c.clients[c.ids[1]].replicas[Rid("mutating:m")].incarnation
    propose = rm.Propose(
        term=c.term, rid=Rid("mutating:m"), seq=1, base=0, action=mx.Action("increment"), incarnation=born
    )
    c.route(c.ids[1], [fx.Send(to=c.master_id, message=propose)])
    c.run()
    rejected = c.sent(rm.Rejected)
    assert len(rejected) == 1
    assert "immutable" in rejected[0].reason
    for p in c.ids:
        assert c.view(p, "mutating:m") == {"count": 0}
        assert c.clients[p].replicas[Rid("mutating:m")].state == before[p][0]
        assert c.checksums("mutating:m") == before[p][1]
    assert c.master.resource(Rid("mutating:m")) is not None
    assert Mutating.name == "mutating"
    assert c.of_type(fx.ResyncStarted) == []
