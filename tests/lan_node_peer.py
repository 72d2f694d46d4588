"""A movex_p2p.Peer over LanTransport for node-level benchmarks (benchmarks/lan_node.py).

Never run this on a real network: the benchmark starts it inside a private namespace. It
reports JSON lines on stdout (``t`` = time.monotonic(), shared by every process) and obeys
JSON commands on stdin, one a line:

- ``{"cmd": "rtt", "n": int}``: dispatch ``n`` actions one at a time, each awaited; report
  the dispatch -> confirmed times in ms (``rtt``).
- ``{"cmd": "flood", "count": int, "window": int, "total": int}``: dispatch ``count``
  actions keeping ``window`` unconfirmed; report ``flood`` once the confirmed state holds
  ``total`` actions (everyone's), with this peer's checksum and state.
- ``{"cmd": "rss"}``, ``{"cmd": "leave"}``.

Startup events: ``entering`` (just before ``Peer.__aenter__``), ``entered``, ``mesh`` (links
to all ``--expect`` others open), ``master`` (each change), ``ready`` (resource bound, synced).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import anyio

import movex_p2p as mx

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script or `python -m tests.lan_node_peer`
from lan_peer import emit, stdin_lines
from resources import Tally


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def confirmed_total(resource: mx.Resource) -> int:
    return sum(resource.confirmed.values())


async def rtt(resource: mx.Resource, me: str, n: int) -> list[float]:
    samples = []
    action = mx.Action("inc", me)
    for _ in range(n):
        started = time.perf_counter()
        await resource.dispatch(action)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def flood(resource: mx.Resource, me: str, count: int, window: int, total: int) -> dict[str, Any]:
    """Dispatch ``count`` actions, ``window`` in flight; wait until ``total`` are confirmed."""
    action = mx.Action("inc", me)
    outstanding: deque[mx.DispatchHandle] = deque()
    rejected = 0
    sent = 0
    started = time.monotonic()
    while sent < count or outstanding:
        room = min(window - len(outstanding), count - sent)
        for _ in range(room):  # refill the window in one burst: the frames coalesce
            outstanding.append(resource.dispatch(action))
        sent += room
        try:
            await outstanding.popleft()
        except mx.MovexError:
            rejected += 1
        while outstanding and outstanding[0].done:  # collect everything already settled
            if outstanding.popleft().error is not None:
                rejected += 1
    own_done = time.monotonic()
    with anyio.move_on_after(30):
        while confirmed_total(resource) < total:  # noqa: ASYNC110 - a bench may poll
            await anyio.sleep(0.002)
    return {
        "started": started,
        "own_done": own_done,
        "all_done": time.monotonic(),
        "rejected": rejected,
        "confirmed_total": confirmed_total(resource),
        "mine": resource.confirmed.get(me, 0),
        "checksum": resource.checksum,
    }


async def run(args: argparse.Namespace) -> None:
    reader, pipe = await stdin_lines()
    mesh_open = anyio.Event()
    try:
        election = None
        if args.election_timeout is not None:  # an experiment: how much of the start is the first election
            timeout = args.election_timeout
            election = mx.ElectionConfig(election_timeout=timeout, heartbeat_interval=timeout / 3, lease=timeout)
        peer = mx.Peer(
            room="lan-node",
            types=[Tally],
            name=args.id,
            seed=args.seed,
            transport=mx.LanTransport([args.iface]),
            election=election,
            _fake_signer=args.fake_signer,
        )
        emit("entering", wall=time.time())
        async with peer:
            emit("entered", id=peer.id, wall=time.time())

            def peers_changed(peers: frozenset[str]) -> None:
                if len(peers) >= args.expect and not mesh_open.is_set():
                    emit("mesh")
                    mesh_open.set()

            peer.on_peers_changed(peers_changed)
            peer.on_master_changed(lambda master, term: emit("master", master=master, term=term))
            peers_changed(peer.peers)
            with anyio.fail_after(30):
                await mesh_open.wait()
                await peer.wait_ready()
                resource = await peer.bind(await peer.create(Tally, id="t"))
            emit("ready", id=peer.id, master=peer.master_id, term=peer.term, is_master=peer.is_master)
            while line := await reader.readline():
                cmd = json.loads(line)
                match cmd["cmd"]:
                    case "rtt":
                        emit("rtt", samples=await rtt(resource, peer.id, cmd["n"]), is_master=peer.is_master)
                    case "flood":
                        result = await flood(resource, peer.id, cmd["count"], cmd["window"], cmd["total"])
                        emit("flood", **result, stats=peer.stats, resyncs=peer.stats["resyncs"])
                    case "rss":
                        emit("rss", kib=rss_kib(), peers=len(peer.peers))
                    case "leave":
                        break
    finally:
        pipe.close()
    emit("left")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--id", required=True)
    parser.add_argument(
        "--fake-signer", action="store_true", help="benchmark only: a keyed hash in place of Ed25519 (same protocol)"
    )
    parser.add_argument("--expect", type=int, required=True, help="other peers to wait for")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--iface", default="127.0.0.2")
    parser.add_argument("--election-timeout", type=float, default=None, help="override ElectionConfig (experiment)")
    parser.add_argument("--profile", help="write cProfile stats of the whole run to this file")
    parser.add_argument("--log", default="WARNING")
    args = parser.parse_args()
    logging.basicConfig(level=args.log, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            anyio.run(run, args, backend="asyncio")
        finally:
            profiler.disable()
            profiler.dump_stats(args.profile)
    else:
        anyio.run(run, args, backend="asyncio")


if __name__ == "__main__":
    main()
