"""Room codes: 4 random words of 2048 (44 bits) from the operating system's randomness."""

from __future__ import annotations

import random
import string

import pytest

import movex_p2p as mx
from movex_p2p.roomcode import BITS_PER_WORD, DEFAULT_WORDS, WORDS, room_code, room_code_bits


def test_the_word_list_is_2048_distinct_short_lowercase_words() -> None:
    assert len(WORDS) == 2048
    assert len(set(WORDS)) == len(WORDS)
    assert list(WORDS) == sorted(WORDS)
    assert all(3 <= len(word) <= 6 and set(word) <= set(string.ascii_lowercase) for word in WORDS)
    assert BITS_PER_WORD == 11
    assert (DEFAULT_WORDS, room_code_bits()) == (4, 44)


def test_a_code_is_four_listed_words_joined_by_hyphens() -> None:
    assert mx.room_code is room_code
    words = room_code().split("-")
    assert len(words) == 4
    assert set(words) <= set(WORDS)
    assert len(room_code(6).split("-")) == 6
    assert room_code(1) in WORDS


def test_codes_come_from_the_system_not_the_global_random() -> None:
    random.seed(7)
    first = room_code()
    random.seed(7)
    assert room_code() != first  # 1 chance in 2**44 of a false failure
    assert len({room_code() for _ in range(200)}) == 200


def test_an_injected_rng_reproduces_a_code_and_reaches_every_word() -> None:
    assert room_code(rng=random.Random(3)) == room_code(rng=random.Random(3))
    rng = random.Random(5)
    seen = {word for _ in range(8000) for word in room_code(rng=rng).split("-")}
    assert seen == set(WORDS)  # 32,000 draws: each word is missed with probability ~1.6e-7


@pytest.mark.parametrize("words", [0, -1, True, 2.5])
def test_a_code_needs_a_positive_number_of_words(words: object) -> None:
    with pytest.raises(ValueError, match="at least one word"):
        room_code(words)  # type: ignore[arg-type]
