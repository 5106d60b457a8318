"""The operator lifecycle through `revoca operator ...` as officers run it (in-process, real
database): registration by two approved people, roles and their exclusivity, disable and enable,
password change and age, adoption of accounts nobody approved, and the audit trail of each.

Seed 004 5.2.2 (several people), 5.2.3 (identification, periodic password change), 5.2.4 (3)
(the senior operator registers staff), 6.5.1; ca.officers holds the rules, docs/officers.md
explains them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ca import ceremony
from ca.config import Settings
from ca.enums import OperatorApproval, Role
from ca.officers.credentials import hash_password
from ca.storage.engine import session_scope
from ca.storage.models import AuditEvent, Operator
from ca.storage.store import Store

from support.officers import add_officers, password_of
from support.tools import revoca, write_config

SENIOR1, SENIOR2, ADMIN = "cast-senior1", "cast-senior2", "cast-admin"
NEW_PASSWORD = "newbie password 1"


class Officers:
    """An installation's database with the standard cast, and `revoca` run against it."""

    def __init__(self, settings: Settings, engine: sa.Engine, config: Path, *, extra: str = "") -> None:
        self.engine = engine
        self.env = write_config(settings, config)
        if extra:
            config.write_text(config.read_text(encoding="utf-8") + extra, encoding="utf-8")
        add_officers(engine)

    def run(self, *args: str, logins: tuple[str, ...] = (), stdin: str = "",
            passwords: dict[str, str] | None = None) -> tuple[int, str, str]:
        """`revoca ARGS --operator L ...`, the logins' passwords first on stdin, then `stdin`."""
        given = passwords or {}
        argv = [*args, *(a for name in logins for a in ("--operator", name))]
        lines = "".join(given.get(name, password_of(name)) + "\n" for name in logins)
        return revoca(self.env, *argv, stdin=lines + stdin)

    def ok(self, *args: str, logins: tuple[str, ...] = (), stdin: str = "",
           passwords: dict[str, str] | None = None) -> str:
        code, out, err = self.run(*args, logins=logins, stdin=stdin, passwords=passwords)
        assert code == 0, f"revoca {' '.join(args)} -> {code}\n{out}{err}"
        return out

    def fails(self, *args: str, code: int, match: str, logins: tuple[str, ...] = (), stdin: str = "",
              passwords: dict[str, str] | None = None) -> str:
        got, out, err = self.run(*args, logins=logins, stdin=stdin, passwords=passwords)
        lines = err.splitlines()
        assert got == code and len(lines) == 1 and lines[0].startswith("revoca: error: "), (got, out, err)
        assert match in lines[0], lines[0]
        return lines[0]

    def operator(self, name: str) -> Operator:
        with session_scope(self.engine, readonly=True) as session:
            op = Store(session).operator(name)
            session.expunge(op)
            return op

    def events(self, event_type: str) -> list[tuple[str, str, dict[str, object]]]:
        """(result, actor, detail) of each audit record of `event_type`, oldest first."""
        with session_scope(self.engine, readonly=True) as session:
            rows = session.execute(sa.select(AuditEvent.result, AuditEvent.actor, AuditEvent.detail)
                                   .where(AuditEvent.event_type == event_type).order_by(AuditEvent.seq)).all()
        return [(r, a, json.loads(d)) for r, a, d in rows]

    def set_password_age(self, name: str, age: dt.timedelta) -> None:
        """As if `name`'s password had been set `age` ago (the clock of the CLI is the real one)."""
        with session_scope(self.engine) as session:
            Store(session).operator(name).password_changed_at = dt.datetime.now(dt.UTC) - age

    def add_share_set(self, settings: Settings, threshold: int) -> None:
        """The key managers' activation share set, for the acts that need M of them."""
        with session_scope(self.engine) as session:
            Store(session).add_share_set(token_label=settings.hsm.token_label, threshold=threshold, total=3,
                                         now=dt.datetime.now(dt.UTC))


def _add_unapproved(engine: sa.Engine, name: str, *roles: Role) -> None:
    """An account one person made alone before approvals were recorded (its password: password_of)."""
    with session_scope(engine) as session:
        Store(session).add_operator(name=name, display_name=name, credential_hash=hash_password(password_of(name)),
                                    roles=roles, now=dt.datetime.now(dt.UTC))


