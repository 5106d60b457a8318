"""The common OCSP request, parsed by hand: what nearly every verifier sends (issue 16).

Why by hand: parsing a request with asn1crypto plus the strict DER walk of ocsp.request was
about 60% of the responder's CPU on the realistic mix (~100 us a request; asn1crypto builds
an object per field and the walk visits every TLV twice).  The requests verifiers send have
one shape -- a few CertIDs by SHA-1 or SHA-256, maybe a nonce, maybe signed with the
requestor's directoryName and a certificate the responder has met before -- and reading that
shape straight off the bytes takes a fraction of the time.

The responder calls `parse_request` here.  The rule that keeps it safe: `parse_common` returns
a ParsedRequest only when the request is entirely of that shape, and then one equal to what
ocsp.request's full parser returns (the
unit tests compare the two on many generated and mutated requests).  Anything else -- another
tag, extension, algorithm or parameter, a long form where DER wants the short one, a
certificate not met before, a wrong length, a trailing byte -- returns None and the full
parser decides: so every refusal, and its message, stays exactly the full parser's.

Checks kept on the accepted shape: definite minimal lengths, every TLV exactly filling its
parent, no trailing bytes, minimal INTEGERs, OIDs and NULLs compared as exact DER, BIT STRING
with no unused bits, the nonce's RFC 8954 size, at most `max_cert_ids` CertIDs, the
requestor's Name walked with the same strict DER walk as before.
"""

from __future__ import annotations

from collections.abc import Container

from asn1crypto.x509 import GeneralName

from ocsp import request as full
from ocsp.request import _KNOWN_MIN, CertID, MalformedRequest, ParsedRequest, _check_der, _nonce

__all__ = ["parse_common", "parse_request"]

# CertID hashAlgorithm, with NULL parameters or none (both as clients send them)
_HASHES = {
    bytes.fromhex("06052b0e03021a"): "sha1",
    bytes.fromhex("0609608648016503040201"): "sha256",
}
_NULL = b"\x05\x00"
# signatureAlgorithm of a signed request: RSA PKCS#1 v1.5 (NULL or no parameters) and ECDSA (none)
_RSA = {
    bytes.fromhex("06092a864886f70d010105"): "sha1_rsa",
    bytes.fromhex("06092a864886f70d01010b"): "sha256_rsa",
    bytes.fromhex("06092a864886f70d01010c"): "sha384_rsa",
    bytes.fromhex("06092a864886f70d01010d"): "sha512_rsa",
}
_ECDSA = {
    bytes.fromhex("06082a8648ce3d040302"): "sha256_ecdsa",
    bytes.fromhex("06082a8648ce3d040303"): "sha384_ecdsa",
    bytes.fromhex("06082a8648ce3d040304"): "sha512_ecdsa",
}
_NONCE = bytes.fromhex("06092b0601050507300102")  # id-pkix-ocsp-nonce


# Requestor names met before, checked and loaded: at most _NAMES_MAX * _NAME_MAX_BYTES (1 MiB) kept,
# whoever sends them (nothing from requests may grow a worker without bound, issue 12)
_NAMES: dict[bytes, GeneralName] = {}
_NAMES_MAX = 1024
_NAME_MAX_BYTES = 1024


class _Unusual(Exception):
    """Not the common shape: the full parser decides."""


def parse_request(der: bytes, *, max_cert_ids: int = 64, known_certificates: Container[bytes] = ()) -> ParsedRequest:
    """ocsp.request.parse_request, the common shape read by hand: same result, same refusals."""
    if type(der) is bytes and max_cert_ids >= 1:
        common = parse_common(der, max_cert_ids, known_certificates)
        if common is not None:
            return common
    return full.parse_request(der, max_cert_ids=max_cert_ids, known_certificates=known_certificates)


