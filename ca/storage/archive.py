"""Queries of the archive (seed 004 5.5): which items wait to be stamped, the stamps of each
round, and the items themselves for verification and export.

Items are named by type ("certificate", "crl", "revocation-request", "online-request",
"audit-checkpoint", "provision-report"; the history ranges are ca.storage.history's tables under ca.archive's
names; "audit-log" ranges are copies of audit records, kept in audit_archive so that they
outlive a prune).  `ArchiveReads` only reads (verify, export); `ArchiveWrites` keeps the
stamps of a round and the audit copies.  Callers own the transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from ca.enums import CertKind, RequestStatus
from ca.errors import NotFound
from ca.storage.base import SessionStore
from ca.storage.models import (
    ArchiveStamp,
    AuditArchive,
    AuditCheckpoint,
    Certificate,
    IssuedCRL,
    ProvisionReport,
    RevocationRequest,
    TimeStamp,
)

AUDIT_LOG = "audit-log"  # ranges of audit records (by seq), copied into audit_archive
AUDIT_CHECKPOINT = "audit-checkpoint"


@dataclasses.dataclass(frozen=True)
class _Stampable:
    model: Any
    ready: Any  # the WHERE clause of rows that may be stamped now, or None for every row


# A revocation request is stamped once it is decided and can no longer change.
_SINGLES = {
    "certificate": _Stampable(Certificate, None),
    "crl": _Stampable(IssuedCRL, None),
    "revocation-request": _Stampable(RevocationRequest, RevocationRequest.status.in_(
        [RequestStatus.COMPLETED, RequestStatus.REJECTED])),
    # the subscriber's signed online request, as received (seed 004 5.5.1.2)
    "online-request": _Stampable(RevocationRequest, RevocationRequest.signed_request.is_not(None)),
    AUDIT_CHECKPOINT: _Stampable(AuditCheckpoint, None),
    # the monthly provision status reports (seed 004 5.5.1.1, 9.3.3), each version as made
    "provision-report": _Stampable(ProvisionReport, None),
}


@dataclasses.dataclass(frozen=True)
class NewStamp:
    """One item of a round before it is kept: type, id (or first id of a range), last id, digest."""

    item_type: str
    item_id: int
    last_item_id: int | None
    digest: bytes


class ArchiveReads(SessionStore):
    def unstamped(self, item_type: str, limit: int) -> list[Any]:
        """Up to `limit` rows of one item type that may be stamped and have not been, in id order."""
        kind = _SINGLES[item_type]
        stamped = sa.select(ArchiveStamp.id).where(ArchiveStamp.item_type == item_type,
                                                   ArchiveStamp.item_id == kind.model.id)
        q = sa.select(kind.model).where(~stamped.exists())
        if kind.ready is not None:
            q = q.where(kind.ready)
        return list(self.session.scalars(q.order_by(kind.model.id).limit(limit)))

    def item(self, item_type: str, item_id: int) -> Any:
        row = self.session.get(_SINGLES[item_type].model, item_id)
        if row is None:
            raise NotFound(f"no {item_type} with id {item_id}")
        return row

    def last_stamped_id(self, item_type: str) -> int:
        """The last row id of a history range type that a stamp covers (0 if none)."""
        return self.session.scalar(sa.select(sa.func.max(ArchiveStamp.last_item_id))
                                   .where(ArchiveStamp.item_type == item_type)) or 0

    def stamp_of(self, item_type: str, item_id: int) -> ArchiveStamp | None:
        return self.session.scalars(sa.select(ArchiveStamp).where(
            ArchiveStamp.item_type == item_type, ArchiveStamp.item_id == item_id)).first()

    def stamp_covering(self, item_type: str, row_id: int) -> ArchiveStamp | None:
        """The stamp of the history range that holds row `row_id`."""
        return self.session.scalars(sa.select(ArchiveStamp).where(
            ArchiveStamp.item_type == item_type, ArchiveStamp.item_id <= row_id,
            ArchiveStamp.last_item_id >= row_id)).first()

    def round_stamps(self, time_stamp_id: int) -> Sequence[ArchiveStamp]:
        """Every stamp that shares one token, in id order: the round's manifest."""
        return self.session.scalars(sa.select(ArchiveStamp).where(ArchiveStamp.time_stamp_id == time_stamp_id)
                                    .order_by(ArchiveStamp.id)).all()

    def round_tokens(self) -> Iterator[TimeStamp]:
        """The tokens of every stamping round, oldest first."""
        yield from self.session.scalars(sa.select(TimeStamp).where(TimeStamp.id.in_(
            sa.select(ArchiveStamp.time_stamp_id))).order_by(TimeStamp.id))

    def unarchived_checkpoints_through(self, seq: int) -> int:
        """How many checkpoints at `seq` or before have no archive stamp yet."""
        stamped = sa.select(ArchiveStamp.id).where(ArchiveStamp.item_type == AUDIT_CHECKPOINT,
                                                   ArchiveStamp.item_id == AuditCheckpoint.id)
        return self.session.scalar(sa.select(sa.func.count()).select_from(AuditCheckpoint).where(
            AuditCheckpoint.seq <= seq, ~stamped.exists())) or 0

    def audit_copy(self, first_seq: int) -> AuditArchive:
        """The archived copy of the audit records from `first_seq`."""
        copy = self.session.scalars(sa.select(AuditArchive).where(AuditArchive.first_seq == first_seq)).one_or_none()
        if copy is None:
            raise NotFound(f"no archived copy of the audit records from seq {first_seq}")
        return copy

    def audit_copy_after(self, seq: int) -> AuditArchive | None:
        """The first copy of records after `seq` (one made but not yet stamped)."""
        return self.session.scalars(sa.select(AuditArchive).where(AuditArchive.first_seq > seq)
                                    .order_by(AuditArchive.first_seq).limit(1)).first()

    def self_signed_ders(self) -> Sequence[bytes]:
        """Every CA's self-signed certificates: the trust anchors an exported bundle is checked with."""
        return self.session.scalars(sa.select(Certificate.der).where(Certificate.kind == CertKind.SELF_SIGNED)).all()


class ArchiveWrites(ArchiveReads):
    def add_round(self, time_stamp: Any, stamps: Iterable[NewStamp]) -> list[ArchiveStamp]:
        """Keep the stamps of one round, all under the token that covers their manifest."""
        rows = [ArchiveStamp(item_type=s.item_type, item_id=s.item_id, last_item_id=s.last_item_id, digest=s.digest,
                             time_stamp=time_stamp) for s in stamps]
        self.session.add_all(rows)
        self.session.flush()
        return rows

    def keep_audit_copy(self, *, first_seq: int, last_seq: int, body: bytes, now: Any) -> AuditArchive:
        copy = AuditArchive(first_seq=first_seq, last_seq=last_seq, body=body, created_at=now)
        self.session.add(copy)
        self.session.flush()
        return copy
