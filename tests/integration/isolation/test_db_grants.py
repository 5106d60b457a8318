"""One PostgreSQL role per service, with GRANTs for exactly what it uses (issue 12, ca.storage.grants).

After `grants.apply`, each service's real code runs on a demo installation through an engine that
`SET ROLE`s to that service's role (as `database_role_per_service = true` makes it), and the
refusals that matter are PostgreSQL permission errors: OCSP reads no operator and changes no
revocation, the RA deletes no audit record and reads no verifier's secret, the status page writes
nothing but audit records (its logins) and its own runs; every service audits its start and stop.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from asn1crypto import tsp
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp as x509_ocsp

from ca import audit
from ca.audit.keeper import AuditKeeper
from ca.config import Settings, settings_from_dict
from ca.enums import ListType, PublicationItem, PublicationState, Role
from ca.errors import ConfigError, RevocaError
from ca.hsm.client import HSMClient
from ca.hsm.ledger import SignatureLedger
from ca.ra.app import create_app as create_ra_app
from ca.scheduler import Scheduler
from ca.status_page import create_app as create_status_app
from ca.status_page.metrics import RevocaCollector
from ca.storage import grants
from ca.storage.engine import make_engine, open_current, session_scope
from ca.storage.models import (
    ArchiveStamp,
    AuditCheckpoint,
    AuditEvent,
    IssuedCRL,
    OCSPQuery,
    Publication,
    Revocation,
    TimeStamp,
)
from ca.storage.provision import ProvisionWrites
from ca.storage.publications import PublicationWrites, queue_states
from ca.storage.revocations import RevocationReadStore
from ca.storage.verifiers import VerifierReads
from ca.tsa.app import make_app as make_tsa_app
from ca.tsa.certificate import ensure_certificate
from ca.tsa.stamper import CurrentAuthority
from ca.verifiers.registry import add_verifier
from ocsp.history import QueryHistory
from ocsp.responder import Responder
from repository import entries

from support.clock import NO_NTP
from support.installation import CeremonyTemplates, Installation, demo_installation
from support.ra_fixtures import add_operator, basic_auth, register_terminals, subscribers
from support.settings import LDAP_BASE
from support.tools import activated_hsm_service, court_certificate, ocsp_request, officers_client, revoca_run

ROOT = Path(__file__).resolve().parents[3]


@dataclasses.dataclass
class Granted:
    installation: Installation
    keys: HSMClient  # the HSM service, whose own database connections run as the signer's role
    engines: dict[str, sa.Engine]
    applied: list[grants.Applied]

    @property
    def admin(self) -> sa.Engine:
        return self.installation.engine

    @property
    def settings(self) -> Settings:
        return self.installation.settings


@pytest.fixture(scope="module")
def granted(ceremony_templates: CeremonyTemplates, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Granted]:
    root = tmp_path_factory.mktemp("grants")
    with demo_installation(ceremony_templates, "postgresql", root, with_keys=False) as made:
        applied = grants.apply(made.engine, made.settings.identities)
        settings = dataclasses.replace(made.settings, database_role_per_service=True)
        engines = {s: make_engine(made.settings.db_url, role=grants.role_for(settings, s)) for s in grants.SERVICES}
        # the signer: activation (two key managers' shares) is audited through its role
        with activated_hsm_service(made.settings, engines["signer"], made.result.shares) as socket:
            keys = officers_client(socket, made.settings)  # the TSA certificate: a ceremony act
            ensure_certificate(made.settings, made.engine, keys, now=dt.datetime.now(dt.UTC), actor="test")
            try:
                yield Granted(made, keys, engines, applied)
            finally:
                keys.close()
                for engine in engines.values():
                    engine.dispose()


def refused(engine: sa.Engine, sql: str) -> None:
    """`sql` as the engine's role fails with PostgreSQL's permission error (42501)."""
    with pytest.raises(sa.exc.ProgrammingError) as caught, engine.begin() as conn:
        conn.execute(sa.text(sql))
    assert isinstance(caught.value.orig, psycopg.errors.InsufficientPrivilege), caught.value
    assert "permission denied" in str(caught.value.orig)


def current_role(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        return str(conn.scalar(sa.text("SELECT current_user")))


def _count(engine: sa.Engine, model: Any, *where: Any) -> int:
    with session_scope(engine, readonly=True) as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0


def _events(engine: sa.Engine, event_type: str, actor_like: str = "%") -> int:
    return _count(engine, AuditEvent, AuditEvent.event_type == event_type, AuditEvent.actor.like(actor_like))


def _verifier(granted: Granted, name: str) -> bytes:
    cert, _ = court_certificate(name)
    now = dt.datetime.now(dt.UTC)
    add_verifier(granted.admin, name=name, certificate=cert, password="verifier password 1", now=now,
                 base_dn=LDAP_BASE, actor="test")
    return cert.public_bytes(serialization.Encoding.DER)


# --- the table and its application ----------------------------------------------------------------


def test_the_table_names_only_real_tables_and_privileges_and_every_service() -> None:
    assert grants.check_table() == []
    assert set(grants.TABLE) == set(grants.SERVICES)


def test_each_service_connects_as_its_role_and_the_login_roles_are_members(granted: Granted) -> None:
    for service, engine in granted.engines.items():
        assert current_role(engine) == f"revoca_{service}"
    assert [a.service for a in granted.applied] == [*grants.SERVICES, grants.ADMIN]
    with granted.admin.connect() as conn:
        for service, login in grants.login_names(granted.settings.identities).items():
            can_login, member = conn.execute(sa.text(
                "SELECT rolcanlogin, pg_has_role(rolname, :role, 'MEMBER') FROM pg_roles WHERE rolname = :login"),
                {"login": login, "role": f"revoca_{service}"}).one()
            assert can_login and member, login


def test_applying_again_changes_nothing_and_revokes_what_is_not_in_the_table(granted: Granted) -> None:
    with granted.admin.begin() as conn:
        conn.execute(sa.text("GRANT DELETE ON audit_events TO revoca_ocsp"))
    again = grants.apply(granted.admin, granted.settings.identities)
    assert [a.line() for a in again] == [a.line() for a in granted.applied]
    refused(granted.engines["ocsp"], "DELETE FROM audit_events WHERE id < 0")


def test_revoca_run_applies_the_roles_itself_at_every_start(granted: Granted, tmp_path: Path) -> None:
    """What `revoca run` calls before it starts the services (ca.cli.run_cmds): the roles again,
    so a grant taken away or added by hand is put right without `revoca db grant`."""
    with granted.admin.begin() as conn:
        conn.execute(sa.text("REVOKE SELECT ON revocations FROM revoca_ocsp"))
        conn.execute(sa.text("GRANT DELETE ON audit_events TO revoca_ra"))
    line = grants.apply_at_start(granted.admin, granted.settings.identities, role_per_service=True)
    assert line is not None and line.startswith(f"database roles: {len(grants.SERVICES) + 1} roles applied")
    with granted.engines["ocsp"].connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM revocations")) is not None
    refused(granted.engines["ra"], "DELETE FROM audit_events WHERE id < 0")
    assert [a.line() for a in grants.apply(granted.admin, granted.settings.identities)] == [
        a.line() for a in granted.applied]  # and nothing else changed
    # a role that may not create roles: one line saying what to do, and the service starts anyway
    url = sa.engine.make_url(granted.settings.db_url).set(username=granted.settings.identities.status)
    weak = make_engine(url.render_as_string(hide_password=False))
    try:
        warning = grants.apply_at_start(weak, granted.settings.identities, role_per_service=False)
    finally:
        weak.dispose()
    assert warning is not None and warning.startswith("WARNING: the per-service database roles were not applied")
    assert "`revoca db grant`" in warning and "\n" not in warning
    sqlite = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    assert grants.apply_at_start(sqlite, granted.settings.identities, role_per_service=False) is None
    sqlite.dispose()


def test_a_login_role_holds_its_service_privileges_without_set_role(granted: Granted) -> None:
    """Peer authentication maps the Unix user revoca-ocsp to the PostgreSQL role revoca-ocsp; trust
    auth stands in for it here.  Membership alone gives it the OCSP role's privileges."""
    url = sa.engine.make_url(granted.settings.db_url).set(username=granted.settings.identities.ocsp)
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        assert current_role(engine) == "revoca-ocsp"
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT count(*) FROM certificates")) > 0
        refused(engine, "SELECT credential_hash FROM operators")
    finally:
        engine.dispose()


