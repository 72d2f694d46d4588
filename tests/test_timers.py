"""Issue 16: a lost private half is an event, not a stall (``reveal_timeout``, ``on_unrevealed``),
and turn timers that survive failover (``mx.master.deadline``, ``on_deadline``).

Pure cores and whole simulated peers in virtual time: no sockets, no sleeps."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

import movex_p2p as mx
from movex_p2p.election.machine import ElectionConfig
from movex_p2p.ids import PeerId, Rid
from movex_p2p.nodecore import NodeCore
from movex_p2p.resource import effects as fx
from movex_p2p.resource import messages as rm
from movex_p2p.resource.client import ClientCore
from movex_p2p.resource.values import Deadline, earliest_deadline, fire_deadline
from movex_p2p.signing import FAKE, FakeSigner
from movex_p2p.simulation import Simulation
from movex_p2p.testing.cores import CoreCluster
from tests.resources import RPS_INITIAL, SECRET, rps, rps_can_reveal, submit
from tests.waits import settled


def forfeit(state: Any, lost: mx.Unrevealed) -> Any:
    """The player whose hand is lost forfeits: the other one wins."""
    label = lost.public.payload["playerLabel"] if lost.public is not None else "?"
    other = "playerB" if label == "playerA" else "playerA"
    return {**state, "winner": f"forfeit:{other}", "lost": [lost.author, lost.seq, label]}


def broken(state: Any, lost: mx.Unrevealed) -> Any:
    raise RuntimeError("the game's on_unrevealed is broken")


TIMEOUT = 2.0
Rps = mx.ResourceType("rps", rps, initial=RPS_INITIAL, can_reveal=rps_can_reveal, reveal_timeout=TIMEOUT)
Forfeit = mx.ResourceType(
    "rps", rps, initial=RPS_INITIAL, can_reveal=rps_can_reveal, reveal_timeout=TIMEOUT, on_unrevealed=forfeit
)
Broken = mx.ResourceType(
    "rps", rps, initial=RPS_INITIAL, can_reveal=rps_can_reveal, reveal_timeout=TIMEOUT, on_unrevealed=broken
)
RID = Rid("rps:g")


# -- the stuck reveal in the cores -------------------------------------------------------------------


def master_rolls_then_restarts(type_: mx.ResourceType) -> CoreCluster:
    """p0 (master) plays A privately, is SIGKILLed, p1 takes over, p0 comes back with the same
    identity (a fresh process: its private half is gone), then p2 plays B: the reveal is due."""
    c = CoreCluster(3, types={"rps": type_})
    c.setup("rps:g")
    a, _, b = c.ids
    c.dispatch(a, "rps:g", mx.Action("addPlayer", {"id": str(a), "playerLabel": "playerA"}))
    c.dispatch(b, "rps:g", mx.Action("addPlayer", {"id": str(b), "playerLabel": "playerB"}))
    c.dispatch(a, "rps:g", *reversed(submit("playerA", "rock")))  # the master holds its own private half
    c.run()
    c.kill(a)
    c.elect(c.ids[1], 2)
    replica = c.master.resource(RID)
    assert replica is not None
    assert [h.action for h in replica.held] == [None]  # only p0 ever held it
    c.alive.add(a)  # p0 again: the same id, a new process that knows nothing
    c.clients[a] = ClientCore(a, types=c.types, room=c.room, signer=c.signers[a])
    c.route(c.master_id, c.master.peers_changed(frozenset(c.alive - {c.master_id}), c.now))
    c.route(a, c.clients[a].master_changed(c.master_id, c.term))
    c.run()
    c.dispatch(b, "rps:g", *reversed(submit("playerB", "paper")))
    c.run()
    return c


def test_a_master_back_without_its_private_half_does_not_stall_the_reveal() -> None:
    c = master_rolls_then_restarts(Rps)
    a = c.ids[0]
    assert c.view(c.ids[2], "rps:g")["submissions"]["playerA"] == {"play": SECRET}
    assert c.master.due == pytest.approx(c.now + TIMEOUT)  # the driver wakes up for it
    c.advance(TIMEOUT - 0.1)
    c.run()
    assert not c.sent(rm.Revealed)  # its author is connected: it may still restore it
    c.advance(0.1)
    c.run()
    revealed = c.sent(rm.Revealed)[0]
    assert {m.index for m in c.sent(rm.Revealed)} == {revealed.index}  # one entry (to each peer)
    assert [(h.author, h.action) for h in revealed.actions if h.action is None] == [(a, None)]
    # default on_unrevealed: the lost half is dropped, the rest revealed
    for p in c.ids:
        assert c.view(p, "rps:g")["submissions"] == {"playerA": {"play": SECRET}, "playerB": {"play": "paper"}}
    assert len(c.checksums("rps:g")) == 1
    assert c.master.resource(RID) is not None
    assert c.master.resource(RID).held == []  # type: ignore[union-attr]
    assert c.master.due is None
    lost = c.of_type(fx.PrivateLost)
    assert [(e.rid, e.seqs) for e in lost] == [(RID, (2,))]  # the author's own peer only
    assert lost == c.of_type(fx.PrivateLost, a)


def test_on_unrevealed_decides_and_every_peer_computes_the_same_state() -> None:
    c = master_rolls_then_restarts(Forfeit)
    c.advance(TIMEOUT)
    c.run()
    a = c.ids[0]
    for p in c.ids:
        state = c.view(p, "rps:g")
        assert state["winner"] == "forfeit:playerB"
        assert state["lost"] == [str(a), 2, "playerA"]  # u.author, u.seq, and the public half it names
        # in the order of the pairs: A's lost half first, then B's (which rps ignores once there is a winner)
        assert state["submissions"]["playerB"] == {"play": SECRET}
    assert len(c.checksums("rps:g")) == 1
    assert not c.of_type(fx.ResyncStarted)


def test_on_unrevealed_raising_is_reported_and_the_half_is_dropped_everywhere() -> None:
    c = master_rolls_then_restarts(Broken)
    c.advance(TIMEOUT)
    c.run()
    (raised,) = c.of_type(fx.AppRaised)
    assert raised.where == "on_unrevealed"
    assert "broken" in raised.error
    assert len(c.checksums("rps:g")) == 1
    assert c.view(c.ids[2], "rps:g")["submissions"]["playerB"] == {"play": "paper"}
    assert not c.of_type(fx.ResyncStarted)


def test_an_author_gone_without_its_half_is_unrevealed_at_once_and_one_that_restores_it_in_time_is_not() -> None:
    # gone: the master (p0) dies with its private half and stays dead
    c = CoreCluster(3, types={"rps": Forfeit})
    c.setup("rps:g")
    a, _, b = c.ids
    c.dispatch(a, "rps:g", mx.Action("addPlayer", {"id": str(a), "playerLabel": "playerA"}))
    c.dispatch(b, "rps:g", mx.Action("addPlayer", {"id": str(b), "playerLabel": "playerB"}))
    c.dispatch(a, "rps:g", *reversed(submit("playerA", "rock")))
    c.run()
    c.kill(a)
    c.elect(c.ids[1], 2)
    c.dispatch(b, "rps:g", *reversed(submit("playerB", "paper")))
    c.run()
    assert c.view(b, "rps:g")["winner"] == "forfeit:playerB"  # no timeout to wait for
    # in time: a player's half held by a dead master comes back from its (living) author
    c = CoreCluster(3, types={"rps": Forfeit})
    c.setup("rps:g")
    c.dispatch(b, "rps:g", mx.Action("addPlayer", {"id": str(b), "playerLabel": "playerB"}))
    c.dispatch(c.ids[1], "rps:g", mx.Action("addPlayer", {"id": "x", "playerLabel": "playerA"}))
    c.dispatch(b, "rps:g", *reversed(submit("playerB", "paper")))
    c.run()
    c.kill(a)
    c.elect(c.ids[1], 2)  # b restores its half to the new master
    c.dispatch(c.ids[1], "rps:g", *reversed(submit("playerA", "scissors")))
    c.run()
    assert c.view(b, "rps:g")["winner"] == "scissors"
    assert not c.of_type(fx.PrivateLost)


# -- the stuck reveal with whole peers, and the diagnostic --------------------------------------------


def test_simulation_master_sigkilled_and_back_with_the_same_identity_the_reveal_still_happens() -> None:
    """Issue 16: the master plays privately, is SIGKILLed and comes back with the same Identity."""
    sim = Simulation(3, types=[Forfeit], seed=4)
    assert sim.run(3.0, until=lambda s: len(s.masters()) == 1)
    master = sim.masters()[0]
    other = next(p for p in sim.ids if p != master)
    rid = sim.create(master, "rps", "g")
    sim.run(0.5)
    sim.dispatch(master, rid, mx.Action("addPlayer", {"id": master, "playerLabel": "playerA"}))
    sim.dispatch(other, rid, mx.Action("addPlayer", {"id": other, "playerLabel": "playerB"}))
    sim.run(0.5)
    private, public = submit("playerA", "rock")
    sim.dispatch(master, rid, public, private)
    sim.run(0.5)
    sim.kill(master)
    sim.run(3.0, until=lambda s: len(s.masters()) == 1 and s.masters()[0] != master)
    sim.run(1.0)
    sim.restart(master)
    assert sim.run(5.0, until=lambda s: s.converged(rid) and master in s.peers[s.masters()[0]].core.peers)
    private, public = submit("playerB", "paper")
    sim.dispatch(other, rid, public, private)
    assert sim.run(TIMEOUT + 3.0, until=lambda s: s.converged(rid) and s.state(other, rid)["winner"] is not None)
    for pid in sim.alive:
        assert sim.state(pid, rid)["winner"] == "forfeit:playerB"
    assert list(sim.peers[PeerId(master)].lost) == [(rid, 2)]  # the restarted author hears of it
    assert all(not sim.peers[p].lost for p in sim.alive if p != master)


# -- deadlines ----------------------------------------------------------------------------------------


def turns(state: Any, action: mx.Action) -> Any:
    match action:
        case mx.Action("start", {"until": until}):
            return {**state, "turn": 0, "until": until}
        case mx.Action("play"):
            return {**state, "played": state["played"] + 1}
    return state


def next_turn(state: Any, now: float) -> Any:
    return {**state, "turn": state["turn"] + 1, "timeouts": [*state["timeouts"], now]}


def raising(state: Any, now: float) -> Any:
    raise ValueError("on_deadline is broken")


TURNS_INITIAL: dict[str, Any] = {"turn": None, "until": None, "played": 0, "timeouts": []}
Turns = mx.ResourceType("rounds", turns, initial=TURNS_INITIAL, on_deadline=next_turn)
Raising = mx.ResourceType("rounds", turns, initial=TURNS_INITIAL, on_deadline=raising)


def test_deadline_values_are_plain_data() -> None:
    state: dict[str, Any] = {"a": [Deadline.at(20.0), {"b": Deadline.at(10)}], "c": {"$deadline": "not a time"}}
    assert earliest_deadline(state) == 10.0
    fired = fire_deadline(state, 10.0)
    assert fired["a"][1]["b"] == {"$deadline": 10, "$fired": True}
    assert fired["a"][0] is state["a"][0]  # unchanged parts are shared
    assert Deadline.fired(fired["a"][1]["b"])
    assert not Deadline.fired(fired["a"][0])
    assert earliest_deadline(fired) == 20.0
    assert Deadline.of(state["c"]) is None
    assert Deadline.of({"$deadline": 1.0, "other": 1}) is None  # an app's dict that merely has the key
    assert mx.master.deadline(30) == mx.master.deadline(30)
    with pytest.raises(ValueError, match="deadline"):
        mx.master.deadline(-1)


def test_a_deadline_fires_once_as_an_entry_every_peer_replays() -> None:
    c = CoreCluster(3, types={"rounds": Turns})
    c.setup("rounds:t")
    start = c.now
    c.dispatch(c.ids[1], "rounds:t", mx.Action("start", {"until": mx.master.deadline(30)}))
    c.run()
    assert c.view(c.ids[2], "rounds:t")["until"] == {"$deadline": start + 30}
    assert c.master.due == start + 30
    c.advance(29.9)
    c.run()
    assert not c.sent(rm.Elapsed)
    c.advance(0.1)
    c.run()
    elapsed = c.sent(rm.Elapsed)[0]
    assert elapsed.deadline == start + 30
    for p in c.ids:
        state = c.view(p, "rounds:t")
        assert state["turn"] == 1
        assert state["timeouts"] == [c.now]
        assert Deadline.fired(state["until"])
    assert len(c.checksums("rounds:t")) == 1
    assert c.master.due is None
    c.advance(100.0)
    c.run()
    assert c.view(c.ids[0], "rounds:t")["turn"] == 1  # once
    assert not c.of_type(fx.ResyncStarted)


def test_on_deadline_raising_is_reported_once_and_the_deadline_is_spent() -> None:
    c = CoreCluster(2, types={"rounds": Raising})
    c.setup("rounds:t")
    c.dispatch(c.ids[1], "rounds:t", mx.Action("start", {"until": mx.master.deadline(5)}))
    c.run()
    for _ in range(5):
        c.advance(5.0)
        c.run()
    raised = c.of_type(fx.AppRaised)
    assert [(e.where, "broken" in e.error) for e in raised] == [("on_deadline", True)]
    assert len(c.sent(rm.Elapsed)) == 2  # one entry, delivered to each of the 2 peers
    assert Deadline.fired(c.view(c.ids[1], "rounds:t")["until"])
    assert c.view(c.ids[1], "rounds:t")["turn"] == 0  # on_deadline changed nothing
    assert len(c.checksums("rounds:t")) == 1
    assert c.master.due is None


def test_the_node_wakes_up_for_the_masters_next_deadline() -> None:
    key = FakeSigner.from_seed(1)
    core = NodeCore(
        key.id, types={"rounds": Turns}, election=ElectionConfig(), rng=random.Random(1), signer=key, verifier=FAKE
    )
    core.start(0.0, 1000.0)
    now = 0.0
    while core.master is None or core.master.recovering or not core.client.synced:
        now += 0.05
        core.tick(now, 1000.0 + now)
    rid = Rid("rounds:t")
    core.create(rid, None, now, 1000.0 + now)
    core.bind(rid, {}, now, 1000.0 + now)
    core.dispatch(rid, mx.Action("start", {"until": mx.master.deadline(60)}), None, now, 1000.0 + now)
    wait = core.seconds_to_deadline(now)
    assert wait is not None
    assert wait <= 60.0
    while core.client.view(rid)["turn"] == 0:
        wait = core.seconds_to_deadline(now)
        assert wait is not None
        now += max(wait, 0.001)
        core.tick(now, 1000.0 + now)
    assert now == pytest.approx(60.0, abs=1.0)


def test_simulation_a_deadline_fires_once_across_a_master_failover() -> None:
    sim = Simulation(3, types=[Turns], seed=7)
    assert sim.run(3.0, until=lambda s: len(s.masters()) == 1)
    master = sim.masters()[0]
    player = next(p for p in sim.ids if p != master)
    rid = sim.create(player, "rounds", "t")
    sim.run(0.5)
    sim.dispatch(player, rid, mx.Action("start", {"until": mx.master.deadline(5)}))
    sim.run(1.0)
    until = Deadline.of(sim.state(player, rid)["until"])
    assert until is not None
    sim.kill(master)  # the master that drew the deadline dies before it passes
    assert sim.run(10.0, until=lambda s: s.now > until + 1 and s.converged(rid))
    second = sim.masters()[0]
    assert second != master
    for pid in sim.alive:
        assert sim.state(pid, rid)["turn"] == 1  # fired by the new master, once
    sim.kill(second)  # and a master change after it fired does not fire it again
    assert sim.run(10.0, until=lambda s: len(s.masters()) == 1 and s.masters()[0] != second and s.converged(rid))
    sim.run(2.0)
    (survivor,) = sim.alive
    assert sim.state(survivor, rid)["turn"] == 1
    assert len(sim.state(survivor, rid)["timeouts"]) == 1


# -- on real (in-process) peers ------------------------------------------------------------------------


async def test_the_master_back_without_its_private_half_is_told_private_lost(tmp_path: Path) -> None:
    """Issue 16 on mx.Peer: the master plays privately, is SIGKILLed, comes back with the same
    Identity; the reveal happens reveal_timeout after it is due, and the author's Peer is told."""
    quick = mx.ResourceType(
        "rps", rps, initial=RPS_INITIAL, can_reveal=rps_can_reveal, reveal_timeout=0.5, on_unrevealed=forfeit
    )
    identity = mx.Identity.load_or_create(tmp_path / "ann.key")
    net = mx.testing.FaultyNetwork(seed=3, detect_after=0.3)
    diagnostics: list[mx.Diagnostic] = []
    killed = anyio.Event()

    async def first_ann(*, task_status: anyio.abc.TaskStatus[mx.Peer]) -> None:
        async with mx.Peer(room="t", types=[quick], name="ann", transport=net, identity=identity) as ann:
            task_status.started(ann)
            await killed.wait()  # then its process ends: nothing it held survives

    async with anyio.create_task_group() as tg:
        ann: mx.Peer = await tg.start(first_ann)
        with anyio.fail_after(5):
            await ann.wait_ready()
        assert ann.is_master
        async with mx.Peer(room="t", types=[quick], name="bob", transport=net) as bob:
            with anyio.fail_after(5):
                await bob.wait_ready()
                rid = await ann.create(quick, id="g")
                ra, rb = await ann.bind(rid), await bob.bind(rid)
                await ra.dispatch(mx.Action("addPlayer", {"id": ann.id, "playerLabel": "playerA"}))
                await rb.dispatch(mx.Action("addPlayer", {"id": bob.id, "playerLabel": "playerB"}))
                await ra.dispatch_private(*submit("playerA", "rock"))  # only the master (ann) holds it
                await settled(lambda: rb.state["submissions"]["playerA"] == {"play": SECRET}, bob)
            net.kill(ann.id)  # SIGKILL
            killed.set()
            await settled(lambda: bob.is_master, bob)
            async with mx.Peer(room="t", types=[quick], name="ann2", transport=net, identity=identity) as again:
                again.on_diagnostic(diagnostics.append)
                with anyio.fail_after(5):
                    await again.wait_ready()
                    ra = await again.bind(rid)
                await rb.dispatch_private(*submit("playerB", "paper"))
                await settled(lambda: ra.state["winner"] == rb.state["winner"] == "forfeit:playerB", again, bob)
                await settled(lambda: any(d.kind == "private_lost" for d in diagnostics), again)
    (lost,) = [d for d in diagnostics if d.kind == "private_lost"]
    assert lost.rid == rid
    assert lost.peer == bob.id
    assert "seqs 2" in lost.reason


