"""Where a CA's delta CRLs are published, for the Freshest CRL extension of its complete CRL.

RFC 5280 5.2.6: a complete CRL that has delta CRLs names where they are (Freshest CRL, the
CRLDistributionPoints syntax).  revoca publishes a CA's delta as deltaRevocationList;binary
of the CA's entry in the LDAP repository, so the pointer is an LDAP URL (RFC 4516) naming
that entry and attribute, as RFC 5280 4.2.1.13 asks of LDAP URIs: the entry's DN and one
attribute description.

The entry's DN is decided here, once, for the publisher too (repository.entries uses it): the
CA's subject DN when that lies under the directory's base DN and starts with a CN (so a
directoryName in a certificate finds it), else ``cn=<CA name>,<base DN>``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from urllib.parse import quote

from ldap3.utils.dn import escape_rdn, parse_dn, safe_dn

from ca.config import CRLConfig, Settings

DELTA_ATTRIBUTE = "deltaRevocationList;binary"


def _normal(dn: str) -> str:
    return safe_dn(dn).lower()


def ca_entry_dn(name: str, subject_dn: str, base_dn: str) -> str:
    """The DN of the directory entry of the CA `name` (subject `subject_dn`) under `base_dn`."""
    subject, base = _normal(subject_dn), _normal(base_dn)
    if subject.endswith("," + base) and parse_dn(subject_dn)[0][0].lower() == "cn":
        return subject_dn
    return f"cn={escape_rdn(name)},{base_dn}"


@dataclasses.dataclass(frozen=True, slots=True)
class DeltaPolicy:
    """A CA's deltas: how long each is valid, and where complete CRLs say they are (the
    repository's base DN and, optionally, the host verifiers reach it at; empty:
    ``ldap:///...``, the client's configured server)."""

    base_dn: str
    host: str = ""
    validity: dt.timedelta = dt.timedelta(minutes=CRLConfig().delta_validity_minutes)

    def url(self, ca_name: str, subject_dn: str) -> str:
        """ldap://host/<the CA entry's DN>?deltaRevocationList;binary, escaped as RFC 4516 asks."""
        dn = ca_entry_dn(ca_name, subject_dn, self.base_dn)
        return f"ldap://{self.host}/{quote(dn, safe='=,+;-._~')}?{DELTA_ATTRIBUTE}"


def delta_policy(settings: Settings) -> DeltaPolicy | None:
    """The delta CRLs `settings` ask for ([crl] delta_*), or None when they are off."""
    crl = settings.crl
    if not crl.deltas:
        return None
    return DeltaPolicy(settings.repository.base_dn, crl.delta_host, crl.delta_validity)
