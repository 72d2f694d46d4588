"""mDNS discovery of the peers of a room (the only zeroconf import).

Each peer registers ``<peer id>._movex._tcp.local.`` on explicit interface addresses, with
probing skipped (peer ids are unique: ~5 ms instead of ~1.2 s), and browses the same type.
TXT: ``room``, ``id``, ``v`` (protocol version), ``inc`` (incarnation: a restart with the same
id shows up as Updated with a new one), ``sig`` (signaling TCP port), ``name`` and ``role``
(``player`` or ``spectator``; absent means player), and the lobby hints
(:func:`movex_p2p.lobby.lobby_txt`: game, types' digest, max players, secret, started, info),
which :meth:`Discovery.update_lobby` re-announces when they change.

:func:`browse` only listens: it announces nothing and joins no room (a lobby screen).

mDNS is a discovery hint, not liveness and not proof: a killed peer's records linger for their
TTL, and anyone on the LAN can announce any id. The LAN transport only dials what it learns
here; the handshake proves who answers. A record of our own id with another incarnation is
reported too (another process of our identity announces the same name, or a copy): it is dialed
once, and only the handshake proves a twin (see :mod:`.twins`). TXT is parsed strictly
(:func:`parse_txt` raises ValueError and nothing else) and at most :data:`MAX_RESOLVING`
records are resolved at once. Every mDNS response passes a per-source budget first
(:mod:`.mdnsbudget`): one over it is dropped before zeroconf caches any of it, and counted
(:attr:`Discovery.refused`, ``LanStatus.mdns_refused``).
zeroconf callbacks only ``send_nowait`` into a bounded stream; owned tasks do the rest.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from zeroconf import DNSQuestionType, IPVersion, ServiceStateChange, Zeroconf
from zeroconf import Error as ZeroconfError
from zeroconf._dns import DNSPointer, DNSRecord
from zeroconf._handlers.record_manager import RecordManager  # not exported (nor these two)
from zeroconf._protocol.incoming import DNSIncoming
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from ..errors import TransportError
from ..ids import PeerId
from ..lobby import Lobby, lobby_txt, parse_lobby
from .mdnsbudget import MAX_TTL, MdnsBudget

__all__ = [
    "MAX_RESOLVING",
    "SERVICE_TYPE",
    "Announcement",
    "Discovery",
    "DiscoveryEvent",
    "PeerGone",
    "browse",
    "guarded_zeroconf",
    "parse_txt",
    "service_info",
]

log = logging.getLogger(__name__)

SERVICE_TYPE: Final = "_movex._tcp.local."
_RESOLVE_TIMEOUT_MS: Final = 3000
_TXT_LIMIT: Final = 200
_QUESTION: Final = DNSQuestionType.QU
"""The kind of question :func:`browse` asks: QU, never QM.

zeroconf (every peer's responder) ignores a query whose bytes equal one it got less than
800 ms earlier from anyone, unless it holds a QU question. Two lobbies that browse at once
send byte-identical QM queries (a fresh cache: no known answers, query id 0), so all but
the first got no answer at all: with three hosts browsing at once, 10 of 15 browses listed
nothing (issue 16). A QU question is answered every time, and from an ephemeral port it is
answered exactly like QM (by unicast, to that port).
"""
MAX_RESOLVING: Final = 64
"""Records resolved at once; a flood of names beyond that is skipped (they may announce again)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Announcement:
    """A peer announced itself (or re-announced, e.g. with a new incarnation)."""

    peer: PeerId
    name: str
    room: str
    version: int
    incarnation: int
    port: int
    addresses: tuple[str, ...]
    role: str = "player"
    lobby: Lobby = field(default_factory=Lobby)


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerGone:
    """A peer withdrew its record (mDNS goodbye)."""

    peer: PeerId


DiscoveryEvent = Announcement | PeerGone


_INSTANCE_SUFFIX: Final = "." + SERVICE_TYPE


def _instance(peer: PeerId) -> str:
    return f"{peer}.{SERVICE_TYPE}"


def _peer_of(name: str) -> str:
    return name[: -len(SERVICE_TYPE) - 1] if name.endswith("." + SERVICE_TYPE) else name


def parse_txt(properties: Mapping[bytes, bytes | None], addresses: Sequence[str], port: int) -> Announcement:
    """Build an Announcement from TXT properties (pure); ValueError if anything is missing or malformed."""
    try:
        return _parse_txt(properties, addresses)
    except ValueError:
        raise
    except Exception as exc:  # whatever a hostile record makes the checks raise
        raise ValueError(f"malformed TXT: {type(exc).__name__}") from None


def _parse_txt(properties: Mapping[bytes, bytes | None], addresses: Sequence[str]) -> Announcement:
    def text(key: bytes, *, optional: bool = False) -> str:
        value = properties.get(key)
        if value is None:
            if optional:
                return ""
            raise ValueError(f"TXT lacks {key.decode()}")
        decoded = value.decode()
        if len(decoded) > _TXT_LIMIT or not decoded.isprintable():
            raise ValueError(f"TXT {key.decode()}: not a short printable text")
        return decoded

    def number(key: bytes, low: int, high: int) -> int:
        raw = text(key)
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 20):
            raise ValueError(f"TXT {key.decode()}: not a decimal number")
        value = int(raw)
        if not low <= value <= high:
            raise ValueError(f"TXT {key.decode()}: {value} out of range")
        return value

    peer = text(b"id")
    if not peer:
        raise ValueError("TXT id is empty")
    kept = [a for a in addresses if isinstance(a, str) and len(a) <= 15][:8]
    role = text(b"role") if properties.get(b"role") is not None else "player"
    return Announcement(
        peer=PeerId(peer),
        name=text(b"name", optional=True),
        room=text(b"room"),
        version=number(b"v", 0, 2**16),
        incarnation=number(b"inc", 0, 2**64 - 1),
        port=number(b"sig", 1, 65535),
        addresses=tuple(kept),
        role=role if role in ("player", "spectator") else "player",
        lobby=parse_lobby(properties),
    )


