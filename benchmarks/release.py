"""How long one MasterCore step takes when a new master ends its recovery with a burst waiting.

Issue 15 at 12 peers: after a kill, every survivor's burst waits at the new master until its
recovery ends. Served in one step, on a starved CPU that step (and the node's encoding and signing
of what it returns) could leave the master unheard for longer than the transport's ``dead_after``;
it is served in slices of ``RELEASE_SLICE`` now (movex_p2p/resource/waiting.py), one per step or
tick. In process, on ``movex_p2p.testing.cores.CoreCluster`` (fake signatures, no node):
``--peers`` peers, the master killed, each survivor's ``--burst`` actions queued behind the
recovery; the longest master step or tick and how many effects it returned.

    python benchmarks/release.py --peers 12 --burst 110
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from typing import Any

import movex_p2p as mx
from movex_p2p.resource import effects as fx
from movex_p2p.testing.cores import CoreCluster

RID = "counter:c"


def counter(state: Any, action: mx.Action) -> Any:
    return {**state, "count": state["count"] + 1} if action.type == "increment" else state


Counter = mx.ResourceType("counter", counter, initial={"count": 0})


def run(peers: int, burst: int) -> dict[str, float]:
    """The longest MasterCore step (ms) and its effects, and the whole delivery (ms), for one release."""
    c = CoreCluster(peers, types={"counter": Counter})
    c.setup(RID)
    c.kill(c.ids[0])
    new = c.ids[1]
    c.elect(new, 2, deliver=False)
    for p in c.ids[1:]:
        for _ in range(burst):
            c.dispatch(p, RID, mx.Action("increment"))
    step, tick = c.master.step, c.master.tick
    steps: list[tuple[float, int]] = []

    def timed(call: Callable[..., list[fx.Effect]], *args: Any, **kw: Any) -> list[fx.Effect]:
        started = time.perf_counter()
        effects = call(*args, **kw)
        steps.append((time.perf_counter() - started, len(effects)))
        return effects

    c.master.step = functools.partial(timed, step)  # type: ignore[method-assign]
    c.master.tick = functools.partial(timed, tick)  # type: ignore[method-assign]
    started = time.perf_counter()
    c.run()
    whole = time.perf_counter() - started
    assert c.view(new, RID) == {"count": (peers - 1) * burst}, "not every action was applied"
    longest, effects = max(steps)
    return {"longest_step_ms": longest * 1000, "effects": effects, "steps": len(steps), "whole_ms": whole * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=12)
    parser.add_argument("--burst", type=int, default=110, help="actions each survivor has waiting")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for i in range(args.runs):
        r = run(args.peers, args.burst)
        print(
            f"run {i + 1}: longest master step {r['longest_step_ms']:.1f} ms ({r['effects']:.0f} effects), "
            f"{r['steps']:.0f} steps, whole delivery {r['whole_ms']:.0f} ms"
        )


if __name__ == "__main__":
    main()
