"""The RA API as it runs: `revoca serve ra` (gunicorn, HTTPS with client certificates) beside
`revoca serve hsm`, driven with `requests` over TLS.  Each site is a copy of the worker's demo
ceremony (what `revoca init --demo` makes; tests/integration/ca/test_cli.py tests that command)
with the clerk added through the Python API; the shared site registers its terminal with `revoca
ra add`, whose output a test below checks.

- a terminal files a revocation and gets a receipt; without its client certificate it gets 401;
- durability: the whole server is killed with SIGKILL while requests are in flight; every
  acknowledged revocation is in the database, and resubmitting with the same idempotency keys
  revokes nothing twice;
- 50 terminals in parallel, on SQLite and PostgreSQL: no lost or duplicated revocation;
- the dual-control and compromise commands of the CLI.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from ca.enums import CertKind, KeyStatus, Role
from ca.storage.engine import session_scope
from ca.storage.models import RevocationRequest
from ca.storage.revocations import RevocationStore

from support.cli import REVOCA, Cli, activate_in_process, demo_cli, start_hsm, stop_hsm
from support.installation import CeremonyTemplates
from support.ra_fixtures import (
    PASSWORD,
    CertRef,
    add_operator,
    bridge_roots_pem,
    certificates,
    new_subscriber,
    receipt_fields,
    register_terminals,
    revocations,
    signed_request,
    subscribers,
    verify_receipt,
)
from support.tools import free_port

SERVER_START_TIMEOUT = 60


@dataclasses.dataclass
class Site:
    """One installation: HSM service (activated), terminal t1, clerk, and the RA server."""

    cli: Cli
    hsm: subprocess.Popen[bytes]
    terminals: Path  # NAME.key, NAME.pem and bridge-roots.pem, as `revoca ra add --out` writes them
    port: int = 0
    workers: int = 2
    server: subprocess.Popen[bytes] | None = None

    @property
    def roots(self) -> str:
        return str(self.terminals / "bridge-roots.pem")

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def cert(self, name: str = "t1") -> tuple[str, str]:
        return str(self.terminals / f"{name}.pem"), str(self.terminals / f"{name}.key")

    @property
    def log(self) -> Path:
        return self.cli.root / "ra-server.log"

    def start(self) -> None:
        """`revoca serve ra`, returned once a worker answers."""
        self.launch()
        self.wait_until_up()

    def launch(self) -> None:
        """`revoca serve ra` in a session of its own (so the master and its workers die together),
        not waited for: its start-up (~0.5 s of CPU) runs beside what the caller does meanwhile."""
        self.port = self.port or free_port()
        with self.log.open("ab") as log:
            self.server = subprocess.Popen(
                [REVOCA, "serve", "ra", "--host", "127.0.0.1", "--port", str(self.port), "--workers",
                 str(self.workers)], cwd=self.cli.root, env=self.cli.env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)

    def wait_until_up(self) -> None:
        assert self.server is not None, "launch() first"
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            try:
                if requests.get(self.url("/openapi.json"), verify=self.roots, timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.server.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError("revoca serve ra did not come up:\n" + self.log.read_text(errors="replace"))
            time.sleep(0.02)  # a connection refused costs nothing: go on as soon as a worker answers

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (gunicorn master and workers) and wait until it is gone."""
        if self.server is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.server.pid, sig)
        try:
            self.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait(timeout=30)
        deadline = time.monotonic() + 30  # orphaned workers too
        while _group_alive(self.server.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.server = None

    def session(self, terminal: str | None = "t1", clerk: str = "clerk") -> requests.Session:
        s = requests.Session()
        s.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment replaces `verify`
        s.verify = self.roots
        if terminal:
            s.cert = self.cert(terminal)
        s.auth = (clerk, PASSWORD)
        return s


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs.  A zombie does not count: it holds no port, file or
    connection any more, and an orphaned worker's zombie waits for init to reap it (seconds where
    init reaps slowly), which os.killpg(pgid, 0) would count as alive."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # gone meanwhile
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # state, ppid, pgrp
            return True
    return False


