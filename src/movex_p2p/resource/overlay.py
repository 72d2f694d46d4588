"""PrivateOverlay: a peer's own private actions that the master holds and has not revealed (pure)."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from ..ids import PeerId, Rid, Term
from .effects import Effect, Send
from .messages import Restore, Secret
from .pending import Pending
from .replica import Replica
from .types import Action

__all__ = ["OwnSecret", "PrivateOverlay"]

OwnSecret = tuple[int, Action, bytes, Action | None]
"""An own private action the master holds unrevealed: (seq, private half, nonce, private half as dispatched)."""


class PrivateOverlay:
    """Own unrevealed private actions per resource: kept at confirmation, restored to a new master,
    adopted again after a restart, dropped at the reveal."""

    def __init__(self, me: PeerId) -> None:
        self.me = me
        self.secrets: dict[Rid, list[OwnSecret]] = {}  # own confirmed, unrevealed

    def actions(self, rid: Rid) -> list[Action]:
        """The private halves on ``rid``, in seq order."""
        return [action for _, action, _, _ in self.secrets.get(rid, ())]

    def keep(self, rid: Rid, item: Pending) -> None:
        """Pending ``item`` (a pair) was confirmed: its private half stays here until the reveal."""
        assert item.private is not None
        self.secrets.setdefault(rid, []).append((item.seq, item.private, item.nonce, item.origin))

    def restores(
        self, master: PeerId, term: Term, pending: Mapping[Rid, list[Pending]], sealed: Collection[Rid] = ()
    ) -> list[Effect]:
        """Give a new master the private halves it needs: of pairs applied but not yet committed, then of
        secrets; never those of ``sealed`` resources (their authors open them at the reveal)."""
        effects: list[Effect] = [
            Send(
                to=master,
                message=Restore(
                    term=term, rid=rid, seq=item.seq, private=item.private, nonce=item.nonce, origin=item.origin
                ),
            )
            for rid, items in pending.items()
            if rid not in sealed
            for item in items
            if item.index is not None and item.private is not None
        ]
        for rid, secrets in self.secrets.items():
            if rid in sealed:
                continue
            for seq, private, nonce, origin in secrets:
                restore = Restore(term=term, rid=rid, seq=seq, private=private, nonce=nonce, origin=origin)
                effects.append(Send(to=master, message=restore))
        return effects

    def own_halves(self, rid: Rid, pending: list[Pending]) -> list[tuple[int, Action, bytes]]:
        """(seq, private half as dispatched, nonce) of own pairs on ``rid`` the log holds and has not revealed yet."""
        halves = [(seq, origin or action, nonce) for seq, action, nonce, origin in self.secrets.get(rid, ())]
        halves += [
            (i.seq, i.origin or i.private, i.nonce) for i in pending if i.index is not None and i.private is not None
        ]
        return halves

    def adopt(self, msg: Secret, res: Replica | None, pending: list[Pending]) -> bool:
        """The master's copy of one of our private halves; True if the view changes."""
        for item in pending:
            if item.seq == msg.seq:
                if item.private is not None and item.origin is None and item.private.payload != msg.private.payload:
                    item.origin = Action(item.private.type, item.private.payload)  # as dispatched
                item.private = msg.private.by(self.me)  # as resolved by the master
                item.waits = False
                return False
        # one of our private actions the master still holds, that this process does not know
        # (it restarted with the same identity): it is ours again
        secrets = self.secrets.setdefault(msg.rid, [])
        if res is None or any(secret[0] == msg.seq for secret in secrets):
            return False
        if not any(h.author == self.me and h.seq == msg.seq for h in res.held):
            return False
        origin = None if msg.origin is None else msg.origin.by(self.me)
        secrets.append((msg.seq, msg.private.by(self.me), msg.nonce, origin))
        secrets.sort(key=lambda item: item[0])
        return True

    def prune(self, res: Replica) -> None:
        """Keep only the secrets that snapshot replica ``res`` still holds."""
        held_own = {h.seq for h in res.held if h.author == self.me}
        if res.rid in self.secrets:
            self.secrets[res.rid] = [secret for secret in self.secrets[res.rid] if secret[0] in held_own]

    def revealed(self, rid: Rid, pending: list[Pending]) -> None:
        """Every private half on ``rid`` was revealed: it is in the confirmed state now."""
        self.secrets.pop(rid, None)
        for item in pending:
            if item.index is not None:
                item.private = None
