"""High card with hidden hands, for 2 to 6 players (and any number of spectators).

Each player draws five cards in secret: a private action whose card is a master value
(``mx.master.random_int``), so only the master draws it and only the player sees it. Then
five rounds: in turn order (the reducer checks ``action.author``), each player puts a card
face down (a private play with a public "face down" half). Once everyone has played, the
table reveals every card at once, to spectators too; the highest card takes the round. Cards
come from an endless shoe (many decks shuffled together): two players may hold the same card.

Each turn has a timer (``--turn-seconds``, 30 by default): the master draws it as a deadline
(``mx.master.deadline``) and, if it passes before the player put a card down, the table's
``on_deadline`` skips that player for the round. The deadline is part of the state, so it
survives a change of master: whichever peer is master when it passes runs it, once.

A player whose game crashes starts it again with the same identity file: it is the same
player (same id, same turn) and the master hands it its hand back. (The master's own hand
lives only on the master: if the master itself crashes, its hand is lost.)

On your LAN, one terminal per player (``--spectate`` to watch)::

    python examples/cards.py --name alice
    python examples/cards.py --name bob
    python examples/cards.py --name carol --spectate

In one process, bots on an in-process network: one player crashes after round 2 and comes
back, a spectator prints the reveals, and the last line is a JSON summary::

    python examples/cards.py --local 4
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

import movex_p2p as mx

ROUNDS = 5
HAND = 5
TURN_SECONDS = 30.0
SKIPPED = "skipped"  # on the table instead of a card: the turn timer ran out
MAX_PLAYERS = 6
FACE_DOWN = "face down"
SUITS = "\u2663\u2666\u2665\u2660"  # clubs, diamonds, hearts, spades: the lowest to the highest
RANKS = ["2", "3", "4", "5", "6", "7", "8", "9", "10", "J", "Q", "K", "A"]


def card_name(card: int) -> str:
    """0..51 -> "10♥"."""
    return RANKS[card % 13] + SUITS[card // 13]


def strength(card: int) -> tuple[int, int]:
    """Rank first, then suit."""
    return card % 13, card // 13


# -- the rules: two pure reducers ------------------------------------------------------------------


def hand(state: Any, action: mx.Action) -> Any:
    """One player's hand: the count is public, the cards are in the owner's private view only."""
    if action.author != state["owner"]:
        raise ValueError("only its owner plays from a hand")
    match action:
        case mx.Action("drew"):  # public half of a draw
            return {**state, "count": state["count"] + 1}
        case mx.Action("draw", int(card)) if 0 <= card < 52:  # private half: the master drew the card
            return {**state, "cards": [*state.get("cards", []), card]}
        case mx.Action("discarded"):  # public half of a play
            if state["count"] < 1:
                raise ValueError("no card left")
            return {**state, "count": state["count"] - 1}
        case mx.Action("discard", int(card)):  # private half: the card leaves the hand
            cards = list(state.get("cards", []))
            if card not in cards:
                raise ValueError(f"you do not hold {card_name(card)}")
            cards.remove(card)
            return {**state, "cards": cards}
    raise ValueError(f"unknown action {action.type!r}")


Hand = mx.ResourceType("hand", hand, initial={"owner": "", "count": 0})


def _until(payload: Any) -> Any:
    """The turn's deadline an action carries (drawn by the master: ``mx.master.deadline``)."""
    until = payload.get("until") if isinstance(payload, dict) else None
    if mx.Deadline.of(until) is None:
        raise ValueError("this action carries the next turn's deadline: {'until': mx.master.deadline(seconds)}")
    return until


