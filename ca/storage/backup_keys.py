"""The two facts `revoca backup purge-key` needs about a destroyed key: when it came into the token
and when it was destroyed (ca.backup.key_copies decides which backups hold it)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa

from ca.errors import NotFound
from ca.storage.base import SessionStore
from ca.storage.models import Certificate, CertificateAuthority, DestroyedKey, KeyGeneration


@dataclasses.dataclass(frozen=True, slots=True)
class DestroyedKeyLife:
    label: str
    ca_name: str
    created_at: dt.datetime | None  # None: not known (a backup of any age may hold it)
    destroyed_at: dt.datetime
    destroyed_by: str


class BackupKeyReads(SessionStore):
    def destroyed_key(self, ca_name: str, ref: str) -> DestroyedKeyLife:
        """The destroyed key `ref` (generation number or label) of CA `ca_name`."""
        ca = self.session.scalar(sa.select(CertificateAuthority).where(CertificateAuthority.name == ca_name))
        if ca is None:
            raise NotFound(f"no CA named {ca_name!r}; see `revoca ca list`")
        by_ref = DestroyedKey.key_label == ref
        if ref.isdigit():
            by_ref = sa.or_(by_ref, DestroyedKey.key_generation_id.in_(
                sa.select(KeyGeneration.id).where(KeyGeneration.ca_id == ca.id, KeyGeneration.generation == int(ref))))
        row = self.session.scalar(sa.select(DestroyedKey).where(DestroyedKey.ca_id == ca.id, by_ref))
        if row is None:
            raise NotFound(f"CA {ca_name} has no destroyed key {ref!r}: destroy it first (`revoca ca destroy-key`)")
        return self.life(row.key_label)

    def life(self, label: str) -> DestroyedKeyLife:
        row = self.session.scalar(sa.select(DestroyedKey).where(DestroyedKey.key_label == label))
        if row is None:
            raise NotFound(f"key {label} is not recorded as destroyed")
        ca_name = self.session.scalar(sa.select(CertificateAuthority.name).where(CertificateAuthority.id == row.ca_id))
        created = self.session.scalar(sa.select(KeyGeneration.created_at).where(KeyGeneration.key_label == label))
        if created is None:  # an end-entity key: it came with the first certificate that carries it
            created = self.session.scalar(sa.select(sa.func.min(Certificate.created_at))
                                          .where(Certificate.key_label == label))
        if created is not None and created.tzinfo is None:  # SQL aggregates lose the column's type
            created = created.replace(tzinfo=dt.UTC)
        assert ca_name is not None
        return DestroyedKeyLife(label, ca_name, created, row.destroyed_at, row.destroyed_by)
