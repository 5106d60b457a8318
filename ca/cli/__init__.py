"""The `revoca` command: one group per area, each in its own module; main only wires.

Expected failures (RevocaError) print one line and exit non-zero; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import sys

import click

from ca.cli import (
    archive_cmds,
    audit_cmds,
    ca_cmds,
    cert_cmds,
    crl_cmds,
    fetches_cmds,
    hsm_cmds,
    init_cmds,
    ocsp_cmds,
    operator_cmds,
    ra_cmds,
    repository_cmds,
    serve_cmds,
    status_cmds,
    status_page_cmds,
    tsa_cmds,
    verifier_cmds,
)
from ca.cli.common import App
from ca.errors import RevocaError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="REVOCA_CONFIG", type=click.Path(dir_okay=False),
              help="revoca.toml to use (default: ./revoca.toml if present, else built-in defaults).")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """revoca: the revocation side of a national public PKI."""
    ctx.obj = App(config_path)


for module in (init_cmds, ca_cmds, cert_cmds, hsm_cmds, operator_cmds, serve_cmds, ra_cmds, crl_cmds, status_cmds,
               repository_cmds, fetches_cmds, verifier_cmds, ocsp_cmds, tsa_cmds, status_page_cmds, audit_cmds,
               archive_cmds):
    module.register(cli)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("revoca: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except RevocaError as exc:
        click.echo(f"revoca: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
