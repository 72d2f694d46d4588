"""The one codec: every message is a frozen dataclass; a frame is CBOR ``[tag, *fields]`` or a batch.

A batch frame is ``[0, [[tag, *fields], ...]]``. Tags: 0 = batch, 1-29 the node (``presence.py``),
30-59 and 80-89 (fair draws) resources (``resource/messages.py``), 60-79 election (``election/messages.py``),
90-99 proof of censorship (``censorship.py``); they are wire format: append, never renumber. Decoding
validates every field against the dataclass's type hints, so hostile bytes raise
:class:`RemoteProtocolError` and nothing else. :data:`ROUTES` and
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

from . import censorship as cm
from . import presence as pm
from .election import messages as em
from .errors import InvalidState, RemoteProtocolError
from .resource import messages as rm
from .resource import state
from .resource.state import MAX_DEPTH
from .resource.values import MasterValue
from .routes import Lane, Route

__all__ = [
    "DECODE_LIMIT",
    "DECODE_SLACK",
    "INT_LIMIT",
    "LANES",
    "MAX_DEPTH",
    "ROUTES",
    "Message",
    "check_data",
    "decode",
    "encode",
    "encode_many",
    "join",
    "wire_fields",
]

DECODE_SLACK: Final = 2**20
"""Bytes a frame may carry besides its largest state: the message around it and small messages."""

DECODE_LIMIT: Final = 64 * 2**20 + DECODE_SLACK
"""The largest frame :func:`decode` accepts by default, in bytes: the largest state a resource may
hold by default (64 MiB, ``ResourceType.max_bytes``) plus :data:`DECODE_SLACK`. The Peer raises it
to its largest type's ``max_bytes``. A bound on what one frame may allocate, not a transport
limit: transports split large frames into pieces themselves."""

_MASTER_VALUE_TAG: Final = 40411
_BATCH_TAG: Final = 0
_ENVELOPE_DEPTH: Final = 16  # CBOR nesting the messages themselves add around payloads and states

Message = rm.ResourceMessage | em.ElectionMessage | pm.NodeMessage | cm.CensorMessage

_BY_TAG: Final[dict[int, type[Message]]] = {**pm.MESSAGES, **rm.MESSAGES, **em.MESSAGES, **cm.MESSAGES}
if len(_BY_TAG) != len(pm.MESSAGES) + len(rm.MESSAGES) + len(em.MESSAGES) + len(
    cm.MESSAGES
):  # pragma: no cover - a build error
    raise RuntimeError("two messages modules declare the same wire tag")

ROUTES: Final[dict[type[Message], Route]] = dict(
    itertools.chain(pm.ROUTES.items(), rm.ROUTES.items(), em.ROUTES.items(), cm.ROUTES.items())
)
"""The route of every wire message (declared next to the messages)."""

LANES: Final[dict[type[Message], Lane]] = dict(
    itertools.chain(pm.LANES.items(), rm.LANES.items(), em.LANES.items(), cm.LANES.items())
)
"""The lane of every wire message (declared next to the messages)."""


# -- encoding ---------------------------------------------------------------------------------


def _default(encoder: cbor2.CBOREncoder, value: Any) -> None:
    if isinstance(value, MasterValue):
        encoder.encode(cbor2.CBORTag(_MASTER_VALUE_TAG, [value.kind, list(value.args)]))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        encoder.encode(_fields(value))
    else:
        raise TypeError(f"cannot encode {type(value).__name__}")


def _tagged(message: Message) -> list[Any]:
    encoder = _ENCODERS.get(type(message))
    if encoder is None:
        raise TypeError(f"{type(message).__name__} is not a registered wire message")
    return encoder(message)


def wire_fields(cls: Any) -> list[dataclasses.Field[Any]]:
    """The fields of a dataclass that travel, in order (``metadata={"wire": False}`` stays home)."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("wire", True)]


