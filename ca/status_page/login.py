"""Who is asking, for the page (required) and /metrics (optional): HTTP Basic checked against
the operators, remembered briefly per worker (ca.status_page.auth.CredentialCache).

Every login is audited as `status_page.login` (seed 004 5.4.1: accesses to the system): each
password check, successful or not, with the officer's name as the actor and the client's
address.  A check remembered by the cache is no new login and is not recorded again; a
request without credentials (a browser's first, before it asks for them) is no attempt.
A success that cannot be recorded is not let in.
"""

from __future__ import annotations

import logging

from flask import current_app, request

from ca import audit
from ca.errors import PermissionDenied
from ca.status_page.auth import Officer, basic_credentials, check_officer
from ca.storage.engine import Engine, session_scope

log = logging.getLogger("revoca.status")

LOGIN_EVENT = "status_page.login"
ACTOR_MAX = 128  # the audit log's actor column


def officer_of_request() -> Officer:
    """The officer the request's credentials name (Unauthenticated / PermissionDenied otherwise)."""
    ext = current_app.extensions["revoca_status"]
    header = request.headers.get("Authorization", "")
    try:
        name, password = basic_credentials(header)
    except PermissionDenied as exc:
        if header:  # malformed credentials are an attempt too
            _record_failure(ext["engine"], "(malformed credentials)", exc)
        raise
    cache = ext["auth_cache"]
    officer = cache.get(name, password)
    if officer is None:
        try:
            with session_scope(ext["engine"], readonly=True) as session:
                officer = check_officer(session, name, password, policy=ext["password_policy"],
                                        now=ext["clock"]())
        except PermissionDenied as exc:
            log.warning("status page refused %s: %s", request.remote_addr, exc)
            _record_failure(ext["engine"], name, exc)
            raise
        with session_scope(ext["engine"]) as session:
            audit.record(session, LOGIN_EVENT, actor=officer.name, roles=list(officer.roles),
                         remote_addr=request.remote_addr, path=request.path)
        cache.put(name, password, officer)
    return officer


def optional_officer() -> Officer | None:
    """The officer when credentials were sent and hold; None without any (wrong ones raise)."""
    if not request.headers.get("Authorization"):
        return None
    return officer_of_request()


def _record_failure(engine: Engine, name: str, exc: PermissionDenied) -> None:
    """A refused login, in a transaction of its own; a lost record is logged, the refusal stands."""
    try:
        audit.record_failure(engine, LOGIN_EVENT, actor=name[:ACTOR_MAX], error=str(exc)[:500],
                             remote_addr=request.remote_addr, path=request.path)
    except Exception:
        log.exception("could not audit a refused status page login from %s", request.remote_addr)
