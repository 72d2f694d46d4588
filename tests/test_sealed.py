"""Sealed private actions (issue 20, deliverable 1): the master orders commitments it cannot read.

Pure cores on in-memory links (``CoreCluster``) and whole NodeCores in virtual time (``Simulation``),
each with a master whose code is modified to record every byte it receives: a marker in the
private halves never reaches it before the reveal. Deterministic: seeded, no sleeps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, Final

import pytest

import movex_p2p as mx
from movex_p2p import wire
from movex_p2p.election.machine import ElectionConfig, Policy
from movex_p2p.errors import LocalProtocolError, RemoteProtocolError
from movex_p2p.ids import PeerId, Rid
from movex_p2p.resource import effects as fx
from movex_p2p.resource import messages as rm
from movex_p2p.resource.sealed import MAX_BATCH, open_batch, open_halves, opening_signer, sealed_commitment
from movex_p2p.signing import FAKE
from movex_p2p.testing.cores import CoreCluster
from movex_p2p.verify import check
from tests.resources import RPS_INITIAL, SECRET, SpySimulation, rps, rps_can_reveal
from tests.test_game_features import peers_of
from tests.waits import settled

MARKER: Final = "MARKER-7c1f"
"""A string that only the private halves carry."""


def forfeit(state: Any, lost: mx.Unrevealed) -> Any:
    return {**state, "forfeits": [*state.get("forfeits", []), lost.author]}


SealedRps: Final = mx.ResourceType(
    "rps", rps, initial=RPS_INITIAL, can_reveal=rps_can_reveal, private="sealed", on_unrevealed=forfeit
)
MasterRps: Final = mx.ResourceType("rps", rps, initial=RPS_INITIAL, can_reveal=rps_can_reveal, on_unrevealed=forfeit)


def hand(label: str, play: str) -> tuple[mx.Action, mx.Action]:
    """(private, public) of a submission whose private half carries the marker."""
    return (
        mx.Action("submit", {"playerLabel": label, "rps": play, "note": MARKER}),
        mx.Action("setReadySubmission", {"playerLabel": label}),
    )


class SpyCluster(CoreCluster):
    """A cluster whose master peer runs modified code: it records every frame it receives."""

    def __init__(self, size: int, *, types: dict[str, mx.ResourceType], seed: int = 0) -> None:
        self.received: list[tuple[PeerId, bytes]] = []
        self.tamper: Callable[[PeerId, PeerId, wire.Message], wire.Message | None] | None = None
        """Modified code on the way: each message replaced by what it returns (None: not sent)."""
        super().__init__(size, types=types, seed=seed)

    def deliver(self, src: PeerId, dst: PeerId) -> None:
        tamper = self.tamper
        if tamper is not None:
            queue = self.links[(src, dst)]
            kept = [t for m in wire.decode(queue[0]) if (t := tamper(src, dst, m)) is not None]
            if not kept:
                queue.popleft()
                return
            queue[0] = wire.encode_many(kept)
        if dst == self.master_id:
            self.received.append((src, self.links[(src, dst)][0]))
        super().deliver(src, dst)

    def leaked(self) -> bool:
        """Did the marker reach the master's peer, in any frame it received?"""
        return any(MARKER.encode() in frame for _, frame in self.received)

    def held_readable(self) -> bool:
        """Can the master read a private half it holds?"""
        replicas = [self.master.resource(rid) for rid in self.master.rids]
        return any(h.action is not None for res in replicas if res is not None for h in res.held)

    def sealed_dispatch(self, peer: PeerId, rid: str, private: mx.Action, public: mx.Action) -> int:
        seq, effects = self.clients[peer].dispatch(
            Rid(rid), public, private, now=self.now, nonce=self.rng.randbytes(16)
        )
        self.route(peer, effects)
        return seq


def rps_game(types: dict[str, mx.ResourceType], seed: int = 0) -> tuple[SpyCluster, PeerId, PeerId]:
    c = SpyCluster(3, types=types, seed=seed)
    c.setup("rps:g")
    a, b = c.ids[1], c.ids[2]
    c.dispatch(a, "rps:g", mx.Action("addPlayer", {"id": str(a), "playerLabel": "playerA"}))
    c.dispatch(b, "rps:g", mx.Action("addPlayer", {"id": str(b), "playerLabel": "playerB"}))
    c.run()
    return c, a, b


# -- the type ------------------------------------------------------------------------------------


def test_private_is_master_by_default_validated_and_part_of_the_version() -> None:
    assert MasterRps.private == "master"
    assert not MasterRps.sealed
    assert SealedRps.sealed
    assert SealedRps.version != MasterRps.version  # a sealed and a master build of one game never mix
    with pytest.raises(ValueError, match="private must be one of"):
        mx.ResourceType("x", rps, private="everyone")  # type: ignore[arg-type]


