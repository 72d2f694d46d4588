"""Fair draws: the latency a fair public draw adds to an action, against a master draw (in process).

N ``mx.Peer``s on one ``mx.LocalNetwork()`` (real codec, real node, Ed25519, no sockets). A peer
that is not the master dispatches one die roll at a time and waits for its confirmation,
alternating ``mx.master.random_int(1, 6)`` and ``mx.fair.random_int(1, 6)``; the difference of the
medians is what fairness adds (one more round trip between the master and every player: the
master's ``Drawing``, each player's ``Contribute``, then ``Drawn`` and the entry). Wall time
suffers when other processes share the CPUs (a step descheduled costs a time slice), so the CPU
time the process spent per roll (all four peers' work) is shown too: it does not depend on load.

``--separate-caches``: every peer checks every signature itself, as peers in separate processes
do (in one process they share ``proofs``' cache of verifications, so a signature the master
checked costs the others nothing). ``--ab-src DIR``: each run twice, in a fresh process, this
checkout's ``src`` and DIR's alternating (A/B in one run; the added CPU over a plain roll's, per
run and its median).

Run: python benchmarks/fair.py            (--help for --peers/--rolls/--runs)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import anyio
from core import local_room  # benchmarks/ is this script's path[0]

from movex_p2p import proofs
from movex_p2p.identity import KEY_SIZE
from movex_p2p.signing import Verifier
from movex_p2p.testing.rolls import Alternated, alternate, ms, public_roll
from movex_p2p.testing.types import Dice

SRC = Path(__file__).resolve().parent.parent / "src"


async def _latencies(n_peers: int, rolls: int, seed: int) -> Alternated:
    """Wall and CPU seconds of each roll (``plain``: master draws, ``drawn``: fair draws)."""
    async with local_room(Dice, n_peers, seed) as (peers, resources):
        author = next(res for peer, res in zip(peers, resources, strict=True) if not peer.is_master)
        with anyio.fail_after(120):
            timed = await alternate(rolls, 20, lambda _, drawn: public_roll(author, drawn))
        assert all(res.confirmed["count"] == timed.rolls for res in resources)
        assert len({res.checksum for res in resources}) == 1
        return timed


def _separate_caches() -> None:
    """Every verification done anew, by whichever peer asks (a benchmark's stand-in for separate processes)."""

    def valid(verifier: Verifier, proof: bytes, data: bytes) -> bool:
        return verifier.verify(proof[:KEY_SIZE], proof[KEY_SIZE:], data)

    proofs._valid = valid  # type: ignore[assignment]


def _one(args: argparse.Namespace, run: int) -> dict[str, float]:
    """One run's medians (ms): wall and CPU per roll of each kind."""
    timed = anyio.run(_latencies, args.peers, args.rolls, 100 * run)
    return {
        "plain": ms(timed.plain, 0.5),
        "drawn": ms(timed.drawn, 0.5),
        "plain_p99": ms(timed.plain, 0.99),
        "drawn_p99": ms(timed.drawn, 0.99),
        "plain_cpu": ms(timed.plain_cpu, 0.5),
        "drawn_cpu": ms(timed.drawn_cpu, 0.5),
    }


def _ab(args: argparse.Namespace) -> None:
    """Each run in a fresh process per tree, the trees alternating; the added CPU of each."""
    trees = {"this checkout": str(SRC), args.ab_src: args.ab_src}
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for run in range(args.runs):
        order = list(trees.items())
        for name, src in order if run % 2 == 0 else order[::-1]:
            command = [sys.executable, __file__, "--one", str(run), "--peers", str(args.peers)]
            command += ["--rolls", str(args.rolls)]
            if args.separate_caches:
                command.append("--separate-caches")
            env = {**os.environ, "PYTHONPATH": src}
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
            rows[name].append(json.loads(out.splitlines()[-1]))
            r = rows[name][-1]
            print(f"  run {run}, {name}: CPU per roll p50 {r['plain_cpu']:.2f} vs {r['drawn_cpu']:.2f} ms", flush=True)
    for name, results in rows.items():
        added = [r["drawn_cpu"] - r["plain_cpu"] for r in results]
        ratio = [a / r["plain_cpu"] for a, r in zip(added, results, strict=True)]
        print(
            f"{name}: added CPU per fair draw, p50, median of {args.runs} runs {statistics.median(added):.2f} ms "
            f"({', '.join(f'{a:.2f}' for a in added)}); added / a plain roll's CPU {statistics.median(ratio):.2f} "
            f"({', '.join(f'{x:.2f}' for x in ratio)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", type=int, default=4)
    parser.add_argument("--rolls", type=int, default=300, help="rolls of each kind per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--separate-caches", action="store_true", help="every peer verifies every signature itself")
    parser.add_argument("--ab-src", help="another checkout's src: its runs alternate with this one's")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # (--ab-src: one run, its medians as JSON)
    args = parser.parse_args()
    if args.separate_caches:
        _separate_caches()
    if args.one is not None:
        print(json.dumps(_one(args, args.one)))
        return
    caches = ", every peer verifying for itself" if args.separate_caches else ""
    print(f"{args.peers} peers on LocalNetwork, {args.rolls} rolls of each kind per run, one at a time{caches}")
    if args.ab_src:
        _ab(args)
        return
    added: list[float] = []
    added_cpu: list[float] = []
    for run in range(args.runs):
        r = _one(args, run)
        added.append(r["drawn"] - r["plain"])
        added_cpu.append(r["drawn_cpu"] - r["plain_cpu"])
        print(
            f"  run {run}: master draw p50 {r['plain']:.2f} ms p99 {r['plain_p99']:.2f} ms | "
            f"fair draw p50 {r['drawn']:.2f} ms p99 {r['drawn_p99']:.2f} ms | added p50 {added[-1]:.2f} ms | "
            f"CPU p50 {r['plain_cpu']:.2f} vs {r['drawn_cpu']:.2f} ms"
        )
    print(f"added latency of a fair draw, p50, median of {args.runs} runs: {statistics.median(added):.2f} ms")
    print(f"added CPU time of a fair draw (all {args.peers} peers), p50: {statistics.median(added_cpu):.2f} ms")


if __name__ == "__main__":
    main()
