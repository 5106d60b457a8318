"""`revoca init` (the key ceremony), `revoca db upgrade` and `revoca db grant`."""

from __future__ import annotations

import click

from ca import ceremony
from ca.cli.common import App, pass_app, read_secret
from ca.host.files import protect_data_dir
from ca.storage.engine import upgrade


@click.command("init")
@click.option("--demo", is_flag=True,
              help="Demo only: create key-manager operators and write their shares to files in the data directory.")
@click.option("--key-manager", "key_managers", multiple=True, metavar="NAME",
              help="A key-manager operator who receives one share (give hsm.shares of them).")
@click.option("--officer", "officers", multiple=True, metavar="NAME=ROLE[,ROLE]",
              help="A first officer, registered by the ceremony itself (repeat; the key managers of --key-manager "
                   "among them). Each password is asked for in the same order (or read one per line from stdin).")
@click.option("--if-needed", is_flag=True, help="Succeed quietly when revoca is already initialised.")
@click.option("--adopt-token", is_flag=True,
              help="Take over the existing token [hsm] token_label with the previous system's keys: its user PIN, "
                   "read once from standard input, is replaced by one derived from the activation secret; no CA is "
                   "built (adopt each with `revoca ca adopt`).")
@pass_app
def init_cmd(app: App, demo: bool, key_managers: tuple[str, ...], officers: tuple[str, ...], if_needed: bool,
             adopt_token: bool) -> None:
    """Key ceremony: create the token, split its activation secret, build the CA hierarchy."""
    settings = app.settings
    protect_data_dir(settings.data_dir)
    if if_needed and ceremony.is_initialized(settings, app.engine):
        click.echo(f"revoca is already initialised in {settings.data_dir}")
        return
    first = [_first_officer(spec) for spec in officers]
    pin = read_secret(f"Current user PIN of token {settings.hsm.token_label}") if adopt_token else None
    result = ceremony.run(settings, app.engine, key_managers=list(key_managers), demo=demo, adopt_user_pin=pin,
                          officers=first, time_guard=app.time_guard)
    for officer in first:
        click.echo(f"officer {officer.name} registered by the ceremony with roles "
                   f"{', '.join(r.value for r in officer.roles)}")
    if adopt_token:
        click.echo(f"Token {settings.hsm.token_label!r} taken over: its previous user PIN no longer opens it; adopt "
                   "its CAs with `revoca ca adopt`")
    else:
        click.echo(f"Created CAs: {', '.join(result.cas)}")
    click.echo(f"Token {settings.hsm.token_label!r}: activation needs {settings.hsm.threshold} of "
               f"{settings.hsm.shares} key-manager shares.")
    click.echo(f"Once the HSM service is activated, `revoca tsa certificate --operator KEY-MANAGER ...` "
               f"({settings.hsm.threshold} key managers) issues the time-stamp authority's certificate "
               "(`revoca run` does it by itself).")
    if demo:
        click.echo("DEMO ONLY: shares were written to (never do this in production):")
        for path in result.demo_files:
            click.echo(f"  {path}")
        return
    click.echo("Hand each share to its key manager now; revoca does not keep them and cannot show them again.")
    for name, share in result.shares:
        click.echo(f"  share {share.index} for {name}: {share.encode()}")


def _first_officer(spec: str) -> ceremony.FirstOfficer:
    from ca.enums import Role
    from ca.errors import InvalidInput
    from ca.officers.credentials import hash_password
    from ca.officers.exclusivity import check

    name, _, role_list = spec.partition("=")
    try:
        roles = tuple(Role(r.strip()) for r in role_list.split(",") if r.strip())
    except ValueError as exc:
        raise InvalidInput(f"--officer {spec}: {exc}; roles are {', '.join(r.value for r in Role)}") from exc
    if not name or not roles:
        raise InvalidInput(f"--officer {spec}: give NAME=ROLE (e.g. dave=senior-operator)")
    check(name, roles)
    return ceremony.FirstOfficer(name, roles, hash_password(read_secret(f"Password for {name}", confirm=True)))


@click.group("db")
def db_group() -> None:
    """The database schema."""


@db_group.command("upgrade")
@pass_app
def db_upgrade(app: App) -> None:
    """Apply the Alembic migrations up to the newest (safe to run again)."""
    upgrade(app.engine)
    click.echo("database schema is current")


@db_group.command("grant")
@pass_app
def db_grant(app: App) -> None:
    """PostgreSQL: one role per service with GRANTs for exactly what it uses (safe to run again)."""
    from ca.storage import grants

    if not grants.has_roles(app.engine):
        click.echo(grants.SQLITE_NOTE)
        return
    for applied in grants.apply(app.engine, app.settings.identities):
        click.echo(applied.line())


def register(cli: click.Group) -> None:
    cli.add_command(init_cmd)
    cli.add_command(db_group)
