"""examples/pygame_game.py runs headless: two bot players on one in-process network agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
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


@pytest.mark.netns
async def test_the_lobby_lists_the_rooms_on_the_lan_and_joins_one() -> None:
    """examples/pygame_game.py --lobby, headless, in a private namespace: it lists the room a peer runs and joins it."""
    pytest.importorskip("pygame")
    from movex_p2p.testing.netns import open_namespace

    async with open_namespace() as ns:
        game = [str(EXAMPLE), "--headless", "--bot", "--interface", "127.0.0.2"]
        host = await ns.spawn([*game, "--name", "ann", "--room", "castle"], name="ann")  # plays until killed
        await host.wait_for(lambda e: "master is now" in e.get("line", ""), within=30)
        player = await ns.spawn([*game, "--lobby", "--frames", "60", "--name", "bob"], name="bob")
        with anyio.fail_after(60):
            await player.process.wait()
        assert player.process.returncode == 0, player.stderr()
        lobby = next(e for e in player.events if "lobby" in e)
        assert lobby == {"lobby": [["castle", 1, ["ann"]]], "joining": "castle"}
        summary = next(e for e in player.events if "checksum" in e)
        assert summary["room"] == "castle"
        assert summary["members"] == ["ann", "bob"]
