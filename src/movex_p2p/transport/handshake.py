"""The LAN endpoint's handshakes, both ways: TCP, authenticated signaling, then the link (I/O only).

What to admit, whom to keep and what each outcome means are decided by
:class:`~.meshcore.MeshCore`; this module runs the connections and reports to it.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Final

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskGroup

from ..errors import AuthenticationFailed, ConnectError, RemoteProtocolError
from ..identity import Identity
from ..ids import PeerId
from .linkset import LinkSet, close_session
from .mesh import Attempt, Ourselves, PeerAddress, with_address
from .meshcore import Effect, Failure, FailureKind, MeshCore, Refuse
from .signaling import (
    Challenge,
    Contact,
    Declined,
    Exchange,
    Hello,
    Refusal,
    Refused,
    refuse,
    run_dialer,
    run_listener,
)
from .webrtc import RtcSession

__all__ = [
    "AUTH_DEADLINE",
    "DIAL_ERRORS",
    "SIGNALING_RTO_MIN",
    "Handshakes",
    "Twin",
    "connect_tcp",
    "failure_of",
    "lan_retransmits",
    "remote_host",
]

AUTH_DEADLINE: Final = 2.0
"""Seconds a handshake may take until the other side proved the room key and its identity (either role)."""
_SYN_TRIES: Final = 3
"""Connection attempts per address of one dial (overlapping, the first to connect wins)."""
_NEXT_ADDRESS: Final = 0.25
"""Dialing several addresses of a peer, the next one is tried after this long (or once the last failed)."""
_REFUSAL_LINGER: Final = 0.5
"""Seconds a refusal waits for the dialer to read it and hang up."""
SIGNALING_RTO_MIN: Final = 0.02
"""The least time a signaling connection waits before it sends a lost segment again (Linux: 0.2 s)."""
_TCP_RTO_MIN_US: Final = 45
"""Linux's per-socket minimum retransmission timeout in µs (since Linux 6.15; <linux/tcp.h>)."""

DialError = AuthenticationFailed | ConnectError | RemoteProtocolError
DIAL_ERRORS: Final = (AuthenticationFailed, ConnectError, RemoteProtocolError)
"""What a failed dial raises (besides ``Declined``, which is no failure)."""


class Twin(ConnectError):
    """Who answered proved our own key with another incarnation: another live process of our identity."""

    def __init__(self, incarnation: int) -> None:
        super().__init__(f"another process of this peer's identity (incarnation {incarnation}) answered")
        self.incarnation = incarnation


def failure_of(exc: DialError) -> Failure:
    """What :class:`~.meshcore.MeshCore` is told of a failed dial."""
    text = str(exc)[:200]
    if isinstance(exc, Refused):
        return Failure(kind=FailureKind.REFUSED, text=text, retry_after=exc.retry_after)
    if isinstance(exc, AuthenticationFailed):
        return Failure(kind=FailureKind.WRONG_SECRET, text=text)
    if isinstance(exc, RemoteProtocolError):
        return Failure(kind=FailureKind.BAD_HANDSHAKE, text=text)
    return Failure(kind=FailureKind.UNREACHABLE, text=text)


def remote_host(stream: SocketStream) -> str | None:
    """The IP address at the other end of a TCP stream."""
    try:
        address = stream.extra(SocketAttribute.remote_address)
    except anyio.TypedAttributeLookupError:
        return None
    return address[0] if isinstance(address, tuple) else None


def lan_retransmits(stream: SocketStream, rto_min: float = SIGNALING_RTO_MIN) -> bool:
    """Let ``stream`` send a lost segment again after ``rto_min`` s instead of Linux's 0.2 s; False where the
    system cannot (another OS, or Linux before 6.15: its minimum stays).

    A handshake is a few small messages, each waiting for the last: on a LAN whose round trip is
    a millisecond, every segment a lossy Wi-Fi drops cost the kernel's 200 ms floor. Linux still
    backs off (doubling) and raises the timeout when the measured round trip is longer.
    """
    if not sys.platform.startswith("linux"):
        return False
    raw = stream.extra(SocketAttribute.raw_socket, None)
    if raw is None:
        return False
    try:
        raw.setsockopt(socket.IPPROTO_TCP, _TCP_RTO_MIN_US, round(rto_min * 1_000_000))
    except OSError:
        return False
    return True


