"""Registered verifiers and their LDAP accounts, against a real slapd (its ACL decides who reads
CRLs) and real SQLite and PostgreSQL databases.  Access is checked the way a verifier checks it:
with `ldapsearch` and an ldap3 connection bound as the account.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ca import ceremony, hierarchy
from ca.config import Settings
from ca.enums import CertKind, VerifierStatus
from ca.errors import AlreadyExists, InvalidInput, NotFound
from ca.hsm.signer import KeyAlgorithm, KeyStore
from ca.revocation import workflow
from ca.revocation.reasons import RevocationReason
from ca.storage.engine import session_scope
from ca.storage.models import AuditEvent, Certificate, Verifier
from ca.storage.revocations import RevocationStore
from ca.verifiers import registry
from repository import verifier_accounts
from repository.directory import Directory, Endpoint, RepositoryError
from repository.slapd import SLAPD, LocalSlapd

from support.clock import NO_NTP
from support.installation import open_token
from support.officers import standard_cast
from support.settings import LDAP_BASE, NOW
from support.tools import CHEAP_ARGON2, revoca, write_config

pytestmark = pytest.mark.skipif(not Path(SLAPD).exists(), reason=f"{SLAPD} not installed (Debian package slapd)")

CA_DN = f"cn=Test CA,{LDAP_BASE}"
CRL_ATTR = "certificateRevocationList;binary"
PASSWORD = "verifier password 1"


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Verifier passwords hashed at support.tools.CHEAP_ARGON2's low cost: these tests hash dozens."""
    monkeypatch.setattr(registry, "PasswordHasher", CHEAP_ARGON2)


@pytest.fixture
def settings(ldap_settings: Settings) -> Settings:
    """The key ceremony, the CLI and the slapd share one configuration."""
    return ldap_settings


@pytest.fixture
def crl(slapd: LocalSlapd) -> bytes:
    """A CA entry holding a CRL (added as the rootdn); returns the CRL's DER."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    der = (x509.CertificateRevocationListBuilder().issuer_name(name).last_update(NOW)
           .next_update(NOW + dt.timedelta(hours=72)).add_extension(x509.CRLNumber(1), critical=False)
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    ldif = (f"dn: {CA_DN}\nobjectClass: cRLDistributionPoint\nobjectClass: pkiCA\ncn: Test CA\n"
            f"{CRL_ATTR}:: {base64.b64encode(der).decode()}\n")
    slapd.tool("ldapadd", input=ldif.encode())
    return der


@pytest.fixture
def root(slapd: LocalSlapd) -> Iterator[Directory]:
    with Directory(slapd.endpoint()) as directory:
        yield directory


def own_certificate(cn: str, *, not_after: dt.datetime = NOW + dt.timedelta(days=365)) -> x509.Certificate:
    """A certificate the verifier brings itself (self-signed here; revoca does not know it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(not_after).sign(key, hashes.SHA256()))


def ldapsearch(slapd: LocalSlapd, *bind: str) -> tuple[int, bytes | None, str]:
    """`ldapsearch` of the CA entry's CRL, anonymous or with `-D dn -w password`: (exit code, CRL, stderr)."""
    cmd = ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", slapd.uri, *bind, "-b", CA_DN, "-s", "base",
           CRL_ATTR]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    for line in res.stdout.splitlines():
        if line.lower().startswith(CRL_ATTR.lower() + ":: "):
            return res.returncode, base64.b64decode(line.split(":: ", 1)[1]), res.stderr
    return res.returncode, None, res.stderr


def as_verifier(slapd: LocalSlapd, name: str, password: str = PASSWORD) -> tuple[str, ...]:
    return ("-D", verifier_accounts.account_dn(name, LDAP_BASE), "-w", password)


def group_members(root: Directory) -> set[str]:
    entry = root.read(verifier_accounts.group_dn(LDAP_BASE), ("member",))
    assert entry is not None
    return {m.decode().lower() for m in entry.values("member")}


