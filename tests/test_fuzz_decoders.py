"""Fuzzing every decoder a stranger or a member can reach: each raises only its one error, or decodes.

Signaling (JSON over TCP, reachable without the secret), the wire codec (CBOR frames from a
member), the link's record framing and mDNS TXT records. Bounded: a few hundred examples each.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import anyio
import cbor2
from anyio.streams.buffered import BufferedByteReceiveStream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from movex_p2p import wire
from movex_p2p.errors import RemoteProtocolError
from movex_p2p.lobby import encode_info, parse_lobby
from movex_p2p.transport import signaling
from movex_p2p.transport.discovery import parse_txt
from movex_p2p.transport.link import FrameDecoder

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)
KEYS = [
    "t",
    "v",
    "from",
    "to",
    "name",
    "inc",
    "nonce",
    "key",
    "pake",
    "id",
    "proof",
    "sig",
    "sdp",
    "me",
    "peers",
    "mac",
    "why",
    "retry",
]
TYPES = ["hello", "challenge", "offer", "answer", "busy", "confirm", "refused", "x"]


def decodes_or_refuses(payload: bytes) -> None:
    try:
        signaling.decode(payload)
    except RemoteProtocolError:
        pass


@FUZZ
@given(st.binary(max_size=2048))
def test_signaling_bytes(payload: bytes) -> None:
    decodes_or_refuses(payload)


@FUZZ
@given(st.sampled_from(TYPES), st.dictionaries(st.sampled_from(KEYS), json_values, max_size=12))
def test_signaling_objects(kind: str, body: dict[str, Any]) -> None:
    decodes_or_refuses(json.dumps({**body, "t": kind}).encode())


@FUZZ
@given(st.integers(0, 2**32 - 1), st.binary(max_size=256))
def test_signaling_framing(size: int, rest: bytes) -> None:
    """A length prefix and whatever follows, then the stream ends: refused, never hung nor crashed."""

    async def read() -> None:
        send, receive = anyio.create_memory_object_stream[bytes](4)
        async with send, receive:
            await send.send(struct.pack(">I", size) + rest)
            send.close()
            reader = BufferedByteReceiveStream(receive)
            try:
                await signaling.read_message(reader)
            except RemoteProtocolError:
                pass

    anyio.run(read)


cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=30,
)


def wire_refuses(data: bytes) -> None:
    try:
        wire.decode(data)
    except RemoteProtocolError:
        pass


@FUZZ
@given(st.binary(max_size=2048))
def test_wire_bytes(data: bytes) -> None:
    wire_refuses(data)


@FUZZ
@given(st.sampled_from(sorted(wire._BY_TAG)), st.lists(cbor_values, max_size=14))
def test_wire_messages(tag: int, fields: list[Any]) -> None:
    wire_refuses(cbor2.dumps([tag, *fields]))
    wire_refuses(cbor2.dumps([0, [[tag, *fields], [tag, *fields]]]))


@FUZZ
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_link_records(chunks: list[bytes]) -> None:
    decoder = FrameDecoder(max_frame=4096)
    try:
        for chunk in chunks:
            decoder.feed(chunk)
    except RemoteProtocolError:
        pass
    assert decoder.buffered <= 4096 + 16 * 1024 + 64


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from([b"id", b"room", b"v", b"inc", b"sig", b"name", b"x"]),
        st.none() | st.binary(max_size=40),
        max_size=7,
    ),
    st.lists(st.text(max_size=20), max_size=10),
)
def test_txt_records(properties: dict[bytes, bytes | None], addresses: list[str]) -> None:
    try:
        parse_txt(properties, addresses, 1)
    except ValueError:
        pass


LOBBY_KEYS = [b"game", b"tv", b"max", b"sec", b"st", b"i0", b"i1", b"i2", b"i3"]
lobby_values = (
    st.none()
    | st.binary(max_size=220)
    | st.sampled_from([b"1", b"0", b"6", b"99999", b"0123456789ab", b'{"a":', b"1}", b"[" * 200, b"{}"])
    | json_values.map(lambda v: json.dumps(v).encode())
)


@FUZZ
@given(st.dictionaries(st.sampled_from(LOBBY_KEYS), lobby_values, max_size=9))
def test_lobby_hints(properties: dict[bytes, bytes | None]) -> None:
    """Hostile lobby hints never raise and never come out malformed (a record stays listed without them)."""
    lobby = parse_lobby(properties)
    assert lobby.info == "" or encode_info(json.loads(lobby.info)) == lobby.info
    assert lobby.max_players == 0 or 1 <= lobby.max_players <= 10_000
    full = {b"room": b"r", b"id": b"p", b"v": b"3", b"inc": b"1", b"sig": b"5000", **properties}
    assert parse_txt(full, [], 5000).lobby == lobby
