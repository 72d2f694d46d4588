"""A peer with the room secret but bad intentions (or bugs) cannot crash or corrupt a master."""

from __future__ import annotations

import random
from typing import Any

import pytest

import movex_p2p as mx
from movex_p2p.election.machine import ElectionConfig
from movex_p2p.ids import PeerId, Rid, Term
from movex_p2p.nodecore import NodeCore
from movex_p2p.resource import messages as rm
from movex_p2p.resource.state import freeze


def counter(state: Any, action: mx.Action) -> Any:
    match action:
        case mx.Action("increment"):
            return {**state, "count": state["count"] + 1}
        case mx.Action("explode"):
            raise RuntimeError("boom")
    return state


Counter = mx.ResourceType("counter", counter, initial={"count": 0})
ME, EVIL = PeerId("a-me"), PeerId("z-evil")


def _master() -> tuple[NodeCore, Rid]:
    core = NodeCore(ME, types={"counter": Counter}, election=ElectionConfig(), rng=random.Random(1))
    core.start(0.0, 0.0)
    core.links_changed(frozenset({EVIL}), 0.0, 0.0)
    now = 0.0
    while core.master is None or core.master.recovering:  # elect ourselves, then let recovery end
        now += 0.05
        core.tick(now, now)
        core.receive(EVIL, [], now, now)
        assert now < 5, "no master"
    rid = Counter.rid("c")
    _, effects = core.client.create(rid, None)
    core.resource_effects(effects)
    core.drain()
    assert core.client.has(rid)
    return core, rid


def test_an_unsolicited_snapshot_is_never_adopted() -> None:
    core, rid = _master()
    assert core.master is not None
    term = core.master.term
    forged = rm.Snapshot(
        term=term,
        index=999,
        rid=rid,
        entry_term=Term(term),
        version=10_000,
        state={"count": 10**9},
        checksum=b"x" * 16,
        subscribers={},
        held=(),
        applied={},
        eras=(),
    )
    core.receive(EVIL, [forged], 1.0, 1.0)
    res = core.master.resource(rid)
    assert res is not None
    assert res.state == {"count": 0}
    assert core.client.replicas[rid].state == {"count": 0}


def test_a_reducer_that_raises_rejects_only_that_action() -> None:
    core, rid = _master()
    assert core.master is not None
    term = core.master.term
    propose = rm.Propose(term=term, rid=rid, seq=1, base=0, action=mx.Action("explode"))
    core.receive(EVIL, [propose], 1.0, 1.0)
    rejected = [m for m in core.take_outbox().get(EVIL, []) if isinstance(m, rm.Rejected)]
    assert [r.reason for r in rejected] == ["RuntimeError: boom"]
    assert core.client.replicas[rid].state == {"count": 0}


@pytest.mark.parametrize(
    "message",
    [
        rm.Hello(term=Term(0), req=1, have={"no colon": rm.Position(term=Term(1), version=5, checksum=b"")}),
        rm.Hello(term=Term(0), req=1, have={"ghost:1": rm.Position(term=Term(99), version=5, checksum=b"")}),
        rm.Restore(term=Term(0), rid=Rid("counter:nope"), seq=3, private=mx.Action("x")),
        rm.Unbind(term=Term(0), rid=Rid("::")),
        rm.SyncRequest(term=Term(0), rid=Rid("counter:missing")),
        rm.Ack(term=Term(0), index=10**12),
        rm.Committed(term=Term(0), index=10**12),
    ],
)
def test_odd_messages_leave_the_master_serving(message: Any) -> None:
    core, rid = _master()
    assert core.master is not None
    message = type(message)(
        **{**{f: getattr(message, f) for f in message.__dataclass_fields__}, "term": core.master.term}
    )
    core.receive(EVIL, [message], 1.0, 1.0)
    _, effects = core.client.dispatch(rid, mx.Action("increment"))
    core.resource_effects(effects)
    core.drain()
    assert core.client.replicas[rid].state == freeze({"count": 1})
    assert core.master is not None
