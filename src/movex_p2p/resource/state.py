"""Immutable JSON-like states and their canonical checksum (pure).

Confirmed states are deep-frozen: ``FrozenDict`` and ``FrozenList`` are dict and list subclasses
that refuse mutation, so a reducer that mutates its input fails loudly instead of corrupting
confirmed state, and the app can read a state from any thread. ``copy.deepcopy`` and
``copy.copy`` of a frozen value give ordinary mutable containers.

The checksum is a Merkle digest: each container's digest is BLAKE2b-128 over the CBOR encoding
of its entries (dict keys sorted), where a nested container stands as ``[its digest]``. Digests
are cached on the frozen containers, and reducers share unchanged sub-trees, so an action that
changes one key costs only the containers on the path to it, not a re-encoding of the state.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Final, Never

import cbor2

from ..errors import InvalidState
from .values import MasterValue

__all__ = ["FrozenDict", "FrozenList", "check_data", "checksum", "freeze", "hexdigest", "size_of", "thaw"]

MAX_DEPTH: Final = 64
"""The deepest nesting of lists and dicts accepted in states and payloads (``freeze``, ``check_data``
and the codec agree): data inside ``MAX_DEPTH`` nested containers is fine, one more level is refused."""


def _refuse(self: object, *args: Any, **kwargs: Any) -> Never:
    raise InvalidState(
        "states are immutable: return a new value from the reducer instead of changing its input "
        "(e.g. {**state, 'key': value}, or copy.deepcopy(state) first)"
    )


class FrozenDict(dict[str, Any]):
    """A dict that refuses mutation; the form every stored state's mappings take."""

    __slots__ = ("_digest", "_height", "_size")
    _digest: bytes | None
    _height: int
    _size: int

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse
    __ior__ = _refuse

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return {key: thaw(value) for key, value in self.items()}

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))

    def __repr__(self) -> str:
        return dict.__repr__(self)


class FrozenList(list[Any]):
    """A list that refuses mutation; the form every stored state's sequences take."""

    __slots__ = ("_digest", "_height", "_size")
    _digest: bytes | None
    _height: int
    _size: int

    __setitem__ = __delitem__ = append = extend = insert = pop = remove = clear = _refuse
    sort = reverse = _refuse
    __iadd__ = __imul__ = _refuse

    def __copy__(self) -> list[Any]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return [thaw(value) for value in self]

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenList, (list(self),))

    def __repr__(self) -> str:
        return list.__repr__(self)


_SCALARS: Final = (type(None), bool, int, str, bytes)


def _too_deep(depth: int) -> bool:
    """True for a container with ``depth`` containers around it: the one comparison of MAX_DEPTH."""
    return depth >= MAX_DEPTH


def _new_dict(items: dict[str, Any], height: int) -> FrozenDict:
    frozen = FrozenDict(items)
    object.__setattr__(frozen, "_digest", None)
    object.__setattr__(frozen, "_height", height)
    return frozen


def _new_list(items: list[Any], height: int) -> FrozenList:
    frozen = FrozenList(items)
    object.__setattr__(frozen, "_digest", None)
    object.__setattr__(frozen, "_height", height)
    return frozen


def freeze(value: Any) -> Any:
    """Deep-freeze JSON-like data; raise InvalidState for anything else.

    Frozen containers are taken as they are (they are frozen all the way down), so freezing a
    reducer's result costs only the containers it created; each frozen container knows how many
    levels it holds, so a state built around a kept one is still refused past ``MAX_DEPTH``.
    """
    frozen, height = _freeze(value, 0)
    if height > MAX_DEPTH:
        raise InvalidState(f"state nested deeper than {MAX_DEPTH}")
    return frozen


def _freeze(value: Any, depth: int) -> tuple[Any, int]:
    """``value`` frozen, and the containers in its deepest branch (``depth``: the containers around it)."""
    kind = type(value)
    if kind in _SCALARS:
        return value, 0
    if kind is FrozenDict or kind is FrozenList:
        return value, _kept_height(value)
    if kind is float:
        if not math.isfinite(value):
            raise InvalidState(f"non-finite float {value!r} in state")
        return value, 0
    if _too_deep(depth):  # also ends a walk of a container that holds itself
        raise InvalidState(f"state nested deeper than {MAX_DEPTH}")
    height = 0
    if isinstance(value, dict):
        items: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise InvalidState(f"state mapping keys must be str, not {type(key).__name__}")
            kind = type(item)
            if kind in _SCALARS:  # kept as it is, without a call
                items[key], below = item, 0
            elif kind is FrozenDict or kind is FrozenList:
                items[key] = item
                below = getattr(item, "_height", -1)
                if below < 0:
                    below = _kept_height(item)
            else:
                items[key], below = _freeze(item, depth + 1)
            if below > height:
                height = below
        return _new_dict(items, height + 1), height + 1
    if isinstance(value, list | tuple):
        frozen: list[Any] = []
        for item in value:
            item, below = _freeze(item, depth + 1)
            frozen.append(item)
            if below > height:
                height = below
        return _new_list(frozen, height + 1), height + 1
    raise InvalidState(f"{kind.__name__} is not JSON-like data (None, bool, int, float, str, bytes, list, dict)")


