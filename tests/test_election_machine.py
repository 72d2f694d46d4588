"""ElectionMachine unit tests: hand-fed events and a virtual-time Cluster; no sleeps, no network."""

from __future__ import annotations

import math
import random

import pytest

from movex_p2p import wire
from movex_p2p.election import messages as em
from movex_p2p.election.churn import CHURN_WINDOW
from movex_p2p.election.machine import (
    VIEW_GRACE,
    Disconnected,
    Effect,
    ElectionConfig,
    ElectionMachine,
    Handover,
    Joining,
    Lagging,
    LinksChanged,
    LogPosition,
    MasterChanged,
    Policy,
    Received,
    Send,
    Standing,
    Tick,
    ToOthers,
    salt_of,
    term_owner_salt,
    term_round,
)
from movex_p2p.election.sim import Cluster
from movex_p2p.ids import PeerId, Term
from movex_p2p.signing import FAKE
from tests.keys import fake_signers, term_of, vote

MAJORITY = ElectionConfig(policy=Policy.MAJORITY)
AVAILABLE = ElectionConfig(policy=Policy.AVAILABLE)
POLICIES = [pytest.param(MAJORITY, id="majority"), pytest.param(AVAILABLE, id="available")]

KEYS = fake_signers(4)
SIGNER = {k.id: k for k in KEYS}
A, B, C, D = (k.id for k in KEYS)  # A < B < C < D
T7 = term_of(7, A)


def cluster(size: int, config: ElectionConfig, *, seed: int = 1, **kwargs: object) -> Cluster:
    return Cluster(size, config=config, rng=random.Random(seed), **kwargs)  # type: ignore[arg-type]


def settled(c: Cluster) -> bool:
    """Exactly one live master, known by every live peer."""
    masters = c.masters()
    return len(masters) == 1 and all(m == masters[0] for m in c.known_masters().values())


def elect(c: Cluster, within: float = 2.0) -> PeerId:
    assert c.run_until(c.now + within, until=settled), c.known_masters()
    return c.masters()[0]


def machine(me: PeerId = A, config: ElectionConfig = AVAILABLE, seed: int = 0) -> ElectionMachine:
    return ElectionMachine(me, config=config, rng=random.Random(seed), signer=SIGNER[me], verifier=FAKE)


def cert(term: Term, master: PeerId, voters: tuple[PeerId, ...] = (A, B, C)) -> tuple[bytes, ...]:
    """The signed votes of ``voters`` for ``master`` in ``term``."""
    return tuple(vote(SIGNER[v], term, master) for v in voters)


def beat(
    master: PeerId, term: Term, seq: int = 1, voters: tuple[PeerId, ...] = (A, B, C), **kw: object
) -> em.Heartbeat:
    """A heartbeat of ``master`` showing the votes of ``voters`` (its certificate)."""
    return em.Heartbeat(term=term, seq=seq, cert=cert(term, master, voters), **kw)  # type: ignore[arg-type]


def vote_reply(voter: PeerId, term: Term, candidate: PeerId) -> em.VoteReply:
    """``voter``'s signed vote for ``candidate``."""
    return em.VoteReply(term=term, granted=True, proof=vote(SIGNER[voter], term, candidate))


def fire(m: ElectionMachine) -> tuple[float, list[Effect]]:
    """Advance to the machine's deadline and tick it."""
    now = m.deadline
    assert now is not None
    return now, m.step(Tick(), now)


def without_views(effects: list[Effect]) -> list[Effect]:
    """The effects, views left out (tested on their own)."""
    return [e for e in effects if not (isinstance(e, Send | ToOthers) and isinstance(e.message, em.View))]


def sent(effects: list[Effect]) -> list[em.ElectionMessage]:
    """What the effects send, views left out (tested on their own)."""
    return [e.message for e in effects if isinstance(e, Send | ToOthers) and not isinstance(e.message, em.View)]


def follower_of(master: PeerId, term: Term, me: PeerId = B, *, config: ElectionConfig = AVAILABLE) -> ElectionMachine:
    m = machine(me, config)
    m.start(0.0)
    m.step(LinksChanged(peers=frozenset({A, B, C}) - {me}), 0.0)
    m.step(Received(sender=master, message=beat(master, term, successors=())), 0.0)
    assert m.master == master
    return m


# -- elections in a cluster -------------------------------------------------------------------


@pytest.mark.parametrize("config", POLICIES)
@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_peers_elect_exactly_one_master(size: int, config: ElectionConfig) -> None:
    c = cluster(size, config)
    c.run(3.0)
    assert settled(c)
    assert len(c.elected) == 1
    assert c.elected[0].at < 1.0
    master = c.machines[c.masters()[0]]
    assert master.can_confirm(c.now)
    assert not any(m.can_confirm(c.now) for p, m in c.machines.items() if p != master.me)
    assert {m.term for m in c.machines.values()} == {master.term}


def test_single_peer_elects_itself_well_under_a_second() -> None:
    c = cluster(1, AVAILABLE)
    assert c.run_until(1.0, until=settled)
    assert c.now < 0.5


