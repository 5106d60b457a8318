import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ca.errors import InvalidInput
from ca.hsm import shares


@given(secret=st.binary(min_size=16, max_size=16), m=st.integers(2, 5), extra=st.integers(0, 3))
@settings(max_examples=40, deadline=None)
def test_any_m_shares_recover_the_secret_and_fewer_do_not(secret: bytes, m: int, extra: int) -> None:
    n = m + extra
    parts = shares.split(secret, set_id=7, threshold=m, total=n)
    for subset in itertools.islice(itertools.combinations(parts, m), 5):
        assert shares.combine(list(subset)) == secret
    assert shares.combine(parts[: m - 1]) != secret or m - 1 == 0


def test_encoded_share_round_trips_through_typing_noise() -> None:
    share = shares.split(shares.new_secret(), set_id=3, threshold=2, total=3)[1]
    text = share.encode()
    noisy = "  " + text.lower().replace("-", "-\n", 3) + "\n"
    assert shares.parse_share(noisy) == share


def test_mistyped_character_is_caught_by_the_check_digits() -> None:
    text = shares.split(shares.new_secret(), set_id=3, threshold=2, total=3)[0].encode()
    pos = len("RVS1-3-1-")
    typo = text[:pos] + ("0" if text[pos] != "0" else "1") + text[pos + 1:]
    with pytest.raises(InvalidInput, match="check digits"):
        shares.parse_share(typo)


@pytest.mark.parametrize("garbage", ["", "hello", "RVS1-1-1", "RVS1-x-1-" + "-".join(["zzzz"] * 8) + "-0000"])
def test_garbage_is_not_a_share(garbage: str) -> None:
    with pytest.raises(InvalidInput):
        shares.parse_share(garbage)


def test_repr_never_shows_the_share() -> None:
    share = shares.split(shares.new_secret(), set_id=1, threshold=2, total=2)[0]
    assert share.value.hex() not in repr(share)


def test_digest_recognises_only_its_own_share() -> None:
    a, b = shares.split(shares.new_secret(), set_id=1, threshold=2, total=2)
    assert a.matches(a.digest()) and not b.matches(a.digest())


def test_combining_a_share_twice_is_refused() -> None:
    a, _ = shares.split(shares.new_secret(), set_id=1, threshold=2, total=2)
    with pytest.raises(InvalidInput, match="twice"):
        shares.combine([a, a])


def test_pins_differ_and_are_stable() -> None:
    secret = shares.new_secret()
    assert shares.user_pin(secret) == shares.user_pin(secret) != shares.so_pin(secret)
