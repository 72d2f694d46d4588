"""Fair private draws (issue 20): ``mx.fair`` values in the private half of a ``private="sealed"`` pair.

Known only to the author until the reveal, biasable by neither the author nor the master: the
author's secret (from its sealed half's nonce, committed before the draw) is combined with the
beacon of the pair's fair draw; every peer reads the values again at the reveal. Whole peers in
virtual time (``Simulation``) and a pure harness of 1,000 seeded draws through a master running
modified code. Deterministic: seeded, no sleeps.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any, Final

import liars_dice as ld  # examples/ is on pytest's pythonpath (pyproject.toml)
import pytest

import movex_p2p as mx
from movex_p2p import wire
from movex_p2p.errors import LocalProtocolError
from movex_p2p.ids import PeerId, Rid, Term
from movex_p2p.nodecore import Ready
from movex_p2p.resource import messages as rm
from movex_p2p.resource.draws import Draws, Player, proposal_digest, seed_of
from movex_p2p.resource.effects import Forged, Publish, Send
from movex_p2p.resource.fair import draw_sealed
from movex_p2p.resource.sealed import fold, open_batch, open_halves, opening_signer, sealed_commitment
from movex_p2p.routes import Lane
from movex_p2p.signing import FAKE, FakeSigner
from movex_p2p.simulation import Simulation
from tests.resources import SpySimulation

DICE: Final = 5


def cup(state: Any, action: mx.Action) -> Any:
    match action:
        case mx.Action("roll", {"dice": dice}):  # the private half: the author's dice
            if not all(isinstance(d, int) and 1 <= d <= 6 for d in dice):
                raise ValueError("dice show 1 to 6")
            return {**state, "hands": {**state["hands"], action.author: list(dice)}}
        case mx.Action("rolled"):  # the public half
            return {**state, "rolled": [*state["rolled"], action.author]}
        case mx.Action("show"):
            return {**state, "shown": True}
    raise ValueError(f"unknown action {action.type!r}")


def lost(state: Any, unrevealed: mx.Unrevealed) -> Any:
    return {**state, "lost": [*state["lost"], unrevealed.author]}


INITIAL: Final = {"hands": {}, "rolled": [], "shown": False, "lost": []}
Cup: Final = mx.ResourceType(
    "cup", cup, initial=INITIAL, can_reveal=lambda s: bool(s["shown"]), private="sealed", on_unrevealed=lost
)
MasterCup: Final = mx.ResourceType("cup", cup, initial=INITIAL, can_reveal=lambda s: bool(s["shown"]))


def roll() -> tuple[mx.Action, mx.Action]:
    """(public, private) of a roll: the private half's dice are fair private draws."""
    return mx.Action("rolled", {}), mx.Action("roll", {"dice": [mx.fair.random_int(1, 6) for _ in range(DICE)]})


def _room(seed: int, size: int = 4) -> tuple[SpySimulation, PeerId, Rid]:
    sim = SpySimulation(size, types=[Cup], seed=seed)
    assert sim.run(3.0, until=lambda s: len(s.masters()) == 1)
    master = sim.masters()[0]
    rid = sim.create(master, "cup", "c")
    sim.run(0.5)
    return sim, master, rid


def _hand(sim: Simulation, pid: PeerId, rid: Rid, of: PeerId) -> Any:
    return sim.peers[pid].core.client.view(rid)["hands"].get(of)


def _nonce(sim: Simulation, author: PeerId, rid: Rid, seq: int) -> bytes:
    """The nonce of the author's sealed half (its secret until it opens the half)."""
    (nonce,) = [n for s, _, n, _ in sim.peers[author].core.client._overlay.secrets[rid] if s == seq]
    return nonce


def _expected(author: PeerId, rid: Rid, seq: int, nonce: bytes, beacon: bytes) -> list[int]:
    """The dice the author's nonce and the beacon give (what every peer computes at the reveal)."""
    _, private = roll()
    return list(draw_sealed(private.payload, nonce, beacon, author=author, rid=rid, seq=seq)["dice"])