def service_info(me: Announcement) -> AsyncServiceInfo:
    """Our mDNS record (pure: zeroconf packs the TXT here, ValueError if an entry is over 255 bytes)."""
    properties: dict[str | bytes, str | bytes | None] = {
        "room": me.room,
        "id": str(me.peer),
        "v": str(me.version),
        "inc": str(me.incarnation),
        "sig": str(me.port),
        "name": me.name,
        "role": me.role,
        **lobby_txt(me.lobby),
    }
    return AsyncServiceInfo(
        SERVICE_TYPE,
        _instance(me.peer),
        port=me.port,
        properties=properties,
        server=f"{me.peer}.local.",
        parsed_addresses=list(me.addresses),
    )


class _BudgetedRecords(RecordManager):
    """zeroconf's record manager behind a :class:`MdnsBudget`: a response over it never reaches the cache.

    zeroconf's listener (compiled or pure Python) hands every parsed response to
    ``record_manager.async_updates_from_response``; this override runs first.
    """

    def __init__(self, zc: Zeroconf, budget: MdnsBudget) -> None:
        super().__init__(zc)
        self.budget = budget

    def async_updates_from_response(self, msg: DNSIncoming) -> None:
        answers = msg.answers()
        source = msg.source[0] if msg.source else ""
        dropped = self.budget.admit(
            source, records=len(answers), now=msg.now / 1000, members=lambda: self._members(answers)
        )
        if dropped is None:
            for record in answers:
                if record.ttl > MAX_TTL:
                    record.ttl = MAX_TTL  # a flood expires like anything else (zeroconf reads it when caching)
            super().async_updates_from_response(msg)
        elif dropped.first:
            log.warning("dropping mDNS responses from %s: %s", source, dropped.reason)
        else:
            log.debug("dropped an mDNS response from %s: %s", source, dropped.reason)

    def _members(self, answers: list[DNSRecord]) -> tuple[int, int]:
        """Instances of our service type in ``answers`` not in the cache yet, and those it holds."""
        cache = self.cache
        new: set[str] = set()
        for record in answers:
            if not record.ttl:
                continue  # a goodbye adds nothing
            if isinstance(record, DNSPointer) and record.key == SERVICE_TYPE:
                name = record.alias.lower()
            elif record.key.endswith(_INSTANCE_SUFFIX):
                name = record.key
            else:
                continue
            if name not in new and not cache.async_entries_with_name(name):
                new.add(name)
        return len(new), len(cache.async_entries_with_name(SERVICE_TYPE)) if new else 0


class _BudgetedZeroconf(Zeroconf):
    """A Zeroconf whose record manager is budgeted before its sockets start listening."""

    def __init__(self, *, budget: MdnsBudget, interfaces: list[str], unicast: bool = False) -> None:
        self._budget = budget
        super().__init__(interfaces=interfaces, ip_version=IPVersion.V4Only, unicast=unicast)

    def start(self) -> None:
        self.record_manager = _BudgetedRecords(self, self._budget)  # the listeners read it as they are made
        super().start()


def guarded_zeroconf(interfaces: Sequence[str], budget: MdnsBudget, *, unicast: bool = False) -> AsyncZeroconf:
    """An AsyncZeroconf on ``interfaces`` (IPv4) whose every response passes ``budget`` first; OSError if unusable."""
    return AsyncZeroconf(zc=_BudgetedZeroconf(budget=budget, interfaces=list(interfaces), unicast=unicast))