@contextlib.contextmanager
def site(templates: CeremonyTemplates, kind: str, root: Path, *, workers: int = 2,
         terminal_by_cli: bool = False, prepare: Callable[[Site], None] | None = None) -> Iterator[Site]:
    """A demo installation on a database of `kind`, its HSM service (`revoca serve hsm`) activated,
    terminal t1 (`revoca ra add` with `terminal_by_cli`, else the Python API), clerk, the RA server.

    The server needs only its TLS certificate to start: the terminal, the clerk and `prepare`'s
    rows (read by the server per request) are made while it starts, and it is waited for after."""
    with demo_cli(templates, kind, root) as cli:
        hsm = start_hsm(cli)
        s: Site | None = None
        try:
            activate_in_process(cli, 1, 2)
            cli.ok("tls", "issue")  # the RA's own certificate: key managers, not the RA (ca.hsm.sessions)
            out = root / "terminals"
            s = Site(cli, hsm, out, workers=workers)
            s.launch()
            _add_terminal_t1(cli, out, by_cli=terminal_by_cli)
            add_operator(cli.engine, "clerk", Role.RECEPTIONIST)
            if prepare is not None:
                prepare(s)
            s.wait_until_up()
            yield s
        finally:
            if s is not None:
                s.kill()  # SIGKILL: a graceful stop would cost its workers' exits, and no test here is about it
            stop_hsm(hsm)


def _add_terminal_t1(cli: Cli, out: Path, *, by_cli: bool) -> None:
    """t1.key, t1.pem and bridge-roots.pem in `out`, as `revoca ra add t1 --out OUT` writes them."""
    if by_cli:
        cli.ok("ra", "add", "t1", "--ca", "tokyo", "--ca", "osaka", "--ca", "hokkaido", "--out", str(out))
        return
    out.mkdir(parents=True)
    keys = cli.officers()  # certificates: in two key managers' ceremony session
    try:
        register_terminals(cli.engine, keys, ["t1"], out, now=dt.datetime.now(dt.UTC))
    finally:
        keys.close()
    (out / "bridge-roots.pem").write_bytes(bridge_roots_pem(cli.engine))


@pytest.fixture(scope="module")
def sqlite_site(tmp_path_factory: pytest.TempPathFactory, ceremony_templates: CeremonyTemplates) -> Iterator[Site]:
    with site(ceremony_templates, "sqlite", tmp_path_factory.mktemp("ra-site"), terminal_by_cli=True) as s:
        yield s


def window(ref: CertRef, key: str | None = None, reason: str = "keyCompromise") -> dict[str, Any]:
    return {"issuer_ca": ref.issuer, "serial": ref.hex_serial, "reason": reason, "applicant": "self",
            "identity_document_checked": True, "idempotency_key": key or f"key-{uuid.uuid4()}"}


# --- over TLS ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_terminal_files_over_tls_and_gets_a_receipt_the_bridge_root_verifies(sqlite_site: Site) -> None:
    engine = sqlite_site.cli.engine
    ref = subscribers(engine, "tokyo")[0]
    with sqlite_site.session() as s:
        resp = s.post(sqlite_site.url("/v1/revocations"), json=window(ref, "tls-0001"), timeout=30)
        assert resp.status_code == 201, resp.text
        answer = resp.json()
        assert verify_receipt(answer["receipt"], Path(sqlite_site.roots).read_bytes()) == receipt_fields(answer)
        assert revocations(engine)[ref.id].reason == 1
        status = s.get(sqlite_site.url(f"/v1/revocations/{answer['request_id']}"), timeout=30)
        assert status.status_code == 200 and status.json() == answer
        again = s.post(sqlite_site.url("/v1/revocations"), json=window(ref, "tls-0001"), timeout=30)
        assert again.status_code == 200 and again.json()["request_id"] == answer["request_id"]


def test_without_a_client_certificate_the_answer_is_401(sqlite_site: Site) -> None:
    ref = subscribers(sqlite_site.cli.engine, "tokyo")[1]
    with sqlite_site.session(terminal=None) as s:
        resp = s.post(sqlite_site.url("/v1/revocations"), json=window(ref), timeout=30)
        assert resp.status_code == 401, resp.text
        assert "client certificate" in resp.json()["error"]
        assert s.get(sqlite_site.url("/v1/revocations"), timeout=30).status_code == 401
    assert ref.id not in revocations(sqlite_site.cli.engine)


