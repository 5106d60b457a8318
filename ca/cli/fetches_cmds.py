"""`revoca repository fetches`: the provision history (seed 004 5.5.1.2), attached to the repository group.

The rows come from slapd's accesslog, which the publisher ingests every round
(repository/provision.py); this command only reads them.
"""

from __future__ import annotations

import datetime as dt

import click

from ca.cli.common import App, emit_json, json_option, pass_app, table, when
from ca.cli.repository_cmds import repository_group


def _since(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time, e.g. 2026-11-01 or 2026-11-01T09:00Z") from exc
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)


@click.command("fetches")
@click.option("--verifier", metavar="NAME", help="Only this registered verifier's fetches.")
@click.option("--since", metavar="ISO", callback=_since, help="Only from this time on (UTC unless a zone is given).")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True, help="At most this many rows.")
@json_option
@pass_app
def repository_fetches(app: App, verifier: str | None, since: dt.datetime | None, limit: int, as_json: bool) -> None:
    """Which verifier fetched which CRL from the directory, and when (newest first).

    denied: the access rules hid the CRL (anonymous, not a verifier, or removed);
    failed: a bind to a verifier account was refused (wrong password).
    """
    from repository.provision import fetches  # ldap3 and the models only when asked

    rows = fetches(app.engine, verifier=verifier, since=since, limit=limit)
    if as_json:
        emit_json([{"fetched_at": r.fetched_at.isoformat(), "verifier": r.verifier, "bind_dn": r.bind_dn,
                    "ca": r.ca, "dn": r.dn, "type": r.list_type, "crl_number": r.crl_number, "result": r.result}
                   for r in rows])
        return
    if not rows:
        click.echo("no fetches recorded")
        return
    table(["TIME", "VERIFIER", "CA", "CRL NUMBER", "RESULT"],
          [[when(r.fetched_at), r.verifier or r.bind_dn or "(anonymous)",
            r.ca or (r.dn if r.list_type else ""), r.crl_number, r.result] for r in rows])


def register(cli: click.Group) -> None:
    repository_group.add_command(repository_fetches)
