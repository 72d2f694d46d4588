"""Reveals: the master's private overlays, their reveal (and its timeout) and the deadlines in states (pure)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, Final

from ..errors import RemoteProtocolError
from ..ids import PeerId, Rid, Term
from .effects import AppRaised, Effect, Publish
from .history import commitment, resolves
from .messages import Elapsed, Held, Open, Propose, Restore, Revealed
from .replica import Replica, replay
from .sealed import fold, open_batch
from .types import ResourceType, Unrevealed
from .values import earliest_deadline

__all__ = ["MAX_FIRED", "MAX_PARKED", "Reveals"]

MAX_FIRED: Final = 64
"""Deadlines of one resource fired in one tick at most (the rest fire at the next, at once)."""

MAX_PARKED: Final = 65_536
"""Proposals parked while sealed reveals wait for their openings (as the master's ``MAX_WAITING``)."""


def reason(exc: BaseException) -> str:
    """An exception as one line for a peer or the app."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Reveals:
    """Held private halves and timed work of the master's resources.

    ``resources`` is the master's own map (read, and its replicas written); ``entry(rid)`` marks
    ``rid``'s head changed and numbers the next log entry.
    """

    def __init__(
        self,
        me: PeerId,
        *,
        term: Term,
        types: Mapping[str, ResourceType],
        resources: dict[Rid, Replica],
        entry: Callable[[Rid], int],
        room: str = "",
    ) -> None:
        self.me = me
        self.room = room
        self.term = term
        self.parked: dict[Rid, list[tuple[PeerId, Propose]]] = {}
        """Sealed resources whose reveal is due: proposals that wait for it (the reveal lands where it fell due)."""
        self.parked_count = 0
        self._resources = resources
        self._entry = entry
        self.waits: dict[Rid, float] = {}  # reveals due that wait for a half: since when (this master's clock)
        self._deadlines: dict[Rid, tuple[Any, float | None]] = {}  # per resource: (state, its earliest deadline)
        self.timed = any(t.on_deadline is not None for t in types.values())  # any type with on_deadline?

    def forget(self, rid: Rid) -> None:
        """``rid`` was removed."""
        self.waits.pop(rid, None)
        self._deadlines.pop(rid, None)
        self.parked_count -= len(self.parked.pop(rid, ()))

    def sealing(self, rid: Rid) -> bool:
        """Is a reveal of ``rid``'s sealed halves due, waiting for their openings?"""
        res = self._resources.get(rid)
        return res is not None and res.type.sealed and rid in self.waits

    def park(self, sender: PeerId, msg: Propose) -> bool:
        """Keep ``msg`` until ``msg.rid``'s sealed reveal is out, if one is due (True); at most MAX_PARKED wait."""
        if not self.sealing(msg.rid):
            return False
        if self.parked_count >= MAX_PARKED:
            raise RemoteProtocolError(f"the master's queue is full ({MAX_PARKED} messages wait)")
        self.parked.setdefault(msg.rid, []).append((sender, msg))
        self.parked_count += 1
        return True

    def unpark(self) -> list[tuple[PeerId, Propose]]:
        """The proposals that waited for sealed reveals that are out now, in arrival order."""
        out: list[tuple[PeerId, Propose]] = []
        for rid in [rid for rid in self.parked if not self.sealing(rid)]:
            out += self.parked.pop(rid)
        self.parked_count -= len(out)
        return out

    def open(self, sender: PeerId, msg: Open, now: float, peers: Collection[PeerId]) -> list[Effect]:
        """An author opens sealed halves (its signature was checked): kept for the reveal, matching or not."""
        res = self._resources.get(msg.rid)
        if res is None or not res.type.sealed:
            return []
        batch = open_batch(msg)
        where = {(h.author, h.seq): i for i, h in enumerate(res.held)}
        for half in msg.halves:
            i = where.get((sender, half.seq))
            if i is None or half.action is None:
                continue
            held = res.held[i]
            if held.action is not None or half.commitment != held.commitment:
                continue  # opened already (the first opening counts), or not an opening of this half
            res.held[i] = Held(
                author=sender,
                seq=held.seq,
                action=half.action.by(sender),
                commitment=held.commitment,
                nonce=half.nonce,
                public=held.public,
                proof=msg.proof,
                batch=batch,
            )
        return self.maybe_reveal(res, now, peers)

    @staticmethod
    def view_of(res: Replica, peer: PeerId) -> Any:
        """What ``peer`` sees of ``res``: public state plus its own held private actions."""
        own = [h.action for h in res.held if h.author == peer and h.action is not None]
        return replay(res.type, res.state, own) if own else res.state

    def restore(self, sender: PeerId, msg: Restore, now: float, peers: Collection[PeerId]) -> list[Effect]:
        """A client gives back a private half this master lacks (it held it under the previous master)."""
        res = self._resources.get(msg.rid)
        if res is None:
            return []
        if res.type.sealed:
            raise RemoteProtocolError(f"{msg.rid} is sealed: its private halves are opened, never restored")
        for i, held in enumerate(res.held):
            if held.author == sender and held.seq == msg.seq:
                if held.action is None:
                    original = msg.origin or msg.private
                    if commitment(msg.nonce, original) != held.commitment or not resolves(
                        original.payload, msg.private.payload
                    ):
                        raise RemoteProtocolError(f"restored private half {msg.seq} does not match its commitment")
                    res.held[i] = Held(
                        author=sender,
                        seq=msg.seq,
                        action=msg.private.by(sender),
                        commitment=held.commitment,
                        nonce=msg.nonce,
                        origin=msg.origin,
                        public=held.public,
                    )
                    return self.maybe_reveal(res, now, peers)
                return []
        return []

    def maybe_reveal(self, res: Replica, now: float, peers: Collection[PeerId]) -> list[Effect]:
        """Reveal ``res``'s held private halves if ``can_reveal`` says so.

        A half this master lacks (the previous master held it) is waited for while its author is
        connected (it restores it after a master change), for at most the type's
        ``reveal_timeout`` counted from when this master first found the reveal due; a half whose
        author is gone, or that is still missing then, is lost: ``on_unrevealed`` runs for it in
        the reveal's entry.
        """
        can_reveal = res.type.can_reveal
        if not res.held or can_reveal is None:
            self.waits.pop(res.rid, None)
            return []
        try:  # a sealed reveal once due stays due: authors may have opened their halves
            ready = (res.type.sealed and res.rid in self.waits) or can_reveal(res.state)
        except Exception as exc:  # the app's code: never reveal on it, say so (the node warns once)
            self.waits.pop(res.rid, None)
            return [AppRaised(rid=res.rid, where="can_reveal", error=reason(exc))]
        if not ready:
            self.waits.pop(res.rid, None)
            return []
        if any(h.action is None and (h.author == self.me or h.author in peers) for h in res.held):
            since = self.waits.setdefault(res.rid, now)
            if now < since + res.type.reveal_timeout:
                return []  # its author may still restore it
        self.waits.pop(res.rid, None)
        if res.type.sealed:
            return self._reveal_sealed(res, now)
        raised: list[Effect] = []
        revealed: list[Held] = []
        state = res.state
        for held in res.held:
            if held.action is None:  # lost: its author died with the previous master, or came back without it
                lost = Unrevealed(held.author, held.seq, held.public)
                state, error = res.type.unrevealed(state, lost)
                if error is not None:
                    raised.append(AppRaised(rid=res.rid, where="on_unrevealed", error=error))
                revealed.append(Held(author=held.author, seq=held.seq, commitment=held.commitment, public=held.public))
                continue
            try:
                state = res.type.reduce(state, held.action)
            except Exception as exc:  # the app's reducer: that private half is dropped, and said so
                raised.append(AppRaised(rid=res.rid, where="the reducer revealing a private action", error=reason(exc)))
                continue
            revealed.append(held)
        res.held = []
        res.write(state, self.term, res.version + 1)
        index = self._entry(res.rid)
        return [
            *raised,
            Publish(
                message=Revealed(
                    term=self.term,
                    index=index,
                    rid=res.rid,
                    version=res.version,
                    actions=tuple(revealed),
                    checksum=res.checksum,
                    now=now,
                )
            ),
        ]

    def _reveal_sealed(self, res: Replica, now: float) -> list[Effect]:
        """The Revealed entry of ``res``'s sealed halves: every opening as its author sent it (peers check each)."""
        commitments = {(h.author, h.seq): h.commitment for h in res.held}
        publics = {(h.author, h.seq): h.public for h in res.held}
        halves = tuple(res.held)
        done = fold(
            res.type,
            res.state,
            halves,
            room=self.room,
            incarnation=res.incarnation,
            rid=res.rid,
            commitments=commitments,
            publics=publics,
        )
        res.held = []
        res.write(done.state, self.term, res.version + 1)
        index = self._entry(res.rid)
        raised: list[Effect] = [AppRaised(rid=res.rid, where=where, error=error) for where, error in done.errors]
        version, digest = res.version, res.checksum
        entry = Revealed(
            term=self.term, index=index, rid=res.rid, version=version, actions=halves, checksum=digest, now=now
        )
        return [*raised, Publish(message=entry)]

    def due(self, recovering: bool) -> float | None:
        """When :meth:`tick` has timed work besides recovery (a reveal timeout, a deadline in a state), or None.

        While recovering, None (recovery ends at ``deadline``, and the timers are counted after it).
        """
        if recovering:
            return None
        waits = [
            since + res.type.reveal_timeout
            for rid, since in self.waits.items()
            if (res := self._resources.get(rid)) is not None
        ]
        for res in self._resources.values() if self.timed else ():
            if res.type.on_deadline is not None:
                when = self.next_deadline(res)
                if when is not None:
                    waits.append(when)
        return min(waits) if waits else None

    def next_deadline(self, res: Replica) -> float | None:
        """The earliest deadline not fired yet in ``res``'s state (cached per state object)."""
        cached = self._deadlines.get(res.rid)
        if cached is not None and cached[0] is res.state:
            return cached[1]
        when = earliest_deadline(res.state)
        self._deadlines[res.rid] = (res.state, when)
        return when

    def timers(self, now: float, peers: Collection[PeerId]) -> list[Effect]:
        """Reveal what waited ``reveal_timeout``; fire the deadlines that passed (one entry each, earliest first)."""
        effects: list[Effect] = []
        for rid, since in list(self.waits.items()):
            res = self._resources.get(rid)
            if res is None:
                del self.waits[rid]
            elif now >= since + res.type.reveal_timeout:
                effects += self.maybe_reveal(res, now, peers)
        for res in list(self._resources.values()) if self.timed else []:
            if res.type.on_deadline is None:
                continue
            for _ in range(MAX_FIRED):  # several passed (a master change took long): in order, each once
                when = self.next_deadline(res)
                if when is None or when > now:
                    break
                effects += self._elapse(res, when, now, peers)
        return effects

    def _elapse(self, res: Replica, when: float, now: float, peers: Collection[PeerId]) -> list[Effect]:
        """One entry: the deadline at ``when`` is marked fired and ``on_deadline`` runs (contained)."""
        state, error = res.type.elapse(res.state, when, now)
        effects: list[Effect] = []
        if error is not None:
            effects.append(AppRaised(rid=res.rid, where="on_deadline", error=error))
        res.write(state, self.term, res.version + 1)
        index = self._entry(res.rid)
        elapsed = Elapsed(
            term=self.term,
            index=index,
            rid=res.rid,
            version=res.version,
            deadline=when,
            checksum=res.checksum,
            now=now,
        )
        effects.append(Publish(message=elapsed))
        if res.held and res.type.can_reveal is not None:
            effects += self.maybe_reveal(res, now, peers)
        return effects
