"""Die rolls, one at a time, two kinds alternating: the timing loop of the fair-draw benchmarks.

``benchmarks/fair.py`` and ``benchmarks/private_draws.py`` (peers in one process) and the peer
program's ``fair`` / ``private_draws`` commands (``benchmarks/lan_node.py --only fair``: peer
processes over the LAN) run the same loop: a non-master peer dispatches one roll, waits for its
confirmation, then the other kind, and so on; the first ``warmup`` rolls are not timed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..node import Resource
from ..resource.types import Action
from ..resource.values import fair, master
from . import route

__all__ = ["Alternated", "alternate", "ms", "private_roll", "public_roll"]


@dataclass
class Alternated:
    """Seconds per roll of each kind (``plain``: the even rolls, ``drawn``: the odd ones), wall and CPU."""

    plain: list[float] = field(default_factory=list)
    drawn: list[float] = field(default_factory=list)
    plain_cpu: list[float] = field(default_factory=list)
    drawn_cpu: list[float] = field(default_factory=list)
    late: int = 0
    """Rolls (warm-up included) whose author did not see its drawn value at its confirmation."""
    rolls: int = 0


async def alternate(rolls: int, warmup: int, roll: Callable[[int, bool], Awaitable[bool]]) -> Alternated:
    """Run ``roll(i, drawn)`` for ``2 * rolls + warmup`` rolls, ``drawn`` on every odd one, each timed.

    ``roll`` dispatches, waits for the confirmation and returns whether its author saw the value then.
    """
    out = Alternated(rolls=2 * rolls + warmup)
    for i in range(out.rolls):
        drawn = i % 2 == 1
        cpu = time.process_time()
        route.mark("roll:fair" if drawn else "roll:master")
        started = time.perf_counter()
        seen = await roll(i, drawn)
        elapsed = time.perf_counter() - started
        route.mark("rolled")
        cpu = time.process_time() - cpu
        out.late += not seen
        if i >= warmup:  # the first rolls pay for imports and caches
            (out.drawn if drawn else out.plain).append(elapsed)
            (out.drawn_cpu if drawn else out.plain_cpu).append(cpu)
    return out


def ms(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (seconds), in milliseconds."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


async def public_roll(dice: Resource, drawn: bool) -> bool:
    """Roll one die on a :data:`~movex_p2p.testing.types.Dice`: ``mx.fair`` if ``drawn``, else ``mx.master``."""
    die = fair.random_int(1, 6) if drawn else master.random_int(1, 6)
    await dice.dispatch(Action("roll", {"die": die}))
    last = dice.state["last"]
    return isinstance(last, dict) and type(last["die"]) is int


async def private_roll(cup: Resource, me: str, i: int, drawn: bool, *, dice: int = 5) -> bool:
    """Roll ``dice`` hidden dice on a sealed :data:`~movex_p2p.testing.types.Cup` (private draws if
    ``drawn``, else plain threes); True if the author's own view holds them at the confirmation."""
    hand = [fair.random_int(1, 6) if drawn else 3 for _ in range(dice)]
    await cup.dispatch_private(Action("roll", {"i": i, "dice": hand}), Action("rolled", {}))
    mine = cup.state["hands"].get(me)
    return mine is not None and mine["i"] == i and all(type(d) is int for d in mine["dice"])
