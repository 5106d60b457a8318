"""The token's r||s becomes the same DER ECDSA-Sig-Value as python-pkcs11's encoder made, for every r and s."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from pkcs11.util.ec import encode_ecdsa_signature

from ca.hsm.token import ecdsa_der


@given(st.sampled_from([32, 48, 66]).flatmap(lambda n: st.binary(min_size=2 * n, max_size=2 * n)))
def test_the_encoding_equals_python_pkcs11s(raw: bytes) -> None:
    assert ecdsa_der(raw) == encode_ecdsa_signature(raw)


def test_leading_zeros_and_high_bits_are_encoded_minimally() -> None:
    for raw in (bytes(64), b"\x00" * 31 + b"\x01" + b"\x80" + bytes(31), b"\xff" * 64):
        assert ecdsa_der(raw) == encode_ecdsa_signature(raw)
