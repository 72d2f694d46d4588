"""The test suite's shared reducers (Movex's spec resources, rewritten) and an in-memory core cluster.

Every test takes its resource types from here (one counter, one chat...); the counter, tally
and blob of the peer program and the benchmarks live in :mod:`movex_p2p.testing.types`.
``CoreCluster`` drives ``MasterCore``/``ClientCore`` directly: effects are routed between cores
as encoded frames over per-link FIFO queues, by the routes the messages declare; time is a
number advanced by hand (STYLE.md §2.5). It runs the signed history as NodeCore plumbs it (fake
signers): each author endorses its proposals, the master's entries go out behind the authors'
``Endorsed``, and the master seals the heads after each step.
"""

from __future__ import annotations

import random
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from typing import Any, Final, cast

import movex_p2p as mx
from movex_p2p import wire
from movex_p2p.election.machine import SALT_BITS, salt_of
from movex_p2p.ids import PeerId, Rid, Term
from movex_p2p.proofs import prove
from movex_p2p.resource import effects as fx
from movex_p2p.resource import messages as rm
from movex_p2p.resource.client import ClientCore
from movex_p2p.resource.history import endorsed_digest
from movex_p2p.resource.master import MasterCore
from movex_p2p.routes import Route
from movex_p2p.signing import FAKE, FakeSigner
from movex_p2p.simulation import Simulation
from movex_p2p.testing.types import Blob as Blob
from movex_p2p.testing.types import Counter as Counter
from movex_p2p.transport.base import Frame

Action = mx.Action

# -- counter: movex_p2p.testing.types (one definition, shared with the peer program) ------------


def mutating(state: Any, action: mx.Action) -> Any:
    """A bad reducer: mutates its input in place."""
    state["count"] += 1
    return state


Mutating: Final = mx.ResourceType("mutating", mutating, initial={"count": 0})

# -- chat ----------------------------------------------------------------------------------------

CHAT_INITIAL: Final[dict[str, Any]] = {"participants": {}, "messages": []}


def chat(state: Any, action: mx.Action) -> Any:
    match action:
        case mx.Action("addParticipant", {"id": pid, "color": color, "atTimestamp": at}):
            participant = {"id": pid, "color": color, "joinedAt": at, "active": True, "leftAt": None}
            return {**state, "participants": {**state["participants"], pid: participant}}
        case mx.Action("removeParticipant", {"id": pid, "atTimestamp": at}):
            if pid not in state["participants"]:
                return state
            left = {**state["participants"][pid], "active": False, "leftAt": at}
            return {**state, "participants": {**state["participants"], pid: left}}
        case mx.Action("writeMessage", {"participantId": pid, "msg": msg, "atTimestamp": at, "id": mid}):
            message = {"id": mid, "at": at, "content": msg, "participantId": pid}
            return {**state, "messages": [*state["messages"], message]}
    return state


Chat: Final = mx.ResourceType("chat", chat, initial=CHAT_INITIAL)

# -- rock paper scissors -------------------------------------------------------------------------

SECRET: Final = "$SECRET"
RPS_INITIAL: Final[dict[str, Any]] = {
    "players": {"playerA": None, "playerB": None},
    "submissions": {"playerA": None, "playerB": None},
    "winner": None,
}
_BEATS: Final = {"paper": "rock", "rock": "scissors", "scissors": "paper"}


def _winner(a: str | None, b: str | None) -> str | None:
    if a in (None, SECRET) or b in (None, SECRET):
        return None
    if a == b:
        return "1/2"
    return a if _BEATS[str(a)] == b else b


def rps(state: Any, action: mx.Action) -> Any:
    match action:
        case mx.Action("addPlayer", {"id": pid, "playerLabel": label}):
            if state["players"][label] is not None:
                return state
            return {**state, "players": {**state["players"], label: pid}}
        case mx.Action("submit", {"playerLabel": label, "rps": play}):  # the private half
            if state["winner"] is not None:
                return state
            subs = {**state["submissions"], label: {"play": play}}
            plays = [s["play"] if s else None for s in subs.values()]
            return {**state, "submissions": subs, "winner": _winner(*plays)}
        case mx.Action("setReadySubmission", {"playerLabel": label}):  # the public half
            if state["winner"] is not None:
                return state
            return {**state, "submissions": {**state["submissions"], label: {"play": SECRET}}}
        case mx.Action("playAgain"):
            return {**state, "submissions": {"playerA": None, "playerB": None}, "winner": None}
    return state