def test_a_service_opening_the_database_with_its_role_only_checks_the_schema(granted: Granted) -> None:
    engine = open_current(granted.settings.db_url, role=grants.role_name("status"))
    try:
        assert current_role(engine) == "revoca_status"
    finally:
        engine.dispose()


# --- each service's real work, as its role ----------------------------------------------------------


def test_ocsp_answers_and_writes_its_history_but_reads_no_operator(granted: Granted) -> None:
    ocsp = granted.engines["ocsp"]
    verifier = _verifier(granted, f"court-{uuid.uuid4().hex[:8]}")
    with session_scope(granted.admin, readonly=True) as s:
        store = RevocationReadStore(s)
        tokyo = x509.load_der_x509_certificate(store.self_signed_der(store.ca("tokyo"),
                                                                     store.current_key(store.ca("tokyo"))))
    responder = Responder(ocsp, granted.keys, time_guard=NO_NTP)
    history = QueryHistory(ocsp, thread=False)
    before = _count(granted.admin, OCSPQuery)
    for nonce in (None, b"fresh-nonce-5678"):
        outcome = responder.respond(ocsp_request(tokyo, subscribers(granted.admin)[0].serial, nonce=nonce),
                                    tls_client_cert=verifier)
        assert outcome.response_status == "successful"
        assert x509_ocsp.load_der_ocsp_response(outcome.body).certificate_status == x509_ocsp.OCSPCertStatus.GOOD
        history.record(outcome)
    assert history.flush() == 2
    history.close()
    assert _count(granted.admin, OCSPQuery) == before + 2
    responder.lookups.reset()

    refused(ocsp, "SELECT credential_hash FROM operators")
    refused(ocsp, "SELECT name FROM operators")
    refused(ocsp, "UPDATE revocations SET reason = 1")
    refused(ocsp, "DELETE FROM revocations")
    refused(ocsp, "SELECT password_hash FROM verifiers")


