"""The verifier registry's queries (seed 004 1.3): registered verifiers, their certificates' revocation.

`VerifierReads` only reads (the publisher's account sync and the provision history use it);
`VerifierWrites` adds registration and removal (ca.verifiers.registry).  Callers own the
transaction (ca.storage.engine.session_scope).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa

from ca.enums import VerifierStatus
from ca.errors import AlreadyExists
from ca.storage.base import SessionStore
from ca.storage.models import Certificate, Revocation, Verifier


class VerifierReads(SessionStore):
    def by_name(self, name: str) -> Verifier | None:
        """The verifier named `name` in any case: cn matching in LDAP ignores case, so "Alice" and
        "alice" would be one account."""
        return self.session.scalar(sa.select(Verifier).where(sa.func.lower(Verifier.name) == name.lower()))

    def id_of(self, name: str) -> int | None:
        """The id of the verifier named exactly `name`."""
        return self.session.scalar(sa.select(Verifier.id).where(Verifier.name == name))

    def holder_of(self, fingerprint: bytes) -> str | None:
        """The name of the verifier (removed ones included) registered with this certificate."""
        return self.session.scalar(sa.select(Verifier.name).where(Verifier.cert_fingerprint == fingerprint))

    def certificate_id(self, fingerprint: bytes) -> int | None:
        """The id of a certificate revoca issued or imported with this SHA-256, if any."""
        return self.session.scalar(sa.select(Certificate.id).where(Certificate.fingerprint_sha256 == fingerprint))

    def is_revoked(self, certificate_id: int | None) -> bool:
        """Whether revoca revoked this certificate (False when it does not know the certificate)."""
        return certificate_id is not None and self.session.scalar(
            sa.select(Revocation.id).where(Revocation.certificate_id == certificate_id)) is not None

    def with_revocation(self, *, active_only: bool) -> list[tuple[Verifier, bool]]:
        """Verifiers by name, each with whether its certificate is revoked, in one query."""
        q = (sa.select(Verifier, Revocation.id)
             .outerjoin(Revocation, Revocation.certificate_id == Verifier.certificate_id)
             .order_by(Verifier.name))
        if active_only:
            q = q.where(Verifier.status == VerifierStatus.ACTIVE)
        return [(v, revocation_id is not None) for v, revocation_id in self.session.execute(q)]

    def newest_first(self) -> Sequence[Verifier]:
        """Every verifier ever registered, removed ones included, the newest registration first."""
        return self.session.scalars(sa.select(Verifier).order_by(Verifier.created_at.desc(),
                                                                 Verifier.id.desc())).all()


class VerifierWrites(VerifierReads):
    def add(self, *, name: str, ldap_dn: str, password_hash: str | None, cert_der: bytes, cert_fingerprint: bytes,
            cert_subject_dn: str, cert_issuer_dn: str, cert_serial: int, cert_not_after: dt.datetime,
            certificate_id: int | None, now: dt.datetime) -> Verifier:
        """A new active verifier; AlreadyExists when a concurrent registration took the name or the
        certificate (the unique keys decide; the transaction cannot go on and must roll back)."""
        row = Verifier(
            name=name, ldap_dn=ldap_dn, password_hash=password_hash, cert_der=cert_der,
            cert_fingerprint=cert_fingerprint, cert_subject_dn=cert_subject_dn, cert_issuer_dn=cert_issuer_dn,
            cert_serial=cert_serial, cert_not_after=cert_not_after, certificate_id=certificate_id,
            status=VerifierStatus.ACTIVE, created_at=now, removed_at=None, removed_reason="",
        )
        self.session.add(row)
        try:
            self.session.flush()
        except sa.exc.IntegrityError as exc:
            raise AlreadyExists(f"verifier {name!r} or its certificate was registered at the same moment; "
                                "run `revoca verifier list`") from exc
        return row

    def mark_removed(self, verifier: Verifier, *, at: dt.datetime, reason: str) -> None:
        """The verifier is removed (the row stays, for the provision history)."""
        verifier.status = VerifierStatus.REMOVED
        verifier.removed_at = at
        verifier.removed_reason = reason
        self.session.flush()
