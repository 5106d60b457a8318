"""Time-stamped commitments to the audit chain (seed 001: periodic integrity anchors).

A checkpoint says "the chain up to seq N had hash H" under a token from revoca's time-stamp
authority.  Rewriting the chain after a checkpoint (edit a record, then re-hash everything
after it) would have to forge the token too; truncating the chain before the newest
checkpoint shows as a missing seq.  The prune anchor is a checkpoint too: it lets the chain
that remains after a deletion verify from where the deleted part ended.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ca.audit.chain import HEAD_ID
from ca.storage.models import AuditCheckpoint, AuditHead, TimeStamp

HASH = "sha256"
REQUESTER = "audit"


class Stamper(Protocol):
    def stamp(self, session: Session, imprint: bytes, hash_name: str, requester: str) -> TimeStamp: ...


def imprint(seq: int, chain_hash: bytes, reason: str, pruned_from: int | None, pruned_count: int | None) -> bytes:
    """What the token covers; frozen, like the chain's own encoding."""
    body = json.dumps(["revoca-audit-checkpoint", seq, chain_hash.hex(), reason, pruned_from, pruned_count],
                      separators=(",", ":")).encode()
    return hashlib.sha256(body).digest()


def of(checkpoint: AuditCheckpoint) -> bytes:
    return imprint(checkpoint.seq, checkpoint.chain_hash, checkpoint.reason, checkpoint.pruned_from,
                   checkpoint.pruned_count)


def take(session: Session, stamper: Stamper, reason: str, now: dt.datetime, *, actor: str = "system",
         pruned_from: int | None = None, pruned_count: int | None = None,
         at: tuple[int, bytes] | None = None) -> AuditCheckpoint:
    """Stamp the chain's head (or `at` = (seq, hash), for a prune anchor) and keep the checkpoint."""
    if at is None:
        head = session.scalars(sa.select(AuditHead).where(AuditHead.id == HEAD_ID)
                               .execution_options(populate_existing=True)).one()
        at = (head.seq, head.chain_hash)
    seq, chain_hash = at
    token = stamper.stamp(session, imprint(seq, chain_hash, reason, pruned_from, pruned_count), HASH, REQUESTER)
    checkpoint = AuditCheckpoint(seq=seq, chain_hash=chain_hash, reason=reason, created_at=now,
                                 time_stamp=token, pruned_from=pruned_from, pruned_count=pruned_count, actor=actor)
    session.add(checkpoint)
    session.flush()
    return checkpoint


def newest_anchor(session: Session) -> AuditCheckpoint | None:
    return session.scalars(sa.select(AuditCheckpoint).where(AuditCheckpoint.reason == "prune")
                           .order_by(AuditCheckpoint.seq.desc()).limit(1)).first()
