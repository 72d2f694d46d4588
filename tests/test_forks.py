"""A dishonest master that forks the history, replays old signatures or removes selectively is caught.

Issue 19, M1-M4: each test names what the code before it let through. The master is the test
(tests/forger.py): it holds the master's key and signs whatever it likes for each peer; the
honest peers are real signed NodeCores that compare what they got (``Witness``).
"""

from __future__ import annotations

import itertools

import pytest

import movex_p2p as mx
from movex_p2p import wire
from movex_p2p.election import messages as em
from movex_p2p.election.machine import salt_of
from movex_p2p.ids import Rid, Term
from movex_p2p.nodecore import NodeCore, Ready
from movex_p2p.proofs import prove
from movex_p2p.resource import effects as fx
from movex_p2p.resource import messages as rm
from movex_p2p.resource.client import ClientCore
from movex_p2p.resource.history import REMOVED_VERSION, contradicts, head, seal
from movex_p2p.resource.replica import Replica
from movex_p2p.resource.seals import SealBook
from movex_p2p.resource.state import checksum, freeze
from movex_p2p.testing.cores import CoreCluster
from movex_p2p.transport.base import PeerUp
from tests.forger import ALICE, BOB, EVIL, RID, TERM, Branch, follower, forks, proposals, send, to
from tests.resources import ALL_TYPES, Counter
from tests.test_hostile_node import EVIL as MEMBER
from tests.test_hostile_node import ME, THIRD, elect_alone, node


@pytest.mark.parametrize("jump", ["from-the-start", "after-the-first-step"])
def test_a_fork_with_disjoint_indices_is_caught_by_the_witnesses(jump: str) -> None:
    """Before: a master ordered Alice's and Bob's signed claims differently for each, sealed each
    history honestly and numbered Bob's entries from 1,000,000: Alice ended with ``winner: bob``,
    Bob with ``winner: alice``, they exchanged witnesses, and nobody saw a fork (no seal of one
    was at an index of the other's)."""
    alice, bob = follower(ALICE, BOB), follower(BOB, ALICE)
    mine, theirs = Branch(), Branch()
    if jump == "from-the-start":
        theirs.index = 1_000_000
    for core, branch in ((alice, mine), (bob, theirs)):
        send(core, EVIL, [branch.begin(), branch.create(), branch.seal()], now=0.1)
    if jump == "after-the-first-step":
        theirs.index += 1_000_000
    endorsed_a, (claim_a,) = proposals(alice, mx.Action("claim"), now=0.2)
    endorsed_b, (claim_b,) = proposals(bob, mx.Action("claim"), now=0.2)
    # Alice is told Bob claimed first; Bob, that Alice did
    a_entries: list[wire.Message] = [mine.apply(claim_b, BOB.id), mine.apply(claim_a, ALICE.id), mine.seal()]
    b_entries: list[wire.Message] = [theirs.apply(claim_a, ALICE.id), theirs.apply(claim_b, BOB.id), theirs.seal()]
    ready_a = send(alice, EVIL, [endorsed_a, endorsed_b, *a_entries], now=0.3)
    ready_b = send(bob, EVIL, [endorsed_a, endorsed_b, *b_entries], now=0.3)
    assert alice.client.replicas[RID].state["winner"] == BOB.id
    assert bob.client.replicas[RID].state["winner"] == ALICE.id
    assert forks(ready_a) == forks(ready_b) == []  # each history alone is sound
    caught = witness_rounds(alice, bob, ready_a, ready_b, 0.3)
    assert caught == {("alice", EVIL.id), ("bob", EVIL.id)}
    assert alice.election.master is None
    assert bob.election.master is None


