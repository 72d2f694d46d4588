"""Every example runs as a script, exits 0 quickly and prints its key line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import liars_dice as ld  # examples/ is on pytest's pythonpath (pyproject.toml)
import pytest

import movex_p2p as mx

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    ("name", "key_line"),
    [
        ("counter.py", "all peers agree: count=19"),
        ("chat.py", "cy left; subscribers: ['ana', 'ben']"),
        ("rps.py", "winner: A"),
    ],
)
def test_example_runs(name: str, key_line: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert key_line in result.stdout.splitlines()
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("players", [2, 4, 6])
def test_cards_bots_play_a_whole_game_with_a_crash_and_a_comeback(players: int) -> None:
    """examples/cards.py --local: hidden hands, turns by author, a spectator sees every reveal."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "cards.py"), "--local", str(players), "--seed", str(players)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["same_id"]
    assert summary["hand_restored"]
    assert summary["checksums_equal"]
    assert summary["rounds"] == 5
    assert sum(summary["scores"].values()) == 5
    assert len(summary["scores"]) == players
    assert len(summary["reveals"]) == 5
    assert "Traceback" not in result.stderr


def run_liars_dice(players: int, seed: int) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "liars_dice.py"), "--local", str(players), "--seed", str(seed)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    return result, json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("players", [2, 4, 6])
def test_liars_dice_bots_play_to_a_winner_and_the_spectator_sees_every_reveal(players: int) -> None:
    """examples/liars_dice.py --local: hidden rolls, bids in turn, a turn timer, a spectator."""
    result, summary = run_liars_dice(players, players)
    lines = result.stdout.splitlines()
    assert f"[watcher] winner: {summary['winner']}" in lines
    assert summary["winners_seen"] == [summary["winner"]]  # every bot saw the same end
    assert summary["checksums_equal"]
    assert summary["timeouts"] >= 1  # the dozing bot's turn timer ran out (on_deadline)
    assert any(line.endswith("ran out of time") for line in lines)
    # one die is lost per round: every round was called, revealed and settled
    assert summary["rounds"] + summary["winner_dice"] == summary["dice"] == 5 * players
    reveals = summary["reveals"]
    assert [r.split(":")[0] for r in reveals] == [f"round {n}" for n in range(1, summary["rounds"] + 1)]
    for reveal in reveals:  # every player still in the round shows its dice (no roll lost)
        dice = reveal.split("; dice: ")[1].split(";")[0].split(", ")
        assert all(part.split(" ")[1].isdigit() for part in dice), reveal
    assert "lost" not in " ".join(reveals)


def test_liars_dice_replays_from_its_seed() -> None:
    """The same --seed: the same dice, bids, calls and winner (the bots roll in seat order)."""
    _, first = run_liars_dice(3, 5)
    _, again = run_liars_dice(3, 5)
    assert first == again


# -- examples/liars_dice.py's rules, called directly (pure functions) ----------------------------


def dice_table(rolled: dict[str, list[int]]) -> dict[str, Any]:
    """A liar's dice table of ann, bob and cy (5 dice each) in round 1, after ``rolled``'s rolls."""
    until = mx.Deadline.at(100.0)
    state: dict[str, Any] = ld.table_initial()
    for who in ("ann", "bob", "cy"):
        state = ld.table(state, mx.Action("join", {"name": who}).by(who))
    state = ld.table(state, mx.Action("start", {"until": until}).by("ann"))
    for who, dice in rolled.items():
        state = ld.table(state, mx.Action("rolled", {"round": 1, "until": until}).by(who))
        state = ld.table(state, mx.Action("roll", {"round": 1, "dice": dice}).by(who))
    return state


def test_liars_dice_rules_a_bid_must_raise_and_only_in_turn() -> None:
    state = dice_table({"ann": [1, 2, 3, 4, 5], "bob": [2, 2, 2, 6, 6], "cy": [3, 3, 5, 5, 6]})
    assert state["phase"] == "bidding"
    assert state["turn"] == "ann"
    until = {"until": mx.Deadline.at(100.0)}
    with pytest.raises(ValueError, match="not your turn"):
        ld.table(state, mx.Action("bid", {"quantity": 2, "face": 3, **until}).by("bob"))
    state = ld.table(state, mx.Action("bid", {"quantity": 4, "face": 2, **until}).by("ann"))
    with pytest.raises(ValueError, match="raise"):
        ld.table(state, mx.Action("bid", {"quantity": 4, "face": 2, **until}).by("bob"))
    state = ld.table(state, mx.Action("bid", {"quantity": 4, "face": 5, **until}).by("bob"))
    state = ld.table(state, mx.Action("liar", {"at": 10.0}).by("cy"))
    assert ld.can_reveal(state)
    assert ld.revealed(state)
    state = ld.table(state, mx.Action("settle", {"round": 1, "at": 10.5, **until}).by("ann"))
    # fives, ones wild: ann 1 and 5, cy 5 and 5: 4 >= 4, so the caller loses a die
    assert state["last"]["count"] == 4
    assert state["last"]["losers"] == ["cy"]
    assert state["last"]["took"] == 0.5
    assert state["left"] == {"ann": 5, "bob": 5, "cy": 4}
    assert (state["phase"], state["round"], state["starter"]) == ("rolling", 2, "cy")


