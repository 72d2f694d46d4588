"""MasterCore: the authoritative side of every resource (pure: events in, effects out).

One peer at a time runs it. It orders every action, resolves master values, keeps each
client's unrevealed private actions, reveals them to everyone, and publishes log entries that
every peer (the master's own client included) applies to its replica.

A new master first *recovers*: it waits (until ``deadline``) for a ``Report`` from each
connected peer, pulls any replica newer than its own, and only then processes actions, so an
action that any surviving peer saw confirmed is neither lost nor applied twice.

What cannot be served yet waits in ONE queue, in arrival order: everything but reports and
pulled replicas while recovering, and everything while the node says the master holds no
lease (``lease=False``, ``majority`` policy). Under ``majority`` the master also counts
replicas' ``Ack``s and publishes ``Committed`` once a quorum holds an index of its own term.

What a peer sends is input, never truth (docs/security.md): a pulled replica is adopted only
while recovering, only at the position its peer reported, only with a checksum that matches
its state and only under a valid seal of a master of its term; the app's
hooks (reducer, ``can_reveal``) are contained like bad input; every map keyed by what peers send
is bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, assert_never

from ..errors import InvalidState, LocalProtocolError
from ..ids import PeerId, Rid, Term
from .budget import SMALL, Answers
from .draws import Draws, Ledger, fair_in_master_half, waits_for_values
from .effects import Effect, Publish, Send, TermObserved
from .fair import resolve_fair
from .history import DIGEST_SIZE, commitment, incarnation, removed_head
from .messages import (
    Ack,
    Anchor,
    Applied,
    Bind,
    Committed,
    Contribute,
    Create,
    Created,
    Endorse,
    Head,
    Held,
    Open,
    Presence,
    Propose,
    Pulled,
    Refusal,
    Rejected,
    Remove,
    Removed,
    Replied,
    Report,
    Restore,
    Sealed,
    Secret,
    Snapshot,
    SyncRequest,
    ToMaster,
    Unbind,
)
from .pulls import Pulls
from .recovery import Recovery
from .removals import TOMBSTONES
from .replica import Replica, replay
from .reveals import Reveals
from .reveals import reason as _reason
from .seals import SealChain
from .state import checksum, freeze, size_of
from .types import Action, ResourceType, parse_rid
from .values import has_fair_values, has_master_values, resolve_master_values, seed_for
from .waiting import MAX_WAITING, Waiting
from .windows import AuthorWindows

if TYPE_CHECKING:
    import random

    from ..signing import Signer, Verifier

__all__ = ["MAX_WAITING", "RECOVERY_TIMEOUT", "TOMBSTONES", "MasterCore"]

RECOVERY_TIMEOUT: Final = 1.0
"""Seconds a new master waits for every connected peer's Report before it serves anyway."""


_NO_RID: Final = Rid("")  # a report's reply names no resource

_RECOVERY: Final = frozenset({Report, Pulled})
_WAITS_FOR_PULL: Final = frozenset({Propose, Bind, Unbind, SyncRequest, Remove, Restore})
"""What waits while the master pulls the resource it names (after recovery: a late reporter's)."""

"""What a recovering master serves at once (everything else waits until recovery ends)."""


