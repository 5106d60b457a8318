"""Parsing of OCSP requests (RFC 6960 section 4.1, nonces per RFC 8954, GET form per RFC 5019).

The responder calls `parse_request` once per request.  It refuses anything that is not a DER
OCSPRequest inside the profile below with `MalformedRequest` (the responder answers
malformedRequest); it never raises anything else, whatever the bytes.  Every field it returns
has been parsed in full, so errors in them surface here and not later in the responder.

Profile:

- DER only: definite, minimal lengths; primitive strings; minimal INTEGERs; BOOLEAN 00/FF;
  no DEFAULT value encoded (version v1, critical FALSE); no trailing bytes.
- version v1; 1 to `max_cert_ids` CertIDs.  CertIDs are taken as they come: an unknown hash
  algorithm keeps its name (dotted OID if asn1crypto has none), a zero or negative serial stays
  an int; the responder answers unknown for those.
- Extensions: at most one of each.  The nonce (RFC 8954: 1 to 32 octets) is read whether its
  extnValue holds a DER OCTET STRING (as RFC 8954, OpenSSL and cryptography encode it) or
  the bare octets (older clients).  acceptableResponses is honoured if critical (it must list
  id-pkix-ocsp-basic).  Any other critical extension, in tbsRequest or in a single request,
  is refused; non-critical ones are ignored unparsed.
- A signed request keeps its signature, algorithm and certificates as sent; checking them is
  `verify_signature`'s job and deciding what that means is the responder's.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Container
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from asn1crypto import ocsp as asn1_ocsp
from asn1crypto.core import ObjectIdentifier, Void
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from ca.der.parse_errors import PARSE_ERRORS

__all__ = [
    "CertID",
    "MalformedRequest",
    "ParsedRequest",
    "parse_request",
    "request_from_get_path",
    "verify_signature",
]

NONCE_MIN_OCTETS = 1
NONCE_MAX_OCTETS = 32  # RFC 8954 section 2.1: Nonce ::= OCTET STRING (SIZE(1..32))

_KNOWN_MIN = 200  # bytes: no certificate is shorter; smaller SEQUENCEs are not looked up
_MAX_DEPTH = 48  # far deeper than any OCSPRequest (a certificate name is about 8 levels)

# extension OIDs are compared as DER, and spelled out only for error messages
_OID_NONCE = ObjectIdentifier("1.3.6.1.5.5.7.48.1.2").dump()
_OID_ACCEPTABLE_RESPONSES = ObjectIdentifier("1.3.6.1.5.5.7.48.1.4").dump()
_OID_BASIC_RESPONSE = "1.3.6.1.5.5.7.48.1.1"

_PARSE_ERRORS = PARSE_ERRORS  # caught only at this boundary
_VERIFY_ERRORS: tuple[type[Exception], ...] = (InvalidSignature, *_PARSE_ERRORS)


class MalformedRequest(Exception):
    """The request is not a DER OCSPRequest within the profile; str(err) is one short line."""


@dataclass(frozen=True, slots=True)
class CertID:
    """One CertID of the requestList (RFC 6960 section 4.1.1)."""

    hash_algorithm: str  # asn1crypto name: "sha1", "sha256", ...; the dotted OID if unnamed
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int
    der: bytes = field(repr=False)  # the CertID exactly as received; the response echoes it


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """An OCSPRequest, parsed and within the profile (signature not checked)."""

    cert_ids: tuple[CertID, ...]
    nonce: bytes | None  # the Nonce octets (RFC 8954), None if the extension is absent
    signed: bool
    requestor_name: object | None  # asn1crypto.x509.GeneralName
    tbs_der: bytes = field(repr=False)  # tbsRequest exactly as received: what the signature covers
    signature_algorithm: str | None  # asn1crypto name: "sha256_rsa", "sha256_ecdsa", "rsassa_pss", ...
    signature: bytes | None = field(repr=False)
    certs: tuple[bytes, ...] = field(repr=False)  # DER of optionalSignature.certs, in order
    # asn1crypto parameters of signatureAlgorithm (RSASSAPSSParams for rsassa_pss), for verify_signature
    signature_parameters: object | None = field(default=None, repr=False, compare=False)


def parse_request(der: bytes, *, max_cert_ids: int = 64, known_certificates: Container[bytes] = ()) -> ParsedRequest:
    """Parse one DER OCSPRequest; MalformedRequest if it is not DER or out of profile.

    The full parser, for any request; the responder calls ocsp.request_fast.parse_request, which
    reads the common shape by hand and leaves everything else to this one.

    `known_certificates`: certificates (DER) this process has already parsed in full and found to
    be registered verifiers' (ocsp.authorization).  The same bytes inside a request are not
    walked or loaded again: a verifier sends its certificate with every signed request, and
    checking it was a third of a request's parse (issue 16)."""
    if isinstance(der, bytearray | memoryview):
        der = bytes(der)
    elif not isinstance(der, bytes):
        raise TypeError(f"der must be bytes, not {type(der).__name__}")
    if max_cert_ids < 1:
        raise ValueError(f"max_cert_ids must be at least 1, not {max_cert_ids}")
    try:
        _check_der(der, known_certificates)
        return _parse(der, max_cert_ids, known_certificates)
    except MalformedRequest:
        raise
    except _PARSE_ERRORS as exc:
        raise MalformedRequest(f"not an OCSP request: {_one_line(exc)}") from exc


