"""The one codec: every message is a frozen dataclass; frames are CBOR ``[tag, *fields]``.

Tag numbers are wire format: append, never renumber. Decoding validates every field against
the dataclass's type hints, so hostile bytes raise :class:`RemoteProtocolError` and nothing else.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from typing import Any, Final, Union

import cbor2

from .election import messages as em
from .errors import InvalidState, RemoteProtocolError
from .resource import messages as rm
from .resource import state
from .resource.values import MasterValue

__all__ = ["MAX_DEPTH", "MAX_FRAME", "Message", "check_data", "decode", "encode", "encode_many", "join"]

MAX_FRAME: Final = 4 * 1024 * 1024
"""The largest frame a peer may send or accept, in bytes."""

MAX_DEPTH: Final = 64
"""The deepest nesting accepted in payloads and states."""

_MASTER_VALUE_TAG: Final = 40411
_BATCH_TAG: Final = 0

# Tags 1-29: node; 30-59: resources; 60-79: election. Append only.
_BY_TAG: Final[dict[int, type[Any]]] = {
    **rm.MESSAGES,
    **em.MESSAGES,
}
_TAG_OF: Final[dict[type[Any], int]] = {cls: tag for tag, cls in _BY_TAG.items()}

Message = rm.ResourceMessage | em.ElectionMessage


# -- encoding ---------------------------------------------------------------------------------


def _default(encoder: cbor2.CBOREncoder, value: Any) -> None:
    if isinstance(value, MasterValue):
        encoder.encode(cbor2.CBORTag(_MASTER_VALUE_TAG, [value.kind, list(value.args)]))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        encoder.encode(_fields(value))
    else:
        raise TypeError(f"cannot encode {type(value).__name__}")


_NAMES: dict[type[Any], tuple[str, ...]] = {}


def _fields(value: Any) -> list[Any]:
    cls = type(value)
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in dataclasses.fields(value))
    return [getattr(value, name) for name in names]


def _tagged(message: Message) -> list[Any]:
    try:
        tag = _TAG_OF[type(message)]
    except KeyError:
        raise TypeError(f"{type(message).__name__} is not a registered wire message") from None
    return [tag, *_fields(message)]


def encode(message: Message) -> bytes:
    """Encode one message into one frame."""
    return cbor2.dumps(_tagged(message), default=_default)


def encode_many(messages: list[Message]) -> bytes:
    """Encode several messages into one frame (decoded by :func:`decode` as a batch)."""
    if len(messages) == 1:
        return encode(messages[0])
    return cbor2.dumps([_BATCH_TAG, [_tagged(m) for m in messages]], default=_default)


def join(frames: list[bytes]) -> bytes:
    """Join frames of one message each (from :func:`encode`) into one batch frame."""
    n = len(frames)
    if n < 24:
        header = bytes([0x80 + n])
    elif n < 0x100:
        header = bytes([0x98, n])
    elif n < 0x10000:
        header = b"\x99" + n.to_bytes(2, "big")
    else:
        header = b"\x9a" + n.to_bytes(4, "big")
    return b"\x82\x00" + header + b"".join(frames)


# -- decoding ---------------------------------------------------------------------------------


def _tag_hook(tag: cbor2.CBORTag, immutable: bool = False) -> Any:
    if tag.tag == _MASTER_VALUE_TAG:
        value = tag.value
        if not (isinstance(value, list | tuple) and len(value) == 2 and isinstance(value[1], list | tuple)):
            raise RemoteProtocolError("malformed master value")
        try:
            return MasterValue.build(value[0], tuple(value[1]))
        except (TypeError, ValueError) as exc:
            raise RemoteProtocolError(f"malformed master value: {exc}") from exc
    raise RemoteProtocolError(f"unexpected CBOR tag {tag.tag}")


def decode(data: bytes) -> list[Message]:
    """Decode one frame into its messages; raise RemoteProtocolError on anything malformed."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise RemoteProtocolError("a frame must be bytes")
    if len(data) > MAX_FRAME:
        raise RemoteProtocolError(f"frame of {len(data)} bytes exceeds {MAX_FRAME}")
    try:
        raw = cbor2.loads(
            bytes(data),
            tag_hook=_tag_hook,
            max_depth=MAX_DEPTH + 8,
            allow_duplicate_keys=False,
            strict_hashable_types=True,
        )
    except RemoteProtocolError:
        raise
    except (
        cbor2.CBORError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        OverflowError,
        RecursionError,
        MemoryError,
        UnicodeError,
        EOFError,
    ) as exc:
        raise RemoteProtocolError(f"undecodable frame: {type(exc).__name__}: {exc}") from exc
    if not isinstance(raw, list) or not raw:
        raise RemoteProtocolError("a frame must be a non-empty array")
    if raw[0] == _BATCH_TAG and len(raw) == 2 and isinstance(raw[1], list):
        return [_build(item) for item in raw[1]]
    return [_build(raw)]