def test_the_author_sees_its_dice_at_confirmation_nobody_else_does_before_the_reveal_and_all_agree() -> None:
    sim, master, rid = _room(seed=5)
    authors = [p for p in sim.ids if p != master][:2]
    seqs = {a: sim.dispatch(a, rid, *roll()) for a in authors}
    for a in authors:  # the confirmation itself carries the dice to the author: 0 confirmations after it
        key = (rid, seqs[a])
        assert sim.run(2.0, until=lambda s: key in s.peers[a].confirmed)  # noqa: B023 (run at once)
        dice = _hand(sim, a, rid, a)
        assert dice is not None
        assert len(dice) == DICE
        assert all(1 <= d <= 6 for d in dice)
    sim.run(0.5)
    hands = {a: _hand(sim, a, rid, a) for a in authors}
    for pid in sim.ids:  # nobody else, the master included, has them
        for a in authors:
            if pid != a:
                assert _hand(sim, pid, rid, a) is None
    before = sim.now
    nonces = {a: _nonce(sim, a, rid, seqs[a]) for a in authors}
    for pid in sim.ids:  # no opening (nor any dice) reached anyone before the reveal
        assert not [m for m in sim.messages_to(pid) if isinstance(m, rm.Open | rm.Revealed)]
    sim.dispatch(master, rid, mx.Action("show", {}))
    assert sim.run(3.0, until=lambda s: s.converged(rid) and all(a in s.state(master, rid)["hands"] for a in authors))
    assert sim.now > before
    for pid in sim.ids:
        state = sim.state(pid, rid)
        assert state["hands"] == hands  # every peer read the dice the authors saw
        assert state["lost"] == []
    for a in authors:  # ... which are the draw's: the author's committed nonce and the beacon every peer saw drawn
        beacon = _beacon_of(sim, master, a, rid, seqs[a])
        assert hands[a] == _expected(a, rid, seqs[a], nonces[a], beacon)
    assert not sim.dropped


def _beacon_of(sim: Simulation, pid: PeerId, author: PeerId, rid: Rid, seq: int) -> bytes:
    """The seed of the Drawn for (author, rid, seq) among the entries ``pid`` received."""
    assert isinstance(sim, SpySimulation)
    drawn = [
        m for m in sim.messages_to(pid) if isinstance(m, rm.Drawn) and (m.rid, m.author, m.seq) == (rid, author, seq)
    ]
    if not drawn:  # the master's own peer publishes to itself without a frame: ask another peer
        other = next(p for p in sim.ids if p != pid)
        drawn = [
            m
            for m in sim.messages_to(other)
            if isinstance(m, rm.Drawn) and (m.rid, m.author, m.seq) == (rid, author, seq)
        ]
    return seed_of(drawn[-1])


def test_failover_with_private_draws_pending_reveal_loses_nothing_the_author_holds() -> None:
    sim, first, rid = _room(seed=11)
    a, b = [p for p in sim.ids if p != first][:2]
    seq_a = sim.dispatch(a, rid, *roll())
    assert sim.run(2.0, until=lambda s: (rid, seq_a) in s.peers[a].confirmed)
    mine = _hand(sim, a, rid, a)
    assert mine is not None
    sim.kill(first)  # the master dies: it held a's commitment and beacon only
    assert sim.run(5.0, until=lambda s: len(s.masters()) == 1 and s.masters()[0] != first)
    second = sim.masters()[0]
    sim.run(0.5)
    assert _hand(sim, a, rid, a) == mine  # the author still sees its dice
    seq_b = sim.dispatch(b, rid, *roll())  # drawn by the new master
    assert sim.run(2.0, until=lambda s: (rid, seq_b) in s.peers[b].confirmed)
    theirs = _hand(sim, b, rid, b)
    sim.dispatch(second, rid, mx.Action("show", {}))
    assert sim.run(
        5.0, until=lambda s: s.converged(rid) and s.state(second, rid)["shown"] and s.state(second, rid)["hands"]
    )
    for pid in sim.alive:
        state = sim.state(pid, rid)
        assert state["hands"] == {a: mine, b: theirs}
        assert state["lost"] == []
        assert not sim.peers[pid].lost
    assert not sim.dropped


