"""The resource cores alone: one MasterCore and N ClientCores routed in memory, time moved by hand (pure).

``CoreCluster`` drives ``MasterCore``/``ClientCore`` directly, without NodeCore or an election:
effects are routed between cores as encoded frames over per-link FIFO queues
(:attr:`CoreCluster.links`, which a test may hold back, drop or reorder), by the routes the
messages declare; which link delivers next is the test's choice (:meth:`CoreCluster.deliver`,
:meth:`CoreCluster.run`) and time is a number advanced by hand (STYLE.md §2.5). It runs the
signed history as NodeCore plumbs it (fake signers): each author endorses its proposals, the
master's entries go out behind the authors' ``Endorsed``, and the master seals the heads after
each step. Whole peers in virtual time are :class:`~movex_p2p.simulation.Simulation`'s job.
"""

from __future__ import annotations

import random
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from .. import wire
from ..election.machine import SALT_BITS, salt_of
from ..ids import PeerId, Rid, Term
from ..proofs import prove
from ..resource import effects as fx
from ..resource import messages as rm
from ..resource.client import ClientCore
from ..resource.history import endorsed_digest
from ..resource.master import MasterCore
from ..resource.types import Action, ResourceType
from ..routes import Route
from ..signing import FAKE, FakeSigner

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
        signers = sorted((FakeSigner.from_seed(seed << 16 | i) for i in range(size)), key=lambda s: s.id)
        self.signers = {s.id: s for s in signers}
        self.ids = [s.id for s in signers]
        """The peers, lowest id first."""
        self.term_masters: dict[Term, PeerId] = {}
        self._endorsements: dict[tuple[PeerId, Rid, int], rm.Endorsed] = {}
        self.types = types
        self.now = now
        self.salt = salt
        self.rng = random.Random(seed)
        self.alive: set[PeerId] = set(self.ids)
        self.room = "room"
        self.clients = {p: ClientCore(p, types=types, room=self.room, signer=self.signers[p]) for p in self.ids}
        self.links: dict[tuple[PeerId, PeerId], deque[bytes]] = defaultdict(deque)
        self.effects: dict[PeerId, list[fx.Effect]] = defaultdict(list)
        self.delivered: list[tuple[PeerId, PeerId, wire.Message]] = []
        self.master_id = self.ids[0]
        self.term = self.term_of(1, self.master_id)
        self.master = self._new_master(self.master_id, self.term, replicas=())
        self.elect(self.master_id, 1, build=False)

    # -- topology ------------------------------------------------------------------------------

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
            verifier=FAKE,
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
                    if type(message) is rm.Propose and src != to:
                        self._endorse(src, message)
                    if to in self.alive and src in self.alive:
                        self.links[(src, to)].append(wire.encode(message))
                case fx.Publish(message=message):
                    frame = wire.encode(message)
                    endorsed = (
                        self._endorsements.pop((message.author, message.rid, message.seq), None)
                        if type(message) is rm.Applied
                        else None
                    )
                    for dst in sorted(self.alive):
                        if endorsed is not None:
                            self.links[(src, dst)].append(wire.encode(endorsed))
                        self.links[(src, dst)].append(frame)
                case _:
                    self.effects[src].append(effect)

    def _endorse(self, author: PeerId, proposal: rm.Propose) -> None:
        """What NodeCore does for an author: sign the digest of the proposal leaving for the master."""
        digest = endorsed_digest(author, proposal, room=self.room)
        proof = prove(self.signers[author], "endorse", digest)
        endorsed = rm.Endorsed(term=proposal.term, author=author, digests=(digest,), proof=proof)
        self._endorsements[(author, proposal.rid, proposal.seq)] = endorsed

    def master_step(self, effects: list[fx.Effect]) -> None:
        """Route what the master returned, then its seal of the heads that changed (as NodeCore does)."""
        self.route(self.master_id, effects + self.master.seal(), one_frame=True)

    def deliver(self, src: PeerId, dst: PeerId) -> None:
        """Deliver the oldest frame on the link src -> dst."""
        frame = self.links[(src, dst)].popleft()
        for message in wire.decode(frame):
            self.delivered.append((src, dst, message))
            match message:
                case _ if wire.ROUTES[type(message)] is Route.TO_MASTER:
                    if dst == self.master_id:
                        self.master_step(self.master.step(src, cast(rm.ToMaster, message), self.now))
                case _ if wire.ROUTES[type(message)] is Route.TO_CLIENTS:
                    self.route(dst, self.clients[dst].step(src, cast(rm.ToClients, message), self.now))
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
