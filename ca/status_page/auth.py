"""Who may open the status page: CA officers, named with HTTP Basic against the operators table.

Allowed are the roles that run the CA side (seed 004 5.2.1.1): the CA administrator, key
managers, reviewers, approvers, senior and ordinary operators: the page is their view of
CRL expiry, publication, waiting requests and key activation.  Not allowed are receptionists
(in revoca that role is also the municipal RA window clerk of 5.2.1.2, who has no business
seeing CA operations) and the internal auditor (whose job is the audit log, kept apart from
operations by separation of duties; the page shows nothing of it).

A password older than [operators] max_password_age_days is refused (403, after the password
matched, so the refusal tells nothing to whoever does not know it); within warn_days of that
age the page shows a banner with the date.

A password check is an scrypt run (~50 ms); a successful check is remembered for a short
while, keyed by a digest of name and password, so a page load and its reloads do not each
cost one.  Failures are never remembered: each wrong guess keeps its full cost.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import threading
import time
from collections.abc import Callable

from ca.enums import Role
from ca.errors import NotFound, PermissionDenied
from ca.officers.credentials import verify_for_unknown_name, verify_password
from ca.officers.passwords import PasswordPolicy, PasswordState, password_age
from ca.storage.engine import Session
from ca.storage.store import ReadStore

PAGE_ROLES = frozenset({Role.CA_ADMINISTRATOR, Role.KEY_MANAGER, Role.REVIEWER, Role.APPROVER,
                        Role.SENIOR_OPERATOR, Role.OPERATOR})
REALM = "revoca officers"
CACHE_SECONDS = 30.0
CACHE_MAX = 256


class Unauthenticated(PermissionDenied):
    """No credentials, or ones that do not match (HTTP 401), as opposed to a role that is not allowed (403)."""


class PasswordExpired(PermissionDenied):
    """The password matched but is past [operators] max_password_age_days (HTTP 403)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Officer:
    name: str
    roles: tuple[str, ...]
    password_warning: str | None = None  # within warn_days of the maximum age: what the banner says


def basic_credentials(header: str) -> tuple[str, str]:
    """(name, password) from an Authorization header's Basic value."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        raise Unauthenticated("log in with your operator name and password")
    try:
        name, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthenticated("the Authorization header is not valid Basic credentials") from exc
    if not sep or not name:
        raise Unauthenticated("the Authorization header is not valid Basic credentials")
    return name, password


def check_officer(session: Session, name: str, password: str, *, policy: PasswordPolicy | None = None,
                  now: dt.datetime | None = None) -> Officer:
    """The officer these credentials name, one scrypt whatever is wrong; `policy` ([operators])
    refuses an expired password and notes one about to expire."""
    try:
        op = ReadStore(session).operator(name)
    except NotFound:
        verify_for_unknown_name(password)
        raise Unauthenticated(f"operator {name!r}: unknown, disabled or wrong password") from None
    if not verify_password(password, op.credential_hash) or op.disabled:
        raise Unauthenticated(f"operator {name!r}: unknown, disabled or wrong password")
    warning = None
    if policy is not None:
        age = password_age(op.name, op.password_set_at, now=now or dt.datetime.now(dt.UTC), policy=policy)
        if age.state is PasswordState.EXPIRED:  # 403 with the date and what to do
            raise PasswordExpired(age.refusal())
        warning = age.warning() if age.state is PasswordState.EXPIRING else None
    allowed = op.role_set & PAGE_ROLES
    if not allowed:
        raise PermissionDenied(f"operator {name!r} holds no role that may see the status page "
                               f"({', '.join(sorted(PAGE_ROLES))})")
    return Officer(op.name, tuple(sorted(r.value for r in op.role_set)), warning)


class CredentialCache:
    """Successful checks for `ttl` seconds (per process; each gunicorn worker keeps its own)."""

    def __init__(self, ttl: float = CACHE_SECONDS, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._hits: dict[bytes, tuple[float, Officer]] = {}

    @staticmethod
    def _key(name: str, password: str) -> bytes:
        return hashlib.sha256(name.encode() + b"\0" + password.encode()).digest()

    def get(self, name: str, password: str) -> Officer | None:
        key = self._key(name, password)
        with self._lock:
            found = self._hits.get(key)
            if found is None:
                return None
            if found[0] <= self._clock():
                del self._hits[key]
                return None
            return found[1]

    def put(self, name: str, password: str, officer: Officer) -> None:
        with self._lock:
            if len(self._hits) >= CACHE_MAX:
                now = self._clock()
                self._hits = {k: v for k, v in self._hits.items() if v[0] > now}
                if len(self._hits) >= CACHE_MAX:
                    self._hits.clear()
            self._hits[self._key(name, password)] = (self._clock() + self.ttl, officer)
