"""The one stage that checks the signatures a peer's message carries, between decode and routing (pure).

NodeCore passes every message decoded from a peer's frame through :func:`check` before any core
sees it: an author's endorsement (``Endorse``, and ``Endorsed`` as the master relays it), a
master's seal (``Sealed``), a seal a peer passes on (``Witness``) and the seal of a removal told
again (``Removed``) must be validly signed by the peer they name, and be a link of a chain (see
``resource.history``), or the message is dropped and reported (its sender's fault); so must an
author's opening of a sealed private half (``Open``, and each one a ``Revealed`` entry carries), and a
player's element for a fair draw (``Contribute``, and each one a ``Drawn`` carries, but two: the
sender's own, which its link vouches for, and the element this very peer signed, compared with what
it sent; see :func:`check`). What follows
trusts those signatures: the master's book of endorsements, the clients' check of each entry's
digest, the comparison of witnessed seals (a fork is the node's verdict, ``Forged``). The
election checks its own proofs (votes, certificates, grants) against the group it sees.
Messages a peer sends itself never pass here: it wrote them. :func:`screen` is the stage as a node
runs it; ``testing.cores.CoreCluster`` runs the same, so the core tests check what a peer checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .proofs import signer
from .resource import messages as rm
from .resource.draws import MAX_PLAYERS
from .resource.fair import anchor_statement, contribution_statement
from .resource.history import endorsement_signer, seal_signer
from .resource.sealed import opening_signer

if TYPE_CHECKING:
    from . import wire
    from .ids import PeerId
    from .resource.client import ClientCore
    from .resource.effects import Effect
    from .signing import Verifier

__all__ = ["Signed", "check", "screen"]


Signed = Callable[[rm.Contribution, rm.Drawn], bool]
"""Is this exactly the element this peer signed for that draw (its fields and proof as it sent them)?"""


def check(sender: PeerId, message: wire.Message, verifier: Verifier, signed: Signed | None = None) -> str | None:
    """Why ``message`` from ``sender`` fails a signature it carries, or None if every one holds.

    In a ``Drawn``, two elements need no signature check: the sender's own (the master publishes the
    draw over its own authenticated link, and its key could sign its element over any binding it
    likes: a signature would bind nothing more; its chain fixes the element, as the ledger checks),
    and the one ``signed`` recognises as this peer's own, unchanged (we made that signature).
    """
    match message:
        case rm.Endorse():
            if endorsement_signer(message, verifier) != sender:
                return "an endorsement not signed by its sender"
        case rm.Endorsed():
            if endorsement_signer(message, verifier) != message.author:
                return f"an endorsement not signed by its author {message.author}"
        case rm.Sealed():
            if seal_signer(message, verifier) != sender:
                return "a seal not signed by its sender (the master of its term)"
        case rm.Witness(sealed=sealed):
            if seal_signer(sealed, verifier) is None:
                return "a witnessed seal no master of its term signed"
        case rm.Open():
            if opening_signer(message.rid, message, verifier) != sender:
                return "openings not signed by their sender"
        case rm.Revealed():
            for held in message.actions:
                if held.proof and opening_signer(message.rid, held, verifier) != held.author:
                    return f"an opening its author {held.author} never signed (seq {held.seq})"
        case rm.Anchor():
            statement = anchor_statement(sender, message.root, message.length)
            if signer(message.proof, *statement, verifier=verifier) != sender:
                return "an anchor not signed by its sender"
        case rm.Anchored():
            statement = anchor_statement(message.peer, message.root, message.length)
            if signer(message.proof, *statement, verifier=verifier) != message.peer:
                return f"an anchor not signed by its player {message.peer}"
        case rm.Contribute():
            if _contributor(message, message.term, message.draw, message, verifier) != sender:
                return "a draw contribution not signed by its sender"
        case rm.Drawing():
            if len(message.players) > MAX_PLAYERS:
                return f"a draw asking more than {MAX_PLAYERS} players"
        case rm.Drawn():
            if len(message.contributions) + len(message.missing) > MAX_PLAYERS:
                return f"a draw naming more than {MAX_PLAYERS} players"
            for c in message.contributions:
                if c.peer == sender or (signed is not None and signed(c, message)):
                    continue
                if _contributor(c, message.term, message.draw, message, verifier) != c.peer:
                    return f"a draw contribution not signed by its player {c.peer}"
        case rm.Removed(seal=sealed) if sealed is not None:
            if seal_signer(sealed, verifier) is None:
                return "a removal's seal no master of its term signed"
        case _:
            pass
    return None


def screen(
    sender: PeerId, message: wire.Message, verifier: Verifier, client: ClientCore
) -> tuple[str | None, list[Effect]]:
    """The stage as a node runs it on each message from another peer (NodeCore and the core cluster alike):
    why ``message`` is dropped (None: it goes on to routing), and what ``client`` makes of the refusal (a
    ``Drawn`` of its own master that fails is that master's forgery: an honest master checks each element)."""
    refused = check(sender, message, verifier, client.fair.signed)
    if refused is None:
        return None, []
    reason = f"{type(message).__name__}: {refused}"
    if type(message) is rm.Drawn and sender == client.master and message.term == client.term:
        return reason, client.fair.refuse(message, sender, refused)
    return reason, []


def _contributor(
    c: rm.Contribute | rm.Contribution, term: int, draw: int, bound: rm.Contribute | rm.Drawn, verifier: Verifier
) -> PeerId | None:
    """Who signed element ``c`` for that draw (None if nobody validly did)."""
    parts = contribution_statement(term, draw, bound.rid, bound.author, bound.seq, bound.digest, c.at, c.element)
    return signer(c.proof, *parts, verifier=verifier)
