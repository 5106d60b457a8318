"""Recording security-relevant events (seed 004 5.4.1).

Events are written in the same transaction as the change they describe, so a change and
its record commit or roll back together; they are hash-chained as that transaction commits
(ca.storage.audit_chain).  Failed attempts are recorded in a transaction of
their own (`record_failure`) because the operation's own transaction rolls back.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ca.storage.audit import AuditWrites
from ca.storage.engine import Engine, Session, session_scope

SUCCESS = "success"
FAILURE = "failure"


def record(session: Session, event_type: str, *, actor: str, result: str = SUCCESS,
           at: dt.datetime | None = None, **detail: Any) -> None:
    AuditWrites(session).append(
        occurred_at=at or dt.datetime.now(dt.UTC),
        event_type=event_type,
        result=result,
        actor=actor,
        detail=json.dumps(detail, sort_keys=True, ensure_ascii=False, default=str),
    )


def record_failure(engine: Engine, event_type: str, *, actor: str, error: str, **detail: Any) -> None:
    with session_scope(engine) as session:
        record(session, event_type, actor=actor, result=FAILURE, error=error, **detail)
