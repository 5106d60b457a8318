"""The web repository (issue 17) against a real installation: lists issued and published into a
real slapd, a real CA key compromise, pages built by `revoca web build` and served by `revoca
serve web`, looked at in headless Chromium (screenshots kept, their paths printed), and every
download checked byte for byte against the database and the LDAP repository (ldapsearch).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ca import ceremony, hierarchy
from ca.crl.issue import issue_all, issue_list
from ca.enums import CertKind, ListType
from ca.hsm.signer import KeyAlgorithm
from ca.hsm.token import write_softhsm_conf
from ca.revocation import compromise
from ca.storage.engine import make_engine, session_scope
from ca.storage.models import Certificate, CertificateAuthority, IssuedCRL, Notice
from ca.storage.notices import TERMINATION, record_notice
from ca.storage.public import PUBLIC_KINDS
from ca.storage.revocations import RevocationStore
from ca.storage.store import Store
from repository.publisher import LdapPublisher
from repository.slapd import SLAPD, LocalSlapd

from support.browser import CHROMIUM, Browser, links
from support.cli import REVOCA
from support.clock import NO_NTP
from support.database import sqlite_copy
from support.installation import CeremonyTemplates, Installation, demo_installation
from support.settings import LDAP_BASE, LDAP_ROOT_PASSWORD, NOW, make_settings
from support.tools import free_port, revoca_run

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package chromium)")

COMPROMISED = "osaka"
TERMINATED = "hokkaido"
LATER = NOW + dt.timedelta(hours=1)


@dataclasses.dataclass
class World:
    installation: Installation
    slapd: LocalSlapd
    env: dict[str, str]
    artifacts: Path

    @property
    def engine(self) -> sa.Engine:
        return self.installation.engine

    def revoca(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = revoca_run(self.env, *args, cwd=self.installation.data_dir.parent)
        assert not check or proc.returncode == 0, f"revoca {' '.join(args)}\n{proc.stdout}{proc.stderr}"
        return proc

    def ldap_values(self, attr: str) -> list[bytes]:
        """Every value of `attr` anywhere under the base, as an anonymous relying party gets it (ldapsearch)."""
        out = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", self.slapd.uri, "-b",
                              LDAP_BASE, "-s", "sub", "-t", "-T", str(self.artifacts), f"({attr.split(';')[0]}=*)",
                              attr], capture_output=True, text=True, timeout=60, check=True).stdout
        values = []
        for line in out.splitlines():
            if line.lower().startswith(attr.lower() + ":< file://"):
                path = Path(line.split("file://", 1)[1])
                values.append(path.read_bytes())
                path.unlink()
        return values


@dataclasses.dataclass(frozen=True)
class Built:
    """The module's installation as `built` left it: a SQLite database and its data directory under `root`."""

    root: Path
    url: str
    result: ceremony.CeremonyResult
    slapd: LocalSlapd


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSlapd]:
    """A real slapd for the module: the lists are published into it once (`built`), and the tests
    only read it anonymously (ldapsearch, `revoca web build` and `revoca serve web` fetch the ARLs)."""
    if not Path(SLAPD).exists():
        pytest.skip(f"{SLAPD} not installed (Debian package slapd)")
    s = LocalSlapd(tmp_path_factory.mktemp("web-ldap") / "ldap", LDAP_BASE, free_port(), LDAP_ROOT_PASSWORD)
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def built(ceremony_templates: CeremonyTemplates, tmp_path_factory: pytest.TempPathFactory,
          directory: LocalSlapd) -> Built:
    """Every CA's CRL and ARL issued and published; then osaka's key compromised (its notice written
    by the compromise itself), its lists and its certifier's ARL issued at once and published; and a
    termination notice for hokkaido as `revoca ca terminate` would write it.  Made once: each test
    gets a copy of its own (`world`)."""
    root = tmp_path_factory.mktemp("web-built") / "inst"
    with demo_installation(ceremony_templates, "sqlite", root) as made:
        engine = made.engine
        assert made.keys is not None
        issue_all(engine, made.keys, made.data_dir, now=NOW, time_guard=NO_NTP)
        publisher = LdapPublisher(engine, directory.endpoint(timeout=5), LDAP_BASE, made.data_dir)
        assert publisher.round(NOW).ok
        with session_scope(engine) as s:  # tokyo's key rolled over: two self-signed and two link certificates
            hierarchy.rollover(hierarchy.Context(store=Store(s), keys=made.keys, now=NOW + dt.timedelta(minutes=30),
                                                 actor="test", algorithm=KeyAlgorithm.P256, time_guard=NO_NTP), "tokyo")
        with session_scope(engine) as s:
            store = RevocationStore(s)
            compromise.compromise(store, COMPROMISED, (store.operator("cast-senior1"), store.operator("cast-senior2")),
                                  LATER, note="test")
        for ca, list_type in ((COMPROMISED, ListType.CRL), (COMPROMISED, ListType.ARL), ("bridge", ListType.ARL),
                              ("tokyo", ListType.ARL)):
            issue_list(engine, made.keys, made.data_dir, ca, list_type, now=LATER, time_guard=NO_NTP)
        assert publisher.round(LATER).ok
        with session_scope(engine) as s:
            ca_id = s.scalar(sa.select(CertificateAuthority.id).where(CertificateAuthority.name == TERMINATED))
            record_notice(s, ca_id=ca_id, kind=TERMINATION, occurred_at=LATER, recorded_by="cast-senior1+cast-admin",
                          now=LATER)
        url, result = made.settings.db_url, made.result
    return Built(root, url, result, directory)


