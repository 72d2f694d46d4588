"""Master values: placeholders in payloads that only the master resolves (pure)."""

from __future__ import annotations

import hashlib
import uuid as _uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import random

__all__ = ["MasterValue", "has_master_values", "master", "resolve_master_values"]

_KINDS: Final = {"now": 0, "random": 0, "random_int": 2, "uuid": 0}


@dataclass(frozen=True, slots=True)
class MasterValue:
    """A placeholder replaced by the master before the reducer runs."""

    kind: str
    args: tuple[int, ...] = ()

    @classmethod
    def build(cls, kind: Any, args: tuple[Any, ...]) -> MasterValue:
        """Validate untrusted parts and build a placeholder."""
        if kind not in _KINDS or len(args) != _KINDS[kind]:
            raise ValueError(f"unknown master value {kind!r}/{len(args)}")
        if any(type(a) is not int for a in args):
            raise TypeError("master value arguments must be ints")
        if kind == "random_int" and args[0] > args[1]:
            raise ValueError("random_int(a, b) needs a <= b")
        return cls(kind, args)

    def __repr__(self) -> str:
        return f"master.{self.kind}({', '.join(map(str, self.args))})"


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


master: Final = _Master()


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
                return rng.randint(value.args[0], value.args[1])
            case _:  # "uuid"
                return str(_uuid.UUID(int=rng.getrandbits(128), version=4))
    if kind is list or kind is tuple:
        return [resolve_master_values(item, now=now, rng=rng) for item in value]
    if isinstance(value, dict):
        return {key: resolve_master_values(item, now=now, rng=rng) for key, item in value.items()}
    return value


def seed_for(salt: bytes, term: int, rid: str, version: int) -> int:
    """A seed unique to (term, rid, version) under the master's secret salt."""
    digest = hashlib.blake2b(f"{term}:{rid}:{version}".encode(), key=salt[:64], digest_size=16).digest()
    return int.from_bytes(digest, "big")
