"""The validation server as its own PostgreSQL role (ca.storage.grants "cvs"): it loads its trust
material and its signing certificate with SELECTs only; private columns and every write but its
own start and stop records are refused."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from cryptography import x509

from ca.cvs.answer import Status
from ca.cvs.material import TrustSource
from ca.enums import CertKind
from ca.storage import grants
from ca.storage.cvs import CVSReads
from ca.storage.engine import make_engine, session_scope
from ca.storage.store import ReadStore

from support.installation import CeremonyTemplates, Installation, demo_installation


@pytest.fixture
def made(ceremony_templates: CeremonyTemplates, tmp_path: Path) -> Iterator[tuple[Installation, sa.Engine]]:
    with demo_installation(ceremony_templates, "postgresql", tmp_path, with_keys=False) as installation:
        grants.apply(installation.engine, installation.settings.identities)
        settings = dataclasses.replace(installation.settings, database_role_per_service=True)
        engine = make_engine(installation.settings.db_url, role=grants.role_for(settings, "cvs"))
        try:
            yield installation, engine
        finally:
            engine.dispose()


def _refused(engine: sa.Engine, sql: str) -> None:
    with pytest.raises(sa.exc.ProgrammingError) as caught, engine.begin() as conn:
        conn.execute(sa.text(sql))
    assert isinstance(caught.value.orig, psycopg.errors.InsufficientPrivilege), caught.value


def test_the_validation_server_reads_its_material_as_its_role_and_nothing_private(
        made: tuple[Installation, sa.Engine]) -> None:
    installation, engine = made
    now = dt.datetime.now(dt.UTC)
    with session_scope(installation.engine) as session:
        store = ReadStore(session)
        (responder,) = store.certificates(issuer=store.ca("tokyo"), kinds=[CertKind.OCSP_RESPONDER])
        responder_der = responder.der
    validator = TrustSource(engine, installation.data_dir).validator()
    assert {c.subject.rfc4514_string().split(",")[0] for c in validator.anchors} >= {"CN=Bridge CA"}
    answer = validator.check(x509.load_der_x509_certificate(responder_der), (), now)
    # tokyo's responder chains to tokyo's own root; no list has been issued in this copy, so
    # nothing decides its revocation status
    assert answer.status in (Status.VALID, Status.UNKNOWN) and len(answer.path) == 2, answer
    with session_scope(engine) as session:
        found = CVSReads(session).signing_certificate(now)
    assert found is not None and found.key_label.startswith("cvs-server/bridge/")
    for sql in ("SELECT reason FROM revocations", "SELECT name FROM operators", "SELECT subject_dn FROM cas",
                "SELECT password_hash FROM verifiers", "SELECT answers FROM ocsp_queries",
                "UPDATE certificates SET subject_dn = 'x'", "DELETE FROM issued_crls",
                "INSERT INTO revocations (issuer_ca_id, serial, revocation_time, reason, recorded_at) "
                "VALUES (1, 1, now(), 1, now())"):
        _refused(engine, sql)
