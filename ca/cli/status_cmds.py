"""`revoca status`: what an officer checks first (HSM activation, CRL/ARL expiry, publication, pending requests)."""

from __future__ import annotations

import datetime as dt
import sys

import click

from ca.cli.common import App, emit_json, json_option, pass_app, table, when
from ca.errors import ServiceUnavailable
from ca.scheduler import expiry_warnings, list_statuses
from ca.storage.engine import session_scope
from ca.storage.revocations import RevocationReadStore

#: A publication still waiting after this long means relying parties are not getting it.
PUBLICATION_LATE = dt.timedelta(minutes=15)


@click.command("status")
@json_option
@pass_app
def status_cmd(app: App, as_json: bool) -> None:
    """HSM activation, each CA's newest CRL and ARL, warnings, and requests waiting for people.

    Exits 1 when there is a warning (a CRL or ARL with less than crl.warn_hours left, or none;
    something waiting more than 15 minutes to reach the LDAP repository).
    """
    now = dt.datetime.now(dt.UTC)
    try:
        hsm = app.hsm().status()["line"]
    except ServiceUnavailable as exc:
        hsm = str(exc)
    warnings = expiry_warnings(app.engine, now, warn_before=app.settings.crl.warn_before)
    lists = list_statuses(app.engine)
    with session_scope(app.engine, readonly=True) as session:
        pending = len(RevocationReadStore(session).pending_requests())
    from ca.storage.publications import queue_states

    queue = [q for q in queue_states(app.engine) if q.pending]
    warnings += [f"not in the LDAP repository yet: {q.line()}" for q in queue
                 if q.oldest_pending is not None and now - q.oldest_pending > PUBLICATION_LATE]
    if as_json:
        emit_json({"hsm": hsm, "warnings": warnings, "pending_requests": pending,
                   "publication_waiting": sum(q.pending for q in queue),
                   "lists": [{"ca": s.ca_name, "type": s.list_type.value, "number": s.number,
                              "next_update": s.next_update} for s in lists]})
    else:
        click.echo(f"HSM: {hsm}")
        click.echo(f"requests waiting for review or approval: {pending}")
        waiting = sum(q.pending for q in queue)
        state = f"{waiting} waiting (revoca repository queue)" if waiting else "nothing waiting"
        click.echo(f"LDAP publication: {state}\n")
        table(["CA", "LIST", "NUMBER", "NEXT UPDATE"],
              [[s.ca_name, s.list_type.value, s.number if s.number is not None else "none",
                when(s.next_update)] for s in lists])
        for line in warnings:
            click.echo(f"WARNING: {line}", err=True)
    if warnings:
        sys.exit(1)


def register(cli: click.Group) -> None:
    cli.add_command(status_cmd)
