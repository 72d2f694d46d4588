"""examples/pygame_game.py runs headless: two bot players on one in-process network agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "pygame_game.py"


def test_two_headless_bots_end_with_the_same_board() -> None:
    pytest.importorskip("pygame")
    env = {
        **os.environ,
        "SDL_VIDEODRIVER": "dummy",
        "SDL_AUDIODRIVER": "dummy",
        "PYTHONPATH": str(ROOT / "src"),
    }
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--headless", "--bot", "--local-pair", "--frames", "120", "--fps", "60"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["agree"] is True
    assert summary["checksums"][0] == summary["checksums"][1]
    assert summary["tokens"][0] == summary["tokens"][1]
    assert set(summary["tokens"][0]) == {"alice", "bob"}
    assert summary["round"] >= 1, "the hidden picks were revealed and at least one round finished"