def issue_and_register(engine: sa.Engine, keys: KeyStore, name: str, out: Path) -> int:
    """What `revoca verifier add NAME` does without --cert, through the library; returns the certificate id."""
    with session_scope(engine) as session:
        ctx = hierarchy.Context(store=RevocationStore(session), keys=keys, now=NOW, actor="test",
                                algorithm=KeyAlgorithm.P256, time_guard=NO_NTP)
        cert, certificate_id = registry.issue_certificate(ctx, name, key_path=out / f"{name}.key")
        registry.register(session, name=name, certificate=cert, password=PASSWORD, now=NOW, base_dn=LDAP_BASE,
                          certificate_id=certificate_id, actor="test")
        return certificate_id


def add_own(engine: sa.Engine, name: str, **kwargs: object) -> registry.VerifierInfo:
    values: dict[str, object] = {"certificate": own_certificate("a verifier"), "password": PASSWORD}
    values.update(kwargs)
    return registry.add_verifier(engine, name=name, now=NOW, base_dn=LDAP_BASE, actor="test",
                                  **values)  # type: ignore[arg-type]


# --- the registry -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "-lead", "a b", "x" * 65, "cn=x", "a,b", "ü", "verifiers", "Verifiers"])
def test_names_that_are_not_ldap_safe_are_refused(engine: sa.Engine, name: str) -> None:
    with pytest.raises(InvalidInput, match="verifier name"):
        add_own(engine, name)


def test_duplicate_name_in_any_case_and_duplicate_certificate_are_refused(engine: sa.Engine) -> None:
    cert = own_certificate("alice")
    add_own(engine, "alice", certificate=cert)
    with pytest.raises(AlreadyExists, match="verifier name 'alice' is already registered"):
        add_own(engine, "ALICE")
    with pytest.raises(AlreadyExists, match="already registered for verifier 'alice'"):
        add_own(engine, "bob", certificate=cert)
    registry.remove_verifier(engine, "alice", reason="contract ended", now=NOW, actor="test")
    with pytest.raises(AlreadyExists, match="used by a removed verifier"):
        add_own(engine, "alice")


def test_expired_certificate_and_short_password_are_refused(engine: sa.Engine) -> None:
    with pytest.raises(InvalidInput, match="expired at"):
        add_own(engine, "late", certificate=own_certificate("late", not_after=NOW - dt.timedelta(seconds=1)))
    with pytest.raises(InvalidInput, match="too short"):
        add_own(engine, "short", password="123")
    assert registry.list_verifiers(engine, now=NOW) == []


def test_only_the_argon2_hash_is_stored_and_the_addition_is_audited(engine: sa.Engine) -> None:
    info = add_own(engine, "alice")
    assert info.effective and info.dn == f"cn=alice,ou=verifiers,{LDAP_BASE}" and not info.issued_by_revoca
    with session_scope(engine) as s:
        row = s.scalar(sa.select(Verifier))
        assert row is not None and row.password_hash is not None
        assert row.password_hash.startswith("{ARGON2}$argon2id$") and PASSWORD not in row.password_hash
        events = s.scalars(sa.select(AuditEvent).where(AuditEvent.event_type == "verifier.added")).all()
        assert len(events) == 1 and PASSWORD not in events[0].detail and "argon2" not in events[0].detail
    assert "ARGON2" not in repr(info)


def test_removal_keeps_the_row_and_needs_a_reason(engine: sa.Engine) -> None:
    add_own(engine, "alice")
    with pytest.raises(InvalidInput, match="reason"):
        registry.remove_verifier(engine, "alice", reason=" ", now=NOW, actor="test")
    with pytest.raises(NotFound, match="no verifier named 'bob'"):
        registry.remove_verifier(engine, "bob", reason="x", now=NOW, actor="test")
    registry.remove_verifier(engine, "alice", reason="contract ended", now=NOW, actor="test")
    with pytest.raises(InvalidInput, match="already removed"):
        registry.remove_verifier(engine, "alice", reason="again", now=NOW, actor="test")
    [info] = registry.list_verifiers(engine, now=NOW)
    assert (info.status, info.effective, info.removed_reason, info.removed_at) == (
        VerifierStatus.REMOVED, False, "contract ended", NOW)


