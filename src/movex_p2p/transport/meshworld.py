"""MeshCores in virtual time: their dial loops and links run as LanEndpoint runs them (pure).

An adapter over the one simulated world (:class:`~movex_p2p.world.World`), beside
:class:`~movex_p2p.simulation.Simulation` (NodeCores) and :class:`~movex_p2p.election.sim.Cluster`
(ElectionMachines). Each :class:`MeshNode` is one endpoint: a :class:`~.meshcore.MeshCore`, the
effects it returned, and its dial loops, each asking :meth:`~.meshcore.MeshCore.dial_next` what
to do and reporting the outcome as ``LanEndpoint._dial_loop`` does. A dial takes no virtual time;
its outcome comes from the node's ``network``: a script, or the world's own peers (see
:meth:`MeshWorld.join`). Time passes only in :meth:`MeshWorld.run`. It lives here rather than in
:mod:`movex_p2p.testing`, whose package imports anyio: like its core, it must stay pure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from ..ids import PeerId
from ..links import Links
from ..world import World
from .meshcore import (
    DialNow,
    DialState,
    Effect,
    Failure,
    FailureKind,
    MeshCore,
    Pause,
    StartDialer,
    Stop,
    StopDialer,
    WaitFor,
)

if TYPE_CHECKING:
    import random

    from .contact import Contact
    from .discovery import Announcement
    from .mesh import Attempt

__all__ = ["UNREACHABLE", "DialLoop", "Linked", "MeshNode", "MeshWorld", "Network", "Outcome"]

UNREACHABLE: Final = Failure(kind=FailureKind.UNREACHABLE, text="connection refused")
"""What a dial of an address where nobody listens gets."""


@dataclass(frozen=True, slots=True)
class Linked:
    """A dial that opened a link; it closes after ``seconds``."""

    seconds: float


Outcome = Failure | Linked
Network = Callable[[PeerId, "Contact", float], Outcome]
"""Decides a dial: (the peer dialed, where, now) -> its outcome."""


def _unreachable(peer: PeerId, contact: Contact, now: float) -> Outcome:
    return UNREACHABLE


@dataclass(eq=False, slots=True)
class DialLoop:
    """One dial loop between two steps: when it wakes next (None: when ``waiting`` ends), the link it opened."""

    dial: DialState
    wake: float | None
    waiting: Attempt | None = None
    link_ends: float | None = None
    attempt: Attempt | None = None


@dataclass(eq=False)
class MeshNode:
    """One endpoint: its MeshCore, every effect it returned, its dial loops and the dials they made."""

    world: MeshWorld
    core: MeshCore
    network: Network = _unreachable
    loops: dict[PeerId, DialLoop] = field(default_factory=dict)
    dials: list[tuple[float, PeerId]] = field(default_factory=list)
    """(when, whom) of every dial, in order."""
    effects: list[Effect] = field(default_factory=list)

    @property
    def me(self) -> PeerId:
        return self.core.me

    def dials_of(self, peer: str) -> list[float]:
        """When ``peer`` was dialed (rounded to 0.1 ms)."""
        return [round(at, 4) for at, p in self.dials if p == peer]

    def announce(self, ann: Announcement) -> list[Effect]:
        """An mDNS record arrives now: the core's effects, performed."""
        effects = self.core.announced(ann, self.world.now)
        self.perform(effects)
        return effects

    def perform(self, effects: list[Effect]) -> None:
        """Keep ``effects`` and start or stop dial loops as they say (the rest is only kept)."""
        self.effects += effects
        for effect in effects:
            match effect:
                case StartDialer(dial=dial):
                    old = self.loops.pop(dial.peer, None)
                    if old is not None:
                        self.core.dialer_ended(old.dial)
                    self.loops[dial.peer] = DialLoop(dial, self.world.now)
                case StopDialer(peer=peer):
                    loop = self.loops.pop(peer, None)
                    if loop is not None:
                        self.core.dialer_ended(loop.dial)

    def linked(self) -> frozenset[PeerId]:
        """Peers our dial loops hold an open link with."""
        return frozenset(p for p, loop in self.loops.items() if loop.link_ends is not None)

    def tick(self) -> None:
        """The core's deadline passed."""
        self.perform(self.core.tick(self.world.now, linked=self.linked()))

    def due(self) -> Iterator[tuple[DialLoop, float | None]]:
        """Each current dial loop and when it wakes (read as the world ticks them)."""
        for loop in list(self.loops.values()):
            if self.loops.get(loop.dial.peer) is loop:
                yield loop, loop.wake

    def step(self, loop: DialLoop) -> None:
        """Wake ``loop``: close the link it held if that is over, or ask the core what to do next and do it."""
        core, dial, now = self.core, loop.dial, self.world.now
        if loop.link_ends is not None:  # its link closes now
            assert loop.attempt is not None
            core.attempts.release(loop.attempt)
            core.link_closed(dial.peer, incarnation=1, graceful=False, current=True)
            core.dial_linked(dial, now)
            loop.link_ends = loop.attempt = None
            self._pause(loop, core.link_over(dial))
            return
        if loop.waiting is not None:
            held, loop.waiting = loop.waiting, None
            if held.opened:
                self._pause(loop, core.link_over(dial))
                return
        step = core.dial_next(dial, now)
        match step:
            case Stop():
                self._end(loop)
            case Pause(seconds=seconds):
                loop.wake = now + seconds
            case WaitFor(attempt=held):
                loop.waiting, loop.wake = held, None
            case DialNow(contact=contact):
                self._dial(loop, contact)

    def _dial(self, loop: DialLoop, contact: Contact) -> None:
        core, dial, now = self.core, loop.dial, self.world.now
        self.dials.append((now, dial.peer))
        outcome = self.network(dial.peer, contact, now)
        if isinstance(outcome, Failure):
            pause, effects = core.dial_failed(dial, outcome, now)
            self.perform(effects)
            self._pause(loop, pause)
            return
        core.answered(dial.peer, now)
        claimed = core.claim(dial.peer, dialer=core.me, incarnation=1)
        assert claimed is not None
        loop.attempt, _ = claimed
        loop.attempt.opened = True
        core.link_opened(dial.peer)
        core.heard(dial.peer, now)
        loop.link_ends = loop.wake = now + outcome.seconds

    def ended(self, attempt: Attempt) -> None:
        """``attempt`` was released: a loop waiting for it wakes now."""
        for loop in self.loops.values():
            if loop.waiting is attempt:
                loop.wake = self.world.now

    def _pause(self, loop: DialLoop, pause: float | None) -> None:
        if pause is None:
            self._end(loop)
        else:
            loop.wake = self.world.now + pause

    def _end(self, loop: DialLoop) -> None:
        if self.loops.get(loop.dial.peer) is loop:
            del self.loops[loop.dial.peer]
        self.core.dialer_ended(loop.dial)


