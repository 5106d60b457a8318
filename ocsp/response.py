"""OCSP responses (RFC 6960 4.2, RFC 5019 profile): DER assembled here, signed by a Signer.

Hand-assembled, because building the same structure with asn1crypto took about 1.4 ms per
response, more than the RSA signature; tests/unit/ocsp/test_ocsp_response.py checks the bytes against
an asn1crypto-built reference and parses them with cryptography and asn1crypto.  Error
responses carry no signature (RFC 6960 2.3) and are the same bytes every time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from ca.der import encoding as der
from ca.der.algorithms import signature_algorithm
from ca.hsm.signer import Signer
from ocsp.status import CertStatus, Status

RESPONSE_STATUS = {"successful": 0, "malformed_request": 1, "internal_error": 2, "try_later": 3,
                   "sign_required": 5, "unauthorized": 6}
_BASIC = der.oid("1.3.6.1.5.5.7.48.1.1")  # id-pkix-ocsp-basic
_NONCE = der.oid("1.3.6.1.5.5.7.48.1.2")  # id-pkix-ocsp-nonce


def error_response(status: str) -> bytes:
    """malformed_request, internal_error, try_later, sign_required or unauthorized: no responseBytes."""
    return _ERRORS[status]


_ERRORS = {name: der.tlv(der.SEQUENCE, der.tlv(der.ENUMERATED, bytes([code])))
           for name, code in RESPONSE_STATUS.items() if name != "successful"}


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """One SingleResponse: the CertID as the client sent it, and what to say about it."""

    cert_id_der: bytes
    status: Status
    this_update: dt.datetime
    next_update: dt.datetime


def generalized_time(value: dt.datetime) -> bytes:
    """GeneralizedTime in UTC, whole seconds (RFC 5280 4.1.2.5.2, as RFC 6960 uses it)."""
    return der.tlv(der.GENERALIZED_TIME, value.astimezone(dt.UTC).strftime("%Y%m%d%H%M%SZ").encode())


def single_response(answer: Answer) -> bytes:
    status = answer.status
    if status.status is CertStatus.GOOD:
        cert_status = b"\x80\x00"  # good [0] IMPLICIT NULL
    elif status.status is CertStatus.REVOKED:
        assert status.revoked_at is not None
        info = generalized_time(status.revoked_at)
        if status.reason is not None:  # revocationReason [0] EXPLICIT CRLReason
            info += der.tlv(0xA0, der.tlv(der.ENUMERATED, bytes([status.reason])))
        cert_status = der.tlv(0xA1, info)  # revoked [1] IMPLICIT RevokedInfo
    else:
        cert_status = b"\x82\x00"  # unknown [2] IMPLICIT NULL
    return der.tlv(der.SEQUENCE, answer.cert_id_der + cert_status + generalized_time(answer.this_update)
                   + der.tlv(0xA0, generalized_time(answer.next_update)))


def response_data(*, responder_key_hash: bytes, answers: list[Answer], produced_at: dt.datetime,
                  nonce: bytes | None) -> bytes:
    """tbsResponseData: ResponderID byKey, producedAt, the responses, the nonce echoed (RFC 8954)."""
    body = (der.tlv(0xA2, der.tlv(der.OCTET_STRING, responder_key_hash))  # byKey [2] EXPLICIT KeyHash
            + generalized_time(produced_at)
            + der.tlv(der.SEQUENCE, b"".join(single_response(a) for a in answers)))
    if nonce is not None:
        extension = der.tlv(der.SEQUENCE, _NONCE + der.tlv(der.OCTET_STRING, der.tlv(der.OCTET_STRING, nonce)))
        body += der.tlv(0xA1, der.tlv(der.SEQUENCE, extension))  # responseExtensions [1] EXPLICIT
    return der.tlv(der.SEQUENCE, body)


def basic_response(signer: Signer, *, responder_key_hash: bytes, certificate_der: bytes | None,
                   answers: list[Answer], produced_at: dt.datetime, nonce: bytes | None) -> bytes:
    """A signed, successful OCSPResponse carrying a BasicOCSPResponse."""
    return with_certificate(signed_part(signer, responder_key_hash=responder_key_hash, answers=answers,
                                        produced_at=produced_at, nonce=nonce), certificate_der)


def signed_part(signer: Signer, *, responder_key_hash: bytes, answers: list[Answer], produced_at: dt.datetime,
                nonce: bytes | None) -> bytes:
    """tbsResponseData, signatureAlgorithm and signature: all of a BasicOCSPResponse the signature covers,
    and what a pre-signed answer stores (ocsp.presigner)."""
    tbs = response_data(responder_key_hash=responder_key_hash, answers=answers, produced_at=produced_at,
                        nonce=nonce)
    return tbs + signature_algorithm(signer.algorithm) + der.tlv(der.BIT_STRING, b"\x00" + signer.sign(tbs))


def with_certificate(signed: bytes, certificate_der: bytes | None) -> bytes:
    """The OCSPResponse around a `signed_part`, with the responder certificate (outside the signature,
    RFC 6960 4.2.1 certs) when it is a delegated one: no signing, no re-encoding -- the headers are
    computed from the lengths and the parts joined once (every pre-signed answer served passes here)."""
    certs = b"" if certificate_der is None else _certs_field(certificate_der)
    basic_size = len(signed) + len(certs)
    basic_header = _header(der.SEQUENCE, basic_size)  # BasicOCSPResponse
    octets_size = len(basic_header) + basic_size
    octets_header = _header(der.OCTET_STRING, octets_size)  # responseBytes.response
    response_bytes_size = len(_BASIC) + len(octets_header) + octets_size
    response_bytes_header = _header(der.SEQUENCE, response_bytes_size)
    tagged_size = len(response_bytes_header) + response_bytes_size
    tagged_header = _header(0xA0, tagged_size)  # responseBytes [0] EXPLICIT
    return b"".join((_header(der.SEQUENCE, len(_SUCCESSFUL) + len(tagged_header) + tagged_size), _SUCCESSFUL,
                     tagged_header, response_bytes_header, _BASIC, octets_header, basic_header, signed, certs))


_SUCCESSFUL = der.tlv(der.ENUMERATED, b"\x00")


def _header(tag: int, size: int) -> bytes:
    """der.header for the sizes of a response (below 64 KiB), without its general arithmetic."""
    if size < 0x80:
        return bytes((tag, size))
    if size < 0x100:
        return bytes((tag, 0x81, size))
    if size < 0x10000:
        return bytes((tag, 0x82, size >> 8, size & 0xFF))
    return der.header(tag, size)
_CERTS: dict[bytes, bytes] = {}  # responder certificate -> its certs field; a handful per responder


def _certs_field(certificate_der: bytes) -> bytes:
    """certs [0] EXPLICIT SEQUENCE OF Certificate, with the one responder certificate."""
    field = _CERTS.get(certificate_der)
    if field is None:
        if len(_CERTS) >= 64:  # renewals over a long run: start again rather than grow
            _CERTS.clear()
        field = _CERTS[certificate_der] = der.tlv(0xA0, der.tlv(der.SEQUENCE, certificate_der))
    return field


_SHA1_ALGORITHM = der.tlv(der.SEQUENCE, der.oid("1.3.14.3.2.26") + b"\x05\x00")  # with NULL parameters


def sha1_cert_id(issuer_name_hash: bytes, issuer_key_hash: bytes, serial: int) -> bytes:
    """The CertID a pre-signed answer is signed for: SHA-1 with NULL parameters, as RFC 5019 2.1.1 asks
    and OpenSSL and cryptography send it.  A request naming the certificate any other way (SHA-256,
    no NULL) gets an answer signed for its own CertID."""
    return der.tlv(der.SEQUENCE, _SHA1_ALGORITHM + der.tlv(der.OCTET_STRING, issuer_name_hash)
                   + der.tlv(der.OCTET_STRING, issuer_key_hash) + der.integer(serial))
