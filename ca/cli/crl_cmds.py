"""`revoca crl issue|list|show`, and `revoca serve scheduler` (attached to the serve group).

The CRL machinery is imported inside the commands: `revoca crl issue` is measured with a
million entries and process start-up counts, so `revoca --help` and other commands must
not pay for it, nor it for them.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ca.cli.common import (
    App,
    add_serve_command,
    emit_json,
    json_option,
    pass_app,
    service_logging,
    stop_on_signals,
    table,
    when,
)
from ca.errors import InvalidInput

if TYPE_CHECKING:
    from ca.audit.keeper import AuditKeeper
    from ca.crl.issue import IssuedCRLInfo
    from ca.enums import ListType
    from ca.storage.crl_issuance import IssuedListView
    from ca.storage.engine import Engine

TYPE_CHOICES = ("crl", "arl", "delta", "both")


def _list_types(value: str) -> list[ListType]:
    from ca.enums import ListType

    return [ListType.CRL, ListType.ARL] if value == "both" else [ListType(value)]


@click.group("crl")
def crl_group() -> None:
    """CRLs (subscriber certificates) and ARLs (CA certificates): issue them, read the archive."""


@crl_group.command("issue")
@click.option("--ca", "ca_names", multiple=True, metavar="NAME", help="A CA to issue for (repeatable).")
@click.option("--all", "all_cas", is_flag=True, help="Every CA whose key revoca holds.")
@click.option("--type", "list_type", type=click.Choice(TYPE_CHOICES), default="both", show_default=True,
              help="crl: subscriber certificates; arl: CA certificates; delta: the delta CRL (what was revoked "
                   "since the newest CRL); both: crl and arl.")
@json_option
@pass_app
def crl_issue(app: App, ca_names: tuple[str, ...], all_cas: bool, list_type: str, as_json: bool) -> None:
    """Issue CRLs/ARLs now, signed through the running HSM service, and archive them."""
    if bool(ca_names) == all_cas:
        raise click.UsageError("name the CAs with --ca NAME (repeatable) or give --all, not both")
    from ca.crl.freshest import delta_policy
    from ca.crl.issue import issue_many, issuing_cas

    names = issuing_cas(app.engine) if all_cas else list(dict.fromkeys(ca_names))
    targets = [(name, t) for name in names for t in _list_types(list_type)]
    now = dt.datetime.now(dt.UTC)
    report = issue_many(app.engine, app.hsm(), app.settings.data_dir, targets, now=now, time_guard=app.time_guard,
                        validity=app.settings.crl.validity, actor=app.actor, deltas=delta_policy(app.settings))
    if report.issued:  # the audit chain is time-stamped at each CRL/ARL issuance (issue 5)
        _keeper(app).checkpoint(now, "crl", actor=app.actor)
    if as_json:
        emit_json({"issued": [_info_json(i) for i in report.issued],
                   "failed": [{"ca": f.ca_name, "type": f.list_type.value, "error": f.error} for f in report.failed]})
    elif report.issued:
        table(["CA", "TYPE", "NUMBER", "THIS UPDATE", "NEXT UPDATE", "ENTRIES", "SIZE", "SHA-256"],
              [[i.ca_name, i.list_type.value, i.number, when(i.this_update), when(i.next_update), i.entries,
                i.size, i.sha256.hex()] for i in report.issued])
    for failure in report.failed:
        click.echo(f"revoca: error: {failure.line()}", err=True)
    if report.failed:
        sys.exit(max(f.exit_code for f in report.failed))


def _info_json(info: IssuedCRLInfo) -> dict[str, Any]:
    return {"ca": info.ca_name, "type": info.list_type.value, "number": info.number,
            "this_update": info.this_update, "next_update": info.next_update, "entries": info.entries,
            "size": info.size, "sha256": info.sha256.hex(), "path": str(info.path)}


def _row_json(row: IssuedListView, ca_name: str, data_dir: Path) -> dict[str, Any]:
    return {"ca": ca_name, "type": row.list_type.value, "number": row.number, "this_update": row.this_update,
            "next_update": row.next_update, "entries": row.entries, "size": row.size, "sha256": row.sha256.hex(),
            "path": str(data_dir / row.path)}


@crl_group.command("list")
@click.option("--ca", "ca_name", metavar="NAME", help="Only this CA's lists.")
@click.option("--type", "list_type", type=click.Choice(TYPE_CHOICES), default="both", show_default=True)
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@json_option
@pass_app
def crl_list(app: App, ca_name: str | None, list_type: str, limit: int, as_json: bool) -> None:
    """The archive of issued CRLs and ARLs, newest first."""
    from ca.storage.engine import session_scope
    from ca.storage.store import ReadStore

    with session_scope(app.engine) as session:
        store = ReadStore(session)
        names = {c.id: c.name for c in store.cas()}
        rows = store.issued_crls(ca=store.ca(ca_name) if ca_name else None, list_types=_list_types(list_type),
                                 limit=limit)
        data = [_row_json(r, names[r.ca_id], app.settings.data_dir) for r in rows]
    if as_json:
        emit_json(data)
        return
    table(["CA", "TYPE", "NUMBER", "THIS UPDATE", "NEXT UPDATE", "ENTRIES", "SIZE", "SHA-256"],
          [[d["ca"], d["type"], d["number"], when(d["this_update"]), when(d["next_update"]), d["entries"], d["size"],
            d["sha256"]] for d in data])


@crl_group.command("show")
@click.option("--ca", "ca_name", required=True, metavar="NAME", help="The issuing CA.")
@click.option("--type", "list_type", type=click.Choice(("crl", "arl", "delta")), default="crl", show_default=True)
@click.option("--number", type=click.IntRange(1), help="Which one (default: the newest).")
@click.option("--pem", is_flag=True, help="Print the CRL in PEM only.")
@click.option("--der-out", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write the DER to this file.")
@json_option
@pass_app
def crl_show(app: App, ca_name: str, list_type: str, number: int | None, pem: bool, der_out: Path | None,
             as_json: bool) -> None:
    """One archived CRL or ARL; the file is checked against the archived SHA-256."""
    import hashlib

    from ca.enums import ListType
    from ca.storage.engine import session_scope
    from ca.storage.store import ReadStore

    with session_scope(app.engine) as session:
        store = ReadStore(session)
        row = store.issued_crl(store.ca(ca_name), ListType(list_type), number)
        data = _row_json(row, ca_name, app.settings.data_dir)
    path = Path(data["path"])
    try:
        der = path.read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"{path} is missing: the archive lists it but the file is gone; restore it from "
                           "backup") from None
    if hashlib.sha256(der).hexdigest() != data["sha256"]:
        raise InvalidInput(f"{path} does not match its archived SHA-256: the file was altered or damaged")
    data["sha256_matches_file"] = True
    if der_out is not None:
        der_out.write_bytes(der)
    if pem:
        import base64
        import textwrap

        body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
        click.echo(f"-----BEGIN X509 CRL-----\n{body}\n-----END X509 CRL-----")
    elif as_json:
        emit_json(data)
    elif der_out is None:
        for key in ("ca", "type", "number", "this_update", "next_update", "entries", "size", "sha256", "path"):
            value = data[key]
            click.echo(f"{key:12} {when(value) if key.endswith('_update') else value}")
        click.echo(f"{'file':12} matches the archived SHA-256")


@click.command("scheduler")
@pass_app
def scheduler_cmd(app: App) -> None:
    """Issue every CA's CRL and ARL each period (default 24 h), catching up at start; runs until stopped."""
    serve_scheduler(app)


