"""Fair randomness (resource/fair.py, resource/draws.py): the primitives, the ledger's rules, and a
master running modified code that tries to bias 1,000 seeded draws (docs/security.md, "Fair randomness")."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest

import movex_p2p as mx
from movex_p2p import wire
from movex_p2p.ids import PeerId, Rid, Term
from movex_p2p.proofs import prove
from movex_p2p.resource import messages as rm
from movex_p2p.resource.draws import Draws, Ledger, Player, draw_digest, seed_of
from movex_p2p.resource.effects import DrawShort, Forged, Publish, Send
from movex_p2p.resource.fair import (
    ELEMENT_SIZE,
    HashChain,
    Stream,
    chain_hash,
    check_private,
    contribution_statement,
    draw_seed,
    private_commitment,
    private_seed,
    resolve_fair,
    resolve_private,
    verify_element,
)
from movex_p2p.resource.history import resolves
from movex_p2p.resource.values import has_fair_values, has_master_values
from movex_p2p.signing import FAKE, FakeSigner
from movex_p2p.verify import check

LENGTH = 2048  # short chains: the harness builds a few


# -- primitives -------------------------------------------------------------------------------


def test_a_chain_s_elements_hash_down_to_its_anchor_and_not_up() -> None:
    chain = HashChain(b"s" * 32, 50)
    assert chain_hash(chain.element(1)) == chain.root
    assert chain_hash(chain.element(7)) == chain.element(6)
    assert verify_element(0, chain.root, 50, chain.element(50), length=50)
    assert verify_element(3, chain.element(3), 9, chain.element(9), length=50)
    assert not verify_element(3, chain.element(3), 8, chain.element(9), length=50)  # wrong index
    assert not verify_element(3, chain.element(3), 3, chain.element(3), length=50)  # not after the known one
    assert not verify_element(0, chain.root, 51, chain_hash(b"x"), length=50)  # past its end
    assert not verify_element(0, chain.root, 1, chain.element(1)[:-1], length=50)  # not an element
    with pytest.raises(IndexError):
        chain.element(0)
    with pytest.raises(ValueError, match="16 unpredictable"):
        HashChain(b"short")


def test_two_seeds_give_unrelated_chains() -> None:
    a, b = HashChain(b"a" * 16, 10), HashChain(b"b" * 16, 10)
    assert a.root != b.root
    assert not verify_element(0, a.root, 1, b.element(1), length=10)


def test_a_stream_maps_without_modulo_bias() -> None:
    # 3 values out of a 2-bit draw: modulo would give 0 twice as often; rejection keeps them even
    counts = Counter(Stream(draw_seed("r", "a", i, b"", [])).below(3) for i in range(30_000))
    assert set(counts) == {0, 1, 2}
    assert all(abs(n - 10_000) < 400 for n in counts.values())  # a biased map would be ~13,300 for 0
    assert Stream(b"x").below(1) == 0
    big = 10**40
    assert 0 <= Stream(b"x").below(big) < big
    with pytest.raises(ValueError):
        Stream(b"x").below(0)


def test_a_die_is_even_over_seeded_draws() -> None:
    die = Counter(
        resolve_fair({"d": mx.fair.random_int(1, 6)}, draw_seed("r", "a", i, b"", []))["d"] for i in range(60_000)
    )
    assert set(die) == set(range(1, 7))
    assert all(abs(n - 10_000) < 450 for n in die.values())


def test_shuffles_are_permutations_and_every_order_shows_up() -> None:
    orders = Counter(tuple(Stream(bytes([i % 256, i // 256]) * 8).shuffled([1, 2, 3])) for i in range(6_000))
    assert set(orders) == {(1, 2, 3), (1, 3, 2), (2, 1, 3), (2, 3, 1), (3, 1, 2), (3, 2, 1)}
    assert all(abs(n - 1_000) < 150 for n in orders.values())


def test_resolve_fair_numbers_placeholders_alike_whatever_the_key_order() -> None:
    seed = bytes(32)
    one = {
        "a": mx.fair.random_int(1, 100),
        "b": [mx.fair.choice("xyz"), mx.fair.shuffle(range(5))],
        "t": mx.master.now(),
    }
    two = {"t": mx.master.now(), "b": one["b"], "a": one["a"]}
    r1, r2 = resolve_fair(one, seed), resolve_fair(two, seed)
    assert r1 == r2
    assert list(r2) == ["t", "b", "a"]  # the payload's own key order is kept
    assert has_master_values(r1)
    assert not has_fair_values(r1)
    assert r1["b"][0] in "xyz"
    assert sorted(r1["b"][1]) == [0, 1, 2, 3, 4]
    assert resolve_fair(one, b"\x01" * 32) != r1  # another seed, other values
    assert resolves(one, {**r1, "t": 1.5})
    assert not resolves(one, {**r1, "t": 1.5, "a": 101})


def test_a_draw_seed_depends_on_every_contribution_and_not_on_their_order() -> None:
    parts = [("p1", 1, b"a" * 32), ("p2", 4, b"b" * 32)]
    seed = draw_seed("r", "p1", 3, b"d", parts)
    assert draw_seed("r", "p1", 3, b"d", list(reversed(parts))) == seed
    assert draw_seed("r", "p1", 3, b"d", parts[:1]) != seed
    assert draw_seed("r", "p1", 3, b"d", [("p1", 1, b"a" * 32), ("p2", 4, b"c" * 32)]) != seed
    assert draw_seed("r", "p1", 3, b"e", parts) != seed  # bound to the action
    assert draw_seed("r", "p1", 4, b"d", parts) != seed
    assert len(seed) == ELEMENT_SIZE


def test_fair_placeholders_validate_their_arguments() -> None:
    with pytest.raises(ValueError):
        mx.fair.random_int(6, 1)
    with pytest.raises(TypeError):
        mx.fair.random_int(1.5, 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        mx.fair.choice([])
    with pytest.raises(ValueError):
        mx.fair.shuffle([mx.master.now()])
    assert repr(mx.fair.random_int(1, 6)) == "fair.random_int(1, 6)"
    assert repr(mx.fair.choice("ab")) == "fair.choice(['a', 'b'])"


def test_private_draws_need_the_secret_and_the_beacon() -> None:
    secret, beacon = b"k" * 16, b"b" * 32
    seed = private_seed(secret, beacon, author="ann", rid="dice:1", seq=4)
    assert seed == private_seed(secret, beacon, author="ann", rid="dice:1", seq=4)  # everyone recomputes it
    assert seed != private_seed(secret, b"c" * 32, author="ann", rid="dice:1", seq=4)  # the beacon moves it
    assert seed != private_seed(b"j" * 16, beacon, author="ann", rid="dice:1", seq=4)  # the secret too
    assert seed != private_seed(secret, beacon, author="bob", rid="dice:1", seq=4)  # bound to its action
    assert private_commitment(secret) != private_commitment(b"j" * 16)
    with pytest.raises(ValueError):
        private_seed(b"short", beacon, author="ann", rid="dice:1", seq=4)


def test_a_private_draw_is_checked_at_the_reveal_and_neither_side_can_move_it() -> None:
    secret, beacon = b"s" * 32, b"b" * 32
    committed = private_commitment(secret)  # published with the public half, before the beacon exists
    hand = {"cards": mx.fair.shuffle(range(10)), "die": mx.fair.random_int(1, 6), "at": mx.master.now()}
    where: dict[str, Any] = {"author": "ann", "rid": "game:1", "seq": 7}
    mine = resolve_private(hand, secret, beacon, **where)  # the author's view, once the beacon came
    assert sorted(mine["cards"]) == list(range(10))
    opened = {**mine, "at": 12.5}  # the master resolved its own values too
    assert check_private(committed, secret, beacon, hand, opened, **where)
    # the author cannot open another secret (to pick another hand), nor claim other values
    assert not check_private(
        committed, b"t" * 32, beacon, hand, resolve_private(hand, b"t" * 32, beacon, **where), **where
    )
    assert not check_private(committed, secret, beacon, hand, {**opened, "die": opened["die"] % 6 + 1}, **where)
    # another beacon (a master that wished for another draw) gives another hand, refused against this one
    assert not check_private(committed, secret, b"c" * 32, hand, opened, **where)


# -- the ledger's rules -----------------------------------------------------------------------


def _anchored(player: Player, term: int = 1) -> rm.Anchored:
    anchor = player.anchor(Term(term))
    assert anchor is not None
    return rm.Anchored(term=anchor.term, peer=player.me, root=anchor.root, length=anchor.length, proof=anchor.proof)


class Room:
    """Players with real (fake-signed) chains, every ledger anchored with every chain."""

    def __init__(self, size: int, seed: int = 0) -> None:
        rng = random.Random(seed)
        self.signers = [FakeSigner.from_seed(rng.randbytes(16)) for _ in range(size)]
        self.players = [Player(s.id, signer=s, seed=rng.randbytes(32), length=LENGTH) for s in self.signers]
        self.ids = [s.id for s in self.signers]
        for p in self.players:
            for q in self.players:
                p.anchored(_anchored(q))
        self.index = 0

    def entry(self) -> int:
        self.index += 1
        return self.index


def test_the_ledger_takes_each_player_s_next_element_only() -> None:
    room = Room(3)
    ledger = room.players[0].ledger.copy()
    a, b, c = room.ids
    chains = {p.me: p.chain for p in room.players}

    def drawn(*contribs: tuple[PeerId, int], missing: tuple[PeerId, ...] = ()) -> rm.Drawn:
        parts = []
        for peer, at in contribs:
            chain = chains[peer]
            assert chain is not None
            parts.append(rm.Contribution(peer=peer, at=at, element=chain.element(at), proof=b""))
        return rm.Drawn(
            term=Term(1), index=2, draw=1, rid=Rid("d:1"), author=a, seq=1, digest=b"", contributions=tuple(parts),
            missing=missing,
        )  # fmt: skip

    assert ledger.check(drawn((a, 2), (b, 1))) == f"{a}'s element 2 is not its next one (1)"  # skipping ahead
    first = drawn((a, 1), (b, 1), missing=(c,))
    assert ledger.check(first) is None
    ledger.consume(first)
    assert "not its next" in str(ledger.check(drawn((a, 1))))  # reuse
    assert "not its next" in str(ledger.check(drawn((c, 1))))  # a missing player's index is used up
    assert ledger.check(drawn((c, 2), (a, 2))) is None  # ... so it gives its next one
    assert "twice" in str(ledger.check(drawn((a, 2), (a, 2))))
    assert "named missing" in str(ledger.check(drawn((a, 2), missing=(a,))))
    swapped = drawn((a, 2), (b, 2))
    b_el, a_el = swapped.contributions[1].element, swapped.contributions[0].element
    swapped = replace(
        swapped,
        contributions=(
            replace(swapped.contributions[0], element=b_el),
            replace(swapped.contributions[1], element=a_el),
        ),
    )
    assert "not of its chain" in str(ledger.check(swapped))


def test_a_late_peer_takes_a_checkpoint_a_stale_relay_cannot_move_back() -> None:
    room = Room(2)
    a = room.players[0]
    chain = a.chain
    assert chain is not None
    base = _anchored(a)
    late = Ledger()
    assert not late.anchor(replace(base, at=5, element=chain.element(4), next=6))  # not its element 5
    assert late.anchor(replace(base, at=5, element=chain.element(5), next=7))
    assert late.chains[a.me].next == 7
    assert not late.anchor(base)  # older news of the same chain
    assert late.chains[a.me].next == 7


# -- the protocol between players and an honest master ---------------------------------------


def _publish(effects: list[Any]) -> list[Any]:
    return [e.message for e in effects if isinstance(e, Publish)]


def _answer(player: Player, drawing: rm.Drawing, master: PeerId) -> rm.Contribute:
    """The player's answer to a draw: one Contribute, to the master."""
    (send,) = player.drawing(drawing, master)
    assert isinstance(send, Send)
    assert send.to == master
    assert isinstance(send.message, rm.Contribute)
    return send.message


