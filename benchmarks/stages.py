"""Time per stage of one dispatch's route, in process: where a round trip's CPU goes.

Run: python benchmarks/stages.py [--samples 2000]

Two Peers on a LocalNetwork (benchmarks/calls.py's HoldingNetwork: each hop runs alone); the
client dispatches a counter increment and each stage is timed with ``time.perf_counter``:

1. client, app task: ``res.dispatch`` (the reducer predicts the view; the Propose is queued);
2. client, end of the loop turn: the driver's step (endorse = one Ed25519 signature, encode, send);
3. master, driver: the step for that frame (decode, verify the endorsement, apply, seal = one
   signature, encode, send);
4. client, driver: the step for the confirmation (decode, apply, settle the handle).

Inside the steps, the time in Ed25519 (``Identity.sign``, ``identity.verify``) and in action
digests (``history.action_digest``) is counted apart. Then the cost of the two ways a step is
reached: a task woken by a memory stream (a driver waking on input: one task hand-off) and a
``call_soon`` callback (the end-of-turn step), each the median of as many loop turns.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import anyio
from calls import HoldingNetwork

import movex_p2p as mx
from movex_p2p import identity, signing
from movex_p2p.ids import PeerId
from movex_p2p.resource import authorship, history, pending
from movex_p2p.testing.types import Counter
from movex_p2p.transport.base import Frame

SPENT: dict[str, float] = {"ed25519": 0.0, "digest": 0.0}


def timed(kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[kind] += time.perf_counter() - started

    return wrapper


def instrument() -> None:
    """Count the time in Ed25519 and in action digests (the modules' own references are wrapped)."""
    mx.Identity.sign = timed("ed25519", mx.Identity.sign)  # type: ignore[method-assign]
    signing.verify = timed("ed25519", identity.verify)  # type: ignore[attr-defined]
    digest = timed("digest", history.action_digest)
    for module in (history, authorship, pending):
        module.action_digest = digest  # type: ignore[attr-defined]


def us(seconds: float) -> float:
    return round(seconds * 1e6, 1)


async def route(samples: int) -> dict[str, list[float]]:
    network = HoldingNetwork()
    rows: dict[str, list[float]] = {k: [] for k in ("dispatch", "end_of_turn", "master", "client", "ed25519", "digest")}
    async with (
        mx.Peer(room="stages", types=[Counter], transport=network, seed=1, name="a") as a,
        mx.Peer(room="stages", types=[Counter], transport=network, seed=2, name="b") as b,
    ):
        with anyio.fail_after(10):
            while not (a.ready and b.ready and a.master_id is not None and a.master_id == b.master_id):  # noqa: ASYNC110
                await anyio.sleep(0.01)
        master, client = (a, b) if a.is_master else (b, a)
        res = await client.bind(await client.create(Counter, id="c"))
        await master.bind(res.rid)
        for _ in range(20):
            await res.dispatch(mx.Action("increment"))
        mdriver, cdriver = master._driver, client._driver
        assert mdriver is not None
        assert cdriver is not None
        for _ in range(samples):
            await anyio.sleep(0.001)
            held: list[tuple[str, str, bytes]] = []
            network.held = held
            SPENT.update(ed25519=0.0, digest=0.0)
            t0 = time.perf_counter()
            handle = res.dispatch(mx.Action("increment"))
            t1 = time.perf_counter()
            cdriver._end_of_turn()
            t2 = time.perf_counter()
            ((src, _, data),) = held
            held.clear()
            mdriver.step([Frame(peer=PeerId(src), data=data)])
            t3 = time.perf_counter()
            ((src, _, data),) = [h for h in held if h[1] == client.id]
            network.held = None
            cdriver.step([Frame(peer=PeerId(src), data=data)])
            t4 = time.perf_counter()
            assert handle.done
            stages = ("dispatch", "end_of_turn", "master", "client")
            for key, value in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                rows[key].append(value)
            rows["ed25519"].append(SPENT["ed25519"])
            rows["digest"].append(SPENT["digest"])
    return rows


async def hand_offs(samples: int) -> dict[str, float]:
    """A task woken through a memory stream, and a call_soon callback: send/schedule -> running."""
    send, receive = anyio.create_memory_object_stream[float](1)
    woken: list[float] = []

    async def reader() -> None:
        async for sent in receive:
            woken.append(time.perf_counter() - sent)  # noqa: PERF401  (the time it is woken, not later)

    soon: list[float] = []
    loop = asyncio.get_running_loop()
    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        for _ in range(samples):
            await anyio.sleep(0.0002)
            send.send_nowait(time.perf_counter())
        await anyio.sleep(0.01)
        for _ in range(samples):
            await anyio.sleep(0.0002)
            loop.call_soon(_elapsed, soon, time.perf_counter())
        await anyio.sleep(0.01)
        send.close()
    return {"task_wakeup_us": us(statistics.median(woken)), "call_soon_us": us(statistics.median(soon))}


def _elapsed(into: list[float], since: float) -> None:
    into.append(time.perf_counter() - since)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    instrument()
    rows = anyio.run(route, args.samples, backend="asyncio")
    print(f"per stage, median of {args.samples} dispatches (us):")
    for key, values in rows.items():
        print(f"  {key:12} {us(statistics.median(values)):8}")
    total = sum(statistics.median(rows[k]) for k in ("dispatch", "end_of_turn", "master", "client"))
    print(f"  {'sum':12} {us(total):8}")
    print("hand-offs:", anyio.run(hand_offs, args.samples, backend="asyncio"))


if __name__ == "__main__":
    main()
