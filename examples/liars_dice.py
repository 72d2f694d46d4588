"""Liar's dice for 2 to 6 players (and any number of spectators), with hidden dice.

Each round every player rolls its dice in secret: a sealed private action (the table is
``private="sealed"``: the player keeps the half, the master orders only a commitment to it) whose
dice are fair private draws (``mx.fair.random_int``): drawn from the player's committed secret and
a beacon every player contributes to, fixed only after the commitment is ordered, so only the
player sees them and neither it nor the master can choose them. Its public half ("rolled")
everyone sees. Then, in turn order (the reducer checks ``action.author``),
each player either raises the bid ("at least Q dice on the table show face F"; ones are wild
except in a bid on ones) or calls "liar" on the last bid. The call makes the table's
``can_reveal`` true, so every hidden roll is revealed at once, to spectators too; then any player
settles the round: if the table holds fewer than Q dice of face F the bidder loses a die,
otherwise the caller does. A player without dice is out; the last player with dice wins.

Turn timer (``--turn-seconds``, 20 by default, 1 with ``--local``): each turn's deadline is a master value
(``mx.master.deadline``) kept in the state; when it passes the table's ``on_deadline`` runs, on
whichever peer is master then. A silent bidder forfeits its turn (the next player bids on the
same bid). A player who has not rolled when the rolling time is up loses a die and sits the round
out, so a player who left for good cannot stall the game.

Lost dice (``reveal_timeout`` 5 s, ``on_unrevealed``): only the player holds its hidden roll (a
master that dies loses nothing of the others'). A player that dies, or restarts without the roll
(the same ``--identity``), cannot show it; every peer checks each roll shown against its
commitment and its draw, so a player that shows other dice counts as lost too. At the reveal the table waits up to
``REVEAL_TIMEOUT`` for each hidden roll, then ``on_unrevealed`` runs for those that are lost: the
call is not judged (nobody can check the bid) and each player whose dice are lost loses a die, as
a player who knocks over its cup would. So crashing never gets a player out of a losing call.

On your LAN, one terminal per player (without ``--room``, it lists the rooms it sees and joins
the first liar's dice room, or opens ``liars-dice``)::

    python examples/liars_dice.py --name alice
    python examples/liars_dice.py --name bob --bot
    python examples/liars_dice.py --name carol --spectate

In one process, bots on an in-process network, one of which dozes off once (its turn timer
skips it); a spectator prints every bid and reveal, then ``winner: NAME``, and the last line is a
JSON summary::

    python examples/liars_dice.py --local 4 --seed 7
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

import movex_p2p as mx

DICE = 5
MAX_PLAYERS = 6
TURN_SECONDS = 20.0
REVEAL_TIMEOUT = 5.0
"""Seconds the master waits at a reveal for a hidden roll it does not hold (see ``lost_roll``)."""
ROOM = "liars-dice"
NAMES = ["ann", "bob", "cy", "dee", "eve", "fay"]


# -- the rules: one pure reducer, its timer and its lost-dice rule -----------------------------------


def _until(payload: Any) -> Any:
    """The deadline an action carries for the next turn (``mx.master.deadline``)."""
    until = payload.get("until") if isinstance(payload, dict) else None
    if mx.Deadline.of(until) is None:
        raise ValueError("this action carries the next deadline: {'until': mx.master.deadline(seconds)}")
    return until


def live(state: Any) -> list[str]:
    """The players who still have dice, in seat order."""
    return [p for p in state["players"] if state["left"][p] > 0]


def after(order: list[str], who: str, players: list[str]) -> str:
    """The first of ``order`` after ``who`` in the seat order ``players`` (``who`` need not be in ``order``)."""
    start = players.index(who)
    for step in range(1, len(players) + 1):
        candidate = players[(start + step) % len(players)]
        if candidate in order:
            return candidate
    raise ValueError("nobody left to play")


def in_play(state: Any) -> int:
    """How many dice the players of this round hold together."""
    return sum(state["left"][p] for p in state["rolled"])


def matching(dice: list[int], face: int) -> int:
    """How many of ``dice`` count for a bid on ``face`` (ones are wild, except for a bid on ones)."""
    return sum(1 for d in dice if d == face or (d == 1 and face != 1))


def begin_bidding(state: Any, rolled: list[str], until: Any) -> Any:
    """Everyone in the round has rolled: the starter (or the next player in the round) bids first."""
    order = [p for p in state["players"] if p in rolled]
    first = state["starter"] if state["starter"] in order else after(order, state["starter"], state["players"])
    return {**state, "rolled": order, "phase": "bidding", "turn": first, "until": until}


def next_round(state: Any, starter: str, until: Any) -> Any:
    """Start rolling for the next round, or end the game if one player is left."""
    players = live(state)
    if len(players) == 1:
        return {**state, "phase": "over", "winner": players[0], "turn": None, "until": None}
    if starter not in players:
        starter = after(players, starter, state["players"])
    return {
        **state,
        "phase": "rolling",
        "round": state["round"] + 1,
        "rolled": [],
        "dice": {},
        "lost": [],
        "bid": None,
        "caller": None,
        "turn": None,
        "starter": starter,
        "until": until,
    }


def revealed(state: Any) -> bool:
    """After a call: every roll of the round is face up, or lost."""
    return state["phase"] == "called" and all(p in state["dice"] or p in state["lost"] for p in state["rolled"])


def settle(state: Any, until: Any, at: Any) -> Any:
    """Judge the call: the loser (or every player whose dice were lost) loses a die."""
    bid = state["bid"]
    shown = [d for p in state["rolled"] if p not in state["lost"] for d in state["dice"][p]]
    count = matching(shown, bid["face"])
    # with dice lost the bid cannot be checked: whoever lost their dice pays, nobody else
    losers = list(state["lost"]) or [state["caller"] if count >= bid["quantity"] else bid["by"]]
    left = {**state["left"], **{p: state["left"][p] - 1 for p in losers}}
    if not any(left.values()):  # every roll lost and nobody would have a die left: the round is void
        losers, left = [], state["left"]
    last = {
        "round": state["round"],
        "bid": bid,
        "caller": state["caller"],
        "dice": {p: state["dice"][p] for p in state["rolled"] if p in state["dice"]},
        "count": count,
        "losers": losers,
        "lost": state["lost"],
        "took": round(at - state["called_at"], 3)
        if isinstance(at, float) and isinstance(state["called_at"], float)
        else None,
    }
    return next_round({**state, "left": left, "last": last}, losers[0] if losers else state["starter"], until)


def table(state: Any, action: mx.Action) -> Any:
    """The whole game: seats, dice counts, the round's rolls, the bid, the turn."""
    who = action.author or ""  # set by the library on every action a peer dispatched
    players, phase = state["players"], state["phase"]
    match action:
        case mx.Action("join", {"name": str(name)}):
            if phase != "joining" or who in players:
                return state
            if len(players) >= MAX_PLAYERS:
                raise ValueError(f"the table is full ({MAX_PLAYERS} players)")
            return {
                **state,
                "players": [*players, who],
                "names": {**state["names"], who: name[:20]},
                "left": {**state["left"], who: state["dice_each"]},
            }
        case mx.Action("start"):
            if phase != "joining":
                return state
            if who not in players or len(players) < 2:
                raise ValueError("a player starts the game, once 2 players joined")
            return {**state, "phase": "rolling", "round": 1, "starter": players[0], "until": _until(action.payload)}
        case mx.Action("rolled", {"round": int(round_)}):  # the public half of a roll
            if phase != "rolling" or round_ != state["round"] or who not in live(state) or who in state["rolled"]:
                raise ValueError("no roll expected from you now")
            rolled = [*state["rolled"], who]
            if set(rolled) == set(live(state)):
                return begin_bidding(state, rolled, _until(action.payload))
            return {**state, "rolled": rolled}
        case mx.Action("roll", {"round": int(round_), "dice": list(dice)}):  # the private half: the dice
            # seen by its author at once, by everyone at the reveal; a roll of another round is stale
            if round_ != state["round"] or who not in players or len(dice) != state["left"][who]:
                return state
            if not all(isinstance(d, int) and 1 <= d <= 6 for d in dice):
                raise ValueError("dice show 1 to 6")
            return {**state, "dice": {**state["dice"], who: sorted(dice)}}
        case mx.Action("bid", {"quantity": int(quantity), "face": int(face)}):
            if phase != "bidding" or state["turn"] != who:
                raise ValueError("not your turn")
            if not 1 <= face <= 6 or not 1 <= quantity <= in_play(state):
                raise ValueError(f"a bid is 1 to {in_play(state)} dice of a face 1 to 6")
            bid = state["bid"]
            if bid is not None and (quantity, face) <= (bid["quantity"], bid["face"]):
                raise ValueError("raise the quantity, or the face for the same quantity")
            return {
                **state,
                "bid": {"by": who, "quantity": quantity, "face": face},
                "turn": after(state["rolled"], who, players),
                "until": _until(action.payload),
            }
        case mx.Action("liar"):
            if phase != "bidding" or state["turn"] != who or state["bid"] is None:
                raise ValueError("you call liar on your turn, on the last bid")
            at = action.payload.get("at") if isinstance(action.payload, dict) else None
            return {**state, "phase": "called", "caller": who, "called_at": at, "turn": None, "until": None}
        case mx.Action("settle", {"round": int(round_)}):
            if round_ != state["round"] or phase != "called":
                return state  # another player settled it first
            if not revealed(state):
                raise ValueError("the dice are not all face up yet")
            return settle(state, _until(action.payload), action.payload.get("at"))
    raise ValueError(f"unknown action {action.type!r}")