def test_an_honest_draw_resolves_once_every_player_answered_and_everyone_agrees() -> None:
    room = Room(4)
    master_id = room.ids[0]
    draws = Draws(master_id, term=Term(1), ledger=room.players[0].ledger.copy(), entry=room.entry)
    author = room.ids[2]
    action = mx.Action("roll", {"die": mx.fair.random_int(1, 6)})
    propose = rm.Propose(term=Term(1), rid=Rid("dice:1"), seq=1, base=0, action=action)
    (drawing,) = _publish(draws.propose(author, propose, 0.0, room.ids[1:]))
    assert isinstance(drawing, rm.Drawing)
    assert draws.propose(author, propose, 0.0, room.ids[1:]) == []  # re-sent while it runs: nothing new
    answers = [_answer(p, drawing, master_id) for p in room.players]
    done = [draws.contribute(p.me, c) for p, c in zip(room.players, answers, strict=True)]
    assert done == [False, False, False, True]
    effects, resolved = draws.resolve()
    assert resolved == (author, propose)
    (drawn,) = _publish(effects)
    assert isinstance(drawn, rm.Drawn)
    assert drawn.missing == ()
    assert len(drawn.contributions) == 4
    assert check(master_id, drawn, FAKE) is None
    assert all(p.drawn(drawn, master_id) == [] for p in room.players)
    seed = draws.take_seed(author, Rid("dice:1"), 1)
    assert seed == seed_of(drawn)
    assert all(p.seed(Rid("dice:1"), author, 1) == seed for p in room.players)