def _build(raw: Any) -> Message:
    if not isinstance(raw, list) or not raw or type(raw[0]) is not int:
        raise RemoteProtocolError("a message must be [tag, *fields]")
    cls = _BY_TAG.get(raw[0])
    if cls is None:
        raise RemoteProtocolError(f"unknown message tag {raw[0]!r}")
    message: Message = _convert(cls, raw[1:], cls.__name__, 0)
    return message


# -- validation against type hints ------------------------------------------------------------

_Checker = Callable[[Any, str, int], Any]
_CHECKERS: dict[Any, _Checker] = {}


def _convert(tp: Any, value: Any, where: str, depth: int) -> Any:
    checker = _CHECKERS.get(tp)
    if checker is None:
        checker = _CHECKERS[tp] = _make_checker(tp)
    return checker(value, where, depth)


def _fail(where: str, expected: str, value: Any) -> typing.Never:
    raise RemoteProtocolError(f"{where}: expected {expected}, got {type(value).__name__}")


def _make_checker(tp: Any) -> _Checker:
    supertype = getattr(tp, "__supertype__", None)
    if supertype is not None:  # NewType
        return _make_checker(supertype)
    if tp is Any:
        return lambda v, where, depth: check_data(v, where=where, depth=depth)
    if tp is type(None) or tp is None:
        return lambda v, where, depth: v if v is None else _fail(where, "null", v)
    if tp is bool:
        return lambda v, where, depth: v if type(v) is bool else _fail(where, "bool", v)
    if tp is int:
        return lambda v, where, depth: v if type(v) is int else _fail(where, "int", v)
    if tp is float:

        def check_float(v: Any, where: str, depth: int) -> float:
            if type(v) not in (int, float) or not math.isfinite(v):
                _fail(where, "finite number", v)
            return float(v)

        return check_float
    if tp is str:
        return lambda v, where, depth: v if type(v) is str else _fail(where, "str", v)
    if tp is bytes:
        return lambda v, where, depth: v if type(v) is bytes else _fail(where, "bytes", v)
    if dataclasses.is_dataclass(tp):
        return _dataclass_checker(tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        options = list(args)

        def check_union(v: Any, where: str, depth: int) -> Any:
            for option in options:
                try:
                    return _convert(option, v, where, depth)
                except RemoteProtocolError:
                    continue
            _fail(where, " | ".join(getattr(o, "__name__", str(o)) for o in options), v)

        return check_union
    if origin is typing.Literal:
        allowed = set(args)
        return lambda v, where, depth: (
            v if v in allowed and type(v) in (str, int) else _fail(where, f"one of {sorted(map(str, allowed))}", v)
        )
    if origin in (tuple, list, frozenset):
        item = args[0]
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            raise TypeError(f"only homogeneous tuples are supported on the wire, not {tp}")
        build: Callable[[Any], Any] = {tuple: tuple, list: list, frozenset: frozenset}[origin]

        def check_seq(v: Any, where: str, depth: int) -> Any:
            if type(v) is not list:
                _fail(where, "array", v)
            if depth > MAX_DEPTH:
                raise RemoteProtocolError(f"{where}: nested deeper than {MAX_DEPTH}")
            return build(_convert(item, x, f"{where}[{i}]", depth + 1) for i, x in enumerate(v))

        return check_seq
    if origin is dict:
        key_tp, value_tp = args

        def check_dict(v: Any, where: str, depth: int) -> Any:
            if type(v) is not dict:
                _fail(where, "map", v)
            if depth > MAX_DEPTH:
                raise RemoteProtocolError(f"{where}: nested deeper than {MAX_DEPTH}")
            return {
                _convert(key_tp, k, f"{where} key", depth + 1): _convert(value_tp, x, f"{where}.{k}", depth + 1)
                for k, x in v.items()
            }

        return check_dict
    raise TypeError(f"unsupported wire type {tp!r}")


def _dataclass_checker(cls: Any) -> _Checker:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    field_types = [hints[name] for name in names]
    count = len(names)
    fields: list[tuple[str, _Checker]] = []  # resolved on first use (types may refer to each other)

    def check_dc(v: Any, where: str, depth: int) -> Any:
        if type(v) is not list or len(v) != count:
            raise RemoteProtocolError(f"{where}: expected {count} fields")
        if not fields:
            for name, ftp in zip(names, field_types, strict=True):
                checker = _CHECKERS.get(ftp)
                if checker is None:
                    checker = _CHECKERS[ftp] = _make_checker(ftp)
                fields.append((name, checker))
        depth += 1
        values = {}
        try:  # field paths are only built for the error message: decoding is a hot path
            for (name, checker), x in zip(fields, v, strict=True):
                values[name] = checker(x, name, depth)
        except RemoteProtocolError as exc:
            raise RemoteProtocolError(f"{where}.{exc}") from None
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise RemoteProtocolError(f"{where}: {exc}") from exc

    return check_dc


def check_data(value: Any, *, where: str = "value", depth: int = 0) -> Any:
    """Check that ``value`` is JSON-like data (or a master value); raise RemoteProtocolError if not."""
    try:
        return state.check_data(value, where=where, depth=depth)
    except InvalidState as exc:
        raise RemoteProtocolError(str(exc)) from None