def time_up(state: Any, now: float) -> Any:
    """``on_deadline``: a silent bidder forfeits its turn; a player who did not roll loses a die."""
    timed_out = {**state, "timeouts": state["timeouts"] + 1}
    until = mx.Deadline.at(now + state["turn_seconds"])
    if state["phase"] == "bidding":
        silent = state["turn"]
        return {
            **timed_out,
            "timed_out": silent,
            "turn": after(state["rolled"], silent, state["players"]),
            "until": until,
        }
    if state["phase"] == "rolling" and not state["rolled"]:  # nobody rolled (a stalled table): wait again
        return {**timed_out, "timed_out": None, "until": until}
    if state["phase"] == "rolling":
        missing = [p for p in live(state) if p not in state["rolled"]]
        left = {**state["left"], **{p: state["left"][p] - 1 for p in missing}}
        timed_out = {**timed_out, "timed_out": missing[0] if missing else None, "left": left}
        rolled = [p for p in state["rolled"] if left[p] > 0]
        if len(rolled) >= 2:
            return begin_bidding(timed_out, rolled, until)
        return next_round(timed_out, state["starter"], until)  # too few rolled: roll again
    return {**state, "until": None}


def lost_roll(state: Any, lost: mx.Unrevealed) -> Any:
    """``on_unrevealed``: a hidden roll of this round cannot be shown; its player will lose a die."""
    public = lost.public
    round_ = public.payload.get("round") if public is not None and isinstance(public.payload, dict) else None
    if state["phase"] != "called" or round_ != state["round"] or lost.author not in state["rolled"]:
        return state  # a roll of a round that is over
    if lost.author in state["dice"] or lost.author in state["lost"]:
        return state
    return {**state, "lost": [*state["lost"], lost.author]}