def test_a_seal_that_jumps_over_another_peers_seals_contradicts_them() -> None:
    """The rule every verdict rests on: one master's seals of a term are links of one chain."""
    mine, theirs = Branch(), Branch()
    mine.begin()
    theirs.begin()
    first = [mine.create(), mine.seal()]
    theirs.create()
    same = theirs.seal()
    assert same == first[-1]  # one history: one seal
    assert contradicts(first[-1], same) is None
    mine.apply(rm.Propose(term=same.term, rid=RID, seq=1, base=0, action=mx.Action("claim")), ALICE.id)
    after = mine.seal()
    assert contradicts(first[-1], after) is None  # the next link
    theirs.index += 1_000
    theirs.apply(rm.Propose(term=same.term, rid=RID, seq=1, base=0, action=mx.Action("claim")), BOB.id)
    jumped = theirs.seal()
    assert contradicts(after, jumped) is not None  # (2, 1003] overlaps (2, 3]
    other = Branch(index=5)
    other.begin()
    other.create()
    assert contradicts(after, other.seal()) is not None  # another beginning of the term


def test_an_honest_master_never_seals_two_histories_at_one_index_while_it_recovers() -> None:
    """Before: a recovering master sealed each replica it pulled at the index it inherited, so a
    member that had been master and answered its pulls in two frames got two different seals of
    the honest master at one (term, index); one Witness of the first made a peer that kept the
    second distrust the honest master and elect itself: two masters."""
    core = node(ME)
    core.start(0.0, 0.0)
    core.receive([PeerUp(peer=MEMBER.id), PeerUp(peer=THIRD.id)], 0.0, 0.0)
    old = Term((1 << 32) | salt_of(MEMBER.id))  # the member was master of an earlier term
    cert = tuple(prove(v, "vote", old, MEMBER.id) for v in (ME, MEMBER, THIRD))
    send(core, MEMBER, [em.Heartbeat(term=old, seq=1, successors=(), cert=cert)], now=0.01)
    assert core.election.master == MEMBER.id
    now, seals = 0.01, []
    while core.master is None:  # the member falls silent; the honest peer takes over
        now += 0.05
        seals += [m for m in to(core.tick(now, now), THIRD) if isinstance(m, rm.Sealed)]
    assert core.master.recovering
    rids = [Counter.rid("a"), Counter.rid("b")]
    snapshots = {rid: member_snapshot(rid, old, count) for count, rid in enumerate(rids, 5)}
    have: dict[str, rm.Position] = {
        rid: rm.Position(term=old, version=3, checksum=s.checksum) for rid, s in snapshots.items()
    }
    ready = send(core, MEMBER, [rm.Report(term=core.master.term, req=1, have=have)], now=now)
    assert sum(isinstance(m, rm.Pull) for m in to(ready, MEMBER)) == 2
    for rid in rids:  # one pull answered per frame: a step each
        ready = send(core, MEMBER, [rm.Pulled(term=core.master.term, snapshot=snapshots[rid])], now=now)
        seals += [m for m in to(ready, THIRD) if isinstance(m, rm.Sealed)]
    while core.master.recovering:
        now += 0.1
        seals += [m for m in to(core.tick(now, now), THIRD) if isinstance(m, rm.Sealed)]
    assert {rid: core.client.replicas[rid].state["count"] for rid in rids} == {rids[0]: 5, rids[1]: 6}  # adopted
    assert seals, "the adopted replicas are sealed once the term began"
    at = [(s.term, s.index) for s in seals]
    assert len(at) == len(set(at)), "two seals at one (term, index)"
    assert [why for a, b in itertools.combinations(seals, 2) if (why := contradicts(a, b))] == []
    bob = node(THIRD)  # a peer that got every seal: none of them incriminates the honest master
    for sealed in seals:
        assert not bob.history.seals.compare(MEMBER.id, sealed)


def member_snapshot(rid: Rid, term: Term, count: int) -> rm.Snapshot:
    """A replica the member holds from its own term, sealed by itself as that term's master."""
    state = freeze({"count": count})
    heads = (head(rid, 3, checksum(state), {}, ()),)
    sealed = seal(MEMBER, term, 40, heads, began=1, prev=39, chain=b"c" * 16)
    return rm.Snapshot(
        term=term,
        index=40,
        rid=rid,
        entry_term=term,
        version=3,
        state=state,
        checksum=checksum(state),
        subscribers={},
        held=(),
        applied={},
        seal=sealed,
    )


