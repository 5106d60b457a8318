"""Online revocation by the subscriber (seed 004 3.4.1.1): a request signed with their own key.

The body is CMS SignedData (DER) with the subscriber's certificate inside and, as content,
JSON {"reason": ..., "serial": "<hex>"}.  It is accepted without a clerk when the signature
verifies with that certificate, the certificate is one revoca knows, is valid now, and is
not revoked.  cryptography can only *make* SignedData, so asn1crypto reads it.

The body is kept as it came (`OnlineRequest.document`, filed as Filing.signed_request): seed
004 5.5.1.2 archives the online revocation application itself, and the archive exports it as
`online-request-N.p7m` for `openssl cms -verify` (ca.archive.items).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json

from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from ca.der.parse_errors import PARSE_ERRORS
from ca.errors import InvalidInput, NotFound, PermissionDenied
from ca.hsm.signer import verify_signature
from ca.storage.models import Certificate
from ca.storage.store import ReadStore

_HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}
ID_DATA = "data"


@dataclasses.dataclass(frozen=True, slots=True)
class OnlineRequest:
    certificate: Certificate
    reason: object
    message_digest: bytes
    document: bytes  # the CMS SignedData exactly as received: kept with the request (Filing.signed_request)


def parse_signed_request(body: bytes, store: ReadStore, now: dt.datetime) -> OnlineRequest:
    # asn1crypto parses lazily, so a malformed body can fail anywhere in the walk: all of
    # it is one step, and every parse failure is the client's (422), never ours (500).
    try:
        cert, content = _verified_signer(body)
    except PARSE_ERRORS as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidInput(f"the body is not valid CMS SignedData: {detail}") from exc
    row = store.certificate_by_fingerprint(hashlib.sha256(cert.public_bytes(Encoding.DER)).digest())
    if row is None:
        raise NotFound("the signing certificate is not a certificate issued by a revoca CA")
    if not row.not_before <= now <= row.not_after:
        raise PermissionDenied("the signing certificate is not valid now; revoke it at an RA window")
    if row.revocation is not None:
        raise PermissionDenied("the signing certificate is already revoked")
    try:
        payload = json.loads(content)
    except ValueError as exc:
        raise InvalidInput("the signed content is not JSON") from exc
    if not isinstance(payload, dict) or "reason" not in payload:
        raise InvalidInput('the signed content must be a JSON object with "reason"')
    serial = payload.get("serial")
    if serial is not None and str(serial).lower() != format(row.serial, "x"):
        raise InvalidInput("the signed content names another serial than the signing certificate")
    return OnlineRequest(row, payload["reason"], hashlib.sha256(body).digest(), bytes(body))


def _verified_signer(body: bytes) -> tuple[x509.Certificate, bytes]:
    """The signer's certificate and the content, once the signature over it verifies."""
    info = cms.ContentInfo.load(body)
    if info["content_type"].native != "signed_data":
        raise InvalidInput("the body must be CMS SignedData")
    signed = info["content"]
    content = signed["encap_content_info"]["content"].native
    certs = [c.chosen.dump() for c in signed["certificates"] or [] if c.name == "certificate"]
    signer_infos = list(signed["signer_infos"])
    if not isinstance(content, bytes) or len(signer_infos) != 1 or len(certs) < 1:
        raise InvalidInput("SignedData must carry its content, one signer and the signer's certificate")
    cert = _signer_certificate(signer_infos[0], certs)
    _verify(signer_infos[0], cert, content)
    return cert, content


def _signer_certificate(signer_info: cms.SignerInfo, certs: list[bytes]) -> x509.Certificate:
    sid = signer_info["sid"]
    for der in certs:
        cert = x509.load_der_x509_certificate(der)
        if sid.name == "issuer_and_serial_number":
            if sid.chosen["serial_number"].native == cert.serial_number:
                return cert
        else:
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
            except x509.ExtensionNotFound:
                continue
            if ski == sid.chosen.native:
                return cert
    raise InvalidInput("SignedData does not carry the signer's certificate")


def _verify(signer_info: cms.SignerInfo, cert: x509.Certificate, content: bytes) -> None:
    hash_name = signer_info["digest_algorithm"]["algorithm"].native
    algorithm = _HASHES.get(hash_name)
    if algorithm is None:
        raise InvalidInput(f"digest algorithm {hash_name} is not accepted")
    signed_attrs = signer_info["signed_attrs"]
    if signed_attrs:
        digest = hashes.Hash(algorithm)
        digest.update(content)
        if _message_digest(signed_attrs) != digest.finalize():
            raise PermissionDenied("the signature does not cover this content (messageDigest differs)")
        data = signed_attrs.untag().dump(force=True)  # signed as a SET OF, not [0] IMPLICIT
    else:
        data = content
    try:
        verify_signature(cert.public_key(), signer_info["signature"].native, data, algorithm)
    except InvalidSignature as exc:
        raise PermissionDenied("the request's signature does not verify with the enclosed certificate") from exc


def _message_digest(signed_attrs: cms.CMSAttributes) -> bytes:
    """RFC 5652 5.3: signed attributes carry exactly one messageDigest with exactly one value."""
    values = [a["values"] for a in signed_attrs if a["type"].native == "message_digest"]
    if len(values) != 1 or len(values[0]) != 1:
        raise InvalidInput("the signed attributes must hold exactly one messageDigest with one value")
    return values[0][0].native
