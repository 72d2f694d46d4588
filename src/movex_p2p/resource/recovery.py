"""A new master's recovery: the reports it waits for, the replicas it pulls, and what it publishes when done.

A master elected after another one (or at a room's start) does not serve at once: it waits (at
most ``RECOVERY_TIMEOUT``) for every connected peer's ``Report`` of what it holds, pulls every
replica newer than its own (``pulls.Pulls`` checks each one is sealed), and only then publishes
``Began``, the replicas it adopted, and each reporter's catch-up. Pure, like the MasterCore that
owns it (and whose state it reads and writes: this is that core's recovery, kept apart).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import InvalidState, RemoteProtocolError
from ..ids import PeerId, Rid
from .effects import Effect, Publish, Send
from .messages import Began, Position, Removed, Report, Snapshot
from .replica import Replica
from .types import parse_rid

if TYPE_CHECKING:
    from .master import MasterCore

__all__ = ["Recovery"]


class Recovery:
    """The recovery of one :class:`~.master.MasterCore` (its ``_recovery``)."""

    def __init__(self, master: MasterCore, peers: frozenset[PeerId]) -> None:
        self._m = master
        self.awaiting_report: set[PeerId] = set(peers) | {master.me}
        """The peers whose Report the master still waits for (recovery ends once none is missing)."""
        self._reports: dict[PeerId, Report] = {}  # what each peer holds, answered when recovery ends

    def maybe_finish(self, now: float) -> list[Effect]:
        m = self._m
        if self.awaiting_report or m._pulls.awaiting:
            return []
        return self.finish(now)

    def finish(self, now: float) -> list[Effect]:
        m = self._m
        m.deadline = None
        self.awaiting_report.clear()
        m._pulls.awaiting.clear()
        m.index += 1
        m.began = m.index  # commits count only from an entry of our own term (as Raft's no-op)
        effects: list[Effect] = [Publish(message=Began(term=m.term, index=m.index)), *m._draws.relays()]
        gone = [PeerId(p) for res in m._resources.values() for p in res.subscribers if p != m.me and p not in m._peers]
        if gone:
            effects += m.peers_changed(frozenset(m._peers), now)
        # Only now is every replica final: publish what was pulled, then bring each reporter up
        # to date. An earlier snapshot could be older than a replica still on its way, and a
        # client would take its own actions in between for lost and send them again.
        adopted, m._pulls.adopted = m._pulls.adopted, set()
        for rid in sorted(adopted):
            m.index += 1
            effects.append(Publish(message=m._resources[rid].snapshot(term=m.term, index=m.index)))
        reports, self._reports = self._reports, {}
        for peer, report in reports.items():
            effects += self.catch_up(peer, report, now, skip=adopted)
        for res in [res for res in m._resources.values() if res.type.sealed]:
            effects += m._maybe_reveal(res, now)  # a sealed reveal due first: what waited queues behind it
        effects += m._release(now)
        for res in m._resources.values():
            effects += m._maybe_reveal(res, now)
        return effects + m._advance_commit()

    def catch_up(
        self, peer: PeerId, report: Report, now: float, *, skip: set[Rid] | frozenset[Rid] = frozenset()
    ) -> list[Effect]:
        """Snapshots of every resource ``peer`` lacks or holds another replica of (older, newer or different),
        its secrets, then the reply to its report: owed, and paid as its budget allows (resource/budget.py)."""
        m = self._m
        for rid, res in m._resources.items():
            if rid in skip:
                continue
            pos = report.have.get(rid)
            # older, or another history: a newer one this master did not pull (reported after
            # recovery, or refused) is a branch the room does not have, so the peer takes ours
            if pos is None or (pos.term, pos.version) != res.key or pos.checksum != res.checksum:
                m.answers.snapshot(peer, rid)
            else:
                m.answers.holds(peer, rid)
        # private actions the reporter authored and we hold: a peer restarted with the same
        # identity gets its secrets back (one that knows them already ignores these)
        m.answers.secrets(peer)
        m.answers.reply(peer, report.req)
        return [*m._commit_to(peer, now), *m.answers.pay(peer, now, m.index)]

    def on_report(self, sender: PeerId, report: Report, now: float) -> list[Effect]:
        m = self._m
        recovering = m.deadline is not None
        effects: list[Effect] = []
        for rid_str, pos in report.have.items():
            rid = Rid(rid_str)
            mine = m._resources.get(rid)
            if mine is None and rid in m._removed:  # it missed the removal: tell it again
                again = Removed(term=m.term, index=m._removed[rid], rid=rid, seal=m._chain.removals.get(rid))
                effects.append(Send(to=sender, message=again))
                continue
            newer = mine is None or (pos.term, pos.version) > mine.key
            if (recovering and newer) or mine is None:
                # a recovering master pulls what is newer, from a position no newer than its own
                # term; later, only a resource it does not hold at all (a late reporter's: a peer
                # that played alone before this master was elected without it, say)
                pull = None if not self.known_type(rid) or pos.term > m.term else m._pulls.ask(sender, rid, pos)
                if pull is not None:
                    effects.append(Send(to=sender, message=pull))
        if recovering:
            self.awaiting_report.discard(sender)
            self._reports[sender] = report
            return effects
        return effects + self.catch_up(sender, report, now)

    def on_pulled(self, sender: PeerId, snap: Snapshot, now: float, lease: bool) -> list[Effect]:
        m = self._m
        asked, reported = m._pulls.answered(sender, snap.rid)
        if not asked:
            return []  # a snapshot we did not ask this peer for: never adopted
        effects = self.take_pulled(snap, reported)
        if m.deadline is None:  # after recovery: what waited for this resource goes now
            effects += m._unpark(snap.rid, now, lease)
        return effects

    def take_pulled(self, snap: Snapshot, reported: Position | None) -> list[Effect]:
        """Adopt a pulled replica if it is newer and checks out (after recovery: only of a resource we lack)."""
        m = self._m
        type_ = m._types.get(parse_rid(snap.rid)[0]) if self.known_type(snap.rid) else None
        if type_ is None:
            return []
        current: Replica | None = m._resources.get(snap.rid)
        if current is not None and m.deadline is None:
            return []  # after recovery, only a resource this master does not hold is pulled
        if current is not None and (snap.entry_term, snap.version) <= current.key:
            return []
        if current is None and snap.rid in m._removed:
            return []  # removed meanwhile
        try:
            pulled = Replica.from_snapshot(snap, type_)
        except InvalidState as exc:
            raise RemoteProtocolError(f"pulled replica of {snap.rid}: {exc}") from exc
        refusal = m._pulls.refusal(snap, pulled, reported)
        if refusal is not None:
            # not adopted: the peer gets our replica once recovery ends (_catch_up), not now. Ours
            # may still be replaced by another peer's newer one, and a peer handed a replica older
            # than its own takes its confirmed actions for lost and sends them again: doubled.
            return []
        if current is not None:  # keep private halves we already hold
            known = {(h.author, h.seq): h for h in current.held if h.action is not None}
            pulled.held = [known.get((h.author, h.seq), h) for h in pulled.held]
        m._resources[snap.rid] = pulled
        m._dirty[snap.rid] = None
        if m.deadline is not None:
            m._pulls.adopted.add(snap.rid)  # recovering: published once every pull is in
            return []
        m.index += 1
        return [Publish(message=pulled.snapshot(term=m.term, index=m.index))]

    def known_type(self, rid: Rid) -> bool:
        """``rid`` names a resource of one of the master's types."""
        type_name, sep, id = rid.partition(":")
        return bool(sep and id) and type_name in self._m._types
