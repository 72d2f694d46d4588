"""The LAN link layer: one open peer connection's framing, pieces, pacing and liveness.

A link has two lanes (see :mod:`.webrtc`):

- the **reliable lane** (ordered, retransmitted with LAN timers) carries a byte stream of
  records ``[u32 length][u8 kind][payload]``: ``DATA`` is a whole frame or the last piece of
  one, ``PART`` a piece with more to follow, ``GOODBYE`` the peer is leaving. A frame of any
  size up to ``max_frame`` is cut into pieces of at most :data:`PIECE` bytes, and the writer
  hands aiortc at most :data:`HIGH_WATER` bytes at a time, so a datagram (or another link's
  traffic) never waits behind megabytes queued inside aiortc;
- the **datagram lane** (unordered, never retransmitted) carries one record per message,
  ``[u8 kind][payload]``: ``DATA`` (a frame of at most :data:`MAX_DATAGRAM` bytes) or
  ``HEARTBEAT``. Liveness and election traffic ride it: a lost datagram is simply lost, and a
  later one is never held up by it.

Anything that arrives on either lane counts as a sign of life. What arrives is decoded in the
aiortc callback (pure work) and handed to the endpoint's event stream without waiting; a link
whose peer overruns that stream, or sends a malformed record, is dropped.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from typing import Final

import anyio

from ..errors import ChannelClosed, LocalProtocolError, RemoteProtocolError
from ..ids import PeerId
from .base import MAX_DATAGRAM
from .webrtc import RtcSession

__all__ = [
    "DATA",
    "DEFAULT_MAX_FRAME",
    "GOODBYE",
    "HEARTBEAT",
    "HIGH_WATER",
    "MAX_DATAGRAM",
    "OUTBOX_LIMIT",
    "PART",
    "PIECE",
    "FrameDecoder",
    "PeerLink",
    "encode_frame",
    "encode_record",
]

DATA: Final = 0
HEARTBEAT: Final = 1
GOODBYE: Final = 2
PART: Final = 3
_RELIABLE_KINDS: Final = frozenset({DATA, GOODBYE, PART})

PIECE: Final = 16 * 1024
"""Largest payload of one record on the reliable lane (a larger frame goes as several)."""
MESSAGE: Final = PIECE + 64
"""Records queued together are coalesced into data-channel messages of about this size."""
HIGH_WATER: Final = 64 * 1024
"""The writer hands aiortc no more once this many bytes wait inside it (a datagram waits behind at most this)."""
DEFAULT_MAX_FRAME: Final = 65 * 1024 * 1024
"""Largest frame a link accepts unless the endpoint says otherwise (64 MiB of state + slack)."""
OUTBOX_LIMIT: Final = 1024 * 1024 * 1024
"""A peer whose queued, unsent bytes exceed this is dropped (it cannot keep up)."""

_HEADER = struct.Struct(">I")
_BEAT: Final = bytes((HEARTBEAT,))


# --- framing (pure) ------------------------------------------------------------------------


def encode_record(kind: int, payload: bytes = b"") -> bytes:
    """One record of the reliable lane's byte stream (``payload`` at most :data:`PIECE` bytes)."""
    if len(payload) > PIECE:
        raise LocalProtocolError(f"a record carries at most {PIECE} bytes, not {len(payload)}")
    return _HEADER.pack(len(payload) + 1) + bytes((kind,)) + payload


def encode_frame(frame: bytes) -> bytes:
    """A whole frame as the reliable lane's records (PART pieces, then a final DATA)."""
    view = memoryview(frame)
    records = [encode_record(PART, bytes(view[i : i + PIECE])) for i in range(0, len(view) - PIECE, PIECE)]
    last = len(records) * PIECE
    records.append(encode_record(DATA, bytes(view[last:])))
    return b"".join(records)


