"""Two revoca nodes on a PostgreSQL primary and standby and two LDAP providers, and the one
holding the leases is killed (issue 15): docs/deployment.md section 8, run as written.

The section's blocks build the layout on one machine through the docs test's runner
(support.docs_tools), in order: the primary and its streaming standby (initdb, pg_basebackup -R,
hot_standby), the two slapd providers in mirror mode (`revoca repository mirror-config`), each
node's settings file and services (HSM service with a copy of the token, publisher, OCSP
responder under granian reading from the standby, RA over HTTPS, scheduler) on loopback ports,
and the operator's checks after the failure (`revoca status`, `openssl crl`, `ldapsearch`).  The
guide's `/srv/...` paths and ports become the test's own.  The test's own steps are the guide's
hooks: the demo ceremony copied onto the primary, the RA terminal, node B's data directory (a
copy of A's), the OCSP probes and the revocation at A, the kill in the middle of A's round, and
the checks.

Node A starts first and takes the scheduler and publisher leases; node B stands by.  A
revocation is acknowledged by A's RA, and in the middle of A's first round every process of node
A is killed (`kill -9`).  Then, checked with independent reads (SQL, ldapsearch + openssl, the
OCSP answers parsed by cryptography):

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
import contextlib
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
from repository.entries import ca_entry_dn
from repository.readback import held_lists
from repository.slapd import SLAPD, LocalSlapd

from support import pg_cluster
from support.docs_tools import Session
from support.installation import CeremonyTemplates
from support.officers import KEY_MANAGERS
from support.pg_cluster import PgCluster
from support.ra_fixtures import PASSWORD, add_operator, bridge_roots_pem, register_terminals, subscribers
from support.settings import LDAP_BASE, TOKEN_LABEL, make_settings
from support.tools import free_port

pytestmark = pytest.mark.slow
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"
SECTION = "8."  # "Several nodes, tested"
TAKEOVER_S = 30.0
MAX_LAG_MS = 500  # database_read_max_lag_ms in the guide's node-a.toml and node-b.toml
# the guide's ports: the primary, the standby, provider 1 and 2, A's and B's OCSP and RA
PRIMARY, STANDBY, PROVIDER1, PROVIDER2, OCSP_A, OCSP_B, RA_A, RA_B = 5432, 5433, 1389, 1390, 8880, 8881, 8443, 8444


def wait_for(what: str, predicate: Callable[[], object], timeout: float = 60.0, every: float = 0.1) -> float:
    """Seconds it took for `predicate` to hold."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"{what} within {timeout:.0f} s"
        time.sleep(every)
    return time.monotonic() - started


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


