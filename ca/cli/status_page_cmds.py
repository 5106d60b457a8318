"""`revoca serve status`: the officers' status page and Prometheus /metrics (attached to the serve group)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ca.cli.common import App, add_serve_command, pass_app

if TYPE_CHECKING:  # the CLI stays lazy: nothing of the status page or the storage at `revoca --help`
    from ca.config import Settings
    from ca.health import HeldList
    from ca.status_page.metrics import HeldLists
    from ca.storage.engine import Engine


@click.command("status")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--public-verifier-names", is_flag=True,
              help="Show per-verifier OCSP counts in /metrics without a login (default: only to officers).")
@pass_app
def serve_status(app: App, host: str, port: int, workers: int, public_verifier_names: bool) -> None:
    """The status page for CA officers at / (HTTP Basic, operator name and password) and /metrics
    (no login; verifier names only with an officer's login)."""
    from ca.status_page.server import serve

    app.engine  # noqa: B018 -- brings the schema up to date and fails here, in one line, if the database is away
    click.echo(f"status page on http://{host}:{port}/ (CA officers), metrics at http://{host}:{port}/metrics",
               err=True)
    serve(app.settings, host=host, port=port, workers=workers, public_verifier_names=public_verifier_names,
          held_lists=_read_back(app.settings))


def _read_back(settings: Settings) -> HeldLists:
    """Each CA's lists as the LDAP repository serves them, for /metrics (repository.readback)."""
    from repository.directory import Endpoint
    from repository.readback import held_lists
    from repository.service import local_slapd

    def read(engine: Engine) -> list[HeldList]:
        slapd = local_slapd(settings)
        try:
            endpoint = slapd.endpoint(timeout=5.0)
        except OSError:  # the status page's own user may not read the rootdn's password: then anonymously
            endpoint = Endpoint(slapd.host, slapd.port, timeout=5.0)  # (the ARLs; CRLs are for verifiers only)
        return held_lists(engine, endpoint, settings.repository.base_dn)

    return read


def register(cli: click.Group) -> None:
    add_serve_command(cli, serve_status)
