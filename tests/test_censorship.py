"""Proof of censorship: a master dropping one author's proposals is reported and voted out; a liar frames nobody.

Whole rooms in virtual time (:class:`~movex_p2p.simulation.Simulation`); the dishonest master is
the same NodeCore with its routing modified, as a modified build would run it, and the dishonest
author sends hand-made frames.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import anyio
import pytest

import movex_p2p as mx
from movex_p2p import wire
from movex_p2p.censorship import GRACE, Censored, CensorWatch, Unconfirmed, author_of, grievance
from movex_p2p.ids import PeerId, Rid, Term
from movex_p2p.nodecore import Ready
from movex_p2p.resource import effects as fx
from movex_p2p.resource import messages as rm
from movex_p2p.resource.master import MasterCore
from movex_p2p.resource.pending import STUCK_AFTER
from movex_p2p.routes import Lane
from movex_p2p.signing import FAKE, FakeSigner
from movex_p2p.simulation import Simulation
from tests.resources import Counter
from tests.waits import settled

ROOM = "simulation"  # the room every Simulation peer signs for


def bag(state: Any, action: mx.Action) -> Any:
    """Counts what is put in; a private half is a secret note its author keeps (sealed)."""
    if action.type == "boom":
        raise ValueError("boom")
    return {**state, "count": state["count"] + (action.payload if type(action.payload) is int else 1)}


SealedBag = mx.ResourceType("bag", bag, initial={"count": 0}, private="sealed", can_reveal=lambda state: False)


def _room(
    size: int = 4, seed: int = 5, type_: mx.ResourceType = Counter
) -> tuple[Simulation, PeerId, list[tuple[PeerId, Censored]], Rid]:
    """A room with one master and a resource of ``type_``; a log of the Censored each peer reports."""
    sim = Simulation(size, types=[type_], seed=seed)
    assert sim.run(3.0, until=lambda s: len(s.masters()) == 1)
    master = sim.masters()[0]
    rid = sim.create(master, type_.name, "c")
    assert sim.run(1.0, until=lambda s: all(s.peers[p].core.client.has(rid) for p in s.ids))
    seen: list[tuple[PeerId, Censored]] = []
    execute = sim._execute

    def spy(pid: PeerId, ready: Ready) -> None:
        seen.extend((pid, e) for e in ready.events if isinstance(e, Censored))
        execute(pid, ready)

    sim._execute = spy  # type: ignore[method-assign]
    return sim, master, seen, rid


def _busy(sim: Simulation, pid: PeerId, rid: Rid, until: float, every: float = 0.5) -> None:
    """``pid`` dispatches an increment every ``every`` seconds until ``until``: the master has others' work."""

    def tick(s: Simulation) -> None:
        if s.peers[pid].alive and s.peers[pid].core.election.master is not None:
            s.dispatch(pid, rid, mx.Action("increment"))
        if s.now + every < until:
            s.at(s.now + every, "call", tick, ())

    sim.at(sim.now + every, "call", tick, ())


def _censor(sim: Simulation, master: PeerId, victim: PeerId) -> None:
    """Modify ``master``'s code: whatever concerns ``victim``'s proposals never reaches its MasterCore."""
    core = sim.peers[master].core
    route: Callable[[PeerId, wire.Message], None] = core._route

    def censoring(sender: PeerId, message: wire.Message) -> None:
        if sender == victim and type(message) in (rm.Propose, rm.Endorse):
            return
        if type(message) is Unconfirmed and message.author == victim:
            return
        route(sender, message)

    core._route = censoring  # type: ignore[method-assign]


@pytest.mark.parametrize("sealed", [False, True], ids=["public", "sealed-pair"])
def test_a_master_that_drops_one_authors_proposals_is_reported_by_every_honest_peer_and_voted_out(
    sealed: bool,
) -> None:
    sim, master, seen, rid = _room(type_=SealedBag if sealed else Counter)
    victim, busy = [p for p in sim.ids if p != master][:2]
    _censor(sim, master, victim)
    _busy(sim, busy, rid, until=sim.now + 40)
    private = mx.Action("note", "only mine") if sealed else None
    seq = sim.dispatch(victim, rid, mx.Action("incrementBy", 100), private)
    honest = set(sim.ids) - {master}

    assert sim.run(4 * STUCK_AFTER + GRACE, until=lambda s: {pid for pid, _ in seen} == honest)
    assert {(c.master, c.author, c.rid, c.seq) for _, c in seen} == {(master, victim, rid, seq)}
    assert all(c.seconds >= GRACE for _, c in seen)
    assert sim.run(10.0, until=lambda s: (rid, seq) in s.peers[victim].confirmed)  # the new master confirms it
    new = sim.peers[victim].core.election.master
    assert new is not None
    assert new != master
    assert sim.run(5.0, until=lambda s: all(s.state(p, rid)["count"] >= 100 for p in honest))


