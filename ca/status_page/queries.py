"""What the status page shows, read in one read-only transaction and returned as plain values.

Kept apart from the views so that the page's SQL is in one place (the same rule as ca.store),
and so the templates see frozen values, never ORM rows that could lazy-load mid-render.
Nothing here reads audit_events: the page shows the state of the CAs, not who audited what.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ca.revocation.reasons import RFC_NAME, RevocationReason
from ca.scheduler import ListStatus
from ca.storage.models import Certificate, CertificateAuthority, CertKind, OCSPQuery, RequestStatus, Revocation
from ca.storage.revocations import RevocationStore
from ca.storage.store import ReadStore

CA_CERT_KINDS = (CertKind.SELF_SIGNED, CertKind.CROSS, CertKind.LINK_OLD_WITH_NEW, CertKind.LINK_NEW_WITH_OLD)
KIND_LABEL = {CertKind.SELF_SIGNED: "self-signed", CertKind.CROSS: "cross",
              CertKind.LINK_OLD_WITH_NEW: "link OldWithNew", CertKind.LINK_NEW_WITH_OLD: "link NewWithOld"}


@dataclasses.dataclass(frozen=True, slots=True)
class KeyLine:
    generation: int
    algorithm: str
    status: str
    in_token: bool
    ski_hex: str
    created_at: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class CertLine:
    kind: str
    issuer: str
    subject: str
    key_generation: int | None  # the generation of the key the certificate carries
    serial_hex: str
    not_before: dt.datetime
    not_after: dt.datetime
    state: str  # valid | expired | not yet valid | revoked


@dataclasses.dataclass(frozen=True, slots=True)
class CAPanel:
    name: str
    kind: str
    status: str
    subject_dn: str
    keys: tuple[KeyLine, ...]
    certificates: tuple[CertLine, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ListLine:
    """One CA's newest CRL or ARL; `state` is ok, soon (under the warning time left), expired or missing."""

    ca: str
    list_type: str
    number: int | None
    this_update: dt.datetime | None
    next_update: dt.datetime | None
    left: dt.timedelta | None
    state: str


@dataclasses.dataclass(frozen=True, slots=True)
class WaitingRequest:
    public_id: str
    channel: str
    waiting_for: str  # review | approval
    ca: str
    kind: str
    serial_hex: str
    reason: str
    accepted_at: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class MinuteCount:
    start: dt.datetime
    count: int


@dataclasses.dataclass(frozen=True, slots=True)
class DayCounts:
    day: dt.date
    by_reason: tuple[tuple[str, int], ...]  # (RFC reason name, count) for every allowed reason, in number order

    @property
    def total(self) -> int:
        return sum(n for _, n in self.by_reason)


REASONS = tuple(RFC_NAME[r] for r in RevocationReason)


def ca_panels(session: Session, now: dt.datetime) -> list[CAPanel]:
    """Every CA with its key generations and its CA certificates (self-signed, cross both ways, links)."""
    store = ReadStore(session)
    cas = store.cas()
    names = {ca.id: ca.name for ca in cas}
    generations = {k.id: k.generation for ca in cas for k in ca.keys}
    rows = session.execute(
        sa.select(Certificate.kind, Certificate.issuer_ca_id, Certificate.subject_ca_id, Certificate.subject_key_id,
                  Certificate.serial, Certificate.not_before, Certificate.not_after, Revocation.id)
        .outerjoin(Revocation, Revocation.certificate_id == Certificate.id)
        .where(Certificate.kind.in_(CA_CERT_KINDS)).order_by(Certificate.id)).all()
    by_ca: dict[int, list[CertLine]] = {ca.id: [] for ca in cas}
    for kind, issuer_id, subject_id, subject_key_id, serial, not_before, not_after, revocation_id in rows:
        line = CertLine(KIND_LABEL[kind], names.get(issuer_id, "?"), names.get(subject_id, "?"),
                        generations.get(subject_key_id), format(serial, "x"), not_before, not_after,
                        _cert_state(not_before, not_after, revocation_id is not None, now))
        owners = {subject_id, issuer_id} if kind is CertKind.CROSS else {subject_id}
        for owner in owners:
            if owner in by_ca:
                by_ca[owner].append(line)
    return [CAPanel(ca.name, ca.kind.value, ca.status.value, ca.subject_dn,
                    tuple(KeyLine(k.generation, k.algorithm, k.status.value, k.key_label is not None, k.ski.hex()[:16],
                                  k.created_at) for k in ca.keys),
                    tuple(by_ca[ca.id])) for ca in cas]


