"""Join by address without sockets: the one-link-per-pair rule, address parsing, peer-exchange bounds."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import pytest

from movex_p2p.identity import Identity
from movex_p2p.ids import PeerId
from movex_p2p.transport.lan import LanEndpoint, LanTransport
from movex_p2p.transport.mesh import (
    HINT_LIMIT,
    AddressState,
    Attempts,
    PeerAddress,
    Verdict,
    admit,
    hint_addresses,
    parse_peer_address,
    with_address,
)
from movex_p2p.transport.signaling import MAX_ADDRESSES, Contact

LOW, HIGH = PeerId("a"), PeerId("b")


# --- the rule --------------------------------------------------------------------------------


def test_admit_rules() -> None:
    held_by_low, held_by_high = (LOW, 5), (HIGH, 5)
    # nothing held: accept, whoever dials
    assert admit(HIGH, LOW, dialer=LOW, incarnation=5, held=None) is Verdict.ACCEPT
    assert admit(LOW, HIGH, dialer=HIGH, incarnation=5, held=None) is Verdict.ACCEPT
    # listening: the preferred dial (by the lower id) replaces what we hold; any other is refused
    assert admit(HIGH, LOW, dialer=LOW, incarnation=5, held=held_by_high) is Verdict.REPLACE
    assert admit(HIGH, LOW, dialer=LOW, incarnation=5, held=held_by_low) is Verdict.REPLACE
    assert admit(LOW, HIGH, dialer=HIGH, incarnation=5, held=held_by_low) is Verdict.REFUSE
    assert admit(LOW, HIGH, dialer=HIGH, incarnation=5, held=held_by_high) is Verdict.REFUSE
    # dialing: stop if the pair is held, even on the preferred side
    assert admit(LOW, HIGH, dialer=LOW, incarnation=5, held=held_by_high) is Verdict.REFUSE
    assert admit(HIGH, LOW, dialer=HIGH, incarnation=5, held=held_by_low) is Verdict.REFUSE
    # a restarted peer (newer incarnation) replaces what we hold; an older one is refused
    assert admit(LOW, HIGH, dialer=HIGH, incarnation=6, held=held_by_low) is Verdict.REPLACE
    assert admit(LOW, HIGH, dialer=LOW, incarnation=6, held=held_by_high) is Verdict.REPLACE
    assert admit(HIGH, LOW, dialer=LOW, incarnation=4, held=held_by_high) is Verdict.REFUSE
    # never ourselves
    assert admit(LOW, LOW, dialer=LOW, incarnation=5, held=None) is Verdict.REFUSE


# Two crossing handshakes: "L" dialed by the lower id, "H" by the higher. Each is authenticated
# at its dialer first (the Challenge: steps "L@a", "H@b"), then at its listener (the Offer:
# "L@b", "H@a"); a step happens only if the handshake is still alive at that point.
STEPS = {"L@a": ("L", LOW, HIGH), "L@b": ("L", HIGH, LOW), "H@b": ("H", HIGH, LOW), "H@a": ("H", LOW, HIGH)}
DIALER = {"L": LOW, "H": HIGH}


def orders() -> list[tuple[str, ...]]:
    return [
        order
        for order in itertools.permutations(STEPS)
        if order.index("L@a") < order.index("L@b") and order.index("H@b") < order.index("H@a")
    ]


async def test_crossing_dials_end_with_exactly_one_link_in_every_order() -> None:
    outcomes = set()
    for order in orders():
        tables = {LOW: Attempts(LOW), HIGH: Attempts(HIGH)}
        claims: dict[str, list[anyio.CancelScope]] = {"L": [], "H": []}
        for step in order:
            handshake, end, other = STEPS[step]
            if any(scope.cancel_called for scope in claims[handshake]):
                continue  # cancelled at one end: the TCP connection closes, the other end sees it fail
            if step.endswith("@b" if handshake == "L" else "@a") and len(claims[handshake]) == 0:
                continue  # its dialer stopped at the Challenge: no Offer was ever sent
            scope = anyio.CancelScope()
            if tables[end].claim(other, dialer=DIALER[handshake], incarnation=1, scope=scope) is None:
                claims[handshake].append(anyio.CancelScope())
                claims[handshake][-1].cancel()  # refused: that handshake is over
            else:
                claims[handshake].append(scope)
        links = [h for h, scopes in claims.items() if len(scopes) == 2 and not any(s.cancel_called for s in scopes)]
        assert len(links) == 1, (order, claims)
        survivor = links[0]
        for end, table in tables.items():
            held = table.get(HIGH if end == LOW else LOW)
            assert held is not None
            assert held.dialer == DIALER[survivor], (order, end)
        outcomes.add(survivor)
    assert outcomes == {"L", "H"}  # either may win, depending on which is authenticated first at the lower id


async def test_attempts_release_only_their_own_claim() -> None:
    table = Attempts(LOW)
    first = table.claim(HIGH, dialer=HIGH, incarnation=1, scope=anyio.CancelScope())
    assert first is not None
    assert table.claim(HIGH, dialer=HIGH, incarnation=1, scope=anyio.CancelScope()) is None
    second = table.claim(HIGH, dialer=HIGH, incarnation=2, scope=anyio.CancelScope())  # it restarted
    assert second is not None
    assert first.scope.cancel_called
    table.release(first)  # the replaced one ends later: the new claim stays
    assert first.ended.is_set()
    assert table.get(HIGH) is second
    second.contact = Contact(peer=HIGH, addresses=("10.0.0.2",), port=1)
    assert table.contacts(exclude=PeerId("c")) == (second.contact,)
    assert table.contacts(exclude=HIGH) == ()
    table.release(second)
    assert HIGH not in table


# --- addresses -------------------------------------------------------------------------------


def test_peer_addresses_parse() -> None:
    assert parse_peer_address("192.168.1.20:47000") == PeerAddress("192.168.1.20", 47000)
    assert parse_peer_address(" gamebox.local:1 ") == PeerAddress("gamebox.local", 1)
    assert str(parse_peer_address("host:65535")) == "host:65535"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("192.168.1.20", "expected HOST:PORT"),
        (":47000", "expected HOST:PORT"),
        ("host:", "expected HOST:PORT"),
        ("host:0", "from 1 to 65535"),
        ("host:65536", "from 1 to 65535"),
        ("host:http", "from 1 to 65535"),
        ("[::1]:47000", "IPv6"),
        ("fe80::1:47000", "IPv6"),
        ("two words:47000", "not a host name"),
    ],
)
def test_bad_peer_addresses_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_peer_address(text)


def test_transport_settings_are_checked_when_made() -> None:
    transport = LanTransport(port=47000, peers=["10.0.0.5:47000", "10.0.0.5:47000", "box:1"])
    assert transport.peers == [PeerAddress("10.0.0.5", 47000), PeerAddress("box", 1)]
    assert LanTransport(interfaces="eth0", peers="box:1").interfaces == ["eth0"]
    with pytest.raises(ValueError, match="HOST:PORT"):
        LanTransport(peers=["10.0.0.5"])
    for port in (-1, 65536, True):
        with pytest.raises(ValueError, match="port"):
            LanTransport(port=port)


def test_hint_addresses_keep_unicast_ipv4_only() -> None:
    given = ["10.0.0.1", "224.0.0.251", "0.0.0.0", "255.255.255.255", "240.0.0.1", "127.0.0.1", "127.0.0.2", "x"]
    assert hint_addresses(given, allow_loopback=False) == ("10.0.0.1",)
    assert hint_addresses(given, allow_loopback=True) == ("10.0.0.1", "127.0.0.2")
    many = [f"10.0.0.{i}" for i in range(1, 30)]
    assert len(hint_addresses(many, allow_loopback=False)) == MAX_ADDRESSES


def test_the_address_a_peer_was_reached_at_is_tried_first() -> None:
    contact = Contact(peer=HIGH, addresses=("192.168.1.5",), port=47000)
    assert with_address(contact, "100.64.0.7").addresses == ("100.64.0.7", "192.168.1.5")
    assert with_address(contact, "192.168.1.5") is contact
    assert with_address(contact, None) is contact
    assert with_address(contact, "fe80::1") is contact


def test_address_states_describe_themselves() -> None:
    state = AddressState()
    assert state.describe(()) == "connecting"
    state.error = "unreachable: 10.0.0.5:47000: Connection refused"
    assert state.describe(()) == state.error
    state.peer, state.error = HIGH, None
    assert state.describe(()) == "connecting to b"
    assert state.describe((HIGH,)) == "linked to b"
    assert AddressState(ours=True).describe(()) == "this peer's own address"


# --- hostile peer exchange, into a real endpoint (never opened: no socket) --------------------


@contextmanager
def endpoint(interfaces: list[str]) -> Iterator[tuple[LanEndpoint, list[PeerId]]]:
    me = Identity(b"m" * 32)
    ep = LanTransport(["127.0.0.2"]).connect(peer_id=me.id, name="me", room="r", secret=None, identity=me)
    ep.interfaces = interfaces
    dialed: list[PeerId] = []

    def ensure_dialer(peer: PeerId, *, restart: bool = False) -> None:
        dialed.append(peer)

    ep._ensure_dialer = ensure_dialer  # type: ignore[method-assign]
    try:
        yield ep, dialed
    finally:
        ep._events_tx.close()
        ep._events_rx.close()


async def test_peer_exchange_is_bounded_and_validated() -> None:
    with endpoint(["192.168.1.5"]) as (ep, dialed):
        await exchange_flood(ep, dialed)


async def exchange_flood(ep: LanEndpoint, dialed: list[PeerId]) -> None:
    garbage = [
        Contact(peer=ep.id, addresses=("10.0.0.9",), port=1),  # ourselves
        Contact(peer=PeerId("lo"), addresses=("127.0.0.2",), port=1),  # loopback: we use none
        Contact(peer=PeerId("mc"), addresses=("224.0.0.251",), port=5353),
        Contact(peer=PeerId("none"), addresses=(), port=1),
    ]
    ep._learn(garbage, source=PeerId("x"))
    assert dialed == []
    assert len(ep._hints) == 0
    for batch in range(20):  # a member floods us with made-up members, handshake after handshake
        flood = [Contact(peer=PeerId(f"f{batch}-{i}"), addresses=("10.1.0.1",), port=1) for i in range(32)]
        ep._learn(flood, source=PeerId("x"))
    assert len(ep._hints) == HINT_LIMIT
    assert len(dialed) == HINT_LIMIT
    ep._learn([Contact(peer=PeerId("f0-0"), addresses=("10.2.0.2",), port=2)], source=PeerId("y"))
    assert ep._hints.get(PeerId("f0-0")) == Contact(peer=PeerId("f0-0"), addresses=("10.2.0.2",), port=2)


async def test_peer_exchange_skips_peers_we_hold() -> None:
    with endpoint(["127.0.0.2"]) as (ep, dialed):
        await exchange_held(ep, dialed)


async def exchange_held(ep: LanEndpoint, dialed: list[PeerId]) -> None:
    held = ep._attempts.claim(PeerId("p1"), dialer=PeerId("p1"), incarnation=1, scope=anyio.CancelScope())
    assert held is not None
    ep._learn(
        [
            Contact(peer=PeerId("p1"), addresses=("127.0.0.2",), port=1),
            Contact(peer=PeerId("p2"), addresses=("127.0.0.2",), port=2),  # loopback kept: we use it too
        ],
        source=PeerId("p1"),
    )
    assert dialed == ["p2"]
    status = ep.status()
    assert status.learnt == ("p2",)
    assert status.seen == ()
    assert status.linked == ()