@dataclass
class Drill:
    """What the guide's blocks built (paths and ports as substituted), and what the hooks measured."""

    root: Path
    session: Session
    templates: CeremonyTemplates
    primary: PgCluster
    standby: PgCluster
    node_a: Path  # node A's data directory (/srv/node-a); provider 1's directory is its ldap/
    node_b: Path
    provider2_dir: Path  # /srv/provider-2
    engine: sa.Engine | None = None  # the primary
    terminals: Path | None = None
    asks: dict[int, bytes] = field(default_factory=dict)  # serial -> a signed OCSP request for it
    probes: tuple[OCSPProbe, ...] = ()
    round_start: dt.datetime | None = None
    killed: float = 0.0
    took: float = 0.0
    published: float = 0.0
    before_takeover: list[tuple[str, str, int, dt.datetime]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def port(self, guide_port: int) -> int:
        return self.session.ports[guide_port]

    @property
    def db(self) -> sa.Engine:
        assert self.engine is not None, "the installation hook has not run"
        return self.engine

    @property
    def providers(self) -> tuple[LocalSlapd, LocalSlapd]:
        """Provider 1 (node A's slapd) and provider 2, with the rootdn password they share."""
        return (LocalSlapd(self.node_a / "ldap", LDAP_BASE, self.port(PROVIDER1)),
                LocalSlapd(self.provider2_dir / "ldap", LDAP_BASE, self.port(PROVIDER2)))

    def lease_held(self, job: str) -> Callable[[], bool]:
        return lambda: self.engine is not None and health.lease_holder(self.engine, job).up

    def revoca(self, command: str) -> str:
        """A `revoca` command line run as the guide's blocks are (in process, prompts answered)."""
        code, out = self.session.run_command(command)
        assert code == 0, f"{command} -> {code}\n{out}"
        return out


@pytest.fixture
def drill(tmp_path: Path, ceremony_templates: CeremonyTemplates) -> Iterator[Drill]:
    """A session of the docs runner for section 8: the guide's ports and paths made the test's own,
    its hooks, and when its services count as up where a port or a line does not tell."""
    if not Path(SLAPD).exists() or not pg_cluster.available():
        pytest.skip(f"needs {SLAPD} and {pg_cluster.BIN}")
    primary, standby = PgCluster(free_port()), PgCluster(free_port())  # directories the postgres user may enter
    sockets = {name: Path(tempfile.mkdtemp(prefix=f"rvnode-{name}")) for name in ("a", "b")}  # 108-byte limit
    ports = {p: free_port() for p in (PROVIDER1, PROVIDER2, OCSP_A, OCSP_B, RA_A, RA_B)}
    ports.update({PRIMARY: primary.port, STANDBY: standby.port})
    paths = {"/srv/pg/primary": str(primary.data), "/srv/pg/standby": str(standby.data),
             "/srv/node-a": str(tmp_path / "node-a" / "var"), "/srv/node-b": str(tmp_path / "node-b" / "var"),
             "/srv/provider-2": str(tmp_path / "provider-2"), "/srv/shared": str(tmp_path / "shared"),
             "/run/revoca-a": str(sockets["a"]), "/run/revoca-b": str(sockets["b"])}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REVOCA_", "SOFTHSM2_"))}
    # what the guide's settings files leave to the installation the test copies (its demo token)
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", PYTHONUNBUFFERED="1",
               REVOCA_HSM_TOKEN_LABEL=TOKEN_LABEL, REVOCA_HSM_KEY_ALGORITHM="p256", REVOCA_CA_NEW_KEYS="true",
               # the publishers' idle rounds and a standby's asks for the lease every 0.2 s, not 2 s: the
               # takeover and the failover below wait on the publisher's poll, not on anything they check
               REVOCA_REPOSITORY_PUBLISHER_POLL_SECONDS="0.2")
    hooks: dict[str, Callable[[Session], None]] = {}
    ready: dict[str, str | Callable[[], bool]] = {}
    session = Session(tmp_path, env, ports=ports, paths=paths, passwords={}, hooks=hooks, ready=ready)
    d = Drill(tmp_path, session, ceremony_templates, primary, standby, Path(paths["/srv/node-a"]),
              Path(paths["/srv/node-b"]), Path(paths["/srv/provider-2"]))
    hooks.update({"installation": lambda _: installation(d), "ra-terminal": lambda _: ra_terminal(d),
                  "node-b": lambda _: node_b(d), "probes": lambda _: probes(d),
                  "kill-node-a": lambda _: kill_node_a(d), "checks": lambda _: checks(d)})
    # node A's publisher and scheduler are up once they hold their leases (then node B's start and
    # stand by); B's scheduler counts as started at once: A's round goes on meanwhile
    ready.update({"node-a.toml serve publisher": d.lease_held("publisher"),
                  "node-a.toml serve scheduler": d.lease_held("scheduler"),
                  "node-b.toml serve scheduler": lambda: True})
    try:
        yield d
    finally:
        for probe in d.probes:
            probe.halt.set()
        for provider in d.providers:  # told first: a slapd takes a second or so to go, meanwhile the services stop
            if (pid := provider.pid()) is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        session.stop()
        if d.engine is not None:
            d.engine.dispose()
        standby.stop()
        primary.stop()
        for path in sockets.values():
            shutil.rmtree(path, ignore_errors=True)


# --- the guide's hooks -------------------------------------------------------------------------


