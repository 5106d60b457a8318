"""Registered verifiers (seed 004 1.3) and their LDAP accounts.

The database is the source of truth: a verifier is a row with its certificate and the argon2
hash of its directory password.  The directory holds a projection of the rows that are in
effect (`effective`): one account ``cn=<name>,ou=verifiers,<base>`` per verifier, member of
the group the slapd ACL checks before it lets a DN read certificateRevocationList.  `sync`
makes the directory match the rows; it runs right after each change (`apply_now`) and in
every publisher round, so a change made while LDAP is down, an expired certificate or a
revoked one reaches the directory at the latest one round later.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import ldap3
import sqlalchemy as sa
from argon2 import PasswordHasher
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.orm import Session

from ca import audit, hierarchy
from ca.config import Settings
from ca.credentials import MIN_LENGTH
from ca.errors import AlreadyExists, InvalidInput, NotFound, ServiceUnavailable
from ca.storage.engine import session_scope
from ca.storage.models import Certificate, CertKind, Revocation, Verifier, VerifierStatus
from ca.verifiers.rule import in_effect
from repository.directory import Directory, normal_dn

#: LDAP-safe: no character that needs escaping in a DN or a filter.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: The group's own RDN value: an account of that name would be the group entry.
RESERVED_NAMES = frozenset({"verifiers"})
PASSWORD_SCHEME = "{ARGON2}"
CERT_ATTRIBUTE = "userCertificate;binary"
_PASSWORD_CLASSES = ("applicationProcess", "simpleSecurityObject", "pkiUser")
_CERT_ONLY_CLASSES = ("applicationProcess", "pkiUser")  # simpleSecurityObject requires a userPassword


# -- names -------------------------------------------------------------------------------------


def verifiers_dn(base_dn: str) -> str:
    """The container of the accounts."""
    return f"ou=verifiers,{base_dn}"


def group_dn(base_dn: str) -> str:
    """The group whose members the slapd ACL lets read certificateRevocationList."""
    return f"cn=verifiers,{verifiers_dn(base_dn)}"


def account_dn(name: str, base_dn: str) -> str:
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


@dataclasses.dataclass(frozen=True, slots=True)
class SyncReport:
    """What one `sync` changed in the directory: accounts created, corrected or re-joined, removed."""

    added: int = 0
    updated: int = 0
    removed: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def line(self) -> str:
        return f"verifier accounts: {self.added} added, {self.updated} updated, {self.removed} removed"


@dataclasses.dataclass(frozen=True, slots=True)
class Applied:
    """The outcome of `apply_now`: the report, or why the directory could not be reached."""

    report: SyncReport | None
    pending: str = ""  # the reason, when report is None


# -- the effective rule --------------------------------------------------------------------------


def _in_effect(verifier: Verifier, *, revoked: bool, now: dt.datetime) -> bool:
    return in_effect(verifier.status, verifier.cert_not_after, revoked=revoked, now=now)


def effective(verifier: Verifier, session: Session, *, now: dt.datetime) -> bool:
    """Whether `verifier` may read CRLs and ask OCSP at `now`: registered and not removed, its
    certificate unexpired and, when revoca knows the certificate, not revoked."""
    return _in_effect(verifier, revoked=_revoked(session, verifier.certificate_id), now=now)


def _revoked(session: Session, certificate_id: int | None) -> bool:
    return certificate_id is not None and session.scalar(
        sa.select(Revocation.id).where(Revocation.certificate_id == certificate_id)) is not None


def _with_revocation(session: Session, *, active_only: bool) -> Sequence[sa.Row[tuple[Verifier, int | None]]]:
    """Verifiers with the id of their certificate's revocation (None if not revoked), in one query."""
    q = (sa.select(Verifier, Revocation.id)
         .outerjoin(Revocation, Revocation.certificate_id == Verifier.certificate_id)
         .order_by(Verifier.name))
    if active_only:
        q = q.where(Verifier.status == VerifierStatus.ACTIVE)
    return session.execute(q).all()


def _info(v: Verifier, *, revoked: bool, now: dt.datetime) -> VerifierInfo:
    return VerifierInfo(
        name=v.name, dn=v.ldap_dn, status=v.status, effective=_in_effect(v, revoked=revoked, now=now),
        has_password=v.password_hash is not None, subject_dn=v.cert_subject_dn, issuer_dn=v.cert_issuer_dn,
        serial=v.cert_serial, fingerprint=v.cert_fingerprint, not_after=v.cert_not_after,
        issued_by_revoca=v.certificate_id is not None, created_at=v.created_at, removed_at=v.removed_at,
        removed_reason=v.removed_reason,
    )


# -- the registry ----------------------------------------------------------------------------------


def _by_name(session: Session, name: str) -> Verifier | None:
    # Case-insensitive: cn matching in LDAP is, so "Alice" and "alice" would be one account.
    return session.scalar(sa.select(Verifier).where(sa.func.lower(Verifier.name) == name.lower()))