async def connect_tcp(addresses: Sequence[str], port: int) -> SocketStream:
    """A TCP connection to the first of ``addresses`` that answers (each tried in turn, overlapping).

    Each address is tried up to ``_SYN_TRIES`` times, ``_NEXT_ADDRESS`` apart: a lost SYN
    otherwise costs the kernel's 1 s retransmission timeout, and a lossy Wi-Fi loses some. An
    address the kernel answered with an error (refused, unreachable) is not tried again: a SYN
    that was answered was not lost. Tries start one at a time, so a dial of many dead addresses
    costs a task per address, not per try.
    """
    if not addresses:
        raise ConnectError("no address to dial")
    errors: dict[str, str] = {}  # address -> why it failed
    won: list[SocketStream] = []

    async def attempt(address: str, failed: anyio.Event, tg: TaskGroup) -> None:
        try:
            stream = await anyio.connect_tcp(address, port)
        except OSError as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc  # anyio wraps the real one
            errors[address] = f"{address}:{port}: {os.strerror(cause.errno) if cause.errno else cause}"
            failed.set()
            return
        if won:
            await stream.aclose()
            return
        won.append(stream)
        tg.cancel_scope.cancel()

    try:
        async with anyio.create_task_group() as tg:
            for address in (address for address in addresses for _ in range(_SYN_TRIES)):
                if address in errors:
                    continue
                failed = anyio.Event()
                tg.start_soon(attempt, address, failed, tg)
                with anyio.move_on_after(_NEXT_ADDRESS):  # the next try once this one failed, or after a while
                    await failed.wait()
    except BaseException:
        for stream in won:
            await stream.aclose()
        raise
    if not won:
        raise ConnectError("; ".join(errors.values()))
    lan_retransmits(won[0])
    return won[0]


