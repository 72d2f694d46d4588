"""The signing seam: Ed25519 in production, a fast fake that still refuses forgeries in tests."""

from __future__ import annotations

import random

import anyio
import pytest

import movex_p2p as mx
from movex_p2p.identity import Identity, peer_id_of
from movex_p2p.proofs import prove, signer
from movex_p2p.signing import ED25519, FAKE, FakeSigner, Signer, Verifier
from tests.resources import Counter
from tests.waits import settled


def test_a_fake_signature_passes_only_for_its_key_and_its_bytes() -> None:
    one, two = FakeSigner.from_seed(1), FakeSigner.from_seed(2)
    signature = one.sign(b"hello")
    assert len(signature) == 64
    assert FAKE.verify(one.public_key, signature, b"hello")
    assert not FAKE.verify(one.public_key, signature, b"hellO")  # a changed message
    assert not FAKE.verify(two.public_key, signature, b"hello")  # made with another key
    assert not FAKE.verify(one.public_key, two.sign(b"hello"), b"hello")
    assert not FAKE.verify(b"short", signature, b"hello")
    assert not FAKE.verify(one.public_key, signature[:-1], b"hello")


def test_fake_signers_are_seeded_and_their_ids_derive_from_their_keys() -> None:
    assert FakeSigner.from_seed(7).public_key == FakeSigner.from_seed(7).public_key
    assert FakeSigner.from_seed(7).id != FakeSigner.from_seed(8).id
    key = FakeSigner.from_seed(b"seed")
    assert key.id == peer_id_of(key.public_key)
    identity = Identity(b"k" * 32)
    assert FakeSigner(identity.public_key).id == identity.id  # the same peer, a fake signature
    with pytest.raises(ValueError):
        FakeSigner(b"short")


@pytest.mark.parametrize(
    ("make", "verifier"),
    [
        pytest.param(lambda n: Identity(bytes([n]) * 32), ED25519, id="ed25519"),
        pytest.param(FakeSigner.from_seed, FAKE, id="fake"),
    ],
)
def test_a_proof_names_its_signer_under_its_own_scheme_only(make: object, verifier: Verifier) -> None:
    one: Signer = make(1)  # type: ignore[operator]
    two: Signer = make(2)  # type: ignore[operator]
    proof = prove(one, "vote", 5, "cand")
    assert signer(proof, "vote", 5, "cand", verifier=verifier) == one.id
    assert signer(proof, "vote", 6, "cand", verifier=verifier) is None  # another statement
    forged = two.public_key + proof[32:]  # one's signature under two's key
    assert signer(forged, "vote", 5, "cand", verifier=verifier) is None
    other = FAKE if verifier is ED25519 else ED25519
    assert signer(proof, "vote", 5, "cand", verifier=other) is None  # one scheme per room


async def test_peers_with_the_benchmarks_fake_signer_play_the_same_protocol() -> None:
    """``Peer(_fake_signer=True)`` (benchmarks/lan_node.py --fake-signer): same ids, same protocol, fake signatures."""
    net = mx.LocalNetwork()
    peers = [
        mx.Peer(room="fake", types=[Counter], name=f"f{i}", transport=net, seed=i, _fake_signer=True) for i in range(3)
    ]
    with anyio.fail_after(10):
        async with peers[0] as a, peers[1] as b, peers[2] as c:
            for p in (a, b, c):
                await p.wait_ready()
            rid = await b.create(Counter, id="c")
            resources = [await p.bind(rid) for p in (a, b, c)]
            for res in resources:
                await res.dispatch(mx.Action("increment"))
            await settled(lambda: all(res.state == {"count": 3} for res in resources), a, b, c)
    assert a.id == mx.Identity(random.Random(0).randbytes(32)).id  # the id of the seed's real key