@pytest.fixture
def world(built: Built, tmp_path: Path) -> Iterator[World]:
    """A copy of `built` of the test's own (database and data directory: the web service writes its
    releases under the data directory, and a test adds a notice), beside the module's slapd."""
    root = tmp_path / "inst"
    shutil.copytree(built.root, root, symlinks=True, ignore=shutil.ignore_patterns("revoca.db*"))
    url = f"sqlite:///{root / 'revoca.db'}"
    sqlite_copy(built.url, url)
    settings = make_settings(root, url)
    write_softhsm_conf(settings.softhsm_conf)  # tokendir = the copied tokens/, not the module's
    engine = make_engine(url)
    result = dataclasses.replace(built.result, demo_files=tuple(root / path.relative_to(built.root)
                                                                for path in built.result.demo_files))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REVOCA_", "SOFTHSM2_"))}
    env.update(REVOCA_DATA_DIR=str(settings.data_dir), REVOCA_DATABASE_URL=url,
               REVOCA_REPOSITORY_PORT=str(built.slapd.port), REVOCA_REPOSITORY_BASE_DN=LDAP_BASE)
    # kept beyond pytest's rotation of its temporary directories (other runs remove old ones)
    artifacts = Path(os.environ.get("REVOCA_TEST_ARTIFACTS") or tempfile.gettempdir()) / "revoca-artifacts" / \
        "web" / f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{os.getpid()}-{tmp_path.name}"
    artifacts.mkdir(parents=True)
    print(f"\nweb repository test artifacts (screenshots): {artifacts}")
    try:
        yield World(Installation(settings, engine, result), built.slapd, env, artifacts)
    finally:
        engine.dispose()


def _public_rows(engine: sa.Engine) -> list[tuple[str, str | None, str, bytes, bool]]:
    """(issuer, subject CA, kind, DER, revoked) of every public certificate in the database."""
    with session_scope(engine) as s:
        rows = s.execute(sa.select(Certificate).where(Certificate.kind.in_(PUBLIC_KINDS))).scalars().all()
        return [(c.issuer_ca.name, c.subject_ca.name if c.subject_ca else None, c.kind.value, c.der,
                 c.revocation is not None) for c in rows]


def _colon(digest: bytes) -> str:
    return ":".join(f"{b:02X}" for b in digest)


