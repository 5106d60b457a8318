"""Two revoca nodes on one PostgreSQL, and the one holding the leases is killed (issue 15).

The layout of docs/deployment.md section 8, on one machine: two nodes, each a process group
of its own (HSM service with a copy of the token, scheduler, publisher, OCSP responder under
granian) with its own data directory and ports; one PostgreSQL (the local one) and one slapd;
the CRL spool (crls/) on storage both nodes mount (here one directory, linked into both data
directories), because a list one node's scheduler signs is published by whichever node's
publisher holds the lease.

Node A starts first and takes the scheduler and publisher leases; node B stands by.  In the
middle of A's first round (some lists issued, others not) the whole of node A is killed
(`kill -9` of its process group).  Then, checked with independent reads (SQL, ldapsearch +
openssl, the OCSP answers parsed by cryptography):

- B's scheduler takes over within 30 s and issues every list A had not: each CA's CRL and ARL
  exist, no number is used twice or goes backwards, nothing is left signed and unarchived;
- B's publisher takes over: slapd holds each list's newest archived number, byte for byte;
- B's OCSP responder answers a registered verifier's signed request throughout, before and
  after the kill (every answer successful and signed).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
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
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp as x509_ocsp

from ca import ceremony, health
from ca.enums import CertKind, ListType
from ca.hsm.client import HSMClient
from ca.hsm.token import write_softhsm_conf
from ca.scheduler import list_statuses
from ca.storage.engine import ensure_current, make_engine, session_scope
from ca.storage.models import Certificate, IssuedCRL
from ca.storage.store import ReadStore
from ca.verifiers.registry import add_verifier
from repository.readback import held_lists
from repository.slapd import SLAPD, LocalSlapd

from support import pg_cluster
from support.installation import CeremonyTemplates, Installation
from support.pg_cluster import PgCluster
from support.settings import LDAP_BASE, LDAP_ROOT_PASSWORD, make_settings
from support.tools import free_port

pytestmark = pytest.mark.slow
REVOCA = str(Path(sys.executable).with_name("revoca"))
TAKEOVER_S = 30.0


@dataclass
class Node:
    """One machine's revoca: its services in one process group, its own data directory and ports."""

    name: str
    env: dict[str, str]
    ocsp_port: int
    log: Path
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
    slapd: LocalSlapd  # the provider
    consumer: Path  # a syncrepl consumer's directory (slapd.conf, pid file)
    consumer_port: int
    shared: Path  # the CRL spool and slapd's directory, which both nodes mount
    primary: PgCluster
    standby: PgCluster


@pytest.fixture
def world(tmp_path: Path, ceremony_templates: CeremonyTemplates) -> Iterator[World]:
    """A PostgreSQL primary and its streaming standby (clusters of the test's own), the demo
    ceremony copied onto the primary, the slapd both nodes publish to, a shared CRL spool."""
    if not Path(SLAPD).exists() or not pg_cluster.available():
        pytest.skip(f"needs {SLAPD} and {pg_cluster.BIN}")
    primary, standby = PgCluster(free_port()), PgCluster(free_port())
    shared = tmp_path / "shared"
    slapd = LocalSlapd(shared / "ldap", LDAP_BASE, free_port(), LDAP_ROOT_PASSWORD)
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
        consumer, consumer_port = replicate(slapd, tmp_path / "replica")
        yield World(Installation(settings, engine, result), slapd, consumer, consumer_port, shared, primary, standby)
    finally:
        if (tmp_path / "replica" / "slapd.pid").exists():
            with _suppress_lookup():
                os.kill(int((tmp_path / "replica" / "slapd.pid").read_text()), signal.SIGTERM)
        slapd.stop()
        if engine is not None:
            engine.dispose()
        standby.stop()
        primary.stop()


REPLICATOR = f"cn=replicator,{LDAP_BASE}"
REPLICATOR_SECRET = "replicator-secret"
CONSUMER_ROOT = f"cn=replica-admin,{LDAP_BASE}"
CONSUMER_SECRET = "replica-admin-secret"


