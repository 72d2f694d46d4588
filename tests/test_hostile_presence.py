"""A room member running modified code against presence: spectators that write, oversized presence info,
and one identity in two processes.

Signed NodeCores (as every real peer runs) fed hand-made frames from the hostile peer, and
in-process Peers for what an honest app sees; each test names what release 0.2 did.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from typing import Any

import anyio
import pytest

import movex_p2p as mx
from movex_p2p import wire
from movex_p2p.election import messages as em
from movex_p2p.election.machine import ElectionConfig, salt_of
from movex_p2p.identity import Identity
from movex_p2p.ids import PeerId, Rid, Term
from movex_p2p.nodecore import MasterChanged, NodeCore, Ready
from movex_p2p.presence import MAX_INFO, MAX_PRESENCE, SPECTATORS_ONLY_WATCH, Introduce
from movex_p2p.proofs import prove
from movex_p2p.resource import messages as rm
from movex_p2p.resource.history import action_digest
from movex_p2p.resource.state import checksum, freeze
from movex_p2p.signing import ED25519
from movex_p2p.testing.types import Blob, Counter
from movex_p2p.transport.base import Frame, IdentityInUse, PeerDown, PeerUp
from tests.test_hostile_node import deliver, forged_snapshot
from tests.waits import settled

ME, EVIL, OTHER, NEW = (Identity(bytes([c]) * 32) for c in b"19" + b"83")

SMALL = mx.ResourceType("small", Blob.reducer, initial={"data": b""}, max_bytes=64 * 1024)
"""A type of 64 KiB states: its peers decode frames of at most 64 KiB + ``wire.DECODE_SLACK``."""
TYPES = {"counter": Counter, "small": SMALL}
LIMIT = SMALL.max_bytes + wire.DECODE_SLACK


def node(identity: Identity, *, role: mx.presence.Role = "player") -> NodeCore:
    return NodeCore(
        identity.id,
        types=TYPES,
        election=ElectionConfig(),
        rng=random.Random(identity.id),
        decode_limit=LIMIT,
        signer=identity,
        verifier=ED25519,
        role=role,
    )


def sent_to(ready: Ready, peer: Identity) -> list[wire.Message]:
    frames = [data for to, data in [*ready.frames.items(), *ready.more, *ready.datagrams.items()] if to == peer.id]
    return [m for data in frames for m in wire.decode(data, limit=wire.DECODE_LIMIT)]


def intro(role: mx.presence.Role, **info: Any) -> Introduce:
    return Introduce(name="evil", info=info, role=role, types={name: t.version for name, t in TYPES.items()})


def serving_master(*linked: Identity) -> tuple[NodeCore, float]:
    """A NodeCore that elected itself with ``linked`` (silent) peers and ended its recovery; returns it and the time."""
    core = node(ME)
    core.start(0.0, 0.0)
    core.receive([PeerUp(peer=p.id) for p in linked], 0.0, 0.0)
    now = 0.0
    while core.master is None or core.master.recovering:
        now += 0.05
        assert core.tick(now, now).faults == []
        assert now < 5, "no master"
    return core, now


# -- P6: spectators write ----------------------------------------------------------------------------


def test_a_peer_introduced_as_spectator_cannot_write_whatever_its_code_sends() -> None:
    """0.2: a ``role="spectator"`` peer could dispatch, create and remove the game."""
    core, now = serving_master(EVIL)
    rid = Counter.rid("game")
    core.create(rid, None, now, now)
    term = Term(core.master.term if core.master else 0)
    deliver(core, EVIL, intro("spectator"), now=now)
    assert core.members[EVIL.id].role == "spectator"

    def writes(seq: int) -> list[wire.Message]:
        action = mx.Action("increment")
        born = core.client.replicas[rid].incarnation
        digest = action_digest(EVIL.id, rid, seq, action, room="", term=term, incarnation=born)
        return [
            rm.Endorse(term=term, digests=(digest,), proof=prove(EVIL, "endorse", digest)),
            rm.Propose(term=term, rid=rid, seq=seq, base=0, action=action, incarnation=born),
            rm.Create(term=term, req=seq * 10, rid=Counter.rid(f"mine{seq}"), state=None, exist_ok=True),
            rm.Remove(term=term, req=seq * 10 + 1, rid=rid),
        ]

    def refused(ready: Ready) -> list[str]:
        return [
            m.reason if isinstance(m, rm.Rejected) else str(m.error)
            for m in sent_to(ready, EVIL)
            if isinstance(m, rm.Rejected | rm.Replied)
        ]

    ready = deliver(core, EVIL, *writes(1), now=now)
    assert refused(ready) == [SPECTATORS_ONLY_WATCH] * 3
    assert core.client.replicas[rid].state == {"count": 0}
    assert core.client.has(rid)
    assert not core.client.has(Counter.rid("mine1"))
    # a second introduction on the same link changes nothing: a spectator re-joins to play
    deliver(core, EVIL, intro("player"), now=now)
    ready = deliver(core, EVIL, *writes(2), now=now)
    assert refused(ready) == [SPECTATORS_ONLY_WATCH] * 3
    assert core.client.replicas[rid].state == {"count": 0}
    # a new link is a new join: introduced as a player, it plays (roles are what peers say of themselves)
    core.receive([PeerDown(peer=EVIL.id, graceful=True), PeerUp(peer=EVIL.id)], now, now)
    deliver(core, EVIL, intro("player"), now=now)
    assert core.members[EVIL.id].role == "player"
    deliver(core, EVIL, *writes(1)[:2], now=now)  # its seq 1: the refused ones never reached the MasterCore
    assert core.client.replicas[rid].state == {"count": 1}


@pytest.mark.parametrize("ask", ["pre-vote", "vote"])
def test_a_peer_introduced_as_spectator_gets_no_vote(ask: str) -> None:
    """0.2: players voted for a spectator that campaigned (modified code): it could become master and write anything."""
    term = Term((1 << 32) | salt_of(EVIL.id))
    request: wire.Message = (
        em.PreVoteRequest(term=term, last_term=0, last_index=0)
        if ask == "pre-vote"
        else em.VoteRequest(term=term, last_term=0, last_index=0, handover=False)
    )
    granted = {}
    for role in ("player", "spectator"):
        voter = node(ME)
        voter.start(0.0, 0.0)
        voter.receive([PeerUp(peer=EVIL.id)], 0.0, 0.0)
        deliver(voter, EVIL, intro(role), now=0.01)
        sent = sent_to(deliver(voter, EVIL, request, now=0.02), EVIL)
        granted[role] = [m.granted for m in sent if isinstance(m, em.PreVoteReply | em.VoteReply)]
    assert granted == {"player": [True], "spectator": [False]}


async def test_a_spectators_own_writes_raise_at_once() -> None:
    net = mx.LocalNetwork()
    async with (
        mx.Peer(room="r", types=[Counter], name="ann", transport=net, seed=1) as ann,
        mx.Peer(room="r", types=[Counter], name="eye", transport=net, seed=2, role="spectator") as eye,
    ):
        for peer in (ann, eye):
            with anyio.fail_after(5):
                await peer.wait_ready()
        rid = await ann.create(Counter, id="c")
        await settled(lambda: eye._core.client.has(Rid(rid)), eye)
        assert await eye.create(Counter, id="c") == rid  # it exists: a spectator may name it so
        res = await eye.bind(rid)  # and bind it and read it
        with pytest.raises(mx.ActionRejected, match=SPECTATORS_ONLY_WATCH):
            res.dispatch(mx.Action("increment"))
        with pytest.raises(mx.ActionRejected, match=SPECTATORS_ONLY_WATCH):
            res.dispatch_private(mx.Action("increment"), mx.Action("increment"))
        with pytest.raises(mx.ActionRejected, match=SPECTATORS_ONLY_WATCH):
            await eye.create(Counter, id="other")
        with pytest.raises(mx.ActionRejected, match=SPECTATORS_ONLY_WATCH):
            await eye.remove(rid)
        assert eye._core.outbox.queued is False  # nothing was sent
        assert res.state == {"count": 0}
        assert res.pending == 0


# -- P3/P5: presence info ----------------------------------------------------------------------------


class Net:
    """Frames between a few NodeCores, stepped in hand-advanced time; frames to any other peer are lost."""

    def __init__(self, *cores: NodeCore, now: float) -> None:
        self.cores = {c.me: c for c in cores}
        self.inbox: dict[PeerId, list[Frame | PeerUp]] = {c.me: [] for c in cores}
        self.dropped: list[str] = []
        self.now = now

    def take(self, sender: PeerId, ready: Ready) -> None:
        assert ready.faults == []
        self.dropped += [d.reason for d in ready.dropped]
        for to, data in [*ready.frames.items(), *ready.more, *ready.datagrams.items()]:
            if to in self.inbox:
                self.inbox[to].append(Frame(peer=sender, data=data))

    def link(self, a: NodeCore, b: NodeCore) -> None:
        self.inbox[a.me].append(PeerUp(peer=b.me))
        self.inbox[b.me].append(PeerUp(peer=a.me))

    def run(self, until: Callable[[], bool], limit: float = 10.0) -> bool:
        end = self.now + limit
        while not until() and self.now < end:
            self.now += 0.02
            for me, core in self.cores.items():
                events, self.inbox[me] = self.inbox[me], []
                self.take(me, core.step(events, self.now, self.now))
        return until()


def test_a_huge_avatar_never_keeps_a_newcomer_from_its_replica() -> None:
    """0.2: presence info was bounded only by the frame limit and republished with every snapshot: two
    members binding with 700 KB avatars made every snapshot of a 64 KiB type exceed the decode limit,
    so a newcomer was "ready" with no replica, forever."""
    master, now = serving_master(EVIL, OTHER)
    rid = SMALL.rid("board")
    master.create(rid, {"data": b"b" * 60_000}, now, now)
    term = Term(master.master.term if master.master else 0)
    avatar = {"avatar": b"\x89PNG" + b"x" * 700_000}
    dropped = [
        d
        for evil in (EVIL, OTHER)
        for d in deliver(master, evil, rm.Bind(term=term, req=1, rid=rid, info=avatar), now=now).dropped
    ]
    newcomer = node(NEW)
    newcomer.start(now, now)
    net = Net(master, newcomer, now=now)
    net.link(master, newcomer)
    assert net.run(lambda: newcomer.client.has(rid) and newcomer.client.replicas[rid].version == 0)
    assert newcomer.client.replicas[rid].state == {"data": b"b" * 60_000}
    assert net.dropped == []
    assert [d.sender for d in dropped] == [EVIL.id, OTHER.id]  # the binds were dropped and reported
    assert all("MAX_INFO" in d.reason for d in dropped)
    assert master.client.replicas[rid].subscribers == {}


def test_presence_at_its_bounds_never_pushes_a_snapshot_over_the_frame_limit() -> None:
    """The bounds are counted: a state at ``max_bytes`` and a full presence budget still make one decodable snapshot."""
    assert MAX_PRESENCE + 64 * 1024 < wire.DECODE_SLACK  # room for the rest of a snapshot (held, applied, seal...)
    master, now = serving_master()
    rid = SMALL.rid("board")
    master.create(rid, {"data": b"b" * (SMALL.max_bytes - 16)}, now, now)
    term = Term(master.master.term if master.master else 0)
    full = {"avatar": b"x" * (MAX_INFO - 20)}
    members = [Identity(i.to_bytes(32, "big")) for i in range(1, 200)]
    answers: list[str | None] = []
    for member in members:
        master.receive([PeerUp(peer=member.id)], now, now)
        ready = deliver(master, member, rm.Bind(term=term, req=1, rid=rid, info=full), now=now)
        answers += [m.error for m in sent_to(ready, member) if isinstance(m, rm.Replied)]
        if answers[-1] is not None:
            break
    taken = sum(a is None for a in answers)
    assert 50 <= taken < len(members)  # the budget filled up: the next bind was refused
    assert answers[-1] is not None
    assert "MAX_PRESENCE" in answers[-1]
    replica = master.client.replicas[rid]
    assert len(replica.subscribers) == taken
    newcomer = node(NEW)  # gets the master's snapshot: the state and every subscriber
    newcomer.start(now, now)
    net = Net(master, newcomer, now=now)
    net.link(master, newcomer)
    assert net.run(lambda: newcomer.client.has(rid) and newcomer.client.replicas[rid].version == 0)
    assert len(newcomer.client.replicas[rid].subscribers) == taken
    assert net.dropped == []


def test_presence_info_over_its_bound_is_refused_where_it_is_made_and_by_every_receiver() -> None:
    """0.2: a 1 MB ``info`` was introduced to every peer and bound as presence."""
    avatar = {"avatar": b"x" * (MAX_INFO + 1)}
    with pytest.raises(ValueError, match="MAX_INFO"):
        mx.Peer(room="r", types=[Counter], info=avatar, transport=mx.LocalNetwork())
    peer = node(ME)
    with pytest.raises(mx.StateTooLarge, match="MAX_INFO"):
        peer.bind(Counter.rid("c"), avatar, 0.0, 0.0)
    # what a modified peer sends: an introduction (the frame is dropped and reported, it is no member)
    peer.start(0.0, 0.0)
    peer.receive([PeerUp(peer=EVIL.id)], 0.0, 0.0)
    fat = Introduce.__new__(Introduce)
    for name, value in {"name": "evil", "info": avatar, "role": "player", "types": {}}.items():
        object.__setattr__(fat, name, value)
    ready = deliver(peer, EVIL, fat, now=0.1)
    assert [d.sender for d in ready.dropped] == [EVIL.id]
    assert "MAX_INFO" in ready.dropped[0].reason
    assert EVIL.id not in peer.members


def test_a_pulled_replica_with_oversized_presence_is_never_adopted() -> None:
    """0.2: a new master adopted a replica's subscribers as they came, of any size."""
    master, now = serving_master(EVIL)
    rid = Counter.rid("c")
    term = master.master.term if master.master else 0
    fat: dict[str, dict[str, Any]] = {EVIL.id: {"avatar": b"x" * (MAX_INFO + 1)}}
    pulled = rm.Pulled(term=Term(term), snapshot=dataclasses.replace(forged_snapshot(rid, term=term), subscribers=fat))
    ready = deliver(master, EVIL, pulled, now=now)
    assert [d.sender for d in ready.dropped] == [EVIL.id]
    assert "MAX_INFO" in ready.dropped[0].reason


