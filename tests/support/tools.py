"""Second opinions for tests (OpenSSL's path validation, pkilint's RFC 5280 lints), and the CLI in-process.

Certificates are built with cryptography, so checking them with cryptography would only
repeat its own view; `openssl verify` (a separate X.509 implementation) and pkilint (pyasn1
decoding plus RFC 5280 rules) are independent of it.  Failures raise AssertionError carrying
the tool's own words.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import io
import json
import logging
import os
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp as x509_ocsp
from pkilint.bin import lint_ocsp_response, lint_pkix_cert, lint_pkix_signer_signee_cert_chain

from ca.ceremony import demo_key_managers
from ca.cli import main
from ca.config import Settings
from ca.hsm import token_for
from ca.hsm.client import HSMClient
from ca.hsm.service import HSMService, bind
from ocsp.issuers import public_key_bits

from support.officers import Cast, Login

CertLike = x509.Certificate | bytes  # a certificate object, or its DER or PEM bytes

SEVERITIES = ("DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "FATAL")
FAILING = frozenset({"ERROR", "FATAL"})


def pem(cert: CertLike) -> bytes:
    if isinstance(cert, x509.Certificate):
        return cert.public_bytes(Encoding.PEM)
    if cert.lstrip().startswith(b"-----BEGIN"):
        return cert
    return x509.load_der_x509_certificate(cert).public_bytes(Encoding.PEM)


def der(cert: CertLike) -> bytes:
    if isinstance(cert, x509.Certificate):
        return cert.public_bytes(Encoding.DER)
    if cert.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(cert).public_bytes(Encoding.DER)
    return cert


# --- openssl ------------------------------------------------------------------------------


def openssl_verify(
    cert: CertLike,
    *,
    trusted: Sequence[CertLike],
    untrusted: Sequence[CertLike] = (),
    at: datetime | None = None,
    purpose: str | None = None,
) -> None:
    """`openssl verify -x509_strict` with only `trusted` as anchors (no system store).

    Passes if OpenSSL builds and validates a path; otherwise AssertionError with its output.
    `at` is the validation time (-attime), so tests with a fixed clock stay deterministic.
    """
    if not trusted:
        raise ValueError("openssl_verify needs at least one trusted certificate")
    with tempfile.TemporaryDirectory(prefix="revoca-verify-") as tmp:
        d = Path(tmp)
        (d / "trusted.pem").write_bytes(b"".join(pem(c) for c in trusted))
        (d / "leaf.pem").write_bytes(pem(cert))
        args = ["openssl", "verify", "-x509_strict", "-no-CApath", "-no-CAstore",
                "-CAfile", str(d / "trusted.pem")]  # fmt: skip
        if untrusted:
            (d / "untrusted.pem").write_bytes(b"".join(pem(c) for c in untrusted))
            args += ["-untrusted", str(d / "untrusted.pem")]
        if at is not None:
            args += ["-attime", str(int(at.timestamp()))]
        if purpose is not None:
            args += ["-purpose", purpose]
        args.append(str(d / "leaf.pem"))
        run = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    if run.returncode != 0 or not run.stdout.rstrip().endswith(": OK"):
        raise AssertionError(f"openssl verify failed ({run.returncode}):\n{run.stdout}{run.stderr}")


# --- pkilint ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    severity: str
    code: str
    message: str | None
    node_path: str
    validator: str

    def __str__(self) -> str:
        detail = f": {self.message}" if self.message else ""
        return f"{self.severity} {self.code} @ {self.node_path} ({self.validator}){detail}"


def _run_pkilint(main: object, files: Sequence[bytes]) -> list[Finding]:
    """Run a pkilint command-line entry point in-process (saves ~0.5 s of start-up per call)."""
    with tempfile.TemporaryDirectory(prefix="revoca-pkilint-") as tmp:
        paths = []
        for i, data in enumerate(files):
            path = Path(tmp) / f"{i}.der"
            path.write_bytes(data)
            paths.append(str(path))
        out, err = io.StringIO(), io.StringIO()
        # argparse.FileType leaves the inputs open; they close when main() returns.
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            main(["lint", "-f", "JSON", "-s", "INFO", "--document-format", "DER", *paths])  # type: ignore[operator]
    try:
        report = json.loads(out.getvalue())
    except json.JSONDecodeError as exc:
        raise AssertionError(f"pkilint gave no JSON report:\n{out.getvalue()}{err.getvalue()}") from exc
    return [
        Finding(f["severity"], f["code"], f.get("message"), result["node_path"], result["validator"])
        for result in report["results"]
        for f in result["finding_descriptions"]
    ]


def pkilint_cert(cert: CertLike) -> list[Finding]:
    """Findings of `lint_pkix_cert` (RFC 5280 rules for one certificate), INFO and above."""
    return _run_pkilint(lint_pkix_cert.main, [der(cert)])


def pkilint_chain(issuer: CertLike, subject: CertLike) -> list[Finding]:
    """Findings of `lint_pkix_signer_signee_cert_chain`: names, key ids, policies, signature."""
    return _run_pkilint(lint_pkix_signer_signee_cert_chain.main, [der(issuer), der(subject)])


def pkilint_ocsp_response(path: Path, severity: str = "WARNING") -> tuple[int, str, str]:
    """`lint_ocsp_response lint -s SEVERITY --document-format DER PATH` in this process (its console
    script costs ~0.5 s of start-up): its exit code, standard output (the report) and error."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # argparse.FileType leaves the input open
        code = lint_ocsp_response.main(["lint", "-s", severity, "--document-format", "DER", str(path)])
    return code, out.getvalue(), err.getvalue()


