"""The `revoca` console script, driven as an operator would (support.cli: through its `main` in this
process; `init`, the services and the console script itself as processes of their own), real
SoftHSM2 token, the HSM service running in the background, SQLite (and one PostgreSQL smoke test).

Expected failures must be one line `revoca: error: ...` on stderr with the exit code of
ca.errors, never a traceback.  Most read-only checks share one demo installation (module
scope, HSM activated); the HSM end-to-end flow and PostgreSQL get their own.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ca.ceremony import read_share_file
from ca.cli import cli as revoca_group
from ca.enums import CertKind, Role
from ca.errors import ServiceUnavailable
from ca.hsm.client import HSMClient
from ca.hsm.signer import SoftwareSigner
from ca.issuance import Issuer, issue
from ca.officers.credentials import hash_password
from ca.storage.engine import session_scope
from ca.storage.store import Store

from support.cli import REVOCA, Cli, activate_in_process, demo_cli, start_hsm, stop_hsm
from support.clock import NO_NTP
from support.installation import CeremonyTemplates
from support.officers import Login, add_officers
from support.tools import openssl_verify, revoca_run

CA_NAMES = ["bridge", "tokyo", "osaka", "hokkaido"]
TOKYO_DN = "CN=Governor of Tokyo,OU=Tokyo,OU=Prefectural CA,O=JPKI,C=JP"
BRIDGE_DN = "CN=Bridge CA,OU=Bridge CA,O=JPKI,C=JP"


@dataclasses.dataclass
class Demo:
    cli: Cli
    init_stdout: str


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`revoca init --demo` on SQLite, with the HSM service running and activated (2 of 3), and the
    officers of support.officers, whom `cli` logs in as each command needs."""
    cli = Cli(tmp_path_factory.mktemp("demo"))
    out = cli.ok("init", "--demo")
    add_officers(cli.engine, cli.shares_dir)
    proc = start_hsm(cli)
    try:
        activate_in_process(cli, 1, 2)
        yield Demo(cli, out)
    finally:
        stop_hsm(proc)
        cli.close()


@pytest.fixture
def bare(tmp_path: Path) -> Iterator[Cli]:
    """An installation nobody has initialised."""
    cli = Cli(tmp_path)
    yield cli
    cli.close()


