"""Routes and lanes: declared once per message, used by the node; the shared link model; the datagram seam."""

from __future__ import annotations

import random
from typing import get_args

import anyio
import pytest

import movex_p2p as mx
from movex_p2p import wire
from movex_p2p.election import messages as em
from movex_p2p.election.machine import ElectionConfig
from movex_p2p.errors import ChannelClosed, LocalProtocolError
from movex_p2p.ids import PeerId
from movex_p2p.links import Links
from movex_p2p.nodecore import NodeCore
from movex_p2p.resource import messages as rm
from movex_p2p.routes import Lane, Route
from movex_p2p.signing import FAKE
from movex_p2p.testing import FaultyNetwork
from movex_p2p.transport.base import MAX_DATAGRAM, Frame, PeerUp
from tests.keys import fake_signers, term_of, vote
from tests.resources import Counter

KEY_A, KEY_B = fake_signers(2)
A, B = KEY_A.id, KEY_B.id


def node_a() -> NodeCore:
    return NodeCore(
        A, types={"counter": Counter}, election=ElectionConfig(), rng=random.Random(1), signer=KEY_A, verifier=FAKE
    )


# -- the declarations ------------------------------------------------------------------------------


def test_every_wire_message_has_one_route_and_one_lane() -> None:
    registered = set(wire._BY_TAG.values())
    assert set(wire.ROUTES) == registered
    assert set(wire.LANES) == registered
    assert set(get_args(rm.ToMaster)).isdisjoint(get_args(rm.ToClients))
    assert set(get_args(rm.ResourceMessage)) == set(get_args(rm.ToMaster)) | set(get_args(rm.ToClients)) | {rm.Witness}
    assert wire.ROUTES[rm.Witness] is Route.NODE  # peers compare the seals their master sent them
    assert {wire.ROUTES[m] for m in get_args(em.ElectionMessage)} == {Route.ELECTION}
    assert {wire.LANES[m] for m in get_args(em.ElectionMessage)} == {Lane.DATAGRAM}
    assert {wire.LANES[m] for m in get_args(rm.ResourceMessage)} == {Lane.RELIABLE}
    # a snapshot always goes master -> clients; a peer answering a Pull sends Pulled
    assert wire.ROUTES[rm.Snapshot] is Route.TO_CLIENTS
    assert wire.ROUTES[rm.Pulled] is Route.TO_MASTER


# -- the link model ----------------------------------------------------------------------------------


def test_reliable_frames_keep_their_order_and_datagrams_overtake() -> None:
    links = Links(random.Random(1), delay=(0.001, 0.05))
    reliable = [links.arrival(A, B, i * 0.001, Lane.RELIABLE) for i in range(200)]
    datagrams = [links.arrival(A, B, i * 0.001, Lane.DATAGRAM) for i in range(200)]
    assert None not in reliable
    assert reliable == sorted(reliable)  # type: ignore[type-var]
    assert datagrams != sorted(datagrams)  # type: ignore[type-var]


def test_loss_drops_datagrams_only_and_may_be_set_per_direction() -> None:
    links = Links(random.Random(2), loss=0.5)
    assert all(links.arrival(A, B, 0.0, Lane.RELIABLE) is not None for _ in range(100))
    lost = sum(links.arrival(A, B, 0.0, Lane.DATAGRAM) is None for _ in range(1000))
    assert 400 < lost < 600
    links.set_loss(0.0)
    links.set_loss(1.0, link=(A, B))
    assert links.arrival(A, B, 0.0, Lane.DATAGRAM) is None
    assert links.arrival(B, A, 0.0, Lane.DATAGRAM) is not None
    with pytest.raises(ValueError):
        links.set_loss(1.5)


def test_cuts_lose_what_they_carry_on_both_lanes() -> None:
    links = Links(random.Random(3))
    links.partition([A])
    assert not links.linked(A, B)
    assert links.arrival(A, B, 0.0, Lane.RELIABLE) is None
    links.heal()
    assert links.linked(A, B)
    links.kill(B)
    assert links.arrival(A, B, 0.0, Lane.DATAGRAM) is None
    links.revive(B)
    assert links.linked(A, B)


def test_the_same_seed_gives_the_same_schedule() -> None:
    def schedule(seed: int) -> list[float | None]:
        links = Links(random.Random(seed), delay=(0.0, 0.01), loss=0.3)
        return [links.arrival(A, B, 0.0, lane) for lane in (Lane.DATAGRAM, Lane.RELIABLE) * 50]

    assert schedule(7) == schedule(7)
    assert schedule(7) != schedule(8)