def _fields(value: Any) -> list[Any]:
    """A dataclass outside the schema (the fallback of ``_default``): its fields in order."""
    return [getattr(value, f.name) for f in wire_fields(value)]


def encode(message: Message) -> bytes:
    """Encode one message into one frame."""
    encoder = _ENCODERS.get(type(message))
    if encoder is None:
        raise TypeError(f"{type(message).__name__} is not a registered wire message")
    return cbor2.dumps(encoder(message), default=_default)


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
    checker = _CHECKERS.get(cls)
    if checker is None:
        checker = _CHECKERS[cls] = _make_checker(cls)
    message: Message = checker(raw[1:], cls.__name__)
    return message


# -- validation against type hints ------------------------------------------------------------
# Every message class gets a generated encoder (a message to nested lists: one call, no
# per-field helper) and a generated checker (nested lists to a validated message: scalar fields
# checked inline). Schema containers (tuples, dicts of positions...) are only as deep as the
# schema; data fields (``Any``: payloads, states) are checked from their own root, as freeze()
# checks them locally, so a payload accepted at dispatch is accepted on the wire.

_Checker = Callable[[Any, str], Any]
_CHECKERS: dict[Any, _Checker] = {}
_PLAIN: Final = (type(None), bool, int, str, bytes)  # data that needs no check_data call
_INLINE: Final = {int: "int", str: "str", bytes: "bytes", bool: "bool"}
INT_LIMIT: Final = 2**63
"""Every int field of a message (terms, indexes, versions, seqs...) lies in [-INT_LIMIT, INT_LIMIT):
a peer cannot make us compute with a 2**15000 term. Ints inside app data (payloads, states) are the app's."""


def _convert(tp: Any, value: Any, where: str) -> Any:
    checker = _CHECKERS.get(tp)
    if checker is None:
        checker = _CHECKERS[tp] = _make_checker(tp)
    return checker(value, where)


def _fail(where: str, expected: str, value: Any) -> typing.Never:
    raise RemoteProtocolError(f"{where}: expected {expected}, got {type(value).__name__}")


def _base(tp: Any) -> Any:
    """``tp`` without NewType wrappers."""
    while getattr(tp, "__supertype__", None) is not None:
        tp = tp.__supertype__
    return tp


def _optional(tp: Any) -> Any | None:
    """``T`` for ``T | None``, else None."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0]
    return None


def _make_checker(tp: Any) -> _Checker:
    tp = _base(tp)
    if tp is Any:
        return lambda v, where: v if type(v) in _PLAIN else check_data(v, where=where)
    if tp is type(None) or tp is None:
        return lambda v, where: v if v is None else _fail(where, "null", v)
    if tp is int:
        return lambda v, where: v if type(v) is int and -INT_LIMIT <= v < INT_LIMIT else _fail(where, "int64", v)
    if tp in _INLINE:
        name = _INLINE[tp]
        return lambda v, where: v if type(v) is tp else _fail(where, name, v)
    if tp is float:

        def check_float(v: Any, where: str) -> float:
            if type(v) not in (int, float) or not math.isfinite(v):
                _fail(where, "finite number", v)
            return float(v)

        return check_float
    if dataclasses.is_dataclass(tp):
        return _generate_checker(tp)
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
            v if type(v) in (str, int) and v in allowed else _fail(where, f"one of {sorted(map(str, allowed))}", v)
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


def _check_statements(tp: Any, var: str, name: str, env: dict[str, Any]) -> list[str]:
    """Source lines that check (and may convert) field ``name`` held in ``var``."""
    tp = _base(tp)
    inner = _optional(tp)
    if inner is not None:
        body = _check_statements(inner, var, name, env)
        return [f"if {var} is not None:", *(f"    {line}" for line in body)]
    if tp is int:
        return [
            f"if type({var}) is not int or not -{INT_LIMIT} <= {var} < {INT_LIMIT}: _fail({name!r}, 'int64', {var})"
        ]
    if tp in _INLINE:
        return [f"if type({var}) is not {tp.__name__}: _fail({name!r}, {_INLINE[tp]!r}, {var})"]
    if tp is Any:
        return [f"if type({var}) not in _PLAIN: check_data({var}, where={name!r})"]
    checker = f"_c_{len(env)}"
    env[checker] = _make_checker(tp)
    return [f"{var} = {checker}({var}, {name!r})"]


def _generate_checker(cls: Any) -> _Checker:
    """A function that checks ``[field, ...]`` against ``cls``'s type hints and builds it."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in wire_fields(cls)]
    env: dict[str, Any] = {"cls": cls, "_fail": _fail, "_PLAIN": _PLAIN, "check_data": check_data}
    env["RemoteProtocolError"] = RemoteProtocolError
    lines = [
        "def check(v, where):",
        f"    if type(v) is not list or len(v) != {len(names)}:",
        f"        raise RemoteProtocolError(f'{{where}}: expected {len(names)} fields')",
        f"    {', '.join(f'x{i}' for i in range(len(names)))}{',' if len(names) == 1 else ''} = v",
        "    try:",
    ]
    for i, name in enumerate(names):
        lines += [f"        {line}" for line in _check_statements(hints[name], f"x{i}", name, env)]
    lines += [
        "    except RemoteProtocolError as exc:",
        "        raise RemoteProtocolError(f'{where}.{exc}') from None",
        "    try:",
        f"        return cls({', '.join(f'{name}=x{i}' for i, name in enumerate(names))})",
        "    except (TypeError, ValueError) as exc:",
        "        raise RemoteProtocolError(f'{where}: {exc}') from exc",
    ]
    exec("\n".join(lines), env)  # our own dataclasses' field names only
    check: _Checker = env["check"]
    return check