def test_the_ocsp_signer_signs_ahead_as_the_ocsp_role_and_deletes_nothing(granted: Granted) -> None:
    from ca.storage.leases import Lease
    from ocsp.presigner import Presigner

    ocsp = granted.engines["ocsp"]
    keys = granted.keys
    signer = Presigner(ocsp, lambda: keys, threads=1, lease=Lease(ocsp, f"ocsp-signer-{uuid.uuid4().hex[:8]}"),
                       time_guard=NO_NTP)
    signer.sign_all()
    assert signer.sign_all().signed == 0  # everything in place, written as revoca_ocsp
    verifier = _verifier(granted, f"court-{uuid.uuid4().hex[:8]}")
    with session_scope(granted.admin, readonly=True) as s:
        store = RevocationReadStore(s)
        tokyo = x509.load_der_x509_certificate(store.self_signed_der(store.ca("tokyo"),
                                                                     store.current_key(store.ca("tokyo"))))
    outcome = Responder(ocsp, keys,
                        time_guard=NO_NTP).respond(ocsp_request(tokyo, subscribers(granted.admin)[0].serial),
                                            tls_client_cert=verifier)
    assert outcome.presigned and outcome.response_status == "successful"
    # its answers signed ahead are a cache it may prune (expired certificates); its records are not
    refused(ocsp, "DELETE FROM revocations")
    refused(ocsp, "DELETE FROM ocsp_queries")