def test_every_download_matches_the_database_and_the_directory(world: World, tmp_path: Path) -> None:
    out = tmp_path / "site"
    printed = world.revoca("web", "build", "--out", str(out)).stdout
    assert f"written to {out}" in printed and "4 CAs" in printed, printed

    rows = _public_rows(world.engine)
    by_digest = {hashlib.sha256(der).hexdigest(): der for *_, der, _ in rows}
    # every public certificate of the database is offered, in DER and PEM, and nothing else is
    offered = {p.stem for p in (out / "certs").glob("*.cer")}
    assert offered == set(by_digest)
    for stem, der in by_digest.items():
        assert (out / "certs" / f"{stem}.cer").read_bytes() == der
        pem = (out / "certs" / f"{stem}.pem").read_bytes()
        assert subprocess.run(["openssl", "x509", "-outform", "DER"], input=pem, capture_output=True,
                              check=True).stdout == der
    # openssl, not our code, says what the fingerprints are; the CA page shows them
    tokyo_page = (out / "ca" / "tokyo.html").read_text(encoding="utf-8")
    for stem in {p.rsplit("/", 1)[1].split(".")[0] for p in links(tokyo_page).downloads if "/certs/" in p}:
        for algorithm in ("sha256", "sha1"):
            line = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-fingerprint", f"-{algorithm}",
                                   "-in", str(out / "certs" / f"{stem}.cer")], capture_output=True, text=True,
                                  check=True).stdout.strip()
            assert line.split("=", 1)[1] in tokyo_page, (algorithm, line)

    # every CA certificate and cross pair in the directory is downloadable from the pages
    in_directory = world.ldap_values("cACertificate;binary")
    assert in_directory and {hashlib.sha256(d).hexdigest() for d in in_directory} <= set(offered)

    # each CA's ARL: the directory's value, the archived file and the database's digest, byte for byte
    arl_links = []
    for page in (out / "ca").glob("*.html"):
        arl_links += [href for href in links(page.read_text(encoding="utf-8")).downloads if "/arl/" in href]
    assert len(arl_links) == 4, arl_links
    directory_arls = {hashlib.sha256(v).hexdigest(): v for v in world.ldap_values("authorityRevocationList;binary")}
    with session_scope(world.engine) as s:
        for href in arl_links:
            name, number = re.fullmatch(r"\.\./arl/(\w+)-(\d+)\.arl", href).groups()  # type: ignore[union-attr]
            data = (out / "arl" / f"{name}-{number}.arl").read_bytes()
            row = s.scalars(sa.select(IssuedCRL).join(CertificateAuthority, IssuedCRL.ca_id == CertificateAuthority.id)
                            .where(CertificateAuthority.name == name, IssuedCRL.list_type == ListType.ARL,
                                   IssuedCRL.number == int(number))).one()
            assert hashlib.sha256(data).digest() == row.sha256
            assert data == (world.installation.data_dir / row.path).read_bytes()
            assert directory_arls[hashlib.sha256(data).hexdigest()] == data
            assert _colon(row.sha256) in (out / "ca" / f"{name}.html").read_text(encoding="utf-8")
            text = subprocess.run(["openssl", "crl", "-inform", "DER", "-noout", "-text"], input=data,
                                  capture_output=True, check=True).stdout.decode()
            assert re.search(rf"X509v3 CRL Number: \s*{number}\b", text), text
    # no CRL anywhere: CRLs are for registered verifiers only
    assert not list(out.rglob("*.crl"))

    # tokyo after its rollover: both self-signed certificates and both link certificates, each downloadable
    own = tokyo_page.split('id="own"', 1)[1].split('id="links"', 1)[0]
    linked = tokyo_page.split('id="links"', 1)[1].split('id="cross"', 1)[0]
    assert own.count("<tr class=\"status-valid\">") == 2, own
    assert "OldWithNew" in linked and "NewWithOld" in linked and linked.count('download>DER</a>') == 2, linked

    # the compromised CA: its own certificates and the cross certificates about its key revoked and shown so
    osaka = (out / "ca" / f"{COMPROMISED}.html").read_text(encoding="utf-8")
    assert osaka.count('class="status-revoked"') >= 2, osaka  # self-signed, cross certificate(s)
    bridge = (out / "ca" / "bridge.html").read_text(encoding="utf-8")
    assert 'class="status-revoked"' in bridge and 'class="status-valid"' in bridge
    # notices: when, and what relying parties must do, in Japanese and English
    notices = (out / "notices.html").read_text(encoding="utf-8")
    assert "私有鍵が危殆化しました" in notices and "Remove this CA&#39;s self-signed certificate" in notices
    assert f'datetime="{LATER.replace(microsecond=0).isoformat()}"' in notices
    assert "認証業務を終了しました" in notices and "terminated its certification services" in notices
    # the pages need no JavaScript and carry both languages
    for page in [*out.glob("*.html"), *(out / "ca").glob("*.html")]:
        parsed = links(page.read_text(encoding="utf-8"))
        assert parsed.scripts == 0 and {"ja", "en"} <= set(parsed.langs), page


