"""Rows of correction requests on disclosed records (seed 004 9.4.7.2; the workflow is
ca.disclosure.corrections): add one, find one for its next step, list those waiting."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa

from ca.enums import RequestStatus
from ca.errors import NotFound
from ca.storage.base import SessionStore
from ca.storage.models import Certificate, CertificateAuthority, CorrectionRequest


class CorrectionStore(SessionStore):
    def certificate(self, ca_name: str, serial: int) -> Certificate:
        found = self.session.scalar(sa.select(Certificate).join(
            CertificateAuthority, CertificateAuthority.id == Certificate.issuer_ca_id).where(
            CertificateAuthority.name == ca_name, Certificate.serial == serial))
        if found is None:
            raise NotFound(f"CA {ca_name} has no certificate with serial {serial:x}")
        return found

    def add(self, *, certificate: Certificate, action: str, record: str, requested: str, receptionist_id: int,
            now: dt.datetime) -> CorrectionRequest:
        row = CorrectionRequest(public_id=str(uuid.uuid4()), certificate_id=certificate.id, action=action,
                                record=record, requested=requested, status=RequestStatus.PENDING_REVIEW.value,
                                receptionist_id=receptionist_id, accepted_at=now, note="")
        self.session.add(row)
        self.session.flush()
        return row

    def request(self, public_id: str) -> CorrectionRequest:
        # locked: two people deciding one request at once must not both pass the "waiting" check
        found = self.session.scalar(sa.select(CorrectionRequest).where(
            CorrectionRequest.public_id == public_id).with_for_update())
        if found is None:
            raise NotFound(f"no correction request {public_id!r}; see `revoca disclose corrections`")
        return found

    def waiting(self) -> list[tuple[CorrectionRequest, str, int]]:
        """Requests waiting for review or approval, with their certificate's CA name and serial."""
        return [(r, ca, serial) for r, ca, serial in self.session.execute(
            sa.select(CorrectionRequest, CertificateAuthority.name, Certificate.serial)
            .join(Certificate, Certificate.id == CorrectionRequest.certificate_id)
            .join(CertificateAuthority, CertificateAuthority.id == Certificate.issuer_ca_id)
            .where(CorrectionRequest.status.in_([RequestStatus.PENDING_REVIEW.value,
                                                 RequestStatus.PENDING_APPROVAL.value]))
            .order_by(CorrectionRequest.accepted_at))]
