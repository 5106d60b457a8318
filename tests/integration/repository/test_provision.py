"""Provision history from slapd's accesslog, against a real slapd and both databases: the CRL
fetches, and the directory reads beside them (ARLs, CA certificates, verifier accounts).

slapd stamps its log with the wall clock, so the publications here are placed around the
real time of the test rather than the fixed NOW.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ca.ceremony import CeremonyResult
from ca.cli import cli as revoca
from ca.enums import ListType, PublicationItem, PublicationState
from ca.storage.engine import session_scope
from ca.storage.models import AuditEvent, CertificateAuthority, CRLFetch, DirectoryRead, Publication, Verifier
from repository import provision
from repository.directory import Directory
from repository.entries import ca_entry_dn
from repository.slapd import SLAPD, LocalSlapd

from support.officers import standard_cast
from support.settings import LDAP_BASE
from support.tools import CHEAP_ARGON2

pytestmark = pytest.mark.skipif(not Path(SLAPD).exists(), reason=f"{SLAPD} not installed (Debian package slapd)")

CA_NAME = "tokyo"
VERIFIER = "verifier-one"
VERIFIER_DN = f"cn={VERIFIER},ou=verifiers,{LDAP_BASE}"
PASSWORD = "correct horse battery staple"
CRL_ATTR = "certificateRevocationList;binary"
ARL_ATTR = "authorityRevocationList;binary"
NUMBER = 12  # the CRL in the directory when the verifier searches


@dataclasses.dataclass
class Provisioned:
    """A slapd provisioned with a CA entry holding CRL number NUMBER and one verifier's account."""

    engine: sa.Engine
    slapd: LocalSlapd
    ca_id: int
    ca_dn: str
    verifier_id: int
    crl_der: bytes
    db_url: str
    data_dir: Path

    def search(self, base: str, *attrs: str, scope: str = "base", bind: tuple[str, str] | None = None,
               filter_: str = "(objectClass=*)") -> subprocess.CompletedProcess[bytes]:
        cmd = ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", self.slapd.uri, "-b", base, "-s", scope]
        if bind is not None:
            cmd += ["-D", bind[0], "-w", bind[1]]
        return subprocess.run([*cmd, filter_, *attrs], capture_output=True, timeout=30)

    def ingest(self) -> provision.IngestReport:
        with Directory(self.slapd.endpoint()) as directory:
            return provision.ingest(self.engine, directory, LDAP_BASE, now=dt.datetime.now(dt.UTC))

    def rows(self) -> list[CRLFetch]:
        with session_scope(self.engine) as s:
            return list(s.scalars(sa.select(CRLFetch).order_by(CRLFetch.fetched_at, CRLFetch.id)))

    def audit(self, event_type: str) -> list[AuditEvent]:
        with session_scope(self.engine) as s:
            return list(s.scalars(sa.select(AuditEvent).where(AuditEvent.event_type == event_type)))

    def log(self) -> list[dict[str, str]]:
        """The accesslog as the rootdn sees it (this search's own bind included)."""
        out = self.slapd.tool("ldapsearch", "-LLL", "-o", "ldif-wrap=no", "-b", self.slapd.accesslog_dn, "-s", "one",
                              "(objectClass=*)", "reqType", "reqDN", "reqAuthzID").stdout.decode()
        entries = []
        for block in out.strip().split("\n\n"):
            if block.strip():
                entries.append(dict(line.split(": ", 1) for line in block.splitlines() if ": " in line))
        return entries