def test_fair_values_in_a_master_private_half_and_master_values_in_a_sealed_half_are_refused_clearly() -> None:
    sim = Simulation(3, types=[MasterCup], seed=2)
    assert sim.run(3.0, until=lambda s: len(s.masters()) == 1)
    master = sim.masters()[0]
    rid = sim.create(master, "cup", "c")
    sim.run(0.5)
    player = next(p for p in sim.ids if p != master)
    seq = sim.dispatch(player, rid, *roll())
    assert sim.run(2.0, until=lambda s: (rid, seq) in s.peers[player].rejected)
    assert "private='sealed'" in sim.peers[player].rejected[(rid, seq)]  # the master would see them
    sealed, _, rid = _room(seed=3)
    player = next(p for p in sealed.ids if p not in sealed.masters())
    with pytest.raises(LocalProtocolError, match=r"mx\.fair"):  # the master never sees a sealed half
        sealed.dispatch(player, rid, mx.Action("rolled", {}), mx.Action("roll", {"dice": [mx.master.random_int(1, 6)]}))


# -- a master running modified code: 1,000 seeded private draws -----------------------------------

ROOM: Final = "room"
INCARNATION: Final = bytes(16)
RID: Final = Rid("cup:c")
ATTACKS: Final = ("drop", "beacon", "opening", "nonce", "strip", "element", "rebind")


