"""The dialer's TCP connect over several addresses, on loopback only (no packet leaves the machine)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import anyio
import pytest
from anyio.abc import SocketStream

from movex_p2p.errors import ConnectError
from movex_p2p.transport.handshake import connect_tcp

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
