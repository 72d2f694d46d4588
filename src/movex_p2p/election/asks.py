"""A campaign's requests asked again: a lost (pre-)vote request or reply costs a re-ask, not a round.

Election messages travel as datagrams. Without this, one lost ``VoteReply`` cost the candidate its
whole round: it campaigned again only when its election timer fired, and a voter that had already
voted for it refuses that candidate a new term for two election timeouts (``Voter.check_pending_vote``).
Asking again within the same round is idempotent for the voter (the same term, the same candidate:
the same vote, signed again) and needs no new term. Pure, like the machine that owns it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from .machine import Effect, Send, Standing, ToOthers
from .messages import PreVoteRequest, VoteRequest

if TYPE_CHECKING:
    from .machine import ElectionMachine

__all__ = ["REASK_EVERY", "Asks"]

REASK_EVERY: Final = 0.1
"""Seconds between asks of one round, to the peers whose (pre-)vote is not in yet."""


class Asks:
    """The pre-vote or vote request of the round in progress, and when to ask again for what is missing."""

    def __init__(self, machine: ElectionMachine) -> None:
        self._m = machine
        self.at: float | None = None
        """When to ask again (None: no round in progress)."""
        self._request: PreVoteRequest | VoteRequest | None = None

    def start(self, request: PreVoteRequest | VoteRequest, now: float, out: list[Effect]) -> None:
        """Ask every linked peer now, and again every :data:`REASK_EVERY` those that did not grant it."""
        out.append(ToOthers(message=request))
        self._request = request
        self.at = now + REASK_EVERY

    def tick(self, now: float, out: list[Effect]) -> None:
        """Ask again if it is time and the round is still on."""
        if self.at is None or now < self.at:
            return
        m, request = self._m, self._request
        granted: set[object]
        if isinstance(request, PreVoteRequest) and m._proposal == request.term:
            granted = set(m._prevotes)
        elif isinstance(request, VoteRequest) and m.role is Standing.CANDIDATE and m._ballot == request.term:
            granted = set(m._votes)
        else:
            self.at = self._request = None
            return
        self.at = now + REASK_EVERY
        out.extend(Send(to=peer, message=request) for peer in sorted(m._room.connected - m._room.spectators - granted))