_Key = tuple[MeshNode, DialLoop | None]
"""What has a deadline: a node's core (None), or one of its dial loops."""


class MeshWorld(World[object, _Key]):
    """MeshCores in virtual time: each core ticks when due, then each dial loop due, node by node."""

    def __init__(self, rng: random.Random, *, delay: tuple[float, float] = (0.0, 0.0), loss: float = 0.0) -> None:
        super().__init__(Links(rng, delay=delay, loss=loss))
        self.rng = rng
        self.nodes: dict[PeerId, MeshNode] = {}

    def add(
        self,
        me: str,
        *,
        seed: int,
        incarnation: int = 0,
        network: Network = _unreachable,
        interfaces: Iterable[str] = ("10.0.0.1",),
        port: int = 9,
    ) -> MeshNode:
        """A new endpoint, opened now (as the tests' and LanEndpoint's timings: connect in 5 s, dead after 0.9 s)."""
        core = MeshCore(
            PeerId(me),
            connect_timeout=5.0,
            dead_after=0.9,
            heartbeat_interval=0.1,
            rng=type(self.rng)(seed),
            incarnation=incarnation,
        )
        node = self.nodes[core.me] = MeshNode(self, core, network)
        node.perform(core.open(self.now, interfaces=list(interfaces), port=port))
        return node

    def run(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass."""
        self.run_until(self.now + seconds)

    # -- the world's hooks --

    def _handle(self, item: object) -> None:
        raise AssertionError(f"nothing is put on the timeline yet: {item!r}")

    def _deadlines(self) -> Iterable[tuple[_Key, float | None]]:
        for node in list(self.nodes.values()):
            yield (node, None), node.core.next_deadline()
            for loop, wake in node.due():
                yield (node, loop), wake

    def _tick(self, key: _Key) -> None:
        node, loop = key
        if loop is None:
            node.tick()
        else:
            node.step(loop)
