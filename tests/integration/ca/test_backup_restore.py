"""Backups (issue 17, seed 004 5.4.5, 5.5.4, 5.5.7.2): taken by `revoca backup create`, verified
by restoring into scratch (files against the manifest, the audit chain, every archived item
against its time-stamp), damage named, off-site copies and yearly checks recorded, and a
restore on a fresh data directory whose HSM service opens with the same shares and issues
each CA's next CRL with the next number.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ca.backup.snapshot import sha256_of
from ca.backup.verify import verify
from ca.ceremony import read_share_file
from ca.crl.issue import issue_all
from ca.enums import ListType
from ca.hsm.client import HSMClient
from ca.storage.engine import session_scope
from ca.storage.models import AuditEvent
from ca.tsa.known import token_checker

from support.backups import issued_and_stamped, list_numbers
from support.cli import Cli, demo_cli, start_hsm, stop_hsm
from support.clock import NO_NTP
from support.installation import CeremonyTemplates
from support.officers import NO_LOGIN
from support.tools import damage_last_byte

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, ceremony_templates: CeremonyTemplates) -> Iterator[Cli]:
    """A demo installation whose HSM service issued every CA's lists and stamped them into the archive."""
    with demo_cli(ceremony_templates, "sqlite", tmp_path_factory.mktemp("live")) as cli, \
            issued_and_stamped(cli, NOW):
        yield cli


@pytest.fixture(scope="module")
def backup(live: Cli) -> Path:
    out = live.ok("backup", "create", "--to", str(live.root / "backups"))
    assert "intact; restored into scratch" in out, out
    (made,) = [p for p in (live.root / "backups").iterdir() if not p.name.startswith(".")]
    return made


def _events(engine: sa.Engine, event_type: str) -> list[AuditEvent]:
    with session_scope(engine, readonly=True) as session:
        return list(session.scalars(sa.select(AuditEvent).where(AuditEvent.event_type == event_type)
                                    .order_by(AuditEvent.seq)))


def test_a_backup_holds_what_a_restore_needs_and_never_a_share(backup: Path, live: Cli) -> None:
    manifest = json.loads((backup / "manifest.json").read_text())
    names = set(manifest["files"])
    assert "database/revoca.db" in names
    assert any(n.startswith("files/tokens/") for n in names)
    assert any(n.startswith("files/crls/") and n.endswith(".crl") for n in names)
    assert not any("demo-shares" in n or "share-" in n or n.endswith(".password") for n in names)
    assert oct(backup.parent.stat().st_mode & 0o777) == "0o700"  # token files and TLS keys: root only
    verified = _events(live.engine, "backup.verified")
    assert verified and verified[-1].result == "success"
    detail = json.loads(verified[-1].detail)
    assert detail["backup"] == backup.name and detail["archive_items"] > 0 and detail["audit_records"] > 0


def test_a_changed_file_is_named(backup: Path, tmp_path: Path) -> None:
    copy = tmp_path / backup.name
    shutil.copytree(backup, copy)
    crl = next((copy / "files" / "crls").rglob("*.crl"))
    damage_last_byte(crl)
    result = verify(copy, token_checker)
    assert not result.ok
    assert any(str(crl.relative_to(copy)) in p and "differs" in p for p in result.problems)


def test_a_rewritten_database_with_a_matching_manifest_is_still_caught(backup: Path, tmp_path: Path) -> None:
    """Someone who edits the copied database and fixes the manifest's digest: the audit chain and
    the archive's time-stamps, checked on the restored copy, still tell."""
    copy = tmp_path / backup.name
    shutil.copytree(backup, copy)
    db = copy / "database" / "revoca.db"
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE audit_events SET actor = 'nobody' WHERE seq = (SELECT MIN(seq) FROM audit_events)")
    conn.close()
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["database/revoca.db"] = sha256_of(db)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = verify(copy, token_checker)
    assert not result.ok
    assert any(p.startswith("audit: ") for p in result.problems), result.problems


def test_offsite_copy_and_yearly_check_are_recorded_with_who(backup: Path, live: Cli) -> None:
    live.fails("backup", "mark-offsite", str(backup), "--media", "LTO-9 R-2026-12", code=8,
               match=r"needs 1 different person", login=NO_LOGIN)  # Cli logs the cast in unless told not to
    assert not _events(live.engine, "backup.offsite")


def test_restore_on_a_fresh_machine_continues_every_crl_number(backup: Path, live: Cli, tmp_path: Path) -> None:
    before = list_numbers(live.engine)
    (tmp_path / "fresh").mkdir()
    fresh = Cli(tmp_path / "fresh")
    fresh.env["REVOCA_HSM_TOKEN_LABEL"] = live.env["REVOCA_HSM_TOKEN_LABEL"]
    try:
        out = fresh.ok("restore", str(backup))
        assert f"restored {backup.name}" in out
        assert not (fresh.data / "demo-shares").exists()
        fresh.fails("restore", str(backup), code=4, match="is not empty")  # never over an installation
        hsm = start_hsm(fresh)
        try:
            client = HSMClient(fresh.socket)
            for i in (1, 3):  # any two of the three key managers' shares, kept apart from the backup
                client.activate(read_share_file(live.share_file(i)))
            issue_all(fresh.engine, client, fresh.data, now=NOW + dt.timedelta(minutes=1), time_guard=NO_NTP)
            client.close()
        finally:
            stop_hsm(hsm)
        after = list_numbers(fresh.engine)
        assert after == {key: number + 1 for key, number in before.items()}
        assert any(str(kind) == ListType.ARL for _, kind in after)
        restored = _events(fresh.engine, "backup.restored")
        assert restored and restored[-1].result == "success"
    finally:
        fresh.close()


def test_status_warns_when_the_newest_verified_backup_is_too_old(backup: Path, live: Cli) -> None:
    from ca import health

    made = health.newest_verified_backup(live.engine)
    assert made is not None and abs((made - dt.datetime.now(dt.UTC)).total_seconds()) < 600
    limit = dt.timedelta(hours=36)
    assert health.backup_warnings(live.engine, made + dt.timedelta(hours=35), max_age=limit) == []
    (warning,) = health.backup_warnings(live.engine, made + dt.timedelta(hours=48), max_age=limit)
    assert "48 hours old" in warning and "revoca serve backup" in warning