# -- the endpoint seam ---------------------------------------------------------------------------------


async def test_faulty_network_datagrams_are_lost_reliable_frames_are_not() -> None:
    network = FaultyNetwork(seed=4)
    async with (
        network.connect(peer_id=A, name="a", room="r", secret=None) as a,
        network.connect(peer_id=B, name="b", room="r", secret=None) as b,
    ):
        with anyio.fail_after(5):
            assert isinstance(await a.receive(), PeerUp)
            assert isinstance(await b.receive(), PeerUp)
        network.set_loss(1.0)
        a.send_datagram(B, b"lost")
        a.send(B, b"kept")
        network.set_loss(0.0)
        a.send_datagram(B, b"datagram")
        with anyio.fail_after(5):
            got = [await b.receive() for _ in range(2)]
        assert got == [Frame(peer=A, data=b"kept"), Frame(peer=A, data=b"datagram")]
        with pytest.raises(LocalProtocolError):
            a.send_datagram(B, bytes(MAX_DATAGRAM + 1))
        with pytest.raises(ChannelClosed):
            a.send_datagram(PeerId("nobody"), b"x")


def test_the_node_sends_election_messages_as_datagrams_and_big_ones_reliably() -> None:
    core = node_a()
    core.start(0.0, 0.0)
    ready = core.receive([PeerUp(peer=B)], 0.0, 0.0)
    now = 0.0
    while core.master is None:  # A elects itself (B never answers): its heartbeats are datagrams
        now += 0.05
        ready = core.tick(now, now)
        assert now < 5
    assert B in ready.datagrams
    assert B not in ready.frames
    assert all(type(m) in get_args(em.ElectionMessage) for m in wire.decode(ready.datagrams[B]))
    # peers join: the master greets each with a heartbeat naming every successor so far; the
    # later ones no longer fit a datagram and go on the reliable lane instead
    many = [PeerUp(peer=PeerId(f"peer-with-a-rather-long-name-{i:04d}")) for i in range(60)]
    ready = core.receive(many, now, now)
    assert ready.datagrams
    assert all(len(frame) <= MAX_DATAGRAM for frame in ready.datagrams.values())
    # (each reliable frame also carries the node's introduction to the new peer)
    # (and a vote request: the master asks each new player for its vote, for its certificate)
    reliable = {
        peer: [m for m in wire.decode(frame) if type(m) in get_args(em.ElectionMessage)]
        for peer, frame in ready.frames.items()
    }
    assert any(isinstance(m, em.Heartbeat) for messages in reliable.values() for m in messages)
    assert all(len(wire.encode_many(messages)) > MAX_DATAGRAM for messages in reliable.values() if messages)


def test_held_dispatches_leave_together_with_the_next_step() -> None:
    core = node_a()
    core.start(0.0, 0.0)
    core.receive([PeerUp(peer=B)], 0.0, 0.0)
    term = term_of(1, B)
    heartbeat = em.Heartbeat(term=term, seq=1, successors=(A,), cert=(vote(KEY_B, term, B),))
    core.receive([Frame(peer=B, data=wire.encode(heartbeat))], 0.0, 0.0)  # B is our master
    snapshot = rm.Snapshot(
        term=term,
        index=1,
        rid=Counter.rid("c"),
        entry_term=term,
        version=0,
        state={"count": 0},
        checksum=b"",
        subscribers={},
        held=(),
        applied={},
    )
    core.receive([Frame(peer=B, data=wire.encode(snapshot))], 0.0, 0.0)
    rid = Counter.rid("c")
    core.dispatch(rid, mx.Action("increment"), None, 0.0, 0.0)
    first = core.step((), 0.0, 0.0)
    held = [core.dispatch(rid, mx.Action("increment"), None, 0.0, 0.0)[1] for _ in range(3)]
    assert [type(m) for m in wire.decode(first.frames[B])] == [rm.Endorse, rm.Propose]  # signed by its author
    assert all(r.frames == {} for r in held)
    assert all(r.events for r in held)  # the app hears of queued dispatches at once
    assert core.queued
    flushed = core.step((), 0.0, 0.0)
    assert not core.queued
    proposes = [m for m in wire.decode(flushed.frames[B]) if isinstance(m, rm.Propose)]
    assert [p.seq for p in proposes] == [2, 3, 4]
