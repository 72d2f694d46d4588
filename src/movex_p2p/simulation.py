"""Whole peers in virtual time: NodeCores over a simulated network with seeded faults (pure).

Each simulated peer is the same :class:`~movex_p2p.nodecore.NodeCore` that ``mx.Peer`` drives,
so the election, the cores and their routing are exercised together, hundreds of times per
second of real time. Frames go through the real codec. Links are FIFO with a seeded delay; a
kill or a partition cuts links silently and the far side notices after ``detect_after``.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import wire
from .election import machine as el
from .ids import PeerId, Rid, Term
from .nodecore import NodeCore
from .resource import effects as fx
from .resource.types import Action, ResourceType

__all__ = ["SimPeer", "Simulation"]


@dataclass(slots=True)
class SimPeer:
    """One simulated peer and what it observed."""

    core: NodeCore
    alive: bool = True
    confirmed: dict[tuple[Rid, int], Action] = field(default_factory=dict)
    confirmed_at: dict[tuple[Rid, int], float] = field(default_factory=dict)
    rejected: dict[tuple[Rid, int], str] = field(default_factory=dict)
    dispatched: dict[tuple[Rid, int], Action] = field(default_factory=dict)
    resyncs: int = 0
    rebased: int = 0


@dataclass(order=True, slots=True)
class _Event:
    at: float
    order: int
    kind: str = field(compare=False)
    args: tuple[Any, ...] = field(compare=False)


class Simulation:
    """N NodeCores on a virtual network; call :meth:`run` to let time pass."""

    def __init__(
        self,
        size: int,
        *,
        types: Iterable[ResourceType],
        seed: int = 0,
        config: el.ElectionConfig | None = None,
        delay: tuple[float, float] = (0.0002, 0.002),
        detect_after: float = 0.5,
        codec: bool = True,
    ) -> None:
        self.rng = random.Random(seed)
        self.now = 0.0
        self.delay = delay
        self.detect_after = detect_after
        self.codec = codec
        self.types = {t.name: t for t in types}
        self.ids = [PeerId(f"p{i}") for i in range(size)]
        config = config or el.ElectionConfig()
        self.peers: dict[PeerId, SimPeer] = {
            pid: SimPeer(NodeCore(pid, types=self.types, election=config, rng=random.Random(self.rng.random())))
            for pid in self.ids
        }
        self.elected: list[tuple[float, Term, PeerId]] = []
        self._queue: list[_Event] = []
        self._order = itertools.count()
        self._last_delivery: dict[tuple[PeerId, PeerId], float] = {}
        self._groups: list[frozenset[PeerId]] | None = None
        self._seen: dict[PeerId, set[PeerId]] = {pid: set() for pid in self.ids}
        for pid in self.ids:
            self.peers[pid].core.start(self.now, self.now)
            self._collect(pid)
        self._topology_changed(detect=0.0)

    # -- inspection ----------------------------------------------------------------------------

    @property
    def alive(self) -> list[PeerId]:
        """Peers not killed."""
        return [pid for pid, peer in self.peers.items() if peer.alive]

    def masters(self) -> list[PeerId]:
        """Live peers that run a master now."""
        return [pid for pid in self.alive if self.peers[pid].core.master is not None]

    def checksums(self, rid: Rid) -> dict[PeerId, bytes | None]:
        """Each live peer's confirmed checksum of ``rid`` (None where it has no replica)."""
        out: dict[PeerId, bytes | None] = {}
        for pid in self.alive:
            replica = self.peers[pid].core.client.replicas.get(rid)
            out[pid] = None if replica is None else replica.checksum
        return out

    def state(self, pid: str, rid: Rid) -> Any:
        """Peer ``pid``'s confirmed state of ``rid``."""
        return self.peers[PeerId(pid)].core.client.replicas[rid].state

    def converged(self, rid: Rid) -> bool:
        """One master, known by every live peer, and one checksum of ``rid`` everywhere, all synced."""
        masters = self.masters()
        if len(masters) != 1:
            return False
        live = [self.peers[p].core for p in self.alive]
        if any(core.election.master != masters[0] or not core.client.synced for core in live):
            return False
        if any(core.client.pending(rid) for core in live if core.client.has(rid)):
            return False
        sums = set(self.checksums(rid).values())
        return len(sums) == 1 and None not in sums

    # -- faults and commands -------------------------------------------------------------------

    def kill(self, pid: str) -> None:
        """``pid`` vanishes without a goodbye."""
        self.peers[PeerId(pid)].alive = False
        self._topology_changed(detect=self.detect_after)

    def partition(self, *groups: Iterable[str]) -> None:
        """Cut links between groups (peers in no group form one more group)."""
        self._groups = [frozenset(PeerId(p) for p in g) for g in groups]
        self._topology_changed(detect=self.detect_after)

    def heal(self) -> None:
        """Undo a partition."""
        self._groups = None
        self._topology_changed(detect=0.05)

    def create(self, pid: str, type_name: str, id: str, state: Any = None) -> Rid:
        """``pid`` asks the master to create a resource; returns its rid."""
        rid = self.types[type_name].rid(id)
        core = self.peers[PeerId(pid)].core
        _, effects = core.client.create(rid, state)
        self._command(PeerId(pid), effects)
        return rid

    def dispatch(self, pid: str, rid: Rid, action: Action, private: Action | None = None) -> int:
        """``pid`` dispatches ``action`` on ``rid``; returns its seq."""
        peer = self.peers[PeerId(pid)]
        seq, effects = peer.core.client.dispatch(rid, action, private)
        peer.dispatched[(rid, seq)] = action
        self._command(PeerId(pid), effects)
        return seq

    def at(self, when: float, kind: str, *args: Any) -> None:
        """Schedule ``kind`` (kill, partition, heal, call) at virtual time ``when``."""
        self._push(when, kind, args)

    def run(self, seconds: float, *, until: Callable[[Simulation], bool] | None = None) -> bool:
        """Advance virtual time by ``seconds`` (stopping early when ``until`` holds)."""
        end = self.now + seconds
        while True:
            if until is not None and until(self):
                return True
            next_at = self._next_time()
            if next_at is None or next_at > end:
                self.now = end
                return until(self) if until is not None else True
            self.now = max(self.now, next_at)
            self._process_due()

    # -- the engine ----------------------------------------------------------------------------

    def _next_time(self) -> float | None:
        times = [self._queue[0].at] if self._queue else []
        for pid in self.alive:
            wait = self.peers[pid].core.seconds_to_deadline(self.now, self.now)
            if wait is not None:
                times.append(self.now + max(wait, 1e-4))
        return min(times) if times else None

    def _process_due(self) -> None:
        while self._queue and self._queue[0].at <= self.now:
            event = heapq.heappop(self._queue)
            self._handle(event)
        for pid in self.alive:
            core = self.peers[pid].core
            wait = core.seconds_to_deadline(self.now, self.now)
            if wait is not None and wait <= 1e-4:
                core.tick(self.now, self.now)
                self._collect(pid)

    def _handle(self, event: _Event) -> None:
        match event.kind:
            case "deliver":
                src, dst, payload = event.args
                if not (self.peers[src].alive and self.peers[dst].alive and self._linked(src, dst)):
                    return
                if src not in self._seen[dst]:
                    return  # the link is not up on dst's side (yet)
                messages = wire.decode(payload) if self.codec else payload
                self.peers[dst].core.receive(src, messages, self.now, self.now)
                self._collect(dst)
            case "links":
                (pid,) = event.args
                self._report_links(pid)
            case "kill":
                self.kill(*event.args)
            case "partition":
                self.partition(*event.args)
            case "heal":
                self.heal()
            case "call":
                fn, args = event.args
                fn(self, *args)

    def _push(self, at: float, kind: str, args: tuple[Any, ...]) -> None:
        heapq.heappush(self._queue, _Event(at, next(self._order), kind, args))

    def _linked(self, a: PeerId, b: PeerId) -> bool:
        if self._groups is None:
            return True
        ga = next((i for i, g in enumerate(self._groups) if a in g), -1)
        gb = next((i for i, g in enumerate(self._groups) if b in g), -1)
        return ga == gb

    def _topology_changed(self, *, detect: float) -> None:
        for pid in self.alive:
            self._push(self.now + detect, "links", (pid,))

    def _report_links(self, pid: PeerId) -> None:
        if not self.peers[pid].alive:
            return
        now_up = {q for q in self.alive if q != pid and self._linked(pid, q)}
        before = self._seen[pid]
        if now_up == before:
            return
        self._seen[pid] = now_up
        core = self.peers[pid].core
        for left in sorted(before - now_up):
            core.links_changed(frozenset(now_up), self.now, self.now, left=left)
        core.links_changed(frozenset(now_up), self.now, self.now)
        self._collect(pid)

    def _command(self, pid: PeerId, effects: list[fx.Effect]) -> None:
        core = self.peers[pid].core
        core.resource_effects(effects)
        core.drain()
        self._collect(pid)

    def _collect(self, pid: PeerId) -> None:
        core = self.peers[pid].core
        peer = self.peers[pid]
        for dst, messages in core.take_outbox().items():
            if dst not in self._seen[pid]:
                continue  # no link on our side: the transport would refuse
            payload: Any = wire.encode_many(messages) if self.codec else list(messages)
            at = max(self.now + self.rng.uniform(*self.delay), self._last_delivery.get((pid, dst), 0.0))
            self._last_delivery[(pid, dst)] = at
            self._push(at, "deliver", (pid, dst, payload))
        for event in core.take_events():
            match event:
                case el.MasterChanged(master=master, term=term) if master == pid:
                    self.elected.append((self.now, term, pid))
                case fx.ActionSettled(rid=rid, seq=seq, error=None) if (rid, seq) in peer.dispatched:
                    peer.confirmed[(rid, seq)] = peer.dispatched[(rid, seq)]
                    peer.confirmed_at[(rid, seq)] = self.now
                case fx.ActionSettled(rid=rid, seq=seq, error=error) if error is not None:
                    peer.rejected[(rid, seq)] = error
                case fx.ResyncStarted():
                    peer.resyncs += 1
                case fx.Rebased(count=count):
                    peer.rebased += count
                case _:
                    pass
        core.dropped.clear()


def terms_with_two_masters(elected: Iterable[tuple[float, Term, PeerId]]) -> Mapping[Term, set[PeerId]]:
    """Terms in which more than one peer became master (should be empty)."""
    by_term: dict[Term, set[PeerId]] = {}
    for _, term, pid in elected:
        by_term.setdefault(term, set()).add(pid)
    return {term: pids for term, pids in by_term.items() if len(pids) > 1}
