"""What a game needs (issue 10), on in-process peers: presence, spectators, removal, the reducer
contract, type versions, a wrong secret, a player who comes back, and diagnostics that name the fix."""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

import movex_p2p as mx
from movex_p2p import presence
from movex_p2p.errors import LocalProtocolError
from movex_p2p.ids import PeerId
from movex_p2p.resource import effects as fx
from tests.resources import Counter, Rps, submit
from tests.test_node_scenarios import room
from tests.waits import settled


@asynccontextmanager
async def peers_of(net: mx.LocalNetwork, *specs: dict[str, Any], ready: bool = True) -> AsyncIterator[list[mx.Peer]]:
    """Peers on ``net`` built from keyword dicts (room "test", types [Counter] unless given)."""
    async with AsyncExitStack() as stack:
        out = []
        for i, spec in enumerate(specs):
            kwargs: dict[str, Any] = {"room": "test", "types": [Counter], "transport": net, "seed": i, **spec}
            out.append(await stack.enter_async_context(mx.Peer(**kwargs)))
        if ready:
            with anyio.fail_after(10):
                for peer in out:
                    await peer.wait_ready()
        yield out


# -- presence --------------------------------------------------------------------------------------


async def test_members_name_every_peer_self_included_and_deltas_say_left_or_lost() -> None:
    net = mx.testing.FaultyNetwork(seed=1, detect_after=0.4)
    joined: list[mx.PeerInfo] = []
    left: list[tuple[mx.PeerInfo, str, float]] = []
    async with peers_of(net, {"name": "ann", "info": {"color": "red"}}) as (ann,):
        ann.on_peer_joined(joined.append)
        ann.on_peer_left(lambda info, reason: left.append((info, reason, anyio.current_time())))
        async with peers_of(net, {"name": "bob", "seed": 5}, {"name": "cy", "seed": 6, "role": "spectator"}) as (
            bob,
            cy,
        ):
            await settled(
                lambda: len(ann.members) == 3 and len(bob.members) == 3 and len(cy.members) == 3, ann, bob, cy
            )
            assert ann.members[ann.id] == mx.PeerInfo(ann.id, "ann", {"color": "red"}, "player")
            assert bob.members[ann.id] == mx.PeerInfo(ann.id, "ann", {"color": "red"}, "player")
            assert ann.members[cy.id].role == "spectator"
            assert {info.name for info in joined} == {"bob", "cy"}
        await settled(lambda: len(left) == 2, ann)
        # "left": the goodbye itself, delivered at once; a death would be declared detect_after later as "lost"
        assert {(info.name, reason) for info, reason, _ in left} == {("bob", "left"), ("cy", "left")}
        assert set(ann.members) == {ann.id}
        async with peers_of(net, {"name": "dee", "seed": 7}, {"name": "eve", "seed": 8}) as (dee, eve):
            await settled(lambda: {dee.id, eve.id} <= set(ann.members), ann)
            killed = anyio.current_time()  # the loop clock: the one the network declares deaths on
            net.kill(dee.id)
            net.kill(eve.id)  # declared dead right after dee, on the same delay
            await settled(lambda: len(left) == 4, ann)
        # Reported when the transport declares each dead, in that order, never before detect_after:
        # "lost" follows the transport's event, not a timer of its own (latency: benchmarks/).
        assert [(info.name, reason) for info, reason, _ in left[2:]] == [("dee", "lost"), ("eve", "lost")]
        assert all(at - killed >= net.detect_after for _, _, at in left[2:])


