"""A LanTransport peer driven over stdin/stdout, for tests that run inside a network namespace.

Never run this on a real network: tests/netns.py starts it inside a private namespace.
Commands (stdin, one JSON object a line): ``{"cmd": "send_all", "data": str}``,
``{"cmd": "send", "peer": str, "data": str}``, ``{"cmd": "status"}``, ``{"cmd": "leave"}``.
Events (stdout, one JSON object a line, ``t`` = time.monotonic()): ``ready``, ``up``,
``down``, ``frame``, ``status``, ``left``; ``offer`` in ``--mode offer``.

Peer ids are derived from keys: ``--id NAME`` makes the identity :func:`identity_of` (NAME), and
every id this script prints or reads is shown as the name of the peer it belongs to.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as `python -m tests.lan_peer`: tests/ importable

from movex_p2p.errors import ChannelClosed, MovexError
from movex_p2p.identity import Identity
from movex_p2p.ids import PeerId
from movex_p2p.transport.base import Frame, PeerDown, PeerUp
from movex_p2p.transport.lan import LanEndpoint, LanTransport
from movex_p2p.transport.signaling import (
    MAX_MEMBERS,
    Challenge,
    Contact,
    Exchange,
    derive_key,
    run_dialer,
)
from movex_p2p.transport.webrtc import RtcSession, candidate_types


def identity_of(name: str) -> Identity:
    """The test identity of the peer called ``name`` (the same in every process)."""
    return Identity(hashlib.sha256(b"movex-p2p/tests/" + name.encode()).digest())


NAMES: dict[str, str] = {identity_of(f"p{i}").id: f"p{i}" for i in range(100)}
"""Peer id -> test name, for every id this script may print."""


def alias(peer: str) -> str:
    return NAMES.get(peer, peer)


def aliased(text: str) -> str:
    for peer, name in NAMES.items():
        if peer in text:
            text = text.replace(peer, name)
    return text


def rss_kib() -> int:
    """This process's resident memory (Linux), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"ev": event, "t": time.monotonic(), **fields}) + "\n")
    sys.stdout.flush()


async def stdin_lines() -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader, transport


async def pump_events(endpoint: LanEndpoint) -> None:
    while True:
        try:
            event = await endpoint.receive()
        except anyio.EndOfStream:
            return
        match event:
            case PeerUp(peer=peer, name=name):
                NAMES.setdefault(peer, name)
                emit("up", peer=alias(peer), name=name)
            case PeerDown(peer=peer, graceful=graceful):
                emit("down", peer=alias(peer), graceful=graceful)
            case Frame(peer=peer, data=data):
                emit("frame", peer=alias(peer), data=data.decode(errors="replace"))


def execute(endpoint: LanEndpoint, command: dict[str, Any]) -> bool:
    """Run one command; False once asked to leave."""
    match command.get("cmd"):
        case "send_all":
            for peer in sorted(endpoint.peers):
                endpoint.send(peer, str(command["data"]).encode())
        case "send":
            try:
                endpoint.send(identity_of(command["peer"]).id, str(command["data"]).encode())
            except ChannelClosed as exc:
                emit("send_failed", peer=command["peer"], error=str(exc))
        case "status":
            lan = json.loads(aliased(json.dumps(dataclasses.asdict(endpoint.status()))))
            for field in ("seen", "learnt", "linked"):
                lan[field] = sorted(lan[field])
            emit(
                "status",
                peers=sorted(alias(p) for p in endpoint.peers),
                auth_failures=len(endpoint.auth_failures),
                dialing=sorted(alias(p) for p in endpoint._dialers),  # peers with a dial loop (tests peek)
                port=endpoint.signaling_port,
                lan=lan,
                rss_kib=rss_kib(),
            )
        case "leave":
            return False
    return True


async def run_peer(args: argparse.Namespace) -> None:
    transport = LanTransport(
        [args.iface],
        port=args.listen_port,
        peers=args.peer,
        heartbeat_interval=args.heartbeat,
        dead_after=args.dead_after,
        connect_timeout=5.0,
    )
    reader, pipe = await stdin_lines()
    try:
        await serve_commands(transport, reader, args)
    finally:
        pipe.close()


