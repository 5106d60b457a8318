"""The signed answer: CMS SignedData (RFC 5652) over the answer document, by the CVS-server key.

eContentType is CVS_ANSWER (not id-data), so the HSM signer can tell these signed attributes
from a receipt's or a time stamp's and lets the `cvs` identity sign nothing else
(ca.hsm.policy).  Signed attributes: contentType, signingTime, messageDigest.  The SignedData
carries the CVS-server certificate and the bridge certificate above it, so that

    openssl cms -verify -inform DER -in answer.p7 -CAfile bridge.pem -purpose any

checks it against the bridge root alone (-purpose any: the certificate's EKU is scvpServer,
not S/MIME).  Encoded with asn1crypto; no byte is written by hand.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from ca.cvs.answer import CVS_ANSWER
from ca.errors import InvalidInput, TokenError
from ca.hsm.signer import Signer, verify_signature
from ca.storage.authorities import spki_der


def sign_answer(content: bytes, *, certificate: x509.Certificate, signer: Signer,
                chain: Sequence[x509.Certificate] = (), now: dt.datetime) -> bytes:
    """ContentInfo (DER) of a SignedData that encapsulates `content`."""
    if spki_der(signer.public_key()) != spki_der(certificate.public_key()):
        raise InvalidInput(f"key {signer.key_label} is not the key of CVS certificate {certificate.serial_number:x}")
    hash_algorithm = signer.hash_algorithm
    hash_name = hash_algorithm.name
    digest = hashes.Hash(hash_algorithm)
    digest.update(content)
    signed_attrs = cms.CMSAttributes([
        {"type": "content_type", "values": [CVS_ANSWER]},
        {"type": "signing_time", "values": [cms.Time(name="utc_time", value=now.astimezone(dt.UTC))]},
        {"type": "message_digest", "values": [digest.finalize()]},
    ])  # fmt: skip
    to_sign = signed_attrs.dump()  # the SET OF encoding is what is signed (RFC 5652 5.4)
    signature = signer.sign(to_sign)
    try:  # never release a bad signature: a faulty RSA-CRT signature can reveal the key
        verify_signature(signer.public_key(), signature, to_sign, hash_algorithm)
    except InvalidSignature as exc:
        raise TokenError(f"key {signer.key_label} returned a signature that does not verify; "
                         "answer withheld, check the token") from exc
    cert_der = certificate.public_bytes(Encoding.DER)
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
    signed_data = cms.SignedData({
        "version": "v3",  # eContentType is not id-data (RFC 5652 5.1)
        "digest_algorithms": [{"algorithm": hash_name}],
        "encap_content_info": {"content_type": CVS_ANSWER, "content": cms.ParsableOctetString(content)},
        "certificates": [cms.CertificateChoices.load(c.public_bytes(Encoding.DER)) for c in (certificate, *chain)],
        "signer_infos": [signer_info],
    })  # fmt: skip
    return cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()
