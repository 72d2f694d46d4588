"""The one codec: every message is a frozen dataclass; a frame is CBOR ``[tag, *fields]`` or a batch.

A batch frame is ``[0, [[tag, *fields], ...]]``. Tags: 0 = batch, 1-29 reserved for the node,
30-59 resources (``resource/messages.py``), 60-79 election (``election/messages.py``); they are
wire format: append, never renumber. Decoding validates every field against the dataclass's type
hints, so hostile bytes raise :class:`RemoteProtocolError` and nothing else. :data:`ROUTES` and
:data:`LANES` merge what each messages module declares about its messages.
"""

from __future__ import annotations

import dataclasses
import itertools
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
from .resource.state import MAX_DEPTH
from .resource.values import MasterValue
from .routes import Lane, Route

__all__ = [
    "DECODE_LIMIT",
    "LANES",
    "MAX_DEPTH",
    "ROUTES",
    "Message",
    "check_data",
    "decode",
    "encode",
    "encode_many",
    "join",
]

DECODE_LIMIT: Final = 64 * 2**20 + 2**20
"""The largest frame :func:`decode` accepts by default, in bytes: the largest state a resource may
hold by default (64 MiB) plus 1 MiB for the message around it. A bound on what one frame may
allocate, not a transport limit: transports split large frames into chunks themselves."""

_MASTER_VALUE_TAG: Final = 40411
_BATCH_TAG: Final = 0
_ENVELOPE_DEPTH: Final = 16  # CBOR nesting the messages themselves add around payloads and states

Message = rm.ResourceMessage | em.ElectionMessage

_BY_TAG: Final[dict[int, type[Message]]] = {**rm.MESSAGES, **em.MESSAGES}
_TAG_OF: Final[dict[type[Any], int]] = {cls: tag for tag, cls in _BY_TAG.items()}

ROUTES: Final[dict[type[Message], Route]] = dict(itertools.chain(rm.ROUTES.items(), em.ROUTES.items()))
"""The route of every wire message (declared next to the messages)."""

LANES: Final[dict[type[Message], Lane]] = dict(itertools.chain(rm.LANES.items(), em.LANES.items()))
"""The lane of every wire message (declared next to the messages)."""


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


def decode(data: bytes, *, limit: int = DECODE_LIMIT) -> list[Message]:
    """Decode one frame into its messages; raise RemoteProtocolError on anything malformed or over ``limit`` bytes."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise RemoteProtocolError("a frame must be bytes")
    if len(data) > limit:
        raise RemoteProtocolError(f"frame of {len(data)} bytes exceeds {limit}")
    try:
        raw = cbor2.loads(
            bytes(data),
            tag_hook=_tag_hook,
            max_depth=MAX_DEPTH + _ENVELOPE_DEPTH,
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
    message: Message = _convert(cls, raw[1:], cls.__name__)
    return message


# -- validation against type hints ------------------------------------------------------------
# Schema containers (tuples, dicts of positions...) are only as deep as the schema; data fields
# (``Any``: payloads, states) are checked from their own root, as freeze() checks them locally,
# so a payload accepted at dispatch is accepted on the wire.

_Checker = Callable[[Any, str], Any]
_CHECKERS: dict[Any, _Checker] = {}


def _convert(tp: Any, value: Any, where: str) -> Any:
    checker = _CHECKERS.get(tp)
    if checker is None:
        checker = _CHECKERS[tp] = _make_checker(tp)
    return checker(value, where)


def _fail(where: str, expected: str, value: Any) -> typing.Never:
    raise RemoteProtocolError(f"{where}: expected {expected}, got {type(value).__name__}")


def _make_checker(tp: Any) -> _Checker:
    supertype = getattr(tp, "__supertype__", None)
    if supertype is not None:  # NewType
        return _make_checker(supertype)
    if tp is Any:  # data (payloads, states): its depth counts from its own root, as in freeze()
        return lambda v, where: check_data(v, where=where)
    if tp is type(None) or tp is None:
        return lambda v, where: v if v is None else _fail(where, "null", v)
    if tp is bool:
        return lambda v, where: v if type(v) is bool else _fail(where, "bool", v)
    if tp is int:
        return lambda v, where: v if type(v) is int else _fail(where, "int", v)
    if tp is float:

        def check_float(v: Any, where: str) -> float:
            if type(v) not in (int, float) or not math.isfinite(v):
                _fail(where, "finite number", v)
            return float(v)

        return check_float
    if tp is str:
        return lambda v, where: v if type(v) is str else _fail(where, "str", v)
    if tp is bytes:
        return lambda v, where: v if type(v) is bytes else _fail(where, "bytes", v)
    if dataclasses.is_dataclass(tp):
        return _dataclass_checker(tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        options = list(args)

        def check_union(v: Any, where: str) -> Any:
            for option in options:
                try:
                    return _convert(option, v, where)
                except RemoteProtocolError:
                    continue
            _fail(where, " | ".join(getattr(o, "__name__", str(o)) for o in options), v)

        return check_union
    if origin is typing.Literal:
        allowed = set(args)
        return lambda v, where: (
            v if v in allowed and type(v) in (str, int) else _fail(where, f"one of {sorted(map(str, allowed))}", v)
        )
    if origin in (tuple, list, frozenset):
        item = args[0]
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            raise TypeError(f"only homogeneous tuples are supported on the wire, not {tp}")
        build: Callable[[Any], Any] = {tuple: tuple, list: list, frozenset: frozenset}[origin]

        def check_seq(v: Any, where: str) -> Any:
            if type(v) is not list:
                _fail(where, "array", v)
            return build(_convert(item, x, f"{where}[{i}]") for i, x in enumerate(v))

        return check_seq
    if origin is dict:
        key_tp, value_tp = args

        def check_dict(v: Any, where: str) -> Any:
            if type(v) is not dict:
                _fail(where, "map", v)
            return {_convert(key_tp, k, f"{where} key"): _convert(value_tp, x, f"{where}.{k}") for k, x in v.items()}

        return check_dict
    raise TypeError(f"unsupported wire type {tp!r}")


def _dataclass_checker(cls: Any) -> _Checker:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    field_types = [hints[name] for name in names]
    count = len(names)
    fields: list[tuple[str, _Checker]] = []  # resolved on first use (types may refer to each other)

    def check_dc(v: Any, where: str) -> Any:
        if type(v) is not list or len(v) != count:
            raise RemoteProtocolError(f"{where}: expected {count} fields")
        if not fields:
            for name, ftp in zip(names, field_types, strict=True):
                checker = _CHECKERS.get(ftp)
                if checker is None:
                    checker = _CHECKERS[ftp] = _make_checker(ftp)
                fields.append((name, checker))
        values = {}
        try:  # field paths are only built for the error message: decoding is a hot path
            for (name, checker), x in zip(fields, v, strict=True):
                values[name] = checker(x, name)
        except RemoteProtocolError as exc:
            raise RemoteProtocolError(f"{where}.{exc}") from None
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise RemoteProtocolError(f"{where}: {exc}") from exc

    return check_dc


def check_data(value: Any, *, where: str = "value") -> Any:
    """Check that ``value`` is JSON-like data (or a master value); raise RemoteProtocolError if not."""
    try:
        return state.check_data(value, where=where)
    except InvalidState as exc:
        raise RemoteProtocolError(str(exc)) from None
