"""Outbox: what one node sends during a step, by peer and lane, framed at the end of the step (pure)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final

from . import wire
from .ids import PeerId
from .resource import messages as rm
from .routes import Lane
from .transport.base import MAX_DATAGRAM

__all__ = ["FRAME_TARGET", "Outbox"]

FRAME_TARGET: Final = 1024 * 1024
"""A peer's messages of one step are joined into frames of about this many bytes at most (one
message larger than that is a frame of its own): big states never make one huge frame."""

_LANES: Final = wire.LANES


class Outbox:
    """Messages queued per peer on the lane their type declares, and those this peer sent itself."""

    def __init__(self, me: PeerId, *, encoded: Callable[[wire.Message], bytes | None] | None = None) -> None:
        """``encoded(message)``: bytes already encoded for ``message`` (a shared snapshot), or None."""
        self.me = me
        self._encoded = encoded
        self.local: deque[rm.ResourceMessage] = deque()
        """Messages to this very peer, delivered within the step."""
        self.reliable: dict[PeerId, list[wire.Message]] = {}
        self.datagrams: dict[PeerId, list[wire.Message]] = {}

    def send(self, to: PeerId, message: wire.Message) -> None:
        """Queue ``message`` for ``to`` on its lane (for this peer: delivered locally)."""
        if to == self.me:
            self.local.append(message)  # type: ignore[arg-type]  # the election never sends to itself
        elif _LANES[type(message)] is Lane.DATAGRAM:
            self.datagrams.setdefault(to, []).append(message)
        else:
            self.reliable.setdefault(to, []).append(message)

    def reliably(self, to: PeerId, message: wire.Message) -> None:
        """Queue ``message`` for another peer on the reliable lane."""
        self.reliable.setdefault(to, []).append(message)

    def publish(self, message: rm.ToClients, peers: frozenset[PeerId]) -> None:
        """To every peer in ``peers`` (reliably), and to this one."""
        for peer in peers:
            self.reliable.setdefault(peer, []).append(message)
        self.local.append(message)

    @property
    def queued(self) -> bool:
        """True when frames wait to be handed over."""
        return bool(self.reliable or self.datagrams)

    def flush(self) -> tuple[dict[PeerId, bytes], list[tuple[PeerId, bytes]], dict[PeerId, bytes]]:
        """Frame and empty the queues: (first reliable frame per peer, further frames, datagrams)."""
        more: list[tuple[PeerId, bytes]] = []
        datagrams: dict[PeerId, bytes] = {}
        frames: dict[PeerId, bytes] = {}
        if self.datagrams:
            datagrams.update(_encode(self.datagrams, more, self._encoded))
            for peer, frame in list(datagrams.items()):
                if len(frame) > MAX_DATAGRAM:  # too big for the datagram lane: it goes reliably
                    del datagrams[peer]
                    self.reliable.setdefault(peer, []).extend(self.datagrams[peer])
            self.datagrams = {}
        if self.reliable:
            frames.update(_encode(self.reliable, more, self._encoded))
            self.reliable = {}
        return frames, more, datagrams


def _encode(
    outbox: dict[PeerId, list[wire.Message]],
    more: list[tuple[PeerId, bytes]],
    shared: Callable[[wire.Message], bytes | None] | None = None,
) -> dict[PeerId, bytes]:
    """The first frame per peer (the rest go to ``more``); a message sent to several peers is encoded once
    (once at all, if ``shared`` has its bytes)."""
    encoded: dict[int, bytes] = {}
    frames: dict[PeerId, bytes] = {}
    for peer, messages in outbox.items():
        parts: list[bytes] = []
        size = 0
        for message in messages:
            frame = encoded.get(id(message))
            if frame is None:
                frame = None if shared is None else shared(message)
                if frame is None:
                    frame = wire.encode(message)
                encoded[id(message)] = frame
            if parts and size + len(frame) > FRAME_TARGET:
                _emit(frames, more, peer, parts)
                parts, size = [], 0
            parts.append(frame)
            size += len(frame)
        _emit(frames, more, peer, parts)
    return frames


def _emit(frames: dict[PeerId, bytes], more: list[tuple[PeerId, bytes]], peer: PeerId, parts: list[bytes]) -> None:
    frame = parts[0] if len(parts) == 1 else wire.join(parts)
    if peer in frames:
        more.append((peer, frame))
    else:
        frames[peer] = frame
