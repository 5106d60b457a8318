"""The provision status report (seed 004 5.2.1 (1), 9.3.3) from real traffic: OCSP queries through
the responder (signed by registered verifiers, and one by an outsider), CRL and ARL reads through
slapd (ldapsearch, as a verifier and anonymously) taken from its access log, then `revoca report
provision` as the CA administrator: its totals equal the rows of the histories, its time-stamp
verifies with openssl, and the web repository publishes exactly the CSV that was kept.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import tempfile
import threading
import wsgiref.simple_server
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ca.crl.issue import issue_all
from ca.enums import CertKind, ListType
from ca.revocation.reasons import RevocationReason
from ca.revocation.workflow import revoke_certificate
from ca.storage.engine import session_scope
from ca.storage.models import Certificate, CRLFetch, DirectoryRead, IssuedCRL, OCSPQuery, ProvisionReport
from ca.storage.revocations import RevocationStore
from ca.tsa.certificate import ensure_certificate, pem_paths
from ca.verifiers.registry import add_verifier
from ocsp.app import make_app
from ocsp.history import QueryHistory
from ocsp.responder import Responder
from repository import provision, verifier_accounts
from repository.directory import Directory
from repository.publisher import LdapPublisher
from repository.slapd import LocalSlapd

from support.clock import NO_NTP
from support.installation import CeremonyTemplates, Installation, demo_installation
from support.officers import standard_cast
from support.settings import LDAP_BASE, NOW
from support.tools import court_certificate, revoca_run

VERIFIER = "court-7"
PASSWORD = "verifier password 7"
TOKYO_DN = "CN=Governor of Tokyo,OU=Tokyo,OU=Prefectural CA,O=JPKI,C=JP"


class _Quiet(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=["sqlite", "postgresql"])
def installation(request: pytest.FixtureRequest, tmp_path: Path,
                 ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    with demo_installation(ceremony_templates, request.param, tmp_path / request.param) as made:
        yield made


def _ldapsearch(slapd: LocalSlapd, attr: str, *, bind: bool) -> int:
    """How many values of `attr` ldapsearch got from tokyo's entry."""
    with tempfile.TemporaryDirectory() as where:
        cmd = ["ldapsearch", "-x", "-LLL", "-H", slapd.uri, "-b", TOKYO_DN, "-s", "base", "-t", "-T", where]
        if bind:
            cmd += ["-D", f"cn={VERIFIER},ou=verifiers,{LDAP_BASE}", "-w", PASSWORD]
        subprocess.run([*cmd, "(objectClass=*)", attr], capture_output=True, timeout=60, check=True)
        return len(os.listdir(where))


def _rows_in(engine: sa.Engine, model: type, column: sa.orm.InstrumentedAttribute, start: dt.datetime,
             end: dt.datetime) -> int:
    with session_scope(engine) as s:
        return int(s.scalar(sa.select(sa.func.count()).select_from(model).where(column >= start, column < end)))


