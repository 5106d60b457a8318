"""The provision history's queries (seed 004 5.5.1.2): which verifier fetched which CRL, and when;
and the directory reads beside it (ARLs, CA certificates, cross pairs, verifier certificates).

`ProvisionReads` only reads (`revoca repository fetches`, the auditor's timeline);
`ProvisionWrites` records what repository.provision made of slapd's access log.  Callers own
the transaction (ca.storage.engine.session_scope).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence

import sqlalchemy as sa

from ca.errors import AlreadyExists
from ca.storage.base import SessionStore
from ca.storage.models import CertificateAuthority, CRLFetch, DirectoryRead, Verifier

_IN_CHUNK = 500  # log keys per IN (...) query: well under every backend's parameter limit


class AlreadyRecorded(AlreadyExists):
    """Another round recorded some of these access log entries first (their log keys are unique)."""


class ProvisionReads(SessionStore):
    def recorded_keys(self, keys: Sequence[str]) -> set[str]:
        """Which of these access log keys (reqStart) are recorded already."""
        found: set[str] = set()
        for i in range(0, len(keys), _IN_CHUNK):
            chunk = keys[i:i + _IN_CHUNK]
            found.update(self.session.scalars(sa.select(CRLFetch.log_key).where(CRLFetch.log_key.in_(chunk))))
        return found

    def recorded_read_keys(self, keys: Sequence[str]) -> set[str]:
        """Which of these access log keys have a directory read recorded already."""
        found: set[str] = set()
        for i in range(0, len(keys), _IN_CHUNK):
            chunk = keys[i:i + _IN_CHUNK]
            found.update(self.session.scalars(sa.select(DirectoryRead.log_key)
                                              .where(DirectoryRead.log_key.in_(chunk))))
        return found

    def fetches(self, *, verifier_id: int | None = None, since: dt.datetime | None = None,
                limit: int | None = 100, bind_dn: str | None = None,
                results: Sequence[str] | None = None) -> list[tuple[CRLFetch, str | None, str | None]]:
        """The history newest first, each row with its verifier's and its CA's names (None if none)."""
        query = (sa.select(CRLFetch, Verifier.name, CertificateAuthority.name)
                 .outerjoin(Verifier, CRLFetch.verifier_id == Verifier.id)
                 .outerjoin(CertificateAuthority, CRLFetch.ca_id == CertificateAuthority.id)
                 .order_by(CRLFetch.fetched_at.desc(), CRLFetch.id.desc()))
        if verifier_id is not None:
            query = query.where(CRLFetch.verifier_id == verifier_id)
        if bind_dn is not None:
            query = query.where(sa.func.lower(CRLFetch.bind_dn) == bind_dn.lower())
        if results is not None:
            query = query.where(CRLFetch.result.in_(results))
        if since is not None:
            query = query.where(CRLFetch.fetched_at >= since)
        if limit is not None:
            query = query.limit(limit)
        return [(row, verifier_name, ca_name) for row, verifier_name, ca_name in self.session.execute(query)]

    def reads(self, *, verifier_id: int | None = None, since: dt.datetime | None = None,
              limit: int | None = 100, bind_dn: str | None = None,
              ) -> list[tuple[DirectoryRead, str | None, str | None]]:
        """The directory reads newest first, each with its verifier's and its CA's names (None if none)."""
        query = (sa.select(DirectoryRead, Verifier.name, CertificateAuthority.name)
                 .outerjoin(Verifier, DirectoryRead.verifier_id == Verifier.id)
                 .outerjoin(CertificateAuthority, DirectoryRead.ca_id == CertificateAuthority.id)
                 .order_by(DirectoryRead.read_at.desc(), DirectoryRead.id.desc()))
        if verifier_id is not None:
            query = query.where(DirectoryRead.verifier_id == verifier_id)
        if bind_dn is not None:
            query = query.where(sa.func.lower(DirectoryRead.bind_dn) == bind_dn.lower())
        if since is not None:
            query = query.where(DirectoryRead.read_at >= since)
        if limit is not None:
            query = query.limit(limit)
        return [(row, verifier_name, ca_name) for row, verifier_name, ca_name in self.session.execute(query)]


class ProvisionWrites(ProvisionReads):
    def add_fetches(self, rows: Iterable[Mapping[str, object]]) -> None:
        """Record rows (log_key, fetched_at, bind_dn, verifier_id, dn, ca_id, list_type, crl_number,
        result); AlreadyRecorded when a log key is taken (the transaction must then roll back)."""
        self.session.add_all(CRLFetch(**row) for row in rows)
        try:
            self.session.flush()
        except sa.exc.IntegrityError as exc:
            raise AlreadyRecorded("some of these access log entries were recorded by another round") from exc

    def add_reads(self, rows: Iterable[Mapping[str, object]]) -> None:
        """Record directory reads (log_key, read_at, bind_dn, verifier_id, dn, ca_id, objects, entries,
        arl_number, result, ldap_result); AlreadyRecorded when a log key is taken."""
        self.session.add_all(DirectoryRead(**row) for row in rows)
        try:
            self.session.flush()
        except sa.exc.IntegrityError as exc:
            raise AlreadyRecorded("some of these access log entries were recorded by another round") from exc