def test_a_withheld_element_is_named_and_does_not_stall_the_draw() -> None:
    room = Room(3)
    master_id, author, silent = room.ids
    draws = Draws(master_id, term=Term(1), ledger=room.players[0].ledger.copy(), entry=room.entry, timeout=0.5)
    propose = rm.Propose(
        term=Term(1), rid=Rid("d:1"), seq=1, base=0, action=mx.Action("roll", mx.fair.random_int(1, 6))
    )
    (drawing,) = _publish(draws.propose(author, propose, 10.0, [author, silent]))
    for p in room.players[:2]:
        assert not draws.contribute(p.me, _answer(p, drawing, master_id))
    assert draws.due == 10.5
    assert not draws.timed_out(10.4)
    assert draws.timed_out(10.5)
    effects, _ = draws.resolve()
    (drawn,) = _publish(effects)
    assert drawn.missing == (silent,)
    for p in room.players:  # every peer hears whom the draw left out; the silent one answered nothing
        assert p.drawn(drawn, master_id) == [
            DrawShort(rid=Rid("d:1"), draw=drawing.index, missing=(silent,), master=master_id)
        ]
    assert room.players[0].ledger.chains[silent].next == 2  # its first element is used up, seen or not


# -- a master running modified code -------------------------------------------------------------

