"""MasterCore + ClientCores driven directly (no I/O, no sleeps): Movex semantics and its fixed bugs."""

from __future__ import annotations

from typing import Any

import pytest

import movex_p2p as mx
from movex_p2p import wire
from movex_p2p.errors import LocalProtocolError
from movex_p2p.ids import PeerId, Rid, Term
from movex_p2p.resource import effects as fx
from movex_p2p.resource import messages as rm
from movex_p2p.resource.client import RESEND_AFTER, STUCK_AFTER, ClientCore
from movex_p2p.resource.requests import REPORT_AGAIN
from movex_p2p.resource.state import freeze
from movex_p2p.resource.values import MasterValue
from movex_p2p.signing import FakeSigner
from movex_p2p.testing.cores import CoreCluster
from tests.resources import ALL_TYPES, SECRET, Counter, submit

C = "counter:c1"


def no_resyncs(c: CoreCluster) -> None:
    assert c.of_type(fx.ResyncStarted) == []


# -- create / bind / unbind ------------------------------------------------------------------------


def test_create_reaches_every_peer_and_bind_sets_presence() -> None:
    c = CoreCluster(3, types=ALL_TYPES)
    p0, p1, p2 = c.ids
    req = c.create(p1, C, {"count": 2})
    assert [e for e in c.of_type(fx.RequestSettled, p1) if e.req == req] == [
        fx.RequestSettled(req=req, rid=Rid(C), error=None)
    ]
    for p in c.ids:
        assert c.view(p, C) == {"count": 2}
        assert c.clients[p].replicas[Rid(C)].version == 0
    c.bind(p1, C, {"color": "red"})
    c.bind(p2, C, {"color": "blue"})
    for p in c.ids:
        assert c.clients[p].replicas[Rid(C)].subscribers == {p1: {"color": "red"}, p2: {"color": "blue"}}
    # creating again with exist_ok keeps the state; None means the type's initial state
    c.create(p2, C, {"count": 99})
    assert c.view(p0, C) == {"count": 2}
    c.create(p2, "counter:fresh")
    assert c.view(p1, "counter:fresh") == {"count": 0}
    c.clients[p1].unbind(Rid(C))
    c.route(p1, c.clients[p1].unbind(Rid(C)))
    c.run()
    assert c.clients[p0].replicas[Rid(C)].subscribers == {p2: {"color": "blue"}}
    left = [e for e in c.of_type(fx.PresenceChanged, p0) if e.left]
    assert left[-1].left == (p1,)
    no_resyncs(c)


def test_bind_unknown_rid_and_create_unknown_type_fail_cleanly() -> None:
    c = CoreCluster(2, types=ALL_TYPES)
    p1 = c.ids[1]
    req = c.bind(p1, "counter:nope")
    (settled,) = [e for e in c.of_type(fx.RequestSettled, p1) if e.req == req]
    assert settled.refusal == "not_found"
    assert settled.error is not None
    with pytest.raises(LocalProtocolError):
        c.clients[p1].create(Rid("nosuchtype:x"), None)
    with pytest.raises(LocalProtocolError):
        c.clients[p1].dispatch(Rid("counter:nope"), mx.Action("increment"))
    with pytest.raises(LocalProtocolError):
        c.clients[p1].create(Rid("counter:x"), {"count": mx.master.now()})


def test_confirmations_carry_term_and_version() -> None:
    c = CoreCluster(2, types=ALL_TYPES)
    c.setup(C)
    for _ in range(3):
        c.dispatch(c.ids[1], C, mx.Action("increment"))
    c.run()
    applied = c.sent(rm.Applied, lambda m: m.rid == C)
    assert {(m.term, m.version) for m in applied} == {(c.term, 1), (c.term, 2), (c.term, 3)}
    assert c.clients[c.ids[0]].replicas[Rid(C)].key == (c.term, 3)


# -- prediction and concurrency (S1, S6) ----------------------------------------------------------


