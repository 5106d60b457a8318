"""`revoca status`: what an officer checks first (HSM activation, CRL/ARL expiry, publication, pending requests)."""

from __future__ import annotations

import datetime as dt
import sys
import time

import click

from ca import health
from ca.cli.common import App, emit_json, json_option, pass_app, table, when
from ca.enums import ListType
from ca.errors import RevocaError, ServiceUnavailable
from ca.scheduler import expiry_warnings, list_statuses
from ca.storage.engine import session_scope
from ca.storage.revocations import RevocationReadStore

#: A publication still waiting after this long means relying parties are not getting it.
PUBLICATION_LATE = dt.timedelta(minutes=15)


@click.command("status")
@json_option
@click.option("--wait", "wait_s", default=0.0, show_default=True, type=click.FloatRange(0, 600), metavar="SECONDS",
              help="Wait up to this long for every component to come up (right after starting them).")
@pass_app
def status_cmd(app: App, as_json: bool, wait_s: float) -> None:
    """Each component up or down, each CA's newest CRL, ARL and delta CRL, warnings, requests waiting for people.

    Exit status: 0 all well; 1 a warning (a CRL or ARL with less than crl.warn_hours left, or
    none; a delta CRL expired or close to it, by the same share of its validity; something
    waiting more than 15 minutes to reach the LDAP repository; the HSM service not activated,
    or running fewer signing processes than hsm.signer_processes; the last valid OCSP responder
    certificate of a CA key ending within ocsp.responder_warn_days; an answer signed ahead that
    responders still serve an hour past its refresh time; an enabled RA terminal bound to no CA;
    a list read back from the LDAP repository with less than crl.warn_hours left); 9 a component
    down (the database, the HSM service, the LDAP repository, the scheduler or the publisher, or
    the OCSP signer where answers are signed ahead) or an error
    (a CA key without a valid OCSP responder certificate, whose queries OCSP answers tryLater;
    the newest list refused because the clock was ahead of the last NTP-confirmed time; a list
    in the LDAP repository expired, or older than the archive's newest 15 minutes after it was issued).
    """
    deadline = time.monotonic() + wait_s
    while True:
        components = health.check_all(app.engine, app.hsm().status, app.settings.repository.port)
        if all(c.up and not c.warning for c in components) or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    now = dt.datetime.now(dt.UTC)
    by_name = {c.name: c for c in components}
    lists = list_statuses(app.engine)  # one read for the table and its warnings (they once disagreed)
    warnings = expiry_warnings(app.engine, now, warn_before=app.settings.crl.warn_before,
                               period=app.settings.crl.period, statuses=lists)
    responders = (health.responder_certificates(app.engine, now, warn_before=app.settings.ocsp.responder_warn_before,
                                                ca_signed=app.settings.ocsp.ca_signed)
                  if by_name["database"].up else health.ResponderFindings())
    warnings += responders.warnings
    warnings += [c.warning for c in components if c.up and c.warning]
    deltas: list[health.DeltaStatus] = []
    presigned: health.Presigned | None = None
    if by_name["database"].up:
        warnings += health.backup_warnings(app.engine, now,
                                           max_age=dt.timedelta(hours=app.settings.backup.max_age_hours))
        if app.settings.crl.deltas:
            deltas = health.newest_deltas(app.engine)
            warnings += health.delta_warnings(deltas, now, warn_before=health.delta_warn_before(app.settings.crl))
        if health.SIGNER in by_name:  # answers are signed ahead here
            presigned = health.presigned(app.engine, now, ca_signed=app.settings.ocsp.ca_signed)
            warnings += presigned.warnings(now)
    errors = list(responders.errors)
    if by_name["database"].up and by_name["ldap"].up:
        held = read_back(app)
        if isinstance(held, str):
            warnings.append(held)
        else:
            found = health.published_list_findings(lists, held, now, warn_before=app.settings.crl.warn_before)
            errors += found.errors
            warnings += found.warnings
    if by_name["database"].up and (ahead := health.clock_ahead(app.engine)):
        errors.append(f"lists are not being signed: {ahead}")
    ended = health.terminated_cas(app.engine)
    with session_scope(app.engine, readonly=True) as session:
        store = RevocationReadStore(session)
        pending = len(store.pending_requests())
        # e.g. registered before terminals were bound to CAs (schema 0008): refused every revocation
        warnings += [f"RA terminal {t.name} is bound to no CA, so it revokes nothing: bind it with "
                     f"`revoca ra scope {t.name} --ca PREFECTURE`" for t in store.terminals()
                     if not t.disabled and not t.ca_ids]
    from ca.storage.publications import queue_states

    queue = [q for q in queue_states(app.engine) if q.pending]
    warnings += [f"not in the LDAP repository yet: {q.line()}" for q in queue
                 if q.oldest_pending is not None and now - q.oldest_pending > PUBLICATION_LATE]
    if by_name["hsm"].up and "not activated" in by_name["hsm"].detail:
        warnings.append("the HSM service is not activated: nothing can be signed until key managers present "
                        "their shares (`revoca hsm activate`)")
    down = [c for c in components if not c.up]
    if as_json:
        emit_json({"hsm": by_name["hsm"].detail, "warnings": warnings, "errors": errors, "pending_requests": pending,
                   "components": {c.name: {"up": c.up, "detail": c.detail} for c in components},
                   "publication_waiting": sum(q.pending for q in queue),
                   "terminated": {name: at for name, at in ended},
                   "lists": [{"ca": s.ca_name, "type": s.list_type.value, "number": s.number,
                              "next_update": s.next_update} for s in lists],
                   "deltas": [{"ca": d.ca_name, "number": d.number, "next_update": d.next_update} for d in deltas],
                   "ocsp_presigned": None if presigned is None else _presigned_json(presigned, now)})
    else:
        click.echo(f"HSM: {by_name['hsm'].detail}")
        for component in components:
            click.echo(f"  {component.line()}")
        click.echo(f"requests waiting for review or approval: {pending}")
        waiting = sum(q.pending for q in queue)
        state = f"{waiting} waiting (revoca repository queue)" if waiting else "nothing waiting"
        if not by_name["ldap"].up:
            state += ", and the LDAP repository is DOWN"
        click.echo(f"LDAP publication: {state}")
        if presigned is not None:
            click.echo(presigned.line(now))
        click.echo()
        newest_delta = {d.ca_name: d for d in deltas}
        rows = []
        for s in lists:
            rows.append([s.ca_name, s.list_type.value, s.number if s.number is not None else "none",
                         when(s.next_update)])
            if s.list_type is ListType.ARL and (d := newest_delta.get(s.ca_name)) is not None:
                rows.append([d.ca_name, "delta", d.number, when(d.next_update)])
        table(["CA", "LIST", "NUMBER", "NEXT UPDATE"], rows)
        for name, at in ended:  # their lists above are the final ones
            click.echo(f"CA {name}: terminated {when(at)}; its final CRL and ARL stay published, nothing more "
                       "is issued")
        for component in down:
            click.echo(f"DOWN: {component.line()}", err=True)
        for line in errors:
            click.echo(f"ERROR: {line}", err=True)
        for line in warnings:
            click.echo(f"WARNING: {line}", err=True)
    if down or errors:
        sys.exit(ServiceUnavailable.exit_code)
    if warnings:
        sys.exit(1)


def _presigned_json(presigned: health.Presigned, now: dt.datetime) -> dict[str, float | None]:
    """Seconds: the age of the served answer due for refresh first, and its refresh target (None: none served)."""
    oldest = presigned.oldest
    return {"oldest_age_s": None if oldest is None else round(oldest.age(now).total_seconds(), 1),
            "refresh_target_s": None if oldest is None else oldest.target.total_seconds()}


def read_back(app: App) -> list[health.HeldList] | str:
    """Each CA's CRL and ARL as slapd serves them (repository.readback), or the warning why not."""
    from repository.readback import held_lists
    from repository.service import local_slapd

    try:
        endpoint = local_slapd(app.settings).endpoint(timeout=5.0)
        return held_lists(app.engine, endpoint, app.settings.repository.base_dn)
    except (RevocaError, OSError) as exc:
        return f"the lists in the LDAP repository could not be read back: {exc}"


def register(cli: click.Group) -> None:
    cli.add_command(status_cmd)