def _keeper(app: App, engine: Engine | None = None, *, provision_reports: bool = False) -> AuditKeeper:
    """`provision_reports`: the keeper also makes last month's provision status report when due."""
    from ca.audit.keeper import ACTOR, AuditKeeper
    from ca.reports.provision import make_if_due
    from ca.tsa.stamper import CurrentAuthority

    engine = engine or app.engine
    stamper = CurrentAuthority(app.hsm(), app.time_guard)

    def monthly(now: dt.datetime) -> object:
        return make_if_due(engine, now, stamper=stamper, made_by=ACTOR)

    return AuditKeeper(engine, stamper, app.settings.data_dir, monthly_report=monthly if provision_reports else None)


def serve_scheduler(app: App) -> None:
    """Wire the scheduler to the database and the HSM service and run it until SIGTERM or Ctrl-C."""
    from ca.scheduler import Scheduler
    from ca.storage.engine import open_current
    from ca.storage.grants import role_for

    service_logging()
    config = app.settings.crl
    engine = open_current(app.settings.db_url, role=role_for(app.settings, "scheduler"))
    from ca.crl.freshest import delta_policy

    keeper = _keeper(app, engine, provision_reports=True)
    scheduler = Scheduler(engine, app.hsm(), app.settings.data_dir, config, keeper=keeper, time_guard=app.time_guard,
                          deltas=delta_policy(app.settings))
    stop = stop_on_signals()
    click.echo(f"CRL scheduler: every {config.period_hours} h, valid {config.validity_hours} h; "
               f"data in {app.settings.data_dir}", err=True)
    scheduler.run(stop)
    click.echo("CRL scheduler stopped", err=True)


def register(cli: click.Group) -> None:
    cli.add_command(crl_group)
    add_serve_command(cli, scheduler_cmd)
