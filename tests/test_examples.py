"""Every example runs as a script, exits 0 quickly and prints its key line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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