def rps_can_reveal(state: Any) -> bool:
    return all(s is not None for s in state["submissions"].values())


Rps: Final = mx.ResourceType("rps", rps, initial=RPS_INITIAL, can_reveal=rps_can_reveal)


def submit(label: str, play: str) -> tuple[mx.Action, mx.Action]:
    """The (private, public) pair of an RPS submission."""
    return (
        mx.Action("submit", {"playerLabel": label, "rps": play}),
        mx.Action("setReadySubmission", {"playerLabel": label}),
    )


# -- speed push: a transform completes the game on the master clock (scen8-like) ---------------

SPEED_INITIAL: Final[dict[str, Any]] = {
    "status": "pending",
    "winner": None,
    "lastPushBy": None,
    "lastPushAt": None,
    "timeToNext": 10.0,
}


def speed_push(state: Any, action: mx.Action) -> Any:
    match action:
        case mx.Action("push", {"at": at, "by": by}):
            if state["status"] == "completed" or state["lastPushBy"] == by:
                return state
            last = state["lastPushAt"]
            if state["status"] == "ongoing" and at > last + state["timeToNext"]:
                return {**state, "status": "completed", "winner": state["lastPushBy"]}
            return {**state, "status": "ongoing", "lastPushBy": by, "lastPushAt": at}
    return state


def speed_transform(state: Any, ctx: mx.TransformContext) -> Any:
    if state["status"] == "ongoing" and ctx.now > state["lastPushAt"] + state["timeToNext"]:
        return {**state, "status": "completed", "winner": state["lastPushBy"]}
    return state


SpeedPush: Final = mx.ResourceType("speed", speed_push, initial=SPEED_INITIAL, transform=speed_transform)

# -- a chess clock: the transform charges the side to move (non-idempotent if stored) ----------

CHESS_INITIAL: Final[dict[str, Any]] = {
    "status": "pending",
    "lastMoveBy": None,
    "lastMoveAt": None,
    "left": {"white": 30.0, "black": 30.0},
}


def chess(state: Any, action: mx.Action) -> Any:
    match action:
        case mx.Action("move", {"at": at, "by": by}):
            if state["status"] == "completed" or state["lastMoveBy"] == by:
                return state
            left = dict(state["left"])
            if state["lastMoveAt"] is not None:
                left[by] = max(0.0, left[by] - (at - state["lastMoveAt"]))
            if left[by] <= 0:
                return {**state, "status": "completed", "left": left}
            return {**state, "status": "ongoing", "lastMoveBy": by, "lastMoveAt": at, "left": left}
    return state


def chess_transform(state: Any, ctx: mx.TransformContext) -> Any:
    if state["status"] != "ongoing":
        return state
    to_move = "black" if state["lastMoveBy"] == "white" else "white"
    left = max(0.0, state["left"][to_move] - (ctx.now - state["lastMoveAt"]))
    return {**state, "left": {**state["left"], to_move: left}}


Chess: Final = mx.ResourceType("chess", chess, initial=CHESS_INITIAL, transform=chess_transform)

# -- a dice game with master values --------------------------------------------------------------


def dice(state: Any, action: mx.Action) -> Any:
    match action:
        case mx.Action("roll", payload):
            return {**state, "rolls": [*state["rolls"], payload]}
        case mx.Action("secretRoll", payload):
            return {**state, "secret": [*state["secret"], payload]}
        case mx.Action("ready"):
            return {**state, "ready": state["ready"] + 1}
    return state


Dice: Final = mx.ResourceType(
    "dice", dice, initial={"rolls": [], "secret": [], "ready": 0}, can_reveal=lambda s: s["ready"] >= 2
)

ALL_TYPES: Final = {t.name: t for t in (Counter, Mutating, Chat, Rps, SpeedPush, Chess, Dice)}

# -- the in-memory cluster -----------------------------------------------------------------------


