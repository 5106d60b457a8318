"""`revoca serve cvs`: the certificate validation server (ca.cvs)."""

from __future__ import annotations

import click

from ca.cli.common import App, add_serve_command, pass_app, service_logging

DEFAULT_PORT = 8319


@click.command("cvs")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="gunicorn worker processes.")
@pass_app
def serve_cvs(app: App, host: str, port: int, workers: int) -> None:
    """The certificate validation server over HTTP: POST a certificate (application/pkix-cert, or
    application/pem-certificate-chain with intermediates), get a signed answer (application/cms)."""
    from ca.cvs.material import external_crl_dir
    from ca.cvs.server import serve

    service_logging()
    app.engine  # noqa: B018 -- brings the schema up to date and fails here, in one line, if the database is away
    click.echo(f"certificate validation server on http://{host}:{port}/ ({workers} workers; external CAs' CRLs "
               f"from {external_crl_dir(app.settings.data_dir)})", err=True)
    serve(app.settings, host=host, port=port, workers=workers)


def register(cli: click.Group) -> None:
    add_serve_command(cli, serve_cvs)