def check_available(session: Session, name: str, fingerprint: bytes | None = None) -> None:
    """AlreadyExists if `name` (any case) or the certificate is registered, removed ones included:
    removed rows stay for history and their names and certificates are not reused."""
    check_name(name)
    taken = _by_name(session, name)
    if taken is not None:
        state = "registered" if taken.status is VerifierStatus.ACTIVE else "used by a removed verifier"
        raise AlreadyExists(f"verifier name {taken.name!r} is already {state}; choose another name")
    if fingerprint is not None:
        holder = session.scalar(sa.select(Verifier.name).where(Verifier.cert_fingerprint == fingerprint))
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
    if certificate_id is None:
        # A certificate revoca issued or imported: its revocation is then known here too.
        certificate_id = session.scalar(sa.select(Certificate.id).where(Certificate.fingerprint_sha256 == fingerprint))
    row = Verifier(
        name=name, ldap_dn=account_dn(name, base_dn), password_hash=password_hash, cert_der=der,
        cert_fingerprint=fingerprint, cert_subject_dn=certificate.subject.rfc4514_string(),
        cert_issuer_dn=certificate.issuer.rfc4514_string(), cert_serial=certificate.serial_number,
        cert_not_after=not_after, certificate_id=certificate_id, status=VerifierStatus.ACTIVE, created_at=now,
        removed_at=None, removed_reason="",
    )
    session.add(row)
    try:
        session.flush()
    except sa.exc.IntegrityError as exc:  # a concurrent registration took the name or certificate
        raise AlreadyExists(f"verifier {name!r} or its certificate was registered at the same moment; "
                            "run `revoca verifier list`") from exc
    audit.record(session, "verifier.added", actor=actor, at=now, name=name, dn=row.ldap_dn,
                 certificate_sha256=fingerprint.hex(), subject=row.cert_subject_dn,
                 issued_by_revoca=certificate_id is not None, password=password_hash is not None)
    return _info(row, revoked=_revoked(session, certificate_id), now=now)


def add_verifier(engine: sa.Engine, *, name: str, certificate: x509.Certificate, password: str | None,
                 now: dt.datetime, base_dn: str, certificate_id: int | None = None, actor: str) -> VerifierInfo:
    """Register a verifier and commit; only the argon2 hash of `password` is stored.

    `password` None makes a certificate-only account (no simple bind).  Refused: a name that is
    not LDAP-safe or is taken (any case, removed verifiers included), a certificate already
    registered, an expired certificate.  The directory follows at the next `sync`.
    """
    with session_scope(engine) as session:
        return register(session, name=name, certificate=certificate, password=password, now=now, base_dn=base_dn,
                        certificate_id=certificate_id, actor=actor)


def remove_verifier(engine: sa.Engine, name: str, *, reason: str, now: dt.datetime, actor: str) -> VerifierInfo:
    """Mark a verifier removed (the row stays for the provision history); `sync` then drops the account."""
    if not reason.strip():
        raise InvalidInput("give the reason for removing a verifier (--reason)")
    with session_scope(engine) as session:
        row = _by_name(session, name)
        if row is None:
            raise NotFound(f"no verifier named {name!r}; see `revoca verifier list`")
        if row.status is VerifierStatus.REMOVED:
            raise InvalidInput(f"verifier {row.name!r} was already removed at {row.removed_at:%Y-%m-%d %H:%M:%SZ}")
        row.status = VerifierStatus.REMOVED
        row.removed_at = now
        row.removed_reason = reason.strip()
        session.flush()
        audit.record(session, "verifier.removed", actor=actor, at=now, name=row.name, dn=row.ldap_dn,
                     reason=row.removed_reason, certificate_sha256=row.cert_fingerprint.hex())
        return _info(row, revoked=_revoked(session, row.certificate_id), now=now)


def list_verifiers(engine: sa.Engine, *, now: dt.datetime) -> list[VerifierInfo]:
    """Every verifier ever registered, removed ones included, by name; `effective` as of `now`."""
    with session_scope(engine, readonly=True) as session:
        return [_info(v, revoked=rev is not None, now=now) for v, rev in _with_revocation(session, active_only=False)]


# -- issuing a verifier's certificate ----------------------------------------------------------------


def issue_certificate(ctx: hierarchy.Context, name: str, *, key_path: Path) -> tuple[x509.Certificate, Certificate]:
    """A client certificate from the bridge CA, its P-256 key written to `key_path` (mode 0600, never overwritten).

    The key is a file because it is the verifier's, handed over with the certificate; revoca
    keeps only the certificate (stored, so its revocation reaches the CRL and `effective`).
    """
    if key_path.exists():
        raise InvalidInput(f"{key_path} already exists; choose another --out")
    bridge = ctx.store.bridge()
    cert = hierarchy.issue_with_key_file(ctx, bridge, CertKind.VERIFIER, subject=verifier_subject(name),
                                         key_path=key_path)
    return cert, ctx.store.certificate(bridge, cert.serial_number)


# -- the directory -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Account:
    dn: str
    name: str
    password_hash: str | None
    cert_der: bytes

    @property
    def classes(self) -> tuple[str, ...]:
        return _PASSWORD_CLASSES if self.password_hash is not None else _CERT_ONLY_CLASSES

    def attributes(self) -> dict[str, object]:
        attrs: dict[str, object] = {"cn": self.name, CERT_ATTRIBUTE: [self.cert_der]}
        if self.password_hash is not None:
            attrs["userPassword"] = [self.password_hash.encode()]
        return attrs