def test_the_ra_files_a_revocation_but_deletes_no_audit_record_and_reads_no_verifier(granted: Granted,
                                                                                   tmp_path: Path) -> None:
    ra = granted.engines["ra"]
    now = dt.datetime.now(dt.UTC)
    [terminal] = register_terminals(granted.admin, granted.keys, [f"t-{uuid.uuid4().hex[:8]}"], tmp_path, now=now)
    clerk = f"clerk-{uuid.uuid4().hex[:8]}"
    add_operator(granted.admin, clerk, Role.RECEPTIONIST)
    target = subscribers(granted.admin, "osaka")[1]
    body = {"issuer_ca": "osaka", "serial": target.hex_serial, "reason": "keyCompromise", "applicant": "self",
            "identity_document_checked": True, "idempotency_key": f"grants-{uuid.uuid4()}"}
    client = create_ra_app(ra, granted.keys).test_client()
    answer = client.post("/v1/revocations", json=body, headers=basic_auth(clerk),
                         environ_base={"revoca.client_cert_der": terminal.der})
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["receipt"]  # signed and kept (UPDATE of the receipt column)
    assert _count(granted.admin, Revocation, Revocation.certificate_id == target.id) == 1
    assert _events(granted.admin, "revocation.request_filed", f"{clerk}%") == 1
    again = client.get(f"/v1/revocations/{answer.get_json()['request_id']}",
                       environ_base={"revoca.client_cert_der": terminal.der})
    assert again.status_code == 200, again.get_json()
    refused_answer = client.post("/v1/revocations", json=body, headers=basic_auth(clerk, "wrong password!"),
                                 environ_base={"revoca.client_cert_der": terminal.der})
    assert refused_answer.status_code in (401, 403)  # and audited (ra.request_refused), as the RA's role
    assert _events(granted.admin, "ra.request_refused", f"%{terminal.name}%") >= 1

    refused(ra, "DELETE FROM audit_events")
    refused(ra, "UPDATE audit_events SET actor = 'someone else'")
    refused(ra, "SELECT password_hash FROM verifiers")
    refused(ra, "SELECT name FROM verifiers")
    refused(ra, "UPDATE revocation_requests SET status = 'rejected'")
    refused(ra, "DELETE FROM revocations")


def test_the_scheduler_issues_crls_seals_stamps_and_checkpoints_as_its_role(granted: Granted) -> None:
    scheduler_engine, now = granted.engines["scheduler"], dt.datetime.now(dt.UTC)
    with session_scope(granted.admin) as s:  # a settled history row to seal, an entry stored without its DER
        s.add(OCSPQuery(at=now - dt.timedelta(minutes=5), verifier_id=None, ca_id=None, channel="none", nonce=False,
                        response_status="unauthorized", answers=""))
        s.execute(sa.update(Revocation).where(Revocation.id == sa.select(sa.func.min(Revocation.id))
                                              .scalar_subquery()).values(entry_der=None))
    keeper = AuditKeeper(scheduler_engine, CurrentAuthority(granted.keys, NO_NTP), granted.settings.data_dir)
    scheduler = Scheduler(scheduler_engine, granted.keys, granted.settings.data_dir, granted.settings.crl,
                          keeper=keeper, time_guard=NO_NTP)
    issued_before = _count(granted.admin, IssuedCRL)
    report = scheduler.tick(now)
    assert report.issued and not report.failed, report
    assert _count(granted.admin, IssuedCRL) > issued_before
    assert _count(granted.admin, Publication, Publication.state == PublicationState.PENDING) > 0
    assert _count(granted.admin, Revocation, Revocation.entry_der.is_(None)) == 0
    # again, where a permission error would not be swallowed; later, so that every history row has settled
    keeper.tick(now + dt.timedelta(minutes=2), issued_lists=True)
    assert _count(granted.admin, AuditCheckpoint) >= 1
    assert _count(granted.admin, ArchiveStamp) > 0
    assert _count(granted.admin, TimeStamp, TimeStamp.requester.in_(["audit", "archive"])) >= 2
    assert _events(granted.admin, "history.sealed") >= 1
    assert _events(granted.admin, "crl.issued", "scheduler") >= 1
    assert _events(granted.admin, "audit.checkpoint") == 0  # no checkpoint failed

    refused(scheduler_engine, "DELETE FROM issued_crls")
    refused(scheduler_engine, "SELECT credential_hash FROM operators")
    refused(scheduler_engine, "UPDATE revocations SET reason = 1")


