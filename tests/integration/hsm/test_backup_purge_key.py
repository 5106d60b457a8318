"""Backups that still hold a destroyed key (seed 004 6.2.10.1, issue 13): `revoca ca destroy-key`
names them (off-site copies too), and `revoca backup purge-key` (M key managers) removes them
only once a backup made after the destruction is verified and still matches its manifest."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import sqlalchemy as sa

from ca import hierarchy
from ca.backup import ledger
from ca.backup.key_copies import PURGED
from ca.backup.snapshot import take
from ca.backup.verify import verify
from ca.hsm.signer import KeyAlgorithm
from ca.storage.engine import session_scope
from ca.storage.models import AuditEvent, Certificate
from ca.storage.store import Store
from ca.tsa.known import token_checker

from support.clock import NO_NTP
from support.hsm_service import RunningHSM
from support.tools import revoca

KM = ("keymanager1", "keymanager2")


def _cli(hsm: RunningHSM, *args: str, people: tuple[str, ...] = KM) -> tuple[int, str, str]:
    logins = [a for name in people for a in ("--operator", name)]
    return revoca(hsm.env(), *args, *logins, stdin=hsm.passwords(*people))


def _events(hsm: RunningHSM, event: str) -> list[tuple[str, dict[str, object]]]:
    with session_scope(hsm.engine, readonly=True) as s:
        return [(e.result, json.loads(e.detail)) for e in s.scalars(
            sa.select(AuditEvent).where(AuditEvent.event_type == event).order_by(AuditEvent.seq))]


def _verified_backup(hsm: RunningHSM, root: Path, at: dt.datetime) -> Path:
    made = take(hsm.installation.settings, None, root, at)
    verification = verify(made.path, token_checker)
    assert verification.ok, verification.line()
    ledger.verified(hsm.engine, verification, "root")
    return made.path


def test_backups_holding_a_destroyed_key_are_named_then_purged_after_a_newer_verified_one(hsm: RunningHSM) -> None:
    settings, now = hsm.installation.settings, dt.datetime.now(dt.UTC)
    root = settings.backup_dir
    with session_scope(hsm.engine) as s:
        hierarchy.rollover(hierarchy.Context(store=Store(s), keys=hsm.client, now=now, actor="test",
                                             algorithm=KeyAlgorithm.P256, time_guard=NO_NTP), "tokyo")
        old = next(k for k in Store(s).ca("tokyo").keys if k.generation == 1)
        label, born = old.key_label, old.created_at
        s.execute(sa.update(Certificate).where(Certificate.issuer_key_id == old.id)
                  .values(not_after=now - dt.timedelta(days=1)))  # years later: all it signed expired
    assert label is not None
    too_old = _verified_backup(hsm, root, born - dt.timedelta(days=1))  # before the key existed
    holder = _verified_backup(hsm, root, now - dt.timedelta(minutes=2))
    # the monthly copy of that one went to tape
    ledger.simple(hsm.engine, ledger.OFFSITE, "operator", backup=holder.name, media="LTO-9 R-2026-11")

    code, out, err = _cli(hsm, "ca", "destroy-key", "--ca", "tokyo", "--key", "1")
    assert code == 0, err
    assert f"1 backup(s) still hold this key: {holder.name} ({holder}, off-site on LTO-9 R-2026-11)" in out
    assert f"revoca backup purge-key --ca tokyo --key {label}" in out

    # no backup since the destruction: nothing is removed
    code, _out, err = _cli(hsm, "backup", "purge-key", "--ca", "tokyo", "--key", "1")
    assert code != 0 and "no backup made after the destruction is recorded as verified" in err, err
    assert holder.is_dir()
    # one key manager alone may not purge
    code, _out, err = _cli(hsm, "backup", "purge-key", "--ca", "tokyo", "--key", "1", people=KM[:1])
    assert code == 8, err

    newer = _verified_backup(hsm, root, now + dt.timedelta(minutes=2))
    # a newer backup that no longer matches what was verified does not count
    token_file = next(p for p in (newer / "files" / "tokens").rglob("*") if p.is_file())
    kept = token_file.read_bytes()
    token_file.write_bytes(kept + b"\0")
    code, _out, err = _cli(hsm, "backup", "purge-key", "--ca", "tokyo", "--key", "1")
    assert code != 0 and f"backup {newer.name} no longer matches what was verified" in err, err
    token_file.write_bytes(kept)

    code, out, err = _cli(hsm, "backup", "purge-key", "--ca", "tokyo", "--key", "1", "--dry-run")
    assert code == 0 and f"would remove backup {holder.name}" in out and holder.is_dir(), err

    code, out, err = _cli(hsm, "backup", "purge-key", "--ca", "tokyo", "--key", label)
    assert code == 0, err
    assert f"removed backup {holder.name}" in out and f"backup {newer.name}, made after the destruction" in out
    assert f"the copy of backup {holder.name} on LTO-9 R-2026-11 still holds the key" in out
    assert not holder.exists() and too_old.is_dir() and newer.is_dir()
    [(result, purged)] = _events(hsm, PURGED)
    assert (result, purged["key_label"], purged["removed"], purged["successor"]) == (
        "success", label, [holder.name], newer.name)
    assert purged["media_to_destroy"] == [f"{holder.name} on LTO-9 R-2026-11"]
    assert [d["backup"] for _r, d in _events(hsm, ledger.REMOVED)] == [holder.name]
    # done: the next run has nothing left to remove here, and still names the tape
    code, out, _err = _cli(hsm, "backup", "purge-key", "--ca", "tokyo", "--key", label)
    assert code == 0 and "removed backup" not in out and "on LTO-9 R-2026-11 still holds the key" in out