ATTACKS = (
    "honest",
    "grind_own",  # after seeing the others: its own element from further down its chain
    "forge_own",  # its own element replaced by bytes of its choice
    "reuse",  # a player's element used in an earlier draw
    "swap",  # two players' elements (and proofs) exchanged
    "rebind",  # the elements given for this draw, published for another action
    "value",  # the Applied entry carries another value than the draw's
    "no_draw",  # the Applied entry with values and no Drawn before it
    "drop",  # a player's element left out and named missing, though it answered (the master's own too)
    "unnamed",  # a player's element left out and not named
    "unsigned",  # a player's element published without its signature (as the master's own goes)
)


def _applied(drawn: rm.Drawn, action: mx.Action, payload: Any, version: int) -> rm.Applied:
    return rm.Applied(
        term=drawn.term,
        index=drawn.index + 1,
        rid=drawn.rid,
        version=version,
        author=drawn.author,
        seq=drawn.seq,
        action=mx.Action(action.type, payload),
        private=False,
        checksum=b"",
        now=0.0,
        origin=action,
    )


def _forged(effects: list[Any]) -> bool:
    return any(isinstance(e, Forged) for e in effects)


def _verdicts(players: list[Player], master: PeerId, drawn: rm.Drawn, applied: rm.Applied) -> list[bool]:
    """Each honest peer's verdict (True: it accepts the draw and the entry), decoding, verifying and checking
    as a peer does."""
    (drawn,) = wire.decode(wire.encode(drawn))  # type: ignore[assignment]
    out = []
    for p in players:
        ok = check(master, drawn, FAKE) is None
        ok = ok and not _forged(p.drawn(drawn, master))
        ok = ok and p.applied(applied, drawn.index, master) == []
        out.append(ok)
    return out


