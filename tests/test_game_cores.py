"""Issue 10 in the pure cores: spectators in the election, removal with tombstones, a restarted
author, opaque replicas and stalls. Hand-fed events, virtual time, no sockets, no sleeps."""

from __future__ import annotations

import random
from typing import Any

import pytest

import movex_p2p as mx
from movex_p2p import wire
from movex_p2p.election import messages as em
from movex_p2p.election.machine import (
    ElectionConfig,
    ElectionMachine,
    LinksChanged,
    Policy,
    Received,
    Roles,
    Send,
    Tick,
)
from movex_p2p.election.sim import Cluster
from movex_p2p.ids import PeerId, Rid, Term
from movex_p2p.nodecore import MAX_EARLY_INTROS, NodeCore, PeerJoined, PeerLeft, TypeConflict
from movex_p2p.presence import Introduce
from movex_p2p.resource import effects as fx
from movex_p2p.resource import messages as rm
from movex_p2p.resource.client import OPAQUE_REFRESH, RESEND_AFTER, ClientCore, is_opaque
from movex_p2p.resource.replica import Replica
from movex_p2p.signing import FAKE, FakeSigner
from movex_p2p.testing.cores import CoreCluster
from movex_p2p.transport.base import Frame, PeerDown, PeerUp
from tests.keys import fake_signers, term_of
from tests.resources import ALL_TYPES, Counter, Rps, submit

POLICIES = [
    pytest.param(ElectionConfig(policy=Policy.MAJORITY), id="majority"),
    pytest.param(ElectionConfig(policy=Policy.AVAILABLE), id="available"),
]


def with_spectators(size: int, spectators: set[int], config: ElectionConfig, seed: int = 1) -> Cluster:
    """A cluster where the peers of index ``spectators`` run spectator machines and every other peer knows them."""
    c = Cluster(size, config=config, rng=random.Random(seed))
    for i in spectators:
        peer = c.ids[i]
        c.machines[peer] = ElectionMachine(
            peer, config=config, rng=random.Random(seed), signer=c.signers[peer], verifier=c.verifier, spectator=True
        )
        c.machines[peer].start(c.now)
    for peer in c.machines:
        c.step(peer, Roles(spectators=frozenset(c.ids[i] for i in spectators)))
    return c


@pytest.mark.parametrize("config", POLICIES)
def test_one_player_among_spectators_is_elected_and_a_spectator_never_is(config: ElectionConfig) -> None:
    c = with_spectators(3, {0, 1}, config)
    p0, p1, p2 = c.ids
    assert c.run_until(3.0, until=lambda c: c.masters() == [p2])
    c.run(3.0)
    assert c.masters() == [p2]
    assert all(e.peer == p2 for e in c.elected)
    assert c.known_masters() == dict.fromkeys([p0, p1, p2], p2)
    c.kill(p2)
    c.run(5.0)
    assert c.masters() == []  # the spectators wait for a player


def test_spectators_count_in_no_quorum() -> None:
    # two players and three spectators: under MAJORITY, the players' majority is what counts
    c = with_spectators(5, {2, 3, 4}, ElectionConfig(policy=Policy.MAJORITY))
    assert c.run_until(3.0, until=lambda c: len(c.masters()) == 1)
    master = c.masters()[0]
    assert master in {c.ids[0], c.ids[1]}
    other = ({c.ids[0], c.ids[1]} - {master}).pop()
    c.kill(str(master))
    c.run(5.0)
    assert c.masters() == []  # 1 of 2 players is no majority, however many spectators remain
    assert all(e.peer != other for e in c.elected if e.at > 3.0)


def test_a_spectator_grants_no_vote_and_a_granted_one_is_not_counted() -> None:
    a, b, s = fake_signers(3)
    spectator = ElectionMachine(
        s.id, config=ElectionConfig(), rng=random.Random(0), signer=s, verifier=FAKE, spectator=True
    )
    spectator.start(0.0)
    request = em.VoteRequest(term=term_of(5, a.id), last_term=0, last_index=0, handover=False)
    out = spectator.step(Received(sender=a.id, message=request), 0.0)
    assert [e.message for e in out if isinstance(e, Send)] == [em.VoteReply(term=Term(0), granted=False)]
    # a candidate hears a (forged) granted vote from a known spectator: it does not count
    config = ElectionConfig(policy=Policy.MAJORITY)
    candidate = ElectionMachine(a.id, config=config, rng=random.Random(0), signer=a, verifier=FAKE)
    candidate.start(0.0)
    candidate.step(LinksChanged(peers=frozenset({b.id, s.id})), 0.0)
    candidate.step(Roles(spectators=frozenset({s.id})), 0.0)
    now = 0.0
    while candidate.role.name == "FOLLOWER" and now < 2.0:  # pre-vote needs b (2 players); b is silent
        now += 0.05
        for effect in candidate.step(Tick(), now):
            message = getattr(effect, "message", None)
            if isinstance(message, em.PreVoteRequest):
                reply = em.PreVoteReply(term=message.term, granted=True)
                candidate.step(Received(sender=s.id, message=reply), now)
    assert candidate.role.name == "FOLLOWER"  # the spectator's pre-vote did not make a majority


