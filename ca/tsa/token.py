"""The TimeStampToken: TSTInfo inside CMS SignedData, signed through a `Signer` (seed 000 section 9).

Encoded with asn1crypto because pyca/cryptography's PKCS7 builder cannot carry an
id-ct-TSTInfo eContent nor the signingCertificateV2 attribute; no byte is written by hand.
Signed attributes are contentType, messageDigest and signingCertificateV2 (RFC 5816 ESSCertIDv2,
SHA-256 of the TSA certificate with its issuer and serial). The digest and signature hash are the
signer's `hash_algorithm`: SHA-512 with RSA for seed 000, chosen by ca.tsa.authority.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence

from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization

from ca.errors import InvalidInput, TokenError
from ca.hsm.signer import Signer, verify_signature
from ca.storage.authorities import spki_der
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


@functools.lru_cache(maxsize=8)
def _signing_certificate_attribute(cert_der: bytes) -> bytes:
    """The signingCertificateV2 attribute, DER: the same for every token of one TSA certificate, and
    asn1crypto takes milliseconds to build it, so it is built once per certificate."""
    ess = ess_cert_id_v2(x509.load_der_x509_certificate(cert_der))
    return cms.CMSAttribute({"type": "signing_certificate_v2", "values": [{"certs": [ess]}]}).dump()


def ess_cert_id_v2(certificate: x509.Certificate) -> tsp.ESSCertIDv2:
    """RFC 5816 / RFC 5035 ESSCertIDv2 of the TSA certificate (SHA-256, the default, so left out)."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    cert = asn1_x509.Certificate.load(der)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return tsp.ESSCertIDv2({
        "cert_hash": digest.finalize(),
        "issuer_serial": {
            "issuer": [asn1_x509.GeneralName(name="directory_name", value=cert.issuer)],
            "serial_number": cert.serial_number,
        },
    })  # fmt: skip


def sign_token(tst_info: tsp.TSTInfo, *, certificate: x509.Certificate, signer: Signer,
               chain: Sequence[x509.Certificate] = (), include_certificates: bool = True) -> bytes:
    """The TimeStampToken (ContentInfo, DER). With `include_certificates` (the request's certReq) the
    SignedData carries the TSA certificate and `chain` (the CA certificates above it), else none (RFC 3161 2.4.1)."""
    hash_algorithm = signer.hash_algorithm
    hash_name = hash_algorithm.name
    if hash_name not in _SIGNATURE_HASHES:
        raise InvalidInput(f"key {signer.key_label} signs with {hash_name}; a token needs SHA-256/384/512")
    cert_der = certificate.public_bytes(serialization.Encoding.DER)
    if spki_der(signer.public_key()) != spki_der(certificate.public_key()):
        raise InvalidInput(f"key {signer.key_label} is not the key of TSA certificate {certificate.serial_number:x}")
    content = tst_info.dump()
    digest = hashes.Hash(hash_algorithm)
    digest.update(content)
    signed_attrs = cms.CMSAttributes([
        {"type": "content_type", "values": ["tst_info"]},
        {"type": "message_digest", "values": [digest.finalize()]},
        cms.CMSAttribute.load(_signing_certificate_attribute(cert_der)),
    ])  # fmt: skip
    to_sign = signed_attrs.dump()  # the SET OF encoding is what is signed (RFC 5652 5.4)
    signature = signer.sign(to_sign)
    try:  # never release a bad signature: a faulty RSA-CRT signature can reveal the key
        verify_signature(signer.public_key(), signature, to_sign, hash_algorithm)
    except InvalidSignature as exc:
        raise TokenError(f"key {signer.key_label} returned a signature that does not verify; "
                         "time-stamp withheld, check the token") from exc
    asn1_cert = asn1_x509.Certificate.load(cert_der)
    kind = "rsa" if signer.algorithm.is_rsa else "ecdsa"
    signer_info = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier(name="issuer_and_serial_number", value={
            "issuer": asn1_cert.issuer, "serial_number": asn1_cert.serial_number}),
        "digest_algorithm": {"algorithm": hash_name},
        "signed_attrs": cms.CMSAttributes.load(to_sign),  # as signed; not encoded a second time
        "signature_algorithm": {"algorithm": f"{hash_name}_{kind}"},
        "signature": signature,
    })  # fmt: skip
    signed_data: dict[str, object] = {
        "version": "v3",  # eContentType is not id-data (RFC 5652 5.1)
        "digest_algorithms": [{"algorithm": hash_name}],
        "encap_content_info": {"content_type": "tst_info", "content": cms.ParsableOctetString(content)},
        "signer_infos": [signer_info],
    }
    if include_certificates:
        signed_data["certificates"] = [cms.CertificateChoices.load(c.public_bytes(serialization.Encoding.DER))
                                       for c in (certificate, *chain)]
    return cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(signed_data)}).dump()
