"""Operator login for CLI commands: password and role checked, every attempt audited (seed 004 5.4.1)."""

from __future__ import annotations

from ca import audit
from ca.cli.common import App, read_secret
from ca.enums import Role
from ca.errors import PermissionDenied
from ca.storage.engine import session_scope
from ca.storage.store import ReadStore


def authenticate(app: App, operator: str, *roles: Role) -> None:
    """The operator's password and one of `roles`; every attempt, good or bad, is audited."""
    password = read_secret(f"Password for {operator}")
    try:
        with session_scope(app.engine, readonly=True) as session:
            store = ReadStore(session)
            last: PermissionDenied | None = None
            for role in roles:
                try:
                    store.authenticate(operator, password, role)
                    break
                except PermissionDenied as exc:
                    last = exc
            else:
                assert last is not None
                raise last
    except PermissionDenied as exc:
        audit.record_failure(app.engine, "operator.login", actor=operator, error=str(exc),
                             roles=[r.value for r in roles])
        raise
    with session_scope(app.engine) as session:
        audit.record(session, "operator.login", actor=operator, roles=[r.value for r in roles])