def parse_common(der: bytes, max_cert_ids: int, known: Container[bytes]) -> ParsedRequest | None:
    """The request, if it is of the common shape and valid; None for anything else."""
    try:
        return _parse(der, max_cert_ids, known)
    except (_Unusual, MalformedRequest, IndexError):
        return None


def _tlv(der: bytes, pos: int, limit: int) -> tuple[int, int, int]:
    """(identifier octet, contents start, contents end) at `pos`, ending by `limit`; low tags and
    DER lengths up to 64 KiB only."""
    if pos + 2 > limit:
        raise _Unusual
    ident = der[pos]
    length = der[pos + 1]
    pos += 2
    if length & 0x80:
        if length == 0x81:
            if pos >= limit or der[pos] < 0x80:
                raise _Unusual
            length = der[pos]
            pos += 1
        elif length == 0x82:
            if pos + 2 > limit or der[pos] == 0 or (der[pos] << 8 | der[pos + 1]) < 0x100:
                raise _Unusual
            length = der[pos] << 8 | der[pos + 1]
            pos += 2
        else:
            raise _Unusual
    end = pos + length
    if end > limit or ident & 0x1F == 0x1F:
        raise _Unusual
    return ident, pos, end


def _expect(der: bytes, pos: int, limit: int, ident: int) -> tuple[int, int]:
    found, start, end = _tlv(der, pos, limit)
    if found != ident:
        raise _Unusual
    return start, end


def _parse(der: bytes, max_cert_ids: int, known: Container[bytes]) -> ParsedRequest:
    size = len(der)
    start, end = _expect(der, 0, size, 0x30)  # OCSPRequest
    if end != size:
        raise _Unusual
    tbs_start = start
    pos, tbs_end = _expect(der, tbs_start, end, 0x30)  # tbsRequest
    tbs_der = der[tbs_start:tbs_end]

    ident, start, stop = _tlv(der, pos, tbs_end)
    requestor_name = None
    if ident == 0xA1:  # requestorName [1] EXPLICIT GeneralName: a directoryName only
        requestor_name = _requestor(der, start, stop)
        pos = stop
        ident, start, stop = _tlv(der, pos, tbs_end)
    if ident != 0x30:  # version [0] present, or anything else
        raise _Unusual
    cert_ids: list[CertID] = []
    at = start
    while at < stop:
        if len(cert_ids) == max_cert_ids:
            raise _Unusual
        single_start, single_end = _expect(der, at, stop, 0x30)  # Request, no singleRequestExtensions
        cert_ids.append(_cert_id(der, single_start, single_end))
        at = single_end
    if not cert_ids:
        raise _Unusual
    pos = stop

    nonce = None
    if pos < tbs_end:  # requestExtensions [2]: the nonce alone
        start, stop = _expect(der, pos, tbs_end, 0xA2)
        if stop != tbs_end:
            raise _Unusual
        extensions_start, extensions_end = _expect(der, start, stop, 0x30)
        extension_start, extension_end = _expect(der, extensions_start, extensions_end, 0x30)
        if extension_end != extensions_end or extensions_end != stop:
            raise _Unusual
        oid_end = extension_start + len(_NONCE)
        if der[extension_start:oid_end] != _NONCE:
            raise _Unusual
        value_start, value_end = _expect(der, oid_end, extension_end, 0x04)  # no critical flag
        if value_end != extension_end or value_start == value_end:
            raise _Unusual
        nonce = _nonce(der[value_start:value_end])

    if tbs_end == end:
        return ParsedRequest(cert_ids=tuple(cert_ids), nonce=nonce, signed=False, requestor_name=requestor_name,
                             tbs_der=tbs_der, signature_algorithm=None, signature=None, certs=())
    start, stop = _expect(der, tbs_end, end, 0xA0)  # optionalSignature [0] EXPLICIT Signature
    if stop != end:
        raise _Unusual
    pos, signature_end = _expect(der, start, stop, 0x30)
    if signature_end != stop:
        raise _Unusual
    algorithm, pos = _signature_algorithm(der, pos, signature_end)
    bits_start, bits_end = _expect(der, pos, signature_end, 0x03)
    if bits_start == bits_end or der[bits_start] != 0:
        raise _Unusual
    signature = der[bits_start + 1:bits_end]
    certs: list[bytes] = []
    if bits_end < signature_end:  # certs [0] EXPLICIT SEQUENCE OF Certificate: each one met before
        start, stop = _expect(der, bits_end, signature_end, 0xA0)
        list_start, list_end = _expect(der, start, stop, 0x30)
        if stop != signature_end or list_end != stop:
            raise _Unusual
        at = list_start
        while at < list_end:
            _, cert_end = _expect(der, at, list_end, 0x30)
            cert = der[at:cert_end]
            if len(cert) <= _KNOWN_MIN or cert not in known:  # the full walk steps over no smaller one
                raise _Unusual
            certs.append(cert)
            at = cert_end
    return ParsedRequest(cert_ids=tuple(cert_ids), nonce=nonce, signed=True, requestor_name=requestor_name,
                         tbs_der=tbs_der, signature_algorithm=algorithm, signature=signature, certs=tuple(certs))


