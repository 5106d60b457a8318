"""The publication queue: what the LDAP repository should hold, what waits, what was published.

- `queue_states`: per CA entry, what LDAP holds and what waits, as operators see it (read-only:
  `revoca repository queue`, `revoca status` and the status page call it);
- `PublicationReads`: the publisher's reads: the CAs that have an entry, the certificates that
  entry should hold, the due rows, what the database knows about an entry's current list;
- `PublicationWrites`: the publisher's conditional writes on the queue (published, superseded,
  failed with a back-off).  Rows are added by `enqueue_publication` (ca.storage.crl_issuance).

The publisher itself (repository.publisher) does the LDAP work and calls these; callers own
the transaction (ca.storage.engine.session_scope).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa

from ca.enums import CAKind, CertKind, PublicationItem, PublicationState
from ca.errors import NotFound
from ca.storage.crl_issuance import CRLIssuanceReads, CRLIssuanceWrites
from ca.storage.engine import session_scope
from ca.storage.models import Certificate, CertificateAuthority, IssuedCRL, Publication, Revocation

#: The certificates a CA issues to itself that its entry carries as cACertificate.
SELF_ISSUED = (CertKind.SELF_SIGNED, CertKind.LINK_OLD_WITH_NEW, CertKind.LINK_NEW_WITH_OLD)


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
        cas = PublicationReads(session).published_cas()
        rows = session.scalars(sa.select(Publication).where(Publication.state != PublicationState.SUPERSEDED)
                               .order_by(Publication.id)).all()
        by_key: dict[tuple[int, PublicationItem], list[Publication]] = {}
        for row in rows:
            by_key.setdefault((row.ca_id, row.item), []).append(row)
        for ca in cas:
            for item in PublicationItem:
                group = by_key.get((ca.id, item), [])
                if item is PublicationItem.DELTA and not group:
                    continue  # a CA without delta CRLs (none issued yet, or deltas off) has no such line
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


@dataclasses.dataclass(frozen=True, slots=True)
class DueRow:
    """A pending publication with what publishing it needs besides the row."""

    id: int
    ca_id: int
    ca_name: str
    item: PublicationItem
    number: int | None
    sha256: bytes
    attempts: int
    path: str | None  # of the archived CRL/ARL, relative to the data directory


class PublicationReads(CRLIssuanceReads):
    """The publisher's reads; with those of CRL issuance (latest_issued_crls, ...)."""

    # what a CA's directory entry should hold

    def published_cas(self) -> Sequence[CertificateAuthority]:
        """The CAs that have an entry: those revoca runs (external CAs publish their own)."""
        return self.session.scalars(sa.select(CertificateAuthority).where(
            CertificateAuthority.kind != CAKind.EXTERNAL).order_by(CertificateAuthority.id)).all()

    def ca_by_id(self, ca_id: int) -> CertificateAuthority:
        found = self.session.get(CertificateAuthority, ca_id)
        if found is None:
            raise NotFound(f"no CA with id {ca_id}")
        return found

    def entry_certificates(self, ca_id: int, *,
                           now: dt.datetime) -> tuple[Sequence[Certificate], Sequence[Certificate]]:
        """The certificates current at `now` (valid, not revoked) that a CA's entry carries, in id order:
        its self-issued ones (self-signed, links), and the cross certificates it issued or was issued."""
        revoked = sa.select(Revocation.certificate_id)
        current = sa.and_(Certificate.not_after > now, Certificate.not_before <= now,
                          Certificate.id.not_in(revoked))
        own = self.session.scalars(sa.select(Certificate).where(
            Certificate.issuer_ca_id == ca_id, Certificate.subject_ca_id == ca_id,
            Certificate.kind.in_(SELF_ISSUED), current).order_by(Certificate.id)).all()
        crosses = self.session.scalars(sa.select(Certificate).where(
            Certificate.kind == CertKind.CROSS, current,
            sa.or_(Certificate.issuer_ca_id == ca_id, Certificate.subject_ca_id == ca_id)).order_by(
            Certificate.id)).all()
        return own, crosses

    # the queue

    def certificates_pending(self, ca_id: int) -> bool:
        """Whether a certificate publication of the CA is waiting."""
        return self.session.scalar(sa.select(Publication.id).where(
            Publication.ca_id == ca_id, Publication.item == PublicationItem.CERTIFICATES,
            Publication.state == PublicationState.PENDING).limit(1)) is not None

    def list_pending(self, ca_id: int, item: PublicationItem, *, number_at_least: int) -> bool:
        """Whether a CRL or ARL publication of the CA numbered `number_at_least` or higher is waiting."""
        return self.session.scalar(sa.select(Publication.id).where(
            Publication.ca_id == ca_id, Publication.item == item, Publication.number >= number_at_least,
            Publication.state == PublicationState.PENDING).limit(1)) is not None

    def last_certificates_publication(self, ca_id: int) -> Publication | None:
        """The newest certificate publication of the CA that was not superseded (pending or published)."""
        return self.session.scalars(sa.select(Publication).where(
            Publication.ca_id == ca_id, Publication.item == PublicationItem.CERTIFICATES,
            Publication.state != PublicationState.SUPERSEDED).order_by(Publication.id.desc()).limit(1)).first()

    def due(self, now: dt.datetime, *, retry_now: bool = False) -> list[DueRow]:
        """Every pending row due at `now` (`retry_now`: those still backing off too), in id order."""
        due = Publication.state == PublicationState.PENDING
        if not retry_now:
            due = sa.and_(due, Publication.next_attempt_at <= now)
        rows = self.session.execute(
            sa.select(Publication, CertificateAuthority.name, IssuedCRL.path)
            .join(CertificateAuthority, CertificateAuthority.id == Publication.ca_id)
            .outerjoin(IssuedCRL, IssuedCRL.id == Publication.issued_crl_id)
            .where(due).order_by(Publication.id)).all()
        return [DueRow(pub.id, pub.ca_id, ca_name, pub.item, pub.number, pub.sha256, pub.attempts, path)
                for pub, ca_name, path in rows]

    def most_due_attempts(self, now: dt.datetime) -> int | None:
        """The highest attempt count among the rows due at `now`; None when none is due."""
        return self.session.scalar(sa.select(sa.func.max(Publication.attempts)).where(_due_at(now)))

    def last_csn(self, dn: str) -> str | None:
        """The entryCSN recorded after revoca's own last write to the entry at `dn`."""
        return self.session.scalar(sa.select(Publication.csn).where(
            Publication.dn == dn, Publication.csn.is_not(None)).order_by(
            Publication.published_at.desc(), Publication.id.desc()).limit(1))

    def last_published_list(self, ca_id: int, item: PublicationItem, dn: str) -> tuple[int | None, bytes] | None:
        """The number and SHA-256 of the CA's CRL or ARL last published at `dn`, if any."""
        row = self.session.execute(sa.select(Publication.number, Publication.sha256).where(
            Publication.ca_id == ca_id, Publication.item == item, Publication.dn == dn,
            Publication.state == PublicationState.PUBLISHED).order_by(
            Publication.published_at.desc(), Publication.id.desc()).limit(1)).first()
        return (row.number, row.sha256) if row else None

    def crl_publication_history(self, item: PublicationItem = PublicationItem.CRL,
                                ) -> list[tuple[int, dt.datetime, int | None]]:
        """(CA id, published at, number) of every CRL (or, with `item`, ARL) ever in the directory,
        per CA in time order.

        The CRL in the directory at any time is the newest one published by then.  A published row
        later replaced may be marked superseded; it still tells what the directory held before.
        """
        rows = self.session.execute(
            sa.select(Publication.ca_id, Publication.published_at, Publication.number)
            .where(Publication.item == item, Publication.published_at.is_not(None),
                   Publication.state.in_((PublicationState.PUBLISHED, PublicationState.SUPERSEDED)))
            .order_by(Publication.ca_id, Publication.published_at, Publication.number, Publication.id))
        return [(ca_id, published_at, number) for ca_id, published_at, number in rows if published_at is not None]