def pem_of(row: dict[str, Any]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(row["pem"].encode())


def _add_operator(cli: Cli, name: str, role: Role, password: str) -> None:
    """Set-up only (`operator add` has its own tests): saves a 1.5 s process per operator."""
    with session_scope(cli.engine) as session:
        Store(session).add_operator(name=name, display_name="", credential_hash=hash_password(password),
                                    roles=[role], now=dt.datetime.now(dt.UTC))


# --- help -------------------------------------------------------------------------------------


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path, looked up as click does (the root group loads each module when asked)."""
    yield prefix
    ctx = click.Context(group, info_name="revoca")
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from _command_paths(command, (*prefix, name))
        else:
            yield (*prefix, name)


COMMAND_PATHS = list(_command_paths(revoca_group))


def test_command_tree_has_every_documented_command() -> None:
    expected = {("init",), ("db", "upgrade"), ("ca", "list"), ("ca", "show"), ("ca", "rollover"),
                ("ca", "cross-certify"), ("cert", "import"), ("cert", "list"), ("cert", "show"),
                ("hsm", "activate"), ("hsm", "status"), ("hsm", "deactivate"), ("operator", "add"),
                ("operator", "list"), ("serve", "hsm"), ("run",), ("serve", "ocsp"), ("serve", "publisher"),
                ("repository", "start"), ("repository", "publish"), ("repository", "queue"),
                ("repository", "fetches"), ("verifier", "add"), ("verifier", "remove"), ("verifier", "list")}
    assert expected <= set(COMMAND_PATHS)


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=lambda p: " ".join(p) or "revoca")
def test_every_command_and_group_answers_help(path: tuple[str, ...]) -> None:
    # In-process through the same click group the console script runs (a process each would
    # cost 1.5 s of imports); the console script itself is checked below.
    result = CliRunner().invoke(revoca_group, [*path, "--help"], prog_name="revoca")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: revoca {' '.join(path)}".rstrip()), result.output


def test_console_script_answers_help(bare: Cli) -> None:
    top = bare.ok("--help", process=True)
    for group in ("ca", "cert", "db", "hsm", "init", "operator", "run", "serve"):
        assert re.search(rf"^\s+{group}\s", top, re.M), top


# --- init ---------------------------------------------------------------------------------------


def test_init_demo_creates_bridge_and_three_regional_cas(demo: Demo) -> None:
    assert f"Created CAs: {', '.join(CA_NAMES)}" in demo.init_stdout
    assert "activation needs 2 of 3 key-manager shares" in demo.init_stdout
    assert ("`revoca tsa certificate --operator KEY-MANAGER ...` (2 key managers) issues the time-stamp "
            "authority's certificate" in demo.init_stdout)
    with session_scope(demo.cli.engine) as session:
        kinds = {c.name: c.kind.value for c in Store(session).cas()}
    assert {name: kinds.get(name) for name in CA_NAMES} == {
        "bridge": "bridge", "tokyo": "regional", "osaka": "regional", "hokkaido": "regional"}


def test_init_demo_writes_share_and_password_files_marked_demo_only(demo: Demo) -> None:
    shares = sorted(demo.cli.shares_dir.glob("share-*.txt"))
    assert [p.name for p in shares] == [f"share-{i}-keymanager{i}.txt" for i in (1, 2, 3)]
    assert "DEMO ONLY" in demo.init_stdout
    for path in shares:
        assert str(path) in demo.init_stdout
    for path in [*shares, *demo.cli.shares_dir.glob("keymanager*.password")]:
        text = path.read_text(encoding="utf-8")
        assert text.startswith("# DEMO ONLY"), path
        assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
    assert re.fullmatch(r"RVS1-\d+-1(-[0-9a-f]{4}){9}", read_share_file(shares[0]))


def _snapshot(cli: Cli) -> dict[str, object]:
    tables = ("cas", "key_generations", "certificates", "operators", "share_sets", "share_holders", "audit_events")
    with cli.engine.connect() as conn:
        counts = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables}
    files = {str(p.relative_to(cli.data)): p.read_bytes() for p in sorted(cli.shares_dir.iterdir())}
    tokens = sorted(str(p.relative_to(cli.data)) for p in (cli.data / "tokens").rglob("*.object"))
    assert tokens and files, "nothing to compare: the demo installation is not where the test looks"
    return {"rows": counts, "files": files, "token_objects": tokens}


def _init_in_process(cli: Cli, *args: str) -> subprocess.CompletedProcess[str]:
    """`revoca init ARGS` through the console script's `main` in this process (support.tools.revoca_run),
    with the installation's environment: on an installation that has its share set, `init` answers
    from the database alone, before any token is opened (ca.ceremony), so no process of its own is
    needed to keep the token apart from this one's (support.cli: a process costs ~0.5 s)."""
    argv, stdin = cli.cast.for_command(("init", *args)).into(("init", *args), "")
    proc = revoca_run(cli.env, *argv, stdin=stdin, cwd=cli.root)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_init_if_needed_a_second_time_exits_zero_and_changes_nothing(demo: Demo) -> None:
    before = _snapshot(demo.cli)
    proc = _init_in_process(demo.cli, "--if-needed")
    assert proc.returncode == 0, proc.stderr
    assert "already initialised" in proc.stdout
    assert _snapshot(demo.cli) == before


def test_init_demo_a_second_time_is_one_clear_error(demo: Demo) -> None:
    before = _snapshot(demo.cli)
    proc = _init_in_process(demo.cli, "--demo")
    where = f"revoca init --demo -> {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("revoca: error: "), where
    assert proc.returncode == 4, where
    assert re.search(r"already initialised \(token 'revoca' has a share set\)", lines[0]), where
    assert _snapshot(demo.cli) == before


# --- ca list / show -------------------------------------------------------------------------------


def test_ca_list_json_gives_each_ca_with_its_current_key(demo: Demo) -> None:
    rows = {r["name"]: r for r in demo.cli.json("ca", "list")}
    assert CA_NAMES == [name for name in rows if name in CA_NAMES]  # in creation order
    assert rows["tokyo"] == {"name": "tokyo", "kind": "regional", "status": "active", "subject": TOKYO_DN,
                             "key_generation": 1, "algorithm": "p256", "terminated_at": None}
    assert rows["bridge"]["subject"] == BRIDGE_DN


def _kinds(certs: list[dict[str, Any]]) -> set[tuple[str, str | None, str | None]]:
    return {(c["kind"], c["issuer"], c["subject_ca"]) for c in certs}


def test_ca_show_tokyo_json_has_self_signed_cross_pair_and_responder(demo: Demo) -> None:
    data = demo.cli.json("ca", "show", "tokyo")
    assert (data["name"], data["kind"], data["key_generation"]) == ("tokyo", "regional", 1)
    assert [(k["generation"], k["status"], k["algorithm"]) for k in data["keys"]] == [(1, "active", "p256")]
    assert data["keys"][0]["label"].startswith("ca/tokyo/1/")
    assert _kinds(data["certificates"]) >= {
        ("self-signed", "tokyo", "tokyo"),
        ("cross", "tokyo", "bridge"),  # tokyo certifies the bridge ...
        ("cross", "bridge", "tokyo"),  # ... and the bridge certifies tokyo
        ("ocsp-responder", "tokyo", None),
    }
    assert data["subscriber_certificates"] == len(demo.cli.certs("tokyo", CertKind.SUBSCRIBER))
    assert not any(c["revoked"] for c in data["certificates"])


def test_ca_show_bridge_has_cvs_server_tls_and_pem_output(demo: Demo) -> None:
    data = demo.cli.json("ca", "show", "bridge", "--pem")
    kinds = _kinds(data["certificates"])
    assert {("self-signed", "bridge", "bridge"), ("ocsp-responder", "bridge", None), ("cvs-server", "bridge", None),
            ("tls", "bridge", None)} <= kinds
    for regional in CA_NAMES[1:]:
        assert {("cross", "bridge", regional), ("cross", regional, "bridge")} <= kinds
    by_kind = {c["kind"]: c for c in data["certificates"]}
    self_signed = pem_of(by_kind["self-signed"])
    assert self_signed.subject.rfc4514_string() == BRIDGE_DN
    for kind in ("tls", "cvs-server", "ocsp-responder"):
        openssl_verify(pem_of(by_kind[kind]), trusted=[self_signed])


def test_ca_show_unknown_name_is_one_line_naming_the_known_cas(demo: Demo) -> None:
    line = demo.cli.fails("ca", "show", "nosuch", code=3, match=r"no CA named 'nosuch'")
    for name in CA_NAMES:
        assert name in line


# --- cert list / show -------------------------------------------------------------------------------


def test_cert_list_filters_by_ca_and_kind(demo: Demo) -> None:
    rows = demo.cli.json("cert", "list", "--ca", "tokyo", "--kind", "cross")
    assert rows and {(r["issuer"], r["kind"]) for r in rows} == {("tokyo", "cross")}
    assert BRIDGE_DN in {r["subject"] for r in rows}
    assert all(re.fullmatch(r"[0-9a-f]+", r["serial"]) for r in rows)


def test_cert_show_prints_a_stored_certificate_and_its_pem(demo: Demo) -> None:
    (cross,) = demo.cli.certs("tokyo", CertKind.CROSS, subject_ca="bridge")
    serial = format(cross.serial_number, "x")
    out = demo.cli.ok("cert", "show", "--ca", "tokyo", serial)
    assert re.search(rf"^serial\s+{serial}$", out, re.M), out
    assert re.search(r"^kind\s+cross$", out, re.M), out
    assert re.search(rf"^subject\s+{re.escape(BRIDGE_DN)}$", out, re.M), out
    assert re.search(r"^revoked\s+no$", out, re.M), out

    colons = ":".join(serial.rjust(len(serial) + len(serial) % 2, "0")[i:i + 2] for i in range(0, len(serial), 2))
    pem_text = demo.cli.ok("cert", "show", "--ca", "tokyo", colons.upper(), "--pem")
    assert x509.load_pem_x509_certificate(pem_text.encode()) == cross
    parsed = subprocess.run(["openssl", "x509", "-noout", "-serial", "-subject"], input=pem_text,
                            capture_output=True, text=True, check=False)
    assert parsed.returncode == 0, parsed.stderr
    printed = re.search(r"^serial=([0-9A-F]+)$", parsed.stdout, re.M)
    assert printed and int(printed.group(1), 16) == cross.serial_number, parsed.stdout


def test_cert_show_bad_hex_serial_is_one_error_line(demo: Demo) -> None:
    demo.cli.fails("cert", "show", "--ca", "tokyo", "xyz", code=5, match=r"serial 'xyz' is not hexadecimal")


def test_cert_show_negative_serial_is_one_error_line(demo: Demo) -> None:
    demo.cli.fails("cert", "show", "--ca", "tokyo", "--", "-1", code=5, match=r"serial")


# --- operators ---------------------------------------------------------------------------------------


def test_operator_add_then_list_json(demo: Demo) -> None:
    out = demo.cli.ok("operator", "add", "alice", "--role", "reviewer", "--role", "operator",
                      "--display-name", "Alice Example", stdin="correct horse battery\n")
    assert "operator alice added with roles operator, reviewer" in out
    rows = {r["name"]: r for r in demo.cli.json("operator", "list")}
    assert rows["alice"]["roles"] == ["operator", "reviewer"]
    assert (rows["alice"]["display_name"], rows["alice"]["disabled"]) == ("Alice Example", False)
    assert rows["keymanager1"]["roles"] == ["key-manager"]
    assert "correct horse" not in json.dumps(rows)


def test_operator_password_shorter_than_ten_characters_is_refused(demo: Demo) -> None:
    demo.cli.fails("operator", "add", "shorty", "--role", "operator", stdin="123456789\n", code=5,
                   match=r"password too short: use at least 10 characters")
    with session_scope(demo.cli.engine) as session:
        assert "shorty" not in {o.name for o in Store(session).operators()}


def test_operator_added_twice_is_refused(demo: Demo) -> None:
    _add_operator(demo.cli, "twice", Role.OPERATOR, "first password")
    demo.cli.fails("operator", "add", "twice", "--role", "reviewer", stdin="second password\n", code=4,
                   match=r"operator named 'twice' already exists")


# --- cross-certification with an external CA ----------------------------------------------------------


def _external_ca(cn: str) -> tuple[Issuer, x509.Certificate]:
    """Another PKI's root CA, made here with a software key (P-384, unlike our P-256)."""
    signer = SoftwareSigner(ec.generate_private_key(ec.SECP384R1()), label=cn)
    name = x509.Name.from_rfc4514_string(f"CN={cn},O=Government PKI,C=JP")
    issuer = Issuer.from_signer(name, signer)
    return issuer, issue(CertKind.SELF_SIGNED, issuer=issuer, subject=name, public_key=signer.public_key(),
                         not_before=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5), time_guard=NO_NTP)


