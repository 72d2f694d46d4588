"""Where a dispatch's round trip goes on the real stack: timestamps at each hop, per process.

The peer program (``testing/peer.py --trace-route``) installs :func:`install` before its Peer
starts: it wraps, on the classes, the points a dispatch passes (the end-of-turn step, the core's
steps, the WebRTC session's sends and deliveries), each recording ``time.perf_counter()``, which
on Linux is the monotonic clock every process of the machine shares. ``rtt`` marks the app's
side. :func:`hops` merges the marks of a client and its master into per-hop medians
(``python benchmarks/lan_node.py --only route``). With ``messages`` (``--trace-draws``) it also marks
each message the node routes (``msg:TYPE:SENDER``) and each frame handed to the endpoint
(``out:PEER``): :func:`draw_stages` follows a fair draw across the master and every player
(``python benchmarks/lan_node.py --only fair-route``). For benchmarks only: the wrappers cost a few
microseconds per call.
"""

from __future__ import annotations

import functools
import itertools
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

__all__ = ["HOPS", "Marks", "draw_stages", "hops", "install", "mark"]

Marks = list[tuple[str, float]]
"""(point, time.perf_counter()) in the order they happened in one process."""

Window = list[tuple[str, str, float]]
"""One roll's marks of every process: (process name, point, time), in time order."""

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


def install(*, messages: bool = False) -> None:
    """Wrap the route's points (before any Peer is made: the session binds its callbacks at creation);
    ``messages``: also each message routed and each frame sent, with its peer."""
    from ..driver import Driver
    from ..nodecore import NodeCore
    from ..transport.lan import LanEndpoint
    from ..transport.webrtc import RtcSession

    _wrap(Driver, "_end_of_turn", "end_of_turn")
    _wrap(NodeCore, "step", "step", "stepped")
    _wrap(RtcSession, "_on_message", "recv")
    _wrap(RtcSession, "send", "send")
    if messages:
        route: Callable[..., Any] = NodeCore._route
        send: Callable[..., Any] = LanEndpoint.send

        def routed(core: Any, sender: str, message: Any) -> None:
            MARKS.append((f"msg:{type(message).__name__}:{sender}", time.perf_counter()))
            route(core, sender, message)

        def sent(endpoint: Any, peer: str, data: bytes) -> None:
            MARKS.append((f"out:{peer}", time.perf_counter()))
            send(endpoint, peer, data)

        setattr(NodeCore, "_route", routed)  # noqa: B010 - a benchmark's wrapper, like _wrap's
        setattr(LanEndpoint, "send", sent)  # noqa: B010
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


def draw_stages(
    marks: dict[str, Sequence[Sequence[Any]]], ids: dict[str, str], client: str, master: str, skip: int = 0
) -> dict[str, dict[str, float]]:
    """Median microseconds of each stage of the client's rolls (``roll:fair`` and ``roll:master`` marks of
    :func:`~movex_p2p.testing.rolls.alternate`), by kind: ``marks`` and ``ids`` (peer ids) per process name.

    A fair roll's stages follow its draw: the Propose to the master, the ``Drawing`` out to every
    player, each player's ``Contribute`` back (the stages of the one that came last), the ``Drawn``
    and ``Applied`` to the client. Needs ``install(messages=True)`` in every process.
    """
    names = {peer: name for name, peer in ids.items()}
    merged: Window = sorted(((name, str(p), float(t)) for name, ms in marks.items() for p, t in ms), key=lambda m: m[2])
    starts = [i for i, (n, p, _) in enumerate(merged) if n == client and p.startswith("roll:")][skip:]
    spans: dict[str, dict[str, list[float]]] = {"fair": {}, "master": {}}
    for i in starts:
        kind = merged[i][1].removeprefix("roll:")
        end = next((j for j in range(i + 1, len(merged)) if merged[j][:2] == (client, "rolled")), None)
        if end is None:
            continue
        window = merged[i : end + 1]
        found = _fair_stages(window, names, client, master) if kind == "fair" else _plain_stages(window, client, master)
        if found is None:
            continue
        for stage, seconds in found.items():
            spans[kind].setdefault(stage, []).append(seconds * 1e6)
    return {kind: {s: round(statistics.median(v), 1) for s, v in stages.items()} for kind, stages in spans.items()}


def _at(window: Window, name: str, prefix: str, after: float = 0.0) -> float | None:
    """The first time ``name`` marks a point starting with ``prefix`` at or after ``after``."""
    return next((t for n, p, t in window if n == name and t >= after and p.startswith(prefix)), None)


