"""What the status page shows, read in one read-only transaction and returned as plain values.

Kept apart from the views so that what the page reads is in one place (the queries themselves
are ca.storage.reporting's, a read-only store), and so the templates see frozen values, never
ORM rows that could lazy-load mid-render.
Nothing here reads audit_events: the page shows the state of the CAs, not who audited what.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from ca.enums import CertKind, RequestStatus
from ca.revocation.reasons import RFC_NAME, RevocationReason
from ca.storage.reporting import ListStatus, ReportingReads

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


def ca_panels(store: ReportingReads, now: dt.datetime) -> list[CAPanel]:
    """Every CA with its key generations and its CA certificates (self-signed, cross both ways, links)."""
    cas = store.cas()
    names: dict[int | None, str] = {ca.id: ca.name for ca in cas}
    generations: dict[int | None, int] = {k.id: k.generation for ca in cas for k in ca.keys}
    by_ca: dict[int, list[CertLine]] = {ca.id: [] for ca in cas}
    for row in store.ca_certificate_rows(CA_CERT_KINDS):
        line = CertLine(KIND_LABEL[row.kind], names.get(row.issuer_ca_id, "?"), names.get(row.subject_ca_id, "?"),
                        generations.get(row.subject_key_id), format(row.serial, "x"), row.not_before, row.not_after,
                        _cert_state(row.not_before, row.not_after, row.revoked, now))
        owners = {row.subject_ca_id, row.issuer_ca_id} if row.kind is CertKind.CROSS else {row.subject_ca_id}
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
    """Each CA's newest CRL and ARL (ReportingReads.list_statuses), with the time left and whether to warn."""
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


def waiting_requests(store: ReportingReads) -> list[WaitingRequest]:
    """Dual-control requests waiting for a reviewer or an approver, oldest first."""
    names = store.ca_names()
    return [WaitingRequest(r.public_id, r.channel.value,
                           "review" if r.status is RequestStatus.PENDING_REVIEW else "approval",
                           names.get(r.certificate.issuer_ca_id, "?"), r.certificate.kind.value,
                           format(r.certificate.serial, "x"), RFC_NAME.get(RevocationReason(r.reason), str(r.reason)),
                           r.accepted_at)
            for r in store.pending_requests()]


def ocsp_per_minute(store: ReportingReads, now: dt.datetime, minutes: int = 10) -> list[MinuteCount]:
    """OCSP queries in each of the last `minutes` whole minutes plus the current one, oldest first.

    The responders write the history in batches about a second late, so the current minute is
    still filling.
    """
    current = now.astimezone(dt.UTC).replace(second=0, microsecond=0)
    since = current - dt.timedelta(minutes=minutes)
    counts = store.ocsp_minute_counts(since)
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

