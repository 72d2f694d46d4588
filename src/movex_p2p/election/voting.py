"""The voting rules of an election: which pre-votes and votes this peer grants, and when.

Pure like the machine that owns it: time comes in as an argument, nothing here does I/O.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..ids import PeerId, Term
from .machine import _ROUND_STEP, _SALT_MASK, Effect, Policy, Send, Standing, salt_of, term_round
from .messages import PreVoteReply, PreVoteRequest, VoteReply, VoteRequest

if TYPE_CHECKING:
    from .machine import ElectionMachine

__all__ = ["Voter"]


class Voter:
    """This peer as a voter: whom it voted for, how long a heard master keeps it loyal, what it grants."""

    def __init__(self, machine: ElectionMachine) -> None:
        self._m = machine
        self.voted_for: PeerId | None = None
        self.sticky_until = -math.inf  # refuse (pre-)votes until then: a live master was heard

    def sticky(self, now: float) -> bool:
        """Refuse (pre-)votes now: we are master, or heard a master lately (under AVAILABLE: one still linked)."""
        if self._m.role is Standing.MASTER:
            return True
        if self._m.config.policy is Policy.AVAILABLE and (
            self._m.master is None or self._m.master not in self._m._room.connected
        ):
            return False
        return now < self.sticky_until

    def check_pending_vote(self, now: float, asking: PeerId | None = None) -> bool:
        """One vote per candidate until it shows a master for it (or two election timeouts pass).

        ``asking``: that candidate asks again for a new ballot; True if it must wait. A candidate
        that never follows up its VoteRequests so gets our vote at most once per two election
        timeouts, and the other candidates have them meanwhile. (A longer, doubling refusal after
        three such votes in a row also caught honest candidates that lost their elections to
        datagram loss, and could leave a bare majority masterless.)
        """
        return self._m._certs.pending_blocks(now, 2 * self._m.config.election_timeout, asking)

    def lendable(self, term: Term, now: float) -> Term:
        """The term our ack of a heartbeat of ``term`` names: ``term``, or a newer one we just voted in.

        Under MAJORITY an ack lends the master its lease; while a vote we gave in a newer term may
        still elect its candidate (the pending vote: two election timeouts), the lease is not ours
        to lend, and the ack names that newer term (which credits no lease).
        """
        self.check_pending_vote(now)
        pending = self._m._certs.pending
        if self._m.config.policy is Policy.MAJORITY and pending is not None and pending[0] > term:
            return pending[0]
        return term

    def on_pre_vote_request(self, sender: PeerId, message: PreVoteRequest, now: float, out: list[Effect]) -> None:
        """Grant a pre-vote to a newer, up-to-date candidate while no live master holds us."""
        grant = (
            not self._m._spectator
            and sender not in self._m._room.spectators  # a peer introduced as a spectator never campaigns
            and message.term > self._m._ballot
            and (message.last_term, message.last_index) >= self._m._position
            and not self.sticky(now)
        )
        reply = PreVoteReply(term=message.term if grant else self._m._ballot, granted=grant)
        out.append(Send(to=sender, message=reply))

    def on_vote_request(self, sender: PeerId, message: VoteRequest, now: float, out: list[Effect]) -> None:
        """One signed vote per term, to an up-to-date candidate of its own term (or one our master handed over to)."""
        if message.term < self._m._ballot:
            out.append(Send(to=sender, message=VoteReply(term=self._m._ballot, granted=False)))
            return
        refuse = VoteReply(term=self._m._ballot, granted=False)
        if self._m._spectator or sender in self._m._room.spectators:
            out.append(Send(to=sender, message=refuse))  # a spectator never votes, nor is voted for
            return
        if message.term > self._m._ballot and self.check_pending_vote(now, asking=sender):
            # One vote per candidate until it shows a master. Its new ballot proves the old one
            # failed: our own campaign goes past it, or two voters that refuse it in turn would
            # leave a bare majority masterless, each vote re-arming the other's timer.
            self._m._learn_round(message.term)
            out.append(Send(to=sender, message=refuse))
            return
        jump = term_round(message.term) - term_round(self._m._ballot)
        if jump > _ROUND_STEP or (message.term & _SALT_MASK) != salt_of(sender):
            out.append(Send(to=sender, message=refuse))  # no jumping rounds, no campaigning for others' terms
            return
        granted_over = self._m.master is not None and (
            self._m._certs.granter(message.grant, self._m.term, sender) == self._m.master
        )
        handover = message.handover and granted_over
        if not handover and sender != self._m.master and self.sticky(now):
            return  # a live master exists: ignore the disruption (Raft §9.6)
        up_to_date = (message.last_term, message.last_index) >= self._m._position
        voted = self.voted_for if message.term == self._m._ballot else None
        if voted not in (None, sender) or not (up_to_date or handover):
            out.append(Send(to=sender, message=refuse))
            return
        if message.term > self._m._ballot:  # our vote moves on; the term we follow does not (not won yet)
            self._m._ballot = message.term
            if self._m.role is not Standing.FOLLOWER:
                self._m._step_down(self._m.term, now)
        self.voted_for = sender
        self._m._certs.pending = (message.term, sender, now)
        self._m._arm_election(now)
        proof = self._m._certs.vote(message.term, sender)
        out.append(Send(to=sender, message=VoteReply(term=message.term, granted=True, proof=proof)))