def _cert_state(not_before: dt.datetime, not_after: dt.datetime, revoked: bool, now: dt.datetime) -> str:
    if revoked:
        return "revoked"
    if now > not_after:
        return "expired"
    if now < not_before:
        return "not yet valid"
    return "valid"


def list_lines(statuses: Sequence[ListStatus], now: dt.datetime, warn_before: dt.timedelta) -> list[ListLine]:
    """The scheduler's view of each CA's newest CRL and ARL, with the time left and whether to warn."""
    out = []
    for s in statuses:
        left = s.next_update - now if s.next_update is not None else None
        if left is None:
            state = "missing"
        elif left <= dt.timedelta(0):
            state = "expired"
        elif left < warn_before:
            state = "soon"
        else:
            state = "ok"
        out.append(ListLine(s.ca_name, s.list_type.value, s.number, s.this_update, s.next_update, left, state))
    return out


def waiting_requests(session: Session) -> list[WaitingRequest]:
    """Dual-control requests waiting for a reviewer or an approver, oldest first."""
    store = RevocationStore(session)
    names = dict(session.execute(sa.select(CertificateAuthority.id, CertificateAuthority.name)).all())
    return [WaitingRequest(r.public_id, r.channel.value,
                           "review" if r.status is RequestStatus.PENDING_REVIEW else "approval",
                           names.get(r.certificate.issuer_ca_id, "?"), r.certificate.kind.value,
                           format(r.certificate.serial, "x"), RFC_NAME.get(RevocationReason(r.reason), str(r.reason)),
                           r.accepted_at)
            for r in store.pending_requests()]


def utc_text(column: sa.ColumnElement[dt.datetime], dialect: str, unit: str) -> sa.ColumnElement[str]:
    """The UTC day (YYYY-MM-DD) or minute (YYYY-MM-DD HH:MM) of a timestamp, as text, on either backend.

    SQLite keeps naive UTC text (ca.models.UTCDateTime); PostgreSQL keeps timestamptz, converted
    to UTC here so that the session's time zone cannot move a revocation to another day.
    """
    if dialect == "postgresql":
        pattern = {"day": "YYYY-MM-DD", "minute": "YYYY-MM-DD HH24:MI"}[unit]
        return sa.func.to_char(sa.func.timezone("UTC", column), pattern)
    return sa.func.strftime({"day": "%Y-%m-%d", "minute": "%Y-%m-%d %H:%M"}[unit], column)


def ocsp_per_minute(session: Session, now: dt.datetime, minutes: int = 10) -> list[MinuteCount]:
    """OCSP queries in each of the last `minutes` whole minutes plus the current one, oldest first.

    One GROUP BY over the `at` index range; the responders write the history in batches about a
    second late, so the current minute is still filling.
    """
    current = now.astimezone(dt.UTC).replace(second=0, microsecond=0)
    since = current - dt.timedelta(minutes=minutes)
    bucket = utc_text(OCSPQuery.at, session.get_bind().dialect.name, "minute")
    counts = dict(session.execute(sa.select(bucket, sa.func.count()).where(OCSPQuery.at >= since)
                                  .group_by(bucket)).all())
    out = []
    for i in range(minutes + 1):
        start = since + dt.timedelta(minutes=i)
        out.append(MinuteCount(start, int(counts.get(f"{start:%Y-%m-%d %H:%M}", 0))))
    return out


def revocations_per_day(counts: dict[tuple[str, ...], int], today: dt.date, days: int = 30) -> list[DayCounts]:
    """The last `days` days up to today from (UTC day, reason) -> count totals (ca.status_page.tallies)."""
    first = today - dt.timedelta(days=days - 1)
    out = []
    for i in range(days):
        d = (first + dt.timedelta(days=i)).isoformat()
        out.append(DayCounts(first + dt.timedelta(days=i), tuple((r, counts.get((d, r), 0)) for r in REASONS)))
    return out