async def test_a_restarted_player_with_the_same_identity_keeps_its_id_seqs_and_hand(tmp_path: Path) -> None:
    identity = mx.Identity.load_or_create(tmp_path / "bob.key")
    net = mx.testing.FaultyNetwork(seed=2, detect_after=5.0)  # it comes back long before it is declared dead
    events: list[tuple[str, str]] = []
    async with peers_of(net, {"name": "ann", "types": [Counter, Rps]}) as (ann,):
        ann.on_peer_joined(lambda info: events.append(("joined", info.name)))
        ann.on_peer_left(lambda info, reason: events.append((reason, info.name)))
        rid = await ann.create(Rps, id="g")
        ra = await ann.bind(rid)
        async with AsyncExitStack() as first:
            bob = await first.enter_async_context(
                mx.Peer(room="test", types=[Counter, Rps], name="bob", transport=net, identity=identity)
            )
            await bob.wait_ready()
            rb = await bob.bind(rid)
            await rb.dispatch(mx.Action("addPlayer", {"id": bob.id, "playerLabel": "playerB"}))
            await rb.dispatch_private(*submit("playerB", "rock"))  # held by the master, secret from ann
            assert rb.state["submissions"]["playerB"] == {"play": "rock"}
            net.kill(bob.id)  # SIGKILL: no goodbye, the process and its memory are gone
        async with mx.Peer(room="test", types=[Counter, Rps], name="bob2", transport=net, identity=identity) as bob:
            with anyio.fail_after(5):
                await bob.wait_ready()
                rb = await bob.bind(rid)
            assert bob.id == identity.id
            await settled(lambda: rb.state["submissions"]["playerB"] == {"play": "rock"}, bob)  # its hand is back
            assert ra.state["submissions"]["playerB"] == {"play": rps_secret()}
            with anyio.fail_after(5):  # and it plays on: its seqs continue where the old process left them
                await rb.dispatch(mx.Action("addPlayer", {"id": ann.id, "playerLabel": "playerA"}))
            await ra.dispatch_private(*submit("playerA", "paper"))
            await settled(lambda: ra.state["winner"] == "paper" and rb.state["winner"] == "paper", ann, bob)
        assert ("lost", "bob") in events  # the old link ended when the same id came back
        assert events.count(("joined", "bob")) == 1
        assert ("joined", "bob2") in events


def rps_secret() -> str:
    from tests.resources import SECRET

    return SECRET


# -- spectators ------------------------------------------------------------------------------------


async def test_a_spectator_never_becomes_master_is_never_counted_and_sees_every_reveal() -> None:
    net = mx.LocalNetwork()
    majority = mx.ElectionConfig(policy=mx.Policy.MAJORITY)
    async with peers_of(
        net,
        {"name": "watch1", "role": "spectator", "types": [Rps], "election": majority},
        {"name": "watch2", "role": "spectator", "types": [Rps], "election": majority},
        ready=False,
    ) as watchers:
        # Spectators alone: nobody may become master. Wait for what would have made one campaign:
        # each one's election timer fires (and, a spectator, it only re-arms it).
        armed = [w._core.election._election_at for w in watchers]
        assert None not in armed
        await settled(
            lambda: all(w._core.election._election_at != at for w, at in zip(watchers, armed, strict=True)), *watchers
        )
        assert all(w.master_id is None and not w.is_master for w in watchers)
        assert [w._core.election._ballot for w in watchers] == [0, 0]  # neither ran: no ballot moved
        # one player among two spectators is a majority of the players: it elects itself
        async with peers_of(net, {"name": "a", "types": [Rps], "election": majority, "seed": 9}) as (a,):
            async with peers_of(net, {"name": "b", "types": [Rps], "election": majority, "seed": 10}) as (b,):
                with anyio.fail_after(5):
                    for w in watchers:
                        await w.wait_ready()
                assert a.is_master
                assert all(w.master_id == a.id for w in watchers)
                rid = await a.create(Rps, id="g")
                ra, rb = await a.bind(rid), await b.bind(rid)
                rw = await watchers[0].bind(rid)
                await ra.dispatch(mx.Action("addPlayer", {"id": a.id, "playerLabel": "playerA"}))
                await rb.dispatch(mx.Action("addPlayer", {"id": b.id, "playerLabel": "playerB"}))
                await ra.dispatch_private(*submit("playerA", "paper"))
                await rb.dispatch_private(*submit("playerB", "rock"))
                await settled(lambda: rw.state["winner"] == "paper", watchers[0])
                assert rw.checksum == ra.checksum == rb.checksum
                assert "spectator" not in {m.role for m in a.members.values() if m.id in (a.id, b.id)}
            # the master leaves: its successor is the other player, never a spectator
            await settled(lambda: b.id not in a.members, a)
        await settled(lambda: all(w.master_id is None for w in watchers), *watchers)
        assert not any(w.is_master for w in watchers)


