"""`revoca operator add|list`: the people in the trusted roles of seed 004 5.2.1."""

from __future__ import annotations

import datetime as dt
from typing import TypedDict

import click

from ca import audit
from ca.cli.common import App, emit_json, json_option, pass_app, read_secret, table, when
from ca.credentials import hash_password
from ca.enums import Role
from ca.storage.engine import session_scope
from ca.storage.store import Store

ROLE_NAMES = [r.value for r in Role]


class _OperatorRow(TypedDict):
    name: str
    display_name: str
    roles: list[str]
    disabled: bool
    created_at: dt.datetime


@click.group("operator")
def operator_group() -> None:
    """Operators and their roles."""


@operator_group.command("add")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, type=click.Choice(ROLE_NAMES),
              help="A role the operator holds (repeat for several).")
@click.option("--display-name", default="", help="Full name, for the audit trail.")
@pass_app
def operator_add(app: App, name: str, roles: tuple[str, ...], display_name: str) -> None:
    """Add an operator; the password is prompted for (or read from stdin) and only its hash is kept."""
    password = read_secret(f"Password for {name}", confirm=True)
    credential = hash_password(password)
    with session_scope(app.engine) as session:
        Store(session).add_operator(name=name, display_name=display_name, credential_hash=credential,
                                    roles=[Role(r) for r in roles], now=dt.datetime.now(dt.UTC))
        audit.record(session, "operator.added", actor="cli", operator=name, roles=sorted(roles))
    click.echo(f"operator {name} added with roles {', '.join(sorted(roles))}")


@operator_group.command("list")
@json_option
@pass_app
def operator_list(app: App, as_json: bool) -> None:
    """List operators and their roles."""
    with session_scope(app.engine) as session:
        rows: list[_OperatorRow] = [
            {"name": o.name, "display_name": o.display_name, "roles": sorted(r.value for r in o.role_set),
             "disabled": o.disabled, "created_at": o.created_at} for o in Store(session).operators()]
    if as_json:
        emit_json(rows)
        return
    table(["NAME", "ROLES", "DISPLAY NAME", "CREATED"],
          [[r["name"], ",".join(r["roles"]) + (" (disabled)" if r["disabled"] else ""), r["display_name"],
            when(r["created_at"])] for r in rows])


def register(cli: click.Group) -> None:
    cli.add_command(operator_group)
