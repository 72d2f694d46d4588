"""Whole peers in virtual time: NodeCores over a simulated network with seeded faults (pure).

Each simulated peer is the same :class:`~movex_p2p.nodecore.NodeCore` that ``mx.Peer`` drives,
and this module is a driver as thin as the Peer: it feeds transport events and ticks in and
executes every :class:`~movex_p2p.nodecore.Ready` that comes out, so the election, the cores and
their routing are exercised together, hundreds of times per second of real time. Time and the
queue of frames in flight are the one simulated world's (:class:`~movex_p2p.world.World`). Frames go
through the real codec and the shared link model (:class:`~movex_p2p.links.Links`): reliable
frames in order per link, election datagrams lost with probability ``loss`` and reordered. A
kill or a partition cuts links silently and the far side notices after ``detect_after``.

A fault (an exception in our own code while a core handled input) fails the run at once with
:class:`SimulationFault`; dropped input (the sender's fault) is kept in :attr:`Simulation.dropped`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .election import machine as el
from .identity import KEY_SIZE, Identity
from .ids import PeerId, Rid, Term
from .links import Links
from .nodecore import Dropped, Fault, MasterChanged, NodeCore, PeersChanged, Ready
from .resource import effects as fx
from .resource.types import Action, ResourceType
from .routes import Lane
from .signing import ED25519, FAKE, FakeSigner, Signer, Verifier
from .transport.base import Frame, PeerDown, PeerUp, TransportEvent
from .world import World

__all__ = ["SimPeer", "Simulation", "SimulationFault", "terms_with_two_masters"]


class SimulationFault(AssertionError):
    """A core raised while handling input: a bug of ours, never the input's fault."""

    def __init__(self, peer: PeerId, faults: list[Fault]) -> None:
        details = "\n".join(f"{f.what} from {f.sender}: {f.error}\n{f.traceback}" for f in faults)
        super().__init__(f"{peer}: {len(faults)} fault(s)\n{details}")
        self.peer = peer
        self.faults = faults


@dataclass(slots=True)
class SimPeer:
    """One simulated peer and what it observed."""

    core: NodeCore
    alive: bool = True
    confirmed: dict[tuple[Rid, int], Action] = field(default_factory=dict)
    confirmed_at: dict[tuple[Rid, int], float] = field(default_factory=dict)
    rejected: dict[tuple[Rid, int], str] = field(default_factory=dict)
    stuck: dict[tuple[Rid, int], float] = field(default_factory=dict)
    """Own actions reported stuck (:class:`~movex_p2p.resource.effects.Stuck`), and when."""
    dispatched: dict[tuple[Rid, int], Action] = field(default_factory=dict)
    lost: dict[tuple[Rid, int], float] = field(default_factory=dict)
    """Own private halves never revealed (:class:`~movex_p2p.resource.effects.PrivateLost`), and when."""
    app_errors: list[fx.AppRaised] = field(default_factory=list)
    """The app's hooks that raised while this peer was master."""
    resyncs: int = 0
    rebased: int = 0
    gone: dict[tuple[Rid, int], float] = field(default_factory=dict)
    """Own confirmed actions a new log lacked and that were no longer kept to re-send (``Rebased.lost``), and when."""
    master_changes: int = 0


@dataclass(frozen=True, slots=True)
class _Event:
    kind: str
    args: tuple[Any, ...]


_RESOLUTION = 1e-4
"""A core due within this many seconds ticks now (time never steps forward by less for a timer)."""


