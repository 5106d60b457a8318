"""`revoca audit ...`: the internal auditor's commands (seed 004 5.4).

Only the internal auditor reads the audit log, verifies it and deletes what is past the
retention; each of these inspections is itself recorded, in the log only the auditor reads
(seed 004 5.4.8: other operators cannot see the auditor's inspections).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from ca import audit
from ca.audit import prune as pruning
from ca.audit.checkpoints import take
from ca.audit.verify import verify
from ca.cli.common import App, emit_json, json_option, pass_app, table, when
from ca.cli.login import authenticate
from ca.enums import Role
from ca.errors import IntegrityFailure, InvalidInput
from ca.storage.audit import AuditReads
from ca.storage.engine import Session, session_scope
from ca.timestamps import Stamper, TokenCheck

RETENTION = dt.timedelta(days=365)  # seed 004 5.4.3: audit records are kept at least a year


def _inspected(app: App, operator: str, what: str, **detail: Any) -> None:
    with session_scope(app.engine) as session:
        audit.record(session, "audit.inspected", actor=operator, what=what, **detail)


def _utc(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"{value!r} is not an ISO 8601 date or time, e.g. 2025-11-01") from exc
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)


def _stamper(app: App) -> Stamper:
    from ca.tsa.stamper import CurrentAuthority

    return CurrentAuthority(app.hsm())


def _checker(session: Session) -> TokenCheck:
    from ca.tsa.known import token_checker

    return token_checker(session)


@click.group("audit")
def audit_group() -> None:
    """The audit log: verify its hash chain, read it, prune it (internal auditor only)."""


_operator = click.option("--operator", required=True, help="The internal auditor.")


@audit_group.command("verify")
@_operator
@json_option
@pass_app
def audit_verify(app: App, operator: str, as_json: bool) -> None:
    """Check that no record was changed, removed or reordered; names the first bad record."""
    authenticate(app, operator, Role.INTERNAL_AUDITOR)
    with session_scope(app.engine, readonly=True) as session:
        report = verify(session, _checker(session))
    _inspected(app, operator, "verify", ok=report.ok, last_seq=report.last_seq)
    if as_json:
        emit_json({"ok": report.ok, "first_seq": report.first_seq, "last_seq": report.last_seq,
                   "records": report.records, "checkpoints": report.checkpoints, "seals": report.seals,
                   "newest_stamp": report.newest_stamp.isoformat() if report.newest_stamp else None,
                   "findings": [str(f) for f in report.findings]})
    if not report.ok:
        if not as_json:
            for finding in report.findings[1:]:
                click.echo(f"  also: {finding}", err=True)
        raise IntegrityFailure(f"audit chain broken at {report.findings[0]}")
    if not as_json:
        stamped = f"; newest time-stamp {when(report.newest_stamp)}" if report.newest_stamp else \
            "; no time-stamped checkpoint yet"
        click.echo(f"audit chain intact: seq {report.first_seq}..{report.last_seq} ({report.records} records), "
                   f"{report.checkpoints} checkpoints, {report.seals} history seals{stamped}")


@audit_group.command("show")
@_operator
@click.option("--since", help="Only from this date or time on (UTC unless a zone is given).")
@click.option("--type", "event_type", help="Only this event type, e.g. revocation.approved.")
@click.option("--actor", help="Only this actor.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@json_option
@pass_app
def audit_show(app: App, operator: str, since: str | None, event_type: str | None, actor: str | None, limit: int,
               as_json: bool) -> None:
    """The newest audit records, newest first."""
    authenticate(app, operator, Role.INTERNAL_AUDITOR)
    start = _utc(since)
    with session_scope(app.engine, readonly=True) as session:
        rows = [(e.seq, e.occurred_at, e.event_type, e.result, e.actor, e.detail) for e in
                AuditReads(session).newest_events(limit=limit, since=start, event_type=event_type, actor=actor)]
    _inspected(app, operator, "show", since=since, type=event_type, actor_filter=actor, shown=len(rows))
    if as_json:
        emit_json([{"seq": s, "at": at.isoformat(), "type": t, "result": r, "actor": a, "detail": json.loads(d)}
                   for s, at, t, r, a, d in rows])
        return
    table(["SEQ", "TIME", "TYPE", "RESULT", "ACTOR", "DETAIL"],
          [[s, when(at), t, r, a, d if len(d) <= 80 else d[:77] + "..."] for s, at, t, r, a, d in rows])


@audit_group.command("checkpoint")
@_operator
@pass_app
def audit_checkpoint(app: App, operator: str) -> None:
    """Time-stamp the chain's head now (the scheduler does this hourly and at each CRL/ARL)."""
    authenticate(app, operator, Role.INTERNAL_AUDITOR)
    with session_scope(app.engine) as session:
        cp = take(session, _stamper(app), "manual", dt.datetime.now(dt.UTC), actor=operator)
        seq, serial = cp.seq, cp.time_stamp.serial
    click.echo(f"checkpoint at seq {seq}, time-stamp {serial:x}")


@audit_group.command("prune")
@_operator
@click.option("--before", required=True, help="Delete records older than this date (at least the retention ago).")
@pass_app
def audit_prune(app: App, operator: str, before: str) -> None:
    """Delete records older than the retention (1 year), leaving a time-stamped anchor."""
    authenticate(app, operator, Role.INTERNAL_AUDITOR)
    cutoff = _utc(before)
    assert cutoff is not None
    now = dt.datetime.now(dt.UTC)
    with session_scope(app.engine) as session:
        done = pruning.prune(session, _stamper(app), _checker(session), before=cutoff, retention=RETENTION,
                             now=now, actor=operator)
    if done.count == 0:
        click.echo(f"nothing older than {cutoff:%Y-%m-%d} to delete")
    else:
        click.echo(f"deleted {done.count} records (through seq {done.through_seq}); "
                   f"anchor {done.anchor_id} keeps the chain verifiable")


def register(cli: click.Group) -> None:
    cli.add_command(audit_group)
