"""Two revoca nodes on a PostgreSQL primary and standby and two LDAP providers, and the one
holding the leases is killed (issue 15; the layout of docs/deployment.md section 8, on one machine).

Two nodes, each a process group of its own (HSM service with a copy of the token, scheduler,
publisher, OCSP responder under granian reading from the standby, RA over HTTPS) with its own
data directory and ports; a PostgreSQL primary and its streaming standby (clusters of the
test's own, tests/support/pg_cluster.py); two slapd providers in mirror mode
(repository.slapd.mirror_mode_config), the publishers writing to provider 1 and failing over to
provider 2 ([repository] providers); the CRL spool (crls/) on storage both nodes mount.

Node A starts first and takes the scheduler and publisher leases; node B stands by.  A
revocation is acknowledged by A's RA, and in the middle of A's first round the whole of node A
is killed (`kill -9` of its process group).  Then, checked with independent reads (SQL,
ldapsearch + openssl, the OCSP answers parsed by cryptography):

- takeover: B's scheduler issues every list A had not within 30 s; no number is used twice or
  goes backwards; nothing is left signed and unarchived;
- no acknowledged revocation lost: A's is in the primary, in B's OCSP answers and in the next CRL;
- bounded staleness: a revocation filed at B shows in B's OCSP at once, also with the standby's
  replay paused (then read from the primary; the standby does not hold it);
- publisher failover: with provider 1 killed, B's publisher writes the next CRL to provider 2;
  provider 1, back, catches up; every list in both providers is byte-identical and the newest;
- B's OCSP responder answers a registered verifier's signed request throughout (counted: no
  failure), and its status lookups ran on the standby.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp as x509_ocsp

from ca import ceremony, health
from ca.enums import CertKind, ListType, Role
from ca.hsm.client import HSMClient
from ca.hsm.token import write_softhsm_conf
from ca.scheduler import list_statuses
from ca.storage.engine import ensure_current, make_engine, session_scope
from ca.storage.models import Certificate, IssuedCRL, Revocation
from ca.storage.store import ReadStore
from ca.verifiers.registry import add_verifier
from repository.readback import held_lists
from repository.slapd import SLAPD, LocalSlapd, mirror_mode_config

from support import pg_cluster
from support.cli import Cli
from support.installation import CeremonyTemplates, Installation
from support.pg_cluster import PgCluster
from support.ra_fixtures import PASSWORD, add_operator, bridge_roots_pem, register_terminals, subscribers
from support.settings import LDAP_BASE, LDAP_ROOT_PASSWORD, make_settings
from support.tools import free_port

pytestmark = pytest.mark.slow
REVOCA = str(Path(sys.executable).with_name("revoca"))
TAKEOVER_S = 30.0
MAX_LAG_MS = 500  # [database_read_max_lag_ms] of the nodes' OCSP responders


@dataclass
class Node:
    """One machine's revoca: its services in one process group, its own data directory and ports."""

    name: str
    env: dict[str, str]
    ocsp_port: int
    log: Path
    ra_port: int = 0
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def pgid(self) -> int:
        return self.procs[0].pid

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        # the first service leads a new process group (in this session: setpgid may not cross sessions)
        with self.log.open("ab") as out:
            proc = subprocess.Popen([REVOCA, "serve", *args], env=self.env, stdout=out, stderr=out,
                                    process_group=self.pgid if self.procs else 0)
        self.procs.append(proc)
        return proc

    def kill(self) -> None:
        """kill -9 of the whole node, as a machine that loses power."""
        if self.procs:
            with _suppress_lookup():
                os.killpg(self.pgid, signal.SIGKILL)
            for proc in self.procs:
                proc.wait(30)


class _suppress_lookup:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, *rest: object) -> bool:
        return kind is ProcessLookupError


