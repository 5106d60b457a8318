"""The web repository as its own PostgreSQL role (ca.storage.grants "web"): it builds every page
and polls its change mark with SELECTs on public columns only; the private ones are refused."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from ca.storage import grants
from ca.storage.engine import make_engine
from ca.web.build import Sources, build, mark

from support.installation import CeremonyTemplates, demo_installation


@pytest.fixture
def web_engine(ceremony_templates: CeremonyTemplates, tmp_path: Path) -> Iterator[sa.Engine]:
    with demo_installation(ceremony_templates, "postgresql", tmp_path, with_keys=False) as made:
        grants.apply(made.engine, made.settings.identities)
        settings = dataclasses.replace(made.settings, database_role_per_service=True)
        engine = make_engine(made.settings.db_url, role=grants.role_for(settings, "web"))
        try:
            yield engine
        finally:
            engine.dispose()


def _refused(engine: sa.Engine, sql: str) -> None:
    with pytest.raises(sa.exc.ProgrammingError) as caught, engine.begin() as conn:
        conn.execute(sa.text(sql))
    assert isinstance(caught.value.orig, psycopg.errors.InsufficientPrivilege), caught.value


def test_the_web_repository_builds_as_its_role_and_reads_nothing_private(web_engine: sa.Engine) -> None:
    now = dt.datetime.now(dt.UTC)
    site, files = build(web_engine, Sources(ldap_port=1), now)  # no lists issued: no directory read at all
    assert {v.ca.name for v in site.cas} == {"bridge", "tokyo", "osaka", "hokkaido"}
    assert "index.html" in files and len(site.certificates()) >= 10
    assert mark(web_engine, now) == site.mark
    for sql in ("SELECT reason FROM revocations", "SELECT path FROM issued_crls", "SELECT password_hash FROM verifiers",
                "SELECT name FROM operators", "SELECT answers FROM ocsp_queries", "SELECT bind_dn FROM crl_fetches",
                "INSERT INTO notices (ca_id, kind, occurred_at, recorded_at, recorded_by, summary_ja, summary_en, "
                "action_ja, action_en) VALUES (1, 'termination', now(), now(), 'x', '', '', '', '')",
                "UPDATE cas SET status = 'terminated'"):
        _refused(web_engine, sql)
    with web_engine.connect() as conn:
        writable = conn.execute(sa.text(
            "SELECT DISTINCT table_name, privilege_type FROM information_schema.column_privileges "
            "WHERE grantee = 'revoca_web' AND privilege_type <> 'SELECT'")).all()
    assert {tuple(w) for w in writable} == {("audit_events", "INSERT"), ("audit_head", "UPDATE"),
                                            ("service_runs", "INSERT"), ("service_runs", "UPDATE")}