def assert_pkilint_clean(findings: Sequence[Finding], *, allowed_warnings: Collection[str] = ()) -> None:
    """No ERROR or FATAL, and no WARNING other than the codes a test has accepted by name."""
    bad = [f for f in findings if f.severity in FAILING]
    bad += [f for f in findings if f.severity == "WARNING" and f.code not in allowed_warnings]
    if bad:
        raise AssertionError("pkilint findings:\n" + "\n".join(map(str, bad)))


_PORTS_BELOW_EPHEMERAL = (20_000, 32_000)  # under Linux's ip_local_port_range (32768-60999)
def _other_users_blocked() -> str | None:
    """Why revoca's code cannot be run here as another user (None: it can): not root, or a directory
    on the way to this checkout or its interpreter that other users may not pass through (a clone
    under `mktemp -d`, mode 0700), so such a user cannot even import `ca`."""
    if os.geteuid() != 0:
        return "needs root to act as another user (setpriv)"
    for path in (Path(__file__).resolve().parents[2], Path(sys.executable).absolute()):
        for directory in reversed(path.parents):
            if not directory.stat().st_mode & 0o001:
                return (f"other users cannot pass through {directory} (mode {directory.stat().st_mode & 0o777:o}), "
                        f"on the way to {path}: clone where they can to run the tests that act as them")
    return None


OTHER_USERS_BLOCKED = _other_users_blocked()
#: for a test that runs revoca's code as another user (setpriv): skipped, with the reason, where it cannot
as_other_users = pytest.mark.skipif(OTHER_USERS_BLOCKED is not None, reason=OTHER_USERS_BLOCKED or "")


# argon2id at a low cost (t=1, 8 MiB, one lane) for the LDAP passwords of test accounts: the
# product's (t=3, 64 MiB, 4 lanes, ca.verifiers.registry) costs 0.1-0.4 s per hash and as much again
# in slapd at every bind.  The hash carries its parameters, so slapd's argon2 module checks it the
# same way and what is stored is still `{ARGON2}$argon2id$...`.
CHEAP_ARGON2 = functools.partial(PasswordHasher, time_cost=1, memory_cost=8192, parallelism=1)

_next_port: list[int] = []