# -- examples/cards.py's turn timer --------------------------------------------------------------------


def test_cards_turn_timer_skips_a_silent_player_once_even_across_a_master_failover() -> None:
    cards = _load_cards()
    sim = Simulation(3, types=cards.TYPES, seed=11)
    assert sim.run(3.0, until=lambda s: len(s.masters()) == 1)
    master = sim.masters()[0]
    ann, bob = (p for p in sim.ids if p != master)  # two players; the master only serves
    rid = sim.create(ann, "table", "main", cards.table_initial(turn_seconds=10.0))
    sim.run(0.5)
    for pid, name in ((ann, "ann"), (bob, "bob")):
        sim.dispatch(pid, rid, mx.Action("join", {"name": name}))
        sim.run(0.2)
    sim.dispatch(ann, rid, mx.Action("start", {"until": mx.master.deadline(10)}))
    sim.run(0.5)
    state = sim.state(ann, rid)
    assert state["players"][state["turn"]] == ann
    started = Deadline.of(state["until"])
    assert started is not None
    sim.kill(master)  # ann never plays; the master that drew her timer dies meanwhile
    assert sim.run(15.0, until=lambda s: s.now > started + 1 and s.converged(rid))
    state = sim.state(bob, rid)
    assert state["played"] == {ann: cards.SKIPPED}  # skipped once, by the new master
    assert state["players"][state["turn"]] == bob
    assert Deadline.of(state["until"]) == pytest.approx(started + 10.0, abs=0.5)  # bob's turn has its own timer
    assert sim.state(ann, rid) == state


