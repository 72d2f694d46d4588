"""A room member running modified code against the resource layer: it cannot forge, and bad states are contained.

Signed NodeCores (as every real peer runs) fed hand-made frames from the hostile peer; each test
names what release 0.1 did under the same attack.
"""

from __future__ import annotations

import random
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import movex_p2p as mx
from movex_p2p import wire
from movex_p2p.election import messages as em
from movex_p2p.election.machine import ElectionConfig, salt_of
from movex_p2p.identity import Identity
from movex_p2p.ids import Rid, Term
from movex_p2p.nodecore import NodeCore, Ready
from movex_p2p.proofs import prove
from movex_p2p.resource import messages as rm
from movex_p2p.resource.effects import Forged
from movex_p2p.resource.history import action_digest, head, seal_statement
from movex_p2p.resource.state import checksum, freeze
from movex_p2p.resource.windows import MAX_EARLY_TOTAL
from movex_p2p.signing import ED25519
from movex_p2p.transport.base import Frame, PeerUp
from tests.resources import Counter
from tests.test_node_scenarios import room
from tests.waits import settled

ME, EVIL, THIRD = Identity(b"1" * 32), Identity(b"9" * 32), Identity(b"3" * 32)


def node(identity: Identity = ME) -> NodeCore:
    return NodeCore(
        identity.id,
        types={"counter": Counter},
        election=ElectionConfig(),
        rng=random.Random(1),
        signer=identity,
        verifier=ED25519,
    )


def deliver(core: NodeCore, sender: Identity, *messages: wire.Message, now: float) -> Ready:
    ready = core.receive([Frame(peer=sender.id, data=wire.encode_many(list(messages)))], now, now)
    assert ready.faults == []
    return ready


def elect_alone(core: NodeCore, *linked: Identity) -> float:
    """``core`` links ``linked`` (which stay silent) and elects itself; returns the time."""
    core.start(0.0, 0.0)
    core.receive([PeerUp(peer=p.id) for p in linked], 0.0, 0.0)
    now = 0.0
    while core.master is None:
        now += 0.05
        assert core.tick(now, now).faults == []
        assert now < 5, "no master"
    return now


def forged_snapshot(rid: Rid, *, term: int, sealed_by: Identity | None = None) -> rm.Snapshot:
    state = freeze({"count": 10**9})
    applied: dict[str, int] = {ME.id: 10**9}  # honest peers' next actions would be dropped as duplicates
    held = (rm.Held(author=THIRD.id, seq=1, commitment=b"c" * 16),)  # a reveal that never comes
    seal = None
    if sealed_by is not None:
        heads = (head(rid, 50, checksum(state), applied, held),)
        seal = rm.Sealed(
            term=Term(term), index=99, heads=heads, proof=prove(sealed_by, *seal_statement(Term(term), 99, heads))
        )
    return rm.Snapshot(
        term=Term(term),
        index=99,
        rid=rid,
        entry_term=Term(term),
        version=50,
        state=state,
        checksum=checksum(state),
        subscribers={},
        held=held,
        applied=applied,
        seal=seal,
    )


@pytest.mark.parametrize("sealed", [False, True], ids=["unsealed", "sealed-by-itself"])
def test_a_report_of_a_newer_replica_never_makes_the_master_adopt_a_forged_one(sealed: bool) -> None:
    """0.1: a client's Hello claiming a newer replica, then the Snapshot it was asked for, made the
    master adopt a forged state, forged applied seqs and a made-up held private action."""
    core = node()
    now = elect_alone(core, EVIL)
    assert core.master is not None
    assert core.master.recovering
    rid = Counter.rid("c")
    term = core.master.term  # the master's own term: only the master itself may have sealed it
    forged = forged_snapshot(rid, term=term, sealed_by=EVIL if sealed else None)
    position = rm.Position(term=Term(term), version=50, checksum=forged.checksum)
    ready = deliver(core, EVIL, rm.Report(term=Term(term), req=1, have={rid: position}), now=now)
    assert any(isinstance(m, rm.Pull) for m in wire.decode(ready.frames[EVIL.id]))
    deliver(core, EVIL, rm.Pulled(term=Term(term), snapshot=forged), now=now)
    while core.master.recovering:
        now += 0.1
        core.tick(now, now)
    assert core.master.resource(rid) is None  # not adopted
    assert not core.client.has(rid)


