"""Fair randomness: hash chains, draw seeds, unbiased mapping and private draws (pure).

Each player commits once to a *hash chain*: from a secret random ``seed`` it computes
``x_N = seed, x_(i-1) = H(x_i)`` and publishes the signed anchor ``x_0 = H^N(seed)``. A draw takes
from each player its next unused element ``x_i`` (``i`` one more than the last it gave): anyone
checks ``H(x_i) == x_(i-1)`` (or ``H^k`` from an older known element), nobody can produce ``x_i``
from ``x_(i-1)``, and the player could not choose it when the draw came (it was fixed by the
anchor, long before). The draw's seed is a hash of the action it is for (resource, author, seq,
the action's digest) and every contribution in peer order; values are read from it
without modulo bias (:class:`Stream`). See docs/security.md ("Fair randomness").

A *private draw* (:func:`private_seed`) combines an author's secret, committed before the
entry that orders it (:func:`private_commitment`), with that entry's public seed (the beacon):
the author knows the value as soon as the entry is published, nobody else until it opens its
secret, and neither it (the beacon came after its commitment) nor the master (it never sees the
secret) could choose it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any, Final

from ..proofs import statement
from .values import FAIR_KINDS, MasterValue

__all__ = [
    "CHAIN_LENGTH",
    "ELEMENT_SIZE",
    "MAX_CATCH_UP",
    "HashChain",
    "Stream",
    "anchor_statement",
    "chain_hash",
    "check_private",
    "contribution_statement",
    "draw_sealed",
    "draw_seed",
    "private_commitment",
    "private_secret",
    "private_seed",
    "resolve_fair",
    "resolve_private",
    "verify_element",
]

ELEMENT_SIZE: Final = 32
"""Bytes of a chain element (and of a seed)."""

CHAIN_LENGTH: Final = 8192
"""Draws one chain serves: a player contributes to at most this many draws per session."""

MAX_CATCH_UP: Final = CHAIN_LENGTH
"""The most hashes one element check may take (a peer that only knows an old element of a chain)."""


_CHAIN_HASH: Final = hashlib.blake2b(digest_size=ELEMENT_SIZE, person=b"movex-fair-chain")
"""The chain's keyed hash with nothing hashed yet: a copy of it is half the cost of a new one."""


def chain_hash(element: bytes) -> bytes:
    """One step down a chain: the element before ``element``."""
    step = _CHAIN_HASH.copy()
    step.update(element)
    return step.digest()


class HashChain:
    """A player's own chain: ``root`` is its anchor, ``element(i)`` its i-th contribution (1-based)."""

    __slots__ = ("_links", "length")

    def __init__(self, seed: bytes, length: int = CHAIN_LENGTH) -> None:
        """``seed``: at least 16 unpredictable bytes, never shown to anyone."""
        if len(seed) < 16:
            raise ValueError("a chain's seed needs at least 16 unpredictable bytes")
        if not 1 <= length <= MAX_CATCH_UP:
            raise ValueError(f"a chain has 1 to {MAX_CATCH_UP} elements")
        self.length = length
        links = [hashlib.blake2b(seed, digest_size=ELEMENT_SIZE).digest()]  # x_N
        for _ in range(length):
            links.append(chain_hash(links[-1]))
        links.reverse()  # links[i] = x_i
        self._links = links

    @property
    def root(self) -> bytes:
        """The anchor ``x_0``: published (signed) before any draw uses this chain."""
        return self._links[0]

    def element(self, at: int) -> bytes:
        """The element ``x_at`` (1 <= at <= length)."""
        if not 1 <= at <= self.length:
            raise IndexError(f"chain element {at} out of 1..{self.length}")
        return self._links[at]


def verify_element(known_at: int, known: bytes, at: int, element: bytes, *, length: int) -> bool:
    """Is ``element`` the chain's element ``at``, given its element ``known_at`` is ``known``? (at > known_at)."""
    if type(element) is not bytes or len(element) != ELEMENT_SIZE or not known_at < at <= length:
        return False
    if at - known_at > MAX_CATCH_UP:
        return False
    value = element
    for _ in range(at - known_at):
        value = chain_hash(value)
    return value == known


def anchor_statement(peer: str, root: bytes, length: int) -> tuple[str, str, bytes, int]:
    """What a player signs to anchor its chain."""
    return ("fair-anchor", peer, root, length)


def contribution_statement(
    term: int, draw: int, rid: str, author: str, seq: int, digest: bytes, at: int, element: bytes
) -> tuple[str, int, int, str, str, int, bytes, int, bytes]:
    """What a player signs when it gives element ``at`` to the draw at log index ``draw`` (binds it to that draw)."""
    return ("fair-element", term, draw, rid, author, seq, digest, at, element)


def draw_seed(rid: str, author: str, seq: int, digest: bytes, contributions: Iterable[tuple[str, int, bytes]]) -> bytes:
    """The seed of a draw: the action it is for and every ``(peer, at, element)`` contribution, in peer order.

    Not the draw's term or log index: drawn again by another master (its first master gone before
    the ``Drawn``), the same action with the same elements gets the same values, and no master can
    move them by where in the log it puts the draw.
    """
    parts: list[str | int | bytes] = [rid, author, seq, digest]
    for peer, at, element in sorted(contributions):
        parts += [peer, at, element]
    return hashlib.blake2b(statement("fair-draw", *parts), digest_size=ELEMENT_SIZE).digest()