# -- the dishonest master, pure cores ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sealed", "master"])
def test_a_master_that_records_every_byte_never_gets_a_sealed_half_before_the_reveal(mode: str) -> None:
    c, a, b = rps_game({"rps": SealedRps if mode == "sealed" else MasterRps})
    c.sealed_dispatch(a, "rps:g", *hand("playerA", "rock"))
    c.run()
    if mode == "master":  # the control: today's private halves reach the master, which reads them
        assert c.leaked()
        assert c.held_readable()
        return
    assert not c.leaked()
    assert not c.held_readable()
    assert c.view(a, "rps:g")["submissions"]["playerA"]["play"] == "rock"  # the author sees its own half
    assert c.view(b, "rps:g")["submissions"]["playerA"] == {"play": SECRET}
    assert c.view(c.master_id, "rps:g")["submissions"]["playerA"] == {"play": SECRET}
    before = len(c.received)
    c.sealed_dispatch(b, "rps:g", *hand("playerB", "paper"))
    c.run()
    opened = c.received[before:]
    first = next(i for i, (_, frame) in enumerate(opened) if MARKER.encode() in frame)
    assert any(isinstance(m, rm.Open) for m in wire.decode(opened[first][1]))  # first seen in an opening
    for peer in c.ids:
        assert c.clients[peer].view(Rid("rps:g"))["winner"] == "paper"
    assert len(c.checksums("rps:g")) == 1
    assert not c.of_type(fx.OpeningForged)
    assert not c.of_type(fx.Forged)
    assert not c.of_type(fx.PrivateLost)


def test_every_peer_checks_each_opening_and_a_forged_one_counts_as_unrevealed() -> None:
    c, a, b = rps_game({"rps": SealedRps})
    c.sealed_dispatch(a, "rps:g", *hand("playerA", "rock"))
    c.run()
    # b runs modified code: it opens its half as "scissors" instead of what it committed to (signed by itself)
    c.tamper = lambda src, dst, m: _swap(c, b, m) if src == b and isinstance(m, rm.Open) else m
    c.sealed_dispatch(b, "rps:g", *hand("playerB", "paper"))
    c.run()
    forged = c.of_type(fx.OpeningForged)
    assert {e.author for e in forged} == {b}
    assert len(forged) == 3
    for peer in c.ids:
        state = c.clients[peer].view(Rid("rps:g"))
        assert state["forfeits"] == [b]  # on_unrevealed ran for b's half
        assert state["submissions"]["playerA"] == {"play": "rock"}  # a's half revealed
    assert len(c.checksums("rps:g")) == 1
    assert not c.of_type(fx.Forged)  # the master is not blamed for the author's forgery


def _swap(c: CoreCluster, author: PeerId, opening: rm.Open) -> rm.Open:
    halves = [(h.seq, h.commitment, h.nonce, _scissors(h.action)) for h in opening.halves if h.action is not None]
    return open_halves(c.signers[author], term=opening.term, rid=opening.rid, halves=halves)


def _scissors(action: mx.Action) -> mx.Action:
    return mx.Action(action.type, {**action.payload, "rps": "scissors"})


def test_a_master_that_changes_or_makes_up_an_opening_is_caught() -> None:
    c, a, b = rps_game({"rps": SealedRps})
    c.sealed_dispatch(a, "rps:g", *hand("playerA", "rock"))
    c.sealed_dispatch(b, "rps:g", *hand("playerB", "paper"))
    # the master's Revealed: it drops the author's signature from an opening and changes the half
    original = c.master.step

    def tamper(sender: PeerId, message: rm.ToMaster, now: float, **kw: Any) -> list[fx.Effect]:
        out = original(sender, message, now, **kw)
        changed: list[fx.Effect] = []
        for effect in out:
            if isinstance(effect, fx.Publish) and isinstance(effect.message, rm.Revealed):
                held = [
                    rm.Held(author=h.author, seq=h.seq, commitment=h.commitment, action=mx.Action("submit", {}))
                    for h in effect.message.actions
                ]
                effect = fx.Publish(message=_replace_actions(effect.message, tuple(held)))
            changed.append(effect)
        return changed

    c.master.step = tamper  # type: ignore[method-assign]
    c.run()
    forged = c.of_type(fx.Forged)
    assert forged
    assert all(e.peer == c.master_id for e in forged)
    assert "never signed" in forged[0].reason
    assert not c.of_type(fx.OpeningForged)  # no author is blamed
    # with a signature, but not the author's: the verify stage drops it before any core sees it
    real = open_halves(
        c.signers[a], term=c.term, rid=Rid("rps:g"), halves=[(2, b"c" * 16, b"n" * 16, mx.Action("submit", {}))]
    )
    half = real.halves[0]
    batch = open_batch(real)

    def revealed(*actions: rm.Held) -> rm.Revealed:
        return rm.Revealed(term=c.term, index=9, rid=Rid("rps:g"), version=9, actions=actions, checksum=b"", now=0.0)

    signed = rm.Held(author=a, seq=2, commitment=half.commitment, nonce=half.nonce, action=half.action)
    assert check(c.master_id, revealed(replace(signed, proof=real.proof, batch=batch)), FAKE) is None
    assert check(c.master_id, revealed(replace(signed, author=b, proof=real.proof, batch=batch)), FAKE) is not None
    changed = replace(signed, action=mx.Action("submit", {"rps": "rock"}), proof=real.proof, batch=batch)
    assert check(c.master_id, revealed(changed), FAKE) is not None  # not in the batch its author signed
    assert check(b, real, FAKE) is not None  # b cannot open a's half in a's name
    assert check(a, real, FAKE) is None
    assert opening_signer("rps:g", real, FAKE) == a


