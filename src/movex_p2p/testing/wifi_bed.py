"""Rooms on a lossy LAN: peer processes on the multi-host bed (movex_p2p.testing.multihost) with nftables loss.

Shared by tests/test_wifi.py and benchmarks/wifi.py. Each scenario starts ``peers`` processes of
the peer program (``movex_p2p.testing.peer``), one per host in turn, and reports what it measured; times are
CLOCK_MONOTONIC, which every process on the machine shares.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import anyio

from .failover_bed import FAILOVER_PEER, FailoverResult, failover_run, stop_and_report
from .multihost import Hosts
from .netns import ROOT, PeerProcess, until

__all__ = [
    "BurstResult",
    "During",
    "JoinResult",
    "MergeResult",
    "Play",
    "StartupResult",
    "SteadyResult",
    "cut_and_heal",
    "failover_at_loss",
    "failover_with_burst",
    "join",
    "play_in_turn",
    "raw_bulk",
    "raw_pings",
    "spawn_peers",
    "startup",
    "startup_merge",
    "steady",
]

LOG = "WARNING"  # the peers' log level (their stderr)


async def spawn_peers(hosts: Hosts, peers: int, tag: str, *extra: str) -> list[PeerProcess]:
    """``peers`` failover-bed peers named ``tag0``, ``tag1``... on the hosts in turn (``extra``: more arguments)."""
    return [
        await hosts.spawn(
            [*FAILOVER_PEER, "--name", f"{tag}{i}", "--expect", str(peers - 1), "--seed", str(i), *extra],
            name=f"{tag}{i}",
        )
        for i in range(peers)
    ]


def _lost_and_doubled(finals: list[dict[str, Any]]) -> tuple[int, int]:
    """From every peer's ``final`` report: actions lost (neither settled, or confirmed but not in the
    room's state, which counts each peer's actions) and doubled (in the state more often than confirmed)."""
    state: dict[str, Any] = finals[0]["state"]
    lost = doubled = 0
    for f in finals:
        lost += int(f["dispatched"]) - int(f["confirmed"]) - int(f["rejected"])
        applied = int(state.get(f["id"], 0))
        # an action whose handle raised ActionStuck stays pending: it may be applied later, once
        doubled += max(0, applied - int(f["confirmed"]) - int(f.get("stuck", 0)))
        lost += max(0, int(f["confirmed"]) - applied)
    return lost, doubled


def _masters_after(proc: PeerProcess, since: float) -> list[tuple[str | None, int]]:
    return [(e["master"], int(e["term"])) for e in proc.of("master") if e["t"] >= since]


@dataclass
class StartupResult:
    """Peers started together: when did they all agree on one master, and how many masters were there?"""

    peers: int
    agreed_after: float
    """Seconds from the last peer entering its room to the last master change anywhere."""
    masters_seen: int
    """Distinct peers that were master at some point (1 = nobody elected itself by mistake)."""
    split_for: float = 0.0
    """Seconds during which two or more peers each thought itself master (a split room)."""
    shared_terms: int = 0
    """Terms in which two or more peers each thought itself master (one term has one owner: 0)."""
    gave_way_back: int = 0
    """Times a master next followed a master of an older term than its own (only a newer one may depose it: 0)."""


def _shared_terms(procs: list[PeerProcess]) -> int:
    """Terms that two or more of ``procs`` each reported being master in (by their own events)."""
    claims: dict[int, set[str]] = {}
    for p in procs:
        me = p.of("entered")[0]["id"]
        for e in p.of("master"):
            if e["master"] == me:
                claims.setdefault(int(e["term"]), set()).add(me)
    return sum(1 for masters in claims.values() if len(masters) > 1)


def _gave_way_back(procs: list[PeerProcess]) -> int:
    """Times one of ``procs`` stopped being master and next followed a master of an older term."""
    count = 0
    for p in procs:
        me = p.of("entered")[0]["id"]
        mine: int | None = None
        for e in p.of("master"):
            if e["master"] == me:
                mine = int(e["term"])
            elif e["master"] is not None and mine is not None:
                count += int(e["term"]) < mine
                mine = None
    return count


def _split_time(procs: list[PeerProcess], until: float) -> float:
    """Seconds during which at least two of ``procs`` held the master role at once (by their own events)."""
    edges: list[tuple[float, int]] = []
    for p in procs:
        me = p.of("entered")[0]["id"]
        since: float | None = None
        for e in p.of("master"):
            if e["master"] == me and since is None:
                since = float(e["t"])
            elif e["master"] != me and since is not None:
                edges += [(since, 1), (float(e["t"]), -1)]
                since = None
        if since is not None:
            edges += [(since, 1), (until, -1)]
    split, held, last = 0.0, 0, 0.0
    for at, step in sorted(edges):
        if held >= 2:
            split += at - last
        held, last = held + step, at
    return split


async def startup(hosts: Hosts, peers: int, *, tag: str = "s") -> StartupResult:
    """Start ``peers`` together; wait until all are ready; see how the first master was agreed on."""
    procs = await spawn_peers(hosts, peers, tag)
    ready = [await p.wait_event("ready", within=60) for p in procs]
    entered = max(p.of("entered")[0]["t"] for p in procs)
    masters = {e["master"] for e in ready}
    changes = [e for p in procs for e in p.of("master")]
    last = max((e["t"] for e in changes), default=entered)
    elected = {e["master"] for e in changes if e["master"] is not None}
    split = _split_time(procs, until=time.monotonic())
    shared, back = _shared_terms(procs), _gave_way_back(procs)
    await hosts.leave_all(procs, within=15)
    if len(masters) != 1:
        raise AssertionError(f"ready with different masters: {masters}")
    return StartupResult(
        peers=peers,
        agreed_after=max(0.0, last - entered),
        masters_seen=len(elected),
        split_for=split,
        shared_terms=shared,
        gave_way_back=back,
    )


@dataclass
class SteadyResult:
    """Steady play: what changed that should not have."""

    peers: int
    seconds: float
    master_changes: int
    """(master, term) changes seen by any peer during play (0 expected)."""
    declared_dead: int
    """Times a peer lost sight of another during play (nobody left, so 0 expected)."""
    confirmed: int
    lost: int = 0
    doubled: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.lost == 0 and self.doubled == 0


During = Callable[[Hosts, list[PeerProcess]], Coroutine[Any, Any, None]]
"""What happens while a room plays (say a cut, or blackouts): called with the hosts and the room's processes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Play:
    """One play of a room (:func:`play_in_turn`): at ``loss`` % (None: as the hosts are), for ``seconds``,
    while ``during`` runs (cancelled when the play ends; with ``seconds`` None the play ends when
    ``during`` returns)."""

    loss: int | None = None
    seconds: float | None = 5.0
    during: During | None = None


