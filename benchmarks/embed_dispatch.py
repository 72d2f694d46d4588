"""Game-thread time to issue 500 ``dispatch`` calls on an embedded peer, against the old submit.

The old ``EmbeddedPeer._submit`` was ``BlockingPortal.start_task_soon``, which waits until the
network loop has taken the task: one loop pass per dispatch. The current one hands the task over
with ``call_soon_threadsafe`` and returns. Both run in one process, alternating, on one peer.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import movex_p2p as mx
from movex_p2p.embed import EmbeddedPeer, start_peer


def count(state: Any, action: mx.Action) -> Any:
    return {**state, "count": state["count"] + 1}


Counter = mx.ResourceType("counter", count, initial={"count": 0})
CURRENT = EmbeddedPeer._submit


def old_submit(self: EmbeddedPeer, fn: Callable[..., Awaitable[None]], *args: Any) -> concurrent.futures.Future[None]:
    return self._portal().start_task_soon(fn, *args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=20, help="runs of each (default 20)")
    parser.add_argument("--dispatches", type=int, default=500, help="dispatches per run (default 500)")
    args = parser.parse_args()
    submits: dict[str, Any] = {"current": CURRENT, "old": old_submit}
    times: dict[str, list[float]] = {name: [] for name in submits}
    with start_peer(room="bench", types=[Counter], transport=mx.LocalNetwork()) as peer:
        res = peer.bind(peer.create(Counter, id="c"))
        for run in range(args.runs):
            for name in sorted(submits, reverse=run % 2 == 1):
                EmbeddedPeer._submit = submits[name]  # type: ignore[method-assign]
                start = time.perf_counter()
                futures = [res.dispatch(mx.Action("count")) for _ in range(args.dispatches)]
                times[name].append(time.perf_counter() - start)
                for future in futures:
                    future.result(timeout=60)
    EmbeddedPeer._submit = CURRENT  # type: ignore[method-assign]
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values) * 1e3:.1f} ms for {args.dispatches} dispatches")
    print(f"old / current: {statistics.median(times['old']) / statistics.median(times['current']):.1f}")


if __name__ == "__main__":
    main()
