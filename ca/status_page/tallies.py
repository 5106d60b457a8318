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

The counting queries are ca.storage.reporting's; here are the running totals and the labels.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ca.revocation.reasons import RFC_NAME, RevocationReason
from ca.storage.engine import Session
from ca.storage.reporting import ReportingReads

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


Counts = list[tuple[tuple[str, ...], int]]


class Tally:
    """Totals by label tuple, grown by a counting function over an id range of one table.

    `table` is an append-only table by name ("ocsp_queries", "audit_events", "revocations") or
    its model class; `count(store, after, up_to)` counts the ids in (after, up_to].
    """

    def __init__(self, table: Any, count: Callable[[ReportingReads, int, int], Counts]) -> None:
        self.table: str = getattr(table, "__tablename__", table)
        self._count = count
        self._mark = Watermark()
        self._totals: dict[tuple[str, ...], int] = {}
        self._lock = threading.Lock()

    def update(self, session: Session) -> dict[tuple[str, ...], int]:
        """Totals over every row visible now: the running totals advanced, plus the tail counted afresh."""
        store = ReportingReads(session)
        with self._lock:
            current = store.max_id(self.table)
            after, up_to = self._mark.next_range(current)
            if up_to > after:
                _add(self._totals, self._count(store, after, up_to))
            self._mark.done(up_to)
            out = dict(self._totals)
            if current > up_to:
                _add(out, self._count(store, up_to, current))
            return out


def _add(totals: dict[tuple[str, ...], int], counts: Iterable[tuple[tuple[str, ...], int]]) -> None:
    for labels, n in counts:
        totals[labels] = totals.get(labels, 0) + n


def ocsp_responses(store: ReportingReads, after: int, up_to: int) -> Counts:
    """(response status, verifier name or "none") -> responses, over ocsp_queries ids in (after, up_to]."""
    rows = store.ocsp_response_counts(after, up_to)
    names = store.verifier_names() if any(v is not None for _, v, _ in rows) else {}
    return [((status, "none" if v is None else names.get(v, f"id-{v}")), n) for status, v, n in rows]


def ocsp_certificate_answers(store: ReportingReads, after: int, up_to: int) -> Counts:
    """good / revoked / unknown answers (one per CertID of a request) over ocsp_queries ids in (after, up_to]."""
    sums = store.ocsp_answer_counts(after, up_to, CERT_STATUSES)
    return [((s,), n) for s, n in zip(CERT_STATUSES, sums, strict=True)]


def _audit_counts(store: ReportingReads, after: int, up_to: int, labels: dict[str, str]) -> Counts:
    return [((labels[event], result), n) for event, result, n in store.audit_counts(after, up_to, labels)]


def signing_operations(store: ReportingReads, after: int, up_to: int) -> Counts:
    """(operation, result) -> count, from the audit events of CRL/ARL issues and certificate issues."""
    return _audit_counts(store, after, up_to, SIGNING_EVENTS)


def revocations_by_day(store: ReportingReads, after: int, up_to: int) -> Counts:
    """(UTC day of the revocation time, RFC reason name) -> revocations, over revocation ids in (after, up_to].

    Revocation rows are never updated or deleted, so a day's count only grows.
    """
    return [((d, _reason_name(r)), n) for d, r, n in store.revocation_day_counts(after, up_to)]


def _reason_name(number: int) -> str:
    return RFC_NAME[RevocationReason(number)] if number in REASON_NUMBERS else str(number)


def request_steps(store: ReportingReads, after: int, up_to: int) -> Counts:
    """(outcome, result) -> count, from the audit events of revocation requests (filed, refused, decided)."""
    return _audit_counts(store, after, up_to, REQUEST_EVENTS)
