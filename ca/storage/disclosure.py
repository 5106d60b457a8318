"""Every record revoca holds about one subscriber's certificates, read for a disclosure to that
subscriber (seed 004 9.4.7.1; ca.disclosure builds the report from these rows).

The audit log names a certificate in several ways (its row id, its hex serial, the public id of
a request for it, "ca:serial" in a list read), inside each record's JSON detail: the rows are
narrowed in SQL by a substring of each form, then kept only where a field names it exactly
(ca.disclosure.matching).  The OCSP history names certificates as "<serial hex>=<status>" per
query, under the issuing CA.  A disclosure is rare and manual; these scans read the whole audit
log and query history once, which is what it takes without an index kept for it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from ca.enums import AgentAuthority, Applicant, CertKind, ListType, RecordChangeEvent, RequestChannel, RequestStatus
from ca.errors import NotFound
from ca.storage.base import SessionStore
from ca.storage.models import (
    AuditEvent,
    Certificate,
    CertificateAuthority,
    CorrectionRequest,
    CRLFetch,
    IssuedCRL,
    OCSPQuery,
    Operator,
    RATerminal,
    Revocation,
    RevocationRequest,
)


@dataclasses.dataclass(frozen=True, slots=True)
class CertificateFacts:
    id: int
    ca: str
    issuer_ca_id: int
    serial: int
    subject_dn: str
    not_before: dt.datetime
    not_after: dt.datetime
    fingerprint_sha256: bytes
    der: bytes
    created_at: dt.datetime
    kind: CertKind = CertKind.SUBSCRIBER


@dataclasses.dataclass(frozen=True, slots=True)
class ListFacts:
    """The lists (CRLs for a subscriber certificate, ARLs for a CA certificate) issued since a
    revocation was recorded, so every one of them lists it, and how often verifiers fetched them."""

    list_type: ListType
    count: int
    first_number: int | None
    first_this_update: dt.datetime | None
    last_number: int | None
    fetches: int  # delivered reads of one of those lists from the LDAP repository
    verifiers: int  # by how many registered verifiers


@dataclasses.dataclass(frozen=True, slots=True)
class RevocationFacts:
    revocation_time: dt.datetime
    reason: int
    recorded_at: dt.datetime
    request_id: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class RequestFacts:
    id: int
    public_id: str
    channel: RequestChannel
    status: RequestStatus
    reason: int
    applicant: Applicant | None
    identity_document_checked: bool
    agent_authority: AgentAuthority | None
    record_change_event: RecordChangeEvent | None
    accepted_at: dt.datetime
    reviewed_at: dt.datetime | None
    decided_at: dt.datetime | None
    receipt: bytes | None
    signed_request: bytes | None


@dataclasses.dataclass(frozen=True, slots=True)
class RequestRow:
    request: RequestFacts
    terminal: str | None
    receptionist: str | None
    reviewer: str | None
    approver: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class AuditFacts:
    seq: int
    occurred_at: dt.datetime
    event_type: str
    result: str
    actor: str
    detail: str


def _certificate(c: Certificate) -> CertificateFacts:
    return CertificateFacts(c.id, c.issuer_ca.name, c.issuer_ca_id, c.serial, c.subject_dn, c.not_before, c.not_after,
                            c.fingerprint_sha256, c.der, c.created_at, c.kind)


def _request(r: RevocationRequest) -> RequestFacts:
    return RequestFacts(r.id, r.public_id, r.channel, r.status, r.reason, r.applicant, r.identity_document_checked,
                        r.agent_authority, r.record_change_event, r.accepted_at, r.reviewed_at, r.decided_at,
                        r.receipt, r.signed_request)


class DisclosureReads(SessionStore):
    def certificates_by_serial(self, ca_name: str, serial: int) -> list[CertificateFacts]:
        ca = self._ca(ca_name)
        rows = list(self.session.scalars(sa.select(Certificate).where(
            Certificate.issuer_ca_id == ca.id, Certificate.serial == serial)
            .options(selectinload(Certificate.issuer_ca))))
        if not rows:
            raise NotFound(f"CA {ca_name} has no certificate with serial {serial:x}")
        return [_certificate(c) for c in rows]

    def certificates_by_subject(self, ca_name: str, subject_dn: str) -> list[CertificateFacts]:
        ca = self._ca(ca_name)
        rows = list(self.session.scalars(sa.select(Certificate).where(
            Certificate.issuer_ca_id == ca.id, Certificate.subject_dn == subject_dn)
            .options(selectinload(Certificate.issuer_ca)).order_by(Certificate.not_before, Certificate.id)))
        if not rows:
            raise NotFound(f"CA {ca_name} has no certificate whose subject is {subject_dn!r} "
                           "(give it as `revoca cert show` prints it)")
        return [_certificate(c) for c in rows]

    def subscriber_certificates_containing(self, needle: bytes, ca_name: str | None) -> list[CertificateFacts]:
        """Subscriber certificates (of CA `ca_name`, or of every CA) whose DER holds `needle`: the
        candidates of a basic-four search, which ca.disclosure.finding judges field by field.

        The basic four live only inside the certificate (subjectAltName otherNames), so the DER is
        searched as hex text, which SQLite (`hex`) and PostgreSQL (`encode`) both make; a match at
        an odd hex offset is a false candidate the judging drops."""
        dialect = self.session.get_bind().dialect.name
        hex_der = (sa.func.upper(sa.func.encode(Certificate.der, "hex")) if dialect == "postgresql"
                   else sa.func.hex(Certificate.der))
        query = (sa.select(Certificate).where(Certificate.kind == CertKind.SUBSCRIBER,
                                              hex_der.contains(needle.hex().upper(), autoescape=True))
                 .options(selectinload(Certificate.issuer_ca)).order_by(Certificate.not_before, Certificate.id))
        if ca_name is not None:
            query = query.where(Certificate.issuer_ca_id == self._ca(ca_name).id)
        return [_certificate(c) for c in self.session.scalars(query)]

    def _ca(self, name: str) -> CertificateAuthority:
        ca = self.session.scalar(sa.select(CertificateAuthority).where(CertificateAuthority.name == name))
        if ca is None:
            raise NotFound(f"no CA named {name!r}; see `revoca ca list`")
        return ca

    def staff_names(self) -> set[str]:
        """Every operator's name (the report withholds them)."""
        return set(self.session.scalars(sa.select(Operator.name)))

    def revocation(self, certificate_id: int) -> RevocationFacts | None:
        r = self.session.scalar(sa.select(Revocation).where(Revocation.certificate_id == certificate_id))
        return None if r is None else RevocationFacts(r.revocation_time, r.reason, r.recorded_at, r.request_id)

    def requests(self, certificate_id: int) -> list[RequestRow]:
        names = {o.id: o.name for o in self.session.scalars(sa.select(Operator))}
        terminals = {t.id: t.name for t in self.session.scalars(sa.select(RATerminal))}
        out = []
        for r in self.session.scalars(sa.select(RevocationRequest).where(
                RevocationRequest.certificate_id == certificate_id).order_by(RevocationRequest.accepted_at)):
            out.append(RequestRow(_request(r), terminals.get(r.terminal_id) if r.terminal_id else None,
                                  names.get(r.receptionist_id) if r.receptionist_id else None,
                                  names.get(r.reviewer_id) if r.reviewer_id else None,
                                  names.get(r.approver_id) if r.approver_id else None))
        return out

    def audit_candidates(self, needles: Iterable[str]) -> list[AuditFacts]:
        """Audit records whose detail contains any of `needles` (a superset: the caller keeps the exact ones)."""
        terms = [AuditEvent.detail.contains(n, autoescape=True) for n in needles]
        if not terms:
            return []
        return [AuditFacts(e.seq, e.occurred_at, e.event_type, e.result, e.actor, e.detail) for e in
                self.session.scalars(sa.select(AuditEvent).where(sa.or_(*terms)).order_by(AuditEvent.seq))]

    def ocsp_answers(self, ca_id: int, serial_hex: str) -> list[tuple[dt.datetime, str]]:
        """(time, answers) of the OCSP queries under CA `ca_id` whose answers mention `serial_hex`."""
        return [(at, answers) for at, answers in self.session.execute(
            sa.select(OCSPQuery.at, OCSPQuery.answers).where(
                OCSPQuery.ca_id == ca_id, OCSPQuery.answers.contains(f"{serial_hex}=", autoescape=True))
            .order_by(OCSPQuery.at))]

    def lists_since(self, ca_id: int, list_type: ListType, recorded_at: dt.datetime) -> ListFacts:
        """The `list_type` lists of CA `ca_id` made after `recorded_at` (a revocation is committed
        before any list that holds it is made) and the delivered fetches of those numbers."""
        made = sa.and_(IssuedCRL.ca_id == ca_id, IssuedCRL.list_type == list_type, IssuedCRL.created_at >= recorded_at)
        count, first, last = self.session.execute(
            sa.select(sa.func.count(), sa.func.min(IssuedCRL.number), sa.func.max(IssuedCRL.number)).where(made)).one()
        first_at = None if first is None else self.session.scalar(sa.select(IssuedCRL.this_update).where(
            made, IssuedCRL.number == first))
        fetches, verifiers = (0, 0) if first is None else self.session.execute(
            sa.select(sa.func.count(), sa.func.count(sa.distinct(CRLFetch.verifier_id))).where(
                CRLFetch.ca_id == ca_id, CRLFetch.list_type == list_type, CRLFetch.result == "delivered",
                CRLFetch.crl_number >= first)).one()
        return ListFacts(list_type, count, first, first_at, last, fetches, verifiers)

    def corrections(self, certificate_id: int) -> list[CorrectionFacts]:
        """The correction requests filed about a certificate (9.4.7.2), oldest first."""
        return [_correction(c) for c in self.session.scalars(sa.select(CorrectionRequest).where(
            CorrectionRequest.certificate_id == certificate_id).order_by(CorrectionRequest.accepted_at))]


@dataclasses.dataclass(frozen=True, slots=True)
class CorrectionFacts:
    public_id: str
    action: str
    record: str
    requested: str
    status: RequestStatus
    accepted_at: dt.datetime
    decided_at: dt.datetime | None


def _correction(c: CorrectionRequest) -> CorrectionFacts:
    return CorrectionFacts(c.public_id, c.action, c.record, c.requested, RequestStatus(c.status), c.accepted_at,
                           c.decided_at)
