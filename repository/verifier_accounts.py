"""The LDAP accounts of registered verifiers: the directory's projection of the registry.

The registry (ca.verifiers.registry) is the source of truth.  The directory holds one account
``cn=<name>,ou=verifiers,<base>`` per verifier in effect (ca.verifiers.rule), member of the
group the slapd ACL checks before it lets a DN read certificateRevocationList
(repository/acl.py).  `sync` makes the directory match the rows; it runs right after
each change (`apply_now`) and in every publisher round, so a change made while LDAP is down,
an expired certificate or a revoked one reaches the directory at the latest one round later.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import ldap3

from ca import audit
from ca.config import Settings
from ca.errors import ServiceUnavailable
from ca.storage.engine import Engine, session_scope
from ca.storage.verifiers import VerifierReads
from ca.verifiers.registry import account_dn, in_effect_now, verifiers_dn
from repository.directory import Directory, normal_dn

__all__ = ["CERT_ATTRIBUTE", "Applied", "SyncReport", "account_dn", "apply_now", "group_dn", "sync", "verifiers_dn"]

CERT_ATTRIBUTE = "userCertificate;binary"
_PASSWORD_CLASSES = ("applicationProcess", "simpleSecurityObject", "pkiUser")
_CERT_ONLY_CLASSES = ("applicationProcess", "pkiUser")  # simpleSecurityObject requires a userPassword


def group_dn(base_dn: str) -> str:
    """The group whose members the slapd ACL lets read certificateRevocationList."""
    return f"cn=verifiers,{verifiers_dn(base_dn)}"


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


def _wanted(engine: Engine, base_dn: str, now: dt.datetime) -> dict[str, _Account]:
    with session_scope(engine, readonly=True) as session:
        rows = VerifierReads(session).with_revocation(active_only=True)
        accounts = [_Account(account_dn(v.name, base_dn), v.name, v.password_hash, v.cert_der)
                    for v, revoked in rows if in_effect_now(v, revoked=revoked, now=now)]
    return {normal_dn(a.dn): a for a in accounts}


def _classes_of(entry_classes: list[bytes]) -> set[str]:
    return {c.decode().lower() for c in entry_classes} - {"top"}


def sync(engine: Engine, directory: Directory, base_dn: str, *, now: dt.datetime,
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
    for key, stale in existing.items():
        if key not in wanted:
            directory.delete(stale.dn)
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


def apply_now(settings: Settings, engine: Engine, *, now: dt.datetime) -> Applied:
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