@pytest.fixture
def officers(settings: Settings, engine: sa.Engine, tmp_path: Path) -> Iterator[Officers]:
    yield Officers(settings, engine, tmp_path / "revoca.toml")


def _add_newbie(officers: Officers, *roles: str) -> str:
    role_args = [a for r in (roles or ("operator",)) for a in ("--role", r)]
    return officers.ok("operator", "add", "newbie", *role_args, logins=(SENIOR1, ADMIN), stdin=NEW_PASSWORD + "\n")


# --- registration needs two approved people ---------------------------------------------------------------


def test_add_by_one_person_is_refused(officers: Officers) -> None:
    officers.fails("operator", "add", "newbie", "--role", "operator", logins=(SENIOR1,), stdin=NEW_PASSWORD + "\n",
                   code=8, match="needs 2 different people")
    with pytest.raises(Exception, match="no operator named 'newbie'"):
        officers.operator("newbie")


def test_add_without_any_login_is_refused(officers: Officers) -> None:
    officers.fails("operator", "add", "newbie", "--role", "operator", stdin=NEW_PASSWORD + "\n",
                   code=8, match="give --operator NAME for each")


def test_add_by_the_same_person_twice_is_refused(officers: Officers) -> None:
    officers.fails("operator", "add", "newbie", "--role", "operator", logins=(SENIOR1, SENIOR1),
                   stdin=NEW_PASSWORD + "\n", code=8, match="the same operator cannot count as two people")


def test_add_by_two_accounts_of_one_person_nobody_approved_is_refused(officers: Officers) -> None:
    _add_unapproved(officers.engine, "mallory-a", Role.SENIOR_OPERATOR)
    _add_unapproved(officers.engine, "mallory-b", Role.SENIOR_OPERATOR)
    officers.fails("operator", "add", "mallory-c", "--role", "approver", logins=("mallory-a", "mallory-b"),
                   stdin=NEW_PASSWORD + "\n", code=8, match="mallory-a's account was never approved")
    # one approved senior operator and one unapproved account is still not two people
    line = officers.fails("operator", "add", "mallory-c", "--role", "approver", logins=(SENIOR1, "mallory-b"),
                          stdin=NEW_PASSWORD + "\n", code=8, match="mallory-b's account was never approved")
    assert "revoca operator approve mallory-b" in line
    failures = [d for result, actor, d in officers.events("operator.login") if result == "failure"]
    assert len(failures) == 2 and all("never approved" in str(d["error"]) for d in failures)


def test_unapproved_accounts_still_work_for_acts_of_one_person(officers: Officers) -> None:
    _add_unapproved(officers.engine, "old-admin", Role.CA_ADMINISTRATOR)
    out = officers.ok("operator", "list", logins=("old-admin",))
    assert "old-admin" in out and "never approved by a second person (old-admin)" in out


def test_add_by_two_approved_people_records_and_audits_both(officers: Officers) -> None:
    out = _add_newbie(officers, "operator")
    assert f"registered by {SENIOR1}, approved by {ADMIN}" in out
    op = officers.operator("newbie")
    assert (op.registered_by, op.approved_by, op.approval) == (SENIOR1, ADMIN, OperatorApproval.SECOND_PERSON)
    assert op.password_changed_at == op.created_at
    [(result, actor, detail)] = officers.events("operator.added")
    assert (result, actor) == ("success", f"{SENIOR1}+{ADMIN}")
    assert detail["registered_by"] == SENIOR1 and detail["approved_by"] == ADMIN and detail["roles"] == ["operator"]
    # the new account counts as a person of its own at once
    listed = {r["name"]: r for r in json.loads(officers.ok("operator", "list", "--json", logins=(ADMIN,)))}
    assert listed["newbie"]["approval"] == "second-person" and listed["newbie"]["password"] == "current"


def test_the_senior_operator_may_come_second_on_the_command_line(officers: Officers) -> None:
    officers.ok("operator", "add", "newbie", "--role", "operator", logins=(ADMIN, SENIOR2), stdin=NEW_PASSWORD + "\n")
    op = officers.operator("newbie")
    assert (op.registered_by, op.approved_by) == (SENIOR2, ADMIN)


