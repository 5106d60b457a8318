"""CAs, their key generations and the certificates they issued (subscriber and CA alike).

`AuthorityReads` only reads; `AuthorityWrites` adds the writes.  ca.storage.store composes
them with the other aggregates into ReadStore and Store.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.orm import selectinload

from ca.enums import CAKind, CertKind, KeyStatus
from ca.errors import AlreadyExists, NotFound
from ca.storage.base import SessionStore
from ca.storage.models import Certificate, CertificateAuthority, KeyGeneration, Revocation


def spki_der(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class AuthorityReads(SessionStore):
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

    def certifiers_of(self, ca: CertificateAuthority) -> Sequence[CertificateAuthority]:
        """Other CAs of ours that issued certificates to this CA (cross certificates): their ARLs list them."""
        ids = sa.select(Certificate.issuer_ca_id).where(Certificate.subject_ca_id == ca.id,
                                                        Certificate.issuer_ca_id != ca.id)
        return self.session.scalars(sa.select(CertificateAuthority).where(
            CertificateAuthority.id.in_(ids), CertificateAuthority.kind != CAKind.EXTERNAL)
            .order_by(CertificateAuthority.id)).all()

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

    def self_signed_of_key(self, key_id: int) -> bytes | None:
        """DER of a self-signed certificate of the key (issued by it, for it), or None (OCSP's issuer index)."""
        return self.session.scalar(sa.select(Certificate.der).where(
            Certificate.issuer_key_id == key_id, Certificate.subject_key_id == key_id,
            Certificate.kind == CertKind.SELF_SIGNED).limit(1))

    def current_delegate(self, key_id: int, kind: CertKind, now: dt.datetime, *, label_prefix: str,
                         prefixed: bool) -> Certificate | None:
        """The newest unrevoked certificate of `kind` the key issued that is valid at `now` and has a key
        label starting (`prefixed`) or not starting with `label_prefix`: a delegated OCSP responder's,
        with its key in a file or in the token."""
        labelled = Certificate.key_label.startswith(label_prefix)
        return self.session.scalars(sa.select(Certificate).where(
            Certificate.issuer_key_id == key_id, Certificate.kind == kind,
            Certificate.key_label.is_not(None), labelled if prefixed else sa.not_(labelled),
            Certificate.not_before <= now, Certificate.not_after > now,
            Certificate.id.not_in(sa.select(Revocation.certificate_id)))
            .order_by(Certificate.not_before.desc(), Certificate.id.desc()).limit(1)).first()


class AuthorityWrites(AuthorityReads):
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
