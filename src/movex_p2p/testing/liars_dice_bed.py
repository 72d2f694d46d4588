"""examples/liars_dice.py on the real stack (mDNS + WebRTC), with its master SIGKILLed mid-round.

One run, in a namespace the caller opens (movex_p2p.testing.netns): three bot players (``--bot``, each
with an ``--identity`` file) and a spectator that finds the room through the lobby
(``mx.browse_rooms``, no ``--room``). When the spectator sees the first bid of round 2, the
master's process is SIGKILLed and started again with the same identity file. Its hidden roll
died with it, so at the next call the new master reveals the others' rolls and the table's
``on_unrevealed`` ends the round (the restarted player loses a die). Every round's settle is
stamped by the master's clock (``mx.master.now()``): the spectator prints "settled S s after
the call", which must stay within ``REVEAL_TIMEOUT`` + 1 s. Used by tests/test_liars_dice_netns.py
and benchmarks/liars_dice_failover.py.

:func:`loaded_run`: the same game whose first master runs modified code
(:mod:`movex_p2p.testing.loaded_dice`): it records every frame it gets and rewrites the draws or
reveals it sends; every process records its frames, for tests/test_liars_dice_netns.py to search.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from .. import wire
from ..identity import Identity
from ..resource import messages as rm
from .netns import Namespace, PeerProcess, example

REVEAL_TIMEOUT: float = example("liars_dice").REVEAL_TIMEOUT
"""examples/liars_dice.py's own (read from the example, so the two never disagree)."""
BOUND = REVEAL_TIMEOUT + 1.0
"""Each round must be settled within this many seconds of its call (master clock)."""
PLAYERS = ("ann", "bob", "cy")
SETTLED = re.compile(r"^round (\d+): .* settled (\d+\.\d+) s after the call$")


@dataclass
class DiceRun:
    """What one run measured."""

    killed: str = ""
    kill_round: int = 0
    winner: str = ""
    settle_times: dict[int, float] = field(default_factory=dict)  # round -> seconds from call to settle
    seen_call_to_settle: float = float("inf")  # the kill round, on the spectator's screen (this clock)
    kill_to_settle: float = float("inf")  # from the SIGKILL to the kill round's settle on the spectator's screen
    kill_round_lost: bool = False  # the killed master's roll was reported lost at that round's reveal
    stuck: list[str] = field(default_factory=list)  # "! stuck" lines, any process
    aiortc_noise: list[str] = field(default_factory=list)  # processes with aiortc's shutdown traceback (see below)
    problems: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    lines: list[str] = field(default_factory=list)  # what the spectator printed

    @property
    def kill_round_time(self) -> float:
        return self.settle_times.get(self.kill_round, float("inf"))

    @property
    def ok(self) -> bool:
        return (
            not self.problems
            and not self.stuck
            and bool(self.winner)
            and self.kill_round_lost
            and max(self.settle_times.values(), default=float("inf")) <= BOUND
            and self.seen_call_to_settle <= BOUND
        )


def text_lines(process: PeerProcess) -> list[str]:
    """What the example printed, one line each (it prints text: the bed keeps those as "garbage")."""
    return [str(e["line"]) for e in process.events if e.get("ev") == "garbage"]


def aiortc_shutdown_noise(errors: str) -> bool:
    """Every traceback in ``errors`` is aiortc's SCTP retransmission task failing on a DTLS
    transport already shut down while the process left ("Task exception was never retrieved ...
    RTCSctpTransport._transmit ... protocol is shutdown"): noise at exit, counted, not a failure."""
    tracebacks = errors.count("Traceback")
    return (
        tracebacks > 0
        and tracebacks == errors.count("Task exception was never retrieved")
        and errors.count("RTCSctpTransport._transmit") >= tracebacks
        and errors.count("protocol is shutdown") >= tracebacks
    )


async def printed(process: PeerProcess, pattern: str, *, within: float) -> str:
    """The first line ``process`` printed (so far or within ``within`` s) that matches ``pattern``."""
    regex = re.compile(pattern)
    event = await process.wait_for(lambda e: e.get("ev") == "garbage" and bool(regex.search(e["line"])), within=within)
    return str(event["line"])


