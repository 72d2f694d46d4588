"""Join by address without sockets: the one-link-per-pair rule, address parsing, peer-exchange bounds."""

from __future__ import annotations

import itertools
import random

import pytest

from movex_p2p.identity import Identity
from movex_p2p.ids import PeerId
from movex_p2p.transport.lan import LanTransport
from movex_p2p.transport.mesh import (
    HINT_LIMIT,
    AddressState,
    Attempt,
    Attempts,
    PeerAddress,
    Verdict,
    admit,
    hint_addresses,
    parse_peer_address,
    with_address,
)
from movex_p2p.transport.meshcore import Effect, MeshCore, StartDialer
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


def test_crossing_dials_end_with_exactly_one_link_in_every_order() -> None:
    outcomes = set()
    for order in orders():
        tables = {LOW: Attempts(LOW), HIGH: Attempts(HIGH)}
        claims: dict[str, list[Attempt | None]] = {"L": [], "H": []}
        cancelled: set[int] = set()  # id() of each claim cancelled (displaced at its end)
        for step in order:
            handshake, end, other = STEPS[step]
            if any(claim is None or id(claim) in cancelled for claim in claims[handshake]):
                continue  # refused or cancelled at one end: the TCP connection closes, the other end sees it fail
            if step.endswith("@b" if handshake == "L" else "@a") and len(claims[handshake]) == 0:
                continue  # its dialer stopped at the Challenge: no Offer was ever sent
            claimed = tables[end].claim(other, dialer=DIALER[handshake], incarnation=1)
            if claimed is None:
                claims[handshake].append(None)  # refused: that handshake is over
                continue
            attempt, displaced = claimed
            if displaced is not None:
                cancelled.add(id(displaced))
            claims[handshake].append(attempt)
        links = [
            h for h, held in claims.items() if len(held) == 2 and not any(a is None or id(a) in cancelled for a in held)
        ]
        assert len(links) == 1, (order, claims)
        survivor = links[0]
        for end, table in tables.items():
            kept = table.get(HIGH if end == LOW else LOW)
            assert kept is not None
            assert kept.dialer == DIALER[survivor], (order, end)
        outcomes.add(survivor)
    assert outcomes == {"L", "H"}  # either may win, depending on which is authenticated first at the lower id


def test_attempts_release_only_their_own_claim() -> None:
    table = Attempts(LOW)
    claimed = table.claim(HIGH, dialer=HIGH, incarnation=1)
    assert claimed is not None
    first, displaced = claimed
    assert displaced is None
    assert table.claim(HIGH, dialer=HIGH, incarnation=1) is None
    claimed = table.claim(HIGH, dialer=HIGH, incarnation=2)  # it restarted
    assert claimed is not None
    second, displaced = claimed
    assert displaced is first  # its owner cancels it
    table.release(first)  # the replaced one ends later: the new claim stays
    assert first.ended
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


# --- hostile peer exchange, into the mesh core (no socket) --------------------------------------


def core(interfaces: list[str]) -> MeshCore:
    mesh = MeshCore(PeerId("me"), connect_timeout=5.0, dead_after=0.9, heartbeat_interval=0.1, rng=random.Random(1))
    mesh.open(0.0, interfaces=interfaces, port=9)
    return mesh


def dialed(effects: list[Effect]) -> list[PeerId]:
    return [e.dial.peer for e in effects if isinstance(e, StartDialer)]


def test_peer_exchange_is_bounded_and_validated() -> None:
    mesh = core(["192.168.1.5"])
    garbage = [
        Contact(peer=mesh.me, addresses=("10.0.0.9",), port=1),  # ourselves
        Contact(peer=PeerId("lo"), addresses=("127.0.0.2",), port=1),  # loopback: we use none
        Contact(peer=PeerId("mc"), addresses=("224.0.0.251",), port=5353),
        Contact(peer=PeerId("none"), addresses=(), port=1),
    ]
    assert dialed(mesh.learnt(garbage, source=PeerId("x"), now=1.0)) == []
    assert len(mesh.hints) == 0
    started: list[PeerId] = []
    for batch in range(20):  # a member floods us with made-up members, handshake after handshake
        flood = [Contact(peer=PeerId(f"f{batch}-{i}"), addresses=("10.1.0.1",), port=1) for i in range(32)]
        started += dialed(mesh.learnt(flood, source=PeerId("x"), now=1.0))
    assert len(mesh.hints) == HINT_LIMIT
    assert len(started) == HINT_LIMIT
    mesh.learnt([Contact(peer=PeerId("f0-0"), addresses=("10.2.0.2",), port=2)], source=PeerId("y"), now=1.0)
    assert mesh.hints.get(PeerId("f0-0")) == Contact(peer=PeerId("f0-0"), addresses=("10.2.0.2",), port=2)


def test_peer_exchange_skips_peers_we_hold() -> None:
    mesh = core(["127.0.0.2"])
    assert mesh.claim(PeerId("p1"), dialer=PeerId("p1"), incarnation=1) is not None
    members = [
        Contact(peer=PeerId("p1"), addresses=("127.0.0.2",), port=1),
        Contact(peer=PeerId("p2"), addresses=("127.0.0.2",), port=2),  # loopback kept: we use it too
    ]
    assert dialed(mesh.learnt(members, source=PeerId("p1"), now=1.0)) == ["p2"]
    assert mesh.known == ()
    assert mesh.hints.peers() == ["p2"]


def test_an_endpoint_reports_what_its_core_learnt() -> None:
    me = Identity(b"m" * 32)
    endpoint = LanTransport(["127.0.0.2"]).connect(peer_id=me.id, name="me", room="r", secret=None, identity=me)
    mesh = endpoint._core
    mesh.open(0.0, interfaces=["127.0.0.2"], port=9)
    mesh.learnt([Contact(peer=PeerId("p2"), addresses=("127.0.0.2",), port=2)], source=PeerId("p1"), now=1.0)
    mesh.refused["wrong secret"] += 1
    status = endpoint.status()
    assert status.learnt == ("p2",)
    assert status.seen == ()
    assert status.linked == ()
    assert status.refused == (("wrong secret", 1),)
    assert endpoint.refused is mesh.refused
    assert endpoint.auth_failures is mesh.auth_failures
    endpoint._links.close()
