"""A peer with the room secret but bad intentions (or bugs) cannot crash or corrupt a master."""

from __future__ import annotations

import random
from typing import Any

import pytest

import movex_p2p as mx
from movex_p2p import wire
from movex_p2p.election.machine import ElectionConfig
from movex_p2p.identity import Identity
from movex_p2p.ids import Rid, Term
from movex_p2p.nodecore import NodeCore, Ready
from movex_p2p.proofs import prove
from movex_p2p.resource import messages as rm
from movex_p2p.resource.history import action_digest
from movex_p2p.resource.state import freeze
from movex_p2p.signing import ED25519
from movex_p2p.transport.base import Frame, PeerUp
from tests.resources import Counter

KEY, EVIL_KEY = Identity(b"1" * 32), Identity(b"9" * 32)  # a hostile test: real Ed25519
ME, EVIL = KEY.id, EVIL_KEY.id


def from_evil(core: NodeCore, *messages: wire.Message, now: float = 1.0) -> Ready:
    """Deliver ``messages`` from the evil peer as one frame; the step must not hit a bug of ours."""
    ready = core.receive([Frame(peer=EVIL, data=wire.encode_many(list(messages)))], now, now)
    assert ready.faults == []
    return ready


def _master() -> tuple[NodeCore, Rid]:
    core = NodeCore(
        ME, types={"counter": Counter}, election=ElectionConfig(), rng=random.Random(1), signer=KEY, verifier=ED25519
    )
    core.start(0.0, 0.0)
    core.receive([PeerUp(peer=EVIL)], 0.0, 0.0)
    now = 0.0
    while core.master is None or core.master.recovering:  # elect ourselves, then let recovery end
        now += 0.05
        assert core.tick(now, now).faults == []
        assert now < 5, "no master"
    rid = Counter.rid("c")
    core.create(rid, None, now, now)
    assert core.client.has(rid)
    return core, rid


def _forged_snapshot(term: int, rid: Rid) -> rm.Snapshot:
    return rm.Snapshot(
        term=Term(term),
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


def test_an_unsolicited_snapshot_is_never_adopted() -> None:
    core, rid = _master()
    assert core.master is not None
    term = core.master.term
    forged = _forged_snapshot(term, rid)
    from_evil(core, forged)  # a master-to-client message from a peer that is not the master: fenced
    from_evil(core, rm.Pulled(term=term, snapshot=forged))  # an answer to a Pull never sent
    res = core.master.resource(rid)
    assert res is not None
    assert res.state == {"count": 0}
    assert core.client.replicas[rid].state == {"count": 0}


def test_a_reducer_that_raises_rejects_only_that_action() -> None:
    core, rid = _master()
    assert core.master is not None
    term = core.master.term
    boom = mx.Action("boom")
    born = core.client.replicas[rid].incarnation
    digest = action_digest(EVIL, rid, 1, boom, b"", room="", term=term, incarnation=born)
    endorse = rm.Endorse(term=term, digests=(digest,), proof=prove(EVIL_KEY, "endorse", digest))
    ready = from_evil(core, endorse, rm.Propose(term=term, rid=rid, seq=1, base=0, action=boom, incarnation=born))
    rejected = [m for m in wire.decode(ready.frames[EVIL]) if isinstance(m, rm.Rejected)]
    assert [r.reason for r in rejected] == ["ValueError: boom"]
    assert core.client.replicas[rid].state == {"count": 0}


def test_a_malformed_frame_is_dropped_as_the_senders_fault() -> None:
    core, _ = _master()
    ready = core.receive([Frame(peer=EVIL, data=b"\xff\x00garbage")], 1.0, 1.0)
    assert ready.faults == []
    assert [d.sender for d in ready.dropped] == [EVIL]
    assert "malformed frame" in ready.dropped[0].reason


@pytest.mark.parametrize(
    "message",
    [
        rm.Report(term=Term(0), req=1, have={"no colon": rm.Position(term=Term(1), version=5, checksum=b"")}),
        rm.Report(term=Term(0), req=1, have={"ghost:1": rm.Position(term=Term(99), version=5, checksum=b"")}),
        rm.Restore(term=Term(0), rid=Rid("counter:nope"), seq=3, private=mx.Action("x")),
        rm.Unbind(term=Term(0), rid=Rid("::")),
        rm.SyncRequest(term=Term(0), rid=Rid("counter:missing")),
        rm.Ack(term=Term(0), index=10**12),
        rm.Committed(term=Term(0), index=10**12),
        rm.Pull(term=Term(0), rid=Rid("counter:c")),
        rm.Create(term=Term(0), req=7, rid=Rid("nope"), state=None),
        rm.Bind(term=Term(0), req=8, rid=Rid("counter:missing"), info={}),
    ],
)
def test_odd_messages_leave_the_master_serving(message: Any) -> None:
    core, rid = _master()
    assert core.master is not None
    message = type(message)(
        **{**{f: getattr(message, f) for f in message.__dataclass_fields__}, "term": core.master.term}
    )
    from_evil(core, message)
    core.dispatch(rid, mx.Action("increment"), None, 1.0, 1.0)
    assert core.client.replicas[rid].state == freeze({"count": 1})
    assert core.master is not None