def test_a_master_hands_over_to_a_player_never_to_a_spectator() -> None:
    c = with_spectators(3, {0}, ElectionConfig())
    assert c.run_until(3.0, until=lambda c: len(c.masters()) == 1)
    master = c.masters()[0]
    c.handover(str(master))
    c.leave(str(master))
    expected = ({c.ids[1], c.ids[2]} - {master}).pop()
    assert c.run_until(c.now + 2.0, until=lambda c: c.masters() == [expected])


# -- resource cores --------------------------------------------------------------------------------


def test_a_removed_resource_is_gone_everywhere_and_a_late_report_cannot_bring_it_back() -> None:
    c = CoreCluster(3, types=ALL_TYPES)
    c.setup("counter:c")
    c.dispatch(c.ids[1], "counter:c", mx.Action("increment"))
    c.run()
    stale = c.clients[c.ids[2]].replicas[Rid("counter:c")].position()  # what a partitioned peer still holds
    req, effects = c.clients[c.ids[1]].remove(Rid("counter:c"))
    c.route(c.ids[1], effects)
    c.run()
    assert [e.error for e in c.of_type(fx.RequestSettled, c.ids[1]) if e.req == req] == [None]
    assert all(not client.has(Rid("counter:c")) for client in c.clients.values())
    assert len(c.of_type(fx.ResourceRemoved)) == 3
    assert c.master.resource(Rid("counter:c")) is None
    # a peer that missed the removal reports the old replica: it is told again, not pulled
    report = rm.Report(term=c.term, req=99, have={"counter:c": stale})
    out = c.master.step(c.ids[2], report, c.now)
    sent = [e.message for e in out if isinstance(e, fx.Send)]
    assert any(isinstance(m, rm.Removed) and m.rid == "counter:c" for m in sent)
    assert not any(isinstance(m, rm.Pull) for m in sent)
    # a new master built from a replica set that knows the removal keeps refusing it
    c.elect(c.ids[1], 2)
    assert c.master.resource(Rid("counter:c")) is None
    req, effects = c.clients[c.ids[0]].remove(Rid("counter:c"))
    c.route(c.ids[0], effects)
    c.run()
    assert [e.refusal for e in c.of_type(fx.RequestSettled, c.ids[0]) if e.req == req] == ["not_found"]


def test_pending_actions_on_a_removed_resource_settle_as_not_found() -> None:
    c = CoreCluster(2, types=ALL_TYPES)
    c.setup("counter:c")
    seq = c.dispatch(c.ids[1], "counter:c", mx.Action("increment"))  # on its way when the removal lands
    _, effects = c.clients[c.ids[0]].remove(Rid("counter:c"))
    c.route(c.ids[0], effects)
    c.run()
    settled = c.settled(c.ids[1], seq)  # exactly once
    assert settled.refusal == "not_found"
    assert settled.error is not None


def test_a_restarted_author_continues_its_seqs_and_gets_its_held_secrets_back() -> None:
    c = CoreCluster(3, types={"rps": Rps, "counter": Counter})
    c.setup("rps:g")
    bob = c.ids[1]
    c.dispatch(bob, "rps:g", mx.Action("addPlayer", {"id": str(bob), "playerLabel": "playerB"}))
    c.dispatch(bob, "rps:g", *reversed(submit("playerB", "rock")))
    c.run()
    assert c.view(bob, "rps:g")["submissions"]["playerB"] == {"play": "rock"}
    # bob's process dies; a new one with the same id (the same identity) joins and reports nothing
    c.clients[bob] = fresh = ClientCore(bob, types=c.types, room=c.room, signer=c.signers[bob])
    c.route(bob, fresh.master_changed(c.master_id, c.term))
    c.run()
    assert fresh.view(Rid("rps:g"))["submissions"]["playerB"] == {"play": "rock"}  # its hand is back
    assert c.view(c.ids[2], "rps:g")["submissions"]["playerB"] == {"play": "$SECRET"}
    seq = c.dispatch(bob, "rps:g", mx.Action("addPlayer", {"id": "x", "playerLabel": "playerA"}))
    assert seq == 3  # after the two its first process had applied
    c.run()
    assert c.settled(bob, seq).error is None
    assert c.view(c.ids[0], "rps:g")["players"]["playerA"] == "x"


