"""Who is asking, for the page (required) and /metrics (optional): HTTP Basic checked against
the operators, remembered briefly per worker (ca.status_page.auth.CredentialCache)."""

from __future__ import annotations

import logging

from flask import current_app, request

from ca.errors import PermissionDenied
from ca.status_page.auth import Officer, basic_credentials, check_officer
from ca.storage.engine import session_scope

log = logging.getLogger("revoca.status")


def officer_of_request() -> Officer:
    """The officer the request's credentials name (Unauthenticated / PermissionDenied otherwise)."""
    ext = current_app.extensions["revoca_status"]
    name, password = basic_credentials(request.headers.get("Authorization", ""))
    cache = ext["auth_cache"]
    officer = cache.get(name, password)
    if officer is None:
        try:
            with session_scope(ext["engine"], readonly=True) as session:
                officer = check_officer(session, name, password)
        except PermissionDenied as exc:
            log.warning("status page refused %s: %s", request.remote_addr, exc)
            raise
        cache.put(name, password, officer)
    return officer


def optional_officer() -> Officer | None:
    """The officer when credentials were sent and hold; None without any (wrong ones raise)."""
    if not request.headers.get("Authorization"):
        return None
    return officer_of_request()
