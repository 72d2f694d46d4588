"""A virtual-time network of ElectionMachines with seeded faults (pure: no asyncio, no clock).

The harness routes effects between machines the way the node does (``ToOthers`` goes to the
links the sender sees open), sends every election message as a datagram through the shared
link model (:class:`movex_p2p.links.Links`: lost with probability ``loss``, delayed on its own
draw, so messages may overtake each other), reports link changes as ``LinksChanged`` after
configurable detection delays, and injects kills, graceful leaves, partitions, heals and loss.
Time only moves in :meth:`run_until`, the one simulated world's (:class:`~movex_p2p.world.World`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..identity import KEY_SIZE, Identity
from ..ids import PeerId, Term
from ..links import Links
from ..routes import Lane
from ..signing import ED25519, FAKE, FakeSigner, Signer, Verifier
from ..world import World
from .machine import (
    Disconnected,
    Effect,
    ElectionConfig,
    ElectionMachine,
    Handover,
    Input,
    LinksChanged,
    LogPosition,
    MasterChanged,
    Received,
    Send,
    Standing,
    Tick,
    ToOthers,
)
from .messages import ElectionMessage, VoteReply

if TYPE_CHECKING:
    import random

__all__ = ["Cluster", "Elected"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Elected:
    """``peer`` became master of ``term`` at virtual time ``at``."""

    at: float
    term: Term
    peer: PeerId


@dataclass(frozen=True, slots=True, kw_only=True)
class _Delivery:
    src: PeerId
    dst: PeerId
    message: ElectionMessage


@dataclass(frozen=True, slots=True, kw_only=True)
class _LinkSeen:
    peer: PeerId
    other: PeerId
    up: bool


class Cluster(World[_Delivery | _LinkSeen, PeerId]):
    """Routes effects between ElectionMachines in virtual time, with kills, partitions, loss and delay."""

    def __init__(
        self,
        peers: int,
        *,
        config: ElectionConfig,
        rng: random.Random,
        delay: tuple[float, float] = (0.001, 0.005),
        loss: float = 0.0,
        down_delay: float | None = 0.0,
        up_delay: float = 0.0,
        ed25519: bool = False,
        inert: Iterable[int] = (),
    ) -> None:
        """Every peer signs with a key drawn from ``rng`` and its id is derived from it, as real peers
        do: a :class:`~movex_p2p.signing.FakeSigner` (fast), or with ``ed25519`` a real Identity.
        ``inert``: indexes of peers whose machines stay silent (a test speaks for them with :meth:`inject`)."""
        keys = type(rng)(rng.getrandbits(64))
        signers: list[Signer] = sorted(
            (
                Identity(keys.randbytes(KEY_SIZE)) if ed25519 else FakeSigner(keys.randbytes(KEY_SIZE))
                for _ in range(peers)
            ),
            key=lambda signer: signer.id,
        )
        self.verifier: Verifier = ED25519 if ed25519 else FAKE
        """What every peer checks signatures with."""
        self.ids: list[PeerId] = [signer.id for signer in signers]
        """The peers, lowest id first."""
        self.signers: dict[PeerId, Signer] = {signer.id: signer for signer in signers}
        self.inert: set[PeerId] = {self.ids[i] for i in inert}
        self.rng = rng
        self.config = config
        super().__init__(Links(rng, delay=delay, loss=loss))  # the link model shared with the node Simulation
        self.down_delay = down_delay
        self.up_delay = up_delay
        self.machines: dict[PeerId, ElectionMachine] = {
            p: ElectionMachine(
                p, config=config, rng=type(rng)(rng.getrandbits(64)), signer=self.signers[p], verifier=self.verifier
            )
            for p in self.ids
        }
        self.alive: set[PeerId] = set(self.machines)
        self.elected: list[Elected] = []
        self.changes: list[tuple[float, PeerId, MasterChanged]] = []
        self.votes: dict[tuple[PeerId, Term], set[PeerId]] = {}
        """Every candidate each voter granted a vote to, per term (a set of more than one is a bug)."""
        self.observers: list[Callable[[Cluster], None]] = []
        """Called after every processed event (invariant checks)."""
        self._view: dict[PeerId, set[PeerId]] = {p: set() for p in self.machines}
        self._down_at: dict[frozenset[PeerId], float] = {}
        for peer in sorted(self.machines):
            self._route(peer, self.machines[peer].start(self.now))
        self._topology_changed(dict.fromkeys(self._pairs(), False))

    # -- observation --

    @property
    def loss(self) -> float:
        """Probability that one message is lost (every election message is a datagram)."""
        return self.links.loss

    @loss.setter
    def loss(self, p: float) -> None:
        self.links.set_loss(p)

    def linked(self, a: PeerId, b: PeerId) -> bool:
        """Is the a-b link up right now (both alive, same side of every partition)?"""
        return self.links.linked(a, b)

    def last_linked(self, a: PeerId, b: PeerId) -> float:
        """The last virtual time the a-b link was up (now if it is up, -inf if never)."""
        if self.linked(a, b):
            return self.now
        return self._down_at.get(frozenset((a, b)), -math.inf)

    def masters(self) -> list[PeerId]:
        """Live peers whose role is MASTER, sorted."""
        return sorted(p for p in self.alive if self.machines[p].role is Standing.MASTER)

    def known_masters(self) -> dict[PeerId, PeerId | None]:
        """Each live peer's idea of the master."""
        return {p: self.machines[p].master for p in sorted(self.alive)}

    # -- faults and commands --

    def kill(self, peer: str) -> None:
        """Crash ``peer``: it stops at once; others notice after ``down_delay`` (or by silence)."""
        before = self._links()
        self.alive.discard(PeerId(peer))
        self.links.kill(peer)
        self._topology_changed(before)

    def leave(self, peer: str) -> None:
        """``peer`` leaves gracefully: others get ``Disconnected(graceful=True)`` now."""
        pid = PeerId(peer)
        before = self._links()
        self.alive.discard(pid)
        self.links.kill(pid)
        for other in sorted(self.alive):
            if pid in self._view[other]:
                self._view[other].discard(pid)
                self.step(other, Disconnected(peer=pid, graceful=True))
        self._topology_changed(before)

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the network: each group is one side; unlisted peers form one more side."""
        before = self._links()
        self.links.partition(*groups)
        self._topology_changed(before)

    def heal(self) -> None:
        """Remove every partition."""
        before = self._links()
        self.links.heal()
        self._topology_changed(before)

    def position(self, peer: str, term: int, index: int) -> None:
        """Set ``peer``'s replica position (feeds ``LogPosition``)."""
        self.step(PeerId(peer), LogPosition(term=term, index=index))

    def handover(self, peer: str) -> None:
        """Ask ``peer`` to hand its mastership over."""
        self.step(PeerId(peer), Handover())

    def inject(self, src: str, dst: str, message: ElectionMessage) -> None:
        """Deliver ``message`` from ``src`` to ``dst`` over their link, as if ``src`` had sent it now."""
        self._transmit(PeerId(src), PeerId(dst), message)

    def step(self, peer: PeerId, event: Input) -> None:
        """Feed ``event`` to a live peer now and route its effects."""
        if peer in self.alive:
            self._route(peer, self.machines[peer].step(event, self.now))

    # -- time --

    def run(self, seconds: float) -> None:
        """Advance virtual time by ``seconds``."""
        self.run_until(self.now + seconds)

    # -- the world's hooks --

    def _deadlines(self) -> Iterable[tuple[PeerId, float | None]]:
        return ((peer, self.machines[peer].deadline) for peer in sorted(self.alive))

    def _tick(self, key: PeerId) -> None:
        self.step(key, Tick())

    def _observe(self) -> None:
        for observer in self.observers:
            observer(self)

    def _handle(self, item: _Delivery | _LinkSeen) -> None:
        match item:
            case _Delivery(src=src, dst=dst, message=message):
                if self.linked(src, dst):
                    self.step(dst, Received(sender=src, message=message))
            case _LinkSeen(peer=peer, other=other, up=up):
                if peer in self.alive and self.linked(peer, other) == up and (other in self._view[peer]) != up:
                    if up:
                        self._view[peer].add(other)
                    else:
                        self._view[peer].discard(other)
                    self.step(peer, LinksChanged(peers=frozenset(self._view[peer])))

    # -- plumbing --

    def _pairs(self) -> list[frozenset[PeerId]]:
        return [frozenset(pair) for pair in itertools.combinations(sorted(self.machines), 2)]

    def _links(self) -> dict[frozenset[PeerId], bool]:
        return {pair: self.linked(*sorted(pair)) for pair in self._pairs()}

    def _topology_changed(self, before: dict[frozenset[PeerId], bool]) -> None:
        for pair, was_up in before.items():
            a, b = sorted(pair)
            up = self.linked(a, b)
            if up == was_up:
                continue
            if not up:
                self._down_at[pair] = self.now
            lag = self.up_delay if up else self.down_delay
            if lag is None:
                continue
            for peer, other in ((a, b), (b, a)):
                self._push(self.now + lag, _LinkSeen(peer=peer, other=other, up=up))

    def _push(self, when: float, what: _Delivery | _LinkSeen) -> None:
        self.timeline.at(when, what)

    def _route(self, src: PeerId, effects: list[Effect]) -> None:
        if src in self.inert:
            return
        for effect in effects:
            match effect:
                case Send(to=dst, message=message):
                    if dst in self._view[src]:
                        self._transmit(src, dst, message)
                case ToOthers(message=message):
                    for dst in sorted(self._view[src]):
                        self._transmit(src, dst, message)
                case MasterChanged(master=master, term=term):
                    self.changes.append((self.now, src, effect))
                    if master == src:
                        self.elected.append(Elected(at=self.now, term=term, peer=src))

    def _transmit(self, src: PeerId, dst: PeerId, message: ElectionMessage) -> None:
        if isinstance(message, VoteReply) and message.granted:
            self.votes.setdefault((src, message.term), set()).add(dst)
        when = self.links.arrival(src, dst, self.now, Lane.DATAGRAM)
        if when is not None:
            self._push(when, _Delivery(src=src, dst=dst, message=message))
