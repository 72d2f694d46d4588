"""Master values: placeholders in payloads that only the master resolves (pure)."""

from __future__ import annotations

import hashlib
import math
import uuid as _uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import random

__all__ = [
    "DEADLINE_KEY",
    "FAIR_KINDS",
    "FIRED_KEY",
    "MAX_FAIR_ITEMS",
    "Deadline",
    "MasterValue",
    "earliest_deadline",
    "fair",
    "fire_deadline",
    "has_fair_values",
    "has_master_values",
    "has_unfair_values",
    "master",
    "resolve_master_values",
]

_KINDS: Final = {"now": 0, "random": 0, "random_int": 2, "uuid": 0, "deadline": 1, "fair_int": 2}

FAIR_KINDS: Final = frozenset({"fair_int", "fair_choice", "fair_shuffle"})
"""The kinds of ``mx.fair`` placeholders: resolved from every player's contribution, not by the master."""

MAX_FAIR_ITEMS: Final = 4096
"""The most items ``fair.choice`` and ``fair.shuffle`` take."""

DEADLINE_KEY: Final = "$deadline"
"""The key of a deadline in a state: ``{"$deadline": seconds since the epoch}`` (see :class:`Deadline`)."""

FIRED_KEY: Final = "$fired"
"""Set to True in a deadline once the type's ``on_deadline`` ran for it."""

MAX_DEADLINE_SECONDS: Final = 10**9
"""The longest ``master.deadline(seconds)``."""


@dataclass(frozen=True, slots=True)
class MasterValue:
    """A placeholder replaced by the master before the reducer runs."""

    kind: str
    args: tuple[Any, ...] = ()

    @classmethod
    def build(cls, kind: Any, args: tuple[Any, ...]) -> MasterValue:
        """Validate untrusted parts and build a placeholder."""
        if kind in ("fair_choice", "fair_shuffle"):
            if not 1 <= len(args) <= MAX_FAIR_ITEMS:
                raise ValueError(f"fair.choice/shuffle take 1 to {MAX_FAIR_ITEMS} items, not {len(args)}")
            items = tuple(_plain(item) for item in args)
            if any(has_master_values(item) for item in items):
                raise ValueError("the items of fair.choice/shuffle cannot hold placeholders")
            return cls(kind, items)
        if kind not in _KINDS or len(args) != _KINDS[kind]:
            raise ValueError(f"unknown master value {kind!r}/{len(args)}")
        if kind == "deadline":
            seconds = args[0]
            if type(seconds) not in (int, float) or not 0 <= seconds <= MAX_DEADLINE_SECONDS:
                raise ValueError(f"deadline(seconds) needs 0 <= seconds <= {MAX_DEADLINE_SECONDS}, not {seconds!r}")
            return cls(kind, args)
        if any(type(a) is not int for a in args):
            raise TypeError("master value arguments must be ints")
        if kind in ("random_int", "fair_int") and args[0] > args[1]:
            raise ValueError(f"{'fair.' if kind == 'fair_int' else ''}random_int(a, b) needs a <= b")
        return cls(kind, args)

    def __repr__(self) -> str:
        if self.kind in FAIR_KINDS:
            name = self.kind.removeprefix("fair_")
            shown = ", ".join(map(str, self.args)) if name == "int" else repr(list(self.args))
            return f"fair.{'random_int' if name == 'int' else name}({shown})"
        return f"master.{self.kind}({', '.join(map(str, self.args))})"


def _plain(value: Any, depth: int = 0) -> Any:
    """``value`` with every mapping a dict and every sequence a list (what a frozen or decoded item was)."""
    if depth > 64:
        raise ValueError("the items of fair.choice/shuffle are nested too deep")
    if isinstance(value, Mapping):
        return {key: _plain(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item, depth + 1) for item in value]
    return value


class _Master:
    """Constructors for master values: ``mx.master.now()`` and friends."""

    @staticmethod
    def now() -> MasterValue:
        """The master's clock, in seconds, when it applies the action."""
        return MasterValue("now")

    @staticmethod
    def random() -> MasterValue:
        """A float in [0, 1) drawn by the master."""
        return MasterValue("random")

    @staticmethod
    def random_int(a: int, b: int) -> MasterValue:
        """An int in [a, b] (inclusive) drawn by the master."""
        return MasterValue.build("random_int", (a, b))

    @staticmethod
    def uuid() -> MasterValue:
        """A random UUID (str) drawn by the master."""
        return MasterValue("uuid")

    @staticmethod
    def deadline(seconds: float) -> MasterValue:
        """A :class:`Deadline` ``seconds`` from the master's clock when it applies the action.

        Once it passes, the type's ``on_deadline`` runs (see :class:`Deadline`).
        """
        return MasterValue.build("deadline", (seconds,))


master: Final = _Master()


class _Fair:
    """Constructors for fair values: ``mx.fair.random_int(1, 6)`` and friends.

    Put them in an action's public payload like master values. The master cannot pick them: each
    player (every connected peer) gives the draw the next element of a hash chain it committed
    to in advance, the value is a hash of the action and all of them, and every peer checks it
    before applying the action (docs/security.md, "Fair randomness"). It costs one more round
    trip between the master and the players. Not allowed in a private half.
    """

    @staticmethod
    def random_int(a: int, b: int) -> MasterValue:
        """An int in [a, b] (inclusive), drawn fairly."""
        return MasterValue.build("fair_int", (a, b))

    @staticmethod
    def choice(seq: Any) -> Any:
        """One item of ``seq`` (a non-empty sequence of data), drawn fairly."""
        return MasterValue.build("fair_choice", tuple(seq))

    @staticmethod
    def shuffle(seq: Any) -> Any:
        """A list of the items of ``seq`` in an order drawn fairly (``seq`` itself is not changed)."""
        return MasterValue.build("fair_shuffle", tuple(seq))