def test_effective_ends_when_the_certificate_expires(engine: sa.Engine) -> None:
    add_own(engine, "alice", certificate=own_certificate("alice", not_after=NOW + dt.timedelta(hours=1)))
    later = NOW + dt.timedelta(hours=1)
    with session_scope(engine) as s:
        row = s.scalar(sa.select(Verifier))
        assert row is not None
        assert registry.effective(row, s, now=NOW) and not registry.effective(row, s, now=later)
    assert [v.effective for v in registry.list_verifiers(engine, now=later)] == [False]


# --- the directory --------------------------------------------------------------------------------


def test_issued_verifier_reads_the_crl_anonymous_does_not_and_a_wrong_password_is_refused(
        settings: Settings, engine: sa.Engine, initialized: ceremony.CeremonyResult, slapd: LocalSlapd,
        root: Directory, crl: bytes, tmp_path: Path) -> None:
    keys = open_token(settings, initialized)
    try:
        issue_and_register(engine, keys, "alice", tmp_path)
    finally:
        keys.close()
    assert os.stat(tmp_path / "alice.key").st_mode & 0o777 == 0o600
    assert verifier_accounts.sync(engine, root, LDAP_BASE, now=NOW) == verifier_accounts.SyncReport(added=1)

    assert ldapsearch(slapd, *as_verifier(slapd, "alice"))[:2] == (0, crl)
    assert ldapsearch(slapd)[:2] == (0, None)
    rc, value, stderr = ldapsearch(slapd, *as_verifier(slapd, "alice", "wrong password"))
    assert (rc, value) == (49, None) and "Invalid credentials" in stderr
    with pytest.raises(RepositoryError, match=r"bind as cn=alice,ou=verifiers,o=JPKI,c=JP .* refused: invalidCred"):
        with Directory(Endpoint(slapd.host, slapd.port, verifier_accounts.account_dn("alice", LDAP_BASE),
                                "wrong password")):
            pass

    account = root.read(verifier_accounts.account_dn("alice", LDAP_BASE),
                        ("objectClass", "userPassword", "userCertificate"))
    assert account is not None
    with session_scope(engine) as s:
        row = s.scalar(sa.select(Verifier))
        cert = s.get(Certificate, row.certificate_id) if row else None
        assert row is not None and cert is not None and cert.kind is CertKind.VERIFIER
        assert account.values("userPassword") == [row.password_hash.encode()]  # type: ignore[union-attr]
        assert account.values(verifier_accounts.CERT_ATTRIBUTE) == [cert.der] == [row.cert_der]
    assert {c.lower() for c in (v.decode() for v in account.values("objectClass"))} >= {
        "applicationprocess", "simplesecurityobject", "pkiuser"}


def test_removed_verifier_gets_no_crl_on_a_connection_that_is_already_open(
        engine: sa.Engine, slapd: LocalSlapd, root: Directory, crl: bytes) -> None:
    add_own(engine, "alice")
    verifier_accounts.sync(engine, root, LDAP_BASE, now=NOW)
    dn = verifier_accounts.account_dn("alice", LDAP_BASE)
    with Directory(Endpoint(slapd.host, slapd.port, dn, PASSWORD)) as open_connection:
        entry = open_connection.read(CA_DN, (CRL_ATTR,))
        assert entry is not None and entry.values(CRL_ATTR) == [crl]

        registry.remove_verifier(engine, "alice", reason="contract ended", now=NOW, actor="test")
        assert verifier_accounts.sync(engine, root, LDAP_BASE, now=NOW) == verifier_accounts.SyncReport(removed=1)

        entry = open_connection.read(CA_DN, (CRL_ATTR,))
        assert entry is not None and entry.values(CRL_ATTR) == []
    assert root.read(dn) is None and dn.lower() not in group_members(root)


