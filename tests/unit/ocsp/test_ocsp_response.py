"""The hand-assembled OCSP responses equal what asn1crypto builds from the same values, byte for byte."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from asn1crypto import core
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp as x509_ocsp

from ca.der import encoding as der
from ca.hsm.signer import SoftwareSigner
from ocsp.response import Answer, basic_response, error_response, with_certificate
from ocsp.status import CertStatus, Status

NOW = dt.datetime(2026, 11, 1, 9, 0, 7, tzinfo=dt.UTC)
KEY = rsa.generate_private_key(65537, 2048)  # PKCS#1 v1.5 signatures are deterministic: whole responses compare
SIGNER = SoftwareSigner(KEY)
SHA1 = hashes.SHA1()
# CRLReason names asn1crypto uses, by code
REASONS = {1: "key_compromise", 2: "ca_compromise", 3: "affiliation_changed", 4: "superseded",
           5: "cessation_of_operation"}


def _cert_id(serial: int, algorithm: hashes.HashAlgorithm = SHA1) -> bytes:
    request = x509_ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        b"\x11" * algorithm.digest_size, b"\x22" * algorithm.digest_size, serial, algorithm).build()
    return asn1_ocsp.OCSPRequest.load(request.public_bytes(serialization.Encoding.DER))[
        "tbs_request"]["request_list"][0]["req_cert"].dump()


def _responder_cert() -> bytes:
    name = x509.Name.from_rfc4514_string("CN=OCSP Responder tokyo,O=JPKI,C=JP")
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(KEY.public_key())
            .serial_number(7).not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=365))
            .sign(KEY, hashes.SHA256()).public_bytes(serialization.Encoding.DER))


def _reference(answers: list[Answer], key_hash: bytes, cert: bytes | None, nonce: bytes | None) -> bytes:
    """The same response built field by field with asn1crypto."""
    singles = []
    for a in answers:
        if a.status.status is CertStatus.GOOD:
            status = asn1_ocsp.CertStatus(name="good", value=core.Null())
        elif a.status.status is CertStatus.REVOKED:
            info = {"revocation_time": a.status.revoked_at}
            if a.status.reason is not None:
                info["revocation_reason"] = REASONS[a.status.reason]
            status = asn1_ocsp.CertStatus(name="revoked", value=asn1_ocsp.RevokedInfo(info))
        else:
            status = asn1_ocsp.CertStatus(name="unknown", value=core.Null())
        singles.append(asn1_ocsp.SingleResponse({"cert_id": asn1_ocsp.CertId.load(a.cert_id_der),
                                                 "cert_status": status, "this_update": a.this_update,
                                                 "next_update": a.next_update}))
    data = {"responder_id": asn1_ocsp.ResponderId(name="by_key", value=core.OctetString(key_hash)),
            "produced_at": NOW, "responses": singles}
    if nonce is not None:
        data["response_extensions"] = [{"extn_id": "nonce", "critical": False, "extn_value": nonce}]
    tbs = asn1_ocsp.ResponseData(data)
    basic = {"tbs_response_data": tbs, "signature_algorithm": {"algorithm": "sha256_rsa"},
             "signature": SIGNER.sign(tbs.dump())}
    if cert is not None:
        basic["certs"] = [asn1_x509.Certificate.load(cert)]
    return asn1_ocsp.OCSPResponse({"response_status": "successful", "response_bytes": {
        "response_type": "basic_ocsp_response", "response": asn1_ocsp.BasicOCSPResponse(basic)}}).dump()


REVOKED_AT = dt.datetime(2026, 10, 30, 1, 2, 3, tzinfo=dt.UTC)
STATUSES = [Status(CertStatus.GOOD), Status(CertStatus.UNKNOWN), Status(CertStatus.REVOKED, REVOKED_AT, 1),
            Status(CertStatus.REVOKED, REVOKED_AT, 5), Status(CertStatus.REVOKED, REVOKED_AT, None)]


@pytest.mark.parametrize("status", STATUSES, ids=lambda s: f"{s.status.value}-{s.reason}")
@pytest.mark.parametrize("nonce", [None, b"\x01", b"n" * 32])
@pytest.mark.parametrize("with_cert", [True, False])
def test_same_bytes_as_asn1crypto(status: Status, nonce: bytes | None, with_cert: bool) -> None:
    cert = _responder_cert() if with_cert else None
    key_hash = hashlib.sha1(b"responder key").digest()
    answers = [Answer(_cert_id(0x1234), status, NOW, NOW + dt.timedelta(hours=72)),
               Answer(_cert_id(1 << 159, hashes.SHA256()), Status(CertStatus.GOOD), NOW, NOW + dt.timedelta(hours=1))]
    ours = basic_response(SIGNER, responder_key_hash=key_hash, certificate_der=cert, answers=answers,
                          produced_at=NOW, nonce=nonce)
    assert ours == _reference(answers, key_hash, cert, nonce)
    parsed = x509_ocsp.load_der_ocsp_response(ours)  # and cryptography reads it back
    assert parsed.response_status == x509_ocsp.OCSPResponseStatus.SUCCESSFUL
    assert [r.certificate_status.name.lower() for r in parsed.responses][0] == status.status.value
    if nonce is not None:
        assert parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce


@pytest.mark.parametrize("name", ["malformed_request", "internal_error", "try_later", "sign_required",
                                  "unauthorized"])
def test_error_responses(name: str) -> None:
    assert error_response(name) == asn1_ocsp.OCSPResponse({"response_status": name}).dump()


@pytest.mark.parametrize("signed_size", [0, 1, 100, 0x7F - 20, 0x80, 0xFF, 0x100, 300, 0xFFFF - 60, 0xFFFF, 70_000])
@pytest.mark.parametrize("with_cert", [True, False])
def test_with_certificate_equals_the_envelope_nested_tlv_by_tlv(signed_size: int, with_cert: bool) -> None:
    """The envelope is joined from lengths (no re-encoding): same bytes as nesting the TLVs one by one,
    at every length boundary of the headers."""
    signed = bytes(range(256)) * (signed_size // 256) + bytes(range(signed_size % 256))
    cert = _responder_cert() if with_cert else None
    basic = signed + (der.tlv(0xA0, der.tlv(der.SEQUENCE, cert)) if cert is not None else b"")
    response_bytes = der.tlv(der.SEQUENCE, der.oid("1.3.6.1.5.5.7.48.1.1")
                             + der.tlv(der.OCTET_STRING, der.tlv(der.SEQUENCE, basic)))
    expected = der.tlv(der.SEQUENCE, der.tlv(der.ENUMERATED, b"\x00") + der.tlv(0xA0, response_bytes))
    assert with_certificate(signed, cert) == expected
    assert with_certificate(signed, cert) == expected  # the certs field from the cache
