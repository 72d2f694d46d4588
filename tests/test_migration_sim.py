"""Host migration under seeded fault schedules: whole NodeCores in virtual time (no sockets, no sleeps)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import movex_p2p as mx
from movex_p2p.election.machine import ElectionConfig, Policy
from movex_p2p.ids import PeerId, Rid
from movex_p2p.simulation import Simulation, terms_with_two_masters

CHUNK = 32
"""Items per chunk of a log. Every peer checksums each new state, and a frozen container's digest is
cached: appending to a flat list of n items would digest all n again at every entry (quadratic: most
of these tests' time), appending to the last chunk digests at most n / CHUNK + CHUNK."""


def log_reducer(state: Any, action: mx.Action) -> Any:
    match action:
        case mx.Action("add", item):
            chunks = state["items"]
            if chunks and len(chunks[-1]) < CHUNK:
                return {**state, "items": [*chunks[:-1], [*chunks[-1], item]]}
            return {**state, "items": [*chunks, [item]]}
        case mx.Action("roll", [who, value]):
            return {**state, "rolls": {**state["rolls"], who: value}}
    return state


Log = mx.ResourceType("log", log_reducer, initial={"items": [], "rolls": {}})
"""Every item added, in the order applied (in chunks: :func:`log_items` lists them)."""


def log_items(state: Any) -> list[tuple[str, int]]:
    """A log's items in the order they were applied."""
    return [(str(who), int(n)) for chunk in state["items"] for who, n in chunk]


def _started(size: int, seed: int, policy: Policy = Policy.AVAILABLE, loss: float = 0.0) -> tuple[Simulation, Rid]:
    """A room of ``size`` with one resource; ``loss``: the datagram lane's (election messages) loss rate."""
    sim = Simulation(size, types=[Log], seed=seed, config=ElectionConfig(policy=policy), loss=loss)
    assert sim.run(3.0, until=lambda s: len(s.masters()) == 1 and all(s.peers[p].core.client.synced for p in s.alive))
    rid = sim.create(sim.alive[-1], "log", "l")
    assert sim.run(1.0, until=lambda s: all(s.peers[p].core.client.has(rid) for p in s.alive))
    return sim, rid


def _workload(sim: Simulation, rid: Rid, *, start: float, rounds: int, period: float) -> None:
    counter = iter(range(1, 1_000_000))

    def work(s: Simulation) -> None:
        for pid in s.alive:
            s.dispatch(pid, rid, mx.Action("add", [pid, next(counter)]))

    for k in range(rounds):
        sim.at(start + k * period, "call", work, ())


def _items(sim: Simulation, pid: str, rid: Rid) -> list[tuple[str, int]]:
    return log_items(sim.state(pid, rid))


def test_master_killed_while_everyone_dispatches_loses_nothing() -> None:
    sim, rid = _started(3, seed=7)
    _workload(sim, rid, start=sim.now, rounds=60, period=0.01)
    master = sim.masters()[0]
    sim.at(sim.now + 0.3, "kill", master)
    sim.run(0.7)
    assert sim.run(5.0, until=lambda s: s.converged(rid))
    assert sim.masters() != [master]
    final = _items(sim, sim.alive[0], rid)
    assert len(final) == len(set(final)), "an action was applied twice"
    for pid in sim.alive:
        peer = sim.peers[pid]
        mine = {(pid, a.payload[1]) for a in peer.dispatched.values()}
        assert mine <= set(final), f"{pid} lost actions"
        assert not peer.rejected
        assert set(peer.confirmed) == set(peer.dispatched)


def test_master_values_resolved_before_failover_are_kept() -> None:
    sim, rid = _started(3, seed=11)
    client = next(p for p in sim.alive if p not in sim.masters())
    sim.dispatch(client, rid, mx.Action("roll", [client, mx.master.random_int(1, 1_000_000)]))
    assert sim.run(1.0, until=lambda s: client in s.state(client, rid)["rolls"])
    drawn = sim.state(client, rid)["rolls"][client]
    sim.kill(sim.masters()[0])
    assert sim.run(5.0, until=lambda s: s.converged(rid))
    for pid in sim.alive:
        assert sim.state(pid, rid)["rolls"][client] == drawn


def test_a_follower_that_misses_heartbeats_keeps_its_master_and_its_replica() -> None:
    # The 8-peer flood's resyncs, deterministic: while everyone floods (an action every 2 ms per
    # peer), heartbeats to one follower are lost for 0.6 s (in the flood they came late: busy
    # loops, heartbeats behind data). Its election timer fires; it must keep following the
    # master the others still follow and apply every entry: no flap, no resync.
    sim, rid = _started(3, seed=0)
    master = sim.masters()[0]
    follower = next(p for p in sim.alive if p != master)
    before = sim.peers[follower].master_changes
    _workload(sim, rid, start=sim.now, rounds=600, period=0.002)
    sim.links.set_loss(1.0, link=(master, follower))  # every datagram (election message) on that link
    sim.at(sim.now + 0.6, "call", lambda s: s.links.set_loss(0.0, link=(master, follower)), ())
    sim.run(1.2)
    assert sim.run(3.0, until=lambda s: s.converged(rid))
    assert [sim.peers[p].resyncs for p in sim.alive] == [0, 0, 0]
    assert sim.peers[follower].master_changes == before
    assert sim.masters() == [master]
    assert len(_items(sim, follower, rid)) == 3 * 600


def test_two_peer_room_keeps_playing_when_one_dies() -> None:
    sim, rid = _started(2, seed=5)
    survivor = next(p for p in sim.alive if p not in sim.masters())
    sim.kill(sim.masters()[0])
    sim.dispatch(survivor, rid, mx.Action("add", [survivor, 1]))
    assert sim.run(3.0, until=lambda s: s.converged(rid))
    assert sim.masters() == [survivor]
    assert (survivor, 1) in _items(sim, survivor, rid)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    size=st.integers(2, 5),
    kills=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 4)), max_size=2),
    kill_master_at=st.none() | st.floats(0.0, 1.0),
    policy=st.sampled_from([Policy.AVAILABLE, Policy.MAJORITY]),
    loss=st.sampled_from([0.0, 0.0, 0.05, 0.2]),
)
def test_kills_never_lose_or_double_what_survivors_saw(
    seed: int,
    size: int,
    kills: list[tuple[float, int]],
    kill_master_at: float | None,
    policy: Policy,
    loss: float,
) -> None:
    sim, rid = _started(size, seed, policy, loss)
    t0 = sim.now
    _workload(sim, rid, start=t0, rounds=40, period=0.025)

    def kill(s: Simulation, who: int | None) -> None:
        victims = s.masters() if who is None else [s.ids[who % size]]
        # someone always survives; under MAJORITY a quorum of the room does
        floor = size // 2 + 1 if policy is Policy.MAJORITY else 1
        if len(s.alive) > floor and victims and victims[0] in s.alive:
            s.kill(victims[0])

    for at, who in kills:
        sim.at(t0 + at, "call", kill, (who,))
    if kill_master_at is not None:
        sim.at(t0 + kill_master_at, "call", kill, (None,))
    sim.run(1.2)
    # what survivors held when the last fault hit: none of it may be lost
    seen = {pid: set(_items(sim, pid, rid)) for pid in sim.alive}
    assert sim.run(8.0, until=lambda s: s.converged(rid)), "no convergence after faults stopped"
    assert not terms_with_two_masters(sim.elected)
    final = _items(sim, sim.alive[0], rid)
    assert len(final) == len(set(final)), "an action was applied twice"
    for pid in sim.alive:
        assert seen[pid] <= set(final), f"{pid} saw actions that were lost"
        peer = sim.peers[pid]
        mine = {(pid, a.payload[1]) for a in peer.dispatched.values()}
        assert mine <= set(final), f"{pid}'s own actions were lost"
        if policy is Policy.MAJORITY:
            confirmed = {(pid, a.payload[1]) for a in peer.confirmed.values()}
            assert confirmed <= set(final), f"{pid}: a confirmed action was rolled back"


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    size=st.integers(3, 5),
    split=st.integers(1, 2),
    at=st.floats(0.0, 0.5),
    length=st.floats(0.1, 1.5),
    policy=st.sampled_from([Policy.AVAILABLE, Policy.MAJORITY]),
    loss=st.sampled_from([0.0, 0.0, 0.05, 0.2]),
)
def test_partitions_heal_to_one_master_and_one_checksum(
    seed: int, size: int, split: int, at: float, length: float, policy: Policy, loss: float
) -> None:
    sim, rid = _started(size, seed, policy, loss)
    t0 = sim.now
    _workload(sim, rid, start=t0, rounds=30, period=0.03)
    side = [str(p) for p in sim.ids[:split]]
    rest = [str(p) for p in sim.ids[split:]]
    sim.at(t0 + at, "partition", side, rest)
    sim.at(t0 + at + length, "heal")
    sim.run(at + length + 0.01)
    assert sim.run(8.0, until=lambda s: s.converged(rid)), "no convergence after the partition healed"
    assert not terms_with_two_masters(sim.elected)
    final = _items(sim, sim.alive[0], rid)
    assert len(final) == len(set(final)), "an action was applied twice"
    # MAJORITY: an action is confirmed only once a quorum holds it, so it is never rolled back.
    # AVAILABLE: a split's losing side may confirm actions the winner lacks; on heal their
    # authors re-send them (rebase), so they are not lost either.
    for pid in sim.alive:
        peer = sim.peers[pid]
        confirmed = {(pid, a.payload[1]) for a in peer.confirmed.values()}
        assert confirmed <= set(final), f"{pid}: a confirmed action was lost"