def test_three_rapid_increments_end_at_three_everywhere() -> None:
    c = CoreCluster(3, types=ALL_TYPES)
    c.setup(C)
    p1 = c.ids[1]
    seqs = [c.dispatch(p1, C, mx.Action("increment")) for _ in range(3)]
    assert c.view(p1, C) == {"count": 3}  # optimistic
    assert len(c.clients[p1].pending(Rid(C))) == 3
    c.run(shuffle=True)
    for p in c.ids:
        assert c.view(p, C) == {"count": 3}
    assert len(c.checksums(C)) == 1
    assert [c.settled(p1, s).error for s in seqs] == [None, None, None]
    no_resyncs(c)


@pytest.mark.parametrize("seed", range(5))
def test_concurrent_actions_from_two_clients_never_resync(seed: int) -> None:
    c = CoreCluster(3, seed=seed, types=ALL_TYPES)
    c.setup(C)
    _, p1, p2 = c.ids
    c.dispatch(p1, C, mx.Action("increment"))
    c.dispatch(p2, C, mx.Action("incrementBy", 10))
    assert c.view(p1, C) == {"count": 1}
    assert c.view(p2, C) == {"count": 10}
    c.run(shuffle=True)
    for p in c.ids:
        assert c.view(p, C) == {"count": 11}
    no_resyncs(c)


def test_pending_actions_are_replayed_on_top_of_others() -> None:
    c = CoreCluster(3, types=ALL_TYPES)
    c.setup(C)
    p0, p1, p2 = c.ids
    c.dispatch(p1, C, mx.Action("incrementBy", 100))
    c.dispatch(p2, C, mx.Action("change", 5))
    # deliver p2's action first to the master, then the confirmation to p1 before p1's own
    while c.links[(p2, p0)]:
        c.deliver(p2, p0)
    while c.links[(p0, p1)]:
        c.deliver(p0, p1)
    assert c.clients[p1].replicas[Rid(C)].state == {"count": 5}
    assert c.view(p1, C) == {"count": 105}  # confirmed 5 + own pending +100
    c.run()
    for p in c.ids:
        assert c.view(p, C) == {"count": 105}
    no_resyncs(c)


# -- rejections ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "fragment"), [(mx.Action("boom"), "boom"), (mx.Action("incrementBy", "x"), "needs an int")]
)
def test_rejected_actions_settle_with_an_error_and_roll_back(action: mx.Action, fragment: str) -> None:
    c = CoreCluster(2, types=ALL_TYPES)
    c.setup(C)
    p1 = c.ids[1]
    ok1 = c.dispatch(p1, C, mx.Action("increment"))
    bad = c.dispatch(p1, C, action)
    ok2 = c.dispatch(p1, C, mx.Action("increment"))
    c.run()
    error = c.settled(p1, bad).error
    assert error is not None
    assert fragment in error
    assert c.settled(p1, ok1).error is None
    assert c.settled(p1, ok2).error is None
    for p in c.ids:
        assert c.view(p, C) == {"count": 2}
    assert c.clients[p1].pending(Rid(C)) == []
    no_resyncs(c)


def test_an_action_predicted_fine_but_rejected_by_the_master_rolls_back() -> None:
    c = CoreCluster(3, types=ALL_TYPES)
    c.setup(C, {"count": 0, "other": 1})
    p0, p1, p2 = c.ids
    c.dispatch(p2, C, mx.Action("drop", "count"))
    while c.links[(p2, p0)]:
        c.deliver(p2, p0)  # the master drops "count" first
    seq = c.dispatch(p1, C, mx.Action("increment"))
    assert c.view(p1, C) == {"count": 1, "other": 1}  # predicted on the stale confirmed state
    c.run()
    error = c.settled(p1, seq).error
    assert error is not None
    assert "KeyError" in error
    for p in c.ids:
        assert c.view(p, C) == {"other": 1}
    no_resyncs(c)


