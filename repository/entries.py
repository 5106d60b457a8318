"""What a CA's directory entry holds, computed from the database (X.509 11.2, RFC 4523).

One entry per CA that revoca runs, at the CA's subject DN when that lies under the base DN
and ends in a CN (so a directoryName in a certificate finds it), else at
``cn=<CA name>,<base DN>``.  The entry is a cRLDistributionPoint (structural, MUST cn) with
the pkiCA auxiliary class, so it can exist before its first CRL; certificationAuthority is
added once all three of its required attributes are there.  It holds:

* cACertificate;binary: the CA's self-signed and self-issued (link) certificates;
* crossCertificatePair;binary: per partner key, the certificate the partner issued to this CA
  (issuedToThisCA, "forward") with the one this CA issued to it (issuedByThisCA, "reverse");
* authorityRevocationList;binary and certificateRevocationList;binary: the newest ARL and CRL.

Expired and revoked certificates are left out: a relying party building a path should not
find them, and a revoked one is on the ARL.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import Protocol

from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from ldap3.utils.dn import parse_dn

from ca.crl import freshest
from ca.storage.publications import PublicationReads

CA_CERT_ATTR = "cACertificate;binary"
PAIR_ATTR = "crossCertificatePair;binary"
CRL_ATTR = "certificateRevocationList;binary"
DELTA_ATTR = freshest.DELTA_ATTRIBUTE  # deltaRevocationList;binary: verifiers only, like the CRL
ARL_ATTR = "authorityRevocationList;binary"
STRUCTURAL = ("cRLDistributionPoint", "pkiCA")
FULL_CA_CLASS = "certificationAuthority"
#: Attributes certificationAuthority requires (lower case, without options).
FULL_CA_REQUIRES = frozenset({"cacertificate", "certificaterevocationlist", "authorityrevocationlist"})


class NamedCA(Protocol):
    """What an entry needs of a CA (a row of ca.storage)."""

    id: int
    name: str
    subject_dn: str


class CertificatePair(core.Sequence):
    """X.509 CertificatePair (AuthenticationFramework, explicit tags)."""

    _fields = [
        ("issued_to_this_ca", asn1_x509.Certificate, {"explicit": 0, "optional": True}),
        ("issued_by_this_ca", asn1_x509.Certificate, {"explicit": 1, "optional": True}),
    ]


def certificate_pair(forward: bytes | None, reverse: bytes | None) -> bytes:
    """DER of a CertificatePair; at least one half must be given."""
    if forward is None and reverse is None:
        raise ValueError("a certificate pair needs at least one certificate")
    value = {}
    if forward is not None:
        value["issued_to_this_ca"] = asn1_x509.Certificate.load(forward)
    if reverse is not None:
        value["issued_by_this_ca"] = asn1_x509.Certificate.load(reverse)
    return CertificatePair(value).dump()


def ca_entry_dn(ca: NamedCA, base_dn: str) -> str:
    """The DN of `ca`'s entry in a directory rooted at `base_dn` (decided in ca.crl.freshest, which
    also names it in the Freshest CRL extension of the CA's CRLs)."""
    return freshest.ca_entry_dn(ca.name, ca.subject_dn, base_dn)


def entry_cn(dn: str) -> str:
    """The cn value of an entry whose RDN is a cn (as ca_entry_dn always makes)."""
    attr, value, _sep = parse_dn(dn, escape=False)[0]
    assert attr.lower() == "cn", dn
    return value


@dataclasses.dataclass(frozen=True)
class CertificateSet:
    """The certificate attributes of one CA entry, as they should be in the directory."""

    dn: str
    ca_certificates: tuple[bytes, ...]
    pairs: tuple[bytes, ...]

    @property
    def digest(self) -> bytes:
        return certificate_set_digest(self.ca_certificates, self.pairs)


def certificate_set_digest(ca_certificates: object, pairs: object) -> bytes:
    """Order-independent SHA-256 of the two value sets (the directory does not keep order)."""
    h = hashlib.sha256()
    for label, values in ((b"ca", ca_certificates), (b"pair", pairs)):
        for value in sorted(values):  # type: ignore[call-overload]
            h.update(label + len(value).to_bytes(4, "big") + value)
    return h.digest()


def certificate_set(store: PublicationReads, ca: NamedCA, base_dn: str, *, now: dt.datetime) -> CertificateSet:
    """What cACertificate and crossCertificatePair of `ca`'s entry should hold at `now`."""
    own, crosses = store.entry_certificates(ca.id, now=now)
    forward = [c for c in crosses if c.subject_ca_id == ca.id and c.issuer_ca_id != ca.id]
    reverse = [c for c in crosses if c.issuer_ca_id == ca.id and c.subject_ca_id != ca.id]
    pairs = []
    unmatched = list(reverse)
    for f in forward:
        # the reverse half certifies the key that signed the forward half, with the key it certifies
        match = next((r for r in unmatched if r.issuer_key_id == f.subject_key_id
                      and r.subject_key_id == f.issuer_key_id), None)
        if match is not None:
            unmatched.remove(match)
        pairs.append(certificate_pair(f.der, match.der if match else None))
    pairs.extend(certificate_pair(None, r.der) for r in unmatched)
    return CertificateSet(ca_entry_dn(ca, base_dn), tuple(c.der for c in own), tuple(pairs))


def attribute_names(attrs: object) -> set[str]:
    """Attribute descriptions to bare lower-case names (``cACertificate;binary`` -> ``cacertificate``)."""
    return {str(a).split(";", 1)[0].lower() for a in attrs}  # type: ignore[attr-defined]