def test_the_report_counts_what_the_histories_hold_and_is_published(installation: Installation, slapd: LocalSlapd,
                                                                   tmp_path: Path) -> None:
    engine, keys = installation.engine, installation.keys
    assert keys is not None
    issue_all(engine, keys, installation.data_dir, now=NOW, time_guard=NO_NTP)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = court_certificate(VERIFIER, key, days=365)[0]
    add_verifier(engine, name=VERIFIER, certificate=cert, password=PASSWORD, now=dt.datetime.now(dt.UTC),
                 base_dn=LDAP_BASE, actor="test")
    publisher = LdapPublisher(engine, slapd.endpoint(timeout=5), LDAP_BASE, installation.data_dir)
    assert publisher.round(NOW, side_work=True).ok
    with Directory(slapd.endpoint()) as directory:  # the verifier's LDAP account, as the publisher's side work makes it
        verifier_accounts.sync(engine, directory, LDAP_BASE, now=dt.datetime.now(dt.UTC))

    # OCSP through the responder: two signed requests about a revoked and a good certificate, one unsigned
    with session_scope(engine) as s:
        store = RevocationStore(s)
        tokyo = store.ca("tokyo")
        subscribers = s.scalars(sa.select(Certificate).where(Certificate.issuer_ca_id == tokyo.id,
                                                             Certificate.kind == CertKind.SUBSCRIBER)
                                .order_by(Certificate.id).limit(2)).all()
        revoked, good = subscribers[0].serial, subscribers[1].serial
        revoke_certificate(store, subscribers[0], RevocationReason.KEY_COMPROMISE, dt.datetime.now(dt.UTC))
        root = s.scalar(sa.select(Certificate.der).where(Certificate.issuer_ca_id == tokyo.id,
                                                         Certificate.kind == CertKind.SELF_SIGNED))
    (tmp_path / "tokyo.pem").write_bytes(x509.load_der_x509_certificate(root).public_bytes(serialization.Encoding.PEM))
    (tmp_path / "v.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "v.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    history = QueryHistory(engine, thread=False)
    httpd = wsgiref.simple_server.make_server("127.0.0.1", 0, make_app(Responder(engine, keys,
                                                                                 time_guard=NO_NTP), history),
                                              handler_class=_Quiet)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        ocsp = ["openssl", "ocsp", "-issuer", str(tmp_path / "tokyo.pem"), "-CAfile", str(tmp_path / "tokyo.pem"),
                "-url", f"http://127.0.0.1:{httpd.server_port}/", "-serial", f"0x{revoked:x}", "-serial",
                f"0x{good:x}", "-timeout", "10"]
        signed = [*ocsp, "-signer", str(tmp_path / "v.pem"), "-signkey", str(tmp_path / "v.key")]
        for argv in (signed, signed, ocsp):
            subprocess.run(argv, capture_output=True, timeout=30, check=False)
        history.flush()
    finally:
        httpd.shutdown()
        httpd.server_close()
        history.close()

    # the directory: the CRL as the verifier (delivered) and anonymously (denied), the ARL anonymously
    assert _ldapsearch(slapd, "certificateRevocationList;binary", bind=True) == 1
    assert _ldapsearch(slapd, "certificateRevocationList;binary", bind=False) == 0
    assert _ldapsearch(slapd, "authorityRevocationList;binary", bind=False) == 1
    with Directory(slapd.endpoint()) as directory:
        provision.ingest(engine, directory, LDAP_BASE, now=dt.datetime.now(dt.UTC))

    # the report, as the CA administrator, time-stamped by revoca's TSA (the token opened in this process)
    now = dt.datetime.now(dt.UTC)
    month = now.strftime("%Y-%m")
    ensure_certificate(installation.settings, engine, keys, now=now, actor="test")
    from ca.reports.provision import make, month_period, parse
    from ca.tsa.stamper import CurrentAuthority

    kept = make(engine, month, made_by="cast-admin", now=now, stamper=CurrentAuthority(keys, NO_NTP))
    start, end = month_period(month)
    rows = parse(kept.csv)
    totals = {(r["ca"], r["outcome"]): int(r["count"]) for r in rows if r["section"] == "total"}
    body = [r for r in rows if r["section"] != "total"]
    # totals equal the rows of the histories in the month, section by section
    assert sum(n for (section, outcome), n in totals.items() if section == "ocsp" and outcome.startswith("request:")) \
        == _rows_in(engine, OCSPQuery, OCSPQuery.at, start, end) == 3
    assert sum(n for (section, _), n in totals.items() if section == "crl") \
        == _rows_in(engine, CRLFetch, CRLFetch.fetched_at, start, end) == 2
    assert sum(n for (section, _), n in totals.items() if section == "directory") \
        == _rows_in(engine, DirectoryRead, DirectoryRead.read_at, start, end) >= 1
    # per CA and requester: what was provided, with the numbers
    with session_scope(engine) as s:
        crl_number = s.scalar(sa.select(IssuedCRL.number).where(IssuedCRL.ca_id == tokyo.id,
                                                                IssuedCRL.list_type == ListType.CRL))
    assert {"section": "crl", "ca": "tokyo", "requester": VERIFIER, "outcome": "delivered", "count": "1",
            "numbers": str(crl_number)} in body
    assert any(r["section"] == "crl" and r["outcome"] == "denied" and r["requester"] == "(anonymous)" for r in body)
    assert {"section": "ocsp", "ca": "tokyo", "requester": VERIFIER, "outcome": "answer:revoked", "count": "2",
            "numbers": ""} in body
    assert {"section": "ocsp", "ca": "tokyo", "requester": VERIFIER, "outcome": "request:successful",
            "count": "2", "numbers": ""} in body
    assert any(r["section"] == "ocsp" and r["requester"] == "(anonymous)" and r["outcome"] == "request:unauthorized"
               for r in body), body
    assert any(r["section"] == "directory" and r["outcome"].startswith("arl") and r["outcome"].endswith(":delivered")
               and r["ca"] == "tokyo" for r in body), body

    # the token covers the CSV: openssl checks it against the digest
    assert kept.time_stamp is not None
    (tmp_path / "report.tst").write_bytes(kept.time_stamp)
    tsa_pem, roots = pem_paths(installation.settings)
    verify = ["openssl", "ts", "-verify", "-token_in", "-in", str(tmp_path / "report.tst"), "-CAfile", str(roots),
              "-untrusted", str(tsa_pem), "-digest"]
    verified = subprocess.run([*verify, hashlib.sha256(kept.csv).hexdigest()], capture_output=True, text=True)
    assert verified.returncode == 0 and "Verification: OK" in verified.stdout, verified.stdout + verified.stderr
    other = subprocess.run([*verify, hashlib.sha256(kept.csv + b"x").hexdigest()], capture_output=True, text=True)
    assert other.returncode != 0  # the token is about this CSV and no other

    # the CLI makes the next version, as the CA administrator (the gate logs them in)
    cast = standard_cast(installation.data_dir / "demo-shares")
    args = ["report", "provision", "--month", month, "--no-time-stamp", "--csv", str(tmp_path / "r.csv")]
    argv, stdin = cast.for_command(args).into(args, "")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REVOCA_", "SOFTHSM2_"))}
    env.update(REVOCA_DATA_DIR=str(installation.data_dir), REVOCA_DATABASE_URL=installation.settings.db_url,
               REVOCA_REPOSITORY_PORT=str(slapd.port), REVOCA_REPOSITORY_BASE_DN=LDAP_BASE)
    proc = revoca_run(env, *argv, stdin=stdin)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"provision report {month} version 2 kept" in proc.stdout
    with session_scope(engine) as s:
        second = s.scalars(sa.select(ProvisionReport).where(ProvisionReport.version == 2)).one()
        assert (tmp_path / "r.csv").read_bytes() == second.csv and second.made_by == "cast-admin"
        assert second.time_stamp is None

    # archived like the other records: stamped by the next archive round and verified on request
    from ca.archive.stamping import stamp_round
    from ca.archive.verify import verify_item
    from ca.tsa.known import token_checker

    stamped = True
    while stamped:
        with session_scope(engine) as s:
            stamped = bool(stamp_round(s, CurrentAuthority(keys, NO_NTP), installation.data_dir,
                                       dt.datetime.now(dt.UTC)))
    with session_scope(engine) as s:
        for report_id in s.scalars(sa.select(ProvisionReport.id)).all():
            verdict = verify_item(s, installation.data_dir, f"provision-report:{report_id}", token_checker(s))
            assert verdict.intact, verdict

    # published: the web repository offers the newest version's CSV byte for byte
    site = tmp_path / "site"
    out = revoca_run(env, "web", "build", "--out", str(site))
    assert out.returncode == 0, out.stdout + out.stderr
    assert (site / "reports" / f"{month}.csv").read_bytes() == second.csv
    page = (site / "reports" / f"{month}.html").read_text(encoding="utf-8")
    assert VERIFIER in page and "answer:revoked" in page
    assert month in (site / "reports" / "index.html").read_text(encoding="utf-8")


def test_the_scheduler_reports_the_last_month_once_its_grace_has_passed(engine: sa.Engine) -> None:
    """ca.reports.provision.make_if_due, which the scheduler's keeper calls every round: the month
    before is reported an hour into the next one, once; an empty month is a report of zeros."""
    from ca.audit.keeper import AuditKeeper
    from ca.reports.provision import make_if_due, parse

    at = dt.datetime(2026, 12, 1, 0, 30, tzinfo=dt.UTC)  # November's last minutes may still be coming in
    first = make_if_due(engine, at, stamper=None, made_by="system:scheduler")
    assert first is not None and first.month == "2026-10" and parse(first.csv) == []
    assert make_if_due(engine, at + dt.timedelta(minutes=10), stamper=None, made_by="system:scheduler") is None
    november = make_if_due(engine, at + dt.timedelta(minutes=30), stamper=None, made_by="system:scheduler")
    assert november is not None and november.month == "2026-11" and november.version == 1

    # the keeper calls the hook it was given, and a failure is audited, not raised into CRL issuance
    from ca.errors import ServiceUnavailable

    calls: list[dt.datetime] = []

    def failing(now: dt.datetime) -> None:
        calls.append(now)
        raise ServiceUnavailable("the TSA is away")

    keeper = AuditKeeper(engine, stamper=None, data_dir=Path("/nonexistent"),  # type: ignore[arg-type]
                         monthly_report=failing)
    keeper._monthly_report(at)
    assert calls == [at]
    from ca.storage.models import AuditEvent

    with session_scope(engine) as s:
        assert s.scalar(sa.select(AuditEvent.result).where(AuditEvent.event_type == "report.provision")
                        .order_by(AuditEvent.id.desc()).limit(1)) == "failure"
