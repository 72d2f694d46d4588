"""The machine's network interfaces, on Linux, Windows and macOS alike.

Adapters and their addresses come from ``ifaddr`` (``getifaddrs`` on Linux and macOS,
``GetAdaptersAddresses`` on Windows): nothing is sent, and no platform-specific call is made
here. ``interfaces=`` entries may be IPv4 addresses or adapter names (``eth0``, ``en0``, a
ZeroTier adapter such as ``ztabcdef12``, or a Windows connection name such as ``Wi-Fi``).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence

import ifaddr

from ..errors import TransportError

__all__ = ["adapter_summary", "default_interfaces", "get_adapters", "usable_interfaces"]

log = logging.getLogger(__name__)

_IGNORED: frozenset[str] = frozenset({"127.0.0.1"})
"""Addresses never used: aioice drops 127.0.0.1 as a host candidate."""


def get_adapters() -> list[ifaddr.Adapter]:
    """The machine's network adapters (``ifaddr.get_adapters``; tests replace it)."""
    return list(ifaddr.get_adapters())


def _ipv4(adapter: ifaddr.Adapter) -> list[str]:
    return [ip.ip for ip in adapter.ips if isinstance(ip.ip, str)]


def _base(name: str) -> str:
    """``eth0`` for a Linux alias label such as ``eth0:1`` (one interface, several addresses)."""
    return name.split(":", 1)[0]


def default_interfaces(adapters: Sequence[ifaddr.Adapter] | None = None) -> list[str]:
    """The first IPv4 address of each interface, loopback left out (what ``interfaces=None`` uses)."""
    found: list[str] = []
    seen: set[str] = set()
    for adapter in get_adapters() if adapters is None else adapters:
        addresses = _ipv4(adapter)
        if not addresses or _base(adapter.name) in seen:
            continue
        seen.add(_base(adapter.name))
        if not ipaddress.IPv4Address(addresses[0]).is_loopback:
            found.append(addresses[0])
    return found


def adapter_summary(adapters: Sequence[ifaddr.Adapter] | None = None) -> str:
    """``"eth0 [192.168.1.5], Wi-Fi [10.0.0.7], lo [127.0.0.1]"``: the adapters, for error messages."""
    parts = []
    for adapter in get_adapters() if adapters is None else adapters:
        label = adapter.nice_name if adapter.nice_name and adapter.nice_name != adapter.name else adapter.name
        parts.append(f"{label} [{', '.join(_ipv4(adapter)) or 'no IPv4'}]")
    return ", ".join(parts) or "none"


def _by_name(name: str, adapters: Sequence[ifaddr.Adapter]) -> list[ifaddr.Adapter]:
    """Adapters called ``name`` (system name or display name; case-insensitive if no exact match)."""

    def names(adapter: ifaddr.Adapter) -> tuple[str, ...]:
        return adapter.name, adapter.nice_name, _base(adapter.name)

    exact = [adapter for adapter in adapters if name in names(adapter)]
    if exact:
        return exact
    folded = name.casefold()
    return [adapter for adapter in adapters if folded in {n.casefold() for n in names(adapter)}]


def usable_interfaces(
    interfaces: Sequence[str] | None, *, adapters: Sequence[ifaddr.Adapter] | None = None
) -> list[str]:
    """The IPv4 addresses to use: explicit addresses and adapter names resolved, or the defaults.

    ValueError names what is wrong (an unknown adapter: with the adapters found); TransportError
    if ``None`` and the machine has no non-loopback IPv4 interface.
    """
    if interfaces is None:
        found = default_interfaces(adapters)
        if not found:
            raise TransportError(
                f"no non-loopback IPv4 interface (adapters: {adapter_summary(adapters)}); "
                "pass interfaces=[ADDRESS or ADAPTER NAME]"
            )
        return found
    if isinstance(interfaces, str):
        interfaces = [interfaces]
    usable: list[str] = []
    for entry in interfaces:
        if not isinstance(entry, str) or not entry.strip():
            raise ValueError(f"interface {entry!r}: expected an IPv4 address or an adapter name")
        text = entry.strip()
        try:
            parsed = ipaddress.ip_address(text)
        except ValueError:
            usable += _addresses_of(text, adapters)
            continue
        if parsed.version != 4 or str(parsed) in _IGNORED:
            log.warning("ignoring interface address %s (IPv4 other than 127.0.0.1 only)", text)
            continue
        usable.append(str(parsed))
    usable = list(dict.fromkeys(usable))
    if not usable:
        raise ValueError(f"no usable interface in {list(interfaces)} (127.0.0.1 and IPv6 addresses cannot be used)")
    return usable


def _addresses_of(name: str, adapters: Sequence[ifaddr.Adapter] | None) -> list[str]:
    known = get_adapters() if adapters is None else list(adapters)
    matches = _by_name(name, known)
    if not matches:
        raise ValueError(f"no network adapter named {name!r}; adapters found: {adapter_summary(known)}")
    addresses = [address for adapter in matches for address in _ipv4(adapter) if address not in _IGNORED]
    if not addresses:
        raise ValueError(f"adapter {name!r} has no usable IPv4 address; adapters found: {adapter_summary(known)}")
    return addresses
