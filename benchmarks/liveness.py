"""Liveness on the LAN: how soon the others learn that a peer is gone (SIGKILLed, or left).

Each run starts 3 transport-only peers (the peer program's ``link`` role: LanTransport, heartbeat
0.25 s, dead after 1 s) in a fresh private network namespace (``unshare -rn``: nothing leaves the
machine), waits for the full mesh, then removes p1 and times, for each survivor, from the kill
(or the ``leave`` command) to its ``down`` event for p1. The processes share CLOCK_MONOTONIC.
``tests/test_lan_netns.py`` runs the same scenarios once and checks how each was detected (the
heartbeat's silence, the goodbye); the figures live here.

    python benchmarks/liveness.py                 # 10 kill runs + 10 leave runs, ~2 min
    python benchmarks/liveness.py --runs 3 --json liveness.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import anyio

from movex_p2p.testing.netns import Namespace, PeerProcess, cannot_run, open_namespace

NAMES = ("p0", "p1", "p2")
GONE = "p1"


async def one_run(mode: str) -> list[float]:
    """Seconds from p1's kill (or its leave command) to each survivor's ``down`` for it."""
    async with open_namespace() as ns:
        peers = {name: await ns.spawn_peer(name) for name in NAMES}
        for name, peer in peers.items():
            await peer.wait_peers(set(NAMES) - {name}, within=30)
        started = time.monotonic()
        if mode == "kill":
            peers[GONE].kill()
        else:
            await peers[GONE].command("leave")
        seconds = []
        for name in sorted(set(NAMES) - {GONE}):
            down = await peers[name].wait_event("down", peer=GONE, within=60)
            if down["graceful"] is not (mode == "leave"):
                raise AssertionError(f"{name} saw p1 go with graceful={down['graceful']} in a {mode} run")
            seconds.append(down["t"] - started)
        await leave(ns, [peer for name, peer in peers.items() if name != GONE or mode == "leave"])
    return seconds


async def leave(ns: Namespace, peers: list[PeerProcess]) -> None:
    async with anyio.create_task_group() as tg:
        for peer in peers:
            tg.start_soon(ns.leave, peer)


async def main(args: argparse.Namespace) -> int:
    if (why := cannot_run()) is not None:
        print(why)
        return 2
    table: dict[str, Any] = {}
    for mode, what in (("kill", "SIGKILL -> declared dead"), ("leave", "leave asked -> seen as left")):
        samples: list[float] = []
        for run in range(args.runs):
            samples += await one_run(mode)
            print(f"  {mode} run {run + 1}/{args.runs}: {', '.join(f'{s * 1000:.0f} ms' for s in samples[-2:])}")
        table[what] = {
            "survivors_seen": len(samples),
            "p50_ms": round(statistics.median(samples) * 1000, 1),
            "max_ms": round(max(samples) * 1000, 1),
        }
    print()
    print("| what (3 peers, heartbeat 0.25 s, dead after 1 s) | seen | p50 | max |")
    print("|---|---|---|---|")
    for what, row in table.items():
        print(f"| {what} | {row['survivors_seen']} | {row['p50_ms']:.0f} ms | {row['max_ms']:.0f} ms |")
    if args.json:
        await anyio.Path(args.json).write_text(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", default=None)
    sys.exit(anyio.run(main, parser.parse_args()))
