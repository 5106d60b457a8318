"""The registry of verifiers (seed 004 1.3): who may read CRLs over LDAP and ask the OCSP responder.

The database is the source of truth: a verifier is a row with its certificate and the argon2
hash of its directory password.  Registered verifiers that are in `effective` (ca.verifiers.rule)
get an LDAP account, ``cn=<name>,ou=verifiers,<base>``; the repository keeps those accounts in
step with the rows (repository.verifier_accounts).  Here: the checks on names and passwords,
registration, removal, the list, and issuing a verifier's certificate from the bridge CA.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
from pathlib import Path
from typing import Protocol

from argon2 import PasswordHasher
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ca import audit, hierarchy
from ca.enums import CertKind, VerifierStatus
from ca.errors import AlreadyExists, InvalidInput, NotFound
from ca.officers.credentials import MIN_LENGTH
from ca.storage.engine import Engine, Session, session_scope
from ca.storage.verifiers import VerifierReads, VerifierWrites
from ca.verifiers.rule import in_effect

#: LDAP-safe: no character that needs escaping in a DN or a filter.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: The group's own RDN value: an account of that name would be the group entry.
RESERVED_NAMES = frozenset({"verifiers"})
#: The scheme of the stored hash: the userPassword value slapd's argon2 module checks on a bind.
PASSWORD_SCHEME = "{ARGON2}"


# -- names -------------------------------------------------------------------------------------


def verifiers_dn(base_dn: str) -> str:
    """The container of the accounts in the directory."""
    return f"ou=verifiers,{base_dn}"


def account_dn(name: str, base_dn: str) -> str:
    """The DN of a verifier's LDAP account, recorded with its row at registration."""
    return f"cn={name},{verifiers_dn(base_dn)}"


def verifier_subject(name: str) -> x509.Name:
    """Subject of a certificate revoca issues to a verifier."""
    return x509.Name.from_rfc4514_string(f"CN={check_name(name)},OU=Verifiers,O=JPKI,C=JP")


def check_name(name: str) -> str:
    """`name` if it can be an account's RDN as is; InvalidInput otherwise."""
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(f"verifier name {name!r} is not allowed: use 1-64 of A-Z a-z 0-9 . _ -, "
                           "starting with a letter or digit")
    if name.lower() in RESERVED_NAMES:
        raise InvalidInput(f"verifier name {name!r} is reserved (it names the verifiers group); choose another")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"verifier password too short: use at least {MIN_LENGTH} characters")
    return password


def hash_password(password: str) -> str:
    """The userPassword value slapd's argon2 module checks on a simple bind."""
    return PASSWORD_SCHEME + PasswordHasher().hash(check_password(password))


# -- value objects -----------------------------------------------------------------------------


class Registered(Protocol):
    """What the registry reads of a stored verifier (a row of ca.storage.verifiers)."""

    name: str
    ldap_dn: str
    password_hash: str | None
    cert_fingerprint: bytes
    cert_subject_dn: str
    cert_issuer_dn: str
    cert_serial: int
    cert_not_after: dt.datetime
    certificate_id: int | None
    status: VerifierStatus
    created_at: dt.datetime
    removed_at: dt.datetime | None
    removed_reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class VerifierInfo:
    """A verifier as callers see it; carries no password hash, so it is safe to log."""

    name: str
    dn: str
    status: VerifierStatus
    effective: bool
    has_password: bool
    subject_dn: str
    issuer_dn: str
    serial: int
    fingerprint: bytes  # SHA-256 of the certificate's DER
    not_after: dt.datetime
    issued_by_revoca: bool
    created_at: dt.datetime
    removed_at: dt.datetime | None
    removed_reason: str


# -- the effective rule --------------------------------------------------------------------------


def in_effect_now(verifier: Registered, *, revoked: bool, now: dt.datetime) -> bool:
    """ca.verifiers.rule.in_effect on a stored verifier, given whether its certificate is revoked."""
    return in_effect(verifier.status, verifier.cert_not_after, revoked=revoked, now=now)


def effective(verifier: Registered, session: Session, *, now: dt.datetime) -> bool:
    """Whether `verifier` may read CRLs and ask OCSP at `now`: registered and not removed, its
    certificate unexpired and, when revoca knows the certificate, not revoked."""
    return in_effect_now(verifier, revoked=VerifierReads(session).is_revoked(verifier.certificate_id), now=now)


def _info(v: Registered, *, revoked: bool, now: dt.datetime) -> VerifierInfo:
    return VerifierInfo(
        name=v.name, dn=v.ldap_dn, status=v.status, effective=in_effect_now(v, revoked=revoked, now=now),
        has_password=v.password_hash is not None, subject_dn=v.cert_subject_dn, issuer_dn=v.cert_issuer_dn,
        serial=v.cert_serial, fingerprint=v.cert_fingerprint, not_after=v.cert_not_after,
        issued_by_revoca=v.certificate_id is not None, created_at=v.created_at, removed_at=v.removed_at,
        removed_reason=v.removed_reason,
    )


# -- the registry ----------------------------------------------------------------------------------