async def test_an_inspecting_spectator_reads_types_it_does_not_have() -> None:
    net = mx.LocalNetwork()
    async with peers_of(net, {"name": "player", "types": [Counter, Rps]}) as (player,):
        res = await player.bind(await player.create(Counter, {"count": 1}, id="c"))
        inspector = {"name": "eye", "types": [], "role": "spectator", "opaque": True, "seed": 1}
        async with peers_of(net, inspector) as (eye,):
            await settled(lambda: "counter:c" in eye.resources(), eye)
            assert eye.resource_info("counter:c").state == {"count": 1}
            assert eye.resource_info("counter:c").opaque
            for _ in range(20):
                await res.dispatch(mx.Action("increment"))
            await settled(lambda: eye.resource_info("counter:c").state == {"count": 21}, eye)  # fresh snapshots
            assert eye.resource_info("counter:c").checksum == res.checksum
            assert eye.stats["resyncs"] == 0  # no "diverged" noise: it never runs a reducer
            with pytest.raises(LocalProtocolError, match="no resource type 'counter'"):
                await eye.bind("counter:c")
            assert eye.id not in res.subscribers
    with pytest.raises(ValueError, match="spectator"):
        mx.Peer(room="r", types=[], transport=net, opaque=True)


# -- removal ---------------------------------------------------------------------------------------


async def test_remove_deletes_a_resource_everywhere() -> None:
    async with room(3) as peers:
        rid = await peers[0].create(Counter, id="c")
        res = [await p.bind(rid) for p in peers]
        fired: list[int] = []
        for i, r in enumerate(res):
            r.on_removed(functools.partial(fired.append, i))
        await res[1].dispatch(mx.Action("increment"))
        assert peers[2].resources(Counter) == [rid]
        await peers[2].remove(rid)
        await settled(lambda: len(fired) == 3, *peers)
        assert all(r.removed for r in res)
        assert all(p.resources() == [] for p in peers)
        for call in (lambda: res[0].state, lambda: res[0].dispatch(mx.Action("increment")), lambda: res[1].version):
            with pytest.raises(mx.ResourceNotFound, match="was removed"):
                call()
        with pytest.raises(mx.ResourceNotFound):
            await peers[0].remove(rid)
        with pytest.raises(mx.ResourceNotFound):
            await peers[0].bind(rid)
        again = await peers[1].bind(await peers[1].create(Counter, {"count": 7}, id="c"))  # a new one, same rid
        assert again.state == {"count": 7}
        assert res[1].removed


# -- the reducer contract --------------------------------------------------------------------------


def forgetful(state: Any, action: mx.Action) -> Any:
    """The classic mistake: no ``return state`` at the end, so some branches return None."""
    match action:
        case mx.Action("add"):
            return {**state, "n": state["n"] + 1}
        case mx.Action("set"):
            return {**state, "tags": {"a", "b"}}
        case mx.Action("late"):
            if state["n"] < 2:  # only on a state the author has not seen yet does it fall through
                return state
        case mx.Action("oops"):
            state = {**state, "n": 0}  # forgot to return it


Forgetful = mx.ResourceType("forgetful", forgetful, initial={"n": 0})


async def test_a_reducer_that_returns_none_or_not_data_is_rejected_at_the_dispatch() -> None:
    async with room(2, types=[Forgetful]) as (a, b):
        rid = await a.create(Forgetful, id="f")
        ra, rb = await a.bind(rid), await b.bind(rid)
        with pytest.raises(mx.ActionRejected, match=r"'forgetful' reducer returned None for action 'oops'") as caught:
            rb.dispatch(mx.Action("oops"))
        assert "return the state" in str(caught.value)
        with pytest.raises(mx.ActionRejected, match=r"not JSON-like .*set"):
            rb.dispatch(mx.Action("set"))
        assert rb.pending == 0
        assert rb.state == ra.state == {"n": 0}
        # the master checks too: here only its state makes the reducer return None
        master, other = (ra, rb) if a.is_master else (rb, ra)
        adds = [master.dispatch(mx.Action("add")) for _ in range(2)]  # applied at once on the master
        late = other.dispatch(mx.Action("late"))  # predicted on n=0, where it is fine
        for handle in adds:
            await handle
        with pytest.raises(mx.ActionRejected, match="returned None for action 'late'"):
            await late
        await settled(lambda: ra.state == rb.state == {"n": 2}, a, b)
        assert a.stats["resyncs"] == b.stats["resyncs"] == 0


def wrap(state: Any, action: mx.Action) -> Any:
    return {"inner": state}  # keeps the last state whole, one level deeper


Nesting = mx.ResourceType("nesting", wrap, initial={"n": 0})