def verify_signature(request: ParsedRequest, certificate_der: bytes) -> bool:
    """True iff the key of `certificate_der` made `request.signature` over `request.tbs_der`.

    RSA PKCS#1 v1.5, RSA-PSS (MGF1), ECDSA with SHA-1/224/256/384/512, Ed25519 and Ed448.
    Returns False, never raises, for an unsigned request, a bad signature, an algorithm that
    does not fit the key or is not supported, or a certificate that does not load.
    """
    if request.signature is None or request.signature_algorithm is None:
        return False
    key = public_key_of(certificate_der)
    return key is not None and verify_with_key(request, key)


def public_key_of(certificate_der: bytes) -> CertificatePublicKeyTypes | None:
    """The certificate's public key, or None when it cannot be loaded (unknown curve, garbage)."""
    try:
        return x509.load_der_x509_certificate(certificate_der).public_key()
    except _PARSE_ERRORS:
        return None


def verify_with_key(request: ParsedRequest, key: CertificatePublicKeyTypes) -> bool:
    """`verify_signature` with the public key already loaded (the responder keeps verifiers' keys)."""
    if request.signature is None or request.signature_algorithm is None:
        return False
    try:
        return _verify(key, request)
    except _VERIFY_ERRORS:
        return False


def request_from_get_path(path_part: str) -> bytes:
    """The DER request of an RFC 5019 GET: `path_part` is the URL-encoded base64 after the
    responder URL.  MalformedRequest if it is not (padded, standard-alphabet) base64."""
    try:
        raw = base64.b64decode(unquote_to_bytes(path_part), validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:  # UnicodeEncodeError for lone surrogates
        raise MalformedRequest(f"GET request is not URL-encoded base64: {_one_line(exc)}") from exc
    if not raw:
        raise MalformedRequest("GET request is empty")
    return raw


# --- parsing -------------------------------------------------------------------------------------


def _parse(der: bytes, max_cert_ids: int, known: Container[bytes] = ()) -> ParsedRequest:
    request = asn1_ocsp.OCSPRequest.load(der, strict=True)
    tbs = request["tbs_request"]
    # tbsRequest as received, framed by hand: _check_der has vouched for these headers
    _, tbs_start, size = _header(der, 0, len(der))
    _, tbs_contents, tbs_end = _header(der, tbs_start, size)
    tbs_der = der[tbs_start:tbs_end]

    if der[tbs_contents : tbs_contents + 1] == b"\xa0":  # version [0] is present
        version = tbs["version"].native
        if version != "v1":
            raise MalformedRequest(f"unsupported OCSP request version {version}")
        raise MalformedRequest("OCSP request encodes the default version v1 (not DER)")

    request_list = tbs["request_list"]
    count = len(request_list)
    if count == 0:
        raise MalformedRequest("OCSP request has an empty requestList")
    if count > max_cert_ids:
        raise MalformedRequest(f"OCSP request has {count} CertIDs, more than the {max_cert_ids} allowed")
    cert_ids = tuple(_cert_id(single) for single in request_list)

    requestor_name = tbs["requestor_name"]
    if isinstance(requestor_name, Void):  # absent
        requestor_name = None
    # else left lazy: nothing reads it, and parsing a Name in full cost a sixth of the parse

    nonce = _request_extensions(tbs["request_extensions"])

    signature = request["optional_signature"]
    if isinstance(signature, Void):  # unsigned
        return ParsedRequest(
            cert_ids=cert_ids,
            nonce=nonce,
            signed=False,
            requestor_name=requestor_name,
            tbs_der=tbs_der,
            signature_algorithm=None,
            signature=None,
            certs=(),
        )

    algorithm = signature["signature_algorithm"]
    algorithm_name = algorithm["algorithm"].native
    parameters = algorithm["parameters"]
    parameters.native  # noqa: B018 - parse it in full now
    bits = signature["signature"]
    if bits.contents[:1] != b"\x00":  # _check_der has made sure contents is not empty
        raise MalformedRequest("OCSP request signature is not a whole number of octets")
    certs = []
    for cert in signature["certs"]:
        cert_der = cert.dump()
        if cert_der not in known:
            x509.load_der_x509_certificate(cert_der)  # ValueError if it is no certificate
        certs.append(cert_der)
    return ParsedRequest(
        cert_ids=cert_ids,
        nonce=nonce,
        signed=True,
        requestor_name=requestor_name,
        tbs_der=tbs_der,
        signature_algorithm=algorithm_name,
        signature=bits.contents[1:],
        certs=tuple(certs),
        signature_parameters=None if isinstance(parameters, Void) else parameters,
    )


def _cert_id(single: asn1_ocsp.Request) -> CertID:
    cert_id = single["req_cert"]
    _extensions(single["single_request_extensions"], "single request")
    return CertID(
        hash_algorithm=cert_id["hash_algorithm"]["algorithm"].native,
        issuer_name_hash=cert_id["issuer_name_hash"].native,
        issuer_key_hash=cert_id["issuer_key_hash"].native,
        serial=cert_id["serial_number"].native,
        der=cert_id.dump(),
    )


def _request_extensions(extensions) -> bytes | None:
    nonce = None
    for oid, critical, value in _extensions(extensions, "request"):
        if oid == _OID_NONCE:
            nonce = _nonce(value)
        elif oid == _OID_ACCEPTABLE_RESPONSES:
            if critical and not _accepts_basic(value):
                raise MalformedRequest("OCSP request does not accept basic responses (critical acceptableResponses)")
        elif critical:
            raise MalformedRequest(f"unsupported critical request extension {_dotted(oid)}")
    return nonce


def _extensions(extensions, where: str) -> list[tuple[bytes, bool, bytes]]:
    """(extnID DER, critical, extnValue contents) of each extension, read from the Extension's own
    contents (asn1crypto would parse extnValue by OID, and a bare nonce is no OCTET STRING).
    Refuses duplicates, an empty list and, in single requests, any critical extension."""
    if isinstance(extensions, Void):  # absent
        return []
    found = []
    seen = set()
    for extension in extensions:
        oid, critical, value = _extension(extension.contents)
        if oid in seen:
            raise MalformedRequest(f"{where} extension {_dotted(oid)} appears twice")
        seen.add(oid)
        if critical and where == "single request":
            raise MalformedRequest(f"unsupported critical single request extension {_dotted(oid)}")
        found.append((oid, critical, value))
    if not found:
        raise MalformedRequest(f"OCSP request has an empty {where} extension list")
    return found


def _extension(contents: bytes) -> tuple[bytes, bool, bytes]:
    """Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }"""
    size = len(contents)
    ident, start, end = _header(contents, 0, size)
    if ident != 0x06:
        raise MalformedRequest("OCSP request extension does not start with an OID")
    oid = contents[:end]
    critical = False
    ident, start, end = _header(contents, end, size)
    if ident == 0x01:  # _check_der has made sure it is 00 or FF
        if contents[start] == 0:
            raise MalformedRequest(f"extension {_dotted(oid)} encodes the default critical FALSE (not DER)")
        critical = True
        ident, start, end = _header(contents, end, size)
    if ident != 0x04 or end != size:
        raise MalformedRequest(f"extension {_dotted(oid)} has no extnValue OCTET STRING")
    return oid, critical, contents[start:end]


def _nonce(value: bytes) -> bytes:
    """The Nonce octets of the extnValue contents: a DER OCTET STRING, or bare octets."""
    nonce = value
    if value[:1] == b"\x04":
        try:
            _, start, end = _header(value, 0, len(value))
        except MalformedRequest:
            pass  # not an OCTET STRING: bare octets that start with 04
        else:
            if end == len(value):
                nonce = value[start:end]
    if not NONCE_MIN_OCTETS <= len(nonce) <= NONCE_MAX_OCTETS:
        raise MalformedRequest(
            f"OCSP nonce is {len(nonce)} octets; RFC 8954 allows {NONCE_MIN_OCTETS} to {NONCE_MAX_OCTETS}"
        )
    return nonce


def _accepts_basic(value: bytes) -> bool:
    _check_der(value)  # extnValue contents are DER too, and _check_der did not look inside them
    types = asn1_ocsp.AcceptableResponses.load(value, strict=True)
    return any(response_type.dotted == _OID_BASIC_RESPONSE for response_type in types)


# --- DER ---------------------------------------------------------------------------------------


def _header(der: bytes, pos: int, limit: int) -> tuple[int, int, int]:
    """(identifier octet, contents start, contents end) of the DER TLV at `pos`, which must end
    by `limit`.  Refuses indefinite and non-minimal lengths.  Tags >= 31 are skipped over."""
    if pos >= limit:
        raise MalformedRequest("OCSP request is truncated")
    ident = der[pos]
    pos += 1
    if ident & 0x1F == 0x1F:  # high tag number form
        if pos >= limit or der[pos] == 0x80:
            raise MalformedRequest("OCSP request has a bad tag")
        while pos < limit and der[pos] & 0x80:
            pos += 1
        pos += 1
    if pos >= limit:
        raise MalformedRequest("OCSP request is truncated")
    length = der[pos]
    pos += 1
    if length & 0x80:
        octets = length & 0x7F
        if octets == 0:
            raise MalformedRequest("OCSP request uses an indefinite length (not DER)")
        if octets > 4 or pos + octets > limit:
            raise MalformedRequest("OCSP request is truncated")
        length = int.from_bytes(der[pos : pos + octets], "big")
        if length < 0x80 or der[pos] == 0:
            raise MalformedRequest("OCSP request has a non-minimal length (not DER)")
        pos += octets
    end = pos + length
    if end > limit:
        raise MalformedRequest("OCSP request is truncated")
    return ident, pos, end


def _check_der(der: bytes, known: Container[bytes] = ()) -> None:
    """Walk every TLV once: one value, no trailing bytes, DER lengths, and the DER rules for
    universal types that are cheap to check.  Schema rules are left to asn1crypto.  A SEQUENCE
    whose bytes are a `known` certificate (checked in full before) is stepped over."""
    size = len(der)
    if not size:
        raise MalformedRequest("OCSP request is empty")
    ident, pos, end = _header(der, 0, size)
    if end != size:
        raise MalformedRequest(f"OCSP request has {size - end} trailing bytes")
    if ident != 0x30:
        raise MalformedRequest("OCSP request is not a SEQUENCE")
    ends = [end]  # contents ends of the open constructed values
    while ends:
        limit = ends[-1]
        if pos == limit:
            ends.pop()
            continue
        ident, start, end = _header(der, pos, limit)
        if ident & 0x20:  # constructed
            if known and ident == 0x30 and end - pos > _KNOWN_MIN and der[pos:end] in known:
                pos = end
                continue
            if ident < 0x40 and ident not in (0x30, 0x31):
                raise MalformedRequest("OCSP request has a constructed string (not DER)")
            if len(ends) >= _MAX_DEPTH:
                raise MalformedRequest("OCSP request is nested too deeply")
            ends.append(end)
            pos = start
            continue
        if ident < 0x40:  # universal, primitive
            _check_primitive(ident, der, start, end)
        pos = end


def _check_primitive(ident: int, der: bytes, start: int, end: int) -> None:
    length = end - start
    if ident == 0x02 or ident == 0x0A:  # INTEGER, ENUMERATED: minimal two's complement
        if length == 0:
            raise MalformedRequest("OCSP request has an empty INTEGER")
        if length > 1 and (
            (der[start] == 0 and der[start + 1] < 0x80) or (der[start] == 0xFF and der[start + 1] >= 0x80)
        ):
            raise MalformedRequest("OCSP request has a non-minimal INTEGER (not DER)")
    elif ident == 0x01:  # BOOLEAN
        if length != 1 or der[start] not in (0x00, 0xFF):
            raise MalformedRequest("OCSP request has a BOOLEAN that is not 00 or FF (not DER)")
    elif ident == 0x03:  # BIT STRING
        if length == 0 or der[start] > 7 or (length == 1 and der[start]):
            raise MalformedRequest("OCSP request has a bad BIT STRING")
        if der[end - 1] & ((1 << der[start]) - 1):
            raise MalformedRequest("OCSP request has a BIT STRING with unused bits set (not DER)")
    elif ident == 0x06:  # OBJECT IDENTIFIER
        if length == 0 or der[end - 1] & 0x80:
            raise MalformedRequest("OCSP request has a bad OBJECT IDENTIFIER")
        previous = 0
        for pos in range(start, end):
            if der[pos] == 0x80 and not previous & 0x80:
                raise MalformedRequest("OCSP request has a non-minimal OBJECT IDENTIFIER (not DER)")
            previous = der[pos]
    elif ident == 0x05:  # NULL
        if length:
            raise MalformedRequest("OCSP request has a NULL with contents")
    elif ident == 0x00:
        raise MalformedRequest("OCSP request has an end-of-contents marker (not DER)")


def _dotted(oid: bytes) -> str:
    return ObjectIdentifier.load(oid).dotted


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0].strip() if text else type(exc).__name__)[:160]


