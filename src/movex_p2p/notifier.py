"""The app's side of each step: a Ready's events, faults and dropped input turned into what the app sees.

Dispatch handles and requests settle, bound resources notify, readiness waiters wake, and the
events the app hears of go to the peer's one :class:`~movex_p2p.events.EventStream`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final, assert_never

import anyio

from .censorship import Censored
from .errors import (
    ActionRejected,
    ActionStuck,
    AuthenticationFailed,
    IncompatibleType,
    MovexError,
    ResourceNotFound,
    StateTooLarge,
)
from .events import Diagnostic, EventStream
from .handles import DispatchHandle, Resource
from .ids import Rid
from .nodecore import (
    MasterChanged,
    NodeEvent,
    PeerJoined,
    PeerLeft,
    PeersChanged,
    Ready,
    TypeConflict,
    incompatibility,
)
from .resource import effects as fx
from .resource.messages import Refusal
from .resource.pending import KEEP_CONFIRMED, KEEP_SECONDS
from .transport.base import Endpoint, IdentityInUse

__all__ = ["REFUSALS", "Notifier"]

REFUSALS: Final[dict[Refusal, type[ActionRejected]]] = {
    "rejected": ActionRejected,
    "not_found": ResourceNotFound,
    "too_large": StateTooLarge,
    "incompatible": IncompatibleType,
}
"""The error a refused request or action raises, by the master's reason."""

_WARNED_LIMIT: Final = 4096  # distinct (peer, reason) pairs remembered for deduplication