def _write_pem(path: Path, *certs: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


@dataclasses.dataclass
class External:
    issuer: Issuer
    their_self: x509.Certificate
    ours: x509.Certificate
    stdout: str
    dir: Path


@pytest.fixture(scope="module")
def gpki(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> External:
    """First step of cross-certification: register the external CA `gpki` and issue our cross to it."""
    d = tmp_path_factory.mktemp("gpki")
    issuer, their_self = _external_ca("Government Bridge CA")
    out = demo.cli.ok("ca", "cross-certify", "gpki", "--their-ca", str(_write_pem(d / "their.pem", their_self)),
                      "--out", str(d / "ours.pem"))  # a senior operator and two key managers log in
    return External(issuer, their_self, x509.load_pem_x509_certificate((d / "ours.pem").read_bytes()), out, d)


def test_cross_certify_registers_the_external_ca_and_issues_our_cross_certificate(demo: Demo,
                                                                                 gpki: External) -> None:
    assert "registered external CA gpki; issued cross certificate serial" in gpki.stdout
    assert str(gpki.dir / "ours.pem") in gpki.stdout
    ours, their_self = gpki.ours, gpki.their_self
    assert (ours.subject, ours.public_key()) == (their_self.subject, their_self.public_key())
    assert ours.issuer.rfc4514_string() == BRIDGE_DN
    (bridge_self,) = demo.cli.certs("bridge", CertKind.SELF_SIGNED)
    openssl_verify(ours, trusted=[bridge_self])

    data = demo.cli.json("ca", "show", "gpki", "--pem")
    assert (data["kind"], data["algorithm"], data["keys"][0]["label"]) == ("external", "p384", None)
    assert {("self-signed", "gpki", "gpki"), ("cross", "bridge", "gpki")} <= _kinds(data["certificates"])
    assert {their_self, ours} <= {pem_of(c) for c in data["certificates"]}


def test_their_cross_certificate_is_stored_and_a_path_from_their_root_reaches_tokyo(demo: Demo,
                                                                                   gpki: External) -> None:
    (bridge_self,) = demo.cli.certs("bridge", CertKind.SELF_SIGNED)
    their_cross = issue(CertKind.CROSS, issuer=gpki.issuer, subject=bridge_self.subject,
                        public_key=bridge_self.public_key(),  # type: ignore[arg-type]
                        not_before=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5), time_guard=NO_NTP)
    out = demo.cli.ok("ca", "cross-certify", "gpki", "--their-cross",
                      str(_write_pem(gpki.dir / "their-cross.pem", their_cross)))
    assert "stored the cross certificate gpki issued to our bridge" in out
    assert demo.cli.certs("gpki", CertKind.CROSS, subject_ca="bridge") == [their_cross]

    # A verifier who trusts only the external root reaches tokyo's responder through both crosses.
    (bridge_to_tokyo,) = demo.cli.certs("bridge", CertKind.CROSS, subject_ca="tokyo")
    (responder,) = demo.cli.certs("tokyo", CertKind.OCSP_RESPONDER)
    openssl_verify(responder, trusted=[gpki.their_self], untrusted=[their_cross, bridge_to_tokyo])
    with pytest.raises(AssertionError):  # and not without their cross certificate
        openssl_verify(responder, trusted=[gpki.their_self], untrusted=[bridge_to_tokyo])


def test_their_cross_certifying_another_key_is_refused(demo: Demo, gpki: External) -> None:
    (tokyo_self,) = demo.cli.certs("tokyo", CertKind.SELF_SIGNED)
    wrong = issue(CertKind.CROSS, issuer=gpki.issuer, subject=x509.Name.from_rfc4514_string(BRIDGE_DN),
                  public_key=tokyo_self.public_key(),  # type: ignore[arg-type]
                  not_before=dt.datetime.now(dt.UTC), time_guard=NO_NTP)
    demo.cli.fails("ca", "cross-certify", "gpki", "--their-cross", str(_write_pem(gpki.dir / "wrong.pem", wrong)),
                   code=5,
                   match=r"cross certificate from gpki does not certify our bridge's current key")
    assert wrong not in demo.cli.certs("gpki", CertKind.CROSS)


def test_cross_certify_needs_a_senior_operator_and_two_key_managers_with_their_passwords(
        demo: Demo, gpki: External, tmp_path: Path) -> None:
    cast = demo.cli.cast
    _, their_self = _external_ca("Wrong Role CA")
    demo.cli.fails("ca", "cross-certify", "wrongrole", "--their-ca", str(_write_pem(tmp_path / "t.pem", their_self)),
                   login=cast.login("cast-operator", "keymanager1", "keymanager2"), code=8,
                   match=r"needs 3 different people \(senior-operator; 2 × key-manager\); logged in: cast-operator "
                         r"\(operator\)")
    demo.cli.fails("ca", "cross-certify", "wrongrole", "--their-ca", str(tmp_path / "t.pem"),
                   login=cast.login("cast-senior1", "keymanager1")._replace(stdin="not the password\n"), code=8,
                   match=r"needs 3 different people .*; 2 logged in")
    demo.cli.fails("ca", "cross-certify", "wrongrole", "--their-ca", str(tmp_path / "t.pem"),
                   login=cast.login("cast-senior1", "keymanager1", "keymanager2")._replace(stdin="not the password\n"),
                   code=8, match=r"operator 'cast-senior1': unknown, disabled or wrong password")
    with session_scope(demo.cli.engine) as session:
        assert "wrongrole" not in {c.name for c in Store(session).cas()}


def test_cross_certificate_keeps_the_external_cas_own_key_identifier(demo: Demo, tmp_path: Path) -> None:
    cli = demo.cli
    key = ec.generate_private_key(ec.SECP384R1())
    # RFC 7093 method 1: leftmost 160 bits of the SHA-256 of the key, as many newer CAs use.
    digest = hashes.Hash(hashes.SHA256())
    digest.update(key.public_key().public_bytes(serialization.Encoding.X962,
                                                serialization.PublicFormat.UncompressedPoint))
    ski = digest.finalize()[:20]
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "SHA-256 Key Id CA")])
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)

    def build(subject: x509.Name, public: ec.EllipticCurvePublicKey, ca: bool) -> x509.Certificate:
        b = (x509.CertificateBuilder().issuer_name(name).subject_name(subject).public_key(public)
             .serial_number(x509.random_serial_number()).not_valid_before(start)
             .not_valid_after(start + dt.timedelta(days=365))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False, key_encipherment=False,
                                          data_encipherment=False, key_agreement=False, key_cert_sign=ca,
                                          crl_sign=ca, encipher_only=False, decipher_only=False), critical=True)
             .add_extension(x509.AuthorityKeyIdentifier(ski, None, None), critical=False))
        if ca:
            b = b.add_extension(x509.SubjectKeyIdentifier(ski), critical=False)
        return b.sign(key, hashes.SHA384())

    their_self = build(name, key.public_key(), True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = build(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "their server")]), leaf_key.public_key(), False)
    ours = tmp_path / "ours.pem"
    cli.ok("ca", "cross-certify", "sha256ca", "--their-ca", str(_write_pem(tmp_path / "t.pem", their_self)),
           "--out", str(ours))
    our_cross = x509.load_pem_x509_certificate(ours.read_bytes())
    assert our_cross.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest == ski
    (bridge_self,) = cli.certs("bridge", CertKind.SELF_SIGNED)
    # A verifier trusting our bridge reaches their certificates through our cross certificate.
    openssl_verify(leaf, trusted=[bridge_self], untrusted=[our_cross])