def test_a_replica_is_pulled_only_while_recovering_and_only_as_reported() -> None:
    """0.1: a Report at any time made the master pull, and it took whatever replica came back."""
    core = node()
    now = elect_alone(core, EVIL)
    assert core.master is not None
    while core.master.recovering:
        now += 0.1
        core.tick(now, now)
    rid = Counter.rid("c")
    core.create(rid, None, now, now)
    term = core.master.term
    forged = forged_snapshot(rid, term=term)
    position = rm.Position(term=Term(term + 1), version=50, checksum=forged.checksum)
    ready = deliver(core, EVIL, rm.Report(term=Term(term), req=2, have={rid: position}), now=now)
    assert not any(isinstance(m, rm.Pull) for m in wire.decode(ready.frames.get(EVIL.id, wire.encode_many([]))))
    deliver(core, EVIL, rm.Pulled(term=Term(term), snapshot=forged), now=now)
    assert core.client.replicas[rid].state == {"count": 0}
    res = core.master.resource(rid)
    assert res is not None
    assert res.applied == {}
    assert res.held == []


def test_an_action_its_author_never_signed_is_refused_by_the_master() -> None:
    """0.1: the master applied any Propose (the author was the link's peer, but nothing was signed);
    now a proposal must come after its author's endorsement."""
    core = node()
    now = elect_alone(core, EVIL)
    assert core.master is not None
    while core.master.recovering:
        now += 0.1
        core.tick(now, now)
    rid = Counter.rid("c")
    core.create(rid, None, now, now)
    term = core.master.term
    born = core.client.replicas[rid].incarnation
    increment = mx.Action("increment")
    propose = rm.Propose(term=Term(term), rid=rid, seq=1, base=0, action=increment, incarnation=born)
    ready = deliver(core, EVIL, propose, now=now)
    assert [d.sender for d in ready.dropped] == [EVIL.id]
    assert "did not sign" in ready.dropped[0].reason
    digest = action_digest(EVIL.id, rid, 1, increment, room="", term=term, incarnation=born)
    stolen = rm.Endorse(term=Term(term), digests=(digest,), proof=prove(THIRD, "endorse", digest))
    ready = deliver(core, EVIL, stolen, propose, now=now)  # someone else's signature
    assert core.client.replicas[rid].state == {"count": 0}
    endorse = rm.Endorse(term=Term(term), digests=(digest,), proof=prove(EVIL, "endorse", digest))
    deliver(core, EVIL, endorse, propose, now=now)
    assert core.client.replicas[rid].state == {"count": 1}  # its own, signed: applied


@pytest.mark.parametrize("victim", [THIRD, ME], ids=["someone_else", "the_peer_itself"])
def test_a_master_that_authors_an_action_for_someone_else_is_caught(victim: Identity) -> None:
    """0.1: a master could publish any action under any author; clients believed it.

    Also in the peer's own name: it takes only what it endorsed (its own endorsements come back
    relayed by the master, like everyone's).
    """
    client = node()
    client.start(0.0, 0.0)
    client.receive([PeerUp(peer=EVIL.id)], 0.0, 0.0)
    term = Term((1 << 32) | salt_of(EVIL.id))
    vote_me = prove(ME, "vote", term, EVIL.id)
    vote_evil = prove(EVIL, "vote", term, EVIL.id)

    deliver(client, EVIL, em.Heartbeat(term=term, seq=1, successors=(), cert=(vote_me, vote_evil)), now=0.1)
    assert client.election.master == EVIL.id
    rid = Counter.rid("c")
    state = freeze({"count": 0})
    created = rm.Created(term=term, index=1, rid=rid, state=state, checksum=checksum(state))
    deliver(client, EVIL, created, rm.Replied(term=term, req=1, rid=Rid("")), now=0.2)
    assert client.client.has(rid)
    after = freeze({"count": 1})
    forged = rm.Applied(
        term=term,
        index=2,
        rid=rid,
        version=1,
        author=victim.id,
        seq=1,
        action=mx.Action("increment"),
        private=False,
        checksum=checksum(after),
        now=0.0,
    )
    ready = deliver(client, EVIL, forged, now=0.3)
    assert client.client.replicas[rid].state == {"count": 0}  # not applied
    forks = [e for e in ready.events if isinstance(e, Forged)]
    assert [f.peer for f in forks] == [EVIL.id]
    assert "never signed" in forks[0].reason
    assert client.election.master is None  # it does not follow a forger any more
    deliver(client, EVIL, em.Heartbeat(term=term, seq=2, successors=(), cert=(vote_me, vote_evil)), now=0.4)
    assert client.election.master is None