def test_an_opaque_replica_takes_snapshots_at_a_bounded_rate() -> None:
    c = CoreCluster(2, types=ALL_TYPES)
    c.setup("counter:c")
    opaque = c.join(FakeSigner.from_seed(99), types={}, opaque=True)
    eye = opaque.me
    c.route(eye, opaque.master_changed(c.master_id, c.term))
    c.run()
    assert opaque.has(Rid("counter:c"))
    assert is_opaque(opaque.replicas[Rid("counter:c")].type)
    before = len(c.sent(rm.SyncRequest))
    for _ in range(10):
        c.dispatch(c.ids[1], "counter:c", mx.Action("increment"))
        c.run()
    assert len(c.sent(rm.SyncRequest)) - before == 1  # one snapshot asked for, then it waits
    assert opaque.deadline is not None
    assert opaque.deadline <= c.now + OPAQUE_REFRESH
    c.now += OPAQUE_REFRESH
    c.route(eye, opaque.resend_stalled(c.now))
    c.run()
    assert opaque.replicas[Rid("counter:c")].state == {"count": 10}
    assert opaque.replicas[Rid("counter:c")].checksum == c.clients[c.ids[0]].replicas[Rid("counter:c")].checksum
    assert c.of_type(fx.ResyncStarted, eye) == []
    with pytest.raises(mx.MovexError, match="no resource type"):
        opaque.dispatch(Rid("counter:c"), mx.Action("increment"))


def test_a_stall_is_reported_once_per_doubling() -> None:
    a = FakeSigner.from_seed(1)
    client = ClientCore(a.id, types={"counter": Counter}, signer=a)
    client.master_changed(PeerId("m"), Term(1))
    client.replicas[Rid("counter:c")] = Replica(rid=Rid("counter:c"), type=Counter, state={"count": 0})
    client.dispatch(Rid("counter:c"), mx.Action("increment"), now=0.0)
    stalls = []
    for step in range(1, 9):
        stalls += [e for e in client.resend_stalled(step * RESEND_AFTER) if isinstance(e, fx.Stalled)]
    assert [s.pending for s in stalls] == [1, 1, 1, 1]  # after 1, 2, 4 and 8 stalled rounds
    assert stalls[0].master == "m"


# -- introductions in the NodeCore -----------------------------------------------------------------


def node(**kwargs: Any) -> NodeCore:
    me = FakeSigner.from_seed(0)
    return NodeCore(
        me.id,
        types={"counter": Counter},
        election=ElectionConfig(),
        rng=random.Random(0),
        signer=me,
        verifier=FAKE,
        **kwargs,
    )


def intro(name: str, role: str = "player", **types: str) -> bytes:
    return wire.encode(Introduce(name=name, info={"seat": 1}, role=role, types=types))  # type: ignore[arg-type]


def test_members_come_from_introductions_and_a_restarted_peer_is_seen_leaving_and_back() -> None:
    core = node(name="me")
    core.start(0.0, 0.0)
    ready = core.receive([PeerUp(peer=PeerId("b"))], 0.0, 0.0)
    sent = [m for frame in ready.frames.values() for m in wire.decode(frame)]
    assert Introduce(name="me", info={}, role="player", types={"counter": Counter.version}) in sent
    ready = core.receive([Frame(peer=PeerId("b"), data=intro("bob", "spectator"))], 0.0, 0.0)
    assert [e for e in ready.events if isinstance(e, PeerJoined)] == [
        PeerJoined(info=mx.PeerInfo("b", "bob", {"seat": 1}, "spectator"))
    ]
    # b restarts: its new link's introduction overtakes the old link's PeerDown
    ready = core.receive([Frame(peer=PeerId("b"), data=intro("bob2"))], 0.0, 0.0)
    assert not [e for e in ready.events if isinstance(e, PeerJoined)]
    ready = core.receive([PeerDown(peer=PeerId("b"), graceful=False), PeerUp(peer=PeerId("b"))], 0.0, 0.0)
    left = [e for e in ready.events if isinstance(e, PeerLeft)]
    joined = [e for e in ready.events if isinstance(e, PeerJoined)]
    assert [(e.info.name, e.reason) for e in left] == [("bob", "lost")]
    assert [e.info.name for e in joined] == ["bob2"]
    assert core.members[PeerId("b")].role == "player"


def test_introductions_from_strangers_are_bounded_and_a_conflict_is_reported_once() -> None:
    core = node()
    core.start(0.0, 0.0)
    for i in range(1000):  # frames from peers with no link (a transport would not deliver them)
        core.receive([Frame(peer=PeerId(f"x{i}"), data=intro("x"))], 0.0, 0.0)
    assert len(core.roster.early) <= MAX_EARLY_INTROS
    core.receive([PeerUp(peer=PeerId("c"))], 0.0, 0.0)
    ready = core.receive([Frame(peer=PeerId("c"), data=intro("cy", counter="other"))], 0.0, 0.0)
    conflicts = [e for e in ready.events if isinstance(e, TypeConflict)]
    expected = TypeConflict(peer=PeerId("c"), name="cy", type="counter", ours=Counter.version, theirs="other")
    assert conflicts == [expected]
    with pytest.raises(mx.IncompatibleType, match="'other' on cy"):
        core.check_compatible("counter")
    bad = wire.encode(Introduce(name="x", info={}, role="player", types={}))[:-1] + b"\xff"
    ready = core.receive([Frame(peer=PeerId("c"), data=bad)], 0.0, 0.0)
    assert ready.dropped
    assert not ready.faults