def test_two_ca_administrators_cannot_register_without_a_senior_operator(officers: Officers) -> None:
    add_officer = officers.ok  # a second CA administrator, registered properly
    add_officer("operator", "add", "admin2", "--role", "ca-administrator", logins=(SENIOR1, SENIOR2),
                stdin="admin2 password\n")
    officers.fails("operator", "add", "newbie", "--role", "operator", logins=(ADMIN, "admin2"),
                   passwords={"admin2": "admin2 password"}, stdin=NEW_PASSWORD + "\n", code=8,
                   match="this act needs 2 different people")


def test_add_refuses_a_short_password_and_a_name_taken(officers: Officers) -> None:
    officers.fails("operator", "add", "shorty", "--role", "operator", logins=(SENIOR1, ADMIN), stdin="123456789\n",
                   code=5, match="password too short: use at least 10 characters")
    officers.fails("operator", "add", ADMIN, "--role", "operator", logins=(SENIOR1, ADMIN), stdin=NEW_PASSWORD + "\n",
                   code=8, match=f"operator {ADMIN} cannot take part in changing their own account")
    officers.fails("operator", "add", "cast-operator", "--role", "operator", logins=(SENIOR1, ADMIN),
                   stdin=NEW_PASSWORD + "\n", code=4, match="operator named 'cast-operator' already exists")
    assert officers.events("operator.added") == []


# --- roles and their exclusivity --------------------------------------------------------------------------


def test_add_with_conflicting_roles_is_refused(officers: Officers) -> None:
    officers.fails("operator", "add", "newbie", "--role", "key-manager", "--role", "reviewer",
                   logins=(SENIOR1, ADMIN), stdin=NEW_PASSWORD + "\n", code=5,
                   match="key-manager cannot be held together with reviewer")


def test_grant_creating_a_conflict_is_refused_and_changes_nothing(officers: Officers) -> None:
    _add_newbie(officers, "operator")
    line = officers.fails("operator", "grant", "newbie", "--role", "internal-auditor", logins=(SENIOR1, SENIOR2),
                          code=5, match="internal-auditor cannot be held together with operator")
    assert "5.2.1 (8)" in line
    assert officers.operator("newbie").role_set == {Role.OPERATOR}
    assert officers.events("operator.roles_granted") == []


def test_grant_and_revoke_role_need_two_people_and_are_audited(officers: Officers) -> None:
    _add_newbie(officers, "operator")
    officers.fails("operator", "grant", "newbie", "--role", "senior-operator", logins=(SENIOR1,), code=8,
                   match="needs 2 different people")
    out = officers.ok("operator", "grant", "newbie", "--role", "senior-operator", logins=(SENIOR1, SENIOR2))
    assert "newbie now holds operator, senior-operator" in out
    officers.ok("operator", "revoke-role", "newbie", "--role", "operator", logins=(SENIOR2, ADMIN))
    assert officers.operator("newbie").role_set == {Role.SENIOR_OPERATOR}
    officers.fails("operator", "revoke-role", "newbie", "--role", "senior-operator", logins=(SENIOR2, ADMIN),
                   code=5, match="no role; `revoca operator disable newbie`")
    [(_, actor, granted)] = officers.events("operator.roles_granted")
    assert actor == f"{SENIOR1}+{SENIOR2}" and granted["roles"] == ["senior-operator"]
    [(_, actor, revoked)] = officers.events("operator.roles_revoked")
    assert actor == f"{SENIOR2}+{ADMIN}" and revoked["held"] == ["senior-operator"]


def test_nobody_changes_their_own_account(officers: Officers) -> None:
    officers.fails("operator", "grant", SENIOR1, "--role", "operator", logins=(SENIOR1, SENIOR2), code=8,
                   match=f"operator {SENIOR1} cannot take part in changing their own account")
    officers.fails("operator", "revoke-role", SENIOR2, "--role", "senior-operator", logins=(SENIOR1, SENIOR2),
                   code=8, match="their own account")
    assert officers.operator(SENIOR1).role_set == {Role.SENIOR_OPERATOR}


# --- disable and enable ----------------------------------------------------------------------------------


