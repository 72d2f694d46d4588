"""Sealed private actions: throughput of a flood of sealed pairs vs plain (``private="master"``) pairs.

N ``mx.Peer``s on one ``mx.LocalNetwork()`` (real codec, node and Ed25519 signatures, no sockets)
flood private/public pairs on one resource, a window of actions in flight per peer; the type
reveals whenever ``--reveal-every`` halves are held, so a sealed run also pays every round of
openings (the master parks proposals while a reveal waits for them). Sealed and master runs
alternate in the same process; each run checks that every half was revealed exactly once and
that every peer holds one checksum.

Run: python benchmarks/sealed.py            (--help for options)
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import deque
from contextlib import AsyncExitStack
from typing import Any

import anyio

import movex_p2p as mx


def bids(state: Any, action: mx.Action) -> Any:
    match action:
        case mx.Action("placed"):  # the public half: a bid was placed
            return {**state, "placed": state["placed"] + 1}
        case mx.Action("bid", {"v": value}):  # the private half: its value
            return {**state, "revealed": state["revealed"] + 1, "sum": state["sum"] + value}
    return state


def make_type(private: str, every: int) -> mx.ResourceType:
    def due(state: Any) -> bool:
        return bool(state["placed"] - state["revealed"] >= every)

    return mx.ResourceType(
        "bids",
        bids,
        initial={"placed": 0, "revealed": 0, "sum": 0},
        can_reveal=due,
        private=private,  # type: ignore[arg-type]
        version=f"bench-{private}",
    )


async def _flood(private: str, n_peers: int, per_peer: int, window: int, every: int, seed: int) -> float:
    kind = make_type(private, every)
    network = mx.LocalNetwork()
    async with AsyncExitStack() as stack:
        peers = [
            await stack.enter_async_context(
                mx.Peer(room="bench", types=[kind], name=f"p{i}", transport=network, seed=seed + i)
            )
            for i in range(n_peers)
        ]
        with anyio.fail_after(30):
            for peer in peers:
                await peer.wait_ready()
            rid = await peers[0].create(kind, id="b")
            resources = [await peer.bind(rid) for peer in peers]

        async def run(res: mx.Resource) -> None:
            in_flight: deque[mx.DispatchHandle] = deque()
            for i in range(per_peer):
                if len(in_flight) >= window:
                    await in_flight.popleft()
                in_flight.append(res.dispatch_private(mx.Action("bid", {"v": i % 7}), mx.Action("placed")))
            while in_flight:
                await in_flight.popleft()

        total = n_peers * per_peer
        started = time.perf_counter()
        with anyio.fail_after(300):
            async with anyio.create_task_group() as tg:
                for res in resources:
                    tg.start_soon(run, res)
            for res in resources:  # every half revealed everywhere
                async for _ in res.updates():
                    if res.confirmed["revealed"] == total:
                        break
        elapsed = time.perf_counter() - started
        expected = n_peers * sum(i % 7 for i in range(per_peer))
        assert {res.confirmed["sum"] for res in resources} == {expected}
        assert {res.confirmed["placed"] for res in resources} == {total}
        assert len({res.checksum for res in resources}) == 1
        assert all(peer.stats["resyncs"] == 0 for peer in peers), [peer.stats for peer in peers]
        return total / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", type=int, default=4)
    parser.add_argument("--actions", type=int, default=8_000, help="private pairs per run (all peers)")
    parser.add_argument("--window", type=int, default=64, help="actions in flight per peer")
    parser.add_argument("--reveal-every", type=int, default=64, help="held halves that make a reveal due")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    per_peer = args.actions // args.peers
    if (per_peer * args.peers) % args.reveal_every:
        parser.error("--actions must be a multiple of --peers x --reveal-every (every half is revealed)")
    rates: dict[str, list[float]] = {"master": [], "sealed": []}
    for run in range(args.runs):
        for private in ("master", "sealed"):
            rates[private].append(anyio.run(_flood, private, args.peers, per_peer, args.window, args.reveal_every, run))
    print(
        f"private pairs/s, {args.peers} peers on LocalNetwork, window {args.window}, a reveal every "
        f"{args.reveal_every} halves, {args.actions} pairs, median of {args.runs} runs (alternating)"
    )
    for private, found in rates.items():
        runs = ", ".join(f"{r:,.0f}" for r in found)
        print(f"  private={private!r:9} {statistics.median(found):>8,.0f}/s   (runs: {runs})")
    ratios = [s / m for s, m in zip(rates["sealed"], rates["master"], strict=True)]
    print(f"  sealed / master: {statistics.median(ratios):.0%} (median of the per-run ratios; target >= 50%)")


if __name__ == "__main__":
    main()
