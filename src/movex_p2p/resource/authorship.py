"""Authorship: whether an entry or a reveal from the master is what its author signed or committed to (pure)."""

from __future__ import annotations

from collections import OrderedDict

from .history import action_digest, commitment, resolves
from .messages import Applied, Endorsed, Revealed
from .replica import Replica

__all__ = ["MAX_ENDORSED", "Authorship"]

MAX_ENDORSED = 65_536
"""Endorsed action digests kept (the oldest are forgotten first; an entry follows its endorsement at once)."""


class Authorship:
    """The authors' endorsed action digests, and the checks of the master's entries and reveals against them."""

    def __init__(self, room: str = "") -> None:
        self.room = room
        self.endorsed: OrderedDict[tuple[str, bytes], None] = OrderedDict()

    def endorse(self, msg: Endorsed) -> None:
        """Remember the digests ``msg``'s author signed (the oldest beyond MAX_ENDORSED are forgotten)."""
        for digest in msg.digests:
            self.endorsed[(msg.author, digest)] = None
        while len(self.endorsed) > MAX_ENDORSED:
            self.endorsed.popitem(last=False)

    def forged(self, msg: Applied, incarnation: bytes) -> str | None:
        """Why ``msg`` (on the ``incarnation`` of its resource held here) is not its author's action, or None."""
        original = msg.origin or msg.action
        if msg.origin is not None and (
            msg.origin.type != msg.action.type or not resolves(msg.origin.payload, msg.action.payload)
        ):
            return f"{msg.rid} v{msg.version}: the master changed more than the master values of {msg.author}'s action"
        digest = action_digest(
            msg.author,
            msg.rid,
            msg.seq,
            original,
            msg.commitment,
            room=self.room,
            term=msg.term,
            incarnation=incarnation,
        )
        if self.endorsed.pop((msg.author, digest), 0) is None:
            return None
        return f"{msg.rid} v{msg.version}: an action {msg.author} never signed (seq {msg.seq})"

    @staticmethod
    def broken_commitment(msg: Revealed, res: Replica | None) -> str | None:
        """Why a revealed private action is not the one its author committed to (in ``res``), or None."""
        if res is None or msg.version != res.version + 1:
            return None
        committed = {(h.author, h.seq): h.commitment for h in res.held}
        for held in msg.actions:
            if held.action is None:
                continue
            original = held.origin or held.action
            if (held.author, held.seq) not in committed or committed[(held.author, held.seq)] != commitment(
                held.nonce, original
            ):
                return f"{msg.rid} v{msg.version}: {held.author}'s revealed action {held.seq} breaks its commitment"
            if held.origin is not None and not resolves(held.origin.payload, held.action.payload):
                return f"{msg.rid} v{msg.version}: the master changed {held.author}'s private action {held.seq}"
        return None
