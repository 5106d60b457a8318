"""The signer's fast ResponseData check (ca.hsm.response_shape) says yes to what the responders send,
and never to bytes the full parse (asn1crypto, re-encoded to the same bytes) would refuse."""

from __future__ import annotations

import datetime as dt
import hashlib

from asn1crypto import core as asn1_core
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ca.hsm import policy
from ca.hsm.response_shape import is_response_data
from ocsp.response import Answer, response_data
from ocsp.status import CertStatus, Status

HASHES = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}


def full_parse_says_ocsp(data: bytes) -> bool:
    """What classify decided before the fast walker existed: asn1crypto in full, same bytes again."""
    return policy._is(data, asn1_ocsp.ResponseData, whole=True)


def cert_id(algorithm: str, serial: int, name: bytes, key: bytes) -> bytes:
    return asn1_ocsp.CertId({"hash_algorithm": {"algorithm": algorithm}, "issuer_name_hash": name,
                             "issuer_key_hash": key, "serial_number": serial}).dump()


times = st.datetimes(min_value=dt.datetime(1950, 1, 1), max_value=dt.datetime(9999, 12, 31)).map(
    lambda t: t.replace(microsecond=0, tzinfo=dt.UTC))
statuses = st.one_of(
    st.just(Status(CertStatus.GOOD)), st.just(Status(CertStatus.UNKNOWN)),
    st.builds(lambda t, r: Status(CertStatus.REVOKED, t, r), times, st.one_of(st.none(), st.integers(1, 5))))


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    count = draw(st.integers(1, 4))
    answers = []
    for _ in range(count):
        algorithm = draw(st.sampled_from(sorted(HASHES)))
        size = HASHES[algorithm]
        cid = cert_id(algorithm, draw(st.integers(-(2 ** 70), 2 ** 160)),
                      draw(st.binary(min_size=size, max_size=size)), draw(st.binary(min_size=size, max_size=size)))
        answers.append(Answer(cid, draw(statuses), draw(times), draw(times)))
    nonce = draw(st.one_of(st.none(), st.binary(min_size=1, max_size=64)))
    return response_data(responder_key_hash=draw(st.binary(min_size=20, max_size=20)), answers=answers,
                         produced_at=draw(times), nonce=nonce)


@settings(max_examples=300, deadline=None)
@given(responses())
def test_every_shape_the_responders_build_is_recognised_and_the_full_parse_agrees(data: bytes) -> None:
    assert is_response_data(data)
    assert full_parse_says_ocsp(data)
    assert policy.classify(data) is policy.Signed.OCSP_RESPONSE


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(responses(), st.data())
def test_a_mutated_response_is_never_recognised_where_the_full_parse_refuses(data: bytes,
                                                                            draw: st.DataObject) -> None:
    mutated = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 3))):
        kind = draw.draw(st.sampled_from(["flip", "set", "cut", "insert"]))
        at = draw.draw(st.integers(0, max(len(mutated) - 1, 0)))
        if kind == "flip" and mutated:
            mutated[at] ^= 1 << draw.draw(st.integers(0, 7))
        elif kind == "set" and mutated:
            mutated[at] = draw.draw(st.integers(0, 255))
        elif kind == "cut":
            del mutated[at:at + draw.draw(st.integers(1, 8))]
        else:
            mutated[at:at] = draw.draw(st.binary(min_size=1, max_size=4))
    if is_response_data(bytes(mutated)):
        assert full_parse_says_ocsp(bytes(mutated)), bytes(mutated).hex()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_are_never_recognised_where_the_full_parse_refuses(data: bytes) -> None:
    if is_response_data(data):
        assert full_parse_says_ocsp(data)


def test_what_it_declines_the_full_parse_still_judges() -> None:
    """Other shapes of a valid ResponseData (by name, a version, a reason outside the five, another
    extension) are not the walker's: classify still answers OCSP response, by the full parse."""
    cid = cert_id("sha1", 7, b"\x01" * 20, b"\x02" * 20)
    now = dt.datetime(2026, 12, 3, 12, tzinfo=dt.UTC)
    good = asn1_ocsp.CertStatus(name="good", value=asn1_core.Null())
    single = {"cert_id": asn1_ocsp.CertId.load(cid), "cert_status": good, "this_update": now, "next_update": now}
    by_name = asn1_ocsp.ResponseData({
        "responder_id": asn1_ocsp.ResponderId(name="by_name", value=asn1_x509.Name.build({"common_name": "x"})),
        "produced_at": now, "responses": [single]}).dump()
    other_reason = asn1_ocsp.ResponseData({
        "responder_id": asn1_ocsp.ResponderId(name="by_key", value=hashlib.sha1(b"k").digest()),
        "produced_at": now, "responses": [{**single, "cert_status": asn1_ocsp.CertStatus(
            name="revoked", value={"revocation_time": now, "revocation_reason": "certificate_hold"})}]}).dump()
    for data in (by_name, other_reason):
        assert not is_response_data(data)
        assert policy.classify(data) is policy.Signed.OCSP_RESPONSE
    # and the shapes it must not take for a ResponseData at all
    tbs_like = bytes.fromhex("3003020101")
    assert not is_response_data(tbs_like) and policy.classify(tbs_like) is policy.Signed.OTHER