async def steady(
    hosts: Hosts,
    peers: int,
    seconds: float | None,
    *,
    tag: str = "p",
    during: During | None = None,
    interval: float = 0.05,
) -> SteadyResult:
    """Start ``peers``, let them play for ``seconds`` and count spurious master changes and deaths.

    ``during(hosts, processes)`` (say a cut, or blackouts) runs while they play and is cancelled
    when play ends; with ``seconds`` None, play ends when ``during`` returns.
    """
    (result,) = await play_in_turn(hosts, peers, [Play(seconds=seconds, during=during)], tag=tag, interval=interval)
    return result


async def play_in_turn(
    hosts: Hosts, peers: int, plays: list[Play], *, tag: str = "p", interval: float = 0.05
) -> list[SteadyResult]:
    """Start ``peers``; one room plays each of ``plays`` in turn, stopped and reported after each: a
    :class:`SteadyResult` per play. Its counts are that play's; ``lost`` and ``doubled`` count every
    play so far (each peer's totals: none may be lost or doubled by the end of any play)."""
    procs = await _start_playing(hosts, peers, tag, interval)
    results = []
    confirmed = 0
    for play in plays:
        if play.loss is not None:
            hosts.set_loss(play.loss)
        result = await _play(hosts, procs, play.seconds, play.during)
        result.confirmed, confirmed = result.confirmed - confirmed, result.confirmed
        results.append(result)
    await hosts.leave_all(procs, within=15)
    return results


async def _start_playing(hosts: Hosts, peers: int, tag: str, interval: float) -> list[PeerProcess]:
    procs = await spawn_peers(hosts, peers, tag, "--interval", str(interval))
    for p in procs:
        await p.wait_event("ready", within=60)
    await anyio.sleep(1.0)  # the start is measured by startup(); count from a settled room
    return procs