def test_the_tsa_stamps_and_keeps_its_token_as_its_role(granted: Granted) -> None:
    tsa = granted.engines["tsa"]
    request = tsp.TimeStampReq({
        "version": "v1", "message_imprint": {"hash_algorithm": {"algorithm": "sha256"},
                                             "hashed_message": hashlib.sha256(b"minutes").digest()},
        "nonce": 4711, "cert_req": True}).dump()
    environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/timestamp-query",
               "CONTENT_LENGTH": str(len(request)), "wsgi.input": io.BytesIO(request), "REMOTE_ADDR": "127.0.0.9"}
    got: dict[str, str] = {}
    app = make_tsa_app(tsa, granted.keys, time_guard=NO_NTP)
    body = b"".join(app(environ, lambda status, _headers: got.update(status=status)))
    assert got["status"] == "200 OK"
    assert tsp.TimeStampResp.load(body)["status"]["status"].native == "granted"
    assert _count(granted.admin, TimeStamp, TimeStamp.requester == "http:127.0.0.9") == 1
    refused(tsa, "DELETE FROM time_stamps")
    refused(tsa, "SELECT token FROM time_stamps")
    refused(tsa, "SELECT credential_hash FROM operators")


def test_the_status_page_reads_as_its_role_and_writes_only_its_audit_records(granted: Granted) -> None:
    status = granted.engines["status"]
    families = {m.name for m in RevocaCollector(status, clock=lambda: dt.datetime.now(dt.UTC)).collect()}
    assert {"revoca_crl_next_update_seconds", "revoca_ocsp_responses", "revoca_ra_requests",
            "revoca_publication_queue_length"} <= families
    officer = f"officer-{uuid.uuid4().hex[:8]}"
    add_operator(granted.admin, officer, Role.KEY_MANAGER)
    client = create_status_app(status).test_client()
    page = client.get("/", headers=basic_auth(officer))
    assert page.status_code == 200 and "tokyo" in page.get_data(as_text=True)
    assert client.get("/metrics").status_code == 200

    assert _events(granted.admin, "status_page.login", officer) == 1  # its login, audited through its role
    refused(status, "UPDATE audit_events SET actor = 'x'")
    refused(status, "DELETE FROM audit_events")
    refused(status, "UPDATE cas SET name = name")
    refused(status, "DELETE FROM ocsp_queries")
    refused(status, "UPDATE publications SET attempts = 0")
    refused(status, "SELECT actor, detail FROM audit_events")
    refused(status, "SELECT password_hash FROM verifiers")
    with status.connect() as conn:  # nothing else it may change: append audit records, keep its runs
        writable = conn.execute(sa.text(
            "SELECT DISTINCT table_name, privilege_type FROM information_schema.column_privileges "
            "WHERE grantee = 'revoca_status' AND privilege_type <> 'SELECT'")).all()
    assert {tuple(w) for w in writable} == {("audit_events", "INSERT"), ("audit_head", "UPDATE"),
                                            ("service_runs", "INSERT"), ("service_runs", "UPDATE")}


def test_the_publishers_queue_works_as_its_role(granted: Granted) -> None:
    publisher, now = granted.engines["publisher"], dt.datetime.now(dt.UTC)
    _verifier(granted, f"agency-{uuid.uuid4().hex[:8]}")
    with session_scope(publisher) as s:
        store = PublicationWrites(s)
        ca = next(c for c in store.published_cas() if c.name == "tokyo")
        wanted = entries.certificate_set(store, ca, LDAP_BASE, now=now)
        row = store.enqueue_publication(ca_id=ca.id, item=PublicationItem.CERTIFICATES, sha256=wanted.digest,
                                        now=now)
        assert store.certificates_pending(ca.id)
        due = [d.id for d in store.due(now, retry_now=True)]
        assert row.id in due
        store.record_failure(row.id, error="directory away", next_attempt_at=now)
        store.record_outcome(row.id, state=PublicationState.PUBLISHED, dn=wanted.dn, sha256=wanted.digest, now=now,
                             csn="20260101000000.000000Z#000000#000#000000")
        store.supersede_older()
        assert store.last_csn(wanted.dn)
        assert store.latest_issued_crls() is not None
        audit.record(s, "repository.published", actor="publisher", ca=ca.name, item="certificates")
        accounts = VerifierReads(s).with_revocation(active_only=True)
        assert accounts and all(v.password_hash for v, _ in accounts if v.name.startswith("agency-"))
        ProvisionWrites(s).add_fetches([{
            "log_key": f"20260101{uuid.uuid4().hex[:20]}Z", "fetched_at": now, "bind_dn": "cn=x", "verifier_id": None,
            "dn": wanted.dn, "ca_id": ca.id, "list_type": ListType.CRL, "crl_number": None, "result": "denied"}])
    assert any(q.ca_name == "tokyo" and q.published_at is not None for q in queue_states(publisher))

    refused(publisher, "UPDATE publications SET number = 99")
    refused(publisher, "DELETE FROM publications")
    refused(publisher, "SELECT credential_hash FROM operators")
    refused(publisher, "UPDATE verifiers SET status = 'active'")