class Handshakes:
    """Runs dials and incoming handshakes; holds the cancel scope and end event of each claim."""

    def __init__(
        self,
        core: MeshCore,
        links: LinkSet,
        *,
        identity: Identity,
        name: str,
        incarnation: int,
        connect_timeout: float,
        execute: Callable[[list[Effect]], None],
        log: logging.LoggerAdapter[logging.Logger],
    ) -> None:
        self._core = core
        self._links = links
        self._identity = identity
        self._name = name
        self._incarnation = incarnation
        self._timeout = connect_timeout
        self._execute = execute
        self._log = log
        self.key = b""
        self._scopes: dict[Attempt, anyio.CancelScope] = {}
        self._ended: dict[Attempt, anyio.Event] = {}
        self._incoming: dict[int, anyio.CancelScope] = {}  # unauthenticated: handle -> scope

    # -- claims ---------------------------------------------------------------------------

    def _claim(self, peer: PeerId, *, dialer: PeerId, incarnation: int, scope: anyio.CancelScope) -> Attempt | None:
        claimed = self._core.claim(peer, dialer=dialer, incarnation=incarnation)
        if claimed is None:
            return None
        attempt, displaced = claimed
        if displaced is not None and displaced in self._scopes:
            self._scopes[displaced].cancel()  # its handshake stops, or its link closes (reported down as usual)
        self._scopes[attempt] = scope
        self._ended[attempt] = anyio.Event()
        return attempt

    def _release(self, attempt: Attempt) -> None:
        self._core.attempts.release(attempt)
        self._scopes.pop(attempt, None)
        ended = self._ended.pop(attempt, None)
        if ended is not None:
            ended.set()

    async def wait_ended(self, attempt: Attempt) -> None:
        """Wait until ``attempt`` is released."""
        ended = self._ended.get(attempt)
        if ended is not None and not attempt.ended:
            await ended.wait()

    def drop_all(self) -> None:
        """Cancel every authenticated handshake and link held (each is released and reported as usual)."""
        for scope in list(self._scopes.values()):
            scope.cancel()

    def push_out(self, handle: int) -> None:
        """Cancel the unauthenticated incoming handshake ``handle``."""
        scope = self._incoming.pop(handle, None)
        if scope is not None:
            scope.cancel()

    # -- dialing --------------------------------------------------------------------------

    async def dial_once(
        self, addresses: Sequence[str], port: int, *, expected: PeerId | None, address: PeerAddress | None = None
    ) -> PeerId:
        """Dial, authenticate, then run the link until it closes; return who answered.

        Raises ConnectError or RemoteProtocolError (no link), AuthenticationFailed, Declined (a
        link of the pair is already held, at either end), Ourselves, or Twin (another live
        process of our identity answered: reported to the core as it proved itself).
        ``address`` (a ``peers=`` address) learns who answered as soon as it is authenticated.
        The listener must prove itself within :data:`AUTH_DEADLINE`; the whole exchange within
        ``connect_timeout``.
        """
        core, me = self._core, self._identity.id
        scope = anyio.CancelScope()
        session: RtcSession | None = None
        attempt: Attempt | None = None
        linked = False
        twin: int | None = None
        deadline = anyio.CancelScope(deadline=anyio.current_time() + min(AUTH_DEADLINE, self._timeout))

        async def create_offer(challenge: Challenge) -> Exchange:
            nonlocal session, attempt, twin
            deadline.deadline = anyio.current_time() + self._timeout  # it proved itself
            if challenge.peer == me:
                if challenge.incarnation == self._incarnation:
                    raise Ourselves(f"{addresses} port {port} is our own address")
                # our key, signed over our fresh nonce, by another incarnation: a live twin. Our
                # Offer (signed over its nonce) proves the same to it, and it turns us away (Busy).
                twin = challenge.incarnation
                self._execute(core.twin(twin))
                return Exchange(sdp="", me=core.contact)
            if address is not None:
                core.address.answered(address, challenge.peer)
            core.answered(challenge.peer, anyio.current_time())
            attempt = self._claim(challenge.peer, dialer=me, incarnation=challenge.incarnation, scope=scope)
            if attempt is None:
                raise Declined(challenge.peer)
            # where it proved the key, passed on from now (its Answer tells more): see mesh.py
            attempt.contact = with_address(Contact(peer=challenge.peer, addresses=(), port=port), reached)
            session = RtcSession(addresses=list(core.interfaces))
            sdp = await session.create_offer()
            return Exchange(sdp=sdp, me=core.contact, members=core.attempts.contacts(exclude=challenge.peer))

        reached: str | None = None
        try:
            with scope:
                with deadline:
                    stream = await connect_tcp(addresses, port)
                    reached = remote_host(stream)
                    async with stream:
                        try:
                            result = await run_dialer(
                                stream,
                                key=self.key,
                                identity=self._identity,
                                receiver=expected,
                                name=self._name,
                                incarnation=self._incarnation,
                                create_offer=create_offer,
                            )
                        except Declined:
                            if twin is not None:
                                raise Twin(twin) from None
                            raise
                    if twin is not None:
                        raise Twin(twin)  # it answered instead of turning us away: no link either
                    assert session is not None
                    assert attempt is not None
                    await session.accept_answer(result.answer.sdp)
                if deadline.cancelled_caught:
                    raise ConnectError(f"signaling with {expected or addresses[0]} timed out")
                assert attempt is not None
                assert session is not None
                attempt.contact = with_address(result.answer.me, reached)
                self._execute(core.learnt(result.answer.members, source=result.peer, now=anyio.current_time()))
                linked = attempt.opened = True
                await self._links.run_link(session, peer=result.peer, name=result.name, incarnation=result.incarnation)
            if attempt is None:
                raise ConnectError(f"dialing {expected or addresses[0]} was cancelled")  # pragma: no cover
            if not linked:
                raise Declined(attempt.peer)  # another handshake of the pair won while ours ran
            return attempt.peer
        finally:
            if attempt is not None:
                self._release(attempt)
            if not linked:
                await close_session(session)

    # -- accepting ------------------------------------------------------------------------

    async def _tell_refused(self, stream: SocketStream, reason: str, retry: int) -> None:
        """Tell a refused dialer why, and when it may retry (unsigned, bounded)."""
        try:
            await refuse(stream, Refusal(reason=reason, retry=retry), linger=_REFUSAL_LINGER)
        finally:
            self._core.refusal_told()

    async def handle_incoming(self, stream: SocketStream) -> None:
        """Admit (or refuse) one incoming signaling connection and run it to its end."""
        core = self._core
        came_from = remote_host(stream)
        source = came_from or "?"
        lan_retransmits(stream)
        handle, effects = core.incoming(source, anyio.current_time())
        for effect in effects:
            if isinstance(effect, Refuse):
                async with stream:
                    if effect.retry is not None:
                        await self._tell_refused(stream, effect.told, effect.retry)
            else:
                self._execute([effect])
        if handle is None:
            return
        scope = anyio.CancelScope(deadline=anyio.current_time() + min(AUTH_DEADLINE, self._timeout))
        self._incoming[handle] = scope
        session: RtcSession | None = None
        attempt: Attempt | None = None
        linked = False

        def authenticated() -> None:
            self._incoming.pop(handle, None)  # no longer a stranger: never pushed out, more time
            core.authenticated(handle, source)
            scope.deadline = anyio.current_time() + self._timeout

        async def create_answer(hello: Hello, offer: Exchange) -> Exchange:
            nonlocal session, attempt
            sender = hello.sender
            if sender == self._identity.id:  # its Offer proved our key over our fresh nonce
                if hello.incarnation != self._incarnation:
                    self._execute(core.twin(hello.incarnation))
                raise Declined(sender)  # turned away with a Busy, which proves our key to it in turn
            core.answered(sender, anyio.current_time())
            attempt = self._claim(sender, dialer=sender, incarnation=hello.incarnation, scope=scope)
            self._log.debug("%s dialed us: %s", sender, "refused" if attempt is None else "claimed")
            if attempt is None:
                raise Declined(hello.sender)
            attempt.contact = with_address(offer.me, came_from)
            self._execute(core.learnt(offer.members, source=hello.sender, now=anyio.current_time()))
            session = RtcSession(addresses=list(core.interfaces))
            sdp = await session.accept_offer(offer.sdp)
            return Exchange(sdp=sdp, me=core.contact, members=core.attempts.contacts(exclude=hello.sender))

        failed: str | None = None
        try:
            with scope:
                try:
                    async with stream:
                        hello = await run_listener(
                            stream,
                            key=self.key,
                            identity=self._identity,
                            name=self._name,
                            incarnation=self._incarnation,
                            create_answer=create_answer,
                            authenticated=authenticated,
                        )
                except Declined as exc:
                    self._log.debug("%s dialed, but a link of the pair is already held", exc.peer)
                    return
                except AuthenticationFailed as exc:
                    self._log.warning("refused a dialer: %s", exc)
                    core.note_auth_failure(str(exc))
                    failed = "wrong secret"
                    return
                except (ConnectError, RemoteProtocolError) as exc:
                    self._log.info("refused a signaling connection: %s", exc)
                    failed = "bad or cut-short handshake"
                    return
                finally:
                    self._incoming.pop(handle, None)
                    core.handshake_over(handle)
                assert session is not None
                assert attempt is not None
                scope.deadline = math.inf  # the handshake is over: the link lives until it closes
                linked = attempt.opened = True
                try:
                    await self._links.run_link(
                        session, peer=hello.sender, name=hello.name, incarnation=hello.incarnation
                    )
                except ConnectError as exc:
                    self._log.info("link from %s did not open: %s", hello.sender, exc)
            if scope.cancelled_caught and not linked:
                failed = "bad or cut-short handshake"  # too slow to authenticate, or pushed out
        finally:
            if failed is not None:
                core.handshake_failed(source, failed, anyio.current_time())
            if attempt is not None:
                self._release(attempt)
            if not linked:
                await close_session(session)
