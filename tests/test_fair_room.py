"""Fair draws in a room: whole peers (NodeCores) in virtual time, honest, withholding, or a master
running modified code (docs/security.md, "Fair randomness")."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import movex_p2p as mx
from movex_p2p.ids import PeerId
from movex_p2p.nodecore import Ready
from movex_p2p.resource import messages as rm
from movex_p2p.resource.draws import seed_of
from movex_p2p.resource.effects import DrawShort, Effect, Forged, Publish
from movex_p2p.resource.fair import resolve_fair
from movex_p2p.resource.master import MasterCore
from movex_p2p.simulation import Simulation


def roll(state: Any, action: mx.Action) -> Any:
    if action.type == "roll":
        return {**state, "rolls": [*state["rolls"], {"by": action.author, **action.payload}]}
    return state


Dice = mx.ResourceType("dice", initial={"rolls": []}, reducer=roll)


def _room(seed: int, size: int = 4) -> tuple[Simulation, PeerId, list[tuple[PeerId, Any]]]:
    """A room with one master, and a log of what its peers report: forgers caught, draws left short."""
    sim = Simulation(size, types=[Dice], seed=seed)
    assert sim.run(3.0, until=lambda s: len(s.masters()) == 1)
    seen: list[tuple[PeerId, Any]] = []
    execute = sim._execute

    def spy(pid: PeerId, ready: Ready) -> None:
        seen.extend((pid, e) for e in ready.events if isinstance(e, Forged | DrawShort))
        execute(pid, ready)

    sim._execute = spy  # type: ignore[method-assign]
    return sim, sim.masters()[0], seen


def _rolls(sim: Simulation, pid: PeerId, rid: Any) -> list[Any]:
    return list(sim.state(pid, rid)["rolls"])


def _drawn_entries(sim: Simulation, pid: PeerId) -> rm.Drawn | None:
    last = sim.peers[pid].core.client.fair._drawn
    return None if last is None else last[1]


def test_every_player_contributes_to_every_draw_and_every_peer_agrees() -> None:
    sim, master, forked = _room(seed=3)
    rid = sim.create(master, "dice", "d")
    sim.run(0.5)
    for i, pid in enumerate([*sim.ids, master]):
        payload = {"die": mx.fair.random_int(1, 6), "card": mx.fair.choice(["a", "b", "c"]), "i": i}
        sim.dispatch(pid, rid, mx.Action("roll", payload))
    assert sim.run(3.0, until=lambda s: s.converged(rid) and len(_rolls(s, master, rid)) == 5)
    rolls = _rolls(sim, master, rid)
    assert all(1 <= r["die"] <= 6 and r["card"] in "abc" for r in rolls)
    assert all(_rolls(sim, pid, rid) == rolls for pid in sim.ids)
    drawn = _drawn_entries(sim, master)
    assert drawn is not None
    assert len(drawn.contributions) == 4  # every peer gave its element
    assert drawn.missing == ()
    assert not forked
    for pid in sim.ids:  # every ledger moved the same way: 5 draws, each player's 5th element last
        chains = sim.peers[pid].core.client.fair.ledger.chains
        assert sorted(c.next for c in chains.values()) == [6, 6, 6, 6]


def test_a_player_that_withholds_its_element_is_named_and_the_room_goes_on() -> None:
    sim, master, forked = _room(seed=5)
    silent = next(p for p in sim.ids if p != master)
    sim.peers[silent].core.client.fair.drawing = lambda msg, master: []  # type: ignore[method-assign]
    rid = sim.create(master, "dice", "d")
    sim.run(0.5)
    author = next(p for p in sim.ids if p not in (master, silent))
    sim.dispatch(author, rid, mx.Action("roll", {"die": mx.fair.random_int(1, 6)}))
    assert sim.run(3.0, until=lambda s: s.converged(rid) and len(_rolls(s, master, rid)) == 1)
    drawn = _drawn_entries(sim, author)
    assert drawn is not None
    assert drawn.missing == (silent,)  # visible to every peer: in the log, and told to each app
    assert len(drawn.contributions) == 3
    assert sorted(pid for pid, e in forked if isinstance(e, DrawShort) and e.missing == (silent,)) == sorted(sim.ids)
    assert not [e for _, e in forked if isinstance(e, Forged)]
    chains = sim.peers[author].core.client.fair.ledger.chains
    assert chains[silent].next == 2  # its withheld element is used up: never offered to a later draw


def test_a_master_that_changes_a_fair_value_is_caught_by_every_peer_and_voted_out() -> None:
    sim, master, forked = _room(seed=7)
    core = sim.peers[master].core.master
    assert isinstance(core, MasterCore)
    honest_apply = core._apply

    def loaded(sender: PeerId, res: Any, msg: rm.Propose, now: float) -> list[Effect]:
        """Modified code: the die of every fair action is moved to another face in range (the rest as honest)."""
        out: list[Effect] = []
        for e in honest_apply(sender, res, msg, now):
            if isinstance(e, Publish) and isinstance(e.message, rm.Applied) and e.message.origin is not None:
                payload = e.message.action.payload
                action = mx.Action(e.message.action.type, {**payload, "die": payload["die"] % 5 + 1})
                e = Publish(message=replace(e.message, action=action))
            out.append(e)
        return out

    core._apply = loaded  # type: ignore[method-assign]
    rid = sim.create(master, "dice", "d")
    sim.run(0.5)
    author = next(p for p in sim.ids if p != master)
    sim.dispatch(author, rid, mx.Action("roll", {"die": mx.fair.random_int(1, 5)}))
    others = [p for p in sim.ids if p != master]
    assert sim.run(10.0, until=lambda s: all(len(_rolls(s, p, rid)) == 1 for p in others))
    assert {pid for pid, e in forked if isinstance(e, Forged) and e.peer == master} == set(others)  # each caught it
    second = next(iter(sim.peers[p].core.client.master for p in others))
    assert second is not None
    assert second != master
    rolls = [_rolls(sim, p, rid) for p in others]
    assert rolls[0] == rolls[1] == rolls[2]
    drawn = _drawn_entries(sim, others[0])  # drawn again by the new master, checked by every peer
    assert drawn is not None
    assert drawn.term > 1
    assert rolls[0][0]["die"] == resolve_fair({"die": mx.fair.random_int(1, 5)}, seed_of(drawn))["die"]


def test_a_master_that_publishes_an_element_its_player_never_signed_is_caught_by_every_peer() -> None:
    """Modified code: the master picks the seed of a public draw (its own replica and checksums agree with it)
    and publishes a Drawn with one element whose signature does not hold. Every peer's verify stage drops that
    Drawn; it used to drop it silently, and then took the following Applied unchecked (its entry before it was
    missing, as if this peer alone had missed it), with the value the master chose. Now a Drawn from our master
    that fails the verify stage is its forgery: every peer refuses it and the Applied, and votes the master out."""
    sim, master, forked = _room(seed=7)
    core = sim.peers[master].core.master
    assert isinstance(core, MasterCore)
    draws = core._draws
    honest_resolve, honest_take = draws.resolve, draws.take_seed
    payload = {"die": mx.fair.random_int(1, 5)}
    chosen = next(bytes([i]) * 32 for i in range(256) if resolve_fair(payload, bytes([i]) * 32)["die"] == 5)

    def take_seed(author: PeerId, rid: Any, seq: int) -> bytes | None:
        return None if honest_take(author, rid, seq) is None else chosen

    def resolve() -> tuple[list[Effect], Any]:
        effects, resolved = honest_resolve()
        out: list[Effect] = []
        for e in effects:
            if isinstance(e, Publish) and isinstance(e.message, rm.Drawn):
                parts = list(e.message.contributions)
                k = next(i for i, c in enumerate(parts) if c.peer != master)
                parts[k] = replace(parts[k], proof=parts[k].proof[:-1] + bytes([parts[k].proof[-1] ^ 1]))
                e = Publish(message=replace(e.message, contributions=tuple(parts)))
            out.append(e)
        return out, resolved

    draws.take_seed, draws.resolve = take_seed, resolve  # type: ignore[method-assign]
    rid = sim.create(master, "dice", "d")
    sim.run(0.5)
    author = next(p for p in sim.ids if p != master)
    others = [p for p in sim.ids if p != master]
    sim.dispatch(author, rid, mx.Action("roll", payload))
    caught = lambda s: {pid for pid, e in forked if isinstance(e, Forged) and e.peer == master} == set(others)  # noqa: E731
    assert sim.run(3.0, until=caught)
    assert all("not signed by its player" in e.reason for _, e in forked if isinstance(e, Forged))
    assert all(_rolls(sim, p, rid) == [] for p in others)  # the chosen value was refused with its draw
    assert all(sim.peers[p].core.client.fair._drawn is None for p in others)


def test_a_value_the_voted_out_master_chose_does_not_come_back_with_the_replica_the_next_master_recovers() -> None:
    """Modified code, consistent with itself: the master resolves a public draw from a seed of its choosing
    (its replica and checksums agree) and publishes the honest Drawn. Every peer refuses the Applied and votes
    it out; the next master does not recover the forger's replica (its value came back with it before: a
    5 where the honest draw gave 4) and draws the action again from the players' next elements."""
    sim, master, forked = _room(seed=7)
    core = sim.peers[master].core.master
    assert isinstance(core, MasterCore)
    draws = core._draws
    honest_take = draws.take_seed
    payload = {"die": mx.fair.random_int(1, 5)}
    honest: list[int] = []
    chosen: list[bytes] = []

    def take_seed(author: PeerId, rid: Any, seq: int) -> bytes | None:
        seed = honest_take(author, rid, seq)
        if seed is None:
            return None
        honest.append(resolve_fair(payload, seed)["die"])
        die = honest[0] % 5 + 1
        chosen.append(next(bytes([i]) * 32 for i in range(256) if resolve_fair(payload, bytes([i]) * 32)["die"] == die))
        return chosen[0]

    draws.take_seed = take_seed  # type: ignore[method-assign]
    rid = sim.create(master, "dice", "d")
    sim.run(0.5)
    author = next(p for p in sim.ids if p != master)
    others = [p for p in sim.ids if p != master]
    sim.dispatch(author, rid, mx.Action("roll", payload))
    assert sim.run(10.0, until=lambda s: all(len(_rolls(s, p, rid)) == 1 for p in others))
    assert {pid for pid, e in forked if isinstance(e, Forged) and e.peer == master} == set(others)
    dice = {_rolls(sim, p, rid)[0]["die"] for p in others}
    seeds = {sim.peers[p].core.client.fair._drawn[2] for p in others}  # type: ignore[index]
    assert len(dice) == len(seeds) == 1  # one value, drawn again, that every peer checked
    (seed,) = seeds
    assert seed != chosen[0]
    assert dice == {resolve_fair(payload, seed)["die"]}