@pytest.mark.parametrize("seed", [3, 4, 20])
def test_twelve_peers_lose_the_master_mid_flood_and_nothing_is_doubled(seed: int) -> None:
    """Found at 12 peers with 1-30 ms links: a new master still recovering adopted a pulled replica
    and published it at once, before a newer one came in; authors whose own actions the newer
    replica held took them for lost and sent them again (an action applied twice). Pulled
    replicas are now published only once recovery ends."""
    sim = Simulation(12, types=[Log], seed=seed, delay=(0.001, 0.03), detect_after=0.5)
    assert sim.run(5.0, until=lambda s: len(s.masters()) == 1 and all(s.peers[p].core.client.synced for p in s.alive))
    rid = sim.create(sim.alive[-1], "log", "l")
    assert sim.run(2.0, until=lambda s: all(s.peers[p].core.client.has(rid) for p in s.alive))
    _workload(sim, rid, start=sim.now, rounds=100, period=0.01)
    sim.at(sim.now + 0.5, "kill", sim.masters()[0])
    sim.run(1.5)
    assert sim.run(20.0, until=lambda s: s.converged(rid))
    final = _items(sim, sim.alive[0], rid)
    assert len(final) == len(set(final)), "an action was applied twice"
    for pid in sim.alive:
        peer = sim.peers[pid]
        assert set(peer.confirmed) == set(peer.dispatched), f"{pid}: actions left unconfirmed"