def _kept_height(value: FrozenDict | FrozenList) -> int:
    """The height of a frozen container (as frozen, or counted: an unpickled one)."""
    try:
        return value._height
    except AttributeError:
        return _height_of(value)


def _height_of(value: Any) -> int:
    """The containers in ``value``'s deepest branch (frozen data, bounded by ``freeze``)."""
    if isinstance(value, dict):
        return 1 + max(map(_height_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_height_of, value), default=0)
    return 0


def thaw(value: Any) -> Any:
    """A mutable deep copy of a (frozen) state."""
    if isinstance(value, dict):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, list):
        return [thaw(item) for item in value]
    return value


_PLACEHOLDER: Final = 18  # a nested container stands as [16-byte digest]: 1 + 1 + 16 bytes of CBOR


def _container_digest(value: FrozenDict | FrozenList) -> bytes:
    cached: bytes | None = value._digest
    if cached is not None:
        return cached
    parts: list[Any]
    nested = 0  # bytes of the nested containers (their own encodings, not their digests)
    if type(value) is FrozenDict:
        parts = ["d"]
        for key in sorted(value):
            item = value[key]
            parts.append(key)
            kind = type(item)
            if kind is FrozenDict or kind is FrozenList:
                parts.append([_container_digest(item)])
                nested += item._size - _PLACEHOLDER
            else:
                parts.append(item)
    else:
        parts = ["l"]
        element: Any
        for element in value:
            kind = type(element)
            if kind is FrozenDict or kind is FrozenList:
                parts.append([_container_digest(element)])
                nested += element._size - _PLACEHOLDER
            else:
                parts.append(element)
    encoded = cbor2.dumps(parts)
    digest = hashlib.blake2b(encoded, digest_size=16).digest()
    object.__setattr__(value, "_digest", digest)
    object.__setattr__(value, "_size", len(encoded) + nested)
    return digest


def size_of(state: Any) -> int:
    """About the bytes of ``state``'s CBOR encoding (within a few bytes per container), cached like the checksum."""
    kind = type(state)
    if kind is FrozenDict or kind is FrozenList:
        _container_digest(state)
        return int(state._size)
    return len(cbor2.dumps(state, default=_master_value_size))  # a payload: encoded once, not kept


def _master_value_size(encoder: Any, value: Any) -> None:
    encoder.encode([0, 0, 0])  # a master value placeholder in a payload: a few bytes on the wire


def checksum(state: Any) -> bytes:
    """The 16-byte checksum of a frozen state (see the module docstring)."""
    if type(state) is FrozenDict or type(state) is FrozenList:
        return _container_digest(state)
    kind = type(state)
    if kind is dict or kind is list or kind is tuple:
        return checksum(freeze(state))
    return hashlib.blake2b(cbor2.dumps(["s", state]), digest_size=16).digest()


def hexdigest(digest: bytes) -> str:
    """The checksum as the hex string users see."""
    return digest.hex()


def check_data(value: Any, *, where: str = "value", depth: int = 0) -> Any:
    """Check that ``value`` is JSON-like data or a master value; return it unchanged.

    ``depth`` counts the containers around ``value`` (0 for the root).
    """
    kind = type(value)
    if kind in _SCALARS or kind is MasterValue:
        return value
    if kind is float:
        if not math.isfinite(value):
            raise InvalidState(f"{where}: non-finite float")
        return value
    if _too_deep(depth):
        raise InvalidState(f"{where}: nested deeper than {MAX_DEPTH}")
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_data(item, where=f"{where}[{i}]", depth=depth + 1)
        return value
    if isinstance(value, dict):
        for key, item in value.items():
            if type(key) is not str:
                raise InvalidState(f"{where}: map keys must be str")
            check_data(item, where=f"{where}.{key}", depth=depth + 1)
        return value
    raise InvalidState(f"{where}: {kind.__name__} is not JSON-like data")
