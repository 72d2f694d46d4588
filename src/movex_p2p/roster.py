"""Roster: who is in the room (introduced linked peers) and whose resource types differ from ours (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from .errors import ActionRejected, IncompatibleType, InvalidState, RemoteProtocolError, StateTooLarge
from .ids import PeerId, Rid
from .presence import SPECTATORS_ONLY_WATCH, STEPPED_ASIDE, Introduce, PeerInfo, Role, info_error, presence_error
from .resource import messages as rm
from .resource.state import freeze
from .resource.types import ResourceType, parse_rid

if TYPE_CHECKING:
    from .resource.master import MasterCore

__all__ = ["MAX_EARLY_INTROS", "Roster", "incompatibility"]

MAX_EARLY_INTROS: Final = 256
"""Introductions kept that arrived ahead of their link's PeerUp (a restarted peer's new link)."""


class Roster:
    """The members, their type conflicts with this build, and what may pass between two builds."""

    def __init__(self, types: Mapping[str, ResourceType], *, role: Role = "player") -> None:
        self.types = types
        self.read_only: str | None = SPECTATORS_ONLY_WATCH if role == "spectator" else None
        """Why this peer's app may not write (:meth:`check_writer`): it is a spectator, or it stepped aside."""
        self.members: dict[PeerId, PeerInfo] = {}
        """The OTHER peers in the room: linked and introduced."""
        self.conflicts: dict[PeerId, dict[str, str]] = {}
        """Members whose version of one of our types differs: peer -> {type name: its version}."""
        self.early: dict[PeerId, Introduce] = {}
        """Introductions that arrived ahead of their link (or a second one on a link)."""
        self.spectators: frozenset[PeerId] = frozenset()

    def keep_early(self, sender: PeerId, intro: Introduce) -> None:
        """Keep ``intro`` until its link comes up (bounded: the oldest go first)."""
        self.early.pop(sender, None)
        if len(self.early) >= MAX_EARLY_INTROS:
            del self.early[next(iter(self.early))]
        self.early[sender] = intro

    def introduce(self, peer: PeerId, intro: Introduce) -> tuple[PeerInfo, dict[str, str]]:
        """``peer`` is a member now: its info and the types whose versions differ (name -> its version)."""
        try:
            info = freeze(intro.info)
        except InvalidState as exc:  # the codec checked it already; belt and braces
            raise RemoteProtocolError(f"introduction: {exc}") from exc
        member = self.members[peer] = PeerInfo(str(peer), intro.name, info, intro.role)
        conflicts = {
            name: version
            for name, version in intro.types.items()
            if name in self.types and self.types[name].version != version
        }
        if conflicts:
            self.conflicts[peer] = conflicts
        else:
            self.conflicts.pop(peer, None)
        return member, conflicts

    def leave(self, peer: PeerId) -> PeerInfo | None:
        """``peer``'s link is down: the member it was (None: never introduced)."""
        self.conflicts.pop(peer, None)
        return self.members.pop(peer, None)

    def spectators_changed(self) -> frozenset[PeerId] | None:
        """The spectators among the members if they changed since the last call, else None."""
        spectators = frozenset(p for p, m in self.members.items() if m.role == "spectator")
        if spectators == self.spectators:
            return None
        self.spectators = spectators
        return spectators

    def check_writer(self, rid: Rid) -> None:
        """Raise ActionRejected if this peer only watches (a spectator, or it stepped aside): it may not write."""
        if self.read_only is not None:
            raise ActionRejected(self.read_only, rid=rid)

    def step_aside(self) -> None:
        """Another process took this peer's identity: the app's writes are refused from now on."""
        self.read_only = STEPPED_ASIDE

    def check_write(self, rid: Rid) -> None:
        """Raise if this peer may not create or remove ``rid``: :meth:`check_writer`, then :meth:`check_compatible`."""
        self.check_writer(rid)
        self.check_compatible(parse_rid(rid)[0])

    def check_bind(self, rid: Rid, info: Mapping[str, Any]) -> None:
        """Raise StateTooLarge if ``info`` is over ``presence.MAX_INFO``; as :meth:`check_compatible` for the type."""
        error = info_error(info)
        if error is not None:
            raise StateTooLarge(f"{error}: nothing was sent", rid=rid)
        self.check_compatible(parse_rid(rid)[0])

    def check_compatible(self, type_name: str) -> None:
        """Raise IncompatibleType if a member has another version of ``type_name`` than this peer."""
        ours = self.types.get(type_name)
        if ours is None:
            return
        others = [(peer, found[type_name]) for peer, found in self.conflicts.items() if type_name in found]
        if others:
            peer, theirs = others[0]
            name = self.members[peer].name if peer in self.members else ""
            raise IncompatibleType(incompatibility(type_name, ours.version, theirs, peer, name))

    def conflicting(self, sender: PeerId, message: rm.ToClients) -> bool:
        """True when ``message`` from master ``sender`` is about a type whose versions differ (answers pass).

        Raises RemoteProtocolError for presence over its bounds (``presence.MAX_INFO``, ``MAX_PRESENCE``).
        """
        if type(message) is rm.Presence or type(message) is rm.Snapshot:
            error = presence_error(message.subscribers)
            if error is not None:
                raise RemoteProtocolError(f"{message.rid}: {error}")
        if sender not in self.conflicts:
            return False
        if isinstance(message, rm.Replied | rm.Rejected | rm.Committed | rm.Began | rm.Sealed | rm.Endorsed):
            return False  # answers, and what the signed history checks whatever the type
        if isinstance(message, rm.Anchored | rm.Drawing | rm.Drawn):
            return False  # fair draws are room-wide: every peer's ledger takes every draw
        rid = message.rid
        return rid.partition(":")[0] in self.conflicts[sender]

    def serve(
        self, sender: PeerId, message: rm.ToMaster, master: MasterCore, me: PeerId, my_name: str
    ) -> tuple[rm.ToMaster | None, rm.ToClients | None]:
        """As master (``me``, introduced as ``my_name``): what to serve of ``message``, and the refusal to send back.

        Besides type conflicts: a peer introduced as a spectator may not write (refused, whatever its
        code does), and presence must fit its bounds: a bind's info over ``presence.MAX_INFO`` or a
        pulled replica's subscribers over them are dropped and reported, a bind past the
        resource's ``MAX_PRESENCE`` is refused as too large.
        """
        term = master.term
        match message:
            case rm.Create(req=req) | rm.Remove(req=req) if self._spectator(sender):
                return None, rm.Replied(term=term, req=req, rid=message.rid, error=SPECTATORS_ONLY_WATCH)
            case rm.Propose(seq=seq) if self._spectator(sender):
                return None, rm.Rejected(term=term, rid=message.rid, seq=seq, reason=SPECTATORS_ONLY_WATCH)
            case rm.Bind(req=req, rid=rid, info=info):
                error = info_error(info)
                if error is not None:
                    raise RemoteProtocolError(f"Bind: {error}")
                res = master.resource(rid)
                if res is not None and (error := presence_error({**res.subscribers, sender: info})) is not None:
                    return None, rm.Replied(term=term, req=req, rid=rid, error=f"{rid}: {error}", refusal="too_large")
            case rm.Pulled(snapshot=snapshot) if (error := presence_error(snapshot.subscribers)) is not None:
                raise RemoteProtocolError(f"Pulled: {snapshot.rid}: {error}")  # never adopted, never served again
        theirs = self.conflicts.get(sender)
        if theirs is None:
            return message, None
        match message:
            case rm.Ack() | rm.Endorse() | rm.Anchor():
                return message, None
            case rm.Report(have=have):
                kept = {rid: pos for rid, pos in have.items() if rid.partition(":")[0] not in theirs}
                if len(kept) == len(have):
                    return message, None
                return rm.Report(term=message.term, req=message.req, have=kept), None
            case rm.Pulled(snapshot=snapshot):
                return (None if snapshot.rid.partition(":")[0] in theirs else message), None
        type_name = message.rid.partition(":")[0]
        if type_name not in theirs:
            return message, None
        # as the sender will read it: "here" is the sender, the other build is this master's
        who = f"the master {my_name}" if my_name else "the master"
        reason = incompatibility(type_name, theirs[type_name], self.types[type_name].version, me, who)
        match message:
            case rm.Create(req=req) | rm.Bind(req=req) | rm.Remove(req=req):
                return None, rm.Replied(term=term, req=req, rid=message.rid, error=reason, refusal="incompatible")
            case rm.Propose(seq=seq):
                return None, rm.Rejected(term=term, rid=message.rid, seq=seq, reason=reason, refusal="incompatible")
        return None, None

    def _spectator(self, peer: PeerId) -> bool:
        """True when ``peer`` introduced itself as a spectator on its current link."""
        member = self.members.get(peer)
        return member is not None and member.role == "spectator"


def incompatibility(type_name: str, ours: str, theirs: str, peer: PeerId, name: str) -> str:
    """The message of an IncompatibleType: both versions, who holds the other one, and the fix."""
    who = f"{name} ({peer})" if name and name != peer else str(peer)
    text = (
        f"resource type {type_name!r} is version {ours!r} here but {theirs!r} on {who}: two builds of the "
        f"game with different rules cannot share {type_name!r}. Run the same build on every peer "
        "(or give both the same ResourceType(version=...) if their rules really are the same)"
    )
    ours_py, _, _ = ours.partition("-")
    theirs_py, _, _ = theirs.partition("-")
    if ours_py != theirs_py and ours_py.startswith("py3") and theirs_py.startswith("py3"):
        text += (
            f"; the default version digests the compiled reducer, which differs between Python versions "
            f"({ours_py} here, {theirs_py} there): set ResourceType(version=...) explicitly"
        )
    return text