class Simulation(World[_Event, PeerId]):
    """N NodeCores on a virtual network; call :meth:`run` to let time pass."""

    def __init__(
        self,
        size: int,
        *,
        types: Iterable[ResourceType],
        seed: int = 0,
        config: el.ElectionConfig | None = None,
        delay: tuple[float, float] = (0.0002, 0.002),
        loss: float = 0.0,
        detect_after: float = 0.5,
        detect_jitter: float = 0.0,
        retransmit: bool = False,
        ed25519: bool = False,
    ) -> None:
        """Each peer signs with a seeded key and its id is derived from it, so votes, certificates and
        the signed history are checked as on a LAN: a fast :class:`~movex_p2p.signing.FakeSigner`, or
        with ``ed25519`` a real Identity.
        ``detect_jitter``: each peer notices a kill or a cut after ``detect_after`` plus its own
        uniform draw from ``[0, detect_jitter]`` (real detectors fire at different moments).
        ``retransmit``: reliable frames lost (``loss``) arrive a retransmission later, the frames
        behind them waiting (see :class:`~movex_p2p.links.Links`); else only datagrams are lost."""
        self.rng = random.Random(seed)
        # ``loss`` applies to datagrams (the election's), see :mod:`movex_p2p.links`
        super().__init__(
            Links(self.rng, delay=delay, loss=loss, retransmit=retransmit), resolution=_RESOLUTION, batch=True
        )
        self.detect_after = detect_after
        self.detect_jitter = detect_jitter
        self.types = {t.name: t for t in types}
        keys = random.Random(seed ^ 0x5EED)
        identities = [Identity(keys.randbytes(KEY_SIZE)) for _ in range(size)]
        # the fake signer keeps each peer's id (its key's): a seed plays the same room either way
        signers: list[Signer] = [ident if ed25519 else FakeSigner(ident.public_key) for ident in identities]
        self.verifier: Verifier = ED25519 if ed25519 else FAKE
        """What every peer checks signatures with."""
        self.ids = [signer.id for signer in signers]
        config = self._config = config or el.ElectionConfig()
        self.peers: dict[PeerId, SimPeer] = {
            signer.id: SimPeer(self._core(signer, random.Random(self.rng.random()))) for signer in signers
        }
        self.elected: list[tuple[float, Term, PeerId]] = []
        self.dropped: list[tuple[PeerId, Dropped]] = []
        self._seen: dict[PeerId, set[PeerId]] = {pid: set() for pid in self.ids}
        self._stalled: dict[PeerId, float] = {}  # a peer whose process does not run until then
        for pid in self.ids:
            self._execute(pid, self.peers[pid].core.start(self.now, self.now))
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
        self.links.kill(pid)
        self._topology_changed(detect=self.detect_after)

    def restart(self, pid: str) -> None:
        """Killed ``pid`` comes back as a new process with the same identity (nothing it held in memory
        survives); call it once the others noticed the kill (``detect_after``)."""
        peer = PeerId(pid)
        if self.peers[peer].alive:
            raise ValueError(f"{pid} is alive: kill it first")
        core = self._core(self.peers[peer].core.signer, random.Random(self.rng.random()))
        self.peers[peer] = SimPeer(core)
        self.links.revive(pid)
        self._seen[peer] = set()
        self._execute(peer, core.start(self.now, self.now))
        self._topology_changed(detect=0.05)

    def _core(self, signer: Signer, rng: random.Random) -> NodeCore:
        return NodeCore(
            signer.id,
            types=self.types,
            election=self._config,
            rng=rng,
            signer=signer,
            verifier=self.verifier,
            room="simulation",
        )

    def stall(self, pid: str, seconds: float) -> None:
        """``pid``'s process does not run for ``seconds`` (a starved CPU): what arrives meanwhile waits,
        in order, and so do its timers; then it handles that input before any timer (as the driver does)."""
        self._stalled[PeerId(pid)] = max(self._stalled.get(PeerId(pid), 0.0), self.now + seconds)

    def partition(self, *groups: Iterable[str]) -> None:
        """Cut links between groups (peers in no group form one more group)."""
        self.links.partition(*groups)
        self._topology_changed(detect=self.detect_after)

    def heal(self) -> None:
        """Undo a partition."""
        self.links.heal()
        self._topology_changed(detect=0.05)

    def create(self, pid: str, type_name: str, id: str, state: Any = None) -> Rid:
        """``pid`` asks the master to create a resource; returns its rid."""
        rid = self.types[type_name].rid(id)
        _, ready = self.peers[PeerId(pid)].core.create(rid, state, self.now, self.now)
        self._execute(PeerId(pid), ready)
        return rid

    def dispatch(self, pid: str, rid: Rid, action: Action, private: Action | None = None, *, hold: bool = False) -> int:
        """``pid`` dispatches ``action`` on ``rid``; returns its seq. With ``hold`` its frames wait for
        the next step or :meth:`flush`, as a ``Peer`` sends a burst of dispatches: one frame per peer."""
        peer = self.peers[PeerId(pid)]
        seq, ready = peer.core.dispatch(rid, action, private, self.now, self.now)
        peer.dispatched[(rid, seq)] = action
        self._execute(PeerId(pid), ready)
        if not hold:
            self.flush(pid)
        return seq

    def burst(self, pid: str, rid: Rid, actions: Iterable[Action]) -> list[int]:
        """``pid`` dispatches ``actions`` in one go, as a game does in one frame: they leave as one frame."""
        seqs = [self.dispatch(pid, rid, action, hold=True) for action in actions]
        self.flush(pid)
        return seqs

    def flush(self, pid: str) -> None:
        """Send what ``pid``'s held dispatches left in its outbox."""
        self._execute(PeerId(pid), self.peers[PeerId(pid)].core.receive((), self.now, self.now))

    def at(self, when: float, kind: str, *args: Any) -> None:
        """Schedule ``kind`` (kill, restart, partition, heal, stall, call) at virtual time ``when``."""
        self._push(when, kind, args)

    def run(self, seconds: float, *, until: Callable[[Simulation], bool] | None = None) -> bool:
        """Advance virtual time by ``seconds`` (stopping early when ``until`` holds)."""
        if self.run_until(self.now + seconds, until=until):
            return True
        return until(self) if until is not None else True

    # -- the world's hooks ---------------------------------------------------------------------

    def _deadlines(self) -> Iterable[tuple[PeerId, float | None]]:
        for pid in self.alive:
            wait = self.peers[pid].core.seconds_to_deadline(self.now)
            due = None if wait is None else self.now + wait
            resumes = self._stalled.get(pid)
            if due is not None and resumes is not None and due <= resumes:
                due = resumes + _RESOLUTION  # its timers wait too, and come after what arrived meanwhile
            yield pid, due

    def _waits(self, pid: PeerId, item: _Event) -> bool:
        """Is ``pid`` stalled now? Then ``item`` goes again when it runs (after what came before)."""
        resumes = self._stalled.get(pid)
        if resumes is None or self.now >= resumes:
            self._stalled.pop(pid, None)
            return False
        self._push(resumes, item.kind, item.args)
        return True

    def _tick(self, key: PeerId) -> None:
        self._execute(key, self.peers[key].core.tick(self.now, self.now))

    def _handle(self, item: _Event) -> None:
        match item.kind:
            case "deliver":
                src, dst, data = item.args
                if not (self.peers[dst].alive and self.links.linked(src, dst)):
                    return  # cut while in flight
                if src not in self._seen[dst]:
                    return  # the link is not up on dst's side (yet)
                if not self._waits(dst, item):
                    self._receive(dst, [Frame(peer=src, data=data)])
            case "links":
                (pid,) = item.args
                if not self._waits(pid, item):
                    self._report_links(pid)
            case "stall":
                self.stall(*item.args)
            case "kill":
                self.kill(*item.args)
            case "restart":
                self.restart(*item.args)
            case "partition":
                self.partition(*item.args)
            case "heal":
                self.heal()
            case "call":
                fn, args = item.args
                fn(self, *args)

    def _push(self, at: float, kind: str, args: tuple[Any, ...]) -> None:
        self.timeline.at(at, _Event(kind, args))

    def _topology_changed(self, *, detect: float) -> None:
        for pid in self.alive:
            jitter = self.rng.uniform(0.0, self.detect_jitter) if detect and self.detect_jitter else 0.0
            self._push(self.now + detect + jitter, "links", (pid,))

    def _report_links(self, pid: PeerId) -> None:
        if not self.peers[pid].alive:
            return
        now_up = {q for q in self.alive if self.links.linked(pid, q)}
        before = self._seen[pid]
        if now_up == before:
            return
        self._seen[pid] = now_up
        events: list[TransportEvent] = [PeerDown(peer=q, graceful=False) for q in sorted(before - now_up)]
        events += [PeerUp(peer=q) for q in sorted(now_up - before)]
        self._receive(pid, events)

    def _receive(self, pid: PeerId, events: list[TransportEvent]) -> None:
        self._execute(pid, self.peers[pid].core.receive(events, self.now, self.now))

    def _execute(self, pid: PeerId, ready: Ready) -> None:
        """Do what one step asked: send, fail on faults, record what the app would hear."""
        if ready.faults:
            raise SimulationFault(pid, ready.faults)
        # in a fixed order, whatever the process's hash seed: a seed replays the same schedule
        for dst in sorted(ready.frames):
            self._transmit(pid, dst, ready.frames[dst], Lane.RELIABLE)
        for dst, data in ready.more:
            self._transmit(pid, dst, data, Lane.RELIABLE)
        for dst in sorted(ready.datagrams):
            self._transmit(pid, dst, ready.datagrams[dst], Lane.DATAGRAM)
        self.dropped += [(pid, dropped) for dropped in ready.dropped]
        peer = self.peers[pid]
        for event in ready.events:
            match event:
                case MasterChanged(master=master, term=term):
                    peer.master_changes += 1
                    if master == pid:
                        self.elected.append((self.now, Term(term), pid))
                case fx.ActionSettled(rid=rid, seq=seq, error=None) if (rid, seq) in peer.dispatched:
                    peer.confirmed[(rid, seq)] = peer.dispatched[(rid, seq)]
                    peer.confirmed_at[(rid, seq)] = self.now
                case fx.ActionSettled(rid=rid, seq=seq, error=error) if error is not None:
                    peer.rejected[(rid, seq)] = error
                case fx.Stuck(rid=rid, seqs=seqs):
                    for seq in seqs:
                        peer.stuck[(rid, seq)] = self.now
                case fx.PrivateLost(rid=rid, seqs=seqs):
                    for seq in seqs:
                        peer.lost[(rid, seq)] = self.now
                case fx.AppRaised():
                    peer.app_errors.append(event)
                case fx.ResyncStarted():
                    peer.resyncs += 1
                case fx.Rebased(rid=rid, count=count, lost=lost):
                    peer.rebased += count
                    for seq in lost:
                        peer.gone[(rid, seq)] = self.now
                case (
                    fx.ActionSettled()
                    | fx.StateChanged()
                    | fx.RequestSettled()
                    | fx.PresenceChanged()
                    | fx.Synced()
                    | PeersChanged()
                ):
                    pass

    def _transmit(self, src: PeerId, dst: PeerId, data: bytes, lane: Lane) -> None:
        if dst not in self._seen[src]:
            return  # no link on our side: the transport would refuse
        at = self.links.arrival(src, dst, self.now, lane)
        if at is not None:
            self._push(at, "deliver", (src, dst, data))


def terms_with_two_masters(elected: Iterable[tuple[float, Term, PeerId]]) -> Mapping[Term, set[PeerId]]:
    """Terms in which more than one peer became master (should be empty)."""
    by_term: dict[Term, set[PeerId]] = {}
    for _, term, pid in elected:
        by_term.setdefault(term, set()).add(pid)
    return {term: pids for term, pids in by_term.items() if len(pids) > 1}
