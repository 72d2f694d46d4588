"""One identity in two processes on the LAN (issue 19, I2): the mesh's decision on a hand clock, and the
real handshake code over in-memory streams, with honest twins and with forgers.

Only a handshake in which the other side signs with our key over our fresh nonce, naming another
incarnation, proves a twin: an mDNS record of our id, an impostor signing with its own key under
our id, or a twin's Challenge replayed into another handshake report nothing.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from movex_p2p.errors import AuthenticationFailed
from movex_p2p.ids import PeerId
from movex_p2p.testing.pipes import Pipe, pipe_pair
from movex_p2p.transport import handshake
from movex_p2p.transport.handshake import Handshakes, Twin
from movex_p2p.transport.linkset import LinkSet
from movex_p2p.transport.mesh import Ourselves, PeerAddress
from movex_p2p.transport.meshcore import (
    DialNow,
    DropAll,
    Effect,
    MeshCore,
    Probe,
    ReportTwin,
    StartDialer,
    Stop,
    StopDialer,
)
from movex_p2p.transport.meshworld import Linked
from movex_p2p.transport.signaling import Challenge, Hello, SignalMessage, decode, encode, read_message
from movex_p2p.transport.twins import CHECKED_LIMIT, MAX_TWINS, PENDING
from tests.test_lan_units import ALICE, EVE, KEY, _Impostor
from tests.test_meshcore import WRONG_SECRET, Driver, record

ME = "a"  # the lower id: it dials b at once
OURS = 100


def twin_driver() -> Driver:
    """A core that holds a link with ``b`` (incarnation ``OURS``)."""
    driver = Driver(me=ME, incarnation=OURS, network=lambda peer, contact, now: Linked(1000.0))
    driver.announce(record("b"))
    driver.run(0.01)
    assert driver.core.attempts.get(PeerId("b")) is not None
    return driver


def probes(effects: list[Effect]) -> list[int]:
    return [e.record.incarnation for e in effects if isinstance(e, Probe)]


def reports(effects: list[Effect]) -> list[ReportTwin]:
    return [e for e in effects if isinstance(e, ReportTwin)]


# --- the decision (MeshCore and Twins, hand clock) --------------------------------------------------


def test_a_record_of_our_own_id_is_probed_once_and_never_joins_the_peers_we_dial() -> None:
    driver = twin_driver()
    assert driver.announce(record(ME, incarnation=OURS)) == []  # our own record
    effects = driver.announce(record(ME, incarnation=OURS + 1, port=7100))
    assert probes(effects) == [OURS + 1]
    assert all(p.peer == ME for p in effects if isinstance(p, Probe))
    assert not [e for e in effects if isinstance(e, StartDialer)]
    assert PeerId(ME) not in driver.core.known  # never a peer of the room, never "seen"
    assert probes(driver.announce(record(ME, incarnation=OURS + 2, port=7200))) == []  # one probe at a time
    assert probes(driver.core.probe_ended(PeerId(ME))) == [OURS + 2]  # the next one, once it is over
    assert probes(driver.core.probe_ended(PeerId(ME))) == []
    assert probes(driver.announce(record(ME, incarnation=OURS + 1, port=7100))) == []  # probed once: it proves nothing


def test_a_forged_record_of_our_id_that_fails_its_handshake_reports_nothing_and_touches_no_link() -> None:
    driver = twin_driver()
    held = driver.core.attempts.get(PeerId("b"))
    (probe,) = [e for e in driver.announce(record(ME, incarnation=OURS + 5, port=7100)) if isinstance(e, Probe)]
    driver.core.probe_failed(PeerId(ME), probe.record, WRONG_SECRET)  # it could not sign with our key
    effects = driver.core.probe_ended(PeerId(ME))
    assert effects == []
    assert not reports(driver.effects)
    assert not [e for e in driver.effects if isinstance(e, DropAll | StopDialer)]
    assert not driver.core.twins.superseded
    assert driver.core.attempts.get(PeerId("b")) is held
    assert driver.core.claim(PeerId("c"), dialer=PeerId("c"), incarnation=1) is not None  # still admits peers


def test_a_flood_of_records_of_our_id_is_probed_one_at_a_time_and_remembered_within_bounds() -> None:
    driver = twin_driver()
    started = probes(driver.announce(record(ME, incarnation=OURS + 1, port=1)))
    for i in range(2, 3000):
        started += probes(driver.announce(record(ME, incarnation=OURS + i, port=i)))
    assert started == [OURS + 1]  # one probe runs: the rest wait, the newest few only
    assert len(driver.core.twins._pending) == PENDING
    for _ in range(PENDING + 2):
        started += probes(driver.core.probe_ended(PeerId(ME)))
    assert started == [OURS + 1, *(OURS + i for i in range(2999, 2999 - PENDING, -1))]
    for i in range(3000, 3000 + 2 * CHECKED_LIMIT):
        driver.announce(record(ME, incarnation=OURS + i, port=i))
        driver.core.probe_ended(PeerId(ME))
    assert len(driver.core.twins._checked) == CHECKED_LIMIT


def test_a_later_twin_proven_in_a_handshake_supersedes_us_we_drop_everything_and_dial_nobody() -> None:
    driver = twin_driver()
    driver.announce(record("c", port=7300))  # a dial loop runs for c
    assert PeerId("c") in driver.loops
    effects = driver.core.twin(OURS + 1)
    (report,) = reports(effects)
    assert report.superseded
    assert f"incarnation {OURS + 1}" in report.detail
    assert any(isinstance(e, DropAll) for e in effects)
    assert {e.peer for e in effects if isinstance(e, StopDialer)} == {PeerId("b"), PeerId("c")}
    core = driver.core
    assert core.twins.superseded
    assert core.twin(OURS + 1) == []  # told once
    assert core.twin(OURS + 2) == []  # and nothing more once superseded
    assert core.claim(PeerId("d"), dialer=PeerId("d"), incarnation=1) is None  # holds nothing new
    assert core.announced(record("e", port=7400), driver.now) == []  # dials nobody
    assert core.announced(record(ME, incarnation=OURS + 3, port=7500), driver.now) == []
    assert isinstance(core.address.next(PeerAddress("10.0.0.9", 7000), driver.now), Stop)
    assert driver.loops
    for loop in driver.loops.values():  # a loop that asks again before its StopDialer lands
        assert core.dialing.step(loop.dial, None, driver.now) == (Stop(), [])


def test_an_earlier_twin_is_reported_once_and_we_keep_the_links() -> None:
    driver = twin_driver()
    held = driver.core.attempts.get(PeerId("b"))
    effects = driver.core.twin(OURS - 1)
    (report,) = reports(effects)
    assert not report.superseded
    assert not [e for e in effects if isinstance(e, DropAll | StopDialer)]
    assert driver.core.twin(OURS - 1) == []
    assert driver.core.attempts.get(PeerId("b")) is held
    assert not driver.core.twins.superseded
    (later,) = reports(driver.core.twin(OURS + 1))  # then a later one: it supersedes us
    assert later.superseded


def test_twins_are_reported_at_most_max_twins_times_and_our_own_incarnation_is_no_twin() -> None:
    driver = twin_driver()
    told = [r for i in range(1, 50) for r in reports(driver.core.twin(OURS - i))]
    assert len(told) == MAX_TWINS
    with pytest.raises(ValueError):
        driver.core.twin(OURS)


def test_a_peers_address_where_a_twin_answers_stops_its_loop() -> None:
    driver = Driver(me=ME, incarnation=OURS)
    address = PeerAddress("10.0.0.9", 7000)
    assert isinstance(driver.core.address.next(address, 0.0), DialNow)
    driver.core.address.twin(address)
    assert isinstance(driver.core.address.next(address, 1.0), Stop)
    assert driver.core.addresses[address].describe(()) == "another process of this peer's identity"


# --- the real handshake code, over in-memory streams --------------------------------------------------


@dataclass
class Side:
    """One LAN endpoint's handshakes (no mDNS, no WebRTC): what its core decided is kept in ``effects``."""

    identity: object
    incarnation: int
    effects: list[Effect] = field(default_factory=list)

    def __post_init__(self) -> None:
        me = PeerId(str(getattr(self.identity, "id")))  # noqa: B009 - an impostor is no Identity
        self.core = MeshCore(
            me,
            connect_timeout=5.0,
            dead_after=0.9,
            heartbeat_interval=0.1,
            rng=random.Random(self.incarnation),
            incarnation=self.incarnation,
        )
        self.core.open(anyio.current_time(), interfaces=["10.0.0.1"], port=7000)
        log = logging.LoggerAdapter(logging.getLogger("test_twins"), {})
        self.links = LinkSet(self.core, max_frame=1 << 20, connect_timeout=5.0, log=log)
        self.handshakes = Handshakes(
            self.core,
            self.links,
            identity=self.identity,  # type: ignore[arg-type]
            name="twin",
            incarnation=self.incarnation,
            connect_timeout=5.0,
            execute=self.effects.extend,
            log=log,
        )
        self.handshakes.key = KEY
        OPEN.append(self)