def _replace_actions(msg: rm.Revealed, actions: tuple[rm.Held, ...]) -> rm.Revealed:
    return rm.Revealed(
        term=msg.term,
        index=msg.index,
        rid=msg.rid,
        version=msg.version,
        actions=actions,
        checksum=msg.checksum,
        now=msg.now,
    )


def test_a_half_never_opened_goes_to_on_unrevealed_after_the_reveal_timeout() -> None:
    c, a, b = rps_game({"rps": SealedRps})
    c.sealed_dispatch(a, "rps:g", *hand("playerA", "rock"))
    c.run()
    # a's modified code never opens its half (it would lose)
    c.tamper = lambda src, dst, m: None if src == a and isinstance(m, rm.Open) else m
    c.sealed_dispatch(b, "rps:g", *hand("playerB", "paper"))
    c.run()
    assert c.view(c.ids[0], "rps:g")["winner"] is None  # nothing is revealed without a's opening
    assert c.master.due == pytest.approx(c.now + SealedRps.reveal_timeout)
    c.advance(SealedRps.reveal_timeout - 0.1)
    c.run()
    assert c.view(c.ids[0], "rps:g")["winner"] is None
    c.advance(0.2)
    c.run()
    for peer in c.ids:
        state = c.clients[peer].view(Rid("rps:g"))
        assert state["forfeits"] == [a]
        assert state["submissions"]["playerB"] == {"play": "paper"}
    assert [e.seqs for e in c.of_type(fx.PrivateLost, a)] == [(2,)]


def test_mx_master_values_in_a_sealed_half_are_refused_at_dispatch() -> None:
    c, a, _ = rps_game({"rps": SealedRps})
    private = mx.Action("submit", {"playerLabel": "playerA", "rps": mx.master.random_int(0, 2)})
    with pytest.raises(LocalProtocolError, match=r"mx\.fair"):
        c.clients[a].dispatch(Rid("rps:g"), mx.Action("setReadySubmission", {"playerLabel": "playerA"}), private)
    # in the public half they stay the master's to draw
    public = mx.Action("setReadySubmission", {"playerLabel": "playerA", "at": mx.master.now()})
    c.sealed_dispatch(a, "rps:g", mx.Action("submit", {"playerLabel": "playerA", "rps": "rock"}), public)
    c.run()
    assert not c.of_type(fx.ActionSettled, a)[-1].error


def test_the_master_refuses_a_private_half_sent_to_a_sealed_type_and_a_seal_to_a_master_type() -> None:
    c, a, _ = rps_game({"rps": SealedRps})
    private, public = hand("playerA", "rock")
    propose = rm.Propose(term=c.term, rid=Rid("rps:g"), seq=3, base=2, action=public, private=private, nonce=b"n")
    out = c.master.step(a, propose, c.now)
    assert [type(e.message) for e in out if isinstance(e, fx.Send)] == [rm.Rejected]
    restore = rm.Restore(term=c.term, rid=Rid("rps:g"), seq=2, private=private, nonce=b"n")
    with pytest.raises(RemoteProtocolError, match="never restored"):  # a sealed half never goes to a master
        c.master.step(a, restore, c.now)
    c2, a2, _ = rps_game({"rps": MasterRps})
    propose = rm.Propose(term=c2.term, rid=Rid("rps:g"), seq=3, base=2, action=public, sealed=b"c" * 16)
    out = c2.master.step(a2, propose, c2.now)
    assert [type(e.message) for e in out if isinstance(e, fx.Send)] == [rm.Rejected]


