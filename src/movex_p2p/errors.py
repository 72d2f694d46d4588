"""The one exception tree of movex_p2p: everything raised on purpose is a MovexError."""

from __future__ import annotations

__all__ = [
    "ActionRejected",
    "ActionStuck",
    "AuthenticationFailed",
    "ChannelClosed",
    "ConnectError",
    "IdentityFileError",
    "IncompatibleType",
    "InsecureIdentityFile",
    "InvalidState",
    "LocalProtocolError",
    "MovexError",
    "NotSynced",
    "ProtocolError",
    "RemoteProtocolError",
    "ResourceNotFound",
    "StateTooLarge",
    "TransportError",
]


class MovexError(Exception):
    """Root of every error movex_p2p raises on purpose."""


class ActionRejected(MovexError):
    """The master refused an action (reducer raised, invalid payload, unknown rid)."""

    def __init__(self, reason: str, *, rid: str | None = None) -> None:
        super().__init__(reason if rid is None else f"{rid}: {reason}")
        self.reason = reason
        self.rid = rid


class ResourceNotFound(ActionRejected):
    """The rid names no resource the master knows."""


class StateTooLarge(ActionRejected):
    """A state or action is over its resource type's ``max_bytes``; nothing was sent."""


class IncompatibleType(ActionRejected):
    """Peers hold different versions of one resource type (two builds of a game): they cannot share it."""


class InvalidState(MovexError, TypeError):
    """A state or payload holds a value that is not JSON-like data."""


class IdentityFileError(MovexError, ValueError):
    """An identity file is corrupted, truncated or not an identity file: nothing was loaded from it."""


class InsecureIdentityFile(MovexError, UserWarning):
    """Warning category: an identity file that other users of the machine can read (POSIX)."""


class NotSynced(MovexError):
    """The peer has no master yet, or the resource is not synced with it."""


class ActionStuck(NotSynced):
    """An own action stayed unconfirmed ``seconds`` after a master was known, even proposed again.

    It is not withdrawn: it stays pending and goes through if the master ever takes it (the
    state then shows it). A ``stuck`` diagnostic names the seqs; please report it.
    """

    def __init__(self, reason: str, *, rid: str, seq: int, seconds: float) -> None:
        super().__init__(f"{rid}: {reason}")
        self.reason = reason
        self.rid = rid
        self.seq = seq
        self.seconds = seconds


class ProtocolError(MovexError):
    """A protocol rule was broken (never raised directly)."""


class LocalProtocolError(ProtocolError):
    """This process asked for something the protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """A peer sent malformed, hostile or illegal input."""


class TransportError(MovexError):
    """The network failed underneath us."""


class ConnectError(TransportError):
    """A link to a peer could not be opened in time."""


class ChannelClosed(TransportError):
    """The link to a peer is closed."""


class AuthenticationFailed(TransportError):
    """A peer did not prove it holds the room secret (or we could not prove it to the peer)."""