async def dice_run(
    ns: Namespace, keys: Path, *, think: float = 0.3, turn_seconds: float = 3.0, dice: int = 2
) -> DiceRun:
    """One game of three bots and a spectator, the master SIGKILLed at round 2 and restarted."""
    result = DiceRun()
    started = time.monotonic()
    common = ["examples/liars_dice.py", "--interface", "127.0.0.2", "--turn-seconds", str(turn_seconds)]
    bot = [*common, "--room", "liars-dice", "--bot", "--players", "3", "--think", str(think), "--dice", str(dice)]

    def player(name: str) -> list[str]:
        return [*bot, "--name", name, "--identity", str(keys / f"{name}.key")]

    processes = {name: await ns.spawn(player(name), name=name) for name in PLAYERS}
    await printed(processes["ann"], r"^you are ann", within=60)
    eye = await ns.spawn([*common, "--spectate", "--name", "eye", "--identity", str(keys / "eye.key")], name="eye")
    joined = await printed(eye, r"^\* joining ", within=30)
    if joined != "* joining liars-dice":
        result.problems.append(f"the lobby did not find the room: {joined!r}")
    await printed(eye, r"^round 2: \w+ bids ", within=90)
    masters = [line for line in text_lines(eye) if line.startswith("* master: ")]
    result.killed = masters[-1].split()[2]
    result.kill_round = 2
    if result.killed not in processes:
        result.problems.append(f"the master is not a player: {masters[-1]!r}")
        return result
    killed_at = time.monotonic()
    processes[result.killed].kill()
    await processes[result.killed].process.wait()
    victim = await ns.spawn(player(result.killed), name=f"{result.killed}-again")
    await printed(eye, rf"^round {result.kill_round}: \w+ calls liar$", within=90)
    called_at = time.monotonic()
    await printed(eye, rf"^round {result.kill_round}: .* settled ", within=30)
    result.kill_to_settle = time.monotonic() - killed_at
    result.seen_call_to_settle = time.monotonic() - called_at
    winner = await printed(eye, r"^winner: ", within=120)
    result.winner = winner.split()[1]
    for process in [*processes.values(), victim]:
        if process is processes[result.killed]:
            continue
        with anyio.fail_after(30):
            await process.process.wait()
        if process.process.returncode != 0:
            result.problems.append(f"{process.name} exited with {process.process.returncode}: {process.stderr()}")
    for process in [*processes.values(), victim, eye]:
        result.stuck += [line for line in text_lines(process) if line.startswith("! stuck")]
        errors = process.stderr_path.read_text()
        if aiortc_shutdown_noise(errors):
            result.aiortc_noise.append(process.name)
        elif "Traceback" in errors:
            result.problems.append(f"{process.name}: {errors[-4000:]}")
    for line in text_lines(eye):
        match = SETTLED.match(line)
        if match:
            result.settle_times[int(match[1])] = float(match[2])
            if int(match[1]) == result.kill_round:
                result.kill_round_lost = f"dice of {result.killed} lost" in line
    rounds = sorted(result.settle_times)
    reveals = [line for line in text_lines(eye) if SETTLED.match(line)]
    left = (
        [int(n) for n in re.findall(r"\w+ (\d+)", reveals[-1].split(" loses a die (")[1].split(")")[0])]
        if reveals
        else []
    )
    # each round costs one die: the spectator saw rounds 1..n and, after the last, one player has dice
    if rounds != list(range(1, len(rounds) + 1)) or sum(left) + len(rounds) != len(PLAYERS) * dice:
        result.problems.append(f"the spectator did not see every round settled: {rounds}, dice left {left}")
    if sum(1 for n in left if n > 0) != 1:
        result.problems.append(f"the game ended with dice left {left}")
    result.elapsed = time.monotonic() - started
    result.lines = text_lines(eye)
    with anyio.move_on_after(30):
        await eye.process.wait()
    if eye.process.returncode != 0:
        result.problems.append(f"the spectator did not leave after the game (exit code {eye.process.returncode})")
    return result


# -- a master running modified code: it records every byte it gets and tries to load the dice -------

LOADED = "cy"
"""The dishonest player: it opens the room, so it is the first master."""
HONEST = ("ann", "bob")
REVEAL = re.compile(r"^round 1: .* dice: (?P<dice>[^;]*); (?P<verdict>[^;]*) -> ")


@dataclass
class Record:
    """One process's recorded frames (``movex_p2p.testing.loaded_dice --record``), decoded."""

    frames: list[tuple[float, str, str, bytes]]  # (time.monotonic(), "in" | "out", peer, bytes)

    @classmethod
    def read(cls, path: Path) -> Record:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return cls([(e["t"], e["dir"], e["peer"], bytes.fromhex(e["hex"])) for e in lines])

    def messages(self, direction: str) -> list[tuple[float, Any]]:
        return [(t, m) for t, d, _, data in self.frames if d == direction for m in wire.decode(data)]


@dataclass
class LoadedRun:
    """What a game with a dishonest master showed (round 1, through its reveal)."""

    attack: str
    nonces: dict[str, list[bytes]] = field(default_factory=dict)  # honest author -> its halves' nonces
    call: float = float("inf")  # when the loaded master sent the call's entry (its clock: the machine's)
    leaked: list[str] = field(default_factory=list)  # honest nonces in what the master got before the call
    opened_early: list[str] = field(default_factory=list)  # messages carrying halves it got before the call
    nonces_seen: int = 0  # honest nonces found in some process's received bytes (the search works)
    tampered: int = 0  # messages the loaded master rewrote
    rolled: dict[str, list[int]] = field(default_factory=dict)  # what each honest author saw at its confirmation
    reveals: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # honest peer -> round 1's dice shown
    lost: dict[str, list[str]] = field(default_factory=dict)  # honest peer -> names whose round 1 dice were lost
    diagnostics: dict[str, list[str]] = field(default_factory=dict)  # honest peer -> its "! kind: reason" lines
    masters: list[str] = field(default_factory=list)  # the masters each honest player saw, in turn
    own: list[int] = field(default_factory=list)  # the loaded master's own roll of round 1, as it saw it
    problems: list[str] = field(default_factory=list)
    elapsed: float = 0.0


