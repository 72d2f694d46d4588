"""In-process stand-ins for aiortc's lower layers that lose chosen datagrams (no socket).

``FakeDtls`` carries an SCTP association's packets, ``FakeIce`` a DTLS transport's datagrams;
tests and ``benchmarks/link_setup.py`` run aiortc's real SCTP and DTLS code over them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from anyio.abc import TaskGroup

__all__ = ["Drop", "FakeDtls", "FakeIce"]

Drop = Callable[[str, bytes], bool]
"""Given the sender's name and a datagram: True loses it."""


class FakeDtls:
    """Just enough of RTCDtlsTransport for an association: delivers each packet to the peer in a task."""

    def __init__(self, name: str, role: str, tg: TaskGroup, drop: Drop) -> None:
        self.name = name
        self._role = role
        self.state = "connected"
        self.peer: FakeDtls | None = None
        self.receiver: Any = None
        self.sent: list[bytes] = []
        self.waiting: list[bytes] = []
        self._tg = tg
        self._drop = drop

    def _register_data_receiver(self, receiver: Any) -> None:
        self.receiver = receiver
        waiting, self.waiting = self.waiting, []
        for data in waiting:  # what the peer sent before this end started
            self._tg.start_soon(receiver._handle_data, data)

    def _unregister_data_receiver(self, receiver: Any) -> None:
        self.receiver = None

    async def _send_data(self, data: bytes) -> None:
        self.sent.append(data)
        assert self.peer is not None
        if self._drop(self.name, data):
            return
        if self.peer.receiver is None:
            self.peer.waiting.append(data)
        else:
            self._tg.start_soon(self.peer.receiver._handle_data, data)


class FakeIce:
    """Just enough of RTCIceTransport for DTLS: a datagram pipe to the peer that loses chosen datagrams."""

    def __init__(self, name: str, role: str, drop: Drop) -> None:
        self.name = name
        self.role = role
        self.state = "completed"
        self.peer: FakeIce | None = None
        self.sent: list[bytes] = []
        self._drop = drop
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue()

    async def _send(self, data: bytes) -> None:
        self.sent.append(data)
        assert self.peer is not None
        if not self._drop(self.name, data):
            self.peer._inbox.put_nowait(data)

    async def _recv(self) -> bytes:
        return await self._inbox.get()
