"""A fast yes for the one ResponseData shape revoca's responders send the signer, before the full parse.

Why hand-written: ca.hsm.policy.classify parses what it is asked to sign in full with asn1crypto
and re-encodes it (160-250 µs for an OCSP ResponseData, measured), which was most of what an
OCSP signature cost in the HSM service beside SoftHSM2's 50 µs for P-256 (issue 16).

This walker says yes only to the exact shape ocsp.response.response_data builds: responderID
byKey (a 20-byte key hash), producedAt, one or more SingleResponses (CertID with a SHA-1/2
AlgorithmIdentifier, good/revoked/unknown, a reason of the five of seed 004 at most, thisUpdate,
nextUpdate) and at most the nonce extension; DER only (minimal lengths and integers, valid
times).  Anything else -- including every ResponseData it has no reason to see -- is "don't
know", and the full parse decides as before.  It must never say yes to bytes the full parse
refuses: tests/unit/hsm/test_response_shape.py checks that on generated, mutated and random inputs.
"""

from __future__ import annotations

import datetime as dt

_HASH_OIDS = frozenset({
    bytes.fromhex("06052b0e03021a"),  # sha1
    bytes.fromhex("0609608648016503040201"),  # sha256
    bytes.fromhex("0609608648016503040202"),  # sha384
    bytes.fromhex("0609608648016503040203"),  # sha512
})
_NONCE_OID = bytes.fromhex("06092b0601050507300102")  # id-pkix-ocsp-nonce
_REASONS = frozenset(range(1, 6))  # keyCompromise .. superseded, cessationOfOperation (seed 004 4.9.9)


class _No(Exception):
    """Not the shape: let the full parse decide."""


def is_response_data(data: bytes) -> bool:
    """True only if `data` is a DER ResponseData of the shape revoca's responders make."""
    try:
        end = _response_data(data, 0)
    except (_No, IndexError, ValueError):
        return False
    return end == len(data)


def _tlv(data: bytes, at: int, tag: int) -> tuple[int, int]:
    """(start of contents, end of contents) of the element at `at`, which must carry `tag`."""
    if data[at] != tag:
        raise _No
    first = data[at + 1]
    if first < 0x80:
        return at + 2, at + 2 + first
    if first == 0x81:
        length = data[at + 2]
        if length < 0x80:
            raise _No  # not minimal
        start = at + 3
    elif first == 0x82:
        length = (data[at + 2] << 8) | data[at + 3]
        if length < 0x100:
            raise _No
        start = at + 4
    else:
        raise _No  # longer than anything an answer holds, or indefinite
    end = start + length
    if end > len(data):
        raise _No
    return start, end


def _time(data: bytes, at: int) -> int:
    """A GeneralizedTime YYYYMMDDHHMMSSZ that is a real instant; the end of the element."""
    start, end = _tlv(data, at, 0x18)
    text = data[start:end]
    if end - start != 15 or text[14:] != b"Z" or not text[:14].isdigit():
        raise _No
    year = int(text[0:4])
    if year < 1950:
        raise _No
    dt.datetime(year, int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]),
                int(text[12:14]))  # ValueError for a day, hour or second that does not exist
    return end


def _integer(data: bytes, at: int) -> int:
    start, end = _tlv(data, at, 0x02)
    if end == start:
        raise _No
    if end - start > 1 and ((data[start] == 0 and data[start + 1] < 0x80)
                            or (data[start] == 0xFF and data[start + 1] >= 0x80)):
        raise _No  # not minimal
    return end


def _cert_id(data: bytes, at: int) -> int:
    start, end = _tlv(data, at, 0x30)
    algorithm_start, algorithm_end = _tlv(data, start, 0x30)
    oid_end = _tlv(data, algorithm_start, 0x06)[1]
    if data[algorithm_start:oid_end] not in _HASH_OIDS:
        raise _No
    if oid_end != algorithm_end and data[oid_end:algorithm_end] != b"\x05\x00":
        raise _No
    at = _tlv(data, algorithm_end, 0x04)[1]  # issuerNameHash
    at = _tlv(data, at, 0x04)[1]  # issuerKeyHash
    if _integer(data, at) != end:
        raise _No
    return end


def _status(data: bytes, at: int) -> int:
    tag = data[at]
    if tag in (0x80, 0x82):  # good, unknown: [0]/[2] IMPLICIT NULL
        if data[at + 1] != 0:
            raise _No
        return at + 2
    start, end = _tlv(data, at, 0xA1)  # revoked [1] IMPLICIT RevokedInfo
    inner = _time(data, start)
    if inner != end:
        reason_start, reason_end = _tlv(data, inner, 0xA0)
        value_start, value_end = _tlv(data, reason_start, 0x0A)
        if value_end != reason_end or reason_end != end or value_end - value_start != 1 \
                or data[value_start] not in _REASONS:
            raise _No
    return end


def _single_response(data: bytes, at: int) -> int:
    start, end = _tlv(data, at, 0x30)
    at = _status(data, _cert_id(data, start))
    at = _time(data, at)  # thisUpdate
    next_start, next_end = _tlv(data, at, 0xA0)  # nextUpdate [0] EXPLICIT
    if _time(data, next_start) != next_end or next_end != end:
        raise _No
    return end


def _nonce_extension(data: bytes, at: int) -> int:
    start, end = _tlv(data, at, 0xA1)  # responseExtensions [1] EXPLICIT
    list_start, list_end = _tlv(data, start, 0x30)
    ext_start, ext_end = _tlv(data, list_start, 0x30)
    oid_end = _tlv(data, ext_start, 0x06)[1]
    if data[ext_start:oid_end] != _NONCE_OID:
        raise _No
    value_start, value_end = _tlv(data, oid_end, 0x04)  # extnValue, no critical flag
    nonce_start, nonce_end = _tlv(data, value_start, 0x04)  # the nonce as an OCTET STRING (RFC 8954)
    if nonce_end == nonce_start or nonce_end != value_end or value_end != ext_end or ext_end != list_end \
            or list_end != end:
        raise _No
    return end


def _response_data(data: bytes, at: int) -> int:
    start, end = _tlv(data, at, 0x30)
    key_start, key_end = _tlv(data, start, 0xA2)  # responderID byKey [2] EXPLICIT KeyHash
    hash_start, hash_end = _tlv(data, key_start, 0x04)
    if hash_end - hash_start != 20 or hash_end != key_end:
        raise _No
    at = _time(data, key_end)  # producedAt
    responses_start, responses_end = _tlv(data, at, 0x30)
    if responses_start == responses_end:
        raise _No
    at = responses_start
    while at < responses_end:
        at = _single_response(data, at)
    if at != responses_end:
        raise _No
    if at != end:
        at = _nonce_extension(data, at)
    if at != end:
        raise _No
    return end
