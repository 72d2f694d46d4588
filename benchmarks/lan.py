"""LAN transport benchmark: every peer a process, all inside a private network namespace.

    python benchmarks/lan.py            # re-executes itself under `unshare -rn`

Measures: start -> all links open (2, 5, 8 peers); round trip of a 50-byte frame through our
Endpoint vs raw aiortc in the same run (p50/p99); frames/s with 4 and 8 peers all sending to
all (windowed, 64-byte frames); RSS per peer process. Never run the workers on a real network.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process, TaskGroup
from anyio.streams.text import TextReceiveStream

from movex_p2p.errors import ChannelClosed
from movex_p2p.identity import Identity
from movex_p2p.ids import PeerId
from movex_p2p.testing.netns import ADDRESS  # one namespace setup for the tests and the benchmarks
from movex_p2p.testing.netns import reexec_in_namespace as _reexec
from movex_p2p.transport.base import Frame, PeerDown, PeerUp
from movex_p2p.transport.lan import LanEndpoint, LanTransport

IN_NAMESPACE = "MOVEX_BENCH_NETNS"
Event = dict[str, Any]


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"ev": event, "t": time.monotonic(), **fields}) + "\n")
    sys.stdout.flush()


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def stdin_reader() -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader, transport


# --- worker: one LanTransport peer ----------------------------------------------------------


class Worker:
    WINDOW = 2000
    ACK_EVERY = 200

    def __init__(self, endpoint: LanEndpoint) -> None:
        self.ep = endpoint
        self.pongs: MemoryPair = MemoryPair()
        self.received = 0
        self.unacked: dict[PeerId, int] = {}
        self.acked = anyio.Event()
        self.counts: dict[PeerId, int] = {}
        self.names: dict[PeerId, str] = {}

    async def pump(self) -> None:
        while True:
            try:
                event = await self.ep.receive()
            except anyio.EndOfStream:
                return
            match event:
                case PeerUp(peer=peer, name=name):
                    self.names[peer] = name  # ids come from keys: the scripts speak of names
                    emit("up", peer=name)
                case PeerDown(peer=peer, graceful=graceful):
                    emit("down", peer=self.names.get(peer, peer), graceful=graceful)
                case Frame(peer=peer, data=data):
                    kind = data[:1]
                    if kind == b"P":
                        self.ep.send(peer, b"E" + data[1:])
                    elif kind == b"E":
                        self.pongs.put(data)
                    elif kind == b"F":
                        self.received += 1
                        count = self.counts.get(peer, 0) + 1
                        self.counts[peer] = count
                        if count % self.ACK_EVERY == 0:
                            self.ep.send(peer, b"A")
                    elif kind == b"A":
                        self.unacked[peer] = self.unacked.get(peer, 0) - self.ACK_EVERY
                        self.acked.set()
                case _:
                    pass

    async def rtt(self, peer: PeerId, n: int, size: int) -> list[float]:
        samples = []
        padding = b"x" * max(0, size - 9)
        for i in range(n):
            started = time.perf_counter()
            self.ep.send(peer, b"P" + i.to_bytes(8, "big") + padding)
            await self.pongs.get()
            samples.append((time.perf_counter() - started) * 1000)
        return samples

    async def flood(self, seconds: float, size: int) -> int:
        frame = b"F" + b"x" * (size - 1)
        self.received = 0
        peers = sorted(self.ep.peers)
        self.unacked = dict.fromkeys(peers, 0)
        sent = 0
        deadline = anyio.current_time() + seconds
        while anyio.current_time() < deadline:
            progressed = False
            for peer in peers:
                room = self.WINDOW - self.unacked[peer]
                if room >= self.ACK_EVERY:
                    for _ in range(min(room, 100)):
                        self.ep.send(peer, frame)
                    self.unacked[peer] += min(room, 100)
                    sent += min(room, 100)
                    progressed = True
            if progressed:
                await anyio.lowlevel.checkpoint()
            else:
                self.acked = anyio.Event()
                with anyio.move_on_after(0.05):
                    await self.acked.wait()
        return self.received


class MemoryPair:
    """A tiny queue of pongs for the RTT loop (one waiter)."""

    def __init__(self) -> None:
        self.tx, self.rx = anyio.create_memory_object_stream[bytes](100)

    def put(self, data: bytes) -> None:
        self.tx.send_nowait(data)

    async def get(self) -> bytes:
        return await self.rx.receive()

    def close(self) -> None:
        self.tx.close()
        self.rx.close()


async def run_worker(args: argparse.Namespace) -> None:
    transport = LanTransport([ADDRESS], dead_after=args.dead_after)
    identity = Identity.generate()
    reader, pipe = await stdin_reader()
    try:
        async with (
            transport.connect(peer_id=identity.id, name=args.id, room="bench", secret="bench", identity=identity) as ep,
            anyio.create_task_group() as tg,
        ):
            worker = Worker(ep)
            tg.start_soon(worker.pump)
            emit("ready")
            while line := await reader.readline():
                cmd = json.loads(line)
                match cmd["cmd"]:
                    case "rtt":
                        by_name = {name: peer for peer, name in worker.names.items()}
                        emit("rtt", samples=await worker.rtt(by_name[cmd["peer"]], cmd["n"], cmd["size"]))
                    case "flood":
                        received = await worker.flood(cmd["seconds"], cmd["size"])
                        await anyio.sleep(0.5)  # let the last frames land
                        emit("flood", received=received + (worker.received - received))
                    case "rss":
                        emit("rss", kib=rss_kib(), peers=len(ep.peers))
                    case "leave":
                        break
            tg.cancel_scope.cancel()
            worker.pongs.close()
    except ChannelClosed as exc:
        emit("error", error=str(exc))
    finally:
        pipe.close()


# --- worker: raw aiortc, the baseline ---------------------------------------------------------


async def run_raw(args: argparse.Namespace) -> None:
    # The baseline deliberately bypasses movex_p2p: plain aiortc, one message per ping.
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    reader, pipe = await stdin_reader()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        channel = pc.createDataChannel("raw", negotiated=True, id=0, ordered=True)
        if args.lan_timers:  # only our SCTP retransmission timers, to compare them with aiortc's
            from movex_p2p.transport.webrtc import use_lan_timers

            assert use_lan_timers(pc.sctp)
        inbox_tx, inbox_rx = anyio.create_memory_object_stream[bytes](10_000)
        opened = asyncio.Event()
        channel.on("open", opened.set)
        channel.on("message", lambda data: inbox_tx.send_nowait(data))
        if args.role == "offer":
            await pc.setLocalDescription(await pc.createOffer())
            emit("sdp", sdp=pc.localDescription.sdp)
            answer = json.loads(await reader.readline())["sdp"]
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        else:
            offer = json.loads(await reader.readline())["sdp"]
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            emit("sdp", sdp=pc.localDescription.sdp)
        with anyio.fail_after(10):
            await opened.wait()
        emit("open")
        if args.bulk_mb:
            await raw_bulk(channel, inbox_rx, args.role, int(args.bulk_mb * 1_000_000))
        elif args.role == "offer":
            samples = []
            for i in range(args.n):
                started = time.perf_counter()
                channel.send(b"P" + i.to_bytes(8, "big") + b"x" * 41)
                await inbox_rx.receive()
                samples.append((time.perf_counter() - started) * 1000)
            emit("rtt", samples=samples)
        else:
            async with anyio.create_task_group() as tg:

                async def echo() -> None:
                    async for data in inbox_rx:
                        channel.send(b"E" + data[1:])

                tg.start_soon(echo)
                await reader.readline()  # until told to stop
                tg.cancel_scope.cancel()
        inbox_tx.close()
        inbox_rx.close()
    finally:
        with anyio.CancelScope(shield=True):
            await pc.close()
        pipe.close()


async def raw_bulk(channel: Any, inbox: Any, role: str, total: int) -> None:
    """Move ``total`` bytes one way in 64 KiB messages, paced by bufferedAmount; report MB/s."""
    if role == "offer":
        low = anyio.Event()

        def drained() -> None:
            low.set()

        channel.bufferedAmountLowThreshold = 256 * 1024
        channel.on("bufferedamountlow", drained)
        message = bytes(64 * 1024)
        started = time.perf_counter()
        sent = 0
        while sent < total:
            while channel.bufferedAmount > 1024 * 1024:
                low = anyio.Event()
                with anyio.move_on_after(0.05):
                    await low.wait()
            channel.send(message)
            sent += len(message)
        await inbox.receive()  # the receiver's "done"
        seconds = time.perf_counter() - started
        emit("bulk", bytes=sent, seconds=seconds, mb_per_s=sent / seconds / 1e6)
    else:
        got = 0
        while got < total:
            got += len(await inbox.receive())
        channel.send(b"done")
        await anyio.sleep(0.5)


# --- the harness --------------------------------------------------------------------------


class Proc:
    def __init__(self, process: Process) -> None:
        self.process = process
        self.events: list[Event] = []
        self.changed = anyio.Event()

    async def collect(self) -> None:
        assert self.process.stdout is not None
        buffer = ""
        async for chunk in TextReceiveStream(self.process.stdout):
            buffer += chunk
            *lines, buffer = buffer.split("\n")
            self.events += [json.loads(line) for line in lines if line.strip()]
            self.changed.set()
            self.changed = anyio.Event()

    async def wait(self, predicate: Callable[[Event], bool], within: float = 30) -> Event:
        with anyio.fail_after(within):
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                await self.changed.wait()

    async def wait_ev(self, ev: str, within: float = 30) -> Event:
        return await self.wait(lambda e: e["ev"] == ev, within)

    async def send(self, **cmd: Any) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send((json.dumps(cmd) + "\n").encode())


async def stop_all(procs: list[Proc]) -> None:
    """Ask every process to leave; kill those still running after 10 s; reap them all."""
    for proc in procs:
        if proc.process.returncode is None:
            try:
                await proc.send(cmd="leave")
            except (anyio.BrokenResourceError, OSError):
                pass
    with anyio.move_on_after(10):
        for proc in procs:
            await proc.process.wait()
    for proc in procs:
        if proc.process.returncode is None:
            proc.process.kill()
            await proc.process.wait()
        await proc.process.aclose()


class Harness:
    def __init__(self, tg: TaskGroup) -> None:
        self.tg = tg
        self.procs: list[Proc] = []

    async def spawn(self, *args: str) -> Proc:
        process = await anyio.open_process([sys.executable, __file__, *args], stderr=None)
        proc = Proc(process)
        self.procs.append(proc)
        self.tg.start_soon(proc.collect)
        return proc

    async def stop(self, procs: list[Proc]) -> None:
        await stop_all(procs)


async def mesh(h: Harness, n: int, prefix: str, dead_after: float = 1.0) -> tuple[list[Proc], float, float]:
    """Start n peers at once; (procs, seconds spawn->all links open, seconds last ready->all open)."""
    started = time.monotonic()
    procs = [
        await h.spawn("--worker", "peer", "--id", f"{prefix}{i}", "--dead-after", str(dead_after)) for i in range(n)
    ]
    ids = [f"{prefix}{i}" for i in range(n)]
    last_ready = max([(await p.wait_ev("ready"))["t"] for p in procs])
    last_up = 0.0
    for i, proc in enumerate(procs):
        for other in ids:
            if other != ids[i]:
                event = await proc.wait(up_from(other))
                last_up = max(last_up, event["t"])
    return procs, last_up - started, last_up - last_ready


def up_from(peer: str) -> Callable[[Event], bool]:
    return lambda e: e["ev"] == "up" and e["peer"] == peer


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench() -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:
        h = Harness(tg)
        # 1. start -> all links open (default heartbeat: 0.25 s, dead after 1 s)
        results["rss_kib"] = {}
        downs = 0
        for n in (2, 5, 8):
            spawn_open, ready_open, rss = [], [], []
            for run in range(3):
                procs, a, b = await mesh(h, n, f"m{n}r{run}p")
                spawn_open.append(a)
                ready_open.append(b)
                if run == 0:
                    await anyio.sleep(0.5)
                    for proc in procs:
                        await proc.send(cmd="rss")
                    rss = [(await p.wait_ev("rss"))["kib"] for p in procs]
                    results["rss_kib"][n] = statistics.median(rss)
                downs += sum(len([e for e in p.events if e["ev"] == "down" and not e["graceful"]]) for p in procs)
                await h.stop(procs)
            results[f"mesh{n}"] = {
                "spawn_to_all_open_s": statistics.median(spawn_open),
                "last_ready_to_all_open_s": statistics.median(ready_open),
                "runs": [round(x, 3) for x in spawn_open],
            }
            print(f"mesh {n}: {results[f'mesh{n}']}", file=sys.stderr)

        results["false_deaths_during_mesh_runs"] = downs

        # 2. round trip: our Endpoint vs raw aiortc
        procs, _, _ = await mesh(h, 2, "rtt")
        await procs[0].send(cmd="rtt", peer="rtt1", n=200, size=50)  # warm-up
        await procs[0].wait_ev("rtt")
        procs[0].events.clear()
        await procs[0].send(cmd="rtt", peer="rtt1", n=2000, size=50)
        ours = (await procs[0].wait_ev("rtt", within=60))["samples"]
        await h.stop(procs)
        offer = await h.spawn("--worker", "raw", "--role", "offer", "--n", "2200")
        answer = await h.spawn("--worker", "raw", "--role", "answer")
        await answer.send(sdp=(await offer.wait_ev("sdp"))["sdp"])
        await offer.send(sdp=(await answer.wait_ev("sdp"))["sdp"])
        raw = (await offer.wait_ev("rtt", within=60))["samples"][200:]
        await answer.send(cmd="stop")
        await h.stop([offer, answer])
        results["rtt_ms"] = {
            "endpoint": {"p50": pct(ours, 0.5), "p99": pct(ours, 0.99), "n": len(ours)},
            "raw_aiortc": {"p50": pct(raw, 0.5), "p99": pct(raw, 0.99), "n": len(raw)},
        }
        print(f"rtt: {results['rtt_ms']}", file=sys.stderr)

        # 3. frames/s, everyone sending to everyone
        for n in (4, 8):
            procs, _, _ = await mesh(h, n, f"f{n}p")
            seconds = 3.0
            for proc in procs:
                await proc.send(cmd="flood", seconds=seconds, size=64)
            received = [(await p.wait_ev("flood", within=30))["received"] for p in procs]
            results[f"frames_per_s_{n}_peers"] = {
                "total": sum(received) / seconds,
                "per_receiver": statistics.median(received) / seconds,
            }
            results[f"frames_per_s_{n}_peers"]["false_deaths"] = sum(
                len([e for e in p.events if e["ev"] == "down"]) for p in procs
            )
            print(f"flood {n}: {results[f'frames_per_s_{n}_peers']}", file=sys.stderr)
            await h.stop(procs)
        tg.cancel_scope.cancel()
    return results


def reexec_in_namespace() -> None:
    _reexec(IN_NAMESPACE)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", choices=["peer", "raw"])
    parser.add_argument("--id", default="p")
    parser.add_argument("--role", default="offer")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--bulk-mb", type=float, default=0.0, help="raw worker: move this many MB one way")
    parser.add_argument("--lan-timers", action="store_true", help="raw worker: movex_p2p's SCTP timers")
    parser.add_argument("--iface", help="ignored: the multi-host bed passes each host's address")
    parser.add_argument("--dead-after", type=float, default=1.0)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.worker == "peer":
        anyio.run(run_worker, args, backend="asyncio")
    elif args.worker == "raw":
        anyio.run(run_raw, args, backend="asyncio")
    elif os.environ.get(IN_NAMESPACE) != "1":
        reexec_in_namespace()
    else:
        started = time.monotonic()
        results = anyio.run(bench, backend="asyncio")
        results["total_s"] = time.monotonic() - started
        print(json.dumps(results, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
