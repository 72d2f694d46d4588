"""Actions, resource types and resource ids (pure)."""

from __future__ import annotations

import functools
import hashlib
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from ..errors import InvalidState, LocalProtocolError
from ..ids import Rid
from .state import freeze, size_of
from .values import fire_deadline

__all__ = [
    "DEFAULT_MAX_BYTES",
    "PRIVATE_MODES",
    "Action",
    "Reducer",
    "ResourceType",
    "TransformContext",
    "Unrevealed",
    "code_version",
    "make_rid",
    "parse_rid",
]


@dataclass(frozen=True, slots=True)
class Action:
    """A named change with an optional payload; pattern-match it as ``Action("type", payload)``.

    ``author`` is the id of the peer that dispatched it, set by the library on every peer (the
    author's own optimistic view included) from the authenticated link it came over; it is
    never part of the payload, never sent, not part of equality, and None for an Action you built.
    """

    type: str
    payload: Any = None
    author: str | None = field(default=None, init=False, compare=False, repr=False, metadata={"wire": False})

    __match_args__ = ("type", "payload")

    def by(self, author: str) -> Action:
        """This action as dispatched by ``author`` (the library's use: reducers see it as ``action.author``)."""
        if self.author == author:
            return self
        authored = Action(self.type, self.payload)
        object.__setattr__(authored, "author", author)
        return authored

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not self.type:
            raise TypeError("Action.type must be a non-empty str")

    def __hash__(self) -> int:
        try:
            return hash((self.type, self.payload))
        except TypeError:  # dict / list payloads: hash by type only, equality stays exact
            return hash(self.type)


@dataclass(frozen=True, slots=True, kw_only=True)
class TransformContext:
    """What a transform sees besides the state: ``now`` is the master's clock (seconds)."""

    now: float


@dataclass(frozen=True, slots=True)
class Unrevealed:
    """A private half that was never revealed: what ``ResourceType(on_unrevealed=...)`` receives.

    ``author`` dispatched the pair as its action ``seq``; ``public`` is the pair's public half (None
    only if this replica never saw it). Its author is gone, or came back without it (a restarted
    process), or did not hand it to the master within the type's ``reveal_timeout``.
    """

    author: str
    seq: int
    public: Action | None


Reducer = Callable[[Any, Action], Any]

DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024
"""The default ``ResourceType.max_bytes``: 64 MiB."""

DEFAULT_REVEAL_TIMEOUT: Final = 10.0
"""The default ``ResourceType.reveal_timeout``: seconds."""

PRIVATE_MODES: Final = ("master", "sealed")
"""The values of ``ResourceType.private``."""