def test_a_master_that_sends_oversized_presence_is_dropped_and_reported() -> None:
    """0.2: clients took any presence a master sent, of any size."""
    client = node(ME)
    client.start(0.0, 0.0)
    client.receive([PeerUp(peer=EVIL.id)], 0.0, 0.0)
    term = Term((1 << 32) | salt_of(EVIL.id))
    cert = (prove(ME, "vote", term, EVIL.id), prove(EVIL, "vote", term, EVIL.id))
    deliver(client, EVIL, em.Heartbeat(term=term, seq=1, successors=(), cert=cert), now=0.1)
    assert client.election.master == EVIL.id
    rid = Counter.rid("c")
    state = freeze({"count": 0})
    deliver(client, EVIL, rm.Created(term=term, index=1, rid=rid, state=state, checksum=checksum(state)), now=0.2)
    assert client.client.has(rid)
    fat: dict[str, dict[str, Any]] = {EVIL.id: {"avatar": b"x" * (MAX_INFO + 1)}}
    many: dict[str, dict[str, Any]] = {f"p{i:05}": {"avatar": b"x" * 4000} for i in range(MAX_PRESENCE // 4000 + 1)}
    for index, subscribers in enumerate((fat, many), 2):
        presence = rm.Presence(term=term, index=index, rid=rid, subscribers=subscribers)
        ready = deliver(client, EVIL, presence, now=0.3)
        assert [d.sender for d in ready.dropped] == [EVIL.id]
        assert "MAX_INFO" in ready.dropped[0].reason or "MAX_PRESENCE" in ready.dropped[0].reason
        assert client.client.replicas[rid].subscribers == {}


# -- I2: one identity in two processes ---------------------------------------------------------------


async def test_one_identity_in_two_processes_is_reported_on_both_and_the_earlier_one_steps_aside() -> None:
    """0.2: the later process took the links; the earlier one silently elected itself master of a
    one-peer room and kept confirming its own actions."""
    net = mx.LocalNetwork()
    key = Identity(b"7" * 32)
    told: dict[str, list[mx.Diagnostic]] = {"earlier": [], "later": []}

    def peer(name: str, seed: int, identity: Identity | None = None) -> mx.Peer:
        return mx.Peer(room="r", types=[Counter], name=name, transport=net, seed=seed, identity=identity)

    async with peer("ann", 1, key) as earlier:
        earlier.on_diagnostic(told["earlier"].append)
        with anyio.fail_after(5):
            await earlier.wait_ready()
        async with peer("bob", 2) as bob:
            with anyio.fail_after(5):
                await bob.wait_ready()
            assert earlier.is_master
            rid = await earlier.create(Counter, id="c")
            mine = await earlier.bind(rid)
            await mine.dispatch(mx.Action("increment"))
            async with peer("ann-again", 3, key) as later:
                later.on_diagnostic(told["later"].append)
                await settled(lambda: all(told.values()), earlier, later)
                assert [d.kind for d in told["earlier"]] == ["duplicate_identity"]
                assert [d.kind for d in told["later"]] == ["duplicate_identity"]
                assert "stepped aside" in told["earlier"][0].reason
                assert "took its links" in told["later"][0].reason
                with anyio.fail_after(5):
                    await later.wait_ready()
                # the earlier one is out of the room and never claims it: let its election timer fire twice
                for _ in range(2):
                    armed = earlier._core.election._election_at
                    await settled(lambda: earlier._core.election._election_at != armed, earlier)  # noqa: B023 (run at once)
                assert not earlier.is_master
                assert earlier.master_id is None
                assert earlier.peers == frozenset()
                with pytest.raises(mx.ActionRejected, match="stepped aside"):
                    mine.dispatch(mx.Action("increment"))
                with pytest.raises(mx.ActionRejected, match="stepped aside"):
                    await earlier.create(Counter, id="d")
                # the room plays on with the later process, under the same id
                assert bob.members[key.id].name == "ann-again"
                theirs = await later.bind(rid)
                await theirs.dispatch(mx.Action("increment"))
                await settled(lambda: bob.resource_info(rid).state == {"count": 2}, bob)
                assert mine.state == {"count": 1}  # nothing reached the earlier one


def test_a_master_whose_identity_another_process_took_steps_aside_for_good() -> None:
    """The same on a hand clock: told so by its transport, a lone master steps down and never campaigns again."""
    core, now = serving_master()
    rid = Counter.rid("c")
    core.create(rid, None, now, now)
    ready = core.receive([IdentityInUse(superseded=True, detail="another process took its links")], now, now)
    assert [type(e) for e in ready.events] == [IdentityInUse, MasterChanged]
    assert core.master is None
    ballot = core.election._ballot
    for _ in range(100):  # 5 s: sixteen election timeouts
        now += 0.05
        assert core.tick(now, now).events == []
    assert core.master is None
    assert core.election._ballot == ballot  # it never ran again
    with pytest.raises(mx.ActionRejected, match="stepped aside"):
        core.dispatch(rid, mx.Action("increment"), None, now, now)
    with pytest.raises(mx.ActionRejected, match="stepped aside"):
        core.remove(rid, now, now)