def damage_last_byte(path: Path) -> None:
    """Change a file's last byte (its bits flipped): always a change, where writing 0 over it left
    a file that already ended in 0 as it was (1 run in 256: a test of damage then failed)."""
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now, and that nothing else will take.

    Not the kernel's pick (bind to 0): that is an ephemeral port, which any outgoing connection of
    another test (to PostgreSQL, slapd, a service) may be given before our service binds it ("Address
    already in use" seen under load in tests/e2e/test_nodes.py).  Below the ephemeral range, each
    pytest-xdist worker walks a slice of its own, so two workers never hand out the same port."""
    if not _next_port:
        low, high = _PORTS_BELOW_EPHEMERAL
        worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
        index = int(worker[2:]) if worker[2:].isdigit() else 0
        span = (high - low) // 8
        start = low + (index % 8) * span
        _next_port.extend([start, start + span, start + (os.getpid() % span)])
    start, stop, at = _next_port
    for _ in range(stop - start):
        port, at = at, start + (at + 1 - start) % (stop - start)
        _next_port[2] = at
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port below the ephemeral range")


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    """Until a server started as `proc` accepts connections on `port`; its log in the error if it
    exits first or takes longer than `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args!r} exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"{proc.args!r} did not listen on {port} within {timeout} s:\n{log.read_text()}")


# --- the CLI in this process ------------------------------------------------------------------


def revoca(env: dict[str, str], *args: str, stdin: str | None = None,
           login: Cast | Login | None = None) -> tuple[int, str, str]:
    """`revoca ARGS` in this process through the console script's own `main`: (exit code, stdout, stderr).
    `login`: the officers who log in (support.officers), or a cast to pick them from by the command."""
    if login is not None:
        args, stdin = (login.for_command(args) if isinstance(login, Cast) else login).into(args, stdin)
    with CliRunner().isolation(input=stdin, env=env) as (out, err, _):
        argv, sys.argv = sys.argv, ["revoca", *args]
        mask = os.umask(0o022)  # main() sets revoca's own (027) for the process: this one keeps the caller's
        os.umask(mask)
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.argv = argv
            os.umask(mask)
        return code, out.getvalue().decode(), err.getvalue().decode()


def revoca_run(env: dict[str, str], *args: str, stdin: str = "", cwd: Path | None = None
               ) -> subprocess.CompletedProcess[str]:
    """`revoca ARGS` in this process as a new process would run it, for the many tests whose subject
    is what a command does, not its process (one costs ~0.5 s of start-up): with exactly `env` (what
    this process has beyond it is unset meanwhile, SOFTHSM2_CONF too, which opening a token sets), in
    `cwd`, and the command's database connections closed after it, as its exit would close them."""
    unset: dict[str, str | None] = {k: None for k in [*os.environ, "SOFTHSM2_CONF"] if k not in env}
    before = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        with _closing_engines(), _unconfigured_logging(), warnings.catch_warnings(record=True) as caught:
            _new_process_warning_filters()
            code, out, err = revoca({**unset, **env}, *args, stdin=stdin)  # type: ignore[dict-item]
    finally:
        os.chdir(before)
    # what the process would have printed on stderr for them (after the rest: tests count lines, not order)
    err += "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line) for w in caught)
    return subprocess.CompletedProcess(["revoca", *args], code, out, err)


@contextlib.contextmanager
def _unconfigured_logging() -> Iterator[None]:
    """The root logger without pytest's capturing handlers, as in a new process: a WARNING that
    nothing handles goes to the command's stderr (logging.lastResort), where a test counting its
    lines sees it, instead of into pytest's log capture."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers.clear()
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _new_process_warning_filters() -> None:
    """Python's default warning filters (no -W, no PYTHONWARNINGS), not pytest's."""
    warnings.resetwarnings()
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__", append=True)
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.filterwarnings("ignore", category=category, append=True)


@contextlib.contextmanager
def _closing_engines() -> Iterator[None]:
    """Dispose, on the way out, of the engines that connected inside: a command does not (its
    process's exit closes the connections), and each PostgreSQL connection left open here would
    hold a server slot until the garbage collector found it.  An engine on an in-memory SQLite
    database keeps its pool (disposing it would drop the database)."""
    used: dict[int, weakref.ref[sa.Engine]] = {}

    def engine_connect(conn: sa.Connection) -> None:
        used.setdefault(id(conn.engine), weakref.ref(conn.engine))

    sa.event.listen(sa.Engine, "engine_connect", engine_connect)
    try:
        yield
    finally:
        sa.event.remove(sa.Engine, "engine_connect", engine_connect)
        for ref in used.values():
            engine = ref()
            if engine is not None and not isinstance(engine.pool, sa.pool.SingletonThreadPool | sa.pool.StaticPool):
                engine.dispose()


def write_config(settings: Settings, path: Path, socket: Path | None = None) -> dict[str, str]:
    path.write_text(
        f'data_dir = "{settings.data_dir}"\ndatabase_url = "{settings.db_url}"\n'
        f'[hsm]\ntoken_label = "{settings.hsm.token_label}"\nkey_algorithm = "p256"\n'
        f'socket = "{socket or settings.hsm_socket}"\n'
        f'[repository]\nbase_dn = "{settings.repository.base_dn}"\nport = {settings.repository.port}\n')
    return {"REVOCA_CONFIG": str(path)}


# --- the HSM service in this process --------------------------------------------------------------


def serve_hsm_in_thread(path: Path, service: HSMService) -> socketserver.BaseServer:
    """ca.hsm.service.serve_in_thread, but polling for shutdown every 20 ms rather than
    serve_forever's 500: every test with an HSM service in this process stops one, and would wait
    a quarter of a second on average for it."""
    server = bind(path, service)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="hsm-service",
                     daemon=True).start()
    return server


def officers_client(socket: Path, settings: Settings) -> HSMClient:
    """A client of the admin identity (this process) that opens a ceremony session of two demo key
    managers (ca.hsm.sessions) on each connection: certificates, key generation and destruction
    need one, as the officers' CLI opens it for an act of key managers."""
    return HSMClient(socket, key_managers=demo_key_managers(settings)[:2])


def end_ceremony(client: HSMClient, engine: sa.Engine, timeout: float = 10.0) -> None:
    """Close `client` and wait until the service has audited the opening and end of every ceremony
    session (it writes those records on a thread of its own), for tests that count audit records."""
    def count(event: str) -> int:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM audit_events WHERE event_type = :e "
                                        "AND result = 'success'"), {"e": event}).scalar_one()

    before = count("hsm.ceremony_closed")
    client.close()
    deadline = time.monotonic() + timeout
    while not before < count("hsm.ceremony_closed") == count("hsm.ceremony_opened"):
        if time.monotonic() > deadline:
            raise AssertionError("the HSM service did not audit the end of the ceremony session")
        time.sleep(0.02)


@contextlib.contextmanager
def activated_hsm_service(settings: Settings, engine: sa.Engine, shares: Sequence[tuple[str, object]],
                          prefix: str = "rvh") -> Iterator[Path]:
    """The HSM service on a Unix socket in this process, activated with two of `shares`, as
    `revoca serve hsm` would run; yields the socket's path and stops the service afterwards."""
    sock_dir = Path(tempfile.mkdtemp(prefix=prefix))  # Unix socket paths must stay short
    service = HSMService(token_for(settings), engine)
    server = serve_hsm_in_thread(sock_dir / "hsm.sock", service)
    client = HSMClient(sock_dir / "hsm.sock")
    for _, share in shares[:2]:
        client.activate(share.encode())  # type: ignore[attr-defined]
    client.close()
    try:
        yield sock_dir / "hsm.sock"
    finally:
        server.shutdown()
        server.server_close()
        service.close()
        (sock_dir / "hsm.sock").unlink(missing_ok=True)
        sock_dir.rmdir()


# --- OCSP requests ----------------------------------------------------------------------------------


def court_certificate(name: str, key: CertificateIssuerPrivateKeyTypes | None = None, *, days: int = 30
                      ) -> tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes]:
    """A self-signed certificate `CN=name,O=Court,C=JP` (a verifier's, or an outsider's), valid from an
    hour ago for `days`, with its key (a new P-256 key unless one is given)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name.from_rfc4514_string(f"CN={name},O=Court,C=JP")
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=days)).sign(key, hashes.SHA256()))
    return cert, key


def ocsp_request(ca: x509.Certificate, serial: int, *, nonce: bytes | None = None) -> bytes:
    """An unsigned OCSP request for one of `ca`'s serials (SHA-1 CertID), made with cryptography."""
    spki = ca.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    builder = x509_ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        hashlib.sha1(ca.subject.public_bytes()).digest(), hashlib.sha1(public_key_bits(spki)).digest(), serial,
        hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(Encoding.DER)
