"""Sealing the high-rate histories into the audit chain (seed 004 5.4.1, 5.5.1.2).

Every OCSP query, CRL fetch and directory read (ARLs, CA certificates: repository.provision) is
a status-check access the audit log must cover, but
one chained record per query would cost the responder dearly.  So the histories are written
in batches by their own writers, and a sealer appends one audit record per run and table,
committing to a contiguous id range with a SHA-256 over the rows' canonical bytes (the frozen
encoding of ca.storage.history, which the archive stamps too).  An edited, deleted or
later-inserted row inside a sealed range then shows up in `revoca audit verify`.

Only settled rows are sealed (ca.storage.history.SETTLE): on PostgreSQL ids are handed out
before commit, so a younger range might still gain a row from a transaction not yet committed.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ca import audit
from ca.storage import history
from ca.storage.audit import AuditReads
from ca.storage.engine import Session
from ca.storage.history import HistoryReads

EVENT = "history.sealed"
ACTOR = "system:audit-sealer"
MAX_ROWS = 100_000


def last_sealed_id(session: Session, table: str) -> int:
    # The seal records are few (one per run and table); their detail is JSON text, so the
    # newest one of this table is found by reading the seal records newest first.
    for detail in AuditReads(session).details_newest_first(EVENT):
        seal = json.loads(detail)
        if seal.get("table") == table:
            return int(seal["last_id"])
    return 0


def seal(session: Session, now: dt.datetime) -> list[dict[str, Any]]:
    """Append one seal record per table with settled unsealed rows; returns their details."""
    sealed = []
    rows = HistoryReads(session)
    for table in history.NAMES:
        span = rows.settled_range(table, last_sealed_id(session, table), now, MAX_ROWS)
        if span is None:
            continue
        first_id, last_id = span
        count, digest = rows.digest(table, first_id, last_id)
        detail: dict[str, Any] = {"table": table, "first_id": first_id, "last_id": last_id, "count": count,
                  "sha256": digest.hex()}
        audit.record(session, EVENT, actor=ACTOR, at=now, **detail)
        sealed.append(detail)
    return sealed


def check(session: Session, detail: dict[str, Any]) -> str | None:
    """None when the sealed range still holds exactly what was sealed, else what differs."""
    table = detail.get("table", "")
    if table not in history.NAMES:
        return f"seals an unknown table {detail.get('table')!r}"
    count, digest = HistoryReads(session).digest(table, int(detail["first_id"]), int(detail["last_id"]))
    if count != detail["count"]:
        return (f"{table} ids {detail['first_id']}..{detail['last_id']}: {count} rows now, "
                f"{detail['count']} when sealed (rows deleted or added)")
    if digest.hex() != detail["sha256"]:
        return f"{table} ids {detail['first_id']}..{detail['last_id']}: rows changed since they were sealed"
    return None
