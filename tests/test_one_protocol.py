"""Issue 17, one protocol: the resource cores sign, and CoreCluster runs NodeCore's signed history and verification."""

from __future__ import annotations

import dataclasses

import pytest

import movex_p2p as mx
from movex_p2p import wire
from movex_p2p.ids import Rid
from movex_p2p.proofs import prove
from movex_p2p.resource import effects as fx
from movex_p2p.resource import messages as rm
from movex_p2p.resource.client import ClientCore
from movex_p2p.resource.history import seal
from movex_p2p.signing import FakeSigner
from movex_p2p.testing.cores import CoreCluster
from tests.resources import ALL_TYPES, Counter

C = "counter:c"


def test_a_client_signs_as_itself_only() -> None:
    me, other = FakeSigner.from_seed(1), FakeSigner.from_seed(2)
    with pytest.raises(ValueError, match="own id"):
        ClientCore(me.id, types={"counter": Counter}, signer=other)


def test_a_proposal_leaves_behind_its_authors_endorse_and_every_other_peer_gets_the_endorsed_first() -> None:
    c = CoreCluster(3, types=ALL_TYPES)
    c.setup(C)
    m, p1, p2 = c.ids
    c.dispatch(p1, C, mx.Action("increment"))
    assert [type(x) for x in wire.decode(c.links[(p1, m)][0])] == [rm.Endorse, rm.Propose]
    start = len(c.delivered)
    c.run()
    got = {dst: [type(x) for src, d, x in c.delivered[start:] if (src, d) == (m, dst)] for dst in c.ids}
    for peer in (p1, p2):
        assert rm.Endorsed in got[peer]
        assert got[peer].index(rm.Endorsed) < got[peer].index(rm.Applied)
    assert rm.Endorsed not in got[m]  # the master's own replica: it checked the Endorse itself
    assert c.view(p2, C) == {"count": 1}
    assert c.dropped == []


def test_a_proposal_its_author_never_signed_is_dropped_by_the_master() -> None:
    c = CoreCluster(3, types=ALL_TYPES)
    c.setup(C)
    m, p1, _ = c.ids
    c.dispatch(p1, C, mx.Action("increment"))
    (endorse, propose) = wire.decode(c.links[(p1, m)].popleft())
    assert type(endorse) is rm.Endorse
    assert type(propose) is rm.Propose
    c.links[(p1, m)].append(wire.encode(propose))  # modified code: the proposal alone
    c.run()
    assert c.dropped == [(p1, m, f"Propose: {C} seq {propose.seq}: an action its author did not sign")]
    assert c.view(m, C) == {"count": 0}


def test_an_endorsement_its_author_never_signed_is_dropped_by_the_verify_stage() -> None:
    c = CoreCluster(3, types=ALL_TYPES)
    c.setup(C)
    m, p1, p2 = c.ids
    c.dispatch(p1, C, mx.Action("increment"))
    c.run()
    endorsed = c.sent(rm.Endorsed, lambda e: e.author == p1)[0]
    forged = dataclasses.replace(endorsed, proof=prove(c.signers[m], "endorse", b"".join(endorsed.digests)))
    c.links[(m, p2)].append(wire.encode(forged))  # the master signs for p1
    c.run()
    assert c.dropped == [(m, p2, f"Endorsed: an endorsement not signed by its author {p1}")]


def test_a_seal_that_contradicts_the_masters_earlier_one_is_a_forgery() -> None:
    c = CoreCluster(3, types=ALL_TYPES)
    c.setup(C)
    m, _, p2 = c.ids
    last = [x for src, dst, x in c.delivered if (src, dst) == (m, p2) and type(x) is rm.Sealed][-1]
    other = seal(c.signers[m], last.term, last.index, (), began=last.began, prev=last.prev, chain=last.chain)
    assert other != last
    c.links[(m, p2)].append(wire.encode(other))  # validly signed: only the seal book sees the fork
    c.run()
    assert c.dropped == []
    assert [f.peer for f in c.of_type(fx.Forged, p2)] == [m]
    assert c.clients[p2].has(Rid(C))