class MasterCore:
    """The master role. ``now`` is the master clock (wall seconds as read when it took over, advanced by
    the monotonic clock): it feeds ``master.now()`` and runs the master's timers."""

    def __init__(
        self,
        me: PeerId,
        *,
        term: Term,
        types: Mapping[str, ResourceType],
        salt: bytes,
        index: int = 0,
        replicas: Iterable[Replica] = (),
        peers: frozenset[PeerId] = frozenset(),
        now: float = 0.0,
        recovery_timeout: float = RECOVERY_TIMEOUT,
        rng_factory: Callable[[int], random.Random],
        quorum: Callable[[frozenset[PeerId]], bool] | None = None,
        signer: Signer,
        verifier: Verifier,
        master_of: Callable[[Term], PeerId | None],
        removed: Mapping[Rid, int] | None = None,
        encode: Callable[[Snapshot], bytes] | None = None,
        room: str = "",
        ledger: Ledger | None = None,
        removal_seals: Mapping[Rid, Sealed] | None = None,
    ) -> None:
        """``rng_factory(seed)`` builds the generator for one action's master values (the driver
        passes ``random.Random``): the core itself never touches the random module. With
        ``quorum`` (``majority``: does this set of peers form a quorum?) acks are counted.
        ``signer`` (whose id is ``me``) seals its heads; ``verifier`` checks seals: it adopts only replicas
        sealed by the master of their term, as ``master_of(term)`` knows it (the election: followed, or
        shown real votes).
        ``removed``: tombstones (rid -> index of its removal) this master must not bring back, and
        ``removal_seals`` the seals that recorded them (sent with a removal told again).
        ``encode`` (the wire codec) encodes each snapshot it answers with once, for every peer that asks.
        ``room`` is bound into the commitments of sealed private halves (``resource.sealed``).
        ``ledger``: the players' chains as this master's replica knows them (fair draws, ``draws.py``)."""
        self.me = me
        self._dirty: dict[Rid, None] = {}  # resources whose head changed since the last seal
        self._rng_factory = rng_factory
        self._quorum = quorum
        self.term = term
        self.index = index
        self._types = dict(types)
        self._salt = salt
        self._resources: dict[Rid, Replica] = {replica.rid: replica.copy() for replica in replicas}
        self._removed: dict[Rid, int] = dict(removed or {})
        self._peers = set(peers)
        self._pulls = Pulls(me, term, verifier=verifier, master_of=master_of)  # what it pulled, and what waits for it
        self._recovery = Recovery(self, frozenset(peers))  # the reports it waits for, the replicas it adopts
        self.waiting = Waiting()
        """What cannot be served yet (recovering, or no lease), in arrival order."""
        self._windows = AuthorWindows(term)
        self._acks: dict[PeerId, int] = {}
        self.committed = 0
        self.deadline: float | None = now + recovery_timeout
        self.began: int | None = None
        self._chain = SealChain(signer, term, removal_seals or {})
        self._reveals = Reveals(me, term=term, types=types, resources=self._resources, entry=self._entry, room=room)
        self.answers = Answers(me=me, term=term, resources=self._resources, encode=encode)
        """Snapshots and secrets owed to peers that asked, paid out of each one's budget (resource/budget.py)."""
        self._draws = Draws(me, term=term, ledger=ledger or Ledger(), entry=self._next_entry)

    # -- inspection ----------------------------------------------------------------------------

    @property
    def recovering(self) -> bool:
        """True until every connected peer reported and every newer replica was pulled."""
        return self.deadline is not None

    @property
    def rids(self) -> list[Rid]:
        """Every resource the master holds."""
        return list(self._resources)

    def resource(self, rid: Rid) -> Replica | None:
        """The master's record of ``rid`` (read-only use)."""
        return self._resources.get(rid)

    def private_view(self, rid: Rid, peer: PeerId) -> Any:
        """What ``peer`` sees of ``rid``: public state plus its own held private actions."""
        res = self._resources[rid]
        return self._reveals.view_of(res, peer)

    # -- inputs --------------------------------------------------------------------------------

    def seal(self) -> list[Effect]:
        """Sign the heads of the resources changed since the last seal (a ``Sealed`` for every peer); [] if none.

        Only once this term began and only past the index of the last seal: every seal is the next
        link of the term's chain, so no two ever cover one index (what changes while recovering
        is sealed with the first entries after ``Began``)."""
        if not self._dirty or self.began is None or self.index <= self._chain.sealed_at:
            return []
        heads: list[Head] = []
        for rid in self._dirty:
            self.answers.shared.forget(rid)
            res = self._resources.get(rid)
            heads.append(removed_head(rid) if res is None else res.head())
        self._dirty.clear()
        sealed = self._chain.next(self.index, self.began, heads)
        for h in heads:
            res = self._resources.get(h.rid)
            if res is not None:
                res.seal = sealed
            else:
                self._chain.removed(h.rid, sealed)
        return [Publish(message=sealed)]

    def tick(self, now: float, *, lease: bool = True) -> list[Effect]:
        """Advance time: serve what waited for the lease once it holds; end recovery once its deadline passed."""
        if not lease:
            self.waiting.lease_lost()
            return []
        effects = self._release(now) if self.waiting and (self.deadline is None or self.waiting.for_lease) else []
        if self.deadline is not None and now >= self.deadline:
            effects += self._recovery.finish(now)
        if self.deadline is None and (self._reveals.waits or self._reveals.timed):
            effects += self._reveals.timers(now, self._peers)
        if self.deadline is None and self.answers.due is not None:
            effects += self.answers.tick(now, self.index)
        if self.deadline is None and self._draws.timed_out(now):
            effects += self._drawn(now)
        return self._unpark_sealed(effects, now)

    def peers_changed(self, peers: frozenset[PeerId], now: float, *, lease: bool = True) -> list[Effect]:
        """The set of other connected peers changed: drop departed subscribers."""
        effects: list[Effect] = [e for peer in sorted(peers - self._peers) for e in self._draws.relays(peer)]
        self._peers = set(peers)

        def gone(peer: str) -> bool:
            return peer != self.me and peer not in self._peers

        self._recovery.awaiting_report = {p for p in self._recovery.awaiting_report if not gone(p)}
        for peer in [p for p in self.answers.peers if gone(p)]:
            self.answers.left(peer)
        self._windows.forget_peers(gone)  # what departed peers parked
        self._draws.forget_peers(gone)
        for rid in self._pulls.peers_gone(gone):  # pulls whose peer left: not coming
            effects += self._unpark(rid, now, lease)
        if self.recovering:
            if lease:
                effects += self._recovery.maybe_finish(now)
            if self.recovering:
                return effects
        for res in self._resources.values():
            departed = [p for p in res.subscribers if gone(PeerId(p))]
            if departed:
                for p in departed:
                    del res.subscribers[p]
                effects.append(self._presence(res))
            effects += self._maybe_reveal(res, now)
        if self._draws.players_left(self._peers):
            effects += self._drawn(now)
        return self._unpark_sealed(effects, now)

    def step(self, sender: PeerId, message: ToMaster, now: float, *, lease: bool = True) -> list[Effect]:
        """Handle one message addressed to the master (``lease``: may it confirm now? see the module docstring)."""
        if message.term != self.term:  # older terms are fenced; a newer one deposes us
            return [TermObserved(term=message.term, sender=sender)] if message.term > self.term else []
        if lease and self.waiting and (self.deadline is None or self.waiting.for_lease):  # what waited goes first
            effects = self._release(now)
            if self.waiting.due is None or type(message) is Ack:
                effects += self._admit(sender, message, now, lease)
            else:  # behind the slices still due
                self.waiting.push(sender, message, lease=lease)
            return self._unpark_sealed(effects, now)
        return self._unpark_sealed(self._admit(sender, message, now, lease), now)

    def _admit(self, sender: PeerId, message: ToMaster, now: float, lease: bool) -> list[Effect]:
        """Serve ``message`` now, or queue it behind what waits (acks never wait)."""
        if type(message) is not Ack and (not lease or (self.deadline is not None and type(message) not in _RECOVERY)):
            self.waiting.push(sender, message, lease=lease)
            return []
        if (
            type(message) in _WAITS_FOR_PULL
            and message.rid not in self._resources  # type: ignore[union-attr]
            and self._pulls.pulling(message.rid)  # type: ignore[union-attr]
        ):  # a late reporter's resource is on its way: its actions wait for it, not fail
            self._pulls.park(message.rid, sender, message)  # type: ignore[union-attr]
            return []
        effects: list[Effect]
        match message:
            case Propose():
                effects = self._on_propose(sender, message, now)
            case Create():
                effects = self._on_create(sender, message)
            case Bind():
                effects = self._on_bind(sender, message)
            case Remove():
                effects = self._on_remove(sender, message)
            case Unbind():
                res = self._resources.get(message.rid)
                if res is None or sender not in res.subscribers:
                    return []
                del res.subscribers[sender]
                effects = [self._presence(res)]
            case Restore():
                effects = self._reveals.restore(sender, message, now, self._peers)
            case Open():
                effects = self._reveals.open(sender, message, now, self._peers)
            case Report():
                effects = self._recovery.on_report(sender, message, now)
            case SyncRequest():
                if message.rid not in self._resources:
                    return []
                self.answers.snapshot(sender, message.rid)  # owed, paid as the sender's budget allows
                effects = [*self._commit_to(sender, now), *self.answers.pay(sender, now, self.index)]
            case Pulled(snapshot=snapshot):
                effects = self._recovery.on_pulled(sender, snapshot, now, lease)
            case Ack():
                effects = self._on_ack(sender, message)
            case Endorse():
                effects = []  # checked and republished by the node, before the proposals it covers
            case Anchor():
                effects = self._draws.anchor(sender, message)
                if self._draws.complete():  # the last player awaited restarted: it cannot answer
                    effects += self._drawn(now)
            case Contribute():
                effects = self._drawn(now) if self._draws.contribute(sender, message) else []
            case _:
                assert_never(message)
        if self.deadline is not None:
            effects += self._recovery.maybe_finish(now)
        return effects

    # -- recovery ------------------------------------------------------------------------------

    def _release(self, now: float) -> list[Effect]:
        """Serve what waited, in arrival order (what still cannot be served waits again, in order).

        Once all of it can be served (recovery over, the lease held), one slice: the rest is due at once."""
        effects: list[Effect] = []
        for sender, message in self.waiting.take(now, servable=self.deadline is None):
            effects += self._admit(sender, message, now, True)
        return effects

    def _commit_to(self, peer: PeerId, now: float) -> list[Effect]:
        """``majority``: tell one peer how far the log is committed (it may have missed a Committed)."""
        if self._quorum is None or not self.committed:
            return []
        if peer != self.me:
            self.answers.budget.charge(peer, SMALL, now)  # an answer to its request, like the rest
        return [Send(to=peer, message=Committed(term=self.term, index=self.committed))]

    def _unpark(self, rid: Rid, now: float, lease: bool) -> list[Effect]:
        """Serve what waited for ``rid`` to be pulled, once no pull of it is in flight any more."""
        effects: list[Effect] = []
        for sender, message in self._pulls.unpark(rid):
            effects += self._admit(sender, message, now, lease)
        return effects

    def _on_ack(self, sender: PeerId, ack: Ack) -> list[Effect]:
        if self._quorum is None or ack.index <= self._acks.get(sender, 0):
            return []
        self._acks[sender] = ack.index
        return self._advance_commit()

    def _advance_commit(self) -> list[Effect]:
        """``majority``: publish the highest index a quorum holds, counted from an entry of this term on."""
        if self._quorum is None or self.began is None:
            return []
        for index in sorted(set(self._acks.values()), reverse=True):
            if index <= self.committed or index < self.began:
                return []
            if self._quorum(frozenset(p for p, i in self._acks.items() if i >= index)):
                self.committed = index
                return [Publish(message=Committed(term=self.term, index=index))]
        return []

    # -- serving -------------------------------------------------------------------------------

    def _reply(
        self, to: PeerId, req: int, rid: Rid = _NO_RID, error: str | None = None, *, refusal: Refusal = "rejected"
    ) -> Send:
        """The answer to request ``req`` of ``to`` (a create, a bind or a report)."""
        return Send(to=to, message=Replied(term=self.term, req=req, rid=rid, error=error, refusal=refusal))

    def _on_create(self, sender: PeerId, msg: Create) -> list[Effect]:
        try:
            type_name, _ = parse_rid(msg.rid)
        except LocalProtocolError as exc:
            return [self._reply(sender, msg.req, msg.rid, _reason(exc))]
        type_ = self._types.get(type_name)
        if type_ is None:
            error = (
                f"the master has no resource type {type_name!r}: every player of a room needs the types "
                "of its resources (Peer(types=[...]))"
            )
            return [self._reply(sender, msg.req, msg.rid, error, refusal="not_found")]
        if msg.rid in self._resources:
            return [self._reply(sender, msg.req, msg.rid, None if msg.exist_ok else f"{msg.rid} already exists")]
        try:
            state = freeze(type_.initial if msg.state is None else msg.state)
        except InvalidState as exc:
            return [self._reply(sender, msg.req, msg.rid, _reason(exc))]
        if has_master_values(msg.state):
            return [self._reply(sender, msg.req, msg.rid, "master values are not allowed in a created state")]
        size = size_of(state)
        if size > type_.max_bytes:
            error = f"{msg.rid}'s state is {size} bytes, over max_bytes {type_.max_bytes}"
            return [self._reply(sender, msg.req, msg.rid, error, refusal="too_large")]
        sealed = self.seal() if msg.rid in self._dirty else []  # removed in this step: seal that first
        self.index += 1
        born = incarnation(self._salt, self.term, self.index)
        res = Replica(rid=msg.rid, type=type_, state=state, incarnation=born)
        res.advance(self.term, 0)
        self._resources[msg.rid] = res
        self._dirty[msg.rid] = None
        created = Created(
            term=self.term, index=self.index, rid=msg.rid, state=state, checksum=res.checksum, incarnation=born
        )
        return [*sealed, Publish(message=created), self._reply(sender, msg.req, msg.rid)]

    def _on_bind(self, sender: PeerId, msg: Bind) -> list[Effect]:
        res = self._resources.get(msg.rid)
        if res is None:
            return [self._reply(sender, msg.req, msg.rid, f"no resource {msg.rid}", refusal="not_found")]
        effects: list[Effect] = []
        if res.subscribers.get(sender) != msg.info:
            res.subscribers[sender] = dict(msg.info)
            effects.append(self._presence(res))
        effects.append(self._reply(sender, msg.req, msg.rid))
        return effects

    def _on_remove(self, sender: PeerId, msg: Remove) -> list[Effect]:
        res = self._resources.pop(msg.rid, None)
        if res is None:
            return [self._reply(sender, msg.req, msg.rid, f"no resource {msg.rid}", refusal="not_found")]
        self._windows.forget_rid(msg.rid)
        self.answers.removed(msg.rid)
        self._reveals.forget(msg.rid)
        self._draws.forget(msg.rid)
        self._pulls.forget(msg.rid)
        self.index += 1
        self._dirty[msg.rid] = None  # the next seal records the removal (removed_head)
        self._removed[msg.rid] = self.index
        while len(self._removed) > TOMBSTONES:
            del self._removed[next(iter(self._removed))]
        removed = Removed(term=self.term, index=self.index, rid=msg.rid)
        return [Publish(message=removed), self._reply(sender, msg.req, msg.rid)]

    def _presence(self, res: Replica) -> Publish:
        self.index += 1
        return Publish(
            message=Presence(term=self.term, index=self.index, rid=res.rid, subscribers=dict(res.subscribers))
        )

    def _on_propose(self, sender: PeerId, msg: Propose, now: float) -> list[Effect]:
        res = self._resources.get(msg.rid)
        if res is None:
            reject = Rejected(
                term=self.term, rid=msg.rid, seq=msg.seq, reason=f"no resource {msg.rid}", refusal="not_found"
            )
            return [Send(to=sender, message=reject)]
        if self._reveals.park(sender, msg):  # a sealed reveal is due: it lands where it fell due
            return []
        return self._windows.order(sender, res, msg, lambda m: self._apply(sender, res, m, now))

    def _unpark_sealed(self, effects: list[Effect], now: float) -> list[Effect]:
        """``effects``, then the proposals that waited for a sealed reveal that is out now."""
        for sender, msg in self._reveals.unpark() if self._reveals.parked else ():
            effects += self._on_propose(sender, msg, now)
        return effects

    def _apply(self, sender: PeerId, res: Replica, msg: Propose, now: float) -> list[Effect]:
        if msg.incarnation != res.incarnation:  # signed for an earlier creation of the rid
            self._windows.settle_rejected(res, sender, msg.seq)
            return [self._reject(sender, msg, f"{msg.rid} was removed and created again", "not_found")]
        if res.type.sealed or msg.sealed:
            refused = _sealing_refusal(res.type, msg)
            if refused is not None:
                self._windows.settle_rejected(res, sender, msg.seq)
                return [self._reject(sender, msg, refused)]
        action, private, seed = msg.action, msg.private, None
        if waits_for_values(msg):
            if private is not None and has_fair_values(private.payload):
                self._windows.settle_rejected(res, sender, msg.seq)
                return [self._reject(sender, msg, fair_in_master_half(res.type))]
            if msg.draw or has_fair_values(action.payload):  # (draw: a sealed half's private draws need a beacon)
                seed = self._draws.take_seed(sender, msg.rid, msg.seq)
                if seed is None:  # drawn first; this author's later actions on rid wait behind it
                    return self._draws.propose(sender, msg, now, self._peers)
                drawn = resolve_fair(action.payload, seed)
                action = Action(action.type, drawn if has_master_values(drawn) else freeze(drawn))
            rng = self._rng_factory(seed_for(self._salt, self.term, msg.rid, res.version + 1))
            action = self._resolve(action, now, rng)
            private = None if private is None else self._resolve(private, now, rng)
        action = action.by(sender)  # the authenticated link it came over names its author
        private = None if private is None else private.by(sender)
        try:  # the app's reducer: whatever it raises (or returns that is not data) rejects the action
            public = res.type.reduce(res.state, action)
            if private is not None:  # the author's private view must accept its private half
                own = [h.action for h in res.held if h.author == sender and h.action is not None]
                replay(res.type, public, [*own, private])
        except Exception as exc:
            self._windows.settle_rejected(res, sender, msg.seq)
            return [self._reject(sender, msg, _reason(exc))]
        effects: list[Effect] = []
        digest = checksum(public)
        size = size_of(public)
        if size > res.type.max_bytes:
            self._windows.settle_rejected(res, sender, msg.seq)
            reason = f"the state would be {size} bytes, over {res.type.name!r}'s max_bytes {res.type.max_bytes}"
            return [self._reject(sender, msg, reason, "too_large")]
        res.write(public, self.term, res.version + 1, digest)
        res.settle(sender, msg.seq, applied=True)
        self._dirty[msg.rid] = None
        commit = b""
        if private is not None:
            assert msg.private is not None
            commit = commitment(msg.nonce, msg.private)
            origin = msg.private if private.payload is not msg.private.payload else None
            held = Held(
                author=sender,
                seq=msg.seq,
                action=private,
                commitment=commit,
                nonce=msg.nonce,
                origin=origin,
                public=action,
            )
            res.held.append(held)
            effects.append(Send(to=sender, message=Secret(term=self.term, rid=msg.rid, seq=msg.seq, private=private)))
        elif msg.sealed:  # the author keeps the half: the master holds its commitment only
            commit = msg.sealed
            res.held.append(Held(author=sender, seq=msg.seq, commitment=commit, public=action, beacon=seed or b""))
        self.index += 1
        effects.append(
            Publish(
                message=Applied(
                    term=self.term,
                    index=self.index,
                    rid=msg.rid,
                    version=res.version,
                    author=sender,
                    seq=msg.seq,
                    action=action,
                    private=bool(commit),
                    checksum=digest,
                    now=now,
                    origin=msg.action if action.payload is not msg.action.payload else None,
                    commitment=commit,
                )
            )
        )
        if res.held and res.type.can_reveal is not None:
            effects += self._maybe_reveal(res, now)
        return effects

    def _reject(self, sender: PeerId, msg: Propose, reason: str, refusal: Refusal = "rejected") -> Send:
        rejected = Rejected(term=self.term, rid=msg.rid, seq=msg.seq, reason=reason, refusal=refusal)
        return Send(to=sender, message=rejected)

    @staticmethod
    def _resolve(action: Action, now: float, rng: random.Random) -> Action:
        if not has_master_values(action.payload):
            return action
        return Action(action.type, freeze(resolve_master_values(action.payload, now=now, rng=rng)))

    @property
    def due(self) -> float | None:
        """When :meth:`tick` has timed work besides recovery (a reveal timeout, a deadline in a state, an
        answer owed to a peer whose budget refills, the next slice of what waited), or None.

        While recovering, None (recovery ends at ``deadline``, and the timers are counted after it).
        """
        due = self._reveals.due(self.deadline is not None)
        owed = None if self.deadline is not None else self.answers.due
        draw = None if self.deadline is not None else self._draws.due
        return min((t for t in (due, owed, draw, self.waiting.due) if t is not None), default=None)

    def _entry(self, rid: Rid) -> int:
        """``rid``'s head changed: number the next log entry."""
        self._dirty[rid] = None
        self.index += 1
        return self.index

    def _next_entry(self) -> int:
        """Number the next log entry that changes no resource's head (a draw)."""
        self.index += 1
        return self.index

    def _drawn(self, now: float) -> list[Effect]:
        """Publish the running draw, apply its action at once, and start the next draw."""
        effects, resolved = self._draws.resolve()
        if resolved is not None:
            author, msg = resolved
            res = self._resources.get(msg.rid)
            if res is not None:
                effects += self._windows.order(author, res, msg, lambda m: self._apply(author, res, m, now))
            self._draws.take_seed(author, msg.rid, msg.seq)  # unused if the action was not applied
        return effects + self._draws.next(now, self._peers)

    def _maybe_reveal(self, res: Replica, now: float) -> list[Effect]:
        return self._reveals.maybe_reveal(res, now, self._peers)


def _sealing_refusal(type_: ResourceType, msg: Propose) -> str | None:
    """Why a proposal does not fit its type's private mode (a sealed pair carries a commitment only), or None."""
    if not type_.sealed:
        return f"{type_.name!r} is not a sealed type: its private halves go to the master"
    if msg.private is not None:
        return f"{type_.name!r} is sealed: a private half must stay with its author (send its commitment)"
    if msg.sealed and len(msg.sealed) != DIGEST_SIZE:
        return f"a sealed commitment is {DIGEST_SIZE} bytes, not {len(msg.sealed)}"
    return None
