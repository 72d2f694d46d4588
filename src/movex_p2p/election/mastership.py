"""The master's side of an election: heartbeats, vote top-ups, handover, rival masters.

Pure like the machine that owns it: time comes in as an argument, nothing here does I/O.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..ids import PeerId
from .lease import Beats
from .machine import _RIVAL, _ROUND_STEP, _SALT_MASK, _TOP_UP, Effect, Send, Standing, ToOthers, salt_of, term_round
from .messages import Heartbeat, HeartbeatAck, TimeoutNow, VoteRequest

if TYPE_CHECKING:
    from .machine import ElectionMachine

__all__ = ["MasterDuties"]


class MasterDuties:
    """What a sitting master does for its term, and the timers and acks that go with it."""

    def __init__(self, machine: ElectionMachine) -> None:
        self._m = machine
        self.heartbeat_at: float | None = None
        self.beats = Beats()  # heartbeats sent, acks and positions: the lease
        self.handover_to: PeerId | None = None
        self.handover_at: float | None = None
        self.handover_tried: set[PeerId] = set()
        self.top_up_at = -math.inf
        self.rival_at = -math.inf  # when we last reacted to a rival master's claims

    def heartbeat(self, now: float, out: list[Effect]) -> None:
        """Send every other peer the next heartbeat, and top up our certificate now and then."""
        self.beats.beat(now)
        self.heartbeat_at = now + self._m.config.heartbeat_interval
        out.append(ToOthers(message=self.heartbeat_message()))
        if now >= self.top_up_at + _TOP_UP:
            self.top_up(now, out)

    def top_up(self, now: float, out: list[Effect]) -> None:
        """Ask connected players whose vote our certificate lacks for it, in our term.

        A peer whose view of the room differs from ours (it sees more peers) may not find our
        certificate a quorum; with its own vote in it, it will. Followers are asked too: a
        spectator, or a peer that joins later, judges the certificate by the votes of the
        players it sees, and cannot add a vote of its own. The term does not change.
        """
        self.top_up_at = now
        last_term, last_index = self._m._position
        request = VoteRequest(term=self._m.term, last_term=last_term, last_index=last_index, handover=False)
        out.extend(
            Send(to=peer, message=request)
            for peer in sorted(self._m._room.connected - self._m._room.spectators - set(self._m._certs.won))
        )

    def heartbeat_message(self) -> Heartbeat:
        """Our heartbeat now: term, sequence number, successors, certificate, log index."""
        cert = self._m._certs.proofs()
        return Heartbeat(
            term=self._m.term,
            seq=self.beats.seq,
            successors=self.ranked_successors(),
            cert=cert,
            index=self._m._position[1],
        )

    def ranked_successors(self) -> tuple[PeerId, ...]:
        """Linked players best placed to follow us, best first (by their acked log positions)."""
        return self.beats.ranked(self._m._room.connected - self._m._room.spectators)

    def hand_over(self, now: float, out: list[Effect]) -> None:
        """As master, grant the next untried successor our term (TimeoutNow), again if it does not win."""
        if self._m.role is not Standing.MASTER:
            return
        ranked = self.ranked_successors()
        if not ranked:
            self.handover_at = None
            return
        untried = [p for p in ranked if p not in self.handover_tried]
        if not untried:  # every successor failed to win: start over from the best
            self.handover_tried.clear()
            untried = list(ranked)
        self.handover_to = untried[0]
        self.handover_tried.add(self.handover_to)
        self.handover_at = now + self._m.config.election_timeout
        grant = self._m._certs.grant(self._m.term, self.handover_to)
        out.append(Send(to=self.handover_to, message=TimeoutNow(term=self._m.term, grant=grant)))

    def rival(self, sender: PeerId, message: Heartbeat, now: float, out: list[Effect]) -> None:
        """As master, we hear another master we will not follow.

        A master whose own certificate is still a quorum of the group it sees keeps its place
        (the other must yield: a liar's claim changes nothing). One whose certificate no longer
        is (a partition healed) gives way: to a rival whose certificate is a quorum for us, by
        telling it our term and certificate so it runs for the round above; otherwise by stepping
        down so that the whole group elects anew.
        """
        if self._m._own_cert_holds() or now < self.rival_at + _RIVAL:
            return
        self.rival_at = now
        group = set(self._m._group())
        theirs = self._m._voters(message.term, sender, message.cert) & group
        if message.term > self._m.term and len(theirs) >= len(set(self._m._certs.won) & group) > 0:
            # both of us won a part of the room while it looked split (lost datagrams, a partition):
            # the newer term with at least as many votes wins, as it did before votes were signed
            self._m._certs.trust(message.term, sender)
            self._m._certs.known = (message.term, sender, message.cert)
            self._m._step_down(message.term, now, master=sender)
            self._m._vote.sticky_until = now + self._m.patience(now)
            out.append(Send(to=sender, message=self._m._ack(message.term, message.seq)))
            return
        if self._m._quorum_of(theirs):
            out.append(Send(to=sender, message=self._m._ack(self._m.term, message.seq)))
        self._m._step_down(self._m.term, now)
        self._m._arm_election(now, prompt=True)

    def on_heartbeat_ack(self, sender: PeerId, message: HeartbeatAck, now: float, out: list[Effect]) -> None:
        """Count an ack of our term toward the lease; a newer certified term in it may make us run above."""
        if message.term > self._m.term:
            if self._m.role is Standing.MASTER:
                self.run_above(message, now, out)
            return
        if message.term < self._m.term or self._m.role is not Standing.MASTER:
            return
        self.beats.acked(sender, message.seq, (message.last_term, message.last_index))

    def run_above(self, message: HeartbeatAck, now: float, out: list[Effect]) -> None:
        """As master whose certificate holds, a peer of ours shows a certified newer term: run for the round above.

        That peer followed a master of the other side of a healed partition; our followers vote
        for us again, and then that side follows us too. A made-up certificate changes nothing,
        and a real one can move the round by ``_ROUND_STEP`` at most, once per ``_RIVAL`` seconds (the
        other side may have run several rounds while split, under loss).
        """
        if now < self.rival_at + _RIVAL or not self._m._own_cert_holds():
            return
        if not message.leader:
            return
        leader = PeerId(message.leader)
        if (message.term & _SALT_MASK) != salt_of(leader) or not self._m._voters(message.term, leader, message.cert):
            return
        self.rival_at = now
        # further than _ROUND_STEP: step that far now and again a _RIVAL later (ignored, it split the room for good)
        climb = min(term_round(message.term), term_round(self._m.term) + _ROUND_STEP)
        self._m._seen_round = max(self._m._seen_round, climb)
        self._m._campaign(now, out, handover=False)