FAILOVERS = [
    pytest.param(config, size, down_delay, id=f"{config.policy.value}-{size}-{down_delay}")
    for config in (MAJORITY, AVAILABLE)
    for size, down_delay in [(2, 0.0), (3, 0.0), (5, 0.0), (2, None), (3, None), (5, None), (5, 0.5)]
    if size > 2 or config.policy is Policy.AVAILABLE  # a MAJORITY pair freezes: see below
]


@pytest.mark.parametrize(("config", "size", "down_delay"), FAILOVERS)
def test_killed_master_is_replaced_in_under_a_second(
    config: ElectionConfig, size: int, down_delay: float | None
) -> None:
    # down_delay None: the death is never reported, only the heartbeat silence reveals it.
    worst = 0.0
    for seed in range(10):
        c = cluster(size, config, seed=seed, down_delay=down_delay)
        old = elect(c)
        c.run(c.rng.uniform(0.0, 1.0))  # kill at an arbitrary point of the heartbeat cycle
        killed_at = c.now
        c.kill(old)
        assert c.run_until(killed_at + 1.0, until=settled), c.known_masters()
        assert c.masters()[0] != old
        worst = max(worst, c.now - killed_at)
    assert worst < 1.0


def test_masters_replaced_in_a_row_back_the_timeout_off_and_a_quiet_room_fails_over_fast_again() -> None:
    # 12 peers on 2 vCPUs: each new master was deposed within a second, for as long as the room
    # ran (issue 15); on the real stack the first new master after a kill was deposed 0.5-0.6 s
    # after it won, while it served every survivor's re-sent burst. Each replacement within
    # CHURN_WINDOW doubles the patience, the first too.
    # (A master whose link dropped is elected away at once, whatever the churn: it is gone.)
    c = cluster(8, AVAILABLE, seed=3, down_delay=None)
    elect(c)
    took = []
    for _ in range(4):  # kill each new master once the room follows it
        killed_at = c.now
        c.kill(c.masters()[0])
        assert c.run_until(killed_at + 10.0, until=settled), c.known_masters()
        took.append(c.now - killed_at)
    timeout = AVAILABLE.election_timeout
    assert took[0] < 2 * timeout, took  # a quiet room: as fast as ever
    assert took[1] > 2 * timeout, took  # the master elected after a death was given twice as long
    assert took[3] > 4 * timeout, took  # the fourth replacement in a row waited 8x as long
    patience = {m.patience(c.now) for p, m in c.machines.items() if p in c.alive}
    assert patience == {8 * timeout}, patience  # and the next waits 8x (CHURN_BACKOFF)
    c.run(CHURN_WINDOW)  # quiet again: as patient as a room that never churned
    assert {m.patience(c.now) for p, m in c.machines.items() if p in c.alive} == {timeout}


def test_available_pair_survivor_becomes_master() -> None:
    c = cluster(2, AVAILABLE)
    old = elect(c)
    survivor = next(p for p in c.machines if p != old)
    c.kill(old)
    assert c.run_until(c.now + 0.5, until=settled)
    assert c.masters() == [survivor]
    assert c.machines[survivor].can_confirm(c.now)


def test_available_pair_follower_death_keeps_master() -> None:
    c = cluster(2, AVAILABLE)
    master = elect(c)
    term = c.machines[master].term
    c.kill(next(p for p in c.machines if p != master))
    c.run(2.0)
    assert c.masters() == [master]
    assert c.machines[master].term == term
    assert c.machines[master].can_confirm(c.now)


def test_majority_pair_freezes_when_one_dies() -> None:
    c = cluster(2, MAJORITY)
    old = elect(c)
    survivor = next(p for p in c.machines if p != old)
    c.kill(old)
    c.run(5.0)
    assert c.masters() == []
    assert not c.machines[survivor].can_confirm(c.now)


def test_prevote_keeps_a_healthy_master_when_a_partitioned_peer_rejoins() -> None:
    c = cluster(5, MAJORITY)
    master = elect(c)
    term = c.machines[master].term
    loner = next(p for p in sorted(c.machines) if p != master)
    c.partition([loner])
    c.run(3.0)  # the loner keeps pre-voting, never gets a quorum, never bumps its term
    assert c.machines[loner].term == term
    assert c.machines[loner].role is Standing.FOLLOWER
    c.heal()
    c.run(2.0)
    assert settled(c)
    assert c.masters() == [master]
    assert {m.term for m in c.machines.values()} == {term}
    assert [e.peer for e in c.elected] == [master]


@pytest.mark.parametrize("config", POLICIES)
def test_follower_cut_off_from_the_master_cannot_depose_it(config: ElectionConfig) -> None:
    # c lost its link to a (LinksChanged) but b still hears a: b refuses c's pre-vote and vote.
    b = follower_of(A, T7, B, config=config)
    t9 = term_of(9, C)
    reply = b.step(Received(sender=C, message=em.PreVoteRequest(term=t9, last_term=0, last_index=0)), 0.1)
    assert sent(reply) == [em.PreVoteReply(term=T7, granted=False)]
    ask = em.VoteRequest(term=t9, last_term=0, last_index=0, handover=False)
    assert b.step(Received(sender=C, message=ask), 0.1) == []
    assert (b.term, b.master) == (T7, A)
    # once a is silent for an election timeout, b grants
    later = 0.1 + config.election_timeout
    b.step(Tick(), later)
    reply = b.step(Received(sender=C, message=em.PreVoteRequest(term=t9, last_term=0, last_index=0)), later)
    assert sent(reply) == [em.PreVoteReply(term=t9, granted=True)]


