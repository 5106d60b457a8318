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
from typing import Any

from ca.errors import NotFound
from ca.storage.audit import AuditReads, AuditWrites
from ca.storage.engine import Session
from ca.timestamps import Stamper

HASH = "sha256"
REQUESTER = "audit"


def imprint(seq: int, chain_hash: bytes, reason: str, pruned_from: int | None, pruned_count: int | None) -> bytes:
    """What the token covers; frozen, like the chain's own encoding."""
    body = json.dumps(["revoca-audit-checkpoint", seq, chain_hash.hex(), reason, pruned_from, pruned_count],
                      separators=(",", ":")).encode()
    return hashlib.sha256(body).digest()


def of(checkpoint: Any) -> bytes:
    """The imprint of a stored checkpoint (an audit_checkpoints row)."""
    return imprint(checkpoint.seq, checkpoint.chain_hash, checkpoint.reason, checkpoint.pruned_from,
                   checkpoint.pruned_count)


def take(session: Session, stamper: Stamper, reason: str, now: dt.datetime, *, actor: str = "system",
         pruned_from: int | None = None, pruned_count: int | None = None,
         at: tuple[int, bytes] | None = None) -> Any:
    """Stamp the chain's head (or `at` = (seq, hash), for a prune anchor) and keep the checkpoint."""
    store = AuditWrites(session)
    if at is None:
        head = store.head()
        if head is None:
            raise NotFound("the audit chain has no head row; run `revoca init` (or the migrations) first")
        at = (head.seq, head.chain_hash)
    seq, chain_hash = at
    token = stamper.stamp(session, imprint(seq, chain_hash, reason, pruned_from, pruned_count), HASH, REQUESTER)
    return store.add_checkpoint(seq=seq, chain_hash=chain_hash, reason=reason, now=now, time_stamp=token,
                                actor=actor, pruned_from=pruned_from, pruned_count=pruned_count)


def newest_anchor(session: Session) -> Any:
    return AuditReads(session).newest_anchor()