def witness_rounds(alice: NodeCore, bob: NodeCore, ready_a: Ready, ready_b: Ready, now: float) -> set[tuple[str, str]]:
    """Alice and Bob pass each other their seals a few rounds; who caught which master."""
    caught: set[tuple[str, str]] = set()
    for _ in range(4):
        now += 0.3
        witnesses_a = [m for m in to(ready_a, BOB) if isinstance(m, rm.Witness)]
        witnesses_b = [m for m in to(ready_b, ALICE) if isinstance(m, rm.Witness)]
        ready_b = send(bob, ALICE, witnesses_a, now) if witnesses_a else bob.tick(now, now)
        ready_a = send(alice, BOB, witnesses_b, now) if witnesses_b else alice.tick(now, now)
        caught |= {(who, f.peer) for who, r in (("alice", ready_a), ("bob", ready_b)) for f in forks(r)}
    return caught


@pytest.mark.parametrize("sealed", [False, True], ids=["unsealed", "sealed"])
def test_a_removal_told_to_one_peer_only_is_refused_or_caught(sealed: bool) -> None:
    """Before: ``Removed`` was no part of any seal: told to Bob only, it dropped Bob's replica and
    his pending move while Alice played on, and nothing compared. Now a replica goes only under
    a seal that records its removal: without one Bob keeps it; with one, the seals differ."""
    alice, bob = follower(ALICE, BOB), follower(BOB, ALICE)
    mine, theirs = Branch(), Branch()
    for core, branch in ((alice, mine), (bob, theirs)):
        send(core, EVIL, [branch.begin(), branch.create(), branch.seal()], now=0.1)
    proposals(bob, mx.Action("incrementBy", 1), now=0.2)  # Bob's move: the master never applies it
    endorsed, (claim,) = proposals(alice, mx.Action("claim"), now=0.2)
    ready_a = send(alice, EVIL, [endorsed, mine.apply(claim, ALICE.id), mine.seal()], now=0.3)
    removal: list[wire.Message] = [theirs.remove(), theirs.seal()] if sealed else [theirs.remove()]
    ready_b = send(bob, EVIL, removal, now=0.3)
    assert alice.client.replicas[RID].state["winner"] == ALICE.id  # Alice plays on
    if not sealed:
        assert bob.client.has(RID)  # no seal recorded the removal: Bob keeps his replica ...
        assert [p.action.type for p in bob.client.pending(RID)] == ["incrementBy"]  # ... and his move
        assert not [e for e in ready_b.events if isinstance(e, fx.ResourceRemoved)]
        return
    assert not bob.client.has(RID)  # the master signed the removal: it is its history now ...
    assert witness_rounds(alice, bob, ready_a, ready_b, 0.3) == {("alice", EVIL.id), ("bob", EVIL.id)}  # ... caught


def test_a_removal_and_a_new_incarnation_in_one_step_are_sealed_apart() -> None:
    """An honest master that removes and re-creates a rid in one step seals the removal first,
    so every peer drops the old replica before the new one is created."""
    core = node(ME)
    now = elect_alone(core, THIRD)
    assert core.master is not None
    while core.master.recovering:
        now += 0.1
        core.tick(now, now)
    rid = Counter.rid("c")
    _, created = core.create(rid, {"count": 3}, now, now)
    seals = [m for m in to(created, THIRD) if isinstance(m, rm.Sealed)]
    term = core.master.term
    # a member removes and creates it again in one frame (the master is honest: no endorsement needed)
    ready = send(
        core, THIRD, [rm.Remove(term=term, req=1, rid=rid), rm.Create(term=term, req=2, rid=rid, state=None)], now
    )
    sent = to(ready, THIRD)
    kinds = [type(m).__name__ for m in sent if isinstance(m, rm.Removed | rm.Created | rm.Sealed)]
    assert kinds == ["Removed", "Sealed", "Created", "Sealed"]
    seals += [m for m in sent if isinstance(m, rm.Sealed)]
    assert [h.version for h in seals[1].heads] == [REMOVED_VERSION]
    assert [why for a, b in itertools.combinations(seals, 2) if (why := contradicts(a, b))] == []
    assert core.client.replicas[rid].state == {"count": 0}  # the new incarnation


