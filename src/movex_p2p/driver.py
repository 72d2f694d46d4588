"""The driver: the one task that steps a peer's NodeCore on the network's input and its deadlines.

It waits on the endpoint with the core's next deadline as the limit (one cancel scope, kept
while the input keeps coming, its deadline moved when the core's moves), takes what else is
ready without waiting (``receive_nowait``) into one batch, steps the core once and executes the
Ready: sends its frames (and tells the endpoint when the room starts or stops holding a
resource: ``Endpoint.room_started``), then hands its events, faults and dropped input to
``notify``. There is no polling: with no input the task sleeps until a timer is due.

The app's commands (``dispatch``, ``create``...) step the core in the caller's task, on the
loop's thread (:meth:`Driver.command`): their events are handled at once, and the frames a
dispatch queued leave at the end of that loop turn, in one step run by a ``call_soon``
callback (no task hand-off), unless the driver's own step took them first. So a burst of
dispatches in one turn leaves as one frame per peer. docs/design.md draws the route.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Final

import anyio

from .errors import ChannelClosed, TransportError
from .ids import PeerId
from .nodecore import NodeCore, Ready
from .transport.base import Endpoint, TransportEvent

__all__ = ["BATCH", "Driver"]

BATCH: Final = 256
"""Transport events fed to the core per step at most."""


class Driver:
    """Owns the stepping of one NodeCore over one endpoint (see the module docstring)."""

    def __init__(
        self,
        core: NodeCore,
        endpoint: Endpoint,
        *,
        notify: Callable[[Ready], None],
        warn: Callable[[str, PeerId, TransportError], None],
        stats: dict[str, int],
    ) -> None:
        self.core = core
        self.endpoint = endpoint
        self._notify = notify
        self._warn = warn
        self._stats = stats
        self._scope: anyio.CancelScope | None = None  # the wait for input; its deadline is the core's
        self._flush: asyncio.Handle | None = None  # the end-of-turn step, while one is scheduled
        self._broken: Exception | None = None  # the end-of-turn step raised: run() raises it
        self._clock = asyncio.get_running_loop().time  # anyio.current_time() on asyncio, with fewer calls
        self.closed = False
        self._started = False  # the room held a resource at the last step (as last told to the endpoint)
        self.steps = 0
        """Steps taken by the driver (its own and the end-of-turn ones), for tests and benchmarks."""

    async def run(self) -> None:
        """Start the core, then step it on input and at its deadlines until cancelled.

        Raises ``anyio.EndOfStream`` or ``anyio.ClosedResourceError`` when the endpoint ends.
        """
        core, endpoint = self.core, self.endpoint
        started = core.start(self._clock(), time.time())
        self.execute(started)
        deadline = started.deadline
        while True:
            with anyio.CancelScope(deadline=math.inf if deadline is None else deadline) as scope:
                self._scope = scope
                while True:
                    events = self._take([await endpoint.receive()])
                    self._stats["events_in"] += len(events)
                    self.steps += 1
                    self.execute(core.step(events, self._clock(), time.time()))
            self._scope = None
            if self._broken is not None:
                raise self._broken
            # A deadline passed: the timers that are due, after what already arrived. A loop that
            # ran late (a starved CPU) must not fire a timer on input it holds unread: a follower
            # would suspect a master whose heartbeat waits in its own inbox, and campaign.
            events = self._take([])
            self._stats["events_in"] += len(events)
            deadline = self.step(events)

    def _take(self, events: list[TransportEvent]) -> list[TransportEvent]:
        """``events`` and what else is ready now, without waiting (up to BATCH in all)."""
        receive_nowait = self.endpoint.receive_nowait
        while len(events) < BATCH:
            try:
                events.append(receive_nowait())
            except anyio.WouldBlock:
                break
        return events

    def step(self, events: list[TransportEvent]) -> float | None:
        """One step of the core on ``events`` (and its due timers), its Ready executed; returns its deadline."""
        self.steps += 1
        ready = self.core.step(events, self._clock(), time.time())
        self.execute(ready)
        return ready.deadline

    def command(self, ready: Ready) -> None:
        """Execute an app command's Ready now; what the command queued leaves at the end of this loop turn."""
        if self.core.queued and not self.closed:  # a dispatch: the end-of-turn step rearms
            self.execute(ready, rearm=False)
            if self._flush is None:
                self._flush = asyncio.get_running_loop().call_soon(self._end_of_turn)
        else:
            self.execute(ready)

    def _end_of_turn(self) -> None:
        self._flush = None
        if self.closed or not self.core.queued:
            return  # the driver's step took the frames first
        try:
            self.step([])
        except Exception as exc:  # a bug: the driver task raises it (a callback's error would only be logged)
            self._broken = exc
            if self._scope is not None:
                self._scope.cancel()

    def execute(self, ready: Ready, *, rearm: bool = True) -> None:
        """Send the Ready's frames, hand the rest to ``notify``, then wait no longer than its deadline.

        The wait's deadline only moves earlier here: a deadline that moved later (a follower's
        election timer, pushed back by each heartbeat) wakes the driver once at the old time,
        which then steps (no timer is due: nothing happens) and waits for the new one.
        """
        if not self.closed:
            send = self.endpoint.send
            for peer, frame in ready.frames.items():  # the hot path
                try:
                    send(peer, frame)
                except ChannelClosed:
                    pass  # the link went down meanwhile; the election and resync take it from here
                except TransportError as exc:
                    self._warn("sending to %s failed: %s", peer, exc)
            self._stats["frames_out"] += len(ready.frames)
            for peer, frame in ready.more:  # big states: frames that did not fit the first
                self._send(send, peer, frame)
            # datagrams after the frames: a heartbeat naming a master must not overtake the
            # Introduce (its name) sent in the same step
            for peer, frame in ready.datagrams.items():
                self._send(self.endpoint.send_datagram, peer, frame)
            if bool(self.core.client.replicas) is not self._started:  # a lobby screen shows it (on the LAN)
                self._started = not self._started
                self.endpoint.room_started(self._started)
        self._notify(ready)  # also with nothing in it: waiters on time-based conditions look again
        scope = self._scope
        if rearm and scope is not None and ready.deadline is not None and ready.deadline < scope.deadline:
            scope.deadline = ready.deadline

    def _send(self, send: Callable[[PeerId, bytes], None], peer: PeerId, frame: bytes) -> None:
        try:
            send(peer, frame)
        except ChannelClosed:
            pass
        except TransportError as exc:
            self._warn("sending to %s failed: %s", peer, exc)
        self._stats["frames_out"] += 1

    def close(self) -> None:
        """Send nothing more (the endpoint is closing); a scheduled end-of-turn step does nothing."""
        self.closed = True
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
