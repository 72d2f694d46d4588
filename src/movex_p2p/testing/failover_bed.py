"""Failover on the real stack: N Peer processes in one namespace, the master killed or asked to leave.

Shared by tests/test_failover_netns.py and benchmarks/failover.py. Times use CLOCK_MONOTONIC,
which every process on the machine shares.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import anyio

from .netns import PeerProcess, ProcessBed

FAILOVER_PEER = ["-m", "movex_p2p.testing.peer", "peer", "--room", "failover", "--tally"]
"""The peer program's arguments for one peer of the failover beds (a tally, dispatched on ``go``)."""


@dataclass
class FailoverResult:
    """What one run measured and whether every invariant held."""

    peers: int
    mode: str
    pause: float
    """Seconds from the kill (or the leave command) until every survivor had an action confirmed by the new master."""
    lost: int = 0
    doubled: int = 0
    checksums: int = 0
    resyncs: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.lost == 0 and self.doubled == 0 and self.checksums == 1


async def stop_and_report(procs: list[PeerProcess], *, agree_within: float = 10.0) -> list[dict[str, Any]]:
    """Stop every peer's dispatching, wait until each settled its own actions, then collect ``final``:
    again every 0.5 s while their checksums differ, for up to ``agree_within`` seconds (the last entries
    may still be on their way: at 10 % loss a frame can wait a retransmission of up to 1 s)."""
    for p in procs:
        await p.command("stop")
    for p in procs:
        await p.wait_event("stopped", within=60)
    deadline = time.monotonic() + agree_within
    while True:
        for p in procs:
            p.events[:] = [e for e in p.events if e["ev"] != "final"]
            await p.command("report")
        finals = [await p.wait_event("final", within=60) for p in procs]
        if len({f["checksum"] for f in finals}) == 1 or time.monotonic() > deadline:
            return finals
        await anyio.sleep(0.5)


async def failover_run(
    ns: ProcessBed, peers: int, *, mode: str = "kill", run: int = 0, lead: float = 0.6
) -> FailoverResult:
    """Start ``peers`` processes, let them dispatch, remove the master, check the outcome."""
    procs: dict[str, PeerProcess] = {}
    for i in range(peers):
        name = f"r{run}p{i}"
        procs[name] = await ns.spawn(
            [*FAILOVER_PEER, "--name", name, "--expect", str(peers - 1), "--seed", str(run * 100 + i)],
            name=name,
        )
    ready = {name: await p.wait_event("ready", within=60) for name, p in procs.items()}
    masters = {e["master"] for e in ready.values()}
    if len(masters) != 1:  # one election may still be settling: wait until all agree
        await anyio.sleep(0.5)
    for p in procs.values():
        await p.command("go")
    await anyio.sleep(lead)
    master_id = next(iter(ready.values()))["master"]
    old_term = max(int(e["term"]) for e in ready.values())
    victim = next(p for p in procs.values() if any(e.get("id") == master_id for e in p.of("ready")))
    survivors = {name: p for name, p in procs.items() if p is not victim}
    started = time.monotonic()
    if mode == "kill":
        victim.kill()
    else:
        await victim.command("leave")
    result = FailoverResult(peers=peers, mode=mode, pause=float("nan"))
    try:
        firsts = [
            await p.wait_for(lambda e: e["ev"] == "term_confirm" and int(e["term"]) > old_term, within=15)
            for p in survivors.values()
        ]
        result.pause = max(e["t"] for e in firsts) - started
    except TimeoutError:
        result.problems.append("a survivor had nothing confirmed by a new master within 15 s")
    await anyio.sleep(0.3)
    finals = await stop_and_report(list(survivors.values()))
    states = [f["state"] for f in finals]
    result.checksums = len({f["checksum"] for f in finals})
    result.resyncs = sum(int(f["resyncs"]) for f in finals)
    final_state: dict[str, Any] = states[0]
    for f in finals:
        mine = int(final_state.get(f["id"], 0))
        if f["rejected"]:
            result.problems.append(f"{f['id']}: {f['rejected']} actions rejected")
        if f["confirmed"] != f["dispatched"] - f["rejected"]:
            result.lost += f["dispatched"] - f["confirmed"]
        if mine > f["confirmed"]:
            result.doubled += mine - f["confirmed"]
        elif mine < f["confirmed"]:
            result.lost += f["confirmed"] - mine
    await ns.leave_all(list(survivors.values()), within=15)
    if mode == "leave":
        with anyio.fail_after(10):
            await victim.process.wait()
    return result
