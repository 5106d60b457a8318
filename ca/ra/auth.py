"""Who is calling the RA API: the terminal (TLS client certificate) and the clerk (their own credential).

The TLS layer (gunicorn) checks that the client certificate chains to the bridge CA; the
server puts the certificate's DER in the WSGI environ as `revoca.client_cert_der` (a key no
HTTP header can set).  Here it must also be a registered, enabled, unrevoked terminal.
The clerk authenticates per request with HTTP Basic (operator name and password), checked
against the scrypt hash, and must hold the receptionist role; a password older than
[operators] max_password_age_days is refused (only after it matched, so the refusal tells
nothing to whoever does not know it, and the cost stays one scrypt).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib

from flask import Request

from ca.enums import Role
from ca.errors import PermissionDenied
from ca.http.client_cert import CLIENT_CERT_ENVIRON
from ca.officers.credentials import RememberedPasswords
from ca.officers.passwords import PasswordPolicy
from ca.storage.models import Operator, RATerminal
from ca.storage.revocations import RevocationReadStore


class Unauthenticated(PermissionDenied):
    """No usable credential at all (HTTP 401), as opposed to one that is not allowed (403)."""


def terminal_of(request: Request, store: RevocationReadStore) -> RATerminal:
    der = request.environ.get(CLIENT_CERT_ENVIRON)
    if not der:
        raise Unauthenticated("no TLS client certificate: RA terminals authenticate with the certificate "
                              "`revoca ra add` gave them")
    terminal = store.terminal_by_fingerprint(hashlib.sha256(der).digest())
    if terminal is None:
        raise PermissionDenied("this client certificate is not a registered RA terminal")
    if terminal.disabled:
        raise PermissionDenied(f"RA terminal {terminal.name} is disabled")
    if store.revocation_of(terminal.certificate_id) is not None:
        raise PermissionDenied(f"the certificate of RA terminal {terminal.name} is revoked")
    return terminal


def _basic(request: Request) -> tuple[str, str]:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        raise Unauthenticated("name the receptionist with HTTP Basic authentication (operator:password)")
    try:
        name, sep, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthenticated("the Authorization header is not valid Basic credentials") from exc
    if not sep or "\x00" in name or "\x00" in password:
        raise Unauthenticated("the Authorization header is not valid Basic credentials")
    return name, password


def claimed_name(request: Request) -> str | None:
    """The operator name the Basic credentials claim, for the audit record of a failed login
    (None when there are none or they cannot be read)."""
    try:
        return _basic(request)[0]
    except Unauthenticated:
        return None


def receptionist_of(request: Request, store: RevocationReadStore,
                    remembered: RememberedPasswords | None = None, *, policy: PasswordPolicy | None = None,
                    now: dt.datetime | None = None) -> Operator:
    name, password = _basic(request)
    return store.authenticate(name, password, Role.RECEPTIONIST, remembered=remembered, policy=policy, now=now)
