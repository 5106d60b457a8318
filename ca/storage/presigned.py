"""The pre-signed OCSP answers' table, as the background signer sees it (issue 16).

ocsp.presigner asks here what needs signing -- a certificate with no answer yet, an answer
signed for another status (a revocation), by another responder certificate, or due for its
refresh -- and writes what it signed, in batches, with one upsert per batch.  Responders read
the table through the speed path in ca.storage.ocsp_lookups (one query: status and stored
answer together).  Certificates are walked by id in pages (keyset), so a pass over a million
rows never holds them all.

Also here, for `revoca status` and /metrics (which may not import the responder's package):
how fresh the answers a responder would serve are (`oldest_servable`, the rule of
ocsp.presigned, whose timings are defined here), and the pruning of the answers of expired
certificates (`prune_expired`), which responders answer from the certificate row, signed on demand.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased

from ca.enums import CertKind
from ca.errors import PermissionDenied
from ca.storage.engine import Engine, session_scope
from ca.storage.models import Certificate, PresignedResponse, Revocation

P, C, R = PresignedResponse, Certificate, Revocation

REFRESH = dt.timedelta(hours=12)  # signed again at least this often: twice a day, as the CRL once
SERVE_MARGIN = dt.timedelta(hours=1)  # never served with less validity left than this
INSUFFICIENT_PRIVILEGE = "42501"  # PostgreSQL's SQLSTATE for a privilege the role lacks


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
class ServableAge:
    """The stored answer a responder would serve that is due for its refresh first: when it was
    signed and when the signer means to sign it again (ocsp.presigned.refresh_at)."""

    this_update: dt.datetime
    refresh_at: dt.datetime

    def age(self, now: dt.datetime) -> dt.timedelta:
        return now - self.this_update

    @property
    def target(self) -> dt.timedelta:
        """How old it may grow before it is signed again."""
        return self.refresh_at - self.this_update


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

    def signs_ahead(self) -> bool:
        """Whether any answer is stored: this installation runs `revoca serve ocsp-signer` (one that
        never did has its responders sign every answer, and no signer to miss)."""
        with session_scope(self.engine, readonly=True) as session:
            return session.scalar(sa.select(P.key_id).limit(1)) is not None

    def oldest_servable(self, now: dt.datetime, *, ca_signed: bool = False) -> ServableAge | None:
        """Of the answers a responder would serve at `now` (ocsp.presigned.usable: the status it
        reads now, current, at least SERVE_MARGIN before nextUpdate, by a responder certificate
        that is valid and unrevoked now -- or by the CA key itself when `ca_signed`), the one whose
        refresh is due first; None when none would be served.  Walks the refresh_at index from
        its low end, so a signer that keeps up makes this one short read."""
        responder, revoked = aliased(Certificate), aliased(Revocation)
        valid_responder = sa.exists().where(
            responder.kind == CertKind.OCSP_RESPONDER, responder.issuer_key_id == P.key_id,
            responder.serial == P.responder_serial, responder.not_before <= now, responder.not_after > now,
            ~sa.exists().where(revoked.certificate_id == responder.id))
        signed_by = sa.or_(valid_responder, P.responder_serial.is_(None)) if ca_signed else valid_responder
        query = (sa.select(P.this_update, P.refresh_at).select_from(P)
                 .join(C, sa.and_(C.issuer_key_id == P.key_id, C.serial == P.serial))
                 .outerjoin(R, sa.and_(R.issuer_ca_id == C.issuer_ca_id, R.serial == C.serial))
                 .where(P.this_update <= now, P.next_update > now + SERVE_MARGIN,
                        P.revocation_id.is_not_distinct_from(R.id), signed_by)
                 .order_by(P.refresh_at).limit(1))
        with session_scope(self.engine, readonly=True) as session:
            row = session.execute(query).first()
        return None if row is None else ServableAge(_utc(row[0]), _utc(row[1]))

    def prune_expired(self, now: dt.datetime, *, limit: int = 2000) -> int:
        """Delete up to `limit` answers of certificates past notAfter at `now`; how many went.

        RFC 6960 lets a responder not answer for expired certificates; revoca still does, from
        the certificate row, signed on demand (ocsp.responder), so nothing a verifier gets
        changes: the table only stops carrying rows nobody should rely on.  PermissionDenied
        when the database role may not delete here (PostgreSQL roles granted by a revoca from before
        ca.storage.grants gave revoca_ocsp DELETE on this table)."""
        expired = (sa.select(P.key_id, P.serial).select_from(P)
                   .join(C, sa.and_(C.issuer_key_id == P.key_id, C.serial == P.serial))
                   .where(C.not_after <= now).limit(limit))
        statement = sa.delete(P).where(sa.tuple_(P.key_id, P.serial).in_(expired))
        try:
            with session_scope(self.engine) as session:
                return int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]
        except sa.exc.ProgrammingError as exc:
            if getattr(exc.orig, "sqlstate", None) == INSUFFICIENT_PRIVILEGE:
                raise PermissionDenied(f"this database role may not delete from ocsp_presigned: {exc.orig}") from exc
            raise

    def size(self) -> tuple[int, int]:
        """(answers stored, bytes of their signed parts): what the table costs, indexes aside."""
        with session_scope(self.engine, readonly=True) as session:
            count, total = session.execute(sa.select(sa.func.count(), sa.func.sum(sa.func.length(P.signed)))).one()
        return int(count or 0), int(total or 0)


def _utc(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
