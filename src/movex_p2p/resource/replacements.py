"""What replaces or drops a client's replica whole: snapshots, the master's seals and removals (pure).

A snapshot replaces a replica (and rebases this peer's pending actions on it), a seal checks the
replica's head against the master's signature (a mismatch resyncs), and a removal drops the
replica once a seal records it. These are the :class:`~.client.ClientCore`'s (its
``_replacements``): they read and write its state, kept apart from the entries' path.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from ..errors import InvalidState
from ..ids import PeerId, Rid
from .effects import Effect, Forged, PresenceChanged, ResourceRemoved
from .history import meta_digest
from .messages import Removed, Sealed, Snapshot
from .opaque import type_of
from .replica import Replica

if TYPE_CHECKING:
    from .client import ClientCore

__all__ = ["Replacements", "set_subscribers"]


class Replacements:
    """A :class:`~.client.ClientCore`'s snapshots, seals and removals."""

    def __init__(self, client: ClientCore) -> None:
        self._c = client

    def on_sealed(self, msg: Sealed) -> list[Effect]:
        c = self._c
        effects: list[Effect] = []
        for rid, index in c._removals.recorded(msg):
            effects += self.remove(rid, index, msg)
        for head in msg.heads:
            res = c.replicas.get(head.rid)
            if res is None or res.version != head.version or head.rid in c._syncing:
                continue
            if res.checksum != head.checksum or meta_digest(res.applied, res.held, res.incarnation) != head.meta:
                effects += c._resync(head.rid, "the master's seal does not match the entries it sent")
            else:
                res.seal = msg
        return effects

    def on_removed(self, msg: Removed) -> list[Effect]:
        """A removal is applied once a seal records it (this one's, or the next Sealed): see :meth:`on_sealed`."""
        c = self._c
        c._entry(msg.index)
        now, sealed = c._removals.told(msg, held=msg.rid in c.replicas)
        return self.remove(msg.rid, msg.index, sealed) if now else []

    def remove(self, rid: Rid, index: int, sealed: Sealed | None) -> list[Effect]:
        c = self._c
        res = c.replicas.get(rid)
        c._removals.tombstone(rid, index, sealed, None if res is None else res.incarnation)
        if res is None:
            return []
        effects: list[Effect] = []
        for item in list(c._queue.items.get(rid, ())):
            effects += c._settle(rid, item.seq, f"{rid} was removed", refusal="not_found")
        del c.replicas[rid]
        c._predictor.forget(rid)
        c._requests.bound.pop(rid, None)
        c._queue.forget(rid)
        c._opaque.forget(rid)
        c._syncing.discard(rid)
        return [*effects, ResourceRemoved(rid=rid)]

    def on_snapshot(self, msg: Snapshot) -> list[Effect]:
        c = self._c
        c._entry(msg.index)
        type_ = type_of(c.types, msg.rid, opaque=c.opaque)
        if type_ is None:
            return []
        swapped = c.sealing.swapped(msg)
        if swapped is not None and c.master is not None:
            return [Forged(peer=c.master, reason=swapped)]  # kept: the replica with the beacon this peer checked
        c._syncing.discard(msg.rid)
        c._removals.forget(msg.rid)
        c._opaque.stale.pop(msg.rid, None)
        try:
            res = Replica.from_snapshot(msg, type_)
        except InvalidState:
            return []
        old = c.replicas.get(msg.rid)
        res.subscribers = dict(old.subscribers) if old else {}
        c.replicas[msg.rid] = res
        effects = set_subscribers(res, msg.subscribers)
        reseal = functools.partial(c.sealing.seal, res, fresh=False)  # a sealed half under a new seq
        effects += c._queue.rebase_lost(res, c._last_now, c.master, c.term, reseal)
        effects += c._queue.reissue(res, c.master, c.term, reseal)  # in flight on another creation of rid
        # rebase: what the snapshot already contains is confirmed (once committed, under majority)
        done = res.applied.get(c.me, 0)
        for item in list(c._queue.items.get(msg.rid, ())):
            if c._queue.held_before(res, item.was):  # a re-send this log has from before
                effects += c._settle(msg.rid, item.seq, None, kept=(msg.version, msg.entry_term, item.action))
            elif item.seq > done:
                item.index = None  # not in the master's log (any more): it goes through again
            elif res.holds(c.me, item.seq) is False:  # settled in that log, but not applied: refused
                effects += c._settle(msg.rid, item.seq, "refused by the master (learnt from a snapshot)")
            elif c.wait_commit and msg.index > c.committed:
                item.index = msg.index
            else:  # kept like any confirmation, in case this master loses a split
                effects += c._settle(msg.rid, item.seq, None, kept=(msg.version, msg.entry_term, item.action))
        effects += c._queue.sure(msg.rid, c.master, c.term)  # held back until this log was known
        c._overlay.prune(res)
        c.sealing.forget(msg.rid)
        return effects + c._changed(msg.rid)


def set_subscribers(res: Replica, subscribers: dict[str, dict[str, Any]]) -> list[Effect]:
    """Replace ``res``'s subscribers; what changed, as a PresenceChanged."""
    before = res.subscribers
    res.subscribers = {k: dict(v) for k, v in subscribers.items()}
    joined = {k: v for k, v in res.subscribers.items() if before.get(k) != v}
    left = tuple(PeerId(k) for k in before if k not in res.subscribers)
    if not joined and not left:
        return []
    return [PresenceChanged(rid=res.rid, joined=joined, left=left)]