async def serve_commands(transport: LanTransport, reader: asyncio.StreamReader, args: argparse.Namespace) -> None:
    identity = identity_of(args.id)
    NAMES[identity.id] = args.id
    async with (
        transport.connect(
            peer_id=identity.id, name=args.name or args.id, room=args.room, secret=args.secret, identity=identity
        ) as endpoint,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(pump_events, endpoint)
        emit("ready", id=endpoint.id, port=endpoint.signaling_port, incarnation=endpoint.incarnation)
        while True:
            line = await reader.readline()
            if not line:
                break
            if not execute(endpoint, json.loads(line)):
                break
        tg.cancel_scope.cancel()
    emit("left", auth_failures=len(endpoint.auth_failures))


async def run_offer(args: argparse.Namespace) -> None:
    session = RtcSession(addresses=[args.iface])
    try:
        sdp = await session.create_offer()
        emit("offer", candidates=candidate_types(sdp))
    finally:
        with anyio.CancelScope(shield=True):
            await session.close()


GARBAGE: list[bytes] = [
    b"\x00\x00\x00\x05{not json",  # a short, malformed message
    b"\xff\xff\xff\xff" + b"x" * 64,  # a length far over the limit
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # another protocol
    b'\x00\x00\x00\x0b{"t":"offer"}',  # a well-formed frame out of order
    b'\x00\x00\x00\x2a{"t":"hello","v":1,"from":1,"to":[]}' + b" " * 8,  # wrong types
    bytes(range(256)) * 4,  # noise
    b"",  # connect and hang up
]


async def run_garbage(args: argparse.Namespace) -> None:
    """Send each kind of garbage to a signaling port; report how each connection ended."""
    for payload in GARBAGE:
        outcome = "closed"
        try:
            async with await anyio.connect_tcp(args.iface, args.port) as stream:
                if payload:
                    await stream.send(payload)
                with anyio.fail_after(10):
                    try:
                        while True:
                            await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
                        pass
        except TimeoutError:
            outcome = "hung"
        except OSError as exc:
            outcome = f"error {exc!r}"
        emit("garbage", size=len(payload), outcome=outcome)
    emit("done")


async def run_hostile(args: argparse.Namespace) -> None:
    """A room member (it knows the secret) that floods a peer with made-up members, handshake after handshake."""
    key = derive_key(args.room, args.secret)
    outcomes: list[str] = []
    for round_ in range(args.rounds):
        ghosts = tuple(
            Contact(
                peer=PeerId(f"ghost{round_}-{i}"),
                addresses=("224.0.0.251", "127.0.0.1", *(f"10.66.{i}.{j}" for j in range(1, 7))),
                port=1 + i,
            )
            for i in range(MAX_MEMBERS)
        )
        identity = identity_of(f"hostile{round_}")

        async def create_offer(
            challenge: Challenge, identity: Identity = identity, ghosts: tuple[Contact, ...] = ghosts
        ) -> Exchange:
            me = Contact(peer=identity.id, addresses=(args.iface,), port=9)
            return Exchange(sdp="v=0\r\n", me=me, members=ghosts)  # no usable SDP: no link, only the hints

        try:
            async with await anyio.connect_tcp(args.iface, args.port) as stream:
                await run_dialer(
                    stream,
                    key=key,
                    identity=identity,
                    receiver=None,
                    name="hostile",
                    incarnation=1,
                    create_offer=create_offer,
                )
            outcomes.append("answered")
        except MovexError as exc:
            outcomes.append(type(exc).__name__)
    emit("hostile", outcomes=outcomes)


async def run_node(args: argparse.Namespace) -> None:
    """A movex_p2p.Peer over LanTransport: wait for ``--expect`` others, add ``--count`` to counter:c1."""
    import movex_p2p as mx
    from resources import Counter as counter_type

    reader, pipe = await stdin_lines()
    try:
        transport = mx.LanTransport([args.iface], port=args.listen_port, peers=args.peer)
        emit("entering")
        async with mx.Peer(
            room=args.room, types=[counter_type], name=args.id, secret=args.secret, transport=transport
        ) as peer:
            with anyio.fail_after(20):
                while len(peer.peers) < args.expect:  # noqa: ASYNC110 - a test script may poll
                    await anyio.sleep(0.05)
                await peer.wait_ready()
            emit("node_ready", id=peer.id, master=peer.master_id, peers=sorted(peer.peers))
            rid = await peer.create(counter_type, {"count": 0}, id="c1")
            resource = await peer.bind(rid)
            for _ in range(args.count):
                await resource.dispatch(mx.Action("increment"))
            emit("dispatched", id=peer.id, count=resource.state["count"])
            with anyio.fail_after(20):
                while resource.state["count"] < args.total:  # noqa: ASYNC110
                    await anyio.sleep(0.02)
            emit("synced", count=resource.state["count"], checksum=resource.checksum, master=peer.master_id)
            await reader.readline()  # until told to leave
    finally:
        pipe.close()
    emit("left")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["peer", "offer", "garbage", "node", "hostile"], default="peer")
    parser.add_argument("--rounds", type=int, default=10, help="hostile: handshakes to flood")
    parser.add_argument("--port", type=int, default=0, help="garbage: the signaling port to attack")
    parser.add_argument("--listen-port", type=int, default=0, help="peer, node: our signaling port")
    parser.add_argument("--peer", action="append", default=[], help="peer, node: HOST:PORT to dial (repeatable)")
    parser.add_argument("--expect", type=int, default=0, help="node: other peers to wait for")
    parser.add_argument("--count", type=int, default=0, help="node: increments to dispatch")
    parser.add_argument("--total", type=int, default=0, help="node: the count every peer must reach")
    parser.add_argument("--id", default="p0")
    parser.add_argument("--name", default="")
    parser.add_argument("--room", default="room")
    parser.add_argument("--secret", default=None)
    parser.add_argument("--iface", default="127.0.0.2")
    parser.add_argument("--heartbeat", type=float, default=0.25)
    parser.add_argument("--dead-after", type=float, default=1.0)
    parser.add_argument("--log", default="WARNING")
    args = parser.parse_args()
    logging.basicConfig(level=args.log, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    runners = {"peer": run_peer, "offer": run_offer, "garbage": run_garbage, "node": run_node, "hostile": run_hostile}
    runner = runners[args.mode]
    anyio.run(runner, args, backend="asyncio")


if __name__ == "__main__":
    main()
