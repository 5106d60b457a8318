"""Queries of the revocation side: requests, revocations and RA terminals (with the CAs each may act for).

`RevocationReadStore` only reads (with everything ReadStore reads), for read-only sessions:
the RA's status pages, `revoca status`, the status page.  `RevocationStore` adds the writes
(with everything Store writes).  Same conventions as ca.storage.store: the caller owns the
transaction; conditional writes use savepoints so that a lost race on a unique constraint
turns into "return what the winner wrote", never an error.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from ca.enums import CAKind, RequestStatus
from ca.errors import InvalidInput, NotFound
from ca.storage.models import (
    Certificate,
    CertificateAuthority,
    RATerminal,
    RATerminalScope,
    Revocation,
    RevocationRequest,
)
from ca.storage.store import ReadStore, Store


class RevocationReadStore(ReadStore):
    # requests
    def request(self, public_id: str) -> RevocationRequest:
        found = self.session.scalar(
            sa.select(RevocationRequest).options(selectinload(RevocationRequest.certificate))
            .where(RevocationRequest.public_id == public_id))
        if found is None:
            raise NotFound(f"no revocation request {public_id}")
        return found

    def request_by_idempotency(self, terminal_id: int, key: str) -> RevocationRequest | None:
        return self.session.scalar(sa.select(RevocationRequest).where(
            RevocationRequest.terminal_id == terminal_id, RevocationRequest.idempotency_key == key))

    def requests_of_terminal(self, terminal_id: int, *, limit: int, offset: int = 0) -> Sequence[RevocationRequest]:
        return self.session.scalars(
            sa.select(RevocationRequest).options(selectinload(RevocationRequest.certificate))
            .where(RevocationRequest.terminal_id == terminal_id)
            .order_by(RevocationRequest.id.desc()).limit(limit).offset(offset)).all()

    def pending_requests(self) -> Sequence[RevocationRequest]:
        return self.session.scalars(
            sa.select(RevocationRequest).options(selectinload(RevocationRequest.certificate))
            .where(RevocationRequest.status.in_([RequestStatus.PENDING_REVIEW, RequestStatus.PENDING_APPROVAL]))
            .order_by(RevocationRequest.id)).all()

    # revocations
    def revocation_of(self, certificate_id: int) -> Revocation | None:
        return self.session.scalar(sa.select(Revocation).where(Revocation.certificate_id == certificate_id))

    def revocation_of_serial(self, issuer_ca_id: int, serial: int) -> Revocation | None:
        """Also a revocation imported from an adopted CA's history before its certificate was known."""
        return self.session.scalar(sa.select(Revocation).where(Revocation.issuer_ca_id == issuer_ca_id,
                                                               Revocation.serial == serial))

    def unrevoked_signed_by(self, key_id: int, *, after_id: int = 0, limit: int = 5000) -> Sequence[Certificate]:
        """Certificates a key signed that are not revoked yet, in id order, a chunk at a time."""
        return self.session.scalars(
            sa.select(Certificate).outerjoin(Revocation, Revocation.certificate_id == Certificate.id)
            .where(Certificate.issuer_key_id == key_id, Revocation.id.is_(None), Certificate.id > after_id)
            .order_by(Certificate.id).limit(limit)).all()

    def certificates_of_key(self, key_id: int) -> Sequence[Certificate]:
        """CA certificates that carry a key (self-signed, cross, links): revoked with the key."""
        return self.session.scalars(sa.select(Certificate).where(Certificate.subject_key_id == key_id)
                                    .order_by(Certificate.id)).all()

    # RA terminals
    def terminal_by_fingerprint(self, fingerprint: bytes) -> RATerminal | None:
        return self.session.scalar(sa.select(RATerminal).where(RATerminal.cert_fingerprint == fingerprint))

    def terminal(self, name: str) -> RATerminal:
        found = self.session.scalar(sa.select(RATerminal).where(RATerminal.name == name))
        if found is None:
            raise NotFound(f"no RA terminal named {name!r}; register it with `revoca ra add`")
        return found

    def terminals(self) -> Sequence[RATerminal]:
        return self.session.scalars(sa.select(RATerminal).options(selectinload(RATerminal.scope))
                                    .order_by(RATerminal.name)).all()

    def terminal_by_id(self, terminal_id: int) -> RATerminal:
        found = self.session.get(RATerminal, terminal_id)
        if found is None:
            raise NotFound(f"no RA terminal with id {terminal_id}")
        return found

    def terminal_scope(self, terminal: RATerminal) -> Sequence[CertificateAuthority]:
        """The CAs the terminal may act for, by name; empty: it may revoke nothing."""
        return self.session.scalars(
            sa.select(CertificateAuthority).join(RATerminalScope, RATerminalScope.ca_id == CertificateAuthority.id)
            .where(RATerminalScope.terminal_id == terminal.id).order_by(CertificateAuthority.name)).all()


