"""A movex_p2p.Peer over LanTransport that dispatches steadily: the process of the failover bed.

Run inside a private network namespace (see tests/netns.py). It reports JSON lines on stdout
and obeys JSON commands on stdin: ``go`` (start dispatching), ``stop`` (stop dispatching, report
``stopped`` once its own actions settled), ``report`` (send it once every peer stopped: report
``final`` with the state), ``leave`` (exit gracefully: a master hands over first).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import anyio
from anyio.abc import TaskGroup

import movex_p2p as mx

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as `python -m tests.failover_peer`
from lan_peer import emit, stdin_lines
from resources import Blob, Tally

HEARTBEAT_GAPS: list[float] = []
STOCK_SETUP = "MOVEX_BENCH_STOCK_SETUP"
"""Set to 1 in the environment: this peer's links are set up without the link-setup workarounds."""


def trace_heartbeats(peer: mx.Peer) -> None:
    """Record the gaps between election heartbeats from the master (an instrument for benchmarks/wifi.py)."""
    from movex_p2p.election import machine as el
    from movex_p2p.election.messages import Heartbeat

    election = peer._core.election
    step = election.step
    last: list[float] = []

    def traced(event: el.Input, now: float) -> list[el.Effect]:
        if isinstance(event, el.Received) and isinstance(event.message, Heartbeat):
            if last:
                HEARTBEAT_GAPS.append(now - last[0])
            last[:] = [now]
        return step(event, now)

    election.step = traced  # type: ignore[method-assign]


async def run(args: argparse.Namespace) -> None:
    reader, pipe = await stdin_lines()
    stats = {"dispatched": 0, "confirmed": 0, "rejected": 0, "stuck": 0}
    terms_seen: set[int] = set()
    going = anyio.Event()
    stopping = anyio.Event()
    try:
        async with (
            mx.Peer(
                room="failover",
                types=[Tally, Blob],
                name=args.id,
                seed=args.seed,
                transport=mx.LanTransport([args.iface]),
            ) as peer,
            anyio.create_task_group() as tg,
        ):
            emit("entered", id=peer.id, mono=time.monotonic())
            if args.trace_heartbeats:
                trace_heartbeats(peer)
            peer.on_master_changed(lambda master, term: emit("master", master=master, term=term, mono=time.monotonic()))
            peer.on_peers_changed(lambda peers: emit("peers", peers=sorted(peers), mono=time.monotonic()))
            with anyio.fail_after(30):
                while len(peer.peers) < args.expect:  # noqa: ASYNC110 - a test bed may poll
                    await anyio.sleep(0.02)
                await peer.wait_ready()
            resource = await peer.bind(await peer.create(Tally, id="t"))
            for i in range(args.blobs):  # a room of ``blobs`` MB: 1 MB resources (states over one piece each)
                await peer.create(Blob, {"data": bytes([i % 256]) * 1_000_000}, id=f"b{i}")
            if args.expect_blobs:
                with anyio.fail_after(300):
                    while sum(rid.startswith("blob:") for rid in peer.resources()) < args.expect_blobs:  # noqa: ASYNC110
                        await anyio.sleep(0.005)
                emit("blobs", mono=time.monotonic(), gaps=HEARTBEAT_GAPS)
            emit("ready", id=peer.id, master=peer.master_id, term=peer.term)

            async def confirm(handle: mx.DispatchHandle) -> None:
                try:
                    await handle
                except mx.ActionStuck:
                    stats["stuck"] += 1
                    stats["rejected"] += 1
                    return
                except mx.MovexError as exc:
                    stats["rejected"] += 1
                    emit("rejected", error=f"{type(exc).__name__}: {exc}", mono=time.monotonic())
                    return
                stats["confirmed"] += 1
                if peer.term not in terms_seen:
                    terms_seen.add(peer.term)
                    emit("term_confirm", term=peer.term, master=peer.master_id, mono=time.monotonic())

            async def dispatch_loop(task_group: TaskGroup) -> None:
                await going.wait()
                while not stopping.is_set():
                    stats["dispatched"] += 1
                    task_group.start_soon(confirm, resource.dispatch(mx.Action("inc", peer.id)))
                    await anyio.sleep(args.interval)

            async def settle_burst(handles: list[mx.DispatchHandle]) -> None:
                async with anyio.create_task_group() as burst:
                    for handle in handles:
                        burst.start_soon(confirm, handle)
                emit("burst_settled", n=len(handles), mono=time.monotonic())

            tg.start_soon(dispatch_loop, tg)
            while True:
                line = await reader.readline()
                if not line:
                    break
                command = json.loads(line)
                cmd = command["cmd"]
                if cmd == "go":
                    going.set()
                elif cmd == "stop":  # stop dispatching; report once every own action settled
                    stopping.set()
                    with anyio.move_on_after(10):
                        while stats["confirmed"] + stats["rejected"] < stats["dispatched"]:  # noqa: ASYNC110
                            await anyio.sleep(0.02)
                    emit("stopped", id=peer.id)
                elif cmd == "burst":  # ``n`` dispatches at once, then ``more``: all in flight together
                    handles = [resource.dispatch(mx.Action("inc", peer.id)) for _ in range(int(command["n"]))]
                    handles += [resource.dispatch(mx.Action("inc", peer.id)) for _ in range(int(command["more"]))]
                    stats["dispatched"] += len(handles)
                    emit("burst_sent", n=len(handles), mono=time.monotonic())
                    tg.start_soon(settle_burst, handles)
                elif cmd == "report":  # once every peer stopped: the room is quiet
                    await anyio.sleep(args.settle)
                    emit(
                        "final",
                        version=resource.version,
                        id=peer.id,
                        state=dict(resource.state),
                        checksum=resource.checksum,
                        master=peer.master_id,
                        term=peer.term,
                        resyncs=peer.stats["resyncs"],
                        **stats,
                    )
                elif cmd == "leave":
                    emit("leaving", mono=time.monotonic())
                    stopping.set()
                    tg.cancel_scope.cancel()
                    break
    finally:
        pipe.close()
    emit("left", mono=time.monotonic())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--id", required=True)
    parser.add_argument("--expect", type=int, required=True, help="other peers to wait for")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between dispatches")
    parser.add_argument("--settle", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--iface", default="127.0.0.2")
    parser.add_argument("--blobs", type=int, default=0, help="create this many 1 MB resources before ready")
    parser.add_argument("--expect-blobs", type=int, default=0, help="report `blobs` once this many are here")
    parser.add_argument("--trace-heartbeats", action="store_true", help="report the gaps between heartbeats")
    parser.add_argument("--log", default="WARNING")
    args = parser.parse_args()
    logging.basicConfig(level=args.log, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    if os.environ.get(STOCK_SETUP) == "1":  # benchmarks/wifi.py --compare-setup: aiortc as shipped
        from movex_p2p.transport.webrtc import RtcSession

        RtcSession.link_setup_fixes = False
    anyio.run(run, args, backend="asyncio")


if __name__ == "__main__":
    main()