class Discovery:
    """Announce ``me`` and report the other peers of its room.

    ``async with Discovery(...) as discovery: async for event in discovery.events: ...``;
    leaving sends the mDNS goodbye (or call :meth:`withdraw` earlier) and closes zeroconf.
    """

    def __init__(self, *, interfaces: Sequence[str], me: Announcement, queue_size: int = 256) -> None:
        if not interfaces:
            raise ValueError("discovery needs at least one explicit interface address")
        for value in (me.room, me.name, str(me.peer)):
            if len(value.encode()) > _TXT_LIMIT:
                raise ValueError(f"{value[:20]!r}...: at most {_TXT_LIMIT} bytes in TXT")
        self._interfaces = list(interfaces)
        self._me = me
        self._changes_tx: MemoryObjectSendStream[tuple[str, ServiceStateChange]]
        self._changes_rx: MemoryObjectReceiveStream[tuple[str, ServiceStateChange]]
        self._changes_tx, self._changes_rx = anyio.create_memory_object_stream[tuple[str, ServiceStateChange]](
            queue_size
        )
        self._events_tx: MemoryObjectSendStream[DiscoveryEvent]
        self._events_tx, self.events = anyio.create_memory_object_stream[DiscoveryEvent](queue_size)
        self._azc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._info: AsyncServiceInfo | None = None
        self._tg: TaskGroup | None = None
        self._resolving: set[str] = set()
        self._budget = MdnsBudget()

    @property
    def refused(self) -> Mapping[str, int]:
        """mDNS responses dropped before they reached the cache (over a source's budget), by reason."""
        return self._budget.refused

    # zeroconf calls this with keyword arguments: the parameter names are part of its API.
    def _on_change(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        try:
            self._changes_tx.send_nowait((name, state_change))
        except anyio.WouldBlock:
            log.warning("discovery queue full; dropped %s %s", state_change.name, name)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    async def __aenter__(self) -> Discovery:
        try:
            self._azc = guarded_zeroconf(self._interfaces, self._budget)
        except OSError as exc:
            raise TransportError(f"mDNS on {self._interfaces} unavailable: {exc!r}") from exc
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        try:
            me = self._me
            self._info = service_info(self._me)
            # Probing skipped: the name is our unique peer id. The returned awaitable is the
            # announcement task: an owned task awaits it so it never lingers.
            announced = await self._azc.async_register_service(
                self._info, allow_name_change=False, cooperating_responders=True
            )
            self._tg.start_soon(self._await, announced)
            self._browser = AsyncServiceBrowser(self._azc.zeroconf, [SERVICE_TYPE], handlers=[self._on_change])
            self._tg.start_soon(self._pump, self._tg)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        log.debug("announced %s on %s port %d", me.peer, self._interfaces, me.port)
        return self

    async def update_lobby(self, lobby: Lobby) -> None:
        """Announce new lobby hints (e.g. the room started): our record again, with the new TXT."""
        if self._info is None or self._azc is None or lobby == self._me.lobby:
            return
        self._me = dataclasses.replace(self._me, lobby=lobby)
        self._info = service_info(self._me)
        await self._announce_again("update of the lobby hints")

    async def reannounce(self) -> None:
        """Multicast our records again, so a peer that just joined learns of us at once.

        A newcomer otherwise learns of peers already present only from answers to its query,
        which mDNS responders delay by 20-120 ms each (shared records).
        """
        if self._info is None or self._azc is None:
            return
        await self._announce_again("re-announcement")

    async def _announce_again(self, what: str) -> None:
        """Multicast our (possibly new) record; a send that fails is a hint lost, logged, never fatal."""
        azc, info = self._azc, self._info
        if azc is None or info is None:
            return
        try:
            await (await azc.async_update_service(info))
        except (OSError, ZeroconfError) as exc:
            log.warning("mDNS %s failed: %r", what, exc)

    async def withdraw(self) -> None:
        """Send the mDNS goodbye now (idempotent); other peers see it within milliseconds."""
        info, self._info = self._info, None
        if info is None or self._azc is None:
            return
        with anyio.move_on_after(1, shield=True):
            try:
                await (await self._azc.async_unregister_service(info))
            except (OSError, ZeroconfError) as exc:  # a socket gone, zeroconf closing: the goodbye is a hint
                log.debug("mDNS goodbye failed: %r", exc)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with anyio.CancelScope(shield=True):
            await self.withdraw()
            with anyio.move_on_after(2):
                if self._browser is not None:
                    await self._browser.async_cancel()
                if self._azc is not None:
                    await self._azc.async_close()
        for stream in (self._changes_tx, self._changes_rx, self._events_tx, self.events):
            stream.close()
        if self._tg is not None:  # entered in __aenter__: exit it outside the shield, in order
            tg, self._tg = self._tg, None
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)

    async def _await(self, announced: Awaitable[Any]) -> None:
        """Own the announcement task; a send that fails is a hint lost (our own bug still raises)."""
        try:
            await announced
        except (OSError, ZeroconfError) as exc:  # a socket gone, zeroconf closing
            log.debug("mDNS announcement failed: %r", exc)

    async def _pump(self, tg: TaskGroup) -> None:
        async for name, change in self._changes_rx:
            peer = _peer_of(name)
            ours = peer.lower() == str(self._me.peer).lower()
            if ours and change is ServiceStateChange.Removed:
                continue  # our own name: another process of our identity may hold it still
            if change is ServiceStateChange.Removed:
                await self._emit(PeerGone(peer=PeerId(peer)))
            elif name in self._resolving or len(self._resolving) >= MAX_RESOLVING:
                log.debug("skipping %s: %d records being resolved", name, len(self._resolving))
            else:
                self._resolving.add(name)
                tg.start_soon(self._resolve, name)

    async def _resolve(self, name: str) -> None:
        try:
            await self._resolve_once(name)
        finally:
            self._resolving.discard(name)

    async def _resolve_once(self, name: str) -> None:
        assert self._azc is not None
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        try:
            found = await info.async_request(self._azc.zeroconf, _RESOLVE_TIMEOUT_MS)
        except Exception:  # whatever a hostile record makes zeroconf raise as it parses: logged, no peer
            log.debug("resolving %s failed", name, exc_info=True)
            return
        if not found or info.port is None:
            log.debug("could not resolve %s", name)
            return
        try:
            announcement = parse_txt(info.properties, info.parsed_addresses(IPVersion.V4Only), info.port)
        except ValueError as exc:
            log.debug("ignoring %s: %s", name, exc)
            return
        if announcement.room != self._me.room or announcement.version != self._me.version:
            return  # another room (or protocol version) shares the LAN: not ours
        if announcement.peer.lower() != _peer_of(name).lower():
            log.debug("ignoring %s: TXT id %r does not match", name, announcement.peer)
            return
        if announcement.peer == self._me.peer and announcement.incarnation == self._me.incarnation:
            return  # our own record
        await self._emit(announcement)

    async def _emit(self, event: DiscoveryEvent) -> None:
        try:
            await self._events_tx.send(event)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass


async def browse(interfaces: Sequence[str], *, wait: float, limit: int = 1024) -> list[Announcement]:
    """Every peer announced on ``interfaces`` during ``wait`` seconds, any room (announces nothing).

    A fresh zeroconf instance has no cache, so only peers that answer now are listed; a peer
    that said goodbye meanwhile is dropped. At most ``limit`` peers are kept.
    """
    if not interfaces:
        raise ValueError("browsing needs at least one explicit interface address")
    try:
        # unicast mode: queries leave from an ephemeral port, so every responder answers at once,
        # by unicast, to this socket alone: no multicast rate limit (a record multicast in the last
        # second is held back a second) and no other mDNS socket of this host takes the answers.
        # Questions are QU (_QUESTION): see there why not QM.
        azc = guarded_zeroconf(interfaces, MdnsBudget(), unicast=True)
    except OSError as exc:
        raise TransportError(f"mDNS on {list(interfaces)} unavailable: {exc!r}") from exc
    changes_tx, changes_rx = anyio.create_memory_object_stream[tuple[str, ServiceStateChange]](limit)
    found: dict[str, Announcement] = {}

    def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        try:
            changes_tx.send_nowait((name, state_change))
        except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    async def resolve(name: str, until: float) -> None:
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        timeout_ms = max(1, int((until - anyio.current_time()) * 1000))
        try:
            found_it = await info.async_request(azc.zeroconf, timeout_ms, question_type=_QUESTION)
            if not found_it or info.port is None:
                return
            announcement = parse_txt(info.properties, info.parsed_addresses(IPVersion.V4Only), info.port)
        except (ValueError, UnicodeDecodeError):
            return
        except Exception:  # whatever a hostile record makes zeroconf raise as it parses: logged, no peer
            log.debug("resolving %s failed", name, exc_info=True)
            return
        if announcement.peer.lower() == _peer_of(name).lower() and len(found) < limit:
            found[name] = announcement

    browser: AsyncServiceBrowser | None = None
    try:
        until = anyio.current_time() + wait
        async with anyio.create_task_group() as tg:
            browser = AsyncServiceBrowser(azc.zeroconf, [SERVICE_TYPE], handlers=[on_change], question_type=_QUESTION)
            with anyio.move_on_after(wait):
                async for name, change in changes_rx:
                    if change is ServiceStateChange.Removed:
                        found.pop(name, None)
                    else:
                        tg.start_soon(resolve, name, until)
            tg.cancel_scope.cancel()
    finally:
        changes_tx.close()
        changes_rx.close()
        with anyio.CancelScope(shield=True), anyio.move_on_after(2):
            if browser is not None:
                await browser.async_cancel()
            await azc.async_close()
    return list(found.values())