def _before(window: Window, name: str, point: str, until: float) -> float | None:
    """The last time ``name`` marks ``point`` at or before ``until``."""
    times = [t for n, p, t in window if n == name and p == point and t <= until]
    return times[-1] if times else None


def _proposed(window: Window, client: str, master: str) -> tuple[dict[str, float], float] | None:
    """The first stages of any roll, the client's Propose until the master routes it (seconds), and when it
    did; or None."""
    start = window[0][2]
    sent = _at(window, client, "out:", start)
    proposed = _at(window, master, "msg:Propose:", start)
    m_recv = None if proposed is None else _before(window, master, "recv", proposed)
    if sent is None or proposed is None or m_recv is None:
        return None
    stages = {
        "client: dispatch -> Propose out": sent - start,
        "Propose: client out -> master recv": m_recv - sent,
        "master: recv -> Propose routed": proposed - m_recv,
    }
    return stages, proposed


def _plain_stages(window: Window, client: str, master: str) -> dict[str, float] | None:
    found = _proposed(window, client, master)
    if found is None:
        return None
    first, proposed = found
    start, end = window[0][2], window[-1][2]
    m_out = _at(window, master, "out:", proposed)
    c_applied = None if m_out is None else _at(window, client, "msg:Applied:", m_out)
    c_recv = None if c_applied is None else _before(window, client, "recv", c_applied)
    if m_out is None or c_applied is None or c_recv is None:
        return None
    return first | {
        "master: Propose routed -> first Applied out": m_out - proposed,
        "Applied: master first out -> client recv": c_recv - m_out,
        "client: recv -> Applied routed": c_applied - c_recv,
        "client: Applied routed -> settled": end - c_applied,
        "total": end - start,
    }


def _fair_stages(window: Window, names: dict[str, str], client: str, master: str) -> dict[str, float] | None:
    found = _proposed(window, client, master)
    if found is None:
        return None
    first, proposed = found
    start, end = window[0][2], window[-1][2]
    contributed = {  # each player's Contribute, when the master routed it
        names[peer]: t
        for n, p, t in window
        if n == master and p.startswith("msg:Contribute:") and names.get(peer := p.rsplit(":", 1)[1], master) != master
    }
    if not contributed:
        return None
    asked = {  # the Drawing, when the master handed it to each player's link
        names[peer]: t
        for n, p, t in window
        if n == master and p.startswith("out:") and proposed <= t < min(contributed.values())
        and (peer := p.removeprefix("out:")) in names
    }  # fmt: skip
    slowest = max(contributed, key=lambda k: contributed[k])
    last = contributed[slowest]
    p_drawing = _at(window, slowest, "msg:Drawing:", proposed)
    p_recv = None if p_drawing is None else _before(window, slowest, "recv", p_drawing)
    p_out = None if p_drawing is None else _at(window, slowest, "out:", p_drawing)
    m_recv = _before(window, master, "recv", last)
    drawn_out = _at(window, master, "out:", last)
    c_out = _at(window, master, "out:" + next(peer for peer, n in names.items() if n == client), last)
    c_drawn = _at(window, client, "msg:Drawn:", last)
    c_recv = None if c_drawn is None else _before(window, client, "recv", c_drawn)
    c_applied = None if c_drawn is None else _at(window, client, "msg:Applied:", c_drawn)
    if (
        slowest not in asked
        or p_drawing is None
        or p_recv is None
        or p_out is None
        or m_recv is None
        or drawn_out is None
        or c_out is None
        or c_drawn is None
        or c_recv is None
        or c_applied is None
    ):
        return None
    out = min(asked.values())
    return first | {
        "master: Propose routed -> first Drawing out": out - proposed,
        "master: first -> last Drawing out": max(asked.values()) - out,
        "Drawing out -> last Contribute routed (the extra round trip)": last - out,
        "  the last player: its Drawing out -> its recv": p_recv - asked[slowest],
        "  the last player: recv -> Drawing routed": p_drawing - p_recv,
        "  the last player: Drawing routed -> Contribute out": p_out - p_drawing,
        "  its Contribute: out -> master recv": m_recv - p_out,
        "  master: recv -> Contribute routed": last - m_recv,
        "  first Contribute routed -> last": last - min(contributed.values()),
        "master: last Contribute routed -> first Drawn out": drawn_out - last,
        "master: first out -> out to the client": c_out - drawn_out,
        "Drawn: master out -> client recv": c_recv - c_out,
        "client: recv -> Drawn routed": c_drawn - c_recv,
        "client: Drawn routed -> Applied routed": c_applied - c_drawn,
        "client: Applied routed -> settled": end - c_applied,
        "total": end - start,
    }