def test_invalid_payloads_are_refused_locally() -> None:
    c = CoreCluster(2, types=ALL_TYPES)
    c.setup(C)
    with pytest.raises(mx.MovexError):
        c.clients[c.ids[1]].dispatch(Rid(C), mx.Action("change", {"x": object()}))
    with pytest.raises(mx.MovexError):
        c.clients[c.ids[1]].dispatch(Rid(C), mx.Action("change", float("inf")))
    with pytest.raises(LocalProtocolError):
        c.clients[c.ids[1]].dispatch(Rid(C), "increment")  # type: ignore[arg-type]
    assert c.clients[c.ids[1]].pending(Rid(C)) == []


def test_unknown_rid_at_the_master_is_rejected_not_found() -> None:
    c = CoreCluster(2, types=ALL_TYPES)
    p0, p1 = c.ids
    c.setup(C)
    c.route(
        p1,
        [
            fx.Send(
                to=p0,
                message=rm.Propose(term=c.term, rid=Rid("counter:ghost"), seq=9, base=8, action=mx.Action("increment")),
            )
        ],
    )
    c.run()
    (rejected,) = c.sent(rm.Rejected)
    assert rejected.refusal == "not_found"
    assert rejected.rid == "counter:ghost"


def test_removed_keys_are_not_resurrected() -> None:
    c = CoreCluster(3, types=ALL_TYPES)
    c.setup(C, {"count": 1, "extra": {"deep": 1}})
    _, p1, p2 = c.ids
    c.dispatch(p1, C, mx.Action("drop", "extra"))
    c.run(shuffle=True)
    for p in c.ids:
        assert c.view(p, C) == {"count": 1}
    # a resync by snapshot keeps it removed too
    c.route(p2, c.clients[p2]._resync(Rid(C), "test"))
    c.run()
    assert c.view(p2, C) == {"count": 1}
    c.dispatch(p2, C, mx.Action("increment"))
    c.run()
    assert all(c.view(p, C) == {"count": 2} for p in c.ids)


# -- master values --------------------------------------------------------------------------------


def roll_payload() -> Any:
    P = mx.master.random_int(1, 6)
    return {"nested": [P, {"t": P}], "at": mx.master.now(), "id": mx.master.uuid(), "r": (mx.master.random(), 7)}


def test_master_values_are_resolved_by_the_master_never_optimistically() -> None:
    c = CoreCluster(3, types=ALL_TYPES)
    c.setup("dice:d")
    p1 = c.ids[1]
    seq = c.dispatch(p1, "dice:d", mx.Action("roll", roll_payload()))
    assert c.view(p1, "dice:d")["rolls"] == []  # not applied before the master resolves it
    c.run()
    assert c.settled(p1, seq).error is None
    views = [c.view(p, "dice:d") for p in c.ids]
    assert views[0] == views[1] == views[2]
    (roll,) = views[0]["rolls"]
    # S5b: the array keeps its shape, the nested dict stays a dict
    assert set(roll) == {"nested", "at", "id", "r"}
    a, inner = roll["nested"]
    assert isinstance(a, int)
    assert 1 <= a <= 6
    assert list(inner) == ["t"]
    assert 1 <= inner["t"] <= 6
    assert roll["at"] == c.now
    assert len(roll["id"]) == 36
    assert 0.0 <= roll["r"][0] < 1.0
    assert roll["r"][1] == 7
    assert not any(isinstance(v, MasterValue) for v in roll["nested"])
    no_resyncs(c)


def _rolls(salt: bytes, n: int) -> list[Any]:
    c = CoreCluster(2, salt=salt, types=ALL_TYPES)
    c.setup("dice:d")
    for _ in range(n):
        c.dispatch(c.ids[1], "dice:d", mx.Action("roll", roll_payload()))
    c.run()
    return list(c.view(c.ids[0], "dice:d")["rolls"])