class Notifier:
    """Turns each Ready into settled handles, resource notifications, woken waiters and PeerEvents."""

    def __init__(
        self, *, log: logging.LoggerAdapter[Any], stats: dict[str, int], master_id: Callable[[], str | None]
    ) -> None:
        self.log = log
        self.stats = stats
        self._master_id = master_id
        self.stream = EventStream(log=log)
        self.resources: dict[Rid, Resource] = {}
        self.handles: dict[tuple[Rid, int], DispatchHandle] = {}
        self.requests: dict[int, tuple[anyio.Event, list[fx.RequestSettled]]] = {}
        self.synced = anyio.Event()  # set: synced with a master (Peer.ready also needs the room to agree on it)
        self.master_change = anyio.Event()  # set (and replaced) at each master change
        self.wake = anyio.Event()  # set (and replaced) when wait_ready should look again
        self.agreement_waiters = 0  # wait_ready() calls waiting for every linked peer to agree: every step wakes them
        self._warned: set[tuple[str, str]] = set()
        self.auth_seen = 0  # handshakes the endpoint counted as failed on the secret, as last seen
        self._auth_last: AuthenticationFailed | None = None

    def __call__(self, ready: Ready) -> None:
        """Tell the app what the step did (the driver calls it after sending the step's frames)."""
        if self.agreement_waiters:
            self.wake_waiters()
        if ready.faults or ready.dropped:
            self._report(ready)
        if ready.events:
            changed: set[Rid] = set()
            for event in ready.events:
                self._on_event(event, changed)
            for rid in changed:
                resource = self.resources.get(rid)
                if resource is not None:
                    resource._notify()

    def look_at_refusals(self, endpoint: Endpoint) -> None:
        """Report the handshakes ``endpoint`` counted as failed on the room secret since the last look."""
        count = int(endpoint.refused.get("wrong secret", 0))
        if count <= self.auth_seen:
            return
        new, self.auth_seen = count - self.auth_seen, count
        # the endpoint keeps short texts (an exception would keep its traceback alive)
        failures = [str(f) for f in list(endpoint.auth_failures)[-new:]]
        if failures:
            self._auth_last = AuthenticationFailed(failures[-1])
        for reason in failures or ["a handshake failed on the room secret"]:
            self.diagnose(
                Diagnostic(kind="auth_failed", peer=None, reason=f"{reason}: give every peer the same secret")
            )
        self.wake_waiters()

    def refused_by_everyone(self, room: str) -> AuthenticationFailed:
        """What ``wait_ready`` raises when handshakes failed on the secret and no link is open."""
        last = f" (the last: {self._auth_last})" if self._auth_last is not None else ""
        error = AuthenticationFailed(
            f"room {room!r}: peers were found, but every handshake with them failed on the room secret "
            f"(no link is open){last}: give every peer the same secret"
        )
        error.__cause__ = self._auth_last
        return error

    def wake_waiters(self) -> None:
        """Make ``wait_ready`` look again."""
        self.wake.set()
        self.wake = anyio.Event()

    def _report(self, ready: Ready) -> None:
        """Faults at ERROR with their traceback; dropped input at WARNING, once per (peer, reason)."""
        for fault in ready.faults:
            self.stats["faults"] += 1
            self.log.error("bug: %s from %s raised %s\n%s", fault.what, fault.sender, fault.error, fault.traceback)
            self.stream.publish(Diagnostic(kind="fault", peer=fault.sender, reason=fault.error, detail=fault.traceback))
        for dropped in ready.dropped:
            self.stats["dropped"] += 1
            self.diagnose(Diagnostic(kind="dropped", peer=dropped.sender, reason=dropped.reason))

    def diagnose(self, diagnostic: Diagnostic) -> None:
        """Log ``diagnostic`` at WARNING and hand it to the on_diagnostic callbacks, once per (kind, peer, reason)."""
        key = (f"{diagnostic.kind}:{diagnostic.peer}", diagnostic.reason[:40])
        if key in self._warned:  # remote input or repeated incidents: once per (peer, reason)
            return
        if len(self._warned) >= _WARNED_LIMIT:
            self._warned.clear()
        self._warned.add(key)
        where = f" from {diagnostic.peer}" if diagnostic.peer else ""
        self.log.warning("%s%s: %s", diagnostic.kind, where, diagnostic.reason)
        self.stream.publish(diagnostic)

    def _on_event(self, event: NodeEvent, changed: set[Rid]) -> None:
        match event:
            case fx.StateChanged(rid=rid) | fx.PresenceChanged(rid=rid):
                changed.add(rid)
            case fx.ActionSettled(rid=rid, seq=seq, error=error, refusal=refusal, cause=cause):
                handle = self.handles.pop((rid, seq), None)
                if handle is not None:
                    failure: MovexError | None = None
                    if error is not None:
                        failure = REFUSALS[refusal](error, rid=rid)
                        failure.__cause__ = cause  # where the app's reducer raised, when it did here too
                    handle._settle(failure)
            case fx.RequestSettled(req=req):
                waiter = self.requests.pop(req, None)
                if waiter is not None:
                    waiter[1].append(event)
                    waiter[0].set()
            case fx.Rebased(rid=rid, count=count, lost=lost):
                self.stats["rebased"] += count
                if count:
                    self.log.warning("%s: %d own actions confirmed by a deposed master were re-sent", rid, count)
                if lost:
                    self.stats["lost"] += len(lost)
                    reason = (
                        f"{len(lost)} own actions (seqs {_seq_ranges(lost)}) confirmed by a deposed master are not in "
                        f"the master's log, and were confirmed too long ago to be kept here and sent again "
                        f"(the last {KEEP_CONFIRMED}, or {KEEP_SECONDS:.0f} s): they are lost"
                    )
                    self.diagnose(Diagnostic(kind="lost", peer=self._master_id(), reason=reason, rid=rid))
            case fx.ResyncStarted(rid=rid, reason=reason):
                self.stats["resyncs"] += 1
                if reason.startswith(("checksum mismatch", "reducer raised")):
                    reason = f"{reason}: resynced; a reducer that is not pure (clock, random, set order) does this"
                else:  # a lost frame, or a replica of a deposed master's history: nothing for the app to fix
                    reason = f"{reason}: resynced"
                self.stream.publish(Diagnostic(kind="diverged", peer=self._master_id(), reason=reason, rid=rid))
                self.log.warning("%s diverged (%s)", rid, reason)
            case fx.Stalled(master=master, seconds=seconds, pending=pending):
                reason = f"the master confirmed nothing for {seconds:.1f} s: {pending} pending actions sent again"
                self.diagnose(Diagnostic(kind="slow_link", peer=master, reason=reason))
            case fx.Stuck(rid=rid, seqs=seqs, master=master, seconds=seconds):
                reason = (
                    f"{len(seqs)} own actions (seqs {_seq_ranges(seqs)}) unconfirmed {seconds:.0f} s after the master "
                    f"{master} was known, even proposed again; they stay pending"
                )
                self.stats["stuck"] += len(seqs)
                self.diagnose(Diagnostic(kind="stuck", peer=master, reason=reason, rid=rid))
                for seq in seqs:
                    handle = self.handles.pop((rid, seq), None)
                    if handle is not None:
                        handle._settle(ActionStuck(reason, rid=rid, seq=seq, seconds=seconds))
            case fx.AppRaised(rid=rid, where=where, error=error):
                reason = f"{where} raised {error}"
                self.diagnose(Diagnostic(kind="app_error", peer=None, reason=reason, rid=rid))
            case fx.PrivateLost(rid=rid, seqs=seqs, master=master):
                reason = (
                    f"own private actions (seqs {_seq_ranges(seqs)}) were never revealed: this process does not "
                    "hold them (a restart?) or they reached the master too late; the type's on_unrevealed ran"
                )
                self.diagnose(Diagnostic(kind="private_lost", peer=master, reason=reason, rid=rid))
            case fx.OpeningForged(rid=rid, author=author, seq=seq):
                reason = (
                    f"{author} opened its sealed private action {seq} with something it had not committed to "
                    "(its signature proves it sent that): counted as never revealed, the type's on_unrevealed ran"
                )
                self.diagnose(Diagnostic(kind="forged", peer=author, reason=reason, rid=rid))
            case fx.DrawShort(rid=rid, draw=draw, missing=missing, master=master):
                reason = f"the fair draw at log index {draw} went on without {', '.join(missing)} (no answer in time)"
                self.diagnose(Diagnostic(kind="draw_missing", peer=master, reason=reason, rid=rid))
            case fx.ResourceRemoved(rid=rid):
                resource = self.resources.pop(rid, None)
                if resource is not None:
                    resource._on_removed()
                self.stream.publish(event)
            case fx.Synced():
                self.synced.set()
                self.wake_waiters()
            case MasterChanged(master=master, term=term):
                self.log.info("master is now %s (term %s)", master, term)
                if self.synced.is_set():
                    self.synced = anyio.Event()
                self.master_change.set()
                self.master_change = anyio.Event()
                self.stream.publish(event)
            case fx.Forged(peer=peer, reason=reason):
                self.log.warning("%s was caught forging (%s): it is not followed any more", peer, reason)
                self.diagnose(Diagnostic(kind="forked", peer=peer, reason=reason))
            case PeersChanged():
                self.stream.publish(event)
                self.wake_waiters()
            case PeerJoined(info=info):
                self.log.info("%s (%s) joined as a %s", info.name, info.id, info.role)
                self.stream.publish(event)
            case PeerLeft(info=info, reason=reason):
                self.log.info("%s (%s) %s", info.name, info.id, reason)
                self.stream.publish(event)
            case TypeConflict(peer=peer, name=name, type=type_name, ours=ours, theirs=theirs):
                reason = incompatibility(type_name, ours, theirs, peer, name)
                self.diagnose(Diagnostic(kind="incompatible_type", peer=peer, reason=reason))
            case IdentityInUse(superseded=superseded, detail=detail):
                if superseded:
                    detail += (
                        ": this one stepped aside (it is no master, never campaigns or votes, and its dispatch, "
                        "create and remove raise ActionRejected); close it, or give each process its own identity file"
                    )
                else:
                    detail += ", the other stepped aside: give each process its own identity file"
                self.diagnose(Diagnostic(kind="duplicate_identity", peer=None, reason=detail))
            case Censored(master=master, author=author, rid=rid, seq=seq, seconds=seconds):
                reason = (
                    f"the master {master} left {author}'s action {seq}, handed to it, unconfirmed for {seconds:.1f} s"
                    " while confirming others' actions"
                )
                self.diagnose(Diagnostic(kind="censored", peer=master, reason=reason, rid=rid))
            case _:
                assert_never(event)

    def fail_waiters(self, error: MovexError) -> None:
        """Settle every handle and request still waiting with ``error``; wake ``wait_ready``."""
        for handle in self.handles.values():
            handle._settle(error)
        self.handles.clear()
        for done, _ in self.requests.values():
            done.set()
        self.requests.clear()
        self.synced.set()
        self.wake_waiters()


def _seq_ranges(seqs: tuple[int, ...]) -> str:
    """``1-3, 7`` for (1, 2, 3, 7): seqs as short runs."""
    runs: list[list[int]] = []
    for seq in sorted(seqs):
        if runs and seq == runs[-1][1] + 1:
            runs[-1][1] = seq
        else:
            runs.append([seq, seq])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