class Table:
    """Four players with fake-signed short chains (the first is the master), every ledger anchored with every chain."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.signers = [FakeSigner.from_seed(rng.randbytes(16)) for _ in range(4)]
        self.players = [Player(s.id, signer=s, seed=rng.randbytes(32), length=4) for s in self.signers]
        self.ids = [s.id for s in self.signers]
        for p in self.players:
            for q in self.players:
                anchor = q.anchor(Term(1))
                assert anchor is not None
                relay = rm.Anchored(term=Term(1), peer=q.me, root=anchor.root, length=anchor.length, proof=anchor.proof)
                p.anchored(relay)
        self.index = 0
        self.draws = Draws(self.ids[0], term=Term(1), ledger=self.players[0].ledger.copy(), entry=self.entry)

    def entry(self) -> int:
        self.index += 1
        return self.index

    def draw(self, author: PeerId, propose: rm.Propose) -> rm.Drawn:
        """An honest draw for ``propose``: every player answers."""
        master = self.ids[0]
        (drawing,) = [
            e.message for e in self.draws.propose(author, propose, 0.0, self.ids[1:]) if isinstance(e, Publish)
        ]
        assert isinstance(drawing, rm.Drawing)
        for p in self.players:
            (send,) = p.drawing(drawing, master)
            assert isinstance(send, Send)
            assert isinstance(send.message, rm.Contribute)
            self.draws.contribute(p.me, send.message)
        effects, _ = self.draws.resolve()
        (drawn,) = [e.message for e in effects if isinstance(e, Publish)]
        assert isinstance(drawn, rm.Drawn)
        return drawn


def _tamper_draw(attack: str, drawn: rm.Drawn, propose: rm.Propose, private: mx.Action, rng: random.Random) -> rm.Drawn:
    """The Drawn the master publishes: honest, or tampered by ``attack``."""
    author, seq = drawn.author, drawn.seq
    if attack == "drop":  # leave elements out to pick the beacon, aiming at a first die of 6 it cannot see
        for leave in drawn.contributions[1:]:
            trial = replace(
                drawn, contributions=tuple(c for c in drawn.contributions if c is not leave), missing=(leave.peer,)
            )
            guess = draw_sealed(private.payload, rng.randbytes(16), seed_of(trial), author=author, rid=RID, seq=seq)
            if guess["dice"][0] == 6:
                return trial
    if attack == "element":
        forged = replace(drawn.contributions[1], element=bytes(32))
        return replace(drawn, contributions=(drawn.contributions[0], forged, *drawn.contributions[2:]))
    if attack == "rebind":  # the elements bound to another commitment of the author's
        return replace(drawn, digest=proposal_digest(author, replace(propose, sealed=bytes(16))))
    return drawn


def _opened(attack: str, held: rm.Held, rng: random.Random) -> rm.Held:
    """The opening as the master puts it in its Revealed: as signed, or tampered by ``attack``."""
    if attack == "beacon":
        return replace(held, beacon=bytes(32))
    if attack == "opening":
        return replace(held, action=mx.Action("roll", {"dice": [6] * DICE}))
    if attack == "nonce":
        return replace(held, nonce=rng.randbytes(16))
    return held


def test_a_master_running_modified_code_biases_none_of_1000_seeded_private_draws() -> None:
    """Per draw the master tries one attack: pick the beacon among the subsets of elements it can leave
    out (aiming at a 6 it cannot see), name another beacon in its reveal, open the half with dice of its
    choice or another nonce, order the pair with no draw, give a forged element, or bind the draw to
    another action. Every peer reads the dice from its own record; each change is refused by every peer."""
    rng = random.Random(2027)
    biased = refused = aims = hits = selfish = 0
    counts = dict.fromkeys(ATTACKS, 0)
    for i in range(1000):
        table = Table(seed=i)
        master, author, peers = table.ids[0], table.ids[1], table.players[1:]
        attack = ATTACKS[i % len(ATTACKS)]
        counts[attack] += 1
        seq, nonce = 1 + i % 7, rng.randbytes(16)
        public, private = roll()
        commit = sealed_commitment(ROOM, INCARNATION, author, RID, seq, nonce, private)
        propose = rm.Propose(term=Term(1), rid=RID, seq=seq, base=seq - 1, action=public, sealed=commit, draw=True)
        drawn = _tamper_draw(attack, table.draw(author, propose), propose, private, rng)
        beacons = []
        for p in peers:  # each honest peer checks the Drawn against its ledger and the Drawing it answered
            forged = any(isinstance(e, Forged) for e in p.drawn(drawn, master))
            wronged = p.me in drawn.missing or master in drawn.missing  # its own element is always at hand
            assert forged == wronged or attack != "drop"  # the player left out, though it answered, refuses
            if p.me in drawn.missing:
                continue  # it distrusts this master; the others cannot tell a drop from a late answer
            beacons.append(b"" if forged or attack == "strip" else p.seed(RID, author, seq) or b"")
        if attack == "drop":
            aims += 1
            selfish += master in drawn.missing
        opening = open_halves(table.signers[1], term=Term(1), rid=RID, halves=[(seq, commit, nonce, private)])
        half = replace(opening.halves[0], proof=opening.proof, batch=open_batch(opening), public=public)
        half = _opened(attack, replace(half, beacon=beacons[0]), rng)
        outcomes: list[Any] = []
        for beacon in beacons:
            if opening_signer(RID, half, FAKE) != author:
                outcomes.append(None)  # the verify stage refuses an opening its author did not sign
                continue
            done = fold(
                Cup, INITIAL, [half], room=ROOM, incarnation=INCARNATION, rid=RID,
                commitments={(author, seq): commit}, publics={(author, seq): public}, beacons={(author, seq): beacon},
            )  # fmt: skip
            outcomes.append(done.state["hands"].get(author) if done.outcomes == ["revealed"] else None)
        if all(o is None for o in outcomes):
            refused += 1  # no dice from this draw at all (the author's roll counts as unrevealed)
            continue
        assert all(beacons)
        assert beacons.count(beacons[0]) == len(beacons)
        seen = list(draw_sealed(private.payload, nonce, beacons[0], author=author, rid=RID, seq=seq)["dice"])
        hits += attack == "drop" and seen[0] == 6
        if any(o != seen for o in outcomes):  # a peer took other dice than the author saw at its confirmation
            biased += 1
    assert biased == 0
    assert refused == selfish + sum(counts[a] for a in ("opening", "nonce", "strip", "element", "rebind"))
    assert hits <= aims * 0.25  # the drop attack aims at a 6 it cannot see: it gets one by chance (1/6)


# -- liar's dice with a master that reads every byte and tries to load the dice -------------------


class LoadedSimulation(SpySimulation):
    """``bad`` runs modified code: it records every frame it gets (``SpySimulation``) and rewrites what it
    publishes: each opening in its reveals shows sixes (``"opening"``), each draw names another
    beacon in its reveals and a forged element in its ``Drawn`` (``"beacon"``), after the rolls leaves out
    the entry of a bid so that peers resync and holds other beacons in its snapshots (``"snapshot"``), or
    sends each author of a draw another ``Drawn`` than its own log's, one that the author cannot tell
    from an honest one (another player named missing), then holds its own log's beacon in the snapshot
    the author resyncs to (``"equivocate"``: the author would see other dice at the reveal than it rolled)."""

    def __init__(self, size: int, *, attack: str, **kwargs: Any) -> None:
        self.attack = attack
        self.bad: PeerId | None = None
        self.tampered = 0
        self.forked: list[tuple[PeerId, str]] = []
        self.table: Rid | None = None
        self.first_seen: dict[PeerId, list[int]] = {}
        """Each player's own dice as its view first showed them (its confirmation, whenever it came)."""
        super().__init__(size, **kwargs)

    def _transmit(self, src: PeerId, dst: PeerId, data: bytes, lane: Lane) -> None:
        if src == self.bad and lane is Lane.RELIABLE:
            messages = [self._load(m, dst) for m in wire.decode(data) if not self._skip(m)]
            if not messages:
                return
            data = wire.encode_many(messages) if len(messages) > 1 else wire.encode(messages[0])
        super()._transmit(src, dst, data, lane)

    def _skip(self, message: wire.Message) -> bool:
        skip = self.attack == "snapshot" and isinstance(message, rm.Applied) and message.action.type == "bid"
        self.tampered += skip
        return skip

    def _load(self, message: wire.Message, dst: PeerId) -> wire.Message:
        if isinstance(message, rm.Drawn) and self.attack == "equivocate" and message.author == dst:
            other = next((c for c in message.contributions if c.peer not in (dst, self.bad)), None)
            if other is not None:
                self.tampered += 1
                kept = tuple(c for c in message.contributions if c is not other)
                return replace(message, contributions=kept, missing=tuple(sorted((*message.missing, other.peer))))
        if isinstance(message, rm.Snapshot) and self.attack == "snapshot" and message.held:
            self.tampered += 1
            return replace(message, held=tuple(replace(h, beacon=bytes(32)) if h.beacon else h for h in message.held))
        if isinstance(message, rm.Revealed) and self.attack == "opening":
            sixes = tuple(
                h
                if h.action is None
                else replace(h, action=mx.Action("roll", {**h.action.payload, "dice": [6] * DICE}))
                for h in message.actions
            )
            self.tampered += 1
            return replace(message, actions=sixes)
        if isinstance(message, rm.Revealed) and self.attack == "beacon":
            self.tampered += 1
            return replace(message, actions=tuple(replace(h, beacon=bytes(32)) for h in message.actions))
        if isinstance(message, rm.Drawn) and self.attack == "beacon" and message.contributions:
            self.tampered += 1
            first = replace(message.contributions[0], element=bytes(32))
            return replace(message, contributions=(first, *message.contributions[1:]))
        return message

    def _execute(self, pid: PeerId, ready: Ready) -> None:
        self.forked += [(pid, e.peer) for e in ready.events if isinstance(e, Forged)]
        super()._execute(pid, ready)
        client = self.peers[pid].core.client
        if self.table in client.replicas and pid != self.bad and pid not in self.first_seen:
            mine = client.view(self.table)["dice"].get(pid)
            if mine is not None:
                self.first_seen[pid] = sorted(mine)