def test_master_values_are_deterministic_per_term_version_and_salt() -> None:
    first = _rolls(b"one", 4)
    assert first == _rolls(b"one", 4)
    assert first != _rolls(b"two", 4)
    assert len({r["id"] for r in first}) == 4  # each version draws differently


def test_master_values_in_both_halves_of_a_private_pair() -> None:
    c = CoreCluster(3, types=ALL_TYPES)
    c.setup("dice:d")
    p0, p1, p2 = c.ids
    private = mx.Action("secretRoll", {"v": [mx.master.random_int(1, 100)], "at": mx.master.now()})
    public = mx.Action("roll", {"at": mx.master.now()})
    seq = c.dispatch(p1, "dice:d", public, private)
    assert c.view(p1, "dice:d") == {"rolls": [], "secret": [], "ready": 0}
    c.run()
    assert c.settled(p1, seq).error is None
    mine = c.view(p1, "dice:d")
    assert mine["rolls"] == [{"at": c.now}]
    (secret,) = mine["secret"]
    assert 1 <= secret["v"][0] <= 100
    assert secret["at"] == c.now
    for p in (p0, p2):
        assert c.view(p, "dice:d") == {"rolls": [{"at": c.now}], "secret": [], "ready": 0}
    # the reveal shows the secret exactly as the master resolved it
    c.dispatch(p2, "dice:d", mx.Action("ready"))
    c.dispatch(p0, "dice:d", mx.Action("ready"))
    c.run()
    for p in c.ids:
        assert c.view(p, "dice:d")["secret"] == [secret]
    assert len(c.checksums("dice:d")) == 1
    no_resyncs(c)


# -- private / public pairs (Movex rps spec, issue #8, S2, scen6) ---------------------------------


def rps_game(size: int = 3) -> CoreCluster:
    c = CoreCluster(size, types=ALL_TYPES)
    c.setup("rps:g")
    c.dispatch(c.ids[0], "rps:g", mx.Action("addPlayer", {"id": "p0", "playerLabel": "playerA"}))
    c.dispatch(c.ids[1], "rps:g", mx.Action("addPlayer", {"id": "p1", "playerLabel": "playerB"}))
    c.run()
    return c


def test_author_sees_its_secret_others_the_placeholder() -> None:
    c = rps_game()
    a, b, spectator = c.ids
    c.dispatch_private(a, "rps:g", *submit("playerA", "paper"))
    c.run()
    assert c.view(a, "rps:g")["submissions"]["playerA"] == {"play": "paper"}
    assert c.view(b, "rps:g")["submissions"]["playerA"] == {"play": SECRET}
    assert c.view(spectator, "rps:g")["submissions"]["playerA"] == {"play": SECRET}
    assert c.master.private_view(Rid("rps:g"), a)["submissions"]["playerA"] == {"play": "paper"}
    # nobody but the author ever received the private half
    secrets = [(dst, m) for _, dst, m in c.delivered if isinstance(m, rm.Secret)]
    assert {dst for dst, _ in secrets} == {a}
    assert len(c.checksums("rps:g")) == 1
    no_resyncs(c)


def test_reveal_reaches_every_subscriber_including_a_spectator() -> None:
    c = rps_game()
    a, b, spectator = c.ids
    c.dispatch_private(a, "rps:g", *submit("playerA", "paper"))
    c.run()
    c.dispatch_private(b, "rps:g", *submit("playerB", "rock"))
    c.run()
    for p in c.ids:
        view = c.view(p, "rps:g")
        assert view["submissions"] == {"playerA": {"play": "paper"}, "playerB": {"play": "rock"}}
        assert view["winner"] == "paper"
    assert len(c.checksums("rps:g")) == 1
    assert c.master.resource(Rid("rps:g")) is not None
    assert c.clients[spectator].secrets(Rid("rps:g")) == []
    no_resyncs(c)