def wait_for(what: str, predicate: Callable[[], object], timeout: float = 60.0, every: float = 0.1) -> float:
    """Seconds it took for `predicate` to hold."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"{what} within {timeout:.0f} s"
        time.sleep(every)
    return time.monotonic() - started


@dataclass
class World:
    installation: Installation  # node A's data directory, on the primary
    slapd: LocalSlapd  # provider 1 (its directory is the one both nodes' data directories link to)
    provider2: LocalSlapd  # provider 2, in mirror mode with provider 1
    shared: Path  # the CRL spool and provider 1's directory, which both nodes mount
    primary: PgCluster
    standby: PgCluster

    @property
    def providers(self) -> tuple[LocalSlapd, LocalSlapd]:
        return self.slapd, self.provider2


@pytest.fixture
def world(tmp_path: Path, ceremony_templates: CeremonyTemplates) -> Iterator[World]:
    """A PostgreSQL primary and its streaming standby (clusters of the test's own), the demo
    ceremony copied onto the primary, two slapd providers in mirror mode, a shared CRL spool."""
    if not Path(SLAPD).exists() or not pg_cluster.available():
        pytest.skip(f"needs {SLAPD} and {pg_cluster.BIN}")
    primary, standby = PgCluster(free_port()), PgCluster(free_port())
    shared = tmp_path / "shared"
    slapd = LocalSlapd(shared / "ldap", LDAP_BASE, free_port(), LDAP_ROOT_PASSWORD)
    provider2 = LocalSlapd(tmp_path / "provider2", LDAP_BASE, free_port(), LDAP_ROOT_PASSWORD)
    engine = None
    try:
        primary.initdb()
        primary.start()
        primary.psql("CREATE DATABASE revoca")
        settings = make_settings(tmp_path / "node-a", primary.url("revoca"))
        engine = make_engine(settings.db_url)
        ensure_current(engine)
        result = ceremony_templates.restore("postgresql", settings, engine)
        standby.standby_of(primary)
        standby.start()
        slapd.start()
        mirror(slapd, provider2)
        yield World(Installation(settings, engine, result), slapd, provider2, shared, primary, standby)
    finally:
        provider2.stop()
        slapd.stop()
        if engine is not None:
            engine.dispose()
        standby.stop()
        primary.stop()


def mirror_conf(slapd: LocalSlapd, server_id: int, peer: LocalSlapd) -> Path:
    """revoca's slapd.conf of `slapd` with mirror mode towards `peer` (repository.slapd.mirror_mode_config)."""
    conf = slapd.directory / "mirror.conf"
    conf.write_text(mirror_mode_config(slapd.conf_path.read_text(), server_id=server_id, peers=[peer.uri],
                                       root_dn=slapd.root_dn, root_password=LDAP_ROOT_PASSWORD, base_dn=LDAP_BASE))
    conf.chmod(0o600)
    return conf


def start_provider(slapd: LocalSlapd, conf: Path) -> None:
    subprocess.run([SLAPD, "-f", str(conf), "-h", slapd.uri], check=True, capture_output=True, timeout=60)
    wait_for(f"the provider on {slapd.port}", slapd.answers)


def mirror(provider1: LocalSlapd, provider2: LocalSlapd) -> None:
    """As docs/deployment.md section 8: provider 1 (revoca's slapd, with its base entries) restarted
    in mirror mode, and provider 2 (the same configuration, an empty database) pulling from it."""
    provider1.stop()
    provider2.write_config()
    confs = mirror_conf(provider1, 1, provider2), mirror_conf(provider2, 2, provider1)
    subprocess.run(["slapindex", "-f", str(confs[0]), "-b", LDAP_BASE], check=True, capture_output=True, timeout=60)
    for slapd, conf in zip((provider1, provider2), confs, strict=True):
        start_provider(slapd, conf)
    wait_for("provider 2 holding the base entries", lambda: _values(provider2, LDAP_BASE, "objectClass"), timeout=30)


def _values(slapd: LocalSlapd, dn: str, attr: str) -> list[bytes]:
    """`attr`'s values at `dn` in `slapd`, read with ldapsearch as the rootdn ([] if absent or unreachable)."""
    out = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-o", "nettimeout=5", "-H", slapd.uri,
                          "-D", slapd.root_dn, "-w", LDAP_ROOT_PASSWORD, "-b", dn, "-s", "base", attr],
                         capture_output=True, text=True, timeout=30).stdout
    return [base64.b64decode(v) if sep == "::" else v.encode()
            for sep, v in re.findall(rf"^{re.escape(attr)}(::?) (.*)$", out, re.M)]


def held(world: World, slapd: LocalSlapd) -> dict[tuple[str, str], bytes]:
    """Every CA's CRL and ARL as `slapd` serves it, by (CA, list)."""
    out = {}
    for h in held_lists(world.installation.engine, slapd.endpoint(timeout=5), LDAP_BASE):
        attr = f"{'certificate' if h.list_type is ListType.CRL else 'authority'}RevocationList;binary"
        (value,) = _values(slapd, h.dn, attr)
        out[h.ca_name, h.list_type.value] = value
    return out