def test_verifier_whose_certificate_is_revoked_loses_access_at_the_next_sync(
        settings: Settings, engine: sa.Engine, initialized: ceremony.CeremonyResult, slapd: LocalSlapd,
        root: Directory, crl: bytes, tmp_path: Path) -> None:
    keys = open_token(settings, initialized)
    try:
        cert_id = issue_and_register(engine, keys, "alice", tmp_path)
    finally:
        keys.close()
    verifier_accounts.sync(engine, root, LDAP_BASE, now=NOW)
    assert ldapsearch(slapd, *as_verifier(slapd, "alice"))[:2] == (0, crl)

    with session_scope(engine) as s:
        store = RevocationStore(s)
        workflow.revoke_certificate(store, store.session.get(Certificate, cert_id), RevocationReason.KEY_COMPROMISE,
                                      NOW)  # type: ignore[arg-type]
    with session_scope(engine) as s:
        row = s.scalar(sa.select(Verifier))
        assert row is not None and row.status is VerifierStatus.ACTIVE and not registry.effective(row, s, now=NOW)

    assert verifier_accounts.sync(engine, root, LDAP_BASE, now=NOW) == verifier_accounts.SyncReport(removed=1)
    assert ldapsearch(slapd, *as_verifier(slapd, "alice"))[:2] == (49, None)


def test_sync_is_idempotent_and_puts_right_what_was_changed_by_hand(
        engine: sa.Engine, slapd: LocalSlapd, root: Directory, crl: bytes) -> None:
    add_own(engine, "alice")
    add_own(engine, "bob", password=None)  # certificate only: no simple bind
    assert verifier_accounts.sync(engine, root, LDAP_BASE, now=NOW) == verifier_accounts.SyncReport(added=2)
    assert verifier_accounts.sync(engine, root, LDAP_BASE, now=NOW) == verifier_accounts.SyncReport()
    alice, bob = (verifier_accounts.account_dn(n, LDAP_BASE) for n in ("alice", "bob"))
    assert group_members(root) == {slapd.root_dn.lower(), alice.lower(), bob.lower()}
    bob_entry = root.read(bob, ("objectClass", "userPassword"))
    assert bob_entry is not None and bob_entry.values("userPassword") == []

    # by hand: a stray account and an outsider joined the group, alice and the rootdn left it, alice's password changed
    stray = f"cn=mallory,ou=verifiers,{LDAP_BASE}"
    outsider = f"cn=someone,{LDAP_BASE}"
    mallory_hash = registry.hash_password("mallory password")
    slapd.tool("ldapadd", input=(f"dn: {stray}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\n"
                                 f"cn: mallory\nuserPassword: {mallory_hash}\n").encode())
    slapd.tool("ldapmodify", input=(
        f"dn: {verifier_accounts.group_dn(LDAP_BASE)}\nchangetype: modify\nadd: member\n"
        f"member: {stray}\nmember: {outsider}\n"
        f"-\ndelete: member\nmember: {alice}\nmember: {slapd.root_dn}\n\n"
        f"dn: {alice}\nchangetype: modify\nreplace: userPassword\nuserPassword: guessable\n").encode())
    assert ldapsearch(slapd, "-D", stray, "-w", "mallory password")[:2] == (0, crl)

    report = verifier_accounts.sync(engine, root, LDAP_BASE, now=NOW)
    assert report == verifier_accounts.SyncReport(updated=1, removed=2)
    assert root.read(stray) is None
    assert group_members(root) == {slapd.root_dn.lower(), alice.lower(), bob.lower()}
    assert ldapsearch(slapd, "-D", stray, "-w", "mallory password")[0] == 49
    assert ldapsearch(slapd, *as_verifier(slapd, "alice"))[:2] == (0, crl)
    assert verifier_accounts.sync(engine, root, LDAP_BASE, now=NOW) == verifier_accounts.SyncReport()

    # a directory that lost its verifiers container gets it back, with the group and accounts
    slapd.tool("ldapdelete", "-r", verifier_accounts.verifiers_dn(LDAP_BASE))
    assert verifier_accounts.sync(engine, root, LDAP_BASE, now=NOW) == verifier_accounts.SyncReport(added=2)
    assert group_members(root) == {slapd.root_dn.lower(), alice.lower(), bob.lower()}
    assert ldapsearch(slapd, *as_verifier(slapd, "alice"))[:2] == (0, crl)
    with session_scope(engine) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
            AuditEvent.event_type == "verifier.directory_synced")) == 3


