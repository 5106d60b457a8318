"""`revoca archive ...`: stamping, verification on request, and offline export (seed 004 5.5, seed 001)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from ca.cli.common import App, emit_json, json_option, pass_app, when
from ca.errors import IntegrityFailure
from ca.storage.engine import session_scope


@click.group("archive")
def archive_group() -> None:
    """The archive: certificates, CRLs/ARLs, revocation requests and histories, time-stamped."""


@archive_group.command("stamp")
@pass_app
def archive_stamp(app: App) -> None:
    """Stamp what is waiting now (the scheduler does this every round)."""
    from ca.archive.stamping import stamp_round
    from ca.tsa.stamper import CurrentAuthority

    stamper, total, rounds = CurrentAuthority(app.hsm(), app.time_guard), 0, 0
    while True:
        with session_scope(app.engine) as session:
            stamps = stamp_round(session, stamper, app.settings.data_dir, dt.datetime.now(dt.UTC))
        if not stamps:
            break
        total, rounds = total + len(stamps), rounds + 1
    click.echo(f"stamped {total} items in {rounds} time-stamps" if total else "nothing waits to be stamped")


@archive_group.command("verify")
@click.argument("ref", metavar="TYPE:ID")
@json_option
@pass_app
def archive_verify(app: App, ref: str, as_json: bool) -> None:
    """Is this stored record intact, and when was it stamped?  TYPE is certificate, crl,
    revocation-request, ocsp-queries or crl-fetches; for the histories ID is a row id."""
    from ca.archive.verify import verify_item
    from ca.tsa.known import token_checker

    with session_scope(app.engine, readonly=True) as session:
        verdict = verify_item(session, app.settings.data_dir, ref, token_checker(session))
    if as_json:
        emit_json({"item": verdict.ref, "intact": verdict.intact, "problem": verdict.problem,
                   "stamped_at": verdict.stamped_at.isoformat() if verdict.stamped_at else None,
                   "token_serial": f"{verdict.token_serial:x}" if verdict.token_serial else None})
    if not verdict.intact:
        raise IntegrityFailure(f"{verdict.ref}: NOT intact: {verdict.problem}")
    if not as_json:
        click.echo(f"{verdict.ref}: intact; stamped {when(verdict.stamped_at)} (time-stamp {verdict.token_serial:x})")


@archive_group.command("export")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="A new directory for the bundle.")
@pass_app
def archive_export(app: App, out: Path) -> None:
    """Write every stamped item with its tokens and verify.sh, to be checked offline with openssl."""
    from ca.archive.export import export
    from ca.tsa.known import tsa_certificates

    with session_scope(app.engine, readonly=True) as session:
        done = export(session, app.settings.data_dir, out, tsa_certificates(session))
    click.echo(f"exported {done.items} items in {done.rounds} time-stamped rounds to {done.path}; "
               f"check them with {done.path / 'verify.sh'}")


def register(cli: click.Group) -> None:
    cli.add_command(archive_group)