def replicate(slapd: LocalSlapd, directory: Path) -> tuple[Path, int]:
    """As docs/deployment.md section 2: the provider restarted from a copy of revoca's slapd.conf
    with syncprov, and a consumer (refreshAndPersist) with the provider's access rules."""
    conf = slapd.conf_path.read_text()
    conf = conf.replace("moduleload argon2\n", "moduleload argon2\nmoduleload syncprov\n")
    conf = conf.replace("access to attrs=certificateRevocationList",
                        f'access to * by dn.exact="{REPLICATOR}" read by * break\n'
                        "access to attrs=certificateRevocationList", 1)
    conf += "\nindex entryCSN,entryUUID eq\noverlay syncprov\nsyncprov-checkpoint 100 10\n"
    provider = slapd.directory / "provider.conf"
    provider.write_text(conf)
    slapd.stop()
    subprocess.run(["slapindex", "-f", str(provider), "-b", LDAP_BASE], check=True, capture_output=True, timeout=60)
    subprocess.run([SLAPD, "-f", str(provider), "-h", slapd.uri], check=True, capture_output=True, timeout=60)
    wait_for("the provider", slapd.answers)
    slapd.tool("ldapadd", input=(f"dn: {REPLICATOR}\nobjectClass: applicationProcess\nobjectClass: "
                                 f"simpleSecurityObject\ncn: replicator\nuserPassword: "
                                 f"{slapd._hash_password(REPLICATOR_SECRET)}\n").encode())  # noqa: SLF001
    includes = "\n".join(line for line in conf.splitlines() if line.startswith("include "))
    rules = conf[conf.index("access to attrs=certificateRevocationList"):conf.index("\nindex entryCSN")]
    (directory / "db").mkdir(parents=True)
    port = free_port()
    (directory / "slapd.conf").write_text(f"""{includes}
pidfile {directory / "slapd.pid"}
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload argon2
sizelimit unlimited
sockbuf_max_incoming_auth 134217728

database mdb
suffix "{LDAP_BASE}"
rootdn "{CONSUMER_ROOT}"
rootpw {slapd._hash_password(CONSUMER_SECRET)}
directory {directory / "db"}
maxsize 1073741824
limits * size=unlimited time=unlimited
index objectClass eq
index cn,member eq
index entryCSN,entryUUID eq
syncrepl rid=001
  provider={slapd.uri}
  bindmethod=simple
  binddn="{REPLICATOR}"
  credentials="{REPLICATOR_SECRET}"
  searchbase="{LDAP_BASE}"
  type=refreshAndPersist
  retry="1 +"
updateref {slapd.uri}

{rules}
""")  # noqa: SLF001
    subprocess.run([SLAPD, "-f", str(directory / "slapd.conf"), "-h", f"ldap://127.0.0.1:{port}/"], check=True,
                   capture_output=True, timeout=60)
    return directory, port


def consumer_value(world: World, dn: str, attr: str) -> bytes | None:
    """What the consumer serves, read as its root DN (ldapsearch)."""
    out = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H",
                          f"ldap://127.0.0.1:{world.consumer_port}/", "-D", CONSUMER_ROOT, "-w", CONSUMER_SECRET,
                          "-b", dn, "-s", "base", attr],
                         capture_output=True, text=True, timeout=30).stdout
    found = re.findall(rf"^{re.escape(attr)}:: (\S+)$", out, re.M)
    return base64.b64decode(found[0]) if found else None


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
           "REVOCA_REPOSITORY_BASE_DN": LDAP_BASE, "REVOCA_DATABASE_READ_URL": world.standby.url("revoca")}
    return Node(name, env, free_port(), root / f"node-{name}.log")


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


