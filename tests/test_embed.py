"""movex_p2p.embed: a Peer on a background thread, used from plain synchronous code."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import movex_p2p as mx
from movex_p2p.embed import (
    Diagnostic,
    EmbeddedPeer,
    EmbeddedResource,
    MasterChanged,
    PeerJoined,
    PeerLeft,
    PeersChanged,
    ResourceRemoved,
    start_peer,
)
from movex_p2p.testing import FaultyNetwork
from tests.resources import Counter
from tests.waits import WITHIN, settled

# transport/memory.py never closes an endpoint's receive stream (reported to its owners); the
# resulting ResourceWarning at garbage collection is not this module's concern.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in.*MemoryObjectReceiveStream:pytest.PytestUnraisableExceptionWarning"
)


def secret(state: Any, action: mx.Action) -> Any:
    match action:
        case mx.Action("submitted", str(who)):
            return {**state, "submitted": {**state["submitted"], who: True}}
        case mx.Action("choice", {"who": str(who), "value": int(value)}):
            return {**state, "choices": {**state["choices"], who: value}}
    return state


Secret = mx.ResourceType(
    "secret",
    secret,
    initial={"submitted": {}, "choices": {}},
    can_reveal=lambda s: len(s["submitted"]) >= 2,
)


def until(predicate: Callable[[], bool], *peers: EmbeddedPeer, within: float = WITHIN) -> None:
    """Block until ``predicate()`` holds, looked at on the peers' network thread after each of their
    steps (``tests.waits.settled``): it reads what the network thread writes (``master_id``,
    ``members``, a resource's snapshot) where it writes it. ``peers`` share one network (one loop)."""
    runtime = peers[0]._runtime
    assert all(peer._runtime is runtime for peer in peers), "peers of one in-process network share one loop"
    inner = [peer.peer for peer in peers]

    async def wait() -> None:
        await settled(predicate, *inner, within=within)

    peers[0].call(wait, timeout=within + 5)  # the wait's own bound fails first, with its message


def threads_end(before: set[threading.Thread], within: float = WITHIN) -> None:
    """Join every thread started since ``before`` was taken; fail if one is still running after ``within``."""
    started = set(threading.enumerate()) - before
    for thread in started:
        thread.join(within)  # returns when the thread ends: the bound is on a hang only
    assert not [thread for thread in started if thread.is_alive()], "a thread outlived its peer"


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    threads_end(before)


def test_single_peer_dispatch_poll_and_snapshot() -> None:
    with start_peer(room="r", types=[Counter], transport=mx.LocalNetwork(), name="solo") as peer:
        assert peer.is_master
        assert peer.master_id == peer.id
        res = peer.bind(peer.create(Counter, {"count": 2}, id="c1"))
        assert isinstance(res, EmbeddedResource)
        assert res.rid == "counter:c1"
        assert res.state == {"count": 2}
        futures = [res.dispatch(mx.Action("increment")) for _ in range(20)]
        for future in futures:
            future.result(timeout=5)
        until(lambda: res.state == {"count": 22} and res.pending == 0, peer)
        seen = res.poll()
        assert seen, "poll returns the changes since the last call"
        assert seen[-1] == {"count": 22}
        assert res.poll() == []
        assert res.version >= 20
        assert peer.id in res.subscribers
        assert len(res.checksum) > 8


def test_dispatch_never_blocks_and_rejection_reaches_the_future() -> None:
    with start_peer(room="r", types=[Counter], transport=mx.LocalNetwork()) as peer:
        res = peer.bind(peer.create(Counter, id="c1"))
        held, release = threading.Event(), threading.Event()

        def hold() -> None:  # runs on the network thread
            held.set()
            release.wait()

        holder = threading.Thread(target=peer.run_in_loop, args=(hold,))
        futures: list[concurrent.futures.Future[None]] = []
        game = threading.Thread(target=lambda: futures.extend(res.dispatch(mx.Action("increment")) for _ in range(500)))
        holder.start()
        assert held.wait(10)  # the network thread now runs our function until release: it is stuck
        game.start()
        game.join(10)  # a bound on a hang, not a speed target
        blocked = game.is_alive()
        settled = sum(future.done() for future in futures)
        release.set()
        holder.join()
        game.join()
        assert not blocked, "dispatch waited for the (held) network thread"
        assert settled == 0  # nothing settled while the loop was held: it really was stuck
        bad = res.dispatch(mx.Action("boom"))
        with pytest.raises(mx.ActionRejected):
            bad.result(timeout=5)
        for future in futures:
            future.result(timeout=5)
        until(lambda: res.state["count"] == 500, peer)


def test_two_peers_agree_and_events_are_delivered_on_the_callers_thread() -> None:
    network = mx.LocalNetwork()
    with (
        start_peer(room="r", types=[Counter], transport=network, name="a", seed=1) as a,
        start_peer(room="r", types=[Counter], transport=network, name="b", seed=2) as b,
    ):
        calls: list[tuple[str | None, int, threading.Thread]] = []
        b.on_master_changed(lambda master, term: calls.append((master, term, threading.current_thread())))
        until(lambda: a.master_id is not None and a.master_id == b.master_id and b.peers == {a.id}, a, b)
        ra = a.bind(a.create(Counter, id="c"))
        rb = b.bind(b.create(Counter, id="c"))
        for _ in range(10):
            ra.dispatch(mx.Action("increment"))
            rb.dispatch(mx.Action("increment"))
        until(lambda: ra.state["count"] == rb.state["count"] == 20 and ra.pending == rb.pending == 0, a, b)
        until(lambda: ra.checksum == rb.checksum, a, b)
        events = b.poll_events()
        assert any(isinstance(e, MasterChanged) for e in events)
        assert any(isinstance(e, PeersChanged) for e in events)
        assert calls, "callbacks run inside poll_events"
        assert all(thread is threading.current_thread() for _, _, thread in calls)
        assert b.poll_events() == []


def test_master_change_after_kill_is_polled_and_survivor_keeps_playing() -> None:
    network = FaultyNetwork(seed=3, detect_after=0.3)
    with (
        start_peer(room="r", types=[Counter], transport=network, name="a", seed=1) as a,
        start_peer(room="r", types=[Counter], transport=network, name="b", seed=2) as b,
    ):
        until(lambda: a.master_id is not None and a.master_id == b.master_id and len(a.peers) == 1, a, b)
        master, survivor = (a, b) if a.is_master else (b, a)
        res = survivor.bind(survivor.create(Counter, id="c"))
        res.dispatch(mx.Action("increment")).result(timeout=5)
        survivor.poll_events()
        changes: list[str | None] = []
        survivor.on_master_changed(lambda m, _term: changes.append(m))
        survivor.run_in_loop(network.kill, master.id)
        until(lambda: survivor.is_master, survivor)
        # recorded with the master change that made it master: this poll runs its callback, here
        assert any(isinstance(e, MasterChanged) and e.master == survivor.id for e in survivor.poll_events())
        assert survivor.id in changes
        res.dispatch(mx.Action("increment")).result(timeout=5)
        until(lambda: res.state["count"] == 2, survivor)


def test_private_action_is_revealed_when_the_type_allows() -> None:
    network = mx.LocalNetwork()
    with (
        start_peer(room="r", types=[Secret], transport=network, name="a", seed=1) as a,
        start_peer(room="r", types=[Secret], transport=network, name="b", seed=2) as b,
    ):
        until(lambda: a.master_id is not None and a.master_id == b.master_id, a, b)
        ra = a.bind(a.create(Secret, id="s"))
        rb = b.bind(b.create(Secret, id="s"))
        ra.dispatch_private(mx.Action("choice", {"who": "a", "value": 7}), mx.Action("submitted", "a")).result(5)
        until(lambda: "a" in rb.state["submitted"], b)
        assert rb.state["choices"] == {}, "b must not see a's choice before the reveal"
        rb.dispatch_private(mx.Action("choice", {"who": "b", "value": 3}), mx.Action("submitted", "b")).result(5)
        until(lambda: ra.state["choices"] == rb.state["choices"] == {"a": 7, "b": 3}, a, b)


def test_a_stalled_game_loop_does_not_stall_the_network_thread() -> None:
    network = mx.LocalNetwork()
    with (
        start_peer(room="r", types=[Counter], transport=network, name="a", seed=1) as a,
        start_peer(room="r", types=[Counter], transport=network, name="b", seed=2) as b,
    ):
        until(lambda: a.master_id is not None and a.master_id == b.master_id, a, b)
        ra = a.bind(a.create(Counter, id="c"))
        rb = b.bind(b.create(Counter, id="c"))
        # b's "game loop" never polls; a keeps dispatching and gets confirmations
        for _ in range(50):
            ra.dispatch(mx.Action("increment"))
        until(lambda: ra.pending == 0 and ra.state["count"] == 50, a)
        until(lambda: rb.state["count"] == 50, b)  # b's snapshot is updated without b polling
        assert len(rb.poll()) <= 1024


def test_ctrl_c_in_the_game_thread_closes_the_peer() -> None:
    before = set(threading.enumerate())
    embedded = start_peer(room="r", types=[Counter], transport=mx.LocalNetwork())

    def game() -> None:
        with embedded as peer:
            peer.bind(peer.create(Counter, id="c")).dispatch(mx.Action("increment"))
            raise KeyboardInterrupt  # Ctrl-C in the frame loop

    with pytest.raises(KeyboardInterrupt):
        game()
    assert not embedded.running
    threads_end(before)
    with pytest.raises(mx.TransportError):
        embedded.create(Counter, id="d")


def test_exit_is_idempotent_and_blocking_calls_outside_with_fail() -> None:
    embedded = start_peer(room="r", types=[Counter], transport=mx.LocalNetwork())
    with pytest.raises(mx.TransportError):
        embedded.create(Counter, id="c")
    with embedded:
        pass
    embedded.close()


def forgetful(state: Any, action: mx.Action) -> Any:
    if action.type == "add":
        return {**state, "n": state["n"] + 1}
    return None  # the bug: every other action loses the state


Forgetful = mx.ResourceType("forgetful", forgetful, initial={"n": 0})


def test_presence_diagnostics_and_removal_reach_the_game_thread() -> None:
    network = mx.LocalNetwork()
    with start_peer(room="r", types=[Counter, Forgetful], transport=network, name="a", seed=1) as a:
        seen: list[tuple[str, threading.Thread]] = []
        a.on_peer_joined(lambda info: seen.append((f"joined {info.name} {info.role}", threading.current_thread())))
        a.on_peer_left(lambda info, reason: seen.append((f"{reason} {info.name}", threading.current_thread())))
        a.on_diagnostic(lambda d: seen.append((f"diagnostic {d.kind}", threading.current_thread())))
        with start_peer(
            room="r", types=[Counter, Forgetful], transport=network, name="w", seed=2, role="spectator"
        ) as w:
            until(lambda: w.id in a.members, a)
            assert a.members[w.id] == mx.PeerInfo(w.id, "w", {}, "spectator")
            assert w.role == "spectator"
            assert not w.is_master
            res = a.bind(a.create(Counter, id="c"))
            watched = w.bind("counter:c")
            removed: list[threading.Thread] = []
            watched.on_removed(lambda: removed.append(threading.current_thread()))
            assert sorted(a.resources()) == ["counter:c"]
            a.remove("counter:c")
            assert res.removed
            with pytest.raises(mx.ResourceNotFound):
                res.dispatch(mx.Action("increment"))
            until(lambda: watched.removed, w)
            events = w.poll()
            assert any(isinstance(e, ResourceRemoved) for e in events)
            assert removed == [threading.current_thread()]
            f = a.bind(a.create(Forgetful, id="f"))
            with pytest.raises(mx.ActionRejected, match="returned None for action 'oops'"):
                f.dispatch(mx.Action("oops"))  # on the game thread, at the call
            with pytest.raises(mx.InvalidState):
                f.dispatch(mx.Action("add", {1, 2}))
            f.dispatch(mx.Action("add")).result(timeout=5)
        until(lambda: w.id not in a.members, a)  # recorded with its PeerLeft: one poll takes both
        polled = a.poll()
        assert any(isinstance(e, PeerLeft) for e in polled)
        assert any(isinstance(e, PeerJoined) for e in polled)
        assert [text for text, _ in seen if not text.startswith("diagnostic")] == ["joined w spectator", "left w"]
        assert all(thread is threading.current_thread() for _, thread in seen)
        assert set(a.members) == {a.id}


def test_a_wrong_secret_fails_start_peer() -> None:
    network = mx.LocalNetwork()
    with start_peer(room="r", types=[Counter], transport=network, secret="right", seed=1) as host:
        refused = threading.Event()  # set on the network thread, when the host records the diagnostic

        def seen(diagnostic: Diagnostic) -> None:
            if diagnostic.kind == "auth_failed":
                refused.set()

        host.run_in_loop(host.peer.on_diagnostic, seen)
        guest = start_peer(room="r", types=[Counter], transport=network, secret="wrong", seed=2)
        with pytest.raises(mx.AuthenticationFailed, match="same secret"), guest:
            pass
        assert refused.wait(WITHIN), "the host never reported the failed handshake"
        assert any(isinstance(e, Diagnostic) and e.kind == "auth_failed" for e in host.poll())


def stamped(state: Any, action: mx.Action) -> Any:
    if action.author is None:
        return None  # never happens in a dispatch: the library always sets the author
    return {**state, "by": action.author}


def test_the_game_thread_check_sees_the_author_as_the_network_thread_will() -> None:
    stamp = mx.ResourceType("stamp", stamped, initial={"by": None})
    with start_peer(room="r", types=[stamp], transport=mx.LocalNetwork()) as peer:
        res = peer.bind(peer.create(stamp, id="s"))
        res.dispatch(mx.Action("stamp")).result(timeout=5)
        until(lambda: res.state == {"by": peer.id}, peer)