def test_majority_minority_never_elects_and_old_master_stops_confirming() -> None:
    c = cluster(5, MAJORITY)
    old = elect(c)
    c.run(0.5)
    assert c.machines[old].can_confirm(c.now)
    buddy = next(p for p in sorted(c.machines) if p != old)
    majority = [p for p in sorted(c.machines) if p not in (old, buddy)]
    cut_at = c.now
    c.partition([old, buddy], majority)
    c.run(MAJORITY.lease + MAJORITY.heartbeat_interval)
    assert not c.machines[old].can_confirm(c.now)
    c.run(3.0)
    assert all(e.peer in majority for e in c.elected if e.at > cut_at)
    assert c.machines[buddy].role is Standing.FOLLOWER
    new = [p for p in majority if c.machines[p].role is Standing.MASTER]
    assert len(new) == 1
    assert c.machines[new[0]].can_confirm(c.now)
    assert not c.machines[old].can_confirm(c.now)
    c.heal()
    c.run(1.0)
    assert settled(c)
    assert c.masters() == new


def test_majority_graceful_leave_shrinks_membership_but_a_kill_does_not() -> None:
    left = cluster(4, MAJORITY)
    master = elect(left)
    followers = [p for p in sorted(left.machines) if p != master]
    left.leave(followers[0])
    left.leave(followers[1])
    left.run(1.0)
    assert left.masters() == [master]
    assert left.machines[master].can_confirm(left.now)  # 2 of 2 members

    killed = cluster(4, MAJORITY)
    master = elect(killed)
    followers = [p for p in sorted(killed.machines) if p != master]
    killed.kill(followers[0])
    killed.kill(followers[1])
    killed.run(1.0)
    assert not killed.machines[master].can_confirm(killed.now)  # 2 of 4 members is no quorum


def test_available_heal_keeps_the_master_whose_votes_are_a_quorum_of_the_healed_room() -> None:
    c = cluster(5, AVAILABLE)
    old = elect(c)
    others = [p for p in sorted(c.machines) if p != old]
    c.partition([old, others[0], others[1]], others[2:])
    c.run(2.0)
    masters = c.masters()
    assert len(masters) == 2  # both sides play on
    newer = max(masters, key=lambda p: c.machines[p].term)
    assert newer != old  # the side that elected later holds the higher term, with 2 votes of 5
    c.heal()
    assert c.run_until(c.now + 0.5, until=settled)
    assert c.masters() == [old]  # a higher term is no claim: 2 of 5 votes are not a quorum of the room
    assert {m.term for m in c.machines.values()} == {c.machines[old].term}


def test_stale_master_steps_down_on_a_higher_term_heartbeat() -> None:
    m = machine(A)
    m.start(0.0)
    now, effects = fire(m)
    assert m.role is Standing.MASTER
    assert effects[0] == MasterChanged(master=A, term=m.term)
    higher = term_of(term_round(m.term) + 1, B)
    votes = cert(higher, B, (A, B))
    effects = m.step(Received(sender=B, message=em.Heartbeat(term=higher, seq=3, successors=(), cert=votes)), now)
    assert (m.role, m.master) == (Standing.FOLLOWER, B)
    assert effects[0] == MasterChanged(master=B, term=higher)
    ack = em.HeartbeatAck(term=higher, seq=3, last_term=0, last_index=0, cert=votes, leader=B)
    assert sent(effects) == [ack]


def test_a_higher_term_without_a_quorum_of_votes_deposes_nobody() -> None:
    m = machine(A)
    m.start(0.0)
    now, _ = fire(m)
    assert m.role is Standing.MASTER
    higher = term_of(term_round(m.term) + 1, B)
    for votes in [(), cert(higher, B, (B,)), cert(higher, C, (A, B)), cert(m.term, B, (A, B))]:
        heartbeat = em.Heartbeat(term=higher, seq=3, successors=(), cert=votes)
        m.step(Received(sender=B, message=heartbeat), now)
        assert (m.role, m.master) == (Standing.MASTER, A)
    stolen = em.Heartbeat(term=term_of(term_round(m.term) + 1, A), seq=3, successors=(), cert=cert(m.term, B, (A, B)))
    m.step(Received(sender=B, message=stolen), now)  # a term salted for someone else
    assert (m.role, m.master) == (Standing.MASTER, A)


def test_a_heartbeat_for_a_term_another_peer_owns_is_ignored() -> None:
    m = machine(C)
    m.start(0.0)
    now, _ = fire(m)
    term = m.term
    for other in (A, B, D):  # lower or higher id: a term salted with C's id is only C's to win
        heartbeat = em.Heartbeat(term=term, seq=1, successors=(), cert=cert(term, other, (A, B, C, D)))
        m.step(Received(sender=other, message=heartbeat), now)
        assert (m.role, m.master, m.term) == (Standing.MASTER, C, term)