def table(state: Any, action: mx.Action) -> Any:
    """Who plays, in which order, what lies on the table, and the score."""
    who = action.author
    players, played = state["players"], state["played"]
    match action:
        case mx.Action("join", {"name": str(name)}):
            if state["phase"] != "joining" or who in players:
                return state
            if len(players) >= MAX_PLAYERS:
                raise ValueError(f"the table is full ({MAX_PLAYERS} players)")
            return {
                **state,
                "players": [*players, who],
                "names": {**state["names"], who: name[:20]},
                "scores": {**state["scores"], who: 0},
            }
        case mx.Action("start"):
            if state["phase"] != "joining":
                return state
            if who not in players or len(players) < 2:
                raise ValueError("a player starts the game, once 2 players joined")
            return {**state, "phase": "playing", "until": _until(action.payload)}
        case mx.Action("place"):  # public half of a play: a card lies face down; the next turn's timer
            if state["phase"] != "playing" or players[state["turn"]] != who or who in played:
                raise ValueError("not your turn")
            turn = (state["turn"] + 1) % len(players)
            return {**state, "played": {**played, who: FACE_DOWN}, "turn": turn, "until": _until(action.payload)}
        case mx.Action("play", int(card)):  # private half: which card (revealed with the others)
            if played.get(who) != FACE_DOWN:
                raise ValueError("play needs its public half")
            return {**state, "played": {**played, who: card}}
        case mx.Action("settle", {"round": int(round_)}) if round_ == state["round"] and revealed(state):
            cards = [p for p in players if isinstance(played[p], int)]
            winner = max(cards, key=lambda p: strength(played[p])) if cards else None
            scores = state["scores"] if winner is None else {**state["scores"], winner: state["scores"][winner] + 1}
            last = {"round": round_, "cards": played, "winner": winner}
            over = round_ >= ROUNDS
            return {
                **state,
                "played": {},
                "scores": scores,
                "round": round_ + 1,
                "turn": state["turn"] if winner is None else players.index(winner),
                "last": last,
                "phase": "over" if over else "playing",
                "until": None if over else _until(action.payload),
            }
    return state  # a late or repeated settle changes nothing


def turn_timeout(state: Any, now: float) -> Any:
    """``on_deadline``: the player whose turn it is did not play in time: skipped for this round."""
    players, played = state["players"], state["played"]
    if state["phase"] != "playing" or not players:
        return {**state, "until": None}
    who = players[state["turn"]]
    if who in played:  # everyone has played: the round waits for its reveal and settle
        return {**state, "until": None}
    return {
        **state,
        "played": {**played, who: SKIPPED},
        "turn": (state["turn"] + 1) % len(players),
        "until": mx.Deadline.at(now + state["turn_seconds"]),
    }


def revealed(state: Any) -> bool:
    """Every player's card lies on the table, face up (or the player was skipped)."""
    played = state["played"]
    return bool(state["players"]) and all(
        isinstance(played.get(p), int) or played.get(p) == SKIPPED for p in state["players"]
    )


def can_reveal(state: Any) -> bool:
    """Turn the cards over once every player has put one down."""
    return bool(state["players"]) and all(p in state["played"] for p in state["players"])


def table_initial(turn_seconds: float = TURN_SECONDS) -> dict[str, Any]:
    """A new table; each turn lasts ``turn_seconds``."""
    return {
        "phase": "joining",
        "players": [],
        "names": {},
        "scores": {},
        "played": {},
        "turn": 0,
        "round": 1,
        "until": None,
        "turn_seconds": turn_seconds,
    }


Table = mx.ResourceType("table", table, initial=table_initial(), can_reveal=can_reveal, on_deadline=turn_timeout)
TYPES = [Table, Hand]


# -- a player --------------------------------------------------------------------------------------


