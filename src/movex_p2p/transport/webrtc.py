"""The aiortc adapter: one peer connection with one negotiated data channel (the only aiortc import).

aiortc callbacks only ``send_nowait`` into bounded memory streams; everything else runs in
tasks owned by the caller. aiortc errors are mapped to movex_p2p errors here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import anyio
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..errors import ChannelClosed, ConnectError, RemoteProtocolError

__all__ = [
    "CHANNEL_ID",
    "ChannelDown",
    "RtcSession",
    "candidate_types",
    "check_host_only",
]

log = logging.getLogger(__name__)

CHANNEL_ID: Final = 0
LOW_WATER: Final = 256 * 1024
"""``bufferedAmountLowThreshold``: a paused writer resumes once the channel drained below this."""


@dataclass(frozen=True, slots=True)
class ChannelDown:
    """The channel or the peer connection closed or failed (aiortc reports a lost peer as closed)."""

    reason: str


def candidate_types(sdp: str) -> list[tuple[str, str]]:
    """``(address, type)`` of every ``a=candidate`` line of an SDP (pure)."""
    found: list[tuple[str, str]] = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            kind = fields[fields.index("typ") + 1] if "typ" in fields else "?"
            found.append((fields[4] if len(fields) > 4 else "?", kind))
    return found


def check_host_only(sdp: str, *, allowed: Iterable[str] | None = None) -> None:
    """Raise RemoteProtocolError unless the SDP carries host candidates only (optionally on ``allowed``)."""
    candidates = candidate_types(sdp)
    if not candidates:
        raise RemoteProtocolError("SDP carries no ICE candidate")
    bad = [c for c in candidates if c[1] != "host"]
    if bad:
        raise RemoteProtocolError(f"SDP carries non-host candidates {bad}")
    if allowed is not None:
        allowed_set = set(allowed)
        if not any(address in allowed_set for address, _ in candidates):
            raise RemoteProtocolError(f"SDP carries no candidate on {sorted(allowed_set)}")


def _restrict_candidates(sdp: str, allowed: frozenset[str] | None) -> str:
    """Drop our candidates on addresses outside ``allowed`` (other interfaces stay private)."""
    if allowed is None:
        return sdp
    kept = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            if len(fields) > 4 and fields[4] not in allowed:
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"


class RtcSession:
    """One RTCPeerConnection with a negotiated, reliable, ordered data channel (id 0).

    ``inbox`` yields each received message (bytes) and finally one ChannelDown; the caller
    must ``await close()`` (in ``finally``, shielded) once done.
    """

    def __init__(self, *, inbox_size: int = 4096, addresses: Iterable[str] | None = None) -> None:
        self._allowed = None if addresses is None else frozenset(addresses)
        # iceServers=[] ALWAYS: aiortc's default configuration contacts a public STUN server.
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._channel: RTCDataChannel = self._pc.createDataChannel(
            "movex", negotiated=True, id=CHANNEL_ID, ordered=True
        )
        self._channel.bufferedAmountLowThreshold = LOW_WATER
        self._inbox_tx: MemoryObjectSendStream[bytes | ChannelDown]
        self._inbox_tx, self.inbox = anyio.create_memory_object_stream[bytes | ChannelDown](inbox_size)
        self._opened_tx: MemoryObjectSendStream[None]
        self._opened_rx: MemoryObjectReceiveStream[None]
        self._opened_tx, self._opened_rx = anyio.create_memory_object_stream[None](1)
        self._drained_tx: MemoryObjectSendStream[None]
        self._drained_rx: MemoryObjectReceiveStream[None]
        self._drained_tx, self._drained_rx = anyio.create_memory_object_stream[None](1)
        self._down = False
        self._closed = False
        self._channel.on("open", self._on_open)
        self._channel.on("message", self._on_message)
        self._channel.on("close", self._on_channel_close)
        self._channel.on("bufferedamountlow", self._on_drained)
        self._pc.on("connectionstatechange", self._on_state)

    # -- callbacks: only send_nowait into bounded streams --------------------------------------

    def _signal(self, stream: MemoryObjectSendStream[None]) -> None:
        try:
            stream.send_nowait(None)
        except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # a wake-up is already pending, or nobody waits any more

    def _on_open(self) -> None:
        self._signal(self._opened_tx)

    def _on_drained(self) -> None:
        self._signal(self._drained_tx)

    def _on_message(self, data: bytes | str) -> None:
        if self._down:
            return
        try:
            self._inbox_tx.send_nowait(data if isinstance(data, bytes) else data.encode())
        except anyio.WouldBlock:
            log.warning("data channel inbox overflowed; dropping the link")
            self._report_down("inbox overflow")
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    def _on_channel_close(self) -> None:
        self._report_down("channel closed")

    def _on_state(self) -> None:
        state = self._pc.connectionState
        log.debug("peer connection %s", state)
        if state in ("closed", "failed"):  # aiortc reports a lost peer as closed, not failed
            self._report_down(f"peer connection {state}")

    def _report_down(self, reason: str) -> None:
        if self._down:
            return
        self._down = True
        self._signal(self._opened_tx)  # wake a pending wait_open so it sees the failure
        self._signal(self._drained_tx)
        try:
            self._inbox_tx.send_nowait(ChannelDown(reason))
        except anyio.WouldBlock:
            pass  # the reader is behind; it will see the stream end instead
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        self._inbox_tx.close()

    # -- offer / answer -----------------------------------------------------------------------

    async def create_offer(self) -> str:
        """Gather (non-trickle) and return our offer SDP: host candidates only."""
        await self._pc.setLocalDescription(await self._pc.createOffer())
        return self._local_sdp()

    async def accept_offer(self, sdp: str) -> str:
        """Apply the remote offer; gather and return our answer SDP."""
        check_host_only(sdp)
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await self._pc.setLocalDescription(await self._pc.createAnswer())
        except (ValueError, TypeError, AttributeError, IndexError) as exc:
            raise RemoteProtocolError(f"unusable offer: {exc!r}") from exc
        return self._local_sdp()

    async def accept_answer(self, sdp: str) -> None:
        """Apply the remote answer."""
        check_host_only(sdp)
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except (ValueError, TypeError, AttributeError, IndexError) as exc:
            raise RemoteProtocolError(f"unusable answer: {exc!r}") from exc

    def _local_sdp(self) -> str:
        sdp = _restrict_candidates(self._pc.localDescription.sdp, self._allowed)
        check_host_only(sdp)
        return str(sdp)

    async def wait_open(self) -> None:
        """Wait until the data channel is open (the caller bounds it); ConnectError if it died."""
        while self._channel.readyState != "open":
            if self._down:
                raise ConnectError("peer connection closed before the channel opened")
            await self._opened_rx.receive()

    # -- data ---------------------------------------------------------------------------------

    @property
    def buffered_amount(self) -> int:
        """Bytes handed to the channel and not yet sent."""
        return int(self._channel.bufferedAmount)

    async def wait_drained(self) -> None:
        """Wait for the ``bufferedamountlow`` signal (it may be stale: re-check the amount)."""
        await self._drained_rx.receive()

    def send(self, data: bytes) -> None:
        """Hand one message to the channel; ChannelClosed if it is not open."""
        if self._down or self._channel.readyState != "open":
            raise ChannelClosed("data channel is not open")
        try:
            self._channel.send(data)
        except Exception as exc:  # aiortc raises InvalidStateError / ValueError
            raise ChannelClosed(f"data channel refused a message: {exc!r}") from exc

    async def close(self) -> None:
        """Close the peer connection (idempotent). Call it shielded: aiortc ignores cancel scopes."""
        if self._closed:
            return
        self._closed = True
        self._down = True
        try:
            await self._pc.close()
        except Exception:
            log.debug("peer connection close failed", exc_info=True)
        finally:
            for stream in (self._inbox_tx, self._opened_tx, self._drained_tx):
                stream.close()
            for receiver in (self.inbox, self._opened_rx, self._drained_rx):
                receiver.close()