class CoreCluster:
    """N ClientCores and one MasterCore on in-memory per-link FIFO queues of encoded frames."""

    def __init__(
        self,
        size: int,
        *,
        types: dict[str, mx.ResourceType] = ALL_TYPES,
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
        return sorted(k for k, q in self.links.items() if q)

    def run(self, *, shuffle: bool = False, limit: int = 100_000) -> None:
        """Deliver until quiet: in link order, or (``shuffle``) a random link each step (FIFO per link)."""
        for _ in range(limit):
            links = self.pending_links()
            if not links:
                return
            if shuffle:
                self.deliver(*self.rng.choice(links))
            else:
                for src, dst in links:
                    while self.links[(src, dst)]:
                        self.deliver(src, dst)
        raise AssertionError("the cluster did not go quiet")

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.master_step(self.master.tick(self.now))

    # -- app commands --------------------------------------------------------------------------

    def create(self, peer: PeerId, rid: str, state: Any = None, *, run: bool = True) -> int:
        req, effects = self.clients[peer].create(Rid(rid), state)
        self.route(peer, effects)
        if run:
            self.run()
        return req

    def bind(self, peer: PeerId, rid: str, info: dict[str, Any] | None = None, *, run: bool = True) -> int:
        req, effects = self.clients[peer].bind(Rid(rid), info or {"name": str(peer)})
        self.route(peer, effects)
        if run:
            self.run()
        return req

    def dispatch(self, peer: PeerId, rid: str, action: mx.Action, private: mx.Action | None = None) -> int:
        seq, effects = self.clients[peer].dispatch(Rid(rid), action, private, now=self.now)
        self.route(peer, effects)
        return seq

    def dispatch_private(self, peer: PeerId, rid: str, private: mx.Action, public: mx.Action) -> int:
        """Like ``Resource.dispatch_private``: everyone sees ``public``, only ``peer`` sees ``private``."""
        return self.dispatch(peer, rid, public, private)

    def setup(self, rid: str, state: Any = None, *, peers: Iterable[PeerId] | None = None) -> None:
        """Create ``rid`` from the first peer and bind it on every (given) peer."""
        self.create(self.ids[0], rid, state)
        for p in peers if peers is not None else self.ids:
            self.bind(p, rid)

    # -- inspection ----------------------------------------------------------------------------

    def view(self, peer: PeerId, rid: str) -> Any:
        return self.clients[peer].view(Rid(rid))

    def checksums(self, rid: str, peers: Iterable[PeerId] | None = None) -> set[bytes]:
        return {self.clients[p].replicas[Rid(rid)].checksum for p in (peers or sorted(self.alive))}

    def of_type(self, kind: type[Any], peer: PeerId | None = None) -> list[Any]:
        peers = [peer] if peer is not None else list(self.effects)
        return [e for p in peers for e in self.effects[p] if isinstance(e, kind)]

    def settled(self, peer: PeerId, seq: int) -> fx.ActionSettled:
        found: list[fx.ActionSettled] = [e for e in self.of_type(fx.ActionSettled, peer) if e.seq == seq]
        assert len(found) == 1, f"{peer} seq {seq} settled {len(found)} times"
        return found[0]

    def sent(self, kind: type[Any], predicate: Callable[[Any], bool] = lambda _: True) -> list[Any]:
        return [m for _, _, m in self.delivered if isinstance(m, kind) and predicate(m)]


class SpySimulation(Simulation):
    """Every peer runs modified code that records every frame it receives (the master, whoever it is)."""

    def __init__(self, size: int, **kwargs: Any) -> None:
        self.received: list[tuple[float, PeerId, PeerId, bytes]] = []
        super().__init__(size, **kwargs)

    def _receive(self, pid: PeerId, events: list[Any]) -> None:
        self.received += [(self.now, e.peer, pid, e.data) for e in events if isinstance(e, Frame)]
        super()._receive(pid, events)

    def messages_to(self, pid: PeerId) -> list[wire.Message]:
        """Every message ``pid`` received."""
        return [m for _, _, dst, data in self.received if dst == pid for m in wire.decode(data)]

    def seen_by(self, marker: str, *, since: float = 0.0) -> list[tuple[PeerId, list[wire.Message]]]:
        """Who received ``marker`` (at or after ``since``), with the messages of that frame."""
        return [
            (dst, wire.decode(data)) for at, _, dst, data in self.received if at >= since and marker.encode() in data
        ]
