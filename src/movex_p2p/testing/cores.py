"""The resource cores alone: one MasterCore and N ClientCores routed in memory, time moved by hand (pure).

``CoreCluster`` drives ``MasterCore``/``ClientCore`` directly, without NodeCore or an election:
effects are routed between cores as encoded frames over per-link FIFO queues
(:attr:`CoreCluster.links`, which a test may hold back, drop or reorder), by the routes the
messages declare; which link delivers next is the test's choice (:meth:`CoreCluster.deliver`,
:meth:`CoreCluster.run`) and time is a number advanced by hand (STYLE.md §2.5). It runs the
signed history with NodeCore's own code (fake signers, each peer's
:class:`~movex_p2p.signed_history.SignedHistory`): each author endorses the proposals it sends its
master (an ``Endorse`` ahead of them in their frame), the master takes only endorsed proposals and
sends each peer the author's ``Endorsed`` before the entry, each peer keeps its master's seals (a
fork is a ``Forged`` effect), and the master seals the heads after each step. Every message from
another peer passes NodeCore's verification stage (:func:`movex_p2p.verify.screen`) before
routing; what a node would drop is recorded in :attr:`CoreCluster.dropped`. Witnesses between
peers are not sent. Whole peers in virtual time are :class:`~movex_p2p.simulation.Simulation`'s job.
"""

from __future__ import annotations

import random
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from .. import wire
from ..election.machine import SALT_BITS, salt_of
from ..errors import ProtocolError
from ..ids import PeerId, Rid, Term
from ..resource import effects as fx
from ..resource import messages as rm
from ..resource.client import ClientCore
from ..resource.master import MasterCore
from ..resource.types import Action, ResourceType
from ..routes import Route
from ..signed_history import SignedHistory
from ..signing import FAKE, FakeSigner, RecallingSigner, RecallingVerifier, Signer
from ..verify import screen

__all__ = ["CoreCluster"]