def _flapping(seed: int, size: int, flaps: int, policy: Policy) -> None:
    """Partitions come and go while everyone dispatches; after the last heal nothing is lost or doubled."""
    rng = random.Random(seed)
    sim = Simulation(size, types=[Log], seed=seed, delay=(0.001, 0.03), config=ElectionConfig(policy=policy))
    assert sim.run(5.0, until=lambda s: len(s.masters()) == 1 and all(s.peers[p].core.client.synced for p in s.alive))
    rid = sim.create(sim.alive[-1], "log", "l")
    assert sim.run(2.0, until=lambda s: all(s.peers[p].core.client.has(rid) for p in s.alive))
    t0 = t = sim.now
    _workload(sim, rid, start=t0, rounds=120, period=0.02)
    for _ in range(flaps):
        ids = [str(p) for p in sim.ids]
        rng.shuffle(ids)
        cut = rng.randint(1, size - 1)
        t += rng.uniform(0.2, 0.8)
        sim.at(t, "partition", ids[:cut], ids[cut:])
        t += rng.uniform(0.1, 0.8)
        sim.at(t, "heal")
    sim.run(max(t, t0 + 2.5) - sim.now + 0.01)
    assert sim.run(20.0, until=lambda s: s.converged(rid)), "no convergence after the last heal"
    final = _items(sim, sim.alive[0], rid)
    assert len(final) == len(set(final)), "an action was applied twice"
    for pid in sim.alive:
        confirmed = {(pid, a.payload[1]) for a in sim.peers[pid].confirmed.values()}
        assert confirmed <= set(final), f"{pid}: a confirmed action was lost"