def _crl(number: int) -> bytes:
    """A throwaway CRL: the directory checks the syntax, not who signed it."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateRevocationListBuilder()
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Throwaway")]))
            .last_update(now).next_update(now + dt.timedelta(hours=72))
            .add_extension(x509.CRLNumber(number), critical=False)
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))


def _verifier_row(now: dt.datetime) -> Verifier:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, VERIFIER)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365)).sign(key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    return Verifier(name=VERIFIER, ldap_dn=VERIFIER_DN, password_hash=None, cert_der=der,
                    cert_fingerprint=hashlib.sha256(der).digest(), cert_subject_dn=cert.subject.rfc4514_string(),
                    cert_issuer_dn=cert.issuer.rfc4514_string(), cert_serial=cert.serial_number,
                    cert_not_after=cert.not_valid_after_utc, created_at=now - dt.timedelta(days=1))


def _publication(ca_id: int, number: int, published_at: dt.datetime, state: PublicationState) -> Publication:
    return Publication(ca_id=ca_id, item=PublicationItem.CRL, number=number, sha256=bytes(32), state=state,
                       attempts=1, next_attempt_at=published_at, enqueued_at=published_at, published_at=published_at)


@pytest.fixture
def provisioned(initialized: CeremonyResult, engine: sa.Engine, slapd: LocalSlapd, db_url: str,
                tmp_path: Path) -> Provisioned:
    """A CA entry holding CRL number NUMBER, and one registered verifier with its LDAP account."""
    now = dt.datetime.now(dt.UTC)
    with session_scope(engine) as s:
        ca = s.scalars(sa.select(CertificateAuthority).where(CertificateAuthority.name == CA_NAME)).one()
        ca_id, ca_dn = ca.id, ca_entry_dn(ca, LDAP_BASE)
        verifier = _verifier_row(now)
        s.add(verifier)
        # the one before, the one in the directory at the searches, one published after them
        s.add(_publication(ca_id, NUMBER - 1, now - dt.timedelta(days=1), PublicationState.SUPERSEDED))
        s.add(_publication(ca_id, NUMBER, now - dt.timedelta(minutes=1), PublicationState.PUBLISHED))
        s.add(_publication(ca_id, NUMBER + 1, now + dt.timedelta(hours=1), PublicationState.PUBLISHED))
        s.flush()
        verifier_id = verifier.id
    crl = _crl(NUMBER)
    with Directory(slapd.endpoint()) as d:
        d.ensure_parents(ca_dn, LDAP_BASE)
        d.add(ca_dn, ["cRLDistributionPoint", "pkiCA"],
              {"cn": ca_dn.split(",", 1)[0].split("=", 1)[1], CRL_ATTR: crl, ARL_ATTR: _crl(3)})
    pw_hash = "{ARGON2}" + CHEAP_ARGON2().hash(PASSWORD)
    # the account and its group membership in one ldapmodify run
    slapd.tool("ldapmodify", input=(f"dn: {VERIFIER_DN}\nchangetype: add\nobjectClass: applicationProcess\n"
                                    f"objectClass: simpleSecurityObject\ncn: {VERIFIER}\nuserPassword: {pw_hash}\n\n"
                                    f"dn: {slapd.verifiers_group_dn}\nchangetype: modify\nadd: member\n"
                                    f"member: {VERIFIER_DN}\n").encode())
    return Provisioned(engine, slapd, ca_id, ca_dn, verifier_id, crl, db_url, tmp_path / "var")


def test_verifier_fetch_is_delivered_with_the_crl_number_then_in_the_directory(provisioned: Provisioned) -> None:
    got = provisioned.search(provisioned.ca_dn, CRL_ATTR, bind=(VERIFIER_DN, PASSWORD))
    assert got.returncode == 0, got.stderr
    assert base64.b64encode(provisioned.crl_der).decode() in got.stdout.decode()  # the access rules let it through

    report = provisioned.ingest()

    assert (report.delivered, report.denied, report.failed_binds, report.already_recorded) == (1, 0, 0, 0)
    [row] = provisioned.rows()
    assert row.result == "delivered"
    assert (row.verifier_id, row.ca_id, row.list_type, row.crl_number) == (provisioned.verifier_id, provisioned.ca_id,
                                                                          ListType.CRL, NUMBER)
    assert row.bind_dn.lower() == VERIFIER_DN.lower() and row.dn.lower() == provisioned.ca_dn.lower()
    assert abs(row.fetched_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)


def test_verifier_reads_of_all_attributes_count_and_arl_reads_are_no_crl_fetches(provisioned: Provisioned) -> None:
    verifier = (VERIFIER_DN, PASSWORD)
    assert provisioned.search(provisioned.ca_dn, bind=verifier).returncode == 0  # all user attributes: the CRL too
    # ARLs are public: no CRL fetch (a directory read, below)
    assert provisioned.search(provisioned.ca_dn, ARL_ATTR, bind=verifier).returncode == 0
    assert provisioned.search(LDAP_BASE, "certificateRevocationList", scope="sub", bind=verifier,
                        filter_="(certificateRevocationList=*)").returncode == 0

    provisioned.ingest()

    exact, subtree = provisioned.rows()
    assert (exact.result, exact.ca_id, exact.crl_number) == ("delivered", provisioned.ca_id, NUMBER)
    # which entries a subtree search returned is not in the log: no CA, the base as the DN
    assert (subtree.result, subtree.ca_id, subtree.crl_number, subtree.dn) == ("delivered", None, None, LDAP_BASE)
    assert subtree.verifier_id == provisioned.verifier_id


def test_anonymous_crl_request_is_denied_and_ordinary_anonymous_reads_are_no_crl_fetches(
        provisioned: Provisioned) -> None:
    asked = provisioned.search(provisioned.ca_dn, CRL_ATTR)
    assert asked.returncode == 0 and CRL_ATTR.encode() not in asked.stdout  # the access rules hid it
    assert provisioned.search(provisioned.ca_dn).returncode == 0  # CA certificates and ARL: public
    assert provisioned.search(provisioned.ca_dn, ARL_ATTR).returncode == 0

    report = provisioned.ingest()

    assert (report.delivered, report.denied) == (0, 1)
    [row] = provisioned.rows()
    assert (row.result, row.bind_dn, row.verifier_id, row.ca_id) == ("denied", "", None, provisioned.ca_id)


def test_removed_verifier_fetch_is_denied(provisioned: Provisioned) -> None:
    with session_scope(provisioned.engine) as s:
        verifier = s.get(Verifier, provisioned.verifier_id)
        assert verifier is not None
        verifier.removed_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    assert provisioned.search(provisioned.ca_dn, CRL_ATTR, bind=(VERIFIER_DN, PASSWORD)).returncode == 0

    provisioned.ingest()

    [row] = provisioned.rows()
    assert (row.result, row.verifier_id, row.ca_id) == ("denied", provisioned.verifier_id, provisioned.ca_id)


def test_wrong_verifier_password_is_a_failed_row_and_an_audit_record(provisioned: Provisioned) -> None:
    refused = provisioned.search(provisioned.ca_dn, CRL_ATTR, bind=(VERIFIER_DN, "wrong"))
    assert refused.returncode == 49  # invalidCredentials

    report = provisioned.ingest()

    assert report.failed_binds == 1
    [row] = provisioned.rows()
    assert (row.result, row.verifier_id, row.ca_id, row.list_type) == ("failed", provisioned.verifier_id, None, None)
    [event] = provisioned.audit("repository.bind")
    detail = json.loads(event.detail)
    assert (event.result, event.actor.lower()) == ("failure", VERIFIER_DN.lower())
    assert (detail["verifier"], detail["ldap_result"], detail["ldap_error"]) == (VERIFIER, 49, "invalidCredentials")
    assert detail["log_key"] == row.log_key


def test_ingest_twice_or_after_a_crash_records_nothing_twice_and_empties_the_log(provisioned: Provisioned) -> None:
    provisioned.search(provisioned.ca_dn, CRL_ATTR, bind=(VERIFIER_DN, PASSWORD))
    provisioned.search(provisioned.ca_dn, CRL_ATTR)
    provisioned.search(provisioned.ca_dn, CRL_ATTR, bind=(VERIFIER_DN, "wrong"))

    # a round that committed its rows and died before deleting the log entries
    with Directory(provisioned.slapd.endpoint()) as directory:
        entries = provision.read_log(directory)
        first = provision.record(provisioned.engine, entries, LDAP_BASE, own_dn=provisioned.slapd.root_dn,
                                 now=dt.datetime.now(dt.UTC))
    assert (first.delivered, first.denied, first.failed_binds) == (1, 1, 1)
    rows, audits = provisioned.rows(), provisioned.audit("repository.bind")

    second = provisioned.ingest()
    third = provisioned.ingest()

    assert (second.recorded, second.already_recorded) == (0, 3)
    assert second.deleted == second.read >= len(entries)
    assert (third.recorded, third.already_recorded) == (0, 0)
    assert [r.log_key for r in provisioned.rows()] == [r.log_key for r in rows]
    assert len(provisioned.audit("repository.bind")) == len(audits) == 1
    # what is left is only the rootdn's binds since (this look included), none of the searches
    left = provisioned.log()
    root_dn = provisioned.slapd.root_dn.lower()
    assert left and all(e["reqType"] == "bind" and e["reqDN"].lower() == root_dn for e in left)


def test_cli_shows_the_history_and_filters_by_verifier(provisioned: Provisioned, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    provisioned.search(provisioned.ca_dn, CRL_ATTR, bind=(VERIFIER_DN, PASSWORD))
    provisioned.search(provisioned.ca_dn, CRL_ATTR)
    provisioned.ingest()
    monkeypatch.chdir(tmp_path)  # settings come from the environment only
    env = {"REVOCA_DATA_DIR": str(provisioned.data_dir), "REVOCA_DATABASE_URL": provisioned.db_url}

    auditor = standard_cast().login("cast-auditor")  # who read what: staff or the internal auditor

    def run(*args: str) -> str:
        result = CliRunner().invoke(revoca, ["repository", "fetches", *auditor.args, *args], input=auditor.stdin,
                                    env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    header, _rule, *lines = run().splitlines()
    assert header.split() == ["TIME", "VERIFIER", "CA", "CRL", "NUMBER", "RESULT"]
    assert sorted(line.split()[2:] for line in lines) == [
        ["(anonymous)", CA_NAME, str(NUMBER), "denied"], [VERIFIER, CA_NAME, str(NUMBER), "delivered"]]

    mine = json.loads(run("--verifier", VERIFIER, "--json"))
    assert [(r["verifier"], r["ca"], r["crl_number"], r["result"]) for r in mine] == [
        (VERIFIER, CA_NAME, NUMBER, "delivered")]
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert run("--since", later).strip() == "no fetches recorded"
    unknown = CliRunner().invoke(revoca, ["repository", "fetches", *auditor.args, "--verifier", "nobody"],
                                 input=auditor.stdin, env=env)
    assert unknown.exit_code != 0 and "no verifier named 'nobody'" in str(unknown.exception), unknown.exception


# --- directory reads: ARLs, CA certificates, cross pairs, verifier accounts ----------------------------


def _reads(provisioned: Provisioned) -> list[DirectoryRead]:
    with session_scope(provisioned.engine) as s:
        return list(s.scalars(sa.select(DirectoryRead).order_by(DirectoryRead.read_at, DirectoryRead.id)))


def test_arl_and_certificate_reads_are_recorded_per_verifier_and_anonymous(provisioned: Provisioned) -> None:
    now = dt.datetime.now(dt.UTC)
    with session_scope(provisioned.engine) as s:  # the ARL in the directory at the searches
        s.add(Publication(ca_id=provisioned.ca_id, item=PublicationItem.ARL, number=3, sha256=bytes(32),
                          state=PublicationState.PUBLISHED, attempts=1, next_attempt_at=now, enqueued_at=now,
                          published_at=now - dt.timedelta(minutes=1)))
    verifier = (VERIFIER_DN, PASSWORD)
    arl = provisioned.search(provisioned.ca_dn, ARL_ATTR, bind=verifier)
    assert arl.returncode == 0 and ARL_ATTR.encode() in arl.stdout
    assert provisioned.search(provisioned.ca_dn).returncode == 0  # anonymous, all attributes
    assert provisioned.search(LDAP_BASE, "cACertificate", scope="sub").returncode == 0
    # nothing matched: no value read, no row; a CRL-only search is a CRL fetch and no read
    assert provisioned.search(provisioned.ca_dn, ARL_ATTR, filter_="(cn=nobody)").returncode == 0
    assert provisioned.search(provisioned.ca_dn, CRL_ATTR, bind=verifier).returncode == 0

    report = provisioned.ingest()

    assert (report.reads, report.delivered) == (3, 1)
    by_verifier, anonymous, subtree = _reads(provisioned)
    assert (by_verifier.verifier_id, by_verifier.ca_id, by_verifier.objects, by_verifier.arl_number,
            by_verifier.result, by_verifier.ldap_result) == (provisioned.verifier_id, provisioned.ca_id, "arl", 3,
                                                             "delivered", 0)
    assert by_verifier.bind_dn.lower() == VERIFIER_DN.lower()
    assert (anonymous.bind_dn, anonymous.verifier_id, anonymous.objects, anonymous.entries) == (
        "", None, "arl,ca-certificate,cross-pair", 1)
    assert (subtree.ca_id, subtree.dn, subtree.objects, subtree.arl_number) == (None, LDAP_BASE, "ca-certificate",
                                                                                None)
    # reading the log again records nothing twice
    assert provisioned.ingest().reads == 0 and len(_reads(provisioned)) == 3

    # sealed into the audit chain like the other histories
    from ca.audit import history_seal

    with session_scope(provisioned.engine) as s:
        sealed = history_seal.seal(s, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2))
    assert {"table": "directory_reads", "first_id": by_verifier.id, "last_id": subtree.id, "count": 3} \
        .items() <= next(d for d in sealed if d["table"] == "directory_reads").items()


def test_a_verifier_reads_its_own_account_and_anyone_else_is_denied(provisioned: Provisioned) -> None:
    own = provisioned.search(VERIFIER_DN, bind=(VERIFIER_DN, PASSWORD))
    assert own.returncode == 0 and VERIFIER.encode() in own.stdout
    listed = provisioned.search(f"ou=verifiers,{LDAP_BASE}", scope="one")
    assert VERIFIER.encode() not in listed.stdout  # the access rules hide the accounts

    provisioned.ingest()

    mine, listing = _reads(provisioned)
    assert (mine.objects, mine.result, mine.verifier_id) == ("verifier-account", "delivered", provisioned.verifier_id)
    assert (listing.objects, listing.result, listing.bind_dn, listing.verifier_id) == (
        "verifier-account", "denied", "", None)
    assert listing.dn.lower() == f"ou=verifiers,{LDAP_BASE}".lower()
