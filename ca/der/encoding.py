"""The DER primitives the CRL and OCSP encoders need, and nothing more (X.690 section 10).

A CRL of a million entries cannot be built as one ASN.1 object in memory, so its framing
(tag, length) is written around bytes that stream from the database; asn1crypto and
cryptography both need the whole value first.  Everything here is small enough to check by
eye and is compared byte for byte with cryptography's encoder in tests/unit/crl/test_crl_tbs.py.
"""

from __future__ import annotations

import datetime as dt

SEQUENCE = 0x30
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
ENUMERATED = 0x0A
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
CONTEXT_0_CONSTRUCTED = 0xA0  # [0] EXPLICIT
CONTEXT_0 = 0x80  # [0] IMPLICIT, primitive
CONTEXT_1 = 0x81
CONTEXT_2 = 0x82

TRUE = b"\x01\x01\xff"  # BOOLEAN TRUE
NULL = b"\x05\x00"


def length(n: int) -> bytes:
    """Definite length, short form below 128, else the minimal long form."""
    if n < 0:
        raise ValueError(f"a DER length cannot be negative ({n})")
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def header(tag: int, n: int) -> bytes:
    """Tag and length of a value whose n content octets are written separately (streaming)."""
    return bytes((tag,)) + length(n)


def tlv(tag: int, content: bytes) -> bytes:
    return header(tag, len(content)) + content


def integer(value: int) -> bytes:
    """A non-negative INTEGER: big-endian, with a leading zero octet when the top bit is set."""
    if value < 0:
        raise ValueError("only non-negative integers are encoded here")
    return tlv(INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def time(value: dt.datetime) -> bytes:
    """RFC 5280 5.1.2.4-6: UTCTime for 1950-2049, GeneralizedTime otherwise; UTC, whole seconds, 'Z'.

    Fractions of a second are dropped (X.509 times carry none), as cryptography does.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime; use timezone-aware UTC")
    value = value.astimezone(dt.UTC)
    if 1950 <= value.year < 2050:
        return tlv(UTC_TIME, value.strftime("%y%m%d%H%M%SZ").encode("ascii"))
    return tlv(GENERALIZED_TIME, f"{value.year:04d}{value.strftime('%m%d%H%M%S')}Z".encode("ascii"))


def oid(dotted: str) -> bytes:
    """OBJECT IDENTIFIER (X.690 8.19), for the handful of fixed OIDs of a CRL."""
    arcs = [int(a) for a in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40):
        raise ValueError(f"{dotted!r} is not an object identifier")
    out = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return tlv(0x06, bytes(out))


def read_header(data: bytes, offset: int = 0) -> tuple[int, int, int]:
    """(tag, content offset, content length) of the TLV at offset (single-octet tags only)."""
    tag = data[offset]
    first = data[offset + 1]
    if first < 0x80:
        return tag, offset + 2, first
    n = first & 0x7F
    if n == 0 or n > 8:
        raise ValueError("indefinite or oversized DER length")
    start = offset + 2 + n
    return tag, start, int.from_bytes(data[offset + 2:start], "big")


def certificate_subject(certificate: bytes) -> bytes:
    """The subject Name of a DER certificate, as the very bytes it holds (RFC 5280 4.1).

    A CRL's issuer must match the CA certificate's subject byte for byte in verifiers that
    compare encodings; re-encoding a parsed Name (cryptography's Name.public_bytes) could
    normalise it, so the bytes are cut out: Certificate -> tbsCertificate -> [0] version?,
    serialNumber, signature, issuer, validity, subject.
    """
    _, tbs, _ = read_header(certificate)  # Certificate SEQUENCE
    _, offset, _ = read_header(certificate, tbs)  # tbsCertificate SEQUENCE
    if certificate[offset] == CONTEXT_0_CONSTRUCTED:  # version
        offset = _skip(certificate, offset)
    for _field in ("serialNumber", "signature", "issuer", "validity"):
        offset = _skip(certificate, offset)
    tag, start, n = read_header(certificate, offset)
    if tag != SEQUENCE:
        raise ValueError("certificate subject is not a SEQUENCE")
    return certificate[offset:start + n]


def _skip(data: bytes, offset: int) -> int:
    _, start, n = read_header(data, offset)
    return start + n
