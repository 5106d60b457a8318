"""Status-page logins under [operators] max_password_age_days (issue 13): an expired password is
refused with what to do (403, audited, told only to who knows the password); one within the
warning period gets a banner on the page."""

from __future__ import annotations

import datetime as dt
import json

import sqlalchemy as sa

from ca.enums import Role
from ca.officers.passwords import PasswordPolicy
from ca.status_page import create_app
from ca.status_page.login import LOGIN_EVENT
from ca.storage.engine import session_scope
from ca.storage.store import Store

from support.ra_fixtures import add_operator, audit_events, basic_auth, last_audit_id

AT = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


def _officers(engine: sa.Engine) -> None:
    for name, age in (("kei", 1), ("kei-old", 120), ("kei-soon", 85)):
        add_operator(engine, name, Role.KEY_MANAGER)
        with session_scope(engine) as s:
            Store(s).operator(name).password_changed_at = AT - dt.timedelta(days=age)


def test_an_expired_password_does_not_open_the_status_page_and_is_audited(engine: sa.Engine) -> None:
    _officers(engine)
    client = create_app(engine, clock=lambda: AT, password_policy=PasswordPolicy.from_days(90, 14)).test_client()
    before = last_audit_id(engine)
    refused = client.get("/", headers=basic_auth("kei-old"))
    assert refused.status_code == 403
    text = refused.get_data(as_text=True)
    assert "password expired on 2026-10-03" in text and "revoca operator passwd" in text
    assert "Password expired" in text
    wrong = client.get("/", headers=basic_auth("kei-old", "not the password"))
    assert wrong.status_code == 401 and "expired" not in wrong.get_data(as_text=True)  # only who knows it learns it
    assert client.get("/metrics", headers=basic_auth("kei-old")).status_code == 403  # was a 500
    events = audit_events(engine, LOGIN_EVENT, after_id=before)
    assert [(e.result, e.actor) for e in events] == [("failure", "kei-old")] * 3
    assert "password expired" in json.loads(events[0].detail)["error"]


def test_a_password_about_to_expire_shows_a_banner_and_a_current_one_none(engine: sa.Engine) -> None:
    _officers(engine)
    client = create_app(engine, clock=lambda: AT, password_policy=PasswordPolicy.from_days(90, 14)).test_client()
    soon = client.get("/", headers=basic_auth("kei-soon"))
    assert soon.status_code == 200
    page = soon.get_data(as_text=True)
    assert 'data-figure="password-warning"' in page
    assert "operator kei-soon: password expires in 5 days (2026-11-07 09:00Z)" in page
    fresh = client.get("/", headers=basic_auth("kei"))
    assert fresh.status_code == 200 and 'data-figure="password-warning"' not in fresh.get_data(as_text=True)
    # a longer policy: no warning, and the expired one opens the page again
    lenient = create_app(engine, clock=lambda: AT, password_policy=PasswordPolicy.from_days(365, 14)).test_client()
    assert 'data-figure="password-warning"' not in lenient.get("/", headers=basic_auth("kei-soon")).get_data(
        as_text=True)
    assert lenient.get("/", headers=basic_auth("kei-old")).status_code == 200