def _load_cards() -> Any:
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "examples" / "cards.py"
    spec = importlib.util.spec_from_file_location("cards_example", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- timers run on the monotonic clock; wall time is data only ---------------------------------------


def master_alone(wall: list[float]) -> tuple[NodeCore, float]:
    """A lone peer elected master; its wall clock is ``wall[0]`` seconds ahead of the monotonic one."""
    key = FakeSigner.from_seed(1)
    core = NodeCore(
        key.id, types={"rounds": Turns}, election=ElectionConfig(), rng=random.Random(1), signer=key, verifier=FAKE
    )
    core.start(0.0, wall[0])
    now = 0.0
    while core.master is None or core.master.recovering or not core.client.synced:
        now += 0.05
        core.tick(now, wall[0] + now)
    return core, now


def test_a_turn_timer_fires_on_time_when_the_wall_clock_is_set_back_an_hour() -> None:
    """The system clock stepped back (an NTP correction, a user fixing the time zone) must not hold a
    turn timer for an hour: the master's timers run on the monotonic clock."""
    wall = [1000.0]
    core, now = master_alone(wall)
    rid = Rid("rounds:t")
    core.create(rid, None, now, wall[0] + now)
    core.bind(rid, {}, now, wall[0] + now)
    core.dispatch(rid, mx.Action("start", {"until": mx.master.deadline(60)}), None, now, wall[0] + now)
    started = now
    wall[0] -= 3600.0  # the wall clock jumps back an hour; the monotonic one goes on
    while core.client.view(rid)["turn"] == 0 and now < started + 4000:
        wait = core.seconds_to_deadline(now)
        assert wait is not None
        now += max(wait, 0.001)
        core.tick(now, wall[0] + now)
    assert now - started == pytest.approx(60.0, abs=1.0)


def test_a_wall_clock_that_jumps_forward_reports_no_action_stuck() -> None:
    """A clock set forward an hour (a laptop's first NTP sync after waking) is not an hour of waiting:
    an action the master is about to confirm is neither sent again nor reported stuck."""
    sim = Simulation(3, types=[Turns], seed=3)
    assert sim.run(3.0, until=lambda s: len(s.masters()) == 1)
    player = next(p for p in sim.ids if p not in sim.masters())
    rid = sim.create(player, "rounds", "t")
    sim.run(0.5)
    core = sim.peers[player].core
    skew = [0.0]
    for name in ("step", "receive", "tick", "dispatch"):  # wall is the last argument
        method = getattr(core, name)

        def ahead(*args: Any, _method: Any = method) -> Any:
            return _method(*args[:-1], args[-1] + skew[0])

        setattr(core, name, ahead)
    sim.links.set_delay(0.2)  # the confirmation takes a while: the client's timers run meanwhile
    seq = sim.dispatch(player, rid, mx.Action("play"))
    skew[0] = 3600.0  # just after the dispatch, the wall clock jumps an hour ahead
    assert sim.run(5.0, until=lambda s: (rid, seq) in s.peers[player].confirmed)
    assert not sim.peers[player].stuck
