"""MeshCores in virtual time: their dial loops and links run as LanEndpoint runs them (pure).

An adapter over the one simulated world (:class:`~movex_p2p.world.World`), beside
:class:`~movex_p2p.simulation.Simulation` (NodeCores) and :class:`~movex_p2p.election.sim.Cluster`
(ElectionMachines). Each :class:`MeshNode` is one endpoint: a :class:`~.meshcore.MeshCore`, the
effects it returned, and its dial loops, each performing the steps
:meth:`~.meshcore.PeerDials.step` decides and reporting what came of them, as
``LanEndpoint._dial_loop`` does. A dial takes no virtual time; its outcome comes from the
node's ``network``: a script, or the world's own peers.

Peers that :meth:`MeshWorld.join` announce their mDNS record (and are answered) at once, after
1 s, then doubling; every record and heartbeat is a datagram on the shared
:class:`~movex_p2p.links.Links`, so lost with its ``loss``. A dial reaches whoever listens at the
address; the listener's core admits it or not (``incoming``), then equal room secrets (and the
expected id) make it a link on both sides, with peer exchange; a silent link is dropped
(``DropSilent``). A liar (:meth:`MeshWorld.liar`) announces made-up members at its own address,
fails every handshake, and dials every peer from many addresses. Not modelled: probes of a new
incarnation, ``peers=`` address loops, twins (their effects are only kept). Time passes only in
:meth:`MeshWorld.run_until`. It lives here rather than in :mod:`movex_p2p.testing`, whose
package imports anyio: like its core, it must stay pure (``tests/test_purity.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, assert_never

from ..ids import PeerId
from ..links import Links
from ..routes import Lane
from ..world import World
from .meshcore import (
    Beat,
    DialDeclined,
    DialNow,
    DialOutcome,
    DialState,
    DropSilent,
    Effect,
    Failure,
    FailureKind,
    LinkClosed,
    MeshCore,
    Pause,
    Reannounce,
    Refuse,
    StartDialer,
    Stop,
    StopDialer,
    WaitEnded,
    WaitFor,
)

if TYPE_CHECKING:
    import random

    from .contact import Contact
    from .discovery import Announcement
    from .mesh import Attempt

__all__ = [
    "REMIND",
    "STRANGERS",
    "UNREACHABLE",
    "DialLoop",
    "Linked",
    "MeshNode",
    "MeshWorld",
    "Network",
    "Outcome",
]

UNREACHABLE: Final = Failure(kind=FailureKind.UNREACHABLE, text="connection refused")
"""What a dial of an address where nobody listens gets."""


@dataclass(frozen=True, slots=True)
class Linked:
    """A dial that opened a link; it closes after ``seconds``; ``contact`` and ``members``: what the other side told."""

    seconds: float
    incarnation: int = 1
    contact: Contact | None = None
    members: tuple[Contact, ...] = ()


Outcome = Failure | Linked | DialDeclined
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
    accepted: dict[PeerId, Attempt] = field(default_factory=dict)
    """Links others' dials opened with us."""

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
                case _:
                    self.world.perform(self, effect)

    def linked(self) -> frozenset[PeerId]:
        """Peers we hold an open link with."""
        return frozenset([*(p for p, loop in self.loops.items() if loop.link_ends is not None), *self.accepted])

    def tick(self) -> None:
        """The core's deadline passed."""
        self.perform(self.core.tick(self.world.now, linked=self.linked()))

    def due(self) -> Iterator[tuple[DialLoop, float | None]]:
        """Each current dial loop and when it wakes (read as the world ticks them)."""
        for loop in list(self.loops.values()):
            if self.loops.get(loop.dial.peer) is loop:
                yield loop, loop.wake

    def step(self, loop: DialLoop) -> None:
        """Wake ``loop``: close the link it held if that is over, then perform the steps the core decides."""
        core, dial, now = self.core, loop.dial, self.world.now
        outcome: DialOutcome = None
        if loop.link_ends is not None:  # its link closes now
            assert loop.attempt is not None
            core.attempts.release(loop.attempt)
            core.link_closed(dial.peer, incarnation=loop.attempt.incarnation, graceful=False, current=True)
            loop.link_ends = loop.attempt = None
            self.world.closed(self, dial.peer)
            outcome = LinkClosed()
        elif loop.waiting is not None:
            outcome, loop.waiting = WaitEnded(attempt=loop.waiting), None
        while True:
            step, effects = core.dialing.step(dial, outcome, now)
            self.perform(effects)
            match step:
                case Stop():
                    self._end(loop)
                    return
                case Pause(seconds=seconds):
                    loop.wake = now + seconds
                    return
                case WaitFor(attempt=held):
                    loop.waiting, loop.wake = held, None
                    return
                case DialNow(contact=contact):
                    outcome = self._dial(loop, contact)
                    if outcome is None:
                        return  # a link opened: the loop wakes when it ends
                case _:
                    assert_never(step)

    def _dial(self, loop: DialLoop, contact: Contact) -> Failure | DialDeclined | None:
        """Dial as ``network`` decides: how it failed, or None once a link opened (held until ``link_ends``)."""
        core, dial, now = self.core, loop.dial, self.world.now
        self.dials.append((now, dial.peer))
        outcome = self.network(dial.peer, contact, now)
        if not isinstance(outcome, Linked):
            return outcome
        core.answered(dial.peer, now)
        claimed = core.claim(dial.peer, dialer=core.me, incarnation=outcome.incarnation)
        assert claimed is not None
        loop.attempt, _ = claimed
        loop.attempt.opened = True
        loop.attempt.contact = outcome.contact
        core.link_opened(dial.peer)
        core.heard(dial.peer, now)
        loop.link_ends = loop.wake = now + outcome.seconds
        self.perform(core.learnt(outcome.members, source=dial.peer, now=now))
        return None

    def close(self, peer: PeerId) -> None:
        """The link with ``peer`` is over (dropped here, or closed at the other end)."""
        loop = self.loops.get(peer)
        if loop is not None and loop.link_ends is not None:
            loop.link_ends = loop.wake = self.world.now  # its loop closes it, as it does when the link ends
            return
        attempt = self.accepted.pop(peer, None)
        if attempt is not None:
            self.core.attempts.release(attempt)
            self.core.link_closed(peer, incarnation=attempt.incarnation, graceful=False, current=True)
            self.ended(attempt)

    def ended(self, attempt: Attempt) -> None:
        """``attempt`` was released: a loop waiting for it wakes now."""
        for loop in self.loops.values():
            if loop.waiting is attempt:
                loop.wake = self.world.now

    def _end(self, loop: DialLoop) -> None:
        if self.loops.get(loop.dial.peer) is loop:
            del self.loops[loop.dial.peer]
        self.core.dialer_ended(loop.dial)