class Seat:
    """One peer at the table: its bound table and, for a player, its own hand."""

    def __init__(self, peer: mx.Peer, table: mx.Resource, hand: mx.Resource | None) -> None:
        self.peer, self.table, self.hand = peer, table, hand
        self.dealing = False  # drawing its hand: a card played now would be drawn again

    @classmethod
    async def take(cls, peer: mx.Peer, *, turn_seconds: float = TURN_SECONDS) -> Seat:
        """Bind the table (creating it, if first, with ``turn_seconds`` per turn) and, for a player,
        create and bind its own hand, keeping one it already has."""
        await peer.wait_ready()
        while peer.role == "spectator" and Table.rid("main") not in peer.rids:  # noqa: ASYNC110
            await anyio.sleep(0.05)  # a spectator creates nothing: it waits for a player's table
        table = await peer.bind(await peer.create(Table, table_initial(turn_seconds), id="main"))
        if peer.role == "spectator":
            return cls(peer, table, None)
        hand = await peer.bind(await peer.create(Hand, {"owner": peer.id, "count": 0}, id=peer.id))
        seat = cls(peer, table, hand)
        if peer.id not in table.state["players"]:
            await table.dispatch(mx.Action("join", {"name": peer.name}))
        return seat

    @property
    def cards(self) -> list[int]:
        """The cards in this player's hand (its private view)."""
        return [] if self.hand is None else list(self.hand.state.get("cards", []))

    @property
    def my_turn(self) -> bool:
        state = self.table.state
        return (
            state["phase"] == "playing"
            and self.peer.id in state["players"]
            and state["players"][state["turn"]] == self.peer.id
            and self.peer.id not in state["played"]
        )

    async def draw_hand(self) -> None:
        """Draw up to five cards, each a private action the master draws for us."""
        assert self.hand is not None
        self.dealing = True
        try:
            while self.hand.state["count"] + self.hand.pending < HAND:
                draw = mx.Action("draw", mx.master.random_int(0, 51))
                await self.hand.dispatch_private(draw, mx.Action("drew"))
        finally:
            self.dealing = False

    def next_turn(self) -> dict[str, Any]:
        """What an action that hands the turn on carries: the next turn's deadline, drawn by the master."""
        return {"until": mx.master.deadline(self.table.state["turn_seconds"])}

    async def start(self) -> None:
        """Start the game (its first turn's timer runs from now)."""
        await self.table.dispatch(mx.Action("start", self.next_turn()))

    async def play(self, card: int) -> None:
        """Take ``card`` from the hand and put it face down on the table."""
        assert self.hand is not None
        await self.hand.dispatch_private(mx.Action("discard", card), mx.Action("discarded"))
        await self.table.dispatch_private(mx.Action("play", card), mx.Action("place", self.next_turn()))

    async def settle(self) -> None:
        """Once the cards are face up, score the round (any player may; only the first counts)."""
        state = self.table.state
        if self.hand is not None and state["phase"] == "playing" and revealed(state):  # a spectator writes nothing
            await self.table.dispatch(mx.Action("settle", {"round": state["round"], **self.next_turn()}))


def describe(state: Any) -> str:
    """One line about the table."""
    names = state["names"]
    if state["phase"] == "joining":
        return f"waiting for players: {', '.join(names[p] for p in state['players']) or 'none yet'}"
    scores = ", ".join(f"{names[p]} {state['scores'][p]}" for p in state["players"])
    if state["phase"] == "over":
        best = max(state["scores"].values())
        winners = [names[p] for p in state["players"] if state["scores"][p] == best]
        return f"game over: {' and '.join(winners)} won ({scores})"
    cards = [f"{names[p]}: {card_name(c) if isinstance(c, int) else c}" for p, c in state["played"].items()]
    if mx.Deadline.of(state.get("until")) is not None and not mx.Deadline.fired(state["until"]):
        cards.append(f"turn ends at {time.strftime('%H:%M:%S', time.localtime(mx.Deadline.of(state['until'])))}")
    turn = names[state["players"][state["turn"]]]
    return f"round {state['round']}/{ROUNDS}, {turn} to play; table [{'; '.join(cards)}]; scores {scores}"


def reveal_line(last: Any, names: dict[str, str]) -> str:
    cards = ", ".join(f"{names[p]} {card_name(c) if isinstance(c, int) else c}" for p, c in last["cards"].items())
    winner = "nobody" if last["winner"] is None else names[last["winner"]]
    return f"round {last['round']}: {cards} -> {winner} takes it"


async def wait_until(res: mx.Resource, predicate: Callable[[Any], bool]) -> Any:
    """Wait until ``predicate(view)`` holds; return that view."""
    async for state in res.updates():
        if predicate(state):
            return state
    raise mx.ResourceNotFound("the table was removed", rid=res.rid)


async def bot(seat: Seat, rng: random.Random, *, stop_after: int | None = None, start_at: int = 0) -> None:
    """Play by itself: draw, then on each turn a random card; score rounds as they end.

    ``start_at``: start the game once that many players joined (0: wait for someone to start it).
    """
    if start_at:
        await wait_until(seat.table, lambda s: len(s["players"]) >= start_at or s["phase"] != "joining")
        await seat.start()
    await wait_until(seat.table, lambda s: s["phase"] != "joining")
    await seat.draw_hand()
    async for state in seat.table.updates():
        if state["phase"] == "over" or (stop_after is not None and state["round"] > stop_after):
            return
        if revealed(state):
            await seat.settle()
        elif seat.my_turn and seat.cards:
            await seat.play(rng.choice(seat.cards))


# -- in one process: bots, a spectator, a crash and a comeback --------------------------------------