async def test_a_reducer_that_nests_its_last_state_deeper_each_time_is_stopped_at_the_depth_limit() -> None:
    """The kept state is not walked again, yet the depth counts it: before, the 64th action was
    applied, the state grew past what the codec carries, and a peer joining later never got ready."""
    net = mx.LocalNetwork()
    async with peers_of(net, {"types": [Nesting]}, {"types": [Nesting]}) as (a, _):
        ra = await a.bind(await a.create(Nesting, id="n"))
        for _ in range(mx.resource.state.MAX_DEPTH - 1):  # {"n": 0} is one level
            await ra.dispatch(mx.Action("w"))
        with pytest.raises(mx.ActionRejected, match="state nested deeper than 64"):
            await ra.dispatch(mx.Action("w"))
        async with peers_of(net, {"types": [Nesting], "seed": 7}) as (late,):
            with anyio.fail_after(10):
                rl = await late.bind("nesting:n")
            assert rl.checksum == ra.checksum


# -- versions of a type ----------------------------------------------------------------------------


def rules_v1(state: Any, action: mx.Action) -> Any:
    return {**state, "n": state["n"] + 1}


def rules_v2(state: Any, action: mx.Action) -> Any:
    return {**state, "n": state["n"] + 2}


async def test_two_builds_of_a_type_never_mix_and_say_so() -> None:
    v1 = mx.ResourceType("game", rules_v1, initial={"n": 0})
    v2 = mx.ResourceType("game", rules_v2, initial={"n": 0})
    assert v1.version != v2.version
    assert v1.version.startswith("py3")
    assert mx.ResourceType("game", rules_v1, initial={"n": 0}).version == v1.version
    net = mx.LocalNetwork()
    seen: list[mx.Diagnostic] = []
    async with peers_of(net, {"name": "old", "types": [v1]}) as (old,):
        old.on_diagnostic(seen.append)
        rid = await old.create(v1, id="g")
        res = await old.bind(rid)
        await res.dispatch(mx.Action("tick"))
        async with peers_of(net, {"name": "new", "types": [v2], "seed": 4}) as (new,):
            new_seen: list[mx.Diagnostic] = []
            new.on_diagnostic(new_seen.append)
            await settled(lambda: new.id in old.members and old.id in new.members, new, old)
            await settled(lambda: any(d.kind == "incompatible_type" for d in seen), old)
            diagnostic = next(d for d in seen if d.kind == "incompatible_type")
            assert diagnostic.peer == new.id
            assert v1.version in diagnostic.reason
            assert v2.version in diagnostic.reason
            assert "same build" in diagnostic.reason
            for peer, type_ in ((new, v2), (old, v1)):
                with pytest.raises(mx.IncompatibleType, match=f"{v1.version}.*{v2.version}|{v2.version}.*{v1.version}"):
                    await peer.bind(rid)
                with pytest.raises(mx.IncompatibleType):
                    await peer.create(type_, id="other")
            assert new.resources() == []  # the other build's state never reaches it
            await res.dispatch(mx.Action("tick"))  # already bound: the old build plays on unharmed
            assert res.state == {"n": 2}
            assert new.stats["resyncs"] == old.stats["resyncs"] == 0
    # the same rules under another name, or an explicit shared version, are compatible
    same = mx.ResourceType("game", rules_v2, initial={"n": 0}, version="2")
    also = mx.ResourceType("game", rules_v1, initial={"n": 0}, version="2")
    async with peers_of(mx.LocalNetwork(), {"types": [same]}, {"types": [also], "seed": 3}) as (x, y):
        await settled(lambda: len(x.members) == 2, x)
        await y.bind(await x.create(same, id="g"))


async def test_the_master_refuses_another_build_even_before_the_peer_knows() -> None:
    v1 = mx.ResourceType("game", rules_v1, initial={"n": 0})
    v2 = mx.ResourceType("game", rules_v2, initial={"n": 0})
    async with peers_of(mx.LocalNetwork(), {"types": [v1]}, {"types": [v2], "seed": 1}) as (master, other):
        await settled(lambda: len(master.members) == 2, master)
        assert master.is_master
        other._core.conflicts.clear()  # as if its introduction had not arrived yet
        with pytest.raises(mx.IncompatibleType, match=r"on .*the master"):
            await other.create(v2, id="g")