def test_a_master_that_tells_peers_different_histories_is_caught_by_their_witnesses() -> None:
    """0.1: a master could send each peer its own history; nobody compared."""
    client = node()
    client.start(0.0, 0.0)
    client.receive([PeerUp(peer=EVIL.id), PeerUp(peer=THIRD.id)], 0.0, 0.0)
    term = Term((1 << 32) | salt_of(EVIL.id))
    cert = tuple(prove(v, "vote", term, EVIL.id) for v in (ME, EVIL, THIRD))
    deliver(client, EVIL, em.Heartbeat(term=term, seq=1, successors=(), cert=cert), now=0.1)
    rid = Counter.rid("c")

    def sealed(count: int) -> rm.Sealed:
        state = freeze({"count": count})
        heads = (head(rid, 0, checksum(state), {}, ()),)
        return rm.Sealed(term=term, index=1, heads=heads, proof=prove(EVIL, *seal_statement(term, 1, heads)))

    deliver(client, EVIL, sealed(0), now=0.2)  # what the master told us
    ready = deliver(client, THIRD, rm.Witness(term=term, sealed=sealed(7)), now=0.3)  # what it told the third peer
    assert [e.peer for e in ready.events if isinstance(e, Forged)] == [EVIL.id]
    assert client.election.master is None
    fake = rm.Sealed(term=term, index=1, heads=sealed(9).heads, proof=prove(THIRD, *seal_statement(term, 1, ())))
    other = node(Identity(b"4" * 32))  # a made-up seal proves nothing against an honest master
    other.start(0.0, 0.0)
    other.receive([PeerUp(peer=EVIL.id), PeerUp(peer=THIRD.id)], 0.0, 0.0)
    deliver(other, EVIL, em.Heartbeat(term=term, seq=1, successors=(), cert=cert), now=0.1)
    deliver(other, EVIL, sealed(0), now=0.2)
    ready = deliver(other, THIRD, rm.Witness(term=term, sealed=fake), now=0.3)
    assert not [e for e in ready.events if isinstance(e, Forged)]
    assert other.election.master == EVIL.id


def test_a_stale_or_bogus_term_in_a_clients_message_never_deposes_the_master() -> None:
    """0.1: any resource message with a higher term (a Propose, an Ack...) made the master step down."""
    core = node()
    now = elect_alone(core, EVIL)
    assert core.master is not None
    term = core.master.term
    for bogus in (term + 1, term + (1 << 40), 2**62):
        deliver(
            core, EVIL, rm.Ack(term=Term(bogus), index=1), rm.SyncRequest(term=Term(bogus), rid=Rid("c:c")), now=now
        )
    assert core.master is not None
    assert core.election.term == term


def test_parked_proposals_are_bounded() -> None:
    """0.1: proposals parked behind a missing one were bounded per author and resource only."""
    core = node()
    now = elect_alone(core, EVIL)
    assert core.master is not None
    while core.master.recovering:
        now += 0.1
        core.tick(now, now)
    rids = [Counter.rid(f"c{i}") for i in range(8)]
    for rid in rids:
        core.create(rid, None, now, now)
    term = Term(core.master.term)
    for rid in rids:
        born = core.client.replicas[rid].incarnation
        proposals = [
            rm.Propose(term=term, rid=rid, seq=seq, base=0, action=mx.Action("increment"), incarnation=born)
            for seq in range(2, 4100)
        ]
        digests = tuple(
            action_digest(EVIL.id, rid, p.seq, p.action, room="", term=term, incarnation=born) for p in proposals
        )
        endorse = rm.Endorse(term=term, digests=digests, proof=prove(EVIL, "endorse", b"".join(digests)))
        core.receive([Frame(peer=EVIL.id, data=wire.encode_many([endorse, *proposals]))], now, now)
    assert core.master._windows.parked <= MAX_EARLY_TOTAL


def crumbly(state: Any, action: mx.Action) -> Any:
    return {**state, "count": state["count"] + 1}


def fragile(state: Any, ctx: mx.TransformContext) -> Any:
    if state["count"] >= 2:
        raise ZeroDivisionError("this view cannot show a count of 2")
    return state


Fragile = mx.ResourceType("fragile", crumbly, initial={"count": 0}, transform=fragile)


async def test_a_transform_that_raises_on_a_state_never_kills_a_peer() -> None:
    """0.1: a state that made the type's transform raise killed every honest peer (its pump died
    notifying on_update callbacks)."""
    async with room(2, types=[Fragile]) as peers:
        rid = await peers[0].create(Fragile, id="f")
        res = [await p.bind(rid) for p in peers]
        seen: list[Any] = []
        for r in res:
            r.on_update(seen.append)
        for _ in range(3):
            await res[0].dispatch(mx.Action("add"))
        await settled(lambda: all(r.version == 3 for r in res), *peers)
        with pytest.raises(mx.MovexError, match="transform raised"):
            _ = res[1].state  # the app sees its transform fail on this state, when it reads it
        await res[1].dispatch(mx.Action("add"))  # and both peers keep working
        await settled(lambda: all(r.version == 4 for r in res), *peers)
        assert len({r.checksum for r in res}) == 1
        await anyio.lowlevel.checkpoint()