async def _play(hosts: Hosts, procs: list[PeerProcess], seconds: float | None, during: During | None) -> SteadyResult:
    """``go``, play ``seconds`` (or until ``during`` returns), ``stop``: what changed that should not have."""
    peers = len(procs)
    problems: list[str] = []

    async def run_during() -> None:
        assert during is not None
        try:
            await during(hosts, procs)
        except (AssertionError, TimeoutError) as exc:  # what it waited for did not come: a problem of this play
            problems.append(f"during play: {exc!r}")

    began = time.monotonic()
    for p in procs:
        await p.command("go")
    async with anyio.create_task_group() as tg:
        if seconds is None:
            if during is None:
                raise ValueError("a play of no set length ends when its during returns: give one")
            await run_during()
        else:
            if during is not None:
                tg.start_soon(run_during)
            await anyio.sleep(seconds)
        tg.cancel_scope.cancel()
    ended = time.monotonic()
    finals = await stop_and_report(procs)
    played = ended - began if seconds is None else seconds
    result = SteadyResult(peers=peers, seconds=played, master_changes=0, declared_dead=0, confirmed=0)
    result.problems += problems
    for p in procs:
        changes = [e for e in p.of("master") if began <= e["t"] <= ended]
        result.master_changes += len(changes)
        sizes = [len(e["peers"]) for e in p.of("peers") if began <= e["t"] <= ended]
        result.declared_dead += sum(1 for a, b in zip([peers - 1, *sizes], sizes, strict=False) if b < a)
    for f in finals:
        result.confirmed += int(f["confirmed"])
        if f["rejected"]:
            result.problems.append(f"{f['id']}: {f['rejected']} rejected")
    result.lost, result.doubled = _lost_and_doubled(finals)
    if len({f["checksum"] for f in finals}) != 1:
        result.problems.append("checksums differ")
    return result


def _id(proc: PeerProcess) -> str:
    return str(proc.of("entered")[0]["id"])


def _peers_of(proc: PeerProcess) -> set[str]:
    """Whom ``proc`` is linked to now (its last ``peers`` event)."""
    seen = proc.of("peers")
    return set(seen[-1]["peers"]) if seen else set()


def _master_of(proc: PeerProcess) -> str | None:
    """Whom ``proc`` follows now (its last ``master`` event)."""
    seen = proc.of("master")
    return str(seen[-1]["master"]) if seen and seen[-1]["master"] is not None else None


def _views(procs: list[PeerProcess]) -> str:
    """Each peer's view now: whom it follows (its last master events, with terms) and whom it is linked to."""
    views = []
    for p in procs:
        masters = [f"{e['master']}@{e['term']}" for e in p.of("master")[-4:]]
        views.append(f"{p.name} ({_id(p)}) follows {masters}, linked to {sorted(_peers_of(p))}")
    return "; ".join(views)


async def _confirmed(proc: PeerProcess) -> int:
    """How many of its own actions ``proc`` had confirmed, now."""
    proc.events[:] = [e for e in proc.events if e["ev"] != "final"]
    await proc.command("report", settle=0)
    return int((await proc.wait_event("final"))["confirmed"])


async def _confirms_more(proc: PeerProcess, more: int, *, within: float) -> None:
    """Until ``proc`` had ``more`` more of its own actions confirmed than now (asked every 50 ms)."""
    target = await _confirmed(proc) + more
    with anyio.fail_after(within):
        while True:
            if await _confirmed(proc) >= target:
                return
            await anyio.sleep(0.05)  # ask again: a peer reports its counts when asked


async def cut_and_heal(hosts: Hosts, procs: list[PeerProcess], victim: PeerProcess, *, within: float = 20.0) -> None:
    """Cut ``victim``'s host off while everyone plays, until each side declared the other dead and
    ``victim``, master of a room of its own, had actions of its own confirmed there (it played alone);
    heal it, and wait until the room is whole again under one master and ``victim`` plays on in it."""
    host = hosts.host_of(victim)
    others = [p for p in procs if p is not victim]
    me = _id(victim)
    hosts.cut(host)
    try:
        await until(
            procs,
            lambda: not _peers_of(victim) and all(me not in _peers_of(p) for p in others) and _master_of(victim) == me,
            f"{victim.name} cut off, declared dead by each side, master of its own room",
            within=within,
        )
        await _confirms_more(victim, 3, within=within)
    finally:
        hosts.heal(host)
    everyone = {_id(p) for p in procs}
    await until(
        procs,
        lambda: all(_peers_of(p) == everyone - {_id(p)} for p in procs) and len({_master_of(p) for p in procs}) == 1,
        "the room whole again under one master",
        within=within,
        describe=lambda: _views(procs),
    )
    await _confirms_more(victim, 3, within=within)


async def failover_at_loss(hosts: Hosts, peers: int, loss: int, *, run: int = 0) -> FailoverResult:
    """The failover bed (movex_p2p.testing.failover_bed) with ``loss`` % on every host, in and out."""
    hosts.set_loss(loss)
    return await failover_run(hosts, peers, mode="kill", run=run)