def _wait_for(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            assert proc.poll() is None, "revoca serve web exited at start"
            assert time.monotonic() < deadline, f"nothing at {url}"
            time.sleep(0.05)


def _get(url: str) -> tuple[bytes, dict[str, str]]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read(), dict(resp.headers)


@pytest.mark.slow  # eight pages in Chromium, and the web service noticing a change in the database
def test_served_pages_render_in_chromium_and_follow_each_change(world: World) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    proc = subprocess.Popen([REVOCA, "serve", "web", "--port", str(port), "--workers", "1", "--poll", "0.5"],
                            env=world.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    browser = Browser()  # one Chromium for the eight pages, one after another in its tab (support.browser)
    try:
        _wait_for(base, proc)
        index, headers = _get(base)
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert "script-src" not in headers["Content-Security-Policy"] and "default-src 'none'" in \
            headers["Content-Security-Policy"]
        shots = [browser.screenshot(base + page, world.artifacts / f"{name}.png") for page, name in (
            ("", "index"), ("ca/bridge.html", "ca-bridge"), (f"ca/{COMPROMISED}.html", "ca-compromised"),
            ("notices.html", "notices"), ("reports/index.html", "reports"), ("cps.html", "practice-statement"))]
        print("screenshots:", *shots, sep="\n  ")
        dom = browser.dump_dom(base + f"ca/{COMPROMISED}.html")
        assert '<html lang="ja">' in dom and "私有鍵危殆化" in dom and "key compromised" in dom
        # a download as served is the database's DER, with its media type
        with session_scope(world.engine) as s:
            der = s.scalars(sa.select(Certificate.der).join(CertificateAuthority, Certificate.subject_ca_id ==
                                                            CertificateAuthority.id)
                            .where(CertificateAuthority.name == "bridge",
                                   Certificate.kind == CertKind.SELF_SIGNED)).one()
        body, headers = _get(base + f"certs/{hashlib.sha256(der).hexdigest()}.cer")
        assert body == der and headers["Content-Type"] == "application/pkix-cert"
        for bad in ("../revoca.db", "..%2f..%2frevoca.db", ".revoca-web", "certs/../../../revoca.db"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                _get(base + bad)
            refused.value.close()  # else the one sync worker lingers 2 s on this connection (gunicorn's close_graceful)
            assert refused.value.code == 404, bad

        # a change in the database shows without anyone telling the web service: a new notice
        with session_scope(world.engine) as s:
            ca_id = s.scalar(sa.select(CertificateAuthority.id).where(CertificateAuthority.name == "tokyo"))
            notice = record_notice(s, ca_id=ca_id, kind=TERMINATION, occurred_at=LATER, recorded_by="test",
                                   now=LATER)
            notice_id = notice.id
        deadline = time.monotonic() + 30
        while f'id="notice-{notice_id}"' not in _get(base + "notices.html")[0].decode():
            assert time.monotonic() < deadline, "the new notice never appeared"
            time.sleep(0.05)
        assert f'id="notice-{notice_id}"' in _get(base + "ca/tokyo.html")[0].decode()
        browser.screenshot(base + "notices.html", world.artifacts / "notices-after-change.png")
    finally:
        browser.close()
        os.killpg(proc.pid, signal.SIGTERM)
        output = proc.communicate(timeout=30)[0].decode(errors="replace")
    assert "Traceback" not in output, output
    with session_scope(world.engine) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Notice)) == 3