def installation(d: Drill) -> None:
    """The demo ceremony copied onto the primary (node A's data directory, the database), a senior
    operator `dave` for the guide's `crl show`, and the key managers' passwords and shares."""
    settings = make_settings(d.node_a.parent, d.primary.url("revoca"))
    assert settings.data_dir == d.node_a
    d.engine = make_engine(settings.db_url)
    ensure_current(d.engine)
    d.templates.restore("postgresql", settings, d.engine)
    add_operator(d.engine, "dave", Role.SENIOR_OPERATOR)
    shares = d.node_a / "demo-shares"
    d.session.passwords.update({"dave": PASSWORD, **{
        name: (shares / f"{name}.password").read_text(encoding="utf-8").splitlines()[-1] for name in KEY_MANAGERS}})
    d.session.shares.update({path.name: ceremony.read_share_file(path) for path in sorted(shares.glob("share-*.txt"))})


def ra_terminal(d: Drill) -> None:
    """Terminal t1 (bound to tokyo) and clerk, as ra-integration.md registers them (in node A's
    database, which node B shares), and the bridge roots to verify the RA's certificate with."""
    d.terminals = d.root / "terminals"
    d.terminals.mkdir()
    keys = HSMClient(Path(d.session.paths["/run/revoca-a"]) / "hsm.sock", timeout=30,
                     key_managers=[(name, d.session.passwords[name]) for name in KEY_MANAGERS[:2]])
    try:
        register_terminals(d.db, keys, ["t1"], d.terminals, now=dt.datetime.now(dt.UTC), cas=["tokyo"])
    finally:
        keys.close()
    add_operator(d.db, "clerk", Role.RECEPTIONIST)
    (d.terminals / "bridge-roots.pem").write_bytes(bridge_roots_pem(d.db))


def node_b(d: Drill) -> None:
    """Node B's data directory: a copy of A's (the RA's TLS certificate and the token store, which
    stands for the network HSM both reach; `crls/` the same link to the shared spool) with its
    own SoftHSM2 configuration, and `ldap/` a link to A's (provider 1 and its password)."""
    shutil.copytree(d.node_a, d.node_b, symlinks=True, ignore=lambda where, names: (
        ["ldap"] if Path(where) == d.node_a else []))
    (d.node_b / "ldap").symlink_to(d.node_a / "ldap")
    write_softhsm_conf(d.node_b / "softhsm2.conf")


def probes(d: Drill) -> None:
    """A registered verifier's signed request sent to both responders every 0.1 s from now on, and
    a revocation filed at A's RA and acknowledged (the guide's <acknowledged-serial>)."""
    verifier = registered_verifier(d.db, d.root)
    request, probe_serial = signed_ocsp_request(d.db, d.root, verifier)
    r1, r2, r3 = [ref.serial for ref in subscribers(d.db, "tokyo") if ref.serial != probe_serial][:3]
    d.asks = {serial: signed_ocsp_request(d.db, d.root, verifier, serial)[0] for serial in (r1, r2, r3)}
    for port in (RA_A, RA_B):
        wait_for(f"the RA on {d.port(port)}", lambda p=port: ra_answers(d, d.port(p)))  # type: ignore[misc]
    d.probes = OCSPProbe(d.port(OCSP_A), request), OCSPProbe(d.port(OCSP_B), request)
    for probe in d.probes:
        probe.start()
    wait_for("answers from both responders", lambda: all(any(o == "GOOD" for _, o in probe.outcomes)
                                                          for probe in d.probes))
    d.round_start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    file_revocation(d, d.port(RA_A), r1)  # acknowledged by A's RA just before A goes
    hex_serial = format(r1, "X")
    d.session.values["acknowledged-serial"] = hex_serial.zfill(len(hex_serial) + len(hex_serial) % 2)  # as openssl