def played(room: str = "castle") -> tuple[NodeCore, Branch, rm.Endorsed, rm.Applied]:
    """A first session: Alice's ``incrementBy 100`` (seq 1); Bob, and the master's history and what it holds."""
    alice, bob = follower(ALICE, BOB, room=room), follower(BOB, ALICE, room=room)
    branch = Branch()
    first: list[wire.Message] = [branch.begin(), branch.create(incarnation=b"1" * 16), branch.seal()]
    for core in (alice, bob):
        send(core, EVIL, first, now=0.1)
    endorsed, (propose,) = proposals(alice, mx.Action("incrementBy", 100), now=0.2)
    applied = branch.apply(propose, ALICE.id)
    for core in (alice, bob):
        send(core, EVIL, [endorsed, applied, branch.seal()], now=0.3)
        assert core.client.replicas[RID].state["n"] == 100
    return bob, branch, endorsed, applied


@pytest.mark.parametrize("where", ["re-created", "new-session", "other-room"])
def test_an_old_signed_action_is_no_action_of_a_new_incarnation_session_or_room(where: str) -> None:
    """Before: the digest an author signs covered author, rid, seq, action and commitment only, so a
    master replayed an old ``incrementBy 100`` as seq 1 of a re-created rid, or of the rid in a new
    session with the same identities, and every peer applied it. Now it binds the room, the term
    and the rid's incarnation (new with each creation): the replay is an action nobody signed."""
    bob, branch, endorsed, old = played()
    if where == "re-created":  # the same session: removed, created again
        send(bob, EVIL, [branch.remove(), branch.seal()], now=0.4)
        send(bob, EVIL, [branch.create(incarnation=b"2" * 16), branch.seal()], now=0.5)
    else:  # a new session of the same identities (and terms); in another room, even the incarnation is the same
        other = where == "other-room"
        bob, branch = follower(BOB, ALICE, room="keep" if other else "castle"), Branch()
        send(bob, EVIL, [branch.begin(), branch.create(incarnation=b"1" * 16 if other else b"2" * 16)], now=0.1)
        send(bob, EVIL, [branch.seal()], now=0.1)
    assert bob.client.replicas[RID].state["n"] == 0
    replay = branch.apply(rm.Propose(term=old.term, rid=RID, seq=1, base=0, action=old.action), ALICE.id)
    ready = send(bob, EVIL, [endorsed, replay, branch.seal()], now=0.6)
    assert bob.client.replicas[RID].state["n"] == 0  # not applied
    assert [f.peer for f in forks(ready)] == [EVIL.id]
    assert "never signed" in forks(ready)[0].reason


def test_an_author_is_never_told_its_action_settled_when_another_was_confirmed() -> None:
    """Before: in a new session, a pending ``decrement`` (seq 1) answered with the old session's
    ``incrementBy 100`` (seq 1, its real signature) was reported ``ActionSettled(error=None)`` to its
    author. A master that re-creates the rid with the old incarnation in the same room and term
    can still replay it where the author's word is not heard, but the author itself is told
    the truth (and a peer that removed that incarnation refuses it: next test)."""
    _, session, endorsed, old = played()
    alice = follower(ALICE, BOB)
    branch = Branch()
    send(alice, EVIL, [branch.begin(), branch.create(incarnation=session.incarnations[RID]), branch.seal()], now=0.1)
    proposals(alice, mx.Action("decrement"), now=0.2)  # seq 1 of this session
    replay = branch.apply(rm.Propose(term=old.term, rid=RID, seq=1, base=0, action=old.action), ALICE.id)
    ready = send(alice, EVIL, [endorsed, replay, branch.seal()], now=0.3)
    settled = [e for e in ready.events if isinstance(e, fx.ActionSettled)]
    assert [(s.seq, s.error is None) for s in settled] == [(1, False)]
    assert alice.client.pending(RID) == []
    assert alice.client.replicas[RID].state["n"] == 100  # the master's log, as it is


