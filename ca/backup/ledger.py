"""What happened to backups, in the audit log: made, verified (or not), copied off-site,
checked yearly, restored.  Keeping it there, not in a table of its own, puts it under the
hash chain and in every backup's own copy of the log."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from ca import audit
from ca.backup.snapshot import Backup
from ca.backup.verify import Verification
from ca.storage.audit import AuditReads
from ca.storage.engine import Engine, Session, session_scope

CREATED = "backup.created"
VERIFIED = "backup.verified"
OFFSITE = "backup.offsite"
CHECKED = "backup.checked"
RESTORED = "backup.restored"
REMOVED = "backup.removed"


def created(engine: Engine, backup: Backup, actor: str) -> None:
    with session_scope(engine) as session:
        audit.record(session, CREATED, actor=actor, backup=backup.path.name, path=str(backup.path),
                     manifest_sha256=backup.digest, files=backup.files, bytes=backup.size)


def verified(engine: Engine, verification: Verification, actor: str, *, event: str = VERIFIED,
             **detail: Any) -> None:
    facts = dict(backup=verification.path.name, path=str(verification.path), manifest_sha256=verification.digest,
                 depth=verification.depth, audit_records=verification.audit_records,
                 archive_items=verification.archive_items, **detail)
    if verification.ok:
        with session_scope(engine) as session:
            audit.record(session, event, actor=actor, **facts)
    else:
        audit.record_failure(engine, event, actor=actor, error=verification.line(), **facts)


def simple(engine: Engine, event: str, actor: str, **detail: Any) -> None:
    with session_scope(engine) as session:
        audit.record(session, event, actor=actor, **detail)


@dataclasses.dataclass(frozen=True)
class Newest:
    verified_at: dt.datetime | None
    backup: str | None


def newest_verified(session: Session) -> Newest:
    """The newest backup whose verification succeeded (a yearly check counts too)."""
    for event in AuditReads(session).newest_events(limit=20, event_type=VERIFIED):
        if event.result == audit.SUCCESS:
            return Newest(event.occurred_at, _detail(event).get("backup"))
    return Newest(None, None)


def offsite_names(session: Session) -> set[str]:
    return {str(_detail(e).get("backup")) for e in AuditReads(session).newest_events(limit=10_000, event_type=OFFSITE)}


def _detail(event: Any) -> dict[str, Any]:
    import json

    try:
        value = json.loads(event.detail or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
