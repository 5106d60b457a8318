"""Backups on PostgreSQL (issue 17): `revoca backup create` dumps with pg_dump, verifies by
pg_restore into a scratch database (dropped afterwards) and checks the audit chain and the
archive there; a rewritten audit record in a re-made dump is caught by the chain; `revoca
restore` lays the backup into a fresh, empty database on which the HSM opens with other shares
and every CRL/ARL number continues by one.  (tests/integration/ca/test_backup_restore.py: SQLite.)
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from ca.audit.verify import verify as verify_audit
from ca.backup.snapshot import sha256_of
from ca.backup.verify import verify
from ca.ceremony import read_share_file
from ca.crl.issue import issue_all
from ca.hsm.client import HSMClient
from ca.storage import dumps
from ca.storage.engine import make_engine, session_scope
from ca.storage.models import AuditEvent
from ca.tsa.known import token_checker

from support.backups import issued_and_stamped, list_numbers
from support.cli import Cli, demo_cli, start_hsm, stop_hsm
from support.clock import NO_NTP
from support.database import PG_URL, Databases, pg_connect
from support.installation import CeremonyTemplates

NOW = dt.datetime.now(dt.UTC)


def _scratch_databases() -> set[str]:
    with pg_connect(PG_URL) as conn:
        return {row[0] for row in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'revoca\\_backup\\_check\\_%'")}


def _events(engine: sa.Engine, event_type: str) -> list[AuditEvent]:
    with session_scope(engine, readonly=True) as session:
        return list(session.scalars(sa.select(AuditEvent).where(AuditEvent.event_type == event_type)
                                    .order_by(AuditEvent.seq)))


@pytest.mark.slow  # a whole installation dumped, restored into scratch twice and once for real: ~40-90 s
def test_a_postgresql_backup_verifies_catches_a_rewritten_chain_and_restores_into_a_fresh_database(
        tmp_path: Path, ceremony_templates: CeremonyTemplates, databases: Databases) -> None:
    scratch_before = _scratch_databases()
    with demo_cli(ceremony_templates, "postgresql", tmp_path / "live") as live, issued_and_stamped(live, NOW):
        assert live.engine.dialect.name == "postgresql"
        out = live.ok("backup", "create", "--to", str(tmp_path / "backups"))
        assert "intact; restored into scratch" in out, out  # restored, not only listed
        (backup,) = [p for p in (tmp_path / "backups").iterdir() if not p.name.startswith(".")]
        manifest = json.loads((backup / "manifest.json").read_text())
        assert manifest["database"] == {"kind": "postgresql", "file": "database/revoca.pgdump"}
        assert _scratch_databases() == scratch_before  # the scratch database is gone
        # pg_restore itself reads the dump: the audit log and the archive are in it
        listing = subprocess.run(["pg_restore", "--list", str(backup / "database" / "revoca.pgdump")],
                                 capture_output=True, text=True, check=True).stdout
        assert "TABLE DATA public audit_events" in listing and "TABLE DATA public archive_stamps" in listing
        [verified] = _events(live.engine, "backup.verified")
        detail = json.loads(verified.detail)
        assert verified.result == "success" and detail["depth"] == "restored"
        assert detail["audit_records"] > 0 and detail["archive_items"] > 0
        before = list_numbers(live.engine)

        # someone rewrites an audit record in a dump and fixes the manifest: the chain tells
        forged = tmp_path / "forged" / backup.name
        shutil.copytree(backup, forged)
        with databases.fresh("postgresql", tmp_path / "forge") as url:
            dump = forged / "database" / "revoca.pgdump"
            dumps.restore(dump, url)
            engine = make_engine(url)
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE audit_events SET actor = 'nobody' "
                                     "WHERE seq = (SELECT MIN(seq) FROM audit_events)"))
            engine.dispose()
            dump.unlink()
            dumps.dump(url, dump.parent)
        manifest["files"]["database/revoca.pgdump"] = sha256_of(dump)
        (forged / "manifest.json").write_text(json.dumps(manifest))
        result = verify(forged, token_checker, PG_URL)
        assert not result.ok and any(p.startswith("audit: ") for p in result.problems), result.problems
        assert _scratch_databases() == scratch_before

        # restore on a fresh machine: an empty database of its own
        with databases.fresh("postgresql", tmp_path / "fresh-db") as fresh_url:
            (tmp_path / "fresh").mkdir()
            fresh = Cli(tmp_path / "fresh", db_url=fresh_url)
            fresh.env["REVOCA_HSM_TOKEN_LABEL"] = live.env["REVOCA_HSM_TOKEN_LABEL"]
            try:
                out = fresh.ok("restore", str(backup))
                assert f"restored {backup.name}" in out and "intact; restored into scratch" in out, out
                fresh.fails("restore", str(backup), code=4, match="is not empty")
                # the restored database: the same audit chain, verified by revoca's own check
                with session_scope(fresh.engine, readonly=True) as session:
                    report = verify_audit(session, token_checker(session))
                assert not report.findings and report.records >= detail["audit_records"], report.findings
                hsm = start_hsm(fresh)
                try:
                    client = HSMClient(fresh.socket)
                    for i in (1, 3):  # other shares than the live installation used
                        client.activate(read_share_file(live.share_file(i)))
                    issue_all(fresh.engine, client, fresh.data, now=NOW + dt.timedelta(minutes=1), time_guard=NO_NTP)
                    client.close()
                finally:
                    stop_hsm(hsm)
                assert list_numbers(fresh.engine) == {key: n + 1 for key, n in before.items()}
                [restored] = _events(fresh.engine, "backup.restored")
                assert restored.result == "success"
            finally:
                fresh.close()
    assert _scratch_databases() == scratch_before
