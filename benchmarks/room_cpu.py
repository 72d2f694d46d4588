"""A room's CPU budget: what N peer processes on this machine use idle and while playing, and what they confirm.

Every peer is a process on one of 4 "hosts" (network namespaces on a bridge,
``movex_p2p.testing.multihost``; nothing leaves the machine). First the room idles, then every
peer plays (one action every ``--interval`` s). Printed: the CPU the peers used (in CPUs: 1.0 is
one CPU busy all the time, from ``/proc/<pid>/stat``), then, every 3 s of play, the actions the
room confirmed in all and the longest backlog of one peer (dispatched, not yet confirmed), and the
``slow_link`` diagnostics (a peer re-sent its pending actions). Needs root (``ip netns add``).

    python benchmarks/room_cpu.py --peers 12 --interval 0.025 --seconds 15
    python benchmarks/room_cpu.py --peers 12 --interval 0.1 --seconds 15

Why: the burst table of ``benchmarks/wifi.py`` runs 12 peers on one machine. When the room's play
already needs more CPU than the machine has, a backlog grows before any kill, and what a failover
then takes measures the machine, not the protocol.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import anyio

from movex_p2p.testing.multihost import open_hosts
from movex_p2p.testing.netns import PeerProcess
from movex_p2p.testing.wifi_bed import LOG, spawn_peers

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of ``pid`` and its children so far (0 for one gone)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    total = 0
    for each in [pid, *map(int, children)]:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


async def cpus_used(procs: list[PeerProcess], seconds: float) -> list[float]:
    """CPUs each of ``procs`` used over the next ``seconds``."""
    before, started = [cpu_seconds(p.process.pid) for p in procs], time.monotonic()
    await anyio.sleep(seconds)
    after, took = [cpu_seconds(p.process.pid) for p in procs], time.monotonic() - started
    return [(b - a) / took for a, b in zip(before, after, strict=True)]


async def counts(procs: list[PeerProcess]) -> list[dict[str, Any]]:
    """Each peer's counts now, while it plays."""
    for p in procs:
        await p.command("report", settle=0)
    finals = [await p.wait_event("final", within=30) for p in procs]
    for p in procs:  # read once: the next report's event is the next one
        p.events[:] = [e for e in p.events if e.get("ev") != "final"]
    return finals


async def room(peers: int, interval: float, seconds: float, idle: float) -> None:
    async with open_hosts(4) as hosts:
        procs = await spawn_peers(hosts, peers, "p", "--interval", str(interval), "--log", LOG)
        ready = [await p.wait_event("ready", within=90) for p in procs]
        master = next(i for i, p in enumerate(procs) if p.of("ready")[0]["id"] == ready[0]["master"])
        await anyio.sleep(2)
        used = await cpus_used(procs, idle)
        print(f"{peers} peers idle {idle:.0f} s: {sum(used):.2f} CPUs (the master {used[master]:.2f})", flush=True)
        for p in procs:
            await p.command("go")
        await anyio.sleep(1)
        used = await cpus_used(procs, 3)
        print(
            f"playing, {peers / interval:.0f} actions/s dispatched in all: {sum(used):.2f} CPUs "
            f"(the master {used[master]:.2f})",
            flush=True,
        )
        confirmed, elapsed = 0, 0.0
        while elapsed < seconds:
            await anyio.sleep(3)
            elapsed += 3
            finals = await counts(procs)
            total = sum(int(f["confirmed"]) for f in finals)
            backlog = max(int(f["dispatched"]) - int(f["confirmed"]) for f in finals)
            print(
                f"  {elapsed:.0f} s: {total} confirmed in all ({(total - confirmed) / 3:.0f}/s lately), "
                f"longest backlog {backlog}",
                flush=True,
            )
            confirmed = total
        slow = sum(line.count("slow_link") for p in procs for line in p.stderr().splitlines())
        print(f"slow_link diagnostics: {slow}", flush=True)
        for p in procs:
            p.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=12)
    parser.add_argument("--interval", type=float, default=0.025, help="seconds between two actions of a peer")
    parser.add_argument("--seconds", type=float, default=15, help="seconds of play counted")
    parser.add_argument("--idle", type=float, default=5, help="seconds of idle room measured")
    args = parser.parse_args()
    anyio.run(room, args.peers, args.interval, args.seconds, args.idle)


if __name__ == "__main__":
    main()