@dataclass(frozen=True, slots=True)
class ResourceType:
    """A kind of resource: its name, pure reducer, initial state and optional hooks.

    ``can_reveal(public_state)`` says when held private actions are revealed to everyone;
    ``transform(state, ctx)`` is a pure view applied on read (never stored, never checksummed);
    ``max_bytes`` bounds a state (and an action) of this type, counted as its CBOR encoding:
    anything up to it syncs, however many such resources a room holds.

    ``on_unrevealed(state, u: Unrevealed) -> state`` runs, in the reveal's entry, for each private
    half that cannot be revealed: its author is gone without it, or connected but did not hand
    it over within ``reveal_timeout`` seconds of the reveal being due. Default: the half is
    dropped and the rest revealed. ``on_deadline(state, now) -> state`` runs, as one entry, when
    the earliest :class:`~movex_p2p.resource.values.Deadline` in the state passes. Both run on every peer (pure, like
    the reducer); one that raises, or breaks the reducer's contract, leaves the state as it was.

    ``version``: peers whose versions of a type differ cannot share its resources (two builds of
    a game with different rules never mix). Default: :func:`code_version` of the reducer,
    ``can_reveal``, ``transform``, ``on_unrevealed`` and ``on_deadline``, so any change to the
    rules changes it.

    ``private`` says who holds a pair's private half until the reveal (docs/security.md):

    - ``"master"`` (the default in 0.3): the master sees it. The author sends it to the master,
      which holds it, may resolve ``mx.master.*`` values in it, and reveals it at once when
      ``can_reveal`` holds. The master cannot change it (a commitment binds it), but it reads it.
    - ``"sealed"``: nobody but its author sees it before the reveal, the master included. The
      author sends only a commitment and keeps the half; when ``can_reveal`` holds, it opens the
      half (signed) and every peer checks the opening against the commitment. It costs one round
      trip at each reveal; ``mx.master.*`` values are refused in a sealed half (the master never
      sees it: use ``mx.fair``); a half not opened within ``reveal_timeout``, or opened with
      something else than what was committed (a ``"forged"`` diagnostic naming its author), goes
      to ``on_unrevealed``.

    1.0 will make ``"sealed"`` the default: in a room of strangers whoever happens to be master
    must not read the hands. 0.3 keeps ``"master"`` so that 0.2 games (``mx.master.*`` values in
    private halves, reveals with no round trip) run unchanged.
    """

    name: str
    reducer: Reducer
    initial: Any = None
    can_reveal: Callable[[Any], bool] | None = field(default=None, kw_only=True)
    transform: Callable[[Any, TransformContext], Any] | None = field(default=None, kw_only=True)
    max_bytes: int = field(default=DEFAULT_MAX_BYTES, kw_only=True)
    version: str = field(default="", kw_only=True)
    reveal_timeout: float = field(default=DEFAULT_REVEAL_TIMEOUT, kw_only=True)
    on_unrevealed: Callable[[Any, Unrevealed], Any] | None = field(default=None, kw_only=True)
    on_deadline: Callable[[Any, float], Any] | None = field(default=None, kw_only=True)
    private: Literal["master", "sealed"] = field(default="master", kw_only=True)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or ":" in self.name:
            raise ValueError(f"resource type name must be a non-empty str without ':', not {self.name!r}")
        if not callable(self.reducer):
            raise TypeError("reducer must be callable")
        if type(self.max_bytes) is not int or self.max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive int, not {self.max_bytes!r}")
        if not isinstance(self.version, str) or len(self.version) > MAX_VERSION:
            raise ValueError(f"version must be a str of at most {MAX_VERSION} characters, not {self.version!r}")
        if type(self.reveal_timeout) not in (int, float) or not 0 <= self.reveal_timeout < float("inf"):
            raise ValueError(f"reveal_timeout must be a finite number of seconds >= 0, not {self.reveal_timeout!r}")
        if self.private not in PRIVATE_MODES:
            raise ValueError(f"private must be one of {PRIVATE_MODES}, not {self.private!r}")
        for hook in ("on_unrevealed", "on_deadline"):
            if getattr(self, hook) is not None and not callable(getattr(self, hook)):
                raise TypeError(f"{hook} must be callable")
        if not self.version:
            hooks = (self.reducer, self.can_reveal, self.transform, self.on_unrevealed, self.on_deadline)
            version = code_version(*hooks)
            object.__setattr__(self, "version", version if self.private == "master" else f"{version}-{self.private}")

    @property
    def sealed(self) -> bool:
        """True when private halves stay with their authors until the reveal (``private="sealed"``)."""
        return self.private == "sealed"

    def rid(self, id: str) -> Rid:
        """The rid of the resource ``id`` of this type."""
        return make_rid(self.name, id)

    def reduce(self, state: Any, action: Action) -> Any:
        """Run the reducer and hold it to its contract: JSON-like data back, frozen (InvalidState if not)."""
        return self.checked(state, self.reducer(state, action), action)

    def checked(self, state: Any, result: Any, action: Action) -> Any:
        """The reducer's ``result`` for ``action`` on ``state``, held to its contract (InvalidState if it
        breaks it). Apart from :meth:`reduce` for callers that catch whatever the app's reducer raises:
        only the reducer call goes under such a catch, so a bug of ours here surfaces."""
        if result is state:
            return state  # unchanged (stored states are frozen already)
        if result is None:
            raise InvalidState(
                f"the {self.name!r} reducer returned None for action {action.type!r}: return the state "
                "(return state unchanged when the action changes nothing)"
            )
        try:
            return freeze(result)
        except InvalidState as exc:
            raise InvalidState(
                f"the {self.name!r} reducer returned data that is not JSON-like for action {action.type!r}: {exc}"
            ) from None

    def unrevealed(self, state: Any, lost: Unrevealed) -> tuple[Any, str | None]:
        """The state once ``on_unrevealed`` handled ``lost``, and why it failed (then the state is unchanged)."""
        hook = self.on_unrevealed
        if hook is None:
            return state, None
        return self._run_hook(state, lambda: hook(state, lost), "on_unrevealed")

    def elapse(self, state: Any, deadline: float, now: float) -> tuple[Any, str | None]:
        """The state once the deadline at ``deadline`` fired at ``now`` (marked fired, then ``on_deadline``),
        and why ``on_deadline`` failed (then the state is only marked)."""
        marked = freeze(fire_deadline(state, deadline))
        hook = self.on_deadline
        if hook is None:
            return marked, None
        return self._run_hook(marked, lambda: hook(marked, now), "on_deadline")

    def _run_hook(self, state: Any, call: Callable[[], Any], hook: str) -> tuple[Any, str | None]:
        """Run the app's ``hook`` held to the reducer's contract and to max_bytes: its result, or ``state``
        and why not (contained identically on every peer)."""
        try:
            result = call()
            if result is state:
                return state, None
            if result is None:
                return state, f"the {self.name!r} {hook} returned None: return the state"
            result = freeze(result)
        except Exception as exc:  # the app's code, or data that is not JSON-like
            return state, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        size = size_of(result)
        if size > self.max_bytes:
            return state, f"the {self.name!r} {hook} returned {size} bytes, over max_bytes {self.max_bytes}"
        return result, None