_Key = tuple[MeshNode, DialLoop | None]
"""What has a deadline: a node's core (None), or one of its dial loops."""


@dataclass(frozen=True, slots=True)
class _Record:
    """An mDNS record reaches ``dst``."""

    dst: PeerId
    ann: Announcement


@dataclass(frozen=True, slots=True)
class _Heartbeat:
    """A link heartbeat from ``src`` reaches ``dst``."""

    src: PeerId
    dst: PeerId


@dataclass(frozen=True, slots=True)
class _Remind:
    """``peer`` announces itself and asks for the others' records (mDNS's repeated queries)."""

    peer: PeerId
    every: float


@dataclass(frozen=True, slots=True)
class _Lies:
    """The liar at ``address`` announces its made-up members again."""

    address: str


@dataclass(frozen=True, slots=True)
class _Guess:
    """A stranger from the liar at ``address`` dials ``dst`` and fails the handshake."""

    address: str
    dst: PeerId


_Item = _Record | _Heartbeat | _Remind | _Lies | _Guess

REMIND: Final = (1.0, 60.0)
"""A joined peer announces itself (and asks for the others' records) now, after 1 s, then doubling up to a minute."""
STRANGERS: Final = 250
"""Source addresses a liar dials from."""


@dataclass(slots=True)
class _Liar:
    """What a liar announces, how often it dials each peer, and the addresses it dials from."""

    records: list[Announcement]
    rate: float
    sources: list[str]


