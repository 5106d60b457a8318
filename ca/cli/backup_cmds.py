"""`revoca backup ...`, `revoca restore` and `revoca serve backup` (seed 004 5.4.5, 5.5.4, 5.5.7.2).

Taking and verifying a backup reads every service's files (the token store, the RA's TLS key),
so it runs as root (the service manager's timer or `revoca serve backup`), not as the
scheduler's identity, which may not read them (issue 12).  A person records the monthly copy
to external media and the yearly readability check; a restore is root's on a fresh machine,
before any operator exists there.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ca.cli.common import App, add_serve_command, emit_json, json_option, pass_app, table, when

if TYPE_CHECKING:
    from ca.backup.verify import Verification

_backup_path = click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))


@click.group("backup")
def backup_group() -> None:
    """Backups: made daily and verified by restoring them into scratch, copied off-site monthly, read yearly."""


@backup_group.command("create")
@click.option("--to", "root", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the backup (default: [backup] dir).")
@json_option
@pass_app
def backup_create(app: App, root: Path | None, as_json: bool) -> None:
    """Take a backup now and verify it by restoring it into a scratch place."""
    verification = _take_and_verify(app, root or app.settings.backup_dir)
    if as_json:
        emit_json({"backup": str(verification.path), "ok": verification.ok, "problems": list(verification.problems),
                   "manifest_sha256": verification.digest})
    else:
        click.echo(verification.line())
    if not verification.ok:
        from ca.errors import IntegrityFailure

        raise IntegrityFailure(f"backup {verification.path.name} did not verify")


@backup_group.command("verify")
@_backup_path
@pass_app
def backup_verify(app: App, path: Path) -> None:
    """Restore a backup into a scratch place and check its files, audit chain and archive."""
    _verify(app, path, event="backup.verified")


@backup_group.command("check")
@_backup_path
@pass_app
def backup_check(app: App, path: Path) -> None:
    """The yearly readability check (seed 004 5.5.7.2) of a copy on external media, recorded with who did it."""
    _verify(app, path, event="backup.checked")


@backup_group.command("mark-offsite")
@_backup_path
@click.option("--media", required=True, help="What the copy was written to, e.g. \"LTO-9 tape R-2026-12\".")
@pass_app
def backup_mark_offsite(app: App, path: Path, media: str) -> None:
    """Record the monthly copy of a backup to external media (seed 004 5.5.4); such a backup is never pruned."""
    from ca.backup import ledger
    from ca.backup.verify import read_manifest

    _, digest = read_manifest(path)
    ledger.simple(app.engine, ledger.OFFSITE, app.actor, backup=path.name, path=str(path), media=media,
                  manifest_sha256=digest)
    click.echo(f"backup {path.name}: recorded as copied to {media}")


@backup_group.command("list")
@json_option
@pass_app
def backup_list(app: App, as_json: bool) -> None:
    """The backups in [backup] dir, with the newest verified one and the off-site copies."""
    from ca.backup import ledger
    from ca.backup.retention import backups
    from ca.storage.engine import session_scope

    with session_scope(app.engine, readonly=True) as session:
        newest = ledger.newest_verified(session)
        offsite = ledger.offsite_names(session)
    rows = [{"backup": path.name, "made": made, "offsite": path.name in offsite,
             "newest_verified": path.name == newest.backup} for made, path in backups(app.settings.backup_dir)]
    if as_json:
        emit_json({"dir": str(app.settings.backup_dir), "newest_verified_at": newest.verified_at, "backups": rows})
        return
    table(["BACKUP", "MADE", "OFF-SITE", ""],
          [[r["backup"], when(r["made"]), "yes" if r["offsite"] else "", "newest verified" if r["newest_verified"]
            else ""] for r in rows])


@backup_group.command("purge-key")
@click.option("--ca", "ca_name", required=True, metavar="NAME", help="The CA whose destroyed key it is.")
@click.option("--key", "key_ref", required=True, metavar="GEN|LABEL",
              help="The destroyed key's generation number or token label (as given to `revoca ca destroy-key`).")
@click.option("--dry-run", is_flag=True, help="Only name the backups that would be removed.")
@click.option("--dir", "root", type=click.Path(file_okay=False, path_type=Path),
              help="The backup directory (default: [backup] dir).")
@pass_app
def backup_purge_key(app: App, ca_name: str, key_ref: str, dry_run: bool, root: Path | None) -> None:
    """Remove the backups that still hold a destroyed key (seed 004 6.2.10.1; M key managers).

    Only once a backup made after the destruction is recorded as verified and still matches its
    manifest; whole backups are removed (docs/backups.md says why).  Copies on external media are
    named for their holders to destroy.
    """
    from ca.backup.key_copies import purge

    done = purge(app.engine, root or app.settings.backup_dir, ca_name, key_ref, actor=app.actor, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    if not done.removed and not done.media_to_destroy:
        click.echo(f"no backup holds {done.key.label} (destroyed {when(done.key.destroyed_at)})")
        return
    for holder in done.removed:
        click.echo(f"{verb} backup {holder.name}: made {when(holder.made)}, before {done.key.label} was destroyed")
    if done.removed:
        click.echo(f"backup {done.successor}, made after the destruction and verified, holds everything else")
    for copy in done.media_to_destroy:
        click.echo(f"the copy of backup {copy} still holds the key: destroy that copy (seed 004 6.2.10.1)")


@click.command("restore")
@_backup_path
@pass_app
def restore_cmd(app: App, path: Path) -> None:
    """Restore a backup into an empty data directory and database (a fresh machine); it is verified first."""
    from ca.backup import ledger
    from ca.backup.restore import restore
    from ca.tsa.known import token_checker

    done, verification = restore(path, app.settings, token_checker)
    ledger.verified(app.engine, verification, app.actor, event=ledger.RESTORED, data_dir=str(done.data_dir))
    click.echo(f"restored {done.backup} into {done.data_dir} and {done.database}; {verification.line()}")
    if done.config_copy:
        click.echo(f"the backup's configuration is in {done.config_copy}: compare it with the one in use")
    click.echo("next: start the services, then M key managers present their shares (`revoca hsm activate`); the "
               "publisher republishes every CA's newest lists to LDAP")


@click.command("backup")
@click.option("--every-hours", default=24, show_default=True, type=click.IntRange(1, 24 * 7),
              help="Take a backup when the newest verified one is this old.")
@pass_app
def serve_backup(app: App, every_hours: int) -> None:
    """Take and verify a backup whenever the newest verified one is older than --every-hours; prune old ones."""
    from ca.cli.common import service_logging

    service_logging()
    stop = threading.Event()
    _stop_on_signals(stop)
    while not stop.is_set():
        _daily(app, dt.timedelta(hours=every_hours))
        stop.wait(600)


def _daily(app: App, every: dt.timedelta) -> None:
    import logging

    from ca.backup import ledger
    from ca.storage.engine import session_scope
    from ca.storage.leases import Lease

    log = logging.getLogger("revoca.backup")
    lease = Lease(app.engine, "backup")  # one machine backs up a shared database
    if not lease.try_acquire():
        return
    try:
        with session_scope(app.engine, readonly=True) as session:
            newest = ledger.newest_verified(session).verified_at
        now = dt.datetime.now(dt.UTC)
        if newest is not None and now - _aware(newest) < every:
            return
        verification = _take_and_verify(app, app.settings.backup_dir)
        (log.info if verification.ok else log.error)("%s", verification.line())
    except Exception:  # a failed backup must not stop the next attempt; it is logged and audited
        log.exception("backup failed")
    finally:
        lease.release()


def _take_and_verify(app: App, root: Path) -> Verification:
    from ca.backup import ledger, retention, snapshot
    from ca.backup.verify import verify
    from ca.storage.engine import session_scope
    from ca.tsa.known import token_checker

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    backup = snapshot.take(app.settings, app.config_path, root, now)
    ledger.created(app.engine, backup, app.actor)
    verification = verify(backup.path, token_checker, app.settings.db_url)
    ledger.verified(app.engine, verification, app.actor)
    with session_scope(app.engine, readonly=True) as session:
        offsite = ledger.offsite_names(session)
    old = retention.expired(root, now, app.settings.backup.keep_days, offsite)
    retention.remove(old)
    for path in old:
        ledger.simple(app.engine, ledger.REMOVED, app.actor, backup=path.name, reason="older than keep_days")
    return verification


def _verify(app: App, path: Path, *, event: str) -> None:
    from ca.backup import ledger
    from ca.backup.verify import verify
    from ca.errors import IntegrityFailure
    from ca.tsa.known import token_checker

    verification = verify(path, token_checker, app.settings.db_url)
    ledger.verified(app.engine, verification, app.actor, event=event)
    click.echo(verification.line())
    if not verification.ok:
        raise IntegrityFailure(f"backup {path.name} is not usable")


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _stop_on_signals(stop: threading.Event) -> None:
    import signal

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())


def register(cli: click.Group) -> None:
    cli.add_command(backup_group)
    cli.add_command(restore_cmd)
    add_serve_command(cli, serve_backup)
