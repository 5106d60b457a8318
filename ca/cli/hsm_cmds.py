"""`revoca hsm activate|deactivate|status`: talk to the running HSM service.

Only the HSM client is needed here: the share file reader is imported by the command that reads
one, since its module (the key ceremony) pulls in the whole CA hierarchy.
"""

from __future__ import annotations

from pathlib import Path

import click

from ca.cli.common import App, emit_json, json_option, pass_app, read_secret


@click.group("hsm")
def hsm_group() -> None:
    """Activation of the CA keys by M of N key managers."""


@hsm_group.command("activate")
@click.option("--share-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read the share from a file instead of prompting (e.g. from removable media).")
@json_option
@pass_app
def hsm_activate(app: App, share_file: Path | None, as_json: bool) -> None:
    """Present one key manager's share to the running HSM service."""
    from ca.ceremony import read_share_file

    share = read_share_file(share_file) if share_file else read_secret("Activation share")
    status = app.hsm().activate(share)
    emit_json(status) if as_json else click.echo(status["line"])


@hsm_group.command("status")
@json_option
@pass_app
def hsm_status(app: App, as_json: bool) -> None:
    """Whether the HSM is activated, and how many shares are still needed."""
    status = app.hsm().status()
    emit_json(status) if as_json else click.echo(status["line"])


@hsm_group.command("deactivate")
@click.option("--operator", "operator_name", required=True, help="The key manager deactivating.")
@json_option
@pass_app
def hsm_deactivate(app: App, operator_name: str, as_json: bool) -> None:
    """Close the token session: nothing signs until M key managers activate again."""
    password = read_secret(f"Password for {operator_name}")
    status = app.hsm().deactivate(operator_name, password)
    emit_json(status) if as_json else click.echo(status["line"])


def register(cli: click.Group) -> None:
    cli.add_command(hsm_group)