class FrameDecoder:
    """Reassembles frames from the reliable lane's messages (which may split or coalesce records)."""

    def __init__(self, *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self._buffer = bytearray()
        self._assembly = bytearray()
        self._parts = False
        self._max_frame = max_frame

    @property
    def buffered(self) -> int:
        """Bytes held for frames not yet complete."""
        return len(self._buffer) + len(self._assembly)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add received bytes; return complete ``(kind, frame)`` pairs (DATA or GOODBYE).

        RemoteProtocolError if a record is malformed or a frame grows over ``max_frame``.
        """
        self._buffer += data
        out: list[tuple[int, bytes]] = []
        view = self._buffer
        pos = 0
        while len(view) - pos >= _HEADER.size:
            (size,) = _HEADER.unpack_from(view, pos)
            if size == 0 or size > PIECE + 1:
                raise RemoteProtocolError(f"record length {size} out of range")
            if len(view) - pos - _HEADER.size < size:
                break
            start = pos + _HEADER.size
            kind = view[start]
            pos = start + size
            if kind not in _RELIABLE_KINDS:
                raise RemoteProtocolError(f"unknown record kind {kind}")
            payload = view[start + 1 : pos]
            if kind == GOODBYE:
                out.append((GOODBYE, b""))
                continue
            if kind == PART or self._parts:
                if len(self._assembly) + len(payload) > self._max_frame:
                    raise RemoteProtocolError(f"frame over {self._max_frame} bytes")
                self._assembly += payload
                self._parts = kind == PART
                if kind == DATA:
                    out.append((DATA, bytes(self._assembly)))
                    self._assembly = bytearray()
                continue
            out.append((DATA, bytes(payload)))
        del self._buffer[:pos]
        return out


# --- one link ------------------------------------------------------------------------------


class _Outgoing:
    """A frame (or the goodbye) on its way out: ``sent`` bytes of it already handed to the channel."""

    __slots__ = ("frame", "goodbye", "sent")

    def __init__(self, frame: bytes, *, goodbye: bool = False) -> None:
        self.frame = frame
        self.goodbye = goodbye
        self.sent = 0


class PeerLink:
    """One open link to ``peer``: queues and paces frames out, decodes what arrives.

    ``deliver(frame)`` hands a received frame to the endpoint and returns False if it cannot
    take it (the link is then dropped); ``heard()`` records a sign of life. Received data is
    handled in aiortc's callbacks (see :class:`~.webrtc.SessionSink`), sends never block: a
    frame that cannot go at once waits in the link's queue for :meth:`run_writer`.
    """

    def __init__(
        self,
        *,
        peer: PeerId,
        name: str,
        incarnation: int,
        session: RtcSession,
        deliver: Callable[[PeerId, bytes], bool],
        heard: Callable[[PeerId], None],
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        self.peer = peer
        self.name = name
        self.incarnation = incarnation
        self.session = session
        self.scope = anyio.CancelScope()
        self.finished = anyio.Event()
        self.heard_first = anyio.Event()
        """Set by its owner once the peer was heard since the channels opened: the link is up."""
        self.dead = False
        self.graceful = False
        self.reason = ""
        self._deliver = deliver
        self._heard = heard
        self._max_frame = max_frame
        self._decoder = FrameDecoder(max_frame=max_frame)
        self._queue: deque[_Outgoing] = deque()
        self.queued = 0
        """Bytes of frames queued and not yet handed to the channel."""
        self._wake = anyio.Event()

    @property
    def up(self) -> bool:
        """The peer was heard on this link (see :attr:`heard_first`)."""
        return self.heard_first.is_set()

    # -- received (aiortc callbacks: no waiting) -----------------------------------------------

    def on_data(self, data: bytes) -> None:
        """A message of the reliable lane arrived."""
        if self.dead:
            return
        self._heard(self.peer)
        try:
            records = self._decoder.feed(data)
        except RemoteProtocolError as exc:
            self.drop(f"malformed data ({exc})")
            return
        for kind, frame in records:
            if kind == GOODBYE:
                self.drop("said goodbye", graceful=True)
                return
            if not self._deliver(self.peer, frame):
                self.drop("overran our inbox")
                return

    def on_datagram(self, data: bytes) -> None:
        """A message of the datagram lane arrived."""
        if self.dead:
            return
        self._heard(self.peer)
        if not data or data[0] not in (DATA, HEARTBEAT) or len(data) > MAX_DATAGRAM + 1:
            self.drop("malformed datagram")
        elif data[0] == DATA and not self._deliver(self.peer, data[1:]):
            self.drop("overran our inbox")

    def on_down(self, reason: str) -> None:
        """The session closed underneath us."""
        self.drop(reason)

    def drop(self, reason: str, *, graceful: bool = False) -> None:
        """End the link (idempotent): its owner's scope is cancelled."""
        if self.dead:
            return
        self.dead = True
        self.graceful = graceful
        self.reason = reason
        self.scope.cancel()
        self._wake.set()

    # -- sending -------------------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        """Queue ``frame`` on the reliable lane and hand out what the channel takes now."""
        if self.dead:
            raise ChannelClosed(f"no link to {self.peer}")
        if len(frame) > self._max_frame:
            raise LocalProtocolError(f"frame of {len(frame)} bytes exceeds {self._max_frame}")
        self._queue.append(_Outgoing(frame))
        self.queued += len(frame)
        if self.queued > OUTBOX_LIMIT:
            self.drop(f"cannot keep up ({self.queued} bytes queued)")
            raise ChannelClosed(f"{self.peer} dropped: outbox overflow")
        self._pump()

    def send_datagram(self, frame: bytes) -> None:
        """Send ``frame`` on the datagram lane (or reliably, if it is too big for one)."""
        if len(frame) > MAX_DATAGRAM:
            self.send(frame)
            return
        if self.dead:
            raise ChannelClosed(f"no link to {self.peer}")
        self._try(self.session.send_datagram, bytes((DATA,)) + frame)

    def beat(self) -> None:
        """Send a heartbeat datagram (lost ones are simply lost)."""
        if not self.dead:
            self._try(self.session.send_datagram, _BEAT)

    def send_goodbye(self) -> None:
        """Queue a goodbye behind everything already queued."""
        if not self.dead:
            self._queue.append(_Outgoing(b"", goodbye=True))
            self._pump()

    def _try(self, send: Callable[[bytes], None], message: bytes) -> None:
        try:
            send(message)
        except ChannelClosed as exc:
            self.drop(str(exc))
            raise

    def _pump(self) -> None:
        """Hand queued records to the channel until it holds :data:`HIGH_WATER` bytes."""
        session = self.session
        queue = self._queue
        while queue and not self.dead and session.buffered_amount < HIGH_WATER:
            parts: list[bytes] = []
            size = 0
            while queue:
                out = queue[0]
                if out.goodbye:
                    parts.append(encode_record(GOODBYE))
                    queue.popleft()
                    break
                take = min(PIECE, len(out.frame) - out.sent)
                if parts and size + take > MESSAGE:
                    break
                piece = out.frame[out.sent : out.sent + take]
                out.sent += take
                last = out.sent >= len(out.frame)
                parts.append(encode_record(DATA if last else PART, piece))
                size += take + 5
                self.queued -= take
                if last:
                    queue.popleft()
            try:
                session.send(b"".join(parts))
            except ChannelClosed as exc:
                self.drop(str(exc))
                return
        if queue and not self.dead:
            self._wake.set()

    async def run_writer(self) -> None:
        """Hand out what :meth:`send` could not, as the channel drains (runs until cancelled)."""
        while not self.dead:
            await self._wake.wait()
            self._wake = anyio.Event()
            while self._queue and not self.dead:
                if self.session.buffered_amount >= HIGH_WATER:
                    with anyio.move_on_after(0.05):  # the drained signal may be stale or lost
                        await self.session.wait_drained()
                self._pump()

    @property
    def idle(self) -> bool:
        """Nothing queued here or inside the channel."""
        return not self._queue and self.session.buffered_amount == 0