def _peer_args(name: str, expect: int, seed: int) -> list[str]:
    return [*FAILOVER_PEER, "--name", name, "--expect", str(expect), "--seed", str(seed)]


@dataclass
class BurstResult:
    """A master SIGKILLed with a burst of every survivor's actions in flight: did every handle settle?"""

    peers: int
    burst: int
    settled_after: float
    """Seconds from the kill until the last survivor's last burst handle settled (inf: some never did)."""
    confirmed: int = 0
    lost: int = 0
    doubled: int = 0
    stuck: int = 0
    checksums: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and (self.lost, self.doubled, self.stuck, self.checksums) == (0, 0, 0, 1)


async def failover_with_burst(
    hosts: Hosts,
    peers: int,
    loss: int,
    *,
    burst: int,
    run: int = 0,
    cut_heal: bool = False,
    within: float = 30.0,
    interval: float = 0.025,
) -> BurstResult:
    """``peers`` play steadily; every non-master dispatches ``burst`` actions at once, then 10 more,
    and the master is SIGKILLed as soon as every survivor has dispatched (issue 15; until 2026-12-07
    the kill came right after the commands were written, often before a survivor had read its own).
    With ``cut_heal`` one survivor is then cut off for 2 s and healed. Every handle must settle, exactly
    once, with one checksum in the end. ``interval``: seconds between two actions of a peer's steady play."""
    hosts.set_loss(loss)
    procs = [
        await hosts.spawn_on(
            i % len(hosts.names),
            [*_peer_args(f"k{run}p{i}", peers - 1, i), "--interval", str(interval), "--log", LOG],
            name=f"k{run}p{i}",
        )
        for i in range(peers)
    ]
    ready = [await p.wait_event("ready", within=90) for p in procs]
    if len({e["master"] for e in ready}) != 1:
        await anyio.sleep(0.5)  # one election may still be settling
    for p in procs:
        await p.command("go")
    await anyio.sleep(1.0)
    master = ready[0]["master"]
    victim = next(p for p in procs if p.of("ready")[0]["id"] == master)
    survivors = [p for p in procs if p is not victim]
    for p in survivors:
        await p.command("burst", n=burst, more=10)
    for p in survivors:  # each burst dispatched (its frames leave this loop turn): in flight at the kill
        await p.wait_event("burst_sent", within=10)
    victim.kill()
    killed = time.monotonic()
    result = BurstResult(peers=peers, burst=burst, settled_after=float("inf"))
    try:
        settled = [await p.wait_event("burst_settled", within=within) for p in survivors]
        result.settled_after = max(e["t"] for e in settled) - killed
    except (TimeoutError, AssertionError):
        result.problems.append(f"a burst never settled within {within} s of the kill")
    if cut_heal:  # then one survivor is cut off while everyone plays on, plays alone, and is healed
        try:
            await cut_and_heal(hosts, survivors, survivors[-1])
        except (TimeoutError, AssertionError) as exc:
            result.problems.append(f"cut and heal: {exc}")
    finals = await stop_and_report(survivors)
    result.checksums = len({f["checksum"] for f in finals})
    for f in finals:
        result.confirmed += int(f["confirmed"])
        stuck = int(f.get("stuck", 0))
        result.stuck += stuck
        failed = int(f["rejected"]) - stuck  # a stuck handle is counted in ``stuck``
        if failed:
            result.problems.append(f"{f['id']}: {failed} actions failed")
        applied = int(finals[0]["state"].get(f["id"], 0))
        if applied > int(f["confirmed"]) + stuck:  # say whose, to find out why
            result.problems.append(
                f"{f['id']}: {applied} applied, {f['confirmed']} confirmed, {f.get('stuck', 0)} stuck, "
                f"{f['rejected']} failed, {f['dispatched']} dispatched"
            )
    result.lost, result.doubled = _lost_and_doubled(finals)
    await hosts.leave_all(survivors, within=15)
    return result


@dataclass
class MergeResult:
    """A host played alone, then three peers joined at once: what became of the host's actions?"""

    confirmed: int
    rejected: int
    """The host's actions that failed (ResourceNotFound, "join first"...): 0 expected."""
    lost: int = 0
    doubled: int = 0
    checksums: int = 0
    masters: int = 0
    """Distinct masters the peers followed at the end (1 expected)."""
    errors: list[str] = field(default_factory=list)
    """Why the host's rejected actions failed."""


