"""Property tests: seeded fault schedules (kill, partition, heal, loss, delay) on the virtual-time Cluster."""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from movex_p2p.election.machine import ElectionConfig, Policy, salt_of, term_owner_salt
from movex_p2p.election.sim import Cluster
from movex_p2p.ids import PeerId, Term

FAULT_WINDOW = 3.0
"""Faults happen in [0, FAULT_WINDOW); then the network heals and loss stops."""
CONVERGE_WITHIN = 2.0
"""Virtual seconds after the faults stop by which every live peer must know the same master."""
SETTINGS = settings(deadline=None, derandomize=True, database=None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """One scheduled fault."""

    at: float
    kind: str
    arg: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """A cluster size, network conditions and a fault schedule."""

    policy: Policy
    size: int
    seed: int
    max_delay: float
    down_delay: float
    faults: tuple[Fault, ...]


def scenarios(policy: Policy | None = None, min_size: int = 1) -> st.SearchStrategy[Scenario]:
    fault = st.builds(
        Fault,
        at=st.floats(0.05, FAULT_WINDOW - 0.01),
        kind=st.sampled_from(["kill", "partition", "heal", "loss"]),
        arg=st.integers(0, 255),
    )
    return st.builds(
        Scenario,
        policy=st.just(policy) if policy is not None else st.sampled_from(Policy),
        size=st.integers(min_size, 7),
        seed=st.integers(0, 2**32),
        max_delay=st.sampled_from([0.002, 0.02, 0.08]),
        down_delay=st.sampled_from([0.0, 0.05, 0.3, 0.8]),
        faults=st.lists(fault, max_size=10).map(lambda fs: tuple(sorted(fs, key=lambda f: f.at))),
    )


def build(s: Scenario) -> Cluster:
    return Cluster(
        s.size,
        config=ElectionConfig(policy=s.policy),
        rng=random.Random(s.seed),
        delay=(0.001, s.max_delay),
        down_delay=s.down_delay,
    )


def play(c: Cluster, s: Scenario) -> None:
    """Run the fault schedule, then heal everything and stop the loss."""
    peers = sorted(c.machines)
    for f in s.faults:
        c.run_until(f.at)
        match f.kind:
            case "kill":
                victim = peers[f.arg % len(peers)]
                if len(c.alive - {victim}) >= 1:
                    c.kill(victim)
            case "partition":
                c.partition([p for i, p in enumerate(peers) if f.arg >> i & 1])
            case "heal":
                c.heal()
            case _:
                c.loss = (f.arg % 5) / 10
    c.run_until(FAULT_WINDOW)
    c.heal()
    c.loss = 0.0


def settled(c: Cluster) -> bool:
    masters = c.masters()
    return len(masters) == 1 and all(m == masters[0] for m in c.known_masters().values())


def check_one_master_per_term(c: Cluster) -> None:
    owner: dict[Term, PeerId] = {}
    for e in c.elected:
        assert owner.setdefault(e.term, e.peer) == e.peer, f"two masters in term {e.term}"
        assert term_owner_salt(e.term) == salt_of(e.peer)
    for (voter, term), candidates in c.votes.items():
        assert len(candidates) == 1, f"{voter} voted twice in term {term}: {candidates}"


@settings(SETTINGS, max_examples=300)
@given(s=scenarios())
def test_at_most_one_master_per_term(s: Scenario) -> None:
    c = build(s)
    play(c, s)
    c.run(1.0)
    check_one_master_per_term(c)


@settings(SETTINGS, max_examples=300)
@given(s=scenarios())
def test_one_master_known_by_every_live_peer_once_faults_stop(s: Scenario) -> None:
    c = build(s)
    play(c, s)
    quorum = s.size // 2 + 1
    if s.policy is Policy.MAJORITY and len(c.alive) < quorum:
        c.run(CONVERGE_WITHIN)  # no live quorum: nothing may be elected by the dead's absence
        assert not any(c.machines[p].can_confirm(c.now) for p in c.alive)
        return
    c.run_until(FAULT_WINDOW + CONVERGE_WITHIN)
    assert settled(c), c.known_masters()
    master = c.masters()[0]
    assert c.machines[master].term == max(c.machines[p].term for p in c.alive)
    assert c.machines[master].can_confirm(c.now)
    changes = len(c.changes)
    c.run(2.0)  # and it stays that way: no further change of master or term anywhere
    assert c.changes[changes:] == []
    check_one_master_per_term(c)


@settings(SETTINGS, max_examples=300)
@given(s=scenarios(Policy.MAJORITY, min_size=2))
def test_majority_master_never_confirms_without_a_live_quorum(s: Scenario) -> None:
    c = build(s)
    lease = c.config.lease
    quorum = s.size // 2 + 1
    checked = [0]

    def no_split_brain(c: Cluster) -> None:
        confirming = [p for p in sorted(c.alive) if c.machines[p].can_confirm(c.now)]
        assert len(confirming) <= 1, f"two confirming masters at {c.now}: {confirming}"
        for m in confirming:
            recent = [p for p in c.machines if p != m and c.now - c.last_linked(m, p) <= lease]
            assert len(recent) + 1 >= quorum, f"{m} confirms at {c.now} without a live quorum"
            checked[0] += 1

    c.observers.append(no_split_brain)
    play(c, s)
    c.run(1.0)
    if len(c.alive) >= quorum:
        assert checked[0] > 0  # the invariant was exercised, not vacuous
