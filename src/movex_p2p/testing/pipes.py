"""An in-memory pair of byte streams: the signaling handshake without a socket (tests and benchmarks)."""

from __future__ import annotations

import anyio
from anyio.abc import ByteStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["Pipe", "pipe_pair"]


class Pipe(ByteStream):
    """One end: what it sends, the other end receives, one chunk at a time."""

    def __init__(self, tx: MemoryObjectSendStream[bytes], rx: MemoryObjectReceiveStream[bytes]) -> None:
        self._tx, self._rx = tx, rx

    async def receive(self, max_bytes: int = 65536) -> bytes:
        try:
            return await self._rx.receive()
        except anyio.ClosedResourceError:
            raise anyio.EndOfStream from None

    async def send(self, item: bytes) -> None:
        await self._tx.send(item)

    async def send_eof(self) -> None:
        self._tx.close()

    async def aclose(self) -> None:
        self._tx.close()
        self._rx.close()


def pipe_pair() -> tuple[Pipe, Pipe]:
    """Two connected ends."""
    a_tx, b_rx = anyio.create_memory_object_stream[bytes](16)
    b_tx, a_rx = anyio.create_memory_object_stream[bytes](16)
    return Pipe(a_tx, a_rx), Pipe(b_tx, b_rx)