@pytest.mark.parametrize("attack", ["opening", "beacon", "snapshot", "equivocate"])
def test_liars_dice_with_a_master_that_reads_and_loads_the_dice(attack: str) -> None:
    """examples/liars_dice.py's table: the master never gets a die before the call, and its changes are
    refused by every peer (which votes it out) or change nothing: the dice shown are the ones rolled."""
    sim = LoadedSimulation(4, attack=attack, types=[ld.Table], seed=23)
    assert sim.run(3.0, until=lambda s: len(s.masters()) == 1)
    bad = sim.bad = sim.masters()[0]
    rid = sim.table = sim.create(bad, ld.Table.name, "main", ld.table_initial(turn_seconds=60.0))
    sim.run(0.5)
    players = [p for p in sim.ids if p != bad]
    for i, pid in enumerate(players):
        sim.dispatch(pid, rid, mx.Action("join", {"name": ld.NAMES[i]}))
    sim.run(0.5)
    sim.dispatch(players[0], rid, mx.Action("start", {"until": mx.master.deadline(60.0)}))
    sim.run(0.5)
    for pid in players:  # every player rolls its dice: fair private draws in a sealed half
        dice = [mx.fair.random_int(1, 6) for _ in range(ld.DICE)]
        public = mx.Action("rolled", {"round": 1, "until": mx.master.deadline(60.0)})
        sim.dispatch(pid, rid, public, mx.Action("roll", {"round": 1, "dice": dice}))
    assert sim.run(15.0, until=lambda s: all(s.state(p, rid)["phase"] == "bidding" for p in players))
    sim.run(0.5)
    rolled = {pid: sim.peers[pid].core.client.view(rid)["dice"].get(pid) for pid in players}
    if attack == "opening":
        assert all(rolled.values())  # each player sees its own dice
    for pid in [bad, *players]:  # ... and nobody sees another's, the master included
        assert set(sim.peers[pid].core.client.view(rid)["dice"]) <= {pid}
    read = [m for m in sim.messages_to(bad) if isinstance(m, rm.Open | rm.Revealed)]
    assert read == []  # no opening reached the master before the call: its recorder holds no die
    first = sim.state(players[0], rid)["turn"]
    sim.dispatch(first, rid, mx.Action("bid", {"quantity": 1, "face": 2, "until": mx.master.deadline(60.0)}))
    sim.run(0.3)
    assert sim.run(10.0, until=lambda s: all(s.state(p, rid)["bid"] for p in players))  # ("snapshot": a new master's)
    caller = sim.state(players[0], rid)["turn"]
    sim.dispatch(caller, rid, mx.Action("liar", {"at": mx.master.now()}))
    assert sim.run(15.0, until=lambda s: all(ld.revealed(s.state(p, rid)) and s.state(p, rid)["dice"] for p in players))
    sim.run(1.0)
    assert sim.tampered > 0
    caught = {pid for pid, peer in sim.forked if peer == bad}
    seen = sim.first_seen  # (a roll whose draw was forged is seen once the next master has drawn it, or lost)
    assert all(seen[pid] == sorted(d) for pid, d in rolled.items() if d is not None)
    shown = [sim.state(pid, rid)["dice"] for pid in players]
    assert shown.count(shown[0]) == len(shown)  # one set of dice in the whole room
    if attack == "equivocate":
        # each author saw the draw the master sent it alone; the others hold another: the author catches the master
        # when its replica is to be replaced (a forgery: voted out), and the room keeps the next master's draw.
        # Known limit (docs/security.md): the author's dice may then differ from those it saw at its confirmation.
        assert caught == set(players)
        assert all(sim.peers[p].core.client.master not in (None, bad) for p in players)
        return
    for pid in players:  # the dice every player shows are the ones each rolled: not one changed
        assert sim.state(pid, rid)["dice"] == seen
        assert sim.state(pid, rid)["lost"] == [p for p in players if p not in seen]  # a forged draw's roll: lost
    if attack == "opening":  # each peer's verify stage dropped the loaded reveal (no signature of the author)
        refused = {pid for pid, d in sim.dropped if d.sender == bad and "never signed" in d.reason}
        assert refused == set(players)
    else:  # each peer refused the forged draw, and voted the master out
        assert caught == set(players)
        assert all(sim.peers[p].core.client.master not in (None, bad) for p in players)