def signed_ocsp_request(installation: Installation, root: Path, verifier: tuple[Path, Path]) -> tuple[bytes, int]:
    """A signed request (openssl ocsp -signer) for a tokyo subscriber certificate, and its serial."""
    with session_scope(installation.engine) as s:
        tokyo = ReadStore(s).ca("tokyo")
        issuer_der = s.scalar(sa.select(Certificate.der).where(Certificate.issuer_ca_id == tokyo.id,
                                                               Certificate.kind == CertKind.SELF_SIGNED))
        serial = s.scalar(sa.select(Certificate.serial).where(Certificate.issuer_ca_id == tokyo.id,
                                                              Certificate.kind != CertKind.SELF_SIGNED,
                                                              Certificate.subject_ca_id.is_(None)).limit(1))
    assert issuer_der is not None and serial is not None
    issuer = root / "tokyo.pem"
    issuer.write_bytes(x509.load_der_x509_certificate(issuer_der).public_bytes(serialization.Encoding.PEM))
    out = root / "request.der"
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
    request, _serial = signed_ocsp_request(installation, tmp_path, verifier)
    a = make_node("a", world, tmp_path)
    b = make_node("b", world, tmp_path)
    try:
        start_signer(a)
        start_signer(b)
        for node in (a, b):  # A's publisher first: it takes the lease, B's stands by
            node.start("publisher")
            wait_for("the publisher lease", lambda: health.lease_holder(installation.engine, "publisher").up)
        for node in (a, b):
            node.start("ocsp", "--host", "127.0.0.1", "--port", str(node.ocsp_port), "--workers", "1")
        for node in (a, b):
            wait_for(f"node {node.name}'s OCSP responder", lambda n=node: _listening(n.ocsp_port))  # type: ignore[misc]
        probe_a, probe_b = OCSPProbe(a.ocsp_port, request), OCSPProbe(b.ocsp_port, request)
        probe_a.start()
        probe_b.start()
        wait_for("answers from both responders", lambda: all(any(o == "GOOD" for _, o in probe.outcomes)
                                                              for probe in (probe_a, probe_b)))

        round_start = dt.datetime.now(dt.UTC).replace(microsecond=0)
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
        rows = issued_rows(installation, round_start)
        for ca, list_type in wanted:
            numbers = [r[2] for r in rows if (r[0], r[1]) == (ca, list_type)]
            assert numbers == sorted(set(numbers)), (ca, list_type, numbers)  # none reused, none backwards
        assert not list((shared / "crls").rglob("*.tmp"))

        # B's publisher takes over: slapd holds each list's newest archived number, byte for byte
        newest = {(s.ca_name, s.list_type.value): s.number for s in list_statuses(installation.engine)}

        def published() -> bool:
            held = held_lists(installation.engine, slapd.endpoint(timeout=5), LDAP_BASE)
            return all(newest[(h.ca_name, h.list_type.value)] == h.number for h in held)

        wait_for("B's publisher publishing the newest lists", published, timeout=TAKEOVER_S)
        tokyo = next(h for h in held_lists(installation.engine, slapd.endpoint(timeout=5), LDAP_BASE)
                     if (h.ca_name, h.list_type) == ("tokyo", ListType.CRL))
        served = _ldap_value(slapd, tokyo.dn, "certificateRevocationList;binary")
        archived = next((shared / "crls" / "tokyo" / "crl").glob(f"{newest['tokyo', 'crl']}.crl")).read_bytes()
        assert hashlib.sha256(served).digest() == hashlib.sha256(archived).digest()
        # the syncrepl consumer holds the same bytes, for every CA's CRL and ARL
        for h in held_lists(installation.engine, slapd.endpoint(timeout=5), LDAP_BASE):
            attr = f"{'certificate' if h.list_type is ListType.CRL else 'authority'}RevocationList;binary"
            provided = _ldap_value(slapd, h.dn, attr)
            wait_for(f"the consumer's {h.ca_name} {h.list_type.value}",
                     lambda dn=h.dn, a=attr, p=provided: consumer_value(world, dn, a) == p, timeout=15)  # type: ignore[misc]
        shown = subprocess.run(["openssl", "crl", "-inform", "DER", "-noout", "-crlnumber"], input=served,
                               capture_output=True, check=True).stdout.decode()
        assert int(re.search(r"crlNumber=(?:0x)?([0-9A-Fa-f]+)", shown)[1], 16) == newest["tokyo", "crl"]  # type: ignore[index]

        # OCSP from B answered throughout, before and after the kill
        time.sleep(1.0)
        probe_a.halt.set()
        probe_b.halt.set()
        probe_b.join(15)
        after = [o for at, o in probe_b.outcomes if at > killed]
        assert after and all(o == "GOOD" for _, o in probe_b.outcomes), probe_b.outcomes
        assert any(o.startswith("failed") for at, o in probe_a.outcomes if at > killed + 1)  # A is really gone
        # B's responder read from the standby (its connections are there), which follows the primary
        readers = world.standby.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'revoca'")
        assert int(readers) >= 1
        assert world.standby.psql("SELECT pg_is_in_recovery()") == "t"
        lag = world.standby.wait_replayed(world.primary)
        print(f"\nnodes: A killed after {len(before_takeover)} of 8 lists; B issued the rest {took:.1f} s after "
              f"the kill; {len(probe_b.outcomes)} OCSP answers from B, all good; standby caught up {lag * 1000:.0f} ms "
              f"after the round; whole test "
              f"{time.monotonic() - started:.0f} s")
    finally:
        a.kill()
        b.kill()


def _ldap_value(slapd: LocalSlapd, dn: str, attr: str) -> bytes:
    out = slapd.tool("ldapsearch", "-LLL", "-o", "ldif-wrap=no", "-b", dn, "-s", "base", attr).stdout.decode()
    (value,) = re.findall(rf"^{re.escape(attr)}:: (\S+)$", out, re.M)
    return base64.b64decode(value)