def test_a_commitment_binds_room_incarnation_author_rid_and_seq() -> None:
    half = mx.Action("submit", {"rps": "rock"})
    base = sealed_commitment("room", b"i5", "alice", "rps:g", 3, b"n" * 16, half)
    for other in (
        sealed_commitment("other room", b"i5", "alice", "rps:g", 3, b"n" * 16, half),
        sealed_commitment("room", b"i6", "alice", "rps:g", 3, b"n" * 16, half),
        sealed_commitment("room", b"i5", "bob", "rps:g", 3, b"n" * 16, half),
        sealed_commitment("room", b"i5", "alice", "rps:h", 3, b"n" * 16, half),
        sealed_commitment("room", b"i5", "alice", "rps:g", 4, b"n" * 16, half),
        sealed_commitment("room", b"i5", "alice", "rps:g", 3, b"m" * 16, half),
        sealed_commitment("room", b"i5", "alice", "rps:g", 3, b"n" * 16, mx.Action("submit", {"rps": "paper"})),
    ):
        assert other != base


def test_proposals_wait_while_a_sealed_reveal_is_due_so_it_lands_where_it_fell_due() -> None:
    c, a, b = rps_game({"rps": SealedRps})
    c.sealed_dispatch(a, "rps:g", *hand("playerA", "rock"))
    c.run()
    c.sealed_dispatch(b, "rps:g", *hand("playerB", "paper"))
    c.deliver(b, c.master_id)  # the proposal: the reveal is due now, the openings are on their way
    seq = c.dispatch(a, "rps:g", mx.Action("playAgain"))
    c.run()
    entries = [m for src, dst, m in c.delivered if dst == a and isinstance(m, rm.Revealed | rm.Applied)]
    kinds = [(type(m).__name__, getattr(m, "seq", None)) for m in entries]
    assert kinds.index(("Revealed", None)) < kinds.index(("Applied", seq))
    assert c.settled(a, seq).error is None
    assert c.view(b, "rps:g")["winner"] is None  # played again after the reveal


# -- whole peers in virtual time: a spying master, a failover -------------------------------------


def sim_hand(label: str, play: str, marker: str) -> tuple[mx.Action, mx.Action]:
    return (
        mx.Action("submit", {"playerLabel": label, "rps": play, "note": marker}),
        mx.Action("setReadySubmission", {"playerLabel": label}),
    )


@pytest.mark.parametrize("policy", [Policy.AVAILABLE, Policy.MAJORITY], ids=lambda p: p.name.lower())
def test_simulation_a_spying_master_and_a_failover_with_sealed_halves_pending_lose_nothing(policy: Policy) -> None:
    sim = SpySimulation(4, types=[SealedRps], seed=3, config=ElectionConfig(policy=policy))
    assert sim.run(3.0, until=lambda s: len(s.masters()) == 1)
    first = sim.masters()[0]
    a, b = [p for p in sim.ids if p != first][:2]
    rid = sim.create(first, "rps", "g")
    sim.run(0.5)
    sim.dispatch(a, rid, mx.Action("addPlayer", {"id": a, "playerLabel": "playerA"}))
    sim.dispatch(b, rid, mx.Action("addPlayer", {"id": b, "playerLabel": "playerB"}))
    sim.run(0.5)
    private, public = sim_hand("playerA", "rock", "MARK-A")
    sim.dispatch(a, rid, public, private)
    sim.run(0.5)
    assert sim.peers[a].core.client.view(rid)["submissions"]["playerA"]["play"] == "rock"  # a sees its own half
    assert sim.peers[first].core.client.view(rid)["submissions"]["playerA"] == {"play": SECRET}
    sim.kill(first)  # the master dies with a's half pending; it only ever had the commitment
    assert sim.run(3.0, until=lambda s: len(s.masters()) == 1 and s.masters()[0] != first)
    sim.run(0.5)
    second = sim.masters()[0]
    assert sim.seen_by("MARK-A") == []  # nobody, either master included, got a's half: it never left a
    due = sim.now
    private, public = sim_hand("playerB", "paper", "MARK-B")
    sim.dispatch(b, rid, public, private)
    assert sim.run(3.0, until=lambda s: s.converged(rid) and s.state(a, rid)["winner"] is not None)
    for pid in sim.alive:
        assert sim.state(pid, rid)["winner"] == "paper"
        assert "forfeits" not in sim.state(pid, rid)
        assert not sim.peers[pid].lost
        assert not sim.peers[pid].resyncs
    assert set(sim.alive) - {a} <= {p for p, _ in sim.seen_by("MARK-A")}  # every other peer saw it opened
    for marker, author in (("MARK-A", a), ("MARK-B", b)):
        for dst, messages in sim.seen_by(marker, since=due):
            carriers = [m for m in messages if marker in repr(m)]
            assert carriers, (dst, author)
            assert all(isinstance(m, rm.Open | rm.Revealed) for m in carriers), (dst, author)
            if any(isinstance(m, rm.Open) for m in carriers):
                assert dst == second  # an opening goes to the master of the moment only
    assert not sim.dropped


