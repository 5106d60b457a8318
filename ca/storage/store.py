"""Every query of the CA core, in one place (in the manner of Boulder's SA).

`ReadStore` only reads, so a status page or OCSP can be handed one with a read-only
session; `Store` adds the writes.  Callers own the transaction (ca.db.session_scope).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, selectinload

from ca.credentials import verify_password
from ca.errors import AlreadyExists, NotFound, PermissionDenied
from ca.storage.models import (
    CAKind,
    Certificate,
    CertificateAuthority,
    CertKind,
    CRLCounter,
    IssuedCRL,
    KeyGeneration,
    KeyStatus,
    ListType,
    Operator,
    OperatorRole,
    Publication,
    PublicationItem,
    PublicationState,
    Revocation,
    Role,
    ShareHolder,
    ShareSet,
)


def spki_der(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class ReadStore:
    def __init__(self, session: Session) -> None:
        self.session = session

    # CAs and keys
    def ca(self, name: str) -> CertificateAuthority:
        found = self.session.scalar(sa.select(CertificateAuthority).where(CertificateAuthority.name == name))
        if found is None:
            known = ", ".join(self.session.scalars(sa.select(CertificateAuthority.name).order_by(
                CertificateAuthority.id)).all()) or "none yet; run `revoca init`"
            raise NotFound(f"no CA named {name!r} (known: {known})")
        return found

    def cas(self, kind: CAKind | None = None) -> Sequence[CertificateAuthority]:
        q = sa.select(CertificateAuthority).options(selectinload(CertificateAuthority.keys)).order_by(
            CertificateAuthority.id)
        if kind is not None:
            q = q.where(CertificateAuthority.kind == kind)
        return self.session.scalars(q).all()

    def bridge(self) -> CertificateAuthority:
        found = self.session.scalar(sa.select(CertificateAuthority).where(CertificateAuthority.kind == CAKind.BRIDGE))
        if found is None:
            raise NotFound("there is no bridge CA yet; run `revoca init`")
        return found

    def current_key(self, ca: CertificateAuthority) -> KeyGeneration:
        key = self.session.scalar(
            sa.select(KeyGeneration).where(KeyGeneration.ca_id == ca.id, KeyGeneration.status == KeyStatus.ACTIVE)
            .order_by(KeyGeneration.generation.desc()).limit(1)
        )
        if key is None:
            raise NotFound(f"CA {ca.name} has no active key")
        return key

    def key_by_ski(self, ski: bytes) -> KeyGeneration | None:
        return self.session.scalar(sa.select(KeyGeneration).where(KeyGeneration.ski == ski).limit(1))

    def keys(self) -> Sequence[KeyGeneration]:
        return self.session.scalars(sa.select(KeyGeneration).order_by(KeyGeneration.id)).all()

    # certificates
    def certificate(self, issuer: CertificateAuthority, serial: int) -> Certificate:
        found = self.session.scalar(
            sa.select(Certificate).where(Certificate.issuer_ca_id == issuer.id, Certificate.serial == serial)
        )
        if found is None:
            raise NotFound(f"CA {issuer.name} has no certificate with serial {serial:x}")
        return found

    def certificate_by_fingerprint(self, fingerprint: bytes) -> Certificate | None:
        return self.session.scalar(sa.select(Certificate).where(Certificate.fingerprint_sha256 == fingerprint))

    def existing_fingerprints(self, fingerprints: Iterable[bytes]) -> set[bytes]:
        fps = list(fingerprints)
        if not fps:
            return set()
        return set(self.session.scalars(
            sa.select(Certificate.fingerprint_sha256).where(Certificate.fingerprint_sha256.in_(fps))
        ).all())

    def serial_clashes(self, pairs: list[tuple[int, int]]) -> set[tuple[int, int]]:
        """Which (issuer CA id, serial) pairs are already taken."""
        taken: set[tuple[int, int]] = set()
        by_issuer: dict[int, list[int]] = {}
        for issuer_id, serial in pairs:
            by_issuer.setdefault(issuer_id, []).append(serial)
        for issuer_id, serials in by_issuer.items():
            for i in range(0, len(serials), 500):
                rows = self.session.execute(sa.select(Certificate.issuer_ca_id, Certificate.serial).where(
                    Certificate.issuer_ca_id == issuer_id, Certificate.serial.in_(serials[i:i + 500])))
                taken.update((a, b) for a, b in rows)
        return taken

    def certificates(self, *, issuer: CertificateAuthority | None = None, kinds: Iterable[CertKind] | None = None,
                     subject_ca: CertificateAuthority | None = None, limit: int | None = None,
                     offset: int = 0) -> Sequence[Certificate]:
        q = sa.select(Certificate).order_by(Certificate.id)
        if issuer is not None:
            q = q.where(Certificate.issuer_ca_id == issuer.id)
        if kinds is not None:
            q = q.where(Certificate.kind.in_(list(kinds)))
        if subject_ca is not None:
            q = q.where(Certificate.subject_ca_id == subject_ca.id)
        if limit is not None:
            q = q.limit(limit)
        return self.session.scalars(q.offset(offset)).all()

    def count_certificates(self, issuer: CertificateAuthority, kind: CertKind) -> int:
        return self.session.scalar(
            sa.select(sa.func.count()).select_from(Certificate)
            .where(Certificate.issuer_ca_id == issuer.id, Certificate.kind == kind)
        ) or 0

    # operators
    def operator(self, name: str) -> Operator:
        found = self.session.scalar(
            sa.select(Operator).options(selectinload(Operator.roles)).where(Operator.name == name))
        if found is None:
            raise NotFound(f"no operator named {name!r}; add one with `revoca operator add`")
        return found

    def operators(self) -> Sequence[Operator]:
        return self.session.scalars(
            sa.select(Operator).options(selectinload(Operator.roles)).order_by(Operator.name)).all()

    def authenticate(self, name: str, password: str, role: Role) -> Operator:
        """The operator if the password matches and the role is held; one message for every failure."""
        op = self.session.scalar(
            sa.select(Operator).options(selectinload(Operator.roles)).where(Operator.name == name))
        if op is None or op.disabled or not verify_password(password, op.credential_hash):
            raise PermissionDenied(f"operator {name!r}: unknown, disabled or wrong password")
        if role not in op.role_set:
            raise PermissionDenied(f"operator {name!r} does not hold the {role} role")
        return op

    # activation shares
    def active_share_set(self, token_label: str) -> ShareSet:
        found = self.session.scalar(
            sa.select(ShareSet).options(selectinload(ShareSet.holders).selectinload(ShareHolder.operator))
            .where(ShareSet.token_label == token_label, ShareSet.active.is_(True))
            .order_by(ShareSet.id.desc()).limit(1)
        )
        if found is None:
            raise NotFound(f"no activation share set for token {token_label!r}; run `revoca init`")
        return found

    # --- CRL issuance ---
    # Queries of ca.crl: the signing key and issuer name, the entry stream and the archive.

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

    def self_signed_der(self, ca: CertificateAuthority, key: KeyGeneration) -> bytes:
        """DER of the CA's newest self-signed certificate for `key` (its subject is the CRL issuer)."""
        found = self.session.scalar(
            sa.select(Certificate.der).where(Certificate.issuer_ca_id == ca.id,
                                             Certificate.kind == CertKind.SELF_SIGNED,
                                             Certificate.subject_key_id == key.id)
            .order_by(Certificate.id.desc()).limit(1))
        if found is None:
            raise NotFound(f"CA {ca.name} has no self-signed certificate for key generation {key.generation}")
        return found

    def crl_entry_chunks(self, ca_id: int, list_type: ListType, *, after_id: int, up_to_id: int,
                         rows: int = 20_000) -> Iterator[list[bytes]]:
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

    def certifiers_of(self, ca: CertificateAuthority) -> Sequence[CertificateAuthority]:
        """Other CAs of ours that issued certificates to this CA (cross certificates): their ARLs list them."""
        ids = sa.select(Certificate.issuer_ca_id).where(Certificate.subject_ca_id == ca.id,
                                                        Certificate.issuer_ca_id != ca.id)
        return self.session.scalars(sa.select(CertificateAuthority).where(
            CertificateAuthority.id.in_(ids), CertificateAuthority.kind != CAKind.EXTERNAL)
            .order_by(CertificateAuthority.id)).all()


