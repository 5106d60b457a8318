"""What the officers' status page and /metrics read: aggregates over the CA state and the
append-only tables, never a write.

`ReportingReads` is read-only (everything RevocationReadStore reads, plus the counts below),
so the status page is handed nothing that writes.  Counts come back as plain values (ids,
enum members, reason numbers); naming them is the page's business.  Callers own the
transaction (a read-only ca.storage.engine.session_scope).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from ca.enums import CAKind, CertKind, KeyStatus, ListType, RequestStatus
from ca.storage.models import (
    AuditEvent,
    Certificate,
    CertificateAuthority,
    OCSPQuery,
    Revocation,
    RevocationRequest,
    Verifier,
)
from ca.storage.revocations import RevocationReadStore

#: The append-only tables a tally counts by id ranges.
TALLIED: dict[str, type[OCSPQuery | AuditEvent | Revocation]] = {
    "ocsp_queries": OCSPQuery, "audit_events": AuditEvent, "revocations": Revocation}
LISTS = (ListType.CRL, ListType.ARL)


@dataclasses.dataclass(frozen=True, slots=True)
class ListStatus:
    """The newest archived CRL or ARL of one CA; number and times are None when none was issued."""

    ca_name: str
    list_type: ListType
    number: int | None
    this_update: dt.datetime | None
    next_update: dt.datetime | None

    def label(self) -> str:
        return f"{self.ca_name} {self.list_type.value.upper()}"


@dataclasses.dataclass(frozen=True, slots=True)
class CACertificateRow:
    kind: CertKind
    issuer_ca_id: int
    subject_ca_id: int | None
    subject_key_id: int | None
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    revoked: bool


@dataclasses.dataclass(frozen=True, slots=True)
class ResponderCoverage:
    """One CA key OCSP answers for (not compromised) and the last of its delegated responder
    certificates (unrevoked, key in the token or a file) valid at the time asked; None: none is."""

    ca_name: str
    generation: int
    current_key: bool  # the CA's active key (else retired by a rollover)
    serial: int | None
    not_after: dt.datetime | None


def utc_text(column: Any, dialect: str, unit: str) -> sa.ColumnElement[str]:
    """The UTC day (YYYY-MM-DD) or minute (YYYY-MM-DD HH:MM) of a timestamp, as text, on either backend.

    SQLite keeps naive UTC text (ca.storage.models.UTCDateTime); PostgreSQL keeps timestamptz,
    converted to UTC here so that the session's time zone cannot move a revocation to another day.
    """
    if dialect == "postgresql":
        pattern = {"day": "YYYY-MM-DD", "minute": "YYYY-MM-DD HH24:MI"}[unit]
        return sa.func.to_char(sa.func.timezone("UTC", column), pattern)
    return sa.func.strftime({"day": "%Y-%m-%d", "minute": "%Y-%m-%d %H:%M"}[unit], column)


def _occurrences(column: Any, word: str) -> sa.ColumnElement[Any]:
    """How often `word` occurs in a text column, in portable SQL (the length the REPLACE removes)."""
    return (sa.func.length(column) - sa.func.length(sa.func.replace(column, word, ""))) / len(word)


class ReportingReads(RevocationReadStore):
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    # the CAs
    def ca_names(self) -> dict[int, str]:
        return dict(self.session.execute(sa.select(CertificateAuthority.id, CertificateAuthority.name)).all())

    def ca_certificate_rows(self, kinds: Iterable[CertKind]) -> list[CACertificateRow]:
        """Every certificate of these kinds, in id order, and whether it is revoked."""
        rows = self.session.execute(
            sa.select(Certificate.kind, Certificate.issuer_ca_id, Certificate.subject_ca_id,
                      Certificate.subject_key_id, Certificate.serial, Certificate.not_before, Certificate.not_after,
                      Revocation.id)
            .outerjoin(Revocation, Revocation.certificate_id == Certificate.id)
            .where(Certificate.kind.in_(list(kinds))).order_by(Certificate.id)).all()
        return [CACertificateRow(kind, issuer, subject, subject_key, serial, not_before, not_after,
                                 revocation_id is not None)
                for kind, issuer, subject, subject_key, serial, not_before, not_after, revocation_id in rows]

    def list_statuses(self) -> list[ListStatus]:
        """Every issuing CA's newest CRL and ARL, bridge first."""
        latest = self.latest_issued_crls()
        out = []
        for ca in self.cas():
            if ca.kind is CAKind.EXTERNAL:
                continue
            for list_type in LISTS:
                row = latest.get((ca.id, list_type))
                out.append(ListStatus(ca.name, list_type, row.number if row else None,
                                      row.this_update if row else None, row.next_update if row else None))
        return out

    def responder_coverage(self, now: dt.datetime) -> list[ResponderCoverage]:
        """Every key of every issuing CA with a self-signed certificate (what OCSP answers for), bar
        compromised ones, and its delegated responder certificate that is valid at `now` the longest."""
        valid = self.session.execute(
            sa.select(Certificate.issuer_key_id, Certificate.serial, Certificate.not_after)
            .where(Certificate.kind == CertKind.OCSP_RESPONDER, Certificate.key_label.is_not(None),
                   Certificate.not_before <= now, Certificate.not_after > now,
                   Certificate.id.not_in(sa.select(Revocation.certificate_id)))
            .order_by(Certificate.not_after, Certificate.id)).all()
        last = {key_id: (serial, not_after) for key_id, serial, not_after in valid}
        out = []
        for ca in self.cas():
            if ca.kind is CAKind.EXTERNAL:
                continue
            for key in ca.keys:
                if key.status is KeyStatus.COMPROMISED or self.self_signed_of_key(key.id) is None:
                    continue
                serial, not_after = last.get(key.id, (None, None))
                out.append(ResponderCoverage(ca.name, key.generation, key.status is KeyStatus.ACTIVE, serial,
                                             not_after))
        return out

    # revocation requests
    def waiting_counts(self) -> dict[RequestStatus, int]:
        """How many dual-control requests wait for review and for approval."""
        return dict(self.session.execute(
            sa.select(RevocationRequest.status, sa.func.count())
            .where(RevocationRequest.status.in_([RequestStatus.PENDING_REVIEW, RequestStatus.PENDING_APPROVAL]))
            .group_by(RevocationRequest.status)).all())

    # OCSP history
    def ocsp_minute_counts(self, since: dt.datetime) -> dict[str, int]:
        """OCSP queries per UTC minute ("YYYY-MM-DD HH:MM") from `since` on: one GROUP BY over the `at` index."""
        bucket = utc_text(OCSPQuery.at, self._dialect(), "minute")
        return {minute: int(n) for minute, n in self.session.execute(
            sa.select(bucket, sa.func.count()).where(OCSPQuery.at >= since).group_by(bucket)).all()}

    def verifier_names(self) -> dict[int, str]:
        return dict(self.session.execute(sa.select(Verifier.id, Verifier.name)).all())

    # counts over id ranges of the append-only tables
    def max_id(self, table: str) -> int:
        model = TALLIED[table]
        return self.session.scalar(sa.select(sa.func.max(model.id))) or 0

    def ocsp_response_counts(self, after: int, up_to: int) -> list[tuple[str, int | None, int]]:
        """(response status, verifier id, responses) over ocsp_queries ids in (after, up_to]."""
        rows = self.session.execute(sa.select(OCSPQuery.response_status, OCSPQuery.verifier_id, sa.func.count())
                                    .where(OCSPQuery.id > after, OCSPQuery.id <= up_to)
                                    .group_by(OCSPQuery.response_status, OCSPQuery.verifier_id)).all()
        return [(status, verifier_id, int(n)) for status, verifier_id, n in rows]

    def ocsp_answer_counts(self, after: int, up_to: int, statuses: Iterable[str]) -> list[int]:
        """For each status, how many answers `<serial>=<status>` ocsp_queries ids in (after, up_to] hold."""
        sums = self.session.execute(
            sa.select(*(sa.func.coalesce(sa.func.sum(_occurrences(OCSPQuery.answers, f"={s}")), 0)
                        for s in statuses))
            .where(OCSPQuery.id > after, OCSPQuery.id <= up_to)).one()
        return [int(n) for n in sums]

    def audit_counts(self, after: int, up_to: int, event_types: Iterable[str]) -> list[tuple[str, str, int]]:
        """(event type, result, records) over audit_events ids in (after, up_to], for these types."""
        rows = self.session.execute(sa.select(AuditEvent.event_type, AuditEvent.result, sa.func.count())
                                    .where(AuditEvent.id > after, AuditEvent.id <= up_to,
                                           AuditEvent.event_type.in_(list(event_types)))
                                    .group_by(AuditEvent.event_type, AuditEvent.result)).all()
        return [(event_type, result, int(n)) for event_type, result, n in rows]

    def revocation_day_counts(self, after: int, up_to: int) -> list[tuple[str, int, int]]:
        """(UTC day of the revocation time, reason number, revocations) over revocation ids in (after, up_to]."""
        day = utc_text(Revocation.revocation_time, self._dialect(), "day")
        rows = self.session.execute(sa.select(day, Revocation.reason, sa.func.count())
                                    .where(Revocation.id > after, Revocation.id <= up_to)
                                    .group_by(day, Revocation.reason)).all()
        return [(d, int(reason), int(n)) for d, reason, n in rows]