class PublicationWrites(PublicationReads, CRLIssuanceWrites):
    """The queue's conditional writes; with those of CRL issuance (enqueue_publication, ...)."""

    def supersede_older(self) -> int:
        """Mark superseded the pending rows older than a published row of the same CA and item
        (certificates: an earlier row; lists: a number not above the published one); how many."""
        done = (sa.select(Publication.ca_id, Publication.item, sa.func.max(Publication.id).label("id"),
                          sa.func.max(Publication.number).label("number"))
                .where(Publication.state == PublicationState.PUBLISHED)
                .group_by(Publication.ca_id, Publication.item).subquery())
        older = sa.select(Publication.id).join(done, sa.and_(
            done.c.ca_id == Publication.ca_id, done.c.item == Publication.item)).where(
            Publication.state == PublicationState.PENDING,
            sa.or_(sa.and_(Publication.item == PublicationItem.CERTIFICATES, Publication.id < done.c.id),
                   sa.and_(Publication.item != PublicationItem.CERTIFICATES, Publication.number <= done.c.number)))
        ids = list(self.session.scalars(older))
        if ids:
            # published_at stays empty: the provision history reads it as "in the directory since"
            self.session.execute(sa.update(Publication).where(Publication.id.in_(ids)).values(
                state=PublicationState.SUPERSEDED, last_error="a newer one was published"))
        return len(ids)

    def record_failure(self, publication_id: int, *, error: str, next_attempt_at: dt.datetime) -> None:
        """One more failed attempt of a row, retried at `next_attempt_at`."""
        self.session.execute(sa.update(Publication).where(Publication.id == publication_id).values(
            attempts=Publication.attempts + 1, last_error=error, next_attempt_at=next_attempt_at))

    def postpone_due(self, now: dt.datetime, *, error: str, next_attempt_at: dt.datetime) -> None:
        """One more failed attempt of every row due at `now`, all retried at `next_attempt_at`."""
        self.session.execute(sa.update(Publication).where(_due_at(now)).values(
            attempts=Publication.attempts + 1, last_error=error, next_attempt_at=next_attempt_at))

    def record_outcome(self, publication_id: int, *, state: PublicationState, dn: str, sha256: bytes,
                       now: dt.datetime, note: str = "", csn: str | None = None) -> None:
        """A row published (at `now`, with the entry's entryCSN after the write) or superseded."""
        published = state is PublicationState.PUBLISHED
        self.session.execute(sa.update(Publication).where(Publication.id == publication_id).values(
            state=state, dn=dn, sha256=sha256, published_at=now if published else None, last_error=note, csn=csn))


def _due_at(now: dt.datetime) -> sa.ColumnElement[bool]:
    return sa.and_(Publication.state == PublicationState.PENDING, Publication.next_attempt_at <= now)