# -- voting rules -----------------------------------------------------------------------------


def test_one_vote_per_term() -> None:
    m = machine(A)
    m.start(0.0)
    m.step(LinksChanged(peers=frozenset({B, C})), 0.0)
    term = term_of(5, B)
    ask_b = em.VoteRequest(term=term, last_term=0, last_index=0, handover=False)
    assert sent(m.step(Received(sender=B, message=ask_b), 1.0)) == [vote_reply(A, term, B)]
    assert sent(m.step(Received(sender=C, message=ask_b), 1.0)) == [em.VoteReply(term=term, granted=False)]
    assert sent(m.step(Received(sender=B, message=ask_b), 1.0)) == [vote_reply(A, term, B)]
    newer = term_of(6, C)
    ask_c = em.VoteRequest(term=newer, last_term=0, last_index=0, handover=False)
    assert sent(m.step(Received(sender=C, message=ask_c), 1.0)) == [vote_reply(A, newer, C)]
    older = em.VoteRequest(term=term, last_term=9, last_index=9, handover=False)
    assert sent(m.step(Received(sender=B, message=older), 1.0)) == [em.VoteReply(term=newer, granted=False)]


def test_majority_an_ack_lends_no_lease_while_a_vote_given_in_a_newer_term_may_still_win() -> None:
    """Found once the property tests ran signed: b voted for c (round 8), then acked a's older
    heartbeat; a counted that ack as its lease while c won with b's vote: two confirming masters."""
    b = machine(B, MAJORITY)
    b.start(0.0)
    b.step(LinksChanged(peers=frozenset({A, C})), 0.0)
    newer = term_of(8, C)
    ask = em.VoteRequest(term=newer, last_term=0, last_index=0, handover=False)
    assert sent(b.step(Received(sender=C, message=ask), 0.1)) == [vote_reply(B, newer, C)]
    effects = b.step(Received(sender=A, message=beat(A, T7, seq=5, successors=())), 0.1)
    assert b.master == A
    (ack,) = sent(effects)
    assert isinstance(ack, em.HeartbeatAck)
    assert ack.term == newer  # not T7: a's lease is not b's to lend
    later = 0.1 + 2 * MAJORITY.election_timeout + 0.01  # c's campaign with that vote is long over
    (ack,) = sent(b.step(Received(sender=A, message=beat(A, T7, seq=6, successors=())), later))
    assert isinstance(ack, em.HeartbeatAck)
    assert ack.term == T7


def test_cluster_never_grants_two_votes_in_one_term() -> None:
    for seed in range(5):
        c = cluster(5, AVAILABLE, seed=seed, loss=0.2)
        c.run(5.0)
        assert all(len(candidates) == 1 for candidates in c.votes.values())
        assert c.votes  # the check looked at something


@pytest.mark.parametrize(
    ("candidate", "granted"),
    [((2, 10), True), ((2, 11), True), ((3, 0), True), ((2, 9), False), ((1, 99), False)],
)
def test_vote_only_for_a_candidate_at_least_as_up_to_date(candidate: tuple[int, int], granted: bool) -> None:
    m = machine(A)
    m.start(0.0)
    m.step(LogPosition(term=2, index=10), 0.0)
    term = term_of(5, B)
    last_term, last_index = candidate
    pre = em.PreVoteRequest(term=term, last_term=last_term, last_index=last_index)
    reply = sent(m.step(Received(sender=B, message=pre), 1.0))
    assert reply == [em.PreVoteReply(term=term if granted else Term(0), granted=granted)]
    ask = em.VoteRequest(term=term, last_term=last_term, last_index=last_index, handover=False)
    refused = em.VoteReply(term=Term(0), granted=False)
    assert sent(m.step(Received(sender=B, message=ask), 1.0)) == [vote_reply(A, term, B) if granted else refused]


@pytest.mark.parametrize("config", POLICIES)
def test_stale_peer_never_wins_while_a_more_up_to_date_peer_is_connected(config: ElectionConfig) -> None:
    for seed in range(20):
        c = cluster(3, config, seed=seed)
        c.position(c.ids[0], 1, 5)  # the first ranks first by id, but lags behind
        c.position(c.ids[1], 1, 9)
        c.position(c.ids[2], 1, 9)
        c.run(3.0)
        assert settled(c)
        assert all(e.peer != c.ids[0] for e in c.elected)


def test_ranked_timeouts_let_the_most_up_to_date_peer_go_first() -> None:
    wins = trials = 0
    for seed in range(20):
        c = cluster(5, AVAILABLE, seed=seed)
        for p in (c.ids[0], c.ids[1], c.ids[2], c.ids[4]):
            c.position(p, 1, 5)
        c.position(c.ids[3], 1, 9)
        old = elect(c)
        if old == c.ids[3]:
            continue
        trials += 1
        c.run(0.3)  # heartbeats carry the ranking
        c.kill(old)
        assert c.run_until(c.now + 1.0, until=settled)
        wins += c.masters() == [c.ids[3]]
    assert trials >= 10
    assert wins >= 0.8 * trials


# -- handover ---------------------------------------------------------------------------------