def _encode_expression(tp: Any, expr: str, depth: int = 0) -> str:
    """A Python expression turning ``expr`` (a value of type ``tp``) into CBOR-ready nested lists."""
    tp = _base(tp)
    inner = _optional(tp)
    if inner is not None:
        inner_expr = _encode_expression(inner, expr, depth)
        return expr if inner_expr == expr else f"(None if {expr} is None else {inner_expr})"
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        parts = [_encode_expression(hints[f.name], f"{expr}.{f.name}", depth) for f in wire_fields(tp)]
        return f"[{', '.join(parts)}]"
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (tuple, list, frozenset):
        item = f"i{depth}"
        item_expr = _encode_expression(args[0], item, depth + 1)
        return expr if item_expr == item else f"[{item_expr} for {item} in {expr}]"
    if origin is dict:
        key, item = f"k{depth}", f"v{depth}"
        item_expr = _encode_expression(args[1], item, depth + 1)
        return expr if item_expr == item else f"{{{key}: {item_expr} for {key}, {item} in {expr}.items()}}"
    return expr  # scalars and data: cbor2 (and _default, for master values) take them as they are


def _generate_encoder(cls: Any, tag: int) -> Callable[[Any], list[Any]]:
    """A function turning a ``cls`` message into ``[tag, *fields]`` with nested messages as lists."""
    hints = typing.get_type_hints(cls)
    parts = [_encode_expression(hints[f.name], f"m.{f.name}") for f in wire_fields(cls)]
    env: dict[str, Any] = {}
    exec(f"def encode(m):\n    return [{tag}, {', '.join(parts)}]", env)  # our own dataclasses' field names only
    encoder: Callable[[Any], list[Any]] = env["encode"]
    return encoder


_ENCODERS: Final[dict[type[Any], Callable[[Any], list[Any]]]] = {
    cls: _generate_encoder(cls, tag) for tag, cls in _BY_TAG.items()
}


def check_data(value: Any, *, where: str = "value") -> Any:
    """Check that ``value`` is JSON-like data (or a master value); raise RemoteProtocolError if not."""
    try:
        return state.check_data(value, where=where)
    except InvalidState as exc:
        raise RemoteProtocolError(str(exc)) from None
