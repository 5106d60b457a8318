"""Certificate profiles: what each kind of certificate carries, as data (seed 004 §6.3.2, §7.1).

One frozen `Profile` per `CertKind` so that a reviewer compares the whole issuance policy with
the practice statement in one screen; `ca.issuance` is the only code that turns a profile into
extensions.  Extension names and criticality follow RFC 5280 §4.2.1.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from cryptography.x509 import ObjectIdentifier
from cryptography.x509.oid import ExtendedKeyUsageOID

from ca.enums import CertKind
from ca.errors import InvalidInput


class PolicyOID:
    """Certificate policies of the old signing CA (shared/seeds/README.md)."""

    SUBSCRIBER = ObjectIdentifier("1.2.392.200149.8.5.1.1.10")
    TLS = ObjectIdentifier("1.2.392.200149.8.5.1.1.100")
    CVS_SERVER = ObjectIdentifier("1.2.392.200149.8.5.1.1.200")
    OCSP_RESPONDER = ObjectIdentifier("1.2.392.200149.8.5.1.1.300")
    CODE_SIGNING = ObjectIdentifier("1.2.392.200149.8.5.1.1.400")


# id-kp-scvpServer (RFC 5055); cryptography has no name for it.
ID_KP_SCVP_SERVER = ObjectIdentifier("1.3.6.1.5.5.7.3.15")

# RFC 5280 §4.2.1.3 bit names; cryptography spells nonRepudiation "content_commitment".
KEY_USAGE_BITS = (
    "digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment",
    "keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly",
)  # fmt: skip


class AltNames(enum.Enum):
    """What subjectAltName a kind requires; the values come from the caller, not the profile."""

    NONE = "none"
    DNS_NAMES = "dNSName"
    BASIC_FOUR = "basic four otherName"


@dataclass(frozen=True, slots=True)
class Profile:
    """The fixed part of one kind of certificate.

    `validity_years` is None when the caller must give notAfter (link certificates end with
    the old self-signed certificate, seed 7.1(4)).  `self_issued` means subject == issuer name;
    `self_signed` additionally means the certified key is the signing key.
    """

    kind: CertKind
    validity_years: int | None
    ca: bool
    key_usage: frozenset[str]
    basic_constraints: bool = True
    extended_key_usage: tuple[ObjectIdentifier, ...] = ()
    # RFC 3161 2.3: a TSA certificate's EKU holds only id-kp-timeStamping and is critical.
    extended_key_usage_critical: bool = False
    policies: tuple[ObjectIdentifier, ...] = ()
    alt_names: AltNames = AltNames.NONE
    ocsp_no_check: bool = False
    self_issued: bool = False
    self_signed: bool = False

    def __post_init__(self) -> None:
        unknown = sorted(self.key_usage - set(KEY_USAGE_BITS))
        if unknown:
            raise InvalidInput(f"profile {self.kind}: unknown keyUsage bit(s) {', '.join(unknown)}")
        if not self.key_usage:
            raise InvalidInput(f"profile {self.kind}: keyUsage needs at least one bit")
        if self.validity_years is not None and self.validity_years < 1:
            raise InvalidInput(f"profile {self.kind}: validity must be at least one year")
        if self.ca != ("keyCertSign" in self.key_usage):
            raise InvalidInput(f"profile {self.kind}: keyCertSign must be set exactly for CA certificates")
        if self.ca and not self.basic_constraints:
            raise InvalidInput(f"profile {self.kind}: a CA certificate needs basicConstraints (RFC 5280 4.2.1.9)")
        if self.self_signed and not self.self_issued:
            raise InvalidInput(f"profile {self.kind}: a self-signed certificate is also self-issued")
        if self.ocsp_no_check and ExtendedKeyUsageOID.OCSP_SIGNING not in self.extended_key_usage:
            raise InvalidInput(f"profile {self.kind}: ocsp-nocheck only makes sense with id-kp-OCSPSigning")

    def default_not_after(self, not_before: datetime) -> datetime:
        """not_before plus the profile's calendar years (29 February falls back to the 28th)."""
        if self.validity_years is None:
            raise InvalidInput(f"{self.kind} certificates have no fixed validity; give not_after")
        return add_years(not_before, self.validity_years)


def add_years(when: datetime, years: int) -> datetime:
    try:
        return when.replace(year=when.year + years)
    except ValueError:  # 29 February into a non-leap year
        return when.replace(year=when.year + years, day=28)


