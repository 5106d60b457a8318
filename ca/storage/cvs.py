"""What the certificate validation server (ca.cvs) reads: trust anchors, the CA certificates
between them and an official's issuer, the newest archived CRL and ARL of every CA key, and
its own signing certificate.  Read-only; handed out as value objects, not rows.

Trust anchors are the self-signed certificates of revoca's own CAs (bridge and regional), never
an external CA's: an external CA is reached only through a cross certificate the bridge issued
(seed 004 1.3.1.2).  Delta CRLs are left out: every full list stands on its own.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa

from ca.enums import CAKind, CertKind, ListType
from ca.storage.base import SessionStore
from ca.storage.models import Certificate, CertificateAuthority, IssuedCRL, Revocation

_LINKS = (CertKind.CROSS, CertKind.LINK_OLD_WITH_NEW, CertKind.LINK_NEW_WITH_OLD)


@dataclasses.dataclass(frozen=True, slots=True)
class TrustMaterial:
    """The anchors, the certificates that may sit between them and a leaf, and the lists (paths
    relative to the data directory) that say which of them are revoked."""

    anchors: tuple[bytes, ...]
    intermediates: tuple[bytes, ...]
    list_paths: tuple[str, ...]
    mark: tuple[int, int]  # (newest certificate id, newest list id): changes when anything above does


@dataclasses.dataclass(frozen=True, slots=True)
class SigningCertificate:
    der: bytes
    key_label: str
    chain: tuple[bytes, ...]  # the bridge's self-signed certificate of the issuing key


class CVSReads(SessionStore):
    def mark(self) -> tuple[int, int]:
        """Cheap: whether the trust material changed since it was last loaded."""
        cert = self.session.scalar(sa.select(sa.func.max(Certificate.id)).where(
            Certificate.kind.in_([CertKind.SELF_SIGNED, *_LINKS])))
        lists = self.session.scalar(sa.select(sa.func.max(IssuedCRL.id)))
        return (cert or 0, lists or 0)

    def trust_material(self) -> TrustMaterial:
        own = sa.select(CertificateAuthority.id).where(CertificateAuthority.kind != CAKind.EXTERNAL)
        anchors = self.session.scalars(sa.select(Certificate.der).where(
            Certificate.kind == CertKind.SELF_SIGNED, Certificate.issuer_ca_id.in_(own)).order_by(Certificate.id))
        links = self.session.scalars(sa.select(Certificate.der).where(
            Certificate.kind.in_(_LINKS)).order_by(Certificate.id))
        newest = sa.select(IssuedCRL.path).where(
            IssuedCRL.list_type.in_([ListType.CRL, ListType.ARL]),
            sa.tuple_(IssuedCRL.ca_id, IssuedCRL.list_type, IssuedCRL.signing_key_id, IssuedCRL.number).in_(
                sa.select(IssuedCRL.ca_id, IssuedCRL.list_type, IssuedCRL.signing_key_id,
                          sa.func.max(IssuedCRL.number))
                .where(IssuedCRL.list_type.in_([ListType.CRL, ListType.ARL]))
                .group_by(IssuedCRL.ca_id, IssuedCRL.list_type, IssuedCRL.signing_key_id)))
        return TrustMaterial(tuple(anchors), tuple(links),
                             tuple(self.session.scalars(newest.order_by(IssuedCRL.id))), self.mark())

    def signing_certificate(self, now: dt.datetime) -> SigningCertificate | None:
        """The newest CVS-server certificate of the bridge valid at `now`, not revoked, with its key
        in the token; None when there is none."""
        row = self.session.scalars(sa.select(Certificate).join(
            CertificateAuthority, Certificate.issuer_ca_id == CertificateAuthority.id).where(
            CertificateAuthority.kind == CAKind.BRIDGE, Certificate.kind == CertKind.CVS_SERVER,
            Certificate.key_label.is_not(None), Certificate.not_before <= now, Certificate.not_after > now,
            Certificate.id.not_in(sa.select(Revocation.certificate_id).where(
                Revocation.certificate_id.is_not(None))))
            .order_by(Certificate.not_before.desc(), Certificate.id.desc()).limit(1)).first()
        if row is None or row.key_label is None:
            return None
        root = self.session.scalar(sa.select(Certificate.der).where(
            Certificate.issuer_key_id == row.issuer_key_id, Certificate.subject_key_id == row.issuer_key_id,
            Certificate.kind == CertKind.SELF_SIGNED).limit(1))
        return SigningCertificate(row.der, row.key_label, (root,) if root is not None else ())