def make_rid(type_name: str, id: str) -> Rid:
    """Build ``"type:id"``; both parts must be non-empty and the type has no colon."""
    if not type_name or ":" in type_name:
        raise LocalProtocolError(f"invalid resource type {type_name!r}")
    if not isinstance(id, str) or not id:
        raise LocalProtocolError(f"invalid resource id {id!r}")
    return Rid(f"{type_name}:{id}")


def parse_rid(rid: str) -> tuple[str, str]:
    """Split ``"type:id"`` at the first colon; both parts must be non-empty."""
    if not isinstance(rid, str):
        raise LocalProtocolError(f"a rid must be a str, not {type(rid).__name__}")
    type_name, sep, id = rid.partition(":")
    if not sep or not type_name or not id:
        raise LocalProtocolError(f"invalid rid {rid!r}: expected 'type:id'")
    return type_name, id


MAX_VERSION: Final = 64
"""The longest ``ResourceType.version`` (it travels in every peer's introduction)."""

_HELPER_DEPTH: Final = 4  # helper functions followed from a reducer, at most this many calls deep
_DATA_LIMIT: Final = 65_536  # characters of a module constant's repr taken into the digest


def code_version(*functions: object) -> str:
    """A digest of what ``functions`` compute: their bytecode, constants, defaults and closures, and
    the helper functions and constants of their own module that they use (followed a few calls deep).

    Stable across processes and machines for one Python minor version (bytecode differs between
    3.11 and 3.13, so the digest starts with the version: ``"py311-..."``). ``None`` entries are skipped.
    """
    digest = hashlib.blake2b(digest_size=6)
    seen: set[types.CodeType] = set()
    for fn in functions:
        if fn is not None:
            _digest_callable(fn, digest, seen, 0)
    return f"py{sys.version_info[0]}{sys.version_info[1]}-{digest.hexdigest()}"


def _digest_callable(fn: object, digest: Any, seen: set[types.CodeType], depth: int) -> None:
    while isinstance(fn, functools.partial):
        digest.update(f"partial{_data(fn.args)}{_data(fn.keywords)}".encode())
        fn = fn.func
    if isinstance(fn, types.MethodType):
        fn = fn.__func__
    if not isinstance(fn, types.FunctionType):  # a callable object: its class and its __call__
        digest.update(f"{type(fn).__module__}.{type(fn).__qualname__}".encode())
        call = vars(type(fn)).get("__call__")
        if isinstance(call, types.FunctionType):
            _digest_callable(call, digest, seen, depth)
        return
    code = fn.__code__
    if code in seen:
        return
    seen.add(code)
    names: set[str] = set()
    _digest_code(code, digest, names)
    digest.update(f"defaults{_data(fn.__defaults__)}{_data(fn.__kwdefaults__)}".encode())
    for cell in fn.__closure__ or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if callable(value) and not isinstance(value, type):
            _digest_callable(value, digest, seen, depth + 1)
        else:
            digest.update(f"cell{_data(value)}".encode())
    if depth >= _HELPER_DEPTH:
        return
    module = fn.__module__
    for name in sorted(names):
        value = fn.__globals__.get(name)
        if isinstance(value, types.FunctionType) and value.__module__ == module:
            _digest_callable(value, digest, seen, depth + 1)
        elif isinstance(value, (bool, int, float, str, bytes, tuple, list, dict, frozenset, set)):
            digest.update(f"{name}={_data(value)}".encode())


def _digest_code(code: types.CodeType, digest: Any, names: set[str]) -> None:
    digest.update(code.co_code)
    digest.update(repr(code.co_names).encode())
    names.update(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _digest_code(const, digest, names)
        else:
            digest.update(_data(const).encode())


def _data(value: object) -> str:
    """A deterministic text for constants (sets sorted; long ones cut, with their length)."""
    if isinstance(value, (frozenset, set)):
        text = "{" + ",".join(sorted(_data(item) for item in value)) + "}"
    elif isinstance(value, tuple | list):
        text = "[" + ",".join(_data(item) for item in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ",".join(f"{_data(k)}:{_data(v)}" for k, v in value.items()) + "}"
    elif value is None or isinstance(value, (bool, int, float, str, bytes)) or value is Ellipsis:
        text = repr(value)
    else:
        text = type(value).__qualname__  # an object: its kind only (its repr may hold an address)
    return text if len(text) <= _DATA_LIMIT else f"{text[:_DATA_LIMIT]}...{len(text)}"