def can_reveal(state: Any) -> bool:
    """Every hidden roll is shown once somebody calls liar."""
    return bool(state["phase"] == "called")


def table_initial(turn_seconds: float = TURN_SECONDS, dice: int = DICE) -> dict[str, Any]:
    """A new table: ``dice`` dice per player, ``turn_seconds`` per turn."""
    return {
        "phase": "joining",
        "players": [],
        "names": {},
        "left": {},
        "round": 0,
        "rolled": [],
        "dice": {},
        "lost": [],
        "bid": None,
        "caller": None,
        "called_at": None,
        "turn": None,
        "starter": None,
        "until": None,
        "last": None,
        "winner": None,
        "timeouts": 0,
        "timed_out": None,
        "turn_seconds": turn_seconds,
        "dice_each": dice,
    }


Table = mx.ResourceType(
    "liars-dice",
    table,
    initial=table_initial(),
    can_reveal=can_reveal,
    on_deadline=time_up,
    reveal_timeout=REVEAL_TIMEOUT,
    on_unrevealed=lost_roll,
    private="sealed",
)


# -- what the screen shows ---------------------------------------------------------------------------


def bid_text(bid: Any) -> str:
    return f"{bid['quantity']} x {bid['face']}"


def reveal_line(last: Any, names: dict[str, str], left: dict[str, int], *, timing: bool = True) -> str:
    """One line about a settled round (``timing``: how long after the call it was settled, master clock)."""
    dice = ", ".join(f"{names[p]} {''.join(map(str, d))}" for p, d in last["dice"].items())
    bid = last["bid"]
    if last["lost"]:
        verdict = f"dice of {', '.join(names[p] for p in last['lost'])} lost, not judged"
    else:
        verdict = f"{last['count']} showing"
    losers = " and ".join(names[p] for p in last["losers"]) or "nobody (the round is void)"
    counts = ", ".join(f"{names[p]} {n}" for p, n in left.items())
    took = "" if last["took"] is None or not timing else f"; settled {last['took']:.2f} s after the call"
    return (
        f"round {last['round']}: {names[last['caller']]} called liar on {names[bid['by']]}'s {bid_text(bid)}; "
        f"dice: {dice}; {verdict} -> {losers} loses a die ({counts}){took}"
    )