def _wanted(engine: sa.Engine, base_dn: str, now: dt.datetime) -> dict[str, _Account]:
    with session_scope(engine, readonly=True) as session:
        rows = _with_revocation(session, active_only=True)
        accounts = [_Account(account_dn(v.name, base_dn), v.name, v.password_hash, v.cert_der)
                    for v, rev in rows if _in_effect(v, revoked=rev is not None, now=now)]
    return {normal_dn(a.dn): a for a in accounts}


def _classes_of(entry_classes: list[bytes]) -> set[str]:
    return {c.decode().lower() for c in entry_classes} - {"top"}


def sync(engine: sa.Engine, directory: Directory, base_dn: str, *, now: dt.datetime,
         actor: str = "repository") -> SyncReport:
    """Make the accounts under ou=verifiers and the group's members match the effective verifiers.

    Access is taken away before anything is added: stray members leave the group first, then
    stray accounts are deleted, then accounts are created or corrected and join the group.  The
    bound DN (the rootdn) stays a member, because groupOfNames needs one.  Idempotent: a second
    run changes nothing and reports zeros.
    """
    wanted = _wanted(engine, base_dn, now)
    group = group_dn(base_dn)
    placeholder = directory.endpoint.bind_dn or base_dn
    directory.ensure_parents(group, base_dn)
    group_entry = directory.read(group, ("member",))
    if group_entry is None:
        directory.add(group, ("groupOfNames",), {"cn": "verifiers", "member": [placeholder]})
        members = {normal_dn(placeholder): placeholder}
    else:
        members = {normal_dn(m.decode()): m.decode() for m in group_entry.values("member")}
        if normal_dn(placeholder) not in members:  # put back first, or dropping the last member would fail
            directory.modify(group, {"member": [(ldap3.MODIFY_ADD, [placeholder])]})
            members[normal_dn(placeholder)] = placeholder
    existing = {normal_dn(e.dn): e for e in directory.search(verifiers_dn(base_dn), attributes=(
        "objectClass", "userPassword", CERT_ATTRIBUTE)) if normal_dn(e.dn) != normal_dn(group)}

    removed: set[str] = set()
    keep = set(wanted) | {normal_dn(placeholder)}
    leaving = [dn for key, dn in members.items() if key not in keep]
    if leaving:
        directory.modify(group, {"member": [(ldap3.MODIFY_DELETE, leaving)]})
        removed.update(normal_dn(dn) for dn in leaving)
    for key, entry in existing.items():
        if key not in wanted:
            directory.delete(entry.dn)
            removed.add(key)

    added: set[str] = set()
    updated: set[str] = set()
    for key, account in wanted.items():
        entry = existing.get(key)
        if entry is None:
            directory.add(account.dn, account.classes, account.attributes())
            added.add(key)
            continue
        if _classes_of(entry.values("objectClass")) != {c.lower() for c in account.classes}:
            # A structural or auxiliary class of another kind (an account made by hand): start afresh.
            directory.delete(entry.dn)
            directory.add(account.dn, account.classes, account.attributes())
            updated.add(key)
            continue
        password = [account.password_hash.encode()] if account.password_hash is not None else []
        cert = entry.values(CERT_ATTRIBUTE) or entry.values("userCertificate")
        if entry.values("userPassword") != password or cert != [account.cert_der]:
            changes: dict[str, list[tuple[str, list[object]]]] = {
                CERT_ATTRIBUTE: [(ldap3.MODIFY_REPLACE, [account.cert_der])]}
            if password:
                changes["userPassword"] = [(ldap3.MODIFY_REPLACE, list(password))]
            directory.modify(account.dn, changes)
            updated.add(key)
    joining = [account.dn for key, account in wanted.items() if key not in members]
    if joining:
        directory.modify(group, {"member": [(ldap3.MODIFY_ADD, joining)]})
        updated.update(normal_dn(dn) for dn in joining if normal_dn(dn) not in added)

    report = SyncReport(added=len(added), updated=len(updated), removed=len(removed))
    if report.changed:
        with session_scope(engine) as session:
            audit.record(session, "verifier.directory_synced", actor=actor, at=now, added=sorted(added),
                         updated=sorted(updated), removed=sorted(removed))
    return report


def apply_now(settings: Settings, engine: sa.Engine, *, now: dt.datetime) -> Applied:
    """`sync` against the configured local slapd at once.

    When the directory cannot be reached, the reason is returned instead of raised: the
    database change is committed already and the publisher's next round applies it.
    """
    from repository.slapd import LocalSlapd  # the slapd module is only needed here

    slapd = LocalSlapd(settings.ldap_dir, settings.repository.base_dn, settings.repository.port)
    try:
        with Directory(slapd.endpoint(timeout=5.0)) as directory:
            return Applied(sync(engine, directory, slapd.base_dn, now=now))
    except ServiceUnavailable as exc:
        return Applied(None, str(exc))