class Store(ReadStore):
    def add_ca(self, *, name: str, kind: CAKind, subject: x509.Name, now: dt.datetime) -> CertificateAuthority:
        if self.session.scalar(sa.select(CertificateAuthority.id).where(CertificateAuthority.name == name)):
            raise AlreadyExists(f"a CA named {name!r} already exists")
        ca = CertificateAuthority(name=name, kind=kind, subject_dn=subject.rfc4514_string(), created_at=now)
        self.session.add(ca)
        self.session.flush()
        return ca

    def add_key(self, ca: CertificateAuthority, *, label: str | None, algorithm: str, public_key: object,
                ski: bytes, now: dt.datetime) -> KeyGeneration:
        last = self.session.scalar(
            sa.select(sa.func.max(KeyGeneration.generation)).where(KeyGeneration.ca_id == ca.id)) or 0
        key = KeyGeneration(ca_id=ca.id, generation=last + 1, key_label=label, algorithm=algorithm,
                            spki_der=spki_der(public_key), ski=ski, created_at=now)
        self.session.add(key)
        self.session.flush()
        return key

    def add_certificate(self, cert: x509.Certificate, *, kind: CertKind, issuer_key: KeyGeneration,
                        subject_key: KeyGeneration | None = None, key_label: str | None = None,
                        now: dt.datetime) -> Certificate:
        der = cert.public_bytes(serialization.Encoding.DER)
        fingerprint = hashlib.sha256(der).digest()
        if self.certificate_by_fingerprint(fingerprint) is not None:
            raise AlreadyExists(f"certificate {fingerprint.hex()[:16]}… is already stored")
        clash = self.session.scalar(sa.select(Certificate.id).where(
            Certificate.issuer_ca_id == issuer_key.ca_id, Certificate.serial == cert.serial_number))
        if clash is not None:
            raise AlreadyExists(f"serial {cert.serial_number:x} is already used by another certificate of the same CA")
        row = Certificate(
            issuer_ca_id=issuer_key.ca_id, issuer_key_id=issuer_key.id,
            subject_ca_id=subject_key.ca_id if subject_key else None,
            subject_key_id=subject_key.id if subject_key else None,
            key_label=key_label, kind=kind, serial=cert.serial_number,
            subject_dn=cert.subject.rfc4514_string(),
            not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
            fingerprint_sha256=fingerprint, der=der, created_at=now,
        )
        self.session.add(row)
        self.session.flush()
        return row

    def insert_certificates(self, rows: list[dict[str, object]]) -> None:
        """Bulk insert for imports: one executemany, no ORM objects per row."""
        if rows:
            self.session.execute(sa.insert(Certificate), rows)

    def add_operator(self, *, name: str, display_name: str, credential_hash: str, roles: Iterable[Role],
                     now: dt.datetime) -> Operator:
        if self.session.scalar(sa.select(Operator.id).where(Operator.name == name)):
            raise AlreadyExists(f"an operator named {name!r} already exists")
        op = Operator(name=name, display_name=display_name, credential_hash=credential_hash, created_at=now)
        op.roles = [OperatorRole(role=r) for r in sorted(set(roles))]
        self.session.add(op)
        self.session.flush()
        return op

    def add_share_set(self, *, token_label: str, threshold: int, total: int, now: dt.datetime) -> ShareSet:
        for old in self.session.scalars(sa.select(ShareSet).where(ShareSet.token_label == token_label)):
            old.active = False
        share_set = ShareSet(token_label=token_label, threshold=threshold, total=total, created_at=now)
        self.session.add(share_set)
        self.session.flush()
        return share_set

    def add_share_holder(self, share_set: ShareSet, *, index: int, operator: Operator, digest: bytes) -> None:
        self.session.add(ShareHolder(share_set_id=share_set.id, share_index=index, operator_id=operator.id,
                                     digest=digest))
        self.session.flush()

    # --- CRL issuance ---
    # Writes of ca.crl: the CRL number counter, entries missing their DER, the archive.

    def allocate_crl_number(self, ca_id: int, list_type: ListType) -> int:
        """The next CRL number of one CA and list; the caller commits it before signing anything.

        The UPDATE takes the counter row's lock (PostgreSQL row lock, SQLite's single writer) until
        the caller's transaction ends, so two issuers never get the same number; and since the
        number is committed before the CRL is signed, a crash afterwards leaves a gap in the
        numbers but never hands the same number out twice.
        """
        insert = {"postgresql": postgresql_insert, "sqlite": sqlite_insert}[self.session.get_bind().dialect.name]
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