OPEN: list[Side] = []


@pytest.fixture(autouse=True)
def _close_sides() -> Iterator[None]:
    yield
    while OPEN:
        OPEN.pop().links.close()


async def relay(source: Pipe, sink: Pipe, tap: list[SignalMessage]) -> None:
    try:
        while True:
            frame = await source.receive()
            tap.append(decode(frame[4:]))
            await sink.send(frame)
    except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
        await sink.aclose()


async def dial(
    dialer: Side,
    listener: Side,
    monkeypatch: pytest.MonkeyPatch,
    *,
    tap: list[SignalMessage] | None = None,
    by_address: bool = False,
) -> BaseException | PeerId:
    """``dialer`` probes ``listener`` (a record of its own id); what ``dial_once`` raised or returned.

    ``tap`` gets every message either side sent (someone on the path records them);
    ``by_address``: dialed as a ``peers=`` address (whoever listens), not by id.
    """
    dialer_end, near = pipe_pair()
    far, listener_end = pipe_pair()
    recorded = [] if tap is None else tap

    async def connect(addresses: object, port: int) -> Pipe:
        return dialer_end

    monkeypatch.setattr(handshake, "connect_tcp", connect)
    outcome: BaseException | PeerId
    try:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(listener.handshakes.handle_incoming, listener_end)  # type: ignore[arg-type]
                tg.start_soon(relay, near, far, recorded)
                tg.start_soon(relay, far, near, recorded)
                try:
                    expected = None if by_address else dialer.core.me
                    outcome = await dialer.handshakes.dial_once(["10.0.0.2"], 7000, expected=expected)
                except Exception as exc:
                    outcome = exc
    finally:
        for end in (dialer_end, near, far, listener_end):
            await end.aclose()
    return outcome