class CoreCluster:
    """N ClientCores and one MasterCore on in-memory per-link FIFO queues of encoded frames."""

    def __init__(
        self,
        size: int,
        *,
        types: Mapping[str, ResourceType],
        seed: int = 0,
        salt: bytes = b"salt",
        now: float = 100.0,
    ) -> None:
        fakes = sorted((FakeSigner.from_seed(seed << 16 | i) for i in range(size)), key=lambda s: s.id)
        self.ids = [s.id for s in fakes]
        """The peers, lowest id first."""
        self.signers: dict[PeerId, RecallingSigner] = {}
        self.verifiers: dict[PeerId, RecallingVerifier] = {}
        self.histories: dict[PeerId, SignedHistory] = {}
        """Each peer's signed history (NodeCore's): its endorsements, and as master those it checked."""
        self.term_masters: dict[Term, PeerId] = {}
        self.types = types
        self.now = now
        self.salt = salt
        self.rng = random.Random(seed)
        self.alive: set[PeerId] = set(self.ids)
        self.room = "room"
        self.clients = {
            p: ClientCore(p, types=types, room=self.room, signer=self._sign_as(p, s))
            for p, s in zip(self.ids, fakes, strict=True)
        }
        self.links: dict[tuple[PeerId, PeerId], deque[bytes]] = defaultdict(deque)
        self.effects: dict[PeerId, list[fx.Effect]] = defaultdict(list)
        self.delivered: list[tuple[PeerId, PeerId, wire.Message]] = []
        self.dropped: list[tuple[PeerId, PeerId, str]] = []
        """(sender, receiver, why) of each message a node would drop as its sender's fault."""
        self.master_id = self.ids[0]
        self.term = self.term_of(1, self.master_id)
        self.master = self._new_master(self.master_id, self.term, replicas=())
        self.elect(self.master_id, 1, build=False)

    # -- topology ------------------------------------------------------------------------------

    def _sign_as(self, peer: PeerId, signer: Signer) -> RecallingSigner:
        """``peer``'s signer, verifier and signed history, built as NodeCore builds its own."""
        recalling = self.signers[peer] = RecallingSigner(signer)
        self.verifiers[peer] = RecallingVerifier(FAKE, recalling)
        self.histories[peer] = SignedHistory(peer, recalling, self.room)
        return recalling

    def join(
        self, signer: Signer, *, types: Mapping[str, ResourceType] | None = None, opaque: bool = False
    ) -> ClientCore:
        """A peer signing with ``signer`` links up to everyone (the master sees it come); returns its client,
        which follows no master yet (route its ``master_changed``). ``opaque``: a spectator's (see ClientCore)."""
        peer = signer.id
        types = self.types if types is None else types
        client = self.clients[peer] = ClientCore(
            peer, types=types, opaque=opaque, room=self.room, signer=self._sign_as(peer, signer)
        )
        self.alive.add(peer)
        self.master_step(self.master.peers_changed(frozenset(self.alive - {self.master_id}), self.now))
        return client

    @staticmethod
    def term_of(round_: int, master: PeerId) -> Term:
        """Round ``round_`` of the term only ``master`` may win (its seals name it)."""
        return Term(round_ << SALT_BITS | salt_of(master))

    def _new_master(self, me: PeerId, term: Term, replicas: Iterable[Any], index: int = 0) -> MasterCore:
        self.term_masters[term] = me
        client = self.clients[me]  # its tombstones, as NodeCore passes them
        return MasterCore(
            me,
            term=term,
            types=self.types,
            salt=self.salt,
            index=index,
            replicas=replicas,
            peers=frozenset(self.alive - {me}),
            now=self.now,
            rng_factory=random.Random,
            signer=self.signers[me],
            verifier=self.verifiers[me],
            master_of=self.term_masters.get,
            room=self.room,
            removed=client.removed,
            removal_seals=client.removal_seals,
        )

    def elect(self, master: PeerId, round_: int, *, build: bool = True, deliver: bool = True) -> None:
        """Make ``master`` the master of round ``round_`` (built from its client's replicas) and tell everyone."""
        term = self.term = self.term_of(round_, master)
        if build:
            client = self.clients[master]
            self.master = self._new_master(master, term, client.replicas.values(), client.index)
        self.master_id = master
        for p in sorted(self.alive):
            self.route(p, self.clients[p].master_changed(master, term))
        if deliver:
            self.run()

    def kill(self, peer: PeerId) -> None:
        """``peer`` vanishes: its queued frames are lost; the master (if another) sees it leave."""
        self.alive.discard(peer)
        for key in [k for k in self.links if peer in k]:
            del self.links[key]
        for other in self.alive:
            self.histories[other].link_down(peer)
        if peer != self.master_id:
            self.master_step(self.master.peers_changed(frozenset(self.alive - {self.master_id}), self.now))

    # -- routing -------------------------------------------------------------------------------

    def route(self, src: PeerId, effects: list[fx.Effect], *, one_frame: bool = False) -> None:
        """Queue what ``src``'s core sends; ``one_frame``: each destination gets it as one frame (a node's step)."""
        if one_frame:
            start = {key: len(queue) for key, queue in self.links.items()}
            self.route(src, effects)
            for key, queue in self.links.items():
                if key[0] == src and len(queue) - start.get(key, 0) > 1:
                    frames = [queue.pop() for _ in range(len(queue) - start.get(key, 0))]
                    queue.append(wire.encode_many([m for frame in reversed(frames) for m in wire.decode(frame)]))
            return
        for effect in effects:
            match effect:
                case fx.Send(to=to, message=message):
                    if to in self.alive and src in self.alive:
                        frame: list[wire.Message] = [message]
                        if src != to:  # a proposal for another peer's master goes with its author's Endorse
                            self.histories[src].endorse(frame, self.clients[src].term)
                        self.links[(src, to)].append(wire.encode_many(frame))
                case fx.Publish(message=message):
                    published = wire.encode(message)
                    peers = frozenset(self.alive - {src})
                    for dst, endorsed in self.histories[src].endorsement_for(message, peers):
                        self.links[(src, dst)].append(wire.encode(endorsed))  # the author's Endorsed first
                    for dst in sorted(self.alive):
                        self.links[(src, dst)].append(published)
                case _:
                    self.effects[src].append(effect)

    def master_step(self, effects: list[fx.Effect]) -> None:
        """Route what the master returned, then its seal of the heads that changed (as NodeCore does)."""
        self.route(self.master_id, effects + self.master.seal(), one_frame=True)

    def deliver(self, src: PeerId, dst: PeerId) -> None:
        """Deliver the oldest frame on the link src -> dst: each message verified, then routed (as NodeCore)."""
        frame = self.links[(src, dst)].popleft()
        for message in wire.decode(frame):
            self.delivered.append((src, dst, message))
            if src != dst:  # a peer's messages to itself are not verified: it wrote them
                refused, effects = screen(src, message, self.verifiers[dst], self.clients[dst])
                if refused is not None:
                    self.dropped.append((src, dst, refused))
                    self.route(dst, effects)
                    continue
            try:
                self._route(src, dst, message)
            except ProtocolError as exc:  # the sender's fault: the node drops it
                self.dropped.append((src, dst, f"{type(message).__name__}: {exc}"))

    def _route(self, src: PeerId, dst: PeerId, message: wire.Message) -> None:
        """Hand ``message`` to the core of ``dst`` its route names, through ``dst``'s signed history."""
        history = self.histories[dst]
        match wire.ROUTES[type(message)]:
            case Route.TO_MASTER:
                to_master = cast(rm.ToMaster, message)
                if dst == self.master_id and history.endorsed(src, to_master):  # an Endorse is kept, not served
                    self.master_step(self.master.step(src, to_master, self.now))
            case Route.TO_CLIENTS:
                to_clients = cast(rm.ToClients, message)
                client = self.clients[dst]
                if type(to_clients) is rm.Sealed or type(to_clients) is rm.Removed:
                    verdict = history.keep_seal(src, to_clients, client.master, client.term)
                    if verdict is not None:
                        self.effects[dst].append(fx.Forged(peer=verdict[0], reason=verdict[1]))
                self.route(dst, client.step(src, to_clients, self.now))
            case _:
                raise AssertionError(f"not a resource message: {message!r}")

    def deliver_entries(self, src: PeerId, dst: PeerId, count: int) -> None:
        """Deliver frames on src -> dst until ``count`` more ``Applied`` entries arrived."""
        got = 0
        while got < count:
            before = len(self.delivered)
            self.deliver(src, dst)
            got += sum(type(m) is rm.Applied for _, _, m in self.delivered[before:])

    def pending_links(self) -> list[tuple[PeerId, PeerId]]:
        """The links with frames waiting, sorted."""
        return sorted(k for k, q in self.links.items() if q)

    def run(self, *, shuffle: bool = False, limit: int = 100_000) -> None:
        """Deliver until quiet: in link order, or (``shuffle``) a random link each step (FIFO per link)."""
        for _ in range(limit):
            links = self.pending_links()
            if not links:
                due = self.master.due if self.master_id in self.alive else None
                if due is None or due > self.now:
                    return
                self.master_step(self.master.tick(self.now))  # what is due now (the next slice of what waited)
                continue
            if shuffle:
                self.deliver(*self.rng.choice(links))
            else:
                for src, dst in links:
                    while self.links[(src, dst)]:
                        self.deliver(src, dst)
        raise AssertionError("the cluster did not go quiet")

    def advance(self, seconds: float) -> None:
        """Move the clock on by ``seconds`` and tick the master once."""
        self.now += seconds
        self.master_step(self.master.tick(self.now))

    # -- app commands --------------------------------------------------------------------------

    def create(self, peer: PeerId, rid: str, state: Any = None, *, run: bool = True) -> int:
        """``peer`` asks to create ``rid``; returns the request id (``run``: deliver until quiet)."""
        req, effects = self.clients[peer].create(Rid(rid), state)
        self.route(peer, effects)
        if run:
            self.run()
        return req

    def bind(self, peer: PeerId, rid: str, info: dict[str, Any] | None = None, *, run: bool = True) -> int:
        """``peer`` binds ``rid``; returns the request id (``run``: deliver until quiet)."""
        req, effects = self.clients[peer].bind(Rid(rid), info or {"name": str(peer)})
        self.route(peer, effects)
        if run:
            self.run()
        return req

    def dispatch(self, peer: PeerId, rid: str, action: Action, private: Action | None = None) -> int:
        """``peer`` dispatches ``action`` (and a private half); returns its seq. Nothing is delivered yet."""
        seq, effects = self.clients[peer].dispatch(Rid(rid), action, private, now=self.now)
        self.route(peer, effects)
        return seq

    def dispatch_private(self, peer: PeerId, rid: str, private: Action, public: Action) -> int:
        """Like ``Resource.dispatch_private``: everyone sees ``public``, only ``peer`` sees ``private``."""
        return self.dispatch(peer, rid, public, private)

    def setup(self, rid: str, state: Any = None, *, peers: Iterable[PeerId] | None = None) -> None:
        """Create ``rid`` from the first peer and bind it on every (given) peer."""
        self.create(self.ids[0], rid, state)
        for p in peers if peers is not None else self.ids:
            self.bind(p, rid)

    # -- inspection ----------------------------------------------------------------------------

    def view(self, peer: PeerId, rid: str) -> Any:
        """What ``peer``'s app reads of ``rid``."""
        return self.clients[peer].view(Rid(rid))

    def checksums(self, rid: str, peers: Iterable[PeerId] | None = None) -> set[bytes]:
        """The distinct confirmed checksums of ``rid`` among the (given) live peers."""
        return {self.clients[p].replicas[Rid(rid)].checksum for p in (peers or sorted(self.alive))}

    def of_type(self, kind: type[Any], peer: PeerId | None = None) -> list[Any]:
        """Effects of class ``kind`` that went to the apps (of ``peer`` only, if given)."""
        peers = [peer] if peer is not None else list(self.effects)
        return [e for p in peers for e in self.effects[p] if isinstance(e, kind)]

    def settled(self, peer: PeerId, seq: int) -> fx.ActionSettled:
        """The one ``ActionSettled`` of ``peer``'s action ``seq``."""
        found: list[fx.ActionSettled] = [e for e in self.of_type(fx.ActionSettled, peer) if e.seq == seq]
        assert len(found) == 1, f"{peer} seq {seq} settled {len(found)} times"
        return found[0]

    def sent(self, kind: type[Any], predicate: Callable[[Any], bool] = lambda _: True) -> list[Any]:
        """Delivered messages of class ``kind`` that ``predicate`` holds for."""
        return [m for _, _, m in self.delivered if isinstance(m, kind) and predicate(m)]
