"""`revoca web build` (the public pages as files for any web server) and `revoca serve web`
(the same pages served, made again whenever what they show changes).  Only wires ca.web."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from ca.cli.common import App, add_serve_command, pass_app, service_logging

_PRACTICE = click.option("--practice-statement", "practice", metavar="FILE|URL",
                         envvar="REVOCA_WEB_PRACTICE_STATEMENT",
                         help="The practice statement: a UTF-8 text file to copy into the pages, or an https:// "
                              "URL to link (default: $REVOCA_WEB_PRACTICE_STATEMENT; none: the page says where "
                              "to ask).")


def _sources(app: App, practice: str | None):  # -> ca.web.build.Sources
    from ca.web.build import Sources, practice_statement

    repo = app.settings.repository
    return Sources(ldap_host="127.0.0.1", ldap_port=repo.port, base_dn=repo.base_dn,
                   practice=practice_statement(practice))


@click.group("web")
def web_group() -> None:
    """The public web repository: CA certificates, ARLs, notices, provision reports."""


@web_group.command("build")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write the pages into (replaced whole; empty, new, or written by revoca before).")
@_PRACTICE
@pass_app
def web_build(app: App, out: Path, practice: str | None) -> None:
    """Write the public pages into a directory for any web server (static files, no JavaScript)."""
    from ca.web.build import build, write_tree

    site, files = build(app.engine, _sources(app, practice), dt.datetime.now(dt.UTC))
    write_tree(files, out)
    missing = [v.ca.name for v in site.cas if v.arl is not None and v.arl.der is None]
    click.echo(f"{len(files)} files written to {out} ({len(site.cas)} CAs, {len(site.certificates())} "
               f"certificates, {len(site.notices)} notices, {len(site.reports)} reports; mark {site.mark[:12]})")
    if missing:
        click.echo(f"warning: the directory did not hold the published ARL of {', '.join(missing)}; "
                   "those pages point to the LDAP repository (is slapd running?)", err=True)


@click.command("web")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8070, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--poll", "poll", default=5.0, show_default=True, type=click.FloatRange(0.2, 3600),
              help="Seconds between checks whether anything the pages show has changed.")
@_PRACTICE
@pass_app
def serve_web(app: App, host: str, port: int, workers: int, poll: float, practice: str | None) -> None:
    """The public web repository over HTTP, made again whenever what it shows changes."""
    from ca.web.server import serve

    service_logging()
    app.engine  # noqa: B018 -- brings the schema up to date and fails here, in one line, if the database is away
    click.echo(f"web repository on http://{host}:{port}/ (public; pages under {app.settings.data_dir / 'web'})",
               err=True)
    serve(app.settings, _sources(app, practice), host=host, port=port, workers=workers, interval=poll)


def register(cli: click.Group) -> None:
    cli.add_command(web_group)
    add_serve_command(cli, serve_web)
