"""One revokedCertificates element of a CRL, encoded once, when the certificate is revoked.

    SEQUENCE { userCertificate INTEGER, revocationDate Time,
               crlEntryExtensions SEQUENCE { Extension { reasonCode, ENUMERATED } } }

Why by hand: a CRL of millions of entries is issued every day, so each entry is encoded once
at revocation time, stored (Revocation.entry_der) and later only copied into the CRL stream.
cryptography cannot encode a single entry on its own (only a whole signed CRL, and its
builder is quadratic when entries are added one by one), and an entry is three short TLVs.
tests/unit/crl/test_crl_entry.py proves the bytes equal what cryptography's CRL builder writes for
the same entry, and round-trips random entries through cryptography's parser.
"""

from __future__ import annotations

import datetime as dt

from ca.der import encoding as der
from ca.errors import InvalidInput
from ca.revocation.reasons import ALLOWED_REASONS

# RFC 5280 4.1.2.2 allows 20 octets; a positive 160-bit serial needs a 21st (sign) octet.  Such
# serials come only from non-conforming imported certificates, which must still be revocable.
MAX_SERIAL = (1 << 160) - 1


_REASON_CODE = der.oid("2.5.29.21")  # id-ce-cRLReasons, non-critical: no BOOLEAN (DER omits the default)

# crlEntryExtensions of each allowed reason, ready to append.
_EXTENSIONS = {
    reason: der.tlv(der.SEQUENCE, der.tlv(der.SEQUENCE, _REASON_CODE + der.tlv(
        der.OCTET_STRING, der.tlv(der.ENUMERATED, bytes((reason,))))))
    for reason in ALLOWED_REASONS
}


def encode_entry(serial: int, revocation_time: dt.datetime, reason: int) -> bytes:
    """DER of one revokedCertificates element with a reasonCode entry extension.

    `revocation_time` must be timezone-aware; fractions of a second are dropped (store the
    time already truncated, as ca.revocation.workflow does, so the row and the entry agree).
    """
    if isinstance(serial, bool) or not isinstance(serial, int):
        raise InvalidInput(f"serial number must be an int, not {type(serial).__name__}")
    if not 0 < serial <= MAX_SERIAL:
        raise InvalidInput(f"serial number {serial} is not a positive integer of at most 160 bits")
    if not isinstance(revocation_time, dt.datetime):
        raise InvalidInput(f"revocation time must be a datetime, not {type(revocation_time).__name__}")
    if revocation_time.tzinfo is None or revocation_time.utcoffset() is None:
        raise InvalidInput("revocation time is a naive datetime; use timezone-aware UTC")
    extensions = _EXTENSIONS.get(reason) if isinstance(reason, int) and not isinstance(reason, bool) else None
    if extensions is None:
        raise InvalidInput(f"revocation reason {reason!r} is not allowed; use 1-5 (no certificateHold)")
    return der.tlv(der.SEQUENCE, der.integer(serial) + der.time(revocation_time) + extensions)