def test_a_restarted_player_anchors_a_new_chain_and_every_peer_keeps_checking() -> None:
    sim, master, forked = _room(seed=11)
    rid = sim.create(master, "dice", "d")
    sim.run(0.5)
    player = next(p for p in sim.ids if p != master)
    for _ in range(3):
        sim.dispatch(master, rid, mx.Action("roll", {"die": mx.fair.random_int(1, 6)}))
    assert sim.run(3.0, until=lambda s: len(_rolls(s, master, rid)) == 3)
    old = sim.peers[master].core.client.fair.ledger.chains[player].root
    sim.kill(player)
    sim.run(1.0)
    sim.restart(player)  # a new process: a new secret seed, a new chain, the same identity
    assert sim.run(3.0, until=lambda s: s.converged(rid))
    for _ in range(3):
        sim.dispatch(player, rid, mx.Action("roll", {"die": mx.fair.random_int(1, 6)}))
    assert sim.run(3.0, until=lambda s: s.converged(rid) and len(_rolls(s, master, rid)) == 6)
    assert not forked
    drawn = _drawn_entries(sim, player)
    assert drawn is not None
    assert len(drawn.contributions) == 4  # the restarted player contributes from its new chain
    chains = [sim.peers[p].core.client.fair.ledger.chains[player] for p in sim.ids]
    assert len({c.root for c in chains}) == 1
    assert chains[0].root != old