def test_issue_8_second_private_action_builds_on_the_private_view() -> None:
    c = rps_game()
    a, b, _ = c.ids
    c.dispatch_private(a, "rps:g", *submit("playerA", "paper"))
    c.dispatch_private(a, "rps:g", *submit("playerA", "rock"))  # both in flight at once
    assert c.view(a, "rps:g")["submissions"]["playerA"] == {"play": "rock"}
    c.run(shuffle=True)
    assert c.view(a, "rps:g")["submissions"]["playerA"] == {"play": "rock"}
    c.dispatch_private(b, "rps:g", *submit("playerB", "rock"))
    c.run(shuffle=True)
    for p in c.ids:
        assert c.view(p, "rps:g")["winner"] == "1/2"
    assert len(c.checksums("rps:g")) == 1
    no_resyncs(c)
    # play again: everything keeps working (Movex spec #41)
    c.dispatch(b, "rps:g", mx.Action("playAgain"))
    c.run()
    c.dispatch_private(a, "rps:g", *submit("playerA", "paper"))
    c.run()
    assert c.view(a, "rps:g")["submissions"]["playerA"] == {"play": "paper"}
    assert c.view(b, "rps:g")["submissions"]["playerA"] == {"play": SECRET}
    c.dispatch_private(b, "rps:g", *submit("playerB", "scissors"))
    c.run()
    for p in c.ids:
        assert c.view(p, "rps:g")["winner"] == "scissors"
    assert len(c.checksums("rps:g")) == 1
    no_resyncs(c)


def test_a_disconnected_secret_holder_during_a_reveal() -> None:
    c = rps_game(4)
    a, b, p2, p3 = c.ids
    c.dispatch_private(b, "rps:g", *submit("playerB", "scissors"))
    c.run()
    c.kill(b)
    c.run()
    c.dispatch_private(a, "rps:g", *submit("playerA", "rock"))
    c.run()
    for p in (a, p2, p3):
        view = c.view(p, "rps:g")
        assert view["submissions"] == {"playerA": {"play": "rock"}, "playerB": {"play": "scissors"}}
        assert view["winner"] == "rock"
        assert b not in c.clients[p].replicas[Rid("rps:g")].subscribers
    assert len(c.checksums("rps:g")) == 1
    no_resyncs(c)


def test_a_secret_holder_vanishing_while_the_reveal_is_in_flight() -> None:
    c = rps_game(3)
    a, b, spectator = c.ids
    c.dispatch_private(b, "rps:g", *submit("playerB", "paper"))
    c.run()
    c.dispatch_private(a, "rps:g", *submit("playerA", "scissors"))
    while c.links[(a, a)]:
        c.deliver(a, a)  # the master (a) reveals; the Revealed frames are queued, not delivered
    assert [dst for _, dst, m in c.delivered if isinstance(m, rm.Revealed)] == [a]  # only a has it so far
    c.kill(b)  # b's secret is in the reveal, b is gone before it lands
    c.run()
    for p in (a, spectator):
        view = c.view(p, "rps:g")
        assert view["submissions"] == {"playerA": {"play": "scissors"}, "playerB": {"play": "paper"}}
        assert view["winner"] == "scissors"
    assert len(c.checksums("rps:g")) == 1
    no_resyncs(c)


# -- transforms: a pure view over the master clock (scen8) ----------------------------------------


