"""The queries behind key destruction (ca.hsm.destruction): which key a name means, what still
needs it, and the record that it was destroyed.

Everything is handed out as value objects, not rows.  `KeyDestructionReads` only reads (the HSM
service loads the destroyed labels at start through it); `KeyDestructionWrites` marks a key
destroyed inside the caller's transaction, as a conditional write.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, cast

import sqlalchemy as sa

from ca.enums import CAKind, CertKind, KeyStatus, ListType
from ca.errors import AlreadyExists, InvalidInput, NotFound
from ca.storage.base import SessionStore
from ca.storage.models import (
    Certificate,
    CertificateAuthority,
    DestroyedKey,
    IssuedCRL,
    KeyGeneration,
    Revocation,
)

FILE_PREFIX = "file:"  # labels of end-entity keys kept in files, not in the token (ocsp.issuers)


@dataclasses.dataclass(frozen=True, slots=True)
class TokenKey:
    """A private key in the token that destroy-key may be asked about.

    A CA key has its `generation` (and `status`); an end-entity key (responder, CVS, TLS,
    receipt, TSA) is known by the label on the certificates that carry it (`kind`)."""

    ca_id: int
    ca_name: str
    label: str
    kind: str  # "ca", or the CertKind of the certificate that carries the key
    key_generation_id: int | None = None
    generation: int | None = None
    status: KeyStatus | None = None
    certificate_ids: tuple[int, ...] = ()

    @property
    def is_ca_key(self) -> bool:
        return self.key_generation_id is not None

    def describe(self) -> str:
        if self.is_ca_key:
            return f"CA {self.ca_name} key generation {self.generation} ({self.label})"
        return f"{self.kind} key {self.label} of CA {self.ca_name}"


@dataclasses.dataclass(frozen=True, slots=True)
class CertificateInfo:
    kind: CertKind
    serial: int
    not_after: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class LiveCertificates:
    """Certificates that are unexpired and unrevoked: how many, and the one valid longest."""

    count: int
    last: CertificateInfo | None


@dataclasses.dataclass(frozen=True, slots=True)
class ListInfo:
    list_type: ListType
    number: int
    signing_key_id: int
    next_update: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Destruction:
    label: str
    destroyed_at: dt.datetime
    destroyed_by: str
    token_objects: int


class KeyDestructionReads(SessionStore):
    def destroyed_labels(self) -> frozenset[str]:
        return frozenset(self.session.scalars(sa.select(DestroyedKey.key_label)).all())

    def destruction(self, label: str) -> Destruction | None:
        row = self.session.scalar(sa.select(DestroyedKey).where(DestroyedKey.key_label == label))
        if row is None:
            return None
        return Destruction(row.key_label, row.destroyed_at, row.destroyed_by, row.token_objects)

    def token_key(self, ca_name: str, ref: str, *, lock: bool = False) -> TokenKey:
        """The key `ref` names among CA `ca_name`'s: a CA key by generation number or label, or an
        end-entity key by the label of a certificate the CA issued.  `lock`: the key generation row
        FOR UPDATE (PostgreSQL; SQLite's writer holds the database already)."""
        ca = self.session.scalar(sa.select(CertificateAuthority).where(CertificateAuthority.name == ca_name))
        if ca is None:
            raise NotFound(f"no CA named {ca_name!r}; see `revoca ca list`")
        if ca.kind is CAKind.EXTERNAL:
            raise InvalidInput(f"CA {ca_name} is external: revoca holds none of its private keys")
        if ref.startswith(FILE_PREFIX):
            raise InvalidInput(f"key {ref} is kept in a file, not in the token; its owner deletes the file")
        by_key = KeyGeneration.key_label == ref
        if ref.isdigit():
            by_key = sa.or_(by_key, KeyGeneration.generation == int(ref))
        q = sa.select(KeyGeneration).where(KeyGeneration.ca_id == ca.id, by_key)
        key = self.session.scalar(q.with_for_update() if lock else q)
        if key is not None:
            if key.key_label is None:  # an adopted key kept elsewhere (not in this token)
                raise InvalidInput(f"CA {ca_name} key generation {key.generation} is not in revoca's token")
            return TokenKey(ca.id, ca.name, key.key_label, "ca", key.id, key.generation, key.status)
        rows = self.session.execute(sa.select(Certificate.id, Certificate.kind).where(
            Certificate.issuer_ca_id == ca.id, Certificate.key_label == ref).order_by(Certificate.id)).all()
        if not rows:
            known = ", ".join(f"{k.generation}" for k in self.session.scalars(
                sa.select(KeyGeneration).where(KeyGeneration.ca_id == ca.id).order_by(KeyGeneration.generation)))
            raise NotFound(f"CA {ca_name} has no key {ref!r} (its key generations: {known or 'none'}; "
                           "or give the label of a responder, TSA or other key it certified)")
        return TokenKey(ca.id, ca.name, ref, rows[-1].kind.value, certificate_ids=tuple(r.id for r in rows))

    def list_signing_key_id(self, ca_id: int) -> int | None:
        """The key the CA's CRL and ARL are signed with: its newest key in the token
        (ca.storage.crl_issuance.crl_signing_key)."""
        return self.session.scalar(
            sa.select(KeyGeneration.id).where(KeyGeneration.ca_id == ca_id, KeyGeneration.key_label.is_not(None))
            .order_by(KeyGeneration.generation.desc()).limit(1))

    def newest_lists(self, ca_id: int) -> list[ListInfo]:
        """The CA's newest CRL and newest ARL, those it has issued."""
        found: list[ListInfo] = []
        for list_type in ListType:
            row = self.session.scalar(sa.select(IssuedCRL).where(
                IssuedCRL.ca_id == ca_id, IssuedCRL.list_type == list_type)
                .order_by(IssuedCRL.number.desc()).limit(1))
            if row is not None:
                found.append(ListInfo(list_type, row.number, row.signing_key_id, row.next_update))
        return found

    def live_signed_by(self, key_generation_id: int, now: dt.datetime) -> LiveCertificates:
        """Certificates the key signed that are unexpired at `now` and not revoked."""
        return self._live(Certificate.issuer_key_id == key_generation_id, now)

    def live_carrying(self, certificate_ids: tuple[int, ...], now: dt.datetime) -> LiveCertificates:
        """Of these certificates (an end-entity key's), those unexpired at `now` and not revoked."""
        return self._live(Certificate.id.in_(certificate_ids), now)

    def _live(self, which: sa.ColumnElement[bool], now: dt.datetime) -> LiveCertificates:
        live = sa.and_(which, Certificate.not_after > now,
                       ~sa.exists().where(Revocation.certificate_id == Certificate.id))
        count = self.session.scalar(sa.select(sa.func.count()).select_from(Certificate).where(live)) or 0
        if not count:
            return LiveCertificates(0, None)
        last = self.session.execute(sa.select(Certificate.kind, Certificate.serial, Certificate.not_after)
                                    .where(live).order_by(Certificate.not_after.desc()).limit(1)).one()
        return LiveCertificates(count, CertificateInfo(last.kind, last.serial, last.not_after))


class KeyDestructionWrites(KeyDestructionReads):
    def mark_destroyed(self, key: TokenKey, *, now: dt.datetime, by: str) -> None:
        """Record the destruction; a CA key's generation becomes DESTROYED, only from the status it
        was checked in (a concurrent change makes this fail rather than pass unseen).  Written
        before the token is asked, so a token that refuses leaves nothing recorded."""
        if self.destruction(key.label) is not None:
            raise AlreadyExists(f"key {key.label} is already recorded as destroyed")
        if key.key_generation_id is not None:
            changed = cast(sa.CursorResult[Any], self.session.execute(
                sa.update(KeyGeneration).where(KeyGeneration.id == key.key_generation_id,
                                               KeyGeneration.status == key.status)
                .values(status=KeyStatus.DESTROYED)))
            if changed.rowcount != 1:
                raise InvalidInput(f"{key.describe()} changed while it was being destroyed; run the command again")
        self.session.add(DestroyedKey(
            key_label=key.label, ca_id=key.ca_id, key_generation_id=key.key_generation_id,
            certificate_id=key.certificate_ids[-1] if key.certificate_ids else None,
            destroyed_at=now, destroyed_by=by, token_objects=0))
        self.session.flush()

    def record_token_objects(self, label: str, count: int) -> None:
        """How many objects the token removed for the key marked destroyed in this transaction."""
        self.session.execute(sa.update(DestroyedKey).where(DestroyedKey.key_label == label)
                             .values(token_objects=count))
