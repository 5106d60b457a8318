"""Clerk logins at the RA (issue 13): a password past [operators] max_password_age_days is refused
(audited, one scrypt, and only who knows the password learns that it expired); one about to
expire is answered with a warning header; every successful login is one `operator.login`
record naming clerk and terminal; listing a terminal's requests is a personal-data read, audited.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.test import TestResponse

from ca import ceremony
from ca.config import Settings
from ca.enums import Role
from ca.hsm.token import TokenSession
from ca.http.client_cert import CLIENT_CERT_ENVIRON
from ca.officers import credentials
from ca.officers.passwords import PasswordPolicy
from ca.ra.app import LIST_EVENT, LOGIN_EVENT, create_app
from ca.storage.engine import session_scope
from ca.storage.store import Store

from support.installation import open_token
from support.ra_fixtures import (
    PASSWORD,
    CertRef,
    Terminal,
    add_operator,
    audit_events,
    basic_auth,
    last_audit_id,
    register_terminals,
    revocations,
    subscribers,
)
from support.settings import NOW

AT = NOW + dt.timedelta(days=1)  # the RA's clock
POLICY = PasswordPolicy.from_days(90, 14)


@dataclasses.dataclass
class RA:
    engine: sa.Engine
    token: TokenSession
    app: Flask
    terminals: dict[str, Terminal]

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, *, terminal: str = "t1",
             clerk: str = "clerk", password: str = PASSWORD) -> TestResponse:
        return self.app.test_client().open(path, method=method, json=body, headers=basic_auth(clerk, password),
                                           environ_base={CLIENT_CERT_ENVIRON: self.terminals[terminal].der})


def _password_set(engine: sa.Engine, name: str, when: dt.datetime) -> None:
    with session_scope(engine) as s:
        Store(s).operator(name).password_changed_at = when


@pytest.fixture
def ra(engine: sa.Engine, settings: Settings, initialized: ceremony.CeremonyResult, tmp_path: Path) -> Iterator[RA]:
    """Terminals t1, t2; receptionists clerk (password set a day ago), clerk-old (expired: 91 days)
    and clerk-soon (80 days: within the 14-day warning)."""
    token = open_token(settings, initialized)
    terms = register_terminals(engine, token, ["t1", "t2"], tmp_path, now=NOW)
    for name, age in (("clerk", 1), ("clerk-old", 91), ("clerk-soon", 80)):
        add_operator(engine, name, Role.RECEPTIONIST)
        _password_set(engine, name, AT - dt.timedelta(days=age))
    yield RA(engine, token, create_app(engine, token, clock=lambda: AT, password_policy=POLICY),
             {t.name: t for t in terms})
    token.close()


def window(ref: CertRef, **overrides: Any) -> dict[str, Any]:
    body = {"issuer_ca": ref.issuer, "serial": ref.hex_serial, "reason": "keyCompromise", "applicant": "self",
            "identity_document_checked": True, "idempotency_key": f"key-{uuid.uuid4()}", **overrides}
    return {k: v for k, v in body.items() if v is not None}


def logins(engine: sa.Engine, after_id: int) -> list[tuple[str, str, str, str]]:
    """(result, actor, terminal, path) of each clerk login recorded after `after_id`."""
    out = []
    for e in audit_events(engine, LOGIN_EVENT, after_id=after_id):
        detail = json.loads(e.detail)
        assert detail["channel"] == "ra"
        out.append((e.result, e.actor, detail["terminal"], detail["path"]))
    return out


class _CountingScrypt:
    def __init__(self) -> None:
        self.calls = 0
        self.scrypt = hashlib.scrypt

    def __call__(self, *args: object, **kwargs: object) -> bytes:
        self.calls += 1
        return self.scrypt(*args, **kwargs)  # type: ignore[arg-type]


# --- password age ---------------------------------------------------------------------------------------


def test_an_expired_clerk_password_is_refused_audited_and_revokes_nothing(ra: RA) -> None:
    ref, before = subscribers(ra.engine)[0], last_audit_id(ra.engine)
    resp = ra.call("POST", "/v1/revocations", window(ref), clerk="clerk-old")
    assert resp.status_code == 403, resp.get_data(as_text=True)
    error = resp.get_json()["error"]
    assert "password expired on" in error and "revoca operator passwd" in error
    assert ref.id not in revocations(ra.engine)
    assert logins(ra.engine, before) == [("failure", "clerk-old", "t1", "/v1/revocations")]
    [login] = audit_events(ra.engine, LOGIN_EVENT, after_id=before)
    assert "password expired" in json.loads(login.detail)["error"]
    # the list, which names citizens, is refused the same way
    assert ra.call("GET", "/v1/revocations", clerk="clerk-old").status_code == 403


@pytest.mark.parametrize("clerk, password", [
    ("clerk-old", PASSWORD), ("clerk-old", "not the password"), ("no-such-clerk", PASSWORD), ("clerk", PASSWORD)])
def test_an_expired_password_costs_one_scrypt_and_is_named_only_to_who_knows_it(
        ra: RA, monkeypatch: pytest.MonkeyPatch, clerk: str, password: str) -> None:
    """The expiry is judged after the password matched: a wrong password for an expired account gets
    the same answer as an unknown name, and every case costs exactly one scrypt."""
    credentials.verify_for_unknown_name("warm the decoy hash up")
    counting = _CountingScrypt()
    monkeypatch.setattr(credentials.hashlib, "scrypt", counting)
    resp = ra.call("GET", "/v1/revocations", clerk=clerk, password=password)
    assert counting.calls == 1
    if clerk == "clerk":
        assert resp.status_code == 200
    elif password == PASSWORD and clerk == "clerk-old":
        assert "password expired" in resp.get_json()["error"]
    else:
        assert resp.get_json()["error"] == f"operator {clerk!r}: unknown, disabled or wrong password"


def test_a_password_about_to_expire_is_answered_with_a_warning_the_terminal_shows(ra: RA) -> None:
    resp = ra.call("POST", "/v1/revocations", window(subscribers(ra.engine)[1]), clerk="clerk-soon")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    expires = AT - dt.timedelta(days=80) + dt.timedelta(days=90)
    assert resp.headers["Revoca-Password-Expires"] == expires.isoformat()
    assert "password expires in 10 days" in resp.headers["Revoca-Password-Warning"]
    assert "clerk-soon" in resp.headers["Revoca-Password-Warning"]
    refused = ra.call("POST", "/v1/revocations", window(subscribers(ra.engine)[2], reason="bogus"), clerk="clerk-soon")
    assert refused.status_code == 422 and "Revoca-Password-Warning" in refused.headers  # on refusals too
    fresh = ra.call("GET", "/v1/revocations")
    assert fresh.status_code == 200 and "Revoca-Password-Warning" not in fresh.headers


# --- login and read records -----------------------------------------------------------------------------


def test_each_clerk_login_is_one_audit_record_naming_clerk_and_terminal(ra: RA) -> None:
    refs, before = subscribers(ra.engine), last_audit_id(ra.engine)
    first = window(refs[3])
    assert ra.call("POST", "/v1/revocations", first).status_code == 201
    assert ra.call("POST", "/v1/revocations", first).status_code == 200  # a retry is a login all the same
    change = {"issuer_ca": refs[4].issuer, "serial": refs[4].hex_serial, "event": "death",
              "idempotency_key": f"key-{uuid.uuid4()}"}
    assert ra.call("POST", "/v1/record-changes", change, terminal="t2", clerk="clerk-soon").status_code == 201
    assert ra.call("GET", "/v1/revocations?limit=5").status_code == 200
    # refused after the login held: the request's transaction rolled back, the login is recorded with the refusal
    assert ra.call("POST", "/v1/revocations", window(refs[5], reason="bogus")).status_code == 422
    assert ra.call("POST", "/v1/revocations", window(refs[5]), password="a wrong password").status_code == 403
    assert logins(ra.engine, before) == [
        ("success", "clerk", "t1", "/v1/revocations"), ("success", "clerk", "t1", "/v1/revocations"),
        ("success", "clerk-soon", "t2", "/v1/record-changes"), ("success", "clerk", "t1", "/v1/revocations"),
        ("success", "clerk", "t1", "/v1/revocations"), ("failure", "clerk", "t1", "/v1/revocations")]
    # the login is in the same transaction as the filing: right before the request's own record
    events = audit_events(ra.engine, after_id=before)
    assert [e.event_type for e in events[:2]] == [LOGIN_EVENT, "revocation.request_filed"]


def test_listing_a_terminals_revocations_is_audited_as_a_personal_data_read(ra: RA) -> None:
    refs = subscribers(ra.engine)[6:8]
    filed = [ra.call("POST", "/v1/revocations", window(r)).get_json()["request_id"] for r in refs]
    ra.call("POST", "/v1/revocations", window(subscribers(ra.engine)[8]), terminal="t2")  # not t1's
    before = last_audit_id(ra.engine)
    listed = ra.call("GET", "/v1/revocations?limit=10")
    assert listed.status_code == 200
    [read] = audit_events(ra.engine, LIST_EVENT, after_id=before)
    detail = json.loads(read.detail)
    assert (read.actor, read.result, detail["personal_data"], detail["terminal"]) == (
        "clerk at terminal t1", "success", True, "t1")
    assert sorted(detail["requests"]) == sorted(filed) and detail["count"] == 2
    assert sorted(detail["certificates"]) == sorted(f"{r.issuer}:{r.hex_serial}" for r in refs)
    # a refused list shows nothing and records no read
    before = last_audit_id(ra.engine)
    assert ra.call("GET", "/v1/revocations", password="a wrong password").status_code == 403
    assert audit_events(ra.engine, LIST_EVENT, after_id=before) == []