# -- real peers in one process: spectators, the forged diagnostic, the API ----------------------------


async def test_peers_a_spectator_sees_every_opening_and_a_forging_author_is_named(monkeypatch: Any) -> None:
    from movex_p2p.resource import sealed as sealed_module
    from movex_p2p.resource import sealing as sealing_module

    net = mx.LocalNetwork()
    async with peers_of(
        net,
        {"name": "a", "types": [SealedRps]},
        {"name": "b", "types": [SealedRps], "seed": 1},
        {"name": "eye", "types": [SealedRps], "role": "spectator", "seed": 2},
    ) as (a, b, eye):
        diagnostics: list[mx.Diagnostic] = []
        eye.on_diagnostic(diagnostics.append)
        honest = sealed_module.open_halves

        def forging(signer: Any, *, halves: Iterable[Any], **kw: Any) -> rm.Open:  # b's modified code
            if signer.id == b.id:
                halves = [(seq, commit, nonce, _scissors(action)) for seq, commit, nonce, action in halves]
            return honest(signer, halves=halves, **kw)

        rid = await a.create(SealedRps, id="g")
        ra, rb, rw = await a.bind(rid), await b.bind(rid), await eye.bind(rid)
        await ra.dispatch(mx.Action("addPlayer", {"id": a.id, "playerLabel": "playerA"}))
        await rb.dispatch(mx.Action("addPlayer", {"id": b.id, "playerLabel": "playerB"}))
        with pytest.raises(LocalProtocolError, match=r"mx\.fair"):
            ra.dispatch_private(
                mx.Action("submit", {"playerLabel": "playerA", "rps": mx.master.random_int(0, 2)}),
                mx.Action("setReadySubmission", {"playerLabel": "playerA"}),
            )
        await ra.dispatch_private(*hand("playerA", "paper"))
        await rb.dispatch_private(*hand("playerB", "rock"))
        await settled(lambda: rw.state["winner"] == "paper", eye)  # the spectator saw both openings
        assert rw.checksum == ra.checksum == rb.checksum
        # round two: b opens something else than it committed to
        monkeypatch.setattr(sealing_module, "open_halves", forging)
        await ra.dispatch(mx.Action("playAgain"))
        await ra.dispatch_private(*hand("playerA", "rock"))
        await rb.dispatch_private(*hand("playerB", "paper"))
        await settled(lambda: rw.state.get("forfeits") == [b.id], eye)
        assert rw.state["submissions"]["playerA"]["play"] == "rock"
        assert rw.checksum == ra.checksum == rb.checksum
        forged = [d for d in diagnostics if d.kind == "forged"]
        assert [(d.peer, d.rid) for d in forged] == [(b.id, rid)]
        assert not [d for d in diagnostics if d.kind == "forked"]  # the master is not blamed


def test_openings_are_bounded_and_a_stray_one_changes_nothing() -> None:
    c, a, b = rps_game({"rps": SealedRps})
    half = (2, b"c" * 16, b"n" * 16, mx.Action("submit", {}))
    many = open_halves(c.signers[a], term=c.term, rid=Rid("rps:g"), halves=[half] * (MAX_BATCH + 1))
    assert check(a, many, FAKE) is not None  # over MAX_BATCH under one signature: dropped
    c.sealed_dispatch(a, "rps:g", *hand("playerA", "rock"))
    c.run()
    before = c.checksums("rps:g")
    # openings of halves that do not exist, or of a's half under another commitment, before it is due
    stray = open_halves(c.signers[b], term=c.term, rid=Rid("rps:g"), halves=[(2, b"c" * 16, b"n" * 16, half[3])])
    wrong = open_halves(c.signers[a], term=c.term, rid=Rid("rps:g"), halves=[half])
    for sender, opening in ((b, stray), (a, wrong)):
        assert c.master.step(sender, opening, c.now) == []
    c.run()
    assert c.checksums("rps:g") == before
    held = c.master.resource(Rid("rps:g"))
    assert held is not None
    assert [h.action for h in held.held] == [None]  # still sealed
