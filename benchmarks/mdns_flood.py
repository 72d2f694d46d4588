"""S4, fake mDNS members: a stranger multicasts ``--count`` made-up members at ``--rate`` a second.

    python benchmarks/mdns_flood.py --json mdns-flood.json   # re-executes itself under `unshare -rn`

Inside one private network namespace: a LAN peer p0 (``movex_p2p.testing.peer link``: the real
LAN stack, mDNS + signaling + WebRTC) runs quietly, then the hostile ``mdns-flood`` role sends
mDNS responses from its own loopback address (127.0.0.66), each a made-up member of p0's room
(PTR, SRV, TXT, A). A legitimate peer p1 links to p0 before (p0's first link costs it ~3.5 MB,
which is not the flood's doing); two seconds into the flood another one, p2, enters and must link.
Measured on p0 (from ``/proc``): RSS before, at its peak and after the flood (+ ``--settle`` s),
and the CPU seconds it spent from the flood's start to then, against the same span quiet.

``--src DIR`` runs p0, p1 and p2 from another checkout (A/B:
``mkdir -p ../base && git archive <commit> src | tar -x -C ../base``, then ``--src ../base/src``);
the flood always comes from this checkout. Never run the peers on a real network.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from movex_p2p.testing.netns import SRC, PeerProcess, ProcessBed, reexec_in_namespace, running

IN_NAMESPACE = "MOVEX_MDNS_FLOOD_IN_NETNS"
PEER = ["-m", "movex_p2p.testing.peer"]
FLOOD_SOURCE = "127.0.0.66"


class Bed(ProcessBed):
    """Processes in this (private) namespace; ``src`` is the movex_p2p the next spawn imports."""

    src = str(SRC)

    def argv(self, args: list[str] | Any) -> list[str]:
        return ["env", f"PYTHONPATH={self.src}", sys.executable, *args]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def spawn_peer(bed: Bed, src: str, name: str) -> PeerProcess:
    bed.src = src
    try:
        peer = await bed.spawn([*PEER, "link", "--name", name, "--secret", "s"], name=name)
    finally:
        bed.src = str(SRC)
    await peer.wait_event("ready", within=30)
    return peer


async def lan_status(peer: PeerProcess) -> dict[str, Any]:
    peer.events[:] = [e for e in peer.events if e["ev"] != "status"]
    await peer.command("status")
    return await peer.wait_event("status")


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    async with running(Bed) as bed:
        p0 = await spawn_peer(bed, args.src, "p0")
        pid = p0.process.pid
        p1 = await spawn_peer(bed, args.src, "p1")  # p0's first link costs it ~3.5 MB: not the flood's
        await p1.wait_event("up", peer="p0", within=20)
        await anyio.sleep(2.0)  # start-up work done (announcements, first queries)
        span = args.count / args.rate + args.settle
        quiet_from = cpu_s(pid)
        await anyio.sleep(min(span, args.quiet))
        quiet = (cpu_s(pid) - quiet_from) * span / min(span, args.quiet)
        rss_before, cpu_before = rss_kib(pid), cpu_s(pid)
        peak = rss_before
        flood = await bed.spawn(
            [*PEER, "mdns-flood", "--iface", FLOOD_SOURCE, "--count", str(args.count), "--rate", str(args.rate)],
            name="flood",
        )
        started = (await flood.wait_event("flooding", within=30))["t"]
        joined: float | None = None

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, rss_kib(pid))
                await anyio.sleep(0.1)

        async with anyio.create_task_group() as tg:
            tg.start_soon(sample)
            await anyio.sleep(max(0.0, started + 2.0 - time.monotonic()))
            p2 = await spawn_peer(bed, args.src, "p2")
            ready = p2.of("ready")[0]["t"]
            try:
                up = await p2.wait_event("up", peer="p0", within=20)
                joined = up["t"] - ready
            except TimeoutError:
                joined = None
            flooded = await flood.wait_event("flooded", within=args.count / args.rate * 3 + 30)
            await anyio.sleep(args.settle)
            tg.cancel_scope.cancel()
        rss_after, cpu_after = rss_kib(pid), cpu_s(pid)
        lan = (await lan_status(p0))["lan"]
        for peer in (p0, p1, p2, flood):
            await bed.leave(peer)
    return {
        "src": args.src,
        "count": args.count,
        "rate": args.rate,
        "sent": flooded["sent"],
        "flood_seconds": flooded["seconds"],
        "rss_before_mib": round(rss_before / 1024, 1),
        "rss_peak_growth_mib": round((peak - rss_before) / 1024, 2),
        "rss_growth_mib": round((rss_after - rss_before) / 1024, 2),
        "cpu_s_flood": round(cpu_after - cpu_before, 2),
        "cpu_s_quiet_same_span": round(quiet, 2),
        "p2_joined_s": None if joined is None else round(joined, 3),
        "p0_seen": len(lan["seen"]),
        "p0_mdns_refused": lan.get("mdns_refused", "(not reported)"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=10_000, help="made-up members")
    parser.add_argument("--rate", type=float, default=1000.0, help="mDNS responses a second")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds measured after the last response")
    parser.add_argument("--quiet", type=float, default=5.0, help="seconds of the quiet CPU sample")
    parser.add_argument("--src", default=str(SRC), help="the movex_p2p the peers import (A/B runs)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    args.src = str(Path(args.src).resolve())
    if os.environ.get(IN_NAMESPACE) != "1":
        reexec_in_namespace(IN_NAMESPACE)
    results = anyio.run(bench, args, backend="asyncio")
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
