"""Core benchmarks: confirmed actions/s on LocalNetwork, and per-action checksum upkeep.

Run: python benchmarks/core.py            (python benchmarks/core.py --help for options)
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import cbor2

import movex_p2p as mx
from movex_p2p.resource.state import checksum, freeze
from movex_p2p.testing.types import Counter  # the test suite's counter: one definition


@asynccontextmanager
async def local_room(
    type_: mx.ResourceType, n_peers: int, seed: int
) -> AsyncIterator[tuple[list[mx.Peer], list[mx.Resource]]]:
    """``n_peers`` peers on one LocalNetwork, each bound to one new resource of ``type_``."""
    network = mx.LocalNetwork()
    async with AsyncExitStack() as stack:
        peers = [
            await stack.enter_async_context(
                mx.Peer(room="bench", types=[type_], name=f"p{i}", transport=network, seed=seed + i)
            )
            for i in range(n_peers)
        ]
        with anyio.fail_after(30):
            for peer in peers:
                await peer.wait_ready()
            rid = await peers[0].create(type_, id="bench")
            resources = [await peer.bind(rid) for peer in peers]
        yield peers, resources


async def _throughput(n_peers: int, per_peer: int, window: int, seed: int) -> float:
    async with local_room(Counter, n_peers, seed) as (peers, resources):

        async def run(res: mx.Resource) -> None:
            in_flight: deque[mx.DispatchHandle] = deque()
            for _ in range(per_peer):
                if len(in_flight) >= window:
                    await in_flight.popleft()
                in_flight.append(res.dispatch(mx.Action("increment")))
            while in_flight:
                await in_flight.popleft()

        total = n_peers * per_peer
        started = time.perf_counter()
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for res in resources:
                    tg.start_soon(run, res)
        elapsed = time.perf_counter() - started
        with anyio.fail_after(30):
            for res in resources:
                async for _ in res.updates():
                    if res.version >= total:
                        break
        # zero lost, zero doubled, one checksum
        counts = {res.confirmed["count"] for res in resources}
        assert counts == {total}, f"expected {total}, got {counts}"
        assert all(res.version == total and res.pending == 0 for res in resources)
        assert len({res.checksum for res in resources}) == 1
        assert all(peer.stats["resyncs"] == 0 for peer in peers), [peer.stats for peer in peers]
        return total / elapsed


def throughput(n_peers: int, *, total: int, window: int, runs: int) -> list[float]:
    per_peer = max(1, total // n_peers)
    return [anyio.run(_throughput, n_peers, per_peer, window, run) for run in range(runs)]


def nested_state(players: int = 80) -> dict[str, Any]:
    return {
        "round": 3,
        "players": {
            f"player-{i:03d}": {
                "name": f"Player number {i}",
                "score": i * 10,
                "alive": True,
                "pos": [i * 1.5, i * 2.5],
                "inventory": [{"item": f"item-{j}", "qty": j} for j in range(3)],
            }
            for i in range(players)
        },
        "log": [f"event {i}" for i in range(20)],
    }


def checksum_upkeep(iterations: int) -> tuple[float, float, int]:
    """Median ms per action: (freeze + Merkle checksum, cbor2 canonical dump + hash of everything)."""
    state = freeze(nested_state())
    size = len(cbor2.dumps(state, canonical=True))
    checksum(state)
    keys = list(state["players"])
    ours: list[float] = []
    for i in range(iterations):
        key = keys[i % len(keys)]
        started = time.perf_counter()
        player = state["players"][key]
        state = freeze({**state, "players": {**state["players"], key: {**player, "score": player["score"] + 1}}})
        checksum(state)
        ours.append(time.perf_counter() - started)
    baseline: list[float] = []
    plain = nested_state()
    for i in range(iterations):
        key = keys[i % len(keys)]
        started = time.perf_counter()
        plain["players"][key]["score"] += 1
        hashlib.blake2b(cbor2.dumps(plain, canonical=True), digest_size=16).digest()
        baseline.append(time.perf_counter() - started)
    return statistics.median(ours) * 1e3, statistics.median(baseline) * 1e3, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peers", type=int, nargs="*", default=[1, 4, 8])
    parser.add_argument("--actions", type=int, default=20_000, help="confirmed actions per run (all peers)")
    parser.add_argument("--window", type=int, default=64, help="actions in flight per peer")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=5_000, help="checksum upkeep samples")
    args = parser.parse_args()

    print(
        f"confirmed actions/s (LocalNetwork, counter, window {args.window}, {args.actions} actions, "
        f"median of {args.runs} runs)"
    )
    for n in args.peers:
        rates = throughput(n, total=args.actions, window=args.window, runs=args.runs)
        print(f"  {n} peer(s): {statistics.median(rates):>9,.0f}/s   (runs: {', '.join(f'{r:,.0f}' for r in rates)})")
    runs = [checksum_upkeep(args.iterations) for _ in range(args.runs)]
    size = runs[0][2]
    ours = statistics.median(r[0] for r in runs)
    base = statistics.median(r[1] for r in runs)
    print(f"checksum upkeep, {size / 1024:.1f} KB nested state, one key changed per action (median):")
    print(f"  freeze + Merkle checksum:           {ours:.4f} ms/action")
    print(f"  cbor2 canonical dump + blake2b:     {base:.4f} ms/action (baseline, whole state)")


if __name__ == "__main__":
    main()
