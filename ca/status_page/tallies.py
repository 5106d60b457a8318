"""Running totals over append-only tables (OCSP history, audit events, revocations), counted incrementally.

The OCSP responders and the signers run in other processes and leave their trace only in the
database, so the counters of /metrics are derived from those rows.  Each tally remembers the
last id it counted and, at every scrape, adds only newer rows: a scrape on a table of many
millions of rows reads one primary-key range, not the table.  (The first scrape of a process
counts the table once; the totals are "since the table began", so every worker and every
restart agrees on them; after the auditor prunes old records a restarted process counts less,
which Prometheus takes as a counter reset.)  The status page counts its revocations-per-day
chart the same way.

Ids come from a sequence, and on PostgreSQL two writers can commit out of id order: a row with a
smaller id may become visible after a larger one.  So the running totals only advance up to the
highest id the *previous* scrape saw, and the rows above that are counted afresh at each scrape
(the tail, at most one scrape interval of rows): a row still being committed when a higher id
was first seen is counted once it shows, as long as that takes less than a scrape interval.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ca.revocation.reasons import RFC_NAME, RevocationReason
from ca.status_page.queries import utc_text
from ca.storage.models import AuditEvent, OCSPQuery, Revocation, Verifier

CERT_STATUSES = ("good", "revoked", "unknown")
REASON_NUMBERS = frozenset(int(r) for r in RevocationReason)
#: Audit events that are signatures by a CA key (CRL/ARL and certificates), by metric label.
SIGNING_EVENTS = {"crl.issued": "crl", "ca.certificate_issued": "certificate"}
#: Audit events that are steps of a revocation request, by outcome label.
REQUEST_EVENTS = {"revocation.request_filed": "filed", "ra.request_refused": "refused",
                  "revocation.reviewed": "reviewed", "revocation.approved": "approved",
                  "revocation.rejected": "rejected"}


@dataclasses.dataclass
class Watermark:
    """Which ids have been counted, and up to where the next scrape may count."""

    counted: int = 0
    seen: int | None = None  # the highest id at the previous scrape

    def next_range(self, current_max: int) -> tuple[int, int]:
        """(after, up_to): count ids in after < id <= up_to, then call `done(up_to)`."""
        up_to = current_max if self.seen is None else min(self.seen, current_max)
        self.seen = current_max
        return self.counted, max(up_to, self.counted)

    def done(self, up_to: int) -> None:
        self.counted = max(self.counted, up_to)


class Tally:
    """Totals by label tuple, grown by a counting function over an id range of one table."""

    def __init__(self, table: type, count: Callable[[Session, int, int], Iterable[tuple[tuple[str, ...], int]]]
                 ) -> None:
        self.table = table
        self._count = count
        self._mark = Watermark()
        self._totals: dict[tuple[str, ...], int] = {}
        self._lock = threading.Lock()

    def update(self, session: Session) -> dict[tuple[str, ...], int]:
        """Totals over every row visible now: the running totals advanced, plus the tail counted afresh."""
        with self._lock:
            current = session.scalar(sa.select(sa.func.max(self.table.id))) or 0  # type: ignore[attr-defined]
            after, up_to = self._mark.next_range(current)
            if up_to > after:
                _add(self._totals, self._count(session, after, up_to))
            self._mark.done(up_to)
            out = dict(self._totals)
            if current > up_to:
                _add(out, self._count(session, up_to, current))
            return out


def _add(totals: dict[tuple[str, ...], int], counts: Iterable[tuple[tuple[str, ...], int]]) -> None:
    for labels, n in counts:
        totals[labels] = totals.get(labels, 0) + n


def _occurrences(column: sa.ColumnElement[str], word: str) -> sa.ColumnElement[int]:
    """How often `word` occurs in a text column, in portable SQL (the length the REPLACE removes)."""
    return (sa.func.length(column) - sa.func.length(sa.func.replace(column, word, ""))) / len(word)


def _verifier_names(session: Session) -> dict[int, str]:
    return dict(session.execute(sa.select(Verifier.id, Verifier.name)).all())


def ocsp_responses(session: Session, after: int, up_to: int) -> list[tuple[tuple[str, ...], int]]:
    """(response status, verifier name or "none") -> responses, over ocsp_queries ids in (after, up_to]."""
    rows = session.execute(sa.select(OCSPQuery.response_status, OCSPQuery.verifier_id, sa.func.count())
                           .where(OCSPQuery.id > after, OCSPQuery.id <= up_to)
                           .group_by(OCSPQuery.response_status, OCSPQuery.verifier_id)).all()
    names = _verifier_names(session) if any(v is not None for _, v, _ in rows) else {}
    return [((status, "none" if v is None else names.get(v, f"id-{v}")), int(n)) for status, v, n in rows]


def ocsp_certificate_answers(session: Session, after: int, up_to: int) -> list[tuple[tuple[str, ...], int]]:
    """good / revoked / unknown answers (one per CertID of a request) over ocsp_queries ids in (after, up_to]."""
    sums = session.execute(sa.select(*(sa.func.coalesce(sa.func.sum(_occurrences(OCSPQuery.answers, f"={s}")), 0)
                                       for s in CERT_STATUSES))
                           .where(OCSPQuery.id > after, OCSPQuery.id <= up_to)).one()
    return [((s,), int(n)) for s, n in zip(CERT_STATUSES, sums, strict=True)]


def _audit_counts(session: Session, after: int, up_to: int, labels: dict[str, str]
                  ) -> list[tuple[tuple[str, ...], int]]:
    rows = session.execute(sa.select(AuditEvent.event_type, AuditEvent.result, sa.func.count())
                           .where(AuditEvent.id > after, AuditEvent.id <= up_to,
                                  AuditEvent.event_type.in_(list(labels)))
                           .group_by(AuditEvent.event_type, AuditEvent.result)).all()
    return [((labels[event], result), int(n)) for event, result, n in rows]


def signing_operations(session: Session, after: int, up_to: int) -> list[tuple[tuple[str, ...], int]]:
    """(operation, result) -> count, from the audit events of CRL/ARL issues and certificate issues."""
    return _audit_counts(session, after, up_to, SIGNING_EVENTS)


def revocations_by_day(session: Session, after: int, up_to: int) -> list[tuple[tuple[str, ...], int]]:
    """(UTC day of the revocation time, RFC reason name) -> revocations, over revocation ids in (after, up_to].

    Revocation rows are never updated or deleted, so a day's count only grows.
    """
    day = utc_text(Revocation.revocation_time, session.get_bind().dialect.name, "day")
    rows = session.execute(sa.select(day, Revocation.reason, sa.func.count())
                           .where(Revocation.id > after, Revocation.id <= up_to)
                           .group_by(day, Revocation.reason)).all()
    return [((d, _reason_name(int(r))), int(n)) for d, r, n in rows]


def _reason_name(number: int) -> str:
    return RFC_NAME[RevocationReason(number)] if number in REASON_NUMBERS else str(number)


def request_steps(session: Session, after: int, up_to: int) -> list[tuple[tuple[str, ...], int]]:
    """(outcome, result) -> count, from the audit events of revocation requests (filed, refused, decided)."""
    return _audit_counts(session, after, up_to, REQUEST_EVENTS)