class Narrator:
    """Turns every change of the table into lines: bids, calls, timeouts, reveals, the winner."""

    def __init__(self, out: Callable[[str], None], *, timing: bool = True) -> None:
        self.out, self.timing = out, timing
        self.bid: Any = None
        self.called = 0
        self.shown = 0
        self.timeouts = 0
        self.reveals: list[str] = []
        self.winner: str | None = None

    def __call__(self, state: Any) -> None:
        names = state["names"]
        if state["timeouts"] > self.timeouts:
            self.timeouts = state["timeouts"]
            if state["timed_out"] is not None:
                self.out(f"round {state['round']}: {names[state['timed_out']]} ran out of time")
        last = state["last"]
        if last is not None and last["round"] > self.called:  # a call seen only with its outcome
            self.called = last["round"]
            self.out(f"round {last['round']}: {names[last['caller']]} calls liar")
        if last is not None and last["round"] > self.shown:
            self.shown = last["round"]
            self.reveals.append(reveal_line(last, names, state["left"], timing=self.timing))
            self.out(self.reveals[-1])
        if state["bid"] is not None and state["bid"] != self.bid:
            self.out(f"round {state['round']}: {names[state['bid']['by']]} bids {bid_text(state['bid'])}")
        self.bid = state["bid"]
        if state["phase"] == "called" and state["round"] > self.called:
            self.called = state["round"]
            self.out(f"round {state['round']}: {names[state['caller']]} calls liar")
        if state["phase"] == "over" and self.winner is None:
            self.winner = names[state["winner"]]
            self.out(f"winner: {self.winner}")


# -- a player ------------------------------------------------------------------------------------------


class Seat:
    """One peer at the table."""

    def __init__(self, peer: mx.Peer, table: mx.Resource) -> None:
        self.peer, self.table = peer, table

    @classmethod
    async def take(cls, peer: mx.Peer, *, turn_seconds: float = TURN_SECONDS, dice: int = DICE) -> Seat:
        """Bind the table (creating it if first) and, for a player, join it (once)."""
        await peer.wait_ready()
        while peer.role == "spectator" and Table.rid("main") not in peer.rids:  # noqa: ASYNC110
            await anyio.sleep(0.05)  # a spectator creates nothing: it waits for a player's table
        table = await peer.bind(await peer.create(Table, table_initial(turn_seconds, dice), id="main"))
        if peer.role != "spectator" and peer.id not in table.state["players"]:
            await table.dispatch(mx.Action("join", {"name": peer.name}))
        return cls(peer, table)

    @property
    def dice(self) -> list[int]:
        """My dice this round (my private view; empty before my roll, or if my roll was lost)."""
        return list(self.table.state["dice"].get(self.peer.id, []))

    @property
    def must_roll(self) -> bool:
        state = self.table.state
        return state["phase"] == "rolling" and self.peer.id in live(state) and self.peer.id not in state["rolled"]

    @property
    def my_turn(self) -> bool:
        state = self.table.state
        return bool(state["phase"] == "bidding" and state["turn"] == self.peer.id)

    def _until(self) -> dict[str, Any]:
        return {"until": mx.master.deadline(self.table.state["turn_seconds"])}

    async def start(self) -> None:
        await self.table.dispatch(mx.Action("start", self._until()))

    async def roll(self) -> None:
        """Roll my dice in secret: fair private draws, only I see them until a call (the master neither)."""
        state = self.table.state
        dice = [mx.fair.random_int(1, 6) for _ in range(state["left"][self.peer.id])]
        await self.table.dispatch_private(
            mx.Action("roll", {"round": state["round"], "dice": dice}),
            mx.Action("rolled", {"round": state["round"], **self._until()}),
        )

    async def bid(self, quantity: int, face: int) -> None:
        await self.table.dispatch(mx.Action("bid", {"quantity": quantity, "face": face, **self._until()}))

    async def call(self) -> None:
        await self.table.dispatch(mx.Action("liar", {"at": mx.master.now()}))

    async def settle(self) -> None:
        """Once every die is face up, settle the round (any player may; the first one counts)."""
        state = self.table.state
        if revealed(state) and self.peer.role != "spectator":
            payload = {"round": state["round"], "at": mx.master.now(), **self._until()}
            await self.table.dispatch(mx.Action("settle", payload))


