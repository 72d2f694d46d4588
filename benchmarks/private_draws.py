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
import time
from typing import Any

import anyio
from core import local_room  # benchmarks/ is this script's path[0]

import movex_p2p as mx


def _cup(state: Any, action: mx.Action) -> Any:
    if action.type == "roll":
        return {**state, "hands": {**state["hands"], action.author: action.payload}}
    return {**state, "rolled": state["rolled"] + 1}


Cup = mx.ResourceType("bench_cup", _cup, initial={"hands": {}, "rolled": 0}, private="sealed")


async def _latencies(n_peers: int, rolls: int, seed: int) -> tuple[list[float], list[float], int]:
    """Wall seconds of each pair (plain dice, drawn dice) and the confirmations the author waited past its own."""
    async with local_room(Cup, n_peers, seed) as (peers, resources):
        me, res = next((p, r) for p, r in zip(peers, resources, strict=True) if not p.is_master)
        plain: list[float] = []
        drawn: list[float] = []
        late = 0
        with anyio.fail_after(300):
            for i in range(2 * rolls + 20):
                fair = i % 2 == 1
                dice = [mx.fair.random_int(1, 6) if fair else 3 for _ in range(5)]
                started = time.perf_counter()
                await res.dispatch_private(mx.Action("roll", {"i": i, "dice": dice}), mx.Action("rolled", {}))
                elapsed = time.perf_counter() - started
                mine = res.state["hands"].get(me.id)
                seen = mine is not None and mine["i"] == i and all(type(d) is int for d in mine["dice"])
                late += not seen  # not in the view at the confirmation: it would take another
                if i >= 20:
                    (drawn if fair else plain).append(elapsed)
        return plain, drawn, late


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", type=int, default=4)
    parser.add_argument("--rolls", type=int, default=200, help="pairs of each kind per run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    added: list[float] = []
    print(f"{args.peers} peers on LocalNetwork, {args.rolls} sealed pairs of each kind per run, one at a time")
    for run in range(args.runs):
        plain, drawn, late = anyio.run(_latencies, args.peers, args.rolls, 100 * run)
        p50p, p50d = _p(plain, 0.5), _p(drawn, 0.5)
        added.append(p50d - p50p)
        print(
            f"  run {run}: plain sealed pair p50 {p50p:.2f} ms p99 {_p(plain, 0.99):.2f} ms | "
            f"private draw p50 {p50d:.2f} ms p99 {_p(drawn, 0.99):.2f} ms | added p50 {p50d - p50p:.2f} ms | "
            f"confirmations after its own before the author saw its dice: {late} in {2 * args.rolls + 20} pairs"
        )
    median = statistics.median(added)
    print(f"added latency of a private draw to its author, p50, median of {args.runs} runs: {median:.2f} ms")


if __name__ == "__main__":
    main()