def test_a_player_that_sends_an_element_off_its_chain_is_left_out_visibly() -> None:
    sim, master, forked = _room(seed=13)
    cheat = next(p for p in sim.ids if p != master)
    player = sim.peers[cheat].core.client.fair
    chain = player.chain
    assert chain is not None
    chain._links[1:] = [bytes(32)] * (len(chain._links) - 1)  # modified code: made-up elements, signed
    rid = sim.create(master, "dice", "d")
    sim.run(0.5)
    sim.dispatch(master, rid, mx.Action("roll", {"die": mx.fair.random_int(1, 6)}))
    honest = [p for p in sim.ids if p != cheat]  # (the cheat, its element left out, may call it a forgery)
    assert sim.run(6.0, until=lambda s: all(len(_rolls(s, p, rid)) == 1 for p in honest))
    drawn = _drawn_entries(sim, master)
    assert drawn is not None
    assert drawn.missing == (cheat,)  # the master checked it like every peer would, and left it out
    assert not [e for p, e in forked if isinstance(e, Forged) and p != cheat]


def test_fair_values_in_a_private_half_are_refused() -> None:
    sim, master, _ = _room(seed=17)
    rid = sim.create(master, "dice", "d")
    sim.run(0.5)
    player = next(p for p in sim.ids if p != master)
    seq = sim.dispatch(player, rid, mx.Action("roll", {"die": 1}), mx.Action("roll", {"die": mx.fair.random_int(1, 6)}))
    assert sim.run(2.0, until=lambda s: (rid, seq) in s.peers[player].rejected)
    assert "public half" in sim.peers[player].rejected[(rid, seq)]


def test_a_master_killed_in_the_middle_of_a_draw_leaves_it_to_the_next_one() -> None:
    sim, master, forked = _room(seed=19)
    rid = sim.create(master, "dice", "d")
    sim.run(0.5)
    author = next(p for p in sim.ids if p != master)
    sim.dispatch(author, rid, mx.Action("roll", {"die": mx.fair.random_int(1, 6)}))
    assert sim.run(1.0, until=lambda s: s.peers[author].core.client.fair._drawing is not None)
    sim.kill(master)  # its Drawing is out, its Drawn never will be
    others = [p for p in sim.ids if p != master]
    assert sim.run(10.0, until=lambda s: all(len(_rolls(s, p, rid)) == 1 for p in others) and s.converged(rid))
    assert not [e for _, e in forked if isinstance(e, Forged)]
    drawn = _drawn_entries(sim, author)
    assert drawn is not None
    assert drawn.term > 1  # drawn by the next master, from the three players left
    assert sorted(c.peer for c in drawn.contributions) == sorted(others)
    assert _rolls(sim, author, rid)[0]["die"] == resolve_fair({"die": mx.fair.random_int(1, 6)}, seed_of(drawn))["die"]