def choose(state: Any, mine: list[int], rng: random.Random) -> tuple[int, int] | None:
    """A bot's move: a bid (quantity, face), or None to call liar."""
    total = in_play(state)
    unknown = total - len(mine)

    def expected(face: int) -> float:
        return matching(mine, face) + unknown * (1 / 6 if face == 1 else 1 / 3)

    bid = state["bid"]
    if bid is not None and bid["quantity"] > expected(bid["face"]) + rng.choice([0.5, 1.0, 1.5]):
        return None
    options = []
    for face in range(1, 7):
        quantity = 1 if bid is None else bid["quantity"] + (0 if face > bid["face"] else 1)
        if quantity <= total:
            options.append((expected(face) - quantity + rng.random(), quantity, face))
    if not options:
        return None
    _, quantity, face = max(options)
    return quantity, face


async def wait_until(res: mx.Resource, predicate: Callable[[Any], bool]) -> Any:
    """Wait until ``predicate(view)`` holds; return that view."""
    async for state in res.updates():
        if predicate(state):
            return state
    raise mx.ResourceNotFound("the table was removed", rid=res.rid)


async def bot(
    seat: Seat, rng: random.Random, *, start_at: int = 0, think: float = 0.0, doze: bool = False, in_order: bool = False
) -> str:
    """Play by itself until the game is over; return the winner's name.

    ``start_at``: start the game once that many players joined (0: wait for someone to).
    ``think``: seconds to wait before each move. ``doze``: stay silent on the first turn.
    ``in_order``: roll after the players before me in seat order, and settle only my own calls,
    so that the same seed draws the same dice (a replayable game; not for the LAN,
    where a player who is gone would hold the others up).
    """
    me = seat.peer.id
    if start_at:
        await wait_until(seat.table, lambda s: len(s["players"]) >= start_at or s["phase"] != "joining")
        await seat.start()
    async for state in seat.table.updates():
        if state["phase"] == "over":
            return str(state["names"][state["winner"]])
        try:
            if seat.must_roll:
                before = live(state)[: live(state).index(me)]
                if not in_order or all(p in state["rolled"] for p in before):
                    await seat.roll()
            elif revealed(state):
                if not in_order or state["caller"] == me:
                    await seat.settle()
            elif seat.my_turn:
                if doze:
                    doze = False

                    def skipped(now: Any, before: int = state["timeouts"]) -> bool:
                        return bool(now["timeouts"] > before)

                    await wait_until(seat.table, skipped)  # my turn timer runs out
                    continue
                await anyio.sleep(think)
                now = seat.table.state
                if now["phase"] != "bidding" or now["turn"] != seat.peer.id:
                    continue
                move = choose(now, seat.dice, rng)
                if move is None:
                    await seat.call()
                else:
                    await seat.bid(*move)
        except mx.ActionRejected:  # the table moved on meanwhile (a timer, a master change): look again
            await anyio.sleep(0.05)
    raise mx.ResourceNotFound("the table was removed", rid=seat.table.rid)


# -- in one process: bots and a spectator ------------------------------------------------------------------