@pytest.mark.parametrize(
    ("seed", "size", "flaps", "policy"),
    [
        (15, 6, 6, Policy.AVAILABLE),
        (19, 6, 6, Policy.AVAILABLE),
        (3, 5, 3, Policy.MAJORITY),
        (128, 8, 3, Policy.AVAILABLE),
        (7, 7, 2, Policy.MAJORITY),
        (20261, 4, 4, Policy.MAJORITY),
        (2867889010, 4, 6, Policy.AVAILABLE),
    ],
)
def test_flapping_partitions_regressions(seed: int, size: int, flaps: int, policy: Policy) -> None:
    """Seed 19 doubled: two masters of one split both applied an action; after the heal its author
    re-sent it although the winning log held it (the author now asks the log by seq, not by who
    wrote that version). Seed 15 lost: actions a snapshot confirmed were never kept for a later
    rebase (they now are, like any confirmation). Seed 3 (``majority``) left a peer's actions
    pending for good: it missed the Committed that covered them while cut off, and nothing new
    was committed after the heal (a master now tells each peer the commit index it catches up).
    Seed 128 left a peer one entry behind in a quiet room: a short cut lost it and no later entry
    showed the gap (heartbeats now name the master's log index; a follower still short of it a
    second later reports again and is caught up). Seed 7 (``majority``, found by the property
    test below) left a peer masterless for good: a recovering master sealed the heads of two
    replicas it pulled one after the other at one log index, and the peer that compared the two
    seals took its honest master for forked and distrusted it (a master now never seals while
    recovering, nor twice at one index). Seed 20261 (``majority``, found by the property test)
    left 23 of a peer's actions pending for good in a quiet room: two followers' acks were lost in
    a cut, no newer entry came to ack again, so the master's commit stayed 22 entries short (an
    ack the commit has not counted now goes again after ACK_AGAIN). Seed 2867889010 doubled 32
    actions once a new master was given more patience: their author had re-sent them under new
    seqs to the master of another split, which never applied them; the master whose log held them
    under their first seqs came back and got the re-sends at once, before the author had its log
    (a re-send now waits for the new master's log: ``PendingQueue.unsure``)."""
    _flapping(seed, size, flaps, policy)


@pytest.mark.timeout(360)  # up to 15 s an example on a busy 2-CPU machine
@settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    size=st.integers(3, 8),
    flaps=st.integers(1, 8),
    policy=st.sampled_from([Policy.AVAILABLE, Policy.MAJORITY]),
)
def test_flapping_partitions_lose_and_double_nothing(seed: int, size: int, flaps: int, policy: Policy) -> None:
    _flapping(seed, size, flaps, policy)


@pytest.mark.parametrize(
    ("seed", "kills", "kill_master_at"),
    [
        (1053290, [(0.84375, 1), (0.903088862277003, 0)], None),
        (3933953013, [(0.84375, 1)], 0.903),
        (4276262006, [(0.84375, 1)], 0.903),
    ],
)
def test_a_bare_majority_elects_under_heavy_loss(
    seed: int, kills: list[tuple[float, int]], kill_master_at: float | None
) -> None:
    """Signed, 5 peers, two killed, 20 % datagram loss, MAJORITY: the three left must all vote, and
    honest candidates often lose their elections to loss. Refusing a candidate after three such
    losses kept these rooms masterless past the 8 s the property test allows."""
    inner = test_kills_never_lose_or_double_what_survivors_saw.hypothesis.inner_test  # type: ignore[attr-defined]
    inner(seed=seed, size=5, kills=kills, kill_master_at=kill_master_at, policy=Policy.MAJORITY, loss=0.2)


@pytest.mark.parametrize("seed", [167104350, 2675342405, 3322559659])
def test_a_master_whose_votes_hold_runs_above_a_side_that_went_many_rounds(seed: int) -> None:
    """Signed, 4 peers split 2/2 for 1.5 s at 20 % loss: one side went 4+ rounds while the other
    kept its master. On heal that master must run above the other side's round; refusing to jump
    more than two rounds left both sides waiting for each other."""
    inner = test_partitions_heal_to_one_master_and_one_checksum.hypothesis.inner_test  # type: ignore[attr-defined]
    inner(seed=seed, size=4, split=2, at=0.46875, length=1.5, policy=Policy.AVAILABLE, loss=0.2)