def test_cross_certify_out_into_a_missing_directory_is_one_error_line(demo: Demo, gpki: External,
                                                                     tmp_path: Path) -> None:
    _, their_self = _external_ca("Unwritable Out CA")
    demo.cli.fails("ca", "cross-certify", "unwritable", "--their-ca", str(_write_pem(tmp_path / "t.pem", their_self)),
                   "--out", str(tmp_path / "missing" / "ours.pem"), code=None, match=r"missing/ours.pem")


# --- the HSM service end to end -------------------------------------------------------------------------


def test_hsm_service_activation_rollover_and_deactivation(tmp_path: Path,
                                                          ceremony_templates: CeremonyTemplates) -> None:
    # a copy of the worker's demo ceremony: `init --demo` has its own tests above
    with demo_cli(ceremony_templates, "sqlite", tmp_path) as cli:
        _hsm_flow(cli)


def _hsm_flow(cli: Cli) -> None:
    proc = start_hsm(cli)
    try:
        status = cli.json("hsm", "status")
        assert (status["activated"], status["needed"], status["presented_by"]) == (False, 2, [])
        assert re.search(r"not activated; 2 more key manager share\(s\) needed", status["line"])
        out = cli.ok("hsm", "activate", "--share-file", str(cli.share_file(1)))
        assert "not activated; 1 more key manager share(s) needed (1 of 2 presented, 3 issued)" in out
        cli.fails("hsm", "activate", "--share-file", str(cli.share_file(1)), code=5,
                  match=r"share 1 \(keymanager1\) was already presented; 1 more needed")
        cli.fails("hsm", "activate", stdin="RVS1-this-is-not-a-share\n", code=5,
                  match=r"not a revoca activation share")
        assert "activated (2 of 3 key managers)" in cli.ok("hsm", "activate", "--share-file",
                                                           str(cli.share_file(2)))
        # A second service may not take the socket over from the running one.
        cli.fails("serve", "hsm", code=9, match=r"an HSM service is already running on", log_lines=True)

        cli.fails("ca", "rollover", "tokyo", login=cli.cast.login("keymanager1"), code=8,
                  match=r"needs 2 different people \(2 × key-manager\); 1 logged in")
        out = cli.ok("ca", "rollover", "tokyo", login=cli.cast.login("keymanager1", "keymanager2"))
        assert "CA tokyo: key generation 2 is active" in out
        _check_rollover(cli)

        # deactivation: M key managers, whose passwords the HSM service itself checks
        cli.fails("hsm", "deactivate", "--operator", "keymanager1", stdin=cli.password("keymanager1") + "\n",
                  code=8, match=r"deactivation refused: it needs 2 different key managers")
        out = cli.ok("hsm", "deactivate", "--operator", "keymanager1", "--operator", "keymanager2",
                     stdin=cli.password("keymanager1") + "\n" + cli.password("keymanager2") + "\n")
        assert "not activated; 2 more key manager share(s) needed" in out
        cli.fails("ca", "rollover", "tokyo", code=7, match=r"HSM not activated: 2 more key manager share\(s\) needed")
        with session_scope(cli.engine) as session:
            store = Store(session)
            assert store.current_key(store.ca("tokyo")).generation == 2  # the failed rollover left nothing
    finally:
        returncode = stop_hsm(proc)
    assert returncode == 0, (cli.root / "hsm.log").read_text()
    assert not cli.socket.exists(), "the HSM service left its socket behind"