async def local_game(players: int, seed: int, turn_seconds: float) -> dict[str, Any]:
    """Bots play a whole game on an in-process network; the last player dozes off on its first turn."""
    network = mx.LocalNetwork()
    rng = random.Random(seed)
    names = NAMES[:players]
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        print(f"[watcher] {line}", flush=True)

    narrator = Narrator(say, timing=False)  # the same seed prints the same lines

    def peer(name: str, index: int, role: mx.presence.Role = "player") -> mx.Peer:
        # seed=: the peers' keys and the master's draws come from it, so a seed replays a game
        return mx.Peer(room=ROOM, types=[Table], name=name, transport=network, role=role, seed=seed * 10 + index)

    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(peer(names[0], 0))
        seats = [await Seat.take(first, turn_seconds=turn_seconds)]
        watcher = await Seat.take(await stack.enter_async_context(peer("watcher", 9, "spectator")))
        watcher.table.on_update(narrator)
        for index, name in enumerate(names[1:], 1):
            seats.append(await Seat.take(await stack.enter_async_context(peer(name, index))))
        winners: list[str] = []

        async def play(seat: Seat, bot_rng: random.Random, doze: bool) -> None:
            winners.append(
                await bot(seat, bot_rng, start_at=players if seat is seats[0] else 0, doze=doze, in_order=True)
            )

        async with anyio.create_task_group() as tg:
            for seat in seats:
                tg.start_soon(play, seat, random.Random(rng.random()), seat is seats[-1])
        final = await wait_until(watcher.table, lambda s: s["phase"] == "over")
        await anyio.sleep(0.1)  # let the last entries reach everyone
        checksums = {s.table.checksum for s in [watcher, *seats]}
    return {
        "winner": narrator.winner,
        "winners_seen": sorted(set(winners)),
        "rounds": final["round"],
        "winner_dice": final["left"][final["winner"]],
        "dice": players * final["dice_each"],
        "reveals": narrator.reveals,
        "timeouts": final["timeouts"],
        "checksums_equal": len(checksums) == 1,
    }


# -- on the LAN, from a terminal ---------------------------------------------------------------------------


async def pick_room(args: argparse.Namespace) -> str:
    """The lobby: list the rooms on the LAN; join the first liar's dice room (or open one)."""
    rooms = await mx.browse_rooms(interfaces=args.interface or None, wait=args.browse_seconds)
    for room in rooms:
        print(f"room {room.room}: {room.players} playing ({', '.join(room.names)}), {room.spectators} watching")
    ours = [r.room for r in rooms if r.room.startswith(ROOM)]
    print(f"* joining {ours[0] if ours else ROOM}", flush=True)
    return ours[0] if ours else ROOM


async def lan_game(args: argparse.Namespace) -> int:
    role: mx.presence.Role = "spectator" if args.spectate else "player"
    room = args.room or await pick_room(args)
    key = args.identity or str(Path(tempfile.gettempdir()) / f"movex-liars-dice-{args.name}.key")
    async with mx.Peer(
        room=room,
        types=[Table],
        name=args.name,
        secret=args.secret,
        transport=mx.LanTransport(interfaces=args.interface or None),
        identity=mx.Identity.load_or_create(key),
        role=role,
    ) as peer:
        peer.on_peer_joined(lambda info: print(f"* {info.name} joined ({info.role})", flush=True))
        peer.on_peer_left(lambda info, reason: print(f"* {info.name} {reason}", flush=True))
        peer.on_diagnostic(lambda d: print(f"! {d.kind}: {d.reason}", flush=True))

        def master_changed(master: str | None, term: int) -> None:
            info = peer.members.get(master or "")
            print(f"* master: {info.name if info else master} (term {term})", flush=True)

        peer.on_master_changed(master_changed)
        try:
            seat = await Seat.take(peer, turn_seconds=args.turn_seconds, dice=args.dice)
        except mx.AuthenticationFailed as exc:
            print(f"{exc} (--secret)", file=sys.stderr)
            return 2
        except mx.IncompatibleType as exc:  # another build of this game (other rules) holds the table
            print(exc, file=sys.stderr)
            return 2
        print(f"you are {peer.name} ({peer.id}){' watching' if args.spectate else ''}; key {key}", flush=True)
        master_changed(peer.master_id, peer.term)
        seat.table.on_update(Narrator(lambda line: print(line, flush=True)))
        async with anyio.create_task_group() as tg:
            if args.bot and not args.spectate:
                await bot(seat, random.Random(), start_at=args.players, think=args.think)
            else:
                if not args.spectate:  # a spectator types nothing: it leaves when the game is over (or on Ctrl-C)
                    tg.start_soon(read_commands, seat, tg.cancel_scope)
                await show_table(seat)
                if not args.spectate:
                    print("the game is over: press Enter to leave", flush=True)
            tg.cancel_scope.cancel()
    return 0