def test_chess_clock_transform_never_causes_a_mismatch() -> None:
    c = CoreCluster(3, now=1.0, types=ALL_TYPES)
    c.setup("chess:g")
    a, b, _ = c.ids
    c.dispatch(a, "chess:g", mx.Action("move", {"at": mx.master.now(), "by": "white"}))
    c.advance(2.0)
    c.run()
    assert c.view(a, "chess:g")["lastMoveAt"] == 3.0
    c.advance(5.0)  # black thinks 5 s
    shown = [c.clients[p].transformed(Rid("chess:g"), c.now) for p in c.ids]
    assert all(s["left"] == {"white": 30.0, "black": 25.0} for s in shown)
    assert c.view(b, "chess:g")["left"] == {"white": 30.0, "black": 30.0}  # stored untransformed
    c.dispatch(b, "chess:g", mx.Action("move", {"at": mx.master.now(), "by": "black"}))
    c.run()
    c.advance(12.0)
    for p in c.ids:
        assert c.view(p, "chess:g")["left"] == {"white": 30.0, "black": 25.0}
        assert c.clients[p].transformed(Rid("chess:g"), c.now)["left"] == {"white": 18.0, "black": 25.0}
    assert len(c.checksums("chess:g")) == 1
    no_resyncs(c)


def test_speed_push_completes_through_the_transform_without_resync() -> None:
    c = CoreCluster(2, now=1.0, types=ALL_TYPES)
    c.setup("speed:s")
    a, b = c.ids
    c.dispatch(a, "speed:s", mx.Action("push", {"at": mx.master.now(), "by": "red"}))
    c.run()
    assert c.clients[b].transformed(Rid("speed:s"), c.now)["status"] == "ongoing"
    c.advance(10.5)
    for p in c.ids:
        shown = c.clients[p].transformed(Rid("speed:s"), c.now)
        assert (shown["status"], shown["winner"]) == ("completed", "red")
    c.dispatch(b, "speed:s", mx.Action("unrelated"))
    c.run()
    assert len(c.checksums("speed:s")) == 1
    no_resyncs(c)


def test_client_estimates_the_master_clock() -> None:
    c = CoreCluster(2, now=1000.0, types=ALL_TYPES)
    c.setup("speed:s")
    a, b = c.ids
    c.dispatch(a, "speed:s", mx.Action("push", {"at": mx.master.now(), "by": "red"}))
    while c.links[(a, a)]:
        c.deliver(a, a)  # the master (a) stamps 1000
    c.now = 500.0  # b's own clock is 500 s behind the master's
    c.run()
    assert c.view(b, "speed:s")["lastPushAt"] == 1000.0
    assert c.clients[b].master_now(500.0) == pytest.approx(1000.0)
    assert c.clients[b].transformed(Rid("speed:s"), 505.0)["status"] == "ongoing"
    assert c.clients[b].transformed(Rid("speed:s"), 511.0)["status"] == "completed"
    no_resyncs(c)


# -- presence ----------------------------------------------------------------------------------------


def test_presence_joined_and_left() -> None:
    c = CoreCluster(3, types=ALL_TYPES)
    p0, p1, p2 = c.ids
    c.create(p0, C)
    c.bind(p0, C)
    c.bind(p1, C, {"color": "red"})
    joined = [e for e in c.of_type(fx.PresenceChanged, p0) if p1 in e.joined]
    assert joined[-1].joined == {p1: {"color": "red"}}
    c.kill(p1)
    c.run()
    left = [e for e in c.of_type(fx.PresenceChanged, p2) if e.left]
    assert left[-1].left == (p1,)
    assert set(c.clients[p2].replicas[Rid(C)].subscribers) == {p0}


# -- resync ----------------------------------------------------------------------------------------


def test_version_gap_resyncs_once_and_rebases_pending_actions() -> None:
    c = CoreCluster(3, types=ALL_TYPES)
    c.setup(C)
    p0, p1, p2 = c.ids
    c.dispatch(p2, C, mx.Action("increment"))
    c.run()
    c.dispatch(p2, C, mx.Action("incrementBy", 10))
    while c.links[(p2, p0)]:
        c.deliver(p2, p0)
    c.links[(p0, p1)].clear()  # p1 loses the confirmation: a gap
    mine = c.dispatch(p1, C, mx.Action("incrementBy", 100))
    c.dispatch(p2, C, mx.Action("incrementBy", 1000))
    c.run()
    resyncs = c.of_type(fx.ResyncStarted, p1)
    assert len(resyncs) == 1
    assert "gap" in resyncs[0].reason
    assert len(c.sent(rm.SyncRequest)) == 1
    assert c.settled(p1, mine).error is None
    for p in c.ids:
        assert c.view(p, C) == {"count": 1111}
    assert len(c.checksums(C)) == 1