def test_a_master_running_modified_code_biases_none_of_1000_seeded_draws() -> None:
    room = Room(4, seed=20)
    master, honest = room.players[0], room.players[1:]
    master_id = master.me
    chain = master.chain
    assert chain is not None
    rng = random.Random(2026)
    biased = rejected = dropped = accepted = 0
    previous: list[rm.Contribution] = []
    for i in range(1000):
        attack = ATTACKS[i % len(ATTACKS)]
        author = room.ids[rng.randrange(4)]
        rid = Rid("dice:1")
        action = mx.Action("roll", {"die": mx.fair.random_int(1, 6), "n": i})
        digest = draw_digest(author, rid, i + 1, action, b"")
        drawing = rm.Drawing(
            term=Term(1), index=room.entry(), rid=rid, author=author, seq=i + 1, digest=digest,
            players=tuple(sorted(room.ids)),
        )  # fmt: skip
        got = {}
        for p in room.players:
            c = _answer(p, drawing, master_id)
            assert c.proof == b"" if p is master else check(p.me, c, FAKE) is None  # the master's: no signature
            got[p.me] = rm.Contribution(peer=p.me, at=c.at, element=c.element, proof=c.proof)
        honest_drawn = rm.Drawn(
            term=Term(1), index=room.entry(), draw=drawing.index, rid=rid, author=author, seq=i + 1, digest=digest,
            contributions=tuple(got[p] for p in sorted(got)),
        )  # fmt: skip
        honest_value = resolve_fair(action.payload, seed_of(honest_drawn))
        drawn, value = honest_drawn, honest_value
        contribs = list(honest_drawn.contributions)
        me_at = next(k for k, c in enumerate(contribs) if c.peer == master_id)
        if attack == "grind_own":  # the best die among its next 16 elements, signed by itself
            best = None
            for at in range(got[master_id].at, min(got[master_id].at + 16, LENGTH + 1)):
                own = rm.Contribution(peer=master_id, at=at, element=chain.element(at), proof=b"")
                parts = [*contribs[:me_at], own, *contribs[me_at + 1 :]]
                statement = contribution_statement(1, drawing.index, rid, author, i + 1, digest, at, own.element)
                own = replace(own, proof=prove(room.signers[0], *statement))
                parts[me_at] = own
                candidate = replace(honest_drawn, contributions=tuple(parts))
                v = resolve_fair(action.payload, seed_of(candidate))
                if best is None or v["die"] > best[1]["die"]:
                    best = (candidate, v)
            assert best is not None
            drawn, value = best
        elif attack == "forge_own":
            element = rng.randbytes(32)
            at = got[master_id].at
            statement = contribution_statement(1, drawing.index, rid, author, i + 1, digest, at, element)
            contribs[me_at] = rm.Contribution(
                peer=master_id, at=at, element=element, proof=prove(room.signers[0], *statement)
            )
            drawn = replace(honest_drawn, contributions=tuple(contribs))
            value = resolve_fair(action.payload, seed_of(drawn))
        elif attack == "reuse" and previous:
            k = rng.randrange(1, 4)
            old = next(c for c in previous if c.peer == contribs[k].peer)
            contribs[k] = old
            drawn = replace(honest_drawn, contributions=tuple(contribs))
            value = resolve_fair(action.payload, seed_of(drawn))
        elif attack == "swap":
            j, k = rng.sample(range(4), 2)
            contribs[j], contribs[k] = (
                replace(contribs[k], peer=contribs[j].peer),
                replace(contribs[j], peer=contribs[k].peer),
            )
            drawn = replace(honest_drawn, contributions=tuple(contribs))
            value = resolve_fair(action.payload, seed_of(drawn))
        elif attack == "rebind":
            other = mx.Action("roll", {"die": mx.fair.random_int(1, 6), "n": -i})
            drawn = replace(honest_drawn, digest=draw_digest(author, rid, i + 1, other, b""))
            action = other
            value = resolve_fair(other.payload, seed_of(drawn))
        elif attack == "value":
            value = {**honest_value, "die": honest_value["die"] % 6 + 1}
        elif attack == "unsigned":  # another player's element with the master's own element's (empty) proof
            k = next(k for k, c in enumerate(contribs) if c.peer != master_id)
            contribs[k] = replace(contribs[k], proof=b"")
            drawn = replace(honest_drawn, contributions=tuple(contribs))
        elif attack in ("drop", "unnamed"):  # any one player's element, its own included
            victim = contribs.pop(rng.randrange(4))
            missing = (victim.peer,) if attack == "drop" else ()
            drawn = replace(honest_drawn, contributions=tuple(contribs), missing=missing)
            value = resolve_fair(action.payload, seed_of(drawn))
        applied = _applied(drawn, action, value, i + 1)
        room.entry()
        if attack == "no_draw":
            applied = replace(applied, index=applied.index + 5)  # another entry took the Drawn's place
            verdicts = [p.applied(applied, applied.index - 1, master_id) == [] for p in honest]
            verdicts = [v and check(master_id, drawn, FAKE) is None for v in verdicts]
        else:
            verdicts = _verdicts(honest, master_id, drawn, applied)
        if all(verdicts):
            accepted += 1
            if value != honest_value:
                biased += 1
        elif attack == "drop" and drawn.missing != (master_id,):
            # the player left out answered over a link that stayed up: it refuses the draw (and its master);
            # the others cannot tell a drop from a late answer
            assert [p.me for p, ok in zip(honest, verdicts, strict=True) if not ok] == list(drawn.missing)
            dropped += 1
        else:
            assert not any(verdicts) or attack == "no_draw", (attack, verdicts)
            rejected += 1
        for p in honest:  # a forger is voted out; the next master publishes the draw honestly
            if p.seed(rid, author, i + 1) is None:
                assert p.drawn(honest_drawn, master_id) == []
        kept = drawn if attack == "drop" and drawn.missing != (master_id,) else honest_drawn  # what most kept
        if master.seed(rid, author, i + 1) is None:
            assert not _forged(master.drawn(kept, master_id))
        previous = list(kept.contributions)
    assert biased == 0
    per_attack = 1000 // len(ATTACKS)
    assert rejected >= 7 * per_attack  # every other cheating attempt was refused by every peer
    assert dropped >= per_attack // 2
    assert accepted >= per_attack  # the honest draws (and grinding whose best pick was the honest element)


