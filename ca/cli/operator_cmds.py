"""`revoca operator ...`: the people in the trusted roles of seed 004 5.2.1, through their lifecycle.

Who may run each command is its row in ca.cli.acts (the login gate admits the people before the
command runs and leaves them in `app.operators`); the rules are ca.officers: role exclusivity,
approval by a second person, password age.  docs/officers.md is the officers' guide.
"""

from __future__ import annotations

import datetime as dt
from typing import TypedDict

import click

from ca import audit
from ca.cli.common import App, emit_json, json_option, pass_app, read_secret, table, when
from ca.enums import Role
from ca.officers import approval, exclusivity
from ca.officers.credentials import hash_password
from ca.officers.passwords import PasswordState, check_new_password, password_age
from ca.storage.engine import session_scope
from ca.storage.store import ReadStore, Store

ROLE_NAMES = [r.value for r in Role]

_role_option = click.option("--role", "roles", multiple=True, required=True, type=click.Choice(ROLE_NAMES),
                            help="A role (repeat for several).")


class _OperatorRow(TypedDict):
    name: str
    display_name: str
    roles: list[str]
    disabled: bool
    created_at: dt.datetime
    approval: str | None  # "ceremony", "second-person", or None: never approved
    registered_by: str | None
    approved_by: str | None
    approved_at: dt.datetime | None
    password_changed_at: dt.datetime
    password_expires_at: dt.datetime
    password: str  # current | expiring | expired


@click.group("operator")
def operator_group() -> None:
    """Operators and their roles."""


def _registrar_and_approver(app: App, store: ReadStore) -> tuple[str, str]:
    return approval.registrar_and_approver([(n, store.operator(n).role_set) for n in app.operators])


@operator_group.command("add")
@click.argument("name")
@_role_option
@click.option("--display-name", default="", help="Full name, for the audit trail.")
@pass_app
def operator_add(app: App, name: str, roles: tuple[str, ...], display_name: str) -> None:
    """Register an operator: a senior operator and a second person (senior operator or CA
    administrator) log in; the new operator's password is then prompted for (or read from stdin),
    and only its hash is kept."""
    held = [Role(r) for r in roles]
    approval.check_not_self(name, app.operators)
    exclusivity.check(name, held)
    password = read_secret(f"Password for {name}", confirm=True)
    credential = hash_password(password)
    now = dt.datetime.now(dt.UTC)
    with session_scope(app.engine) as session:
        store = Store(session)
        registrar, approver = _registrar_and_approver(app, store)
        store.add_operator(name=name, display_name=display_name, credential_hash=credential, roles=held, now=now,
                           registered_by=registrar, approved_by=approver)
        audit.record(session, "operator.added", actor=app.actor, operator=name, roles=sorted(roles),
                     registered_by=registrar, approved_by=approver)
    click.echo(f"operator {name} added with roles {', '.join(sorted(roles))} "
               f"(registered by {registrar}, approved by {approver})")


@operator_group.command("grant")
@click.argument("name")
@_role_option
@pass_app
def operator_grant(app: App, name: str, roles: tuple[str, ...]) -> None:
    """Give an operator more roles (a senior operator and a second person; never the operator)."""
    approval.check_not_self(name, app.operators)
    with session_scope(app.engine) as session:
        store = Store(session)
        op = store.operator_for_change(name)
        exclusivity.check(name, op.role_set | {Role(r) for r in roles})
        added = store.grant_roles(op, [Role(r) for r in roles])
        now_held = sorted(r.value for r in op.role_set)
        audit.record(session, "operator.roles_granted", actor=app.actor, operator=name,
                     roles=sorted(r.value for r in added), held=now_held)
    click.echo(f"operator {name} now holds {', '.join(now_held)}")


@operator_group.command("revoke-role")
@click.argument("name")
@_role_option
@pass_app
def operator_revoke_role(app: App, name: str, roles: tuple[str, ...]) -> None:
    """Take roles away from an operator (a senior operator and a second person; never the operator).
    To stop an account altogether, disable it."""
    approval.check_not_self(name, app.operators)
    with session_scope(app.engine) as session:
        store = Store(session)
        op = store.operator_for_change(name)
        removed = store.revoke_roles(op, [Role(r) for r in roles])
        now_held = sorted(r.value for r in op.role_set)
        audit.record(session, "operator.roles_revoked", actor=app.actor, operator=name,
                     roles=sorted(r.value for r in removed), held=now_held)
    click.echo(f"operator {name} now holds {', '.join(now_held)}")