class StrippingSimulation(Simulation):
    """``bad`` runs modified code: it orders every sealed pair without the draw its private half asks for."""

    bad: PeerId | None = None

    def _transmit(self, src: PeerId, dst: PeerId, data: bytes, lane: Lane) -> None:
        if dst == self.bad and lane is Lane.RELIABLE:
            messages = [replace(m, draw=False) if isinstance(m, rm.Propose) else m for m in wire.decode(data)]
            data = wire.encode_many(messages) if len(messages) > 1 else wire.encode(messages[0])
        super()._transmit(src, dst, data, lane)


def test_a_pair_ordered_without_its_draw_is_lost_at_the_reveal_never_given_values_and_its_author_told() -> None:
    sim = StrippingSimulation(3, types=[Cup], seed=13)
    assert sim.run(3.0, until=lambda s: len(s.masters()) == 1)
    bad = sim.bad = sim.masters()[0]
    rid = sim.create(bad, "cup", "c")
    sim.run(0.5)
    author = next(p for p in sim.ids if p != bad)
    seq = sim.dispatch(author, rid, *roll())
    assert sim.run(2.0, until=lambda s: (rid, seq) in s.peers[author].confirmed)
    assert _hand(sim, author, rid, author) is None  # no beacon: no values, not even for its author
    sim.dispatch(bad, rid, mx.Action("show", {}))
    assert sim.run(3.0, until=lambda s: s.converged(rid) and s.state(bad, rid)["lost"] == [author])
    for pid in sim.ids:
        assert sim.state(pid, rid)["hands"] == {}
    assert (rid, seq) in sim.peers[author].lost  # the author is told its half was lost