_CA_KEY_USAGE = frozenset({"keyCertSign", "cRLSign"})


def _link(kind: CertKind) -> Profile:
    return Profile(kind=kind, validity_years=None, ca=True, key_usage=_CA_KEY_USAGE, self_issued=True)


PROFILES: Mapping[CertKind, Profile] = MappingProxyType({
    CertKind.SELF_SIGNED: Profile(
        kind=CertKind.SELF_SIGNED, validity_years=10, ca=True, key_usage=_CA_KEY_USAGE,
        self_issued=True, self_signed=True,
    ),
    CertKind.CROSS: Profile(
        kind=CertKind.CROSS, validity_years=5, ca=True, key_usage=_CA_KEY_USAGE,
        # Every policy of the certificates below the crossed CA, so that a verifier who
        # trusts the bridge with policy checking on also accepts responder, CVS and TLS ones.
        policies=(PolicyOID.SUBSCRIBER, PolicyOID.TLS, PolicyOID.CVS_SERVER, PolicyOID.OCSP_RESPONDER),
    ),
    CertKind.LINK_OLD_WITH_NEW: _link(CertKind.LINK_OLD_WITH_NEW),
    CertKind.LINK_NEW_WITH_OLD: _link(CertKind.LINK_NEW_WITH_OLD),
    CertKind.OCSP_RESPONDER: Profile(
        kind=CertKind.OCSP_RESPONDER, validity_years=1, ca=False,
        key_usage=frozenset({"digitalSignature"}),
        extended_key_usage=(ExtendedKeyUsageOID.OCSP_SIGNING,),
        policies=(PolicyOID.OCSP_RESPONDER,), ocsp_no_check=True,
    ),
    CertKind.CVS_SERVER: Profile(
        kind=CertKind.CVS_SERVER, validity_years=1, ca=False,
        key_usage=frozenset({"digitalSignature"}),
        extended_key_usage=(ID_KP_SCVP_SERVER,),
        policies=(PolicyOID.CVS_SERVER,), alt_names=AltNames.DNS_NAMES,
    ),
    CertKind.TLS: Profile(
        kind=CertKind.TLS, validity_years=1, ca=False,
        key_usage=frozenset({"digitalSignature", "keyEncipherment"}),
        extended_key_usage=(ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
        policies=(PolicyOID.TLS,), alt_names=AltNames.DNS_NAMES,
    ),
    # Signs the receipts RA terminals print; they are checked years later, hence 3 years.
    CertKind.RECEIPT_SIGNER: Profile(
        kind=CertKind.RECEIPT_SIGNER, validity_years=3, ca=False,
        key_usage=frozenset({"digitalSignature", "nonRepudiation"}),
    ),
    # The TLS client certificate `revoca ra add` gives a municipal RA terminal.
    CertKind.RA_TERMINAL: Profile(
        kind=CertKind.RA_TERMINAL, validity_years=1, ca=False,
        key_usage=frozenset({"digitalSignature"}),
        extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH,),
    ),
    # The client certificate `revoca verifier add` gives a registered verifier: it signs OCSP
    # requests (RFC 6960 4.1.2) and may authenticate a TLS client.
    CertKind.VERIFIER: Profile(
        kind=CertKind.VERIFIER, validity_years=1, ca=False,
        key_usage=frozenset({"digitalSignature"}),
        extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH,),
    ),
    # revoca's time-stamp authority (RFC 3161 2.3, seed 000 9); its key lives in the token.
    CertKind.TSA: Profile(
        kind=CertKind.TSA, validity_years=1, ca=False,
        key_usage=frozenset({"digitalSignature", "nonRepudiation"}),
        extended_key_usage=(ExtendedKeyUsageOID.TIME_STAMPING,), extended_key_usage_critical=True,
    ),
    # basicConstraints omitted: RFC 5280 4.2.1.9 allows that for end-entity certificates.
    CertKind.SUBSCRIBER: Profile(
        kind=CertKind.SUBSCRIBER, validity_years=3, ca=False, basic_constraints=False,
        key_usage=frozenset({"digitalSignature", "nonRepudiation"}),
        policies=(PolicyOID.SUBSCRIBER,), alt_names=AltNames.BASIC_FOUR,
    ),
})  # fmt: skip

if set(PROFILES) != set(CertKind):
    raise RuntimeError(f"no profile for {sorted(set(CertKind) - set(PROFILES))}")
