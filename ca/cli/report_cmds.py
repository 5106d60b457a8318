"""`revoca report provision`: the monthly provision status report (seed 004 5.2.1 (1), 9.3.3).
Only wires ca.reports.provision, the TSA that stamps it, and the output."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from ca.cli.common import App, emit_json, json_option, pass_app, table, when


@click.group("report")
def report_group() -> None:
    """Reports the CA makes and publishes: the monthly provision status report."""


def _last_month() -> str:
    first = dt.datetime.now(dt.UTC).replace(day=1)
    return (first - dt.timedelta(days=1)).strftime("%Y-%m")


@report_group.command("provision")
@click.option("--month", default=None, metavar="YYYY-MM", help="The month (UTC) to report; default: last month.")
@click.option("--csv", "csv_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the report's CSV to this file.")
@click.option("--no-time-stamp", is_flag=True,
              help="Keep the report without a token from revoca's TSA (when the HSM service is not running).")
@json_option
@pass_app
def report_provision(app: App, month: str | None, csv_out: Path | None, no_time_stamp: bool,
                     as_json: bool) -> None:
    """Make, keep and publish the provision status report of a month (失効情報等の提供状況報告書):
    CRL fetches, ARL and certificate reads, and OCSP queries, per CA, requester and outcome."""
    from ca.reports.provision import make, parse

    stamper = None
    if not no_time_stamp:
        from ca.tsa.stamper import CurrentAuthority

        stamper = CurrentAuthority(app.hsm(), app.time_guard)
    kept = make(app.engine, month or _last_month(), made_by=app.actor, now=dt.datetime.now(dt.UTC), stamper=stamper)
    if csv_out is not None:
        csv_out.write_bytes(kept.csv)
    rows = parse(kept.csv)
    if as_json:
        emit_json({"month": kept.month, "version": kept.version, "sha256": kept.sha256.hex(),
                   "time_stamped": kept.time_stamp is not None, "rows": rows})
        return
    click.echo(f"provision report {kept.month} version {kept.version} kept (SHA-256 {kept.sha256.hex()}"
               f"{', time-stamped' if kept.time_stamp else ', not time-stamped'}); the web repository publishes "
               f"it at its next poll")
    table(["SECTION", "CA", "REQUESTER", "OUTCOME", "COUNT", "NUMBERS"],
          [[r["section"], r["ca"], r["requester"], r["outcome"], r["count"], r["numbers"]] for r in rows])
    click.echo(f"period {when(kept.period_start)} to {when(kept.period_end)}")


def register(cli: click.Group) -> None:
    cli.add_command(report_group)
