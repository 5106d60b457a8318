"""The publication queue as operators see it: per CA entry, what LDAP holds and what waits.

Read-only: `revoca repository queue`, `revoca status` and the status page call it; the
publisher itself (repository.publisher) works the queue.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa

from ca.storage.engine import session_scope
from ca.storage.models import CAKind, CertificateAuthority, Publication, PublicationItem, PublicationState


@dataclasses.dataclass(frozen=True)
class QueueState:
    """Per CA and item: what the directory holds (as far as revoca knows) and what waits."""

    ca_name: str
    item: PublicationItem
    published_number: int | None
    published_at: dt.datetime | None
    pending: int
    oldest_pending: dt.datetime | None
    attempts: int
    next_attempt_at: dt.datetime | None
    last_error: str

    def line(self) -> str:
        what = f"{self.ca_name} {self.item.value}"
        if self.published_at is None:
            done = "never published"
        elif self.published_number is not None:
            done = f"#{self.published_number} published {self.published_at:%Y-%m-%d %H:%M:%SZ}"
        else:
            done = f"published {self.published_at:%Y-%m-%d %H:%M:%SZ}"
        if not self.pending:
            return f"{what}: {done}"
        waiting = f"{self.pending} waiting since {self.oldest_pending:%Y-%m-%d %H:%M:%SZ}"
        if self.attempts:
            waiting += f", {self.attempts} attempts, next {self.next_attempt_at:%H:%M:%SZ}: {self.last_error}"
        return f"{what}: {done}; {waiting}"


def queue_states(engine: sa.Engine) -> list[QueueState]:
    """The publication state of every CA entry, for `revoca repository queue` and the status page."""
    out = []
    with session_scope(engine, readonly=True) as session:
        cas = session.scalars(sa.select(CertificateAuthority).where(
            CertificateAuthority.kind != CAKind.EXTERNAL).order_by(CertificateAuthority.id)).all()
        rows = session.scalars(sa.select(Publication).where(Publication.state != PublicationState.SUPERSEDED)
                               .order_by(Publication.id)).all()
        by_key: dict[tuple[int, PublicationItem], list[Publication]] = {}
        for row in rows:
            by_key.setdefault((row.ca_id, row.item), []).append(row)
        for ca in cas:
            for item in PublicationItem:
                group = by_key.get((ca.id, item), [])
                done = [r for r in group if r.state is PublicationState.PUBLISHED]
                last = max(done, key=lambda r: (r.published_at, r.id)) if done else None
                waiting = [r for r in group if r.state is PublicationState.PENDING]
                head = waiting[0] if waiting else None
                out.append(QueueState(
                    ca.name, item, last.number if last else None, last.published_at if last else None,
                    len(waiting), head.enqueued_at if head else None, max((r.attempts for r in waiting), default=0),
                    min((r.next_attempt_at for r in waiting), default=None),
                    next((r.last_error for r in reversed(waiting) if r.last_error), "")))
    return out