def test_serve_hsm_stops_on_sigint_even_when_started_with_sigint_ignored(tmp_path: Path,
                                                                         ceremony_templates: CeremonyTemplates) -> None:
    """A background job of a shell starts with SIGINT ignored, which Python then leaves ignored:
    the service must still stop cleanly on SIGINT (`kill -INT`, a supervisor's Ctrl-C)."""
    with demo_cli(ceremony_templates, "sqlite", tmp_path) as cli:
        with (cli.root / "hsm.log").open("ab") as log:
            proc = subprocess.Popen([REVOCA, "serve", "hsm"], cwd=cli.root, env=cli.env, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        try:
            deadline = time.monotonic() + 60
            while not cli.socket.exists():
                assert proc.poll() is None and time.monotonic() < deadline, (cli.root / "hsm.log").read_text()
                time.sleep(0.05)
            HSMClient(cli.socket, timeout=10).status()
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=20) == 0, (cli.root / "hsm.log").read_text()
        finally:
            stop_hsm(proc)
        assert not cli.socket.exists(), "the HSM service left its socket behind"


def test_a_stopping_hsm_service_refuses_new_clients_while_its_stop_record_waits(
        tmp_path: Path, ceremony_templates: CeremonyTemplates) -> None:
    """Found stopping `revoca run` right after its start (ten services SIGKILLed after 10 s): the
    HSM service, stopped, no longer answered but kept its socket while its stop record waited for
    another service's write transaction (the scheduler's, itself waiting for a signature), and a
    client connecting then waited for ever.  Now it stops listening first: a new client is refused
    at once, and the record is written once the transaction ends."""
    with demo_cli(ceremony_templates, "sqlite", tmp_path) as cli:
        proc = start_hsm(cli)
        try:
            database = sqlite3.connect(str(cli.engine.url.database), isolation_level=None, timeout=30)
            try:
                database.execute("BEGIN IMMEDIATE")  # another service's write transaction
                proc.send_signal(signal.SIGTERM)
                deadline = time.monotonic() + 20
                while cli.socket.exists():
                    assert time.monotonic() < deadline, "the stopping HSM service kept its socket"
                    time.sleep(0.02)
                late = HSMClient(cli.socket, timeout=5)
                asked = time.monotonic()
                with pytest.raises(ServiceUnavailable):
                    late.status()
                assert time.monotonic() - asked < 2
                assert proc.poll() is None  # its stop record still waits for the transaction
            finally:
                database.execute("ROLLBACK")
                database.close()
            assert proc.wait(timeout=20) == 0, (cli.root / "hsm.log").read_text()
        finally:
            stop_hsm(proc)