def check_available(session: Session, name: str, fingerprint: bytes | None = None) -> None:
    """AlreadyExists if `name` (any case) or the certificate is registered, removed ones included:
    removed rows stay for history and their names and certificates are not reused."""
    check_name(name)
    store = VerifierReads(session)
    taken = store.by_name(name)
    if taken is not None:
        state = "registered" if taken.status is VerifierStatus.ACTIVE else "used by a removed verifier"
        raise AlreadyExists(f"verifier name {taken.name!r} is already {state}; choose another name")
    if fingerprint is not None:
        holder = store.holder_of(fingerprint)
        if holder is not None:
            raise AlreadyExists(f"this certificate (SHA-256 {fingerprint.hex()[:16]}…) is already registered "
                                f"for verifier {holder!r}; each verifier needs its own certificate")


def register(session: Session, *, name: str, certificate: x509.Certificate, password: str | None,
             now: dt.datetime, base_dn: str, certificate_id: int | None = None, actor: str) -> VerifierInfo:
    """Add a verifier in the caller's transaction (see `add_verifier`)."""
    check_name(name)
    password_hash = hash_password(password) if password is not None else None
    der = certificate.public_bytes(serialization.Encoding.DER)
    fingerprint = hashlib.sha256(der).digest()
    not_after = certificate.not_valid_after_utc
    if not_after <= now:
        raise InvalidInput(f"the certificate for verifier {name!r} expired at {not_after:%Y-%m-%d %H:%M:%SZ}; "
                           "register a current one")
    check_available(session, name, fingerprint)
    store = VerifierWrites(session)
    if certificate_id is None:
        # A certificate revoca issued or imported: its revocation is then known here too.
        certificate_id = store.certificate_id(fingerprint)
    row = store.add(name=name, ldap_dn=account_dn(name, base_dn), password_hash=password_hash, cert_der=der,
                    cert_fingerprint=fingerprint, cert_subject_dn=certificate.subject.rfc4514_string(),
                    cert_issuer_dn=certificate.issuer.rfc4514_string(), cert_serial=certificate.serial_number,
                    cert_not_after=not_after, certificate_id=certificate_id, now=now)
    audit.record(session, "verifier.added", actor=actor, at=now, name=name, dn=row.ldap_dn,
                 certificate_sha256=fingerprint.hex(), subject=row.cert_subject_dn,
                 issued_by_revoca=certificate_id is not None, password=password_hash is not None)
    return _info(row, revoked=store.is_revoked(certificate_id), now=now)


def add_verifier(engine: Engine, *, name: str, certificate: x509.Certificate, password: str | None,
                 now: dt.datetime, base_dn: str, certificate_id: int | None = None, actor: str) -> VerifierInfo:
    """Register a verifier and commit; only the argon2 hash of `password` is stored.

    `password` None makes a certificate-only account (no simple bind).  Refused: a name that is
    not LDAP-safe or is taken (any case, removed verifiers included), a certificate already
    registered, an expired certificate.  The directory follows at the next account sync.
    """
    with session_scope(engine) as session:
        return register(session, name=name, certificate=certificate, password=password, now=now, base_dn=base_dn,
                        certificate_id=certificate_id, actor=actor)


def remove_verifier(engine: Engine, name: str, *, reason: str, now: dt.datetime, actor: str) -> VerifierInfo:
    """Mark a verifier removed (the row stays for the provision history); the account sync then drops
    the account."""
    if not reason.strip():
        raise InvalidInput("give the reason for removing a verifier (--reason)")
    with session_scope(engine) as session:
        store = VerifierWrites(session)
        row = store.by_name(name)
        if row is None:
            raise NotFound(f"no verifier named {name!r}; see `revoca verifier list`")
        if row.status is VerifierStatus.REMOVED:
            raise InvalidInput(f"verifier {row.name!r} was already removed at {row.removed_at:%Y-%m-%d %H:%M:%SZ}")
        store.mark_removed(row, at=now, reason=reason.strip())
        audit.record(session, "verifier.removed", actor=actor, at=now, name=row.name, dn=row.ldap_dn,
                     reason=row.removed_reason, certificate_sha256=row.cert_fingerprint.hex())
        return _info(row, revoked=store.is_revoked(row.certificate_id), now=now)


def list_verifiers(engine: Engine, *, now: dt.datetime) -> list[VerifierInfo]:
    """Every verifier ever registered, removed ones included, by name; `effective` as of `now`."""
    with session_scope(engine, readonly=True) as session:
        return [_info(v, revoked=revoked, now=now)
                for v, revoked in VerifierReads(session).with_revocation(active_only=False)]


# -- issuing a verifier's certificate ----------------------------------------------------------------


def issue_certificate(ctx: hierarchy.Context, name: str, *, key_path: Path) -> tuple[x509.Certificate, int]:
    """A client certificate from the bridge CA, its P-256 key written to `key_path` (mode 0600, never
    overwritten); returns the certificate and the id revoca stored it under (for `register`).

    The key is a file because it is the verifier's, handed over with the certificate; revoca
    keeps only the certificate (stored, so its revocation reaches the CRL and `effective`).
    """
    if key_path.exists():
        raise InvalidInput(f"{key_path} already exists; choose another --out")
    bridge = ctx.store.bridge()
    cert = hierarchy.issue_with_key_file(ctx, bridge, CertKind.VERIFIER, subject=verifier_subject(name),
                                         key_path=key_path)
    return cert, ctx.store.certificate(bridge, cert.serial_number).id