def identity_id(path: Path) -> str:
    """The peer id of the identity in key file ``path``."""
    return str(Identity.load_or_create(str(path)).id)


async def loaded_run(ns: Namespace, keys: Path, attack: str, *, within: float = 45.0) -> LoadedRun:
    """Three bots, the first (``LOADED``) running ``movex_p2p.testing.loaded_dice --load attack``; every
    process records its frames. Played until each honest player printed round 1's reveal."""
    result = LoadedRun(attack)
    started = time.monotonic()
    game = ["--interface", "127.0.0.2", "--room", "liars-dice-loaded", "--bot", "--players", "3"]
    game += ["--think", "0.2", "--dice", "2", "--turn-seconds", "3"]

    def player(name: str, *load: str) -> list[str]:
        record = ["--record", str(keys / f"{name}.rec"), *load]
        return [
            "-m",
            "movex_p2p.testing.loaded_dice",
            *record,
            *game,
            "--name",
            name,
            "--identity",
            str(keys / f"{name}.key"),
        ]

    loaded = await ns.spawn(player(LOADED, "--load", attack), name=LOADED)
    await printed(loaded, rf"^\* master: {LOADED} ", within=30)
    honest = {name: await ns.spawn(player(name, "--election-timeout", "2"), name=name) for name in HONEST}
    for name, process in honest.items():
        try:
            await printed(process, r"^round 1: .* called liar on ", within=within)
        except TimeoutError:
            result.problems.append(f"{name} saw no reveal of round 1 within {within} s")
    for process in [loaded, *honest.values()]:
        process.kill()
        await process.process.wait()
    result.elapsed = time.monotonic() - started
    result.tampered = max(
        (int(line.split()[1]) for line in text_lines(loaded) if line.startswith("tampered ")), default=0
    )
    own = [line for line in text_lines(loaded) if line.startswith("rolled 1: ")]
    result.own = [int(d) for d in own[0].split(": ")[1].split()] if own else []
    ids = {name: identity_id(keys / f"{name}.key") for name in (LOADED, *HONEST)}
    records = {name: Record.read(keys / f"{name}.rec") for name in (LOADED, *HONEST)}
    for name, process in honest.items():
        lines = text_lines(process)
        masters = [line.split()[2] for line in lines if line.startswith("* master: ")]
        result.masters.append(f"{name}: {' -> '.join(dict.fromkeys(masters))}")
        if masters[:1] != [LOADED]:
            result.problems.append(f"{name}'s first master is not {LOADED} (the test needs it): {masters}")
        result.diagnostics[name] = [line for line in lines if line.startswith("! ")]
        rolled = [line for line in lines if line.startswith("rolled 1: ")]
        if rolled and rolled[0].split(": ")[1].strip():
            result.rolled[name] = [int(d) for d in rolled[0].split(": ")[1].split()]
        reveal = next((REVEAL.match(line) for line in lines if REVEAL.match(line)), None)
        if reveal is not None:
            shown = [item.split() for item in reveal["dice"].split(", ") if item]
            result.reveals[name] = {who: [int(d) for d in dice] for who, dice in shown}
            verdict = reveal["verdict"]
            result.lost[name] = (
                verdict[len("dice of ") : -len(" lost, not judged")].split(", ")
                if verdict.startswith("dice of ")
                else []
            )
        # the nonces of its sealed halves: in its openings (as master: in the reveal it publishes;
        # a "master" type's half: in its proposal)
        sent = [m for _, m in records[name].messages("out")]
        nonces = [h.nonce for m in sent if isinstance(m, rm.Open) for h in m.halves]
        nonces += [h.nonce for m in sent if isinstance(m, rm.Revealed) for h in m.actions if h.author == ids[name]]
        nonces += [m.nonce for m in sent if isinstance(m, rm.Propose) and m.nonce]
        result.nonces[name] = sorted({n for n in nonces if n})
    calls = [  # the call's proposal, or its entry as its master publishes it
        t
        for record in records.values()
        for t, m in record.messages("out")
        if isinstance(m, rm.Propose | rm.Applied) and m.action.type == "liar"
    ]
    result.call = min(calls, default=float("inf"))
    if not calls:
        result.problems.append("nobody called liar in round 1")
    got = records[LOADED].frames
    for name, nonces in result.nonces.items():
        for nonce in nonces:
            early = [t for t, d, _, data in got if d == "in" and t < result.call and nonce in data]
            if early:
                result.leaked.append(
                    f"{name}'s nonce {nonce.hex()} reached the master {result.call - early[0]:.2f} s before the call"
                )
            if any(d == "in" and nonce in data for record in records.values() for _, d, _, data in record.frames):
                result.nonces_seen += 1
    result.opened_early = [
        f"{type(m).__name__} at {t:.3f}"
        for t, m in records[LOADED].messages("in")
        if t < result.call and (isinstance(m, rm.Open) or (isinstance(m, rm.Propose) and m.private is not None))
    ]
    return result
