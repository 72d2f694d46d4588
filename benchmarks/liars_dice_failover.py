"""examples/liars_dice.py on the real stack, the master SIGKILLed mid-round, N times.

Each run (movex_p2p.testing.liars_dice_bed) starts three bot players and a spectator as processes in a
fresh private network namespace (``unshare -rn``: nothing leaves the machine), SIGKILLs the
master's process at the first bid of round 2 and starts it again with the same identity file,
and plays the game to its winner. Per run: the seconds from each call to its settle (master
clock; the killed master's round waits for its lost roll, at most ``reveal_timeout``), stuck
actions, and whether the round the master died in ended within ``reveal_timeout`` + 1 s.

    python benchmarks/liars_dice_failover.py --runs 20
    python benchmarks/liars_dice_failover.py --runs 3 --json liars-dice.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio

from movex_p2p.testing.liars_dice_bed import BOUND, DiceRun, dice_run
from movex_p2p.testing.netns import cannot_run, open_namespace


async def main(args: argparse.Namespace) -> int:
    if (why := cannot_run()) is not None:
        print(why)
        return 2
    runs: list[DiceRun] = []
    for n in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="movex-dice-keys-") as keys:
            try:
                async with open_namespace() as ns:
                    run = await dice_run(ns, Path(keys))
            except (TimeoutError, AssertionError) as exc:  # a process died or a line never came: stuck
                run = DiceRun(problems=[f"{type(exc).__name__}: {exc}"])
        runs.append(run)
        verdict = "ok" if run.ok else f"FAILED {run.problems} stuck={run.stuck}"
        print(
            f"run {n + 1}/{args.runs}: master {run.killed} killed; its round settled "
            f"{run.kill_round_time:.2f} s after the call ({run.seen_call_to_settle:.2f} s on the spectator's screen, "
            f"{run.kill_to_settle:.2f} s after the kill; other rounds max "
            f"{max((t for r, t in run.settle_times.items() if r != run.kill_round), default=0):.2f} s); "
            f"winner {run.winner or '-'}; game {run.elapsed:.1f} s; {verdict}",
            flush=True,
        )
    killed_rounds = [r.kill_round_time for r in runs]
    summary: dict[str, Any] = {
        "runs": len(runs),
        "ok": sum(r.ok for r in runs),
        "stuck_runs": sum(1 for r in runs if r.stuck or not r.winner),
        "kill_round_p50_s": round(statistics.median(killed_rounds), 2),
        "kill_round_max_s": round(max(killed_rounds), 2),
        "bound_s": BOUND,
        "within_bound": sum(1 for r in runs if max(r.kill_round_time, r.seen_call_to_settle) <= BOUND),
        "seen_call_to_settle_max_s": round(max(r.seen_call_to_settle for r in runs), 2),
        "kill_to_settle_p50_s": round(statistics.median(r.kill_to_settle for r in runs), 2),
        "kill_to_settle_max_s": round(max(r.kill_to_settle for r in runs), 2),
        "roll_lost_and_on_unrevealed_ran": sum(r.kill_round_lost for r in runs),
        "aiortc_shutdown_tracebacks": sum(len(r.aiortc_noise) for r in runs),
        "game_p50_s": round(statistics.median(r.elapsed for r in runs), 1),
    }
    print(json.dumps(summary))
    if args.json:
        await anyio.Path(args.json).write_text(json.dumps({"summary": summary, "runs": [vars(r) for r in runs]}))
    return 0 if summary["ok"] == len(runs) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", default=None)
    sys.exit(anyio.run(main, parser.parse_args()))
