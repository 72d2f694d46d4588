"""A room member running modified code against the election: it cannot buy a term, only win one by votes.

Signed election machines (as every real peer runs) in virtual time; the liar is a peer of the
room whose own machine stays silent while the test speaks for it with forged messages. Each test
names what release 0.1 did under the same attack.
"""

from __future__ import annotations

import random

import pytest

from movex_p2p import wire
from movex_p2p.election import messages as em
from movex_p2p.election.machine import (
    MAX_ROUND,
    SALT_BITS,
    ElectionConfig,
    ElectionMachine,
    LinksChanged,
    Policy,
    Standing,
    salt_of,
    term_round,
)
from movex_p2p.election.sim import Cluster
from movex_p2p.errors import RemoteProtocolError
from movex_p2p.identity import Identity
from movex_p2p.ids import PeerId, Term
from movex_p2p.proofs import prove
from movex_p2p.signing import ED25519, Signer

AVAILABLE = ElectionConfig(policy=Policy.AVAILABLE)
MAJORITY = ElectionConfig(policy=Policy.MAJORITY)


def room(size: int = 4, *, config: ElectionConfig = AVAILABLE, seed: int = 3) -> tuple[Cluster, PeerId, Signer]:
    """``size`` signed peers, the last one a liar (silent machine); returns the cluster once a master is settled."""
    cluster = Cluster(size, config=config, rng=random.Random(seed), ed25519=True, inert=[size - 1])
    liar = cluster.ids[-1]
    honest = cluster.ids[:-1]
    settled = cluster.run_until(
        3.0, until=lambda c: len({c.machines[p].master for p in honest} - {None}) == 1 and len(c.masters()) == 1
    )
    assert settled, cluster.known_masters()
    return cluster, liar, cluster.signers[liar]


def term_of(liar: PeerId, round_: int) -> Term:
    return Term((round_ << SALT_BITS) | salt_of(liar))


def honest(cluster: Cluster, liar: PeerId) -> list[PeerId]:
    return [p for p in cluster.ids if p != liar]


def test_claiming_a_higher_term_with_no_votes_makes_nobody_follow() -> None:
    """0.1: a heartbeat with any higher term made every peer follow its sender: master at will."""
    cluster, liar, key = room()
    master = cluster.masters()[0]
    term = cluster.machines[master].term
    forged = term_of(liar, term_round(term) + 1)
    own_vote = prove(key, "vote", forged, liar)
    for peer in honest(cluster, liar):
        cluster.inject(liar, peer, em.Heartbeat(term=forged, seq=1, successors=(), cert=(own_vote,)))
        cluster.inject(liar, peer, em.Heartbeat(term=forged, seq=2, successors=()))  # no certificate at all
    cluster.run(1.0)
    assert cluster.masters() == [master]
    assert all(cluster.machines[p].master == master for p in honest(cluster, liar))
    assert all(cluster.machines[p].term == term for p in honest(cluster, liar))


def test_votes_signed_by_someone_else_or_for_another_term_count_for_nothing() -> None:
    """0.1 had no certificates; here a certificate must hold real votes for this very term and sender."""
    cluster, liar, _key = room()
    master = cluster.masters()[0]
    term = cluster.machines[master].term
    forged = term_of(liar, term_round(term) + 1)
    others = [cluster.signers[p] for p in honest(cluster, liar)]
    stolen = tuple(prove(o, "vote", term, master) for o in others)  # real votes, for the real master's term
    made_up = tuple(Identity(bytes([i]) * 32).public_key + bytes(64) for i in range(3))
    cluster.inject(liar, master, em.Heartbeat(term=forged, seq=1, successors=(), cert=stolen + made_up))
    for peer in honest(cluster, liar):
        cluster.inject(liar, peer, em.Heartbeat(term=forged, seq=1, successors=(), cert=stolen + made_up))
    cluster.run(1.0)
    assert cluster.masters() == [master]


@pytest.mark.parametrize(
    "forge",
    [
        lambda t: em.HeartbeatAck(term=t, seq=1, last_term=0, last_index=0),
        lambda t: em.PreVoteReply(term=t, granted=False),
        lambda t: em.VoteReply(term=t, granted=False),
        lambda t: em.VoteReply(term=t, granted=True),
        lambda t: em.TimeoutNow(term=t),
    ],
    ids=["ack", "prevote-reply", "vote-refused", "vote-granted", "timeout-now"],
)
def test_a_reply_with_a_higher_term_never_deposes_the_master(forge: object) -> None:
    """0.1: any election message with a higher term made a master step down (one message, no master)."""
    cluster, liar, _ = room()
    master = cluster.masters()[0]
    term = cluster.machines[master].term
    for round_ in (term_round(term) + 1, term_round(term) + 1000):
        for peer in cluster.ids[:-1]:
            cluster.inject(liar, peer, forge(term_of(liar, round_)))  # type: ignore[operator]
    cluster.run(1.0)
    assert cluster.masters() == [master]
    assert cluster.machines[master].term == term