def test_peers_name_a_second_draw_opened_before_the_first_is_drawn() -> None:
    room = Room(2)
    master_id, player = room.ids[0], room.players[1]
    first = rm.Drawing(
        term=Term(1), index=1, rid=Rid("d:1"), author=master_id, seq=1, digest=b"x", players=(player.me,)
    )
    assert len(player.drawing(first, master_id)) == 1
    effects = player.drawing(replace(first, index=2, seq=2), master_id)
    assert len(effects) == 1
    assert isinstance(effects[0], Forged)


def test_the_verify_stage_checks_every_signature_a_draw_carries() -> None:
    room = Room(2)
    (a, b), (sa, sb) = room.players, room.signers
    anchor = a.anchor(Term(1))
    assert anchor is not None
    assert check(a.me, anchor, FAKE) is None
    assert check(b.me, anchor, FAKE) == "an anchor not signed by its sender"  # b passing a's anchor off as its own
    relayed = _anchored(a)
    assert check(b.me, relayed, FAKE) is None  # any master may relay it: a signed it
    assert check(b.me, replace(relayed, peer=b.me), FAKE) == f"an anchor not signed by its player {b.me}"
    drawing = rm.Drawing(term=Term(1), index=1, rid=Rid("d:1"), author=a.me, seq=1, digest=b"d", players=(a.me,))
    assert check(b.me, drawing, FAKE) is None
    many = tuple(PeerId(f"p{i}") for i in range(1025))
    assert check(b.me, replace(drawing, players=many), FAKE) == "a draw asking more than 1024 players"
    contribute = _answer(a, drawing, b.me)
    assert check(a.me, contribute, FAKE) is None
    assert check(a.me, replace(contribute, seq=2), FAKE) == "a draw contribution not signed by its sender"  # re-bound
    c = rm.Contribution(peer=a.me, at=contribute.at, element=contribute.element, proof=contribute.proof)
    drawn = rm.Drawn(
        term=Term(1), index=2, draw=1, rid=Rid("d:1"), author=a.me, seq=1, digest=b"d", contributions=(c,)
    )  # fmt: skip
    assert check(b.me, drawn, FAKE) is None
    assert check(b.me, replace(drawn, digest=b"e"), FAKE) == f"a draw contribution not signed by its player {a.me}"
    forged = replace(c, proof=prove(sb, *contribution_statement(1, 1, "d:1", a.me, 1, b"d", c.at, c.element)))
    assert check(b.me, replace(drawn, contributions=(forged,)), FAKE) is not None  # b cannot sign for a
    crowded = replace(drawn, missing=tuple(PeerId(f"p{i}") for i in range(1024)))
    assert check(b.me, crowded, FAKE) == "a draw naming more than 1024 players"
    assert sa.id == a.me


class CountingVerifier:
    """FAKE's verdicts, counted."""

    def __init__(self) -> None:
        self.calls = 0

    def verify(self, public_key: bytes, signature: bytes, data: bytes) -> bool:
        self.calls += 1
        return FAKE.verify(public_key, signature, data)


