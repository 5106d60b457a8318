"""The TimeStampToken: TSTInfo inside CMS SignedData, signed through a `Signer` (seed 000 section 9).

The SignedData is built by ca.der.cms, the one CMS builder (asn1crypto: pyca/cryptography's PKCS7
builder cannot carry an id-ct-TSTInfo eContent nor the signingCertificateV2 attribute).
Signed attributes are contentType, messageDigest and signingCertificateV2 (RFC 5816 ESSCertIDv2,
SHA-256 of the TSA certificate with its issuer and serial). The digest and signature hash are the
signer's `hash_algorithm`: SHA-512 with RSA for seed 000, chosen by ca.tsa.authority.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509

from ca.der.cms import SignedAttributes, signed_data
from ca.errors import InvalidInput
from ca.hsm.signer import Signer
from ca.tsa.profile import ACCURACY_SECONDS, GEN_TIME_DIGITS, ORDERING, TSA_POLICY_OID
from ca.tsa.request import check_imprint

_SIGNATURE_HASHES = ("sha256", "sha384", "sha512")


def gen_time_of(now: dt.datetime) -> dt.datetime:
    """`now` as genTime carries it: aware UTC, cut to GEN_TIME_DIGITS decimals (RFC 3161 2.4.2)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidInput("time-stamp time is a naive datetime; use timezone-aware UTC")
    step = 10 ** (6 - GEN_TIME_DIGITS)
    now = now.astimezone(dt.UTC)
    return now.replace(microsecond=now.microsecond // step * step)


def build_tst_info(*, serial: int, gen_time: dt.datetime, hash_name: str, imprint: bytes, nonce: int | None,
                   tsa_name: x509.Name | None, policy: str = TSA_POLICY_OID) -> tsp.TSTInfo:
    check_imprint(hash_name, imprint)
    if serial <= 0:
        raise InvalidInput(f"time-stamp serial {serial} is not positive")
    fields: dict[str, object] = {
        "version": "v1",
        "policy": policy,
        "message_imprint": {"hash_algorithm": {"algorithm": hash_name}, "hashed_message": imprint},
        "serial_number": serial,
        "gen_time": gen_time_of(gen_time),
        "accuracy": {"seconds": ACCURACY_SECONDS},
        "ordering": ORDERING,
    }
    if nonce is not None:
        fields["nonce"] = nonce
    if tsa_name is not None:
        fields["tsa"] = asn1_x509.GeneralName(
            name="directory_name", value=asn1_x509.Name.load(tsa_name.public_bytes()))
    return tsp.TSTInfo(fields)


def sign_token(tst_info: tsp.TSTInfo, *, certificate: x509.Certificate, signer: Signer,
               chain: Sequence[x509.Certificate] = (), include_certificates: bool = True) -> bytes:
    """The TimeStampToken (ContentInfo, DER). With `include_certificates` (the request's certReq) the
    SignedData carries the TSA certificate and `chain` (the CA certificates above it), else none (RFC 3161 2.4.1)."""
    hash_name = signer.hash_algorithm.name
    if hash_name not in _SIGNATURE_HASHES:
        raise InvalidInput(f"key {signer.key_label} signs with {hash_name}; a token needs SHA-256/384/512")
    return signed_data("tst_info", tst_info.dump(), certificate=certificate, signer=signer,
                       attributes=SignedAttributes(signing_certificate_v2=True), extra_certificates=chain,
                       include_certificates=include_certificates, what="time-stamp")
