"""A stranger on the LAN (no secret), driven over stdin/stdout by tests/test_hostile_lan.py.

Never run this on a real network: the tests start it inside a private namespace (tests/netns.py),
where every 127.x.y.z address is the namespace's own loopback. Modes (``--mode``):

- ``idle``: hold ``--count`` TCP connections open to ``--port``, each from its own source
  address 127.66.x.y, sending nothing; reopen any the listener closes, until told to stop.
- ``announce``: announce ``--count`` made-up members of ``--room`` over mDNS, pointing at a
  port that accepts and never answers; ``--copy ID`` announces that real peer's id instead,
  with a higher incarnation, pointing at the same dead end.
- ``fail``: run ``--count`` failed handshakes against ``--port``, from rotating source
  addresses (all from ``--iface`` when given: the multi-host bed passes the host's address):
  garbage, a Hello cut short, a Hello with a made-up id, a wrong PAKE message; ``--pace S``
  waits S seconds between two (the listener's refusals then keep doubling).

Events (stdout, JSON lines): ``ready``, ``holding`` (open connections), ``announced``, ``failed``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import SocketStream, TaskGroup

sys.path.insert(0, str(Path(__file__).resolve().parent))

from movex_p2p.identity import Identity
from movex_p2p.transport.signaling import PROTOCOL_VERSION, Hello, Pake, derive_key, encode


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"ev": event, "t": time.monotonic(), **fields}) + "\n")
    sys.stdout.flush()


def source(i: int) -> str:
    return f"127.66.{i // 250}.{i % 250 + 1}"


async def connect_from(address: str, host: str, port: int) -> SocketStream:
    return await anyio.connect_tcp(host, port, local_host=address)


async def run_idle(args: argparse.Namespace) -> None:
    held: dict[int, SocketStream] = {}

    async def hold(i: int) -> None:
        while True:
            try:
                stream = await connect_from(source(i), args.host, args.port)
            except OSError:
                await anyio.sleep(0.05)
                continue
            held[i] = stream
            try:
                while True:
                    await stream.receive()  # the listener says nothing to an idle stranger
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                pass
            finally:
                del held[i]
                await stream.aclose()
            await anyio.sleep(0.05)

    async with anyio.create_task_group() as tg:
        for i in range(args.count):
            tg.start_soon(hold, i)
        emit("ready")
        await report_until_stdin_closes(tg, lambda: emit("holding", open=len(held)))


async def report_until_stdin_closes(tg: TaskGroup, report: Any) -> None:
    async with await anyio.open_file(sys.stdin.fileno(), closefd=False) as stdin:
        async for line in stdin:
            if json.loads(line).get("cmd") != "report":
                break
            report()
    tg.cancel_scope.cancel()


async def run_announce(args: argparse.Namespace) -> None:
    from zeroconf import IPVersion
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    sink = socket.create_server((args.host, 0))  # accepts and never answers
    port = sink.getsockname()[1]
    azc = AsyncZeroconf(interfaces=[args.host], ip_version=IPVersion.V4Only)
    try:
        ids = [args.copy] if args.copy else [Identity(os.urandom(32)).id for _ in range(args.count)]
        announcements = []
        for peer in ids:
            info = AsyncServiceInfo(
                "_movex._tcp.local.",
                f"{peer}._movex._tcp.local.",
                port=port,
                properties={
                    "room": args.room,
                    "id": peer,
                    "v": str(PROTOCOL_VERSION),
                    "inc": str(time.time_ns() + 10**15),  # "newer" than any real incarnation
                    "sig": str(port),
                    "name": "fake",
                },
                server=f"{peer}-fake.local.",
                parsed_addresses=[args.host],
            )
            announcements.append(
                await azc.async_register_service(info, allow_name_change=True, cooperating_responders=True)
            )
        await asyncio.gather(*announcements)
        emit("announced", count=len(ids), port=port)
        async with await anyio.open_file(sys.stdin.fileno(), closefd=False) as stdin:
            async for _ in stdin:
                break
    finally:
        await azc.async_close()
        sink.close()


async def run_fail(args: argparse.Namespace) -> None:
    wrong = derive_key(args.room, "not the secret")
    me = Identity(os.urandom(32))
    outcomes: dict[str, int] = {}

    def hello(**changes: Any) -> bytes:
        fields: dict[str, Any] = {
            "version": PROTOCOL_VERSION,
            "sender": me.id,
            "receiver": "",
            "name": "stranger",
            "incarnation": 1,
            "nonce": os.urandom(16),
            "key": me.public_key,
            "pake": Pake(wrong).message,
        }
        return encode(Hello(**{**fields, **changes}))

    kinds = [
        b"\x00\x00\x00\x05{not",  # garbage
        hello()[:20],  # a Hello cut short
        hello(sender="made-up-id"),  # an id its key does not prove
        hello(pake=b"S" + bytes(32)),  # a PAKE message that is not a group element
    ]
    for i in range(args.count):
        kind = i % len(kinds)
        outcome = "closed"
        try:
            with anyio.fail_after(5):
                async with await connect_from(args.iface or source(i % 5000), args.host, args.port) as stream:
                    await stream.send(kinds[kind])
                    await stream.send_eof()
                    try:
                        while await stream.receive():
                            pass
                    except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                        pass
        except (OSError, TimeoutError) as exc:
            outcome = type(exc).__name__
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        await anyio.sleep(args.pace)
    emit("failed", outcomes=outcomes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["idle", "announce", "fail"], required=True)
    parser.add_argument("--host", default="127.0.0.2")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--room", default="room")
    parser.add_argument("--copy", default="")
    parser.add_argument("--pace", type=float, default=0.0, help="fail: seconds between two handshakes")
    parser.add_argument("--iface", default="", help="fail: every handshake from this source address")
    args = parser.parse_args()
    runner = {"idle": run_idle, "announce": run_announce, "fail": run_fail}[args.mode]
    anyio.run(runner, args, backend="asyncio")


if __name__ == "__main__":
    main()
