"""``action.author`` and ``mx.Identity``: who dispatched an action, seen by every reducer on every peer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

import movex_p2p as mx
from movex_p2p import wire
from movex_p2p.identity import peer_id_of, verify
from movex_p2p.ids import Term
from movex_p2p.resource import messages as rm
from tests.test_node_scenarios import room
from tests.waits import settled


def turns(state: Any, action: mx.Action) -> Any:
    """Players take turns; the reducer only trusts ``action.author``."""
    match action:
        case mx.Action("join"):
            return {**state, "order": [*state["order"], action.author]}
        case mx.Action("play", card):
            if state["order"][state["turn"] % len(state["order"])] != action.author:
                raise ValueError(f"not {action.author}'s turn")
            return {**state, "turn": state["turn"] + 1, "played": [*state["played"], [action.author, card]]}
    return state


def secretly(state: Any, action: mx.Action) -> Any:
    match action:
        case mx.Action("hide"):
            return {**state, "hidden": state["hidden"] + 1}
        case mx.Action("pick", card):
            return {**state, "picks": {**state["picks"], str(action.author): card}}
    return state


Turns = mx.ResourceType("turns", turns, initial={"order": [], "turn": 0, "played": []})
Secretly = mx.ResourceType(
    "secretly", secretly, initial={"hidden": 0, "picks": {}}, can_reveal=lambda s: s["hidden"] >= 2
)


def test_author_is_not_part_of_equality_nor_of_the_wire() -> None:
    plain = mx.Action("play", 3)
    mine = plain.by("alice")
    assert (plain.author, mine.author) == (None, "alice")
    assert plain == mine
    assert hash(plain) == hash(mine)
    with pytest.raises(TypeError):
        mx.Action("play", 3, "mallory")  # type: ignore[call-arg]  # a payload cannot set it
    decoded = wire.decode(
        wire.encode(rm.Propose(term=Term(1), rid=mx.ResourceType("t", turns).rid("x"), seq=1, base=0, action=mine))
    )
    assert isinstance(decoded[0], rm.Propose)
    assert decoded[0].action.author is None  # the receiver sets it from the link


async def test_every_reducer_sees_who_dispatched_optimistic_view_included() -> None:
    async with room(3, types=[Turns]) as peers:
        rid = await peers[0].create(Turns, id="t")
        res = [await p.bind(rid) for p in peers]
        for r in res:
            await r.dispatch(mx.Action("join"))
        await settled(lambda: all(len(r.state["order"]) == 3 for r in res), *peers)
        order = res[0].state["order"]
        assert sorted(order) == sorted(p.id for p in peers)
        first = next(r for r, p in zip(res, peers, strict=True) if p.id == order[0])
        second = next(r for r, p in zip(res, peers, strict=True) if p.id == order[1])
        with pytest.raises(mx.ActionRejected, match="turn"):
            await second.dispatch(mx.Action("play", "7h"))  # not its turn: the reducer knows who sent it
        handle = first.dispatch(mx.Action("play", "Qs"))
        assert first.state["played"] == [[order[0], "Qs"]]  # the author's own prediction knows too
        await handle
        await settled(lambda: all(r.state["played"] == [[order[0], "Qs"]] for r in res), *peers)
        assert len({r.checksum for r in res}) == 1


async def test_revealed_private_actions_keep_their_authors() -> None:
    async with room(3, types=[Secretly]) as peers:
        rid = await peers[0].create(Secretly, id="s")
        res = [await p.bind(rid) for p in peers]
        await res[1].dispatch_private(mx.Action("pick", "ace"), mx.Action("hide"))
        assert res[1].state["picks"] == {peers[1].id: "ace"}  # its own view, before the reveal
        assert res[2].state["picks"] == {}
        await res[2].dispatch_private(mx.Action("pick", "two"), mx.Action("hide"))
        expected = {peers[1].id: "ace", peers[2].id: "two"}
        await settled(lambda: all(r.state["picks"] == expected for r in res), *peers)


def _reveal_raises(state: Any) -> bool:
    if state["hidden"] >= 2:
        raise KeyError("round")  # a bug in the app's can_reveal
    return False


async def test_a_can_reveal_that_raises_is_an_app_error_diagnostic_and_reveals_nothing() -> None:
    broken = mx.ResourceType("secretly", secretly, initial={"hidden": 0, "picks": {}}, can_reveal=_reveal_raises)
    async with room(2, types=[broken]) as peers:
        seen: list[mx.Diagnostic] = []
        for p in peers:
            p.on_diagnostic(seen.append)
        rid = await peers[0].create(broken, id="s")
        res = [await p.bind(rid) for p in peers]
        await res[0].dispatch_private(mx.Action("pick", "ace"), mx.Action("hide"))
        await res[1].dispatch_private(mx.Action("pick", "two"), mx.Action("hide"))
        await settled(lambda: any(d.kind == "app_error" for d in seen), *peers)
        (error,) = {(d.rid, d.reason) for d in seen if d.kind == "app_error"}
        assert error == (rid, "can_reveal raised KeyError: 'round'")
        await settled(lambda: all(r.state["hidden"] == 2 for r in res), *peers)
        assert res[1].state["picks"] == {peers[1].id: "two"}  # nothing revealed: only its own pick


def test_identity_is_stable_across_restarts_and_proves_its_id(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "alice.key"
    first = mx.Identity.load_or_create(path)
    again = mx.Identity.load_or_create(path)
    assert first.id == again.id == peer_id_of(first.public_key)
    assert path.stat().st_mode & 0o077 == 0  # readable by its owner only
    assert mx.Identity.generate().id != first.id
    signature = first.sign(b"hello")
    assert verify(first.public_key, signature, b"hello")
    assert not verify(first.public_key, signature, b"hellO")
    assert not verify(b"short", signature, b"hello")
    path.write_bytes(b"not a key")
    with pytest.raises(ValueError, match="identity"):
        mx.Identity.load_or_create(path)


async def test_a_restarted_peer_with_the_same_identity_is_the_same_author(tmp_path: Path) -> None:
    identity = mx.Identity.load_or_create(tmp_path / "p.key")
    net = mx.LocalNetwork()
    async with room(2, net, types=[Turns]) as peers:
        rid = await peers[0].create(Turns, id="t")
        async with mx.Peer(room="test", types=[Turns], name="before", transport=net, identity=identity) as p:
            await p.wait_ready()
            await (await p.bind(rid)).dispatch(mx.Action("join"))
        with anyio.fail_after(5):
            async with mx.Peer(room="test", types=[Turns], name="renamed", transport=net, identity=identity) as p:
                await p.wait_ready()
                res = await p.bind(rid)
                assert p.id == identity.id
                assert res.state["order"] == [identity.id]
