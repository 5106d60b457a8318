"""The queries of CRL/ARL issuance (ca.crl): the signing key, the CRL number counter, the
entry stream, the archive of issued lists, and the outbox entry that hands a list to the
publisher.

`CRLIssuanceReads` only reads; `CRLIssuanceWrites` adds the writes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Generator, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import Insert as PostgresqlInsert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import Insert as SQLiteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ca.enums import ListType, PublicationItem, PublicationState
from ca.errors import AlreadyExists, NotFound
from ca.storage.base import SessionStore
from ca.storage.models import CertificateAuthority, CRLCounter, IssuedCRL, KeyGeneration, Publication, Revocation


class CRLIssuanceReads(SessionStore):
    def crl_signing_key(self, ca: CertificateAuthority) -> KeyGeneration:
        """The CA's newest key held in the token: it signs the CA's CRL and ARL.

        Not `current_key`: a key compromise marks the newest key compromised, and that key still
        signs the CRL and ARL announcing it (seed 004 4.9.12) until the CA has a new key.
        """
        key = self.session.scalar(
            sa.select(KeyGeneration).where(KeyGeneration.ca_id == ca.id, KeyGeneration.key_label.is_not(None))
            .order_by(KeyGeneration.generation.desc()).limit(1))
        if key is None:
            raise NotFound(f"CA {ca.name} has no key in the token to sign a CRL with")
        return key

    def crl_entry_chunks(self, ca_id: int, list_type: ListType, *, after_id: int, up_to_id: int,
                         rows: int = 20_000) -> Generator[list[bytes], None, None]:
        """The pre-encoded entries of one CA's CRL or ARL with after_id < id <= up_to_id, in id order.

        A raw DB-API cursor, not the ORM: a million revocations must not become a million
        objects.  PostgreSQL gets a server-side (named) cursor so rows stay on the server until
        fetched; SQLite steps its cursor lazily anyway.  `rows` entries at a time; a NULL
        entry_der comes through as None for the caller to deal with.
        """
        connection = self.session.connection()
        raw = connection.connection.driver_connection
        sql = ("SELECT entry_der FROM revocations WHERE issuer_ca_id = {0} AND list_type = {0} "
               "AND id > {0} AND id <= {0} ORDER BY id")
        if connection.dialect.name == "postgresql":
            name = f"crl_entries_{ca_id}_{list_type.value}"
            binary = {"binary": True} if connection.dialect.driver == "psycopg" else {}
            cursor = raw.cursor(name, **binary)  # type: ignore[union-attr]
            sql = sql.format("%s")
        else:
            cursor = raw.cursor()  # type: ignore[union-attr]
            sql = sql.format("?")
        try:
            cursor.execute(sql, (ca_id, list_type.value, after_id, up_to_id))
            while batch := cursor.fetchmany(rows):
                yield [row[0] for row in batch]
        finally:
            cursor.close()

    def last_crl_entry_id(self, ca_id: int, list_type: ListType) -> int:
        """The highest revocation id on one CA's CRL or ARL (0 if none): the stream's upper bound."""
        return self.session.scalar(sa.select(sa.func.max(Revocation.id)).where(
            Revocation.issuer_ca_id == ca_id, Revocation.list_type == list_type)) or 0

    def count_crl_entries(self, ca_id: int, list_type: ListType, *, up_to_id: int) -> int:
        return self.session.scalar(sa.select(sa.func.count()).select_from(Revocation).where(
            Revocation.issuer_ca_id == ca_id, Revocation.list_type == list_type, Revocation.id <= up_to_id)) or 0

    def issued_crls(self, *, ca: CertificateAuthority | None = None, list_type: ListType | None = None,
                    limit: int | None = None) -> Sequence[IssuedCRL]:
        """The archive, newest first."""
        q = sa.select(IssuedCRL).order_by(IssuedCRL.this_update.desc(), IssuedCRL.id.desc())
        if ca is not None:
            q = q.where(IssuedCRL.ca_id == ca.id)
        if list_type is not None:
            q = q.where(IssuedCRL.list_type == list_type)
        return self.session.scalars(q.limit(limit)).all()

    def issued_crl(self, ca: CertificateAuthority, list_type: ListType, number: int | None = None) -> IssuedCRL:
        """One archived CRL or ARL by number; the newest when no number is given."""
        q = sa.select(IssuedCRL).where(IssuedCRL.ca_id == ca.id, IssuedCRL.list_type == list_type)
        q = q.where(IssuedCRL.number == number) if number is not None else q.order_by(IssuedCRL.number.desc())
        found = self.session.scalar(q.limit(1))
        if found is None:
            which = f"number {number}" if number is not None else "yet"
            raise NotFound(f"CA {ca.name} has no {list_type.value.upper()} {which}; issue one with `revoca crl issue`")
        return found

    def latest_issued_crls(self) -> dict[tuple[int, ListType], IssuedCRL]:
        """The newest archived CRL and ARL of every CA, keyed by (CA id, list type)."""
        top = (sa.select(IssuedCRL.ca_id, IssuedCRL.list_type, sa.func.max(IssuedCRL.number).label("number"))
               .group_by(IssuedCRL.ca_id, IssuedCRL.list_type).subquery())
        rows = self.session.scalars(sa.select(IssuedCRL).join(top, sa.and_(
            IssuedCRL.ca_id == top.c.ca_id, IssuedCRL.list_type == top.c.list_type,
            IssuedCRL.number == top.c.number)))
        return {(row.ca_id, row.list_type): row for row in rows}

    def archived_numbers(self, ca_id: int, list_type: ListType) -> set[int]:
        """Every number archived for one CA and list."""
        return set(self.session.scalars(sa.select(IssuedCRL.number)
                                        .where(IssuedCRL.ca_id == ca_id, IssuedCRL.list_type == list_type)))

    def latest_this_update(self, ca_id: int, list_type: ListType) -> dt.datetime | None:
        """The latest thisUpdate archived for one CA and list (None before the first)."""
        return self.session.scalar(sa.select(sa.func.max(IssuedCRL.this_update))
                                   .where(IssuedCRL.ca_id == ca_id, IssuedCRL.list_type == list_type))

    def crl_next_updates(self) -> dict[int, dt.datetime]:
        """The latest nextUpdate of each CA's CRLs (not ARLs), keyed by CA id: OCSP's nextUpdate."""
        rows = self.session.execute(sa.select(IssuedCRL.ca_id, sa.func.max(IssuedCRL.next_update))
                                    .where(IssuedCRL.list_type == ListType.CRL).group_by(IssuedCRL.ca_id)).all()
        return {ca_id: next_update for ca_id, next_update in rows}


class CRLIssuanceWrites(CRLIssuanceReads):
    def allocate_crl_number(self, ca_id: int, list_type: ListType) -> int:
        """The next CRL number of one CA and list; the caller commits it before signing anything.

        The UPDATE takes the counter row's lock (PostgreSQL row lock, SQLite's single writer) until
        the caller's transaction ends, so two issuers never get the same number; and since the
        number is committed before the CRL is signed, a crash afterwards leaves a gap in the
        numbers but never hands the same number out twice.
        """
        inserts: dict[str, Callable[[type[CRLCounter]], PostgresqlInsert | SQLiteInsert]] = {
            "postgresql": postgresql_insert, "sqlite": sqlite_insert}
        insert = inserts[self.session.get_bind().dialect.name]
        self.session.execute(insert(CRLCounter).values(ca_id=ca_id, list_type=list_type, last_number=0)
                             .on_conflict_do_nothing())
        number = self.session.scalar(
            sa.update(CRLCounter).where(CRLCounter.ca_id == ca_id, CRLCounter.list_type == list_type)
            .values(last_number=CRLCounter.last_number + 1).returning(CRLCounter.last_number))
        archived = self.session.scalar(sa.select(sa.func.max(IssuedCRL.number)).where(
            IssuedCRL.ca_id == ca_id, IssuedCRL.list_type == list_type))
        if number is None or (archived is not None and number <= archived):
            raise AlreadyExists(f"CRL counter of CA id {ca_id} ({list_type.value}) is at {number} but number "
                                f"{archived} is already archived; was the database restored from a backup?")
        return number

    def fill_missing_crl_entries(self, ca_id: int, list_type: ListType,
                                 encode: Callable[[int, dt.datetime, int], bytes]) -> int:
        """Encode entry_der where a revocation was stored without it; returns how many."""
        rows = self.session.execute(sa.select(Revocation.id, Revocation.serial, Revocation.revocation_time,
                                              Revocation.reason).where(
            Revocation.issuer_ca_id == ca_id, Revocation.list_type == list_type,
            Revocation.entry_der.is_(None))).all()
        for row in rows:
            self.session.execute(sa.update(Revocation).where(Revocation.id == row.id).values(
                entry_der=encode(row.serial, row.revocation_time, row.reason)))
        return len(rows)

    def add_issued_crl(self, *, ca_id: int, list_type: ListType, number: int, signing_key_id: int,
                       this_update: dt.datetime, next_update: dt.datetime, entries: int, size: int,
                       sha256: bytes, path: str, now: dt.datetime) -> IssuedCRL:
        row = IssuedCRL(ca_id=ca_id, list_type=list_type, number=number, signing_key_id=signing_key_id,
                        this_update=this_update, next_update=next_update, entries=entries, size=size,
                        sha256=sha256, path=path, created_at=now)
        self.session.add(row)
        self.session.flush()
        return row

    def enqueue_publication(self, *, ca_id: int, item: PublicationItem, sha256: bytes, now: dt.datetime,
                            issued_crl_id: int | None = None, number: int | None = None) -> Publication:
        """Queue something for the LDAP repository; the publisher takes it from here."""
        row = Publication(ca_id=ca_id, item=item, issued_crl_id=issued_crl_id, number=number, sha256=sha256,
                          state=PublicationState.PENDING, attempts=0, next_attempt_at=now, last_error="",
                          enqueued_at=now)
        self.session.add(row)
        self.session.flush()
        return row