@pytest.mark.parametrize("by_address", [False, True])
@pytest.mark.parametrize("earlier_dials", [True, False])
async def test_two_processes_of_one_identity_prove_it_to_each_other_in_one_handshake(
    earlier_dials: bool, by_address: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    earlier, later = Side(ALICE, 1), Side(ALICE, 2)
    dialer, listener = (earlier, later) if earlier_dials else (later, earlier)
    outcome = await dial(dialer, listener, monkeypatch, by_address=by_address)
    assert isinstance(outcome, Twin), outcome
    assert outcome.incarnation == listener.incarnation
    (superseded,) = reports(earlier.effects)
    (kept,) = reports(later.effects)
    assert (superseded.superseded, kept.superseded) == (True, False)
    assert any(isinstance(e, DropAll) for e in earlier.effects)
    assert not any(isinstance(e, DropAll) for e in later.effects)
    assert earlier.core.attempts.get(ALICE.id) is None
    assert later.core.attempts.get(ALICE.id) is None


async def test_the_same_process_dialing_itself_is_ourselves_not_a_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = await dial(Side(ALICE, 1), Side(ALICE, 1), monkeypatch, by_address=True)
    assert isinstance(outcome, Ourselves), outcome


@pytest.mark.parametrize("forger_listens", [True, False])
async def test_an_impostor_under_our_id_that_cannot_sign_with_our_key_reports_nothing(
    forger_listens: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member (Eve) that announces our id and signs with its own key: no twin, on either role."""
    us, forger = Side(ALICE, 1), Side(_Impostor(ALICE, EVE), 2)
    outcome = await (dial(us, forger, monkeypatch) if forger_listens else dial(forger, us, monkeypatch))
    if forger_listens:
        assert isinstance(outcome, AuthenticationFailed), outcome
        assert "not derived from its public key" in str(outcome)
    assert reports(us.effects) == []
    assert not us.core.twins.superseded


async def test_a_twins_challenge_replayed_into_another_handshake_proves_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Someone on the path recorded a real twin's Challenge (signed with our key, over another nonce) and replays it."""
    tap: list[SignalMessage] = []
    assert isinstance(await dial(Side(ALICE, 1), Side(ALICE, 2), monkeypatch, tap=tap), Twin)  # recorded
    (challenge,) = [m for m in tap if isinstance(m, Challenge)]
    us = Side(ALICE, 3)
    dialer_end, far = pipe_pair()

    async def connect(addresses: object, port: int) -> Pipe:
        return dialer_end

    async def replay() -> None:
        hello = await read_message(BufferedByteReceiveStream(far))
        assert isinstance(hello, Hello)
        await far.send(encode(challenge))

    monkeypatch.setattr(handshake, "connect_tcp", connect)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(replay)
            with pytest.raises(AuthenticationFailed):
                await us.handshakes.dial_once(["10.0.0.2"], 7000, expected=ALICE.id)
    await far.aclose()
    assert reports(us.effects) == []
    assert not us.core.twins.superseded