def test_an_honest_master_applies_what_a_peer_hands_it_so_a_lying_author_frames_nobody() -> None:
    """The author gossips a proposal it never sent to the master: each peer hands it to the master, which applies it."""
    sim, master, seen, rid = _room()
    liar = next(p for p in sim.ids if p != master)
    busy = next(p for p in sim.ids if p not in (master, liar))
    _busy(sim, busy, rid, until=sim.now + 20)
    core = sim.peers[liar].core
    term = core.client.term
    born = core.client.replicas[rid].incarnation
    never_sent = rm.Propose(term=term, rid=rid, seq=1, base=0, action=mx.Action("incrementBy", 1000), incarnation=born)
    frame = wire.encode(grievance(core.signer, ROOM, never_sent, master))
    for peer in sim.ids:
        if peer not in (liar, master):
            sim._transmit(liar, peer, frame, Lane.RELIABLE)  # to the others, never to the master
    assert sim.run(20.0)
    assert seen == []
    assert sim.masters() == [master]
    assert all(sim.peers[p].core.election.master == master for p in sim.ids)
    assert sim.state(master, rid)["count"] >= 1000  # applied as its author signed it


def test_an_action_the_master_refuses_is_no_evidence() -> None:
    """A signed proposal the reducer refuses: the master declines it to each forwarder, nobody reports it."""
    sim, master, seen, rid = _room()
    liar = next(p for p in sim.ids if p != master)
    busy = next(p for p in sim.ids if p not in (master, liar))
    _busy(sim, busy, rid, until=sim.now + 20)
    core = sim.peers[liar].core
    born = core.client.replicas[rid].incarnation
    boom = rm.Propose(term=core.client.term, rid=rid, seq=1, base=0, action=mx.Action("boom"), incarnation=born)
    frame = wire.encode(grievance(core.signer, ROOM, boom, master))
    for peer in sim.ids:
        if peer != liar:
            sim._transmit(liar, peer, frame, Lane.RELIABLE)
    assert sim.run(20.0)
    assert seen == []
    assert sim.masters() == [master]


def test_evidence_is_bound_to_its_room_term_and_master() -> None:
    author, other = FakeSigner(b"a" * 32), FakeSigner(b"b" * 32)
    proposal = rm.Propose(term=Term(3), rid=Rid("counter:c"), seq=2, base=1, action=mx.Action("increment"))
    msg = grievance(author, ROOM, proposal, PeerId("m"))
    assert author_of(msg, ROOM, FAKE) == author.id
    assert author_of(msg, "another room", FAKE) is None
    fields: dict[str, Any] = {"term": Term(4), "master": PeerId("x"), "seq": 3, "author": other.id}
    for name, value in fields.items():
        assert author_of(replace(msg, **{name: value}), ROOM, FAKE) is None, name
    with pytest.raises(ValueError, match="private half"):
        grievance(author, ROOM, _private(proposal), PeerId("m"))


def test_what_a_peer_watches_is_bounded_per_author() -> None:
    author = FakeSigner(b"a" * 32)
    watch = CensorWatch(PeerId("me"))
    held = [watch.hold(grievance(author, ROOM, _proposal(seq), PeerId("m")), 0.0, 0) for seq in range(1, 3 * 8 + 1)]
    assert held.count(True) == 8
    assert not watch.hold(grievance(author, ROOM, _proposal(1), PeerId("m")), 0.0, 0)  # held already


def _proposal(seq: int) -> rm.Propose:
    return rm.Propose(term=Term(1), rid=Rid("counter:c"), seq=seq, base=seq - 1, action=mx.Action("increment"))


def _private(proposal: rm.Propose) -> rm.Propose:
    return rm.Propose(
        term=proposal.term,
        rid=proposal.rid,
        seq=proposal.seq,
        base=proposal.base,
        action=proposal.action,
        private=mx.Action("secret"),
        nonce=b"n" * 16,
    )