def kill_node_a(d: Drill) -> None:
    """After A's first list (before its eighth), kill -9 of every service of node A, as a machine
    that loses power; then B's scheduler must issue the rest within TAKEOVER_S."""
    assert d.round_start is not None
    wait_for("A's first list", lambda: issued_rows(d.db, d.round_start), every=0.02)  # type: ignore[arg-type]
    node_a = [s.proc for s in d.session.services if "node-a.toml" in s.command]
    assert len(node_a) == 5, [s.command for s in d.session.services]  # hsm, publisher, ocsp, ra, scheduler
    for proc in node_a:  # each service leads a process group of its own (granian's workers are in it)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    d.killed = time.monotonic()
    for proc in node_a:
        proc.wait(30)
    d.before_takeover = issued_rows(d.db, d.round_start)
    assert 0 < len(d.before_takeover) < 8, f"A was not killed in the middle of its round: {d.before_takeover}"
    d.took = wait_for("B's scheduler issuing the rest",
                      lambda: {(r[0], r[1]) for r in issued_rows(d.db, d.round_start)} >= WANTED,  # type: ignore
                      timeout=TAKEOVER_S)
    # nothing half-written left once B's round is over (a delta it is writing has its spool meanwhile)
    (b_scheduler,) = [s for s in d.session.services if "node-b.toml serve scheduler" in s.command]
    wait_for("B's round done", lambda: "round done:" in b_scheduler.log.read_text(errors="replace"),
             timeout=TAKEOVER_S)
    assert not list((d.root / "shared" / "crls").rglob("*.tmp"))
    # B's publisher takes its lease over and puts the newest tokyo CRL into provider 1, provider 2
    # replicating it: what the guide's next blocks check asking once a second, asked here more often
    newest = {(s.ca_name, s.list_type.value): s.number for s in list_statuses(d.db)}
    archived = (d.root / "shared" / "crls" / "tokyo" / "crl" / f"{newest['tokyo', 'crl']}.crl").read_bytes()
    with session_scope(d.db) as s:
        tokyo_dn = ca_entry_dn(ReadStore(s).ca("tokyo"), LDAP_BASE)
    wait_for("B's publisher putting the newest tokyo CRL into both providers", lambda: all(
        _values(provider, tokyo_dn, "certificateRevocationList;binary") == [archived] for provider in d.providers),
        timeout=TAKEOVER_S)
    d.published = time.monotonic() - d.killed


WANTED = {(ca, t) for ca in ("bridge", "tokyo", "osaka", "hokkaido") for t in ("crl", "arl")}


