"""The queries of a CA's termination (ca.lifecycle.termination, seed 004 5.8).

A CA ends when no subscriber certificate it signed is still valid: every one expired or
revoked.  A revocation counts whether it was filed through revoca (certificate_id) or came with
the previous system's history (issuer and serial only, ca.adoption), hence the match by serial.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa

from ca.enums import CAStatus, CertKind
from ca.storage.base import SessionStore
from ca.storage.models import Certificate, CertificateAuthority, Revocation


def _unrevoked() -> sa.ColumnElement[bool]:
    return ~sa.exists().where(Revocation.issuer_ca_id == Certificate.issuer_ca_id,
                              Revocation.serial == Certificate.serial)


class TerminationReads(SessionStore):
    def valid_subscriber_count(self, ca_id: int, now: dt.datetime) -> int:
        """Subscriber certificates of the CA that are neither expired at `now` nor revoked."""
        return self.session.scalar(
            sa.select(sa.func.count()).select_from(Certificate)
            .where(Certificate.issuer_ca_id == ca_id, Certificate.kind == CertKind.SUBSCRIBER,
                   Certificate.not_after > now, _unrevoked())) or 0

    def live_cross_certificates(self, ca_id: int, now: dt.datetime) -> Sequence[Certificate]:
        """Unexpired, unrevoked cross certificates the CA issued or was issued (both halves of its pairs)."""
        return self.session.scalars(
            sa.select(Certificate)
            .where(Certificate.kind == CertKind.CROSS, Certificate.not_after > now, _unrevoked(),
                   sa.or_(Certificate.issuer_ca_id == ca_id, Certificate.subject_ca_id == ca_id))
            .order_by(Certificate.id)).all()

    def last_not_after(self, ca_id: int) -> dt.datetime | None:
        """The latest notAfter of anything the CA's keys signed, its self-signed certificates included."""
        return self.session.scalar(sa.select(sa.func.max(Certificate.not_after))
                                   .where(Certificate.issuer_ca_id == ca_id))


class TerminationWrites(TerminationReads):
    def mark_terminated(self, ca: CertificateAuthority, now: dt.datetime) -> None:
        ca.status = CAStatus.TERMINATED
        ca.terminated_at = now
        self.session.flush()