def test_a_re_send_still_pending_waits_for_the_new_masters_log_which_may_hold_it_from_before() -> None:
    """Found by a seeded flapping partition (4 peers, ``available``): an author re-sent an action
    under a new seq to the master of a split's other side (whose log lacked it), that master never
    applied it, and the first side's master, whose log held it under its first seq, came back.
    Told of it, the author proposed the re-send at once, before that log's snapshot: the master,
    which knows an action by its author's seq only, applied it a second time."""
    c = CoreCluster(3, types=ALL_TYPES)
    c.setup(C)
    m, b, author = c.ids
    client = c.clients[author]
    c.dispatch(author, C, mx.Action("increment"))
    c.deliver(author, m)
    c.links[(m, b)].clear()  # b never hears of it
    c.run()
    c.alive = {b}  # b alone, then the author with it: b's log lacks the action
    c.elect(b, 2)
    c.dispatch(b, C, mx.Action("incrementBy", 10))
    c.run()
    c.alive = {b, author}
    c.route(author, client.master_changed(b, c.term))
    while c.pending_links():  # the author re-sends it (under seq 2); that proposal is lost
        queue = c.links[(author, b)]
        kept = [f for f in queue if not any(type(x) is rm.Propose for x in wire.decode(f))]
        queue.clear()
        queue.extend(kept)
        for src, dst in c.pending_links():
            c.deliver(src, dst)
    (resent,) = client.pending(Rid(C))
    assert (resent.seq, resent.was) == (2, (1,))
    c.alive = {m}  # m again, then the author with it: m's log holds the action as seq 1
    c.elect(m, 3)
    c.alive = {m, author}
    told = client.master_changed(m, c.term)
    assert not [e for e in told if isinstance(e, fx.Send) and type(e.message) is rm.Propose]  # not yet
    c.route(author, told)
    c.run()
    for peer in (m, author):
        assert c.clients[peer].replicas[Rid(C)].state == {"count": 1}  # 2 before: applied twice
    assert client.pending(Rid(C)) == []
    assert not c.sent(rm.Propose, lambda p: p.seq == 2)


def test_checksum_mismatch_resyncs_and_overlapping_resyncs_never_error() -> None:
    c = CoreCluster(3, types=ALL_TYPES)
    c.setup(C)
    p0, p1, p2 = c.ids
    replica = c.clients[p1].replicas[Rid(C)]
    replica.write(freeze({"count": 666}), Term(replica.entry_term), replica.version)  # diverged
    for _ in range(3):
        c.dispatch(p2, C, mx.Action("increment"))
    c.dispatch(p1, C, mx.Action("increment"))
    c.run(shuffle=True)
    assert [e.reason for e in c.of_type(fx.ResyncStarted, p1)] == ["checksum mismatch"]
    # more triggers while one resync is in flight, and a duplicate snapshot afterwards
    client = c.clients[p1]
    c.route(p1, client._resync(Rid(C), "again"))
    c.route(p1, client._resync(Rid(C), "and again"))
    assert len(c.of_type(fx.ResyncStarted, p1)) == 2
    c.run()
    c.route(p0, [fx.Send(to=p1, message=c.master.resource(Rid(C)).snapshot(term=Term(1), index=c.master.index))])  # type: ignore[union-attr]
    c.run()
    for p in c.ids:
        assert c.view(p, C) == {"count": 4}
    assert len(c.checksums(C)) == 1
    assert client.pending(Rid(C)) == []


