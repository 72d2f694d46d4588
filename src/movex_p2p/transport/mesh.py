"""Join by address and peer exchange: who dials whom, which link is kept, what is passed on.

Peers meet three ways: over mDNS, by a ``host:port`` given to ``LanTransport(peers=...)``, and
by peer exchange (each side of a handshake passes on the contacts of the peers it has
authenticated links with). Whoever knows an address may dial it, so both sides of a pair may
dial each other at once; the rules that keep exactly one link per pair, without flapping:

- A pair's *preferred* link is the one dialed by the lower peer id.
- The dialer, once the listener proved the room key (its Challenge), stops if it already holds
  a handshake or a link with that peer (unless the peer restarted: a newer incarnation).
- The listener, once the dialer proved the key (its Offer), accepts a preferred dial always,
  cancelling what it held with that peer; it refuses any other dial while it holds something
  with that peer (again unless the peer restarted).

Every peer decides in its own event loop, so these decisions are atomic per peer; whichever of
the two crossing handshakes is authenticated first at the lower peer wins at both ends.

Peer exchange: each side of a handshake passes on the contacts of what it holds at the moment
it claims the pair (the dialer on the Challenge, the listener on the Offer), and a claim records
the peer's contact at once (the dialer: where the listener proved the key). So of any two
handshakes a peer runs, the one claimed later passes on the other's peer: in a chain where p2
knows p1 and p3 knows p2, p3 learns p1 or p1 learns p3, whatever the timing.

Everything learnt by peer exchange is a hint to dial, bounded and validated, never proof of
anything: the handshake that follows authenticates the peer as usual.
"""

from __future__ import annotations

import enum
import ipaddress
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from ..errors import ConnectError
from ..ids import PeerId
from .contact import MAX_ADDRESSES, MAX_MEMBERS, Contact

__all__ = [
    "HINT_LIMIT",
    "AddressState",
    "Attempt",
    "Attempts",
    "Hints",
    "LanStatus",
    "Ourselves",
    "PeerAddress",
    "Verdict",
    "admit",
    "hint_addresses",
    "parse_peer_address",
    "with_address",
]

HINT_LIMIT: Final = 128
"""Most contacts learnt by peer exchange kept at once (the rest are ignored until room is made)."""


# --- static addresses ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerAddress:
    """A signaling address given by the user: ``host:port`` (host: an IPv4 address or a name)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_peer_address(text: str) -> PeerAddress:
    """``"192.168.1.20:47000"`` or ``"gamebox.local:47000"``; ValueError saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"peer address {text!r}: expected a 'HOST:PORT' string")
    value = text.strip()
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text:
        raise ValueError(f"peer address {text!r}: expected HOST:PORT, e.g. 192.168.1.20:47000")
    if ":" in host or host.startswith("["):
        raise ValueError(f"peer address {text!r}: IPv6 is not supported, use an IPv4 address or a host name")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"peer address {text!r}: the port must be a number from 1 to 65535")
    if any(c.isspace() for c in host) or len(host) > 253:
        raise ValueError(f"peer address {text!r}: {host!r} is not a host name or address")
    return PeerAddress(host, int(port_text))


# --- who holds the link with each peer ------------------------------------------------------


class Verdict(enum.Enum):
    """What to do with a newly authenticated handshake."""

    ACCEPT = enum.auto()
    REPLACE = enum.auto()
    """Accept, and cancel what we held with that peer."""
    REFUSE = enum.auto()


def admit(me: PeerId, peer: PeerId, *, dialer: PeerId, incarnation: int, held: tuple[PeerId, int] | None) -> Verdict:
    """The rule of the module docstring (pure). ``held``: (dialer, incarnation) of what we hold with ``peer``."""
    if peer == me:
        return Verdict.REFUSE
    if held is None:
        return Verdict.ACCEPT
    _, held_incarnation = held
    if incarnation < held_incarnation:
        return Verdict.REFUSE  # an older incarnation than the one we are linked with
    if incarnation > held_incarnation:
        return Verdict.REPLACE  # the peer restarted: what we hold is stale
    if dialer != me and dialer < me:
        return Verdict.REPLACE  # listening, and the dial is the preferred one
    return Verdict.REFUSE


@dataclass(eq=False, slots=True, kw_only=True)
class Attempt:
    """One authenticated handshake with ``peer`` and then its link, until both are over."""

    peer: PeerId
    dialer: PeerId
    incarnation: int
    contact: Contact | None = None
    """The peer's own contact, once its side of the exchange is authenticated."""
    opened: bool = False
    """The handshake completed and the link was started."""
    ended: bool = False
    """Released: its handshake failed or its link closed."""