class RevocationStore(RevocationReadStore, Store):
    # requests
    def add_request(self, request: RevocationRequest) -> RevocationRequest | None:
        """Insert, or None when a concurrent request with the same idempotency key won."""
        try:
            with self.session.begin_nested():
                self.session.add(request)
                self.session.flush()
        except sa.exc.IntegrityError:
            return None
        return request

    def store_receipt(self, public_id: str, receipt: bytes) -> bytes:
        """Keep a request's signed receipt unless one is stored already (the first one signed stands);
        the receipt stored, which every answer about the request carries."""
        self.session.execute(sa.update(RevocationRequest).where(RevocationRequest.public_id == public_id,
                                                                RevocationRequest.receipt.is_(None))
                             .values(receipt=receipt))
        stored = self.session.scalar(sa.select(RevocationRequest.receipt)
                                     .where(RevocationRequest.public_id == public_id))
        assert stored is not None  # this one, or the one another worker stored first
        return stored

    # revocations
    def add_revocation(self, revocation: Revocation) -> Revocation:
        """Insert unless the certificate is already revoked; then the first revocation stands."""
        try:
            with self.session.begin_nested():
                self.session.add(revocation)
                self.session.flush()
        except sa.exc.IntegrityError:
            existing = (self.revocation_of(revocation.certificate_id) if revocation.certificate_id is not None
                        else None) or self.revocation_of_serial(revocation.issuer_ca_id, revocation.serial)
            if existing is None:
                raise
            return existing
        return revocation

    def insert_revocations(self, rows: list[dict[str, object]]) -> None:
        if rows:
            self.session.execute(sa.insert(Revocation), rows)

    # RA terminals
    def add_terminal(self, *, name: str, certificate: Certificate, now: dt.datetime,
                     cas: Iterable[CertificateAuthority] = (), municipality: str = "") -> RATerminal:
        terminal = RATerminal(name=name, certificate_id=certificate.id,
                              cert_fingerprint=certificate.fingerprint_sha256, created_at=now)
        self.session.add(terminal)
        self.session.flush()
        self.set_terminal_scope(terminal, cas, municipality=municipality)
        return terminal

    def set_terminal_scope(self, terminal: RATerminal, cas: Iterable[CertificateAuthority], *,
                           municipality: str | None = None) -> None:
        """Replace the CAs a terminal may act for (regional CAs only: they issue the subscriber
        certificates a window revokes); `municipality` None keeps the one stored."""
        chosen = {ca.id: ca for ca in cas}
        for ca in chosen.values():
            if ca.kind is not CAKind.REGIONAL:
                raise InvalidInput(f"CA {ca.name} is a {ca.kind} CA; an RA terminal acts for regional "
                                   "(prefectural) CAs only")
        # keep the rows that stay (a new row with the same key would be inserted before the old one is deleted)
        kept = [row for row in terminal.scope if row.ca_id in chosen]
        terminal.scope = kept + [RATerminalScope(ca_id=ca_id) for ca_id in sorted(chosen.keys() - terminal.ca_ids)]
        if municipality is not None:
            terminal.municipality = municipality
        self.session.flush()