def checks(d: Drill) -> None:
    """What the guide's operator checks leave to the test: the OCSP answers, bounded staleness,
    CRL numbers, the publisher failing over, all 8 lists in both providers, the standby's reads."""
    assert d.round_start is not None
    provider1, provider2 = d.providers
    probe_a, probe_b = d.probes
    r1, r2, r3 = d.asks
    standby = make_engine(d.standby.url("revoca"))
    try:
        # the revocation A acknowledged is in the primary, and B's responder says so
        assert revoked_in(d.db, r1)
        wait_for("B's OCSP answering revoked for A's revocation",
                 lambda: OCSPProbe(d.port(OCSP_B), d.asks[r1]).ask() == "REVOKED", timeout=10)

        # bounded staleness: a revocation at B's RA shows in B's OCSP at once, read from the
        # standby when it has replayed it, and from the primary while it has not (replay paused)
        acked = file_revocation(d, d.port(RA_B), r2)
        wait_for("B's OCSP answering revoked", lambda: OCSPProbe(d.port(OCSP_B), d.asks[r2]).ask() == "REVOKED",
                 timeout=10, every=0.02)
        shown_replica = time.monotonic() - acked
        lag = d.standby.wait_replayed(d.primary)
        d.standby.psql("SELECT pg_wal_replay_pause()")
        try:
            acked = file_revocation(d, d.port(RA_B), r3)
            wait_for("B's OCSP answering revoked from the primary",
                     lambda: OCSPProbe(d.port(OCSP_B), d.asks[r3]).ask() == "REVOKED", timeout=10, every=0.02)
            shown_primary = time.monotonic() - acked
            assert not revoked_in(standby, r3)  # the standby has not replayed it: the primary answered
        finally:
            d.standby.psql("SELECT pg_wal_replay_resume()")
        assert shown_primary < MAX_LAG_MS / 1000 + 1.0

        # provider 1 dies (kill -9); the next CRL, issued at B, lists all three revocations and
        # B's publisher writes it to provider 2; provider 1, back, catches up by syncrepl
        provider1_pid = provider1.pid()
        assert provider1_pid is not None  # (os.kill(0, ...) would signal this test's own process group)
        os.kill(provider1_pid, signal.SIGKILL)
        d.revoca("revoca --config node-b.toml crl issue --ca tokyo --type crl --operator dave")
        rows = issued_rows(d.db, d.round_start)
        for ca, list_type in WANTED:
            numbers = [r[2] for r in rows if (r[0], r[1]) == (ca, list_type)]
            assert numbers == sorted(set(numbers)), (ca, list_type, numbers)  # none reused, none backwards
        newest = {(s.ca_name, s.list_type.value): s.number for s in list_statuses(d.db)}
        archived = (d.root / "shared" / "crls" / "tokyo" / "crl" / f"{newest['tokyo', 'crl']}.crl").read_bytes()
        listed = subprocess.run(["openssl", "crl", "-inform", "DER", "-noout", "-text"], input=archived,
                                capture_output=True, check=True).stdout.decode().upper()
        for serial in (r1, r2, r3):
            assert re.search(rf"SERIAL NUMBER: 0*{serial:X}\b", listed), f"{serial:x} not in tokyo CRL"
        tokyo_dn = next(h.dn for h in held_lists(d.db, provider2.endpoint(timeout=5), LDAP_BASE)
                        if (h.ca_name, h.list_type) == ("tokyo", ListType.CRL))
        failed_over = wait_for("B's publisher writing the new CRL to provider 2",
                               lambda: _values(provider2, tokyo_dn, "certificateRevocationList;binary")
                               == [archived], timeout=TAKEOVER_S)
        subprocess.run([SLAPD, "-f", str(provider1.directory / "mirror.conf"), "-h", provider1.uri], check=True,
                       capture_output=True, timeout=60)
        wait_for("provider 1 answering again", provider1.answers)
        wait_for("provider 1 catching up", lambda: held(d, provider1) == held(d, provider2), timeout=30)
        lists = held(d, provider2)
        assert len(lists) == 8 and lists == held(d, provider1)  # every CA's CRL and ARL, byte for byte
        for (ca, list_type), der in lists.items():  # the newest archived number, as openssl reads it
            shown = subprocess.run(["openssl", "crl", "-inform", "DER", "-noout", "-crlnumber"], input=der,
                                   capture_output=True, check=True).stdout.decode()
            number = int(re.search(r"crlNumber=(?:0x)?([0-9A-Fa-f]+)", shown)[1], 16)  # type: ignore[index]
            assert number == newest[ca, list_type], (ca, list_type, number)

        # OCSP from B answered throughout, before and after the kill
        probe_a.halt.set()
        probe_b.halt.set()
        probe_b.join(15)
        after = [o for at, o in probe_b.outcomes if at > d.killed]
        failures = [o for _, o in probe_b.outcomes if o != "GOOD"]
        assert after and not failures, failures
        assert any(o.startswith("failed") for at, o in probe_a.outcomes if at > d.killed + 1)  # A is really gone
        # B's responder read from the standby (its connections are there), which follows the primary
        readers = d.standby.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'revoca'")
        assert int(readers) >= 1
        assert d.standby.psql("SELECT pg_is_in_recovery()") == "t"
        # and its status lookups ran there (index scans of certificates counted by the standby itself)
        scans = d.standby.psql("SELECT coalesce(sum(idx_scan), 0) FROM pg_stat_user_tables "
                               "WHERE relname = 'certificates'", database="revoca")
        assert int(scans) > 0
        caught_up = d.standby.wait_replayed(d.primary)
        print(f"\nnodes: A killed after {len(d.before_takeover)} of 8 lists, 1 revocation acknowledged by A's RA "
              f"just before; B issued the rest {d.took:.1f} s after the kill, its publisher had tokyo's in both "
              f"providers {d.published:.1f} s after it; {len(probe_b.outcomes)} OCSP answers "
              f"from B, {len(failures)} failed, {scans} certificate lookups on the standby; a revocation at B's RA "
              f"showed in B's OCSP after {shown_replica * 1000:.0f} ms (standby replayed it within "
              f"{lag * 1000:.0f} ms), with the standby's replay paused after {shown_primary * 1000:.0f} ms (from the "
              f"primary); standby caught up {caught_up * 1000:.0f} ms after the last write; with provider 1 killed, "
              f"B's publisher wrote the next CRL to provider 2 in {failed_over:.1f} s; whole test "
              f"{time.monotonic() - d.started:.0f} s")
    finally:
        standby.dispose()


# --- reads and requests of the test's own --------------------------------------------------------


