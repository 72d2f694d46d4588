"""The verify stage between decode and routing: every signature a peer's message carries, checked once."""

from __future__ import annotations

import random

import movex_p2p as mx
from movex_p2p import wire
from movex_p2p.election.machine import ElectionConfig, salt_of
from movex_p2p.ids import PeerId, Rid, Term
from movex_p2p.nodecore import NodeCore
from movex_p2p.proofs import prove
from movex_p2p.resource import messages as rm
from movex_p2p.resource.history import action_digest, head, seal_statement
from movex_p2p.signing import FAKE, FakeSigner
from movex_p2p.transport.base import Frame, PeerUp
from movex_p2p.verify import check
from tests.resources import Counter

ME, AUTHOR, MASTER = (FakeSigner.from_seed(i) for i in range(3))
TERM = Term(1 << 32 | salt_of(MASTER.id))
DIGEST = action_digest(AUTHOR.id, Rid("counter:c"), 1, mx.Action("increment"), room="r", term=TERM, incarnation=b"")


def endorse(signer: FakeSigner) -> rm.Endorse:
    return rm.Endorse(term=TERM, digests=(DIGEST,), proof=prove(signer, "endorse", DIGEST))


def sealed(signer: FakeSigner, term: Term = TERM) -> rm.Sealed:
    heads = (head(Rid("counter:c"), 0, b"x" * 16, {}, ()),)
    return rm.Sealed(term=term, index=1, heads=heads, proof=prove(signer, *seal_statement(term, 1, heads)))


def test_an_endorsement_holds_only_signed_by_its_sender_or_named_author() -> None:
    assert check(AUTHOR.id, endorse(AUTHOR), FAKE) is None
    assert check(AUTHOR.id, endorse(MASTER), FAKE) == "an endorsement not signed by its sender"
    relayed = rm.Endorsed(term=TERM, author=AUTHOR.id, digests=(DIGEST,), proof=endorse(AUTHOR).proof)
    assert check(MASTER.id, relayed, FAKE) is None  # the master relays it: the author signed it
    forged = rm.Endorsed(term=TERM, author=AUTHOR.id, digests=(DIGEST,), proof=endorse(MASTER).proof)
    assert check(MASTER.id, forged, FAKE) == f"an endorsement not signed by its author {AUTHOR.id}"


def test_a_seal_holds_only_signed_by_the_master_its_term_names() -> None:
    assert check(MASTER.id, sealed(MASTER), FAKE) is None
    assert check(MASTER.id, sealed(AUTHOR), FAKE) is not None  # another key
    assert check(AUTHOR.id, sealed(AUTHOR, Term(1 << 32 | salt_of(AUTHOR.id))), FAKE) is None
    assert check(MASTER.id, sealed(MASTER, Term(1 << 32 | salt_of(AUTHOR.id))), FAKE) is not None  # not its term
    assert check(AUTHOR.id, rm.Witness(term=TERM, sealed=sealed(MASTER)), FAKE) is None  # passed on by a peer
    assert check(AUTHOR.id, rm.Witness(term=TERM, sealed=sealed(AUTHOR)), FAKE) is not None


def test_messages_that_carry_no_signature_pass() -> None:
    assert check(AUTHOR.id, rm.Ack(term=TERM, index=1), FAKE) is None


def test_the_node_drops_and_reports_what_fails_the_stage_before_any_core_sees_it() -> None:
    core = NodeCore(
        ME.id, types={"counter": Counter}, election=ElectionConfig(), rng=random.Random(1), signer=ME, verifier=FAKE
    )
    core.start(0.0, 0.0)
    core.receive([PeerUp(peer=MASTER.id)], 0.0, 0.0)
    bad = sealed(AUTHOR)
    ready = core.receive([Frame(peer=MASTER.id, data=wire.encode_many([bad, rm.Ack(term=TERM, index=1)]))], 0.1, 0.1)
    assert [(d.sender, d.reason.split(":")[0]) for d in ready.dropped] == [(MASTER.id, "Sealed")]
    assert ready.faults == []
    stranger = PeerId("stranger")
    ready = core.receive([Frame(peer=stranger, data=wire.encode(endorse(AUTHOR)))], 0.2, 0.2)
    assert [d.reason for d in ready.dropped] == ["Endorse: an endorsement not signed by its sender"]
