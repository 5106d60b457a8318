"""What a retired CA key still owes relying parties (ca.crl.old_keys): read-only queries.

After a rollover, certificates the old key signed are still checked by clients that trust the
old self-signed certificate, and OpenSSL with its default flags accepts only a CRL signed by
the key that signed the certificate.  So a retired key keeps signing its CA's CRL while any
certificate it signed for the CRL (subscriber, responder, server) is unexpired, and its ARL
while any CA certificate it signed (cross, link) is; revoked ones count too, since a relying
party must keep seeing them revoked until they expire.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa

from ca.enums import CAKind, CAStatus, CertKind, KeyStatus, ListType
from ca.errors import InvalidInput
from ca.storage.base import SessionStore
from ca.storage.models import Certificate, CertificateAuthority, IssuedCRL, KeyGeneration


@dataclasses.dataclass(frozen=True, slots=True)
class RetiredKeyDuty:
    """One retired key that must keep signing one list of its CA until `until`."""

    ca_name: str
    list_type: ListType
    generation: int
    key_id: int
    until: dt.datetime  # the last notAfter of what it signed for this list
    last_this_update: dt.datetime | None  # of the newest list it signed (None: none yet)


class RetiredKeyReads(SessionStore):
    def retired_lists(self, ca_id: int, list_type: ListType, now: dt.datetime) -> list[tuple[str, bytes]]:
        """(path, SHA-256) of the newest unexpired list each retired key of the CA signed: what the
        directory entry holds beside the current key's list (repository.publisher)."""
        newest = (sa.select(IssuedCRL.signing_key_id, sa.func.max(IssuedCRL.number).label("number"))
                  .join(KeyGeneration, KeyGeneration.id == IssuedCRL.signing_key_id)
                  .where(IssuedCRL.ca_id == ca_id, IssuedCRL.list_type == list_type,
                         KeyGeneration.status == KeyStatus.RETIRED, KeyGeneration.key_label.is_not(None))
                  .group_by(IssuedCRL.signing_key_id).subquery())
        rows = self.session.execute(
            sa.select(IssuedCRL.path, IssuedCRL.sha256)
            .join(newest, sa.and_(IssuedCRL.signing_key_id == newest.c.signing_key_id,
                                  IssuedCRL.number == newest.c.number))
            .where(IssuedCRL.ca_id == ca_id, IssuedCRL.list_type == list_type, IssuedCRL.next_update > now)
            .order_by(IssuedCRL.number)).all()
        return [(path, sha256) for path, sha256 in rows]

    def retired_signing_key(self, ca: CertificateAuthority, generation: int) -> KeyGeneration:
        """A retired key of `ca`, still in the token, to sign its own list with (ca.crl.old_keys)."""
        key = self.session.scalar(sa.select(KeyGeneration).where(
            KeyGeneration.ca_id == ca.id, KeyGeneration.generation == generation,
            KeyGeneration.status == KeyStatus.RETIRED, KeyGeneration.key_label.is_not(None)))
        if key is None:
            raise InvalidInput(f"CA {ca.name} has no retired key of generation {generation} in the token")
        return key

    def retired_key_duties(self, now: dt.datetime) -> list[RetiredKeyDuty]:
        """Every (retired key, list) with an unexpired certificate behind it, bridge first."""
        rows = self.session.execute(
            sa.select(CertificateAuthority.name, CertificateAuthority.kind, KeyGeneration.id,
                      KeyGeneration.generation, Certificate.kind, sa.func.max(Certificate.not_after))
            .join(KeyGeneration, KeyGeneration.ca_id == CertificateAuthority.id)
            .join(Certificate, Certificate.issuer_key_id == KeyGeneration.id)
            .where(KeyGeneration.status == KeyStatus.RETIRED, KeyGeneration.key_label.is_not(None),
                   CertificateAuthority.kind != CAKind.EXTERNAL, CertificateAuthority.status == CAStatus.ACTIVE,
                   Certificate.kind != CertKind.SELF_SIGNED, Certificate.not_after > now)
            .group_by(CertificateAuthority.name, CertificateAuthority.kind, KeyGeneration.id,
                      KeyGeneration.generation, Certificate.kind)).all()
        until: dict[tuple[str, int, int, ListType], dt.datetime] = {}
        bridge_first: dict[str, bool] = {}
        for ca_name, ca_kind, key_id, generation, kind, not_after in rows:
            list_type = ListType.ARL if kind.is_ca_certificate else ListType.CRL
            slot = (ca_name, key_id, generation, list_type)
            until[slot] = max(until.get(slot, not_after), not_after)
            bridge_first[ca_name] = ca_kind is CAKind.BRIDGE
        latest = dict(((key_id, list_type), this_update) for key_id, list_type, this_update in self.session.execute(
            sa.select(IssuedCRL.signing_key_id, IssuedCRL.list_type, sa.func.max(IssuedCRL.this_update))
            .where(IssuedCRL.signing_key_id.in_({slot[1] for slot in until}))
            .group_by(IssuedCRL.signing_key_id, IssuedCRL.list_type)).all())
        duties = [RetiredKeyDuty(ca_name, list_type, generation, key_id, last, latest.get((key_id, list_type)))
                  for (ca_name, key_id, generation, list_type), last in until.items()]
        return sorted(duties, key=lambda d: (not bridge_first[d.ca_name], d.ca_name, d.generation, d.list_type))
