"""Deleting audit records older than the retention (seed 004 5.4.3), by the internal auditor only.

Only a verified chain is pruned, so deletion can never destroy the evidence of tampering.
Before the records go, a prune anchor is stamped: the seq and hash where the deleted part
ended and how many records it held, so the records that remain still verify from there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from ca import audit
from ca.audit import checkpoints
from ca.audit.verify import verify
from ca.errors import IntegrityFailure, InvalidInput
from ca.storage.audit import AuditWrites
from ca.storage.engine import Session
from ca.timestamps import Stamper, TokenCheck


@dataclasses.dataclass(frozen=True)
class Pruned:
    count: int
    through_seq: int
    anchor_id: int | None


def prune(session: Session, stamper: Stamper, check_token: TokenCheck, *, before: dt.datetime,
          retention: dt.timedelta, now: dt.datetime, actor: str) -> Pruned:
    if before > now - retention:
        raise InvalidInput(f"records younger than the retention ({retention.days} days) are kept: "
                           f"give a date on or before {now - retention:%Y-%m-%d}")
    report = verify(session, check_token)
    if not report.ok:
        raise IntegrityFailure(f"the audit chain does not verify ({report.findings[0]}); nothing was deleted: "
                       "investigate with `revoca audit verify` first")
    # The prefix of the chain older than `before`: up to the first record at or after it.
    store = AuditWrites(session)
    first_kept = store.first_seq_since(before)
    through = (first_kept - 1) if first_kept is not None else report.last_seq
    if through < report.first_seq:
        audit.record(session, "audit.pruned", actor=actor, at=now, before=before.isoformat(), count=0)
        return Pruned(0, through, None)
    last = store.event(through)
    count = store.count_through(through)
    anchor = checkpoints.take(session, stamper, "prune", now, actor=actor, pruned_from=report.first_seq,
                              pruned_count=count, at=(last.seq, last.chain_hash))
    store.delete_through(through)
    audit.record(session, "audit.pruned", actor=actor, at=now, before=before.isoformat(), count=count,
                 first_seq=report.first_seq, through_seq=through, anchor_id=anchor.id)
    return Pruned(count, through, anchor.id)
