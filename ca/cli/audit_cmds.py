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
from ca.errors import IntegrityFailure, InvalidInput
from ca.storage.engine import Session, session_scope
from ca.timestamps import Stamper, TokenCheck


def _inspected(app: App, what: str, **detail: Any) -> None:
    with session_scope(app.engine) as session:
        audit.record(session, "audit.inspected", actor=app.actor, what=what, **detail)


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

    return CurrentAuthority(app.hsm(), app.time_guard)


def _checker(session: Session) -> TokenCheck:
    from ca.tsa.known import token_checker

    return token_checker(session)


@click.group("audit")
def audit_group() -> None:
    """The audit log: verify its hash chain, read it, prune it (internal auditor only)."""


@audit_group.command("verify")
@json_option
@pass_app
def audit_verify(app: App, as_json: bool) -> None:
    """Check that no record was changed, removed or reordered; names the first bad record."""
    with session_scope(app.engine, readonly=True) as session:
        report = verify(session, _checker(session))
    _inspected(app, "verify", ok=report.ok, last_seq=report.last_seq)
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
@click.option("--since", help="Only from this date or time on (UTC unless a zone is given).")
@click.option("--type", "event_type", help="Only this event type, e.g. revocation.approved.")
@click.option("--actor", help="Only this actor.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@json_option
@pass_app
def audit_show(app: App, since: str | None, event_type: str | None, actor: str | None, limit: int,
               as_json: bool) -> None:
    """The newest audit records, newest first."""
    start = _utc(since)
    from ca.audit import timeline

    with session_scope(app.engine, readonly=True) as session:
        # the chained records and, between them, the repository's read histories (CRL fetches,
        # ARL and certificate reads), which are sealed into the chain hourly rather than per read
        entries = timeline.newest(session, limit=limit, since=start, event_type=event_type, actor=actor)
    _inspected(app, "show", since=since, type=event_type, actor_filter=actor, shown=len(entries))
    if as_json:
        emit_json([e.as_json() for e in entries])
        return
    details = [json.dumps(e.detail, ensure_ascii=False, sort_keys=True) for e in entries]
    table(["SEQ", "TIME", "TYPE", "RESULT", "ACTOR", "DETAIL"],
          [[e.seq or "-", when(e.at), e.type, e.result, e.actor, d if len(d) <= 80 else d[:77] + "..."]
           for e, d in zip(entries, details, strict=True)])


@audit_group.command("checkpoint")
@pass_app
def audit_checkpoint(app: App) -> None:
    """Time-stamp the chain's head now (the scheduler does this hourly and at each CRL/ARL)."""
    with session_scope(app.engine) as session:
        cp = take(session, _stamper(app), "manual", dt.datetime.now(dt.UTC), actor=app.actor)
        seq, serial = cp.seq, cp.time_stamp.serial
    click.echo(f"checkpoint at seq {seq}, time-stamp {serial:x}")


@audit_group.command("prune")
@click.option("--before", required=True, help="Delete records older than this date (at least the retention ago).")
@pass_app
def audit_prune(app: App, before: str) -> None:
    """Delete records older than their retention ([audit]: 10 years by default), leaving a time-stamped anchor."""
    cutoff = _utc(before)
    assert cutoff is not None
    now = dt.datetime.now(dt.UTC)
    with session_scope(app.engine) as session:
        done = pruning.prune(session, _stamper(app), _checker(session), before=cutoff, retention=app.settings.audit,
                             now=now, actor=app.actor)
    if done.count == 0:
        click.echo(f"nothing older than {cutoff:%Y-%m-%d} to delete")
    else:
        click.echo(f"deleted {done.count} records (through seq {done.through_seq}); "
                   f"anchor {done.anchor_id} keeps the chain verifiable")
    if done.kept_from_seq is not None:
        click.echo(f"kept from seq {done.kept_from_seq} on: a {done.kept_kind} record is within its retention "
                   "([audit] retention_by_kind), and the chain is pruned only from its start")


def register(cli: click.Group) -> None:
    cli.add_command(audit_group)
