"""The pre-signed OCSP answers' table, as the background signer sees it (issue 16).

ocsp.presigner asks here what needs signing -- a certificate with no answer yet, an answer
signed for another status (a revocation), by another responder certificate, or due for its
refresh -- and writes what it signed, in batches, with one upsert per batch.  Responders read
the table through the speed path in ca.storage.ocsp_lookups (one query: status and stored
answer together).  Certificates are walked by id in pages (keyset), so a pass over a million
rows never holds them all.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ca.storage.engine import Engine, session_scope
from ca.storage.models import Certificate, PresignedResponse, Revocation

P, C, R = PresignedResponse, Certificate, Revocation


@dataclasses.dataclass(frozen=True, slots=True)
class ToSign:
    """A certificate whose answer must be signed: the CA key that issued it, its serial, its status now."""

    ca_id: int
    key_id: int
    serial: int
    revocation_id: int | None  # None: good
    revoked_at: dt.datetime | None
    reason: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class SignedAnswer:
    key_id: int
    serial: int
    ca_id: int
    revocation_id: int | None
    responder_serial: int | None
    this_update: dt.datetime
    next_update: dt.datetime
    refresh_at: dt.datetime
    signed: bytes


def _stale(responder_serial: int | None, now: dt.datetime) -> sa.ColumnElement[bool]:
    """No answer, or one that no longer says what is true, or by another responder, or due."""
    return sa.or_(P.key_id.is_(None), P.refresh_at <= now,
                  P.responder_serial.is_distinct_from(responder_serial), P.revocation_id.is_distinct_from(R.id))


def _joined(columns: Sequence[Any]) -> sa.Select[Any]:
    return (sa.select(*columns).select_from(C)
            .outerjoin(R, sa.and_(R.issuer_ca_id == C.issuer_ca_id, R.serial == C.serial))
            .outerjoin(P, sa.and_(P.key_id == C.issuer_key_id, P.serial == C.serial)))


def _to_sign(row: Sequence[Any]) -> ToSign:
    """(CA id, key id, serial, revocation id, revocation time, reason) -> ToSign."""
    return ToSign(row[0], row[1], row[2], row[3], row[4], row[5])


_WANTED = (C.id, C.issuer_ca_id, C.issuer_key_id, C.serial, R.id, R.revocation_time, R.reason)


class PresignedStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def due_certificates(self, key_id: int, responder_serial: int | None, now: dt.datetime, *, after_id: int = 0,
                         limit: int = 2000) -> tuple[list[ToSign], int]:
        """The next page (by certificate id, after `after_id`) of `key_id`'s unexpired certificates whose
        answer is missing or stale, and the id to continue after (0 when the walk is done).

        Expired certificates are left to on-demand signing: nobody should still rely on them."""
        query = (_joined(_WANTED)
                 .where(C.issuer_key_id == key_id, C.id > after_id, C.not_after > now,
                        _stale(responder_serial, now))
                 .order_by(C.id).limit(limit))
        with session_scope(self.engine, readonly=True) as session:
            rows = session.execute(query).all()
        found = [_to_sign(r[1:]) for r in rows]
        return found, (int(rows[-1][0]) if len(rows) == limit else 0)

    def revoked_since(self, after_id: int, now: dt.datetime, *, limit: int = 2000) -> tuple[list[ToSign], int, int]:
        """Revocations with id above `after_id` whose answer does not say so yet (any key, any
        responder), the id of the last of them (`after_id` if none) and the highest revocation id."""
        query = (sa.select(R.id, C.issuer_ca_id, C.issuer_key_id, C.serial, R.id, R.revocation_time, R.reason)
                 .select_from(R)
                 .join(C, sa.and_(C.issuer_ca_id == R.issuer_ca_id, C.serial == R.serial))
                 .outerjoin(P, sa.and_(P.key_id == C.issuer_key_id, P.serial == C.serial))
                 .where(R.id > after_id, C.not_after > now,
                        sa.or_(P.key_id.is_(None), P.revocation_id.is_distinct_from(R.id)))
                 .order_by(R.id).limit(limit))
        with session_scope(self.engine, readonly=True) as session:
            rows = session.execute(query).all()
            top = session.scalar(sa.select(sa.func.max(R.id))) or 0
        return [_to_sign(r[1:]) for r in rows], (int(rows[-1][0]) if rows else after_id), int(top)

    def due_refresh(self, now: dt.datetime, key_ids: Sequence[int], *, limit: int = 2000) -> list[ToSign]:
        """Answers of `key_ids` whose refresh time has come (oldest first), with their certificates'
        status now (a key without a responder would otherwise keep its due answers first in line)."""
        if not key_ids:
            return []
        query = (sa.select(C.issuer_ca_id, C.issuer_key_id, C.serial, R.id, R.revocation_time, R.reason)
                 .select_from(P)
                 .join(C, sa.and_(C.issuer_ca_id == P.ca_id, C.serial == P.serial, C.issuer_key_id == P.key_id))
                 .outerjoin(R, sa.and_(R.issuer_ca_id == C.issuer_ca_id, R.serial == C.serial))
                 .where(P.refresh_at <= now, P.key_id.in_(list(key_ids)), C.not_after > now)
                 .order_by(P.refresh_at).limit(limit))
        with session_scope(self.engine, readonly=True) as session:
            return [_to_sign(r) for r in session.execute(query).all()]

    def max_certificate_id(self) -> int:
        with session_scope(self.engine, readonly=True) as session:
            return session.scalar(sa.select(sa.func.max(C.id))) or 0

    def upsert(self, answers: Sequence[SignedAnswer]) -> None:
        """Write a batch in one transaction: new answers inserted, existing ones replaced."""
        if not answers:
            return
        values = [dataclasses.asdict(a) for a in answers]
        insert = postgresql.insert(P) if self.engine.dialect.name == "postgresql" else sqlite.insert(P)
        statement = insert.on_conflict_do_update(
            index_elements=[P.key_id, P.serial],
            set_={name: insert.excluded[name] for name in ("revocation_id", "responder_serial", "this_update",
                                                           "next_update", "refresh_at", "signed")})
        with session_scope(self.engine) as session:
            session.execute(statement, values)

    def size(self) -> tuple[int, int]:
        """(answers stored, bytes of their signed parts): what the table costs, indexes aside."""
        with session_scope(self.engine, readonly=True) as session:
            count, total = session.execute(sa.select(sa.func.count(), sa.func.sum(sa.func.length(P.signed)))).one()
        return int(count or 0), int(total or 0)
