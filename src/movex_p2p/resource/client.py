"""ClientCore: every peer's replicas plus its own predicted views (pure: events in, effects out).

Every peer, the master included, runs one. It keeps a replica of every resource at the
master's (term, version), applies the master's log entries in order and verifies each
checksum, and predicts its own view:

    view = transform(confirmed + own unrevealed private actions + own pending actions)

A peer's concurrent action only moves ``confirmed``; pending own actions are replayed on top,
so it never forces a resync. A gap or a checksum mismatch asks for one snapshot (single
flight per resource); pending actions are rebased on it.

An entry is applied only if its author signed it (the master republishes each author's
``Endorsed`` digests before the entries; the node's verify stage checked their signatures), a reveal only if it matches
the commitment published with the public half, and the master's seals are checked against the
replicas: anything else is a forgery by the master (a :class:`~.effects.Forged` effect).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, assert_never

from ..errors import LocalProtocolError, StateTooLarge
from ..ids import PeerId, Rid, Term
from .authorship import MAX_ENDORSED as MAX_ENDORSED
from .authorship import Authorship
from .draws import Player
from .effects import (
    ActionSettled,
    Effect,
    Forged,
    RequestSettled,
    ResyncStarted,
    Send,
    StateChanged,
    Synced,
    TermObserved,
)
from .messages import (
    Anchored,
    Applied,
    Began,
    Bind,
    Committed,
    Create,
    Created,
    Drawing,
    Drawn,
    Elapsed,
    Endorsed,
    Held,
    Position,
    Presence,
    Pull,
    Pulled,
    Refusal,
    Rejected,
    Remove,
    Removed,
    Replied,
    Report,
    Resend,
    Revealed,
    Sealed,
    Secret,
    Snapshot,
    SyncRequest,
    ToClients,
    Unbind,
)
from .opaque import OPAQUE_REFRESH as OPAQUE_REFRESH
from .opaque import OpaqueRefresh, is_opaque, opaque_type, type_of
from .overlay import PrivateOverlay
from .pending import KEEP_CONFIRMED as KEEP_CONFIRMED
from .pending import RESEND_AFTER as RESEND_AFTER
from .pending import STUCK_AFTER as STUCK_AFTER
from .pending import Pending, PendingQueue
from .predictor import Predictor
from .removals import TOMBSTONES as TOMBSTONES  # re-exported
from .removals import Removals
from .replacements import Replacements, set_subscribers
from .replica import Replica
from .requests import Requests, to_master
from .sealed import Outcome
from .sealing import Sealing
from .state import check_data, checksum, freeze, size_of
from .types import Action, ResourceType, Unrevealed, parse_rid
from .values import has_master_values

if TYPE_CHECKING:
    from ..signing import Signer

__all__ = ["ClientCore", "Pending", "is_opaque", "opaque_type"]


class ClientCore:
    """Replicas and predicted views of one peer; see the module docstring."""

    def __init__(
        self,
        me: PeerId,
        *,
        types: Mapping[str, ResourceType],
        wait_commit: bool = False,
        opaque: bool = False,
        room: str = "",
        signer: Signer,
        fair: Player | None = None,
    ) -> None:
        """With ``wait_commit`` an own action is confirmed only once a quorum holds it (``majority``);
        with ``opaque`` this peer also replicates, read-only, resources of types it does not have;
        entries are checked against their authors' endorsements in ``room`` (see the module docstring); ``room`` and
        ``signer`` (whose id is ``me``) seal and open own sealed private halves (:class:`.sealing.Sealing`);
        ``fair``: its fair draws (default: it only checks them)."""
        if signer.id != me:
            raise ValueError("signer.id must be the client's own id")
        self.me = me
        self._authorship = Authorship(room)
        self.wait_commit = wait_commit
        self.opaque = opaque
        self._removals = Removals()
        self.removed = self._removals.removed  # tombstones: removed rid -> index of its removal
        self.removal_seals = self._removals.seals  # the seal that recorded each (a new master tells it again)
        self.committed = 0
        self.types = dict(types)
        self.master: PeerId | None = None
        self.held: PeerId | None = None
        """While no master is known but the term is unchanged (this peer campaigns: a lost
        campaign leaves the term as it was), the master of that term: its entries still apply,
        so a campaign that falls back to it leaves no gap to resync (following it again still
        reports, as to any master). The node clears it when that master's link drops (:meth:`link_lost`)."""
        self.term = Term(0)
        self.index = 0
        self.position: tuple[int, int] = (0, 0)
        """(term, index) of the last log entry applied: how up to date this replica set is."""
        self.synced = False
        self.replicas: dict[Rid, Replica] = {}
        self._queue = PendingQueue(me)
        self._overlay = PrivateOverlay(me)
        self.sealing = Sealing(me, room, signer, self._overlay, self._queue)
        self._predictor = Predictor(self._overlay)
        self._syncing: set[Rid] = set()
        self._requests = Requests()
        self._last_now = 0.0
        self._clock_offset = 0.0
        self._opaque = OpaqueRefresh()
        self.fair = fair or Player(me, signer=signer)
        self._replacements = Replacements(self)  # snapshots, seals and removals: whole replicas replaced or dropped

    @property
    def stuck_after(self) -> float:
        """Seconds an own action may wait once a master is known (STUCK_AFTER unless set)."""
        return self._queue.stuck_after

    @stuck_after.setter
    def stuck_after(self, seconds: float) -> None:
        self._queue.stuck_after = seconds

    # -- reading -------------------------------------------------------------------------------

    def has(self, rid: Rid) -> bool:
        """True when a replica of ``rid`` is here."""
        return rid in self.replicas

    def view(self, rid: Rid) -> Any:
        """The untransformed predicted view of ``rid`` (frozen)."""
        return self._predictor.view(rid, self.replicas.get(rid), self._queue.items.get(rid, ()))

    def transformed(self, rid: Rid, now: float) -> Any:
        """The view the app sees: ``transform(view, master clock)`` when the type has one."""
        view = self.view(rid)
        return Predictor.transformed(rid, view, self.replicas[rid].type, self.master_now(now))

    def master_now(self, now: float) -> float:
        """The master's clock estimated from the last entry it stamped."""
        return now + self._clock_offset

    def pending(self, rid: Rid) -> list[Pending]:
        """Own actions on ``rid`` awaiting the master."""
        return list(self._queue.items.get(rid, ()))

    def secrets(self, rid: Rid) -> list[Action]:
        """Own private actions on ``rid`` that the master holds and has not revealed."""
        return self._overlay.actions(rid)

    # -- commands from the app -----------------------------------------------------------------

    def create(self, rid: Rid, state: Any, *, exist_ok: bool = True) -> tuple[int, list[Effect]]:
        """Ask the master to create ``rid``; the answer comes as RequestSettled(req)."""
        type_name, _ = parse_rid(rid)
        if type_name not in self.types or is_opaque(self.types[type_name]):
            raise LocalProtocolError(f"unknown resource type {type_name!r}")
        if has_master_values(state):
            raise LocalProtocolError("master values are not allowed in a created state")
        type_ = self.types[type_name]
        frozen = freeze(type_.initial if state is None else state)  # fail early on non-JSON-like data
        _check_size(type_, size_of(frozen), f"{rid}'s state")
        req = self._requests.next()
        return req, self._requests.ask(
            Create(term=self.term, req=req, rid=rid, state=state, exist_ok=exist_ok), self.master
        )

    def bind(self, rid: Rid, info: dict[str, Any]) -> tuple[int, list[Effect]]:
        """Subscribe to ``rid`` (presence ``info``); the answer comes as RequestSettled(req)."""
        freeze(info)
        self._requests.bound[rid] = dict(info)
        req = self._requests.next()
        return req, self._requests.ask(Bind(term=self.term, req=req, rid=rid, info=dict(info)), self.master)

    def unbind(self, rid: Rid) -> list[Effect]:
        """Stop being a subscriber of ``rid``."""
        self._requests.bound.pop(rid, None)
        return to_master(self.master, Unbind(term=self.term, rid=rid))

    def remove(self, rid: Rid) -> tuple[int, list[Effect]]:
        """Ask the master to delete ``rid`` everywhere; the answer comes as RequestSettled(req)."""
        parse_rid(rid)
        req = self._requests.next()
        return req, self._requests.ask(Remove(term=self.term, req=req, rid=rid), self.master)

    def dispatch(
        self, rid: Rid, action: Action, private: Action | None = None, *, now: float | None = None, nonce: bytes = b""
    ) -> tuple[int, list[Effect]]:
        """Apply ``action`` optimistically (unless it carries master values) and send it.

        With ``private``, this is a private/public pair: everyone sees ``action`` (the public
        half) and only this peer sees ``private`` until the type's ``can_reveal`` says so.
        ``now`` (the monotonic clock, as every ``now`` here) starts the stall timer of
        :meth:`resend_stalled`; ``nonce`` (random, from the driver) hides the private half's commitment.
        """
        res = self.replicas.get(rid)
        if res is None:
            raise LocalProtocolError(f"{rid} is not here (create or bind it first)")
        if is_opaque(res.type):
            raise LocalProtocolError(
                f"{rid}: this peer has no resource type {res.type.name!r} (pass it in types=[...])"
            )
        for part in (action, private):
            if part is not None:
                if not isinstance(part, Action):
                    raise LocalProtocolError(f"expected an Action, not {type(part).__name__}")
                check_data(part.payload, where=f"{part.type} payload")
                _check_size(res.type, size_of(part.payload), f"{part.type!r} on {rid}")
        if private is not None and res.type.sealed:
            self.sealing.check(res.type, private)
        public, secret = action.by(self.me), None if private is None else private.by(self.me)
        waits = has_master_values(action.payload) or (private is not None and has_master_values(private.payload))
        predicted = None if waits else self._predictor.predict(rid, res, public, secret)
        if now is not None:
            self._last_now = max(self._last_now, now)
        when = self._last_now
        # after a restart with the same identity, the master already holds this author's earlier seqs
        seq = self._queue.next_seq(rid, res.applied.get(self.me, 0))
        nonce = nonce if secret else b""
        item = Pending(
            seq, public, secret, waits, nonce=nonce, born=self._queue.clock(when), incarnation=res.incarnation
        )
        item.fault = None if waits else self._predictor.fault
        self.sealing.seal(res, item)
        pending = self._queue.push(rid, item, when)
        effects: list[Effect] = []
        if not waits:
            effects = self._changed(rid)
            if predicted is not None:
                self._predictor.views[rid] = predicted
        if self.master is not None:
            effects.append(Send(to=self.master, message=self._queue.propose(rid, item, pending[0].seq - 1, self.term)))
        return seq, effects

    # -- the master ----------------------------------------------------------------------------

    def report(self) -> list[Effect]:
        """Tell the master what this peer holds (it answers with what we lack): after a master change,
        or when this replica stays behind the master's log (a frame lost on a link that came back)."""
        if self.master is None:
            return []
        req = self._requests.next()
        have: dict[str, Position] = {rid: res.position() for rid, res in self.replicas.items()}
        report = Report(term=self.term, req=req, have=have)
        self._requests.report(report, self._last_now)
        return [Send(to=self.master, message=report)]

    def master_changed(self, master: PeerId | None, term: Term, now: float | None = None) -> list[Effect]:
        """A new master (or none) is known at ``now``: report what we hold, then re-submit our work."""
        self.held = self.master if master is None and term <= self.term else None
        self.master = master
        self.term = max(self.term, term)
        self.synced = False
        self._syncing.clear()
        self._removals.forget()  # the new master's answer to our report settles them
        if now is not None:
            self._last_now = now
        self._queue.restart(self._last_now, known=master is not None)  # stall timers restart
        if master is None:
            return []
        effects = self.report() + self.fair.master_changed(master, self.term)  # anchor before re-sent proposals
        effects += self._requests.replay(master, self.term, skip=self._requests.req)
        sealed = [rid for rid, res in self.replicas.items() if res.type.sealed]
        effects += self._overlay.restores(master, self.term, self._queue.items, sealed)
        for rid in self._queue.items:
            effects += self._queue.resend(rid, 0, self.master, self.term)
        self.sealing.opened.clear()  # a new master (or link): open again what is due
        for rid in sealed:
            effects += self.sealing.due(self.replicas[rid], self.master, self.term)
        return effects

    def link_lost(self, peer: PeerId) -> None:
        """``peer``'s link dropped: its entries no longer apply until it is followed again."""
        if peer == self.held:
            self.held = None

    def step(self, sender: PeerId, message: ToClients, now: float) -> list[Effect]:
        """Handle one message from the master."""
        self._last_now = now
        if type(message) is Endorsed:  # signed by its author: whoever relays it, whenever (not fenced)
            self._authorship.endorse(message)
            return []
        if type(message) is Anchored:  # signed by its player, likewise
            return self.fair.anchored(message)
        if message.term > self.term:
            return [TermObserved(term=message.term, sender=sender)]
        if message.term < self.term or sender != (self.master or self.held):
            return []  # fenced: an older or unknown master
        match message:
            case Applied():  # a master authors its own actions: only others' need their author's signature
                verify = sender != self.me and message.author != sender  # (as master, we checked)
                return self.fair.applied(message, self.index, sender) or self._on_applied(message, now, verify=verify)
            case Revealed():
                return self._on_revealed(message, now, verify=sender != self.me)
            case Elapsed():
                return self._on_elapsed(message, now)
            case Created():
                return self._on_created(message)
            case Presence():
                return self._on_presence(message)
            case Secret():
                return self._on_secret(message)
            case Rejected():
                return self._on_rejected(message)
            case Replied():
                return self._on_replied(message)
            case Snapshot():
                return self._replacements.on_snapshot(message)
            case Resend():
                return self._queue.resend(message.rid, message.after, self.master, self.term)
            case Committed():
                return self._on_committed(message.index)
            case Began():
                self._entry(message.index)
                return []
            case Endorsed() | Anchored():  # pragma: no cover - handled above, before the fence
                return []
            case Drawing() | Drawn():
                return self.fair.entry(message, sender, self._entry)
            case Sealed():
                return self._replacements.on_sealed(message)
            case Removed():
                return self._replacements.on_removed(message)
            case Pull():
                res = self.replicas.get(message.rid)
                if res is None:
                    return []
                snapshot = res.snapshot(term=self.term, index=self.index)
                return [Send(to=sender, message=Pulled(term=self.term, snapshot=snapshot))]
            case _:
                assert_never(message)

    # -- log entries ---------------------------------------------------------------------------

    def _entry(self, index: int, stamp: float | None = None, now: float = 0.0) -> None:
        # only messages of the current master's term get here (see step)
        position = (self.term, index)
        if position > self.position:
            self.position, self.index = position, index
        if stamp is not None:
            self._clock_offset = stamp - now

    def _apply_entry(
        self, msg: Applied | Revealed | Elapsed, compute: Callable[[Replica], Any], now: float
    ) -> Replica | list[Effect]:
        """Compute the state after entry ``msg`` (``compute(replica)``, which may raise) and verify it;
        the replica, or what to do instead."""
        res = self.replicas.get(msg.rid)
        if res is None:
            return self._resync(msg.rid, "entry for an unknown resource")
        if msg.rid in self._syncing:
            return []  # the snapshot on its way holds it
        if msg.version <= res.version:  # already applied (e.g. after a snapshot) ...
            written = res.term_at(msg.version)
            if written is None or written == msg.term:
                return []
            # ... or not: this replica holds that version from another master's history (a
            # deposed one's, that the new master never had)
            return self._resync(msg.rid, f"version {msg.version} here is another history than the master's")
        if is_opaque(res.type):  # no reducer here: a fresh snapshot will tell
            self._opaque.stale[msg.rid] = None
            return self._opaque.refresh(now, self.master, self.term, self._syncing)
        if msg.version != res.version + 1:
            return self._resync(msg.rid, f"version gap: have {res.version}, got {msg.version}")
        try:
            state = compute(res)
        except Exception as exc:
            return self._resync(msg.rid, f"reducer raised on a confirmed action: {exc!r}")
        digest = checksum(state)
        if digest != msg.checksum:
            return self._resync(msg.rid, "checksum mismatch")
        res.write(state, msg.term, msg.version, digest)
        position = (self.term, msg.index)  # as _entry(msg.index, msg.now, now), on the hot path
        if position > self.position:
            self.position, self.index = position, msg.index
        self._clock_offset = msg.now - now
        return res

    def _on_applied(self, msg: Applied, now: float, *, verify: bool = False) -> list[Effect]:
        """``verify``: check its author signed it (not for the master's own actions: it wrote them)."""
        replica = self.replicas.get(msg.rid)
        if verify and replica is not None and msg.version == replica.version + 1:
            forged = self._authorship.forged(msg, replica.incarnation)
            if forged is not None:
                return [Forged(peer=self.master or msg.author, reason=forged)]
        if msg.author == self.me and replica is not None and msg.version == replica.version + 1:
            wrong = self._queue.confirmed_another(msg, self._last_now)
            if wrong is not None:  # the entry still applies (the log is the master's); our action did not
                return [wrong, *self._on_applied(msg, now, verify=False)]
        action = msg.action.by(msg.author)
        res = self._apply_entry(msg, lambda replica: replica.type.reduce(replica.state, action), now)
        if not isinstance(res, Replica):
            return res
        res.settle(msg.author, msg.seq, applied=True)
        if msg.private:
            res.held.append(self.sealing.confirmed(msg, res, action, self.fair.seed(msg.rid, msg.author, msg.seq)))
        effects: list[Effect] = []
        if msg.author == self.me:
            if self.wait_commit and msg.index > self.committed:
                for item in self._queue.items.get(msg.rid, ()):
                    if item.seq == msg.seq:
                        item.index = msg.index  # in the confirmed state now; settled on commit
            else:
                effects += self._settle(msg.rid, msg.seq, None, kept=(msg.version, msg.term, msg.action))
        return effects + self._changed(msg.rid)

    def _on_committed(self, index: int) -> list[Effect]:
        self.committed = max(self.committed, index)
        effects: list[Effect] = []
        for rid, items in list(self._queue.items.items()):
            for item in list(items):
                if item.index is not None and item.index <= self.committed:
                    effects += self._settle(rid, item.seq, None)
        return effects

    def _on_revealed(self, msg: Revealed, now: float, *, verify: bool = False) -> list[Effect]:
        known = self.replicas.get(msg.rid)
        sealed = known is not None and known.type.sealed
        if verify:
            broken = self.sealing.broken(msg, known) if sealed else self._authorship.broken_commitment(msg, known)
            if broken is not None:
                return [Forged(peer=self.master or PeerId(""), reason=broken)]
        outcomes: list[Outcome] = []
        compute = self.sealing.folder(msg, outcomes) if sealed else lambda replica: _reveal(replica, msg.actions)
        res = self._apply_entry(msg, compute, now)
        if not isinstance(res, Replica):
            return res
        res.held = []
        self._overlay.revealed(msg.rid, self._queue.items.get(msg.rid, []))
        return self.sealing.revealed(msg, outcomes, self.master) + self._changed(msg.rid)

    def _on_elapsed(self, msg: Elapsed, now: float) -> list[Effect]:
        res = self._apply_entry(msg, lambda replica: replica.type.elapse(replica.state, msg.deadline, msg.now)[0], now)
        if not isinstance(res, Replica):
            return res
        return self._changed(msg.rid)

    def _on_created(self, msg: Created) -> list[Effect]:
        self._entry(msg.index)
        if msg.rid in self.replicas:
            return []
        type_ = type_of(self.types, msg.rid, opaque=self.opaque)
        if type_ is None:
            return []  # a type this peer does not use
        if (replay := self._removals.replayed(msg.rid, msg.incarnation)) is not None:
            return [Forged(peer=self.master or PeerId(""), reason=replay)]
        replica = Replica(rid=msg.rid, type=type_, state=freeze(msg.state), incarnation=msg.incarnation)
        self.replicas[msg.rid] = replica
        replica.advance(msg.term, 0)
        return self._changed(msg.rid)

    def _on_presence(self, msg: Presence) -> list[Effect]:
        self._entry(msg.index)
        res = self.replicas.get(msg.rid)
        if res is None:
            return []
        return set_subscribers(res, msg.subscribers)

    def _on_secret(self, msg: Secret) -> list[Effect]:
        res = self.replicas.get(msg.rid)
        changed = self._overlay.adopt(msg, res, self._queue.items.get(msg.rid, []))
        return self._changed(msg.rid) if changed else []

    def _on_rejected(self, msg: Rejected) -> list[Effect]:
        effects = self._settle(msg.rid, msg.seq, msg.reason, refusal=msg.refusal)
        return effects + (self._changed(msg.rid) if msg.rid in self.replicas else [])

    def _on_replied(self, msg: Replied) -> list[Effect]:
        request = self._requests.answered(msg.req)
        if request is None:
            return []
        if isinstance(request, Report):
            self.synced = True
            master = self.master or self.held
            assert master is not None
            effects: list[Effect] = [Synced(master=master, term=self.term)]
            for rid in sorted(self._queue.unsure):  # no snapshot came: this replica is in the master's log
                effects += self._queue.sure(rid, self.master, self.term)
            return effects
        return [RequestSettled(req=msg.req, rid=msg.rid, error=msg.error, refusal=msg.refusal)]

    # -- helpers -------------------------------------------------------------------------------

    @property
    def deadline(self) -> float | None:
        """When :meth:`resend_stalled` has work if nothing settles before, or None."""
        if self.master is None:
            return None
        due = self._requests.report_due()
        waits = [*self._opaque.waits(self._syncing), *self._queue.waits(), *([] if due is None else [due])]
        return min(waits) if waits else None

    def resend_stalled(self, now: float) -> list[Effect]:
        """Re-send what waits too long; ask for snapshots; report actions that cannot settle
        (how: :meth:`.pending.PendingQueue.stalled`)."""
        self._last_now = max(self._last_now, now)
        due = self._requests.report_due()
        effects: list[Effect] = self.report() if due is not None and now >= due else []
        if self._opaque.stale:
            effects += self._opaque.refresh(now, self.master, self.term, self._syncing)
        may_sync = lambda rid: rid in self.replicas and rid not in self._syncing  # noqa: E731
        return self._queue.stalled(now, self.master, self.term, may_sync, effects)

    def _settle(
        self,
        rid: Rid,
        seq: int,
        error: str | None,
        *,
        refusal: Refusal = "rejected",
        kept: tuple[int, int, Action] | None = None,
    ) -> list[Effect]:
        """Drop ``seq`` from pending and report it; ``kept``: (version, term, action) of its confirmation."""
        item = self._queue.take(rid, seq, self._last_now, kept)
        if item is None:
            return []
        if error is None and item.private is not None:
            self._overlay.keep(rid, item)
        cause = item.fault if error is not None else None
        return [ActionSettled(rid=rid, seq=item.key, error=error, refusal=refusal, cause=cause)]

    def _resync(self, rid: Rid, reason: str) -> list[Effect]:
        if rid in self._syncing or self.master is None:
            return []
        self._syncing.add(rid)
        return [
            ResyncStarted(rid=rid, reason=reason),
            Send(to=self.master, message=SyncRequest(term=self.term, rid=rid)),
        ]

    def _changed(self, rid: Rid) -> list[Effect]:
        self._predictor.views.pop(rid, None)
        res = self.replicas.get(rid)
        if res is not None and res.type.sealed and rid not in self._syncing:  # is a reveal of own halves due?
            return [StateChanged(rid=rid), *self.sealing.due(res, self.master, self.term)]
        return [StateChanged(rid=rid)]


def _reveal(res: Replica, actions: tuple[Held, ...]) -> Any:
    """``res``'s state after a reveal: each revealed half replayed, ``on_unrevealed`` for each lost one.

    A lost half's public half is taken from this replica's own reference when it has one (it
    saw the pair's entry), not from the master's word."""
    publics = {(h.author, h.seq): h.public for h in res.held if h.public is not None}
    state = res.state
    for held in actions:
        if held.action is None:
            public = publics.get((held.author, held.seq), held.public)
            state, _ = res.type.unrevealed(state, Unrevealed(held.author, held.seq, public))
        else:
            state = res.type.reduce(state, held.action.by(held.author))
    return state


def _check_size(type_: ResourceType, size: int, what: str) -> None:
    if size > type_.max_bytes:
        raise StateTooLarge(
            f"{what} is {size} bytes, over {type_.name!r}'s max_bytes of {type_.max_bytes}: nothing was sent "
            "(split it, or raise ResourceType(max_bytes=...) on every peer)",
        )