def test_type_versions_follow_the_rules_their_helpers_and_constants() -> None:
    from movex_p2p.resource.types import code_version

    limit = 3

    def helper(n: int) -> int:
        return n + limit

    def reducer(state: Any, action: mx.Action) -> Any:
        return helper(state)

    first = code_version(reducer)
    limit = 4  # a closure value changes the rules
    assert code_version(reducer) != first
    assert code_version(rules_v1) == code_version(rules_v1)
    assert code_version(rules_v1) != code_version(rules_v2)
    assert code_version(rules_v1, None) == code_version(rules_v1)
    with pytest.raises(ValueError, match="version"):
        mx.ResourceType("t", rules_v1, version="x" * 65)


# -- mistakes at the call that caused them ---------------------------------------------------------


async def test_binding_a_type_this_peer_does_not_have_names_the_fix() -> None:
    net = mx.LocalNetwork()
    async with peers_of(net, {"types": [Counter, Rps]}, {"types": [Counter], "seed": 1}) as (a, b):
        await a.create(Rps, id="g")
        with pytest.raises(LocalProtocolError, match=r"no resource type 'rps'; pass it in Peer\(types=\[...\]\)"):
            await b.bind("rps:g")
        with pytest.raises(LocalProtocolError, match="no resource type 'rps'"):
            await b.create(Rps, id="h")


async def test_a_wrong_secret_fails_wait_ready_and_is_reported() -> None:
    net = mx.LocalNetwork()
    async with peers_of(net, {"secret": "right"}) as (host,):
        seen: list[mx.Diagnostic] = []
        host.on_diagnostic(seen.append)
        async with peers_of(net, {"secret": "wrong", "seed": 1}, ready=False) as (guest,):
            with pytest.raises(mx.AuthenticationFailed, match="same secret"), anyio.fail_after(5):
                await guest.wait_ready()
            await settled(lambda: any(d.kind == "auth_failed" for d in seen), host)
            assert "same secret" in next(d for d in seen if d.kind == "auth_failed").reason


async def test_bad_payloads_raise_invalid_state_synchronously() -> None:
    async with room(1) as (a,):
        res = await a.bind(await a.create(Counter, id="c"))
        with pytest.raises(mx.InvalidState, match="not JSON-like"):
            res.dispatch(mx.Action("append", {1, 2}))
        with pytest.raises(mx.InvalidState):
            mx.Peer(room="r", types=[], info={"when": time}, transport=mx.LocalNetwork())
        with pytest.raises(ValueError, match="role"):
            mx.Peer(room="r", types=[], role="referee", transport=mx.LocalNetwork())  # type: ignore[arg-type]


async def test_a_stalled_master_is_reported_as_a_slow_link() -> None:
    async with room(1) as (a,):
        seen: list[mx.Diagnostic] = []
        a.on_diagnostic(seen.append)
        a._notifier._on_event(fx.Stalled(master=PeerId("m"), seconds=1.0, pending=3), set())
        assert [(d.kind, d.peer) for d in seen] == [("slow_link", "m")]
        assert "3 pending actions" in seen[0].reason


def test_an_introduction_is_bounded() -> None:
    with pytest.raises(ValueError, match="name"):
        presence.Introduce(name="x" * 201, info={}, role="player", types={})
    with pytest.raises(ValueError, match="types"):
        presence.Introduce(name="x", info={}, role="player", types={str(i): "v" for i in range(2000)})


_impure_calls = [0]


def impure(state: Any, action: mx.Action) -> Any:
    """Reads something outside its inputs: every peer computes another result."""
    _impure_calls[0] += 1
    return {**state, "n": _impure_calls[0]}


async def test_an_impure_reducer_is_reported_as_diverged_naming_the_cause() -> None:
    Impure = mx.ResourceType("impure", impure, initial={"n": 0})
    async with room(2, types=[Impure]) as (a, b):
        seen: list[mx.Diagnostic] = []
        for peer in (a, b):
            peer.on_diagnostic(seen.append)
        rid = await a.create(Impure, id="i")
        ra = await a.bind(rid)
        await b.bind(rid)
        await ra.dispatch(mx.Action("go"))
        await settled(lambda: any(d.kind == "diverged" for d in seen), a, b)
        diverged = next(d for d in seen if d.kind == "diverged")
        assert diverged.rid == rid
        assert "not pure" in diverged.reason
