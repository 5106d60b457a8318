"""The queries of CRL/ARL issuance (ca.crl): the signing key, the CRL number counter, the
entry stream, the archive of issued lists, and the outbox entry that hands a list to the
publisher.

`CRLIssuanceReads` only reads; `CRLIssuanceWrites` adds the writes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Collection, Generator, Iterator, Sequence
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import Insert as PostgresqlInsert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import Insert as SQLiteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ca.enums import ListType, PublicationItem, PublicationState
from ca.errors import AlreadyExists, NotFound
from ca.storage.base import SessionStore
from ca.storage.models import CertificateAuthority, CRLCounter, IssuedCRL, KeyGeneration, Publication, Revocation

# The lists that share one CRL number counter (the first names the counter row).
SEQUENCES: dict[ListType, tuple[ListType, ...]] = {
    ListType.CRL: (ListType.CRL, ListType.DELTA),
    ListType.DELTA: (ListType.CRL, ListType.DELTA),
    ListType.ARL: (ListType.ARL,),
}


class IssuedListView(Protocol):
    """What a reader of the archive of issued lists (`revoca crl list`) sees of one: the stored
    IssuedCRL row, read-only, without naming the row type outside the storage layer."""

    @property
    def ca_id(self) -> int: ...
    @property
    def list_type(self) -> ListType: ...
    @property
    def number(self) -> int: ...
    @property
    def this_update(self) -> dt.datetime: ...
    @property
    def next_update(self) -> dt.datetime: ...
    @property
    def entries(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def sha256(self) -> bytes: ...
    @property
    def path(self) -> str: ...


class JoinedEntries(Sequence[bytes]):
    """`count` CRL entries already concatenated: len() is the count, iterating gives the bytes once
    (so b"".join(chunk) is the bytes, as for a list of entries)."""

    __slots__ = ("_blob", "_entries")

    def __init__(self, blob: bytes, entries: int) -> None:
        self._blob = blob
        self._entries = entries

    def __len__(self) -> int:
        return self._entries

    def __iter__(self) -> Iterator[bytes]:
        yield self._blob

    def __getitem__(self, index: Any) -> Any:
        raise TypeError("JoinedEntries holds its entries as one byte string; join it")


@dataclasses.dataclass(frozen=True, slots=True)
class DeltaState:
    """One CA's delta CRL situation: `delta_this_update` is None when no delta follows the newest
    base yet; `waiting` counts the revocations no list holds yet."""

    ca_id: int
    ca_name: str
    base_number: int
    delta_number: int | None
    delta_this_update: dt.datetime | None
    waiting: int


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
                         rows: int = 20_000) -> Generator[Sequence[bytes | None], None, None]:
        """The pre-encoded entries of one CA's CRL or ARL with after_id < id <= up_to_id, in id order.

        Each chunk is `rows` entries concatenated by the database itself (SQLite group_concat,
        PostgreSQL string_agg), handed over as one `JoinedEntries` (len() is the entry count,
        b"".join() the bytes): a million revocations are 50 values crossing into Python, not a
        million rows, each a tuple and a bytes object (issue 16: that was the larger part of
        issuing a 1M-entry CRL).  Chunks are read by keyset (id > the last one's highest) in the
        caller's transaction, which holds one snapshot.  A chunk with a NULL entry_der is read
        again row by row, so that the caller sees the None and deals with it.
        """
        connection = self.session.connection()
        raw = connection.connection.driver_connection
        if connection.dialect.name == "postgresql":
            mark, joined = "%s", "string_agg(entry_der, ''::bytea ORDER BY id)"
        else:  # SQLite keeps the subquery's order in the aggregate, and passes blobs through group_concat
            # unchanged in a UTF-8 database, as revoca makes them (both tested against a row-by-row stream)
            mark, joined = "?", "CAST(group_concat(entry_der, '') AS BLOB)"
        window = (f"SELECT id, entry_der FROM revocations WHERE issuer_ca_id = {mark} AND list_type = {mark} "
                  f"AND id > {mark} AND id <= {mark} ORDER BY id LIMIT {int(rows)}")
        sql = f"SELECT {joined}, count(*), count(entry_der), max(id) FROM ({window}) AS chunk"
        cursor = raw.cursor()  # type: ignore[union-attr]
        try:
            last = after_id
            while True:
                cursor.execute(sql, (ca_id, list_type.value, last, up_to_id))
                blob, count, present, top = cursor.fetchone()
                if not count:
                    return
                if present != count:
                    cursor.execute(window, (ca_id, list_type.value, last, up_to_id))
                    yield [row[1] for row in cursor.fetchall()]
                else:
                    yield JoinedEntries(bytes(blob), count)
                last = top
        finally:
            cursor.close()

    def last_crl_entry_id(self, ca_id: int, list_type: ListType) -> int:
        """The highest revocation id on one CA's CRL or ARL (0 if none): the stream's upper bound."""
        return self.session.scalar(sa.select(sa.func.max(Revocation.id)).where(
            Revocation.issuer_ca_id == ca_id, Revocation.list_type == list_type)) or 0

    def count_crl_entries(self, ca_id: int, list_type: ListType, *, up_to_id: int) -> int:
        return self.session.scalar(sa.select(sa.func.count()).select_from(Revocation).where(
            Revocation.issuer_ca_id == ca_id, Revocation.list_type == list_type, Revocation.id <= up_to_id)) or 0

    def count_crl_entries_after(self, ca_id: int, list_type: ListType, *, after_id: int) -> int:
        """How many rows of one CA's list have an id above `after_id` (a delta's burst check)."""
        return self.session.scalar(sa.select(sa.func.count()).select_from(Revocation).where(
            Revocation.issuer_ca_id == ca_id, Revocation.list_type == list_type, Revocation.id > after_id)) or 0

    def late_crl_entries(self, ca_id: int, list_type: ListType, *, up_to_id: int,
                         recorded_since: dt.datetime) -> list[bytes | None]:
        """Entries with id <= `up_to_id` recorded since `recorded_since`: on PostgreSQL a row can
        commit after a list's snapshot with an id below the list's highest (ids are handed out
        before commit); a delta CRL then lists these too (listing one the base also has is harmless)."""
        return list(self.session.scalars(sa.select(Revocation.entry_der).where(
            Revocation.issuer_ca_id == ca_id, Revocation.list_type == list_type, Revocation.id <= up_to_id,
            Revocation.recorded_at >= recorded_since).order_by(Revocation.id)))

    def delta_states(self) -> list[DeltaState]:
        """Per CA with a complete CRL: its newest CRL and delta, and how many revocations wait
        after the newest of the two snapshots (what the scheduler decides a delta on)."""
        out = []
        for ca in self.session.scalars(sa.select(CertificateAuthority).order_by(CertificateAuthority.id)):
            key_id = self.session.scalar(
                sa.select(KeyGeneration.id).where(KeyGeneration.ca_id == ca.id, KeyGeneration.key_label.is_not(None))
                .order_by(KeyGeneration.generation.desc()).limit(1))  # as crl_signing_key
            base = self.newest_issued(ca.id, ListType.CRL, signing_key_id=key_id) if key_id is not None else None
            if base is None or base.revocations_through is None:
                continue
            delta = self.newest_issued(ca.id, ListType.DELTA)
            fresh = delta is not None and delta.number > base.number and delta.revocations_through is not None
            since = delta.revocations_through if fresh and delta is not None else base.revocations_through
            out.append(DeltaState(
                ca_id=ca.id, ca_name=ca.name, base_number=base.number,
                delta_number=delta.number if delta is not None else None,
                delta_this_update=delta.this_update if fresh and delta is not None else None,
                waiting=self.count_crl_entries_after(ca.id, ListType.CRL, after_id=since or 0)))
        return out

    def newest_issued(self, ca_id: int, list_type: ListType, *, signing_key_id: int | None = None) -> IssuedCRL | None:
        """The archived list of one CA and type with the highest number (signed by `signing_key_id`
        when given): a delta's base, or the last delta."""
        q = sa.select(IssuedCRL).where(IssuedCRL.ca_id == ca_id, IssuedCRL.list_type == list_type)
        if signing_key_id is not None:
            q = q.where(IssuedCRL.signing_key_id == signing_key_id)
        return self.session.scalar(q.order_by(IssuedCRL.number.desc()).limit(1))

    def issued_crls(self, *, ca: CertificateAuthority | None = None, list_types: Collection[ListType] | None = None,
                    limit: int | None = None) -> Sequence[IssuedCRL]:
        """The archive, newest first; of these list types only, when given."""
        q = sa.select(IssuedCRL).order_by(IssuedCRL.this_update.desc(), IssuedCRL.id.desc())
        if ca is not None:
            q = q.where(IssuedCRL.ca_id == ca.id)
        if list_types is not None:
            q = q.where(IssuedCRL.list_type.in_(list_types))
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
        # a delta CRL takes its number from the CRL's sequence (RFC 5280 5.2.4), so a delta and
        # the complete CRLs around it are ordered by number, as verifiers expect
        sequence = SEQUENCES[list_type]
        list_type = sequence[0]
        inserts: dict[str, Callable[[type[CRLCounter]], PostgresqlInsert | SQLiteInsert]] = {
            "postgresql": postgresql_insert, "sqlite": sqlite_insert}
        insert = inserts[self.session.get_bind().dialect.name]
        self.session.execute(insert(CRLCounter).values(ca_id=ca_id, list_type=list_type, last_number=0)
                             .on_conflict_do_nothing())
        number = self.session.scalar(
            sa.update(CRLCounter).where(CRLCounter.ca_id == ca_id, CRLCounter.list_type == list_type)
            .values(last_number=CRLCounter.last_number + 1).returning(CRLCounter.last_number))
        archived = self.session.scalar(sa.select(sa.func.max(IssuedCRL.number)).where(
            IssuedCRL.ca_id == ca_id, IssuedCRL.list_type.in_(sequence)))
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
                       sha256: bytes, path: str, now: dt.datetime, revocations_through: int | None = None,
                       base_number: int | None = None) -> IssuedCRL:
        row = IssuedCRL(ca_id=ca_id, list_type=list_type, number=number, signing_key_id=signing_key_id,
                        this_update=this_update, next_update=next_update, entries=entries, size=size,
                        sha256=sha256, path=path, created_at=now, revocations_through=revocations_through,
                        base_number=base_number)
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