def test_two_voters_refusing_one_candidate_in_turn_do_not_leave_the_room_masterless() -> None:
    # Found by the property test above (seed 21207701): after the master died, each of two
    # followers voted for the one candidate every other round (one vote per candidate until it
    # shows a master), so no round had a quorum, and every vote re-armed the other's timer.
    sim, rid = _started(4, 21207701, Policy.MAJORITY)
    t0 = sim.now
    _workload(sim, rid, start=t0, rounds=40, period=0.025)
    sim.at(t0 + 0.1875, "call", lambda s, _: s.kill(s.masters()[0]), (None,))
    sim.run(1.2)
    assert sim.run(3.0, until=lambda s: s.converged(rid)), "no master after the kill"


def _counter_room(seed: int) -> tuple[Simulation, Rid, PeerId]:
    """5 peers under ``AVAILABLE`` that agree on a master, and a counter every one of them holds."""
    from movex_p2p.testing.types import Counter

    sim = Simulation(5, types=[Counter], seed=seed, config=ElectionConfig(policy=Policy.AVAILABLE))
    assert sim.run(3.0, until=lambda s: len(s.masters()) == 1 and all(s.peers[p].core.client.synced for p in s.alive))
    rid = sim.create(sim.alive[-1], "counter", "c")
    assert sim.run(1.0, until=lambda s: all(s.peers[p].core.client.has(rid) for p in s.alive))
    (master,) = sim.masters()
    return sim, rid, master


