"""Queries of the audit log (seed 004 5.4): its records, the chain's head, the time-stamped
checkpoints, the history seals.  The chain itself is linked at commit (ca.storage.audit_chain).

`AuditReads` only reads (verification, the auditor's `show`); `AuditWrites` appends records,
keeps checkpoints and prunes.  Callers own the transaction (ca.storage.engine.session_scope).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from ca.storage import audit_chain
from ca.storage.base import SessionStore
from ca.storage.models import AuditCheckpoint, AuditEvent, AuditHead

PRUNE = "prune"  # the reason of a prune anchor


class AuditReads(SessionStore):
    def head(self) -> AuditHead | None:
        """The chain's newest position as committed now (not a copy this session read earlier)."""
        return self.session.scalars(sa.select(AuditHead).where(AuditHead.id == audit_chain.HEAD_ID)
                                    .execution_options(populate_existing=True)).one_or_none()

    def events_after(self, seq: int) -> Iterable[AuditEvent]:
        """Every record after `seq`, in chain order, streamed."""
        return self.session.scalars(sa.select(AuditEvent).where(AuditEvent.seq > seq).order_by(AuditEvent.seq)
                                    .execution_options(yield_per=2000))

    def newest_time(self, event_type: str, result: str) -> dt.datetime | None:
        """When the newest record of this type and result occurred (reads no actor or detail: the
        status page may ask, e.g. for the newest verified backup)."""
        return self.session.scalar(sa.select(sa.func.max(AuditEvent.occurred_at))
                                   .where(AuditEvent.event_type == event_type, AuditEvent.result == result))

    def newest_events(self, *, limit: int, since: dt.datetime | None = None, event_type: str | None = None,
                      actor: str | None = None) -> Sequence[AuditEvent]:
        q = sa.select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(limit)
        if since is not None:
            q = q.where(AuditEvent.occurred_at >= since)
        if event_type:
            q = q.where(AuditEvent.event_type == event_type)
        if actor:
            q = q.where(AuditEvent.actor == actor)
        return self.session.scalars(q).all()

    def event(self, seq: int) -> AuditEvent:
        return self.session.scalars(sa.select(AuditEvent).where(AuditEvent.seq == seq)).one()

    def first_seq_since(self, at: dt.datetime) -> int | None:
        """The first record that occurred at or after `at`."""
        return self.session.scalar(sa.select(sa.func.min(AuditEvent.seq)).where(AuditEvent.occurred_at >= at))

    def count_through(self, seq: int) -> int:
        return self.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                                   .where(AuditEvent.seq <= seq)) or 0

    def types_through(self, seq: int) -> list[str]:
        """The record kinds (event types) among the records up to `seq`."""
        return list(self.session.scalars(sa.select(AuditEvent.event_type).where(AuditEvent.seq <= seq).distinct()))

    def first_seq_of_type_since(self, event_type: str, at: dt.datetime, through: int) -> int | None:
        """The first record of this kind, up to `through`, that occurred after `at`."""
        return self.session.scalar(sa.select(sa.func.min(AuditEvent.seq)).where(
            AuditEvent.event_type == event_type, AuditEvent.occurred_at > at, AuditEvent.seq <= through))

    def chain_range(self, after: int, limit: int) -> tuple[int, int] | None:
        """(first, last): up to `limit` records from the first after `after`, in chain order.  Records are
        linked under the head's lock at commit, so the committed ones are always a gap-free run."""
        seqs = self.session.scalars(sa.select(AuditEvent.seq).where(AuditEvent.seq > after)
                                    .order_by(AuditEvent.seq).limit(limit)).all()
        return (seqs[0], seqs[-1]) if seqs else None

    def archive_lines(self, first: int, last: int) -> Iterator[bytes]:
        """The records first..last in the archive's encoding (audit_chain.archive_line), one line each."""
        q = sa.select(AuditEvent).where(AuditEvent.seq >= first, AuditEvent.seq <= last).order_by(AuditEvent.seq)
        for event in self.session.scalars(q.execution_options(yield_per=2000)):
            yield audit_chain.archive_line(event)

    def details_newest_first(self, event_type: str) -> Iterator[str]:
        """The detail (JSON text) of every record of one type, newest first, streamed."""
        q = sa.select(AuditEvent.detail).where(AuditEvent.event_type == event_type).order_by(AuditEvent.seq.desc())
        yield from self.session.scalars(q.execution_options(yield_per=100))

    # checkpoints
    def newest_anchor(self) -> AuditCheckpoint | None:
        """The newest prune anchor: where the chain that remains starts."""
        return self.session.scalars(sa.select(AuditCheckpoint).where(AuditCheckpoint.reason == PRUNE)
                                    .order_by(AuditCheckpoint.seq.desc()).limit(1)).first()

    def checkpoints_from(self, seq: int) -> Sequence[AuditCheckpoint]:
        """The checkpoints (not prune anchors) at `seq` or later."""
        return self.session.scalars(sa.select(AuditCheckpoint).where(
            AuditCheckpoint.seq >= seq, AuditCheckpoint.reason != PRUNE)).all()

    def newest_checkpoint_at(self) -> dt.datetime | None:
        return self.session.scalar(sa.select(sa.func.max(AuditCheckpoint.created_at)))


class AuditWrites(AuditReads):
    def append(self, *, occurred_at: dt.datetime, event_type: str, result: str, actor: str, detail: str) -> None:
        """A record, chained and inserted when the transaction commits (and never if it rolls back)."""
        audit_chain.append(self.session, occurred_at=occurred_at, event_type=event_type, result=result, actor=actor,
                           detail=detail)

    def add_checkpoint(self, *, seq: int, chain_hash: bytes, reason: str, now: dt.datetime, time_stamp: Any,
                       actor: str, pruned_from: int | None = None,
                       pruned_count: int | None = None) -> AuditCheckpoint:
        checkpoint = AuditCheckpoint(seq=seq, chain_hash=chain_hash, reason=reason, created_at=now,
                                     time_stamp=time_stamp, pruned_from=pruned_from, pruned_count=pruned_count,
                                     actor=actor)
        self.session.add(checkpoint)
        self.session.flush()
        return checkpoint

    def delete_through(self, seq: int) -> None:
        """Delete the records up to and including `seq` (pruning, after an anchor was stamped)."""
        self.session.execute(sa.delete(AuditEvent).where(AuditEvent.seq <= seq))
