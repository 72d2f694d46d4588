"""Where a dispatch's round trip goes on the real stack: timestamps at each hop, per process.

The peer program (``testing/peer.py --trace-route``) installs :func:`install` before its Peer
starts: it wraps, on the classes, the points a dispatch passes (the end-of-turn step, the core's
steps, the WebRTC session's sends and deliveries), each recording ``time.perf_counter()``, which
on Linux is the monotonic clock every process of the machine shares. ``rtt`` marks the app's
side. :func:`hops` merges the marks of a client and its master into per-hop medians
(``python benchmarks/lan_node.py --only route``). For benchmarks only: the wrappers cost a few
microseconds per call.
"""

from __future__ import annotations

import functools
import itertools
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

__all__ = ["HOPS", "Marks", "hops", "install", "mark"]

Marks = list[tuple[str, float]]
"""(point, time.perf_counter()) in the order they happened in one process."""

MARKS: Marks = []
"""This process's marks (empty unless :func:`install` ran)."""
_ON: list[bool] = [False]

HOPS: Final = (
    ("start", "c:dispatch"),
    ("eot", "c:end_of_turn"),
    ("c_send", "c:send"),
    ("m_recv", "m:recv"),
    ("m_step", "m:step"),
    ("m_send", "m:send"),
    ("c_recv", "c:recv"),
    ("c_step", "c:step"),
    ("c_stepped", "c:stepped"),
    ("app", "c:settled"),
)
"""The points of one client round trip, in order: a name and the mark (``c:`` client, ``m:`` master)."""


def mark(point: str) -> None:
    """Record that this process passes ``point`` now (nothing unless installed)."""
    if _ON[0]:
        MARKS.append((point, time.perf_counter()))


def _wrap(cls: type, name: str, before: str, after: str | None = None) -> None:
    original: Callable[..., Any] = getattr(cls, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        MARKS.append((before, time.perf_counter()))
        try:
            return original(*args, **kwargs)
        finally:
            if after is not None:
                MARKS.append((after, time.perf_counter()))

    setattr(cls, name, wrapper)


def install() -> None:
    """Wrap the route's points (before any Peer is made: the session binds its callbacks at creation)."""
    from ..driver import Driver
    from ..nodecore import NodeCore
    from ..transport.webrtc import RtcSession

    _wrap(Driver, "_end_of_turn", "end_of_turn")
    _wrap(NodeCore, "step", "step", "stepped")
    _wrap(RtcSession, "_on_message", "recv")
    _wrap(RtcSession, "send", "send")
    _ON[0] = True


def hops(client: Sequence[Sequence[Any]], master: Sequence[Sequence[Any]], skip: int = 0) -> dict[str, float]:
    """Median microseconds of each hop of the client's round trips (the first ``skip`` left out), and their sum."""
    merged = sorted(
        [("c:" + str(p), float(t)) for p, t in client] + [("m:" + str(p), float(t)) for p, t in master],
        key=lambda m: m[1],
    )
    starts = [i for i, (p, _) in enumerate(merged) if p == "c:dispatch"][skip:]
    spans: dict[str, list[float]] = {}
    for i in starts:
        times = _round_trip(merged, i)
        if times is None:
            continue
        for (a, ta), (b, tb) in itertools.pairwise(times):
            spans.setdefault(f"{a} -> {b}", []).append((tb - ta) * 1e6)
        spans.setdefault("total", []).append((times[-1][1] - times[0][1]) * 1e6)
    return {hop: round(statistics.median(values), 1) for hop, values in spans.items()}


def _round_trip(merged: Marks, start: int) -> list[tuple[str, float]] | None:
    """The time of each of :data:`HOPS` from ``start`` on (each the first after the one before), or None."""
    found: list[tuple[str, float]] = []
    i = start
    for name, point in HOPS:
        while i < len(merged) and merged[i][0] != point:
            if merged[i][0] == "c:dispatch" and i != start:
                return None  # the next round trip began: this one missed a point
            i += 1
        if i == len(merged):
            return None
        found.append((name, merged[i][1]))
    return found