async def local_game(players: int, seed: int, turn_seconds: float = TURN_SECONDS) -> dict[str, Any]:
    """Bots play a whole game on a FaultyNetwork; the last player crashes after round 2 and comes back."""
    network = mx.testing.FaultyNetwork(seed=seed)
    rng = random.Random(seed)
    keys = Path(tempfile.mkdtemp(prefix="movex-cards-"))
    names = ["ann", "bob", "cy", "dee", "eve", "fay"][:players]
    identities = {name: mx.Identity.load_or_create(keys / f"{name}.key") for name in names}
    victim = names[-1]
    summary: dict[str, Any] = {"reveals": []}

    def peer(name: str, role: mx.presence.Role = "player") -> mx.Peer:
        identity = identities.get(name)
        return mx.Peer(room="cards", types=TYPES, name=name, transport=network, identity=identity, role=role)

    def show(state: Any) -> None:
        last = state.get("last")
        if last is not None and last["round"] > len(summary["reveals"]):
            line = reveal_line(last, state["names"])
            summary["reveals"].append(line)
            print(f"[watcher] {line}", flush=True)

    async with AsyncExitStack() as stack:
        seats = {
            name: await Seat.take(await stack.enter_async_context(peer(name)), turn_seconds=turn_seconds)
            for name in names[:-1]
        }
        watcher = await Seat.take(await stack.enter_async_context(peer("watcher", "spectator")))
        watcher.table.on_update(show)
        async with anyio.create_task_group() as tg:
            for name in names[:-1]:
                tg.start_soon(bot, seats[name], random.Random(rng.random()))
            async with peer(victim) as first:  # its own block: it dies on its own
                crashed = await Seat.take(first)
                await wait_until(watcher.table, lambda s: len(s["players"]) == players)
                await seats[names[0]].start()
                await bot(crashed, random.Random(rng.random()), stop_after=2)
                before = sorted(crashed.cards)
                print(f"[{victim}] crashes holding {', '.join(map(card_name, before))}", flush=True)
                summary["victim_was_master"] = first.is_master  # then its hand dies with it
                network.kill(first.id)  # no goodbye: as if the process died
            async with peer(victim) as again:  # the same identity: the same player
                back = await Seat.take(again)
                assert back.hand is not None
                await wait_until(back.hand, lambda s: len(s.get("cards", [])) >= len(before))
                summary["same_id"] = again.id == first.id
                summary["hand_restored"] = sorted(back.cards) == before
                print(f"[{victim}] is back with {', '.join(map(card_name, back.cards))}", flush=True)
                seats[victim] = back
                await bot(back, random.Random(rng.random()))
                final = await wait_until(watcher.table, lambda s: s["phase"] == "over")
                await anyio.sleep(0.1)  # let the last entries reach everyone
                summary["checksums_equal"] = len({s.table.checksum for s in [watcher, *seats.values()]}) == 1
        print(f"[watcher] {describe(final)}", flush=True)
        summary.update(scores={final["names"][p]: s for p, s in final["scores"].items()}, rounds=final["round"] - 1)
    return summary


# -- on the LAN, from a terminal --------------------------------------------------------------------


async def lan_game(args: argparse.Namespace) -> int:
    role: mx.presence.Role = "spectator" if args.spectate else "player"
    key = args.identity or str(Path(tempfile.gettempdir()) / f"movex-cards-{args.name}.key")
    transport = mx.LanTransport(interfaces=args.interface or None)
    async with mx.Peer(
        room=args.room,
        types=TYPES,
        name=args.name,
        secret=args.secret,
        transport=transport,
        identity=mx.Identity.load_or_create(key),
        role=role,
    ) as peer:
        peer.on_peer_joined(lambda info: print(f"* {info.name} joined ({info.role})", flush=True))
        peer.on_peer_left(lambda info, reason: print(f"* {info.name} {reason}", flush=True))
        peer.on_diagnostic(lambda d: print(f"! {d.kind}: {d.reason}", flush=True))
        try:
            seat = await Seat.take(peer, turn_seconds=args.turn_seconds)
        except mx.AuthenticationFailed as exc:
            print(f"{exc} (--secret)", file=sys.stderr)
            return 2
        print(f"you are {peer.name} ({peer.id}){' watching' if seat.hand is None else ''}; key {key}", flush=True)
        if args.bot and seat.hand is not None:
            await bot(seat, random.Random(), start_at=args.players)
            print(describe(seat.table.state), flush=True)
            return 0
        async with anyio.create_task_group() as tg:
            tg.start_soon(read_commands, seat, tg.cancel_scope)
            if seat.hand is not None:
                tg.start_soon(draw_when_started, seat)
            await show_table(seat)  # until the game is over
            tg.cancel_scope.cancel()
    return 0


