"""What the web repository publishes (seed 004 2.2, 2.3, 9.3.3), read from the database: the CAs,
their public certificates (self-signed, cross, link, responder and server certificates), which
of them are revoked, the newest ARL each CA has in the directory, and a change mark.

Only public facts leave this module: no revocation reason (2.4: reasons only in CRLs and OCSP),
no subscriber certificate, nothing about verifiers.  `PublicReads.change_mark` is how the web
service learns that something it shows has changed without any other role telling it (roles
never import each other): a digest over the few columns that change what the pages say,
computed with aggregate queries the service polls every few seconds.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

import sqlalchemy as sa

from ca.enums import CAKind, CAStatus, CertKind, ListType, PublicationItem, PublicationState
from ca.storage.base import SessionStore
from ca.storage.models import (
    Certificate,
    CertificateAuthority,
    IssuedCRL,
    Notice,
    ProvisionReport,
    Publication,
    Revocation,
)

# The certificates the repository shows (seed 004 2.2; 9.3.3 names the responder and CVS server
# certificates as not confidential too).  Subscriber, RA terminal and verifier certificates never.
PUBLIC_KINDS = (CertKind.SELF_SIGNED, CertKind.CROSS, CertKind.LINK_OLD_WITH_NEW, CertKind.LINK_NEW_WITH_OLD,
                CertKind.OCSP_RESPONDER, CertKind.CVS_SERVER, CertKind.TSA)


@dataclasses.dataclass(slots=True)  # not frozen: repository.entries.NamedCA (a Protocol) declares plain attributes
class PublicCA:
    id: int
    name: str
    kind: CAKind
    status: CAStatus
    subject_dn: str


@dataclasses.dataclass(frozen=True, slots=True)
class PublicCertificate:
    id: int
    kind: CertKind
    serial: int
    subject_dn: str
    issuer_ca: str  # the CA that signed it
    subject_ca: str | None  # for CA certificates: whose key it carries
    not_before: dt.datetime
    not_after: dt.datetime
    der: bytes
    revoked_at: dt.datetime | None  # the revocation time; the reason is never published here


@dataclasses.dataclass(frozen=True, slots=True)
class PublishedARL:
    """The newest ARL of a CA that the publisher put into the directory."""

    ca_name: str
    number: int
    this_update: dt.datetime
    next_update: dt.datetime
    sha256: bytes
    size: int


class PublicReads(SessionStore):
    def cas(self) -> list[PublicCA]:
        return [PublicCA(c.id, c.name, c.kind, c.status, c.subject_dn)
                for c in self.session.scalars(sa.select(CertificateAuthority).order_by(CertificateAuthority.id))]

    def certificates(self) -> list[PublicCertificate]:
        """Every public certificate, oldest first."""
        issuer, subject = sa.orm.aliased(CertificateAuthority), sa.orm.aliased(CertificateAuthority)
        rows = self.session.execute(
            sa.select(Certificate, issuer.name, subject.name, Revocation.revocation_time)
            .join(issuer, Certificate.issuer_ca_id == issuer.id)
            .outerjoin(subject, Certificate.subject_ca_id == subject.id)
            .outerjoin(Revocation, Revocation.certificate_id == Certificate.id)
            .where(Certificate.kind.in_(PUBLIC_KINDS))
            .order_by(Certificate.not_before, Certificate.id))
        return [PublicCertificate(id=c.id, kind=c.kind, serial=c.serial, subject_dn=c.subject_dn,
                                  issuer_ca=issuer_name, subject_ca=subject_name, not_before=c.not_before,
                                  not_after=c.not_after, der=c.der, revoked_at=revoked_at)
                for c, issuer_name, subject_name, revoked_at in rows]

    def published_arls(self) -> dict[str, PublishedARL]:
        """Per CA name, the ARL the directory holds now (the newest published ARL publication)."""
        rows = self.session.execute(
            sa.select(CertificateAuthority.name, IssuedCRL.number, IssuedCRL.this_update, IssuedCRL.next_update,
                      IssuedCRL.sha256, IssuedCRL.size)  # the columns the web role may read (ca.storage.grants)
            .join(Publication, Publication.issued_crl_id == IssuedCRL.id)
            .join(CertificateAuthority, IssuedCRL.ca_id == CertificateAuthority.id)
            .where(Publication.item == PublicationItem.ARL, Publication.state == PublicationState.PUBLISHED,
                   IssuedCRL.list_type == ListType.ARL)
            .order_by(IssuedCRL.number))
        return {name: PublishedARL(name, number, this_update, next_update, sha256, size)
                for name, number, this_update, next_update, sha256, size in rows}  # ascending: the newest wins

    def change_mark(self, now: dt.datetime) -> str:
        """A digest that changes whenever a page would: a CA's state, a public certificate added,
        revoked or expired, an ARL published, a notice or a provision report recorded."""
        s = self.session
        public = Certificate.kind.in_(PUBLIC_KINDS)
        parts: list[object] = [
            s.execute(sa.select(CertificateAuthority.id, CertificateAuthority.status)
                      .order_by(CertificateAuthority.id)).all(),
            s.execute(sa.select(sa.func.count(), sa.func.max(Certificate.id)).where(public)).one(),
            s.scalar(sa.select(sa.func.count()).select_from(Certificate).where(public, Certificate.not_after <= now)),
            # through the few public certificates (kind index, then the unique certificate_id): never a
            # scan of the subscriber revocations, which run to millions
            s.execute(sa.select(sa.func.count(), sa.func.max(Revocation.id))
                      .join(Certificate, Revocation.certificate_id == Certificate.id).where(public)).one(),
            s.execute(sa.select(sa.func.count(), sa.func.max(Publication.id))
                      .where(Publication.item == PublicationItem.ARL,
                             Publication.state == PublicationState.PUBLISHED)).one(),
            s.execute(sa.select(sa.func.count(), sa.func.max(Notice.id))).one(),
            s.execute(sa.select(sa.func.count(), sa.func.max(ProvisionReport.id))).one(),
        ]
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]