def _requestor(der: bytes, start: int, stop: int) -> GeneralName:
    name_start, name_end = _expect(der, start, stop, 0xA4)  # directoryName [4] EXPLICIT Name
    if name_end != stop:
        raise _Unusual
    _, inner_end = _expect(der, name_start, name_end, 0x30)  # Name ::= RDNSequence
    if inner_end != name_end:
        raise _Unusual
    encoded = der[start:stop]
    name = _NAMES.get(encoded)
    if name is None:
        _check_der(der[name_start:name_end])  # strict DER inside, as the full parser walks it
        name = GeneralName.load(encoded)
        if len(encoded) <= _NAME_MAX_BYTES:  # a verifier names itself the same way every time
            if len(_NAMES) >= _NAMES_MAX:
                _NAMES.clear()
            _NAMES[encoded] = name
    return name


def _cert_id(der: bytes, start: int, stop: int) -> CertID:
    pos, cert_id_end = _expect(der, start, stop, 0x30)
    if cert_id_end != stop:
        raise _Unusual
    cert_id_start = start
    algorithm_start, algorithm_end = _expect(der, pos, cert_id_end, 0x30)
    parameters = der[algorithm_start:algorithm_end]
    name = None
    for oid, hash_name in _HASHES.items():
        if parameters.startswith(oid):
            rest = parameters[len(oid):]
            if rest == _NULL or not rest:
                name = hash_name
            break
    if name is None:
        raise _Unusual
    name_start, name_end = _expect(der, algorithm_end, cert_id_end, 0x04)
    key_start, key_end = _expect(der, name_end, cert_id_end, 0x04)
    serial_start, serial_end = _expect(der, key_end, cert_id_end, 0x02)
    if serial_end != cert_id_end or serial_start == serial_end:
        raise _Unusual
    if serial_end - serial_start > 1 and (
            (der[serial_start] == 0 and der[serial_start + 1] < 0x80)
            or (der[serial_start] == 0xFF and der[serial_start + 1] >= 0x80)):
        raise _Unusual  # not minimal
    return CertID(hash_algorithm=name, issuer_name_hash=der[name_start:name_end],
                  issuer_key_hash=der[key_start:key_end],
                  serial=int.from_bytes(der[serial_start:serial_end], "big", signed=True),
                  der=der[cert_id_start:cert_id_end])


def _signature_algorithm(der: bytes, pos: int, limit: int) -> tuple[str, int]:
    start, end = _expect(der, pos, limit, 0x30)
    body = der[start:end]
    for table, parameters in ((_RSA, (_NULL, b"")), (_ECDSA, (b"",))):
        for oid, name in table.items():
            if body.startswith(oid) and body[len(oid):] in parameters:
                return name, end
    raise _Unusual