@pytest.mark.parametrize("config", POLICIES)
def test_handover_picks_the_caught_up_peer_and_completes_quickly(config: ElectionConfig) -> None:
    c = cluster(4, config)
    old = elect(c)
    others = [p for p in sorted(c.machines) if p != old]
    best = others[-1]  # the highest id: only its position makes it the choice
    for p in others:
        c.position(p, 1, 20 if p == best else 10)
    c.position(old, 1, 21)  # the master itself is a little ahead: handover must still work
    c.run(0.3)
    started = c.now
    c.handover(old)
    if config.policy is Policy.MAJORITY:
        assert not c.machines[old].can_confirm(c.now)  # no two confirming masters during the handover
    assert c.run_until(started + 0.1, until=lambda c: c.masters() == [best] and settled(c))
    assert c.now - started < 0.05
    c.leave(old)
    c.run(2.0)
    assert c.masters() == [best]
    assert c.machines[best].can_confirm(c.now)


def test_handover_without_peers_is_a_no_op() -> None:
    m = machine(A)
    m.start(0.0)
    now, _ = fire(m)
    assert m.step(Handover(), now) == []
    assert m.role is Standing.MASTER
    assert m.step(Handover(), now) == []  # nor on a follower
    follower = follower_of(A, term_of(3, A))
    assert follower.step(Handover(), 0.0) == []


def test_handover_retries_when_the_successor_dies() -> None:
    c = cluster(3, AVAILABLE, down_delay=None)
    old = elect(c)
    c.run(0.3)
    first = c.machines[old]._duty.ranked_successors()[0]
    c.kill(first)
    c.handover(old)  # TimeoutNow is lost with the dead peer: the master retries after a timeout
    assert c.run_until(c.now + 1.0, until=lambda c: c.masters() not in ([], [old]) and settled(c))
    assert c.masters()[0] not in (old, first)


# -- fencing and misc -------------------------------------------------------------------------


def test_older_term_messages_are_fenced() -> None:
    b = follower_of(A, T7)
    stale = term_of(6, C)
    effects = b.step(Received(sender=C, message=beat(C, stale, seq=4, successors=())), 0.1)
    ack = em.HeartbeatAck(term=T7, seq=4, last_term=0, last_index=0, cert=cert(T7, A), leader=A)
    assert sent(effects) == [ack]  # with the certificate of the term it follows
    assert b.master == A
    ask = em.VoteRequest(term=stale, last_term=9, last_index=9, handover=True)
    assert sent(b.step(Received(sender=C, message=ask), 0.1)) == [em.VoteReply(term=T7, granted=False)]
    assert b.step(Received(sender=C, message=vote_reply(C, stale, B)), 0.1) == []
    assert b.step(Received(sender=C, message=em.TimeoutNow(term=stale)), 0.1) == []
    assert b.step(Received(sender=C, message=em.HeartbeatAck(term=stale, seq=1, last_term=0, last_index=0)), 0.1) == []
    assert (b.term, b.master, b.role) == (T7, A, Standing.FOLLOWER)


def test_master_disconnect_starts_a_prompt_election() -> None:
    b = follower_of(A, T7, B)
    effects = b.step(LinksChanged(peers=frozenset({C})), 0.05)
    assert without_views(effects) == [MasterChanged(master=None, term=T7)]
    assert b.deadline is not None
    assert b.deadline <= 0.05 + AVAILABLE.rank_step * 2 + AVAILABLE.jitter
    _, effects = fire(b)
    (pre,) = sent(effects)
    assert isinstance(pre, em.PreVoteRequest)
    assert term_round(pre.term) == 8
    assert term_owner_salt(pre.term) == salt_of(B)


def test_majority_disconnect_waits_out_the_old_masters_lease() -> None:
    b = follower_of(A, T7, B, config=MAJORITY)
    b.step(LinksChanged(peers=frozenset({C})), 0.05)
    assert b.deadline is not None
    assert b.deadline >= MAJORITY.election_timeout > MAJORITY.lease


def test_graceful_peer_left_of_the_master_starts_an_election() -> None:
    b = follower_of(A, T7, B)
    effects = b.step(Disconnected(peer=A, graceful=True), 0.05)
    assert without_views(effects) == [MasterChanged(master=None, term=T7)]


def test_ticks_before_the_deadline_do_nothing() -> None:
    m = machine(A)
    assert m.deadline is None
    assert m.start(0.0) == []
    deadline = m.deadline
    assert deadline is not None
    assert AVAILABLE.election_timeout <= deadline <= AVAILABLE.election_timeout + AVAILABLE.jitter
    assert m.step(Tick(), deadline - 0.001) == []
    assert m.role is Standing.FOLLOWER
    assert m.step(Received(sender=A, message=em.TimeoutNow(term=Term(0))), 0.0) == []  # from myself