def test_a_rid_created_again_with_a_removed_incarnation_is_a_forgery() -> None:
    """What lets a replay through, re-using a removed incarnation, is itself refused by its witnesses."""
    bob = follower(BOB, ALICE)
    branch = Branch()
    send(bob, EVIL, [branch.begin(), branch.create(incarnation=b"1" * 16), branch.seal()], now=0.1)
    send(bob, EVIL, [branch.remove(), branch.seal()], now=0.2)
    assert not bob.client.has(RID)
    ready = send(bob, EVIL, [branch.create(incarnation=b"1" * 16), branch.seal()], now=0.3)
    assert [f.peer for f in forks(ready)] == [EVIL.id]
    assert not bob.client.has(RID)


def test_a_removal_told_again_carries_the_seal_that_recorded_it() -> None:
    """A peer that missed a removal is told again with its seal (by this master or the next), so
    it drops its replica under a seal like everyone else did, and only then."""
    c = CoreCluster(3, types=ALL_TYPES)
    rid = Rid("counter:c")
    c.setup(rid)
    stale = c.clients[c.ids[2]].replicas[rid].position()
    _, effects = c.clients[c.ids[1]].remove(rid)
    c.route(c.ids[1], effects)
    c.run()
    assert all(not client.has(rid) for client in c.clients.values())
    for _ in range(2):  # this master, then the next one (built from a peer's tombstones)
        out = c.master.step(c.ids[2], rm.Report(term=c.term, req=99, have={rid: stale}), c.now)
        (again,) = [e.message for e in out if isinstance(e, fx.Send) and isinstance(e.message, rm.Removed)]
        assert again.seal is not None
        assert [(h.rid, h.version) for h in again.seal.heads] == [(rid, REMOVED_VERSION)]
        assert again.seal.prev < again.index <= again.seal.index
        c.elect(c.ids[1], 2)
    # a replica told of a removal no seal records
    unsealed = ClientCore(c.ids[2], types={"counter": Counter}, signer=c.signers[c.ids[2]])
    unsealed.replicas[rid] = Replica(rid=rid, type=Counter, state=freeze({"count": 0}))
    unsealed.master, unsealed.term = c.ids[0], c.term
    assert unsealed.step(c.ids[0], rm.Removed(term=c.term, index=7, rid=rid), c.now) == []
    assert unsealed.has(rid)


def test_a_seal_ahead_of_ours_is_checked_when_ours_get_there() -> None:
    """Bob's seal that jumped far ahead reaches Alice first; her next own seal overlaps it: a fork.
    A member flooding seals of its own never pushes that one out."""
    mine, theirs = Branch(), Branch()
    for branch in (mine, theirs):
        branch.begin()
        branch.create()
    book = SealBook()
    assert book.keep(mine.seal()) is None
    assert book.compare(BOB.id, theirs.seal()) is None  # the same first step
    theirs.index += 1_000
    theirs.apply(rm.Propose(term=TERM, rid=RID, seq=1, base=0, action=mx.Action("claim")), BOB.id)
    jumped = theirs.seal()
    assert book.compare(BOB.id, jumped) is None  # ahead of Alice's: kept
    own = Term((1 << 32) | salt_of(ALICE.id))
    for index in range(2_000, 2_100):  # a member passing on seals of its own, far ahead
        flood = seal(ALICE, own, index, (), began=1, prev=index - 1, chain=b"")
        assert book.compare(ALICE.id, flood) is None
    mine.apply(rm.Propose(term=TERM, rid=RID, seq=1, base=0, action=mx.Action("claim")), ALICE.id)
    why = book.keep(mine.seal())
    assert why is not None
    assert "overlapping" in why
    assert jumped not in book.to_pass_on(due=False)  # ours of the pair goes to Bob, who holds his
    assert len(book.to_pass_on(due=True)) <= 1