@operator_group.command("disable")
@click.argument("name")
@pass_app
def operator_disable(app: App, name: str) -> None:
    """Stop an operator's account at once (one senior operator or CA administrator: protective).
    It logs in nowhere until `revoca operator enable`, which needs two people."""
    with session_scope(app.engine) as session:
        store = Store(session)
        store.set_disabled(store.operator_for_change(name), True)
        audit.record(session, "operator.disabled", actor=app.actor, operator=name)
    click.echo(f"operator {name} disabled")


@operator_group.command("enable")
@click.argument("name")
@pass_app
def operator_enable(app: App, name: str) -> None:
    """Let a disabled operator log in again (a senior operator and a second person; never the operator)."""
    approval.check_not_self(name, app.operators)
    with session_scope(app.engine) as session:
        store = Store(session)
        store.set_disabled(store.operator_for_change(name), False)
        audit.record(session, "operator.enabled", actor=app.actor, operator=name)
    click.echo(f"operator {name} enabled")


@operator_group.command("approve")
@click.argument("name")
@pass_app
def operator_approve(app: App, name: str) -> None:
    """Adopt an account made before approvals were recorded (M key managers, whom the key ceremony
    made, vouch that it is a person of its own); it then counts in acts of several people."""
    approval.check_not_self(name, app.operators)
    now = dt.datetime.now(dt.UTC)
    with session_scope(app.engine) as session:
        store = Store(session)
        op = store.operator_for_change(name)
        exclusivity.check(name, op.role_set)
        store.approve(op, approved_by=app.actor, now=now)
        audit.record(session, "operator.approved", actor=app.actor, operator=name,
                     roles=sorted(r.value for r in op.role_set))
    click.echo(f"operator {name} approved by {app.actor}")


@operator_group.command("passwd")
@pass_app
def operator_passwd(app: App) -> None:
    """Change your own password: log in with the current one (even if it has expired), then type
    the new one twice (or give it on two lines of stdin)."""
    (name,) = app.operators
    new = read_secret(f"New password for {name}")
    repeated = read_secret(f"New password for {name} again")
    now = dt.datetime.now(dt.UTC)
    with session_scope(app.engine) as session:
        store = Store(session)
        op = store.operator_for_change(name)
        check_new_password(new, repeated, current_hash=op.credential_hash)
        store.set_password(op, hash_password(new), now)
        audit.record(session, "operator.password_changed", actor=name, operator=name)
    expires = now + app.settings.operators.password_policy.max_age
    click.echo(f"password of {name} changed; it expires on {expires:%Y-%m-%d}")


@operator_group.command("list")
@json_option
@pass_app
def operator_list(app: App, as_json: bool) -> None:
    """List operators: roles, disabled or not, approval, password age."""
    policy, now = app.settings.operators.password_policy, dt.datetime.now(dt.UTC)
    rows: list[_OperatorRow] = []
    with session_scope(app.engine, readonly=True) as session:
        for o in ReadStore(session).operators():
            age = password_age(o.name, o.password_set_at, now=now, policy=policy)
            rows.append({
                "name": o.name, "display_name": o.display_name, "roles": sorted(r.value for r in o.role_set),
                "disabled": o.disabled, "created_at": o.created_at,
                "approval": o.approval.value if o.approval else None, "registered_by": o.registered_by,
                "approved_by": o.approved_by, "approved_at": o.approved_at,
                "password_changed_at": o.password_set_at, "password_expires_at": age.expires_at,
                "password": age.state.value})
    if as_json:
        emit_json(rows)
        return
    table(["NAME", "ROLES", "STATE", "APPROVED", "PASSWORD", "DISPLAY NAME"],
          [[r["name"], ",".join(r["roles"]), "disabled" if r["disabled"] else "enabled", _approved(r),
            _password(r), r["display_name"]] for r in rows])
    unapproved = [r["name"] for r in rows if r["approval"] is None and not r["disabled"]]
    if unapproved:
        click.echo(f"\n{len(unapproved)} account(s) were never approved by a second person ({', '.join(unapproved)}): "
                   "they count only for acts of one person.  Adopt each with `revoca operator approve NAME "
                   "--operator KEY-MANAGER ...` (as many key managers as activation needs); see docs/officers.md.")


def _approved(row: _OperatorRow) -> str:
    if row["approval"] is None:
        return "no"
    if row["approval"] == "ceremony":
        return f"ceremony {when(row['approved_at'])[:10]}"
    by = "+".join(n for n in (row["registered_by"], row["approved_by"]) if n)
    return f"{by} {when(row['approved_at'])[:10]}"


def _password(row: _OperatorRow) -> str:
    state = row["password"]
    expires = when(row["password_expires_at"])[:10]
    if state == PasswordState.EXPIRED:
        return f"expired {expires}"
    return f"expires {expires}" + (" (soon)" if state == PasswordState.EXPIRING else "")


def register(cli: click.Group) -> None:
    cli.add_command(operator_group)
