"""Sealing the high-rate histories into the audit chain (seed 004 5.4.1, 5.5.1.2).

Every OCSP query and every CRL fetch is a status-check access the audit log must cover, but
one chained record per query would cost the responder dearly.  So the histories are written
in batches by their own writers, and a sealer appends one audit record per run and table,
committing to a contiguous id range with a SHA-256 over the rows' canonical bytes.  An edited,
deleted or later-inserted row inside a sealed range then shows up in `revoca audit verify`.

Only rows older than SETTLE are sealed: on PostgreSQL ids are handed out before commit, so
a younger range might still gain a row from a transaction that has not committed yet.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ca import audit
from ca.storage.models import AuditEvent, CRLFetch, OCSPQuery

EVENT = "history.sealed"
ACTOR = "system:audit-sealer"
SETTLE = dt.timedelta(seconds=60)
MAX_ROWS = 100_000


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _enum_value(value: Any) -> Any:
    return getattr(value, "value", value)


@dataclasses.dataclass(frozen=True)
class SealedTable:
    """One history table: its model, its time column and its frozen row encoding."""

    name: str
    model: type
    at: sa.orm.InstrumentedAttribute[dt.datetime]
    row: Callable[[Any], list[Any]]

    def digest(self, rows: Iterable[Any]) -> tuple[int, bytes]:
        h, count = hashlib.sha256(), 0
        for r in rows:
            h.update(line(self, r))
            count += 1
        return count, h.digest()

    def rows_between(self, session: Session, first_id: int, last_id: int) -> Iterable[Any]:
        q = sa.select(self.model).where(self.model.id >= first_id, self.model.id <= last_id).order_by(self.model.id)
        return session.scalars(q.execution_options(yield_per=5000))


def line(table: SealedTable, row: Any) -> bytes:
    """One row as a JSON line: JSON escapes newlines in strings, so lines never run together."""
    return json.dumps(table.row(row), ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


TABLES = (
    SealedTable("ocsp_queries", OCSPQuery, OCSPQuery.at, lambda r: [
        r.id, _iso(r.at), r.verifier_id, r.ca_id, r.channel, r.nonce, r.response_status, r.answers]),
    SealedTable("crl_fetches", CRLFetch, CRLFetch.fetched_at, lambda r: [
        r.id, r.log_key, _iso(r.fetched_at), r.bind_dn, r.verifier_id, r.dn, r.ca_id,
        _enum_value(r.list_type), r.crl_number, r.result]),
)
BY_NAME = {t.name: t for t in TABLES}


def last_sealed_id(session: Session, table: SealedTable) -> int:
    # The seal records are few (one per run and table); their detail is JSON text, so the
    # newest one of this table is found by reading the seal records newest first.
    q = (sa.select(AuditEvent.detail).where(AuditEvent.event_type == EVENT).order_by(AuditEvent.seq.desc()))
    for detail in session.scalars(q.execution_options(yield_per=100)):
        seal = json.loads(detail)
        if seal.get("table") == table.name:
            return int(seal["last_id"])
    return 0


def seal(session: Session, now: dt.datetime) -> list[dict[str, Any]]:
    """Append one seal record per table with settled unsealed rows; returns their details."""
    sealed = []
    cutoff = now - SETTLE
    for table in TABLES:
        after = last_sealed_id(session, table)
        ids = session.execute(
            sa.select(table.model.id, table.at).where(table.model.id > after).order_by(table.model.id).limit(MAX_ROWS)
        ).all()
        # contiguous from the start, and only rows that have settled
        settled = []
        for row_id, at in ids:
            if at > cutoff:
                break
            settled.append(row_id)
        if not settled:
            continue
        first_id, last_id = after + 1, settled[-1]
        count, digest = table.digest(table.rows_between(session, first_id, last_id))
        detail = {"table": table.name, "first_id": first_id, "last_id": last_id, "count": count,
                  "sha256": digest.hex()}
        audit.record(session, EVENT, actor=ACTOR, at=now, **detail)
        sealed.append(detail)
    return sealed


def check(session: Session, detail: dict[str, Any]) -> str | None:
    """None when the sealed range still holds exactly what was sealed, else what differs."""
    table = BY_NAME.get(detail.get("table", ""))
    if table is None:
        return f"seals an unknown table {detail.get('table')!r}"
    count, digest = table.digest(table.rows_between(session, int(detail["first_id"]), int(detail["last_id"])))
    if count != detail["count"]:
        return (f"{table.name} ids {detail['first_id']}..{detail['last_id']}: {count} rows now, "
                f"{detail['count']} when sealed (rows deleted or added)")
    if digest.hex() != detail["sha256"]:
        return f"{table.name} ids {detail['first_id']}..{detail['last_id']}: rows changed since they were sealed"
    return None