def test_the_signer_audits_activation_and_refusals_as_its_role(granted: Granted) -> None:
    signer = granted.engines["signer"]
    assert _events(granted.admin, "hsm.activated") >= 1  # written through the signer's role at start
    failed_shares = _count(granted.admin, AuditEvent, AuditEvent.event_type == "hsm.share_presented",
                           AuditEvent.result == audit.FAILURE)
    with pytest.raises(RevocaError, match="share"):
        granted.keys.activate("RVS1-not-a-share")
    assert _count(granted.admin, AuditEvent, AuditEvent.event_type == "hsm.share_presented",
                  AuditEvent.result == audit.FAILURE) == failed_shares + 1
    ledger = SignatureLedger(signer, thread=False)  # what the service counts, a record a minute
    ledger.add("ocsp", "responder-key", "ocsp-response", b"tbs")
    assert ledger.flush() == 1
    ledger.close()
    assert _events(granted.admin, "hsm.signatures", "ocsp") >= 1
    refused(signer, "SELECT serial, subject_dn FROM certificates")  # only a key's CA Names (der) are its
    refused(signer, "DELETE FROM audit_events")
    refused(signer, "UPDATE operators SET disabled = false")


def test_every_service_audits_its_own_start_and_stop_as_its_role(granted: Granted) -> None:
    from ca.audit import service_events

    for service, engine in granted.engines.items():
        run = service_events.service_started(engine, service, host=f"grants-{uuid.uuid4().hex[:8]}")
        service_events.service_stopped(engine, run)
        assert _events(granted.admin, "service.stopped", f"service:{service}") >= 1
        refused(engine, "DELETE FROM service_runs")
        refused(engine, "UPDATE service_runs SET service = 'x'")


# --- `revoca db grant` ------------------------------------------------------------------------------------


def _revoca(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ca", *args], env={**os.environ, **env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_revoca_db_grant_prints_one_line_per_service(granted: Granted) -> None:
    done = _revoca(granted.installation.env(), "db", "grant")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":", 1)[0] for line in lines] == [*grants.SERVICES, grants.ADMIN]
    assert lines[2].startswith("ocsp: revoca_ocsp (login revoca-ocsp): SELECT ")


def test_revoca_db_grant_on_sqlite_says_there_are_no_roles(tmp_path: Path) -> None:
    # in this process (support.tools.revoca_run); the test above runs `python -m ca` as a process
    done = revoca_run({**os.environ, "REVOCA_DATA_DIR": str(tmp_path),
                       "REVOCA_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}"}, "db", "grant", cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [grants.SQLITE_NOTE]


def test_a_role_setting_leaves_sqlite_alone(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}", role="revoca_ocsp")
    try:
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT 1")) == 1
    finally:
        engine.dispose()



def test_the_setting_names_each_service_its_role() -> None:
    assert grants.role_for(settings_from_dict({}), "ocsp") is None
    on = settings_from_dict({"database_role_per_service": True})
    assert [grants.role_for(on, s) for s in grants.SERVICES] == [f"revoca_{s}" for s in grants.SERVICES]
    with pytest.raises(ConfigError, match="database_role_per_service"):
        settings_from_dict({"database_role_per_service": "yes"})