def test_a_handover_needs_the_masters_signed_grant() -> None:
    """0.1: a TimeoutNow from anyone (or a VoteRequest flagged handover) skipped the live-master check."""
    cluster, liar, key = room()
    master = cluster.masters()[0]
    term = cluster.machines[master].term
    follower = next(p for p in honest(cluster, liar) if p != master)
    cluster.inject(liar, follower, em.TimeoutNow(term=term, grant=prove(key, "handover", term, follower)))
    forged = term_of(liar, term_round(term) + 1)
    for peer in honest(cluster, liar):
        request = em.VoteRequest(term=forged, last_term=10**6, last_index=10**9, handover=True)
        cluster.inject(liar, peer, request)
    cluster.run(1.0)
    assert cluster.masters() == [master]
    assert cluster.machines[master].term == term


def test_one_message_per_election_cannot_keep_the_room_masterless() -> None:
    """0.1: at every election, one VoteRequest for the next round claiming the best log won the
    votes of the room, and its sender never became master: the room stayed masterless."""
    cluster, liar, _ = room(5)
    first = cluster.masters()[0]
    cluster.kill(first)
    disruptions = 0

    def disrupt(c: Cluster) -> None:
        nonlocal disruptions
        live = [p for p in c.ids if p in c.alive and p != liar]
        if any(c.machines[p].role is Standing.CANDIDATE for p in live):  # an election runs: spoil it
            top = max(c.machines[p]._ballot for p in live)
            forged = term_of(liar, term_round(Term(top)) + 1)
            if all(c.machines[p]._ballot < forged for p in live):
                disruptions += 1
                for peer in live:
                    c.inject(liar, peer, em.VoteRequest(term=forged, last_term=10**6, last_index=10**9, handover=False))

    cluster.observers.append(disrupt)
    elected = cluster.run_until(cluster.now + 10.0, until=lambda c: bool(c.masters()) and c.masters()[0] != first)
    assert elected, f"still masterless after {disruptions} disruptions"
    assert disruptions >= 1


def test_terms_are_bounded_on_the_wire_and_in_the_machine() -> None:
    """0.1: a term of 2**15000 was accepted, after which master values could not be drawn any more."""
    huge = wire.encode(em.Heartbeat(term=Term(2**63), seq=1, successors=()))
    with pytest.raises(RemoteProtocolError):
        wire.decode(huge)
    assert wire.decode(wire.encode(em.Heartbeat(term=Term(2**62), seq=1, successors=())))
    cluster, liar, key = room()
    master = cluster.masters()[0]
    far = term_of(liar, MAX_ROUND)
    for peer in honest(cluster, liar):
        cluster.inject(liar, peer, em.VoteRequest(term=far, last_term=far, last_index=10**9, handover=False))
        cluster.inject(liar, peer, em.Heartbeat(term=far, seq=1, successors=(), cert=(prove(key, "vote", far, liar),)))
    cluster.run(1.0)
    assert cluster.masters() == [master]
    assert all(term_round(cluster.machines[p]._ballot) < 10 for p in honest(cluster, liar))


def test_majority_members_that_come_and_go_expire() -> None:
    """0.1: under majority every id ever seen stayed a member: ids that appeared and vanished grew
    the member set until no quorum could ever be reached again."""
    config = ElectionConfig(policy=Policy.MAJORITY, member_expiry=5.0)
    me, friend = Identity(b"m" * 32), Identity(b"f" * 32)
    machine = ElectionMachine(me.id, config=config, rng=random.Random(1), signer=me, verifier=ED25519)
    machine.start(0.0)
    now = 0.0
    for i in range(50):  # fresh ids, each connected for a moment, then gone
        ghost = Identity(i.to_bytes(2, "big") * 16).id
        machine.step(LinksChanged(peers=frozenset({friend.id, ghost})), now)
        now += 0.2
        machine.step(LinksChanged(peers=frozenset({friend.id})), now)
    assert not machine.has_quorum(frozenset({me.id, friend.id}))  # 52 members: two are no quorum
    now += config.member_expiry + 1
    machine.step(LinksChanged(peers=frozenset({friend.id})), now)
    assert machine.has_quorum(frozenset({me.id, friend.id}))
    assert machine.role is not Standing.MASTER or machine.term  # (and it may elect again)