def test_disabled_operator_cannot_log_in_and_enabling_needs_two_people(officers: Officers) -> None:
    _add_newbie(officers, "senior-operator")
    assert officers.ok("operator", "disable", "newbie", logins=(ADMIN,)) == "operator newbie disabled\n"
    officers.fails("operator", "passwd", logins=("newbie",), passwords={"newbie": NEW_PASSWORD}, code=8,
                   match="unknown, disabled or wrong password")
    officers.fails("operator", "disable", "newbie", logins=(SENIOR1,), code=5, match="already disabled")
    officers.fails("operator", "enable", "newbie", logins=(SENIOR1,), code=8, match="needs 2 different people")
    officers.ok("operator", "enable", "newbie", logins=(SENIOR1, ADMIN))
    officers.ok("operator", "passwd", logins=("newbie",), passwords={"newbie": NEW_PASSWORD},
                stdin="newbie password 2\nnewbie password 2\n")
    assert [a for _, a, _ in officers.events("operator.disabled")] == [ADMIN]
    assert [a for _, a, _ in officers.events("operator.enabled")] == [f"{SENIOR1}+{ADMIN}"]


def test_an_operator_may_not_disable_with_a_role_that_does_not_allow_it(officers: Officers) -> None:
    officers.fails("operator", "disable", SENIOR1, logins=("cast-operator",), code=8, match="this act needs")
    assert not officers.operator(SENIOR1).disabled


# --- passwords: change and age ---------------------------------------------------------------------------


def test_passwd_changes_the_password_and_the_old_one_stops_working(officers: Officers) -> None:
    _add_newbie(officers, "operator")
    pw = {"newbie": NEW_PASSWORD}
    out = officers.ok("operator", "passwd", logins=("newbie",), passwords=pw,
                      stdin="newbie password 2\nnewbie password 2\n")
    assert out.startswith("password of newbie changed; it expires on ")
    officers.fails("operator", "passwd", logins=("newbie",), passwords=pw, stdin="x\nx\n", code=8,
                   match="unknown, disabled or wrong password")
    [(_, actor, _)] = officers.events("operator.password_changed")
    assert actor == "newbie"


def test_passwd_refuses_a_mismatch_the_current_password_and_a_short_one(officers: Officers) -> None:
    pw = password_of(SENIOR1)
    officers.fails("operator", "passwd", logins=(SENIOR1,), stdin="another password\nanother passw0rd\n",
                   code=5, match="the two new passwords differ")
    officers.fails("operator", "passwd", logins=(SENIOR1,), stdin=f"{pw}\n{pw}\n", code=5,
                   match="the new password is the current one")
    officers.fails("operator", "passwd", logins=(SENIOR1,), stdin="short\nshort\n", code=5,
                   match="password too short")
    assert officers.events("operator.password_changed") == []


def test_expired_password_is_refused_except_to_change_it(officers: Officers) -> None:
    officers.set_password_age(ADMIN, dt.timedelta(days=91))
    line = officers.fails("operator", "list", logins=(ADMIN,), code=8, match=f"operator {ADMIN}: password expired on")
    assert f"revoca operator passwd --operator {ADMIN}" in line
    code, out, err = officers.run("operator", "passwd", logins=(ADMIN,), stdin="admin password 2\nadmin password 2\n")
    assert code == 0 and err == "", err
    officers.ok("operator", "list", logins=(ADMIN,), passwords={ADMIN: "admin password 2"})
    before, after = (officers.operator(ADMIN).password_changed_at, dt.datetime.now(dt.UTC))
    assert after - before < dt.timedelta(minutes=5)


def test_an_expired_password_does_not_count_in_an_act_of_two(officers: Officers) -> None:
    officers.set_password_age(SENIOR2, dt.timedelta(days=90, minutes=1))
    officers.fails("operator", "add", "newbie", "--role", "operator", logins=(SENIOR1, SENIOR2),
                   stdin=NEW_PASSWORD + "\n", code=8, match=f"operator {SENIOR2}: password expired")


def test_password_within_warn_days_warns_once_and_works(officers: Officers) -> None:
    officers.set_password_age(ADMIN, dt.timedelta(days=80, hours=1))
    code, out, err = officers.run("operator", "list", logins=(ADMIN,))
    assert code == 0 and "NAME" in out
    [line] = err.splitlines()
    assert line.startswith(f"revoca: warning: operator {ADMIN}: password expires in 9 days"), line
    assert f"`revoca operator passwd --operator {ADMIN}`" in line
    listed = {r["name"]: r for r in json.loads(officers.ok("operator", "list", "--json", logins=(SENIOR1,)))}
    assert listed[ADMIN]["password"] == "expiring" and listed[SENIOR1]["password"] == "current"


