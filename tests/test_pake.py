"""The SPAKE2 of the signaling handshake (transport/pake.py): what each side may send and what it gets."""

from __future__ import annotations

import pytest
from nacl._sodium import lib

from movex_p2p.transport.pake import _S, MESSAGE_SIZE, PakeError, SymmetricSpake2

LABEL = b"test-label"


def pair(a: bytes = b"password", b: bytes = b"password", *, seed: int = 1) -> tuple[SymmetricSpake2, SymmetricSpake2]:
    return (
        SymmetricSpake2(a, label=LABEL, entropy=bytes([seed]) * 64),
        SymmetricSpake2(b, label=LABEL, entropy=bytes([seed + 1]) * 64),
    )


def test_the_same_password_gives_both_sides_the_same_key() -> None:
    one, two = pair()
    key = one.finish(two.message)
    assert key == two.finish(one.message)
    assert len(key) == 32
    assert len(one.message) == MESSAGE_SIZE


def test_another_password_or_label_gives_another_key() -> None:
    one, two = pair(b"password", b"passw0rd")
    assert one.finish(two.message) != two.finish(one.message)
    other = SymmetricSpake2(b"password", label=b"another", entropy=bytes([1]) * 64)
    three, _ = pair()
    assert three.finish(other.message) != other.finish(three.message)


def test_each_exchange_is_fresh_and_the_entropy_is_what_varies() -> None:
    assert SymmetricSpake2(b"p", label=LABEL).message != SymmetricSpake2(b"p", label=LABEL).message
    assert pair(seed=3)[0].message == pair(seed=3)[0].message
    keys = {pair(seed=s)[0].finish(pair(seed=s)[1].message) for s in range(1, 21, 2)}
    assert len(keys) == 10


def test_the_blinding_element_is_a_point_of_the_prime_order_group() -> None:
    assert lib.crypto_core_ed25519_is_valid_point(_S) == 1


IDENTITY = b"\x01" + bytes(31)
SMALL_ORDER = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")  # order 8


@pytest.mark.parametrize(
    "junk",
    [
        b"",
        b"S",
        b"S" + bytes(32),
        b"X" + pair()[1].message[1:],  # another side byte
        pair()[1].message + b"\x00",  # too long
        b"S" + IDENTITY,
        b"S" + SMALL_ORDER,
        b"S" + b"\xff" * 32,  # not on the curve
    ],
)
def test_an_unusable_message_is_refused(junk: bytes) -> None:
    one, _ = pair()
    with pytest.raises(PakeError):
        one.finish(junk)


def test_a_reflected_message_is_refused() -> None:
    one, _ = pair()
    with pytest.raises(PakeError, match="reflected"):
        one.finish(one.message)
