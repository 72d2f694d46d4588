"""Join by address: 3 peers on 3 hosts, mDNS dropped, each given one address, mesh and sync.

Each run builds a fresh multi-host bed (movex_p2p.testing.multihost: network namespaces joined by veth
pairs to a bridge; needs root; no packet leaves the machine), drops mDNS (UDP 5353) on the
bridge, and starts movex_p2p.Peer processes over LanTransport (movex_p2p.testing.address_bed): p1 knows
nobody and listens on a fixed port, p2 knows p1, p3 knows p2. Every peer runs without fcntl.
Each run checks that all three end with one counter, one checksum and one master. Then the
same chain with transport-only peers (the peer program's ``link`` role) times the links alone: from the last
endpoint listening to the last of the three links open.

    python benchmarks/join_by_address.py              # 10 runs, ~1 min
    python benchmarks/join_by_address.py --runs 3 --json join.json
    python benchmarks/join_by_address.py --mdns   # the baseline: mDNS on, no address given
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import anyio

from movex_p2p.testing.address_bed import ChainRun, chain_links, chain_without_multicast
from movex_p2p.testing.multihost import open_hosts, unavailable_reason


async def one_run(*, by_address: bool) -> ChainRun:
    async with open_hosts(3) as hosts:
        run = await chain_without_multicast(hosts, by_address=by_address)
        for node in run.nodes:
            await hosts.leave(node, within=15)
    return run


async def links_run() -> float:
    async with open_hosts(3) as hosts:
        peers, seconds = await chain_links(hosts)
        for peer in peers:
            await hosts.leave(peer, within=15)
    return seconds


async def main(args: argparse.Namespace) -> int:
    reason = unavailable_reason()
    if reason is not None:
        print(f"cannot run: {reason}")
        return 2
    rows: dict[str, list[float]] = {"entered_to_meshed": [], "entered_to_synced": [], "spawned_to_synced": []}
    for i in range(args.runs):
        run = await one_run(by_address=not args.mdns)
        rows["entered_to_meshed"].append(run.meshed - run.entered)
        rows["entered_to_synced"].append(run.synced - run.entered)
        rows["spawned_to_synced"].append(run.synced - run.spawned)
        print(
            f"run {i + 1}/{args.runs}: last entered -> meshed {rows['entered_to_meshed'][-1] * 1000:.0f} ms, "
            f"-> synced {rows['entered_to_synced'][-1] * 1000:.0f} ms; last spawned -> synced "
            f"{rows['spawned_to_synced'][-1] * 1000:.0f} ms",
            flush=True,
        )
    if not args.mdns:
        rows["listening_to_links"] = []
        for i in range(args.runs):
            rows["listening_to_links"].append(await links_run())
            print(f"links run {i + 1}/{args.runs}: {rows['listening_to_links'][-1] * 1000:.0f} ms", flush=True)
    summary = {
        name: {"p50_ms": round(statistics.median(v) * 1000), "max_ms": round(max(v) * 1000), "runs": len(v)}
        for name, v in rows.items()
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        await anyio.Path(args.json).write_text(json.dumps({"summary": summary, "runs": rows}, indent=2))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--mdns", action="store_true", help="baseline: mDNS on, no address given")
    sys.exit(anyio.run(main, parser.parse_args()))