fair: Final = _Fair()


def has_fair_values(value: Any) -> bool:
    """True if ``value`` holds an ``mx.fair`` placeholder anywhere."""
    kind = type(value)
    if kind is MasterValue:
        return bool(value.kind in FAIR_KINDS)
    if kind is list or kind is tuple:
        return any(has_fair_values(item) for item in value)
    if isinstance(value, dict):
        return any(has_fair_values(item) for item in value.values())
    return False


def has_master_values(value: Any) -> bool:
    """True if ``value`` holds a placeholder anywhere (lists and dict values included)."""
    kind = type(value)
    if kind is MasterValue:
        return True
    if kind is list or kind is tuple:
        return any(has_master_values(item) for item in value)
    if isinstance(value, dict):
        return any(has_master_values(item) for item in value.values())
    return False


def has_unfair_values(value: Any) -> bool:
    """True if ``value`` holds an ``mx.master`` placeholder (one the master picks) anywhere."""
    kind = type(value)
    if kind is MasterValue:
        return bool(value.kind not in FAIR_KINDS)
    if kind is list or kind is tuple:
        return any(has_unfair_values(item) for item in value)
    if isinstance(value, dict):
        return any(has_unfair_values(item) for item in value.values())
    return False


def resolve_master_values(value: Any, *, now: float, rng: random.Random) -> Any:
    """Return a copy of ``value`` with every placeholder replaced; the input is not changed."""
    kind = type(value)
    if kind is MasterValue:
        match value.kind:
            case "now":
                return now
            case "random":
                return rng.random()
            case "random_int":
                return rng.randint(int(value.args[0]), int(value.args[1]))
            case "deadline":
                return Deadline.at(now + value.args[0])
            case "fair_int" | "fair_choice" | "fair_shuffle":
                raise ValueError(f"{value!r} is drawn by the players (resource.fair.resolve_fair), not the master")
            case _:  # "uuid"
                return str(_uuid.UUID(int=rng.getrandbits(128), version=4))
    if kind is list or kind is tuple:
        return [resolve_master_values(item, now=now, rng=rng) for item in value]
    if isinstance(value, dict):
        return {key: resolve_master_values(item, now=now, rng=rng) for key, item in value.items()}
    return value


class Deadline:
    """A wall-clock deadline in a state: the plain dict ``{"$deadline": seconds since the epoch}``.

    ``mx.master.deadline(30)`` in a payload becomes one, drawn by the master; a reducer stores it
    in the state like any value, and ``on_deadline`` may build one with :meth:`at` (from its
    ``now``). When the earliest deadline in a state of a type with ``on_deadline`` passes on the
    master's clock, the master appends one entry that marks it fired (``"$fired": True`` is added,
    so it never fires again) and runs ``on_deadline(state, now)``. Being data, it is checksummed
    and replicated like the rest of the state, so a new master finds it where the last one left it.
    """

    __slots__ = ()

    @staticmethod
    def at(when: float) -> dict[str, Any]:
        """The deadline at ``when`` (seconds since the epoch, the master's clock)."""
        if type(when) not in (int, float) or not math.isfinite(when):
            raise ValueError(f"a deadline is a finite number of seconds, not {when!r}")
        return {DEADLINE_KEY: when}

    @staticmethod
    def of(value: Any) -> float | None:
        """The time of ``value`` if it is a deadline (fired or not), else None."""
        if not isinstance(value, dict) or DEADLINE_KEY not in value:
            return None
        when = value[DEADLINE_KEY]
        if type(when) not in (int, float) or not all(k in (DEADLINE_KEY, FIRED_KEY) for k in value):
            return None
        return float(when)

    @staticmethod
    def fired(value: Any) -> bool:
        """True if ``value`` is a deadline whose ``on_deadline`` already ran."""
        return Deadline.of(value) is not None and value.get(FIRED_KEY) is True


def earliest_deadline(state: Any) -> float | None:
    """The earliest deadline in ``state`` not fired yet, or None."""
    if isinstance(state, dict):
        when = Deadline.of(state)
        if when is not None:
            return None if state.get(FIRED_KEY) is True else when
        items: Any = state.values()
    elif isinstance(state, list):
        items = state
    else:
        return None
    found: float | None = None
    for item in items:
        if isinstance(item, dict | list):
            t = earliest_deadline(item)
            if t is not None and (found is None or t < found):
                found = t
    return found


def fire_deadline(state: Any, when: float) -> Any:
    """``state`` with every deadline at ``when`` not fired yet marked fired (unchanged parts shared)."""
    if isinstance(state, dict):
        at = Deadline.of(state)
        if at is not None:
            if at == when and state.get(FIRED_KEY) is not True:
                return {DEADLINE_KEY: state[DEADLINE_KEY], FIRED_KEY: True}
            return state
        changed = {}
        for key, item in state.items():
            if isinstance(item, dict | list):
                new = fire_deadline(item, when)
                if new is not item:
                    changed[key] = new
        return {**state, **changed} if changed else state
    if isinstance(state, list):
        items = [fire_deadline(item, when) if isinstance(item, dict | list) else item for item in state]
        return items if any(a is not b for a, b in zip(items, state, strict=True)) else state
    return state


def seed_for(salt: bytes, term: int, rid: str, version: int) -> int:
    """A seed unique to (term, rid, version) under the master's secret salt."""
    digest = hashlib.blake2b(f"{term}:{rid}:{version}".encode(), key=salt[:64], digest_size=16).digest()
    return int.from_bytes(digest, "big")
