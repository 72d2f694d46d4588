"""Fair private draws: when the author sees its own dice, against a sealed pair with no draw (in process).

N ``mx.Peer``s on one ``mx.LocalNetwork()`` (real codec, real node, Ed25519, no sockets), a
``private="sealed"`` type. A peer that is not the master dispatches one sealed pair at a time and
waits for its confirmation, alternating a private half with plain dice and one whose dice are
``mx.fair.random_int(1, 6)`` (a private draw). At the confirmation the script reads the author's
own view: the drawn dice must be there already (counted: confirmations after the one of the pair
before the author sees its values, by construction 0). The difference of the medians is what the
draw adds (one round trip: ``Drawing``, each player's ``Contribute``, ``Drawn``).

Run: python benchmarks/private_draws.py     (--help for --peers/--rolls/--runs)
"""

from __future__ import annotations

import argparse
import statistics

import anyio
from core import local_room  # benchmarks/ is this script's path[0]

from movex_p2p.testing.rolls import Alternated, alternate, ms, private_roll
from movex_p2p.testing.types import Cup


async def _latencies(n_peers: int, rolls: int, seed: int) -> Alternated:
    """Wall seconds of each pair (``plain``: plain dice, ``drawn``: private draws) and the pairs whose
    author did not see its dice at its own confirmation (``late``: it would take another)."""
    async with local_room(Cup, n_peers, seed) as (peers, resources):
        me, res = next((p, r) for p, r in zip(peers, resources, strict=True) if not p.is_master)
        with anyio.fail_after(300):
            return await alternate(rolls, 20, lambda i, drawn: private_roll(res, me.id, i, drawn))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", type=int, default=4)
    parser.add_argument("--rolls", type=int, default=200, help="pairs of each kind per run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    added: list[float] = []
    print(f"{args.peers} peers on LocalNetwork, {args.rolls} sealed pairs of each kind per run, one at a time")
    for run in range(args.runs):
        timed = anyio.run(_latencies, args.peers, args.rolls, 100 * run)
        p50p, p50d = ms(timed.plain, 0.5), ms(timed.drawn, 0.5)
        added.append(p50d - p50p)
        print(
            f"  run {run}: plain sealed pair p50 {p50p:.2f} ms p99 {ms(timed.plain, 0.99):.2f} ms | "
            f"private draw p50 {p50d:.2f} ms p99 {ms(timed.drawn, 0.99):.2f} ms | added p50 {p50d - p50p:.2f} ms | "
            f"confirmations after its own before the author saw its dice: {timed.late} in {timed.rolls} pairs"
        )
    median = statistics.median(added)
    print(f"added latency of a private draw to its author, p50, median of {args.runs} runs: {median:.2f} ms")


if __name__ == "__main__":
    main()