def test_can_confirm_per_policy() -> None:
    avail = machine(A, AVAILABLE)
    avail.start(0.0)
    assert not avail.can_confirm(0.0)
    avail.step(LinksChanged(peers=frozenset({B, C})), 0.0)
    avail.step(Disconnected(peer=B, graceful=False), 0.0)
    avail.step(Disconnected(peer=C, graceful=False), 0.0)
    now, _ = fire(avail)
    assert avail.role is Standing.MASTER
    assert avail.can_confirm(now + 100.0)  # AVAILABLE has no lease

    major = machine(A, MAJORITY)
    major.start(0.0)
    now, _ = fire(major)
    assert major.can_confirm(now + 100.0)  # alone in its membership: its own quorum
    effects = major.step(LinksChanged(peers=frozenset({B})), now)
    assert not major.can_confirm(now)  # b joined the membership and has not acked yet
    (hello,) = sent(effects)
    assert isinstance(hello, em.Heartbeat)
    major.step(
        Received(sender=B, message=em.HeartbeatAck(term=major.term, seq=hello.seq, last_term=0, last_index=0)), now
    )
    assert major.can_confirm(now + MAJORITY.lease - 0.001)
    assert not major.can_confirm(now + MAJORITY.lease)


def test_terms_are_salted_with_the_candidates_id() -> None:
    c = cluster(5, AVAILABLE, loss=0.3)
    c.run(5.0)
    assert c.elected
    for e in c.elected:
        assert term_owner_salt(e.term) == salt_of(e.peer)
    assert salt_of(c.ids[0]) != salt_of(c.ids[1])
    assert math.isinf(c.last_linked(c.ids[0], c.ids[0]))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"heartbeat_interval": 0.0},
        {"election_timeout": 0.1},
        {"lease": 0.05},
        {"lease": 0.5},
        {"jitter": -1.0},
    ],
)
def test_config_is_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ElectionConfig(**kwargs)  # type: ignore[arg-type]


def test_cluster_reports_a_stuck_deadline() -> None:
    c = cluster(1, AVAILABLE)
    c.machines[c.ids[0]]._on_tick = lambda now, out: None  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="no progress"):
        c.run(1.0)


# -- wire -------------------------------------------------------------------------------------

EXAMPLES: list[em.ElectionMessage] = [
    em.Heartbeat(term=Term(1 << 33), seq=4, successors=(A, B)),
    em.HeartbeatAck(term=Term(7), seq=4, last_term=2, last_index=30),
    em.PreVoteRequest(term=Term(9), last_term=2, last_index=30),
    em.PreVoteReply(term=Term(9), granted=True),
    em.VoteRequest(term=Term(9), last_term=2, last_index=30, handover=True),
    em.VoteReply(term=Term(9), granted=False),
    em.TimeoutNow(term=Term(9)),
    em.View(term=Term(9), master=A),
    em.View(term=Term(9), master=None),
]


def test_message_catalogue_is_in_the_election_tag_range() -> None:
    assert set(em.MESSAGES.values()) == {type(m) for m in EXAMPLES}
    assert all(60 <= tag <= 79 for tag in em.MESSAGES)


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_messages_round_trip_through_the_wire(message: em.ElectionMessage) -> None:
    assert wire.decode(wire.encode(message)) == [message]


def test_a_shrinking_group_completes_a_pending_election_at_once() -> None:
    m = machine(A, AVAILABLE)
    m.start(0.0)
    m.step(LinksChanged(peers=frozenset({B, C})), 0.0)
    now, effects = fire(m)
    assert [type(x) for x in sent(effects)] == [em.PreVoteRequest]
    effects = m.step(LinksChanged(peers=frozenset()), now)  # b and c are gone: a is its whole group
    assert effects[0] == MasterChanged(master=A, term=m.term)
    assert m.role is Standing.MASTER


def test_a_candidate_completes_when_non_voters_disconnect() -> None:
    m = machine(A, AVAILABLE)
    m.start(0.0)
    m.step(LinksChanged(peers=frozenset({B, C})), 0.0)
    now, effects = fire(m)
    (pre,) = sent(effects)
    m.step(Received(sender=B, message=em.PreVoteReply(term=pre.term, granted=True)), now)
    assert m.role is Standing.CANDIDATE
    effects = m.step(LinksChanged(peers=frozenset()), now)
    assert effects[0] == MasterChanged(master=A, term=m.term)


def test_election_package_imports_no_io_clock_or_randomness() -> None:
    import ast
    import pathlib

    import movex_p2p.election

    banned = {"asyncio", "anyio", "aiortc", "zeroconf", "time", "random", "logging", "socket"}
    package = pathlib.Path(movex_p2p.election.__file__).parent
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text())
        type_checking_only = {
            id(node)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
            for node in ast.walk(block)
        }
        for node in ast.walk(tree):
            if id(node) in type_checking_only:
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            assert not {n.split(".")[0] for n in names} & banned, f"{path.name} imports {names}"


def test_available_survivor_suspects_a_silent_master_its_transport_still_reports() -> None:
    b = machine(B, AVAILABLE)
    b.start(0.0)
    b.step(LinksChanged(peers=frozenset({A})), 0.0)
    b.step(Received(sender=A, message=beat(A, term_of(1, A), voters=(A, B), successors=(B,))), 0.0)
    silent_at, _ = fire(b)  # a went silent, its link still looks open: it still counts, a while
    assert b.role is Standing.FOLLOWER
    now, effects = fire(b)
    while b.master != B:
        now, effects = fire(b)
    assert now - silent_at <= 2 * AVAILABLE.election_timeout
    assert effects[0] == MasterChanged(master=B, term=b.term)
    # a speaks again: it counts again
    b.step(Received(sender=A, message=em.HeartbeatAck(term=b.term, seq=1, last_term=0, last_index=0)), 1.0)
    assert b._group() == {A, B}


