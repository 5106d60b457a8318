"""The audit hash chain as stored: the frozen link encoding, and linking records at commit
(seed 001, seed 004 5.4).

A record's link is SHA-256(previous link || canonical bytes of the record).  The canonical
bytes are frozen: changing them would break every chain already written (migration 0006
keeps its own copy, which a test compares with this one).  ca.audit.chain re-exports them.

Records are linked when their transaction commits, under a lock on the one `audit_head` row
(BEGIN IMMEDIATE on SQLite, SELECT ... FOR UPDATE on PostgreSQL), so chain order is commit
order and two writers can never take the same position.  Holding the lock only for the
commit keeps a long operation from stalling every other audited one.  The hooks are Session
events, so they live here, in the storage layer; importing ca.audit (which every audited
operation does) imports this module and so registers them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ca.storage.models import AuditEvent, AuditHead

GENESIS = bytes(32)
HEAD_ID = 1
_PENDING = "revoca.audit.pending"


def canonical(seq: int, occurred_at: dt.datetime, event_type: str, result: str, actor: str, detail: str) -> bytes:
    at = occurred_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps([seq, at, event_type, result, actor, detail], ensure_ascii=False,
                      separators=(",", ":")).encode()


def link(previous: bytes, seq: int, occurred_at: dt.datetime, event_type: str, result: str, actor: str,
         detail: str) -> bytes:
    return hashlib.sha256(previous + canonical(seq, occurred_at, event_type, result, actor, detail)).digest()


def link_event(previous: bytes, event: Any) -> bytes:
    """The link of a stored record (anything with the audit_events columns as attributes)."""
    return link(previous, event.seq, event.occurred_at, event.event_type, event.result, event.actor, event.detail)


def archive_line(event: Any) -> bytes:
    """A stored record as the archive keeps it: one JSON line, the record's canonical list with its
    link appended, so that the chain can be recomputed from an export alone (frozen, like
    `canonical`: the archive's stamps cover these bytes)."""
    body = canonical(event.seq, event.occurred_at, event.event_type, event.result, event.actor, event.detail)
    return body[:-1] + b',"' + event.chain_hash.hex().encode() + b'"]\n'


def append(session: Session, *, occurred_at: dt.datetime, event_type: str, result: str, actor: str,
           detail: str) -> None:
    """Queue a record to be chained and inserted when the session commits."""
    session.info.setdefault(_PENDING, []).append(AuditEvent(
        occurred_at=occurred_at, event_type=event_type, result=result, actor=actor, detail=detail))


def _append_pending(session: Session) -> None:
    pending: list[AuditEvent] | None = session.info.pop(_PENDING, None)
    if not pending:
        return
    head = session.scalars(sa.select(AuditHead).where(AuditHead.id == HEAD_ID).with_for_update()
                           .execution_options(populate_existing=True)).one()
    for event in pending:
        event.seq = head.seq + 1
        event.chain_hash = link_event(head.chain_hash, event)
        head.seq, head.chain_hash = event.seq, event.chain_hash
        session.add(event)
    session.flush()


def _drop_pending(session: Session, *_: object) -> None:
    session.info.pop(_PENDING, None)


sa.event.listen(Session, "before_commit", _append_pending)
sa.event.listen(Session, "after_rollback", _drop_pending)