def test_a_deposed_master_that_confirmed_thousands_of_one_authors_actions_loses_none() -> None:
    """Found in the 4-process LAN flood: a master deposed while it confirmed ~1,000 actions a second
    of each author left its successor thousands short; each author re-sent only the last 1,024 it
    kept, and the rest were lost without a word (handles settled, counts short). Authors now keep
    every own confirmation of the last ``KEEP_SECONDS`` as well."""
    from movex_p2p.resource.pending import KEEP_CONFIRMED

    sim, rid, master = _counter_room(seed=5)
    author, *others = (str(p) for p in sim.ids if p != master)
    sim.at(sim.now + 0.01, "partition", [str(master), author], others)  # the 3 elect a master; theirs wins
    total = (KEEP_CONFIRMED // 100 + 5) * 100
    for k in range(total // 100):  # bursts of 100, all confirmed by the master that will be deposed
        sim.at(sim.now + 0.05 + 0.02 * k, "call", lambda s: s.burst(author, rid, [mx.Action("increment")] * 100), ())
    sim.run(3.0)
    assert sim.state(author, rid)["count"] == total  # confirmed on the losing side
    assert sim.state(others[0], rid)["count"] == 0
    sim.at(sim.now + 0.01, "heal")
    assert sim.run(20.0, until=lambda s: s.converged(rid) and s.state(author, rid)["count"] == total)
    assert master not in sim.masters()  # the author's confirmations were the losing side's
    assert {sim.state(str(p), rid)["count"] for p in sim.alive} == {total}  # none lost, none doubled


def test_own_confirmations_too_old_to_re_send_are_reported_lost_by_seq_never_silently() -> None:
    """Found in the 8-process LAN flood on an overloaded machine: a split lasted minutes, and when it
    healed the other side's log won. Each author re-sent what it kept (its last ``KEEP_CONFIRMED``
    confirmations, and those of the last ``KEEP_SECONDS``); older ones it had confirmed were gone, and
    nothing said so. The author now names every one of them (``Rebased.lost``, a ``"lost"``
    diagnostic), exactly those the count lacks."""
    from movex_p2p.resource.pending import KEEP_CONFIRMED, KEEP_SECONDS

    sim, rid, master = _counter_room(seed=6)
    author, *others = (str(p) for p in sim.ids if p != master)
    sim.at(sim.now + 0.01, "partition", [str(master), author], others)  # the 3 elect a master; theirs wins
    old = 300  # confirmed first, then aged past KEEP_SECONDS while more than KEEP_CONFIRMED came after
    for k in range(old // 100):
        sim.at(sim.now + 0.05 + 0.02 * k, "call", lambda s: s.burst(author, rid, [mx.Action("increment")] * 100), ())
    sim.run(KEEP_SECONDS + 1.0)
    for k in range(KEEP_CONFIRMED // 100 + 1):
        sim.at(sim.now + 0.02 * k, "call", lambda s: s.burst(author, rid, [mx.Action("increment")] * 100), ())
    sim.run(KEEP_SECONDS + 1.0)
    total = old + (KEEP_CONFIRMED // 100 + 1) * 100
    assert sim.state(author, rid)["count"] == total  # all confirmed on the losing side
    sim.at(sim.now + 0.01, "heal")
    kept = total - old  # the first 300 were dropped as later ones came (over KEEP_CONFIRMED, past KEEP_SECONDS)
    assert sim.run(20.0, until=lambda s: s.converged(rid) and s.state(author, rid)["count"] == kept)
    assert master not in sim.masters()
    assert sim.peers[PeerId(author)].rebased == kept
    gone = sorted(seq for (r, seq) in sim.peers[PeerId(author)].gone if r == rid)
    assert gone == list(range(1, old + 1))  # each one the count lacks, named by seq
    sim.run(2.0)
    assert {sim.state(str(p), rid)["count"] for p in sim.alive} == {kept}
    assert len(sim.peers[PeerId(author)].gone) == old  # reported once


def _flapping_split(seed: int) -> tuple[Simulation, Rid, str]:
    """5 peers: the author confirms 50 with the master m1 (and b) while c, d elect their own; then the
    author moves over to c, d (whose log lacks the 50: it re-sends them); meanwhile m1 and b are cut
    from each other and joined again 4 times, each time electing themselves: their term climbs far
    past c, d's. Then the room heals. (The overloaded 8-process flood did this, in its own way.)"""

    sim, rid, m1 = _counter_room(seed)
    author, b, c, d = (str(p) for p in sim.ids if p != m1)
    sim.at(sim.now + 0.01, "partition", [str(m1), author, b], [c, d])
    sim.at(sim.now + 0.1, "call", lambda s: s.burst(author, rid, [mx.Action("increment")] * 50), ())
    sim.run(2.0)
    sim.at(sim.now + 0.01, "partition", [str(m1), b], [author, c, d])
    sim.run(3.0)
    for _ in range(4):
        sim.at(sim.now + 0.01, "partition", [str(m1)], [b], [author, c, d])
        sim.run(1.5)
        sim.at(sim.now + 0.01, "partition", [str(m1), b], [author, c, d])
        sim.run(1.5)
    sim.at(sim.now + 0.01, "heal")
    return sim, rid, author


def test_an_action_re_sent_after_a_split_is_not_doubled_when_the_log_that_has_it_from_before_wins() -> None:
    """Seen as "16,128 of 16,000" in the 8-process flood on a loaded machine. An author re-sent its
    confirmed actions to a new master whose log lacked them (under new seqs), then the other lineage,
    which held them under their first seqs, won: the re-sends were missing there, and the author sent
    them a second time. A re-send now remembers the seqs it had (``Pending.was``, ``Confirmed.was``)."""
    sim, rid, author = _flapping_split(seed=1)
    assert sim.run(10.0, until=lambda s: s.converged(rid))
    assert {sim.state(str(p), rid)["count"] for p in sim.alive} == {50}  # 100 before: each one twice
    assert sim.peers[PeerId(author)].rebased == 50
    assert not sim.peers[PeerId(author)].gone


@pytest.mark.parametrize("seed", [2, 3])
def test_a_room_healed_after_one_side_ran_many_more_rounds_agrees_on_a_master_within_seconds(seed: int) -> None:
    """The side whose rounds climbed while split (m1, b) had no quorum of the healed room; the master
    of the other side (a quorum, its term lower by more than ``_ROUND_STEP`` rounds) ignored their
    higher term instead of climbing toward it, and the room stayed split for good (60 s and more).
    It now climbs ``_ROUND_STEP`` rounds a time, as its docstring said."""
    sim, rid, _ = _flapping_split(seed)
    healed = sim.now
    assert sim.run(5.0, until=lambda s: s.converged(rid)), {
        str(p)[:4]: str(sim.peers[p].core.election.master)[:4] for p in sim.alive
    }
    assert sim.now - healed < 2.0
    assert {sim.state(str(p), rid)["count"] for p in sim.alive} == {50}