class Attempts:
    """What this peer holds with each other peer: at most one attempt each."""

    def __init__(self, me: PeerId) -> None:
        self._me = me
        self._held: dict[PeerId, Attempt] = {}

    def get(self, peer: PeerId) -> Attempt | None:
        return self._held.get(peer)

    def __contains__(self, peer: object) -> bool:
        return peer in self._held

    def __iter__(self) -> Iterator[Attempt]:
        return iter(list(self._held.values()))

    def claim(self, peer: PeerId, *, dialer: PeerId, incarnation: int) -> tuple[Attempt, Attempt | None] | None:
        """Hold ``peer`` for a newly authenticated handshake, or None if the rules refuse it.

        Also returns what it displaced, if anything: its owner must cancel it (its handshake
        stops, or its link closes and is reported down as usual).
        """
        held = self._held.get(peer)
        verdict = admit(
            self._me,
            peer,
            dialer=dialer,
            incarnation=incarnation,
            held=None if held is None else (held.dialer, held.incarnation),
        )
        if verdict is Verdict.REFUSE:
            return None
        attempt = Attempt(peer=peer, dialer=dialer, incarnation=incarnation)
        self._held[peer] = attempt
        return attempt, held

    def release(self, attempt: Attempt) -> None:
        """``attempt`` is over (its link closed, or it never opened)."""
        if self._held.get(attempt.peer) is attempt:
            del self._held[attempt.peer]
        attempt.ended = True

    def contacts(self, *, exclude: PeerId) -> tuple[Contact, ...]:
        """What we pass on in a handshake with ``exclude``: the authenticated contacts we hold."""
        found = [a.contact for a in self._held.values() if a.contact is not None and a.peer != exclude]
        return tuple(found[:MAX_MEMBERS])


# --- peer exchange ---------------------------------------------------------------------------


def hint_addresses(addresses: Iterable[str], *, allow_loopback: bool) -> tuple[str, ...]:
    """The addresses of a contact we are willing to dial: unicast IPv4, loopback only if we use it."""
    kept: list[str] = []
    for text in addresses:
        try:
            address = ipaddress.IPv4Address(text)
        except ValueError:
            continue
        if address.is_multicast or address.is_unspecified or address.is_reserved or str(address) == "127.0.0.1":
            continue
        if address.is_loopback and not allow_loopback:
            continue
        if str(address) not in kept:
            kept.append(str(address))
    return tuple(kept[:MAX_ADDRESSES])


def with_address(contact: Contact, address: str | None) -> Contact:
    """``contact`` with ``address`` (where we reached it, or where it came from) tried first."""
    if address is None or address in contact.addresses:
        return contact
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        return contact
    return Contact(peer=contact.peer, addresses=(address, *contact.addresses)[:MAX_ADDRESSES], port=contact.port)


class Hints:
    """Contacts learnt by peer exchange, at most ``limit``: the newest hint for a peer wins."""

    def __init__(self, limit: int = HINT_LIMIT) -> None:
        self._limit = limit
        self._by_peer: OrderedDict[PeerId, Contact] = OrderedDict()

    def __contains__(self, peer: object) -> bool:
        return peer in self._by_peer

    def __len__(self) -> int:
        return len(self._by_peer)

    def get(self, peer: PeerId) -> Contact | None:
        return self._by_peer.get(peer)

    def peers(self) -> list[PeerId]:
        return list(self._by_peer)

    def learn(self, contact: Contact) -> bool:
        """Keep ``contact`` (already validated); False if the book is full and it is new."""
        if contact.peer not in self._by_peer and len(self._by_peer) >= self._limit:
            return False
        self._by_peer[contact.peer] = contact
        return True

    def forget(self, peer: PeerId) -> None:
        self._by_peer.pop(peer, None)


# --- what inspect shows ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LanStatus:
    """What a LAN endpoint knows of the room now (``movex-p2p inspect`` prints it)."""

    interfaces: tuple[str, ...]
    port: int
    mdns: bool
    """mDNS discovery is running (it may still see nothing if the network drops multicast)."""
    seen: tuple[PeerId, ...]
    """Peers of the room seen over mDNS."""
    learnt: tuple[PeerId, ...]
    """Peers learnt by peer exchange, not (yet) seen over mDNS."""
    linked: tuple[PeerId, ...]
    """Peers with an open link."""
    addresses: tuple[tuple[str, str], ...]
    """Each ``peers=`` address and what became of it: ``linked to ID``, ``connecting`` or the last error."""
    refused: tuple[tuple[str, int], ...]
    """Handshakes that failed or were refused, counted by reason."""
    mdns_refused: tuple[tuple[str, int], ...] = ()
    """mDNS responses dropped before they reached the cache (over a source's budget), counted by reason."""


@dataclass(slots=True)
class AddressState:
    """What became of one ``peers=`` address so far."""

    peer: PeerId | None = None
    """Who answered there last."""
    error: str | None = None
    """Why the last dial failed (None once it succeeded)."""
    ours: bool = False
    """It is this peer's own address."""
    twin: bool = False
    """Another live process of this peer's identity listens there (it proved our key)."""

    def describe(self, linked: Iterable[PeerId]) -> str:
        if self.ours:
            return "this peer's own address"
        if self.peer is not None and self.peer in set(linked):
            return f"linked to {self.peer}"
        if self.error is not None:
            return self.error
        return "connecting" if self.peer is None else f"connecting to {self.peer}"


class Ourselves(ConnectError):
    """The address dialed is this peer's own."""