async def read_commands(seat: Seat, scope: anyio.CancelScope) -> None:
    """Your typed commands, one a line; ``q`` (or the end of input) leaves."""
    while line := await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True):
        if line.strip() == "q":
            break
        try:
            await command(seat, line.strip())
        except mx.ActionRejected as exc:
            print(f"! {exc.reason}", flush=True)
    scope.cancel()


async def draw_when_started(seat: Seat) -> None:
    """Draw your hand as soon as the game starts (or at once, back after a crash)."""
    await wait_until(seat.table, lambda s: s["phase"] != "joining")
    await seat.draw_hand()


async def command(seat: Seat, text: str) -> None:
    """``s``: start; a number: play that card of your hand."""
    if text == "s":
        await seat.start()
    elif text.isdigit() and seat.hand is not None:
        cards = seat.cards
        if not 1 <= int(text) <= len(cards):
            print(f"! pick 1 to {len(cards)}", flush=True)
        elif not seat.my_turn:
            print("! not your turn", flush=True)
        elif seat.dealing:
            print("! wait: your hand is still being dealt", flush=True)
        else:
            await seat.play(cards[int(text) - 1])
    await seat.settle()


async def show_table(seat: Seat) -> None:
    """Print the table on every change, your hand with it, until the game is over."""
    shown, reveals = "", 0

    def redraw(state: Any) -> None:
        nonlocal shown
        text = screen(seat, state)
        if text != shown:
            shown = text
            print(text, flush=True)

    async with anyio.create_task_group() as tg:
        if seat.hand is not None:  # a card drawn or played redraws the hand, even when the table stays as it is
            tg.start_soon(redraw_on_hand_changes, seat, redraw)
        async for state in seat.table.updates():
            await seat.settle()
            last = state.get("last")
            if last is not None and last["round"] > reveals:
                reveals = last["round"]
                print(reveal_line(last, state["names"]), flush=True)
            redraw(state)
            if state["phase"] == "over":
                break
        tg.cancel_scope.cancel()


async def redraw_on_hand_changes(seat: Seat, redraw: Callable[[Any], None]) -> None:
    assert seat.hand is not None
    async for _ in seat.hand.updates():
        redraw(seat.table.state)


def screen(seat: Seat, state: Any) -> str:
    """The table and, for a player in a running game, its hand."""
    lines = [describe(state)]
    if seat.hand is not None and state["phase"] != "over":
        cards = "  ".join(f"{i}) {card_name(c)}" for i, c in enumerate(seat.cards, 1))
        if seat.my_turn:
            hint = "your turn: type a number and Enter"
        elif state["phase"] == "joining":
            hint = "'s' starts the game"
        else:
            hint = f"waiting for {state['names'][state['players'][state['turn']]]}"
        lines.append(f"your hand: {cards or '(empty)'}   [{hint}, 'q' quits]")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="High card with hidden hands, on movex_p2p.")
    parser.add_argument("--local", type=int, metavar="N", help="N bot players (2-6) in this process, then exit")
    parser.add_argument("--seed", type=int, default=1, help="--local: seed of the bots and of the network")
    parser.add_argument("--name", default="player", help="your name at the table")
    parser.add_argument("--room", default="cards", help="room name (LAN)")
    parser.add_argument("--secret", default=None, help="room secret (LAN)")
    parser.add_argument("--interface", action="append", default=None, metavar="ADDR", help="IPv4 address (LAN)")
    parser.add_argument("--spectate", action="store_true", help="watch: never master, not a player")
    parser.add_argument("--bot", action="store_true", help="play by yourself")
    parser.add_argument("--players", type=int, default=2, help="--bot: start once this many players joined")
    parser.add_argument("--turn-seconds", type=float, default=TURN_SECONDS, help="a turn's timer (seconds)")
    parser.add_argument("--identity", default=None, metavar="FILE", help="your key file (default: per name, in tmp)")
    args = parser.parse_args(argv)
    if args.local is not None:
        if not 2 <= args.local <= MAX_PLAYERS:
            parser.error(f"--local takes 2 to {MAX_PLAYERS} players")
        summary = anyio.run(local_game, args.local, args.seed, args.turn_seconds)
        print(json.dumps(summary), flush=True)
        return 0 if summary["checksums_equal"] and summary["hand_restored"] else 1
    return anyio.run(lan_game, args)


if __name__ == "__main__":
    sys.exit(main())