async def startup_merge(hosts: Hosts, *, run: int = 0, alone: float = 1.5, joiners: int = 3) -> MergeResult:
    """Issue 16, item 3: the host plays alone ``alone`` s; ``joiners`` peers start at once (one may be
    elected); everyone plays 2 s more. The host's actions must all be confirmed, none rejected."""
    host = await hosts.spawn_on(0, [*_peer_args(f"m{run}h", 0, run * 10), "--interval", "0.025"], name=f"m{run}h")
    await host.wait_event("ready", within=60)
    await host.command("go")
    await anyio.sleep(alone)
    others = [
        await hosts.spawn_on(
            1 + i % (len(hosts.names) - 1), [*_peer_args(f"m{run}j{i}", joiners, run * 10 + i + 1)], name=f"m{run}j{i}"
        )
        for i in range(joiners)
    ]
    for p in others:
        await p.wait_event("ready", within=60)
    for p in others:
        await p.command("go")
    await anyio.sleep(2.0)
    procs = [host, *others]
    finals = await stop_and_report(procs)
    mine = finals[0]
    result = MergeResult(confirmed=int(mine["confirmed"]), rejected=int(mine["rejected"]))
    result.errors = [e["error"] for e in host.of("rejected")]
    result.checksums = len({f["checksum"] for f in finals})
    result.masters = len({f["master"] for f in finals})
    result.lost, result.doubled = _lost_and_doubled(finals)
    await hosts.leave_all(procs, within=15)
    return result


async def _raw_pair(hosts: Hosts, *args: str) -> tuple[PeerProcess, PeerProcess]:
    """Two plain aiortc processes (benchmarks/lan.py's raw worker) on hosts 0 and 1, linked."""
    worker = [str(ROOT / "benchmarks" / "lan.py"), "--worker", "raw", *args]
    offer = await hosts.spawn_on(0, [*worker, "--role", "offer"], name="raw-offer")
    answer = await hosts.spawn_on(1, [*worker, "--role", "answer"], name="raw-answer")
    offer_sdp = (await offer.wait_event("sdp", within=30))["sdp"]
    await answer.command("sdp", sdp=offer_sdp)
    answer_sdp = (await answer.wait_event("sdp", within=30))["sdp"]
    await offer.command("sdp", sdp=answer_sdp)
    return offer, answer


async def raw_bulk(hosts: Hosts, mb: float, *, lan_timers: bool = False) -> float:
    """MB/s of plain aiortc (one reliable channel, 64 KiB messages) from host 0 to host 1: the baseline."""
    offer, _ = await _raw_pair(hosts, "--bulk-mb", str(mb), *(["--lan-timers"] if lan_timers else []))
    result = await offer.wait_event("bulk", within=900)
    return float(result["mb_per_s"])


async def raw_pings(hosts: Hosts, n: int, *, lan_timers: bool = False) -> list[float]:
    """Round trips (ms) of ``n`` pings, one at a time, on plain aiortc's reliable channel."""
    offer, answer = await _raw_pair(hosts, "--n", str(n), *(["--lan-timers"] if lan_timers else []))
    result = await offer.wait_event("rtt", within=900)
    await answer.command("stop")
    return [float(x) for x in result["samples"]]


@dataclass
class JoinResult:
    """A late joiner of a room holding ``mb`` MB: how long until it held all of it."""

    mb: int
    seconds: float
    """From the joiner entering its room to every resource being here."""
    heartbeat_gap_p99: float
    heartbeat_gap_max: float


async def join(hosts: Hosts, mb: int) -> JoinResult:
    """Host 0 creates ``mb`` resources of 1 MB each; a peer on host 1 joins and syncs them."""
    creator = await hosts.spawn_on(
        0, [*FAILOVER_PEER, "--name", "creator", "--expect", "0", "--blobs", str(mb)], name="creator"
    )
    await creator.wait_event("ready", within=120)
    joiner = await hosts.spawn_on(
        1,
        [
            *FAILOVER_PEER,
            "--name",
            "joiner",
            "--expect",
            "1",
            "--expect-blobs",
            str(mb),
            "--trace-heartbeats",
        ],
        name="joiner",
    )
    synced = await joiner.wait_event("blobs", within=300)
    entered = joiner.of("entered")[0]["t"]
    gaps = sorted(synced["gaps"]) or [0.0]
    for proc in (joiner, creator):
        await hosts.leave(proc, within=30)
    return JoinResult(
        mb=mb,
        seconds=synced["t"] - entered,
        heartbeat_gap_p99=gaps[min(len(gaps) - 1, int(0.99 * len(gaps)))],
        heartbeat_gap_max=gaps[-1],
    )