def test_max_password_age_and_warn_days_come_from_the_operators_table(settings: Settings, engine: sa.Engine,
                                                                      tmp_path: Path) -> None:
    officers = Officers(settings, engine, tmp_path / "revoca.toml",
                        extra="[operators]\nmax_password_age_days = 30\nwarn_days = 5\n")
    officers.set_password_age(ADMIN, dt.timedelta(days=26))
    code, _, err = officers.run("operator", "list", logins=(ADMIN,))
    assert code == 0 and "password expires in 3 days" in err
    officers.set_password_age(ADMIN, dt.timedelta(days=31))
    officers.fails("operator", "list", logins=(ADMIN,), code=8, match="password expired")


# --- adoption of accounts made before approvals -----------------------------------------------------------


def test_approve_adopts_an_old_account_by_the_key_managers(settings: Settings, officers: Officers) -> None:
    officers.add_share_set(settings, threshold=2)
    with session_scope(officers.engine) as session:
        store = Store(session)
        for km in ("km1", "km2"):
            store.add_operator(name=km, display_name=km, credential_hash=store.operator(SENIOR1).credential_hash,
                               roles=[Role.KEY_MANAGER], now=dt.datetime.now(dt.UTC), made_at_ceremony=True)
    km_passwords = {"km1": password_of(SENIOR1), "km2": password_of(SENIOR1)}
    _add_unapproved(officers.engine, "old-senior", Role.SENIOR_OPERATOR)
    officers.fails("operator", "approve", "old-senior", logins=(SENIOR1, SENIOR2), code=8,
                   match="key-manager")
    officers.fails("operator", "approve", "old-senior", logins=("km1",), passwords=km_passwords, code=8,
                   match="needs 2 different people")
    out = officers.ok("operator", "approve", "old-senior", logins=("km1", "km2"), passwords=km_passwords)
    assert out == "operator old-senior approved by km1+km2\n"
    assert officers.operator("old-senior").approval is OperatorApproval.SECOND_PERSON
    officers.fails("operator", "approve", "old-senior", logins=("km1", "km2"), passwords=km_passwords, code=5,
                   match="approved already")
    # now it counts as one of two people
    officers.ok("operator", "add", "newbie", "--role", "operator", logins=("old-senior", SENIOR1),
                stdin=NEW_PASSWORD + "\n")
    [(_, actor, detail)] = officers.events("operator.approved")
    assert actor == "km1+km2" and detail["operator"] == "old-senior"


def test_approve_refuses_an_old_account_with_conflicting_roles(settings: Settings, officers: Officers) -> None:
    officers.add_share_set(settings, threshold=1)
    _add_unapproved(officers.engine, "old-both", Role.INTERNAL_AUDITOR, Role.KEY_MANAGER)
    with session_scope(officers.engine) as session:
        store = Store(session)
        store.add_operator(name="km1", display_name="km1", credential_hash=store.operator(SENIOR1).credential_hash,
                           roles=[Role.KEY_MANAGER], now=dt.datetime.now(dt.UTC), made_at_ceremony=True)
    officers.fails("operator", "approve", "old-both", logins=("km1",), passwords={"km1": password_of(SENIOR1)},
                   code=5, match="internal-auditor cannot be held together with key-manager")


# --- the key ceremony makes the first officers ------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_key_ceremony_marks_the_key_managers_it_names(settings: Settings, engine: sa.Engine) -> None:
    """Named at the ceremony, each receives a share in person: made at the ceremony, whatever came before."""
    for name in ("kay", "kim", "ken"):
        _add_unapproved(engine, name, Role.KEY_MANAGER)
    ceremony.run(settings, engine, key_managers=["kay", "kim", "ken"], demo_subscribers=0)
    with session_scope(engine, readonly=True) as session:
        approvals = {o.name: o.approval for o in Store(session).operators()}
    assert approvals == {"kay": OperatorApproval.CEREMONY, "kim": OperatorApproval.CEREMONY,
                         "ken": OperatorApproval.CEREMONY}
