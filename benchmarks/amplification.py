"""P2, amplification: a room member floods the master with raw Reports (empty ``have``) or SyncRequests.

    python benchmarks/amplification.py --json amplification.json   # re-executes itself under `unshare -rn`

Three peer processes over the real LAN stack (mDNS + WebRTC), inside one private network namespace:
the master (it creates ``--blobs`` resources of 1 MB: a room of that many MB), Carol (an honest
client measuring dispatch -> confirmed, one action at a time) and Mallory, a member running
modified code: the peer program plus an ``amplify`` command that puts raw ``Report(have={})``s (or
one ``SyncRequest`` per blob) straight into its outbox for the master, ``--count`` of them, one
every ``--interval`` s. Phases: a baseline (Mallory idle), the Report flood, the SyncRequest flood.
Each phase samples the master's RSS every 0.1 s (peak), counts the bytes Mallory sent and the bytes
the master sent it (until ``--settle`` s after the last request), and takes Carol's p50/p99.

``--src DIR`` runs the peers from another checkout (A/B:
``mkdir -p ../base && git archive <commit> src | tar -x -C ../base``, then ``--src ../base/src``).
Never run the peers on a real network.
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
from anyio.abc import TaskGroup
from lan import IN_NAMESPACE, Proc, pct, reexec_in_namespace, stop_all  # benchmarks/ is this script's path[0]

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ["-m", "movex_p2p.testing.peer", "peer"]
ATTACKER = [str(Path(__file__).resolve()), "--worker", "attacker", "peer"]


# -- Mallory: the peer program plus one hostile command -------------------------------------------


async def amplify(peer: Any, command: dict[str, Any]) -> dict[str, Any]:
    """Send raw requests to the master as a modified client would; count what comes back."""
    from movex_p2p import wire
    from movex_p2p.resource import messages as rm
    from movex_p2p.transport.base import Frame

    core, driver = peer._core, peer._driver
    master = core.client.master
    received = frames = 0
    step = core.step

    def counted(events: list[Any], now: float, wall: float) -> Any:
        nonlocal received, frames
        frames += len(events)
        received += sum(len(e.data) for e in events if isinstance(e, Frame) and e.peer == master)
        return step(events, now, wall)

    core.step = counted
    blobs = [rid for rid in core.client.replicas if rid.startswith("blob:")]
    sent = 0
    started = time.monotonic()
    for i in range(int(command["count"])):
        term = core.client.term
        if command["kind"] == "report":
            messages: list[Any] = [rm.Report(term=term, req=1_000_000 + i, have={})]
        else:
            messages = [rm.SyncRequest(term=term, rid=rid) for rid in blobs]
        for message in messages:
            core.outbox.send(master, message)
            sent += len(wire.encode(message))
        driver.step([])  # hand the frame over now
        await anyio.sleep(float(command["interval"]))
    await anyio.sleep(float(command["settle"]))
    core.step = step
    return {
        "sent": sent,
        "received": received,
        "seconds": round(time.monotonic() - started, 2),
        "master": master,
        "me": core.me,
        "events": frames,
    }


def run_attacker() -> None:
    """The peer program (``python -m movex_p2p.testing.peer peer ...``) with the ``amplify`` command added."""
    from movex_p2p.testing import peer as program

    plain = program.Driver.execute

    async def execute(self: Any, command: dict[str, Any], tg: TaskGroup) -> bool:
        if command["cmd"] != "amplify":
            return await plain(self, command, tg)
        program.emit("amplified", **await amplify(self.peer, command))
        return True

    program.Driver.execute = execute  # type: ignore[method-assign]
    sys.argv = [sys.argv[0], *sys.argv[3:]]  # drop "--worker attacker"
    program.main()


# -- the harness ------------------------------------------------------------------------------------


class Bed:
    def __init__(self, tg: TaskGroup, args: argparse.Namespace) -> None:
        self.tg = tg
        self.args = args
        self.env = {**os.environ, "PYTHONPATH": args.src, "PYTHONUNBUFFERED": "1"}
        self.procs: list[Proc] = []

    async def spawn(self, argv: list[str], name: str, *options: str) -> Proc:
        common = ["--room", "amplification", "--tally", "--expect", "2", "--log", self.args.peer_log]
        process = await anyio.open_process(
            [sys.executable, *argv, "--name", name, *common, *options], stderr=None, env=self.env
        )
        proc = Proc(process)
        self.procs.append(proc)
        self.tg.start_soon(proc.collect)
        return proc


def _has(proc: Proc, ev: str) -> bool:
    return any(e["ev"] == ev for e in proc.events)


def mib(kib: float) -> float:
    return round(kib / 1024, 1)


async def phase(
    master: Proc, carol: Proc, mallory: Proc, args: argparse.Namespace, kind: str, count: int
) -> dict[str, Any]:
    """One phase: Mallory sends ``count`` requests of ``kind`` while Carol measures and the master's RSS is sampled."""
    for proc in (master, carol, mallory):
        proc.events = [e for e in proc.events if e["ev"] not in ("rss", "rtt", "amplified")]
    await master.send(cmd="rss")
    start = (await master.wait_ev("rss"))["kib"]
    await carol.send(cmd="rtt", n=args.samples)
    command = {"cmd": "amplify", "kind": kind, "count": count, "interval": args.interval, "settle": args.settle}
    await mallory.send(**command)
    with anyio.fail_after(300):
        while not (_has(mallory, "amplified") and _has(carol, "rtt")):
            await master.send(cmd="rss")
            await anyio.sleep(0.1)
    rss = [e["kib"] for e in master.events if e["ev"] == "rss"]
    amplified = await mallory.wait_ev("amplified")
    if amplified["master"] != (await master.wait_ev("ready"))["id"]:
        raise SystemExit(f"the master moved (now {amplified['master']}; Mallory is {amplified['me']}): run again")
    samples = (await carol.wait_ev("rtt"))["samples"]
    result = {
        "requests": count,
        "rss_start_mib": mib(start),
        "rss_peak_mib": mib(max(rss)),
        "mallory_sent_bytes": amplified["sent"],
        "master_sent_mallory_bytes": amplified["received"],
        "carol_p50_ms": round(pct(samples, 0.5), 2),
        "carol_p99_ms": round(pct(samples, 0.99), 2),
        "carol_max_ms": round(max(samples), 2),
    }
    print(f"{kind} x {count}: {result}", file=sys.stderr)
    await anyio.sleep(args.quiet)
    return result


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"blobs_mb": args.blobs, "src": args.src}
    async with anyio.create_task_group() as tg:
        bed = Bed(tg, args)
        master = await bed.spawn(PROGRAM, "master", "--seed", "0", "--blobs", str(args.blobs))
        await master.wait_ev("entered", within=60)
        await anyio.sleep(1.0)  # the first peer in is the master
        carol = await bed.spawn(PROGRAM, "carol", "--seed", "1", "--expect-blobs", str(args.blobs))
        mallory = await bed.spawn(ATTACKER, "mallory", "--seed", "2", "--expect-blobs", str(args.blobs))
        for proc in bed.procs:
            await proc.wait_ev("ready", within=180)
        if not (await master.wait_ev("ready"))["is_master"]:
            raise SystemExit("the first peer was not elected master: run again")
        await anyio.sleep(args.quiet)
        results["baseline"] = await phase(master, carol, mallory, args, "report", 0)
        results["reports"] = await phase(master, carol, mallory, args, "report", args.count)
        results["sync_requests"] = await phase(master, carol, mallory, args, "sync", args.count)
        base = results["baseline"]["rss_start_mib"]
        for name in ("reports", "sync_requests"):
            row = results[name]
            row["rss_peak_over_baseline"] = round(row["rss_peak_mib"] / base, 2)
            row["answer_over_request"] = round(row["master_sent_mallory_bytes"] / max(1, row["mallory_sent_bytes"]), 1)
        await stop_all(bed.procs)
        tg.cancel_scope.cancel()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", choices=["attacker"])
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--blobs", type=int, default=4, help="MB of state in the room (1 MB resources)")
    parser.add_argument("--count", type=int, default=63, help="requests per flood")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between two requests")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds Mallory keeps counting after the last")
    parser.add_argument("--samples", type=int, default=300, help="Carol's dispatch -> confirmed samples per phase")
    parser.add_argument("--quiet", type=float, default=3.0, help="seconds between phases")
    parser.add_argument("--src", default=str(ROOT / "src"), help="the movex_p2p the peers import (A/B runs)")
    parser.add_argument("--peer-log", default="ERROR", help="log level of the peers (stderr)")
    if len(sys.argv) > 2 and sys.argv[1:3] == ["--worker", "attacker"]:
        run_attacker()
        return
    args = parser.parse_args()
    if os.environ.get(IN_NAMESPACE) != "1":
        reexec_in_namespace()
    started = time.monotonic()
    results = anyio.run(bench, args, backend="asyncio")
    results["total_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