# --- the CLI --------------------------------------------------------------------------------------


def test_cli_add_list_remove_with_an_issued_certificate(
        settings: Settings, engine: sa.Engine, hsm_socket: Path, slapd: LocalSlapd, crl: bytes, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = write_config(settings, tmp_path / "revoca.toml", hsm_socket)
    cast = standard_cast(settings.demo_shares_dir)  # two senior operators and two key managers log in
    out = tmp_path / "alice-files"
    code, stdout, stderr = revoca(env, "verifier", "add", "alice", "--out", str(out), login=cast)
    assert code == 0, stdout + stderr
    dn = verifier_accounts.account_dn("alice", LDAP_BASE)
    assert f"LDAP account {dn}" in stdout and "in the directory and may read CRLs" in stdout
    [password_line] = [line for line in stdout.splitlines() if "shown only once" in line]
    password = password_line.rsplit(" ", 1)[1]

    # the printed command works as printed (with the password given instead of prompted for)
    [command_line] = [line for line in stdout.splitlines() if line.startswith("fetch CRLs with: ")]
    command = shlex.split(command_line.removeprefix("fetch CRLs with: "))
    command[command.index("-W")] = "-w" + password
    fetched = subprocess.run([*command, "-LLL", "-o", "ldif-wrap=no"], capture_output=True, text=True, timeout=30)
    assert fetched.returncode == 0 and f"dn: {CA_DN}" in fetched.stdout, fetched.stderr
    assert ldapsearch(slapd, "-D", dn, "-w", password)[:2] == (0, crl)

    cert = x509.load_pem_x509_certificate((out / "alice.pem").read_bytes())
    assert cert.subject.rfc4514_string() == "CN=alice,OU=Verifiers,O=JPKI,C=JP"
    assert x509.ExtendedKeyUsageOID.CLIENT_AUTH in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert os.stat(out / "alice.key").st_mode & 0o777 == 0o600 and (out / "bridge-roots.pem").exists()

    code, stdout, _ = revoca(env, "verifier", "list", "--json", login=cast)
    [row] = json.loads(stdout)
    assert (row["name"], row["status"], row["effective"], row["issued_by_revoca"]) == ("alice", "active", True, True)
    assert row["fingerprint_sha256"] == hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()

    code, stdout, stderr = revoca(env, "verifier", "add", "Alice", "--out", str(tmp_path / "again"), login=cast)
    assert code == AlreadyExists.exit_code and stdout == ""
    assert stderr == "revoca: error: verifier name 'alice' is already registered; choose another name\n"
    assert not (tmp_path / "again" / "Alice.key").exists()

    code, stdout, stderr = revoca(env, "verifier", "remove", "alice", "--reason", "contract ended", login=cast)
    assert code == 0 and "verifier alice removed" in stdout and "CRL access ended" in stdout, stdout + stderr
    assert ldapsearch(slapd, "-D", dn, "-w", password)[:2] == (49, None)
    code, stdout, _ = revoca(env, "verifier", "list", login=cast)
    header, _rule, line = stdout.splitlines()
    assert header.split() == ["NAME", "STATUS", "EFFECTIVE", "SUBJECT", "SHA-256", "NOT", "AFTER", "CREATED"]
    assert line.split()[:4] == ["alice", "removed", "no", "CN=alice,OU=Verifiers,O=JPKI,C=JP"]


def test_cli_add_while_ldap_is_down_commits_and_the_account_comes_with_the_next_sync(
        settings: Settings, engine: sa.Engine, initialized: ceremony.CeremonyResult, slapd: LocalSlapd, crl: bytes,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = write_config(settings, tmp_path / "revoca.toml")
    # two senior operators and, as for every `verifier add`, M key managers (the ceremony's)
    cast = standard_cast(settings.demo_shares_dir)
    cert_file = tmp_path / "bob.der"
    cert_file.write_bytes(own_certificate("bob").public_bytes(serialization.Encoding.DER))
    password_file = tmp_path / "bob.password"
    password_file.write_text(PASSWORD + "\n")
    slapd.stop()

    code, stdout, stderr = revoca(env, "verifier", "add", "bob", "--cert", str(cert_file),
                                  "--password-file", str(password_file), login=cast)
    dn = verifier_accounts.account_dn("bob", LDAP_BASE)
    assert code == 0 and stderr == "", stdout + stderr
    assert f"the account {dn} will be created when the repository is reachable" in stdout
    assert "LDAP not reachable now" in stdout and "shown only once" not in stdout and PASSWORD not in stdout
    assert [v.name for v in registry.list_verifiers(engine, now=NOW)] == ["bob"]

    slapd.start()
    assert ldapsearch(slapd)[:2] == (0, None)  # the data survived the restart; the CRL still hidden from anonymous
    applied = verifier_accounts.apply_now(settings, engine, now=NOW)
    assert applied.report == verifier_accounts.SyncReport(added=1) and applied.pending == ""
    assert ldapsearch(slapd, "-D", dn, "-w", PASSWORD)[:2] == (0, crl)

    slapd.stop()
    code, stdout, stderr = revoca(env, "verifier", "remove", "bob", "--reason", "left", login=cast)
    assert code == 0 and f"the account {dn} will be deleted when the repository is reachable" in stdout, stderr


def test_cli_refusals_are_one_line(settings: Settings, engine: sa.Engine, initialized: ceremony.CeremonyResult,
                                   slapd: LocalSlapd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = write_config(settings, tmp_path / "revoca.toml")
    cast = standard_cast(settings.demo_shares_dir)  # senior operators and key managers of the ceremony
    cert_file = tmp_path / "c.pem"
    cert_file.write_bytes(own_certificate("c").public_bytes(serialization.Encoding.PEM))
    short = tmp_path / "short"
    short.write_text("123\n")
    for args, code, message in [
        (("add", "a b", "--cert", str(cert_file)), InvalidInput.exit_code, "verifier name 'a b' is not allowed"),
        (("add", "c", "--cert", str(cert_file), "--password-file", str(short)), InvalidInput.exit_code,
         "too short"),
        (("add", "c", "--cert", str(cert_file), "--out", str(tmp_path)), InvalidInput.exit_code,
         "--out is only for a certificate revoca issues"),
        (("add", "c", "--cert", str(short)), InvalidInput.exit_code, "is not an X.509 certificate"),
        (("remove", "nobody", "--reason", "x"), NotFound.exit_code, "no verifier named 'nobody'"),
    ]:
        got, stdout, stderr = revoca(env, "verifier", *args, login=cast)
        assert got == code and stderr.count("\n") == 1 and stderr.startswith("revoca: error: "), (args, stderr)
        assert message in stderr and "Traceback" not in stderr, (args, stderr)
    code, stdout, stderr = revoca(env, "verifier", "add", "c", "--cert", str(cert_file), login=cast)
    assert code == 0, stderr
    code, _, stderr = revoca(env, "verifier", "add", "d", "--cert", str(cert_file), login=cast)
    assert code == AlreadyExists.exit_code and stderr.count("\n") == 1
    assert "already registered for verifier 'c'" in stderr