def test_liars_dice_rules_a_lost_roll_costs_its_player_a_die_and_the_call_is_not_judged() -> None:
    state = dice_table({"ann": [6, 6, 6, 6, 6], "bob": [2, 2, 2, 2, 2], "cy": [3, 3, 3, 3, 3]})
    until = {"until": mx.Deadline.at(100.0)}
    state = ld.table(state, mx.Action("bid", {"quantity": 5, "face": 6, **until}).by("ann"))
    state = ld.table(state, mx.Action("liar", {"at": 10.0}).by("bob"))
    state = {**state, "dice": {p: d for p, d in state["dice"].items() if p != "ann"}}  # ann's roll never revealed
    assert not ld.revealed(state)
    stale = ld.lost_roll(state, mx.Unrevealed("ann", 3, mx.Action("rolled", {"round": 0})))
    assert stale is state  # a roll of an earlier round changes nothing
    state = ld.lost_roll(state, mx.Unrevealed("ann", 4, mx.Action("rolled", {"round": 1})))
    assert ld.revealed(state)
    state = ld.table(state, mx.Action("settle", {"round": 1, "at": 15.0, **until}).by("cy"))
    assert state["last"]["losers"] == ["ann"]
    assert state["last"]["lost"] == ["ann"]
    assert state["left"] == {"ann": 4, "bob": 5, "cy": 5}  # bob's call on a true bid would have cost him


def test_liars_dice_rules_the_timer_skips_a_silent_bidder_and_fines_a_missing_roll() -> None:
    state = dice_table({"ann": [1, 1, 1, 1, 1], "bob": [2, 2, 2, 2, 2]})  # cy never rolls
    assert state["phase"] == "rolling"
    state = ld.time_up(state, 50.0)
    assert state["left"]["cy"] == 4
    assert state["rolled"] == ["ann", "bob"]
    assert (state["phase"], state["turn"], state["timed_out"]) == ("bidding", "ann", "cy")
    assert mx.Deadline.of(state["until"]) == 50.0 + ld.TURN_SECONDS
    state = ld.time_up(state, 60.0)  # ann says nothing: bob bids next
    assert (state["turn"], state["bid"], state["timeouts"]) == ("bob", None, 2)
    with pytest.raises(ValueError, match="no roll expected"):
        ld.table(state, mx.Action("rolled", {"round": 1, "until": mx.Deadline.at(1.0)}).by("cy"))


def test_liars_dice_rules_a_stalled_table_fines_nobody_and_a_void_round_ends_no_game() -> None:
    state = ld.time_up(dice_table({}), 50.0)  # nobody rolled in time: nobody is fined, the timer runs again
    assert state["left"] == {"ann": 5, "bob": 5, "cy": 5}
    assert state["phase"] == "rolling"
    assert mx.Deadline.of(state["until"]) == 50.0 + ld.TURN_SECONDS
    last = dice_table({"ann": [6], "bob": [2]})  # one die each, cy out: both rolls lost at the call
    last = {**last, "left": {"ann": 1, "bob": 1, "cy": 0}}
    last = {**last, "phase": "called", "caller": "bob", "bid": {"by": "ann", "quantity": 1, "face": 6}}
    last = {**last, "rolled": ["ann", "bob"], "dice": {}, "lost": ["ann", "bob"]}
    state = ld.table(last, mx.Action("settle", {"round": 1, "until": mx.Deadline.at(1.0)}).by("ann"))
    assert state["left"] == {"ann": 1, "bob": 1, "cy": 0}  # void: nobody loses, the game goes on
    assert state["phase"] == "rolling"
    assert state["last"]["losers"] == []


async def test_cards_a_card_typed_while_the_hand_is_dealt_waits(capsys: pytest.CaptureFixture[str]) -> None:
    """A card played while the hand is still being drawn would be drawn again (the deal tops the hand up)."""
    import cards

    played: list[int] = []

    class Seat:
        hand, cards, my_turn, dealing = object(), [7, 12, 40], True, True

        async def play(self, card: int) -> None:
            played.append(card)

        async def settle(self) -> None:
            pass

    seat = Seat()
    await cards.command(seat, "1")  # type: ignore[arg-type]
    assert played == []
    assert "! wait: your hand is still being dealt" in capsys.readouterr().out
    seat.dealing = False
    await cards.command(seat, "1")  # type: ignore[arg-type]
    assert played == [7]