def test_a_drawn_needs_no_signature_for_its_masters_own_element_nor_for_the_one_a_peer_signed_itself() -> None:
    """The master publishes its own element unsigned: its link vouches for it (its key could sign any binding
    anyway; the chain fixes the element). A peer checks its own element by comparing it with what it sent.
    Every other element still needs its player's signature, and nothing else is exempt."""
    room = Room(3, seed=12)
    master, me, other = room.players
    drawing = rm.Drawing(
        term=Term(1), index=1, rid=Rid("d:1"), author=me.me, seq=1, digest=b"d", players=tuple(sorted(room.ids))
    )
    answers = {p.me: _answer(p, drawing, master.me) for p in room.players}
    assert answers[master.me].proof == b""  # the master signs nothing for its own element
    parts = tuple(
        rm.Contribution(peer=peer, at=c.at, element=c.element, proof=c.proof) for peer, c in sorted(answers.items())
    )
    drawn = rm.Drawn(
        term=Term(1), index=2, draw=1, rid=Rid("d:1"), author=me.me, seq=1, digest=b"d", contributions=parts
    )  # fmt: skip
    counting = CountingVerifier()
    assert check(master.me, drawn, counting, me.signed) is None
    assert counting.calls == 1  # the other player's element only
    fresh = CountingVerifier()  # (verifications are cached per verifier)
    assert check(master.me, drawn, fresh) is None  # without ``signed``: ours is verified like the other's
    assert fresh.calls == 2
    assert not _forged(me.drawn(drawn, master.me))

    def changed(peer: PeerId, **fields: Any) -> rm.Drawn:
        return replace(drawn, contributions=tuple(replace(c, **fields) if c.peer == peer else c for c in parts))

    # our own proof over another element, index or draw is no signature of ours: verified, and refused
    assert check(master.me, changed(me.me, element=bytes(32)), counting, me.signed) is not None
    assert check(master.me, changed(me.me, at=2), counting, me.signed) is not None
    assert check(master.me, replace(drawn, seq=2), counting, me.signed) is not None
    # only the sender's own element goes unsigned: not another player's, and not the master's from anyone else
    assert check(master.me, changed(other.me, proof=b""), counting, me.signed) is not None
    assert check(other.me, drawn, counting, me.signed) == f"a draw contribution not signed by its player {master.me}"
    # the master's unsigned element is still its chain's next one, or the draw is a forgery
    forged = changed(master.me, element=bytes(32))
    assert check(master.me, forged, counting, me.signed) is None
    assert "not of its chain" in _why(other.drawn(forged, master.me))


def test_the_entry_after_a_refused_draw_is_refused_too() -> None:
    room = Room(2)
    master_id, player = room.ids[0], room.players[1]
    action = mx.Action("roll", {"die": mx.fair.random_int(1, 6)})
    digest = draw_digest(master_id, Rid("d:1"), 1, action, b"")
    drawing = rm.Drawing(
        term=Term(1), index=1, rid=Rid("d:1"), author=master_id, seq=1, digest=digest, players=(player.me,)
    )
    c = _answer(player, drawing, master_id)
    element = bytes(32)  # not the player's element
    drawn = rm.Drawn(
        term=Term(1), index=2, draw=1, rid=Rid("d:1"), author=master_id, seq=1, digest=digest,
        contributions=(rm.Contribution(peer=player.me, at=c.at, element=element, proof=c.proof),),
    )  # fmt: skip
    assert _forged(player.drawn(drawn, master_id))
    applied = _applied(drawn, action, resolve_fair(action.payload, seed_of(drawn)), 1)
    assert _forged(player.applied(applied, 1, master_id))  # its index was not taken: still refused


def _why(effects: list[Any]) -> str:
    """The reason of the one forgery in ``effects``."""
    (forged,) = effects
    assert isinstance(forged, Forged)
    return forged.reason


def _draw(room: Room, i: int, players: list[PeerId]) -> tuple[rm.Drawing, dict[PeerId, list[Any]]]:
    """Draw ``i`` (author: the master) asking ``players``: each player's effects on seeing the Drawing."""
    master_id = room.ids[0]
    action = mx.Action("roll", {"die": mx.fair.random_int(1, 6), "n": i})
    digest = draw_digest(master_id, Rid("d:1"), i, action, b"")
    drawing = rm.Drawing(
        term=Term(1), index=room.entry(), rid=Rid("d:1"), author=master_id, seq=i, digest=digest,
        players=tuple(sorted(players)),
    )  # fmt: skip
    return drawing, {p.me: p.drawing(drawing, master_id) for p in room.players}


def _drawn(room: Room, drawing: rm.Drawing, answers: dict[PeerId, list[Any]], missing: tuple[PeerId, ...]) -> rm.Drawn:
    parts = []
    for peer, effects in sorted(answers.items()):
        if peer in missing or peer not in drawing.players:
            continue
        (send,) = effects
        c = send.message
        parts.append(rm.Contribution(peer=peer, at=c.at, element=c.element, proof=c.proof))
    return rm.Drawn(
        term=Term(1), index=room.entry(), draw=drawing.index, rid=drawing.rid, author=drawing.author, seq=drawing.seq,
        digest=drawing.digest, contributions=tuple(parts), missing=missing,
    )  # fmt: skip