def _check_rollover(cli: Cli) -> None:
    with session_scope(cli.engine) as session:
        store = Store(session)
        tokyo = store.ca("tokyo")
        assert [(k.generation, k.status.value) for k in tokyo.keys] == [(1, "retired"), (2, "active")]
        old_key, new_key = tokyo.keys
        rows = store.certificates(issuer=tokyo)

        def one(kind: CertKind, key_id: int) -> x509.Certificate:
            (row,) = [r for r in rows if r.kind is kind and r.issuer_key_id == key_id]
            return x509.load_der_x509_certificate(row.der)

        old_self, new_self = one(CertKind.SELF_SIGNED, old_key.id), one(CertKind.SELF_SIGNED, new_key.id)
        old_with_new = one(CertKind.LINK_OLD_WITH_NEW, new_key.id)  # the old key, signed by the new one
        new_with_old = one(CertKind.LINK_NEW_WITH_OLD, old_key.id)  # the new key, signed by the old one
        old_responder = one(CertKind.OCSP_RESPONDER, old_key.id)
        new_responder = one(CertKind.OCSP_RESPONDER, new_key.id)
    assert new_with_old.public_key() == new_self.public_key()
    assert old_with_new.public_key() == old_self.public_key()
    assert new_with_old.not_valid_after_utc == old_self.not_valid_after_utc
    # A relying party that still trusts the old self-signed certificate accepts what the new key signs ...
    openssl_verify(new_responder, trusted=[old_self], untrusted=[new_with_old])
    with pytest.raises(AssertionError):
        openssl_verify(new_responder, trusted=[old_self])
    # ... and one that already trusts the new certificate accepts what the old key signed.
    openssl_verify(old_responder, trusted=[new_self], untrusted=[old_with_new])