def test_an_identity_keeps_its_key_and_id_across_the_switch_to_libsodium() -> None:
    """The same 32 private bytes give the public key (and so the peer id) RFC 8032 gives, as before."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    for seed in (bytes(32), bytes(range(32)), bytes([0xFF] * 32)):
        ours = Identity(seed)
        theirs = Ed25519PrivateKey.from_private_bytes(seed)
        assert ours.public_key == theirs.public_key().public_bytes_raw()
        assert ours.id == peer_id_of(theirs.public_key().public_bytes_raw())
        data = b"movex" + seed
        assert ours.sign(data) == theirs.sign(data)  # Ed25519 is deterministic
        assert ED25519.verify(ours.public_key, ours.sign(data), data)


@pytest.mark.parametrize(
    ("secret", "public", "message", "signature"),
    [  # RFC 8032, section 7.1: TEST 1 and TEST 2
        (
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
    ],
)
def test_ed25519_gives_the_rfc_8032_vectors(secret: str, public: str, message: str, signature: str) -> None:
    me = Identity(bytes.fromhex(secret))
    assert me.public_key == bytes.fromhex(public)
    assert me.sign(bytes.fromhex(message)) == bytes.fromhex(signature)
    assert ED25519.verify(me.public_key, bytes.fromhex(signature), bytes.fromhex(message))


def test_malformed_and_edge_case_signatures_are_refused_not_raised() -> None:
    """A hostile peer's key or signature of any shape is False, never an exception (libsodium's strict rules)."""
    me = Identity(bytes(range(32)))
    good = me.sign(b"data")
    assert ED25519.verify(me.public_key, good, b"data")
    small_order_key = bytes([1]) + bytes(31)  # the neutral point: any signature would "verify" under lax rules
    l_order = (2**252 + 27742317777372353535851937790883648493).to_bytes(32, "little")
    non_canonical = good[:32] + (int.from_bytes(good[32:], "little") + int.from_bytes(l_order, "little")).to_bytes(
        32, "little"
    )
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    Ed25519PublicKey.from_public_bytes(small_order_key).verify(bytes([1]) + bytes(63), b"data")  # OpenSSL: "valid"
    for key, sig, data in [
        (small_order_key, bytes([1]) + bytes(63), b"data"),
        (me.public_key, non_canonical, b"data"),  # S + L: the same signature under lax rules
        (me.public_key, good, b"datA"),
        (me.public_key[:31], good, b"data"),
        (me.public_key, good[:63], b"data"),
        (me.public_key + b"\x00", good, b"data"),
        (bytearray(me.public_key), good, b"data"),
        ("not bytes", good, b"data"),
        (me.public_key, None, b"data"),
        (me.public_key, good, "data"),
    ]:
        assert ED25519.verify(key, sig, data) is False  # type: ignore[arg-type]


def test_a_recalling_verifier_skips_only_its_own_recent_signatures() -> None:
    """A peer's own signatures come back to it; anything else is checked by the real verifier."""
    from movex_p2p.signing import RECALLED, RecallingSigner, RecallingVerifier

    checked: list[bytes] = []

    class Counting:
        def verify(self, public_key: bytes, signature: bytes, data: bytes) -> bool:
            checked.append(data)
            return ED25519.verify(public_key, signature, data)

    me, other = Identity(bytes(range(32))), Identity(bytes(32))
    signer = RecallingSigner(me)
    verifier = RecallingVerifier(Counting(), signer)
    mine = signer.sign(b"mine")
    assert mine == me.sign(b"mine")
    assert verifier.verify(me.public_key, mine, b"mine")
    assert checked == []
    assert not verifier.verify(me.public_key, mine, b"other bytes")
    assert checked == [b"other bytes"]
    assert not verifier.verify(other.public_key, mine, b"mine")  # another key: checked, and false
    theirs = other.sign(b"theirs")
    assert verifier.verify(other.public_key, theirs, b"theirs")
    assert verifier.verify(me.public_key, me.sign(b"unrecalled"), b"unrecalled")  # ours, not through it: checked
    assert checked == [b"other bytes", b"mine", b"theirs", b"unrecalled"]
    for i in range(RECALLED):
        signer.sign(i.to_bytes(4, "big"))
    assert len(signer.recent) == RECALLED
    assert mine not in signer.recent
    assert verifier.verify(me.public_key, mine, b"mine")
    assert checked[-1] == b"mine"
