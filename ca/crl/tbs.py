"""Everything of a CertificateList except the entries: RFC 5280 5.1, framed for streaming.

    CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue BIT STRING }
    TBSCertList ::= SEQUENCE { version v2, signature, issuer, thisUpdate, nextUpdate,
                               revokedCertificates SEQUENCE OF ... OPTIONAL, crlExtensions [0] }

The entries are only known as a byte count when the TBS prefix is written, so `CRLFields`
gives the bytes before them (`tbs_prefix`) and after them (`tbs_suffix`), and the signature
wrapping (`certificate_list_header`, `signature_tail`).  tests/unit/crl/test_crl_tbs.py compares the
result with cryptography's CertificateRevocationListBuilder byte for byte.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from ca.der import encoding as der
from ca.der.algorithms import signature_algorithm
from ca.enums import ListType
from ca.errors import InvalidInput
from ca.hsm.signer import KeyAlgorithm

_VERSION_2 = der.integer(1)

_AKI = der.oid("2.5.29.35")
_CRL_NUMBER = der.oid("2.5.29.20")
_IDP = der.oid("2.5.29.28")
_DELTA_CRL_INDICATOR = der.oid("2.5.29.27")
_FRESHEST_CRL = der.oid("2.5.29.46")
_URI = 0x86  # GeneralName uniformResourceIdentifier [6] IMPLICIT IA5String

# IssuingDistributionPoint without distributionPoint: a fullName makes `openssl verify
# -crl_check_all` find no CRL for the trust anchor.  CRL: onlyContainsUserCerts [1] TRUE;
# ARL: onlyContainsCACerts [2] TRUE.  Critical, as RFC 5280 5.2.5 requires.
_IDP_VALUE = {
    ListType.CRL: der.tlv(der.SEQUENCE, der.tlv(der.CONTEXT_1, b"\xff")),
    ListType.ARL: der.tlv(der.SEQUENCE, der.tlv(der.CONTEXT_2, b"\xff")),
}
# A delta CRL has its base's scope (RFC 5280 5.2.4: the same IDP; openssl compares them byte for byte).
_IDP_VALUE[ListType.DELTA] = _IDP_VALUE[ListType.CRL]

# RFC 5280 5.2.3: CRL numbers are at most 20 octets.
MAX_CRL_NUMBER = (1 << 159) - 1


def _extension(oid: bytes, value: bytes, *, critical: bool = False) -> bytes:
    return der.tlv(der.SEQUENCE, oid + (der.TRUE if critical else b"") + der.tlv(der.OCTET_STRING, value))


@dataclasses.dataclass(frozen=True, slots=True)
class CRLFields:
    """The values of one CRL or ARL besides its entries; checked once, here."""

    issuer: bytes  # DER of the issuer Name, exactly as in the CA certificate's subject
    this_update: dt.datetime
    next_update: dt.datetime
    number: int
    authority_key_id: bytes  # the signing key's subjectKeyIdentifier
    list_type: ListType
    algorithm: KeyAlgorithm
    # a delta CRL: the number of its base CRL (DeltaCRLIndicator, RFC 5280 5.2.4)
    delta_base: int | None = None
    # a complete CRL that has deltas: where they are published (Freshest CRL, RFC 5280 5.2.6)
    freshest_crl: str | None = None

    def __post_init__(self) -> None:
        if not self.issuer.startswith(b"\x30") or len(self.issuer) < 2:
            raise InvalidInput("CRL issuer must be the DER of a Name (a SEQUENCE)")
        for name in ("this_update", "next_update"):
            value = getattr(self, name)
            if value.tzinfo is None or value.utcoffset() is None:
                raise InvalidInput(f"CRL {name} is a naive datetime; use timezone-aware UTC")
        if self.next_update <= self.this_update:
            raise InvalidInput("CRL nextUpdate must be later than thisUpdate")
        if not 0 <= self.number <= MAX_CRL_NUMBER:
            raise InvalidInput(f"CRL number {self.number} is outside 0..2^159-1 (RFC 5280 5.2.3)")
        if not self.authority_key_id:
            raise InvalidInput("CRL authority key identifier must not be empty")
        if not isinstance(self.list_type, ListType):
            raise InvalidInput(f"list type must be a ListType, not {self.list_type!r}")
        if (self.delta_base is not None) != (self.list_type is ListType.DELTA):
            raise InvalidInput("a delta CRL, and only a delta CRL, names the number of its base CRL")
        if self.delta_base is not None and not 0 <= self.delta_base < self.number:
            raise InvalidInput(f"delta CRL {self.number} cannot have base {self.delta_base}: a base comes before "
                               "its deltas (RFC 5280 5.2.4)")
        if self.freshest_crl is not None and (self.list_type is not ListType.CRL or not self.freshest_crl.isascii()
                                              or not self.freshest_crl):
            raise InvalidInput("only a complete CRL points at its delta CRLs, with an ASCII URI")

    def tbs_prefix(self, entries_length: int, entries_count: int) -> bytes:
        """TBSCertList up to and including the revokedCertificates header.

        With no entries the revokedCertificates field is left out altogether (RFC 5280 5.1.2.6:
        an empty SEQUENCE is not allowed).
        """
        if (entries_count == 0) != (entries_length == 0):
            raise InvalidInput(f"{entries_count} CRL entries cannot take {entries_length} bytes")
        fields = (_VERSION_2 + signature_algorithm(self.algorithm) + self.issuer
                  + der.time(self.this_update) + der.time(self.next_update))
        revoked = der.header(der.SEQUENCE, entries_length) if entries_count else b""
        content_length = len(fields) + len(revoked) + entries_length + len(self.tbs_suffix)
        return der.header(der.SEQUENCE, content_length) + fields + revoked

    @property
    def tbs_suffix(self) -> bytes:
        """crlExtensions [0] EXPLICIT: authorityKeyIdentifier, cRLNumber, deltaCRLIndicator (critical,
        deltas only), issuingDistributionPoint, freshestCRL (complete CRLs with deltas only)."""
        extensions = (
            _extension(_AKI, der.tlv(der.SEQUENCE, der.tlv(der.CONTEXT_0, self.authority_key_id)))
            + _extension(_CRL_NUMBER, der.integer(self.number))
        )
        if self.delta_base is not None:
            extensions += _extension(_DELTA_CRL_INDICATOR, der.integer(self.delta_base), critical=True)
        extensions += _extension(_IDP, _IDP_VALUE[self.list_type], critical=True)
        if self.freshest_crl is not None:
            # CRLDistributionPoints: one DistributionPoint { distributionPoint [0] { fullName [0] { URI } } }
            name = der.tlv(der.CONTEXT_0_CONSTRUCTED, der.tlv(_URI, self.freshest_crl.encode("ascii")))
            point = der.tlv(der.SEQUENCE, der.tlv(der.CONTEXT_0_CONSTRUCTED, name))
            extensions += _extension(_FRESHEST_CRL, der.tlv(der.SEQUENCE, point))
        return der.tlv(der.CONTEXT_0_CONSTRUCTED, der.tlv(der.SEQUENCE, extensions))

    def signature_tail(self, signature: bytes) -> bytes:
        """signatureAlgorithm and signatureValue, which follow the TBSCertList."""
        return signature_algorithm(self.algorithm) + der.tlv(der.BIT_STRING, b"\x00" + signature)

    def certificate_list_header(self, tbs_length: int, signature: bytes) -> bytes:
        return der.header(der.SEQUENCE, tbs_length + len(self.signature_tail(signature)))