class MeshWorld(World[_Item, _Key]):
    """MeshCores in virtual time: each core ticks when due, then each dial loop due, node by node.

    Peers added with :meth:`join` hear each other's mDNS records (lossy broadcasts on the
    links), dial each other, and a handshake succeeds when their link is up and they hold the
    same room secret; a liar (:meth:`liar`) announces made-up members at its own address and
    floods handshakes that fail.
    """

    def __init__(self, rng: random.Random, *, delay: tuple[float, float] = (0.0, 0.0), loss: float = 0.0) -> None:
        super().__init__(Links(rng, delay=delay, loss=loss))
        self.rng = rng
        self.nodes: dict[PeerId, MeshNode] = {}
        self.records: dict[PeerId, Announcement] = {}
        self._secrets: dict[PeerId, str] = {}
        self._listening: dict[tuple[str, int], PeerId] = {}
        self._liars: dict[str, _Liar] = {}

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

    def join(self, record: Announcement, *, secret: str) -> MeshNode:
        """A peer that listens where ``record`` says and holds ``secret`` starts now, and announces itself."""
        me = record.peer
        self.records[me], self._secrets[me] = record, secret
        for address in record.addresses:
            self._listening[(address, record.port)] = me
        node = self.add(
            me,
            seed=self.rng.getrandbits(64),
            incarnation=record.incarnation,
            network=lambda peer, contact, now: self._handshake(me, peer, contact),
            interfaces=record.addresses,
            port=record.port,
        )
        self.timeline.at(self.now, _Remind(me, REMIND[0]))
        for address, liar in self._liars.items():
            self.timeline.at(self.now + self.rng.expovariate(liar.rate), _Guess(address, me))
        return node

    def liar(self, address: str, records: list[Announcement], *, rate: float) -> None:
        """From now on ``address`` announces ``records`` every second (each listening there) and
        dials every joined peer ``rate`` times a second from ``STRANGERS`` addresses, each dial
        failing its handshake; dials to ``address`` fail likewise."""
        prefix = address.rpartition(".")[0]
        sources = [f"{prefix}.{100 + i % 100}.{i}" for i in range(STRANGERS)]
        self._liars[address] = _Liar(records, rate, sources)
        self.timeline.at(self.now, _Lies(address))
        for peer in self.nodes:
            self.timeline.at(self.now + self.rng.expovariate(rate), _Guess(address, peer))

    def stop_liar(self, address: str) -> None:
        """The liar at ``address`` falls silent: no more records, no more dials."""
        self._liars.pop(address, None)

    def run(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass."""
        self.run_until(self.now + seconds)

    def meshed(self, peers: Iterable[PeerId] | None = None) -> bool:
        """Does every one of ``peers`` (default: every node) hold a link with every other?"""
        chosen = list(self.nodes if peers is None else peers)
        return all(set(chosen) - {p} <= self.nodes[p].linked() for p in chosen)

    # -- what the nodes do to each other --

    def perform(self, node: MeshNode, effect: Effect) -> None:
        """An effect of ``node`` that touches other peers (the rest is only kept)."""
        match effect:
            case Beat():
                for peer in sorted(node.linked()):
                    if peer in self.nodes:
                        self._send(node.me, peer, _Heartbeat(node.me, peer))
            case DropSilent(peer=peer) if peer in self.nodes and peer in node.linked():
                node.close(peer)
            case Reannounce() if node.me in self.records:
                self._broadcast(node.me, self.records[node.me], after=0.005)
            case _:
                pass

    def closed(self, node: MeshNode, peer: PeerId) -> None:
        """``node``'s dial loop closed its link with ``peer``: the other end closes too."""
        other = self.nodes.get(peer)
        if other is not None and node.me in other.accepted:
            other.close(node.me)

    def _handshake(self, me: PeerId, peer: PeerId, contact: Contact) -> Outcome:
        """``me`` dials ``peer`` at ``contact``: the listener admits it or not, then the secrets decide."""
        node, now = self.nodes[me], self.now
        for address in contact.addresses:
            if address in self._liars:
                return Failure(kind=FailureKind.WRONG_SECRET, text="bad proof")
            there = self._listening.get((address, contact.port))
            if there is None or not self.links.linked(me, there):
                continue
            other = self.nodes[there]
            source = self.records[me].addresses[0]
            handle, effects = other.core.incoming(source, now)
            refusal = next((e for e in effects if isinstance(e, Refuse)), None)
            other.perform([e for e in effects if not isinstance(e, Refuse)])
            if handle is None:
                assert refusal is not None
                if refusal.retry is None:
                    return Failure(kind=FailureKind.BAD_HANDSHAKE, text="closed at once")
                other.core.refusal_told()
                return Failure(kind=FailureKind.REFUSED, text=refusal.told, retry_after=refusal.retry)
            if self._secrets[there] != self._secrets[me] or there != peer:
                other.core.handshake_over(handle)
                other.core.handshake_failed(source, "wrong secret", now)
                return Failure(kind=FailureKind.WRONG_SECRET, text="bad proof")
            other.core.authenticated(handle, source)
            other.core.handshake_over(handle)
            other.core.answered(me, now)
            claimed = other.core.claim(me, dialer=me, incarnation=self.records[me].incarnation)
            if claimed is None:
                return DialDeclined()
            attempt, _ = claimed
            attempt.opened, attempt.contact = True, node.core.contact
            other.accepted[me] = attempt
            other.core.link_opened(me)
            other.core.heard(me, now)
            members = node.core.attempts.contacts(exclude=there)
            other.perform(other.core.learnt(members, source=me, now=now))
            told = other.core.attempts.contacts(exclude=me)
            return Linked(
                math.inf, incarnation=self.records[there].incarnation, contact=other.core.contact, members=told
            )
        return UNREACHABLE

    def _send(self, src: PeerId, dst: PeerId, item: _Item) -> None:
        at = self.links.arrival(src, dst, self.now, Lane.DATAGRAM)
        if at is not None:
            self.timeline.at(at, item)

    def _broadcast(self, src: str, ann: Announcement, *, after: float = 0.0) -> None:
        for dst in self.nodes:
            if dst != src:
                at = self.links.arrival(PeerId(src), dst, self.now + after, Lane.DATAGRAM)
                if at is not None:
                    self.timeline.at(at, _Record(dst, ann))

    # -- the world's hooks --

    def _handle(self, item: _Item) -> None:
        match item:
            case _Record(dst=dst, ann=ann):
                self.nodes[dst].announce(ann)
            case _Heartbeat(src=src, dst=dst):
                if src in self.nodes[dst].linked():
                    self.nodes[dst].core.heard(src, self.now)
            case _Remind(peer=peer, every=every):
                self._broadcast(peer, self.records[peer])
                for other in self.records:
                    if other != peer:
                        self._send(other, peer, _Record(peer, self.records[other]))
                self.timeline.at(self.now + every, _Remind(peer, min(every * 2, REMIND[1])))
            case _Lies(address=address) if address in self._liars:
                for ann in self._liars[address].records:
                    self._broadcast(address, ann)
                self.timeline.at(self.now + 1.0, _Lies(address))
            case _Guess(address=address, dst=dst) if address in self._liars:
                self._guess(address, dst)
            case _Lies() | _Guess():
                pass  # that liar fell silent
            case _:
                assert_never(item)

    def _guess(self, address: str, dst: PeerId) -> None:
        liar, core = self._liars[address], self.nodes[dst].core
        source = self.rng.choice(liar.sources)
        handle, effects = core.incoming(source, self.now)
        if handle is None:
            if any(isinstance(e, Refuse) and e.retry is not None for e in effects):
                core.refusal_told()
        else:
            core.handshake_over(handle)
            core.handshake_failed(source, "wrong secret", self.now)
        self.timeline.at(self.now + self.rng.expovariate(liar.rate), _Guess(address, dst))

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