# --- PostgreSQL and configuration errors -----------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_init_and_listing_on_postgresql(db_url: str, tmp_path: Path) -> None:
    cli = Cli(tmp_path, db_url=db_url)
    try:
        assert "database schema is current" in cli.ok("db", "upgrade")
        assert f"Created CAs: {', '.join(CA_NAMES)}" in cli.ok("init", "--demo")
        assert not (cli.data / "revoca.db").exists()
        assert [r["name"] for r in cli.json("ca", "list")] == CA_NAMES
        assert len(cli.certs("bridge", CertKind.CROSS)) == 3
    finally:
        cli.close()


def test_hsm_commands_without_a_running_service_say_how_to_start_it(bare: Cli) -> None:
    bare.fails("hsm", "status", code=9, match=r"not running on .*; start it with `revoca serve hsm`")


def test_serve_hsm_before_init_says_to_run_init(bare: Cli) -> None:
    bare.fails("serve", "hsm", code=3, match=r"no activation share set for token 'revoca'; run `revoca init`",
               log_lines=True)
    assert not bare.socket.exists()


def test_missing_config_file_is_one_config_error(bare: Cli) -> None:
    bare.fails("--config", str(bare.root / "nope.toml"), "ca", "list", code=2, match=r"nope.toml does not exist")


def test_non_numeric_environment_override_is_one_config_error(bare: Cli) -> None:
    bare.fails("hsm", "status", env={"REVOCA_HSM_THRESHOLD": "two"}, code=2, match=r"REVOCA_HSM_THRESHOLD")


def test_malformed_database_url_is_one_config_error(bare: Cli) -> None:
    bare.fails("ca", "list", env={"REVOCA_DATABASE_URL": "not a url"}, code=2, match=r"database")


def test_empty_standard_input_for_a_password_is_one_error_line(bare: Cli) -> None:
    nobody_types = Login(("--operator", "somebody", "--operator", "someone"), "")  # the logins read first
    bare.fails("operator", "add", "nobody", "--role", "operator", login=nobody_types, code=5,
               match=r"Password for somebody: nothing on standard input")
