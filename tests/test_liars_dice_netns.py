"""examples/liars_dice.py on the real stack: the master's process SIGKILLed mid-round and started
again with the same identity; the round ends within ``reveal_timeout`` + 1 s and none is stuck.
Run with ``-s`` to print the figures; ``python benchmarks/liars_dice_failover.py --runs 20`` repeats it."""

from __future__ import annotations

from pathlib import Path

import pytest

from movex_p2p.testing.liars_dice_bed import BOUND, dice_run
from movex_p2p.testing.netns import open_namespace

pytestmark = pytest.mark.netns


@pytest.mark.timeout(300)
async def test_liars_dice_master_killed_mid_round_and_back_with_its_identity(tmp_path: Path) -> None:
    async with open_namespace() as ns:
        run = await dice_run(ns, tmp_path)
    times = ", ".join(f"{r}: {t:.2f}" for r, t in sorted(run.settle_times.items()))
    print("\n" + "\n".join(line for line in run.lines if line.startswith(("round", "winner", "*"))))
    print(
        f"\nmaster {run.killed} killed at round {run.kill_round}; winner {run.winner}; "
        f"seconds from call to settle per round {{{times}}} (the kill round: {run.seen_call_to_settle:.2f} s "
        f"on the spectator's screen, {run.kill_to_settle:.2f} s after the kill); game {run.elapsed:.1f} s; "
        f"aiortc shutdown tracebacks in {run.aiortc_noise or 'none'}"
    )
    assert not run.problems, run.problems
    assert not run.stuck, run.stuck
    assert run.winner
    assert run.kill_round_lost, "the killed master's roll should be lost (on_unrevealed) at its round's reveal"
    assert run.kill_round_time <= BOUND, run.settle_times
    assert run.seen_call_to_settle <= BOUND, run.seen_call_to_settle
    assert max(run.settle_times.values()) <= BOUND, run.settle_times