def _values(slapd: LocalSlapd, dn: str, attr: str) -> list[bytes]:
    """`attr`'s values at `dn` in `slapd`, read with ldapsearch as the rootdn ([] if absent or unreachable)."""
    out = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-o", "nettimeout=5", "-H", slapd.uri,
                          "-D", slapd.root_dn, "-y", str(slapd.password_path), "-b", dn, "-s", "base", attr],
                         capture_output=True, text=True, timeout=30).stdout
    return [base64.b64decode(v) if sep == "::" else v.encode()
            for sep, v in re.findall(rf"^{re.escape(attr)}(::?) (.*)$", out, re.M)]


def held(d: Drill, slapd: LocalSlapd) -> dict[tuple[str, str], bytes]:
    """Every CA's CRL and ARL as `slapd` serves it, by (CA, list)."""
    out = {}
    for h in held_lists(d.db, slapd.endpoint(timeout=5), LDAP_BASE):
        attr = f"{'certificate' if h.list_type is ListType.CRL else 'authority'}RevocationList;binary"
        (value,) = _values(slapd, h.dn, attr)
        out[h.ca_name, h.list_type.value] = value
    return out


def ra_session(d: Drill) -> requests.Session:
    assert d.terminals is not None
    s = requests.Session()
    s.trust_env = False
    s.verify = str(d.terminals / "bridge-roots.pem")
    s.cert = (str(d.terminals / "t1.pem"), str(d.terminals / "t1.key"))
    s.auth = ("clerk", PASSWORD)
    return s


def ra_answers(d: Drill, port: int) -> bool:
    try:
        with ra_session(d) as s:
            return s.get(f"https://127.0.0.1:{port}/openapi.json", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def file_revocation(d: Drill, port: int, serial: int) -> float:
    """A revocation filed at the RA on `port`; returns when it was acknowledged (201, with a receipt)."""
    with ra_session(d) as s:
        resp = s.post(f"https://127.0.0.1:{port}/v1/revocations", timeout=30,
                      json={"issuer_ca": "tokyo", "serial": format(serial, "x"), "reason": "keyCompromise",
                            "applicant": "self", "identity_document_checked": True,
                            "idempotency_key": f"nodes-{serial:x}"})
    assert resp.status_code == 201, resp.text
    return time.monotonic()


def revoked_in(engine: sa.Engine, serial: int) -> bool:
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(Revocation)
                           .where(Revocation.serial == serial)) == 1


def registered_verifier(engine: sa.Engine, root: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name.from_rfc4514_string("CN=chaos-verifier,O=Court,C=JP")
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    add_verifier(engine, name="chaos-verifier", certificate=cert, password=None, now=now, base_dn=LDAP_BASE,
                 actor="test")
    cert_path, key_path = root / "verifier.pem", root / "verifier.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def signed_ocsp_request(engine: sa.Engine, root: Path, verifier: tuple[Path, Path],
                        for_serial: int | None = None) -> tuple[bytes, int]:
    """A signed request (openssl ocsp -signer) for a tokyo subscriber certificate (`for_serial`, or
    the first one), and its serial."""
    with session_scope(engine) as s:
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


def issued_rows(engine: sa.Engine, since: dt.datetime) -> list[tuple[str, str, int, dt.datetime]]:
    with session_scope(engine) as s:
        names = {ca.id: ca.name for ca in ReadStore(s).cas()}
        rows = s.execute(sa.select(IssuedCRL.ca_id, IssuedCRL.list_type, IssuedCRL.number, IssuedCRL.this_update)
                         .where(IssuedCRL.this_update >= since)
                         .order_by(IssuedCRL.id)).all()
    return [(names[ca_id], list_type.value, number, this_update) for ca_id, list_type, number, this_update in rows
            if list_type in (ListType.CRL, ListType.ARL)]


def test_killing_the_node_that_holds_the_leases_moves_them_and_nothing_is_lost(drill: Drill) -> None:
    """docs/deployment.md section 8, every block in order; the checks are its hooks."""
    drill.session.run_guide(GUIDE, section=SECTION)
    assert drill.took and drill.probes[1].outcomes, "the guide's kill-node-a and checks hooks did not run"
