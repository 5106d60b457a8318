"""`revoca repository start|stop|status`: the local OpenLDAP slapd that publishes CRLs and ARLs."""

from __future__ import annotations

import click

from ca.cli.common import App, emit_json, json_option, pass_app


def _slapd(app: App):  # type: ignore[no-untyped-def]
    from repository.slapd import LocalSlapd  # only this command group needs it

    s = app.settings
    return LocalSlapd(s.ldap_dir, s.repository.base_dn, s.repository.port)


@click.group("repository")
def repository_group() -> None:
    """The LDAP repository: a slapd on loopback under the data directory."""


@repository_group.command("start")
@pass_app
def repository_start(app: App) -> None:
    """Start slapd (configured on first start: schema, ACL, base entries)."""
    slapd = _slapd(app)
    slapd.start()
    click.echo(slapd.status().line())


@repository_group.command("stop")
@pass_app
def repository_stop(app: App) -> None:
    """Stop slapd; its data stays."""
    slapd = _slapd(app)
    click.echo("slapd stopped" if slapd.stop() else "slapd was not running")


@repository_group.command("status")
@json_option
@pass_app
def repository_status(app: App, as_json: bool) -> None:
    """Whether slapd runs and answers, and where."""
    st = _slapd(app).status()
    if as_json:
        emit_json({"running": st.running, "pid": st.pid, "answering": st.answering, "uri": st.uri})
    else:
        click.echo(st.line())


def register(cli: click.Group) -> None:
    cli.add_command(repository_group)
