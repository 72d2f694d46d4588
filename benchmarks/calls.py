"""In-process calls per hop of one dispatch, counted with sys.setprofile (deterministic, no timing).

Run: python benchmarks/calls.py

Two Peers on a LocalNetwork; the client dispatches a counter increment and the three hops of
its route are run one at a time, each under a profiler that counts Python function calls:

1. client: ``res.dispatch(action)``, then the driver's end-of-turn step, until the frame is
   handed to ``Endpoint.send``;
2. master: the driver's step for that frame (decode, route, apply, publish) until the
   confirmations are handed to ``Endpoint.send``;
3. client: the driver's step for the confirmation until the dispatch handle is settled.

Calls are counted in three groups: the route (node, NodeCore, the resource and election cores),
the codec and the data work (wire, state: freeze and checksum, values, types), and everything
else (generated dataclass __init__, anyio, the reducer). The transport's own code is not counted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter as Tally
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import anyio

import movex_p2p as mx
from movex_p2p.ids import PeerId
from movex_p2p.routes import Lane
from movex_p2p.testing.types import Counter
from movex_p2p.transport.base import Frame
from movex_p2p.transport.memory import _LocalEndpoint

PACKAGE = Path(mx.__file__).resolve().parent
CODEC_AND_DATA = {"wire.py", "state.py", "values.py", "types.py"}


class Calls:
    """A profile function counting Python calls by group."""

    def __init__(self) -> None:
        self.groups: Tally[str] = Tally()
        self.functions: Tally[str] = Tally()

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        path = Path(frame.f_code.co_filename)
        if path.is_relative_to(PACKAGE):
            if "transport" in path.parts:
                return
            group = "codec+data" if path.name in CODEC_AND_DATA else "route"
            self.functions[f"{path.relative_to(PACKAGE)}:{frame.f_code.co_name}"] += 1
        else:
            group = "other"
        self.groups[group] += 1

    @property
    def total(self) -> int:
        return sum(self.groups.values())


def counted(fn: Callable[[], object]) -> Calls:
    calls = Calls()
    sys.setprofile(calls)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


def step(peer: mx.Peer, src: str, data: bytes) -> Calls:
    """What the driver does with one frame (see Driver.run): one core step, then execute its Ready."""
    event = Frame(peer=PeerId(src), data=data)
    driver = peer._driver
    assert driver is not None
    return counted(lambda: driver.step([event]))


def dispatch(peer: mx.Peer, res: mx.Resource, handles: list[mx.DispatchHandle]) -> Calls:
    """The app's dispatch, then the driver's step at the end of the turn (see Driver.command)."""
    driver = peer._driver
    assert driver is not None

    def dispatch_and_flush() -> None:
        handles.append(res.dispatch(mx.Action("increment")))
        driver._end_of_turn()

    return counted(dispatch_and_flush)


class HoldingNetwork(mx.LocalNetwork):
    """A LocalNetwork that, while ``held`` is a list, keeps frames there instead of delivering them."""

    held: list[tuple[str, str, bytes]] | None = None

    def _deliver(self, source: _LocalEndpoint, peer: PeerId, data: bytes, lane: Lane) -> None:
        if self.held is None:
            super()._deliver(source, peer, data, lane)
        else:
            if lane is Lane.RELIABLE:  # a due timer's datagrams (heartbeats) are not the dispatch's route
                self.held.append((source.peer_id, peer, data))


async def measure(samples: int) -> list[tuple[Calls, Calls, Calls]]:
    network = HoldingNetwork()
    async with (
        mx.Peer(room="calls", types=[Counter], transport=network, seed=1, name="a") as a,
        mx.Peer(room="calls", types=[Counter], transport=network, seed=2, name="b") as b,
    ):
        with anyio.fail_after(10):
            while not (a.ready and b.ready and a.master_id is not None and a.master_id == b.master_id):  # noqa: ASYNC110
                await anyio.sleep(0.01)
        master, client = (a, b) if a.is_master else (b, a)
        rid = await client.create(Counter, id="c")
        res = await client.bind(rid)
        await master.bind(rid)
        for _ in range(10):
            await res.dispatch(mx.Action("increment"))
        rows = []
        for _ in range(samples):
            await anyio.sleep(0.002)
            captured: list[tuple[str, str, bytes]] = []
            network.held = captured  # each hop runs alone under the profiler
            handles: list[mx.DispatchHandle] = []
            hop1 = dispatch(client, res, handles)
            ((src, _, data),) = captured
            captured.clear()
            hop2 = step(master, src, data)
            ((src, _, data),) = [c for c in captured if c[1] == client.id]
            network.held = None
            hop3 = step(client, src, data)
            assert handles[0].done, "the confirmation did not settle the dispatch"
            rows.append((hop1, hop2, hop3))
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--functions", action="store_true", help="list the route's functions per hop")
    args = parser.parse_args()
    rows = anyio.run(measure, args.samples)
    names = [
        "client: dispatch, end-of-turn step -> frame to the endpoint",
        "master: frame in -> confirmations to the endpoint",
        "client: confirmation in -> dispatch settled",
    ]
    print("Python calls per hop (median of", args.samples, "dispatches): route / codec+data / other / total")
    for i, name in enumerate(names):
        hops = [row[i] for row in rows]

        def median(group: str, hops: list[Calls] = hops) -> int:
            return round(statistics.median(h.groups[group] for h in hops))

        total = round(statistics.median(h.total for h in hops))
        print(f"  {name:52} {median('route'):4} / {median('codec+data'):4} / {median('other'):4} / {total:4}")
        if args.functions:
            for function, count in sorted(hops[-1].functions.items()):
                print(f"      {count} {function}")


if __name__ == "__main__":
    main()