def test_a_client_certificate_from_outside_the_bridge_fails_the_tls_handshake(sqlite_site: Site,
                                                                              tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name.from_rfc4514_string("CN=t1,OU=RA terminals,O=JPKI,C=JP")  # same name, other issuer
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    (tmp_path / "fake.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "fake.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    ref = subscribers(sqlite_site.cli.engine, "tokyo")[2]
    with pytest.raises(requests.exceptions.SSLError) as err, requests.Session() as s:
        s.post(sqlite_site.url("/v1/revocations"), json=window(ref), auth=("clerk", PASSWORD), timeout=30,
               verify=sqlite_site.roots, cert=(str(tmp_path / "fake.pem"), str(tmp_path / "fake.key")))
    assert "unknown ca" in str(err.value).lower()  # the server's alert: it does not trust that issuer
    assert ref.id not in revocations(sqlite_site.cli.engine)


def test_the_subscriber_revokes_online_over_tls_without_any_client_certificate(sqlite_site: Site) -> None:
    engine = sqlite_site.cli.engine
    keys = sqlite_site.cli.officers()  # a certificate: in two key managers' ceremony session
    try:
        ref, key = new_subscriber(engine, keys, "tokyo", now=dt.datetime.now(dt.UTC))
    finally:
        keys.close()
    resp = requests.post(sqlite_site.url("/v1/online-revocations"), verify=sqlite_site.roots, timeout=30,
                         data=signed_request(ref.der, key, {"reason": "cessationOfOperation"}),
                         headers={"Content-Type": "application/pkcs7-mime"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["channel"] == "online"
    assert revocations(engine)[ref.id].reason == 5


# --- durability ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Sent:
    ref: CertRef
    key: str
    status: int | None = None
    answer: dict[str, Any] | None = None
    error: str | None = None


def _send(site_: Site, sent: Sent, session: requests.Session) -> Sent:
    try:
        resp = session.post(site_.url("/v1/revocations"), json=window(sent.ref, sent.key), timeout=60)
    except requests.RequestException as exc:
        sent.error = type(exc).__name__
        return sent
    sent.status = resp.status_code
    with contextlib.suppress(ValueError):
        sent.answer = resp.json()
    return sent


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_sigkill_while_requests_are_in_flight_loses_no_acknowledged_revocation(
        kind: str, tmp_path: Path, ceremony_templates: CeremonyTemplates) -> None:
    with site(ceremony_templates, kind, tmp_path) as s:
        engine = s.cli.engine
        batch = [Sent(ref, f"durable-{i:04d}") for i, ref in enumerate(subscribers(engine, "osaka")[:20])]
        answered = threading.Semaphore(0)
        start = threading.Barrier(len(batch) + 1)

        def one(sent: Sent) -> Sent:
            with s.session() as session:
                start.wait()
                _send(s, sent, session)
                if sent.status is not None:
                    answered.release()
                return sent

        with ThreadPoolExecutor(len(batch)) as pool:
            futures = [pool.submit(one, sent) for sent in batch]
            start.wait()
            for _ in range(4):  # some answers are out, others are being handled or still queued
                assert answered.acquire(timeout=60), "no answers from the RA server:\n" + s.log.read_text()
            s.kill(signal.SIGKILL)
            done = [f.result(timeout=90) for f in futures]
        acknowledged = [d for d in done if d.status is not None and 200 <= d.status < 300]
        lost_in_flight = [d for d in done if d.status is None]
        assert len(acknowledged) >= 4, [(d.status, d.error) for d in done]
        assert lost_in_flight, "the kill came after every request was answered; nothing was in flight"
        assert not [d for d in done if d.status is not None and d.status >= 300], [
            (d.status, d.answer) for d in done]
        # every acknowledged revocation is in the database, with the request the receipt names
        revoked = revocations(engine)
        with session_scope(engine) as session:
            store = RevocationStore(session)
            for d in acknowledged:
                assert d.answer is not None
                assert d.ref.id in revoked, f"acknowledged revocation of {d.ref.hex_serial} lost"
                assert store.request(d.answer["request_id"]).certificate_id == d.ref.id
        # restart and resubmit everything with the same idempotency keys
        s.start()
        with ThreadPoolExecutor(8) as pool:
            retried = list(pool.map(lambda d: _send(s, Sent(d.ref, d.key), s.session()), done))
        assert [r.status for r in retried if r.status not in (200, 201)] == [], [
            (r.status, r.answer, r.error) for r in retried if r.status not in (200, 201)]
        for first, again in zip(done, retried, strict=True):
            assert again.answer is not None
            if first.status is not None:
                assert again.status == 200 and again.answer["request_id"] == first.answer["request_id"]  # type: ignore[index]
            assert again.answer["revocation_time"] is not None, (first, again)
        revoked = revocations(engine)  # raises if any certificate has two revocation rows
        assert {d.ref.id for d in done} <= set(revoked)
        with session_scope(engine) as session:
            per_key = session.execute(sa.select(RevocationRequest.idempotency_key, sa.func.count())
                                      .where(RevocationRequest.idempotency_key.like("durable-%"))
                                      .group_by(RevocationRequest.idempotency_key)).all()
        assert sorted(k for k, _ in per_key) == sorted(d.key for d in done)
        assert {n for _, n in per_key} == {1}
        committed_unanswered = sum(1 for f, a in zip(done, retried, strict=True)
                                   if f.status is None and a.status == 200)
        print(f"\nSIGKILL: {len(acknowledged)} answered, {len(lost_in_flight)} unanswered "
              f"({committed_unanswered} of those were committed before the kill), retry statuses "
              f"{sorted(r.status or 0 for r in retried)}")


# --- 50 terminals in parallel -----------------------------------------------------------------------------


TERMINALS = 50
SHARED = 10


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_fifty_terminals_in_parallel_revoke_each_certificate_exactly_once(
        kind: str, tmp_path: Path, ceremony_templates: CeremonyTemplates) -> None:
    names = [f"term{i:02d}" for i in range(TERMINALS)]

    def terminals_and_clerks(s: Site) -> None:  # while the server starts
        keys = s.cli.officers()  # certificates: in two key managers' ceremony session
        try:  # registered in one transaction through the Python API: 50 `revoca ra add` would take minutes
            register_terminals(s.cli.engine, keys, names, s.terminals, now=dt.datetime.now(dt.UTC))
        finally:
            keys.close()
        for i in range(5):
            add_operator(s.cli.engine, f"clerk{i}", Role.RECEPTIONIST)

    with site(ceremony_templates, kind, tmp_path, workers=4, prepare=terminals_and_clerks) as s:
        engine = s.cli.engine
        pool_refs = [r for ca in ("tokyo", "osaka", "hokkaido") for r in subscribers(engine, ca)]
        distinct, shared = pool_refs[:TERMINALS], pool_refs[TERMINALS:TERMINALS + SHARED]
        plan = {name: [distinct[i], shared[i % SHARED]] if i % 2 else [shared[i % SHARED], distinct[i]]
                for i, name in enumerate(names)}
        start = threading.Barrier(TERMINALS)

        def terminal(name: str) -> list[tuple[str, Sent]]:
            with s.session(name, clerk=f"clerk{int(name[4:]) % 5}") as session:
                session.get(s.url("/openapi.json"), timeout=60)  # TLS set up before the race starts
                start.wait(timeout=120)
                return [(name, _send(s, Sent(ref, f"{name}-{j}"), session)) for j, ref in enumerate(plan[name])]

        t0 = time.monotonic()
        with ThreadPoolExecutor(TERMINALS) as pool:
            results = [item for items in pool.map(terminal, names) for item in items]
        elapsed = time.monotonic() - t0
        bad = [(n, r.status, r.error, r.answer) for n, r in results if r.status != 201]
        assert not bad, bad
        # every request is recorded once, every certificate revoked exactly once
        with session_scope(engine) as session:
            stored = session.execute(sa.select(RevocationRequest.public_id, RevocationRequest.certificate_id,
                                               RevocationRequest.id)
                                     .where(RevocationRequest.terminal_id.is_not(None))).all()
        assert len(stored) == len(results) == 2 * TERMINALS
        assert {p for p, _, _ in stored} == {r.answer["request_id"] for _, r in results}  # type: ignore[index]
        revoked = revocations(engine)  # raises on a duplicate row
        wanted = {r.id for r in distinct + shared}
        assert set(revoked) == wanted
        request_cert = {rid: cid for _, cid, rid in stored}
        for cert_id in wanted:
            assert request_cert[revoked[cert_id].request_id] == cert_id
        # for a shared certificate all five answers carry the one revocation; only its own request says so
        for ref in shared:
            answers = [r.answer for _, r in results if r.ref.id == ref.id]
            assert len(answers) == TERMINALS // SHARED
            assert len({a["revocation_time"] for a in answers}) == 1  # type: ignore[index]
            assert sum("already_revoked_by" not in a for a in answers) == 1, answers  # type: ignore[operator]
        roots = Path(s.roots).read_bytes()
        for _, r in results[:: len(results) // 5]:
            assert verify_receipt(r.answer["receipt"], roots) == receipt_fields(r.answer)  # type: ignore[index]
        print(f"\n{len(results)} requests from {TERMINALS} terminals in {elapsed:.1f} s on {engine.dialect.name}")


# --- the CLI around the RA ----------------------------------------------------------------------------------


def _ops(cli: Cli, *people: tuple[str, Role]) -> None:
    for name, role in people:
        add_operator(cli.engine, name, role)


@pytest.mark.slow
def test_dual_control_from_the_command_line(sqlite_site: Site) -> None:
    cli = sqlite_site.cli
    _ops(cli, ("rec-cli", Role.RECEPTIONIST), ("rev-cli", Role.REVIEWER), ("app-cli", Role.APPROVER))
    [cross] = certificates(cli.engine, "osaka", CertKind.CROSS, subject_ca="bridge")
    filed = cli.json("revocation", "file", "--ca", "osaka", cross.hex_serial, "--reason", "superseded",
                     "--operator", "rec-cli", stdin=PASSWORD + "\n")
    public_id = filed["request_id"]
    assert filed["status"] == "pending-review"
    pending = cli.json("revocation", "pending")
    assert [(p["request_id"], p["kind"], p["reason"]) for p in pending if p["request_id"] == public_id] == [
        (public_id, "cross", "superseded")]
    # a subscriber certificate is not for dual control, a wrong password is refused, as is the filer reviewing
    cli.fails("revocation", "file", "--ca", "tokyo", subscribers(cli.engine, "tokyo")[3].hex_serial, "--reason", "4",
              "--operator", "rec-cli", code=5, match="RA window", stdin=PASSWORD + "\n")
    cli.fails("revocation", "review", public_id, "--operator", "rev-cli", code=8, match="wrong password",
              stdin="not the password\n")
    cli.fails("revocation", "review", public_id, "--operator", "rec-cli", code=8,
              match=r"needs 1 different person \(reviewer\); logged in: rec-cli \(receptionist\)",
              stdin=PASSWORD + "\n")
    assert "pending-approval" in cli.ok("revocation", "review", public_id, "--operator", "rev-cli",
                                        stdin=PASSWORD + "\n")
    assert cross.id not in revocations(cli.engine)
    assert "completed" in cli.ok("revocation", "approve", public_id, "--operator", "app-cli", stdin=PASSWORD + "\n")
    assert revocations(cli.engine)[cross.id].reason == 4
    assert public_id not in {p["request_id"] for p in cli.json("revocation", "pending")}
    cli.fails("revocation", "file", "--ca", "osaka", cross.hex_serial, "--reason", "certificateHold",
              "--operator", "rec-cli", code=5, match="no suspension", stdin=PASSWORD + "\n")


def test_ca_compromise_from_the_command_line(sqlite_site: Site) -> None:
    cli = sqlite_site.cli  # two senior operators of support.officers log in
    cli.fails("ca", "compromise", "hokkaido", login=cli.cast.login("cast-senior1"), code=8,
              match=r"needs 2 different people \(2 × senior-operator\); 1 logged in")
    with session_scope(cli.engine) as session:
        store = RevocationStore(session)
        key_id = store.current_key(store.ca("hokkaido")).id
    proc = cli.run("ca", "compromise", "hokkaido")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "certificate(s) revoked with reason cACompromise" in proc.stdout
    with session_scope(cli.engine) as session:
        store = RevocationStore(session)
        assert [k.status for k in store.ca("hokkaido").keys] == [KeyStatus.COMPROMISED]
        signed = {c.id for c in store.certificates() if key_id in (c.issuer_key_id, c.subject_key_id)}
    revoked = revocations(cli.engine)
    assert signed <= set(revoked) and all(revoked[c].reason == 2 for c in signed)
    cli.fails("ca", "compromise", "hokkaido", code=5, match="no active key")


def test_ra_add_writes_key_certificate_and_roots_and_refuses_a_second_time(sqlite_site: Site) -> None:
    from cryptography import x509

    cli = sqlite_site.cli
    key, pem = sqlite_site.terminals / "t1.key", sqlite_site.terminals / "t1.pem"
    assert key.stat().st_mode & 0o077 == 0, "the terminal's key is readable by others"
    cert = x509.load_pem_x509_certificate(pem.read_bytes())
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.ExtendedKeyUsageOID.CLIENT_AUTH]
    listed = {t["name"]: t for t in cli.json("ra", "list")}
    assert listed["t1"]["disabled"] is False
    assert listed["t1"]["cas"] == ["hokkaido", "osaka", "tokyo"]
    cli.fails("ra", "add", "t1", "--ca", "tokyo", "--out", str(cli.root / "elsewhere"), code=5,
              match="already registered")
    # a disabled terminal is refused by the running server at once
    cli.ok("ra", "add", "t-gone", "--ca", "tokyo", "--municipality", "Chiyoda", "--out", str(sqlite_site.terminals))
    listed = {t["name"]: t for t in cli.json("ra", "list")}
    assert (listed["t-gone"]["cas"], listed["t-gone"]["municipality"]) == (["tokyo"], "Chiyoda")
    ref = subscribers(cli.engine, "tokyo")[4]
    cli.ok("ra", "disable", "t-gone")
    with sqlite_site.session("t-gone") as s:
        resp = s.post(sqlite_site.url("/v1/revocations"), json=window(ref), timeout=30)
    assert resp.status_code == 403 and "disabled" in resp.json()["error"]
    assert ref.id not in revocations(cli.engine)