def make_node(name: str, world: World, root: Path) -> Node:
    """A node's data directory (node A's is the installation's; B's a copy, with its own token
    store copy: in production both nodes reach the same network HSM), linked to the shared spool
    and the shared slapd's directory (its rootdn password).  Its OCSP responder reads statuses
    from the standby (database_read_url); everything else uses the primary."""
    installation, slapd, shared = world.installation, world.slapd, world.shared
    data = installation.data_dir
    if name != "a":
        data = root / f"node-{name}" / "var"
        shutil.copytree(installation.data_dir, data, symlinks=True)
        write_softhsm_conf(data / "softhsm2.conf")
    for link, target in (("crls", shared / "crls"), ("ldap", shared / "ldap")):
        target.mkdir(parents=True, exist_ok=True)
        if (data / link).is_symlink() or not (data / link).exists():
            (data / link).unlink(missing_ok=True)
        else:
            shutil.rmtree(data / link)
        (data / link).symlink_to(target)
    sockets = Path(tempfile.mkdtemp(prefix=f"rvnode-{name}"))
    env = {**os.environ, **installation.env(), "REVOCA_DATA_DIR": str(data),
           "REVOCA_HSM_SOCKET": str(sockets / "hsm.sock"), "REVOCA_REPOSITORY_PORT": str(slapd.port),
           "REVOCA_REPOSITORY_BASE_DN": LDAP_BASE, "REVOCA_DATABASE_READ_URL": world.standby.url("revoca"),
           "REVOCA_DATABASE_READ_MAX_LAG_MS": str(MAX_LAG_MS), "REVOCA_REPOSITORY_PROVIDERS": world.provider2.uri}
    return Node(name, env, free_port(), root / f"node-{name}.log", ra_port=free_port())


def node_cli(node: Node) -> Cli:
    """`revoca` commands run on `node` (its environment, its HSM service), with the standard cast's logins."""
    cli = Cli(Path(node.env["REVOCA_DATA_DIR"]).parent)
    cli.env = dict(node.env)
    cli.socket = Path(node.env["REVOCA_HSM_SOCKET"])
    return cli


def ra_terminal(installation: Installation, cli: Cli, out: Path) -> Path:
    """Terminal t1 (bound to tokyo) and clerk, and the RA's own TLS certificate (`revoca tls issue`, in
    node A's data directory, which node B's is copied from).  Returns the bridge roots to verify with."""
    cli.ok("tls", "issue")
    out.mkdir()
    keys = cli.officers()
    try:
        register_terminals(installation.engine, keys, ["t1"], out, now=dt.datetime.now(dt.UTC), cas=["tokyo"])
    finally:
        keys.close()
    add_operator(installation.engine, "clerk", Role.RECEPTIONIST)
    (out / "bridge-roots.pem").write_bytes(bridge_roots_pem(installation.engine))
    return out / "bridge-roots.pem"


def ra_session(terminals: Path) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.verify = str(terminals / "bridge-roots.pem")
    s.cert = (str(terminals / "t1.pem"), str(terminals / "t1.key"))
    s.auth = ("clerk", PASSWORD)
    return s


def ra_answers(node: Node, terminals: Path) -> bool:
    try:
        with ra_session(terminals) as s:
            return s.get(f"https://127.0.0.1:{node.ra_port}/openapi.json", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def file_revocation(node: Node, terminals: Path, serial: int) -> float:
    """A revocation filed at `node`'s RA; returns when it was acknowledged (201, with a receipt)."""
    with ra_session(terminals) as s:
        resp = s.post(f"https://127.0.0.1:{node.ra_port}/v1/revocations", timeout=30,
                      json={"issuer_ca": "tokyo", "serial": format(serial, "x"), "reason": "keyCompromise",
                            "applicant": "self", "identity_document_checked": True,
                            "idempotency_key": f"nodes-{serial:x}"})
    assert resp.status_code == 201, resp.text
    return time.monotonic()


def revoked_in(engine: sa.Engine, serial: int) -> bool:
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(Revocation)
                           .where(Revocation.serial == serial)) == 1