async def read_commands(seat: Seat, scope: anyio.CancelScope) -> None:
    """Typed commands, one a line: ``s`` start, ``Q F`` bid, ``l`` liar, ``q`` (or end of input) leave."""
    while line := await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True):
        words = line.split()
        try:
            if words == ["q"]:
                break
            if words == ["s"]:
                await seat.start()
            elif words == ["l"]:
                await seat.call()
            elif len(words) == 2 and all(w.isdigit() for w in words):
                await seat.bid(int(words[0]), int(words[1]))
            elif words:
                print("! s: start, Q F: bid Q dice of face F, l: liar, q: quit", flush=True)
        except mx.ActionRejected as exc:
            print(f"! {exc.reason}", flush=True)
    scope.cancel()


async def show_table(seat: Seat) -> None:
    """Roll, settle and show my dice and whose turn it is, until the game is over."""
    shown = ""
    async for state in seat.table.updates():
        if state["phase"] == "over":
            return
        try:
            if seat.must_roll:
                await seat.roll()
            await seat.settle()
        except mx.ActionRejected:
            pass
        if seat.peer.role == "spectator":
            continue
        if state["phase"] == "joining":
            text = f"waiting: {', '.join(state['names'].values())}; 's' starts"
        elif state["phase"] == "bidding":
            whose = (
                "your turn: 'Q F' bids, 'l' calls liar" if seat.my_turn else f"{state['names'][state['turn']]}'s turn"
            )
            text = f"your dice: {' '.join(map(str, seat.dice)) or '?'}; {whose}"
        else:
            text = ""
        if text and text != shown:
            shown = text
            print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Liar's dice with hidden rolls, on movex_p2p.")
    parser.add_argument("--local", type=int, metavar="N", help="N bot players (2-6) in this process, then exit")
    parser.add_argument("--seed", type=int, default=1, help="--local: the seed of the bots and of the dice")
    parser.add_argument("--name", default="player", help="your name at the table")
    parser.add_argument("--room", default=None, help="room name (LAN); without it: pick from the rooms found")
    parser.add_argument("--browse-seconds", type=float, default=1.0, help="how long the lobby listens (LAN)")
    parser.add_argument("--secret", default=None, help="room secret (LAN)")
    parser.add_argument("--interface", action="append", default=None, metavar="ADDR", help="IPv4 address (LAN)")
    parser.add_argument("--spectate", action="store_true", help="watch: never master, not a player")
    parser.add_argument("--bot", action="store_true", help="play by yourself")
    parser.add_argument("--think", type=float, default=1.0, help="--bot: seconds before each bid")
    parser.add_argument("--players", type=int, default=2, help="--bot: start once this many players joined")
    parser.add_argument("--dice", type=int, default=DICE, help="dice per player (set by whoever opens the table)")
    parser.add_argument("--turn-seconds", type=float, default=None, help=f"a turn's timer (default {TURN_SECONDS:g})")
    parser.add_argument("--identity", default=None, metavar="FILE", help="your key file (default: per name, in tmp)")
    args = parser.parse_args(argv)
    if args.local is not None:
        if not 2 <= args.local <= MAX_PLAYERS:
            parser.error(f"--local takes 2 to {MAX_PLAYERS} players")
        summary = anyio.run(local_game, args.local, args.seed, args.turn_seconds or 1.0)
        print(json.dumps(summary), flush=True)
        return 0 if summary["checksums_equal"] and summary["winner"] is not None else 1
    args.turn_seconds = args.turn_seconds or TURN_SECONDS
    return anyio.run(lan_game, args)


if __name__ == "__main__":
    sys.exit(main())