def test_available_peers_silent_through_a_pre_vote_round_leave_the_group() -> None:
    b = machine(B, AVAILABLE)
    b.start(0.0)
    b.step(LinksChanged(peers=frozenset({A, C})), 0.0)
    _, effects = fire(b)
    assert [type(x) for x in sent(effects)] == [em.PreVoteRequest]
    assert b.role is Standing.FOLLOWER
    silent_at, effects = fire(b)  # asked again (the request or its reply may have been lost)
    assert [type(x) for x in sent(effects)] == [em.PreVoteRequest] * 2
    while not any(isinstance(e, ToOthers) for e in effects):
        silent_at, effects = fire(b)  # nobody answered a whole round: they are silent, yet still counted for a while
    assert b.role is Standing.FOLLOWER
    now = silent_at
    while b.master != B:  # silent for an election timeout: b is its own group
        now, _ = fire(b)
    assert now - silent_at <= 2 * AVAILABLE.election_timeout

    m = machine(B, MAJORITY)  # MAJORITY never shrinks its quorum that way
    m.start(0.0)
    m.step(LinksChanged(peers=frozenset({A, C})), 0.0)
    fire(m)
    fire(m)
    assert m.role is Standing.FOLLOWER


def test_a_follower_that_misses_heartbeats_keeps_its_master_while_it_asks_for_pre_votes() -> None:
    # The flood's resyncs: a follower that heard no heartbeat for a while (lost datagrams, a busy
    # loop) used to forget its master while its pre-vote ran; its replica then fenced the entries
    # of the master everyone else still followed and resynced on the next gap.
    b = follower_of(A, T7, B)
    now, effects = fire(b)  # no heartbeat for a whole election timeout
    (pre,) = sent(effects)
    assert isinstance(pre, em.PreVoteRequest)
    assert not [e for e in effects if isinstance(e, MasterChanged)]
    assert (b.master, b.term, b.role) == (A, T7, Standing.FOLLOWER)
    # the others still hear the master, so they refuse; then its next heartbeat arrives
    refused = em.PreVoteReply(term=T7, granted=False)
    assert b.step(Received(sender=C, message=refused), now) == []
    heartbeat = em.Heartbeat(term=T7, seq=9, successors=(B, C))
    effects = b.step(Received(sender=A, message=heartbeat), now + 0.01)
    assert [type(e) for e in effects] == [Send]  # just the ack: no change of master was ever announced
    assert b.master == A


# -- startup, stalls and agreement ---------------------------------------------------------------


@pytest.mark.parametrize("config", POLICIES)
def test_a_fresh_peer_next_to_discovered_ones_does_not_elect_itself(config: ElectionConfig) -> None:
    m = machine(A, config)
    m.start(0.0)
    m.step(Joining(peers=frozenset({"b", "c", "@10.0.0.9:7000"})), 0.0)  # found, no link yet
    now = 0.0
    for _ in range(20):
        now, effects = fire(m)
        assert m.role is not Standing.MASTER
        assert not any(isinstance(e, MasterChanged) and e.master == A for e in effects)
    m.step(Joining(peers=frozenset()), now)  # they never linked: the window closed
    now, _ = fire(m)
    assert m.role is Standing.MASTER  # alone, it elects itself


def test_joining_ends_once_a_master_is_known() -> None:
    b = follower_of(A, T7)
    b.step(Joining(peers=frozenset({"x", "y", "z"})), 0.0)
    b.step(LinksChanged(peers=frozenset({C})), 0.1)  # its master is gone: a 2-peer group elects
    now = 0.1
    while b.role is not Standing.CANDIDATE and now < 5:
        now, effects = fire(b)
        for e in effects:
            if isinstance(e, ToOthers) and isinstance(e.message, em.PreVoteRequest):
                b.step(Received(sender=C, message=em.PreVoteReply(term=e.message.term, granted=True)), now)
    assert b.role is Standing.CANDIDATE  # discovery no longer holds it back


def test_a_timer_that_fires_long_after_its_deadline_gives_unread_heartbeats_one_chance() -> None:
    b = follower_of(A, T7)
    due = b.deadline
    assert due is not None
    late = due + 1.0  # this peer's loop stalled for a second
    assert sent(b.step(Tick(), late)) == []  # no pre-vote yet: the master's heartbeats may be unread
    b.step(Received(sender=A, message=em.Heartbeat(term=T7, seq=9, successors=())), late + 0.01)
    assert b.master == A
    now = b.deadline
    assert now is not None
    assert any(isinstance(m, em.PreVoteRequest) for m in sent(b.step(Tick(), now)))  # on time: suspicion


