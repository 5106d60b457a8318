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
    """Whether the HSM is activated, how many shares are still needed, and how many signing processes are up."""
    status = app.hsm().status()
    emit_json(status) if as_json else click.echo(status["line"])


@hsm_group.command("deactivate")
@click.option("--operator", "key_managers", multiple=True, required=True, metavar="NAME",
              help="A key manager deactivating; repeat for each (M different key managers, M being the "
                   "activation threshold).  Their passwords are asked for in the same order (or read one per "
                   "line from stdin) and checked by the HSM service itself.")
@json_option
@pass_app
def hsm_deactivate(app: App, key_managers: tuple[str, ...], as_json: bool) -> None:
    """Close the token session (M key managers): nothing signs until M key managers activate again."""
    people = [(name, read_secret(f"Password for {name}")) for name in key_managers]
    status = app.hsm().deactivate(people)
    app.operators = key_managers
    emit_json(status) if as_json else click.echo(status["line"])


def register(cli: click.Group) -> None:
    cli.add_command(hsm_group)
