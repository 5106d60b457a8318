"""CMS SignedData (RFC 5652) over one encapsulated content, signed through a `Signer`.

The one builder of what revoca signs as CMS: validation answers (ca.cvs.signed), RFC 3161
time-stamp tokens (ca.tsa.token), the RA's receipts (ca.ra.receipts) and sealed disclosure
reports (ca.disclosure.sealing).  What goes to the signer is the DER SET OF signed attributes
(RFC 5652 5.4), and the HSM service parses exactly that to decide who may sign it
(ca.hsm.policy: the contentType attribute tells a time stamp from an answer from a receipt), so
the attributes are written in one fixed order and each caller's bytes stay what they were.
The signature is checked before the SignedData is released.  Encoded with asn1crypto: no byte
is written by hand, and pyca/cryptography's PKCS7 builder can carry neither another eContentType
nor signingCertificateV2.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization

from ca.errors import InvalidInput, TokenError
from ca.hsm.signer import Signer, verify_signature

ID_DATA = "data"  # 1.2.840.113549.1.7.1


@dataclass(frozen=True, slots=True)
class SignedAttributes:
    """The signed attributes besides contentType and messageDigest, which are always there (RFC 5652 5.3).

    Written in the order contentType, signingTime, messageDigest, smimeCapabilities,
    signingCertificateV2 — the order every caller used before there was one builder.
    """

    signing_time: dt.datetime | None = None
    #: AES-256/192/128-CBC, as OpenSSL's PKCS7_sign adds (cryptography's PKCS7SignatureBuilder
    #: made the receipts before; kept so that what the signer is sent did not change)
    smime_capabilities: bool = False
    #: RFC 5816 ESSCertIDv2 of the signer's certificate (time-stamp tokens)
    signing_certificate_v2: bool = False

    def __post_init__(self) -> None:
        when = self.signing_time
        if when is not None and (when.tzinfo is None or when.utcoffset() is None):
            raise InvalidInput("signing time is a naive datetime; use timezone-aware UTC")


def signed_data(content_type: str, content: bytes, *, certificate: x509.Certificate, signer: Signer,
                attributes: SignedAttributes, extra_certificates: Sequence[x509.Certificate] = (),
                include_certificates: bool = True, rsa_encryption: bool = False, what: str = "SignedData") -> bytes:
    """ContentInfo (DER) of a SignedData that encapsulates `content` of `content_type` (an asn1crypto
    name or a dotted OID), signed by `signer`, whose key must be `certificate`'s.

    The SignedData carries `certificate` and `extra_certificates` unless `include_certificates` is
    false (RFC 3161 certReq).  `rsa_encryption` names the RSA signature algorithm rsaEncryption, as
    OpenSSL does, rather than sha*WithRSAEncryption (RFC 3370 3.2 allows both).  `what` names the
    product in the error raised when the token returns a bad signature.
    """
    cert_der = certificate.public_bytes(serialization.Encoding.DER)
    if _spki(signer.public_key()) != _spki(certificate.public_key()):
        raise InvalidInput(f"key {signer.key_label} is not the key of certificate {certificate.serial_number:x}; "
                           f"{what} not signed")
    hash_algorithm = signer.hash_algorithm
    hash_name = hash_algorithm.name
    to_sign = _signed_attributes(content_type, content, hash_algorithm, attributes, cert_der)
    signature = signer.sign(to_sign)
    try:  # never release a bad signature: a faulty RSA-CRT signature can reveal the key
        verify_signature(signer.public_key(), signature, to_sign, hash_algorithm)
    except InvalidSignature as exc:
        raise TokenError(f"key {signer.key_label} returned a signature that does not verify; "
                         f"{what} withheld, check the token") from exc
    asn1_cert = asn1_x509.Certificate.load(cert_der)
    if signer.algorithm.is_rsa:
        signature_algorithm = "rsassa_pkcs1v15" if rsa_encryption else f"{hash_name}_rsa"
    else:
        signature_algorithm = f"{hash_name}_ecdsa"
    signer_info = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier(name="issuer_and_serial_number", value={
            "issuer": asn1_cert.issuer, "serial_number": asn1_cert.serial_number}),
        "digest_algorithm": {"algorithm": hash_name},
        "signed_attrs": cms.CMSAttributes.load(to_sign),  # as signed; not encoded a second time
        "signature_algorithm": {"algorithm": signature_algorithm},
        "signature": signature,
    })  # fmt: skip
    fields: dict[str, object] = {
        "version": "v1" if content_type == ID_DATA else "v3",  # v3 when eContentType is not id-data (RFC 5652 5.1)
        "digest_algorithms": [{"algorithm": hash_name}],
        "encap_content_info": {"content_type": content_type, "content":  # asn1crypto types id-data as OctetString
                               content if content_type == ID_DATA else cms.ParsableOctetString(content)},
        "signer_infos": [signer_info],
    }
    if include_certificates:
        fields["certificates"] = [cms.CertificateChoices.load(c) for c in
                                  (cert_der, *(e.public_bytes(serialization.Encoding.DER) for e in extra_certificates))]
    return cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(fields)}).dump()


def _signed_attributes(content_type: str, content: bytes, hash_algorithm: hashes.HashAlgorithm,
                       attributes: SignedAttributes, cert_der: bytes) -> bytes:
    """The DER SET OF attributes that is signed (and sent to the signer)."""
    digest = hashes.Hash(hash_algorithm)
    digest.update(content)
    wanted: list[object] = [{"type": "content_type", "values": [content_type]}]
    if attributes.signing_time is not None:
        wanted.append({"type": "signing_time", "values": [_time(attributes.signing_time)]})
    wanted.append({"type": "message_digest", "values": [digest.finalize()]})
    if attributes.smime_capabilities:
        wanted.append({"type": "smime_capabilities", "values": [[
            {"capability_id": "aes256_cbc"}, {"capability_id": "aes192_cbc"}, {"capability_id": "aes128_cbc"}]]})
    if attributes.signing_certificate_v2:
        wanted.append(cms.CMSAttribute.load(_signing_certificate_attribute(cert_der)))
    return bytes(cms.CMSAttributes(wanted).dump())


def _time(value: dt.datetime) -> cms.Time:
    """RFC 5652 11.3: UTCTime for 1950-2049, GeneralizedTime otherwise; whole seconds."""
    value = value.astimezone(dt.UTC)
    return cms.Time(name="utc_time" if 1950 <= value.year < 2050 else "generalized_time",
                    value=value.replace(microsecond=0))


@functools.lru_cache(maxsize=8)
def _signing_certificate_attribute(cert_der: bytes) -> bytes:
    """The signingCertificateV2 attribute, DER: the same for every token of one TSA certificate, and
    asn1crypto takes milliseconds to build it, so it is built once per certificate."""
    ess = ess_cert_id_v2(x509.load_der_x509_certificate(cert_der))
    return bytes(cms.CMSAttribute({"type": "signing_certificate_v2", "values": [{"certs": [ess]}]}).dump())


def ess_cert_id_v2(certificate: x509.Certificate) -> tsp.ESSCertIDv2:
    """RFC 5816 / RFC 5035 ESSCertIDv2 of a certificate (SHA-256, the default, so left out)."""
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


def _spki(public_key: object) -> bytes:
    return bytes(public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def sign_data(content: bytes, *, certificate: x509.Certificate, signer: Signer, now: dt.datetime,
              what: str = "SignedData") -> bytes:
    """An id-data SignedData encoded as cryptography's PKCS7SignatureBuilder (Binary) encoded it
    (OpenSSL's PKCS7_sign): signingTime and S/MIME capabilities, RSA named rsaEncryption, the signer's
    certificate only.  Receipts and disclosure bundles were made that way; what the signer is sent
    and what `openssl cms -verify` reads stay the same."""
    return signed_data(ID_DATA, content, certificate=certificate, signer=signer,
                       attributes=SignedAttributes(signing_time=now, smime_capabilities=True),
                       rsa_encryption=True, what=what)