# --- signatures --------------------------------------------------------------------------------

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def _verify(key: CertificatePublicKeyTypes, request: ParsedRequest) -> bool:
    """Raises InvalidSignature (or a parse error) unless the signature verifies; False if the
    algorithm is not supported or does not fit the key."""
    algorithm = request.signature_algorithm
    signature = request.signature
    data = request.tbs_der
    if algorithm is None or signature is None:  # unsigned: verify_with_key returns False before this
        return False
    if algorithm == "rsassa_pss":
        if not isinstance(key, rsa.RSAPublicKey):
            return False
        pss = _pss(request.signature_parameters)
        if pss is None:
            return False
        key.verify(signature, data, pss[0], pss[1])
        return True
    if algorithm == "ed25519":
        if not isinstance(key, ed25519.Ed25519PublicKey):
            return False
        key.verify(signature, data)
        return True
    if algorithm == "ed448":
        if not isinstance(key, ed448.Ed448PublicKey):
            return False
        key.verify(signature, data)
        return True
    hash_name, _, kind = algorithm.partition("_")
    hash_class = _HASHES.get(hash_name)
    if hash_class is None:
        return False
    if kind == "rsa" and isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, padding.PKCS1v15(), hash_class())
        return True
    if kind == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(hash_class()))
        return True
    return False


def _pss(parameters) -> tuple[padding.PSS, hashes.HashAlgorithm] | None:
    """The PSS padding and hash of RSASSA-PSS-params (RFC 4055), None if unsupported."""
    if parameters is None:
        return None
    hash_class = _HASHES.get(parameters["hash_algorithm"]["algorithm"].native)
    mask_gen = parameters["mask_gen_algorithm"]
    if mask_gen["algorithm"].native != "mgf1" or parameters["trailer_field"].native != "trailer_field_bc":
        return None
    mgf_hash_class = _HASHES.get(mask_gen["parameters"]["algorithm"].native)
    if hash_class is None or mgf_hash_class is None:
        return None
    salt_length = parameters["salt_length"].native
    return padding.PSS(mgf=padding.MGF1(mgf_hash_class()), salt_length=salt_length), hash_class()
