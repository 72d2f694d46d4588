"""Failover on the real stack: SIGKILL the master while every peer dispatches, or ask it to leave.

Each run starts N peer processes (movex_p2p.Peer over LanTransport: mDNS + signaling + WebRTC)
in a fresh private network namespace (``unshare -rn``: nothing leaves the machine), lets them
dispatch every 10 ms, then removes the master and measures the time until every survivor had
an action confirmed by the new master. Every run also checks that nothing was lost or doubled
and that all survivors end with one checksum.

    python benchmarks/failover.py                 # 10 kill runs at 3 and 5 peers + 10 handovers
    python benchmarks/failover.py --runs 3 --json failover.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any

import anyio

from movex_p2p.testing.failover_bed import FailoverResult, failover_run
from movex_p2p.testing.netns import cannot_run, open_namespace


async def series(peers: int, mode: str, runs: int) -> list[FailoverResult]:
    results = []
    for run in range(runs):
        async with open_namespace() as ns:
            result = await failover_run(ns, peers, mode=mode, run=run)
        results.append(result)
        flag = "ok" if result.ok else f"FAILED {result.problems} lost={result.lost} doubled={result.doubled}"
        print(f"  {mode} {peers} peers run {run + 1}/{runs}: {result.pause * 1000:.0f} ms {flag}", flush=True)
    return results


def summary(results: list[FailoverResult]) -> dict[str, Any]:
    pauses = [r.pause for r in results]
    return {
        "runs": len(results),
        "p50_ms": round(statistics.median(pauses) * 1000, 1),
        "max_ms": round(max(pauses) * 1000, 1),
        "lost": sum(r.lost for r in results),
        "doubled": sum(r.doubled for r in results),
        "all_ok": all(r.ok for r in results),
        "resyncs": sum(r.resyncs for r in results),
    }


async def main(args: argparse.Namespace) -> int:
    if (why := cannot_run()) is not None:
        print(why)
        return 2
    table: dict[str, Any] = {}
    for peers in args.peers:
        table[f"kill, {peers} peers"] = summary(await series(peers, "kill", args.runs))
    table[f"handover, {args.peers[0]} peers"] = summary(await series(args.peers[0], "leave", args.runs))
    print()
    print("| what | runs | p50 | max | lost | doubled | resyncs |")
    print("|---|---|---|---|---|---|---|")
    for what, row in table.items():
        print(
            f"| {what} | {row['runs']} | {row['p50_ms']:.0f} ms | {row['max_ms']:.0f} ms | {row['lost']} | "
            f"{row['doubled']} | {row['resyncs']} |"
        )
    if args.json:
        await anyio.Path(args.json).write_text(json.dumps(table, indent=2))
    return 0 if all(row["all_ok"] for row in table.values()) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--peers", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--json", default=None)
    sys.exit(anyio.run(main, parser.parse_args()))