class Stream:
    """Uniform integers read from a seed, without modulo bias (rejection sampling)."""

    __slots__ = ("_counter", "_seed")

    def __init__(self, seed: bytes, label: int = 0) -> None:
        self._seed = seed + label.to_bytes(8, "big")
        self._counter = 0

    def below(self, n: int) -> int:
        """An int in [0, n), each equally likely (n < 2**512)."""
        if not 0 < n < 1 << 512:
            raise ValueError("Stream.below needs 0 < n < 2**512")
        bits = (n - 1).bit_length()
        if bits == 0:
            return 0
        mask = (1 << bits) - 1
        while True:  # each try is accepted with probability > 1/2
            block = hashlib.blake2b(
                self._seed + self._counter.to_bytes(8, "big"), digest_size=64, person=b"movex-fair-draw"
            ).digest()
            self._counter += 1
            value = int.from_bytes(block, "big") & mask
            if value < n:
                return value

    def shuffled(self, items: list[Any]) -> list[Any]:
        """A copy of ``items`` in a uniformly random order (Fisher-Yates)."""
        out = list(items)
        for i in range(len(out) - 1, 0, -1):
            j = self.below(i + 1)
            out[i], out[j] = out[j], out[i]
        return out


def resolve_fair(value: Any, seed: bytes) -> Any:
    """``value`` with each ``mx.fair`` placeholder replaced by its value read from ``seed`` (the input is not changed).

    The n-th placeholder met reads stream n; dict values are visited in key order, so every peer
    numbers them alike. Master values (``mx.master``) are left as they are.
    """
    counter = [0]

    def walk(node: Any) -> Any:
        if type(node) is MasterValue and node.kind in FAIR_KINDS:
            stream = Stream(seed, counter[0])
            counter[0] += 1
            args = node.args
            if node.kind == "fair_int":
                return args[0] + stream.below(args[1] - args[0] + 1)
            if node.kind == "fair_choice":
                return args[stream.below(len(args))]
            return stream.shuffled(list(args))
        if type(node) is list or type(node) is tuple:
            return [walk(item) for item in node]
        if isinstance(node, dict):
            resolved = {key: walk(node[key]) for key in sorted(node)}
            return {key: resolved[key] for key in node}
        return node

    return walk(value)


def private_commitment(secret: bytes) -> bytes:
    """The commitment an author publishes (in its action's public half) to the secret of a private draw."""
    return hashlib.blake2b(secret, digest_size=ELEMENT_SIZE, person=b"movex-fair-priv").digest()


def private_secret(nonce: bytes) -> bytes:
    """The secret of a sealed half's private draws, from the half's nonce: committed by the half's
    sealed commitment (which binds the nonce), known to its author only until it opens the half."""
    return hashlib.blake2b(nonce, digest_size=ELEMENT_SIZE, person=b"movex-fair-key").digest()


def private_seed(secret: bytes, beacon: bytes, *, author: str, rid: str, seq: int) -> bytes:
    """The seed of a private draw: the author's committed ``secret`` and the public ``beacon`` (the seed of
    the fair draw of the entry that ordered the commitment). Read values from it with :class:`Stream`."""
    if len(secret) < 16 or len(beacon) != ELEMENT_SIZE:
        raise ValueError("a private draw needs a secret of 16+ bytes and a 32-byte beacon")
    data = statement("fair-private", author, rid, seq, secret, beacon)
    return hashlib.blake2b(data, digest_size=ELEMENT_SIZE).digest()


def resolve_private(payload: Any, secret: bytes, beacon: bytes, *, author: str, rid: str, seq: int) -> Any:
    """A private half's payload with its ``mx.fair`` placeholders drawn from the private seed (the author
    does this once the beacon is known; every peer again at the reveal, in :func:`check_private`)."""
    return resolve_fair(payload, private_seed(secret, beacon, author=author, rid=rid, seq=seq))


def check_private(
    committed: bytes,
    secret: bytes,
    beacon: bytes,
    origin: Any,
    resolved: Any,
    *,
    author: str,
    rid: str,
    seq: int,
) -> bool:
    """At the reveal: is ``secret`` the one ``committed`` to, and ``resolved`` exactly ``origin`` (the
    private payload as dispatched) drawn from it and ``beacon``? (Master values in it are not compared.)"""
    if private_commitment(secret) != committed:
        return False
    expected = resolve_private(origin, secret, beacon, author=author, rid=rid, seq=seq)
    return _same_draws(expected, resolved)


def _same_draws(expected: Any, resolved: Any) -> bool:
    """``resolved`` equals ``expected`` except where ``expected`` still holds a master value."""
    if type(expected) is MasterValue:
        return True
    if isinstance(expected, list | tuple):
        return (
            isinstance(resolved, list | tuple)
            and len(expected) == len(resolved)
            and all(_same_draws(a, b) for a, b in zip(expected, resolved, strict=True))
        )
    if isinstance(expected, dict):
        return (
            isinstance(resolved, dict)
            and expected.keys() == resolved.keys()
            and all(_same_draws(expected[k], resolved[k]) for k in expected)
        )
    return type(expected) is type(resolved) and bool(expected == resolved)


def draw_sealed(payload: Any, nonce: bytes, beacon: bytes, *, author: str, rid: str, seq: int) -> Any:
    """A sealed half's payload with its ``mx.fair`` values drawn: from the secret its ``nonce`` gives and
    ``beacon`` (the seed of the draw of the entry that ordered its commitment); None without a beacon."""
    if len(beacon) != ELEMENT_SIZE or len(nonce) < 16:
        return None
    return resolve_private(payload, private_secret(nonce), beacon, author=author, rid=rid, seq=seq)