def test_under_the_report_policy_peers_report_and_keep_the_master() -> None:
    sim, master, seen, rid = _room()
    for pid in sim.ids:
        sim.peers[pid].core.censor.policy = "report"
    victim, busy = [p for p in sim.ids if p != master][:2]
    _censor(sim, master, victim)
    _busy(sim, busy, rid, until=sim.now + 30)
    sim.dispatch(victim, rid, mx.Action("increment"))
    honest = set(sim.ids) - {master}
    assert sim.run(4 * STUCK_AFTER + GRACE, until=lambda s: {pid for pid, _ in seen} == honest)
    assert sim.run(5.0)
    assert sim.masters() == [master]
    assert all(sim.peers[p].core.election.master == master for p in sim.ids)


async def test_a_peer_reports_a_censoring_master_as_a_diagnostic_and_the_room_moves_on() -> None:
    """Real Peers on the in-process network: the master's code drops one author's proposals."""
    net = mx.LocalNetwork()
    kwargs: dict[str, Any] = {"room": "censor", "types": [Counter], "transport": net, "stuck_after": 0.3}
    async with (
        mx.Peer(seed=1, name="a", **kwargs) as a,
        mx.Peer(seed=2, name="b", **kwargs) as b,
        mx.Peer(seed=3, name="c", **kwargs) as c,
    ):
        with anyio.fail_after(10):
            for peer in (a, b, c):
                await peer.wait_ready()
        await settled(lambda: len(a.peers) >= 2 and len({p.master_id for p in (a, b, c)}) == 1, a, b, c)
        evil = next(p for p in (a, b, c) if p.is_master)
        victim, busy = (p for p in (a, b, c) if p is not evil)
        rid = await evil.create(Counter, id="c")
        mine, theirs = await victim.bind(rid), await busy.bind(rid)
        on_propose = MasterCore._on_propose

        def censoring(self: MasterCore, sender: PeerId, msg: rm.Propose, now: float) -> list[fx.Effect]:
            if self.me == PeerId(evil.id) and sender == PeerId(victim.id):
                return []  # taken, never confirmed
            return on_propose(self, sender, msg, now)

        diagnostics: list[mx.Diagnostic] = []
        for peer in (victim, busy):
            peer.on_diagnostic(diagnostics.append)

        async def keep_busy() -> None:
            """The master has others' work: ``busy`` dispatches an action every 50 ms (a load, not a wait)."""
            while True:
                theirs.dispatch(mx.Action("increment"))
                await anyio.sleep(0.05)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(MasterCore, "_on_propose", censoring)
            handle = mine.dispatch(mx.Action("incrementBy", 100))
            async with anyio.create_task_group() as tg:
                tg.start_soon(keep_busy)
                await settled(lambda: not mine.pending, victim)  # the censored action: until another master confirms it
                tg.cancel_scope.cancel()
        with pytest.raises(mx.ActionStuck):  # it was reported stuck (2 * stuck_after) before the gossip
            await handle
        censored = [d for d in diagnostics if d.kind == "censored"]
        assert {d.peer for d in censored} == {evil.id}
        assert len(censored) == 2  # the author and the other honest peer, each once
        assert victim.master_id not in (None, evil.id)
        assert mine.state["count"] >= 100


def test_evidence_signed_by_someone_else_is_dropped_as_its_senders_fault() -> None:
    sim, master, _, rid = _room()
    liar, victim = [p for p in sim.ids if p != master][:2]
    term = sim.peers[liar].core.client.term
    proposal = rm.Propose(term=term, rid=rid, seq=1, base=0, action=mx.Action("increment"))
    forged = replace(grievance(sim.peers[liar].core.signer, ROOM, proposal, master), author=victim)
    sim._transmit(liar, master, wire.encode(forged), Lane.RELIABLE)
    sim._transmit(liar, victim, wire.encode(forged), Lane.RELIABLE)
    assert sim.run(1.0)
    refused = [(pid, d.sender) for pid, d in sim.dropped if "did not sign" in d.reason]
    assert sorted(refused) == sorted([(master, liar), (victim, liar)])
    assert sim.state(master, rid)["count"] == 0


def test_in_a_two_peer_room_the_author_leaves_the_censoring_master_alone() -> None:
    """docs/election.md: under AVAILABLE the author elects itself; the room is split in two."""
    sim, master, seen, rid = _room(size=2)
    victim = next(p for p in sim.ids if p != master)
    _censor(sim, master, victim)
    _busy(sim, master, rid, until=sim.now + 30)
    seq = sim.dispatch(victim, rid, mx.Action("incrementBy", 100))
    assert sim.run(4 * STUCK_AFTER + GRACE, until=lambda s: (rid, seq) in s.peers[victim].confirmed)
    assert [pid for pid, _ in seen] == [victim]
    assert sorted(sim.masters()) == sorted([master, victim])
