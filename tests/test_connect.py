"""The dialer's TCP connect over several addresses, on loopback only (no packet leaves the machine)."""

from __future__ import annotations

import socket
import sys
from collections import Counter
from typing import Any

import anyio
import pytest
from anyio.abc import SocketStream

from movex_p2p.errors import ConnectError
from movex_p2p.transport.handshake import SIGNALING_RTO_MIN, connect_tcp, lan_retransmits

TCP_RTO_MIN_US = 45  # <linux/tcp.h>, Linux 6.15+

REFUSING = "127.0.0.3"  # on loopback, nothing listens there: the kernel refuses at once


@pytest.fixture
def tries(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count the connects each address gets."""
    counted: Counter[str] = Counter()
    real = anyio.connect_tcp

    async def counting(host: str, port: int, **kwargs: Any) -> SocketStream:
        counted[host] += 1
        stream: SocketStream = await real(host, port, **kwargs)
        return stream

    monkeypatch.setattr(anyio, "connect_tcp", counting)  # what handshake.connect_tcp calls
    return counted


async def test_an_address_the_kernel_refused_is_not_tried_again_and_the_next_one_answers(tries: Counter[str]) -> None:
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with await connect_tcp([REFUSING, "127.0.0.1"], port) as stream:
            assert stream.extra(anyio.abc.SocketAttribute.remote_address)[0] == "127.0.0.1"
    assert tries == {REFUSING: 1, "127.0.0.1": 1}


async def test_when_every_address_refuses_the_error_names_each_once(tries: Counter[str]) -> None:
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        with pytest.raises(ConnectError) as raised:
            await connect_tcp([REFUSING, "127.0.0.4", REFUSING], port)
    assert tries == {REFUSING: 1, "127.0.0.4": 1}
    assert str(raised.value).count(REFUSING) == 1
    assert "127.0.0.4" in str(raised.value)


def kernel_rto_min() -> int | None:
    """This kernel's per-socket minimum RTO of a new socket (µs), or None if it has no such option."""
    if not sys.platform.startswith("linux"):
        return None
    with socket.socket() as probe:
        try:
            return probe.getsockopt(socket.IPPROTO_TCP, TCP_RTO_MIN_US)
        except OSError:
            return None


async def test_signaling_connections_resend_a_lost_segment_after_20_ms_not_200() -> None:
    default = kernel_rto_min()
    if default is None:
        pytest.skip("this kernel has no per-socket minimum RTO (Linux 6.15 and newer have TCP_RTO_MIN_US)")
    assert default == 200_000  # what a lost segment of the handshake would otherwise wait
    accepted: list[int] = []
    served = anyio.Event()

    async def serve(stream: SocketStream) -> None:
        assert lan_retransmits(stream)  # what Handshakes.handle_incoming does first
        raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
        accepted.append(raw.getsockopt(socket.IPPROTO_TCP, TCP_RTO_MIN_US))
        await stream.aclose()
        served.set()

    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with await connect_tcp(["127.0.0.1"], port) as stream:
            raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
            assert raw.getsockopt(socket.IPPROTO_TCP, TCP_RTO_MIN_US) == round(SIGNALING_RTO_MIN * 1e6) == 20_000
            with anyio.fail_after(5):
                await served.wait()
        tg.cancel_scope.cancel()
    assert accepted == [20_000]
