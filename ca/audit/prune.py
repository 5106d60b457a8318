"""Deleting audit records older than the retention (seed 004 5.4.3), by the internal auditor only.

Only a verified chain is pruned, so deletion can never destroy the evidence of tampering;
only archived records are pruned (with the checkpoints that cover them), so the archive keeps
what the database lets go (ca.archive: the "audit-log" ranges and "audit-checkpoint" items).
Before the records go, a prune anchor is stamped: the seq and hash where the deleted part
ended and how many records it held, so the records that remain still verify from there.

The retention is per record kind ([audit] in revoca.toml, ca.config.AuditConfig).  The chain
is pruned as a prefix, so a record goes only when it and every record before it are past
their retention: the first record still within its kind's retention ends the deletion.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Protocol

from ca import audit
from ca.audit import checkpoints
from ca.audit.verify import verify
from ca.errors import IntegrityFailure, InvalidInput
from ca.storage.archive import AUDIT_LOG, ArchiveReads
from ca.storage.audit import AuditWrites
from ca.storage.engine import Session
from ca.timestamps import Stamper, TokenCheck


class RetentionPolicy(Protocol):
    """Years of retention per record kind: the [audit] settings (ca.config.AuditConfig)."""

    def years_for(self, event_type: str) -> int: ...

    def shortest_years(self) -> int: ...


class NotArchived(InvalidInput):
    """Records (or checkpoints) that would be deleted are not in the archive yet."""


@dataclasses.dataclass(frozen=True)
class Pruned:
    count: int
    through_seq: int
    anchor_id: int | None
    kept_from_seq: int | None = None  # the first record `before` would have taken, still within its retention
    kept_kind: str | None = None  # its kind


def years_before(now: dt.datetime, years: int) -> dt.datetime:
    """`now` so many calendar years back (29 February becomes the 28th)."""
    try:
        return now.replace(year=now.year - years)
    except ValueError:
        return now.replace(year=now.year - years, day=28)


def _cutoff(retention: RetentionPolicy | dt.timedelta, event_type: str | None, now: dt.datetime) -> dt.datetime:
    """Records of this kind (None: of the shortest-kept kind) that occurred before it are past retention."""
    if isinstance(retention, dt.timedelta):
        return now - retention
    years = retention.shortest_years() if event_type is None else retention.years_for(event_type)
    return years_before(now, years)


def prune(session: Session, stamper: Stamper, check_token: TokenCheck, *, before: dt.datetime,
          retention: RetentionPolicy | dt.timedelta, now: dt.datetime, actor: str) -> Pruned:
    """Delete the records that occurred before `before`, as far as retention and archive allow.

    `retention`: the [audit] settings (per record kind), or one period for every kind."""
    shortest = _cutoff(retention, None, now)
    if before > shortest:
        kept = f"{retention.days} days" if isinstance(retention, dt.timedelta) else \
            f"{retention.shortest_years()} years for the shortest-kept kind"
        raise InvalidInput(f"records younger than the retention ({kept}) are kept: "
                           f"give a date on or before {shortest:%Y-%m-%d}")
    report = verify(session, check_token)
    if not report.ok:
        raise IntegrityFailure(f"the audit chain does not verify ({report.findings[0]}); nothing was deleted: "
                       "investigate with `revoca audit verify` first")
    # The prefix of the chain older than `before`: up to the first record at or after it ...
    store = AuditWrites(session)
    first_kept = store.first_seq_since(before)
    through = (first_kept - 1) if first_kept is not None else report.last_seq
    # ... and before the first record still within its own kind's retention.
    kept_from, kept_kind = None, None
    for event_type in store.types_through(through):
        seq = store.first_seq_of_type_since(event_type, _cutoff(retention, event_type, now), through)
        if seq is not None and (kept_from is None or seq < kept_from):
            kept_from, kept_kind = seq, event_type
    if kept_from is not None:
        through = kept_from - 1
    if through < report.first_seq:
        audit.record(session, "audit.pruned", actor=actor, at=now, before=before.isoformat(), count=0,
                     kept_from_seq=kept_from, kept_kind=kept_kind)
        return Pruned(0, through, None, kept_from, kept_kind)
    _check_archived(ArchiveReads(session), through)
    last = store.event(through)
    count = store.count_through(through)
    anchor = checkpoints.take(session, stamper, "prune", now, actor=actor, pruned_from=report.first_seq,
                              pruned_count=count, at=(last.seq, last.chain_hash))
    store.delete_through(through)
    audit.record(session, "audit.pruned", actor=actor, at=now, before=before.isoformat(), count=count,
                 first_seq=report.first_seq, through_seq=through, anchor_id=anchor.id, kept_from_seq=kept_from,
                 kept_kind=kept_kind)
    return Pruned(count, through, anchor.id, kept_from, kept_kind)


def _check_archived(archive: ArchiveReads, through: int) -> None:
    archived = archive.last_stamped_id(AUDIT_LOG)
    if archived < through:
        raise NotArchived(f"records up to seq {through} would be deleted but the archive holds them only through "
                          f"seq {archived}; nothing was deleted: archive them first (`revoca archive stamp`, "
                          "which the scheduler runs every round), then prune")
    waiting = archive.unarchived_checkpoints_through(through)
    if waiting:
        raise NotArchived(f"{waiting} checkpoint(s) of the records to be deleted are not archived yet; nothing was "
                          "deleted: archive them first (`revoca archive stamp`), then prune")