def test_a_stalled_client_whose_confirmation_was_lost_is_settled_by_a_snapshot() -> None:
    # The master applied the action but the entry confirming it never reached the author (a
    # reliable link that lost frames): re-sending it does nothing (a duplicate), a snapshot does.
    c = CoreCluster(2, types=ALL_TYPES)
    c.setup(C)
    master, author = c.ids
    seq = c.dispatch(author, C, mx.Action("increment"))
    c.deliver(author, master)  # the master applies it ...
    lost = c.links[(master, author)]
    lost.clear()  # ... and its entry to the author is lost
    client = c.clients[author]
    assert client.deadline == pytest.approx(c.now + RESEND_AFTER)
    assert client.resend_stalled(c.now + 0.5) == []  # not stalled yet
    effects = client.resend_stalled(c.now + RESEND_AFTER)
    assert [type(e.message) for e in effects if isinstance(e, fx.Send)] == [rm.Propose, rm.SyncRequest]
    c.route(author, effects)
    c.run()
    assert c.settled(author, seq).error is None
    assert client.pending(Rid(C)) == []
    assert c.view(author, C) == {"count": 1}
    assert len(c.checksums(C)) == 1
    # a master that is only slow is not flooded: the next snapshots come after 2, then 4 rounds
    # (and once more when the action has waited STUCK_AFTER: it is proposed again with a snapshot)
    c.dispatch(author, C, mx.Action("increment"))
    c.links[(author, master)].clear()
    asked = [
        any(isinstance(e, fx.Send) and isinstance(e.message, rm.SyncRequest) for e in client.resend_stalled(t))
        for t in (c.now + RESEND_AFTER * k for k in range(1, 9))
    ]
    assert STUCK_AFTER == 5 * RESEND_AFTER
    assert asked == [True, True, False, True, True, False, False, True]


def test_a_rejected_seq_sent_again_is_rejected_again_not_ignored() -> None:
    """Rejected seqs stay out of the replicated head: a re-send (its answer lost, or its author
    restarted and reused the seq) gets a Rejected again rather than silence."""
    c = CoreCluster(2, types=ALL_TYPES)
    c.setup(C)
    p0, p1 = c.ids
    bad = c.dispatch(p1, C, mx.Action("boom"))
    c.run()
    assert c.settled(p1, bad).error is not None
    again = rm.Propose(term=c.master.term, rid=Rid(C), seq=bad, base=bad - 1, action=mx.Action("boom"))
    before = len(c.sent(rm.Rejected))
    c.route(p1, [fx.Send(to=p0, message=again)])
    c.run()
    rejected = c.sent(rm.Rejected)[before:]
    assert [r.seq for r in rejected] == [bad]
    assert "already rejected" in rejected[0].reason


def test_an_unanswered_report_is_sent_again() -> None:
    """A report lost on a link whose break only the master saw (it saw this peer go and come back)
    left the peer unsynced for good (a seeded flapping-partition run, ``tests/test_migration_sim.py``)."""
    p = FakeSigner.from_seed(1)
    client = ClientCore(p.id, types={"counter": Counter}, signer=p)
    sent = client.master_changed(PeerId("m"), Term(1), now=0.0)
    (first,) = [e.message for e in sent if isinstance(e, fx.Send) and isinstance(e.message, rm.Report)]
    assert client.deadline == REPORT_AGAIN
    assert client.resend_stalled(REPORT_AGAIN / 2) == []
    (again,) = [e.message for e in client.resend_stalled(REPORT_AGAIN) if isinstance(e, fx.Send)]
    assert isinstance(again, rm.Report)
    assert again.req != first.req
    client.step(PeerId("m"), rm.Replied(term=Term(1), req=first.req, rid=Rid("")), REPORT_AGAIN)  # superseded
    assert not client.synced
    client.step(PeerId("m"), rm.Replied(term=Term(1), req=again.req, rid=Rid("")), REPORT_AGAIN)
    assert client.synced
    assert client.deadline is None