def test_agreement_needs_every_linked_peer_to_follow_the_same_master() -> None:
    b = follower_of(A, T7)  # linked to A and C
    assert not b.agreed(0.0)
    b.step(Received(sender=A, message=em.View(term=T7, master=A)), 0.0)
    assert not b.agreed(0.0)  # C has not said yet
    b.step(Received(sender=C, message=em.View(term=Term(6 << 32), master=C)), 0.0)
    assert not b.agreed(0.0)  # C follows another master
    b.step(Received(sender=C, message=em.View(term=T7, master=A)), 0.0)
    assert b.agreed(0.0)
    b.step(LinksChanged(peers=frozenset({A, C, D})), 0.0)
    assert not b.agreed(0.0)  # a new link: what does it follow?
    assert b.agreed(VIEW_GRACE + 0.01)  # one that never says is not waited for


def test_views_go_out_on_every_change_and_to_new_links() -> None:
    m = machine(A)
    m.start(0.0)
    m.step(LinksChanged(peers=frozenset({B})), 0.0)
    now, effects = fire(m)
    while m.role is not Standing.MASTER:
        for e in effects:
            if isinstance(e, ToOthers) and isinstance(e.message, em.PreVoteRequest | em.VoteRequest):
                if isinstance(e.message, em.PreVoteRequest):
                    reply: em.ElectionMessage = em.PreVoteReply(term=e.message.term, granted=True)
                else:
                    reply = vote_reply(B, e.message.term, A)
                effects = m.step(Received(sender=B, message=reply), now)
                break
        else:
            now, effects = fire(m)
    views = [e for e in effects if isinstance(e, ToOthers) and isinstance(e.message, em.View)]
    assert [v.message for v in views] == [em.View(term=m.term, master=A)]
    effects = m.step(LinksChanged(peers=frozenset({B, C})), now)
    assert [e for e in effects if isinstance(e, Send) and isinstance(e.message, em.View)] == [
        Send(to=C, message=em.View(term=m.term, master=A))
    ]


def test_a_follower_still_behind_the_masters_log_a_second_later_reports_again() -> None:
    b = follower_of(A, T7)
    beat = em.Heartbeat(term=T7, seq=2, successors=(), index=40)
    assert not any(isinstance(e, Lagging) for e in b.step(Received(sender=A, message=beat), 0.1))
    b.step(LogPosition(term=7 << 32, index=39), 0.5)  # entries arrive, but not the last one
    late = em.Heartbeat(term=T7, seq=3, successors=(), index=41)
    assert any(isinstance(e, Lagging) for e in b.step(Received(sender=A, message=late), 1.2))
    b.step(LogPosition(term=7 << 32, index=41), 1.3)  # caught up: no more reports
    beat = em.Heartbeat(term=T7, seq=4, successors=(), index=41)
    assert not any(isinstance(e, Lagging) for e in b.step(Received(sender=A, message=beat), 2.5))


def test_a_follower_linked_only_to_its_master_does_not_take_the_room_when_a_few_heartbeats_are_lost() -> None:
    # 10 % loss, 4 peers still meshing: b's only link is to master a. Three heartbeats in a row
    # lost (a few times a minute at that loss) used to make b a group of one that won alone;
    # its higher term then deposed a, which every other peer still followed.
    b = follower_of(A, T7, B)
    b.step(LinksChanged(peers=frozenset({A})), 0.0)
    now, _ = fire(b)  # a silent for an election timeout
    assert (b.role, b.master) == (Standing.FOLLOWER, A)
    heartbeat = em.Heartbeat(term=T7, seq=9, successors=(B,))
    b.step(Received(sender=A, message=heartbeat), now + 0.05)  # the next one arrives
    assert (b.role, b.master, b.term) == (Standing.FOLLOWER, A, T7)
    assert b._group() == {A, B}


@pytest.mark.parametrize("config", POLICIES)
def test_a_lost_vote_reply_costs_a_re_ask_not_a_round(config: ElectionConfig) -> None:
    """Found at 20 % datagram loss in a 2-peer room (Simulation seed 747): each lost VoteReply cost
    the candidate its round, and its voter refuses it a new term for two election timeouts, so the
    room took 3.5 s to elect. The candidate now asks again within its round, in the same term."""
    a, b = machine(A, config), machine(B, config)
    for m, other in ((a, B), (b, A)):
        m.start(0.0)
        m.step(LinksChanged(peers=frozenset({other})), 0.0)

    def deliver(effects: list[Effect], to: ElectionMachine, sender: PeerId, now: float) -> list[Effect]:
        out: list[Effect] = []
        for message in sent(effects):
            out += to.step(Received(sender=sender, message=message), now)
        return out

    now, effects = fire(a)
    while not any(isinstance(m, em.PreVoteRequest) for m in sent(effects)):
        now, effects = fire(a)
    requests = deliver(deliver(effects, b, A, now), a, B, now)  # pre-vote granted: a campaigns
    (request,) = [m for m in sent(requests) if isinstance(m, em.VoteRequest)]
    started = now
    deliver(requests, b, A, now)  # b votes; its VoteReply is lost
    assert a.role is Standing.CANDIDATE
    now, effects = fire(a)
    assert now - started <= 0.1 + 1e-9
    assert sent(effects) == [request]  # the same request: same term, asked again of b only
    deliver(deliver(effects, b, A, now), a, B, now)
    assert a.master == A
    assert a.term == request.term
