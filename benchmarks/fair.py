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

import anyio
from core import local_room  # benchmarks/ is this script's path[0]

from movex_p2p.testing.rolls import Alternated, alternate, ms, public_roll
from movex_p2p.testing.types import Dice


async def _latencies(n_peers: int, rolls: int, seed: int) -> Alternated:
    """Wall and CPU seconds of each roll (``plain``: master draws, ``drawn``: fair draws)."""
    async with local_room(Dice, n_peers, seed) as (peers, resources):
        author = next(res for peer, res in zip(peers, resources, strict=True) if not peer.is_master)
        with anyio.fail_after(120):
            timed = await alternate(rolls, 20, lambda _, drawn: public_roll(author, drawn))
        assert all(res.confirmed["count"] == timed.rolls for res in resources)
        assert len({res.checksum for res in resources}) == 1
        return timed


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
        timed = anyio.run(_latencies, args.peers, args.rolls, 100 * run)
        p50m, p50f = ms(timed.plain, 0.5), ms(timed.drawn, 0.5)
        cpum, cpuf = ms(timed.plain_cpu, 0.5), ms(timed.drawn_cpu, 0.5)
        added.append(p50f - p50m)
        added_cpu.append(cpuf - cpum)
        print(
            f"  run {run}: master draw p50 {p50m:.2f} ms p99 {ms(timed.plain, 0.99):.2f} ms | "
            f"fair draw p50 {p50f:.2f} ms p99 {ms(timed.drawn, 0.99):.2f} ms | added p50 {p50f - p50m:.2f} ms | "
            f"CPU p50 {cpum:.2f} vs {cpuf:.2f} ms"
        )
    print(f"added latency of a fair draw, p50, median of {args.runs} runs: {statistics.median(added):.2f} ms")
    print(f"added CPU time of a fair draw (all {args.peers} peers), p50: {statistics.median(added_cpu):.2f} ms")


if __name__ == "__main__":
    main()