def test_a_master_cannot_choose_whom_a_draw_counts_after_seeing_the_elements() -> None:
    """The players asked are fixed in the Drawing; a player asked before, over the same link, is asked again; a
    Drawn accounts for exactly them; the master never names itself missing; a player that answered is never
    named missing over a link that stayed up. Each attempt is refused by the player it wrongs (or by all)."""
    room = Room(4, seed=3)
    master_id, b, c, d = room.ids
    drawing, answers = _draw(room, 1, room.ids)  # an honest draw first: every player answered over this link
    assert all(len(e) == 1 and isinstance(e[0], Send) for e in answers.values())
    drawn = _drawn(room, drawing, answers, ())
    assert all(p.drawn(drawn, master_id) == [] for p in room.players)

    # left out of the Drawing, though linked and asked before: that player refuses at once, the others answer
    drawing, answers = _draw(room, 2, [master_id, b, c])
    assert _forged(answers[d])
    assert "leaves out this player" in _why(answers[d])
    assert not any(_forged(answers[p]) for p in (b, c))

    # asking only itself (a value it knows in advance): every other player refuses
    room = Room(4, seed=4)
    drawing, answers = _draw(room, 1, room.ids)
    _ = [p.drawn(_drawn(room, drawing, answers, ()), room.ids[0]) for p in room.players]
    drawing, answers = _draw(room, 2, [room.ids[0]])
    assert all(_forged(answers[p]) for p in room.ids[1:])

    # an element left out and not named: every peer that saw the Drawing refuses
    room = Room(4, seed=5)
    master_id, b, c, d = room.ids
    drawing, answers = _draw(room, 1, room.ids)
    drawn = _drawn(room, drawing, answers, ())
    unnamed = replace(drawn, contributions=tuple(x for x in drawn.contributions if x.peer != c))
    for p in room.players[1:]:
        effects = p.drawn(unnamed, master_id)
        assert _forged(effects)
        assert "exactly the players it asked" in _why(effects)

    # named missing though it answered: that player refuses; the others see a draw short of it
    room = Room(4, seed=6)
    master_id, b, c, d = room.ids
    drawing, answers = _draw(room, 1, room.ids)
    dropped = _drawn(room, drawing, answers, (c,))
    verdicts = {p.me: p.drawn(dropped, master_id) for p in room.players[1:]}
    assert _forged(verdicts[c])
    assert "though it answered" in _why(verdicts[c])
    assert verdicts[b] == verdicts[d] == [DrawShort(rid=Rid("d:1"), draw=drawing.index, missing=(c,), master=master_id)]

    # the master naming itself missing (its own element at hand): every peer refuses
    room = Room(4, seed=7)
    master_id = room.ids[0]
    drawing, answers = _draw(room, 1, room.ids)
    itself = _drawn(room, drawing, answers, (master_id,))
    assert all(_forged(p.drawn(itself, master_id)) for p in room.players[1:])

    # a player whose link to the master reopened (its answer may be lost) does not accuse when named missing
    room = Room(4, seed=8)
    master_id, b, c, d = room.ids
    drawing, answers = _draw(room, 1, room.ids)
    room.players[2].master_changed(master_id, Term(1))  # the link reopened after it answered
    dropped = _drawn(room, drawing, answers, (c,))
    assert not _forged(room.players[2].drawn(dropped, master_id))


def test_a_player_that_restarts_during_a_draw_is_not_waited_for() -> None:
    """Its new process cannot answer from the chain the draw asks (the old process's): its new anchor
    excuses it at once, where the master used to wait the whole DRAW_TIMEOUT."""
    room = Room(3, seed=9)
    master_id, author, restarted = room.ids
    draws = Draws(master_id, term=Term(1), ledger=room.players[0].ledger.copy(), entry=room.entry)
    propose = rm.Propose(term=Term(1), rid=Rid("d:1"), seq=1, base=0, action=mx.Action("r", mx.fair.random_int(1, 6)))
    (drawing,) = _publish(draws.propose(author, propose, 0.0, [author, restarted]))
    for p in room.players[:2]:
        assert not draws.contribute(p.me, _answer(p, drawing, master_id))
    assert not draws.complete()
    again = Room(3, seed=10).players[2]  # another secret seed: another chain, under the same identity's name
    anchor = again.anchor(Term(1))
    assert anchor is not None
    assert draws.anchor(restarted, anchor) == []  # its new chain is relayed once the draw is drawn
    assert draws.complete()
    effects, _ = draws.resolve()
    (drawn,) = _publish(effects)
    assert drawn.missing == (restarted,)