def start_signer(node: Node) -> HSMClient:
    """The node's HSM service, activated with two demo shares (DEMO ONLY; in production the key
    managers present theirs at each node)."""
    node.start("hsm")
    client = HSMClient(Path(node.env["REVOCA_HSM_SOCKET"]), timeout=30)
    wait_for(f"node {node.name}'s HSM service", lambda: _answers(client), timeout=60, every=0.2)
    shares = sorted((Path(node.env["REVOCA_DATA_DIR"]) / "demo-shares").glob("share-*.txt"))
    for path in shares[:2]:
        client.activate(ceremony.read_share_file(path))
    assert client.status()["activated"]
    return client


def _answers(client: HSMClient) -> bool:
    try:
        client.status()
    except Exception:
        return False
    return True


def _listening(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def registered_verifier(installation: Installation, root: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name.from_rfc4514_string("CN=chaos-verifier,O=Court,C=JP")
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    add_verifier(installation.engine, name="chaos-verifier", certificate=cert, password=None, now=now,
                 base_dn=LDAP_BASE, actor="test")
    cert_path, key_path = root / "verifier.pem", root / "verifier.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def signed_ocsp_request(installation: Installation, root: Path, verifier: tuple[Path, Path],
                        for_serial: int | None = None) -> tuple[bytes, int]:
    """A signed request (openssl ocsp -signer) for a tokyo subscriber certificate (`for_serial`, or
    the first one), and its serial."""
    with session_scope(installation.engine) as s:
        tokyo = ReadStore(s).ca("tokyo")
        issuer_der = s.scalar(sa.select(Certificate.der).where(Certificate.issuer_ca_id == tokyo.id,
                                                               Certificate.kind == CertKind.SELF_SIGNED))
        serial = s.scalar(sa.select(Certificate.serial).where(Certificate.issuer_ca_id == tokyo.id,
                                                              Certificate.kind != CertKind.SELF_SIGNED,
                                                              Certificate.subject_ca_id.is_(None)).limit(1))
    serial = for_serial if for_serial is not None else serial
    assert issuer_der is not None and serial is not None
    issuer = root / "tokyo.pem"
    issuer.write_bytes(x509.load_der_x509_certificate(issuer_der).public_bytes(serialization.Encoding.PEM))
    out = root / f"request-{serial:x}.der"
    subprocess.run(["openssl", "ocsp", "-issuer", str(issuer), "-serial", f"0x{serial:x}", "-signer",
                    str(verifier[0]), "-signkey", str(verifier[1]), "-reqout", str(out)], check=True,
                   capture_output=True, timeout=30)
    return out.read_bytes(), serial


class OCSPProbe(threading.Thread):
    """Asks one responder the same signed request every 0.1 s and keeps each outcome."""

    def __init__(self, port: int, request: bytes) -> None:
        super().__init__(daemon=True)
        self.url, self.request = f"http://127.0.0.1:{port}/", request
        self.outcomes: list[tuple[float, str]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.outcomes.append((time.monotonic(), self.ask()))
            self.halt.wait(0.1)

    def ask(self) -> str:
        try:
            post = urllib.request.Request(self.url, data=self.request,
                                          headers={"Content-Type": "application/ocsp-request"})
            with urllib.request.urlopen(post, timeout=10) as resp:
                answer = x509_ocsp.load_der_ocsp_response(resp.read())
        except Exception as exc:
            return f"failed: {exc}"
        if answer.response_status is not x509_ocsp.OCSPResponseStatus.SUCCESSFUL:
            return f"status {answer.response_status.name}"
        return answer.certificate_status.name


def issued_rows(installation: Installation, since: dt.datetime) -> list[tuple[str, str, int, dt.datetime]]:
    with session_scope(installation.engine) as s:
        names = {ca.id: ca.name for ca in ReadStore(s).cas()}
        rows = s.execute(sa.select(IssuedCRL.ca_id, IssuedCRL.list_type, IssuedCRL.number, IssuedCRL.this_update)
                         .where(IssuedCRL.this_update >= since)
                         .order_by(IssuedCRL.id)).all()
    return [(names[ca_id], list_type.value, number, this_update) for ca_id, list_type, number, this_update in rows
            if list_type in (ListType.CRL, ListType.ARL)]


def test_killing_the_node_that_holds_the_leases_moves_them_and_nothing_is_lost(tmp_path: Path, world: World) -> None:
    installation, slapd, shared = world.installation, world.slapd, world.shared
    started = time.monotonic()
    verifier = registered_verifier(installation, tmp_path)
    request, probe_serial = signed_ocsp_request(installation, tmp_path, verifier)
    r1, r2, r3 = [ref.serial for ref in subscribers(installation.engine, "tokyo") if ref.serial != probe_serial][:3]
    asks = {serial: signed_ocsp_request(installation, tmp_path, verifier, serial)[0] for serial in (r1, r2, r3)}
    standby = make_engine(world.standby.url("revoca"))
    a = make_node("a", world, tmp_path)
    cli_a = cli_b = None
    b: Node | None = None
    try:
        start_signer(a)
        cli_a = node_cli(a)
        terminals = ra_terminal(installation, cli_a, tmp_path / "terminals").parent
        b = make_node("b", world, tmp_path)  # a copy of A's data directory, RA TLS certificate included
        cli_b = node_cli(b)
        start_signer(b)
        for node in (a, b):  # A's publisher first: it takes the lease, B's stands by
            node.start("publisher")
            wait_for("the publisher lease", lambda: health.lease_holder(installation.engine, "publisher").up)
        for node in (a, b):
            node.start("ocsp", "--host", "127.0.0.1", "--port", str(node.ocsp_port), "--workers", "1")
            node.start("ra", "--host", "127.0.0.1", "--port", str(node.ra_port), "--workers", "1")
        for node in (a, b):
            wait_for(f"node {node.name}'s OCSP responder", lambda n=node: _listening(n.ocsp_port))  # type: ignore[misc]
            wait_for(f"node {node.name}'s RA", lambda n=node: ra_answers(n, terminals))  # type: ignore[misc]
        probe_a, probe_b = OCSPProbe(a.ocsp_port, request), OCSPProbe(b.ocsp_port, request)
        probe_a.start()
        probe_b.start()
        wait_for("answers from both responders", lambda: all(any(o == "GOOD" for _, o in probe.outcomes)
                                                              for probe in (probe_a, probe_b)))

        round_start = dt.datetime.now(dt.UTC).replace(microsecond=0)
        file_revocation(a, terminals, r1)  # acknowledged by A's RA just before A goes
        a.start("scheduler")
        wait_for("the scheduler lease", lambda: health.lease_holder(installation.engine, "scheduler").up)
        b.start("scheduler")  # stands by
        # the middle of A's round: some lists issued, not all
        wait_for("A's first list", lambda: issued_rows(installation, round_start), every=0.02)
        a.kill()
        killed = time.monotonic()
        before_takeover = issued_rows(installation, round_start)
        assert 0 < len(before_takeover) < 8, f"A was not killed in the middle of its round: {before_takeover}"

        # B's scheduler takes over and issues the rest of the round
        wanted = {(ca, t) for ca in ("bridge", "tokyo", "osaka", "hokkaido") for t in ("crl", "arl")}
        took = wait_for("B's scheduler issuing the rest",
                        lambda: {(r[0], r[1]) for r in issued_rows(installation, round_start)} >= wanted,
                        timeout=TAKEOVER_S)
        assert not list((shared / "crls").rglob("*.tmp"))

        # the revocation A acknowledged is in the primary, and B's responder says so
        assert revoked_in(installation.engine, r1)
        wait_for("B's OCSP answering revoked for A's revocation",
                 lambda: OCSPProbe(b.ocsp_port, asks[r1]).ask() == "REVOKED", timeout=10)

        # bounded staleness: a revocation at B's RA shows in B's OCSP at once, read from the
        # standby when it has replayed it, and from the primary while it has not (replay paused)
        acked = file_revocation(b, terminals, r2)
        wait_for("B's OCSP answering revoked", lambda: OCSPProbe(b.ocsp_port, asks[r2]).ask() == "REVOKED",
                 timeout=10, every=0.02)
        shown_replica = time.monotonic() - acked
        lag = world.standby.wait_replayed(world.primary)
        world.standby.psql("SELECT pg_wal_replay_pause()")
        try:
            acked = file_revocation(b, terminals, r3)
            wait_for("B's OCSP answering revoked from the primary",
                     lambda: OCSPProbe(b.ocsp_port, asks[r3]).ask() == "REVOKED", timeout=10, every=0.02)
            shown_primary = time.monotonic() - acked
            assert not revoked_in(standby, r3)  # the standby has not replayed it: the primary answered
        finally:
            world.standby.psql("SELECT pg_wal_replay_resume()")
        assert shown_primary < MAX_LAG_MS / 1000 + 1.0

        # provider 1 dies (kill -9); the next CRL, issued at B, lists all three revocations and
        # B's publisher writes it to provider 2; provider 1, back, catches up by syncrepl
        os.kill(slapd.pid() or 0, signal.SIGKILL)
        cli_b.ok("crl", "issue", "--ca", "tokyo", "--type", "crl")
        rows = issued_rows(installation, round_start)
        for ca, list_type in wanted:
            numbers = [r[2] for r in rows if (r[0], r[1]) == (ca, list_type)]
            assert numbers == sorted(set(numbers)), (ca, list_type, numbers)  # none reused, none backwards
        newest = {(s.ca_name, s.list_type.value): s.number for s in list_statuses(installation.engine)}
        archived = (shared / "crls" / "tokyo" / "crl" / f"{newest['tokyo', 'crl']}.crl").read_bytes()
        listed = subprocess.run(["openssl", "crl", "-inform", "DER", "-noout", "-text"], input=archived,
                                capture_output=True, check=True).stdout.decode().upper()
        for serial in (r1, r2, r3):
            assert re.search(rf"SERIAL NUMBER: 0*{serial:X}\b", listed), f"{serial:x} not in tokyo CRL"
        tokyo_dn = next(h.dn for h in held_lists(installation.engine, world.provider2.endpoint(timeout=5), LDAP_BASE)
                        if (h.ca_name, h.list_type) == ("tokyo", ListType.CRL))
        failed_over = wait_for("B's publisher writing the new CRL to provider 2",
                               lambda: _values(world.provider2, tokyo_dn, "certificateRevocationList;binary")
                               == [archived], timeout=TAKEOVER_S)
        start_provider(slapd, slapd.directory / "mirror.conf")
        wait_for("provider 1 catching up", lambda: held(world, slapd) == held(world, world.provider2), timeout=30)
        lists = held(world, world.provider2)
        assert len(lists) == 8 and lists == held(world, slapd)  # every CA's CRL and ARL, byte for byte
        for (ca, list_type), der in lists.items():  # the newest archived number, as openssl reads it
            shown = subprocess.run(["openssl", "crl", "-inform", "DER", "-noout", "-crlnumber"], input=der,
                                   capture_output=True, check=True).stdout.decode()
            number = int(re.search(r"crlNumber=(?:0x)?([0-9A-Fa-f]+)", shown)[1], 16)  # type: ignore[index]
            assert number == newest[ca, list_type], (ca, list_type, number)

        # OCSP from B answered throughout, before and after the kill
        probe_a.halt.set()
        probe_b.halt.set()
        probe_b.join(15)
        after = [o for at, o in probe_b.outcomes if at > killed]
        failures = [o for _, o in probe_b.outcomes if o != "GOOD"]
        assert after and not failures, failures
        assert any(o.startswith("failed") for at, o in probe_a.outcomes if at > killed + 1)  # A is really gone
        # B's responder read from the standby (its connections are there), which follows the primary
        readers = world.standby.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'revoca'")
        assert int(readers) >= 1
        assert world.standby.psql("SELECT pg_is_in_recovery()") == "t"
        # and its status lookups ran there (index scans of certificates counted by the standby itself)
        scans = world.standby.psql("SELECT coalesce(sum(idx_scan), 0) FROM pg_stat_user_tables "
                                   "WHERE relname = 'certificates'", database="revoca")
        assert int(scans) > 0
        caught_up = world.standby.wait_replayed(world.primary)
        print(f"\nnodes: A killed after {len(before_takeover)} of 8 lists, 1 revocation acknowledged by A's RA "
              f"just before; B issued the rest {took:.1f} s after the kill; {len(probe_b.outcomes)} OCSP answers "
              f"from B, {len(failures)} failed, {scans} certificate lookups on the standby; a revocation at B's RA "
              f"showed in B's OCSP after "
              f"{shown_replica * 1000:.0f} ms (standby replayed it within {lag * 1000:.0f} ms), with the standby's "
              f"replay paused after {shown_primary * 1000:.0f} ms (from the primary); standby caught up "
              f"{caught_up * 1000:.0f} ms after the last write; with provider 1 killed, B's publisher wrote the "
              f"next CRL to provider 2 in {failed_over:.1f} s; whole test {time.monotonic() - started:.0f} s")
    finally:
        a.kill()
        if b is not None:
            b.kill()
        for cli in (cli_a, cli_b):
            if cli is not None:
                cli.close()
        standby.dispose()
