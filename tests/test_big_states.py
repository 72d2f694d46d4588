"""Any size up to ``max_bytes`` syncs; over it, ``mx.StateTooLarge`` on the peer that made it (nothing sent)."""

from __future__ import annotations

import random

import anyio
import cbor2
import pytest

import movex_p2p as mx
from movex_p2p import wire
from movex_p2p.election.machine import ElectionConfig
from movex_p2p.ids import PeerId, Term
from movex_p2p.nodecore import FRAME_TARGET, NodeCore
from movex_p2p.resource import messages as rm
from movex_p2p.resource.state import freeze, size_of
from movex_p2p.signing import FAKE, FakeSigner
from movex_p2p.transport.base import PeerUp
from tests.resources import Blob
from tests.test_node_scenarios import room
from tests.waits import settled

Small = mx.ResourceType("small", Blob.reducer, initial={"data": b""}, max_bytes=10_000)


def test_size_of_is_about_the_cbor_encoding_and_cached() -> None:
    plain = {"data": bytes(5000), "tags": ["a", "b"], "n": {"x": 1}}
    state = freeze(plain)
    assert abs(size_of(state) - len(cbor2.dumps(plain))) < 20  # a few bytes per container
    assert size_of(state) == size_of(state)
    with pytest.raises(ValueError):
        mx.ResourceType("bad", Blob.reducer, max_bytes=0)


async def test_over_max_bytes_raises_state_too_large_where_it_was_made_and_sends_nothing() -> None:
    async with room(2, types=[Small]) as peers:
        sent = peers[0].stats["frames_out"]
        with pytest.raises(mx.StateTooLarge, match="max_bytes"):
            await peers[0].create(Small, {"data": bytes(20_000)}, id="s")
        assert peers[0].stats["frames_out"] == sent  # nothing was sent
        rid = await peers[0].create(Small, id="s")
        res = [await p.bind(rid) for p in peers]
        with pytest.raises(mx.StateTooLarge):
            res[1].dispatch(mx.Action("put", bytes(20_000)))  # the action itself: refused at once
        assert isinstance(mx.StateTooLarge("x"), mx.ActionRejected)


async def test_an_action_that_would_grow_the_state_over_max_bytes_is_rejected_as_too_large() -> None:
    def grow(state: object, action: mx.Action) -> object:
        assert isinstance(state, dict)
        return {"data": state["data"] + bytes(6_000)}

    Growing = mx.ResourceType("growing", grow, initial={"data": b""}, max_bytes=10_000)
    async with room(2, types=[Growing]) as peers:
        rid = await peers[0].create(Growing, id="g")
        res = [await p.bind(rid) for p in peers]
        await res[1].dispatch(mx.Action("grow"))
        with pytest.raises(mx.StateTooLarge, match="would be"):
            await res[1].dispatch(mx.Action("grow"))
        await settled(lambda: all(len(r.state["data"]) == 6_000 for r in res), *peers)
        assert len({r.checksum for r in res}) == 1


async def test_a_late_joiner_syncs_a_room_bigger_than_any_frame() -> None:
    """0.1: a master holding 20 x 0.9 MB sent one 17 MB frame; it raised in ``_flush`` and the room was lost."""
    net = mx.LocalNetwork()
    async with room(2, net, types=[Blob]) as peers:
        for i in range(20):
            await peers[0].create(Blob, {"data": bytes([i]) * 900_000}, id=f"b{i}")
        async with mx.Peer(room="test", types=[Blob], name="late", transport=net, seed=7) as late:
            with anyio.fail_after(20):
                await late.wait_ready()
            assert len(late.resources(Blob)) == 20
            assert (await late.get("blob:b19"))["data"] == bytes([19]) * 900_000


def test_one_step_for_a_peer_leaves_in_frames_of_about_frame_target() -> None:
    key = FakeSigner.from_seed(1)
    me, other = key.id, PeerId("b")
    core = NodeCore(
        me, types={"blob": Blob}, election=ElectionConfig(), rng=random.Random(1), signer=key, verifier=FAKE
    )
    core.start(0.0, 0.0)
    core.receive([PeerUp(peer=other)], 0.0, 0.0)
    now = 0.0
    while core.master is None:
        now += 0.05
        core.tick(now, now)
    snapshots = [
        rm.Snapshot(
            term=Term(1),
            index=1,
            rid=Blob.rid(f"b{i}"),
            entry_term=Term(1),
            version=0,
            state={"data": bytes(400_000)},
            checksum=b"",
            subscribers={},
            held=(),
            applied={},
        )
        for i in range(6)
    ]
    for snapshot in snapshots:
        core.outbox.send(other, snapshot)
    ready = core.step((), now, now)
    frames = [ready.frames[other]] + [frame for peer, frame in ready.more if peer == other]
    assert len(frames) > 1
    assert all(len(frame) <= FRAME_TARGET + 500_000 for frame in frames)
    decoded = [m for frame in frames for m in wire.decode(frame)]
    assert [m.rid for m in decoded if isinstance(m, rm.Snapshot)] == [s.rid for s in snapshots]  # in order
