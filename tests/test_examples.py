"""Every example runs as a script, exits 0 quickly and prints its key line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
