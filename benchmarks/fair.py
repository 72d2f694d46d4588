"""Fair draws: the latency a fair public draw adds to an action, against a master draw (in process).

N ``mx.Peer``s on one ``mx.LocalNetwork()`` (real codec, real node, Ed25519, no sockets). A peer
that is not the master dispatches one die roll at a time and waits for its confirmation,
alternating ``mx.master.random_int(1, 6)`` and ``mx.fair.random_int(1, 6)``; the difference of the
medians is what fairness adds (one more round trip between the master and every player: the
master's ``Drawing``, each player's ``Contribute``, then ``Drawn`` and the entry). Wall time
suffers when other processes share the CPUs (a step descheduled costs a time slice), so the CPU
time the process spent per roll (all four peers' work) is shown too: it does not depend on load.

Run: python benchmarks/fair.py            (--help for --peers/--rolls/--runs)
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import anyio
from core import local_room  # benchmarks/ is this script's path[0]

import movex_p2p as mx


def _roll(state: Any, action: mx.Action) -> Any:
    if action.type == "roll":
        return {"last": action.payload, "count": state["count"] + 1}
    return state


Dice = mx.ResourceType("bench_dice", initial={"last": None, "count": 0}, reducer=_roll)


Samples = tuple[list[float], list[float], list[float], list[float]]


async def _latencies(n_peers: int, rolls: int, seed: int) -> Samples:
    """Wall and CPU seconds of each roll: (master wall, fair wall, master CPU, fair CPU)."""
    async with local_room(Dice, n_peers, seed) as (peers, resources):
        author = next(res for peer, res in zip(peers, resources, strict=True) if not peer.is_master)
        master_times: list[float] = []
        fair_times: list[float] = []
        master_cpu: list[float] = []
        fair_cpu: list[float] = []
        with anyio.fail_after(120):
            for i in range(2 * rolls + 20):
                fair = i % 2 == 1
                die = mx.fair.random_int(1, 6) if fair else mx.master.random_int(1, 6)
                cpu = time.process_time()
                started = time.perf_counter()
                await author.dispatch(mx.Action("roll", {"die": die}))
                elapsed = time.perf_counter() - started
                cpu = time.process_time() - cpu
                if i >= 20:  # warm-up: the first rolls pay for imports and caches
                    (fair_times if fair else master_times).append(elapsed)
                    (fair_cpu if fair else master_cpu).append(cpu)
        assert all(res.confirmed["count"] == 2 * rolls + 20 for res in resources)
        assert len({res.checksum for res in resources}) == 1
        return master_times, fair_times, master_cpu, fair_cpu


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", type=int, default=4)
    parser.add_argument("--rolls", type=int, default=300, help="rolls of each kind per run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    added: list[float] = []
    added_cpu: list[float] = []
    print(f"{args.peers} peers on LocalNetwork, {args.rolls} rolls of each kind per run, one at a time")
    for run in range(args.runs):
        master_times, fair_times, master_cpu, fair_cpu = anyio.run(_latencies, args.peers, args.rolls, 100 * run)
        p50m, p50f = _p(master_times, 0.5), _p(fair_times, 0.5)
        cpum, cpuf = _p(master_cpu, 0.5), _p(fair_cpu, 0.5)
        added.append(p50f - p50m)
        added_cpu.append(cpuf - cpum)
        print(
            f"  run {run}: master draw p50 {p50m:.2f} ms p99 {_p(master_times, 0.99):.2f} ms | "
            f"fair draw p50 {p50f:.2f} ms p99 {_p(fair_times, 0.99):.2f} ms | added p50 {p50f - p50m:.2f} ms | "
            f"CPU p50 {cpum:.2f} vs {cpuf:.2f} ms"
        )
    print(f"added latency of a fair draw, p50, median of {args.runs} runs: {statistics.median(added):.2f} ms")
    print(f"added CPU time of a fair draw (all {args.peers} peers), p50: {statistics.median(added_cpu):.2f} ms")


if __name__ == "__main__":
    main()
