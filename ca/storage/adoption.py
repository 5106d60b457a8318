"""The queries of adopting an existing CA (ca.adoption): what is known already, the imported
revocations, the CRL/ARL counters moved past the previous system's numbers.

Speed path: `revocation_stream` and `certificate_stream` read one CA's rows in serial order on
the DB-API cursor (a server-side one on PostgreSQL), as crl_entry_chunks does: a history import
compares a million staged entries with what is stored by merging two sorted streams, and ORM
rows (or an IN-list query per batch, about 5 ms each through SQLAlchemy) would cost more than
the rest of the import.  Serials are zero-padded hex of fixed width, so text order is numeric.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ca.enums import CertKind, ListType
from ca.errors import AlreadyExists
from ca.storage.models import Certificate, CertificateAuthority, CRLCounter, KeyGeneration, Revocation
from ca.storage.revocations import RevocationStore

IN_LIST = 500


def _chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(values), IN_LIST):
        yield values[i:i + IN_LIST]


class AdoptionStore(RevocationStore):
    def ca_by_subject(self, subject_dn: str) -> CertificateAuthority | None:
        return self.session.scalar(sa.select(CertificateAuthority).where(CertificateAuthority.subject_dn == subject_dn)
                                   .limit(1))

    def key_by_spki(self, spki: bytes) -> KeyGeneration | None:
        return self.session.scalar(sa.select(KeyGeneration).where(KeyGeneration.spki_der == spki).limit(1))

    def key_by_label(self, label: str) -> KeyGeneration | None:
        return self.session.scalar(sa.select(KeyGeneration).where(KeyGeneration.key_label == label))

    def insert_imported_revocations(self, rows: list[dict[str, object]]) -> None:
        """One executemany; a serial revoked meanwhile by someone else stops it (nothing of the batch stored)."""
        if not rows:
            return
        try:
            with self.session.begin_nested():
                self.session.execute(sa.insert(Revocation), rows)
        except sa.exc.IntegrityError as exc:
            raise AlreadyExists("a serial of this batch was revoked by someone else while the import ran; run the "
                                "import again (it compares what is stored and goes on)") from exc

    def revocation_stream(self, ca_id: int) -> Iterator[tuple[int, dt.datetime, int, ListType]]:
        """(serial, revocation time, reason, list) of every revocation of the CA, by serial."""
        for serial, when, reason, kind in self._stream(
                "SELECT serial, revocation_time, reason, list_type FROM revocations WHERE issuer_ca_id = {0} "
                "ORDER BY serial", ca_id, "adoption_revocations"):
            yield int(serial, 16), _utc(when), int(reason), ListType(kind)

    def certificate_stream(self, ca_id: int) -> Iterator[tuple[int, int, CertKind]]:
        """(serial, certificate id, kind) of every certificate the CA issued, by serial."""
        for serial, cert_id, kind in self._stream(
                "SELECT serial, id, kind FROM certificates WHERE issuer_ca_id = {0} ORDER BY serial", ca_id,
                "adoption_certificates"):
            yield int(serial, 16), int(cert_id), CertKind(kind)

    def _stream(self, sql: str, ca_id: int, name: str) -> Iterator[tuple[Any, ...]]:
        connection = self.session.connection()
        raw = connection.connection.driver_connection
        if connection.dialect.name == "postgresql":
            cursor = raw.cursor(name)  # type: ignore[union-attr]
            sql = sql.format("%s")
        else:
            cursor = raw.cursor()  # type: ignore[union-attr]
            sql = sql.format("?")
        try:
            cursor.execute(sql, (ca_id,))
            while rows := cursor.fetchmany(20_000):
                yield from rows
        finally:
            cursor.close()

    def crl_counter(self, ca_id: int, list_type: ListType) -> int:
        return self.session.scalar(sa.select(CRLCounter.last_number).where(
            CRLCounter.ca_id == ca_id, CRLCounter.list_type == list_type)) or 0

    def raise_crl_counter(self, ca_id: int, list_type: ListType, number: int) -> None:
        """The counter at `number` at least: the next list issued is numbered above it (RFC 5280 5.2.3)."""
        counter = self.session.get(CRLCounter, (ca_id, list_type))
        if counter is None:
            self.session.add(CRLCounter(ca_id=ca_id, list_type=list_type, last_number=number))
        elif counter.last_number < number:
            counter.last_number = number
        self.session.flush()


def _utc(value: object) -> dt.datetime:
    """A stored time as aware UTC (SQLite gives text without a zone, PostgreSQL an aware datetime)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def link_imported_revocations(session: Session, pairs: Iterable[tuple[int, int]]) -> int:
    """Link revocations imported by serial to the certificates (issuer CA id, serial) just stored;
    how many were linked.  `revoca cert import` calls it for every batch it inserts."""
    by_issuer: dict[int, list[int]] = {}
    for issuer_id, serial in pairs:
        by_issuer.setdefault(issuer_id, []).append(serial)
    linked = 0
    for issuer_id, serials in by_issuer.items():
        for chunk in _chunks(serials):
            certificate = (sa.select(Certificate.id).where(Certificate.issuer_ca_id == Revocation.issuer_ca_id,
                                                           Certificate.serial == Revocation.serial)
                           .scalar_subquery())
            result = session.execute(sa.update(Revocation).where(
                Revocation.issuer_ca_id == issuer_id, Revocation.serial.in_(chunk),
                Revocation.certificate_id.is_(None)).values(certificate_id=certificate)
                .execution_options(synchronize_session=False))
            linked += result.rowcount or 0  # type: ignore[attr-defined]
    return linked
